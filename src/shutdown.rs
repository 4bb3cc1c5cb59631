//! One way to stop: every task of ggond listens to the same [`Shutdown`].
//!
//! Why one type: tasks used to watch a `watch::Receiver<bool>` in three
//! slightly different ways (one never woke when the sender was dropped) and
//! the UDP threads an `AtomicBool`. A task that misses the signal keeps the
//! process alive or, worse, keeps writing after state was saved. Here the
//! signal is a flag that blocking threads can poll for the cost of one
//! relaxed load, plus a channel async tasks can await; dropping the
//! [`ShutdownTrigger`] counts as a shutdown, so no task outlives its owner.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use tokio::sync::watch;

/// Held by the owner of the tasks; [`ShutdownTrigger::trigger`] (or dropping
/// it) stops every [`Shutdown`] made from it.
#[derive(Debug)]
pub struct ShutdownTrigger {
    flag: Arc<AtomicBool>,
    tx: watch::Sender<()>,
}

/// A task's view of the shutdown signal. Cheap to clone.
#[derive(Debug, Clone)]
pub struct Shutdown {
    flag: Arc<AtomicBool>,
    rx: watch::Receiver<()>,
}

/// A new trigger and the first listener.
pub fn channel() -> (ShutdownTrigger, Shutdown) {
    let flag = Arc::new(AtomicBool::new(false));
    let (tx, rx) = watch::channel(());
    (
        ShutdownTrigger {
            flag: flag.clone(),
            tx,
        },
        Shutdown { flag, rx },
    )
}

impl ShutdownTrigger {
    /// Ask every listener to stop. Idempotent.
    pub fn trigger(&self) {
        self.flag.store(true, Ordering::Release);
        self.tx.send_replace(());
    }

    /// Another listener (for a task started later).
    pub fn subscribe(&self) -> Shutdown {
        Shutdown {
            flag: self.flag.clone(),
            rx: self.tx.subscribe(),
        }
    }
}

impl Drop for ShutdownTrigger {
    fn drop(&mut self) {
        self.trigger();
    }
}

impl Shutdown {
    /// Has shutdown been asked for? One relaxed load: fit for a hot loop.
    #[inline]
    pub fn is_requested(&self) -> bool {
        self.flag.load(Ordering::Relaxed)
    }

    /// Resolves once shutdown is asked for (or the trigger is gone); at
    /// once if it already was. Cancel-safe, so it can sit in `select!`.
    pub async fn requested(&mut self) {
        loop {
            if self.flag.load(Ordering::Acquire) {
                return;
            }
            if self.rx.changed().await.is_err() {
                return;
            }
        }
    }

    /// A listener that never fires, for tests and tools that stop by
    /// dropping their tasks.
    pub fn never() -> Shutdown {
        let (trigger, s) = channel();
        std::mem::forget(trigger);
        s
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[tokio::test]
    async fn trigger_wakes_every_listener_and_later_ones_at_once() {
        let (trigger, mut a) = channel();
        let mut b = a.clone();
        assert!(!a.is_requested());
        let waiter = tokio::spawn(async move { b.requested().await });
        trigger.trigger();
        tokio::time::timeout(Duration::from_secs(1), waiter)
            .await
            .expect("woken")
            .unwrap();
        assert!(a.is_requested());
        tokio::time::timeout(Duration::from_secs(1), a.requested())
            .await
            .expect("already requested resolves at once");
        let mut late = trigger.subscribe();
        tokio::time::timeout(Duration::from_secs(1), late.requested())
            .await
            .expect("a later listener sees it too");
    }

    #[tokio::test]
    async fn dropping_the_trigger_is_a_shutdown() {
        let (trigger, mut s) = channel();
        drop(trigger);
        assert!(s.is_requested());
        tokio::time::timeout(Duration::from_secs(1), s.requested())
            .await
            .expect("resolves");
    }

    #[tokio::test]
    async fn never_does_not_fire() {
        let mut s = Shutdown::never();
        assert!(!s.is_requested());
        assert!(
            tokio::time::timeout(Duration::from_millis(50), s.requested())
                .await
                .is_err()
        );
    }
}
