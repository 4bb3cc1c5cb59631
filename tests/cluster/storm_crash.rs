//! A crash in the middle of a storm: 1,000 services lose their primary at
//! once (one site down), the leader is killed with SIGKILL while the
//! failovers are being decided and written, and after it restarts every
//! node answers the same, complete state: every service on its backup,
//! one serial.

use std::net::{Ipv4Addr, SocketAddr};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use hickory_proto::rr::RecordType;

use crate::support::cluster::Nodes;
use crate::support::etcd::EtcdCluster;
use crate::support::etcd_client::etcd_get;
use crate::support::ggond::{a_records, ask_udp, poll, query, soa_serial};

const N: usize = 1_000;
const PRIMARY: Ipv4Addr = Ipv4Addr::new(127, 0, 0, 11);
const BACKUP: Ipv4Addr = Ipv4Addr::new(127, 0, 0, 12);

/// A TCP listener that accepts and closes at once, with a backlog for
/// thousands of checks a second (the HTTP target answers one at a time);
/// `stop` closes it: connections are refused from then on.
struct Site {
    addr: SocketAddr,
    stop: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Site {
    fn start(ip: Ipv4Addr) -> Site {
        use socket2::{Domain, Socket, Type};
        let sock = Socket::new(Domain::IPV4, Type::STREAM, None).expect("socket");
        sock.bind(&SocketAddr::from((ip, 0)).into()).expect("bind");
        sock.listen(4096).expect("listen");
        sock.set_nonblocking(true).expect("nonblocking");
        let listener: std::net::TcpListener = sock.into();
        let addr = listener.local_addr().expect("addr");
        let stop = Arc::new(AtomicBool::new(false));
        let flag = stop.clone();
        let thread = std::thread::spawn(move || {
            while !flag.load(Ordering::SeqCst) {
                match listener.accept() {
                    Ok(_) => continue,
                    Err(_) => std::thread::sleep(Duration::from_millis(1)),
                }
            }
        });
        Site {
            addr,
            stop,
            thread: Some(thread),
        }
    }

    fn stop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

impl Drop for Site {
    fn drop(&mut self) {
        self.stop();
    }
}

/// N services, each with a primary and a backup; every primary is checked
/// on one listener (the site) and every backup on another, over TCP.
fn services(primary: SocketAddr, backup: SocketAddr) -> String {
    let mut s = String::with_capacity(N * 400);
    for i in 0..N {
        s += &format!(
            "[[service]]\nname = \"s{i}\"\nfqdn = \"s{i}.ggon.org\"\nttl = 30\n\n\
             [[service.target]]\nname = \"primary\"\naddresses = [\"{PRIMARY}\"]\n\
             check = {{ type = \"tcp\", address = \"{primary}\", interval = \"2s\", timeout = \"500ms\", rise = 2, fall = 2 }}\n\n\
             [[service.target]]\nname = \"backup\"\naddresses = [\"{BACKUP}\"]\n\
             check = {{ type = \"tcp\", address = \"{backup}\", interval = \"2s\", timeout = \"500ms\", rise = 2, fall = 2 }}\n\n"
        );
    }
    s
}

/// How many of the services node `i` answers with `want` (a sample when
/// `step` > 1), and its serial.
fn count(nodes: &Nodes, i: usize, want: Ipv4Addr, step: usize) -> (usize, u32) {
    let dns = nodes.node(i).dns;
    let n = (0..N)
        .step_by(step)
        .filter(|s| {
            a_records(&ask_udp(
                dns,
                &query(&format!("s{s}.ggon.org."), RecordType::A),
            )) == vec![want]
        })
        .count();
    (n, serial(dns))
}

fn serial(dns: SocketAddr) -> u32 {
    soa_serial(&ask_udp(dns, &query("ggon.org.", RecordType::SOA)))
}

/// The log lines of every node about leases and leadership (the tails
/// `Nodes::logs` prints are all failovers here).
fn about_leaders(nodes: &Nodes) -> String {
    let mut out = String::new();
    for e in walk(nodes.dir.path()) {
        if e.extension().is_some_and(|x| x == "log") {
            let text = std::fs::read_to_string(&e).unwrap_or_default();
            out += &format!("--- {} ---\n", e.display());
            for l in text
                .lines()
                .filter(|l| l.contains("lead") || l.contains("lease") || l.contains("etcd"))
            {
                out += l;
                out.push('\n');
            }
        }
    }
    out
}

fn walk(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        let p = e.path();
        if p.is_dir() {
            out.extend(walk(&p));
        } else {
            out.push(p);
        }
    }
    out
}

#[test]
fn leader_killed_during_a_site_failure_of_1000_services_every_node_ends_complete_and_equal() {
    let etcd = EtcdCluster::start(3);
    let mut site = Site::start(PRIMARY);
    let backup = Site::start(BACKUP);
    let svc = services(site.addr, backup.addr);
    let mut nodes = Nodes::start(&vec![etcd.endpoints(); 3], &vec![svc; 3]);
    let leader = nodes
        .wait_leader(Duration::from_secs(30))
        .unwrap_or_else(|| panic!("no leader: {}", nodes.logs()));
    let start = poll(Duration::from_secs(60), || {
        (0..3)
            .all(|i| count(&nodes, i, PRIMARY, 50).0 == N / 50)
            .then_some(())
    });
    assert!(
        start.is_some(),
        "not every node answers every primary: {}",
        nodes.logs()
    );

    site.stop();
    let t0 = Instant::now();
    // Kill the leader once it has begun to fail services over, not after.
    let begun = poll(Duration::from_secs(20), || {
        let (moved, _) = count(&nodes, leader, BACKUP, 10);
        (moved > 0).then_some(moved)
    });
    let moved = begun.unwrap_or_else(|| panic!("no failover began: {}", nodes.logs()));
    nodes.kill(leader);
    println!(
        "leader node{} killed {:?} after the site failed, with {}/{} sampled services moved",
        leader + 1,
        t0.elapsed(),
        moved,
        N / 10
    );
    // Another node leads (its key in etcd; `ggon-ctl status` of a node
    // busy with 1,000 failovers in a debug build is too slow to poll).
    let killed = format!("node{}", leader + 1);
    let new = poll(Duration::from_secs(15), || {
        etcd_get(&etcd.endpoint(0), "/ggon/leader")
            .ok()
            .flatten()
            .filter(|l| *l != killed)
    });
    let new = new.unwrap_or_else(|| panic!("no new leader: {}", about_leaders(&nodes)));
    println!("{new} leads {:?} after the site failed", t0.elapsed());
    nodes.restart(leader);
    let done = poll(Duration::from_secs(60), || {
        let c: Vec<(usize, u32)> = (0..3).map(|i| count(&nodes, i, BACKUP, 1)).collect();
        c.iter().all(|&(n, s)| n == N && s == c[0].1).then_some(c)
    });
    let c = done.unwrap_or_else(|| {
        let c: Vec<(usize, u32)> = (0..3).map(|i| count(&nodes, i, BACKUP, 1)).collect();
        panic!(
            "nodes not complete and equal (on backup, serial): {c:?}\n{}",
            nodes.logs()
        )
    });
    println!(
        "every node answers all {N} backups at serial {} after {:?}",
        c[0].1,
        t0.elapsed()
    );
    // The status agrees: every service active on its backup, on every node.
    for i in 0..3 {
        // (ggon-ctl status exits 1 with every service off its primary.)
        let (code, body) = crate::support::ggond::http_request(
            nodes.node(i).control,
            "GET",
            "/v1/status",
            Some(crate::support::cluster::TOKEN),
            None,
        );
        assert_eq!(code, 200, "{body}");
        let st: serde_json::Value = serde_json::from_str(&body).expect("status JSON");
        let services = st["services"].as_array().expect("services");
        assert_eq!(services.len(), N);
        let on_backup = services.iter().filter(|s| s["active"] == "backup").count();
        assert_eq!(on_backup, N, "node{}", i + 1);
    }
    drop(nodes);
    drop(etcd);
}
