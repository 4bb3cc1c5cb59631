//! Votes, as etcd holds them: each node's verdicts packed into buckets.
//!
//! Why buckets: one key per (service, target, node) is 6N keys for N
//! services on three nodes, and writing or reading them one by one is what
//! kept a cluster of 1,000 services from ever electing a leader. One key
//! per node would rewrite every verdict on each change. Services are hashed
//! into [`BUCKETS`] buckets; a node writes a bucket (`votes/NODE/BUCKET`,
//! bound to its lease) only when a verdict in it changed, and only its
//! non-empty buckets when it joins: at 30,000 services a bucket holds about
//! 30 services (about 1 KB), a change writes that much, and a join at most
//! [`BUCKETS`] small keys in a few transactions.
//!
//! A verdict not in the bucket is "no verdict yet" (None), so nothing is
//! written for targets this node has not checked.

use std::collections::BTreeMap;

/// How many buckets the services are spread over.
pub const BUCKETS: u32 = 1024;

/// A node's verdicts in one bucket: service → target → healthy.
pub type Bucket = BTreeMap<String, BTreeMap<String, bool>>;

/// The bucket of `service` (FNV-1a: stable across builds and machines,
/// which every node must agree on).
pub fn bucket_of(service: &str) -> u32 {
    let mut h: u32 = 0x811c_9dc5;
    for b in service.as_bytes() {
        h ^= u32::from(*b);
        h = h.wrapping_mul(0x0100_0193);
    }
    h % BUCKETS
}

pub fn encode(b: &Bucket) -> String {
    serde_json::to_string(b).expect("plain data")
}

pub fn decode(s: &str) -> Option<Bucket> {
    serde_json::from_str(s).ok()
}

/// Set one verdict in `b` (None removes it). True if it changed.
pub fn set(b: &mut Bucket, service: &str, target: &str, healthy: Option<bool>) -> bool {
    match healthy {
        Some(h) => {
            let prev = b
                .entry(service.to_string())
                .or_default()
                .insert(target.to_string(), h);
            prev != Some(h)
        }
        None => {
            let Some(s) = b.get_mut(service) else {
                return false;
            };
            let removed = s.remove(target).is_some();
            if s.is_empty() {
                b.remove(service);
            }
            removed
        }
    }
}

pub fn get(b: &Bucket, service: &str, target: &str) -> Option<bool> {
    b.get(service).and_then(|s| s.get(target)).copied()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buckets_are_stable_and_spread() {
        assert_eq!(bucket_of("cic"), bucket_of("cic"));
        let used: std::collections::BTreeSet<u32> =
            (0..10_000).map(|i| bucket_of(&format!("svc{i}"))).collect();
        assert!(
            used.len() > 1000,
            "10,000 services use {} buckets",
            used.len()
        );
    }

    #[test]
    fn set_reports_changes_and_none_removes() {
        let mut b = Bucket::new();
        assert!(set(&mut b, "cic", "primary", Some(true)));
        assert!(!set(&mut b, "cic", "primary", Some(true)));
        assert!(set(&mut b, "cic", "primary", Some(false)));
        assert_eq!(get(&b, "cic", "primary"), Some(false));
        assert_eq!(decode(&encode(&b)), Some(b.clone()));
        assert!(set(&mut b, "cic", "primary", None));
        assert!(b.is_empty());
        assert!(!set(&mut b, "cic", "primary", None));
    }
}
