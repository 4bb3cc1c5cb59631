//! RFC 2136 UPDATEs in a cluster: sent to any node, applied once by the
//! leader through the zone's journal in etcd, answered by every node with
//! one serial, passed on to a BIND secondary of a follower by IXFR; and
//! `ggon-ctl reload --cluster`.

use std::time::{Duration, Instant};

use crate::support::bind::{Bind, BindSpec};
use crate::support::cluster::{cic, Nodes};
use crate::support::dnstools::{
    dig, dig_short, nsupdate, soa_serial, tsig_keygen, update_script, TsigKey,
};
use crate::support::etcd::EtcdCluster;
use crate::support::etcd_client::etcd_get_prefix;
use crate::support::ggond::{ip, poll, HttpTarget};
use crate::support::process::free_port;

/// The zone-table lines (they follow `[[zone]]` in each node's config),
/// the key, and the service.
fn node_config(key: &TsigKey, bind_port: u16, primary: &str, backup: &str) -> String {
    format!(
        "update_keys = [\"ggon-key\"]\nallow_transfer = [\"127.0.0.1\"]\n\
         secondaries = [{{ address = \"127.0.0.1:{bind_port}\" }}]\n\n\
         [[key]]\nname = \"ggon-key\"\nalgorithm = \"{}\"\nsecret = \"{}\"\n\n{}",
        key.algorithm,
        key.secret,
        cic(primary, backup)
    )
}

/// (A records of NAME, zone serial) on every live node.
fn seen(nodes: &Nodes, name: &str) -> Vec<(Vec<String>, Option<u32>)> {
    nodes
        .live()
        .iter()
        .map(|&i| {
            let port = nodes.node(i).dns.port();
            (dig_short(port, name, "A"), soa_serial(port))
        })
        .collect()
}

fn all_same(v: &[(Vec<String>, Option<u32>)], want: &[&str]) -> bool {
    v.iter()
        .all(|(a, s)| a.iter().map(String::as_str).eq(want.iter().copied()) && *s == v[0].1)
}

/// The records of an IXFR from `port` since `serial`, as text lines.
fn ixfr(port: u16, serial: u32) -> Vec<String> {
    let q = format!("IXFR={serial}");
    let out = dig(port, &["+nocmd", "+nocomments", "+nostats", "ggon.org", &q]);
    let mut lines: Vec<String> = out
        .lines()
        .filter(|l| !l.trim().is_empty() && !l.starts_with(';'))
        .map(|l| l.split_whitespace().collect::<Vec<_>>().join(" "))
        .collect();
    lines.sort();
    lines
}

struct Rig {
    nodes: Nodes,
    etcd: EtcdCluster,
    key: TsigKey,
    bind_port: u16,
    _keydir: tempfile::TempDir,
    _targets: (HttpTarget, HttpTarget),
}

fn rig() -> Rig {
    let etcd = EtcdCluster::start(3);
    let primary = HttpTarget::start(ip("127.0.0.11"));
    let backup = HttpTarget::start(ip("127.0.0.12"));
    let keydir = tempfile::tempdir().expect("tempdir");
    let key = tsig_keygen(keydir.path(), "ggon-key", "ggon-key.key");
    let bind_port = free_port();
    let svc: Vec<String> = (0..3)
        .map(|_| node_config(&key, bind_port, &primary.url(), &backup.url()))
        .collect();
    let nodes = Nodes::start(&vec![etcd.endpoints(); 3], &svc);
    nodes
        .wait_leader(Duration::from_secs(10))
        .unwrap_or_else(|| panic!("no leader: {}", nodes.logs()));
    // Every node a member, as every node sees it.
    let members = poll(Duration::from_secs(10), || {
        (0..3)
            .all(|i| {
                nodes.status(i).is_some_and(|s| {
                    s["cluster"]["members"]
                        .as_array()
                        .is_some_and(|m| m.len() == 3)
                })
            })
            .then_some(())
    });
    assert!(
        members.is_some(),
        "not every node sees 3 members: {}",
        nodes.logs()
    );
    Rig {
        nodes,
        etcd,
        key,
        bind_port,
        _keydir: keydir,
        _targets: (primary, backup),
    }
}

#[test]
fn an_update_sent_to_a_follower_reaches_every_node_and_a_secondary_by_ixfr() {
    let r = rig();
    let n = &r.nodes;
    let leader = n.wait_leader(Duration::from_secs(5)).expect("leader");
    let f: Vec<usize> = (0..3).filter(|&i| i != leader).collect();
    let fdns = n.node(f[0]).dns;
    let dir = tempfile::tempdir().expect("tempdir");
    let bind = Bind::start(
        dir.path().join("bind"),
        BindSpec::secondary(fdns, Some(r.bind_port)),
    );
    let s0 = bind
        .wait_zone(Duration::from_secs(10))
        .expect("BIND secondary loaded the zone");

    let out = nsupdate(
        Some(&r.key.file),
        &update_script(fdns.port(), &["update add test.ggon.org 300 A 127.0.0.99"]),
    );
    let returned = Instant::now();
    assert!(
        out.ok,
        "nsupdate to follower node{}: {}\n{}",
        f[0] + 1,
        out.text(),
        n.logs()
    );
    let took = poll(Duration::from_secs(1), || {
        all_same(&seen(n, "test.ggon.org"), &["127.0.0.99"]).then(|| returned.elapsed())
    });
    assert!(
        took.is_some(),
        "not on every node with one serial within 1 s: {:?}",
        seen(n, "test.ggon.org")
    );
    println!(
        "add through a follower: every node answers it {:?} after nsupdate returned",
        took.unwrap()
    );
    let s1 = seen(n, "test.ggon.org")[0].1.expect("serial");
    assert!(s1 != s0, "the serial must change ({s0} -> {s1})");
    // Applied once: one entry in the zone's journal in etcd.
    let journal = etcd_get_prefix(&r.etcd.endpoint(0), "/ggon/state/zone/ggon.org./").unwrap();
    assert_eq!(journal.len(), 1, "{journal:?}");

    // The BIND secondary of the follower: NOTIFY, then an incremental transfer.
    let got = poll(Duration::from_secs(5), || {
        (dig_short(r.bind_port, "test.ggon.org", "A") == vec!["127.0.0.99"]).then_some(())
    });
    assert!(
        got.is_some(),
        "BIND secondary did not follow:\n{}",
        bind.log_tail()
    );
    assert_eq!(soa_serial(r.bind_port), Some(s1));
    // named 9.18 does not name the transfer's type in its log; an IXFR is
    // the one that carries a few records instead of the whole zone.
    let log = bind.log_text();
    let sizes: Vec<u32> = log
        .lines()
        .filter_map(|l| l.split("Transfer completed: 1 messages, ").nth(1))
        .filter_map(|rest| rest.split(' ').next()?.parse().ok())
        .collect();
    assert!(
        sizes.len() >= 2 && sizes.last() < sizes.first(),
        "not by IXFR (records per transfer: {sizes:?}):\n{log}"
    );

    // IXFR from any node gives the same differences.
    let diffs: Vec<Vec<String>> = (0..3).map(|i| ixfr(n.node(i).dns.port(), s0)).collect();
    assert!(
        diffs[0].iter().any(|l| l.contains("127.0.0.99")),
        "{diffs:?}"
    );
    assert!(
        diffs.iter().all(|d| d == &diffs[0]),
        "IXFR differs between nodes: {diffs:#?}"
    );

    // Delete through the other follower.
    let out = nsupdate(
        Some(&r.key.file),
        &update_script(n.node(f[1]).dns.port(), &["update delete test.ggon.org A"]),
    );
    let returned = Instant::now();
    assert!(out.ok, "{}", out.text());
    let took = poll(Duration::from_secs(1), || {
        all_same(&seen(n, "test.ggon.org"), &[]).then(|| returned.elapsed())
    });
    assert!(
        took.is_some(),
        "delete not everywhere within 1 s: {:?}",
        seen(n, "test.ggon.org")
    );
    let s2 = seen(n, "test.ggon.org")[0].1.expect("serial");
    assert!(s2 != s1);
    // Refused at the follower, as on a single node: unsigned.
    let out = nsupdate(
        None,
        &update_script(fdns.port(), &["update add x.ggon.org 300 A 127.0.0.98"]),
    );
    assert!(!out.ok && out.text().contains("REFUSED"), "{}", out.text());
    assert!(seen(n, "x.ggon.org")
        .iter()
        .all(|(a, s)| a.is_empty() && *s == Some(s2)));
}

#[test]
fn an_update_replayed_across_a_leader_change_is_applied_once() {
    let mut r = rig();
    let leader = r.nodes.wait_leader(Duration::from_secs(5)).expect("leader");
    let f = (0..3).find(|&i| i != leader).unwrap();
    let fdns = r.nodes.node(f).dns;
    // Only if the name is not there yet: a second application must fail.
    let once = update_script(
        fdns.port(),
        &[
            "prereq nxdomain once.ggon.org",
            "update add once.ggon.org 300 A 127.0.0.77",
        ],
    );
    r.nodes.kill(leader);
    // During the election the follower cannot pass it on (SERVFAIL); the
    // client retries, as a client would, until a new leader takes it.
    let t0 = Instant::now();
    let mut tries = 0;
    let done = poll(Duration::from_secs(20), || {
        tries += 1;
        nsupdate(Some(&r.key.file), &once).ok.then_some(())
    });
    assert!(done.is_some(), "never applied: {}", r.nodes.logs());
    println!(
        "applied after the leader was killed: {:?}, {tries} tries",
        t0.elapsed()
    );
    // The same UPDATE again: its prerequisite fails now, nothing changes.
    let serial = soa_serial(fdns.port());
    let again = nsupdate(Some(&r.key.file), &once);
    assert!(
        !again.ok && again.text().contains("YXDOMAIN"),
        "{}",
        again.text()
    );
    let journal = etcd_get_prefix(&r.etcd.endpoint(0), "/ggon/state/zone/ggon.org./").unwrap();
    let adds = journal
        .iter()
        .filter(|(_, v)| v.contains("once.ggon.org"))
        .count();
    assert_eq!(adds, 1, "{journal:?}");
    let ok = poll(Duration::from_secs(2), || {
        all_same(&seen(&r.nodes, "once.ggon.org"), &["127.0.0.77"]).then_some(())
    });
    assert!(ok.is_some(), "{:?}", seen(&r.nodes, "once.ggon.org"));
    assert_eq!(soa_serial(fdns.port()), serial);
    // The killed node comes back and applies the journal it missed.
    r.nodes.restart(leader);
    let port = r.nodes.node(leader).dns.port();
    let back = poll(Duration::from_secs(10), || {
        (dig_short(port, "once.ggon.org", "A") == vec!["127.0.0.77"] && soa_serial(port) == serial)
            .then_some(())
    });
    assert!(
        back.is_some(),
        "restarted node: {:?}",
        seen(&r.nodes, "once.ggon.org")
    );
}

#[test]
fn reload_cluster_reloads_every_node_and_names_one_whose_zone_differs() {
    let r = rig();
    let n = &r.nodes;
    let out = n.node(0).ctl(&["reload", "--cluster"]);
    assert!(out.ok(), "{out:?}");
    for i in 1..=3 {
        assert!(
            out.stdout.contains(&format!("node{i}: reloaded")),
            "{out:?}"
        );
    }
    assert!(out.stdout.contains("agree"), "{out:?}");
    // node3's zone file edited (a copy of its own), then reload everywhere.
    let zone = n.dir.path().join("node3-ggon.org.zone");
    let text = std::fs::read_to_string(n.dir.path().join("ggon.org.zone")).unwrap();
    std::fs::write(&zone, text + "extra 300 IN A 127.0.0.66\n").unwrap();
    let cfg = std::fs::read_to_string(n.config(2)).unwrap();
    let shared = n.dir.path().join("ggon.org.zone");
    std::fs::write(
        n.config(2),
        cfg.replace(&shared.display().to_string(), &zone.display().to_string()),
    )
    .unwrap();
    let out = n.node(0).ctl(&["reload", "--cluster"]);
    assert_eq!(out.code, Some(1), "{out:?}");
    assert!(out.stdout.contains("node3: reloaded"), "{out:?}");
    // Compared with the leader's: node3 is named, or, when node3 leads,
    // the other two are named as differing from it.
    assert!(
        out.stdout.contains("node3 still differs")
            || out.stdout.contains("still differs from node3"),
        "{out:?}"
    );
    assert!(out.stdout.contains("zone"), "{out:?}");
    // A node whose reload fails is named.
    std::fs::write(n.config(1), "[cluster\n").unwrap();
    let out = n.node(0).ctl(&["reload", "--cluster"]);
    assert_eq!(out.code, Some(1), "{out:?}");
    assert!(out.stdout.contains("node2: NOT reloaded"), "{out:?}");
}
