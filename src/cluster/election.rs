//! The election: campaign when there is no leader key, lead when it is
//! ours (bound to this node's lease), follow otherwise; and telling the
//! controller and the control API which role this node has.

use std::sync::atomic::Ordering;

use tracing::info;

use super::etcd::{Compare, EtcdError, Op};
use super::node::Node;
use crate::decide::{Command, Role};

impl Node {
    /// The election: campaign when there is no leader key, lead when it is
    /// ours, follow otherwise.
    pub(super) async fn elect(&mut self) -> Result<(), EtcdError> {
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
        }
        // Events of a leadership this node lost are not the cluster's.
        self.history.clear();
    }
}
