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
//! applied on followers, and the shared history. [`store`] is the leader's
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

use std::sync::{Arc, Mutex};

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
