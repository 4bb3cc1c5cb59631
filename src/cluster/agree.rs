//! Nodes that check they agree: this node's digests in etcd, and every
//! member's compared with the leader's (see [`super::digest`]).
//!
//! Written at join (bound to the new lease) and after a reload that
//! changed them; compared whenever a member's digests, the membership or
//! the leader change. What differs is in the status view (`ggon-ctl
//! cluster`, the status page, `ggon_cluster_config_mismatch`), and the
//! services defined differently go to the controller
//! ([`crate::decide::Command::ClusterDisagree`]).

use std::collections::BTreeMap;
use std::sync::Arc;

use tracing::{info, warn};

use super::digest::{differences, Digest};
use super::etcd::{EtcdError, Op};

/// The most digest bytes in one transaction (etcd refuses requests over
/// 1.5 MiB by default).
const TXN_BYTES: usize = 256 * 1024;
use super::node::Node;
use crate::config::Config;
use crate::decide::views::MismatchView;
use crate::decide::Command;

impl Node {
    /// Put this node's digests in etcd, bound to its lease: in as few
    /// transactions of at most [`TXN_BYTES`] as they fit (one below about
    /// 8,000 services), so others rarely see half of a change.
    pub(super) async fn publish_conf(&mut self) -> Result<(), EtcdError> {
        let Some(id) = self.lease.as_ref().map(|l| l.id) else {
            return Ok(());
        };
        let mut batch: Vec<Op> = Vec::new();
        let mut size = 0;
        for (k, value) in self.digest.chunks() {
            if size + value.len() > TXN_BYTES && !batch.is_empty() {
                self.p
                    .etcd
                    .txn(&[], &std::mem::take(&mut batch), &[])
                    .await?;
                size = 0;
            }
            size += value.len();
            let key = self.p.keys.conf_chunk(&self.p.node, k);
            batch.push(Op::Put {
                key,
                value,
                lease: id,
            });
        }
        if !batch.is_empty() {
            self.p.etcd.txn(&[], &batch, &[]).await?;
        }
        Ok(())
    }

    /// A reload: new digests (written if they changed) and the services
    /// whose votes this node counts.
    pub(super) async fn reconfigure(&mut self, cfg: &Arc<Config>) -> Result<(), EtcdError> {
        self.set_services(super::node::services_of(cfg));
        let digest = Digest::of(cfg);
        if digest != self.digest {
            info!(node = %self.p.node, "configuration digests changed: publishing them");
            self.digest = digest;
            self.publish_conf().await?;
        }
        Ok(())
    }

    /// Compare every live member's digests with the leader's (this node's
    /// own while no leader is known).
    pub(super) async fn check_agreement(&mut self) {
        let digests: BTreeMap<String, Digest> = self
            .model
            .members
            .keys()
            .filter_map(|n| Some((n.clone(), Digest::from_chunks(self.model.conf.get(n)?)?)))
            .collect();
        let leader = self.model.leader.as_ref().map(|l| l.value.clone());
        // The leader's digests, or this node's own while no leader's are known.
        let (reference, base) = match leader.and_then(|l| digests.get(&l).map(|d| (l, d))) {
            Some((name, d)) => (name, d),
            None => (self.p.node.clone(), &self.digest),
        };
        let mut mismatches = Vec::new();
        let mut services = BTreeMap::new();
        for (node, d) in &digests {
            if *node == reference {
                continue;
            }
            let diff = differences(base, d);
            if diff.lines.is_empty() {
                continue;
            }
            for s in diff.services {
                services.entry(s).or_insert_with(|| node.clone());
            }
            mismatches.push(MismatchView {
                node: node.clone(),
                reference: reference.clone(),
                differs: diff.lines,
            });
        }
        if mismatches != self.mismatches {
            for m in &mismatches {
                warn!(node = %m.node, leader = %m.reference, differs = ?m.differs,
                    "a node's configuration differs from the leader's");
            }
            if mismatches.is_empty() && !self.mismatches.is_empty() {
                info!("every node's configuration agrees with the leader's again");
            }
            self.mismatches = mismatches;
            self.view_dirty = true;
        }
        if services != self.disagree_sent {
            self.disagree_sent = services.clone();
            let _ = self
                .controller
                .commands
                .send(Command::ClusterDisagree { services })
                .await;
        }
    }
}
