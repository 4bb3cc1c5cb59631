//! Graceful shutdown: SIGTERM ends ggond quickly with exit status 0 and the
//! state saved, even with idle clients connected; a restart on the same port
//! binds at once.

use std::io::Write;
use std::net::TcpStream;
use std::time::{Duration, Instant};

use crate::support::reliability::*;
use ggon::decide::state::PersistedState;
use hickory_proto::rr::RecordType;

#[test]
fn sigterm_exits_0_saves_state_and_the_port_is_reusable_at_once() {
    let env = Env::new("");
    let mut d = env.start();
    let port = d.dns;
    let (code, body) = d.remap("backup2").unwrap();
    assert_eq!(code, 200, "{body}");

    // Clients that would keep a careless server waiting: an idle DNS TCP
    // connection, one with half a query, an idle control connection and one
    // with half a request.
    let _idle_dns = tcp_connect(d.dns);
    let mut half_dns = tcp_connect(d.dns);
    half_dns.write_all(&[0, 30, 1, 2]).unwrap();
    let _idle_http = TcpStream::connect(d.control).unwrap();
    let mut half_http = TcpStream::connect(d.control).unwrap();
    half_http
        .write_all(b"GET /v1/status HTTP/1.1\r\nHost: x\r\n")
        .unwrap();
    std::thread::sleep(Duration::from_millis(100));

    // Remove the state file, so we see that shutdown writes it.
    std::fs::remove_file(env.state_file()).unwrap();
    let sent = Instant::now();
    d.signal(libc::SIGTERM);
    let status = d
        .wait_exit(Duration::from_secs(10))
        .unwrap_or_else(|| panic!("still running 10 s after SIGTERM; stderr:\n{}", d.stderr()));
    let took = sent.elapsed();
    println!("SIGTERM -> exit in {took:?} ({status})");
    assert!(
        status.success(),
        "exit status {status}; stderr:\n{}",
        d.stderr()
    );
    assert!(took < Duration::from_secs(5), "shutdown took {took:?}");
    let saved: PersistedState =
        serde_json::from_slice(&std::fs::read(env.state_file()).expect("state written"))
            .expect("state parses");
    assert_eq!(saved.services["cic"].active, "backup2");
    let stderr = d.stderr();
    assert!(stderr.contains("state saved"), "{stderr}");
    assert!(stderr.contains("stopped"), "{stderr}");

    // Restart on the very same port, at once.
    let restarted = Instant::now();
    let d2 = env.start_on(port);
    println!("restart on {port} ready in {:?}", restarted.elapsed());
    assert_eq!(d2.dns, port);
    assert_serves(port);
    assert_eq!(cic_address(port), address_of("backup2"));
    let m = tcp_query(port, "cic.ggon.org.", RecordType::A);
    assert_eq!(a_addrs(&m), vec![address_of("backup2")]);
}

/// SIGINT is the same as SIGTERM (Ctrl-C in a terminal); with no client
/// connected, shutdown takes well under a second.
#[test]
fn sigint_exits_0_quickly_with_no_clients() {
    let env = Env::new("");
    let mut d = env.start();
    let sent = Instant::now();
    d.signal(libc::SIGINT);
    let status = d
        .wait_exit(Duration::from_secs(10))
        .expect("exit after SIGINT");
    let took = sent.elapsed();
    println!("SIGINT (no clients) -> exit in {took:?} ({status})");
    assert!(status.success(), "{status}");
    assert!(took < Duration::from_secs(2), "took {took:?}");
}
