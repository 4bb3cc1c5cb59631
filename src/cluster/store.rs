//! The leader's fenced write of the shared state.
//!
//! Fencing: the write is one etcd transaction that holds only if the leader
//! key still exists with the create revision this node won it at and names
//! this node. A leader whose lease expired (partitioned, paused, killed and
//! restarted) lost that key, so its late write fails and the controller
//! refuses (an operator command) or logs (a health decision); the node then
//! follows the new leader's state.
//!
//! Compare-and-swap: the write also holds only if the state key is still at
//! the revision this leader last wrote (or read). The etcd client tries the
//! next member when one does not answer, and the request it gave up on may
//! still be applied later (a paused member resumes and passes it on): found
//! by the nemesis test, such a late write of an older state rolled the
//! shared state back under the same leader. With the compare it fails.

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
    /// (fence, the state key's mod revision) of this leader's last write or read.
    pub(super) base: Mutex<Option<(i64, i64)>>,
    pub(super) history: mpsc::UnboundedSender<Event>,
    pub(super) rt: tokio::runtime::Handle,
}

impl Store {
    async fn current(&self, key: &str) -> Result<Option<super::etcd::Kv>, String> {
        self.etcd.get(key).await.map_err(|e| e.to_string())
    }

    fn fenced(&self) -> Result<Vec<Compare>, String> {
        let fence = self
            .fence
            .lock()
            .unwrap()
            .ok_or_else(|| "this node does not hold the leadership".to_string())?;
        Ok(self.keys.fenced(fence, &self.node))
    }
}

impl SharedState for Store {
    fn save(&self, state: &PersistedState) -> Result<(), String> {
        let mut compare = self.fenced()?;
        let fence = self.fence.lock().unwrap().unwrap_or(0);
        let value = serde_json::to_string(state).map_err(|e| e.to_string())?;
        let key = self.keys.state();
        // The controller is synchronous; it runs on a multi-threaded
        // runtime, so it may block this worker for the etcd calls.
        let block = |f| tokio::task::block_in_place(|| self.rt.block_on(f));
        let known = *self.base.lock().unwrap();
        let base = match known {
            Some((f, rev)) if f == fence => rev,
            _ => block(Box::pin(self.current(&key)))?
                .map_or(0, |kv: super::etcd::Kv| kv.mod_revision),
        };
        compare.push(Compare::ModRevision(key.clone(), base));
        let put = [Op::Put {
            key: key.clone(),
            value: value.clone(),
            lease: 0,
        }];
        let done = tokio::task::block_in_place(|| {
            self.rt.block_on(self.etcd.txn_revision(&compare, &put))
        })
        .map_err(|e| e.to_string())?;
        if let Some(rev) = done {
            *self.base.lock().unwrap() = Some((fence, rev));
            return Ok(());
        }
        // Refused: this very write may have landed already (a request the
        // client retried elsewhere), or the leadership is gone.
        let now = block(Box::pin(self.current(&key)))?;
        match now {
            Some(kv) if kv.value == value => {
                *self.base.lock().unwrap() = Some((fence, kv.mod_revision));
                Ok(())
            }
            _ => {
                *self.base.lock().unwrap() = None;
                *self.fence.lock().unwrap() = None;
                Err("leadership lost or the shared state changed under this leader: the fenced write was refused".into())
            }
        }
    }

    fn record(&self, e: &Event) {
        let _ = self.history.send(e.clone());
    }
}
