//! The election: campaign when there is no leader key, lead when it is
//! ours (bound to this node's lease), follow otherwise; and telling the
//! controller and the control API which role this node has.

use std::sync::atomic::Ordering;

use tracing::{info, warn};

use super::etcd::{Compare, EtcdError, Op};
use super::node::Node;
use crate::decide::state::PersistedState;
use crate::decide::{Command, Role};

impl Node {
    /// The election: campaign when there is no leader key, lead when it is
    /// ours, follow otherwise.
    pub(super) async fn elect(&mut self) -> Result<(), EtcdError> {
        let Some(lease) = self.lease.as_ref().map(|l| l.id) else {
            return Ok(());
        };
        if self.resync || self.p.resync.load(Ordering::SeqCst) {
            // Not before etcd's state is read afresh (`abdicate`, at the
            // next tick: the store may have given up the fence just now).
            return Ok(());
        }
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

    /// What this node answers may not be etcd's state: the store gave up
    /// the fence (a state write was refused, or its outcome is unknown: it
    /// may land later), or the controller withdrew a decision it could not
    /// write. The node steps down, reads etcd's whole state afresh (a
    /// full read at etcd's current revision, and a new watch from there:
    /// its own watch may not have brought its own landed write yet),
    /// answers that, and only then runs the election again. Until the read
    /// succeeds it decides nothing: it neither campaigns nor leads, even
    /// with the leader key still its own (a leader elected again from a
    /// watch behind etcd could publish another decision under a serial
    /// etcd already holds). With the key still its own it then leads again
    /// from etcd's state (a new fence; the store reads etcd again before
    /// its next write); otherwise it follows.
    pub(super) async fn abdicate(&mut self) -> Result<(), EtcdError> {
        // Raised by the store when it gives up the fence (`Store::give_up`).
        if self.p.resync.swap(false, Ordering::SeqCst) {
            if !self.resync {
                warn!(node = %self.p.node,
                    "what this node answers may not be etcd's state (a state write was refused \
                     or its outcome is unknown): stepping down, reading etcd's state afresh, \
                     then a new election");
            }
            self.resync = true;
        }
        if !self.resync {
            return Ok(());
        }
        self.demote().await;
        if self.lease.is_none() {
            // Joining comes first; the read follows at the next tick.
            return Ok(());
        }
        self.watch = None;
        self.sync().await?;
        self.apply_whole().await;
        self.resync = false;
        info!(node = %self.p.node, revision = self.rev, "answering etcd's state again");
        self.elect().await
    }

    /// Hand the controller the whole shared state as the watch has it.
    pub(super) async fn apply_whole(&mut self) {
        let state = PersistedState {
            services: self.model.services.clone(),
            serials: self.model.serials.clone(),
            generation: 0,
        };
        let (reply, _applied) = tokio::sync::oneshot::channel();
        let _ = self
            .controller
            .commands
            .send(Command::ClusterApply {
                state: Box::new(state),
                reply,
            })
            .await;
    }

    pub(super) async fn promote(&mut self, fence: i64) {
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

    pub(super) async fn demote(&mut self) {
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
            // A leader skips the shared state its watch brings (its own
            // writes); a deposed one may have skipped another leader's.
            // As a follower it must answer the whole shared state, not
            // only what changes from now on: else a service the new leader
            // moved stays as this node last had it until that service
            // changes again (the partition nemesis found web answered two
            // ways for 8 s this way). Not the state its watch has brought:
            // that may be older than its own last write (the nemesis found
            // it two writes behind although the watch's revision was past
            // them, and the node answered a serial back). So, as after an
            // unknown outcome, it reads etcd afresh before deciding again.
            self.resync = true;
        }
        // Events of a leadership this node lost are not the cluster's.
        self.history.clear();
    }
}
