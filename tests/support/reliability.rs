//! Helpers for the reliability tests (tests/reliability_*.rs), kept apart from
//! any general harness on purpose: a ggond child process in a temporary
//! directory (killed on drop), DNS over std sockets with hickory-proto
//! messages, a minimal HTTP/1.1 client for the control API, a fixed-seed PRNG
//! and the generators of valid and malformed packets (also the source of the
//! checked-in fuzz seed corpus, see `seed_corpus`).
//!
//! Only loopback addresses are used. Every wait is bounded.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use hickory_proto::op::{Edns, Message, MessageType, OpCode, Query};
use hickory_proto::rr::{Name, RData, RecordType};
use hickory_proto::serialize::binary::BinDecodable;

/// The zone every test daemon serves.
#[allow(unused_imports)] // re-exported for the suites that use them
pub use super::packets::*;
pub use super::wire::{tcp_connect, tcp_frame, tcp_read, udp_exchange};

pub const ZONE: &str = "$ORIGIN ggon.org.\n$TTL 3600\n\
@ IN SOA ns1 hostmaster 7 3600 600 86400 300\n\
@ IN NS ns1\n@ IN NS ns2\n@ IN MX 10 mail\n\
ns1 IN A 127.0.0.1\nns2 IN A 127.0.0.2\nmail IN A 127.0.0.25\n\
www IN CNAME wiki\nwiki IN A 127.0.0.80\nwiki IN AAAA ::1\n\
*.apps IN A 127.0.0.90\n\
big IN TXT \"aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa1\"\n\
big IN TXT \"aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa2\"\n\
big IN TXT \"aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa3\"\n\
big IN TXT \"aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa4\"\n\
big IN TXT \"aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa5\"\n";

/// Service `cic`'s targets, in preference order, with their answered address.
pub const TARGETS: [(&str, &str); 3] = [
    ("primary", "127.0.0.11"),
    ("backup", "127.0.0.12"),
    ("backup2", "127.0.0.13"),
];

/// Control tokens written to the token file (`NAME ROLE TOKEN` lines).
pub const OPERATOR_TOKEN: &str = "opsecret-3f9c2a7d41b85e60c1d2";
pub const READ_TOKEN: &str = "rdsecret-8e1b5c0a9f27d4636ab4";

pub fn address_of(target: &str) -> &'static str {
    TARGETS
        .iter()
        .find(|(n, _)| *n == target)
        .map(|(_, a)| *a)
        .expect("known target")
}

/// A temporary directory with a config, the zone, a token file and a state
/// directory. Daemons started from it share the state directory, so a
/// restart sees what the previous run left.
pub struct Env {
    pub dir: tempfile::TempDir,
    starts: std::cell::Cell<usize>,
}

impl Env {
    /// `server_extra` is appended to the `[server]` table (TOML lines).
    pub fn new(server_extra: &str) -> Env {
        Env::with_token_mode(server_extra, 0o600)
    }

    pub fn with_token_mode(server_extra: &str, mode: u32) -> Env {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().expect("tempdir");
        let p = dir.path();
        std::fs::write(p.join("ggon.org.zone"), ZONE).unwrap();
        let token = p.join("control.token");
        std::fs::write(
            &token,
            format!("# test tokens\nops operator {OPERATOR_TOKEN}\nviewer read {READ_TOKEN}\n"),
        )
        .unwrap();
        std::fs::set_permissions(&token, std::fs::Permissions::from_mode(mode)).unwrap();
        let mut cfg = format!(
            "[server]\nlisten = [\"127.0.0.1:0\"]\nstate_dir = \"{state}\"\nworkers = 2\n{server_extra}\n\n\
             [control]\nlisten = \"127.0.0.1:0\"\ntoken_file = \"{token}\"\n\n\
             [[zone]]\norigin = \"ggon.org\"\nfile = \"{zone}\"\n\n\
             [[service]]\nname = \"cic\"\nfqdn = \"cic.ggon.org\"\nttl = 30\nfailback = \"manual\"\n",
            state = p.join("state").display(),
            token = token.display(),
            zone = p.join("ggon.org.zone").display(),
        );
        for (name, addr) in TARGETS {
            cfg.push_str(&format!(
                "\n[[service.target]]\nname = \"{name}\"\naddresses = [\"{addr}\"]\n\
                 check = {{ type = \"exec\", command = [\"true\"], interval = \"5s\", timeout = \"2s\" }}\n"
            ));
        }
        std::fs::write(p.join("ggon.toml"), cfg).unwrap();
        Env {
            dir,
            starts: std::cell::Cell::new(0),
        }
    }

    pub fn path(&self) -> &Path {
        self.dir.path()
    }
    pub fn config(&self) -> PathBuf {
        self.path().join("ggon.toml")
    }
    pub fn token_file(&self) -> PathBuf {
        self.path().join("control.token")
    }
    pub fn state_dir(&self) -> PathBuf {
        self.path().join("state")
    }
    pub fn state_file(&self) -> PathBuf {
        self.state_dir().join("state.json")
    }

    /// Start ggond with DNS on a kernel-chosen port.
    pub fn start(&self) -> Daemon {
        self.start_on("127.0.0.1:0".parse().unwrap())
    }

    /// Start ggond with DNS on `listen`; returns once its ready file is written.
    pub fn start_on(&self, listen: SocketAddr) -> Daemon {
        let n = self.starts.get() + 1;
        self.starts.set(n);
        let ready = self.path().join("ready.json");
        let _ = std::fs::remove_file(&ready);
        let stderr_path = self.path().join(format!("stderr-{n}.log"));
        let stderr = std::fs::File::create(&stderr_path).unwrap();
        let child = Command::new(env!("CARGO_BIN_EXE_ggond"))
            .arg("--config")
            .arg(self.config())
            .arg("--listen")
            .arg(listen.to_string())
            .arg("--control")
            .arg("127.0.0.1:0")
            .args(["--user", "root"])
            .arg("--ready-file")
            .arg(&ready)
            .env("RUST_LOG", "info")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::from(stderr))
            .spawn()
            .expect("spawn ggond");
        let mut d = Daemon {
            child,
            dns: "0.0.0.0:0".parse().unwrap(),
            control: "0.0.0.0:0".parse().unwrap(),
            pid: 0,
            stderr_path,
        };
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            if let Ok(text) = std::fs::read_to_string(&ready) {
                if let Ok(v) = serde_json::from_str::<serde_json::Value>(&text) {
                    d.dns = v["dns"][0].as_str().unwrap().parse().unwrap();
                    d.control = v["control"].as_str().unwrap().parse().unwrap();
                    d.pid = v["pid"].as_u64().unwrap() as u32;
                    assert_eq!(d.pid, d.child.id(), "ready file from another process");
                    return d;
                }
            }
            if let Some(status) = d.child.try_wait().unwrap() {
                panic!(
                    "ggond exited before ready ({status}); stderr:\n{}",
                    d.stderr()
                );
            }
            assert!(
                Instant::now() < deadline,
                "ggond not ready within 20s; stderr:\n{}",
                d.stderr()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

/// A running ggond; killed (SIGKILL) and reaped on drop.
pub struct Daemon {
    pub child: Child,
    pub dns: SocketAddr,
    pub control: SocketAddr,
    pub pid: u32,
    pub stderr_path: PathBuf,
}

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Daemon {
    pub fn stderr(&self) -> String {
        std::fs::read_to_string(&self.stderr_path).unwrap_or_default()
    }

    pub fn alive(&mut self) -> bool {
        self.child.try_wait().unwrap().is_none()
    }

    pub fn signal(&self, sig: i32) {
        // SAFETY: kill(2) on our own child's pid.
        let r = unsafe { libc::kill(self.pid as libc::pid_t, sig) };
        assert_eq!(r, 0, "kill({}, {sig})", self.pid);
    }

    /// SIGKILL and reap.
    pub fn kill9(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// Wait up to `limit` for the process to exit.
    pub fn wait_exit(&mut self, limit: Duration) -> Option<ExitStatus> {
        let deadline = Instant::now() + limit;
        loop {
            if let Some(s) = self.child.try_wait().unwrap() {
                return Some(s);
            }
            if Instant::now() >= deadline {
                return None;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    /// GET /v1/status with the operator token, parsed.
    pub fn status(&self) -> serde_json::Value {
        let (code, body) = http(
            self.control,
            "GET",
            "/v1/status",
            Some(OPERATOR_TOKEN),
            None,
        )
        .expect("status call");
        assert_eq!(code, 200, "{body}");
        serde_json::from_str(&body).expect("status JSON")
    }

    /// The active target of service `cic` per the control API.
    pub fn active(&self) -> String {
        let v = self.status();
        v["services"]
            .as_array()
            .unwrap()
            .iter()
            .find(|s| s["name"] == "cic")
            .expect("service cic")["active"]
            .as_str()
            .unwrap()
            .to_string()
    }

    /// POST a remap of `cic` (force: true) with the operator token.
    pub fn remap(&self, to: &str) -> std::io::Result<(u16, String)> {
        remap_at(self.control, to)
    }
}

/// POST a remap of `cic` to `to` (force: true) with the operator token.
pub fn remap_at(control: SocketAddr, to: &str) -> std::io::Result<(u16, String)> {
    http(
        control,
        "POST",
        "/v1/services/cic/remap",
        Some(OPERATOR_TOKEN),
        Some(&format!(
            "{{\"to\":\"{to}\",\"reason\":\"test\",\"force\":true}}"
        )),
    )
}

// ---------------------------------------------------------------------------
// HTTP

/// One HTTP/1.1 request with `Connection: close`; returns (status, body).
pub fn http(
    addr: SocketAddr,
    method: &str,
    path: &str,
    token: Option<&str>,
    body: Option<&str>,
) -> std::io::Result<(u16, String)> {
    let mut s = TcpStream::connect_timeout(&addr, Duration::from_secs(5))?;
    s.set_read_timeout(Some(Duration::from_secs(10)))?;
    s.set_write_timeout(Some(Duration::from_secs(10)))?;
    let mut req = format!("{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n");
    if let Some(t) = token {
        req.push_str(&format!("Authorization: Bearer {t}\r\n"));
    }
    let body = body.unwrap_or("");
    if method != "GET" {
        req.push_str(&format!(
            "Content-Type: application/json\r\nContent-Length: {}\r\n",
            body.len()
        ));
    }
    req.push_str("\r\n");
    req.push_str(body);
    s.write_all(req.as_bytes())?;
    let mut resp = Vec::new();
    s.read_to_end(&mut resp)?;
    let text = String::from_utf8_lossy(&resp).into_owned();
    let status = text
        .split(' ')
        .nth(1)
        .and_then(|c| c.parse().ok())
        .ok_or_else(|| std::io::Error::other(format!("bad HTTP response: {text:?}")))?;
    let body = text
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_string())
        .unwrap_or_default();
    Ok((status, body))
}

// ---------------------------------------------------------------------------
// DNS

pub fn query_msg(id: u16, name: &str, t: RecordType, edns: Option<u16>) -> Vec<u8> {
    let mut m = Message::new(id, MessageType::Query, OpCode::Query);
    m.metadata.recursion_desired = true;
    m.add_query(Query::query(Name::from_ascii(name).unwrap(), t));
    if let Some(size) = edns {
        let mut e = Edns::new();
        e.set_max_payload(size);
        m.set_edns(e);
    }
    m.to_vec().unwrap()
}

pub fn id_of(p: &[u8]) -> u16 {
    u16::from_be_bytes([p[0], p[1]])
}

pub fn rcode_of(p: &[u8]) -> u8 {
    p[3] & 0xF
}

/// A UDP query that must be answered (3 tries, 1 s each), parsed.
pub fn udp_query(addr: SocketAddr, name: &str, t: RecordType) -> Message {
    let pkt = query_msg(0x5151, name, t, None);
    for _ in 0..3 {
        if let Some(r) = udp_exchange(addr, &pkt, Duration::from_secs(1)) {
            return Message::from_bytes(&r).expect("response parses");
        }
    }
    panic!("no UDP answer from {addr} for {name} {t}");
}

pub fn tcp_send(s: &mut TcpStream, pkt: &[u8]) -> std::io::Result<()> {
    s.write_all(&tcp_frame(pkt))
}

/// A TCP query on a new connection, parsed.
pub fn tcp_query(addr: SocketAddr, name: &str, t: RecordType) -> Message {
    let mut s = tcp_connect(addr);
    let pkt = query_msg(0x5252, name, t, None);
    tcp_send(&mut s, &pkt).expect("tcp send");
    let r = tcp_read(&mut s).expect("tcp answer");
    Message::from_bytes(&r).expect("response parses")
}

/// Does the peer close `s` within `limit`? (EOF or reset; data is discarded.)
pub fn closed_within(s: &mut TcpStream, limit: Duration) -> Option<Duration> {
    let start = Instant::now();
    let mut buf = [0u8; 4096];
    loop {
        let left = limit.checked_sub(start.elapsed())?;
        if left.is_zero() {
            return None;
        }
        s.set_read_timeout(Some(left)).unwrap();
        match s.read(&mut buf) {
            Ok(0) => return Some(start.elapsed()),
            Ok(_) => continue,
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) =>
            {
                return None
            }
            Err(_) => return Some(start.elapsed()),
        }
    }
}

pub fn a_addrs(m: &Message) -> Vec<String> {
    m.answers
        .iter()
        .filter_map(|r| match &r.data {
            RData::A(a) => Some(a.to_string()),
            _ => None,
        })
        .collect()
}

/// The server answers wiki.ggon.org A correctly over UDP and TCP.
pub fn assert_serves(addr: SocketAddr) {
    for m in [
        udp_query(addr, "wiki.ggon.org.", RecordType::A),
        tcp_query(addr, "wiki.ggon.org.", RecordType::A),
    ] {
        assert_eq!(u16::from(m.metadata.response_code), 0);
        assert!(m.metadata.authoritative);
        assert_eq!(a_addrs(&m), vec!["127.0.0.80"]);
    }
}

/// The address cic.ggon.org resolves to now (over UDP).
pub fn cic_address(addr: SocketAddr) -> String {
    let m = udp_query(addr, "cic.ggon.org.", RecordType::A);
    let a = a_addrs(&m);
    assert_eq!(a.len(), 1, "{m:?}");
    a[0].clone()
}
