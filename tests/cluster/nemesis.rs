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

use std::io::{Read as _, Write as _};
use std::net::{SocketAddr, TcpStream, UdpSocket};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use hickory_proto::op::Message;
use hickory_proto::rr::{RData, RecordType};
use hickory_proto::serialize::binary::BinDecodable;
use rand::{Rng, SeedableRng};

use super::nemesis_check::{check, Read, Remap, Whole};
use crate::support::cluster::{Nodes, TOKEN};
use crate::support::etcd::EtcdCluster;
use crate::support::ggond::query;

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

/// Each node's addresses while it runs: (DNS, control, life).
type Table = Arc<Mutex<Vec<Option<(SocketAddr, SocketAddr, u32)>>>>;

struct Clock(Instant);
impl Clock {
    fn ms(&self) -> u64 {
        self.0.elapsed().as_millis() as u64
    }
}

fn ask(addr: SocketAddr, name: &str, t: RecordType) -> Option<Message> {
    let s = UdpSocket::bind("127.0.0.1:0").ok()?;
    s.set_read_timeout(Some(Duration::from_millis(150))).ok()?;
    let q = query(name, t);
    s.send_to(&q.to_vec().ok()?, addr).ok()?;
    let mut buf = [0u8; 1500];
    let (n, _) = s.recv_from(&mut buf).ok()?;
    let m = Message::from_bytes(&buf[..n]).ok()?;
    (m.metadata.id == q.metadata.id).then_some(m)
}

fn serial(addr: SocketAddr) -> Option<u32> {
    ask(addr, "ggon.org.", RecordType::SOA)?
        .answers
        .iter()
        .find_map(|r| match &r.data {
            RData::SOA(s) => Some(s.serial),
            _ => None,
        })
}

/// (target, serial), when the SOA before and after the A record agree.
fn read_node(addr: SocketAddr) -> Option<(String, u32)> {
    let before = serial(addr)?;
    let a = ask(addr, "cic.ggon.org.", RecordType::A)?;
    let ip = a.answers.iter().find_map(|r| match &r.data {
        RData::A(a) => Some(a.0),
        _ => None,
    })?;
    let after = serial(addr)?;
    let t = ip.octets()[3].checked_sub(11)?;
    (before == after).then(|| (format!("t{t}"), before))
}

/// POST a remap; Some(true) on 200, Some(false) on another status, None
/// without an answer.
fn remap(control: SocketAddr, target: &str) -> Option<bool> {
    let mut s = TcpStream::connect_timeout(&control, Duration::from_millis(500)).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(3))).ok()?;
    let body = format!("{{\"to\":\"{target}\",\"force\":true,\"reason\":\"nemesis\"}}");
    let req = format!(
        "POST /v1/services/cic/remap HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\
         Authorization: Bearer {TOKEN}\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    );
    s.write_all(req.as_bytes()).ok()?;
    let mut resp = String::new();
    s.read_to_string(&mut resp).ok()?;
    Some(resp.starts_with("HTTP/1.1 200"))
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
        w.nodes.wait_leader(Duration::from_secs(15)).is_some(),
        "no leader at start:\n{}",
        w.nodes.logs()
    );
    let clock = Arc::new(Clock(Instant::now()));
    let stop = Arc::new(AtomicBool::new(false));
    let mut whole = vec![Whole {
        from: 0,
        until: u64::MAX,
    }];

    let reader = {
        let (table, clock, stop) = (w.table.clone(), clock.clone(), stop.clone());
        std::thread::spawn(move || {
            let mut reads = Vec::new();
            while !stop.load(Ordering::Relaxed) && reads.len() < 200_000 {
                let nodes = table.lock().unwrap().clone();
                for (i, n) in nodes.iter().enumerate() {
                    let Some((dns, _, life)) = n else { continue };
                    let start = clock.ms();
                    if let Some((target, serial)) = read_node(*dns) {
                        reads.push(Read {
                            node: i,
                            life: *life,
                            start,
                            end: clock.ms(),
                            target,
                            serial,
                        });
                    }
                }
                std::thread::sleep(Duration::from_millis(50));
            }
            reads
        })
    };
    let client = {
        let (table, clock, stop) = (w.table.clone(), clock.clone(), stop.clone());
        let mut rng = rand::rngs::StdRng::seed_from_u64(seed ^ 0x5eed);
        std::thread::spawn(move || {
            let mut remaps: Vec<Remap> = Vec::new();
            let mut recent: Vec<usize> = vec![0];
            while !stop.load(Ordering::Relaxed) && remaps.len() < 10_000 {
                let live: Vec<(usize, SocketAddr)> = table
                    .lock()
                    .unwrap()
                    .iter()
                    .enumerate()
                    .filter_map(|(i, n)| n.map(|(_, c, _)| (i, c)))
                    .collect();
                if !live.is_empty() {
                    let (node, control) = live[rng.random_range(0..live.len())];
                    let choices: Vec<usize> =
                        (0..TARGETS).filter(|t| !recent.contains(t)).collect();
                    let t = choices[rng.random_range(0..choices.len())];
                    recent.push(t);
                    if recent.len() > 3 {
                        recent.remove(0);
                    }
                    let target = format!("t{t}");
                    let invoked = clock.ms();
                    let acked = remap(control, &target);
                    remaps.push(Remap {
                        node,
                        target,
                        invoked,
                        completed: clock.ms(),
                        acked,
                    });
                }
                std::thread::sleep(Duration::from_millis(rng.random_range(200..1200)));
            }
            remaps
        })
    };

    // The schedule: a fault, held 1-3 s, healed; then the cluster must be
    // whole again (every node agrees on a leader) and stays so 2-4 s.
    let mut problems = Vec::new();
    let begin = Instant::now();
    let mut step = 0;
    while begin.elapsed() < Duration::from_secs(secs) && step < 1000 {
        step += 1;
        let fault = pick(&mut rng);
        let hold = rng.random_range(1000..3000);
        let calm = rng.random_range(2000..4000);
        whole.last_mut().unwrap().until = clock.ms();
        eprintln!(
            "nemesis {:>6} ms step {step}: {fault:?} for {hold} ms",
            clock.ms()
        );
        w.inject(fault, true);
        std::thread::sleep(Duration::from_millis(hold));
        w.heal(fault);
        let healed = clock.ms();
        match w.nodes.wait_leader(Duration::from_secs(20)) {
            Some(l) => {
                let at = clock.ms();
                eprintln!(
                    "nemesis {at:>6} ms healed; whole again after {} ms, leader node{}",
                    at - healed,
                    l + 1
                );
                whole.push(Whole {
                    from: at,
                    until: u64::MAX,
                });
            }
            None => {
                problems.push(format!(
                    "step {step}: the cluster was not whole 20 s after healing {fault:?}"
                ));
                break;
            }
        }
        std::thread::sleep(Duration::from_millis(calm));
    }
    // Quiet end: no more remaps, then a last look at every node.
    stop.store(true, Ordering::Relaxed);
    let remaps = client.join().unwrap();
    let mut reads = reader.join().unwrap();
    let settle = clock.ms() + 1000;
    std::thread::sleep(Duration::from_millis(1200));
    let table = w.table.lock().unwrap().clone();
    for (i, n) in table.iter().enumerate() {
        let (dns, _, life) = n.expect("all nodes up at the end");
        let start = clock.ms();
        match read_node(dns) {
            Some((target, serial)) => reads.push(Read {
                node: i,
                life,
                start,
                end: clock.ms(),
                target,
                serial,
            }),
            None => problems.push(format!("node{} does not answer at the end", i + 1)),
        }
    }
    whole.last_mut().unwrap().until = clock.ms() + 1;
    let _ = settle;

    let report = check(&remaps, &reads, &whole);
    let acked = remaps.iter().filter(|r| r.acked == Some(true)).count();
    let refused = remaps.iter().filter(|r| r.acked == Some(false)).count();
    let unknown = remaps.iter().filter(|r| r.acked.is_none()).count();
    eprintln!(
        "nemesis: seed {seed}, {step} steps, {} remaps ({acked} acknowledged, {refused} refused, {unknown} without answer), \
         {} reads, {} acknowledged remaps checked for visibility, {} violations",
        remaps.len(),
        report.reads,
        report.checked_visible,
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
