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

    /// A key was written.
    pub fn put(&mut self, keys: &Keys, kv: &Kv, changed: &mut Changed) {
        let k = kv.key.as_str();
        if let Some(name) = k.strip_prefix(&keys.nodes()) {
            if let Ok(m) = serde_json::from_str::<Member>(&kv.value) {
                self.members.insert(name.to_string(), (m, kv.lease));
                changed.members = true;
            }
        } else if let Some(rest) = k.strip_prefix(&keys.votes()) {
            let Some((node, bucket)) = parse_bucket(rest) else {
                return;
            };
            let Some(b) = votes::decode(&kv.value) else {
                return;
            };
            self.votes
                .entry(node.to_string())
                .or_default()
                .insert(bucket, b);
            changed.buckets.insert(bucket);
        } else if k == keys.leader() {
            self.leader = Some(kv.clone());
            changed.leader = true;
        } else if let Some(name) = k.strip_prefix(&keys.service_prefix()) {
            if let Ok(s) = serde_json::from_str::<ServiceState>(&kv.value) {
                self.services.insert(name.to_string(), s);
                changed.services.insert(name.to_string());
            }
        } else if k == keys.serials() {
            self.serials = serde_json::from_str(&kv.value).unwrap_or_default();
            changed.serials = true;
        } else if let Some(rest) = k.strip_prefix(&keys.zone_prefix()) {
            // Not kept here: the publisher knows which it has applied.
            let (Some((zone, _)), Ok(e)) = (rest.rsplit_once('/'), serde_json::from_str(&kv.value))
            else {
                return;
            };
            changed.zone_entries.push((zone.to_string(), e));
        } else if let Some(rest) = k.strip_prefix(&keys.conf()) {
            let (Some((node, chunk)), Ok(c)) =
                (parse_bucket(rest), serde_json::from_str(&kv.value))
            else {
                return;
            };
            self.conf
                .entry(node.to_string())
                .or_default()
                .insert(chunk, c);
            changed.conf = true;
        }
    }

    /// A key was deleted (or its lease ran out).
    pub fn delete(&mut self, keys: &Keys, key: &str, changed: &mut Changed) {
        if let Some(name) = key.strip_prefix(&keys.nodes()) {
            self.members.remove(name);
            changed.members = true;
        } else if let Some(rest) = key.strip_prefix(&keys.votes()) {
            if let Some((node, bucket)) = parse_bucket(rest) {
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
        } else if let Some(rest) = key.strip_prefix(&keys.conf()) {
            if let Some((node, chunk)) = parse_bucket(rest) {
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

/// `NODE/BUCKET` of a vote key.
fn parse_bucket(rest: &str) -> Option<(&str, u32)> {
    let (node, bucket) = rest.rsplit_once('/')?;
    Some((node, bucket.parse().ok()?))
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
