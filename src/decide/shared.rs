//! Cluster mode, as the controller sees it: which role this node has, the
//! agreed health verdicts it decides on, and the shared state it writes
//! (as leader) or applies (as follower).
//!
//! The controller does not know etcd: the cluster stage implements
//! [`SharedState`] (fenced writes) and sends [`Command::ClusterRole`],
//! [`Command::ClusterVerdicts`] and [`Command::ClusterApply`]. Without a
//! cluster the role is [`Role::Single`] and nothing here is used.

use tracing::{info, warn};

use super::state::PersistedState;
use super::{Controller, Event, Now};
use crate::publish::ServiceRecords;

/// What this node may do.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// No cluster: this node decides and keeps its own state.
    Single,
    /// Cluster leader: decides, and writes the shared state (fenced).
    Leader,
    /// Cluster follower: answers the shared state, decides nothing.
    #[default]
    Follower,
}

impl std::fmt::Display for Role {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.pad(match self {
            Role::Single => "single",
            Role::Leader => "leader",
            Role::Follower => "follower",
        })
    }
}

/// Why a change could not be made durable.
#[derive(Debug, thiserror::Error)]
pub enum PersistError {
    #[error("cannot write the state file: {0}")]
    Local(#[from] std::io::Error),
    #[error(
        "this node is not the cluster's leader (leadership may just have changed): nothing was changed; retry"
    )]
    NotLeader,
    #[error("{}", shared_refusal(.0))]
    Shared(#[from] SharedError),
}

/// What an operator is told when the shared store did not take a change:
/// "nothing was changed" only when that is known.
fn shared_refusal(e: &SharedError) -> String {
    match e {
        SharedError::Unknown(_) => format!(
            "{e}: the change may or may not have been made; this node steps down and reads \
             etcd's state again. Check `ggon-ctl status` (or history) before retrying"
        ),
        _ => format!("the cluster store did not take the change ({e}): nothing was changed"),
    }
}

/// Why the cluster's shared store did not take a write.
#[derive(Debug, thiserror::Error)]
pub enum SharedError {
    #[error("this node does not hold the leadership")]
    NotLeader,
    #[error(
        "leadership lost or the shared state changed under this leader: the fenced write was refused"
    )]
    Fenced,
    /// etcd is at its space quota (NOSPACE alarm): it refuses every write
    /// until an operator makes room.
    #[error(
        "etcd is out of space: its NOSPACE alarm is raised and it refuses every write; make \
         room (etcdctl compact, etcdctl defrag on each member, etcdctl alarm disarm: see \
         docs/cluster.md)"
    )]
    NoSpace,
    /// The store could not be reached or refused the request (its words).
    #[error("{0}")]
    Store(String),
    /// The write was sent but etcd did not say whether it took it (no
    /// answer, or its own "request timed out"): it may land, or have
    /// landed.
    #[error("etcd did not say whether it took the change ({0})")]
    Unknown(String),
}

/// The shared store of a cluster, as the leader writes it.
pub trait SharedState: Send + Sync {
    /// Write the state if and only if this node still holds the leadership
    /// it was given (a deposed leader's write must fail).
    fn save(&self, state: &PersistedState) -> Result<(), SharedError>;
    /// Add an event to the shared history (leader only; best effort).
    fn record(&self, e: &Event);
    /// Append an accepted UPDATE to its zone's journal in the shared store
    /// at the entry's position, with the zone's new serial, if and only if
    /// this node still leads and that position is still free (so an
    /// UPDATE is written once, whatever leader changes happen around it).
    fn append_zone(
        &self,
        zone: &str,
        entry: &crate::publish::JournalEntry,
    ) -> Result<(), SharedError>;
    /// Write a zone's DNSSEC key set if and only if this node still leads
    /// and the key is still at revision `prev` (0: absent): a leader that
    /// has not yet seen the last one's key set cannot overwrite it. The
    /// revision it landed at.
    fn put_keyset(
        &self,
        zone: &str,
        set: &crate::sign::SharedKeySet,
        prev: i64,
    ) -> Result<i64, SharedError>;
}

/// One agreed verdict: (service, target) → healthy (None: no quorum yet).
pub type Verdicts = Vec<(String, String, Option<bool>)>;

impl Controller {
    pub(super) fn cluster_mode(&self) -> bool {
        self.shared.is_some()
    }

    /// May this node make decisions (policy, expiries, drills)?
    pub(super) fn decides(&self) -> bool {
        self.role != Role::Follower
    }

    pub(super) fn set_role(&mut self, role: Role, now: Now) {
        if self.role == role {
            return;
        }
        info!(from = ?self.role, to = ?role, "cluster role changed");
        self.role = role;
        self.publisher.set_remotes_active(role != Role::Follower);
        if role == Role::Leader {
            // The first leader of a new cluster brings its own state in
            // (migration from single-node mode); a later one writes back the
            // state it applied, under its own fence.
            if let Err(e) = self.persist() {
                warn!(error = %e, "new leader could not write the shared state");
            }
            // The key sets too (the first leader's own), so that a key roll
            // asked right after the election is not refused.
            let _ = self.share_keys();
            // Every service at once, published and written together: a
            // leader that takes over in the middle of a site failure moves
            // all the services its predecessor had not moved yet with one
            // write, not one each (a thousand writes of 0.1 s took minutes).
            let n = self.services.len();
            self.in_one_write(|c| (0..n).for_each(|si| c.evaluate(si, now)));
        }
        // Drills are run by the leader; a follower keeps the leader's (from
        // the shared state), so a new leader goes on with it.
    }

    /// The services some live node defines differently than the leader:
    /// said in the log once when it starts and ends; while it lasts their
    /// last agreed state is kept (no failover, no operator change).
    pub(super) fn set_disagreement(
        &mut self,
        services: std::collections::BTreeMap<String, String>,
        now: Now,
    ) {
        for (s, node) in &services {
            if !self.disagree.contains_key(s) {
                warn!(service = %s, node = %node,
                    "service defined differently on another node: keeping its last agreed state, refusing changes to it until the nodes agree");
            }
        }
        let ended: Vec<usize> = self
            .disagree
            .keys()
            .filter(|s| !services.contains_key(*s))
            .filter_map(|s| self.by_name.get(s).copied())
            .collect();
        for &si in &ended {
            info!(service = %self.services[si].name, "every node defines the service alike again");
        }
        self.disagree = services;
        if self.decides() {
            self.in_one_write(|c| ended.into_iter().for_each(|si| c.evaluate(si, now)));
        }
    }

    pub(super) fn set_verdicts(&mut self, verdicts: Verdicts, now: Now) {
        let mut touched = Vec::new();
        for (service, target, healthy) in verdicts {
            let Some(&si) = self.by_name.get(&service) else {
                continue;
            };
            let Some(ti) = self.services[si].target(&target) else {
                continue;
            };
            let t = &mut self.services[si].targets[ti];
            if t.agreed != healthy {
                info!(service = %service, target = %target, ?healthy, "agreed health changed");
                t.agreed = healthy;
                t.agreed_since = Some(now.at);
                touched.push(si);
            }
        }
        touched.dedup();
        if self.decides() {
            self.in_one_write(|c| touched.into_iter().for_each(|si| c.evaluate(si, now)));
        }
    }

    /// At start, before the first query: answer the cluster's agreed
    /// state rather than this node's own last copy of it.
    pub fn start_from_shared(&mut self, state: PersistedState) {
        self.apply_shared(state, super::Now::system());
    }

    /// A follower answers what the cluster agreed: active targets, pins,
    /// drains and the zones' serials.
    pub(super) fn apply_shared(&mut self, state: PersistedState, now: Now) {
        if self.role == Role::Leader {
            return;
        }
        let mut changed: Vec<(hickory_proto::rr::Name, ServiceRecords)> = Vec::new();
        let mut regional = Vec::new();
        for svc in &mut self.services {
            let Some(s) = state.services.get(&svc.name) else {
                continue;
            };
            let before = svc.active();
            // Drills are kept, not acted on (a follower decides nothing): a
            // new leader goes on with them and ends them at their deadline.
            let (zone, regions) = svc.follow(s, now);
            if regions {
                regional.push((svc.fqdn.clone(), svc.ttl, svc.regional_records()));
            }
            if zone {
                info!(service = %svc.name, from = %svc.targets[before].name,
                    to = %svc.targets[svc.active()].name, "following the cluster's decision");
                changed.push((svc.fqdn.clone(), svc.records(svc.active())));
            }
        }
        // Live at once, even when no zone changes (a region's pin alone).
        for (fqdn, ttl, records) in regional {
            self.publisher.publish_regional(&fqdn, ttl, records);
        }
        self.publisher.publish_at(changed, &state.serials);
        // The local copy (what a restart answers if etcd is away) is written
        // at the next tick, not before this node tells the leader it
        // answers the change: at 10,000 services it is a file of megabytes.
        self.local_copy_due.set(true);
    }

    /// Write the local copy of the agreed state if an apply left it due.
    pub(super) fn save_local_copy(&mut self) {
        if self.local_copy_due.take() {
            if let Err(e) = self.store.save(&self.persisted()) {
                warn!(error = %e, "cannot write the local copy of the cluster state");
            }
        }
    }
}
