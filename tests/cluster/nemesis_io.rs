//! What both nemesis tests do to the nodes while faults run: the reader
//! (every node's SOA, A records and SOA again, every 50 ms) and the
//! operator clients (forced remaps of cic through random live nodes), each
//! recording what it saw for [`super::nemesis_check`].

use std::io::{Read as _, Write as _};
use std::net::{SocketAddr, TcpStream, UdpSocket};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use hickory_proto::op::Message;
use hickory_proto::rr::{RData, RecordType};
use hickory_proto::serialize::binary::BinDecodable;
use rand::{Rng, SeedableRng};

use super::nemesis_check::{Read, Remap, Whole};
use crate::support::cluster::{Nodes, TOKEN};
use crate::support::etcd::EtcdCluster;
use crate::support::ggond::query;

/// Each node's addresses while it runs: (DNS, control, life).
pub type Table = Arc<Mutex<Vec<Option<(SocketAddr, SocketAddr, u32)>>>>;

pub struct Clock(pub Instant);
impl Clock {
    pub fn ms(&self) -> u64 {
        self.0.elapsed().as_millis() as u64
    }
}

/// cic's targets `t0`…: target `t` answers 127.0.0.(11 + t).
pub const CIC_BASE: u8 = 11;
/// web's targets `w0`…: target `w` answers 127.0.0.(41 + w).
pub const WEB_BASE: u8 = 41;

fn ask(addr: SocketAddr, name: &str, t: RecordType) -> Option<Message> {
    // Any local address: the nodes may be in namespaces (observer links).
    let s = UdpSocket::bind("0.0.0.0:0").ok()?;
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

/// The target a service answers: `{prefix}{last octet - base}`.
fn target_of(addr: SocketAddr, name: &str, prefix: &str, base: u8) -> Option<String> {
    let a = ask(addr, name, RecordType::A)?;
    let ip = a.answers.iter().find_map(|r| match &r.data {
        RData::A(a) => Some(a.0),
        _ => None,
    })?;
    Some(format!("{prefix}{}", ip.octets()[3].checked_sub(base)?))
}

/// (cic's target, web's target if `with_web`, serial), when the SOA before
/// and after the A records agree.
pub fn read_node(addr: SocketAddr, with_web: bool) -> Option<(String, Option<String>, u32)> {
    let before = serial(addr)?;
    let cic = target_of(addr, "cic.ggon.org.", "t", CIC_BASE)?;
    let web = match with_web {
        true => Some(target_of(addr, "web.ggon.org.", "w", WEB_BASE)?),
        false => None,
    };
    let after = serial(addr)?;
    (before == after).then_some((cic, web, before))
}

/// POST a remap; Some(true) on 200, Some(false) on another status, None
/// without an answer or when ggond says the outcome is unknown (its write
/// reached etcd without an answer: it may land).
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
    if resp.contains("may or may not have been made") {
        return None;
    }
    Some(resp.starts_with("HTTP/1.1 200"))
}

/// Read every running node every 50 ms until `stop` (at most 200,000 reads).
pub fn spawn_reader(
    table: &Table,
    clock: &Arc<Clock>,
    stop: &Arc<AtomicBool>,
    with_web: bool,
) -> JoinHandle<Vec<Read>> {
    let (table, clock, stop) = (table.clone(), clock.clone(), stop.clone());
    std::thread::spawn(move || {
        let mut reads = Vec::new();
        while !stop.load(Ordering::Relaxed) && reads.len() < 200_000 {
            let nodes = table.lock().unwrap().clone();
            for (i, n) in nodes.iter().enumerate() {
                let Some((dns, _, life)) = n else { continue };
                let start = clock.ms();
                if let Some((target, web, serial)) = read_node(*dns, with_web) {
                    reads.push(Read {
                        node: i,
                        life: *life,
                        start,
                        end: clock.ms(),
                        target,
                        web,
                        serial,
                    });
                }
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        reads
    })
}

/// `clients` operator clients, each remapping cic (forced) through a random
/// running node every 0.2–1.2 s, to a target of `targets` not among the
/// last `recent` invoked by any client (so a target's answer says which
/// decision it is). Returns every remap, sorted by invocation.
pub fn spawn_clients(
    clients: usize,
    (targets, recent): (usize, usize),
    table: &Table,
    clock: &Arc<Clock>,
    stop: &Arc<AtomicBool>,
    seed: u64,
) -> JoinHandle<Vec<Remap>> {
    let last: Arc<Mutex<Vec<usize>>> = Arc::new(Mutex::new(vec![0]));
    let threads: Vec<JoinHandle<Vec<Remap>>> = (0..clients)
        .map(|c| {
            let (table, clock, stop, last) =
                (table.clone(), clock.clone(), stop.clone(), last.clone());
            let mut rng = rand::rngs::StdRng::seed_from_u64(seed ^ 0x5eed ^ c as u64);
            std::thread::spawn(move || {
                let mut remaps: Vec<Remap> = Vec::new();
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
                        let t = {
                            let mut last = last.lock().unwrap();
                            let choices: Vec<usize> =
                                (0..targets).filter(|t| !last.contains(t)).collect();
                            let t = choices[rng.random_range(0..choices.len())];
                            last.push(t);
                            if last.len() > recent {
                                last.remove(0);
                            }
                            t
                        };
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
        })
        .collect();
    std::thread::spawn(move || {
        let mut all: Vec<Remap> = threads
            .into_iter()
            .flat_map(|t| t.join().unwrap())
            .collect();
        all.sort_by_key(|r| r.invoked);
        all
    })
}

/// A last look at every node after the quiet end: one read each, or a
/// problem for a node that does not answer.
pub fn final_reads(
    table: &Table,
    clock: &Clock,
    with_web: bool,
    reads: &mut Vec<Read>,
    problems: &mut Vec<String>,
) {
    let table = table.lock().unwrap().clone();
    for (i, n) in table.iter().enumerate() {
        let (dns, _, life) = n.expect("all nodes up at the end");
        let start = clock.ms();
        match read_node(dns, with_web) {
            Some((target, web, serial)) => reads.push(Read {
                node: i,
                life,
                start,
                end: clock.ms(),
                target,
                web,
                serial,
            }),
            None => problems.push(format!("node{} does not answer at the end", i + 1)),
        }
    }
}

/// Counts of the remaps by outcome: (acknowledged, refused, no answer).
pub fn outcomes(remaps: &[Remap]) -> (usize, usize, usize) {
    let n = |a: Option<bool>| remaps.iter().filter(|r| r.acked == a).count();
    (n(Some(true)), n(Some(false)), n(None))
}

/// Wait (at most `limit`) until the cluster is *whole*: every etcd member
/// healthy, every node connected to etcd (a lease and a watch), and a
/// leader every node agrees on, which leads by its own account. Returns
/// the leader and when (ms after the call) each of the three first held.
pub fn wait_whole(nodes: &Nodes, etcd: &EtcdCluster, limit: Duration) -> Option<(usize, [u64; 3])> {
    let t0 = Instant::now();
    let mut first: [Option<u64>; 3] = [None; 3];
    let leader = crate::support::ggond::poll(limit, || {
        let healthy = (0..etcd.len()).all(|m| etcd.health(m, Duration::from_secs(1)) == Some(true));
        let connected = nodes.live().iter().all(|i| {
            nodes
                .status(*i)
                .is_some_and(|s| s["cluster"]["connected"] == true)
        });
        let leader = nodes.wait_leader(Duration::ZERO);
        let now = t0.elapsed().as_millis() as u64;
        for (f, ok) in first.iter_mut().zip([healthy, connected, leader.is_some()]) {
            if ok {
                f.get_or_insert(now);
            }
        }
        leader.filter(|_| healthy && connected)
    })?;
    Some((leader, first.map(|f| f.unwrap_or(0))))
}

/// The intervals in which the cluster was whole, and (to compare, for the
/// diagnostics) those in which the nodes only agreed on a leader: the
/// loopback nemesis's first meaning of whole, which does not wait for a
/// node to be connected to etcd again.
pub struct Wholes {
    pub whole: Vec<Whole>,
    pub agreed: Vec<Whole>,
}

impl Wholes {
    pub fn new() -> Wholes {
        let all = Whole {
            from: 0,
            until: u64::MAX,
        };
        Wholes {
            whole: vec![all],
            agreed: vec![all],
        }
    }

    /// A fault at `at` ends both.
    pub fn broken(&mut self, at: u64) {
        self.whole.last_mut().unwrap().until = at;
        self.agreed.last_mut().unwrap().until = at;
    }

    /// Whole again at `at` with node `leader` leading, healed at `healed`,
    /// with [`wait_whole`]'s times; printed with the schedule.
    pub fn again(&mut self, healed: u64, at: u64, when: [u64; 3], leader: usize) {
        eprintln!(
            "nemesis {at:>6} ms healed; whole again after {} ms, leader node{} \
             (etcd healthy +{} ms, nodes connected +{} ms, leader agreed +{} ms)",
            at - healed,
            leader + 1,
            when[0],
            when[1],
            when[2]
        );
        let open = |from| Whole {
            from,
            until: u64::MAX,
        };
        self.whole.push(open(at));
        self.agreed.push(open((healed + when[2]).min(at)));
    }

    /// The run ends at `at`.
    pub fn end(&mut self, at: u64) {
        self.broken(at);
    }
}
