//! The check log: a small in-memory ring of recent check results per target,
//! for the status page's health lanes and latency sparklines.
//!
//! Owns: per target, the runs of one health state (up, down, unknown) over
//! the last [`WINDOW_MS`] and the latest [`MAX_SAMPLES`] check latencies.
//! It is fed by the controller through the [`EventSink`] hooks (`check` for
//! each result, `verdict` when the target's health changes), so what it shows
//! is the controller's health, not a second opinion; ops only reads it
//! ([`CheckLog::service`]).
//!
//! Bounded: at most [`MAX_RUNS`] runs and [`MAX_SAMPLES`] samples per
//! target, runs older than the window are dropped, and at most
//! [`MAX_TARGETS`] targets are kept (when full, the least recently checked
//! eighth goes, so targets removed by a reload age out).

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::{SystemTime, UNIX_EPOCH};

use super::EventSink;
use crate::monitor::CheckOutcome;

/// How far back the health lanes can go: 7 days (the status page's longest
/// range), in milliseconds. The runs are bounded by [`MAX_RUNS`] anyway.
pub const WINDOW_MS: u64 = 7 * 24 * 3600 * 1000;
/// Runs of one state kept per target (a flapping target loses its oldest).
pub const MAX_RUNS: usize = 512;
/// Latest check latencies kept per target (the sparkline).
pub const MAX_SAMPLES: usize = 120;
/// Targets kept in all.
pub const MAX_TARGETS: usize = 4096;

/// A stretch of time in one health state; `up: None` before the first verdict.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Run {
    /// Unix milliseconds.
    pub start: u64,
    pub end: u64,
    pub up: Option<bool>,
}

/// One check result.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Sample {
    /// Unix milliseconds when it finished.
    pub at: u64,
    pub latency_ms: f64,
    pub ok: bool,
}

/// One target's recent history.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct TargetLog {
    pub runs: VecDeque<Run>,
    pub samples: VecDeque<Sample>,
    /// Unix milliseconds of the last result (for the target bound).
    last: u64,
}

impl TargetLog {
    /// Extend the current run to `at`, or start one in state `up`.
    fn touch(&mut self, at: u64, up: Option<bool>) {
        match self.runs.back_mut() {
            Some(r) if r.up == up => r.end = r.end.max(at),
            Some(r) => {
                // The old state lasted until now; the new one starts here.
                r.end = r.end.max(at);
                let start = r.end;
                self.runs.push_back(Run {
                    start,
                    end: start,
                    up,
                });
            }
            None => self.runs.push_back(Run {
                start: at,
                end: at,
                up,
            }),
        }
        while self.runs.len() > MAX_RUNS {
            self.runs.pop_front();
        }
        let oldest = at.saturating_sub(WINDOW_MS);
        while self.runs.front().is_some_and(|r| r.end < oldest) {
            self.runs.pop_front();
        }
        self.last = self.last.max(at);
    }

    fn state(&self) -> Option<bool> {
        self.runs.back().and_then(|r| r.up)
    }
}

/// Every target's log. Written by the controller (through its sink), read
/// by the status page; the lock is held only to copy or append.
#[derive(Debug, Default)]
pub struct CheckLog {
    targets: Mutex<HashMap<(String, String), TargetLog>>,
    /// Unix milliseconds when it began (ggond's start): it knows nothing
    /// earlier, and the pictures say so.
    started: u64,
}

/// Drop the `n` least recently checked targets, in one pass. One at a
/// time, each new target scanned the whole map: with more targets than
/// [`MAX_TARGETS`] (20,000 at 10,000 services) that was every check, and
/// 11 % of a cluster node's CPU.
fn evict_oldest(map: &mut HashMap<(String, String), TargetLog>, n: usize) {
    let mut ages: Vec<u64> = map.values().map(|l| l.last).collect();
    let n = n.clamp(1, ages.len().max(1));
    if ages.is_empty() {
        return;
    }
    let (_, &mut cut, _) = ages.select_nth_unstable(n - 1);
    let mut left = n;
    map.retain(|_, l| {
        let drop = left > 0 && l.last <= cut;
        left -= usize::from(drop);
        !drop
    });
}

fn millis(t: SystemTime) -> u64 {
    t.duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

impl CheckLog {
    pub fn new() -> Arc<CheckLog> {
        Arc::new(CheckLog {
            started: millis(SystemTime::now()),
            ..CheckLog::default()
        })
    }

    /// Unix milliseconds when recording began.
    pub fn started(&self) -> u64 {
        self.started
    }

    fn with(&self, service: &str, target: &str, at: u64, f: impl FnOnce(&mut TargetLog)) {
        let mut map = self.targets.lock().expect("not poisoned");
        let key = (service.to_string(), target.to_string());
        if !map.contains_key(&key) && map.len() >= MAX_TARGETS {
            evict_oldest(&mut map, MAX_TARGETS / 8);
        }
        let log = map.entry(key).or_default();
        f(log);
        log.last = log.last.max(at);
    }

    /// A check finished: its latency, and the current state lasts until now.
    pub fn record(&self, service: &str, target: &str, outcome: &CheckOutcome) {
        let at = millis(outcome.at);
        self.with(service, target, at, |log| {
            let up = log.state();
            log.touch(at, up);
            log.samples.push_back(Sample {
                at,
                latency_ms: outcome.latency.as_secs_f64() * 1000.0,
                ok: outcome.ok,
            });
            while log.samples.len() > MAX_SAMPLES {
                log.samples.pop_front();
            }
        });
    }

    /// The target's health changed at `at` (unix milliseconds).
    pub fn health(&self, service: &str, target: &str, up: Option<bool>, at: u64) {
        self.with(service, target, at, |log| log.touch(at, up));
    }

    /// A copy of each target's log for `service`, by target name.
    pub fn service(&self, service: &str) -> HashMap<String, TargetLog> {
        let map = self.targets.lock().expect("not poisoned");
        map.iter()
            .filter(|((s, _), _)| s == service)
            .map(|((_, t), l)| (t.clone(), l.clone()))
            .collect()
    }
}

/// The controller feeds the log through the sink hooks.
impl EventSink for Arc<CheckLog> {
    fn check(&self, service: &str, target: &str, outcome: &CheckOutcome) {
        self.record(service, target, outcome);
    }

    fn verdict(&self, service: &str, target: &str, healthy: Option<bool>) {
        self.health(service, target, healthy, millis(SystemTime::now()));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn outcome(ms: u64, ok: bool) -> CheckOutcome {
        CheckOutcome {
            ok,
            detail: String::new(),
            latency: Duration::from_millis(3),
            at: UNIX_EPOCH + Duration::from_millis(ms),
        }
    }

    #[test]
    fn runs_follow_the_verdicts_and_checks_extend_them() {
        let log = CheckLog::new();
        let t0 = 10 * WINDOW_MS;
        log.record("s", "a", &outcome(t0, true));
        log.health("s", "a", Some(true), t0 + 1000);
        log.record("s", "a", &outcome(t0 + 2000, false));
        log.health("s", "a", Some(false), t0 + 3000);
        log.record("s", "a", &outcome(t0 + 4000, false));
        log.health("s", "a", Some(true), t0 + 5000);
        log.record("s", "a", &outcome(t0 + 6000, true));
        let a = &log.service("s")["a"];
        let got: Vec<(u64, u64, Option<bool>)> = a
            .runs
            .iter()
            .map(|r| (r.start - t0, r.end - t0, r.up))
            .collect();
        assert_eq!(
            got,
            [
                (0, 1000, None),
                (1000, 3000, Some(true)),
                (3000, 5000, Some(false)),
                (5000, 6000, Some(true))
            ]
        );
        assert_eq!(a.samples.len(), 4);
        assert!(log.service("other").is_empty());
    }

    #[test]
    fn bounded_per_target_in_time_and_in_targets() {
        let log = CheckLog::new();
        let t0 = 10 * WINDOW_MS;
        for i in 0..(2 * MAX_RUNS as u64) {
            log.health("s", "a", Some(i % 2 == 0), t0 + i);
            log.record("s", "a", &outcome(t0 + i, true));
        }
        let a = &log.service("s")["a"];
        assert_eq!(a.runs.len(), MAX_RUNS);
        assert_eq!(a.samples.len(), MAX_SAMPLES);
        // A day later, only the current run is left.
        log.record("s", "a", &outcome(t0 + 2 * WINDOW_MS, true));
        assert_eq!(log.service("s")["a"].runs.len(), 1);
        for i in 0..(MAX_TARGETS + 10) {
            log.record("s", &format!("t{i}"), &outcome(t0 + i as u64, true));
        }
        let map = log.targets.lock().unwrap();
        assert!(map.len() <= MAX_TARGETS);
        // The least recently checked went first; the latest are all kept.
        assert!(!map.contains_key(&("s".to_string(), "t0".to_string())));
        let last = format!("t{}", MAX_TARGETS + 9);
        assert!(map.contains_key(&("s".to_string(), last)));
        assert!(map.len() > MAX_TARGETS - MAX_TARGETS / 8);
    }
}
