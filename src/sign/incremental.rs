//! The signer's fast path: when a change only replaces RRsets at names
//! that keep the same types (a remap, most UPDATEs), the last signed zone
//! is kept (a persistent map, so the copy is cheap) and only those names
//! are signed again; their NSEC/NSEC3 records cannot have changed. Anything
//! else (names added or removed, types added or removed, a cut, the SOA's
//! timers, the key set, a signature due for refresh) takes the full run.

use std::collections::BTreeSet;

use hickory_proto::rr::{Name, RecordType};

use crate::proto::zone::{cut_of, DiffItem, Types};

use super::{managed, Cache, KeyState, RRset, SignStats, Signer, ZoneData};

/// What the last run was given and made.
pub(super) struct Prev {
    input: ZoneData,
    output: ZoneData,
    keys: Vec<(u16, KeyState)>,
    /// Delegation points of the input.
    cuts: BTreeSet<Name>,
}

impl Signer {
    pub(super) fn remember(&mut self, input: &ZoneData, output: &ZoneData) {
        let cuts = input.cuts();
        self.prev = Some(Prev {
            input: input.clone(),
            output: output.clone(),
            keys: self.key_states(),
            cuts,
        });
    }

    /// The names whose RRsets changed without changing shape, or None when
    /// the change needs a full run.
    fn reusable_change(&self, data: &ZoneData, now: u64) -> Option<Vec<Name>> {
        let prev = self.prev.as_ref()?;
        if prev.keys != self.key_states()
            || now >= self.refresh_at
            || prev.input.origin != data.origin
            // The SOA's TTL and minimum set the denial records' TTLs.
            || !prev.input.same_soa_but_serial(data)
        {
            return None;
        }
        let at_or_below_cut = |n: &Name| cut_of(&data.origin, &prev.cuts, n).is_some();
        let mut changed = Vec::new();
        for d in prev.input.rrsets.diff(&data.rrsets) {
            let DiffItem::Update {
                old: (_, a),
                new: (n, b),
            } = d
            else {
                return None;
            };
            let at_apex = *n == data.origin;
            if !a.keys().eq(b.keys())
                || b.keys().any(|t| managed(at_apex, *t))
                || at_or_below_cut(n)
            {
                return None;
            }
            changed.push(n.clone());
        }
        Some(changed)
    }

    /// Sign only what changed since the last run, if that is enough.
    pub(super) fn sign_incremental(&mut self, data: &ZoneData, now: u64) -> Option<ZoneData> {
        let changed = self.reusable_change(data, now)?;
        let prev = self.prev.as_ref()?;
        let mut cache = std::mem::take(&mut self.cache);
        let mut out = prev.output.clone();
        let mut fresh = Cache::new();
        let mut stats = SignStats::default();
        let mut refresh_at = self.refresh_at;
        for n in &changed {
            let at_apex = *n == data.origin;
            let mut types: Types = data.rrsets[n].clone();
            // What the signer itself put there (keys, NSEC), as before.
            if let Some(old) = prev.output.rrsets.get(n) {
                for (t, s) in old {
                    if *t != RecordType::RRSIG && managed(at_apex, *t) {
                        types.insert(*t, s.clone());
                    }
                }
            }
            let mut ttls = Vec::new();
            let mut sigs = Vec::new();
            for (t, set) in &types {
                let (exp, s) =
                    self.signature(n, *t, set, now, (&mut cache, &mut fresh), &mut stats);
                refresh_at =
                    refresh_at.min(u64::from(exp).saturating_sub(u64::from(self.policy.refresh)));
                ttls.extend(std::iter::repeat_n(set.ttl, s.len()));
                sigs.extend(s);
            }
            if !sigs.is_empty() {
                let ttl = ttls.iter().copied().min().unwrap_or(0);
                types.insert(
                    RecordType::RRSIG,
                    RRset {
                        ttl,
                        rdatas: sigs.into(),
                        ttls,
                    },
                );
            }
            out.rrsets.insert(n.clone(), types);
        }
        cache.extend(fresh);
        self.cache = cache;
        self.refresh_at = refresh_at;
        self.last = stats;
        self.remember(data, &out);
        Some(out)
    }
}
