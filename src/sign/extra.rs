//! Signatures of RRsets served beside the zone data: the answers of
//! per-region names (see [`crate::publish::regional`]).
//!
//! The zone data keeps a per-region name's default answer (what transfers,
//! the denial chain and IXFR see); each region's A/AAAA RRset lives only in
//! the snapshot's regional table. Each such RRset is signed like any RRset
//! of the zone (the same keys, validity, refresh and jitter), and its
//! signatures are kept per (owner, type, RRset): regions that answer alike
//! share one, a regional failover signs the one RRset that changed, and a
//! snapshot rebuilt for any other reason signs nothing.
//!
//! A round ([`Signer::begin_extra`] … [`Signer::end_extra`]) is one rebuild
//! of the regional table: what is not asked for during it is dropped, so
//! the cache holds only what is served.

use std::collections::HashMap;

use hickory_proto::rr::{Name, RData, RecordType};

use super::{Cached, RRset, SignStats, Signer};

/// Signatures by owner and type; one entry per distinct RRset.
type Sets = HashMap<(Name, RecordType), Vec<Cached>>;

#[derive(Default)]
pub(super) struct Extra {
    /// What the last round signed or reused.
    kept: Sets,
    /// The round under way.
    used: Sets,
    /// Earliest time one of `kept` needs making again (None: none kept).
    refresh_at: Option<u64>,
    /// Counts of the last round.
    stats: SignStats,
}

impl Extra {
    /// When one of the extra signatures is due for refresh.
    pub(super) fn refresh_at(&self) -> u64 {
        self.refresh_at.unwrap_or(u64::MAX)
    }
}

impl Signer {
    /// Begin a round of extra signatures (one rebuild of the regional table).
    pub fn begin_extra(&mut self) {
        let e = &mut self.extra;
        e.used.clear();
        e.refresh_at = None;
        e.stats = SignStats::default();
    }

    /// The RRSIGs of `set`, an RRset at `name` that is not in the zone data,
    /// at time `now`: reused when this round or the last one made them and
    /// they are still good, else made with the keys that sign `rtype`.
    pub fn sign_extra(
        &mut self,
        name: &Name,
        rtype: RecordType,
        set: &RRset,
        now: u64,
    ) -> Vec<RData> {
        let tags = self.signer_tags(rtype);
        let key = (name.clone(), rtype);
        let fits = |c: &Cached| c.ttl == set.ttl && c.rdatas == set.rdatas;
        // Asked again in this round (two regions answering alike).
        if let Some(c) = self
            .extra
            .used
            .get(&key)
            .and_then(|v| v.iter().find(|c| fits(c)))
        {
            return c.sigs.clone();
        }
        let kept = self.extra.kept.get_mut(&key).and_then(|v| {
            let i = v.iter().position(fits)?;
            Some(v.swap_remove(i))
        });
        let cached = match kept.filter(|c| self.still_good(c, set, &tags, now)) {
            Some(c) => {
                self.extra.stats.reused += 1;
                c
            }
            None => {
                self.extra.stats.signed += 1;
                self.make_signature(name, rtype, set, now, tags)
            }
        };
        let due = u64::from(cached.expiration).saturating_sub(u64::from(self.policy.refresh));
        let e = &mut self.extra;
        e.refresh_at = Some(e.refresh_at.map_or(due, |r| r.min(due)));
        let sigs = cached.sigs.clone();
        e.used.entry(key).or_default().push(cached);
        sigs
    }

    /// End the round: keep only what it asked for.
    pub fn end_extra(&mut self) {
        let e = &mut self.extra;
        e.kept = std::mem::take(&mut e.used);
    }

    /// Counts of the last round of extra signatures.
    pub fn extra_stats(&self) -> SignStats {
        self.extra.stats
    }
}
