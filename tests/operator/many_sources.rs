//! The control API under slow clients from many sources, against a real
//! ggond with the default limits (256 connections, 64 per source, 5 s
//! header timeout): 300 clients from 300 loopback addresses (127.0.1.1 …
//! 127.0.1.254, 127.0.2.1 … 127.0.2.46), each holding one half-sent
//! request and reconnecting the moment it is closed, while `ggon-ctl
//! status` is timed from 127.0.0.1 for 12 s.

use std::io::{ErrorKind, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::limits::{ctl, refused};
use crate::support::reliability::*;

/// How long the operator's calls are timed while the attack runs.
const ATTACK: Duration = Duration::from_secs(12);

fn sources() -> Vec<String> {
    let first = (1..=254).map(|n| format!("127.0.1.{n}"));
    let second = (1..=46).map(|n| format!("127.0.2.{n}"));
    first.chain(second).collect()
}

/// A connection to `to` from the loopback address `from`.
fn connect_from(from: &str, to: SocketAddr) -> std::io::Result<TcpStream> {
    let s = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None)?;
    let local: SocketAddr = format!("{from}:0").parse().unwrap();
    s.bind(&local.into())?;
    s.connect_timeout(&to.into(), Duration::from_secs(2))?;
    let s: TcpStream = s.into();
    s.set_read_timeout(Some(Duration::from_millis(200)))?;
    Ok(s)
}

/// What the attackers did, shared with the test.
#[derive(Default)]
struct Attack {
    stop: AtomicBool,
    /// Connections open now with half a request sent.
    held: AtomicUsize,
    connects: AtomicUsize,
}

/// One attacker: connect from `from`, send half a request, hold it until
/// ggond closes it, and again, until told to stop.
fn attacker(from: String, to: SocketAddr, a: Arc<Attack>) {
    let mut buf = [0u8; 512];
    while !a.stop.load(Ordering::Relaxed) {
        let Ok(mut s) = connect_from(&from, to) else {
            std::thread::sleep(Duration::from_millis(10));
            continue;
        };
        a.connects.fetch_add(1, Ordering::Relaxed);
        if s.write_all(b"GET /v1/status HTTP/1.1\r\nHost: ggond\r\n")
            .is_err()
        {
            continue;
        }
        a.held.fetch_add(1, Ordering::Relaxed);
        loop {
            match s.read(&mut buf) {
                Ok(0) => break,
                Ok(_) => continue,
                Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {
                    if a.stop.load(Ordering::Relaxed) {
                        break;
                    }
                }
                Err(_) => break,
            }
        }
        a.held.fetch_sub(1, Ordering::Relaxed);
    }
}

#[test]
fn three_hundred_slow_sources_cannot_starve_the_operator() {
    let env = Env::new("");
    let d = env.start();
    let attack = Arc::new(Attack::default());
    let threads: Vec<_> = sources()
        .into_iter()
        .map(|from| {
            let (a, to) = (attack.clone(), d.control);
            std::thread::Builder::new()
                .stack_size(128 * 1024)
                .spawn(move || attacker(from, to, a))
                .expect("spawn attacker")
        })
        .collect();
    // Wait until the attackers hold (at least) every one of the 256 slots.
    let filling = Instant::now();
    while attack.held.load(Ordering::Relaxed) < 256 {
        assert!(
            filling.elapsed() < Duration::from_secs(20),
            "the attackers could not open 256 connections"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    eprintln!("256 half-sent requests held after {:?}", filling.elapsed());

    let (mut calls, mut failures, mut worst) = (0, Vec::new(), Duration::ZERO);
    let mut fewest_held = usize::MAX;
    let t0 = Instant::now();
    while t0.elapsed() < ATTACK {
        fewest_held = fewest_held.min(attack.held.load(Ordering::Relaxed));
        let (ok, took, text) = ctl(&env, &d, &["status"]);
        calls += 1;
        worst = worst.max(took);
        if !ok || took >= Duration::from_secs(1) {
            failures.push(format!(
                "at {:?}: ok={ok} in {took:?}: {text}",
                t0.elapsed()
            ));
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    let connects = attack.connects.load(Ordering::Relaxed);
    eprintln!(
        "operator: {calls} status calls in {ATTACK:?}, slowest {worst:?}, {} failed; \
         attackers: {connects} connections, at least {fewest_held} held at every call",
        failures.len()
    );
    assert!(fewest_held >= 200, "the attack let go ({fewest_held} held)");
    attack.stop.store(true, Ordering::Relaxed);
    for t in threads {
        t.join().unwrap();
    }
    assert!(
        failures.is_empty(),
        "{} of {calls} operator calls failed or took 1 s or more:\n{}",
        failures.len(),
        failures.join("\n")
    );
    let evicted = refused(&d, "evicted");
    eprintln!("evicted: {evicted}");
    assert!(evicted > 0, "no connection was evicted");
    let log = d.stderr();
    assert!(
        log.contains("control connection closed to make room"),
        "no eviction logged:\n{log}"
    );
}

/// `[control] socket`: with every TCP slot serving a request (4 slots, 4
/// sources each sending complete headers and then holding the declared
/// body, which eviction must not cut), a TCP call gets 503, and
/// `ggon-ctl --control unix:PATH status` still answers at once.
#[test]
fn the_unix_socket_answers_when_every_tcp_slot_is_serving() {
    let env = Env::new("");
    let sock = env.path().join("control.sock");
    let mut cfg = std::fs::read_to_string(env.config()).unwrap();
    cfg = cfg.replace(
        "[control]\n",
        &format!("[control]\nsocket = \"{}\"\n", sock.display()),
    );
    cfg.push_str(
        "\n[control.limits]\nmax_connections = 4\nmax_connections_per_source = 1\n\
         body_timeout = \"20s\"\n",
    );
    std::fs::write(env.config(), cfg).unwrap();
    // A stale socket file (as a killed ggond leaves) is replaced.
    drop(std::os::unix::net::UnixListener::bind(&sock).unwrap());
    let d = env.start();
    let held: Vec<TcpStream> = (1..=4)
        .map(|n| {
            let mut s = connect_from(&format!("127.0.3.{n}"), d.control).unwrap();
            s.write_all(
                b"POST /v1/services/cic/remap HTTP/1.1\r\nHost: g\r\n\
                  Content-Type: application/json\r\nContent-Length: 100\r\n\r\n",
            )
            .unwrap();
            s
        })
        .collect();
    std::thread::sleep(Duration::from_millis(300));
    let (ok, _, text) = ctl(&env, &d, &["status"]);
    assert!(!ok, "every TCP slot is serving a request: {text}");
    for _ in 0..5 {
        let start = Instant::now();
        let out = Command::new(env!("CARGO_BIN_EXE_ggon-ctl"))
            .arg("--control")
            .arg(format!("unix:{}", sock.display()))
            .arg("--token-file")
            .arg(env.token_file())
            .arg("status")
            .stdin(Stdio::null())
            .output()
            .unwrap();
        let took = start.elapsed();
        let text = String::from_utf8_lossy(&out.stdout).into_owned()
            + &String::from_utf8_lossy(&out.stderr);
        eprintln!("status over the Unix socket: {took:?}");
        assert!(out.status.success(), "{text}");
        assert!(text.contains("cic"), "{text}");
        assert!(took < Duration::from_secs(1), "{took:?}");
    }
    let mode = std::fs::metadata(&sock).unwrap();
    use std::os::unix::fs::PermissionsExt;
    assert_eq!(mode.permissions().mode() & 0o777, 0o660);
    drop(held);
}
