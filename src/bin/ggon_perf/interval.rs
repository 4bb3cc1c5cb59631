//! What ggon-perf prints while it runs: the terminal progress line (stderr,
//! only on a terminal) and, with `-S SECONDS`, one line of statistics per
//! interval like dnsperf's `-S`, counted from copies of the counters taken at
//! the start of each interval (nothing is added to the per-query path).

use std::io::Write;

use super::stats::{Histogram, Stats};

const NS: u64 = 1_000_000_000;

/// The `\r`-rewritten progress line on a terminal, once a second.
pub struct Progress {
    next: u64,
    last: (u64, u64),
}

impl Progress {
    pub fn new() -> Self {
        Progress {
            next: NS,
            last: (0, 0),
        }
    }

    pub fn tick(&mut self, now: u64, s: &Stats, outstanding: usize) {
        if now < self.next {
            return;
        }
        let rate =
            (s.completed - self.last.1) as f64 * NS as f64 / (now - self.last.0).max(1) as f64;
        eprint!(
            "\r\x1b[K[{:>5.1}s] sent {}  completed {}  lost {}  outstanding {}  {:.0} qps",
            now as f64 / NS as f64,
            s.sent,
            s.completed,
            s.lost,
            outstanding,
            rate
        );
        self.last = (now, s.completed);
        self.next = now + NS;
    }

    pub fn clear(&self) {
        eprint!("\r\x1b[K");
    }
}

/// Interval statistics (`-S`).
pub struct Intervals {
    every: u64,
    next: u64,
    started: u64,
    sent: u64,
    completed: u64,
    lost: u64,
    latency: Histogram,
    to_stderr: bool,
    /// Lines printed so far.
    pub printed: u64,
}

fn ms(v: Option<f64>) -> String {
    v.map_or("-".to_string(), |v| format!("{:.3}", v / 1e6))
}

impl Intervals {
    pub fn new(every_ns: u64, to_stderr: bool) -> Self {
        let every = every_ns.max(1_000_000);
        Intervals {
            every,
            next: every,
            started: 0,
            sent: 0,
            completed: 0,
            lost: 0,
            latency: Histogram::new(),
            to_stderr,
            printed: 0,
        }
    }

    /// Nanoseconds until the next line is due.
    pub fn wake_in(&self, now: u64) -> u64 {
        self.next.saturating_sub(now)
    }

    /// Prints the line of the interval that ended at `now`, if one did.
    pub fn tick(&mut self, now: u64, s: &Stats) {
        if now >= self.next {
            self.emit(now, s);
            // A stalled loop skips the missed boundaries rather than
            // printing empty lines for them.
            self.next = (now / self.every + 1) * self.every;
        }
    }

    /// Prints the last, possibly shorter interval (at least 10 ms long).
    pub fn finish(&mut self, now: u64, s: &Stats) {
        if now >= self.started + 10_000_000 {
            self.emit(now, s);
        }
    }

    /// The line for the interval from the last line to `now`.
    pub fn line(&self, now: u64, s: &Stats) -> String {
        let secs = (now - self.started) as f64 / NS as f64;
        let answered = s.completed - self.completed;
        let h = s.latency.since(&self.latency);
        format!(
            "[{:>8.3}s] sent {}  answered {}  lost {}  qps {:.1}  latency ms avg {} p50 {} p99 {} max {}",
            now as f64 / NS as f64,
            s.sent - self.sent,
            answered,
            s.lost - self.lost,
            if secs > 0.0 { answered as f64 / secs } else { 0.0 },
            ms(h.mean()),
            ms(h.quantile(0.5).map(|v| v as f64)),
            ms(h.quantile(0.99).map(|v| v as f64)),
            ms(h.max().map(|v| v as f64)),
        )
    }

    fn emit(&mut self, now: u64, s: &Stats) {
        let line = self.line(now, s);
        if self.to_stderr {
            let _ = writeln!(std::io::stderr(), "{line}");
        } else {
            let mut out = std::io::stdout().lock();
            let _ = writeln!(out, "{line}");
            let _ = out.flush();
        }
        self.printed += 1;
        self.started = now;
        self.sent = s.sent;
        self.completed = s.completed;
        self.lost = s.lost;
        self.latency.copy_from(&s.latency);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn line_counts_only_the_interval() {
        let mut s = Stats::default();
        let mut iv = Intervals::new(NS, true);
        s.sent = 10;
        for _ in 0..8 {
            s.answered(0, false, 2_000_000);
        }
        s.lost = 2;
        let l = iv.line(NS, &s);
        assert!(l.contains("sent 10  answered 8  lost 2  qps 8.0"), "{l}");
        iv.started = NS;
        iv.sent = 10;
        iv.completed = 8;
        iv.lost = 2;
        iv.latency.copy_from(&s.latency);
        s.sent += 4;
        for _ in 0..4 {
            s.answered(0, false, 1_000_000);
        }
        let l = iv.line(3 * NS, &s);
        assert!(l.contains("sent 4  answered 4  lost 0  qps 2.0"), "{l}");
        assert!(l.contains("avg 1.000"), "{l}");
    }
}
