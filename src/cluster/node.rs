//! This node's life in the cluster: one task that reacts to what happens.
//!
//! It joins (a lease kept alive on its own task, a membership key and its
//! non-empty vote buckets, written in a few transactions after a short
//! random delay, so that a whole cluster restarting does not join in one
//! burst), then learns everything from one watch of ggon's prefix: members,
//! votes, the leader key and the shared state. Nothing is read again on a
//! timer: a full read happens at start and when the watch's revision was
//! compacted away; a broken watch resumes from the last revision seen.
//! Its own verdict changes are written once a short coalescing window has
//! passed, only the buckets that changed, in transactions of at most 128
//! operations. When the leader key is gone it campaigns (a lease-bound key
//! created only if absent).
//!
//! Its lease lost (etcd away for longer than the TTL), the node stops
//! leading, says `connected: false`, keeps answering the last agreed state
//! (fail-static) and joins again when etcd is back.

use std::collections::{BTreeSet, HashMap, VecDeque};
use std::net::SocketAddr;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::sync::{mpsc, oneshot};
use tracing::{info, warn};

use super::etcd::{Compare, Etcd, EtcdError, EtcdSettings, EventType, Kv, Op, WatchStream};
use super::lease::{self, Lease};
use super::model::{Changed, Member, Model, Service};
use super::votes::{self, Bucket};
use super::{ClusterHandle, ClusterStats, Keys, Store};
use crate::config::Config;
use crate::decide::state::PersistedState;
use crate::decide::views::{ClusterView, MemberView};
use crate::decide::{Command, ControllerHandle, Event, EventSink, Role};
use crate::shutdown::Shutdown;

/// How long verdict changes are gathered before their buckets are written.
const COALESCE: Duration = Duration::from_millis(50);
/// Operations per transaction (etcd's default limit is 128).
const PER_TXN: usize = 120;
/// How long this node waits for the controller to apply a new shared state
/// before it goes on (it records the revision once applied).
const APPLY_WAIT: Duration = Duration::from_millis(50);
/// Members' remaining lease time (status only) and the view are refreshed
/// this often.
const VIEW_EVERY: Duration = Duration::from_millis(500);
const TTL_EVERY: Duration = Duration::from_secs(5);

/// Where this node can be reached, for the membership key.
#[derive(Debug, Clone)]
pub struct NodeInfo {
    pub control: SocketAddr,
    pub dns: Vec<SocketAddr>,
}

type Verdict = (String, String, Option<bool>);

/// Passes this node's own verdict changes (its votes) to the cluster task.
pub struct VoteSink(mpsc::UnboundedSender<Verdict>);

impl EventSink for VoteSink {
    fn verdict(&self, service: &str, target: &str, healthy: Option<bool>) {
        let _ = self
            .0
            .send((service.to_string(), target.to_string(), healthy));
    }
}

/// The cluster task, ready to run once the node's addresses are known.
pub struct Prepared {
    pub(super) etcd: Arc<Etcd>,
    pub(super) keys: Keys,
    pub(super) node: String,
    lease_ttl: Duration,
    pub(super) keep_revisions: i64,
    pub(super) history_keep: usize,
    pub(super) history_max_age: Duration,
    services: Vec<Service>,
    pub(super) fence: Arc<Mutex<Option<i64>>>,
    view: Arc<Mutex<ClusterView>>,
    pub(super) stats: Arc<ClusterStats>,
    votes_rx: mpsc::UnboundedReceiver<Verdict>,
    history_rx: mpsc::UnboundedReceiver<Event>,
}

/// Set up this node's cluster session from `[cluster]`: the task to run,
/// the controller's store and vote sink, and the control API's handle.
pub fn spawn(cfg: &Config) -> Result<(Prepared, Store, VoteSink, ClusterHandle), EtcdError> {
    let c = cfg.cluster.as_ref().expect("cluster mode");
    let etcd = Arc::new(Etcd::new(EtcdSettings {
        endpoints: c.etcd.get_ref().clone(),
        credentials: c.username.clone().zip(c.password.clone()),
        ca_file: c.ca_file.as_deref(),
        identity: c.cert_file.as_deref().zip(c.key_file.as_deref()),
        // A member that does not answer within this is skipped for the next.
        timeout: Duration::from_secs(2),
    })?);
    let keys = Keys {
        prefix: c.prefix.clone(),
    };
    let node = c.node.get_ref().clone();
    let fence = Arc::new(Mutex::new(None));
    let view = Arc::new(Mutex::new(ClusterView {
        node: node.clone(),
        role: Role::Follower,
        ..ClusterView::default()
    }));
    let stats = Arc::new(ClusterStats::default());
    let last_write = Arc::new(std::sync::atomic::AtomicI64::new(0));
    let (votes_tx, votes_rx) = mpsc::unbounded_channel();
    let (history_tx, history_rx) = mpsc::unbounded_channel();
    let store = Store {
        etcd: etcd.clone(),
        keys: keys.clone(),
        node: node.clone(),
        fence: fence.clone(),
        written: Mutex::new(None),
        history: history_tx,
        rt: tokio::runtime::Handle::current(),
        last_write: last_write.clone(),
        stats: stats.clone(),
    };
    let handle = ClusterHandle {
        view: view.clone(),
        etcd: etcd.clone(),
        keys: keys.clone(),
        confirm_within: c.lease_ttl,
        last_write,
        stats: stats.clone(),
    };
    let services = cfg
        .services
        .iter()
        .map(|s| Service {
            name: s.name.get_ref().clone(),
            targets: s
                .targets
                .get_ref()
                .iter()
                .map(|t| t.name.get_ref().clone())
                .collect(),
            quorum: s.quorum.unwrap_or(c.quorum),
        })
        .collect();
    let prepared = Prepared {
        etcd,
        keys,
        node,
        lease_ttl: c.lease_ttl,
        keep_revisions: *c.keep_revisions.get_ref() as i64,
        history_keep: c.history_keep,
        history_max_age: c.history_max_age,
        services,
        fence,
        view,
        stats,
        votes_rx,
        history_rx,
    };
    Ok((prepared, store, VoteSink(votes_tx), handle))
}

impl Prepared {
    pub fn run(
        self,
        info: NodeInfo,
        controller: ControllerHandle,
        shutdown: Shutdown,
    ) -> tokio::task::JoinHandle<()> {
        let mut by_bucket: HashMap<u32, Vec<usize>> = HashMap::new();
        for (i, s) in self.services.iter().enumerate() {
            by_bucket
                .entry(votes::bucket_of(&s.name))
                .or_default()
                .push(i);
        }
        let node = Node {
            p: self,
            info,
            controller,
            by_bucket,
            lease: None,
            watch: None,
            rev: 0,
            model: Model::default(),
            mine: HashMap::new(),
            dirty: BTreeSet::new(),
            flush_at: None,
            role: Role::Follower,
            applied_rev: 0,
            applying: None,
            served_rev: 0,
            compacted: 0,
            history: VecDeque::new(),
            history_seq: 0,
            ttls: HashMap::new(),
            last_ttls: None,
            last_error: None,
            housekeeping: Instant::now(),
            view_dirty: true,
        };
        tokio::spawn(node.run(shutdown))
    }
}

pub(super) struct Node {
    pub(super) p: Prepared,
    info: NodeInfo,
    controller: ControllerHandle,
    /// Indices of `p.services` by vote bucket.
    by_bucket: HashMap<u32, Vec<usize>>,
    lease: Option<Lease>,
    watch: Option<WatchStream>,
    /// The last revision this node has seen through its watch (0: none).
    pub(super) rev: i64,
    model: Model,
    /// This node's own verdicts, by bucket; `dirty` buckets are not yet in etcd.
    mine: HashMap<u32, Bucket>,
    dirty: BTreeSet<u32>,
    flush_at: Option<tokio::time::Instant>,
    pub(super) role: Role,
    /// The revision of the shared state this node last recorded in its
    /// `applied/` key.
    applied_rev: i64,
    /// A state handed to the controller and not yet confirmed applied (its
    /// revision): recorded once the controller answers.
    applying: Option<(i64, oneshot::Receiver<()>)>,
    /// The newest revision of the shared state the controller has applied.
    served_rev: i64,
    /// The revision the leader last compacted etcd to.
    pub(super) compacted: i64,
    history: VecDeque<Event>,
    history_seq: u64,
    ttls: HashMap<String, i64>,
    last_ttls: Option<Instant>,
    pub(super) last_error: Option<String>,
    pub(super) housekeeping: Instant,
    view_dirty: bool,
}

impl Node {
    async fn run(mut self, mut shutdown: Shutdown) {
        let mut tick = tokio::time::interval(VIEW_EVERY);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            let flush = self.flush_at;
            tokio::select! {
                _ = shutdown.requested() => break,
                Some((s, t, v)) = self.p.votes_rx.recv() => self.note_verdict(&s, &t, v),
                Some(e) = self.p.history_rx.recv() => {
                    self.history.push_back(e);
                    self.flush_at.get_or_insert_with(|| tokio::time::Instant::now() + COALESCE);
                }
                msg = next_watch(&mut self.watch) => {
                    let r = self.on_watch(msg).await;
                    self.report(r);
                }
                _ = lease_lost(&mut self.lease) => self.lost_lease().await,
                _ = sleep_until(flush) => {
                    self.flush_at = None;
                    let r = self.flush().await;
                    self.report(r);
                }
                _ = tick.tick() => {
                    let r = self.tick().await;
                    self.report(r);
                }
            }
        }
        // Leaving: give the lease back so the votes and the leadership go now.
        if let Some(lease) = self.lease.take() {
            let _ = self.p.etcd.revoke(lease.id).await;
        }
    }

    fn report(&mut self, r: Result<(), EtcdError>) {
        match r {
            Ok(()) => {}
            Err(e) => {
                let text = e.to_string();
                if self.last_error.as_deref() != Some(&text) {
                    warn!(error = %e, "cluster: etcd call failed");
                }
                self.last_error = Some(text);
                self.view_dirty = true;
            }
        }
    }

    fn connected(&self) -> bool {
        self.lease.is_some() && self.watch.is_some()
    }

    /// Periodic work that does not depend on the number of services:
    /// joining when not joined, resuming the watch, the status view,
    /// housekeeping. The view is published even when etcd is away (that is
    /// when it matters most).
    async fn tick(&mut self) -> Result<(), EtcdError> {
        if self.view_dirty {
            self.publish_view();
        }
        let result = self.tick_work().await;
        if self.view_dirty {
            self.publish_view();
        }
        let etcd = super::housekeeping::etcd_view(&self.p.stats, &self.p.etcd.stats);
        self.p.view.lock().unwrap().etcd = Some(etcd);
        result
    }

    async fn tick_work(&mut self) -> Result<(), EtcdError> {
        if self.lease.is_none() {
            self.join().await?;
        }
        if self.watch.is_none() {
            self.sync().await?;
        }
        self.check_applied().await?;
        if self.served_rev > self.applied_rev && self.applying.is_none() {
            // A write of `applied/` that failed earlier.
            self.record_applied(self.served_rev).await?;
        }
        if self.model.leader.is_none() {
            self.elect().await?;
        }
        if (!self.dirty.is_empty() || !self.history.is_empty()) && self.flush_at.is_none() {
            // A flush that failed earlier: again.
            self.flush_at = Some(tokio::time::Instant::now());
        }
        if !self.connected() {
            return Ok(());
        }
        if self.last_ttls.is_none_or(|t| t.elapsed() >= TTL_EVERY) {
            let mut ttls = HashMap::new();
            for (name, (_, lease)) in &self.model.members {
                if let Ok(Some(t)) = self.p.etcd.time_to_live(*lease).await {
                    ttls.insert(name.clone(), t);
                }
            }
            self.ttls = ttls;
            self.last_ttls = Some(Instant::now());
            self.view_dirty = true;
        }
        self.housekeep().await;
        Ok(())
    }

    /// Join: a lease (kept alive on its own task), the membership key and
    /// this node's vote buckets.
    async fn join(&mut self) -> Result<(), EtcdError> {
        // Jittered, so that nodes restarted together do not join as one burst.
        let jitter = rand::random_range(0..=self.p.lease_ttl.as_millis() as u64 / 10);
        tokio::time::sleep(Duration::from_millis(jitter)).await;
        let lease = lease::grant(self.p.etcd.clone(), self.p.lease_ttl).await?;
        let me = Member {
            control: self.info.control.to_string(),
            dns: self.info.dns.clone(),
            since: crate::decide::unix_now(),
        };
        let value = serde_json::to_string(&me).expect("plain data");
        self.p
            .etcd
            .put(&self.p.keys.node(&self.p.node), &value, lease.id)
            .await?;
        info!(node = %self.p.node, lease = lease.id, "joined the cluster");
        self.lease = Some(lease);
        self.applied_rev = 0;
        // Every bucket again: the old lease took them.
        self.dirty = self.mine.keys().copied().collect();
        self.flush().await?;
        self.view_dirty = true;
        if self.watch.is_some() {
            self.record_applied(self.rev).await?;
            self.elect().await?;
        }
        Ok(())
    }

    async fn lost_lease(&mut self) {
        warn!(node = %self.p.node,
            "lease lost (etcd away for longer than the lease): answering the last agreed state, taking no decisions");
        self.lease = None;
        self.demote().await;
        // At once: the control API must stop sending changes to this node's
        // controller now, not after the next (slow, etcd being away) tick.
        self.publish_view();
    }

    /// A full read of ggon's prefix, then a watch from the next revision.
    async fn sync(&mut self) -> Result<(), EtcdError> {
        let (kvs, rev) = self.p.etcd.get_prefix(&self.p.keys.prefix).await?;
        let changed = self.model.reset(&self.p.keys, &kvs);
        self.watch = Some(
            self.p
                .etcd
                .watch_prefix(&self.p.keys.prefix, rev + 1)
                .await?,
        );
        self.rev = rev;
        self.p.stats.etcd_revision.fetch_max(rev, Ordering::Relaxed);
        self.p.stats.watch_revision.store(rev, Ordering::Relaxed);
        info!(node = %self.p.node, keys = kvs.len(), revision = rev, "read the cluster's keys; watching");
        self.react(changed, rev).await
    }

    async fn on_watch(
        &mut self,
        msg: Result<Option<super::etcd::WatchResponse>, etcd_client::Error>,
    ) -> Result<(), EtcdError> {
        let resp = match msg {
            Ok(Some(r)) => r,
            Ok(None) | Err(_) => {
                // Resume from the last revision seen (from scratch if it
                // was compacted: the answer says so).
                self.watch = None;
                return self.resume().await;
            }
        };
        if resp.canceled() {
            self.watch = None;
            if resp.compact_revision() > 0 {
                warn!(node = %self.p.node, compacted = resp.compact_revision(),
                    "the watch's revision was compacted away: reading everything again");
                return self.sync().await;
            }
            return self.resume().await;
        }
        let header_rev = resp.header().map_or(self.rev, |h| h.revision());
        let mut changed = Changed::default();
        for ev in resp.events() {
            let Some(kv) = ev.kv() else { continue };
            let kv = Kv::from(kv);
            match ev.event_type() {
                EventType::Put => self.model.put(&self.p.keys, &kv, &mut changed),
                EventType::Delete => self.model.delete(&self.p.keys, &kv.key, &mut changed),
            }
        }
        self.rev = self.rev.max(header_rev);
        self.p
            .stats
            .etcd_revision
            .fetch_max(header_rev, Ordering::Relaxed);
        self.p
            .stats
            .watch_revision
            .store(self.rev, Ordering::Relaxed);
        self.react(changed, header_rev).await
    }

    async fn resume(&mut self) -> Result<(), EtcdError> {
        if self.rev == 0 {
            return self.sync().await;
        }
        self.watch = Some(
            self.p
                .etcd
                .watch_prefix(&self.p.keys.prefix, self.rev + 1)
                .await?,
        );
        Ok(())
    }

    /// Act on what the watch changed: verdicts, the shared state, the election.
    async fn react(&mut self, changed: Changed, rev: i64) -> Result<(), EtcdError> {
        let verdicts = if changed.members {
            self.model.tally(self.p.services.iter())
        } else {
            let idx: Vec<usize> = changed
                .buckets
                .iter()
                .filter_map(|b| self.by_bucket.get(b))
                .flatten()
                .copied()
                .collect();
            self.model.tally(idx.iter().map(|&i| &self.p.services[i]))
        };
        if !verdicts.is_empty() {
            let _ = self
                .controller
                .commands
                .send(Command::ClusterVerdicts { verdicts })
                .await;
        }
        if changed.members || changed.leader || !changed.buckets.is_empty() {
            self.view_dirty = true;
        }
        if changed.state() && self.role != Role::Leader {
            self.apply(&changed, rev).await?;
        } else if self.applied_rev == 0 && self.role != Role::Leader {
            self.record_applied(rev).await?;
        }
        if changed.leader {
            self.elect().await?;
        }
        Ok(())
    }

    /// Hand the changed services (and the serials) to the controller, then
    /// record the revision this node answers.
    async fn apply(&mut self, changed: &Changed, rev: i64) -> Result<(), EtcdError> {
        let state = PersistedState {
            services: changed
                .services
                .iter()
                .filter_map(|n| Some((n.clone(), self.model.services.get(n)?.clone())))
                .collect(),
            serials: self.model.serials.clone(),
        };
        let (reply, applied) = oneshot::channel();
        let cmd = Command::ClusterApply {
            state: Box::new(state),
            reply,
        };
        if self.controller.commands.send(cmd).await.is_err() {
            return Ok(());
        }
        self.applying = Some((rev, applied));
        self.check_applied().await
    }

    /// Usually applied within a few milliseconds; a controller busy for
    /// longer (a reload) must not hold this task up: then checked again at
    /// the next tick.
    async fn check_applied(&mut self) -> Result<(), EtcdError> {
        let Some((rev, applied)) = self.applying.as_mut() else {
            return Ok(());
        };
        let rev = *rev;
        match tokio::time::timeout(APPLY_WAIT, applied).await {
            Ok(Ok(())) => {
                self.applying = None;
                self.served_rev = self.served_rev.max(rev);
                self.record_applied(rev).await
            }
            Ok(Err(_)) => {
                self.applying = None;
                Ok(())
            }
            Err(_) => Ok(()),
        }
    }

    /// Tell the leader which revision this node answers (it waits for
    /// every member before it reports an operator's change as done).
    async fn record_applied(&mut self, rev: i64) -> Result<(), EtcdError> {
        let Some(lease) = &self.lease else {
            return Ok(());
        };
        if rev > self.applied_rev {
            let key = self.p.keys.applied_by(&self.p.node);
            self.p.etcd.put(&key, &rev.to_string(), lease.id).await?;
            self.applied_rev = rev;
        }
        Ok(())
    }

    /// The election: campaign when there is no leader key, lead when it is
    /// ours, follow otherwise.
    async fn elect(&mut self) -> Result<(), EtcdError> {
        let Some(lease) = self.lease.as_ref().map(|l| l.id) else {
            return Ok(());
        };
        let keys = self.p.keys.clone();
        match self.model.leader.clone() {
            None => {
                self.demote().await;
                let won = self
                    .p
                    .etcd
                    .txn(
                        &[Compare::CreateRevision(keys.leader(), 0)],
                        &[Op::Put {
                            key: keys.leader(),
                            value: self.p.node.clone(),
                            lease,
                        }],
                        &[],
                    )
                    .await?;
                if won.is_some() {
                    // The watch brings the new key, and with it the promotion.
                    info!(node = %self.p.node, "campaigned for the leadership");
                }
            }
            Some(kv) if kv.value == self.p.node && kv.lease == lease => {
                self.promote(kv.create_revision).await;
            }
            Some(kv) => {
                self.demote().await;
                if kv.value == self.p.node {
                    // This node's key from a lease it lost (etcd was away):
                    // remove it, so that the election does not wait for that
                    // lease to run out.
                    let cmp = [Compare::CreateRevision(keys.leader(), kv.create_revision)];
                    self.p
                        .etcd
                        .txn(&cmp, &[Op::Delete(keys.leader())], &[])
                        .await?;
                    info!(node = %self.p.node, "removed its stale leader key; new election");
                }
            }
        }
        Ok(())
    }

    async fn promote(&mut self, fence: i64) {
        *self.p.fence.lock().unwrap() = Some(fence);
        if self.role != Role::Leader {
            info!(node = %self.p.node, fence, "this node now leads the cluster");
            self.role = Role::Leader;
            self.p.stats.leader_changes.fetch_add(1, Ordering::Relaxed);
            // The controller first, then the view the control API routes by.
            let _ = self
                .controller
                .commands
                .send(Command::ClusterRole { role: Role::Leader })
                .await;
            self.publish_view();
        }
    }

    async fn demote(&mut self) {
        *self.p.fence.lock().unwrap() = None;
        if self.role == Role::Leader {
            info!(node = %self.p.node, "this node no longer leads the cluster");
            self.role = Role::Follower;
            self.p.stats.leader_changes.fetch_add(1, Ordering::Relaxed);
            self.publish_view();
            let _ = self
                .controller
                .commands
                .send(Command::ClusterRole {
                    role: Role::Follower,
                })
                .await;
        }
        // Events of a leadership this node lost are not the cluster's.
        self.history.clear();
    }

    fn note_verdict(&mut self, service: &str, target: &str, healthy: Option<bool>) {
        let b = votes::bucket_of(service);
        if votes::set(self.mine.entry(b).or_default(), service, target, healthy) {
            self.dirty.insert(b);
            self.p
                .stats
                .votes_pending
                .store(self.dirty.len() as u64, Ordering::Relaxed);
            self.flush_at
                .get_or_insert_with(|| tokio::time::Instant::now() + COALESCE);
        }
    }

    /// Write the changed vote buckets and the leader's pending history, in
    /// transactions of at most [`PER_TXN`] operations.
    async fn flush(&mut self) -> Result<(), EtcdError> {
        let Some(lease) = self.lease.as_ref().map(|l| l.id) else {
            return Ok(());
        };
        let dirty: Vec<u32> = self.dirty.iter().copied().collect();
        for chunk in dirty.chunks(PER_TXN) {
            let ops: Vec<Op> = chunk
                .iter()
                .map(|b| {
                    let key = self.p.keys.vote_bucket(&self.p.node, *b);
                    match self.mine.get(b).filter(|m| !m.is_empty()) {
                        Some(m) => Op::Put {
                            key,
                            value: votes::encode(m),
                            lease,
                        },
                        None => Op::Delete(key),
                    }
                })
                .collect();
            self.p.etcd.txn(&[], &ops, &[]).await?;
            for b in chunk {
                self.dirty.remove(b);
            }
            self.p
                .stats
                .votes_pending
                .store(self.dirty.len() as u64, Ordering::Relaxed);
        }
        self.flush_history().await
    }

    /// The leader's events, fenced like the state.
    async fn flush_history(&mut self) -> Result<(), EtcdError> {
        if self.role != Role::Leader || self.history.is_empty() {
            return Ok(());
        }
        let Some(fence) = *self.p.fence.lock().unwrap() else {
            return Ok(());
        };
        while !self.history.is_empty() {
            let n = self.history.len().min(PER_TXN);
            let ops: Vec<Op> = self
                .history
                .iter()
                .take(n)
                .map(|e| {
                    self.history_seq += 1;
                    Op::Put {
                        key: format!(
                            "{}{:020}-{}-{:06}",
                            self.p.keys.history(),
                            e.time,
                            self.p.node,
                            self.history_seq
                        ),
                        value: serde_json::to_string(e).expect("plain data"),
                        lease: 0,
                    }
                })
                .collect();
            let cmp = self.p.keys.fenced(fence, &self.p.node);
            if self.p.etcd.txn(&cmp, &ops, &[]).await?.is_none() {
                // No longer the leader: these events are not the cluster's.
                self.history.clear();
                return Ok(());
            }
            self.history.drain(..n);
        }
        Ok(())
    }

    fn publish_view(&mut self) {
        self.view_dirty = false;
        let mut v = self.p.view.lock().unwrap();
        v.role = self.role;
        v.connected = self.connected();
        v.leader = if self.connected() {
            self.model.leader.as_ref().map(|l| l.value.clone())
        } else {
            None
        };
        v.last_error = self.last_error.clone();
        v.members = self
            .model
            .members
            .iter()
            .map(|(name, (m, _))| MemberView {
                node: name.clone(),
                control: Some(m.control.clone()),
                lease_ttl: self.ttls.get(name).copied(),
                since: Some(m.since),
            })
            .collect();
        v.verdicts = self.model.views.values().cloned().collect();
    }
}

async fn next_watch(
    w: &mut Option<WatchStream>,
) -> Result<Option<super::etcd::WatchResponse>, etcd_client::Error> {
    match w {
        Some(w) => w.message().await,
        None => std::future::pending().await,
    }
}

async fn lease_lost(l: &mut Option<Lease>) {
    match l {
        Some(l) => {
            if l.lost.wait_for(|lost| *lost).await.is_err() {
                std::future::pending::<()>().await;
            }
        }
        None => std::future::pending().await,
    }
}

async fn sleep_until(at: Option<tokio::time::Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}
