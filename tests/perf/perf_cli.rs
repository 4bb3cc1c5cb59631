//! Runs the built ggon-perf binary against tiny loopback responders that echo
//! each query back with QR=1 (UDP, and TCP with the 2-byte length prefix).

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, UdpSocket};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

const BIN: &str = env!("CARGO_BIN_EXE_ggon-perf");
/// No single run of the binary may take longer than this.
const RUN_LIMIT: Duration = Duration::from_secs(30);

struct Responder {
    addr: SocketAddr,
    stop: Arc<AtomicBool>,
    handle: Option<thread::JoinHandle<()>>,
}

impl Drop for Responder {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(h) = self.handle.take() {
            let _ = h.join();
        }
    }
}

/// A UDP responder; with `drop_every_second` it ignores every 2nd query.
fn udp_responder(drop_every_second: bool) -> Responder {
    let sock = UdpSocket::bind("127.0.0.1:0").unwrap();
    sock.set_read_timeout(Some(Duration::from_millis(20)))
        .unwrap();
    let addr = sock.local_addr().unwrap();
    let stop = Arc::new(AtomicBool::new(false));
    let stop2 = stop.clone();
    let handle = thread::spawn(move || {
        let mut buf = [0u8; 4096];
        let mut n = 0u64;
        let deadline = Instant::now() + RUN_LIMIT;
        while !stop2.load(Ordering::Relaxed) && Instant::now() < deadline {
            let Ok((len, peer)) = sock.recv_from(&mut buf) else {
                continue;
            };
            n += 1;
            if len < 12 || (drop_every_second && n.is_multiple_of(2)) {
                continue;
            }
            buf[2] |= 0x80; // QR
            let _ = sock.send_to(&buf[..len], peer);
        }
    });
    Responder {
        addr,
        stop,
        handle: Some(handle),
    }
}

/// A TCP responder echoing each length-prefixed query with QR=1.
fn tcp_responder() -> Responder {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    listener.set_nonblocking(true).unwrap();
    let addr = listener.local_addr().unwrap();
    let stop = Arc::new(AtomicBool::new(false));
    let stop2 = stop.clone();
    let handle = thread::spawn(move || {
        let deadline = Instant::now() + RUN_LIMIT;
        let mut conns = Vec::new();
        while !stop2.load(Ordering::Relaxed) && Instant::now() < deadline {
            if let Ok((s, _)) = listener.accept() {
                s.set_read_timeout(Some(Duration::from_millis(5))).unwrap();
                s.set_nonblocking(false).unwrap();
                conns.push((s, Vec::<u8>::new()));
            }
            let mut idle = true;
            conns.retain_mut(|(s, pending)| {
                let mut buf = [0u8; 4096];
                match s.read(&mut buf) {
                    Ok(0) => return false,
                    Ok(n) => {
                        idle = false;
                        pending.extend_from_slice(&buf[..n]);
                    }
                    Err(_) => {}
                }
                while pending.len() >= 2 {
                    let len = u16::from_be_bytes([pending[0], pending[1]]) as usize;
                    if pending.len() < 2 + len {
                        break;
                    }
                    let mut frame: Vec<u8> = pending.drain(..2 + len).collect();
                    frame[4] |= 0x80; // QR (after the 2-byte prefix)
                    if s.write_all(&frame).is_err() {
                        return false;
                    }
                }
                true
            });
            if idle && conns.is_empty() {
                thread::sleep(Duration::from_millis(2));
            }
        }
    });
    Responder {
        addr,
        stop,
        handle: Some(handle),
    }
}

fn query_file(dir: &Path, lines: usize) -> PathBuf {
    let mut text = String::from("# test queries\n\n");
    for i in 0..lines {
        let t = ["A", "AAAA", "SOA", "NS"][i % 4];
        text.push_str(&format!("host{i}.ggon.org {t}\n"));
    }
    let path = dir.join("queries.txt");
    std::fs::write(&path, text).unwrap();
    path
}

struct Run {
    code: Option<i32>,
    stdout: String,
    stderr: String,
}

/// Runs the binary, killing it if it outlives RUN_LIMIT.
fn run(args: &[&str]) -> Run {
    let mut child = Command::new(BIN)
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let start = Instant::now();
    loop {
        if child.try_wait().unwrap().is_some() {
            break;
        }
        if start.elapsed() > RUN_LIMIT {
            let _ = child.kill();
            panic!("ggon-perf {args:?} ran for more than {RUN_LIMIT:?}");
        }
        thread::sleep(Duration::from_millis(10));
    }
    let out = child.wait_with_output().unwrap();
    Run {
        code: out.status.code(),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

fn run_json(args: &[&str]) -> serde_json::Value {
    let r = run(args);
    assert_eq!(
        r.code,
        Some(0),
        "stdout: {}\nstderr: {}",
        r.stdout,
        r.stderr
    );
    serde_json::from_str(r.stdout.trim()).unwrap_or_else(|e| panic!("not JSON ({e}): {}", r.stdout))
}

#[test]
fn udp_all_answered() {
    let responder = udp_responder(false);
    let dir = tempfile::tempdir().unwrap();
    let file = query_file(dir.path(), 50);
    let port = responder.addr.port().to_string();
    let j = run_json(&[
        "-s",
        "127.0.0.1",
        "-p",
        &port,
        "-d",
        file.to_str().unwrap(),
        "-n",
        "2",
        "-q",
        "10",
        "-t",
        "2",
        "--json",
    ]);
    assert_eq!(j["sent"], 100, "{j}");
    assert_eq!(j["completed"], j["sent"], "{j}");
    assert_eq!(j["lost"], 0, "{j}");
    assert_eq!(j["rcodes"]["NOERROR"], 100, "{j}");
    let lat = &j["latency_ms"];
    for k in ["min", "avg", "p50", "p99", "p999", "max"] {
        assert!(lat[k].as_f64().is_some(), "latency {k}: {j}");
    }
    assert!(lat["min"].as_f64() <= lat["p50"].as_f64());
    assert!(lat["p50"].as_f64() <= lat["max"].as_f64());
    assert!(j["qps"].as_f64().unwrap() > 0.0);
    assert!(j["run_time_s"].as_f64().unwrap() > 0.0);
}

#[test]
fn udp_every_second_query_lost() {
    let responder = udp_responder(true);
    let dir = tempfile::tempdir().unwrap();
    let file = query_file(dir.path(), 20);
    let port = responder.addr.port().to_string();
    let j = run_json(&[
        "-p",
        &port,
        "-d",
        file.to_str().unwrap(),
        "-n",
        "1",
        "-t",
        "1",
        "-e",
        "--json",
    ]);
    assert_eq!(j["sent"], 20, "{j}");
    assert!(j["lost"].as_u64().unwrap() > 0, "{j}");
    assert_eq!(j["lost"], 10, "the responder drops exactly every 2nd: {j}");
    assert_eq!(j["completed"], 10, "{j}");
}

#[test]
fn udp_time_limit_and_text_report() {
    let responder = udp_responder(false);
    let dir = tempfile::tempdir().unwrap();
    let file = query_file(dir.path(), 7);
    let port = responder.addr.port().to_string();
    let r = run(&[
        "-p",
        &port,
        "-d",
        file.to_str().unwrap(),
        "-l",
        "0.3",
        "-c",
        "3",
        "-q",
        "20",
        "-Q",
        "2000",
        "-D",
    ]);
    assert_eq!(r.code, Some(0), "{}{}", r.stdout, r.stderr);
    for needle in [
        "Queries sent:",
        "Queries completed:",
        "Queries lost:         0",
        "Percentage completed: 100.00%",
        "Queries per second:",
        "Run time (s):",
        "p99.9",
        "NOERROR",
        "time limit",
    ] {
        assert!(
            r.stdout.contains(needle),
            "missing {needle:?} in:\n{}",
            r.stdout
        );
    }
    // -Q 2000 for 0.3 s: at most 601 queries (fewer if the machine is busy).
    let sent: u64 = r
        .stdout
        .lines()
        .find_map(|l| l.trim().strip_prefix("Queries sent:"))
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    assert!((20..=601).contains(&sent), "sent {sent}");
}

#[test]
fn tcp_pipelined() {
    let responder = tcp_responder();
    let dir = tempfile::tempdir().unwrap();
    let file = query_file(dir.path(), 40);
    let port = responder.addr.port().to_string();
    let j = run_json(&[
        "-p",
        &port,
        "-d",
        file.to_str().unwrap(),
        "-n",
        "3",
        "-c",
        "2",
        "-q",
        "16",
        "-t",
        "5",
        "--tcp",
        "--json",
    ]);
    assert_eq!(j["sent"], 120, "{j}");
    assert_eq!(j["completed"], 120, "{j}");
    assert_eq!(j["lost"], 0, "{j}");
    assert_eq!(j["transport"], "tcp", "{j}");
}

#[test]
fn bad_input_is_reported_with_file_and_line() {
    let dir = tempfile::tempdir().unwrap();
    let bad = dir.path().join("bad.txt");
    std::fs::write(&bad, "www.ggon.org A\n# fine\nnotype.ggon.org\n").unwrap();
    let r = run(&["-p", "9", "-d", bad.to_str().unwrap(), "-n", "1"]);
    assert_ne!(r.code, Some(0));
    let want = format!("{}:3:", bad.display());
    assert!(r.stderr.contains(&want), "stderr: {}", r.stderr);

    let missing = dir.path().join("missing.txt");
    let r = run(&["-d", missing.to_str().unwrap()]);
    assert_ne!(r.code, Some(0));
    assert!(r.stderr.contains("cannot read query file"), "{}", r.stderr);

    let good = query_file(dir.path(), 3);
    for args in [
        vec!["-q", "0"],
        vec!["-c", "0"],
        vec!["-t", "-1"],
        vec!["-l", "0"],
        vec!["-n", "0"],
        vec!["--bogus"],
    ] {
        let mut all = vec!["-d", good.to_str().unwrap()];
        all.extend(args.iter().copied());
        let r = run(&all);
        assert_ne!(r.code, Some(0), "{args:?} should fail");
        assert!(!r.stderr.is_empty(), "{args:?} should say why");
    }
}

/// `-S 1` during a 3 s run: one line per second, each printed while the
/// run goes on (read as it comes, with the time it arrived).
#[test]
fn interval_statistics_every_second() {
    use std::io::BufRead;
    let responder = udp_responder(false);
    let dir = tempfile::tempdir().unwrap();
    let file = query_file(dir.path(), 50);
    let port = responder.addr.port().to_string();
    let mut child = Command::new(BIN)
        .args(["-p", &port, "-d", file.to_str().unwrap()])
        .args(["-l", "3", "-Q", "500", "-S", "1"])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let start = Instant::now();
    let stdout = std::io::BufReader::new(child.stdout.take().unwrap());
    let mut lines = Vec::new();
    // Bounded: the binary stops after 3 s; RUN_LIMIT guards a hang below.
    for line in stdout.lines().take(200) {
        let line = line.unwrap();
        lines.push((start.elapsed(), line));
        assert!(start.elapsed() < RUN_LIMIT, "ran too long");
    }
    assert!(child.wait().unwrap().success());
    let intervals: Vec<_> = lines.iter().filter(|(_, l)| l.starts_with('[')).collect();
    assert_eq!(intervals.len(), 3, "{lines:#?}");
    for (i, (at, line)) in intervals.iter().enumerate() {
        // Printed around second i+1, not all at the end.
        let at = at.as_secs_f64();
        assert!(
            (i as f64 + 0.8..i as f64 + 1.6).contains(&at),
            "line {i} at {at:.2}s: {line}"
        );
        for field in ["sent ", "answered ", "lost 0", "qps ", "latency ms avg "] {
            assert!(line.contains(field), "{field:?} missing in {line}");
        }
        let qps: f64 = line
            .split("qps ")
            .nth(1)
            .and_then(|r| r.split_whitespace().next())
            .unwrap()
            .parse()
            .unwrap();
        assert!((300.0..=520.0).contains(&qps), "qps {qps} in {line}");
    }
    // The final statistics block follows the interval lines.
    let last = &lines.last().unwrap().1;
    assert!(
        lines.iter().any(|(_, l)| l.contains("Queries sent:")),
        "{last}"
    );
}
