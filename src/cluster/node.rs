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

use super::etcd::{Etcd, EtcdError, EtcdSettings, EventType, Kv, WatchStream};
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
pub(super) const COALESCE: Duration = Duration::from_millis(50);
/// Members' remaining lease time (status only) and the view are refreshed
/// this often.
const VIEW_EVERY: Duration = Duration::from_millis(500);
const TTL_EVERY: Duration = Duration::from_secs(5);

/// Where this node can be reached, for the membership key.
#[derive(Debug, Clone)]
pub struct NodeInfo {
    /// The configuration, as reloads change it.
    pub config: tokio::sync::watch::Receiver<Arc<Config>>,
    pub control: SocketAddr,
    /// The control API serves TLS.
    pub control_tls: bool,
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
    /// Digests of what must be the same on every node.
    digest: super::digest::Digest,
    pub(super) fence: Arc<Mutex<Option<i64>>>,
    /// Shared with the store: etcd's whole state must be taken again
    /// before this node decides anything (see `Node::abdicate`).
    pub(super) resync: Arc<std::sync::atomic::AtomicBool>,
    view: Arc<Mutex<ClusterView>>,
    pub(super) stats: Arc<ClusterStats>,
    votes_rx: mpsc::UnboundedReceiver<Verdict>,
    history_rx: mpsc::UnboundedReceiver<Event>,
}

/// The services whose votes this node counts, from its config.
pub(super) fn services_of(cfg: &Config) -> Vec<Service> {
    let quorum = cfg.cluster.as_ref().map(|c| c.quorum).unwrap_or_default();
    cfg.services
        .iter()
        .map(|s| Service {
            name: s.name.get_ref().clone(),
            targets: s
                .targets
                .get_ref()
                .iter()
                .map(|t| t.name.get_ref().clone())
                .collect(),
            quorum: s.quorum.unwrap_or(quorum),
        })
        .collect()
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
    let resync = Arc::new(std::sync::atomic::AtomicBool::new(false));
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
        resync: resync.clone(),
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
    let services = services_of(cfg);
    let digest = super::digest::Digest::of(cfg);
    let prepared = Prepared {
        etcd,
        keys,
        node,
        lease_ttl: c.lease_ttl,
        keep_revisions: *c.keep_revisions.get_ref() as i64,
        history_keep: c.history_keep,
        history_max_age: c.history_max_age,
        services,
        digest,
        fence,
        resync,
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
        let by_bucket = by_bucket(&self.services);
        let (applied_tx, applied_rx) = mpsc::unbounded_channel();
        let digest = self.digest.clone();
        let node = Node {
            digest,
            mismatches: Vec::new(),
            disagree_sent: Default::default(),
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
            applied_tx,
            applied_rx,
            served_rev: 0,
            compacted: 0,
            history: VecDeque::new(),
            history_seq: 0,
            ttls: HashMap::new(),
            last_ttls: None,
            last_error: None,
            housekeeping: Instant::now(),
            space_checked: None,
            view_dirty: true,
            resync: false,
        };
        tokio::spawn(node.run(shutdown))
    }
}

/// Indices of `services` by vote bucket.
fn by_bucket(services: &[Service]) -> HashMap<u32, Vec<usize>> {
    let mut by: HashMap<u32, Vec<usize>> = HashMap::new();
    for (i, s) in services.iter().enumerate() {
        by.entry(votes::bucket_of(&s.name)).or_default().push(i);
    }
    by
}

pub(super) struct Node {
    pub(super) p: Prepared,
    /// This node's digests, as written to etcd.
    pub(super) digest: super::digest::Digest,
    /// Members whose digests differ from the leader's, as last found.
    pub(super) mismatches: Vec<crate::decide::views::MismatchView>,
    /// The services last handed to the controller as defined differently.
    pub(super) disagree_sent: std::collections::BTreeMap<String, String>,
    pub(super) info: NodeInfo,
    pub(super) controller: ControllerHandle,
    /// Indices of `p.services` by vote bucket.
    pub(super) by_bucket: HashMap<u32, Vec<usize>>,
    pub(super) lease: Option<Lease>,
    pub(super) watch: Option<WatchStream>,
    /// The last revision this node has seen through its watch (0: none).
    pub(super) rev: i64,
    pub(super) model: Model,
    /// This node's own verdicts, by bucket; `dirty` buckets are not yet in etcd.
    pub(super) mine: HashMap<u32, Bucket>,
    pub(super) dirty: BTreeSet<u32>,
    pub(super) flush_at: Option<tokio::time::Instant>,
    pub(super) role: Role,
    /// The revision of the shared state this node last recorded in its
    /// `applied/` key.
    pub(super) applied_rev: i64,
    /// Revisions the controller has applied, as it confirms them.
    pub(super) applied_tx: mpsc::UnboundedSender<i64>,
    pub(super) applied_rx: mpsc::UnboundedReceiver<i64>,
    /// The newest revision of the shared state the controller has applied.
    pub(super) served_rev: i64,
    /// The revision the leader last compacted etcd to.
    pub(super) compacted: i64,
    pub(super) history: VecDeque<Event>,
    pub(super) history_seq: u64,
    pub(super) ttls: HashMap<String, i64>,
    pub(super) last_ttls: Option<Instant>,
    pub(super) last_error: Option<String>,
    pub(super) housekeeping: Instant,
    /// When etcd's alarms and size were last read (None: at the next tick).
    pub(super) space_checked: Option<Instant>,
    pub(super) view_dirty: bool,
    /// Etcd's whole state must be read afresh before this node decides
    /// anything again (`abdicate`).
    pub(super) resync: bool,
}

impl Node {
    /// A reload changed the services: count votes for these from now on.
    pub(super) fn set_services(&mut self, services: Vec<Service>) {
        self.by_bucket = by_bucket(&services);
        self.p.services = services;
    }

    async fn run(mut self, mut shutdown: Shutdown) {
        let mut config = self.info.config.clone();
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
                Some(rev) = self.applied_rx.recv() => {
                    self.served_rev = self.served_rev.max(rev);
                    let r = self.record_applied(rev).await;
                    self.report(r);
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
                Ok(()) = config.changed() => {
                    let cfg = config.borrow_and_update().clone();
                    let r = self.reconfigure(&cfg).await;
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
                if e.is_nospace() && !self.p.stats.nospace.load(Ordering::Relaxed) {
                    // Say so now rather than at the next periodic check.
                    self.space_checked = None;
                }
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
        let etcd = self.p.stats.view(&self.p.etcd.stats);
        self.p.view.lock().unwrap().etcd = Some(etcd);
        result
    }

    async fn tick_work(&mut self) -> Result<(), EtcdError> {
        // First: a leader the store stopped must step down even while the
        // rest of this work fails (etcd answering it slowly or not at all).
        self.abdicate().await?;
        if self.lease.is_none() {
            self.join().await?;
        }
        if self.watch.is_none() {
            self.sync().await?;
        }
        if self.served_rev > self.applied_rev {
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
            control_tls: self.info.control_tls,
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
        // Every bucket again: the old lease took them (the digests too).
        self.dirty = self.mine.keys().copied().collect();
        self.flush().await?;
        self.publish_conf().await?;
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
        self.p.stats.leases_lost.fetch_add(1, Ordering::Relaxed);
        self.demote().await;
        // At once: the control API must stop sending changes to this node's
        // controller now, not after the next (slow, etcd being away) tick.
        self.publish_view();
    }

    /// A full read of ggon's prefix, then a watch from the next revision.
    pub(super) async fn sync(&mut self) -> Result<(), EtcdError> {
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
    async fn react(&mut self, mut changed: Changed, rev: i64) -> Result<(), EtcdError> {
        // Key sets first: the zone data that follows is signed with them.
        let sets = std::mem::take(&mut changed.keysets);
        if !sets.is_empty() {
            let _ = self
                .controller
                .commands
                .send(Command::ClusterKeySets { sets })
                .await;
        }
        // Zone UPDATEs next, on every node (the leader skips its own): the
        // serial the shared state names next is the one they made.
        let entries = std::mem::take(&mut changed.zone_entries);
        if !entries.is_empty() {
            let _ = self
                .controller
                .commands
                .send(Command::ClusterZoneEntries { entries })
                .await;
        }
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
        if changed.conf || changed.members || changed.leader {
            self.check_agreement().await;
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
            generation: 0,
        };
        let (reply, applied) = oneshot::channel();
        let cmd = Command::ClusterApply {
            state: Box::new(state),
            reply,
        };
        if self.controller.commands.send(cmd).await.is_err() {
            return Ok(());
        }
        // Confirmed as soon as the controller has applied it (usually within
        // milliseconds), without holding this task up meanwhile.
        let tx = self.applied_tx.clone();
        tokio::spawn(async move {
            if applied.await.is_ok() {
                let _ = tx.send(rev);
            }
        });
        Ok(())
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

    pub(super) fn publish_view(&mut self) {
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
        v.mismatches = self.mismatches.clone();
        v.members = self
            .model
            .members
            .iter()
            .map(|(name, (m, _))| MemberView {
                node: name.clone(),
                control: Some(m.control.clone()),
                control_tls: m.control_tls,
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
