//! Cluster: several ggond nodes that agree through etcd.
//!
//! Why etcd: agreement under failures is a solved problem, and etcd is the
//! proven store for it (Raft, leases, transactions). ggon uses it, and never
//! a protocol of its own. See docs/cluster.md for the design and the failure
//! table.
//!
//! Owns: this node's etcd session ([`node`]): its lease, its membership key,
//! its votes (its own verdict on every target, attached to its lease, so a
//! dead node's votes vanish), the election (one leader, by a lease-bound
//! key), the agreed verdicts ([`verdict`], the quorum rule) handed to the
//! controller, the shared state (active targets, pins, drains, serials)
//! applied on followers (each then records in `applied/NODE` which state
//! it answers, so the leader can wait for all of them before it reports an
//! operator's change as done), and the shared history. [`store`] is the leader's
//! fenced write of that state, which the controller calls through
//! [`crate::decide::SharedState`]: a deposed leader's write fails.
//!
//! Hands on: commands to the controller ([`crate::decide::Command`]) and a
//! [`ClusterHandle`] to the control API (who leads, the history). It must
//! not decide anything itself (the controller does, on the leader) or touch
//! zone data or sockets.

pub mod etcd;
mod node;
mod store;
pub mod verdict;

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::decide::views::ClusterView;
use crate::decide::Event;
pub use node::{spawn, NodeInfo, Prepared, VoteSink};
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
        format!("{}obs/", self.prefix)
    }
    pub fn vote(&self, service: &str, target: &str, node: &str) -> String {
        format!("{}obs/{service}/{target}/{node}", self.prefix)
    }
    pub fn leader(&self) -> String {
        format!("{}leader", self.prefix)
    }
    pub fn state(&self) -> String {
        format!("{}state", self.prefix)
    }
    pub fn history(&self) -> String {
        format!("{}history/", self.prefix)
    }
    /// `applied/NODE`: the mod revision of `state` that NODE serves.
    pub fn applied(&self) -> String {
        format!("{}applied/", self.prefix)
    }
    pub fn applied_by(&self, node: &str) -> String {
        format!("{}applied/{node}", self.prefix)
    }

    /// The fence of every leader write: the leader key still has the create
    /// revision `node` won it at, and still names `node`.
    pub fn fenced(&self, fence: i64, node: &str) -> Vec<etcd::Compare> {
        vec![
            etcd::Compare::CreateRevision(self.leader(), fence),
            etcd::Compare::Value(self.leader(), node.to_string()),
        ]
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
}

impl ClusterHandle {
    pub fn is_leader(&self) -> bool {
        self.view.lock().unwrap().role == "leader"
    }

    /// The leader's control API address, if a leader is known.
    pub fn leader_control(&self) -> Option<String> {
        let v = self.view.lock().unwrap();
        let leader = v.leader.as_ref()?;
        if leader == &v.node {
            // A key of this node's from before an outage, not yet expired:
            // no leader to pass a change to until the election is over.
            return None;
        }
        v.members
            .iter()
            .find(|m| &m.node == leader)
            .and_then(|m| m.control.clone())
    }

    /// After the leader made a change: wait until every other member serves
    /// the shared state as it is now (its `applied/` key has reached the
    /// `state` key's revision), for at most [`Self::confirm_within`].
    /// Returns the members that did not confirm: they may still answer the
    /// state before the change. The operator is told, so that "done" means
    /// every node answers it, not only the leader.
    pub async fn wait_applied(&self) -> Result<Vec<String>, etcd::EtcdError> {
        let Some(state) = self.etcd.get(&self.keys.state()).await? else {
            return Ok(Vec::new());
        };
        let me = self.view.lock().unwrap().node.clone();
        let nodes = self.keys.nodes();
        let others: Vec<String> = self
            .etcd
            .get_prefix(&nodes)
            .await?
            .into_iter()
            .filter_map(|kv| kv.key.strip_prefix(&nodes).map(str::to_string))
            .filter(|n| *n != me)
            .collect();
        let deadline = Instant::now() + self.confirm_within;
        let applied = self.keys.applied();
        loop {
            let revs: BTreeMap<String, i64> = self
                .etcd
                .get_prefix(&applied)
                .await?
                .into_iter()
                .filter_map(|kv| {
                    let node = kv.key.strip_prefix(&applied)?.to_string();
                    Some((node, kv.value.parse().ok()?))
                })
                .collect();
            let behind: Vec<String> = others
                .iter()
                .filter(|n| revs.get(*n).is_none_or(|r| *r < state.mod_revision))
                .cloned()
                .collect();
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
        let kvs = self.etcd.get_prefix(&self.keys.history()).await?;
        let mut out: Vec<Event> = kvs
            .iter()
            .filter_map(|kv| serde_json::from_str::<Event>(&kv.value).ok())
            .filter(|e| service.is_none_or(|s| e.service.as_deref() == Some(s)))
            .filter(|e| since.is_none_or(|t| e.time >= t))
            .collect();
        if out.len() > limit {
            out.drain(..out.len() - limit);
        }
        Ok(out)
    }
}
