//! This node's lease, kept alive on a task of its own.
//!
//! Why a task of its own: the lease is what keeps this node's membership,
//! votes and leadership alive, and it must not lapse because the node is
//! busy (writing a thousand votes after a restart, applying a large shared
//! state, waiting for the controller). The task renews it over etcd's
//! keep-alive stream at a third of its TTL, reopens the stream when it
//! breaks, and says the lease is lost only when etcd answered that it
//! expired, or when no renewal was confirmed for a whole TTL and etcd,
//! asked directly, says so or cannot be reached.

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
    // When etcd last confirmed a renewal.
    let mut renewed = Instant::now();
    loop {
        if renewed.elapsed() >= ttl {
            // No confirmation for a whole TTL (etcd slow, or this process
            // starved of CPU): ask etcd itself before giving the lease up.
            match etcd.time_to_live(id).await {
                Ok(Some(_)) => renewed = Instant::now(),
                Ok(None) => {
                    warn!(lease = id, "etcd says the lease expired: lost");
                    let _ = lost.send(true);
                    return;
                }
                Err(e) => {
                    warn!(lease = id, error = %e, "lease not renewed for its whole TTL and etcd unreachable: lost");
                    let _ = lost.send(true);
                    return;
                }
            }
        }
        let (mut keeper, mut answers) = match etcd.keep_alive(id).await {
            Ok(s) => s,
            Err(e) => {
                debug!(lease = id, error = %e, "keep-alive stream not open; retrying");
                tokio::time::sleep(Duration::from_millis(300)).await;
                continue;
            }
        };
        let mut tick = tokio::time::interval(every);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        // Renewals go out on schedule whatever the answers do; a slow answer
        // is waited for, not taken as a broken stream.
        loop {
            tokio::select! {
                _ = tick.tick() => {
                    if keeper.keep_alive().await.is_err() {
                        break;
                    }
                }
                a = answers.message() => match a {
                    Ok(Some(a)) if a.ttl() > 0 => renewed = Instant::now(),
                    Ok(Some(_)) => {
                        warn!(lease = id, "etcd says the lease expired");
                        let _ = lost.send(true);
                        return;
                    }
                    // The stream ended or broke: open it again.
                    _ => break,
                },
            }
            if renewed.elapsed() >= ttl {
                break;
            }
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}
