//! The nemesis checker: pure functions over a recorded history (remaps,
//! reads, and the intervals in which the cluster was whole), so it can be
//! proved on made-up histories that it catches what it must (tests below).
//!
//! Times are milliseconds since the run began. A read is one node's answer
//! for cic (and, in the partition nemesis, for web) with the zone serial (an
//! SOA, the A records, the SOA again; kept only when both serials agree).
//!
//! cic moves only by operator remaps (forced, so pinned); web only by its
//! health checks (its targets' listeners are stopped and started: an
//! [`Outage`]). A health move is not a call anyone made: it is derived from
//! the answers, as a new serial under which web answers another target.

use std::collections::{BTreeMap, HashMap};

/// One remap as the client saw it.
#[derive(Debug, Clone)]
pub struct Remap {
    pub node: usize,
    pub target: String,
    pub invoked: u64,
    pub completed: u64,
    /// Some(true): acknowledged (200); Some(false): refused; None: no
    /// answer (it may or may not have taken effect).
    pub acked: Option<bool>,
}

#[derive(Debug, Clone)]
pub struct Read {
    pub node: usize,
    /// The node's incarnation (restarts count up).
    pub life: u32,
    pub start: u64,
    pub end: u64,
    pub target: String,
    /// What web answered (None: no web service in this run).
    pub web: Option<String>,
    pub serial: u32,
}

/// A web target's listener stopped from `from` until `until`.
#[derive(Debug, Clone)]
pub struct Outage {
    pub target: String,
    pub from: u64,
    pub until: u64,
}

/// Every node up, etcd whole, and a leader every node agrees on, from
/// `from` until `until`.
#[derive(Debug, Clone, Copy)]
pub struct Whole {
    pub from: u64,
    pub until: u64,
}

/// How long a decision may take to reach every node once the cluster is
/// whole (the promise of docs/cluster.md).
pub const AGREE_MS: u64 = 1000;

/// How long after its active target stopped web must have moved, when the
/// cluster was whole all along: fall 2 × 200 ms checks with a 200 ms
/// timeout and up to 100 ms jitter, the vote write (50 ms coalescing), the
/// leader's decision and the watch, with room for two loaded cores.
pub const FAILOVER_MS: u64 = 2500;

/// A health move must follow an outage of the target it left by at most
/// this much (the decision may wait for a leader to be elected, lease 2 s,
/// and for etcd to have a quorum again).
pub const CAUSE_MS: u64 = 10_000;

pub struct Report {
    pub violations: Vec<String>,
    pub checked_visible: usize,
    pub reads: usize,
    /// How often web moved (health decisions seen in the answers).
    pub health_moves: usize,
    /// The latest read after the cluster was whole again that still showed
    /// a state before an acknowledged remap (ms after whole, and which):
    /// what rule 3's AGREE_MS allowance is measured against.
    pub slowest_catch_up: (u64, String),
    /// The longest time from stopping web's target to a node answering
    /// another, over the outages rule 6 judged (ms), and how many it judged.
    pub slowest_failover: u64,
    pub failovers_judged: usize,
}

fn whole_at(whole: &[Whole], t: u64) -> Option<Whole> {
    whole.iter().copied().find(|w| w.from <= t && t < w.until)
}

/// The first moment at or after `t` at which the cluster is whole, and that interval.
fn next_whole(whole: &[Whole], t: u64) -> Option<(u64, Whole)> {
    whole
        .iter()
        .copied()
        .filter(|w| w.until > t)
        .map(|w| (w.from.max(t), w))
        .min_by_key(|(at, _)| *at)
}

pub fn check(remaps: &[Remap], reads: &[Read], whole: &[Whole], outages: &[Outage]) -> Report {
    let mut v = Vec::new();
    one_answer_per_serial(reads, &mut v);
    never_undone(reads, &mut v);
    let (checked_visible, slowest_catch_up) =
        acknowledged_remaps_seen(remaps, reads, whole, &mut v);
    let first = first_seen(reads);
    let cic = |r: &Read| Some(r.target.clone());
    let web = |r: &Read| r.web.clone();
    no_lasting_disagreement("cic", &cic, remaps, reads, whole, &first, &mut v);
    no_lasting_disagreement("web", &web, remaps, reads, whole, &first, &mut v);
    let health_moves = health_moves_have_a_cause(reads, outages, &first, &mut v);
    let (slowest_failover, failovers_judged) = failovers_happen(reads, whole, outages, &mut v);
    Report {
        violations: v,
        checked_visible,
        reads: reads.len(),
        health_moves,
        slowest_catch_up,
        slowest_failover,
        failovers_judged,
    }
}

fn answer(r: &Read) -> String {
    match &r.web {
        Some(w) => format!("{} (web {w})", r.target),
        None => r.target.clone(),
    }
}

/// 1. One serial, one answer: no two nodes (or two reads) answer
///    different targets (of cic or of web) under the same serial.
fn one_answer_per_serial(reads: &[Read], v: &mut Vec<String>) {
    let mut by_serial: BTreeMap<u32, &Read> = Default::default();
    for r in reads {
        match by_serial.get(&r.serial) {
            Some(o)
                if o.target != r.target
                    || (o.web.is_some() && r.web.is_some() && o.web != r.web) =>
            {
                v.push(format!(
                    "serial {} answered as {} by node{} at {} ms and as {} by node{} at {} ms",
                    r.serial,
                    answer(o),
                    o.node + 1,
                    o.start,
                    answer(r),
                    r.node + 1,
                    r.start
                ))
            }
            Some(_) => {}
            None => {
                by_serial.insert(r.serial, r);
            }
        }
    }
}

/// 2. Never undone: within one life of a node, its serial never goes back.
fn never_undone(reads: &[Read], v: &mut Vec<String>) {
    let mut last: HashMap<(usize, u32), &Read> = Default::default();
    let mut ordered: Vec<&Read> = reads.iter().collect();
    ordered.sort_by_key(|r| r.start);
    for r in &ordered {
        if let Some(p) = last.get(&(r.node, r.life)) {
            if r.serial < p.serial {
                v.push(format!(
                    "node{} went back from serial {} ({}) at {} ms to {} ({}) at {} ms",
                    r.node + 1,
                    p.serial,
                    answer(p),
                    p.start,
                    r.serial,
                    answer(r),
                    r.start
                ));
            }
        }
        last.insert((r.node, r.life), r);
    }
}

/// The serial an acknowledged remap was published with: the lowest serial
/// read with its target after it was invoked and before the next remap to
/// the same target was (concurrent clients: its own serial may never be
/// read, and then a later remap's to that target must not stand for it).
fn published_serial(r: &Remap, remaps: &[Remap], reads: &[Read]) -> Option<u32> {
    let next_same = remaps
        .iter()
        .filter(|x| x.target == r.target && x.invoked > r.invoked)
        .map(|x| x.invoked)
        .min()
        .unwrap_or(u64::MAX);
    reads
        .iter()
        .filter(|x| x.target == r.target && x.end >= r.invoked && x.start < next_same)
        .map(|x| x.serial)
        .min()
}

/// 3. Every acknowledged remap is seen, and then only it or later
///    decisions: reads that start at least AGREE_MS after the cluster is
///    whole (again) after its acknowledgement show its serial or a later
///    one. Returns how many acknowledged remaps were checked so, and the
///    latest read after whole that was still behind one.
fn acknowledged_remaps_seen(
    remaps: &[Remap],
    reads: &[Read],
    whole: &[Whole],
    v: &mut Vec<String>,
) -> (usize, (u64, String)) {
    let mut checked_visible = 0;
    let mut slowest = (0, String::new());
    for (idx, r) in remaps.iter().enumerate() {
        if r.acked != Some(true) {
            continue;
        }
        let Some((w_at, w)) = next_whole(whole, r.completed) else {
            continue;
        };
        let due = w_at + AGREE_MS;
        let Some(sigma) = published_serial(r, remaps, reads) else {
            // Never seen: fine only if another remap that may have been
            // applied after it (not refused, and not acknowledged before it
            // was invoked) was invoked before it was due.
            let superseded = remaps.iter().enumerate().any(|(j, x)| {
                j != idx
                    && x.acked != Some(false)
                    && x.invoked <= due
                    && (x.acked.is_none() || x.completed >= r.invoked)
            });
            if !superseded && due < w.until {
                v.push(format!(
                    "remap #{idx} to {} (acknowledged at {} ms by node{}) was never answered",
                    r.target,
                    r.completed,
                    r.node + 1
                ));
            }
            continue;
        };
        checked_visible += 1;
        for x in reads
            .iter()
            .filter(|x| x.start >= w_at && x.start < w.until && x.serial < sigma)
        {
            if x.start - w_at > slowest.0 {
                slowest = (
                    x.start - w_at,
                    format!(
                        "node{} at {} ms (serial {} < {sigma} of remap #{idx}, whole since {w_at} ms)",
                        x.node + 1,
                        x.start,
                        x.serial
                    ),
                );
            }
        }
        if let Some(x) = reads
            .iter()
            .find(|x| x.start >= due && x.start < w.until && x.serial < sigma)
        {
            v.push(format!(
                "stale read: node{} answered {} (serial {}) at {} ms, {} ms after the cluster was whole, \
                 but remap #{idx} to {} (serial {sigma}) was acknowledged at {} ms",
                x.node + 1,
                x.target,
                x.serial,
                x.start,
                x.start - w_at,
                r.target,
                r.completed
            ));
        }
    }
    (checked_visible, slowest)
}

/// When each serial was first answered by any node.
fn first_seen(reads: &[Read]) -> BTreeMap<u32, u64> {
    let mut first: BTreeMap<u32, u64> = Default::default();
    for r in reads {
        let t = first.entry(r.serial).or_insert(r.start);
        *t = (*t).min(r.start);
    }
    first
}

/// 4. No two nodes answer a service differently for longer than AGREE_MS
///    while the cluster is whole and no decision is in flight: no remap
///    invoked and not finished AGREE_MS ago, no serial first answered in
///    the last AGREE_MS (a health move, or a remap applied late).
fn no_lasting_disagreement(
    what: &str,
    of: &dyn Fn(&Read) -> Option<String>,
    remaps: &[Remap],
    reads: &[Read],
    whole: &[Whole],
    first: &BTreeMap<u32, u64>,
    v: &mut Vec<String>,
) {
    let mut rounds: BTreeMap<u64, Vec<(&Read, String)>> = Default::default();
    for r in reads {
        if let Some(a) = of(r) {
            rounds.entry(r.start / 100).or_default().push((r, a));
        }
    }
    let news: Vec<u64> = first.values().copied().collect();
    let mut diverged_since: Option<u64> = None;
    for (slot, rs) in &rounds {
        let t = slot * 100;
        let differ = rs.iter().any(|(_, a)| *a != rs[0].1);
        let calm = whole_at(whole, t).is_some_and(|w| t >= w.from + AGREE_MS)
            && !remaps
                .iter()
                .any(|x| x.invoked <= t && t < x.completed.max(x.invoked) + AGREE_MS)
            && !news.iter().any(|n| *n <= t && t < n + AGREE_MS);
        if !(differ && calm) {
            diverged_since = None;
            continue;
        }
        let since = *diverged_since.get_or_insert(t);
        if t - since >= AGREE_MS {
            let seen: Vec<String> = rs
                .iter()
                .map(|(r, a)| format!("node{}={a}/{}", r.node + 1, r.serial))
                .collect();
            v.push(format!(
                "nodes disagree on {what} for {} ms at {t} ms with no decision in flight: {}",
                t - since,
                seen.join(" ")
            ));
            diverged_since = None;
        }
    }
}

/// 5. Every health move has a cause: when web answers another target under
///    a newer serial, the target it left was stopped at some moment in the
///    CAUSE_MS before the new answer was first seen. A node whose own link
///    to the targets is cut sees them all down; if it could move web alone,
///    this catches it. Returns the number of moves.
fn health_moves_have_a_cause(
    reads: &[Read],
    outages: &[Outage],
    first: &BTreeMap<u32, u64>,
    v: &mut Vec<String>,
) -> usize {
    let mut web_at: BTreeMap<u32, &str> = Default::default();
    for r in reads {
        if let Some(w) = &r.web {
            web_at.entry(r.serial).or_insert(w);
        }
    }
    let mut moves = 0;
    let mut prev: Option<(u32, &str)> = None;
    for (s, w) in &web_at {
        if let Some((ps, pw)) = prev.filter(|(_, pw)| pw != w) {
            moves += 1;
            let t = first[s];
            let caused = outages
                .iter()
                .any(|o| o.target == pw && o.from <= t && o.until + CAUSE_MS >= t);
            if !caused {
                v.push(format!(
                    "web moved from {pw} (serial {ps}) to {w} (serial {s}, first answered at {t} ms) \
                     with {pw} up for the {CAUSE_MS} ms before"
                ));
            }
        }
        prev = Some((*s, w));
    }
    moves
}

/// 6. Failovers happen: when web's active target stops for at least
///    FAILOVER_MS while the cluster is whole, some node answers another
///    target within FAILOVER_MS. Returns the longest such failover (ms) and
///    how many outages were judged.
fn failovers_happen(
    reads: &[Read],
    whole: &[Whole],
    outages: &[Outage],
    v: &mut Vec<String>,
) -> (u64, usize) {
    let (mut slowest, mut judged) = (0, 0);
    for o in outages {
        let end = o.from + FAILOVER_MS;
        let whole_through = whole_at(whole, o.from).is_some_and(|w| w.until > end);
        if o.until < end || !whole_through {
            continue;
        }
        let before = reads
            .iter()
            .filter(|r| r.web.is_some() && r.start < o.from)
            .max_by_key(|r| r.start);
        if before.and_then(|r| r.web.as_deref()) != Some(o.target.as_str()) {
            continue;
        }
        let moved = reads
            .iter()
            .filter(|r| r.start >= o.from && r.start <= end)
            .filter(|r| r.web.as_ref().is_some_and(|w| *w != o.target))
            .map(|r| r.start - o.from)
            .min();
        judged += 1;
        slowest = slowest.max(moved.unwrap_or(0));
        if moved.is_none() {
            v.push(format!(
                "web's target {} stopped at {} ms for {} ms with the cluster whole, \
                 but no node answered another target within {FAILOVER_MS} ms",
                o.target,
                o.from,
                o.until - o.from
            ));
        }
    }
    (slowest, judged)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn read(node: usize, start: u64, target: &str, serial: u32) -> Read {
        Read {
            node,
            life: 1,
            start,
            end: start + 5,
            target: target.into(),
            web: None,
            serial,
        }
    }

    fn read_web(node: usize, start: u64, web: &str, serial: u32) -> Read {
        Read {
            web: Some(web.into()),
            ..read(node, start, "t0", serial)
        }
    }

    fn outage(target: &str, from: u64, until: u64) -> Outage {
        Outage {
            target: target.into(),
            from,
            until,
        }
    }

    fn remap(target: &str, invoked: u64, completed: u64) -> Remap {
        Remap {
            node: 0,
            target: target.into(),
            invoked,
            completed,
            acked: Some(true),
        }
    }

    const WHOLE: [Whole; 1] = [Whole {
        from: 0,
        until: 100_000,
    }];

    #[test]
    fn a_clean_history_passes() {
        let remaps = [remap("b", 1000, 1050)];
        let mut reads = vec![read(0, 500, "a", 7), read(1, 500, "a", 7)];
        for t in (1100..4000).step_by(100) {
            reads.push(read(0, t, "b", 8));
            reads.push(read(1, t, "b", 8));
        }
        let r = check(&remaps, &reads, &WHOLE, &[]);
        assert!(r.violations.is_empty(), "{:?}", r.violations);
        assert_eq!(r.checked_visible, 1);
        assert_eq!(r.slowest_catch_up.0, 0);
    }

    #[test]
    fn each_kind_of_violation_is_caught() {
        // A node that never follows: stale and disagreeing.
        let remaps = [remap("b", 1000, 1050)];
        let mut reads = vec![];
        for t in (1100..4000).step_by(100) {
            reads.push(read(0, t, "b", 8));
            reads.push(read(1, t, "a", 7));
        }
        let r = check(&remaps, &reads, &WHOLE, &[]);
        assert!(r.violations.iter().any(|v| v.starts_with("stale read")));
        assert!(r.violations.iter().any(|v| v.starts_with("nodes disagree")));
        // The last stale read (node2 at 3900 ms) is 2850 ms after whole (1050 ms).
        assert_eq!(r.slowest_catch_up.0, 2850, "{:?}", r.slowest_catch_up);
        // Split brain on one serial, and a serial going back.
        let reads = [
            read(0, 100, "a", 7),
            read(1, 100, "b", 7),
            read(0, 200, "a", 6),
        ];
        let r = check(&[], &reads, &WHOLE, &[]);
        assert!(r.violations.iter().any(|v| v.contains("answered as")));
        assert!(r.violations.iter().any(|v| v.contains("went back")));
        // An acknowledged remap nobody ever answers.
        let reads: Vec<Read> = (0..30).map(|i| read(0, i * 100, "a", 7)).collect();
        let r = check(&remaps, &reads, &WHOLE, &[]);
        assert!(r.violations.iter().any(|v| v.contains("never answered")));
        // The same during a fault is not judged until the cluster is whole.
        let split = [
            Whole {
                from: 0,
                until: 900,
            },
            Whole {
                from: 5000,
                until: 9000,
            },
        ];
        let mut reads: Vec<Read> = (10..40).map(|i| read(1, i * 100, "a", 7)).collect();
        reads.extend((60..90).map(|i| read(1, i * 100, "b", 8)));
        let r = check(&remaps, &reads, &split, &[]);
        assert!(r.violations.is_empty(), "{:?}", r.violations);
    }

    #[test]
    fn concurrent_remaps_may_hide_each_other() {
        // #0 to b and #1 to c overlap; c is applied right after b, so b's
        // serial is never read; #2 to b later is read at serial 12. #0 is
        // superseded (not "never answered"), and serial 12 does not stand
        // for it (no stale read of serial 9 after it).
        let remaps = [
            remap("b", 1000, 1100),
            remap("c", 1010, 1120),
            remap("b", 3000, 3050),
        ];
        let mut reads = vec![];
        for t in (1200..3000).step_by(100) {
            reads.push(read(0, t, "c", 9));
            reads.push(read(1, t, "c", 9));
        }
        for t in (3100..5000).step_by(100) {
            reads.push(read(0, t, "b", 12));
            reads.push(read(1, t, "b", 12));
        }
        let r = check(&remaps, &reads, &WHOLE, &[]);
        assert!(r.violations.is_empty(), "{:?}", r.violations);
        // Without the concurrent remap, b never answered is caught.
        let r = check(&[remaps[0].clone()], &reads[..36], &WHOLE, &[]);
        assert!(
            r.violations.iter().any(|v| v.contains("never answered")),
            "{:?}",
            r.violations
        );
    }

    /// web on w0 at serial 5 until `at`, then w1 at serial 6, on two nodes.
    fn web_move(at: u64) -> Vec<Read> {
        let mut reads = vec![];
        for t in (0..20_000).step_by(100) {
            let (w, s) = if t < at { ("w0", 5) } else { ("w1", 6) };
            reads.push(read_web(0, t, w, s));
            reads.push(read_web(1, t, w, s));
        }
        reads
    }

    #[test]
    fn health_moves_need_an_outage_and_outages_need_a_move() {
        // w0 stopped at 3000, web moved at 3800: fine, one move.
        let reads = web_move(3800);
        let r = check(&[], &reads, &WHOLE, &[outage("w0", 3000, 6000)]);
        assert!(r.violations.is_empty(), "{:?}", r.violations);
        assert_eq!(r.health_moves, 1);
        assert_eq!((r.slowest_failover, r.failovers_judged), (800, 1));
        // The same move with w0 never stopped (a node fooled by its own
        // vantage point), or only stopped long before.
        let r = check(&[], &reads, &WHOLE, &[]);
        assert!(
            r.violations.iter().any(|v| v.contains("up for the")),
            "{:?}",
            r.violations
        );
        let long_before = [outage("w0", 100, 200)];
        let r = check(&[], &web_move(CAUSE_MS + 1000), &WHOLE, &long_before);
        assert!(
            r.violations.iter().any(|v| v.contains("up for the")),
            "{:?}",
            r.violations
        );
        // w0 stopped at 3000 for 3 s while whole, web never moved.
        let reads = web_move(u64::MAX);
        let r = check(&[], &reads, &WHOLE, &[outage("w0", 3000, 6000)]);
        assert!(r
            .violations
            .iter()
            .any(|v| v.contains("no node answered another target")));
        // ... but during a fault it is not judged.
        let split = [
            Whole {
                from: 0,
                until: 4000,
            },
            Whole {
                from: 9000,
                until: 10_000,
            },
        ];
        let r = check(&[], &reads, &split, &[outage("w0", 3000, 6000)]);
        assert!(r.violations.is_empty(), "{:?}", r.violations);
        // A moved too late (after FAILOVER_MS) is caught as well.
        let r = check(
            &[],
            &web_move(3000 + FAILOVER_MS + 500),
            &WHOLE,
            &[outage("w0", 3000, 7000)],
        );
        assert!(r
            .violations
            .iter()
            .any(|v| v.contains("no node answered another target")));
    }

    #[test]
    fn web_split_and_lasting_web_disagreement_are_caught() {
        // Serial 6 answered as w1 and w2.
        let reads = [read_web(0, 100, "w1", 6), read_web(1, 100, "w2", 6)];
        let r = check(&[], &reads, &WHOLE, &[outage("w0", 0, 50)]);
        assert!(
            r.violations.iter().any(|v| v.contains("answered as")),
            "{:?}",
            r.violations
        );
        // node2 stays on w0 (serial 5) for 3 s after node1 moved to w1.
        let mut reads = vec![];
        for t in (0..6000).step_by(100) {
            reads.push(read_web(
                0,
                t,
                if t < 2000 { "w0" } else { "w1" },
                if t < 2000 { 5 } else { 6 },
            ));
            reads.push(read_web(1, t, "w0", 5));
        }
        let r = check(&[], &reads, &WHOLE, &[outage("w0", 1500, 4000)]);
        assert!(
            r.violations
                .iter()
                .any(|v| v.starts_with("nodes disagree on web")),
            "{:?}",
            r.violations
        );
    }
}
