//! Cluster: several ggond nodes that agree through etcd.
//!
//! Why etcd: agreement under failures is a solved problem, and etcd is the
//! proven store for it (Raft, leases, transactions, watches). ggon uses it,
//! and never a protocol of its own. See docs/cluster.md for the design, the
//! key layout and the failure table.
//!
//! Owns: this node's etcd session ([`node`]): its lease, kept alive on a
//! task of its own ([`lease`]); its membership key; its votes (its own
//! verdicts, packed into buckets bound to its lease, so a dead node's votes
//! vanish: [`votes`], written by [`writes`]); what the watch tells it
//! ([`model`]); the election ([`election`]: one leader, by a lease-bound key); the
//! agreed verdicts ([`verdict`], the quorum rule) handed to the controller;
//! the shared state (one key per service, and the zones' serials) applied
//! on followers, each of which then records in `applied/NODE` which
//! revision it answers, so the leader can wait for all of them before it
//! reports an operator's change as done; the shared history; and keeping
//! etcd small ([`housekeeping`]: compaction, history retention, alarms);
//! each node's digests of what must be the same on every node and what
//! differs from the leader's ([`digest`], [`agree`]).
//! Everything is learnt by one watch of ggon's prefix that resumes from the
//! last revision seen; a full read happens only at start and when that
//! revision was compacted away. [`store`] is the leader's fenced write of
//! the changed services, which the controller calls through
//! [`crate::decide::SharedState`]: a deposed leader's write fails.
//!
//! Hands on: commands to the controller ([`crate::decide::Command`]) and a
//! [`ClusterHandle`] to the control API (who leads, the history). It must
//! not decide anything itself (the controller does, on the leader) or touch
//! zone data or sockets.

mod agree;
pub mod digest;
mod election;
pub mod etcd;
mod housekeeping;
mod lease;
#[doc(hidden)]
pub mod model;
mod node;
mod store;
pub mod verdict;
pub mod votes;
mod writes;

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::decide::state::{PersistedState, ServiceState};
use crate::decide::views::{ClusterView, EtcdView};
use crate::decide::Event;
pub use node::{spawn, NodeInfo, Prepared, VoteSink};
#[doc(hidden)]
pub use store::leader_read;
pub use store::Store;

/// Where ggon's keys live under the configured prefix.
#[derive(Debug, Clone)]
pub struct Keys {
    pub prefix: String,
}

impl Keys {
    pub fn nodes(&self) -> String {
        format!("{}nodes/", self.prefix)
    }
    pub fn node(&self, node: &str) -> String {
        format!("{}nodes/{node}", self.prefix)
    }
    pub fn votes(&self) -> String {
        format!("{}votes/", self.prefix)
    }
    /// `votes/NODE/BUCKET`: a node's verdicts on the services of a bucket.
    pub fn vote_bucket(&self, node: &str, bucket: u32) -> String {
        format!("{}votes/{node}/{bucket:04}", self.prefix)
    }
    pub fn leader(&self) -> String {
        format!("{}leader", self.prefix)
    }
    /// `state/`: the shared state, one key per service and the serials.
    pub fn state(&self) -> String {
        format!("{}state/", self.prefix)
    }
    pub fn service_state(&self, service: &str) -> String {
        format!("{}state/svc/{service}", self.prefix)
    }
    pub fn service_prefix(&self) -> String {
        format!("{}state/svc/", self.prefix)
    }
    /// The zones' UPDATE journals: `state/zone/ZONE/SEQ` (20 digits, so
    /// etcd's key order is the journal's order).
    pub fn zone_prefix(&self) -> String {
        format!("{}state/zone/", self.prefix)
    }
    pub fn zone_entry(&self, zone: &str, seq: u64) -> String {
        format!("{}state/zone/{zone}/{seq:020}", self.prefix)
    }
    /// `state/dnssec/ZONE`: a signed zone's key set, roll and clocks.
    pub fn keyset_prefix(&self) -> String {
        format!("{}state/dnssec/", self.prefix)
    }
    pub fn keyset(&self, zone: &str) -> String {
        format!("{}state/dnssec/{zone}", self.prefix)
    }
    pub fn serials(&self) -> String {
        format!("{}state/serials", self.prefix)
    }
    pub fn history(&self) -> String {
        format!("{}history/", self.prefix)
    }
    /// `applied/NODE`: the revision of the shared state NODE serves.
    pub fn applied(&self) -> String {
        format!("{}applied/", self.prefix)
    }
    pub fn applied_by(&self, node: &str) -> String {
        format!("{}applied/{node}", self.prefix)
    }
    /// `conf/`: each node's digests of what must be the same everywhere.
    pub fn conf(&self) -> String {
        format!("{}conf/", self.prefix)
    }
    /// `conf/NODE/CHUNK` (bound to the node's lease).
    pub fn conf_chunk(&self, node: &str, chunk: u32) -> String {
        format!("{}conf/{node}/{chunk:02}", self.prefix)
    }

    /// The fence of every leader write: the leader key still has the create
    /// revision `node` won it at, and still names `node`.
    pub fn fenced(&self, fence: i64, node: &str) -> Vec<etcd::Compare> {
        vec![
            etcd::Compare::CreateRevision(self.leader(), fence),
            etcd::Compare::Value(self.leader(), node.to_string()),
        ]
    }

    /// The members (names of the nodes holding a `nodes/NODE` key, bound to
    /// their leases), from the keys under [`Self::nodes`].
    pub fn member_names(&self, kvs: &[etcd::Kv]) -> Vec<String> {
        let nodes = self.nodes();
        kvs.iter()
            .filter_map(|kv| Some(kv.key.strip_prefix(&nodes)?.to_string()))
            .collect()
    }

    /// The revision each node serves, from the keys under [`Self::applied`]
    /// (a value that is not a number is left out: that node is behind).
    pub fn applied_revisions(&self, kvs: &[etcd::Kv]) -> BTreeMap<String, i64> {
        let applied = self.applied();
        kvs.iter()
            .filter_map(|kv| {
                let node = kv.key.strip_prefix(&applied)?.to_string();
                Some((node, kv.value.parse().ok()?))
            })
            .collect()
    }

    /// The shared state from the keys under [`Self::state`].
    pub fn parse_state(&self, kvs: &[etcd::Kv]) -> PersistedState {
        let mut out = PersistedState::default();
        let svc = self.service_prefix();
        for kv in kvs {
            if let Some(name) = kv.key.strip_prefix(&svc) {
                if let Ok(s) = serde_json::from_str::<ServiceState>(&kv.value) {
                    out.services.insert(name.to_string(), s);
                }
            } else if kv.key == self.serials() {
                out.serials = serde_json::from_str(&kv.value).unwrap_or_default();
            }
        }
        out
    }
}

/// How the cluster session is doing, for `/metrics` and `status`.
#[derive(Debug, Default)]
pub struct ClusterStats {
    /// Times this node saw the leader change.
    pub leader_changes: AtomicU64,
    /// Times this node lost its lease (etcd away for longer than the lease
    /// TTL): a counter, so that an outage shorter than the scrape interval
    /// still shows.
    pub leases_lost: AtomicU64,
    /// Vote buckets changed and not yet written.
    pub votes_pending: AtomicU64,
    /// The newest revision etcd reported, and the newest this node's watch
    /// has delivered: the difference is how far behind it is.
    pub etcd_revision: AtomicI64,
    pub watch_revision: AtomicI64,
    /// Bytes the last shared-state write put (the services it changed).
    pub last_change_bytes: AtomicU64,
    /// etcd's database size (bytes) as last seen, and its quota if known.
    pub db_size: AtomicI64,
    pub db_quota: AtomicI64,
    /// An alarm is raised on etcd (NOSPACE: every write is refused).
    pub nospace: std::sync::atomic::AtomicBool,
}

impl ClusterStats {
    /// etcd's health and this node's use of it, for status and `/metrics`.
    pub fn view(&self, etcd: &etcd::EtcdStats) -> EtcdView {
        let r = |a: &AtomicU64| a.load(Ordering::Relaxed);
        EtcdView {
            db_size: self.db_size.load(Ordering::Relaxed),
            db_quota: self.db_quota.load(Ordering::Relaxed),
            nospace: self.nospace.load(Ordering::Relaxed),
            revision: self.etcd_revision.load(Ordering::Relaxed),
            watch_revision: self.watch_revision.load(Ordering::Relaxed),
            requests: r(&etcd.requests),
            failures: r(&etcd.failures),
            latency_us: r(&etcd.latency_us),
            slow: r(&etcd.slow),
            bytes_written: r(&etcd.bytes_written),
            largest_request: r(&etcd.largest_request),
            last_change_bytes: r(&self.last_change_bytes),
            votes_pending: r(&self.votes_pending),
            leader_changes: r(&self.leader_changes),
            leases_lost: r(&self.leases_lost),
        }
    }
}

/// What the control API needs from the cluster.
#[derive(Clone)]
pub struct ClusterHandle {
    pub view: Arc<Mutex<ClusterView>>,
    pub etcd: Arc<etcd::Etcd>,
    pub keys: Keys,
    /// How long the leader waits for the other nodes to confirm a change
    /// (the lease TTL: a node silent for longer has lost its lease).
    pub confirm_within: Duration,
    /// The revision of the leader's last write of the shared state.
    pub last_write: Arc<AtomicI64>,
    pub stats: Arc<ClusterStats>,
}

impl ClusterHandle {
    pub fn is_leader(&self) -> bool {
        self.view.lock().unwrap().role == crate::decide::Role::Leader
    }

    /// The leader's control API as a base URL (`https://` when it serves
    /// TLS), if a leader is known.
    pub fn leader_control(&self) -> Option<String> {
        let v = self.view.lock().unwrap();
        let leader = v.leader.as_ref()?;
        if leader == &v.node {
            // A key of this node's from before an outage, not yet expired:
            // no leader to pass a change to until the election is over.
            return None;
        }
        let m = v.members.iter().find(|m| &m.node == leader)?;
        let scheme = if m.control_tls { "https" } else { "http" };
        m.control.as_ref().map(|c| format!("{scheme}://{c}"))
    }

    /// The shared state as etcd holds it now (at start, before the first
    /// query: answer what the cluster agreed, not this node's last copy).
    pub async fn read_state(&self) -> Result<Option<PersistedState>, etcd::EtcdError> {
        let (kvs, _) = self.etcd.get_prefix(&self.keys.state()).await?;
        Ok((!kvs.is_empty()).then(|| self.keys.parse_state(&kvs)))
    }

    /// After the leader made a change: wait until every other member serves
    /// the shared state as it is now (its `applied/` key has reached the
    /// revision of the leader's last write), for at most
    /// [`Self::confirm_within`]. Returns the members that did not confirm:
    /// they may still answer the state before the change. The operator is
    /// told, so that "done" means every node answers it, not only the leader.
    pub async fn wait_applied(&self) -> Result<Vec<String>, etcd::EtcdError> {
        let target = self.last_write.load(Ordering::Acquire);
        if target == 0 {
            return Ok(Vec::new());
        }
        // The members as etcd holds them now, after the write: not this
        // node's view of them, which is refreshed on its tick and would
        // leave out a node that joined in the last half second.
        let me = self.view.lock().unwrap().node.clone();
        let (kvs, _) = self.etcd.get_prefix(&self.keys.nodes()).await?;
        let members = self.keys.member_names(&kvs);
        let deadline = Instant::now() + self.confirm_within;
        loop {
            let (kvs, _) = self.etcd.get_prefix(&self.keys.applied()).await?;
            let revs = self.keys.applied_revisions(&kvs);
            let behind = behind(&members, &me, &revs, target);
            if behind.is_empty() || Instant::now() >= deadline {
                return Ok(behind);
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// The shared history, oldest first, filtered like the local one.
    pub async fn history(
        &self,
        service: Option<&str>,
        since: Option<u64>,
        limit: usize,
    ) -> Result<Vec<Event>, etcd::EtcdError> {
        let (kvs, _) = self.etcd.get_prefix(&self.keys.history()).await?;
        Ok(history_entries(&kvs, service, since, limit))
    }
}

/// The members other than `me` whose applied revision has not reached
/// `target` (or who have none).
fn behind(members: &[String], me: &str, revs: &BTreeMap<String, i64>, target: i64) -> Vec<String> {
    members
        .iter()
        .filter(|n| *n != me && revs.get(*n).is_none_or(|r| *r < target))
        .cloned()
        .collect()
}

/// The entries of the shared history's keys (unreadable ones left out),
/// filtered like the local history, the newest `limit`. Public (hidden)
/// for the `etcd` fuzz target.
#[doc(hidden)]
pub fn history_entries(
    kvs: &[etcd::Kv],
    service: Option<&str>,
    since: Option<u64>,
    limit: usize,
) -> Vec<Event> {
    let mut out: Vec<Event> = kvs
        .iter()
        .filter_map(|kv| serde_json::from_str::<Event>(&kv.value).ok())
        .filter(|e| service.is_none_or(|s| e.service.as_deref() == Some(s)))
        .filter(|e| since.is_none_or(|t| e.time >= t))
        .collect();
    if out.len() > limit {
        out.drain(..out.len() - limit);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn kv(key: &str, value: &str) -> etcd::Kv {
        etcd::Kv {
            key: key.into(),
            value: value.into(),
            create_revision: 1,
            mod_revision: 1,
            lease: 0,
        }
    }

    #[test]
    fn the_leader_waits_for_every_member_in_etcd_but_itself() {
        let keys = Keys {
            prefix: "/ggon/".into(),
        };
        // node3 joined a moment ago: it is in etcd (the leader's view of the
        // members, refreshed on its tick, may not list it yet) and has not
        // applied the write at revision 40.
        let nodes = [
            kv("/ggon/nodes/node1", "{}"),
            kv("/ggon/nodes/node2", "{}"),
            kv("/ggon/nodes/node3", "{}"),
        ];
        let members = keys.member_names(&nodes);
        assert_eq!(members, ["node1", "node2", "node3"]);
        let applied = [
            kv("/ggon/applied/node2", "40"),
            kv("/ggon/applied/node4", "12"),
        ];
        let revs = keys.applied_revisions(&applied);
        assert_eq!(behind(&members, "node1", &revs, 40), ["node3"]);
        // Applied past the write: nobody behind; a member that left (node4,
        // its key gone with its lease) is not waited for.
        let applied = [
            kv("/ggon/applied/node2", "41"),
            kv("/ggon/applied/node3", "40"),
        ];
        let revs = keys.applied_revisions(&applied);
        assert!(behind(&members, "node1", &revs, 40).is_empty());
    }
}
