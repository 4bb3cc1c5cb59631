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

/// The line ggond logs once every stage has stopped, and what it names.
fn every_task_ended(stderr: &str) -> &str {
    stderr
        .lines()
        .find(|l| l.contains("every task ended"))
        .unwrap_or_else(|| panic!("no 'every task ended' line; stderr:\n{stderr}"))
}

/// SIGTERM while a reload of a large zone is in progress: the reload is
/// finished (not torn), then every stage stops by itself, none aborted.
#[test]
fn sigterm_during_a_reload_finishes_it_and_every_task_ends() {
    let env = Env::new("");
    let mut d = env.start();
    // A zone that takes a while to load again.
    let mut zone = ZONE.to_string();
    for i in 0..60_000 {
        zone.push_str(&format!(
            "h{i} IN A 127.0.{}.{}\n",
            (i / 250) % 250,
            i % 250 + 1
        ));
    }
    std::fs::write(env.path().join("ggon.org.zone"), zone).unwrap();
    d.signal(libc::SIGHUP);
    let deadline = Instant::now() + Duration::from_secs(10);
    while !d.stderr().contains("SIGHUP: reloading configuration") {
        assert!(
            Instant::now() < deadline,
            "no reload began; stderr:\n{}",
            d.stderr()
        );
        std::thread::sleep(Duration::from_millis(5));
    }
    d.signal(libc::SIGTERM);
    let status = d
        .wait_exit(Duration::from_secs(30))
        .unwrap_or_else(|| panic!("still running 30 s after SIGTERM; stderr:\n{}", d.stderr()));
    let stderr = d.stderr();
    assert!(status.success(), "exit status {status}; stderr:\n{stderr}");
    let done = stderr.find("reload done").expect("the reload finished");
    let ended = stderr.find("every task ended").unwrap();
    assert!(done < ended, "{stderr}");
    let line = every_task_ended(&stderr);
    assert!(
        line.contains("aborted=[]") && line.contains("left=[]"),
        "{line}"
    );
    assert!(stderr.contains("state saved"), "{stderr}");
}

/// SIGTERM while an RFC 2136 publisher waits on a primary that never
/// answers, right after a remap handed it a change: the publisher ends at
/// its signal (nothing is aborted) and the remap is in the saved state.
#[test]
fn sigterm_during_a_publish_ends_every_task() {
    // A "primary" that takes packets and never answers.
    let (sink, tcp_sink) = (0..20)
        .find_map(|_| {
            let tcp = std::net::TcpListener::bind("127.0.0.1:0").ok()?;
            let udp = std::net::UdpSocket::bind(tcp.local_addr().ok()?).ok()?;
            Some((udp, tcp))
        })
        .expect("a port free for UDP and TCP");
    let primary = sink.local_addr().unwrap();
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("ext.zone"),
        "$ORIGIN ext.test.\n$TTL 60\n@ IN SOA ns h 1 1 1 1 1\n@ IN NS ns\nns IN A 127.0.0.1\n",
    )
    .unwrap();
    let extra = format!(
        "\n[[zone]]\norigin = \"ext.test\"\nfile = \"{}\"\nmode = \"rfc2136\"\nprimary = \"{primary}\"\nserve = false\n\n\
         [[service]]\nname = \"ext\"\nfqdn = \"www.ext.test\"\nttl = 30\n\n\
         [[service.target]]\nname = \"a\"\naddresses = [\"127.0.0.21\"]\ncheck = {{ type = \"exec\", command = [\"true\"] }}\n\n\
         [[service.target]]\nname = \"b\"\naddresses = [\"127.0.0.22\"]\ncheck = {{ type = \"exec\", command = [\"true\"] }}\n",
        dir.path().join("ext.zone").display()
    );
    let env = Env::new(&extra);
    let mut d = env.start();
    let (code, body) = http(
        d.control,
        "POST",
        "/v1/services/ext/remap",
        Some(OPERATOR_TOKEN),
        Some(r#"{"to":"b"}"#),
    )
    .unwrap();
    assert_eq!(code, 200, "{body}");
    let sent = Instant::now();
    d.signal(libc::SIGTERM);
    let status = d
        .wait_exit(Duration::from_secs(15))
        .unwrap_or_else(|| panic!("still running 15 s after SIGTERM; stderr:\n{}", d.stderr()));
    let took = sent.elapsed();
    let stderr = d.stderr();
    assert!(status.success(), "exit status {status}; stderr:\n{stderr}");
    let line = every_task_ended(&stderr);
    assert!(
        line.contains("aborted=[]") && line.contains("left=[]"),
        "{line}"
    );
    assert!(took < Duration::from_secs(3), "shutdown took {took:?}");
    let saved: PersistedState =
        serde_json::from_slice(&std::fs::read(env.state_file()).unwrap()).unwrap();
    assert_eq!(saved.services["ext"].active, "b");
    drop((sink, tcp_sink));
}
