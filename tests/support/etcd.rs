//! A real etcd cluster on loopback for the failover tests: N `etcd` members
//! (Debian package `etcd-server`, 3.4) as one static cluster, each with its
//! own data dir and log file; stop/kill/restart/pause of single members; a
//! tiny blocking client for the v3 JSON gateway; and [`TcpProxy`], a loopback
//! TCP forwarder that can cut one client off from etcd while the others still
//! reach it.
//!
//! etcd 3.4's JSON gateway (`/v3/...` on the client URL) wants keys and
//! values base64-encoded and encodes every int64 (revisions, ids, counts,
//! lease TTLs) as a JSON string; empty fields (no `kvs`, `count` 0) are left
//! out of the answer. Every wait here is bounded; only 127.0.0.1 is used, or
//! the addresses of a test's own network namespaces (`start_placed`).

use std::fs::File;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use serde_json::{json, Value};

#[allow(unused_imports)] // re-exported for the suites that use them
pub use super::etcd_client::*;
use super::process::{poll, stable_port, tail, wait_stopped};
#[allow(unused_imports)]
pub use super::proxy::TcpProxy;

/// The etcd binary (Debian package `etcd-server`).
pub const ETCD: &str = "/usr/bin/etcd";

/// How long [`EtcdCluster::start`] and [`EtcdCluster::restart`] wait for health.
pub const START_LIMIT: Duration = Duration::from_secs(20);

/// Raft timing of the test clusters (ms): a killed or paused leader is
/// replaced within about 1-2 election timeouts (1.2-1.8 s seen here).
pub const HEARTBEAT_MS: u64 = 100;
pub const ELECTION_MS: u64 = 1000;

/// The whole-request limit of the JSON client helpers. etcd itself holds a
/// request it cannot commit (leader just lost, no quorum) for its request
/// timeout, 5 s + 2 election timeouts = 7 s, then answers 503 "etcdserver:
/// request timed out"; callers retry instead.
pub const REQUEST_LIMIT: Duration = Duration::from_secs(3);

/// The key [`EtcdCluster::start`] writes, reads back and deletes to prove the
/// gateway works; the cluster starts with an empty keyspace (revision 3).
const READY_KEY: &str = "__ggon_test_harness_ready";

// ---------------------------------------------------------------------------
// the cluster

struct Member {
    name: String,
    client_port: u16,
    peer_port: u16,
    data_dir: PathBuf,
    log: PathBuf,
    child: Option<Child>,
    paused: bool,
    /// The address it listens on (127.0.0.1, or its own in a namespace).
    host: String,
    /// The network namespace it runs in (`ip netns exec`), if any.
    netns: Option<String>,
}

impl Member {
    fn client_url(&self) -> String {
        format!("http://{}:{}", self.host, self.client_port)
    }

    fn peer_url(&self) -> String {
        format!("http://{}:{}", self.host, self.peer_port)
    }

    fn signal(&self, sig: libc::c_int) {
        if let Some(child) = &self.child {
            // SAFETY: kill(2) on the pid of a child we spawned and have not reaped.
            unsafe {
                libc::kill(child.id() as libc::pid_t, sig);
            }
        }
    }

    /// Wait up to `limit` for the child to exit (reaping it); false if it is
    /// still running.
    fn reap_within(&mut self, limit: Duration) -> bool {
        let Some(child) = self.child.as_mut() else {
            return true;
        };
        let done = poll(limit, Duration::from_millis(20), || {
            child.try_wait().ok().flatten().map(|_| ())
        })
        .is_some();
        if done {
            self.child = None;
            self.paused = false;
        }
        done
    }

    fn kill_and_reap(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
        self.paused = false;
    }
}

/// N real etcd members on 127.0.0.1 forming one static cluster; every member
/// is killed and the temp dir removed on drop (kept with GGON_KEEP_TMP=1).
pub struct EtcdCluster {
    members: Vec<Member>,
    token: String,
    initial_cluster: String,
    /// More etcd flags for every member (e.g. `--quota-backend-bytes`).
    extra: Vec<String>,
    dir: Option<tempfile::TempDir>,
}

static CLUSTERS: AtomicU64 = AtomicU64::new(0);

impl EtcdCluster {
    /// Start `n` members and wait (at most [`START_LIMIT`]) until every one
    /// answers `/health` with `{"health":"true"}` and a put/range round trip
    /// through the JSON gateway works; panics with the log tails otherwise.
    pub fn start(n: usize) -> EtcdCluster {
        EtcdCluster::start_with(n, &[])
    }

    /// Like [`EtcdCluster::start`], with `extra` flags for every member.
    pub fn start_with(n: usize, extra: &[&str]) -> EtcdCluster {
        EtcdCluster::start_placed(n, extra, &[])
    }

    /// Like [`EtcdCluster::start_with`], member `i` in network namespace
    /// `places[i].0` on address `places[i].1` (for `i < places.len()`),
    /// started with `ip netns exec` (which execs: the child's pid is etcd's).
    pub fn start_placed(
        n: usize,
        extra: &[&str],
        places: &[(String, std::net::Ipv4Addr)],
    ) -> EtcdCluster {
        assert!(n >= 1, "an etcd cluster needs at least one member");
        assert!(
            Path::new(ETCD).exists(),
            "{ETCD} not found: install the Debian package etcd-server (scripts/test does)"
        );
        let dir = tempfile::Builder::new()
            .prefix("ggon-etcd-")
            .tempdir()
            .expect("create etcd temp dir");
        let nanos = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or(0);
        let token = format!(
            "ggon-test-{}-{}-{nanos}",
            std::process::id(),
            CLUSTERS.fetch_add(1, Ordering::Relaxed)
        );
        let members: Vec<Member> = (0..n)
            .map(|i| {
                let name = format!("m{i}");
                let data_dir = dir.path().join(format!("{name}.etcd"));
                let log = dir.path().join(format!("{name}.log"));
                Member {
                    name,
                    client_port: stable_port(),
                    peer_port: stable_port(),
                    data_dir,
                    log,
                    child: None,
                    paused: false,
                    host: places
                        .get(i)
                        .map_or("127.0.0.1".into(), |p| p.1.to_string()),
                    netns: places.get(i).map(|p| p.0.clone()),
                }
            })
            .collect();
        let initial_cluster = members
            .iter()
            .map(|m| format!("{}={}", m.name, m.peer_url()))
            .collect::<Vec<_>>()
            .join(",");
        let mut cluster = EtcdCluster {
            members,
            token,
            initial_cluster,
            extra: extra.iter().map(|s| s.to_string()).collect(),
            dir: Some(dir),
        };
        for i in 0..n {
            cluster.spawn(i, "new");
        }
        let deadline = Instant::now() + START_LIMIT;
        for i in 0..n {
            let left = deadline.saturating_duration_since(Instant::now());
            if !cluster.wait_healthy(i, left) {
                panic!(
                    "etcd member {i} not healthy within {START_LIMIT:?}{}",
                    cluster.log_tails()
                );
            }
        }
        let left = deadline.saturating_duration_since(Instant::now());
        let round_trip = poll(left, Duration::from_millis(100), || {
            let ep = cluster.endpoint(0);
            etcd_put(&ep, READY_KEY, "ready").ok()?;
            for j in 0..n {
                match etcd_get(&cluster.endpoint(j), READY_KEY) {
                    Ok(Some(v)) if v == "ready" => {}
                    _ => return None,
                }
            }
            etcd_delete(&ep, READY_KEY).ok()
        });
        if round_trip.is_none() {
            panic!(
                "etcd JSON gateway put/range round trip failed within {START_LIMIT:?}{}",
                cluster.log_tails()
            );
        }
        cluster
    }

    /// Number of members.
    pub fn len(&self) -> usize {
        self.members.len()
    }

    pub fn is_empty(&self) -> bool {
        self.members.is_empty()
    }

    /// Every member's client URL, `http://127.0.0.1:PORT`, in member order.
    pub fn endpoints(&self) -> Vec<String> {
        self.members.iter().map(Member::client_url).collect()
    }

    /// Member `i`'s client URL.
    pub fn endpoint(&self, i: usize) -> String {
        self.members[i].client_url()
    }

    /// Member `i`'s client address (what a [`TcpProxy`] forwards to).
    pub fn client_addr(&self, i: usize) -> SocketAddr {
        let host: std::net::IpAddr = self.members[i].host.parse().expect("an IP");
        SocketAddr::new(host, self.members[i].client_port)
    }

    /// Member `i`'s process id, while it runs.
    pub fn pid(&self, i: usize) -> Option<u32> {
        self.members[i].child.as_ref().map(Child::id)
    }

    /// Member `i`'s name (`m0`, `m1`, ...) as in `--initial-cluster`.
    pub fn name(&self, i: usize) -> &str {
        &self.members[i].name
    }

    /// Member `i`'s log file (stdout and stderr, appended across restarts).
    pub fn log_path(&self, i: usize) -> &Path {
        &self.members[i].log
    }

    /// The last 30 lines of member `i`'s log.
    pub fn log_tail(&self, i: usize) -> String {
        tail(&self.members[i].log, 30)
    }

    /// Every member's log tail, for failure messages.
    pub fn log_tails(&self) -> String {
        let mut s = String::new();
        for (i, m) in self.members.iter().enumerate() {
            s += &format!(
                "\netcd member {i} ({}, client {}, peer {}) {}",
                m.name,
                m.client_port,
                m.peer_port,
                tail(&m.log, 30)
            );
        }
        s
    }

    /// Whether member `i`'s process is alive (a paused member is alive).
    pub fn is_running(&mut self, i: usize) -> bool {
        let m = &mut self.members[i];
        match m.child.as_mut() {
            None => false,
            Some(c) => match c.try_wait() {
                Ok(None) => true,
                _ => {
                    m.child = None;
                    m.paused = false;
                    false
                }
            },
        }
    }

    /// Whether member `i` is stopped with SIGSTOP.
    pub fn is_paused(&self, i: usize) -> bool {
        self.members[i].paused
    }

    /// SIGTERM member `i` and wait (at most 5 s) for it to exit; SIGKILL then.
    /// A leader transfers leadership before exiting.
    pub fn stop(&mut self, i: usize) {
        let m = &mut self.members[i];
        if m.child.is_none() {
            return;
        }
        m.signal(libc::SIGTERM);
        if m.paused {
            m.signal(libc::SIGCONT);
            m.paused = false;
        }
        if !m.reap_within(Duration::from_secs(5)) {
            eprintln!("etcd member {i} ignored SIGTERM for 5 s; killing it");
            m.kill_and_reap();
        }
    }

    /// SIGKILL member `i` (no leadership transfer, like a crash) and reap it.
    pub fn kill(&mut self, i: usize) {
        self.members[i].kill_and_reap();
    }

    /// Start member `i` again (stopped or killed first if it is running) with
    /// the same ports and data dir and `--initial-cluster-state existing`, and
    /// wait (at most [`START_LIMIT`]) until it answers `/health` with true.
    pub fn restart(&mut self, i: usize) {
        if self.is_running(i) {
            self.stop(i);
        }
        self.spawn(i, "existing");
        if !self.wait_healthy(i, START_LIMIT) {
            panic!(
                "restarted etcd member {i} not healthy within {START_LIMIT:?}{}",
                self.log_tails()
            );
        }
    }

    /// Start every member that is not running (after all were stopped: no
    /// single one can become healthy alone), then wait until all are healthy.
    pub fn restart_stopped(&mut self) {
        let stopped: Vec<usize> = (0..self.len()).filter(|i| !self.is_running(*i)).collect();
        for i in &stopped {
            self.spawn(*i, "existing");
        }
        for i in stopped {
            if !self.wait_healthy(i, START_LIMIT) {
                panic!(
                    "restarted etcd member {i} not healthy within {START_LIMIT:?}{}",
                    self.log_tails()
                );
            }
        }
    }

    /// SIGSTOP member `i`: its sockets stay open but it answers nothing.
    pub fn pause(&mut self, i: usize) {
        let m = &mut self.members[i];
        assert!(m.child.is_some(), "pause: etcd member {i} is not running");
        m.signal(libc::SIGSTOP);
        m.paused = true;
        let pid = m.child.as_ref().expect("running").id();
        assert!(
            wait_stopped(pid, Duration::from_secs(2)),
            "etcd member {i} (pid {pid}) did not stop"
        );
    }

    /// SIGCONT member `i`.
    pub fn resume(&mut self, i: usize) {
        let m = &mut self.members[i];
        m.signal(libc::SIGCONT);
        m.paused = false;
    }

    /// `Some(true)` if member `i` answers `GET /health` with
    /// `{"health":"true"}` (it has a leader and a quorum read went through),
    /// `Some(false)` for another answer, None if it does not answer in `limit`.
    pub fn health(&self, i: usize, limit: Duration) -> Option<bool> {
        let (status, body) = http_request(&self.endpoint(i), "GET", "/health", None, limit).ok()?;
        let v: Value = serde_json::from_str(&body).ok()?;
        Some(status == 200 && v["health"] == "true")
    }

    /// Poll member `i` until it is healthy, for at most `limit`; false if it
    /// is not (or its process exited).
    pub fn wait_healthy(&mut self, i: usize, limit: Duration) -> bool {
        let deadline = Instant::now() + limit;
        loop {
            if !self.is_running(i) {
                return false;
            }
            let left = deadline.saturating_duration_since(Instant::now());
            let per_try = left
                .min(Duration::from_secs(1))
                .max(Duration::from_millis(50));
            if self.health(i, per_try) == Some(true) {
                return true;
            }
            if Instant::now() >= deadline {
                return false;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// The index of the current leader as member `i` sees it
    /// (`/v3/maintenance/status` and `/v3/cluster/member/list` on that
    /// member); None if it does not answer or knows no leader.
    pub fn leader_seen_by(&self, i: usize) -> Option<usize> {
        let ep = self.endpoint(i);
        let st = etcd_post(&ep, "/v3/maintenance/status", &json!({})).ok()?;
        let leader = st["leader"].as_str().filter(|l| *l != "0")?.to_string();
        let list = etcd_post(&ep, "/v3/cluster/member/list", &json!({})).ok()?;
        let name = list["members"]
            .as_array()?
            .iter()
            .find(|m| m["ID"].as_str() == Some(leader.as_str()))?["name"]
            .as_str()?
            .to_string();
        self.members.iter().position(|m| m.name == name)
    }

    /// The index of the current leader as the first running, unpaused member
    /// that answers sees it.
    pub fn leader(&self) -> Option<usize> {
        (0..self.len()).find_map(|i| {
            let m = &self.members[i];
            if m.child.is_none() || m.paused {
                return None;
            }
            self.leader_seen_by(i)
        })
    }

    fn spawn(&mut self, i: usize, state: &str) {
        let token = self.token.clone();
        let initial_cluster = self.initial_cluster.clone();
        let m = &mut self.members[i];
        assert!(m.child.is_none(), "etcd member {i} is already running");
        let log = File::options()
            .create(true)
            .append(true)
            .open(&m.log)
            .expect("open etcd log");
        let log2 = log.try_clone().expect("clone etcd log handle");
        let client = m.client_url();
        let peer = m.peer_url();
        let mut cmd = match &m.netns {
            Some(ns) => {
                let mut c = Command::new("ip");
                c.args(["netns", "exec", ns, ETCD]);
                c
            }
            None => Command::new(ETCD),
        };
        // Nothing from the environment (ETCD_*) may change the cluster.
        for (k, _) in std::env::vars_os() {
            if k.to_string_lossy().starts_with("ETCD") {
                cmd.env_remove(k);
            }
        }
        cmd.arg("--name")
            .arg(&m.name)
            .arg("--data-dir")
            .arg(&m.data_dir)
            .arg("--listen-client-urls")
            .arg(&client)
            .arg("--advertise-client-urls")
            .arg(&client)
            .arg("--listen-peer-urls")
            .arg(&peer)
            .arg("--initial-advertise-peer-urls")
            .arg(&peer)
            .arg("--initial-cluster")
            .arg(&initial_cluster)
            .arg("--initial-cluster-state")
            .arg(state)
            .arg("--initial-cluster-token")
            .arg(&token)
            .arg("--heartbeat-interval")
            .arg(HEARTBEAT_MS.to_string())
            .arg("--election-timeout")
            .arg(ELECTION_MS.to_string())
            .arg("--enable-grpc-gateway=true")
            .arg("--logger")
            .arg("zap")
            .arg("--log-outputs")
            .arg("stderr")
            .args(&self.extra)
            .stdin(Stdio::null())
            .stdout(Stdio::from(log))
            .stderr(Stdio::from(log2));
        let child = cmd
            .spawn()
            .unwrap_or_else(|e| panic!("cannot run {ETCD}: {e}"));
        m.child = Some(child);
        m.paused = false;
    }
}

impl Drop for EtcdCluster {
    fn drop(&mut self) {
        for m in &mut self.members {
            m.kill_and_reap();
        }
        if std::env::var_os("GGON_KEEP_TMP").is_some() {
            if let Some(d) = self.dir.take() {
                eprintln!("keeping {}", d.keep().display());
            }
        }
    }
}
