//! The leader's fenced write of the shared state: only what changed.
//!
//! Layout: one key per service (`state/svc/NAME`, its active targets, pins,
//! drains and drills of every region) and one for the zones' serials
//! (`state/serials`). A remap writes its service's key and the serials, a
//! few hundred bytes whatever the number of services; the controller hands
//! over the whole state and this store writes the keys whose value differs
//! from what it last wrote (or read, when it became leader).
//!
//! Fencing: the write is one etcd transaction that holds only if the leader
//! key still exists with the create revision this node won it at and names
//! this node. A leader whose lease expired (partitioned, paused, killed and
//! restarted) lost that key, so its late write fails and the controller
//! refuses (an operator command) or logs (a health decision); the node then
//! follows the new leader's state.
//!
//! Compare-and-swap: each key written must still be at the revision this
//! leader last wrote or read. The etcd client may give up on a member that
//! does not answer and the request may still be applied later (a paused
//! member resumes and passes it on): such a late write of an older state
//! would roll a service back under the same leader. With the compare it
//! fails.
//!
//! etcd takes at most 128 operations in one transaction (its default
//! `--max-txn-ops`): a change of more services is written in several
//! transactions, each fenced; if one of them is refused the ones before it
//! stay written, the controller refuses the change and the next write
//! starts again from what etcd holds.

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicBool, AtomicI64, Ordering};
use std::sync::{Arc, Mutex};

use tokio::sync::mpsc;

use super::etcd::{Compare, Etcd, EtcdError, Kv, Op};
use super::{ClusterStats, Keys};
use crate::decide::state::{PersistedState, ServiceState};
use crate::decide::{Event, SharedError, SharedState};
use crate::publish::JournalEntry;
use crate::sign::SharedKeySet;

/// Keys per transaction (etcd's limit is 128 operations and 128 compares;
/// the fence takes two compares).
const PER_TXN: usize = 120;

pub struct Store {
    pub(super) etcd: Arc<Etcd>,
    pub(super) keys: Keys,
    pub(super) node: String,
    /// The leader key's create revision while this node leads.
    pub(super) fence: Arc<Mutex<Option<i64>>>,
    /// Set when what this node answers may not be etcd's state (a write
    /// with an unknown outcome, a refused one, a decision withdrawn): the
    /// node takes etcd's whole state again before it decides anything
    /// (`Node::abdicate`).
    pub(super) resync: Arc<AtomicBool>,
    /// What this leader last wrote or read, for its current fence.
    pub(super) written: Mutex<Option<Written>>,
    pub(super) history: mpsc::UnboundedSender<Event>,
    pub(super) rt: tokio::runtime::Handle,
    pub(super) last_write: Arc<AtomicI64>,
    pub(super) stats: Arc<ClusterStats>,
}

/// The shared state as etcd holds it, with each key's revision.
pub(super) struct Written {
    fence: i64,
    services: HashMap<String, (ServiceState, i64)>,
    serials: Serials,
}

/// Each service's state with its key's revision, and the serials with
/// theirs, from the keys under `state/`: what a new leader starts from.
/// Public (hidden) for the `etcd` fuzz target.
#[doc(hidden)]
pub fn leader_read(keys: &Keys, kvs: &[Kv]) -> (HashMap<String, (ServiceState, i64)>, Serials) {
    let svc = keys.service_prefix();
    let mut services = HashMap::new();
    let mut serials = (BTreeMap::new(), 0);
    for kv in kvs {
        if let Some(name) = kv.key.strip_prefix(&svc) {
            if let Ok(s) = serde_json::from_str(&kv.value) {
                services.insert(name.to_string(), (s, kv.mod_revision));
            }
        } else if kv.key == keys.serials() {
            serials = (
                serde_json::from_str(&kv.value).unwrap_or_default(),
                kv.mod_revision,
            );
        }
    }
    (services, serials)
}

/// The zones' serials and the revision of their key.
#[doc(hidden)]
pub type Serials = (BTreeMap<String, u32>, i64);

impl From<EtcdError> for SharedError {
    fn from(e: EtcdError) -> SharedError {
        if e.is_nospace() {
            return SharedError::NoSpace;
        }
        SharedError::Store(e.to_string())
    }
}

/// Why a state transaction gave no revision, and whether the writer must
/// forget what it last wrote (see [`Store::settle`]).
struct Unsettled {
    forget: bool,
    error: SharedError,
}

impl Unsettled {
    fn forget_in(self, written: &mut Option<Written>) -> SharedError {
        if self.forget {
            *written = None;
        }
        self.error
    }
}

impl Store {
    fn block<T>(&self, f: impl std::future::Future<Output = T>) -> T {
        // The controller is synchronous; it may block its thread for the
        // etcd calls.
        tokio::task::block_in_place(|| self.rt.block_on(f))
    }

    /// What etcd holds now, as this leader's starting point.
    async fn read(&self, fence: i64) -> Result<Written, EtcdError> {
        let (kvs, _) = self.etcd.get_prefix(&self.keys.state()).await?;
        let (services, serials) = leader_read(&self.keys, &kvs);
        Ok(Written {
            fence,
            services,
            serials,
        })
    }

    /// The puts and deletes that turn `w` into `state`, each with the
    /// revision its key must still have.
    fn changes(&self, w: &Written, state: &PersistedState) -> Vec<(Op, i64)> {
        let mut out = Vec::new();
        for (name, s) in &state.services {
            let known = w.services.get(name);
            if known.map(|k| &k.0) != Some(s) {
                let put = Op::Put {
                    key: self.keys.service_state(name),
                    value: serde_json::to_string(s).expect("plain data"),
                    lease: 0,
                };
                out.push((put, known.map_or(0, |k| k.1)));
            }
        }
        for (name, (_, rev)) in &w.services {
            if !state.services.contains_key(name) {
                out.push((Op::Delete(self.keys.service_state(name)), *rev));
            }
        }
        if w.serials.0 != state.serials || w.serials.1 == 0 {
            let put = Op::Put {
                key: self.keys.serials(),
                value: serde_json::to_string(&state.serials).expect("plain data"),
                lease: 0,
            };
            out.push((put, w.serials.1));
        }
        out
    }

    fn write(&self, state: &PersistedState) -> Result<(), SharedError> {
        let fence = self.fence.lock().unwrap().ok_or(SharedError::NotLeader)?;
        let mut guard = self.written.lock().unwrap();
        if guard.as_ref().is_none_or(|w| w.fence != fence) {
            *guard = Some(self.block(self.read(fence))?);
        }
        let w = guard.as_mut().expect("read");
        // Never a serial below etcd's: this leader's state is behind etcd's
        // (a write of its own whose outcome was unknown landed after all,
        // and its watch has not brought it yet). It stops and follows.
        let behind = state
            .serials
            .iter()
            .any(|(zone, s)| w.serials.0.get(zone).is_some_and(|e| s < e));
        if behind {
            *guard = None;
            self.give_up();
            return Err(SharedError::Fenced);
        }
        let changes = self.changes(w, state);
        let mut bytes = 0;
        for chunk in changes.chunks(PER_TXN) {
            let mut compare = self.keys.fenced(fence, &self.node);
            let mut ops = Vec::with_capacity(chunk.len());
            for (op, rev) in chunk {
                let key = match op {
                    Op::Put { key, value, .. } => {
                        bytes += key.len() + value.len();
                        key
                    }
                    Op::Delete(key) | Op::DeleteRange(key, _) => key,
                };
                compare.push(Compare::ModRevision(key.clone(), *rev));
                ops.push(op.clone());
            }
            // Refused (another leader, or the state moved under this one):
            // what this leader last wrote is no longer etcd's state, so it
            // stops writing and gives the leadership up (`Node::abdicate`).
            let rev = match self.settle(self.transact(&compare, &ops), true) {
                Ok(rev) => rev,
                Err(u) => return Err(u.forget_in(&mut guard)),
            };
            for op in &ops {
                match op {
                    Op::Put { key, value, .. } if *key == self.keys.serials() => {
                        w.serials = (serde_json::from_str(value).unwrap_or_default(), rev);
                    }
                    Op::Put { key, value, .. } => {
                        let name = key.strip_prefix(&self.keys.service_prefix()).unwrap_or(key);
                        let s = serde_json::from_str(value).expect("written by us");
                        w.services.insert(name.to_string(), (s, rev));
                    }
                    Op::Delete(key) | Op::DeleteRange(key, _) => {
                        let name = key.strip_prefix(&self.keys.service_prefix()).unwrap_or(key);
                        w.services.remove(name);
                    }
                }
            }
            self.last_write.store(rev, Ordering::Release);
        }
        if bytes > 0 {
            self.stats
                .last_change_bytes
                .store(bytes as u64, Ordering::Relaxed);
        }
        Ok(())
    }

    /// One UPDATE into its zone's journal, with the zone's new serial, in
    /// one fenced transaction: the entry's key must not exist yet (its
    /// position is taken once), the serials key must be as this leader
    /// last saw it.
    fn append(&self, zone: &str, entry: &JournalEntry) -> Result<(), SharedError> {
        let fence = self.fence.lock().unwrap().ok_or(SharedError::NotLeader)?;
        let mut guard = self.written.lock().unwrap();
        if guard.as_ref().is_none_or(|w| w.fence != fence) {
            *guard = Some(self.block(self.read(fence))?);
        }
        let w = guard.as_mut().expect("read");
        let mut serials = w.serials.0.clone();
        if let Some(serial) = entry.serial {
            serials.insert(zone.to_string(), serial);
        }
        let key = self.keys.zone_entry(zone, entry.seq.unwrap_or(0));
        let ops = vec![
            Op::Put {
                key: key.clone(),
                value: serde_json::to_string(entry).expect("plain data"),
                lease: 0,
            },
            Op::Put {
                key: self.keys.serials(),
                value: serde_json::to_string(&serials).expect("plain data"),
                lease: 0,
            },
        ];
        let mut compare = self.keys.fenced(fence, &self.node);
        compare.push(Compare::ModRevision(key, 0));
        compare.push(Compare::ModRevision(self.keys.serials(), w.serials.1));
        // Another leader's entry at that position, or the leadership is
        // gone: start again from what etcd holds (the fence stays: the
        // position may simply have been taken).
        let rev = match self.settle(self.transact(&compare, &ops), false) {
            Ok(rev) => rev,
            Err(u) => return Err(u.forget_in(&mut guard)),
        };
        w.serials = (serials, rev);
        self.last_write.store(rev, Ordering::Release);
        Ok(())
    }

    /// A zone's key set, fenced, if the key is still at `prev`.
    fn keyset(&self, zone: &str, set: &SharedKeySet, prev: i64) -> Result<i64, SharedError> {
        let fence = self.fence.lock().unwrap().ok_or(SharedError::NotLeader)?;
        let key = self.keys.keyset(zone);
        let ops = vec![Op::Put {
            key: key.clone(),
            value: serde_json::to_string(set).expect("plain data"),
            lease: 0,
        }];
        let mut compare = self.keys.fenced(fence, &self.node);
        compare.push(Compare::ModRevision(key, prev));
        let rev = self.transact(&compare, &ops)?.ok_or(SharedError::Fenced)?;
        self.last_write.store(rev, Ordering::Release);
        Ok(rev)
    }

    /// Stop writing and have the node take etcd's whole state again.
    fn give_up(&self) {
        *self.fence.lock().unwrap() = None;
        self.resync.store(true, Ordering::SeqCst);
    }

    /// One fenced transaction; the revision it landed at, or None if etcd
    /// refused it. Refused may still mean written: the client may have
    /// retried this very request on another member after the first took
    /// it, so a refusal is checked against what etcd holds.
    /// A state transaction's result as the caller acts on it. Refused
    /// (None), or an unknown outcome (an etcd call that failed after it was
    /// sent may still be applied, later): what this leader last wrote is no
    /// longer known to be etcd's state, so the caller forgets it. An
    /// unknown outcome also gives up the fence, and so does a refusal when
    /// `refused_ends_fence`: the leader stops writing and follows etcd's
    /// state again (`Node::abdicate`).
    fn settle(
        &self,
        result: Result<Option<i64>, EtcdError>,
        refused_ends_fence: bool,
    ) -> Result<i64, Unsettled> {
        let (ends_fence, error) = match result {
            Ok(Some(rev)) => return Ok(rev),
            Ok(None) => (refused_ends_fence, SharedError::Fenced),
            Err(e) if e.outcome_unknown() => (true, SharedError::Unknown(e.to_string())),
            Err(e) => {
                return Err(Unsettled {
                    forget: false,
                    error: e.into(),
                })
            }
        };
        if ends_fence {
            self.give_up();
        }
        Err(Unsettled {
            forget: true,
            error,
        })
    }

    fn transact(&self, compare: &[Compare], ops: &[Op]) -> Result<Option<i64>, EtcdError> {
        match self.block(self.etcd.txn(compare, ops, &[]))? {
            Some(rev) => Ok(Some(rev)),
            None => self.block(self.landed(ops)),
        }
    }

    /// Whether every put of `ops` is in etcd as written (then: the
    /// revision it landed at).
    async fn landed(&self, ops: &[Op]) -> Result<Option<i64>, EtcdError> {
        let mut at = 0;
        for op in ops {
            let Op::Put { key, value, .. } = op else {
                continue;
            };
            match self.etcd.get(key).await? {
                Some(kv) if kv.value == *value => at = at.max(kv.mod_revision),
                _ => return Ok(None),
            }
        }
        Ok((at > 0).then_some(at))
    }
}

impl SharedState for Store {
    fn save(&self, state: &PersistedState) -> Result<(), SharedError> {
        self.write(state)
    }

    fn append_zone(&self, zone: &str, entry: &JournalEntry) -> Result<(), SharedError> {
        self.append(zone, entry)
    }

    fn put_keyset(&self, zone: &str, set: &SharedKeySet, prev: i64) -> Result<i64, SharedError> {
        self.keyset(zone, set, prev)
    }

    fn record(&self, e: &Event) {
        let _ = self.history.send(e.clone());
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cluster::etcd::EtcdSettings;
    use std::time::Duration;

    /// A store whose etcd does not answer (nothing listens on port 9 of
    /// loopback: every call fails at once), fenced at 7, which last wrote
    /// serial 1 of ggon.org.
    fn unreachable_store(rt: &tokio::runtime::Runtime) -> Store {
        let etcd = Etcd::new(EtcdSettings {
            endpoints: vec!["http://127.0.0.1:9".into()],
            credentials: None,
            ca_file: None,
            identity: None,
            timeout: Duration::from_millis(300),
        })
        .unwrap();
        let (history, _rx) = mpsc::unbounded_channel();
        Store {
            etcd: Arc::new(etcd),
            keys: Keys {
                prefix: "/ggon/".into(),
            },
            node: "node1".into(),
            fence: Arc::new(Mutex::new(Some(7))),
            resync: Arc::new(AtomicBool::new(false)),
            written: Mutex::new(Some(Written {
                fence: 7,
                services: HashMap::new(),
                serials: (BTreeMap::from([("ggon.org".to_string(), 1)]), 3),
            })),
            history,
            rt: rt.handle().clone(),
            last_write: Arc::default(),
            stats: Arc::default(),
        }
    }

    /// A leader's state write whose outcome is unknown (etcd did not
    /// answer: the request may still be applied later) leaves the store
    /// without its fence and without its copy of what it wrote: it writes
    /// nothing more, so the node gives the leadership up and follows etcd.
    #[test]
    fn a_write_with_an_unknown_outcome_gives_up_the_fence() {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .unwrap();
        let store = Arc::new(unreachable_store(&rt));
        let mut state = PersistedState::default();
        state.serials.insert("ggon.org".into(), 2);
        let s = store.clone();
        let r = rt
            .block_on(rt.spawn(async move { s.save(&state) }))
            .unwrap();
        assert!(matches!(r, Err(SharedError::Unknown(_))), "{r:?}");
        assert_eq!(*store.fence.lock().unwrap(), None);
        assert!(store.written.lock().unwrap().is_none());
        // And the node is told to read etcd's whole state again.
        assert!(store.resync.load(Ordering::SeqCst));
    }

    /// A leader whose state names a lower serial than etcd holds is behind
    /// etcd: it writes nothing (it would take the serial back) and gives up
    /// the fence.
    #[test]
    fn a_leader_behind_etcds_serial_does_not_write() {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .unwrap();
        let store = Arc::new(unreachable_store(&rt));
        let mut state = PersistedState::default();
        state.serials.insert("ggon.org".into(), 0);
        let s = store.clone();
        let r = rt
            .block_on(rt.spawn(async move { s.save(&state) }))
            .unwrap();
        assert!(matches!(r, Err(SharedError::Fenced)), "{r:?}");
        assert_eq!(*store.fence.lock().unwrap(), None);
        assert!(store.resync.load(Ordering::SeqCst));
    }

    #[test]
    fn only_a_failure_that_may_still_land_counts_as_unknown() {
        let unknown = |e: EtcdError| e.outcome_unknown();
        assert!(unknown(EtcdError::Unreachable(
            "no answer within 2s".into()
        )));
        assert!(unknown(EtcdError::Refused(
            "etcdserver: request timed out".into()
        )));
        assert!(unknown(EtcdError::Refused(
            "etcdserver: leader changed".into()
        )));
        // NOSPACE is a refusal: nothing was written, the leader keeps its fence.
        assert!(!unknown(EtcdError::Refused(
            "etcdserver: mvcc: database space exceeded".into()
        )));
    }
}
