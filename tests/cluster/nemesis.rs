//! The nemesis: for a while, a bounded random schedule kills (-9), pauses
//! (SIGSTOP/SIGCONT) and restarts ggond nodes and etcd members (a stopped
//! or paused member is cut off from the others), while a client remaps cic
//! through random nodes and a reader asks every node what it answers. The
//! checker ([`super::nemesis_check`]) then judges the recorded history.
//!
//! GGON_NEMESIS_SEED replays a run (the seed and every step are printed);
//! GGON_NEMESIS_SECS sets how long faults are injected (default 30 s, the
//! short run; `scripts/bench --nemesis` runs 300 s); GGON_NEMESIS_KEEP=DIR
//! keeps the nodes' logs and state of a failed run.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use rand::{Rng, SeedableRng};

use super::nemesis_check::check;
use super::nemesis_io::{
    final_reads, outcomes, spawn_clients, spawn_reader, wait_whole, Clock, Table, Wholes,
};
use crate::support::cluster::Nodes;
use crate::support::etcd::EtcdCluster;

/// Targets of cic: remaps go to one not among the last few invoked, so a
/// target's answer says which decision it is.
const TARGETS: usize = 6;

fn services() -> String {
    let mut s = String::from("[[service]]\nname = \"cic\"\nfqdn = \"cic.ggon.org\"\nttl = 30\n");
    for t in 0..TARGETS {
        s.push_str(&format!(
            "\n[[service.target]]\nname = \"t{t}\"\naddresses = [\"127.0.0.{}\"]\n\
             check = {{ type = \"exec\", command = [\"true\"], interval = \"1s\" }}\n",
            11 + t
        ));
    }
    s
}

#[derive(Debug, Clone, Copy)]
enum Fault {
    KillNode(usize),
    PauseNode(usize),
    StopEtcd(usize),
    KillEtcd(usize),
    PauseEtcd(usize),
    /// A node and an etcd member at once.
    Both(usize, usize),
}

fn pick(rng: &mut rand::rngs::StdRng) -> Fault {
    let (n, e) = (rng.random_range(0..3), rng.random_range(0..3));
    match rng.random_range(0..6) {
        0 => Fault::KillNode(n),
        1 => Fault::PauseNode(n),
        2 => Fault::StopEtcd(e),
        3 => Fault::KillEtcd(e),
        4 => Fault::PauseEtcd(e),
        _ => Fault::Both(n, e),
    }
}

struct World {
    nodes: Nodes,
    etcd: EtcdCluster,
    table: Table,
    lives: Vec<u32>,
}

impl World {
    fn publish(&mut self, i: usize) {
        self.lives[i] += 1;
        let g = self.nodes.node(i);
        self.table.lock().unwrap()[i] = Some((g.dns, g.control, self.lives[i]));
    }

    fn inject(&mut self, f: Fault, pause_node: bool) {
        match f {
            Fault::KillNode(i) => {
                self.table.lock().unwrap()[i] = None;
                self.nodes.kill(i);
            }
            Fault::PauseNode(i) => self.nodes.node(i).signal(if pause_node {
                libc::SIGSTOP
            } else {
                libc::SIGCONT
            }),
            Fault::StopEtcd(e) => self.etcd.stop(e),
            Fault::KillEtcd(e) => self.etcd.kill(e),
            Fault::PauseEtcd(e) => self.etcd.pause(e),
            Fault::Both(n, e) => {
                self.inject(Fault::KillNode(n), true);
                self.inject(Fault::StopEtcd(e), true);
            }
        }
    }

    fn heal(&mut self, f: Fault) {
        match f {
            Fault::KillNode(i) => {
                self.nodes.restart(i);
                self.publish(i);
            }
            Fault::PauseNode(_) => self.inject(f, false),
            Fault::StopEtcd(e) | Fault::KillEtcd(e) => self.etcd.restart(e),
            Fault::PauseEtcd(e) => self.etcd.resume(e),
            Fault::Both(n, e) => {
                self.heal(Fault::StopEtcd(e));
                self.heal(Fault::KillNode(n));
            }
        }
    }
}

/// The schedule: a fault, held 1-3 s, healed; then the cluster must be
/// whole again ([`wait_whole`]: etcd healthy, every node connected, one
/// leader; bounded at 20 s) and stays so 2-4 s. Returns the steps, the
/// intervals in which the cluster was whole and the problems found.
fn schedule(
    w: &mut World,
    rng: &mut rand::rngs::StdRng,
    clock: &Clock,
    secs: u64,
) -> (usize, Wholes, Vec<String>) {
    let mut whole = Wholes::new();
    let mut problems = Vec::new();
    let begin = Instant::now();
    let mut step = 0;
    while begin.elapsed() < Duration::from_secs(secs) && step < 1000 {
        step += 1;
        let fault = pick(rng);
        let hold = rng.random_range(1000..3000);
        let calm = rng.random_range(2000..4000);
        whole.broken(clock.ms());
        eprintln!(
            "nemesis {:>6} ms step {step}: {fault:?} for {hold} ms",
            clock.ms()
        );
        w.inject(fault, true);
        std::thread::sleep(Duration::from_millis(hold));
        w.heal(fault);
        let healed = clock.ms();
        let Some((l, when)) = wait_whole(&w.nodes, &w.etcd, Duration::from_secs(20)) else {
            problems.push(format!(
                "step {step}: the cluster was not whole 20 s after healing {fault:?}"
            ));
            break;
        };
        whole.again(healed, clock.ms(), when, l);
        std::thread::sleep(Duration::from_millis(calm));
    }
    (step, whole, problems)
}

#[test]
fn nemesis_remaps_stay_linearizable_under_kills_pauses_and_etcd_faults() {
    let secs: u64 = std::env::var("GGON_NEMESIS_SECS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(30);
    let seed: u64 = std::env::var("GGON_NEMESIS_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(rand::random);
    eprintln!("nemesis: seed {seed}, {secs} s of faults (replay: GGON_NEMESIS_SEED={seed} GGON_NEMESIS_SECS={secs})");
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed);

    let etcd = EtcdCluster::start(3);
    let nodes = Nodes::start(&vec![etcd.endpoints(); 3], &vec![services(); 3]);
    let mut w = World {
        nodes,
        etcd,
        table: Arc::new(Mutex::new(vec![None; 3])),
        lives: vec![0; 3],
    };
    for i in 0..3 {
        w.publish(i);
    }
    assert!(
        wait_whole(&w.nodes, &w.etcd, Duration::from_secs(15)).is_some(),
        "no leader at start:\n{}",
        w.nodes.logs()
    );
    let clock = Arc::new(Clock(Instant::now()));
    let stop = Arc::new(AtomicBool::new(false));
    let reader = spawn_reader(&w.table, &clock, &stop, false);
    let client = spawn_clients(1, (TARGETS, 3), &w.table, &clock, &stop, seed);
    let (step, mut whole, mut problems) = schedule(&mut w, &mut rng, &clock, secs);
    // Quiet end: no more remaps, then a last look at every node.
    stop.store(true, Ordering::Relaxed);
    let remaps = client.join().unwrap();
    let mut reads = reader.join().unwrap();
    std::thread::sleep(Duration::from_millis(1200));
    final_reads(&w.table, &clock, false, &mut reads, &mut problems);
    whole.end(clock.ms() + 1);

    let report = check(&remaps, &reads, &whole.whole, &[]);
    let agreed = check(&remaps, &reads, &whole.agreed, &[]).slowest_catch_up;
    let (acked, refused, unknown) = outcomes(&remaps);
    eprintln!(
        "nemesis: seed {seed}, {step} steps, {} remaps ({acked} acknowledged, {refused} refused, {unknown} without answer), \
         {} reads, {} acknowledged remaps checked for visibility, slowest catch-up after whole {} ms {} (after leader agreement alone {} ms {}), {} violations",
        remaps.len(),
        report.reads,
        report.checked_visible,
        report.slowest_catch_up.0,
        report.slowest_catch_up.1,
        agreed.0,
        agreed.1,
        report.violations.len() + problems.len()
    );
    problems.extend(report.violations);
    if let (false, Some(keep)) = (problems.is_empty(), std::env::var_os("GGON_NEMESIS_KEEP")) {
        let _ = std::process::Command::new("cp")
            .arg("-r")
            .arg(w.nodes.dir.path())
            .arg(&keep)
            .status();
        eprintln!("node logs and state kept in {}", keep.to_string_lossy());
    }
    assert!(acked > 0, "no remap was acknowledged at all");
    assert!(
        problems.is_empty(),
        "seed {seed}: {} problems:\n{}\nlogs:\n{}",
        problems.len(),
        problems.join("\n"),
        w.nodes.logs()
    );
}
