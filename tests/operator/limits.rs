//! The control API's bounds, against a real ggond: slow-loris, header-flood,
//! oversized and slow bodies, and wrong tokens from other loopback sources,
//! while `ggon-ctl status` and `ggon-ctl remap` are timed from 127.0.0.1.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::support::reliability::*;

const LIMITS: &str = "\n[control.limits]\nmax_connections = 48\nmax_connections_per_source = 16\n\
header_timeout = \"2s\"\nbody_timeout = \"2s\"\nmax_body = 4096\nauth_failures = 5\n";

/// A connection to `to` from the loopback address `from`.
fn connect_from(from: &str, to: SocketAddr) -> std::io::Result<TcpStream> {
    let s = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None)?;
    let local: SocketAddr = format!("{from}:0").parse().unwrap();
    s.bind(&local.into())?;
    s.connect_timeout(&to.into(), Duration::from_secs(2))?;
    let s: TcpStream = s.into();
    s.set_read_timeout(Some(Duration::from_secs(10)))?;
    s.set_write_timeout(Some(Duration::from_secs(2)))?;
    Ok(s)
}

fn status_line(s: &mut TcpStream) -> String {
    let mut buf = Vec::new();
    let _ = s.read_to_end(&mut buf);
    String::from_utf8_lossy(&buf)
        .lines()
        .next()
        .unwrap_or("")
        .to_string()
}

pub(crate) fn ctl(env: &Env, d: &Daemon, args: &[&str]) -> (bool, Duration, String) {
    let start = Instant::now();
    let out = Command::new(env!("CARGO_BIN_EXE_ggon-ctl"))
        .arg("--control")
        .arg(d.control.to_string())
        .arg("--token-file")
        .arg(env.token_file())
        .args(args)
        .env_remove("GGON_CONTROL")
        .env_remove("GGON_TOKEN_FILE")
        .stdin(Stdio::null())
        .output()
        .expect("run ggon-ctl");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.success(), start.elapsed(), text)
}

pub(crate) fn refused(d: &Daemon, reason: &str) -> u64 {
    let (code, body) = http(d.control, "GET", "/metrics", Some(OPERATOR_TOKEN), None).unwrap();
    assert_eq!(code, 200);
    let key = format!("ggon_control_refused_total{{reason=\"{reason}\"}} ");
    body.lines()
        .find_map(|l| l.strip_prefix(&key))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(0)
}

#[test]
fn abusive_clients_are_bounded_while_operator_calls_stay_fast() {
    let env = Env::new("");
    let mut cfg = std::fs::read_to_string(env.config()).unwrap();
    cfg.push_str(LIMITS);
    std::fs::write(env.config(), cfg).unwrap();
    let d = env.start();
    let stop = Arc::new(AtomicBool::new(false));
    // A connection that never sends a byte.
    let mut silent = connect_from("127.0.0.5", d.control).unwrap();
    let silent_since = Instant::now();

    // Slow-loris from 127.0.0.2: half a header, one more line a second.
    // 16 get a slot; the rest are refused at once with 503.
    let mut loris = Vec::new();
    let mut busy = 0;
    let opened: Vec<TcpStream> = (0..40)
        .map(|_| {
            let mut s = connect_from("127.0.0.2", d.control).unwrap();
            s.write_all(b"GET /v1/status HTTP/1.1\r\nHost: x\r\n")
                .unwrap();
            s
        })
        .collect();
    std::thread::sleep(Duration::from_millis(300));
    for mut s in opened {
        s.set_read_timeout(Some(Duration::from_millis(10))).unwrap();
        let mut b = [0u8; 64];
        match s.read(&mut b) {
            Ok(n) => {
                assert!(
                    n == 0 || b[..n].starts_with(b"HTTP/1.1 503"),
                    "{:?}",
                    &b[..n]
                );
                busy += 1
            }
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => busy += 1,
            Err(_) => loris.push(s),
        }
    }
    assert_eq!(loris.len(), 16, "per-source cap: {}", d.stderr());
    assert_eq!(busy, 24);
    let trickle = {
        let stop = stop.clone();
        std::thread::spawn(move || {
            let start = Instant::now();
            let mut closed = vec![None; loris.len()];
            for _ in 0..60 {
                if stop.load(Ordering::Relaxed) || closed.iter().all(Option::is_some) {
                    break;
                }
                for (i, s) in loris.iter_mut().enumerate() {
                    if closed[i].is_none() && s.write_all(b"X-Slow: 1\r\n").is_err() {
                        closed[i] = Some(start.elapsed());
                    }
                }
                std::thread::sleep(Duration::from_millis(250));
            }
            closed
        })
    };

    // Header flood from 127.0.0.3: header lines as fast as the socket takes them.
    let control = d.control;
    let flood = std::thread::spawn(move || {
        let mut s = connect_from("127.0.0.3", control).unwrap();
        s.write_all(b"GET /v1/status HTTP/1.1\r\nHost: x\r\n")
            .unwrap();
        let line = format!("X-Flood: {}\r\n", "a".repeat(1000));
        let mut sent = 0usize;
        let mut closed = false;
        for _ in 0..20_000 {
            if s.write_all(line.as_bytes()).is_err() {
                closed = true;
                break;
            }
            sent += line.len();
        }
        (closed, sent, status_line(&mut s))
    });

    // Oversized bodies (declared, and chunked past the limit), a slow body,
    // and wrong tokens, from 127.0.0.4.
    let abuse = std::thread::spawn(move || {
        let mut out = Vec::new();
        let mut s = connect_from("127.0.0.4", control).unwrap();
        s.write_all(b"POST /v1/services/cic/remap HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 10000000\r\n\r\n{").unwrap();
        out.push(("declared 10 MB", status_line(&mut s)));
        let mut s = connect_from("127.0.0.4", control).unwrap();
        s.write_all(b"POST /v1/services/cic/remap HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n").unwrap();
        for _ in 0..8 {
            let _ = s.write_all(format!("400\r\n{}\r\n", "a".repeat(1024)).as_bytes());
        }
        out.push(("chunked 8 KiB", status_line(&mut s)));
        let mut s = connect_from("127.0.0.4", control).unwrap();
        let t = Instant::now();
        s.write_all(b"POST /v1/services/cic/remap HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n{\"to\":").unwrap();
        let slow = status_line(&mut s);
        out.push(("slow body", format!("{slow} after {:?}", t.elapsed())));
        let mut codes = Vec::new();
        for _ in 0..12 {
            let mut s = connect_from("127.0.0.4", control).unwrap();
            s.write_all(b"GET /v1/status HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer wrong-token-0123456789\r\nConnection: close\r\n\r\n").unwrap();
            codes.push(status_line(&mut s));
        }
        (out, codes)
    });

    // Meanwhile the operator, from 127.0.0.1.
    let mut worst = Duration::ZERO;
    let targets = ["backup", "primary"];
    let t0 = Instant::now();
    let mut calls = 0;
    while t0.elapsed() < Duration::from_secs(5) && calls < 40 {
        let (ok, took, text) = ctl(&env, &d, &["status"]);
        assert!(ok, "status failed under abuse: {text}");
        worst = worst.max(took);
        let to = targets[calls % 2];
        let (ok, took, text) = ctl(
            &env,
            &d,
            &[
                "remap",
                "cic",
                "--to",
                to,
                "--reason",
                "limits test",
                "--force",
            ],
        );
        assert!(ok, "remap failed under abuse: {text}");
        worst = worst.max(took);
        calls += 2;
    }
    eprintln!("operator calls: {calls}, slowest {worst:?}");
    assert!(
        worst < Duration::from_secs(1),
        "an operator call took {worst:?}"
    );

    let (closed, sent, flood_status) = flood.join().unwrap();
    // Past hyper's header buffer (about 400 KB) the connection is closed; what
    // the kernel's loopback buffers absorbed before that is also counted here.
    assert!(closed, "the header flood was read on and on ({sent} bytes)");
    eprintln!("header flood: closed after {sent} bytes sent, answer {flood_status:?}");
    assert!(
        flood_status.is_empty() || flood_status.contains("431"),
        "header flood: {flood_status:?}"
    );
    let (bodies, codes) = abuse.join().unwrap();
    eprintln!("bodies: {bodies:?}");
    assert!(bodies[0].1.contains("413"), "{bodies:?}");
    assert!(bodies[1].1.contains("413"), "{bodies:?}");
    assert!(bodies[2].1.contains("408"), "{bodies:?}");
    let c401 = codes.iter().filter(|c| c.contains(" 401 ")).count();
    let c429 = codes.iter().filter(|c| c.contains(" 429 ")).count();
    assert_eq!((c401, c429), (5, 7), "{codes:?}");
    stop.store(true, Ordering::Relaxed);
    let closed = trickle.join().unwrap();
    eprintln!("slow-loris closed after: {closed:?}");
    for c in &closed {
        let c = c.expect("a slow-loris connection was held for 15 s");
        assert!(
            c < Duration::from_secs(4),
            "held {c:?} past the 2 s header timeout"
        );
    }
    let held = closed_within(&mut silent, Duration::from_secs(5)).map(|_| silent_since.elapsed());
    eprintln!("silent connection closed after {held:?}");
    assert!(
        held.is_some_and(|h| h < Duration::from_secs(4)),
        "silent connection held {held:?}"
    );
    // A wrong token from 127.0.0.4 is limited; the operator's own address is not.
    assert!(ctl(&env, &d, &["status"]).0);

    for reason in [
        "connections_per_source",
        "header_timeout",
        "body_too_large",
        "body_timeout",
        "auth_failed",
        "auth_rate_limited",
    ] {
        assert!(refused(&d, reason) > 0, "no count for {reason}");
    }
    let log = d.stderr();
    for line in [
        "control connection refused: too many open connections",
        "control connection closed: request headers not sent in time",
        "control request refused: body too large",
        "control request refused: body not sent in time",
        "limit reached for this source",
    ] {
        assert!(log.contains(line), "no log line `{line}`:\n{log}");
    }
}
