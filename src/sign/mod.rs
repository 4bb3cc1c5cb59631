//! Online DNSSEC signing: between the publisher and the snapshot.
//!
//! Owns: a zone's keys ([`keys`]), turning the zone data the publisher
//! hands on (zone file + updates + service records) into signed zone data —
//! DNSKEY (and CDS/CDNSKEY for the key-signing keys), the denial chain (NSEC,
//! or NSEC3 with 0 iterations and no salt per RFC 9276) and an RRSIG for
//! every authoritative RRset — and remembering the signatures it made, so
//! that a remap re-signs only the RRsets it changed (plus the SOA, whose
//! serial moved, and the NSEC records whose bitmaps changed).
//! It also signs RRsets served beside the zone data, the answers of
//! per-region names, with the same keys and rules (`extra.rs`).
//!
//! It hands on plain [`ZoneData`]: the snapshot compiles signed data the
//! same way whether ggond signed it or the operator loaded a pre-signed
//! file, so signatures are made when a snapshot is built, never per query.
//! It must not choose targets, touch sockets or keep state beyond the
//! signature cache and the key set: keys are read at start and reload; a
//! key roll ([`roll`], pure steps) and the key policy ([`policy`], pure:
//! when a key is due) change the key set, saved under the state directory
//! (`rolling.rs` carries their decisions out; the parent's servers are
//! asked by the publisher, `publish/keypolicy.rs`). In a cluster the key
//! set is shared through etcd as plain data (`shared.rs`): the leader's
//! steps are written there before they are served, and every node adopts
//! what is written.

mod extra;
mod incremental;
pub mod keys;
pub mod policy;
pub mod roll;
mod rolling;
pub mod rrsig;
mod shared;

use std::collections::{BTreeSet, HashMap};
use std::path::PathBuf;

use hickory_proto::rr::{Name, RData, RecordType};

use crate::proto::zone::{cut_of, RRset, Rdatas, ZoneData};
use crate::proto::zonefile::decode;
pub use keys::{KeyError, ZoneKey};
use roll::{Roll, RollKind};
pub use rolling::{ds_matches, KeyView, ParentQuestion, PolicyView, ZoneKeysView};
use rrsig::SigParams;
pub use shared::{AdoptError, KeyMark, SharedKey, SharedKeySet};

/// How denial of existence is proved.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Denial {
    #[default]
    Nsec,
    /// RFC 9276: SHA-1, 0 extra iterations, no salt, no opt-out.
    Nsec3,
}

/// Signature timing, in seconds.
#[derive(Debug, Clone, PartialEq)]
pub struct Policy {
    /// From inception-less-backdate to expiration.
    pub validity: u32,
    /// A signature with less than this left is made again.
    pub refresh: u32,
    /// Inception is set this far in the past (clock skew of validators).
    pub backdate: u32,
    pub denial: Denial,
    /// Added to the zone's longest TTL between the steps of a key roll
    /// (time for secondaries to follow, RFC 7583's propagation delay).
    pub propagation: u32,
    /// Rolls that run themselves (None: by command only).
    pub key_policy: Option<policy::KeyPolicy>,
}

impl Default for Policy {
    fn default() -> Self {
        Policy {
            validity: 14 * 86_400,
            refresh: 5 * 86_400,
            backdate: 3600,
            denial: Denial::Nsec,
            propagation: 300,
            key_policy: None,
        }
    }
}

/// A key's part in the zone (a rollover moves keys through these).
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum KeyState {
    /// In the DNSKEY RRset and signing.
    Active,
    /// In the DNSKEY RRset, not signing yet (pre-publication).
    Published,
    /// In the DNSKEY RRset, no longer signing (waiting for caches to drop
    /// its signatures).
    Retired,
}

/// Signatures made, by (owner, type).
type Cache = HashMap<(Name, RecordType), Cached>;

struct Cached {
    ttl: u32,
    rdatas: Rdatas,
    tags: Vec<u16>,
    expiration: u32,
    sigs: Vec<RData>,
}

/// Counts of the last signing run (for logs, metrics and the bench).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SignStats {
    pub signed: usize,
    pub reused: usize,
}

/// One zone's signer and its signature cache.
pub struct Signer {
    origin: Name,
    keys: Vec<(ZoneKey, KeyState)>,
    policy: Policy,
    cache: Cache,
    /// Earliest time (unix seconds) a signature needs making again.
    refresh_at: u64,
    pub last: SignStats,
    roll: Option<Roll>,
    /// Where the key set and a roll in progress are saved (None: not saved).
    state_file: Option<PathBuf>,
    /// Since when the signing keys sign (the key policy's clocks), and
    /// where they are saved.
    clocks: policy::Clocks,
    clock_file: Option<PathBuf>,
    /// After a roll the policy could not begin (a key directory ggond
    /// cannot write, say): not tried again before this (unix seconds), so
    /// the history gets one failure per try, not one per tick.
    policy_retry_at: u64,
    /// The last run's input and output, for the incremental path.
    prev: Option<incremental::Prev>,
    /// Signatures of RRsets outside the zone data (per-region answers).
    extra: extra::Extra,
}

#[derive(Debug, thiserror::Error)]
pub enum RollError {
    #[error("a {kind:?} roll is already under way (next step at {at}); let it finish")]
    Busy { kind: RollKind, at: String },
    #[error("no active {0} to roll (a single key signing everything is rolled with --ksk)")]
    NoKey(&'static str),
    #[error("{0}")]
    Key(#[from] KeyError),
    #[error("cannot save the key set to {path}: {source}")]
    Save {
        path: PathBuf,
        source: std::io::Error,
    },
}

/// The RRSIG/NSEC/… records the signer owns and replaces on every run.
fn managed(at_apex: bool, t: RecordType) -> bool {
    matches!(t, RecordType::RRSIG | RecordType::NSEC | RecordType::NSEC3)
        || (at_apex
            && matches!(
                t,
                RecordType::DNSKEY | RecordType::CDS | RecordType::CDNSKEY | RecordType::NSEC3PARAM
            ))
}

/// Records the signer made itself: read straight from their wire form
/// (the zone-file path's round-trip check is for data from outside).
fn rdata(t: RecordType, wire: &[u8]) -> RData {
    use hickory_proto::serialize::binary::{BinDecoder, Restrict};
    let len = u16::try_from(wire.len()).expect("rdata fits");
    RData::read(&mut BinDecoder::new(wire), t, Restrict::new(len))
        .or_else(|_| decode(t, wire))
        .expect("well-formed DNSSEC rdata")
}

impl Signer {
    pub fn new(origin: Name, keys: Vec<(ZoneKey, KeyState)>, policy: Policy) -> Signer {
        Signer {
            origin,
            keys,
            policy,
            cache: HashMap::new(),
            refresh_at: 0,
            last: SignStats::default(),
            roll: None,
            state_file: None,
            clocks: policy::Clocks::default(),
            clock_file: None,
            policy_retry_at: 0,
            prev: None,
            extra: extra::Extra::default(),
        }
    }

    pub fn origin(&self) -> &Name {
        &self.origin
    }

    pub fn keys(&self) -> &[(ZoneKey, KeyState)] {
        &self.keys
    }

    pub fn policy(&self) -> &Policy {
        &self.policy
    }

    /// Replace the key set (rollover steps, reload); signatures by keys no
    /// longer active are dropped at the next run.
    pub fn set_keys(&mut self, keys: Vec<(ZoneKey, KeyState)>) {
        self.keys = keys;
    }

    /// When the zone (or an RRset signed beside it, see `extra.rs`) must be
    /// signed again even if nothing changed.
    pub fn refresh_at(&self) -> u64 {
        self.refresh_at.min(self.extra.refresh_at())
    }

    /// The keys that sign `rtype`: key-signing keys sign the key RRsets,
    /// zone-signing keys the rest; a lone kind of key signs everything.
    fn signers(&self, rtype: RecordType) -> Vec<&ZoneKey> {
        let active: Vec<&ZoneKey> = self
            .keys
            .iter()
            .filter(|(_, s)| *s == KeyState::Active)
            .map(|(k, _)| k)
            .collect();
        let keyset = matches!(
            rtype,
            RecordType::DNSKEY | RecordType::CDS | RecordType::CDNSKEY
        );
        let (ksk, zsk): (Vec<&ZoneKey>, Vec<&ZoneKey>) = active.iter().partition(|k| k.is_ksk());
        match (keyset, ksk.is_empty(), zsk.is_empty()) {
            (true, false, _) => ksk,
            (false, _, false) => zsk,
            _ => active,
        }
    }

    /// Signed zone data: `data` without any DNSSEC records it carried,
    /// plus keys, denial chain and signatures, at time `now`.
    pub fn sign(&mut self, data: &ZoneData, now: u64) -> ZoneData {
        if let Some(out) = self.sign_incremental(data, now) {
            return out;
        }
        let out = self.sign_full(data, now);
        self.remember(data, &out);
        out
    }

    /// The key set as it signs: which tags, in which state.
    fn key_states(&self) -> Vec<(u16, KeyState)> {
        self.keys.iter().map(|(k, s)| (k.tag, *s)).collect()
    }

    fn sign_full(&mut self, data: &ZoneData, now: u64) -> ZoneData {
        // The data as given (a persistent map: the copy is cheap), without
        // the DNSSEC records a pre-signed file or an UPDATE brought.
        let mut z = data.clone();
        let carrying: Vec<Name> = data
            .rrsets
            .iter()
            .filter(|(n, t)| t.keys().any(|t| managed(**n == data.origin, *t)))
            .map(|(n, _)| n.clone())
            .collect();
        for name in carrying {
            let at_apex = name == data.origin;
            let types: Vec<RecordType> = data.rrsets[&name].keys().copied().collect();
            for t in types.into_iter().filter(|t| managed(at_apex, *t)) {
                z.replace_rrset(&name, t, None);
            }
        }
        self.add_keys(&mut z);
        let cuts = z.cuts();
        let origin = z.origin.clone();
        // Strictly below a cut: glue and occluded data, not signed.
        let below_cut = |n: &Name| cut_of(&origin, &cuts, &n.base_name()).is_some();
        let neg_ttl = z.negative_ttl();
        match self.policy.denial {
            Denial::Nsec => add_nsec(&mut z, &below_cut, neg_ttl),
            Denial::Nsec3 => add_nsec3(&mut z, &cuts, &below_cut, neg_ttl),
        }
        // Sign every authoritative RRset.
        let mut stats = SignStats::default();
        let mut refresh_at = u64::MAX;
        let mut old = std::mem::take(&mut self.cache);
        let mut fresh = Cache::new();
        let mut sigs: Vec<(Name, Vec<(u32, RData)>)> = Vec::new();
        for (name, types) in &z.rrsets {
            if below_cut(name) {
                continue;
            }
            let at_cut = cuts.contains(name);
            let mut here = Vec::new();
            for (rtype, set) in types {
                if at_cut && !matches!(rtype, RecordType::DS | RecordType::NSEC) {
                    continue;
                }
                let c = self.signature(name, *rtype, set, now, (&mut old, &mut fresh), &mut stats);
                refresh_at =
                    refresh_at.min(u64::from(c.0).saturating_sub(u64::from(self.policy.refresh)));
                here.extend(c.1.into_iter().map(|s| (set.ttl, s)));
            }
            if !here.is_empty() {
                sigs.push((name.clone(), here));
            }
        }
        for (name, list) in sigs {
            let (ttls, rdatas): (Vec<u32>, Vec<RData>) = list.into_iter().unzip();
            let ttl = ttls.iter().copied().min().unwrap_or(0);
            z.rrsets.or_default(name).insert(
                RecordType::RRSIG,
                RRset {
                    ttl,
                    rdatas: rdatas.into(),
                    ttls,
                },
            );
        }
        self.cache = fresh;
        self.refresh_at = refresh_at;
        self.last = stats;
        z
    }

    /// The signatures of one RRset: moved from `old` (the cache of the
    /// last run) when still good, else made. Either way the entry goes to
    /// `fresh`. Returns (earliest expiration, signatures).
    fn signature(
        &self,
        name: &Name,
        rtype: RecordType,
        set: &RRset,
        now: u64,
        (old, fresh): (&mut Cache, &mut Cache),
        stats: &mut SignStats,
    ) -> (u32, Vec<RData>) {
        let tags = self.signer_tags(rtype);
        let key = (name.clone(), rtype);
        if let Some(c) = old.remove(&key) {
            if self.still_good(&c, set, &tags, now) {
                stats.reused += 1;
                let out = (c.expiration, c.sigs.clone());
                fresh.insert(key, c);
                return out;
            }
        }
        stats.signed += 1;
        let c = self.make_signature(name, rtype, set, now, tags);
        let out = (c.expiration, c.sigs.clone());
        fresh.insert(key, c);
        out
    }

    /// The tags of the keys that sign `rtype` now.
    fn signer_tags(&self, rtype: RecordType) -> Vec<u16> {
        self.signers(rtype).iter().map(|k| k.tag).collect()
    }

    /// Whether a cached signature still covers `set` with the keys that
    /// sign now, and is not due for refresh.
    fn still_good(&self, c: &Cached, set: &RRset, tags: &[u16], now: u64) -> bool {
        c.ttl == set.ttl
            && c.rdatas == set.rdatas
            && c.tags == tags
            && u64::from(c.expiration) > now + u64::from(self.policy.refresh)
    }

    /// Sign `set` (owner `name`) with the keys that sign `rtype` now;
    /// `tags` are theirs, kept with the signatures to notice a key change.
    fn make_signature(
        &self,
        name: &Name,
        rtype: RecordType,
        set: &RRset,
        now: u64,
        tags: Vec<u16>,
    ) -> Cached {
        // Spread expirations over the last eighth of the validity, so that
        // refreshes do not all fall due at the same moment.
        let spread = (self.policy.validity / 8).max(1);
        let jitter = (fxhash(name, rtype) % u64::from(spread)) as u32;
        let expiration = (now as u32)
            .wrapping_add(self.policy.validity)
            .wrapping_sub(jitter);
        let params = SigParams {
            owner: name,
            rtype,
            ttl: set.ttl,
            inception: (now as u32).wrapping_sub(self.policy.backdate),
            expiration,
            signer: &self.origin,
        };
        let sigs: Vec<RData> = self
            .signers(rtype)
            .iter()
            .map(|k| {
                rdata(
                    RecordType::RRSIG,
                    &rrsig::sign_rrset(&params, &set.rdatas, k),
                )
            })
            .collect();
        Cached {
            ttl: set.ttl,
            rdatas: set.rdatas.clone(),
            tags,
            expiration,
            sigs,
        }
    }

    /// DNSKEY for every key in the zone; CDS and CDNSKEY for the keys
    /// `cds_keys` names (RFC 7344), so a parent can follow a KSK roll.
    fn add_keys(&self, z: &mut ZoneData) {
        let ttl = z.soa_ttl();
        let dnskeys: Vec<RData> = self
            .keys
            .iter()
            .map(|(k, _)| rdata(RecordType::DNSKEY, &k.dnskey_rdata()))
            .collect();
        let origin = z.origin.clone();
        z.replace_rrset(&origin, RecordType::DNSKEY, Some(RRset::new(ttl, dnskeys)));
        let ksks = self.cds_keys();
        if ksks.is_empty() {
            return;
        }
        let cds = ksks
            .iter()
            .map(|k| rdata(RecordType::CDS, &ds_rdata(&origin, k)))
            .collect();
        let cdnskey = ksks
            .iter()
            .map(|k| rdata(RecordType::CDNSKEY, &k.dnskey_rdata()))
            .collect();
        z.replace_rrset(&origin, RecordType::CDS, Some(RRset::new(ttl, cds)));
        z.replace_rrset(&origin, RecordType::CDNSKEY, Some(RRset::new(ttl, cdnskey)));
    }
}

/// DS RDATA (SHA-256) for a key of `zone`.
pub fn ds_rdata(zone: &Name, k: &ZoneKey) -> Vec<u8> {
    ds_from_dnskey(&rrsig::name_wire(zone), &k.dnskey_rdata())
}

/// DS RDATA (SHA-256, RFC 4509) from a zone's wire name and DNSKEY RDATA.
pub fn ds_from_dnskey(zone_wire: &[u8], dnskey: &[u8]) -> Vec<u8> {
    let mut input = zone_wire.to_vec();
    input.extend_from_slice(dnskey);
    let digest = ring::digest::digest(&ring::digest::SHA256, &input);
    let mut r = keys::key_tag(dnskey).to_be_bytes().to_vec();
    r.push(dnskey.get(3).copied().unwrap_or(0));
    r.push(2);
    r.extend_from_slice(digest.as_ref());
    r
}

fn fxhash(name: &Name, t: RecordType) -> u64 {
    use std::hash::{Hash, Hasher};
    let mut h = rustc_hash::FxHasher::default();
    name.to_ascii().to_ascii_lowercase().hash(&mut h);
    u16::from(t).hash(&mut h);
    h.finish()
}

/// NSEC at every authoritative owner and delegation point (not glue).
fn add_nsec(z: &mut ZoneData, below_cut: &dyn Fn(&Name) -> bool, ttl: u32) {
    let owners: Vec<Name> = z.rrsets.keys().filter(|n| !below_cut(n)).cloned().collect();
    for (i, name) in owners.iter().enumerate() {
        let next = owners.get(i + 1).unwrap_or(&owners[0]);
        let mut types: Vec<RecordType> = z.rrsets[name].keys().copied().collect();
        // The NSEC itself is signed everywhere, insecure cuts included.
        types.push(RecordType::NSEC);
        types.push(RecordType::RRSIG);
        let rd = rdata(RecordType::NSEC, &rrsig::nsec_rdata(next, &types));
        z.rrsets
            .get_mut(name)
            .expect("owner")
            .insert(RecordType::NSEC, RRset::new(ttl, vec![rd]));
    }
}

/// NSEC3 (RFC 5155 §7.1) for every authoritative name, empty non-terminals
/// included, with the parameters RFC 9276 asks for.
fn add_nsec3(z: &mut ZoneData, cuts: &BTreeSet<Name>, below_cut: &dyn Fn(&Name) -> bool, ttl: u32) {
    let origin = z.origin.clone();
    let mut names: BTreeSet<Name> = BTreeSet::new();
    for n in z.rrsets.keys().filter(|n| !below_cut(n)) {
        let mut a = n.clone();
        while names.insert(a.clone()) && a != origin {
            a = a.base_name();
        }
    }
    let param = rdata(RecordType::NSEC3PARAM, &[1, 0, 0, 0, 0]);
    z.replace_rrset(
        &origin,
        RecordType::NSEC3PARAM,
        Some(RRset::new(0, vec![param])),
    );
    let mut chain: Vec<([u8; 20], Vec<RecordType>)> = names
        .iter()
        .map(|n| {
            let h = rrsig::nsec3_hash(&rrsig::name_wire(n), &[], 0);
            let mut types: Vec<RecordType> = z
                .rrsets
                .get(n)
                .map(|t| t.keys().copied().collect())
                .unwrap_or_default();
            let insecure_cut = cuts.contains(n) && !types.contains(&RecordType::DS);
            if !types.is_empty() && !insecure_cut {
                types.push(RecordType::RRSIG);
            }
            (h, types)
        })
        .collect();
    chain.sort_by_key(|a| a.0);
    for (i, (h, types)) in chain.iter().enumerate() {
        let next = &chain.get(i + 1).unwrap_or(&chain[0]).0;
        let owner = crate::proto::dnssec::nsec3_owner(&origin, h).expect("hash label fits");
        let rd = rdata(RecordType::NSEC3, &rrsig::nsec3_rdata(0, &[], next, types));
        z.replace_rrset(&owner, RecordType::NSEC3, Some(RRset::new(ttl, vec![rd])));
    }
}

#[cfg(test)]
mod rolling_tests;
#[cfg(test)]
mod tests;

/// Unix seconds as an operator reads them (`2026-12-06T17:04:14Z`), not in
/// the RRSIG field's digits (`20261206170414`).
pub fn readable(unix: u64) -> String {
    humantime::format_rfc3339_seconds(std::time::UNIX_EPOCH + std::time::Duration::from_secs(unix))
        .to_string()
}
