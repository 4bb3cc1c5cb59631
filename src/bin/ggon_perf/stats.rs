//! Counters, the latency histogram and the final report.
//!
//! Latencies go into a fixed log-linear histogram over nanoseconds: values
//! below 128 ns have a bucket each, above that every power of two is split
//! into 64 equal buckets, so any reported percentile is within 1/64 (1.6 %)
//! of the true value. Nothing grows per query.

use std::fmt::Write as _;

const SUB_BITS: u32 = 6;
const SUB: u64 = 1 << SUB_BITS; // 64 buckets per power of two
/// Covers every u64: the largest index is (63 - SUB_BITS) * SUB + 2 * SUB - 1.
const BUCKETS: usize = ((64 - SUB_BITS as usize) * SUB as usize) + SUB as usize;

pub struct Histogram {
    counts: Box<[u64]>,
    count: u64,
    sum: u128,
    min: u64,
    max: u64,
}

impl Default for Histogram {
    fn default() -> Self {
        Self::new()
    }
}

impl Histogram {
    pub fn new() -> Self {
        Histogram {
            counts: vec![0; BUCKETS].into_boxed_slice(),
            count: 0,
            sum: 0,
            min: u64::MAX,
            max: 0,
        }
    }

    #[inline]
    fn index(v: u64) -> usize {
        if v < 2 * SUB {
            return v as usize;
        }
        let shift = 63 - v.leading_zeros() - SUB_BITS; // >= 1
        let mantissa = v >> shift; // in [SUB, 2 * SUB)
        (shift as u64 * SUB + mantissa) as usize
    }

    /// Lowest and one-past-highest value of bucket `i`.
    fn bounds(i: usize) -> (u64, u64) {
        let i = i as u64;
        if i < 2 * SUB {
            return (i, i + 1);
        }
        let shift = i / SUB - 1;
        let mantissa = i - shift * SUB;
        let hi = ((mantissa as u128 + 1) << shift).min(u64::MAX as u128) as u64;
        (mantissa << shift, hi)
    }

    #[inline]
    pub fn record(&mut self, v: u64) {
        self.counts[Self::index(v)] += 1;
        self.count += 1;
        self.sum += v as u128;
        self.min = self.min.min(v);
        self.max = self.max.max(v);
    }

    /// What was recorded since `earlier` (a copy of this histogram taken
    /// before): min and max are those of the buckets, the sum is exact.
    pub fn since(&self, earlier: &Histogram) -> Histogram {
        let mut h = Histogram::new();
        for (i, (now, then)) in self.counts.iter().zip(earlier.counts.iter()).enumerate() {
            let c = now - then;
            if c > 0 {
                let (lo, hi) = Self::bounds(i);
                h.counts[i] = c;
                h.count += c;
                h.min = h.min.min(lo);
                h.max = h.max.max(hi - 1);
            }
        }
        h.sum = self.sum - earlier.sum;
        if h.count > 0 {
            h.min = h.min.max(self.min);
            h.max = h.max.min(self.max);
        }
        h
    }

    /// Copies `other` into this histogram without allocating.
    pub fn copy_from(&mut self, other: &Histogram) {
        self.counts.copy_from_slice(&other.counts);
        self.count = other.count;
        self.sum = other.sum;
        self.min = other.min;
        self.max = other.max;
    }

    #[cfg(test)]
    pub fn count(&self) -> u64 {
        self.count
    }

    pub fn min(&self) -> Option<u64> {
        (self.count > 0).then_some(self.min)
    }

    pub fn max(&self) -> Option<u64> {
        (self.count > 0).then_some(self.max)
    }

    pub fn mean(&self) -> Option<f64> {
        (self.count > 0).then(|| self.sum as f64 / self.count as f64)
    }

    /// The value at quantile `q` (0..=1): the smallest recorded value such
    /// that at least `ceil(q * count)` values are at or below it, reported as
    /// the middle of its bucket and clamped to the exact min and max.
    pub fn quantile(&self, q: f64) -> Option<u64> {
        if self.count == 0 {
            return None;
        }
        let rank = ((q.clamp(0.0, 1.0) * self.count as f64).ceil() as u64).max(1);
        if rank == 1 && q <= 0.0 {
            return Some(self.min);
        }
        if rank >= self.count {
            return Some(self.max);
        }
        let mut seen = 0u64;
        for (i, &c) in self.counts.iter().enumerate() {
            seen += c;
            if seen >= rank {
                let (lo, hi) = Self::bounds(i);
                let mid = lo + (hi - lo - 1) / 2;
                return Some(mid.clamp(self.min, self.max));
            }
        }
        Some(self.max)
    }
}

pub use ggon::proto::codes::RCODE_NAMES;

/// Everything counted during a run.
#[derive(Default)]
pub struct Stats {
    pub sent: u64,
    pub completed: u64,
    pub lost: u64,
    /// Answers whose ID matched nothing outstanding (late after a timeout,
    /// or a question that did not match the query).
    pub unexpected: u64,
    /// UDP answers with the TC bit set (counted as completed too).
    pub truncated: u64,
    /// Still outstanding when the run was interrupted (SIGINT): neither
    /// completed nor lost.
    pub interrupted: u64,
    pub rcodes: [u64; 16],
    pub latency: Histogram,
}

impl Stats {
    #[inline]
    pub fn answered(&mut self, rcode: u8, tc: bool, latency_ns: u64) {
        self.completed += 1;
        self.rcodes[(rcode & 0x0f) as usize] += 1;
        if tc {
            self.truncated += 1;
        }
        self.latency.record(latency_ns);
    }
}

/// The summary of a finished run.
pub struct Report<'a> {
    pub stats: &'a Stats,
    pub run_time_s: f64,
    pub server: String,
    pub transport: &'static str,
    pub ended_by: &'static str,
}

fn ms(ns: Option<u64>) -> Option<f64> {
    ns.map(|v| v as f64 / 1e6)
}

fn pct(part: u64, whole: u64) -> f64 {
    if whole == 0 {
        0.0
    } else {
        part as f64 * 100.0 / whole as f64
    }
}

impl Report<'_> {
    pub fn qps(&self) -> f64 {
        if self.run_time_s > 0.0 {
            self.stats.completed as f64 / self.run_time_s
        } else {
            0.0
        }
    }

    pub fn to_json(&self) -> serde_json::Value {
        let s = self.stats;
        let h = &s.latency;
        let mut rcodes = serde_json::Map::new();
        for (i, &n) in s.rcodes.iter().enumerate() {
            if n > 0 {
                rcodes.insert(RCODE_NAMES[i].to_string(), n.into());
            }
        }
        serde_json::json!({
            "sent": s.sent,
            "completed": s.completed,
            "lost": s.lost,
            "run_time_s": self.run_time_s,
            "qps": self.qps(),
            "latency_ms": {
                "min": ms(h.min()),
                "avg": h.mean().map(|v| v / 1e6),
                "p50": ms(h.quantile(0.50)),
                "p99": ms(h.quantile(0.99)),
                "p999": ms(h.quantile(0.999)),
                "max": ms(h.max()),
            },
            "rcodes": rcodes,
            "unexpected": s.unexpected,
            "truncated": s.truncated,
            "interrupted": s.interrupted,
            "server": self.server,
            "transport": self.transport,
        })
    }

    pub fn to_text(&self) -> String {
        let s = self.stats;
        let h = &s.latency;
        let mut out = String::new();
        let f = |v: Option<f64>| v.map_or("-".to_string(), |v| format!("{v:.3}"));
        let _ = writeln!(out, "Statistics:\n");
        let _ = writeln!(
            out,
            "  Server:               {} ({})",
            self.server, self.transport
        );
        let _ = writeln!(out, "  Ended due to:         {}\n", self.ended_by);
        let _ = writeln!(out, "  Queries sent:         {}", s.sent);
        let _ = writeln!(out, "  Queries completed:    {}", s.completed);
        let _ = writeln!(out, "  Queries lost:         {}", s.lost);
        if s.interrupted > 0 {
            let _ = writeln!(out, "  Queries interrupted:  {}", s.interrupted);
        }
        if s.unexpected > 0 {
            let _ = writeln!(out, "  Unexpected answers:   {}", s.unexpected);
        }
        if s.truncated > 0 {
            let _ = writeln!(out, "  Truncated (TC):       {}", s.truncated);
        }
        let _ = writeln!(out);
        let _ = writeln!(
            out,
            "  Percentage completed: {:6.2}%",
            pct(s.completed, s.sent)
        );
        let _ = writeln!(
            out,
            "  Percentage lost:      {:6.2}%\n",
            pct(s.lost, s.sent)
        );
        let _ = writeln!(out, "  Run time (s):         {:.6}", self.run_time_s);
        let _ = writeln!(out, "  Queries per second:   {:.1}\n", self.qps());
        let _ = writeln!(
            out,
            "  Latency (ms):         min {}  avg {}  p50 {}  p99 {}  p99.9 {}  max {}",
            f(ms(h.min())),
            f(h.mean().map(|v| v / 1e6)),
            f(ms(h.quantile(0.50))),
            f(ms(h.quantile(0.99))),
            f(ms(h.quantile(0.999))),
            f(ms(h.max())),
        );
        let _ = writeln!(out, "\n  Response codes:");
        for (i, &n) in s.rcodes.iter().enumerate() {
            if n > 0 {
                let _ = writeln!(
                    out,
                    "    {:<10} {:>12} ({:6.2}%)",
                    RCODE_NAMES[i],
                    n,
                    pct(n, s.completed)
                );
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buckets_are_contiguous_and_cover_u64() {
        let mut prev_hi = 0;
        for i in 0..BUCKETS {
            let (lo, hi) = Histogram::bounds(i);
            assert_eq!(
                lo,
                prev_hi,
                "bucket {i} starts where {} ended",
                i.wrapping_sub(1)
            );
            assert!(hi > lo);
            assert_eq!(Histogram::index(lo), i);
            assert_eq!(Histogram::index(hi - 1), i);
            prev_hi = hi;
        }
        assert_eq!(Histogram::index(u64::MAX), BUCKETS - 1);
    }

    #[test]
    fn quantiles_within_bucket_precision() {
        let mut h = Histogram::new();
        // 1..=100_000 microseconds, in nanoseconds.
        for us in 1..=100_000u64 {
            h.record(us * 1000);
        }
        assert_eq!(h.count(), 100_000);
        assert_eq!(h.min(), Some(1000));
        assert_eq!(h.max(), Some(100_000_000));
        let mean = h.mean().unwrap();
        assert!((mean - 50_000_500.0).abs() < 1.0, "{mean}");
        for (q, exact) in [
            (0.5, 50_000_000f64),
            (0.99, 99_000_000.0),
            (0.999, 99_900_000.0),
        ] {
            let got = h.quantile(q).unwrap() as f64;
            let err = (got - exact).abs() / exact;
            assert!(err < 1.0 / 64.0, "q{q}: got {got}, want ~{exact} ({err})");
        }
        assert_eq!(h.quantile(1.0), Some(100_000_000));
        assert_eq!(h.quantile(0.0), Some(1000));
    }

    #[test]
    fn small_values_are_exact_and_skewed_sets_work() {
        let mut h = Histogram::new();
        for _ in 0..999 {
            h.record(50);
        }
        h.record(5_000_000);
        assert_eq!(h.quantile(0.5), Some(50));
        assert_eq!(h.quantile(0.99), Some(50));
        assert_eq!(h.quantile(0.999), Some(50), "rank 999 of 1000 is still 50");
        let p100 = h.quantile(1.0).unwrap();
        assert_eq!(p100, 5_000_000, "clamped to the exact max");
        assert_eq!(Histogram::new().quantile(0.5), None);
    }

    #[test]
    fn since_holds_only_the_interval() {
        let mut h = Histogram::new();
        for _ in 0..100 {
            h.record(10_000_000);
        }
        let mut before = Histogram::new();
        before.copy_from(&h);
        for _ in 0..10 {
            h.record(1_000_000);
        }
        let d = h.since(&before);
        assert_eq!(d.count(), 10);
        assert_eq!(d.mean(), Some(1_000_000.0));
        let p50 = d.quantile(0.5).unwrap() as f64;
        assert!((p50 - 1e6).abs() / 1e6 < 1.0 / 64.0, "{p50}");
        assert!(d.max().unwrap() < 1_020_000, "{:?}", d.max());
        assert_eq!(h.since(&h).quantile(0.5), None);
    }

    #[test]
    fn report_counts_and_json_shape() {
        let mut s = Stats {
            sent: 10,
            lost: 2,
            ..Default::default()
        };
        for i in 0..6 {
            s.answered(0, false, 100_000 + i);
        }
        s.answered(3, false, 200_000);
        s.answered(3, false, 200_000);
        let r = Report {
            stats: &s,
            run_time_s: 2.0,
            server: "127.0.0.1:53".into(),
            transport: "udp",
            ended_by: "end of passes",
        };
        assert_eq!(r.qps(), 4.0);
        let j = r.to_json();
        assert_eq!(j["sent"], 10);
        assert_eq!(j["completed"], 8);
        assert_eq!(j["lost"], 2);
        assert_eq!(j["rcodes"]["NOERROR"], 6);
        assert_eq!(j["rcodes"]["NXDOMAIN"], 2);
        assert!(j["rcodes"].get("SERVFAIL").is_none());
        let p50 = j["latency_ms"]["p50"].as_f64().unwrap();
        assert!((p50 - 0.1).abs() < 0.002, "{p50}");
        assert_eq!(j["latency_ms"]["max"].as_f64().unwrap(), 0.2);
        let text = r.to_text();
        assert!(text.contains("Queries sent:         10"), "{text}");
        assert!(text.contains("Percentage lost:       20.00%"), "{text}");
        assert!(text.contains("NXDOMAIN"), "{text}");
    }
}
