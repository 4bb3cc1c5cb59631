//! Every task of ggond in one set, stopped in one order.
//!
//! Why: a hand-written stop sequence (abort some tasks, give others a few
//! seconds, join a thread) has to be edited by every new stage and gets
//! the order wrong quietly. Here a stage says, when it is spawned, which
//! [`Phase`] it stops in, and listens to that phase's [`Shutdown`]
//! ([`Tasks::signal`]). [`Tasks::stop`] signals one phase at a time, gives
//! its tasks the phase's grace to end by themselves, aborts what is left,
//! and only then signals the next: the control API has stopped taking
//! changes before the controller saves its state, and DNS answers that
//! state until the very end.

use std::collections::HashMap;
use std::future::Future;
use std::time::Duration;

use tokio::task::{AbortHandle, Id, JoinHandle, JoinSet};
use tokio::time::Instant;
use tracing::{error, info, warn};

use crate::shutdown::{self, Shutdown, ShutdownTrigger};

/// When a stage stops, in this order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Phase {
    /// What takes requests from outside: the control API, whose requests
    /// in progress may finish (a client that sent half a request must not
    /// hold the stop up for long).
    Intake,
    /// What gives the controller work: health checks, the certificate
    /// audit, secondary zone transfers, the systemd watchdog.
    Producers,
    /// The cluster session: it gives its lease back, so this node's votes
    /// and leadership go at once rather than when the lease runs out.
    Cluster,
    /// The controller: it saves the state on its way out.
    Controller,
    /// What carries results out: NOTIFY, alerts, RFC 2136 publishing.
    Outbound,
    /// DNS answers: last, so the final state is served until the end and
    /// TCP answers in flight finish.
    Dns,
}

impl Phase {
    pub const ALL: [Phase; 6] = [
        Phase::Intake,
        Phase::Producers,
        Phase::Cluster,
        Phase::Controller,
        Phase::Outbound,
        Phase::Dns,
    ];

    /// How long its tasks have to end by themselves after the signal.
    pub fn grace(self) -> Duration {
        match self {
            Phase::Intake => Duration::from_secs(2),
            Phase::Cluster => Duration::from_secs(3),
            // A state write on a slow disk.
            Phase::Controller => Duration::from_secs(10),
            Phase::Producers | Phase::Outbound | Phase::Dns => Duration::from_secs(2),
        }
    }
}

struct Entry {
    phase: Phase,
    name: &'static str,
    abort: AbortHandle,
}

/// What [`Tasks::stop`] saw.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Stopped {
    /// Tasks that ended by themselves, in the order they were seen to end
    /// (phase by phase).
    pub ended: Vec<&'static str>,
    /// Tasks aborted after their phase's grace.
    pub aborted: Vec<&'static str>,
    /// Tasks that could not be aborted (a blocking thread) and were still
    /// running when ggond gave up waiting.
    pub left: Vec<&'static str>,
}

pub struct Tasks {
    set: JoinSet<()>,
    entries: HashMap<Id, Entry>,
    /// One stop signal per phase, in [`Phase::ALL`]'s order.
    triggers: Vec<(ShutdownTrigger, Shutdown)>,
}

impl Default for Tasks {
    fn default() -> Tasks {
        Tasks {
            set: JoinSet::new(),
            entries: HashMap::new(),
            triggers: Phase::ALL.iter().map(|_| shutdown::channel()).collect(),
        }
    }
}

impl Tasks {
    pub fn new() -> Tasks {
        Tasks::default()
    }

    /// The stop signal of `phase`, for a task (or a stage's own tasks) that
    /// stops in it.
    pub fn signal(&self, phase: Phase) -> Shutdown {
        let i = Phase::ALL
            .iter()
            .position(|p| *p == phase)
            .expect("every phase");
        self.triggers[i].1.clone()
    }

    /// Run `fut` until it ends; it must end on the shutdown signal.
    pub fn spawn(
        &mut self,
        phase: Phase,
        name: &'static str,
        fut: impl Future<Output = ()> + Send + 'static,
    ) {
        let abort = self.set.spawn(fut);
        self.entries
            .insert(abort.id(), Entry { phase, name, abort });
    }

    /// Run `f` on a thread of the blocking pool (it cannot be aborted: it
    /// must end on the shutdown signal).
    pub fn spawn_blocking(
        &mut self,
        phase: Phase,
        name: &'static str,
        f: impl FnOnce() + Send + 'static,
    ) {
        let abort = self.set.spawn_blocking(f);
        self.entries
            .insert(abort.id(), Entry { phase, name, abort });
    }

    /// Take in a task a stage spawned itself.
    pub fn adopt<T: Send + 'static>(
        &mut self,
        phase: Phase,
        name: &'static str,
        task: JoinHandle<T>,
    ) {
        let inner = task.abort_handle();
        self.spawn(phase, name, async move {
            // Aborting the wrapper alone would leave `task` running.
            let _guard = AbortOnDrop(inner);
            let _ = task.await;
        });
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Stop every phase in order: signal it, wait for its tasks, abort
    /// what outlives its grace.
    pub async fn stop(mut self) -> Stopped {
        let mut out = Stopped::default();
        for (i, phase) in Phase::ALL.into_iter().enumerate() {
            self.triggers[i].0.trigger();
            let deadline = Instant::now() + phase.grace();
            let mut aborted = false;
            while self.entries.values().any(|e| e.phase == phase) {
                let wait = if aborted {
                    // An aborted task ends at its next await; a blocking one
                    // cannot be aborted and is left behind after a second.
                    deadline + Duration::from_secs(1)
                } else {
                    deadline
                };
                match tokio::time::timeout_at(wait, self.set.join_next_with_id()).await {
                    Ok(Some(result)) => {
                        let (id, panic) = match result {
                            Ok((id, ())) => (id, None),
                            Err(e) => (e.id(), e.is_panic().then_some(())),
                        };
                        let Some(e) = self.entries.remove(&id) else {
                            continue;
                        };
                        if panic.is_some() {
                            error!(task = e.name, "task panicked");
                        }
                        if aborted && e.phase == phase {
                            out.aborted.push(e.name);
                        } else {
                            out.ended.push(e.name);
                        }
                    }
                    Ok(None) => break,
                    Err(_) if !aborted => {
                        let names = self.names(phase);
                        warn!(?phase, tasks = ?names, grace = ?phase.grace(),
                            "still running after the grace; aborting");
                        for e in self.entries.values().filter(|e| e.phase == phase) {
                            e.abort.abort();
                        }
                        aborted = true;
                    }
                    Err(_) => {
                        let names = self.names(phase);
                        error!(?phase, tasks = ?names, "could not be stopped; leaving them");
                        self.entries.retain(|_, e| e.phase != phase);
                        out.left.extend(names);
                    }
                }
            }
        }
        info!(ended = out.ended.len(), aborted = ?out.aborted, left = ?out.left, "every task ended");
        out
    }

    fn names(&self, phase: Phase) -> Vec<&'static str> {
        let mut names: Vec<_> = self
            .entries
            .values()
            .filter(|e| e.phase == phase)
            .map(|e| e.name)
            .collect();
        names.sort_unstable();
        names
    }
}

struct AbortOnDrop(AbortHandle);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

#[cfg(test)]
mod tests {
    use std::sync::{Arc, Mutex};

    use super::*;
    use crate::shutdown;

    /// A task that, on the signal, waits `linger` and then notes its name.
    fn stage(
        log: &Arc<Mutex<Vec<&'static str>>>,
        mut stop: shutdown::Shutdown,
        name: &'static str,
        linger: Duration,
    ) -> impl Future<Output = ()> + Send + 'static {
        let log = log.clone();
        async move {
            stop.requested().await;
            tokio::time::sleep(linger).await;
            log.lock().unwrap().push(name);
        }
    }

    #[tokio::test(start_paused = true)]
    async fn phases_stop_in_order_and_a_stuck_task_is_aborted() {
        let log = Arc::new(Mutex::new(Vec::new()));
        let mut tasks = Tasks::new();
        let ms = Duration::from_millis;
        let mut add = |phase, name, linger| {
            let f = stage(&log, tasks.signal(phase), name, linger);
            tasks.spawn(phase, name, f);
        };
        // Spawned out of order; the later phases would end at once.
        add(Phase::Dns, "dns", ms(0));
        add(Phase::Controller, "controller", ms(300));
        add(Phase::Intake, "api", ms(500));
        tasks.spawn(Phase::Producers, "stuck", std::future::pending());
        let adopted = tokio::spawn(stage(&log, tasks.signal(Phase::Outbound), "notify", ms(0)));
        tasks.adopt(Phase::Outbound, "notify", adopted);
        assert_eq!(tasks.len(), 5);
        let stopped = tasks.stop().await;
        assert_eq!(stopped.aborted, vec!["stuck"]);
        assert!(stopped.left.is_empty());
        assert_eq!(stopped.ended, vec!["api", "controller", "notify", "dns"]);
        // Each phase was signalled only once the one before had ended.
        assert_eq!(
            *log.lock().unwrap(),
            vec!["api", "controller", "notify", "dns"]
        );
    }

    #[tokio::test]
    async fn a_thread_stops_on_its_phase_signal() {
        let mut tasks = Tasks::new();
        let (stop, earlier) = (tasks.signal(Phase::Controller), tasks.signal(Phase::Intake));
        tasks.spawn_blocking(Phase::Controller, "thread", move || {
            while !stop.is_requested() {
                std::thread::sleep(Duration::from_millis(1));
            }
            assert!(
                earlier.is_requested(),
                "the phase before was signalled first"
            );
        });
        let stopped = tasks.stop().await;
        assert_eq!(stopped.ended, vec!["thread"]);
    }
}
