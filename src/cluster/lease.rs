//! This node's lease, kept alive on a task of its own.
//!
//! Why a task of its own: the lease is what keeps this node's membership,
//! votes and leadership alive, and it must not lapse because the node is
//! busy (writing a thousand votes after a restart, applying a large shared
//! state, waiting for the controller). The task renews it over etcd's
//! keep-alive stream at a third of its TTL, reopens the stream when it
//! breaks, and says the lease is lost only when etcd answered that it
//! expired or nothing was renewed for a whole TTL.

use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::watch;
use tracing::{debug, warn};

use super::etcd::{Etcd, EtcdError};

pub struct Lease {
    pub id: i64,
    /// Becomes true once the lease is lost.
    pub lost: watch::Receiver<bool>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for Lease {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Grant a lease of `ttl` and keep it alive until it is dropped or lost.
pub async fn grant(etcd: Arc<Etcd>, ttl: Duration) -> Result<Lease, EtcdError> {
    let id = etcd.grant(ttl).await?;
    let (tx, lost) = watch::channel(false);
    let task = tokio::spawn(keep(etcd, id, ttl, tx));
    Ok(Lease { id, lost, task })
}

async fn keep(etcd: Arc<Etcd>, id: i64, ttl: Duration, lost: watch::Sender<bool>) {
    let every = ttl / 3;
    let mut renewed = Instant::now();
    let expired = |renewed: Instant| renewed.elapsed() >= ttl;
    loop {
        if expired(renewed) {
            warn!(lease = id, "lease not renewed for its whole TTL: lost");
            let _ = lost.send(true);
            return;
        }
        let (mut keeper, mut answers) = match etcd.keep_alive(id).await {
            Ok(s) => s,
            Err(e) => {
                debug!(lease = id, error = %e, "keep-alive stream not open; retrying");
                tokio::time::sleep(Duration::from_millis(300)).await;
                continue;
            }
        };
        loop {
            if keeper.keep_alive().await.is_err() {
                break;
            }
            match tokio::time::timeout(every.max(Duration::from_millis(500)), answers.message())
                .await
            {
                Ok(Ok(Some(a))) if a.ttl() > 0 => renewed = Instant::now(),
                Ok(Ok(Some(_))) => {
                    warn!(lease = id, "etcd says the lease expired");
                    let _ = lost.send(true);
                    return;
                }
                // The stream broke or went silent: open it again.
                _ => break,
            }
            tokio::time::sleep(every).await;
            if expired(renewed) {
                break;
            }
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}
