//! The partition nemesis: every ggond node and every etcd member in a
//! network namespace of its own, one veth link per pair that talks (node ↔
//! node for the control API, node ↔ etcd member, member ↔ member, node ↔
//! targets), and a namespace of health targets (TCP listeners). A bounded
//! random schedule cuts links (both ways, or one way), partitions an etcd
//! member from the others, cuts a node from etcd, from the targets or from
//! the leader, and still kills and pauses processes, one fault at a time.
//! Meanwhile three operator clients remap cic through random nodes, the
//! outage thread stops and starts web's active target (health-driven
//! failovers), and a reader asks every node over its observer link (never
//! cut) what it answers. [`super::nemesis_check`] judges the history.
//!
//! The same variables as the loopback nemesis: GGON_NEMESIS_SEED,
//! GGON_NEMESIS_SECS (default 40 s here), GGON_NEMESIS_KEEP=DIR. Without
//! network namespaces (not root) the test says so loudly and passes.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use rand::{Rng, SeedableRng};

use super::nemesis_check::check;
use super::nemesis_io::{
    final_reads, outcomes, spawn_clients, spawn_reader, wait_whole, Clock, Table, Wholes,
};
use super::nemesis_net_faults::{pick, World, E0, HOSTS, N0, TG};
use super::nemesis_targets::{address, spawn_outages, Listeners, WEB_TARGETS};
use crate::support::cluster::Nodes;
use crate::support::etcd::EtcdCluster;
use crate::support::netns::Mesh;

/// cic's targets (operator remaps), and how many recent ones a remap avoids.
const CIC_TARGETS: usize = 8;
const RECENT: usize = 5;

fn services(targets: std::net::Ipv4Addr) -> String {
    let mut s = String::from("[[service]]\nname = \"cic\"\nfqdn = \"cic.ggon.org\"\nttl = 30\n");
    for t in 0..CIC_TARGETS {
        s.push_str(&format!(
            "\n[[service.target]]\nname = \"t{t}\"\naddresses = [\"127.0.0.{}\"]\n\
             check = {{ type = \"exec\", command = [\"true\"], interval = \"1s\" }}\n",
            11 + t
        ));
    }
    s.push_str("\n[[service]]\nname = \"web\"\nfqdn = \"web.ggon.org\"\nttl = 30\n");
    for w in 0..WEB_TARGETS {
        s.push_str(&format!(
            "\n[[service.target]]\nname = \"w{w}\"\naddresses = [\"127.0.0.{}\"]\n\
             check = {{ type = \"tcp\", address = \"{}\", interval = \"200ms\", timeout = \"200ms\", rise = 2, fall = 2 }}\n",
            41 + w,
            address(targets, w)
        ));
    }
    s
}

/// The mesh: 3 nodes, 3 etcd members, the targets; links as described above.
fn mesh() -> Result<Mesh, String> {
    let mut m = Mesh::new(&HOSTS)?;
    for a in 0..3 {
        for b in a + 1..3 {
            m.link(N0 + a, N0 + b)?;
            m.link(E0 + a, E0 + b)?;
        }
        for e in 0..3 {
            m.link(N0 + a, E0 + e)?;
        }
        m.link(N0 + a, TG)?;
    }
    Ok(m)
}

fn env<T: std::str::FromStr>(name: &str) -> Option<T> {
    std::env::var(name).ok().and_then(|s| s.parse().ok())
}

fn start(mesh: Mesh) -> World {
    let places = |base: usize| -> Vec<(String, std::net::Ipv4Addr)> {
        (0..3)
            .map(|i| (mesh.ns(base + i).to_string(), mesh.ip(base + i)))
            .collect()
    };
    let etcd = EtcdCluster::start_placed(3, &[], &places(E0));
    let targets = Arc::new(Listeners::start(&mesh, TG));
    let svc = services(targets.ip);
    let nodes = Nodes::start_placed(&vec![etcd.endpoints(); 3], &vec![svc; 3], places(N0));
    let mut w = World {
        nodes,
        etcd,
        table: Arc::new(Mutex::new(vec![None; 3])),
        lives: vec![0; 3],
        leader: 0,
        cut: Vec::new(),
        targets,
        mesh,
    };
    for i in 0..3 {
        w.publish(i);
    }
    w.leader = wait_whole(&w.nodes, &w.etcd, Duration::from_secs(20))
        .unwrap_or_else(|| panic!("no leader at start:\n{}", w.nodes.logs()))
        .0;
    w
}

/// One run of the schedule: a fault held 1-3 s, healed, then the cluster
/// whole again (bounded at 20 s) and left so for 2-5 s. Returns the steps,
/// the intervals in which it was whole, and the problems found.
fn schedule(
    w: &mut World,
    rng: &mut rand::rngs::StdRng,
    clock: &Clock,
    secs: u64,
) -> (usize, Wholes, Vec<String>, Vec<(String, usize)>) {
    let mut whole = Wholes::new();
    let (mut problems, mut kinds) = (Vec::new(), Vec::<(String, usize)>::new());
    let begin = Instant::now();
    let mut step = 0;
    while begin.elapsed() < Duration::from_secs(secs) && step < 2000 {
        step += 1;
        let fault = pick(rng);
        let (hold, calm) = (rng.random_range(1000..3000), rng.random_range(2000..5000));
        whole.broken(clock.ms());
        let what = w.inject(fault);
        eprintln!(
            "nemesis {:>6} ms step {step}: {what} for {hold} ms",
            clock.ms()
        );
        let kind = fault.kind().to_string();
        match kinds.iter_mut().find(|(k, _)| *k == kind) {
            Some((_, n)) => *n += 1,
            None => kinds.push((kind, 1)),
        }
        std::thread::sleep(Duration::from_millis(hold));
        w.heal(fault);
        let healed = clock.ms();
        let Some((l, when)) = wait_whole(&w.nodes, &w.etcd, Duration::from_secs(20)) else {
            problems.push(format!(
                "step {step}: the cluster was not whole 20 s after healing {what}"
            ));
            break;
        };
        w.leader = l;
        whole.again(healed, clock.ms(), when, l);
        std::thread::sleep(Duration::from_millis(calm));
    }
    (step, whole, problems, kinds)
}

#[test]
fn nemesis_partitions_remaps_and_failovers_stay_linearizable() {
    let mesh = match mesh() {
        Ok(m) => m,
        Err(e) => {
            eprintln!(
                "\n*** SKIPPED nemesis_partitions: network namespaces are not available ({e}); \
                 this test needs root and `ip netns add` ***\n"
            );
            return;
        }
    };
    let secs: u64 = env("GGON_NEMESIS_SECS").unwrap_or(40);
    let seed: u64 = env("GGON_NEMESIS_SEED").unwrap_or_else(rand::random);
    eprintln!("nemesis (partitions): seed {seed}, {secs} s of faults (replay: GGON_NEMESIS_SEED={seed} GGON_NEMESIS_SECS={secs})");
    let wall = Instant::now();
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
    let mut w = start(mesh);
    let clock = Arc::new(Clock(Instant::now()));
    let stop = Arc::new(AtomicBool::new(false));
    // The reader stops after the outages: an outage begun just before the
    // end runs on after `stop`, and rule 6 judges its failover on reads.
    let stop_reading = Arc::new(AtomicBool::new(false));
    let table: Table = w.table.clone();
    let reader = spawn_reader(&table, &clock, &stop_reading, true);
    let clients = spawn_clients(3, (CIC_TARGETS, RECENT), &table, &clock, &stop, seed);
    let outages = spawn_outages(w.targets.clone(), &table, &clock, &stop, seed);

    let (steps, mut whole, mut problems, kinds) = schedule(&mut w, &mut rng, &clock, secs);
    stop.store(true, Ordering::Relaxed);
    let remaps = clients.join().unwrap();
    let outages = outages.join().unwrap();
    stop_reading.store(true, Ordering::Relaxed);
    let mut reads = reader.join().unwrap();
    std::thread::sleep(Duration::from_millis(1200));
    final_reads(&w.table, &clock, true, &mut reads, &mut problems);
    whole.end(clock.ms() + 1);

    let report = check(&remaps, &reads, &whole.whole, &outages);
    let agreed = check(&remaps, &reads, &whole.agreed, &outages).slowest_catch_up;
    let (acked, refused, unknown) = outcomes(&remaps);
    let kinds: Vec<String> = kinds.iter().map(|(k, n)| format!("{n} {k}")).collect();
    eprintln!(
        "nemesis (partitions): seed {seed}, {steps} steps ({}), {} remaps ({acked} acknowledged, {refused} refused, \
         {unknown} without answer), {} web outages, {} health moves ({} outages judged by rule 6, slowest failover {} ms), {} reads, {} acknowledged remaps checked \
         for visibility, slowest catch-up after whole {} ms {} (after leader agreement alone {} ms {}), {} violations, wall time {:.1} s",
        kinds.join(", "),
        remaps.len(),
        outages.len(),
        report.health_moves,
        report.failovers_judged,
        report.slowest_failover,
        report.reads,
        report.checked_visible,
        report.slowest_catch_up.0,
        report.slowest_catch_up.1,
        agreed.0,
        agreed.1,
        report.violations.len() + problems.len(),
        wall.elapsed().as_secs_f64()
    );
    problems.extend(report.violations);
    if let (false, Some(keep)) = (problems.is_empty(), std::env::var_os("GGON_NEMESIS_KEEP")) {
        w.keep(&keep);
    }
    assert!(acked > 0, "no remap was acknowledged at all");
    assert!(
        report.health_moves > 0,
        "web never failed over: the health path was not exercised"
    );
    assert!(
        problems.is_empty(),
        "seed {seed}: {} problems:\n{}\nlogs:\n{}",
        problems.len(),
        problems.join("\n"),
        w.nodes.logs()
    );
}
