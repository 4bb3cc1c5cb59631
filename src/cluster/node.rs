//! This node's life in the cluster: one task, one step every 200 ms.
//!
//! Each step: keep the lease alive (or get a new one after an outage),
//! register the node, write its changed votes, read every live node's
//! votes and hand the agreed verdicts to the controller, read the shared
//! state (a follower answers it), and take part in the election (a
//! lease-bound leader key created only if absent). Reading by polling keeps
//! catching up after an outage the same code path as normal work; on
//! loopback a step costs a few milliseconds.
//!
//! Cut off from etcd for longer than the lease TTL, the node stops leading,
//! says `connected: false`, and keeps answering the last agreed state
//! (fail-static) until etcd is back.

use std::collections::{BTreeMap, BTreeSet, HashMap, VecDeque};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};
use tokio::sync::{mpsc, oneshot};
use tracing::{info, warn};

use super::etcd::{Compare, Etcd, EtcdError, Kv, Op};
use super::verdict::agree;
use super::{ClusterHandle, Keys, Store};
use crate::config::{Config, Quorum};
use crate::decide::views::{ClusterView, MemberView, VerdictView};
use crate::decide::{Command, ControllerHandle, Event, EventSink, Role};
use crate::shutdown::Shutdown;

const STEP: Duration = Duration::from_millis(200);
/// How often members' remaining lease time is asked (status only).
const TTL_EVERY: Duration = Duration::from_secs(1);
/// How long a step waits for the controller to apply a new shared state
/// before it goes on (and checks again at the next step).
const APPLY_WAIT: Duration = Duration::from_millis(50);

/// What other nodes learn about this one.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct Member {
    control: String,
    dns: Vec<SocketAddr>,
    since: u64,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
struct Vote {
    healthy: Option<bool>,
}

/// Where this node can be reached, for the membership key.
#[derive(Debug, Clone)]
pub struct NodeInfo {
    pub control: SocketAddr,
    pub dns: Vec<SocketAddr>,
}

type TargetKey = (String, String);

/// Passes this node's own verdict changes (its votes) to the cluster task.
pub struct VoteSink(mpsc::UnboundedSender<(TargetKey, Option<bool>)>);

impl EventSink for VoteSink {
    fn verdict(&self, service: &str, target: &str, healthy: Option<bool>) {
        let _ = self
            .0
            .send(((service.to_string(), target.to_string()), healthy));
    }
}

/// The cluster task, ready to run once the node's addresses are known.
pub struct Prepared {
    etcd: Arc<Etcd>,
    keys: Keys,
    node: String,
    lease_ttl: Duration,
    quorum: HashMap<String, Quorum>,
    targets: Vec<TargetKey>,
    fence: Arc<Mutex<Option<i64>>>,
    view: Arc<Mutex<ClusterView>>,
    votes_rx: mpsc::UnboundedReceiver<(TargetKey, Option<bool>)>,
    history_rx: mpsc::UnboundedReceiver<Event>,
}

/// Set up this node's cluster session from `[cluster]`: the task to run,
/// the controller's store and vote sink, and the control API's handle.
pub fn spawn(cfg: &Config) -> Result<(Prepared, Store, VoteSink, ClusterHandle), EtcdError> {
    let c = cfg.cluster.as_ref().expect("cluster mode");
    let credentials = c.username.clone().zip(c.password.clone());
    // A member that does not answer within a second is skipped for the next.
    let etcd = Arc::new(Etcd::new(
        c.etcd.get_ref().clone(),
        credentials,
        c.ca_file.as_deref(),
        Duration::from_secs(1),
    )?);
    let keys = Keys {
        prefix: c.prefix.clone(),
    };
    let node = c.node.get_ref().clone();
    let fence = Arc::new(Mutex::new(None));
    let view = Arc::new(Mutex::new(ClusterView {
        node: node.clone(),
        role: "follower".into(),
        ..ClusterView::default()
    }));
    let (votes_tx, votes_rx) = mpsc::unbounded_channel();
    let (history_tx, history_rx) = mpsc::unbounded_channel();
    let store = Store {
        etcd: etcd.clone(),
        keys: keys.clone(),
        node: node.clone(),
        fence: fence.clone(),
        base: std::sync::Mutex::new(None),
        history: history_tx,
        rt: tokio::runtime::Handle::current(),
    };
    let handle = ClusterHandle {
        view: view.clone(),
        etcd: etcd.clone(),
        keys: keys.clone(),
        confirm_within: c.lease_ttl,
    };
    let prepared = Prepared {
        etcd,
        keys,
        node,
        lease_ttl: c.lease_ttl,
        quorum: cfg
            .services
            .iter()
            .map(|s| (s.name.get_ref().clone(), s.quorum.unwrap_or(c.quorum)))
            .collect(),
        targets: cfg
            .services
            .iter()
            .flat_map(|s| {
                s.targets
                    .get_ref()
                    .iter()
                    .map(move |t| (s.name.get_ref().clone(), t.name.get_ref().clone()))
            })
            .collect(),
        fence,
        view,
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
        let votes = self.targets.iter().map(|t| (t.clone(), None)).collect();
        let dirty = self.targets.iter().cloned().collect();
        let node = Node {
            p: self,
            info,
            controller,
            lease: None,
            last_keepalive: Instant::now(),
            last_ok: Instant::now(),
            connected: false,
            registered: false,
            votes,
            dirty,
            role: Role::Follower,
            state_rev: 0,
            served_rev: 0,
            applying: None,
            applied_rev: 0,
            agreed: BTreeMap::new(),
            history: VecDeque::new(),
            history_seq: 0,
            ttls: HashMap::new(),
            last_ttls: None,
            last_error: None,
            leader: None,
            members: Vec::new(),
            verdict_views: Vec::new(),
        };
        tokio::spawn(node.run(shutdown))
    }
}

struct Node {
    p: Prepared,
    info: NodeInfo,
    controller: ControllerHandle,
    lease: Option<i64>,
    last_keepalive: Instant,
    last_ok: Instant,
    connected: bool,
    registered: bool,
    votes: BTreeMap<TargetKey, Option<bool>>,
    dirty: BTreeSet<TargetKey>,
    role: Role,
    state_rev: i64,
    /// The revision of `state` this node answers.
    served_rev: i64,
    /// A state handed to the controller and not yet confirmed applied (its
    /// revision): the loop does not wait on the controller beyond a moment,
    /// so a long reload cannot hold up the lease keep-alive.
    applying: Option<(i64, oneshot::Receiver<()>)>,
    /// The revision of `state` last written to this node's `applied/` key
    /// (0 after joining: the key went with the old lease).
    applied_rev: i64,
    agreed: BTreeMap<TargetKey, Option<bool>>,
    history: VecDeque<Event>,
    history_seq: u64,
    ttls: HashMap<String, i64>,
    last_ttls: Option<Instant>,
    last_error: Option<String>,
    leader: Option<String>,
    members: Vec<(String, Member, i64)>,
    verdict_views: Vec<VerdictView>,
}

impl Node {
    async fn run(mut self, mut shutdown: Shutdown) {
        let mut tick = tokio::time::interval(STEP);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = shutdown.requested() => break,
                Some((k, v)) = self.p.votes_rx.recv() => {
                    self.votes.insert(k.clone(), v);
                    self.dirty.insert(k);
                    continue;
                }
                Some(e) = self.p.history_rx.recv() => {
                    self.history.push_back(e);
                    continue;
                }
                _ = tick.tick() => {}
            }
            match self.step().await {
                Ok(()) => {
                    self.last_ok = Instant::now();
                    if !self.connected {
                        info!(node = %self.p.node, "connected to etcd");
                    }
                    self.connected = true;
                    self.last_error = None;
                }
                Err(e) => {
                    if self.last_error.as_deref() != Some(&e.to_string()) {
                        warn!(error = %e, "cluster: etcd call failed");
                    }
                    self.last_error = Some(e.to_string());
                }
            }
            if self.connected && self.last_ok.elapsed() > self.p.lease_ttl {
                warn!(node = %self.p.node,
                    "cut off from etcd for longer than the lease: answering the last agreed state, taking no decisions");
                self.connected = false;
                self.lease = None;
                self.registered = false;
                self.leader = None;
                self.demote().await;
            }
            self.publish_view();
        }
        // Leaving: give the lease back so the votes and the leadership go now.
        if let Some(lease) = self.lease {
            let _ = self.p.etcd.revoke(lease).await;
        }
    }

    async fn promote(&mut self, fence: i64) {
        *self.p.fence.lock().unwrap() = Some(fence);
        if self.role != Role::Leader {
            info!(node = %self.p.node, fence, "this node now leads the cluster");
            self.role = Role::Leader;
            let _ = self
                .controller
                .commands
                .send(Command::ClusterRole { role: Role::Leader })
                .await;
        }
    }

    async fn demote(&mut self) {
        *self.p.fence.lock().unwrap() = None;
        if self.role == Role::Leader {
            info!(node = %self.p.node, "this node no longer leads the cluster");
            self.role = Role::Follower;
            let _ = self
                .controller
                .commands
                .send(Command::ClusterRole {
                    role: Role::Follower,
                })
                .await;
        }
    }

    async fn step(&mut self) -> Result<(), EtcdError> {
        let etcd = self.p.etcd.clone();
        let ttl = self.p.lease_ttl;
        // 1. The lease: renewed at a third of its TTL, new after it lapsed.
        let lease = match self.lease {
            Some(l) if self.last_keepalive.elapsed() < ttl / 3 => l,
            Some(l) => {
                if etcd.keep_alive(l).await? {
                    self.last_keepalive = Instant::now();
                    l
                } else {
                    warn!(node = %self.p.node, "lease expired; joining again with a new one");
                    self.lease = None;
                    self.registered = false;
                    self.demote().await;
                    return Ok(());
                }
            }
            None => {
                let l = etcd.grant(ttl).await?;
                self.lease = Some(l);
                self.registered = false;
                self.last_keepalive = Instant::now();
                l
            }
        };
        // 2. Membership and votes, bound to the lease.
        if !self.registered {
            let me = Member {
                control: self.info.control.to_string(),
                dns: self.info.dns.clone(),
                since: crate::decide::unix_now(),
            };
            let value = serde_json::to_string(&me).expect("plain data");
            etcd.put(&self.p.keys.node(&self.p.node), &value, lease)
                .await?;
            self.dirty = self.votes.keys().cloned().collect();
            self.applied_rev = 0;
            self.registered = true;
            info!(node = %self.p.node, lease, "joined the cluster");
        }
        for k in self.dirty.clone() {
            let vote = Vote {
                healthy: self.votes.get(&k).copied().flatten(),
            };
            let value = serde_json::to_string(&vote).expect("plain data");
            etcd.put(&self.p.keys.vote(&k.0, &k.1, &self.p.node), &value, lease)
                .await?;
            self.dirty.remove(&k);
        }
        // 3. Who is alive, what each sees, and what that adds up to.
        let members = etcd.get_prefix(&self.p.keys.nodes()).await?;
        let obs = etcd.get_prefix(&self.p.keys.votes()).await?;
        self.tally(&members, &obs).await;
        // 4. The shared state: a follower answers it.
        self.follow_state().await?;
        // 5. The election.
        let leader = etcd.get(&self.p.keys.leader()).await?;
        match leader {
            None => {
                let won = etcd
                    .txn(
                        &[Compare::CreateRevision(self.p.keys.leader(), 0)],
                        &[Op::Put {
                            key: self.p.keys.leader(),
                            value: self.p.node.clone(),
                            lease,
                        }],
                        &[],
                    )
                    .await?;
                if won {
                    if let Some(kv) = etcd.get(&self.p.keys.leader()).await? {
                        if kv.value == self.p.node && kv.lease == lease {
                            // Answer the latest agreed state before deciding.
                            self.follow_state().await?;
                            self.leader = Some(kv.value.clone());
                            self.promote(kv.create_revision).await;
                        }
                    }
                }
            }
            Some(kv) => {
                if kv.value == self.p.node && kv.lease == lease {
                    self.promote(kv.create_revision).await;
                } else {
                    self.demote().await;
                    if kv.value == self.p.node {
                        // This node's key from a lease it lost (etcd was away):
                        // remove it, so that the election does not wait for
                        // that lease to run out.
                        etcd.txn(
                            &[Compare::CreateRevision(
                                self.p.keys.leader(),
                                kv.create_revision,
                            )],
                            &[Op::Delete(self.p.keys.leader())],
                            &[],
                        )
                        .await?;
                        info!(node = %self.p.node, "removed its stale leader key; new election");
                    }
                }
                self.leader = Some(kv.value);
            }
        }
        // 6. The shared history (leader only, fenced like the state).
        while self.role == Role::Leader {
            let Some(e) = self.history.front() else {
                break;
            };
            let Some(fence) = *self.p.fence.lock().unwrap() else {
                break;
            };
            self.history_seq += 1;
            let key = format!(
                "{}{:020}-{}-{:06}",
                self.p.keys.history(),
                e.time,
                self.p.node,
                self.history_seq
            );
            let value = serde_json::to_string(e).expect("plain data");
            etcd.txn(
                &self.p.keys.fenced(fence, &self.p.node),
                &[Op::Put {
                    key,
                    value,
                    lease: 0,
                }],
                &[],
            )
            .await?;
            self.history.pop_front();
        }
        if self.role == Role::Follower {
            // Events of a leadership this node lost are not the cluster's.
            self.history.clear();
        }
        // 7. Members' remaining lease time, for status.
        if self.last_ttls.is_none_or(|t| t.elapsed() >= TTL_EVERY) {
            let mut ttls = HashMap::new();
            for (name, _, lease) in &self.members {
                if let Ok(Some(t)) = etcd.time_to_live(*lease).await {
                    ttls.insert(name.clone(), t);
                }
            }
            self.ttls = ttls;
            self.last_ttls = Some(Instant::now());
        }
        Ok(())
    }

    /// Apply a changed shared state (followers; the leader wrote it).
    async fn follow_state(&mut self) -> Result<(), EtcdError> {
        let Some(kv) = self.p.etcd.get(&self.p.keys.state()).await? else {
            return Ok(());
        };
        if kv.mod_revision != self.state_rev {
            self.state_rev = kv.mod_revision;
            if self.role == Role::Leader {
                // The leader wrote it and serves it already.
                self.served_rev = kv.mod_revision;
                return Ok(());
            }
            match serde_json::from_str(&kv.value) {
                Ok(state) => {
                    let (reply, applied) = oneshot::channel();
                    let cmd = Command::ClusterApply {
                        state: Box::new(state),
                        reply,
                    };
                    if self.controller.commands.send(cmd).await.is_ok() {
                        self.applying = Some((kv.mod_revision, applied));
                    }
                }
                Err(e) => {
                    warn!(error = %e, "the shared state in etcd does not parse; not applied")
                }
            }
        }
        if let Some((rev, applied)) = self.applying.as_mut() {
            // Usually applied within a few milliseconds; otherwise checked
            // again at the next step.
            match tokio::time::timeout(APPLY_WAIT, applied).await {
                Ok(Ok(())) => {
                    self.served_rev = *rev;
                    self.applying = None;
                }
                Ok(Err(_)) => self.applying = None,
                Err(_) => {}
            }
        }
        // Tell the leader which state this node answers (it waits for
        // every member before it reports an operator's change as done).
        if self.role == Role::Follower && self.applied_rev != self.served_rev {
            if let Some(lease) = self.lease {
                let key = self.p.keys.applied_by(&self.p.node);
                let rev = self.served_rev.to_string();
                self.p.etcd.put(&key, &rev, lease).await?;
                self.applied_rev = self.served_rev;
            }
        }
        Ok(())
    }

    /// Count the live nodes' votes into agreed verdicts; tell the
    /// controller when they change.
    async fn tally(&mut self, members: &[Kv], obs: &[Kv]) {
        let nodes = self.p.keys.nodes();
        self.members = members
            .iter()
            .filter_map(|kv| {
                let name = kv.key.strip_prefix(&nodes)?.to_string();
                let m: Member = serde_json::from_str(&kv.value).ok()?;
                Some((name, m, kv.lease))
            })
            .collect();
        let live: BTreeSet<&str> = self.members.iter().map(|(n, _, _)| n.as_str()).collect();
        let mut votes: HashMap<TargetKey, BTreeMap<String, Option<bool>>> = HashMap::new();
        let prefix = self.p.keys.votes();
        for kv in obs {
            let Some(rest) = kv.key.strip_prefix(&prefix) else {
                continue;
            };
            let mut parts = rest.rsplitn(3, '/');
            let (Some(node), Some(target), Some(service)) =
                (parts.next(), parts.next(), parts.next())
            else {
                continue;
            };
            if !live.contains(node) {
                continue;
            }
            let vote: Option<bool> = serde_json::from_str::<Vote>(&kv.value)
                .ok()
                .and_then(|v| v.healthy);
            votes
                .entry((service.to_string(), target.to_string()))
                .or_default()
                .insert(node.to_string(), vote);
        }
        let mut agreed = BTreeMap::new();
        let mut views = Vec::new();
        for key in &self.p.targets {
            let mut v = votes.remove(key).unwrap_or_default();
            for n in &live {
                v.entry(n.to_string()).or_insert(None);
            }
            let needed = self
                .p
                .quorum
                .get(&key.0)
                .copied()
                .unwrap_or_default()
                .needed(live.len());
            let verdict = agree(&v, needed);
            agreed.insert(key.clone(), verdict);
            views.push(VerdictView {
                service: key.0.clone(),
                target: key.1.clone(),
                needed,
                votes: v,
                agreed: verdict,
            });
        }
        self.verdict_views = views;
        if agreed != self.agreed {
            let verdicts = agreed
                .iter()
                .map(|((s, t), v)| (s.clone(), t.clone(), *v))
                .collect();
            self.agreed = agreed;
            let _ = self
                .controller
                .commands
                .send(Command::ClusterVerdicts { verdicts })
                .await;
        }
    }

    fn publish_view(&self) {
        let mut v = self.p.view.lock().unwrap();
        v.role = match self.role {
            Role::Leader => "leader",
            _ => "follower",
        }
        .into();
        v.connected = self.connected;
        v.leader = if self.connected {
            self.leader.clone()
        } else {
            None
        };
        v.last_error = self.last_error.clone();
        v.members = self
            .members
            .iter()
            .map(|(name, m, _)| MemberView {
                node: name.clone(),
                control: Some(m.control.clone()),
                lease_ttl: self.ttls.get(name).copied(),
                since: Some(m.since),
            })
            .collect();
        v.verdicts = self.verdict_views.clone();
    }
}
