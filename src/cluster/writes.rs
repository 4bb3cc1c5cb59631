//! What this node writes besides its membership: its vote buckets, when a
//! verdict in them changed, and (as leader) the shared history, fenced;
//! both after a short coalescing window, in transactions of at most
//! [`PER_TXN`] operations.

use std::sync::atomic::Ordering;

use super::etcd::{EtcdError, Op};
use super::node::{Node, COALESCE};
use super::votes;
use crate::decide::Role;

/// Operations per transaction (etcd's default limit is 128).
pub(super) const PER_TXN: usize = 120;

impl Node {
    pub(super) fn note_verdict(&mut self, service: &str, target: &str, healthy: Option<bool>) {
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
    pub(super) async fn flush(&mut self) -> Result<(), EtcdError> {
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
    pub(super) async fn flush_history(&mut self) -> Result<(), EtcdError> {
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
}
