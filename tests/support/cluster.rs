//! Three (or more) real ggond nodes in cluster mode on loopback, each with
//! its own config, state directory and log, all with the same zone, the
//! same control token and a `[cluster]` section naming real etcd members
//! (or a [`super::etcd::TcpProxy`] in front of them, to cut one node off).

use std::net::{Ipv4Addr, SocketAddr};
use std::path::PathBuf;
use std::time::{Duration, Instant};

use hickory_proto::rr::RecordType;
use serde_json::Value;

use super::ggond::{a_records, ask_udp, poll, query, soa_serial, Ggond, DEMO_ZONE};

/// The same token on every node: a follower passes the operator's call on
/// to the leader with the operator's own token.
pub const TOKEN: &str = "cluster-test-token-5f2a9c1e7b";

/// The lease TTL the tests run with (the shortest etcd allows well).
pub const LEASE: Duration = Duration::from_secs(2);

pub struct Nodes {
    pub dir: tempfile::TempDir,
    pub nodes: Vec<Option<Ggond>>,
    configs: Vec<PathBuf>,
    starts: usize,
    /// Control TLS: the CA ggon-ctl trusts (see [`Nodes::start_tls`]).
    ctl_ca: Option<PathBuf>,
    /// Each node's network namespace and address (see [`Nodes::start_placed`]).
    places: Vec<(String, Ipv4Addr)>,
}

impl Nodes {
    /// Start one node per entry of `etcd` (that node's etcd endpoints) with
    /// `services[i]` as its services (TOML `[[service]]` tables).
    pub fn start(etcd: &[Vec<String>], services: &[String]) -> Nodes {
        Nodes::start_with_ca(etcd, DEMO_ZONE, services, None)
    }

    /// Like [`Nodes::start`] with `zone` as ggon.org's master file.
    pub fn start_zone(etcd: &[Vec<String>], zone: &str, services: &[String]) -> Nodes {
        Nodes::start_with_ca(etcd, zone, services, None)
    }

    /// Like [`Nodes::start`] for nodes whose `services[i]` also holds a
    /// `[control]` table with TLS: ggon-ctl then talks https, trusting `ca`.
    pub fn start_tls(etcd: &[Vec<String>], services: &[String], ca: &std::path::Path) -> Nodes {
        Nodes::start_with_ca(etcd, DEMO_ZONE, services, Some(ca.to_path_buf()))
    }

    /// Like [`Nodes::start`], node `i` in network namespace `places[i].0`
    /// answering DNS and control on `places[i].1`.
    pub fn start_placed(
        etcd: &[Vec<String>],
        services: &[String],
        places: Vec<(String, Ipv4Addr)>,
    ) -> Nodes {
        Nodes::start_full(etcd, DEMO_ZONE, services, None, places)
    }

    fn start_with_ca(
        etcd: &[Vec<String>],
        zone_text: &str,
        services: &[String],
        ctl_ca: Option<PathBuf>,
    ) -> Nodes {
        Nodes::start_full(etcd, zone_text, services, ctl_ca, Vec::new())
    }

    fn start_full(
        etcd: &[Vec<String>],
        zone_text: &str,
        services: &[String],
        ctl_ca: Option<PathBuf>,
        places: Vec<(String, Ipv4Addr)>,
    ) -> Nodes {
        let dir = tempfile::Builder::new()
            .prefix("ggon-cluster-")
            .tempdir()
            .expect("temp dir");
        let zone = dir.path().join("ggon.org.zone");
        std::fs::write(&zone, zone_text).expect("zone");
        let mut configs = Vec::new();
        for (i, endpoints) in etcd.iter().enumerate() {
            let ndir = dir.path().join(format!("node{}", i + 1));
            std::fs::create_dir_all(ndir.join("state")).expect("node dir");
            let token = ndir.join("state").join("control.token");
            std::fs::write(&token, format!("{TOKEN}\n")).expect("token");
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(&token, std::fs::Permissions::from_mode(0o600)).unwrap();
            let list: Vec<String> = endpoints.iter().map(|e| format!("\"{e}\"")).collect();
            let config = format!(
                "[cluster]\netcd = [{}]\nnode = \"node{}\"\nlease_ttl = \"{}s\"\n\n\
                 [[zone]]\norigin = \"ggon.org\"\nfile = \"{}\"\n\n{}",
                list.join(", "),
                i + 1,
                LEASE.as_secs(),
                zone.display(),
                services[i]
            );
            let path = ndir.join("ggon.toml");
            std::fs::write(&path, config).expect("config");
            configs.push(path);
        }
        let mut n = Nodes {
            dir,
            nodes: Vec::new(),
            configs,
            starts: 0,
            ctl_ca,
            places,
        };
        for i in 0..etcd.len() {
            let g = n.launch(i);
            n.nodes.push(Some(g));
        }
        n
    }

    fn launch(&mut self, i: usize) -> Ggond {
        self.starts += 1;
        let ndir = self.configs[i].parent().unwrap().to_path_buf();
        let (log, ready) = (
            ndir.join(format!("ggond.{}.log", self.starts)),
            ndir.join(format!("ready.{}.json", self.starts)),
        );
        let state = ndir.join("state");
        let mut g = match self.places.get(i) {
            Some((ns, ip)) => Ggond::start_in(&self.configs[i], &state, &log, &ready, ns, *ip),
            None => Ggond::start(&self.configs[i], &state, &log, &ready),
        };
        g.ca_file = self.ctl_ca.clone();
        g
    }

    /// Node `i`'s config file (to change it before a restart).
    pub fn config(&self, i: usize) -> &std::path::Path {
        &self.configs[i]
    }

    pub fn node(&self, i: usize) -> &Ggond {
        self.nodes[i].as_ref().expect("node running")
    }

    pub fn live(&self) -> Vec<usize> {
        (0..self.nodes.len())
            .filter(|i| self.nodes[*i].is_some())
            .collect()
    }

    /// kill -9.
    pub fn kill(&mut self, i: usize) {
        let g = self.nodes[i].take().expect("node running");
        g.signal(libc::SIGKILL);
        drop(g);
    }

    /// Start a stopped or killed node again with the same config and state.
    pub fn restart(&mut self, i: usize) {
        assert!(self.nodes[i].is_none(), "node {i} is running");
        let g = self.launch(i);
        self.nodes[i] = Some(g);
    }

    /// `ggon-ctl status --json` of node `i`, if it answers.
    pub fn status(&self, i: usize) -> Option<Value> {
        // Exit 1 with a JSON answer is a status that gives cause for
        // concern (say, every service off its primary): still an answer.
        let out = self.node(i).ctl(&["status", "--json"]);
        serde_json::from_str(&out.stdout).ok()
    }

    /// The leader as node `i` sees it.
    pub fn leader_seen_by(&self, i: usize) -> Option<String> {
        self.status(i)?["cluster"]["leader"]
            .as_str()
            .map(str::to_string)
    }

    /// The index of the leader all live nodes agree on, waiting up to `limit`.
    pub fn wait_leader(&self, limit: Duration) -> Option<usize> {
        self.wait_leader_among(&self.live(), limit)
    }

    /// Like [`Nodes::wait_leader`], asking only the nodes in `among`.
    pub fn wait_leader_among(&self, among: &[usize], limit: Duration) -> Option<usize> {
        poll(limit, || {
            let seen: Vec<Option<String>> = among.iter().map(|i| self.leader_seen_by(*i)).collect();
            let first = seen.first()?.clone()?;
            if !seen.iter().all(|s| s.as_deref() == Some(first.as_str())) {
                return None;
            }
            let idx: usize = first.strip_prefix("node")?.parse().ok()?;
            if !among.contains(&(idx - 1)) {
                return None;
            }
            // The named node must lead by its own account too: after an etcd
            // outage every node can still see a key the named node holds
            // from a lapsed lease, until it removes it and a new election runs.
            let own = self.status(idx - 1)?;
            (own["cluster"]["role"] == "leader").then_some(idx - 1)
        })
    }

    /// What node `i` answers for cic, and its zone serial.
    pub fn answer(&self, i: usize) -> (Vec<Ipv4Addr>, u32) {
        let dns = self.node(i).dns;
        let a = a_records(&ask_udp(dns, &query("cic.ggon.org.", RecordType::A)));
        let serial = soa_serial(&ask_udp(dns, &query("ggon.org.", RecordType::SOA)));
        (a, serial)
    }

    /// Wait until every live node answers `want` for cic with one serial;
    /// returns how long that took and the serial.
    pub fn wait_all_answer(&self, want: Ipv4Addr, limit: Duration) -> Option<(Duration, u32)> {
        let t0 = Instant::now();
        poll(limit, || {
            let answers: Vec<(Vec<Ipv4Addr>, u32)> =
                self.live().iter().map(|i| self.answer(*i)).collect();
            let serial = answers[0].1;
            answers
                .iter()
                .all(|(a, s)| a == &vec![want] && *s == serial)
                .then_some((t0.elapsed(), serial))
        })
    }

    /// Every live node's answer, for failure messages.
    pub fn answers(&self) -> String {
        self.live()
            .iter()
            .map(|i| format!("node{}: {:?}", i + 1, self.answer(*i)))
            .collect::<Vec<_>>()
            .join("; ")
    }

    pub fn logs(&self) -> String {
        self.live()
            .iter()
            .map(|i| {
                let text = self.node(*i).log_text();
                let tail: Vec<&str> = text.lines().rev().take(25).collect();
                format!(
                    "--- node{} ---\n{}",
                    i + 1,
                    tail.into_iter().rev().collect::<Vec<_>>().join("\n")
                )
            })
            .collect::<Vec<_>>()
            .join("\n")
    }
}

/// An HTTP-checked service `cic` with targets primary/backup at the given
/// check URLs (per node: a node can be given URLs it cannot reach).
pub fn cic(primary_url: &str, backup_url: &str) -> String {
    format!(
        "[[service]]\nname = \"cic\"\nfqdn = \"cic.ggon.org\"\nttl = 30\n\n\
         [[service.target]]\nname = \"primary\"\naddresses = [\"127.0.0.11\"]\n\
         check = {{ type = \"http\", url = \"{primary_url}\", interval = \"200ms\", timeout = \"200ms\", rise = 2, fall = 2 }}\n\n\
         [[service.target]]\nname = \"backup\"\naddresses = [\"127.0.0.12\"]\n\
         check = {{ type = \"http\", url = \"{backup_url}\", interval = \"200ms\", timeout = \"200ms\", rise = 2, fall = 2 }}\n"
    )
}

/// A URL nothing listens on (a port just bound and closed).
pub fn dead_url() -> String {
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr: SocketAddr = l.local_addr().unwrap();
    drop(l);
    format!("http://{addr}/")
}
