//! Child processes for the interop tests: temporary directories kept on
//! request (GGON_KEEP_TMP=1), free loopback ports, bounded polling, commands
//! run under a timeout, and log tails for failure messages.

use std::collections::BTreeSet;
use std::fs;
use std::net::{TcpListener, UdpSocket};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Mutex;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

// ---------------------------------------------------------------------------
// temporary directories

/// A temporary directory, removed on drop unless GGON_KEEP_TMP is set.
/// Declare it first in a test so it is dropped after the processes using it.
pub struct TestDir {
    dir: Option<tempfile::TempDir>,
    path: PathBuf,
}

impl TestDir {
    pub fn new(test: &str) -> TestDir {
        let dir = tempfile::Builder::new()
            .prefix(&format!("ggon-bind-{test}-"))
            .tempdir()
            .expect("create temp dir");
        let path = dir.path().to_path_buf();
        TestDir {
            dir: Some(dir),
            path,
        }
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// A subdirectory (created).
    pub fn sub(&self, name: &str) -> PathBuf {
        let p = self.path.join(name);
        fs::create_dir_all(&p).expect("create subdir");
        p
    }
}

impl Drop for TestDir {
    fn drop(&mut self) {
        if std::env::var_os("GGON_KEEP_TMP").is_some() {
            if let Some(d) = self.dir.take() {
                eprintln!("keeping {}", d.keep().display());
            }
        }
    }
}

// ---------------------------------------------------------------------------
// ports, polling, commands

static HANDED_OUT: Mutex<BTreeSet<u16>> = Mutex::new(BTreeSet::new());

/// A loopback port free for both UDP and TCP right now (bound to port 0 and
/// released), never handed out twice by this process.
pub fn free_port() -> u16 {
    for _ in 0..100 {
        let udp = UdpSocket::bind("127.0.0.1:0").expect("bind UDP 127.0.0.1:0");
        let port = udp.local_addr().expect("local addr").port();
        if HANDED_OUT.lock().unwrap().contains(&port) {
            continue;
        }
        if TcpListener::bind(("127.0.0.1", port)).is_err() {
            continue;
        }
        HANDED_OUT.lock().unwrap().insert(port);
        return port;
    }
    panic!("no free loopback port found in 100 tries");
}

/// A loopback port for a server that will be stopped and started again on
/// the same port (etcd members): taken below the kernel's ephemeral range
/// (32768 and up by default), so that no outgoing connection can be given
/// it as its source port while the server is down, which made a restart
/// fail with "address already in use". Free for TCP and UDP right now,
/// never handed out twice by this process.
pub fn stable_port() -> u16 {
    let seed = std::process::id() as u64 * 7919
        + SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.subsec_nanos() as u64);
    for i in 0..2000u64 {
        let port = 20_000 + ((seed + i * 7_877) % 12_000) as u16;
        if HANDED_OUT.lock().unwrap().contains(&port) {
            continue;
        }
        let free = TcpListener::bind(("127.0.0.1", port)).is_ok()
            && UdpSocket::bind(("127.0.0.1", port)).is_ok();
        if free {
            HANDED_OUT.lock().unwrap().insert(port);
            return port;
        }
    }
    panic!("no free loopback port found in 20000-31999");
}

/// Call `f` every `every` until it returns Some, for at most `limit`.
pub fn poll<T>(limit: Duration, every: Duration, mut f: impl FnMut() -> Option<T>) -> Option<T> {
    let deadline = Instant::now() + limit;
    loop {
        if let Some(v) = f() {
            return Some(v);
        }
        if Instant::now() >= deadline {
            return None;
        }
        std::thread::sleep(every);
    }
}

/// What an external command printed and whether it exited 0.
#[derive(Debug, Clone)]
pub struct Out {
    pub ok: bool,
    pub code: Option<i32>,
    pub stdout: String,
    pub stderr: String,
}

impl Out {
    /// stdout and stderr together, for matching messages wherever they went.
    pub fn text(&self) -> String {
        format!("{}{}", self.stdout, self.stderr)
    }
}

/// Run `program args` under `timeout` (killed after `secs`), stdin from `input`.
pub fn run(program: &str, args: &[&str], input: Option<&str>, secs: u64) -> Out {
    let mut cmd = Command::new("timeout");
    cmd.arg("-k")
        .arg("2")
        .arg(secs.to_string())
        .arg(program)
        .args(args)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .stdin(if input.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        });
    let mut child = cmd
        .spawn()
        .unwrap_or_else(|e| panic!("cannot run {program}: {e}"));
    if let Some(text) = input {
        use std::io::Write;
        let mut stdin = child.stdin.take().expect("stdin");
        let _ = stdin.write_all(text.as_bytes());
    }
    let out = child
        .wait_with_output()
        .unwrap_or_else(|e| panic!("waiting for {program}: {e}"));
    Out {
        ok: out.status.success(),
        code: out.status.code(),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

/// The last `n` lines of a file (for failure messages).
pub fn tail(path: &Path, n: usize) -> String {
    tail_filtered(path, n, &[])
}

/// named's start-up banner, left out of failure messages.
pub const NAMED_NOISE: &[&str] = &[
    "----",
    "isc.org",
    "BIND 9 is maintained",
    "Inc. (ISC)",
    "running on Linux",
    "built with",
    "compiled by",
    "compiled with",
    "linked to",
    "CPUs, using",
    "UDP listener",
    "algorithms:",
    "TKEY mode",
    "working directory",
    "trust anchors",
    "GeoIP",
    "port range",
    "session key",
    "zone task pool",
    "managed keys",
    "managed-keys-zone",
    "logging statement",
];

/// Like [`tail`], without lines containing any of `noise`.
pub fn tail_filtered(path: &Path, n: usize, noise: &[&str]) -> String {
    let text = fs::read_to_string(path).unwrap_or_default();
    let lines: Vec<&str> = text
        .lines()
        .filter(|l| !noise.iter().any(|x| l.contains(x)))
        .collect();
    let from = lines.len().saturating_sub(n);
    format!(
        "--- last {} lines of {} ---\n{}\n---",
        lines.len() - from,
        path.display(),
        lines[from..].join("\n")
    )
}

pub fn term_and_reap(child: &mut Child, grace: Duration) {
    if let Ok(Some(_)) = child.try_wait() {
        return;
    }
    // SAFETY: kill(2) on the pid of a child we spawned and have not reaped.
    unsafe {
        libc::kill(child.id() as libc::pid_t, libc::SIGTERM);
    }
    let deadline = Instant::now() + grace;
    while Instant::now() < deadline {
        if let Ok(Some(_)) = child.try_wait() {
            return;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let _ = child.kill();
    let _ = child.wait();
}

/// Wait until every thread of process `pid` is stopped (SIGSTOP): kill(2)
/// only queues the stop, and a request sent right after it may still be
/// answered (seen once on a loaded 2-core machine). False after `limit`.
pub fn wait_stopped(pid: u32, limit: Duration) -> bool {
    let stopped = || {
        let Ok(tasks) = std::fs::read_dir(format!("/proc/{pid}/task")) else {
            return false;
        };
        tasks.flatten().all(|t| {
            std::fs::read_to_string(t.path().join("stat")).is_ok_and(|stat| {
                // The state follows the ")" that ends the command name.
                stat.rsplit_once(')')
                    .is_some_and(|(_, rest)| rest.trim_start().starts_with('T'))
            })
        })
    };
    let deadline = Instant::now() + limit;
    while !stopped() {
        if Instant::now() >= deadline {
            return false;
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    true
}
