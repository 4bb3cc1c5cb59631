//! The leader's fenced write of the shared state.
//!
//! Fencing: the write is one etcd transaction that holds only if the leader
//! key still exists with the create revision this node won it at and names
//! this node. A leader whose lease expired (partitioned, paused, killed and
//! restarted) lost that key, so its late write fails and the controller
//! refuses (an operator command) or logs (a health decision); the node then
//! follows the new leader's state.

use std::sync::{Arc, Mutex};

use tokio::sync::mpsc;

use super::etcd::{Compare, Etcd, Op};
use super::Keys;
use crate::decide::state::PersistedState;
use crate::decide::{Event, SharedState};

pub struct Store {
    pub(super) etcd: Arc<Etcd>,
    pub(super) keys: Keys,
    pub(super) node: String,
    /// The leader key's create revision while this node leads.
    pub(super) fence: Arc<Mutex<Option<i64>>>,
    pub(super) history: mpsc::UnboundedSender<Event>,
    pub(super) rt: tokio::runtime::Handle,
}

impl Store {
    fn fenced(&self) -> Result<Vec<Compare>, String> {
        let fence = self
            .fence
            .lock()
            .unwrap()
            .ok_or_else(|| "this node does not hold the leadership".to_string())?;
        Ok(vec![
            Compare::CreateRevision(self.keys.leader(), fence),
            Compare::Value(self.keys.leader(), self.node.clone()),
        ])
    }
}

impl SharedState for Store {
    fn save(&self, state: &PersistedState) -> Result<(), String> {
        let compare = self.fenced()?;
        let value = serde_json::to_string(state).map_err(|e| e.to_string())?;
        let put = [Op::Put {
            key: self.keys.state(),
            value,
            lease: 0,
        }];
        // The controller is synchronous; it runs on a multi-threaded
        // runtime, so it may block this worker for the write.
        let done =
            tokio::task::block_in_place(|| self.rt.block_on(self.etcd.txn(&compare, &put, &[])))
                .map_err(|e| e.to_string())?;
        if done {
            Ok(())
        } else {
            *self.fence.lock().unwrap() = None;
            Err("leadership lost: the fenced write was refused".into())
        }
    }

    fn record(&self, e: &Event) {
        let _ = self.history.send(e.clone());
    }
}
