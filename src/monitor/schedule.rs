//! When each target is checked: one scheduler task per probe set, a queue
//! of due times, and a task per check in flight.
//!
//! Why not a task per target: an idle tokio task holding a probe's loop
//! (its select of shutdown, channel and sleep, its check's config) was
//! about 1.3 KB, 77 MB at 60,000 targets, for something that is a due time
//! and an index most of its life. Here an idle probe is a queue entry (16
//! bytes) beside its key and config; only a check in flight has a task,
//! as before (one spawn per check, no more).

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use rand::Rng as _;
use tokio::sync::mpsc;
use tokio::task::{JoinHandle, JoinSet};
use tokio::time::Instant;

use super::{run_check, CheckOutcome, Checker, Observation, ProbeKey, MIN_INTERVAL};
use crate::config::CheckConfig;
use crate::shutdown::Shutdown;

/// How many check starts a second the first round is spread to, at most.
pub const STARTS_PER_SECOND: f64 = 2_000.0;

/// Run each (service, target)'s check every `interval` (+ random jitter up
/// to `jitter`) and send an [`Observation`] on `tx`.
///
/// The first run comes after a random delay in `[0, jitter]`, plus, with
/// many probes, a random phase that spreads their starts at no more than
/// [`STARTS_PER_SECOND`] (at most one interval): with 20,000 targets on one
/// interval, starting every check within the same 100 ms burst overflowed
/// the listeners' accept queues (false failures) and starved every other
/// task of the runtime, a cluster node's lease keep-alive among them.
///
/// Intervals are measured start to start; a check that takes longer than
/// its interval is followed by the next one at once, never by a burst, and
/// a target is never checked twice at once. Checks run independently: each
/// has its own task and its own timeout (a hung target delays no other),
/// so even a panicking check only yields a failed outcome. Everything stops at shutdown, when
/// `tx` is closed, or when the returned task is aborted; stopping cancels
/// the checks in flight (and kills their processes, for exec checks).
/// Must be called from within a Tokio runtime.
pub fn spawn_probes(
    checker: Arc<Checker>,
    probes: Vec<(ProbeKey, CheckConfig)>,
    tx: mpsc::Sender<Observation>,
    shutdown: Shutdown,
) -> Vec<JoinHandle<()>> {
    vec![tokio::spawn(schedule(checker, probes, tx, shutdown))]
}

/// Due times, soonest first: (when, probe index).
type Queue = BinaryHeap<Reverse<(Instant, usize)>>;

async fn schedule(
    checker: Arc<Checker>,
    probes: Vec<(ProbeKey, CheckConfig)>,
    tx: mpsc::Sender<Observation>,
    mut shutdown: Shutdown,
) {
    let spread = Duration::from_secs_f64(probes.len() as f64 / STARTS_PER_SECOND);
    let now = Instant::now();
    let mut due: Queue = probes
        .iter()
        .enumerate()
        .map(|(i, (_, cfg))| {
            let phase = random_up_to(spread.min(interval(cfg)));
            Reverse((now + phase + random_up_to(cfg.jitter), i))
        })
        .collect();
    // Checks in flight: each its own task (a panic in it is its task's
    // end, not the scheduler's), and which probe it is, when it was due
    // and when it started.
    let mut running: JoinSet<CheckOutcome> = JoinSet::new();
    let mut flight: HashMap<tokio::task::Id, (usize, Instant, Instant)> = HashMap::new();
    let far = now + Duration::from_secs(86_400 * 365);
    loop {
        let next = due.peek().map_or(far, |Reverse((t, _))| *t);
        tokio::select! {
            biased;
            () = shutdown.requested() => return,
            () = tx.closed() => return,
            Some(done) = running.join_next_with_id(), if !running.is_empty() => {
                let (id, outcome) = match done {
                    Ok((id, outcome)) => (id, Ok(outcome)),
                    Err(e) => (e.id(), Err(e)),
                };
                let Some((i, was_due, started)) = flight.remove(&id) else { continue };
                let outcome = outcome.unwrap_or_else(|e| failed(&e, started));
                let obs = Observation { key: probes[i].0.clone(), outcome };
                // As a probe of its own would: the next check of this
                // target waits until the controller takes this one.
                tokio::select! {
                    biased;
                    () = shutdown.requested() => return,
                    sent = tx.send(obs) => if sent.is_err() { return },
                }
                let cfg = &probes[i].1;
                let at = (was_due + interval(cfg) + random_up_to(cfg.jitter)).max(Instant::now());
                due.push(Reverse((at, i)));
            }
            () = tokio::time::sleep_until(next), if next < far => {
                let now = Instant::now();
                while let Some(Reverse((t, i))) = due.peek().copied() {
                    if t > now {
                        break;
                    }
                    due.pop();
                    let (checker, cfg) = (checker.clone(), &probes[i].1);
                    let (kind, timeout) = (cfg.kind.clone(), cfg.timeout);
                    let task = running.spawn(async move { run_check(&checker, &kind, timeout).await });
                    flight.insert(task.id(), (i, t, now));
                }
            }
        }
    }
}

fn interval(cfg: &CheckConfig) -> Duration {
    cfg.interval.max(MIN_INTERVAL)
}

/// The outcome of a check whose task did not finish: it panicked (inside a
/// library) or was cancelled.
fn failed(e: &tokio::task::JoinError, started: Instant) -> CheckOutcome {
    CheckOutcome {
        ok: false,
        detail: if e.is_panic() {
            "check panicked".into()
        } else {
            "check cancelled".into()
        },
        latency: started.elapsed(),
        at: SystemTime::now(),
    }
}

pub(super) fn random_up_to(max: Duration) -> Duration {
    if max.is_zero() {
        return Duration::ZERO;
    }
    let nanos = u64::try_from(max.as_nanos()).unwrap_or(u64::MAX);
    Duration::from_nanos(rand::rng().random_range(0..=nanos))
}
