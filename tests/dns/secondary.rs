//! ggond as a secondary of another ggond: several instances serve one zone,
//! kept in step by NOTIFY and AXFR (no replication protocol of our own).

use std::net::UdpSocket;
use std::time::Duration;

use crate::support::ggond::*;

/// A loopback port free for both UDP and TCP right now.
fn free_port() -> u16 {
    for _ in 0..50 {
        let u = UdpSocket::bind("127.0.0.1:0").unwrap();
        let port = u.local_addr().unwrap().port();
        if std::net::TcpListener::bind(("127.0.0.1", port)).is_ok() {
            return port;
        }
    }
    panic!("no free port");
}

#[test]
fn a_ggond_secondary_follows_remaps_by_notify() {
    let sec_port = free_port();
    let services = r#"
[[service]]
name = "cic"
fqdn = "cic.ggon.org"
[[service.target]]
name = "primary"
addresses = ["127.0.0.11"]
check = { type = "tcp", address = "127.0.0.1:1", interval = "1s" }
[[service.target]]
name = "backup"
addresses = ["127.0.0.12"]
check = { type = "tcp", address = "127.0.0.1:1", interval = "1s" }
"#;
    let mut prim_env = Env::demo(services);
    // The zone's secondaries and transfer ACL go in the [[zone]] table.
    let cfg = std::fs::read_to_string(&prim_env.config).unwrap().replace(
        "file = ",
        &format!(
            "secondaries = [{{ address = \"127.0.0.1:{sec_port}\" }}]\nallow_transfer = [\"127.0.0.1\"]\nfile = "
        ),
    );
    std::fs::write(&prim_env.config, cfg).unwrap();
    let primary = prim_env.start();

    let sec_dir = tempfile::tempdir().unwrap();
    let sec_cfg = sec_dir.path().join("ggon.toml");
    std::fs::write(
        &sec_cfg,
        format!(
            "[[zone]]\norigin = \"ggon.org\"\nmode = \"secondary\"\nprimary = \"{}\"\n",
            primary.dns
        ),
    )
    .unwrap();
    let secondary = Ggond::start_on(
        &sec_cfg,
        &sec_dir.path().join("state"),
        &sec_dir.path().join("ggond.log"),
        &sec_dir.path().join("ready.json"),
        &format!("127.0.0.1:{sec_port}"),
    );
    // The initial transfer.
    secondary.wait_answer(
        "cic.ggon.org.",
        &[ip("127.0.0.11")],
        Duration::from_secs(10),
    );
    assert_eq!(secondary.a("wiki.ggon.org."), vec![ip("127.0.0.80")]);

    // A remap on the primary reaches the secondary by NOTIFY (the SOA
    // refresh of the demo zone is an hour, so only NOTIFY explains it).
    assert!(primary
        .ctl(&["remap", "cic", "--to", "backup", "--force"])
        .ok());
    let took = secondary.wait_answer("cic.ggon.org.", &[ip("127.0.0.12")], Duration::from_secs(2));
    assert!(took < Duration::from_secs(2));
    assert!(secondary.wait_log("NOTIFY from the primary", Duration::from_secs(1)));
    // The first copy came by AXFR, the change by IXFR from the primary's journal.
    assert!(
        secondary.wait_log("transfer=\"full\"", Duration::from_secs(1)),
        "{}",
        secondary.log_text()
    );
    assert!(
        secondary.wait_log("transfer=\"incremental (IXFR)\"", Duration::from_secs(1)),
        "{}",
        secondary.log_text()
    );
    // And back again: the IXFR copy stays exact.
    assert!(primary
        .ctl(&["remap", "cic", "--to", "primary", "--force"])
        .ok());
    secondary.wait_answer("cic.ggon.org.", &[ip("127.0.0.11")], Duration::from_secs(2));
    assert_eq!(secondary.a("wiki.ggon.org."), vec![ip("127.0.0.80")]);
    let p = soa_serial(&ask_udp(
        primary.dns,
        &query("ggon.org.", hickory_proto::rr::RecordType::SOA),
    ));
    let s = soa_serial(&ask_udp(
        secondary.dns,
        &query("ggon.org.", hickory_proto::rr::RecordType::SOA),
    ));
    assert_eq!(p, s, "the secondary serves the primary's serial");
}

/// Ask for wiki's A record: Some(addresses) when answered, None when REFUSED.
fn wiki(server: std::net::SocketAddr) -> Option<Vec<std::net::Ipv4Addr>> {
    let m = ask_udp(
        server,
        &query("wiki.ggon.org.", hickory_proto::rr::RecordType::A),
    );
    match m.metadata.response_code {
        hickory_proto::op::ResponseCode::NoError => Some(a_records(&m)),
        hickory_proto::op::ResponseCode::Refused => None,
        other => panic!("unexpected rcode {other}"),
    }
}

#[test]
fn a_restarted_secondary_serves_its_saved_copy_until_the_soa_expire() {
    // SOA refresh 2 s, retry 1 s, expire 6 s.
    let zone = "$ORIGIN ggon.org.\n$TTL 60\n@ IN SOA ns1 hostmaster 5 2 1 6 60\n\
                @ IN NS ns1\nns1 IN A 127.0.0.1\nwiki IN A 127.0.0.80\n";
    let mut prim_env = Env::new(&[("ggon.org", zone)], "");
    let cfg = std::fs::read_to_string(&prim_env.config)
        .unwrap()
        .replace("file = ", "allow_transfer = [\"127.0.0.1\"]\nfile = ");
    std::fs::write(&prim_env.config, cfg).unwrap();
    let mut primary = prim_env.start();

    let sec_port = free_port();
    let sec_dir = tempfile::tempdir().unwrap();
    let sec_cfg = sec_dir.path().join("ggon.toml");
    std::fs::write(
        &sec_cfg,
        format!(
            "[[zone]]\norigin = \"ggon.org\"\nmode = \"secondary\"\nprimary = \"{}\"\n",
            primary.dns
        ),
    )
    .unwrap();
    let start = |n: u32| {
        Ggond::start_on(
            &sec_cfg,
            &sec_dir.path().join("state"),
            &sec_dir.path().join(format!("ggond.{n}.log")),
            &sec_dir.path().join(format!("ready.{n}.json")),
            &format!("127.0.0.1:{sec_port}"),
        )
    };
    let mut secondary = start(1);
    secondary.wait_answer(
        "wiki.ggon.org.",
        &[ip("127.0.0.80")],
        Duration::from_secs(10),
    );
    // The copy is saved right after the controller takes it, which is
    // when it starts being answered: on a busy machine the answer can come
    // first.
    let saved = sec_dir.path().join("state/secondary/ggon.org.json");
    wait_for("the saved copy", Duration::from_secs(2), || {
        saved.exists().then_some(())
    });
    // Let one refresh pass, so the last successful check is recent.
    assert!(secondary.wait_log("secondary zone transferred", Duration::from_secs(1)));
    std::thread::sleep(Duration::from_millis(2500));

    primary.stop();
    let primary_gone = std::time::Instant::now();
    secondary.stop();
    let secondary = start(2);
    assert_eq!(
        wiki(secondary.dns),
        Some(vec![ip("127.0.0.80")]),
        "a restarted secondary answers from its saved copy at once"
    );
    assert!(secondary.wait_log("served from its saved copy", Duration::from_secs(1)));

    // The last successful check was at most 2 s (one refresh) before the
    // primary stopped: the copy expires 4 to 6 s after that, plus a retry.
    let mut refused_at = None;
    for _ in 0..200 {
        if wiki(secondary.dns).is_none() {
            refused_at = Some(primary_gone.elapsed());
            break;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let refused_at = refused_at.expect("still answering 10 s after the primary stopped");
    eprintln!("saved copy served until {refused_at:?} after the primary stopped (SOA expire 6 s)");
    assert!(
        refused_at >= Duration::from_secs(3) && refused_at <= Duration::from_millis(7500),
        "stopped answering {refused_at:?} after the primary stopped"
    );
    assert!(secondary.wait_log("SOA expire passed", Duration::from_secs(1)));
    // Started again with an expired copy: not served.
    let mut secondary = secondary;
    secondary.stop();
    let secondary = start(3);
    assert_eq!(wiki(secondary.dns), None);
    assert!(secondary.wait_log("expired while ggond was down", Duration::from_secs(1)));
}
