//! Keeping etcd small, and saying when it is not.
//!
//! etcd keeps every revision of every key until it is compacted, and its
//! database grows until its space quota (2 GiB by default), when it raises
//! the NOSPACE alarm and refuses every write. So the leader compacts the
//! revision history to a window (`[cluster] keep_revisions`) and prunes the
//! shared history by count and age (`history_keep`, `history_max_age`);
//! every node reads etcd's alarms and database size and says clearly, in
//! the log, `status` and `/metrics`, when etcd is near or at its quota and
//! what to run. Work here is a few calls every half minute (the alarm and
//! size every [`SPACE_EVERY`], and at once after a write refused for lack
//! of space, so that both the alarm and its end are reported within
//! seconds), whatever the number of services.

use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use tracing::{error, info, warn};

use super::etcd::{Compare, Op};
use super::node::Node;
use crate::decide::Role;

const EVERY: Duration = Duration::from_secs(30);
/// How often etcd's alarms and database size are read: two small calls.
pub(super) const SPACE_EVERY: Duration = Duration::from_secs(5);
/// A database past this share of its quota is "near" it.
const NEAR: f64 = 0.8;

impl Node {
    pub(super) async fn housekeep(&mut self) {
        if self
            .space_checked
            .is_none_or(|t| t.elapsed() >= SPACE_EVERY)
        {
            self.space_checked = Some(Instant::now());
            self.check_space().await;
        }
        if self.housekeeping.elapsed() < EVERY && self.compacted != 0 {
            return;
        }
        self.housekeeping = Instant::now();
        if self.role == Role::Leader {
            self.compact().await;
            self.prune_history().await;
        }
    }

    async fn check_space(&mut self) {
        let stats = &self.p.stats;
        if let Ok(alarms) = self.p.etcd.alarms().await {
            let nospace = alarms.iter().any(|a| a == "NOSPACE");
            let was = stats.nospace.swap(nospace, Ordering::Relaxed);
            if nospace && !was {
                error!("ALARM: etcd is out of space (NOSPACE): every change is refused until it is \
                    compacted, defragmented and the alarm disarmed \
                    (etcdctl compact REV; etcdctl defrag; etcdctl alarm disarm; see docs/cluster.md)");
            } else if was && !nospace {
                info!("etcd's NOSPACE alarm is cleared");
            }
        }
        if let Ok((size, quota)) = self.p.etcd.db_size().await {
            let before = stats.db_size.swap(size, Ordering::Relaxed);
            if quota > 0 {
                stats.db_quota.store(quota, Ordering::Relaxed);
            }
            let quota = stats.db_quota.load(Ordering::Relaxed);
            let near = |size: i64| quota > 0 && size as f64 > NEAR * quota as f64;
            // Said when it becomes true, not at every check.
            if near(size) && !near(before) {
                warn!(
                    size,
                    quota,
                    "etcd's database is near its space quota: compact and defragment it \
                    (etcdctl defrag), or raise --quota-backend-bytes"
                );
            }
        }
    }

    /// Forget revisions older than the window (values stay).
    async fn compact(&mut self) {
        // etcd's own current revision (the watch's last one can be behind
        // it while events are still on their way).
        let rev = match self.p.etcd.revision().await {
            Ok(r) => r.max(self.rev),
            Err(_) => self.rev,
        };
        let target = rev - self.p.keep_revisions;
        if target <= self.compacted.max(0) {
            if self.compacted == 0 {
                self.compacted = -1;
            }
            return;
        }
        match self.p.etcd.compact(target).await {
            Ok(()) => {
                info!(revision = target, "compacted etcd's revision history");
                self.compacted = target;
            }
            // Already compacted further (by etcd's own auto-compaction).
            Err(e) if e.to_string().contains("compacted") => self.compacted = target,
            Err(e) => warn!(error = %e, "could not compact etcd's revision history"),
        }
    }

    /// Keep at most `history_keep` events, none older than `history_max_age`.
    async fn prune_history(&mut self) {
        let Some(fence) = *self.p.fence.lock().unwrap() else {
            return;
        };
        let keys = &self.p.keys;
        let prefix = keys.history();
        let mut ops = Vec::new();
        let cutoff = crate::decide::unix_now().saturating_sub(self.p.history_max_age.as_secs());
        ops.push(Op::DeleteRange(
            prefix.clone(),
            format!("{prefix}{cutoff:020}").into_bytes(),
        ));
        if let Ok(count) = self.p.etcd.count_prefix(&prefix).await {
            let excess = count - self.p.history_keep as i64;
            if excess > 0 {
                if let Ok(first) = self.p.etcd.first_keys(&prefix, excess).await {
                    if let Some(last) = first.last() {
                        let mut end = last.as_bytes().to_vec();
                        end.push(0);
                        ops.push(Op::DeleteRange(prefix.clone(), end));
                    }
                }
            }
        }
        let cmp: Vec<Compare> = keys.fenced(fence, &self.p.node);
        if let Err(e) = self.p.etcd.txn(&cmp, &ops, &[]).await {
            warn!(error = %e, "could not prune the shared history");
        }
    }
}
