//! The nemesis checker: pure functions over a recorded history (remaps,
//! reads, and the intervals in which the cluster was whole), so it can be
//! proved on made-up histories that it catches what it must (tests below).
//!
//! Times are milliseconds since the run began. A read is one node's answer
//! for cic with the zone serial (an SOA, the A record, the SOA again; kept
//! only when both serials agree).

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
    pub serial: u32,
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

pub struct Report {
    pub violations: Vec<String>,
    pub checked_visible: usize,
    pub reads: usize,
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

pub fn check(remaps: &[Remap], reads: &[Read], whole: &[Whole]) -> Report {
    let mut v = Vec::new();
    let mut checked_visible = 0;

    // 1. One serial, one answer: no two nodes (or two reads) answer
    //    different targets under the same serial.
    let mut by_serial: std::collections::BTreeMap<u32, &Read> = Default::default();
    for r in reads {
        match by_serial.get(&r.serial) {
            Some(o) if o.target != r.target => v.push(format!(
                "serial {} answered as {} by node{} at {} ms and as {} by node{} at {} ms",
                r.serial,
                o.target,
                o.node + 1,
                o.start,
                r.target,
                r.node + 1,
                r.start
            )),
            Some(_) => {}
            None => {
                by_serial.insert(r.serial, r);
            }
        }
    }

    // 2. Never undone: within one life of a node, its serial never goes back.
    let mut last: std::collections::HashMap<(usize, u32), &Read> = Default::default();
    let mut ordered: Vec<&Read> = reads.iter().collect();
    ordered.sort_by_key(|r| r.start);
    for r in &ordered {
        if let Some(p) = last.get(&(r.node, r.life)) {
            if r.serial < p.serial {
                v.push(format!(
                    "node{} went back from serial {} ({}) at {} ms to {} ({}) at {} ms",
                    r.node + 1,
                    p.serial,
                    p.target,
                    p.start,
                    r.serial,
                    r.target,
                    r.start
                ));
            }
        }
        last.insert((r.node, r.life), r);
    }

    // 3. Every acknowledged remap is seen, and then only it or later decisions:
    //    reads that start at least AGREE_MS after the cluster is whole (again)
    //    after its acknowledgement show its serial or a later one.
    let acked: Vec<(usize, &Remap)> = remaps
        .iter()
        .enumerate()
        .filter(|(_, r)| r.acked == Some(true))
        .collect();
    for (idx, r) in &acked {
        // The serial it was published with: the lowest serial read with its
        // target after it was invoked.
        let sigma = reads
            .iter()
            .filter(|x| x.target == r.target && x.end >= r.invoked)
            .map(|x| x.serial)
            .min();
        let Some((w_at, w)) = next_whole(whole, r.completed) else {
            continue;
        };
        let due = w_at + AGREE_MS;
        let Some(sigma) = sigma else {
            // Never seen: fine only if a later remap was invoked before it was due.
            let superseded = remaps[*idx + 1..].iter().any(|x| x.invoked <= due);
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
        for x in reads.iter().filter(|x| x.start >= due && x.start < w.until) {
            if x.serial < sigma {
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
                break;
            }
        }
    }

    // 4. No two nodes answer differently for longer than AGREE_MS after a
    //    decision while the cluster is whole.
    let mut rounds: std::collections::BTreeMap<u64, Vec<&Read>> = Default::default();
    for r in reads {
        rounds.entry(r.start / 100).or_default().push(r);
    }
    let mut diverged_since: Option<u64> = None;
    for (slot, rs) in &rounds {
        let t = slot * 100;
        let differ = rs.iter().any(|r| r.target != rs[0].target);
        let calm = whole_at(whole, t).is_some_and(|w| t >= w.from + AGREE_MS)
            && !remaps
                .iter()
                .any(|x| x.invoked <= t && t < x.completed.max(x.invoked) + AGREE_MS);
        if differ && calm {
            let since = *diverged_since.get_or_insert(t);
            if t - since >= AGREE_MS {
                let seen: Vec<String> = rs
                    .iter()
                    .map(|r| format!("node{}={}/{}", r.node + 1, r.target, r.serial))
                    .collect();
                v.push(format!(
                    "nodes disagree for {} ms at {t} ms with no decision in flight: {}",
                    t - since,
                    seen.join(" ")
                ));
                diverged_since = None;
            }
        } else {
            diverged_since = None;
        }
    }

    Report {
        violations: v,
        checked_visible,
        reads: reads.len(),
    }
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
            serial,
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
        let r = check(&remaps, &reads, &WHOLE);
        assert!(r.violations.is_empty(), "{:?}", r.violations);
        assert_eq!(r.checked_visible, 1);
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
        let r = check(&remaps, &reads, &WHOLE);
        assert!(r.violations.iter().any(|v| v.starts_with("stale read")));
        assert!(r.violations.iter().any(|v| v.starts_with("nodes disagree")));
        // Split brain on one serial, and a serial going back.
        let reads = [
            read(0, 100, "a", 7),
            read(1, 100, "b", 7),
            read(0, 200, "a", 6),
        ];
        let r = check(&[], &reads, &WHOLE);
        assert!(r.violations.iter().any(|v| v.contains("answered as")));
        assert!(r.violations.iter().any(|v| v.contains("went back")));
        // An acknowledged remap nobody ever answers.
        let reads: Vec<Read> = (0..30).map(|i| read(0, i * 100, "a", 7)).collect();
        let r = check(&remaps, &reads, &WHOLE);
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
        let r = check(&remaps, &reads, &split);
        assert!(r.violations.is_empty(), "{:?}", r.violations);
    }
}
