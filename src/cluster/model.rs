//! What this node knows of the cluster, as the watch delivers it: the
//! members, their vote buckets, the leader key and the shared state; and
//! the agreed verdicts that follow from them.
//!
//! Kept incrementally: a watch event changes one key, and only the services
//! of a changed vote bucket are counted again (a member joining or leaving
//! changes every count). It must not call etcd: the node does, and feeds
//! this the results.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::net::SocketAddr;

use serde::{Deserialize, Serialize};

use super::digest::Chunk;
use super::etcd::Kv;
use super::verdict::agree;
use super::votes::{self, Bucket};
use super::Keys;
use crate::config::Quorum;
use crate::decide::state::ServiceState;
use crate::decide::views::VerdictView;

/// What other nodes learn about this one.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Member {
    pub control: String,
    /// The control API serves TLS: a change is passed on over https.
    #[serde(default)]
    pub control_tls: bool,
    pub dns: Vec<SocketAddr>,
    pub since: u64,
}

/// A service's targets and quorum, from this node's config.
pub struct Service {
    pub name: String,
    pub targets: Vec<String>,
    pub quorum: Quorum,
}

/// What changed with a batch of watch events.
#[derive(Debug, Default)]
pub struct Changed {
    pub members: bool,
    pub leader: bool,
    /// Vote buckets whose content changed (any node's).
    pub buckets: BTreeSet<u32>,
    /// Services whose shared state changed, and whether the serials did.
    pub services: BTreeSet<String>,
    pub serials: bool,
    /// Entries of the zones' UPDATE journals written (zone, entry), in
    /// the order etcd gave them: the journal's order.
    pub zone_entries: Vec<(String, crate::publish::JournalEntry)>,
    /// Signed zones' key sets written (zone, key set, revision).
    pub keysets: Vec<(String, crate::sign::SharedKeySet, i64)>,
    /// A node's digests changed.
    pub conf: bool,
}

impl Changed {
    pub fn state(&self) -> bool {
        !self.services.is_empty() || self.serials
    }
}

#[derive(Default)]
pub struct Model {
    /// Live members: name → (what it said of itself, its lease).
    pub members: BTreeMap<String, (Member, i64)>,
    /// Each node's vote buckets.
    pub votes: HashMap<String, HashMap<u32, Bucket>>,
    pub leader: Option<Kv>,
    pub services: BTreeMap<String, ServiceState>,
    pub serials: BTreeMap<String, u32>,
    /// Agreed verdicts: (service, target) → healthy.
    pub agreed: BTreeMap<(String, String), Option<bool>>,
    /// The votes behind each verdict, for status.
    pub views: BTreeMap<(String, String), VerdictView>,
    /// Each node's digest chunks (see [`super::digest`]).
    pub conf: HashMap<String, HashMap<u32, Chunk>>,
}

impl Model {
    /// Start again from a full read of ggon's prefix.
    pub fn reset(&mut self, keys: &Keys, kvs: &[Kv]) -> Changed {
        let agreed = std::mem::take(&mut self.agreed);
        let views = std::mem::take(&mut self.views);
        *self = Model {
            agreed,
            views,
            ..Model::default()
        };
        let mut changed = Changed {
            members: true,
            leader: true,
            ..Changed::default()
        };
        for kv in kvs {
            self.put(keys, kv, &mut changed);
        }
        changed.serials = true;
        changed
    }

    /// A key was written. A value this node cannot read counts as no value
    /// (the member, bucket, service state or digest chunk is gone), which
    /// is what a full read ([`Self::reset`]) makes of it: a node that
    /// followed the watch and one that just started must hold the same
    /// model, or they count different members and votes. (Found by the
    /// `etcd` fuzz target: the watch kept the value the key held before.)
    pub fn put(&mut self, keys: &Keys, kv: &Kv, changed: &mut Changed) {
        let k = kv.key.as_str();
        if let Some(name) = k.strip_prefix(&keys.nodes()) {
            match serde_json::from_str::<Member>(&kv.value) {
                Ok(m) => self.members.insert(name.to_string(), (m, kv.lease)),
                Err(_) => self.members.remove(name),
            };
            changed.members = true;
        } else if let Some(rest) = k.strip_prefix(&keys.votes()) {
            let Some((node, bucket)) = parse_bucket(rest, 4) else {
                return;
            };
            match votes::decode(&kv.value) {
                Some(b) => {
                    let node = self.votes.entry(node.to_string()).or_default();
                    node.insert(bucket, b);
                }
                None => {
                    if let Some(n) = self.votes.get_mut(node) {
                        n.remove(&bucket);
                    }
                }
            }
            changed.buckets.insert(bucket);
        } else if k == keys.leader() {
            self.leader = Some(kv.clone());
            changed.leader = true;
        } else if let Some(name) = k.strip_prefix(&keys.service_prefix()) {
            match serde_json::from_str::<ServiceState>(&kv.value) {
                Ok(s) => {
                    self.services.insert(name.to_string(), s);
                    changed.services.insert(name.to_string());
                }
                // As a deleted key: the last agreed state stays answered.
                Err(_) => {
                    self.services.remove(name);
                }
            }
        } else if k == keys.serials() {
            self.serials = serde_json::from_str(&kv.value).unwrap_or_default();
            changed.serials = true;
        } else if let Some(zone) = k.strip_prefix(&keys.keyset_prefix()) {
            // Not kept here either: the signer holds what it adopted.
            if let Ok(set) = serde_json::from_str(&kv.value) {
                changed
                    .keysets
                    .push((zone.to_string(), set, kv.mod_revision));
            }
        } else if let Some(rest) = k.strip_prefix(&keys.zone_prefix()) {
            // Not kept here: the publisher knows which it has applied.
            let (Some((zone, _)), Ok(e)) = (rest.rsplit_once('/'), serde_json::from_str(&kv.value))
            else {
                return;
            };
            changed.zone_entries.push((zone.to_string(), e));
        } else if let Some(rest) = k.strip_prefix(&keys.conf()) {
            let Some((node, chunk)) = parse_bucket(rest, 2) else {
                return;
            };
            match serde_json::from_str(&kv.value) {
                Ok(c) => {
                    let node = self.conf.entry(node.to_string()).or_default();
                    node.insert(chunk, c);
                }
                Err(_) => {
                    if let Some(n) = self.conf.get_mut(node) {
                        n.remove(&chunk);
                    }
                }
            }
            changed.conf = true;
        }
    }

    /// A key was deleted (or its lease ran out).
    pub fn delete(&mut self, keys: &Keys, key: &str, changed: &mut Changed) {
        if let Some(name) = key.strip_prefix(&keys.nodes()) {
            self.members.remove(name);
            changed.members = true;
        } else if let Some(rest) = key.strip_prefix(&keys.votes()) {
            if let Some((node, bucket)) = parse_bucket(rest, 4) {
                if let Some(n) = self.votes.get_mut(node) {
                    n.remove(&bucket);
                }
                changed.buckets.insert(bucket);
            }
        } else if key == keys.leader() {
            self.leader = None;
            changed.leader = true;
        } else if let Some(name) = key.strip_prefix(&keys.service_prefix()) {
            self.services.remove(name);
        } else if key == keys.serials() {
            // No serials, as a full read finds (the zones keep theirs).
            self.serials = BTreeMap::new();
            changed.serials = true;
        } else if let Some(rest) = key.strip_prefix(&keys.conf()) {
            if let Some((node, chunk)) = parse_bucket(rest, 2) {
                if let Some(n) = self.conf.get_mut(node) {
                    n.remove(&chunk);
                }
                changed.conf = true;
            }
        }
    }

    /// Count the votes of the live members again for `services` (all of
    /// them when the membership changed); returns the verdicts that changed.
    pub fn tally<'a>(
        &mut self,
        services: impl Iterator<Item = &'a Service>,
    ) -> Vec<(String, String, Option<bool>)> {
        let live: Vec<&String> = self.members.keys().collect();
        let mut out = Vec::new();
        for s in services {
            let bucket = votes::bucket_of(&s.name);
            let needed = s.quorum.needed(live.len());
            for t in &s.targets {
                let v: BTreeMap<String, Option<bool>> = live
                    .iter()
                    .map(|n| {
                        let b = self.votes.get(*n).and_then(|b| b.get(&bucket));
                        ((*n).clone(), b.and_then(|b| votes::get(b, &s.name, t)))
                    })
                    .collect();
                let verdict = agree(&v, needed);
                let key = (s.name.clone(), t.clone());
                let view = VerdictView {
                    service: s.name.clone(),
                    target: t.clone(),
                    needed,
                    votes: v,
                    agreed: verdict,
                };
                self.views.insert(key.clone(), view);
                if self.agreed.get(&key) != Some(&verdict) {
                    self.agreed.insert(key, verdict);
                    out.push((s.name.clone(), t.clone(), verdict));
                }
            }
        }
        out
    }
}

/// `NODE/BUCKET` of a vote key (`votes/NODE/0042`, four digits) or
/// `NODE/CHUNK` of a digest key (`conf/NODE/07`, two digits). Only the
/// form ggond writes ([`Keys::vote_bucket`], [`Keys::conf_chunk`]): with
/// `042` or `+42` read as 42 too, two keys would fill one slot, and the
/// watch (the last written wins) and a full read (the last in key order
/// wins) would disagree (found by the `etcd` fuzz target's invariant).
fn parse_bucket(rest: &str, digits: usize) -> Option<(&str, u32)> {
    let (node, bucket) = rest.rsplit_once('/')?;
    let n: u32 = bucket.parse().ok()?;
    (format!("{n:0digits$}") == bucket).then_some((node, n))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn kv(key: &str, value: &str) -> Kv {
        Kv {
            key: key.into(),
            value: value.into(),
            create_revision: 1,
            mod_revision: 1,
            lease: 7,
        }
    }

    /// What the watch builds key by key is what a full read of the same
    /// keys builds, also when a value cannot be read (regression: the
    /// watch kept the value before it; the `etcd` fuzz target's
    /// `seed-garbage` input).
    #[test]
    fn an_unreadable_value_is_no_value_as_in_a_full_read() {
        let keys = Keys {
            prefix: "/g/".into(),
        };
        let member = r#"{"control":"127.0.0.1:1","dns":[],"since":0}"#;
        let b = votes::bucket_of("cic");
        let good = [
            kv(&keys.node("a"), member),
            kv(&keys.vote_bucket("a", b), r#"{"cic":{"primary":false}}"#),
            kv(&keys.service_state("cic"), r#"{"active":"backup"}"#),
            kv(&keys.serials(), r#"{"ggon.org.":4}"#),
        ];
        let mut watched = Model::default();
        let mut ch = Changed::default();
        for g in &good {
            watched.put(&keys, g, &mut ch);
        }
        let garbage: Vec<Kv> = good.iter().map(|g| kv(&g.key, "{not json")).collect();
        for g in &garbage {
            watched.put(&keys, g, &mut ch);
        }
        let mut read = Model::default();
        read.reset(&keys, &garbage);
        assert!(watched.members.is_empty() && read.members.is_empty());
        assert!(watched.votes.values().all(|n| n.is_empty()) && read.votes.is_empty());
        assert!(watched.services.is_empty() && read.services.is_empty());
        assert!(watched.serials.is_empty() && read.serials.is_empty());
        // Only the key form ggond writes names a bucket.
        let other = kv(
            &format!("{}votes/a/{b:05}", keys.prefix),
            r#"{"cic":{"primary":true}}"#,
        );
        watched.put(&keys, &other, &mut ch);
        assert!(
            watched.votes["a"].is_empty(),
            "{} read as a bucket",
            other.key
        );
        // A deleted serials key: no serials, as a full read of nothing.
        watched.put(&keys, &good[3], &mut ch);
        watched.delete(&keys, &keys.serials(), &mut ch);
        assert!(watched.serials.is_empty());
    }

    #[test]
    fn votes_of_live_members_make_the_verdicts() {
        let keys = Keys {
            prefix: "/g/".into(),
        };
        let svc = Service {
            name: "cic".into(),
            targets: vec!["primary".into()],
            quorum: Quorum::Majority,
        };
        let b = votes::bucket_of("cic");
        let member = r#"{"control":"127.0.0.1:1","dns":[],"since":0}"#;
        let mut m = Model::default();
        let mut ch = Changed::default();
        for n in ["a", "b", "c"] {
            m.put(&keys, &kv(&keys.node(n), member), &mut ch);
        }
        let down = r#"{"cic":{"primary":false}}"#;
        m.put(&keys, &kv(&keys.vote_bucket("a", b), down), &mut ch);
        assert!(ch.members && ch.buckets.contains(&b));
        // One of three says down: not agreed (up unknown: no one says up).
        assert_eq!(
            m.tally([&svc].into_iter()),
            vec![("cic".into(), "primary".into(), None)]
        );
        m.put(&keys, &kv(&keys.vote_bucket("b", b), down), &mut ch);
        assert_eq!(
            m.tally([&svc].into_iter()),
            vec![("cic".into(), "primary".into(), Some(false))]
        );
        assert!(
            m.tally([&svc].into_iter()).is_empty(),
            "unchanged: nothing sent"
        );
        // b leaves: its votes no longer count.
        m.delete(&keys, &keys.node("b"), &mut ch);
        assert_eq!(
            m.tally([&svc].into_iter()),
            vec![("cic".into(), "primary".into(), None)]
        );
    }
}
