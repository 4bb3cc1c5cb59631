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
//! out of the answer. Every wait here is bounded; only 127.0.0.1 is used.

use std::fs::File;
use std::io::{self, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use serde_json::{json, Value};

use super::process::{free_port, poll, tail};

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
}

impl Member {
    fn client_url(&self) -> String {
        format!("http://127.0.0.1:{}", self.client_port)
    }

    fn peer_url(&self) -> String {
        format!("http://127.0.0.1:{}", self.peer_port)
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
    dir: Option<tempfile::TempDir>,
}

static CLUSTERS: AtomicU64 = AtomicU64::new(0);

impl EtcdCluster {
    /// Start `n` members and wait (at most [`START_LIMIT`]) until every one
    /// answers `/health` with `{"health":"true"}` and a put/range round trip
    /// through the JSON gateway works; panics with the log tails otherwise.
    pub fn start(n: usize) -> EtcdCluster {
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
                    client_port: free_port(),
                    peer_port: free_port(),
                    data_dir,
                    log,
                    child: None,
                    paused: false,
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
        SocketAddr::from(([127, 0, 0, 1], self.members[i].client_port))
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
        let mut cmd = Command::new(ETCD);
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

// ---------------------------------------------------------------------------
// JSON gateway client

/// One HTTP/1.1 request to `endpoint` (`http://127.0.0.1:PORT`) with
/// `Connection: close`, all of it within `limit`; returns (status, body).
pub fn http_request(
    endpoint: &str,
    method: &str,
    path: &str,
    body: Option<&str>,
    limit: Duration,
) -> Result<(u16, String), String> {
    let addr = endpoint_addr(endpoint)?;
    let deadline = Instant::now() + limit;
    let left = || {
        deadline
            .checked_duration_since(Instant::now())
            .filter(|d| !d.is_zero())
            .ok_or_else(|| format!("{method} {endpoint}{path}: timed out after {limit:?}"))
    };
    let io_err = |e: io::Error| format!("{method} {endpoint}{path}: {e}");
    let mut s = TcpStream::connect_timeout(&addr, left()?).map_err(io_err)?;
    s.set_nodelay(true).map_err(io_err)?;
    let mut req = format!("{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n");
    if let Some(b) = body {
        req += &format!(
            "Content-Type: application/json\r\nContent-Length: {}\r\n",
            b.len()
        );
    }
    req += "\r\n";
    req += body.unwrap_or("");
    s.set_write_timeout(Some(left()?)).map_err(io_err)?;
    s.write_all(req.as_bytes()).map_err(io_err)?;
    let mut resp = Vec::new();
    let mut buf = [0u8; 8192];
    loop {
        s.set_read_timeout(Some(left()?)).map_err(io_err)?;
        match s.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => resp.extend_from_slice(&buf[..n]),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e)
                if matches!(
                    e.kind(),
                    io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
                ) =>
            {
                return Err(format!(
                    "{method} {endpoint}{path}: timed out after {limit:?}"
                ))
            }
            Err(e) => return Err(io_err(e)),
        }
    }
    parse_response(&resp).map_err(|e| format!("{method} {endpoint}{path}: {e}"))
}

/// `http://127.0.0.1:PORT[/]` (or a bare `127.0.0.1:PORT`) to its address.
fn endpoint_addr(endpoint: &str) -> Result<SocketAddr, String> {
    let hostport = endpoint
        .strip_prefix("http://")
        .unwrap_or(endpoint)
        .trim_end_matches('/');
    hostport
        .parse()
        .map_err(|e| format!("endpoint {endpoint:?} is not http://IP:PORT: {e}"))
}

/// Status and body of a complete HTTP/1.1 response (Content-Length, chunked
/// or read-to-close).
fn parse_response(resp: &[u8]) -> Result<(u16, String), String> {
    let text_err = || format!("bad HTTP response: {:?}", String::from_utf8_lossy(resp));
    let split = resp
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .ok_or_else(text_err)?;
    let head = String::from_utf8_lossy(&resp[..split]).into_owned();
    let raw = &resp[split + 4..];
    let status: u16 = head
        .split(' ')
        .nth(1)
        .and_then(|c| c.parse().ok())
        .ok_or_else(text_err)?;
    let header = |name: &str| {
        head.lines().skip(1).find_map(|l| {
            let (k, v) = l.split_once(':')?;
            k.trim()
                .eq_ignore_ascii_case(name)
                .then(|| v.trim().to_string())
        })
    };
    let body = if header("transfer-encoding").is_some_and(|v| v.eq_ignore_ascii_case("chunked")) {
        dechunk(raw).ok_or_else(text_err)?
    } else if let Some(len) = header("content-length").and_then(|v| v.parse::<usize>().ok()) {
        if raw.len() < len {
            return Err(format!(
                "short body: {} of {len} bytes: {}",
                raw.len(),
                text_err()
            ));
        }
        raw[..len].to_vec()
    } else {
        raw.to_vec()
    };
    Ok((status, String::from_utf8_lossy(&body).into_owned()))
}

fn dechunk(mut raw: &[u8]) -> Option<Vec<u8>> {
    let mut out = Vec::new();
    loop {
        let eol = raw.windows(2).position(|w| w == b"\r\n")?;
        let size_text = std::str::from_utf8(&raw[..eol]).ok()?;
        let size = usize::from_str_radix(size_text.split(';').next()?.trim(), 16).ok()?;
        raw = &raw[eol + 2..];
        if size == 0 {
            return Some(out);
        }
        if raw.len() < size + 2 {
            return None;
        }
        out.extend_from_slice(&raw[..size]);
        raw = &raw[size + 2..];
    }
}

/// POST `body` as JSON to a gateway path (`/v3/kv/put`, `/v3/lease/grant`,
/// ...) within [`REQUEST_LIMIT`]; the answer's JSON, or an error with the
/// status and body for a non-200 answer (etcd errors come as
/// `{"error":..,"message":..,"code":..}`).
pub fn etcd_post(endpoint: &str, path: &str, body: &Value) -> Result<Value, String> {
    let (status, text) = http_request(
        endpoint,
        "POST",
        path,
        Some(&body.to_string()),
        REQUEST_LIMIT,
    )?;
    if status != 200 {
        return Err(format!("POST {endpoint}{path}: HTTP {status}: {text}"));
    }
    serde_json::from_str(&text)
        .map_err(|e| format!("POST {endpoint}{path}: not JSON ({e}): {text:?}"))
}

/// Put `key` = `value` through `endpoint`.
pub fn etcd_put(endpoint: &str, key: &str, value: &str) -> Result<(), String> {
    etcd_post(
        endpoint,
        "/v3/kv/put",
        &json!({"key": b64(key.as_bytes()), "value": b64(value.as_bytes())}),
    )
    .map(drop)
}

/// Delete `key` through `endpoint`; how many keys were deleted.
pub fn etcd_delete(endpoint: &str, key: &str) -> Result<u64, String> {
    let v = etcd_post(
        endpoint,
        "/v3/kv/deleterange",
        &json!({"key": b64(key.as_bytes())}),
    )?;
    Ok(json_u64(&v["deleted"]))
}

/// Linearizable read of `key` through `endpoint` (goes through the leader,
/// so it needs a quorum).
pub fn etcd_get(endpoint: &str, key: &str) -> Result<Option<String>, String> {
    get_one(endpoint, key, false)
}

/// Serializable read of `key`: the member's own applied state, answered even
/// without a quorum (and possibly stale).
pub fn etcd_get_local(endpoint: &str, key: &str) -> Result<Option<String>, String> {
    get_one(endpoint, key, true)
}

fn get_one(endpoint: &str, key: &str, serializable: bool) -> Result<Option<String>, String> {
    let v = etcd_post(
        endpoint,
        "/v3/kv/range",
        &json!({"key": b64(key.as_bytes()), "serializable": serializable}),
    )?;
    Ok(kvs(&v)?.into_iter().next().map(|(_, val)| val))
}

/// Linearizable read of every key starting with `prefix` (every key for an
/// empty prefix), sorted by key.
pub fn etcd_get_prefix(endpoint: &str, prefix: &str) -> Result<Vec<(String, String)>, String> {
    let (key, end) = prefix_range(prefix.as_bytes());
    let v = etcd_post(
        endpoint,
        "/v3/kv/range",
        &json!({"key": b64(&key), "range_end": b64(&end)}),
    )?;
    kvs(&v)
}

/// The `[key, range_end)` of every key with `prefix`. etcd rejects an empty
/// key; `\0` as both ends means every key.
fn prefix_range(prefix: &[u8]) -> (Vec<u8>, Vec<u8>) {
    let mut end = prefix.to_vec();
    while let Some(last) = end.pop() {
        if last < 0xff {
            end.push(last + 1);
            return (prefix.to_vec(), end);
        }
    }
    let key = if prefix.is_empty() {
        vec![0]
    } else {
        prefix.to_vec()
    };
    (key, vec![0])
}

/// The (key, value) pairs of a range answer (`kvs` is absent when empty).
fn kvs(v: &Value) -> Result<Vec<(String, String)>, String> {
    let Some(list) = v.get("kvs") else {
        return Ok(Vec::new());
    };
    let list = list
        .as_array()
        .ok_or_else(|| format!("range answer: kvs is not an array: {v}"))?;
    list.iter()
        .map(|kv| {
            let field = |name: &str| -> Result<String, String> {
                // An empty value is left out of the JSON.
                let text = kv[name].as_str().unwrap_or("");
                let bytes = unb64(text).ok_or_else(|| format!("bad base64 in {name}: {kv}"))?;
                String::from_utf8(bytes).map_err(|_| format!("{name} is not UTF-8: {kv}"))
            };
            Ok((field("key")?, field("value")?))
        })
        .collect()
}

/// An int64 field of a gateway answer: a JSON string ("12"), a number, or
/// absent (0).
pub fn json_u64(v: &Value) -> u64 {
    match v {
        Value::String(s) => s.parse().unwrap_or(0),
        Value::Number(n) => n.as_u64().unwrap_or(0),
        _ => 0,
    }
}

const B64: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

/// Standard base64 with padding.
pub fn b64(data: &[u8]) -> String {
    let mut out = String::with_capacity(data.len().div_ceil(3) * 4);
    for chunk in data.chunks(3) {
        let b = [
            chunk[0],
            chunk.get(1).copied().unwrap_or(0),
            chunk.get(2).copied().unwrap_or(0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for (k, shift) in [18, 12, 6, 0].into_iter().enumerate() {
            if k <= chunk.len() {
                out.push(B64[((n >> shift) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

/// Standard base64 (padding optional); None if malformed.
pub fn unb64(text: &str) -> Option<Vec<u8>> {
    let text = text.trim_end_matches('=');
    let mut out = Vec::with_capacity(text.len() * 3 / 4);
    let mut acc: u32 = 0;
    let mut bits = 0;
    for c in text.bytes() {
        let d = B64.iter().position(|&x| x == c)? as u32;
        acc = (acc << 6) | d;
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            out.push((acc >> bits) as u8);
            acc &= (1 << bits) - 1;
        }
    }
    // A lone sixth of a byte (length 1 mod 4) is not base64.
    (bits < 6).then_some(out)
}

// ---------------------------------------------------------------------------
// TCP proxy

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum ProxyMode {
    /// Forward every connection.
    Open,
    /// Close every connection at once (new ones are accepted and dropped).
    Cut,
    /// Accept and hold new connections without forwarding anything.
    Blackhole,
}

struct ProxyConn {
    id: u64,
    /// Every socket of the connection (client side, upstream side).
    sockets: Vec<TcpStream>,
    /// Pump threads still running; the last one removes the entry.
    pumps: Arc<AtomicUsize>,
}

struct ProxyShared {
    mode: Mutex<ProxyMode>,
    conns: Mutex<Vec<ProxyConn>>,
    stop: AtomicBool,
    next_id: AtomicU64,
    accepted: AtomicU64,
}

impl ProxyShared {
    fn close_all(&self) {
        let conns = std::mem::take(&mut *self.conns.lock().unwrap());
        for c in conns {
            for s in c.sockets {
                let _ = s.shutdown(Shutdown::Both);
            }
        }
    }
}

/// A loopback TCP forwarder from `addr()` to a target: point one client (a
/// ggond node's etcd endpoint) at it and [`cut`](TcpProxy::cut) that client
/// off while every other client still reaches the target directly.
pub struct TcpProxy {
    addr: SocketAddr,
    target: SocketAddr,
    shared: Arc<ProxyShared>,
    accept: Option<JoinHandle<()>>,
}

impl TcpProxy {
    /// Listen on a free 127.0.0.1 port and forward to `target`.
    pub fn start(target: SocketAddr) -> TcpProxy {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind proxy listener");
        listener
            .set_nonblocking(true)
            .expect("nonblocking proxy listener");
        let addr = listener.local_addr().expect("proxy address");
        let shared = Arc::new(ProxyShared {
            mode: Mutex::new(ProxyMode::Open),
            conns: Mutex::new(Vec::new()),
            stop: AtomicBool::new(false),
            next_id: AtomicU64::new(0),
            accepted: AtomicU64::new(0),
        });
        let sh = shared.clone();
        let accept = std::thread::Builder::new()
            .name(format!("tcp-proxy-{}", addr.port()))
            .spawn(move || accept_loop(listener, target, sh))
            .expect("spawn proxy thread");
        TcpProxy {
            addr,
            target,
            shared,
            accept: Some(accept),
        }
    }

    /// The address clients connect to.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// `http://ADDR`, for use as an etcd endpoint.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    pub fn target(&self) -> SocketAddr {
        self.target
    }

    /// Close every current connection and drop new ones (accepted and closed
    /// at once, so clients fail fast) until [`restore`](TcpProxy::restore).
    pub fn cut(&self) {
        *self.shared.mode.lock().unwrap() = ProxyMode::Cut;
        self.shared.close_all();
    }

    /// Like a silent network partition: close every current connection, then
    /// accept new ones but forward nothing (clients hang until their own
    /// timeouts) until [`restore`](TcpProxy::restore).
    pub fn blackhole(&self) {
        *self.shared.mode.lock().unwrap() = ProxyMode::Blackhole;
        self.shared.close_all();
    }

    /// Forward new connections again (connections held by
    /// [`blackhole`](TcpProxy::blackhole) are closed).
    pub fn restore(&self) {
        let was = std::mem::replace(&mut *self.shared.mode.lock().unwrap(), ProxyMode::Open);
        if was != ProxyMode::Open {
            self.shared.close_all();
        }
    }

    /// Whether connections are forwarded now.
    pub fn is_open(&self) -> bool {
        *self.shared.mode.lock().unwrap() == ProxyMode::Open
    }

    /// Connections currently held (forwarded or blackholed).
    pub fn active(&self) -> usize {
        self.shared.conns.lock().unwrap().len()
    }

    /// Connections accepted since the start (including dropped ones).
    pub fn accepted(&self) -> u64 {
        self.shared.accepted.load(Ordering::Relaxed)
    }
}

impl Drop for TcpProxy {
    fn drop(&mut self) {
        self.shared.stop.store(true, Ordering::SeqCst);
        self.shared.close_all();
        if let Some(h) = self.accept.take() {
            let _ = h.join();
        }
        // Connections accepted while stopping.
        self.shared.close_all();
    }
}

fn accept_loop(listener: TcpListener, target: SocketAddr, shared: Arc<ProxyShared>) {
    while !shared.stop.load(Ordering::SeqCst) {
        let client = match listener.accept() {
            Ok((s, _)) => s,
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                std::thread::sleep(Duration::from_millis(5));
                continue;
            }
            Err(_) => {
                std::thread::sleep(Duration::from_millis(5));
                continue;
            }
        };
        shared.accepted.fetch_add(1, Ordering::Relaxed);
        let _ = client.set_nonblocking(false);
        let _ = client.set_nodelay(true);
        // Held under the mode lock, so a restore() cannot slip between the
        // look at the mode and the registration of a blackholed connection.
        let mode = shared.mode.lock().unwrap();
        match *mode {
            ProxyMode::Cut => {
                let _ = client.shutdown(Shutdown::Both);
            }
            ProxyMode::Blackhole => {
                let id = shared.next_id.fetch_add(1, Ordering::Relaxed);
                shared.conns.lock().unwrap().push(ProxyConn {
                    id,
                    sockets: vec![client],
                    pumps: Arc::new(AtomicUsize::new(0)),
                });
            }
            ProxyMode::Open => {
                let shared = shared.clone();
                // Connect off the accept thread so a slow target does not
                // hold up other clients.
                let _ = std::thread::Builder::new()
                    .name("tcp-proxy-conn".into())
                    .spawn(move || forward(client, target, shared));
            }
        }
    }
}

fn forward(client: TcpStream, target: SocketAddr, shared: Arc<ProxyShared>) {
    let Ok(upstream) = TcpStream::connect_timeout(&target, Duration::from_secs(2)) else {
        let _ = client.shutdown(Shutdown::Both);
        return;
    };
    let _ = upstream.set_nodelay(true);
    let clones = (
        client.try_clone(),
        upstream.try_clone(),
        client.try_clone(),
        upstream.try_clone(),
    );
    let (Ok(c_reg), Ok(u_reg), Ok(c2), Ok(u2)) = clones else {
        let _ = client.shutdown(Shutdown::Both);
        let _ = upstream.shutdown(Shutdown::Both);
        return;
    };
    let id = shared.next_id.fetch_add(1, Ordering::Relaxed);
    let pumps = Arc::new(AtomicUsize::new(2));
    {
        // Registered under the mode lock: a cut() now either sees this
        // connection or has already switched the mode.
        let mode = shared.mode.lock().unwrap();
        if *mode != ProxyMode::Open || shared.stop.load(Ordering::SeqCst) {
            let _ = client.shutdown(Shutdown::Both);
            let _ = upstream.shutdown(Shutdown::Both);
            return;
        }
        shared.conns.lock().unwrap().push(ProxyConn {
            id,
            sockets: vec![c_reg, u_reg],
            pumps: pumps.clone(),
        });
    }
    let sh = shared.clone();
    let p = pumps.clone();
    let spawned = std::thread::Builder::new()
        .name("tcp-proxy-pump".into())
        .spawn(move || pump(client, u2, id, &p, &sh));
    if spawned.is_err() {
        shared.close_all();
        return;
    }
    pump(upstream, c2, id, &pumps, &shared);
}

/// Copy `from` to `to` until EOF or an error, then half-close `to`; the
/// second pump of a connection to finish unregisters it.
fn pump(
    mut from: TcpStream,
    mut to: TcpStream,
    id: u64,
    pumps: &AtomicUsize,
    shared: &ProxyShared,
) {
    let mut buf = [0u8; 16384];
    loop {
        match from.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => {
                if to.write_all(&buf[..n]).is_err() {
                    let _ = from.shutdown(Shutdown::Both);
                    break;
                }
            }
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(_) => {
                let _ = to.shutdown(Shutdown::Both);
                break;
            }
        }
    }
    let _ = to.shutdown(Shutdown::Write);
    if pumps.fetch_sub(1, Ordering::SeqCst) == 1 {
        let mut conns = shared.conns.lock().unwrap();
        if let Some(pos) = conns.iter().position(|c| c.id == id) {
            let c = conns.swap_remove(pos);
            for s in c.sockets {
                let _ = s.shutdown(Shutdown::Both);
            }
        }
    }
}
