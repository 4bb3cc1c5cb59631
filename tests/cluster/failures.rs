//! The failure table of docs/cluster.md, one test per row: three real
//! ggond nodes on a real three-member etcd cluster, real HTTP targets, and
//! every node's answers compared after each step.

use std::net::Ipv4Addr;
use std::time::{Duration, Instant};

use crate::support::cluster::{cic, dead_url, Nodes, LEASE};
use crate::support::etcd::{EtcdCluster, TcpProxy};
use crate::support::ggond::{ip, HttpTarget};

const PRIMARY: Ipv4Addr = Ipv4Addr::new(127, 0, 0, 11);
const BACKUP: Ipv4Addr = Ipv4Addr::new(127, 0, 0, 12);
/// Followers follow a decision within one step of their loop (200 ms); the
/// promise is one second.
const AGREE: Duration = Duration::from_secs(1);

struct Rig {
    // Declared first: nodes stop before etcd does.
    nodes: Nodes,
    etcd: EtcdCluster,
    primary: HttpTarget,
    _backup: HttpTarget,
}

/// Three nodes, all seeing both targets, on a healthy etcd cluster.
fn rig() -> Rig {
    rig_with(|_, p, b| cic(p, b), None)
}

/// `services(node, primary_url, backup_url)`; `proxy`: node index whose
/// etcd traffic goes through the proxy.
fn rig_with(
    services: impl Fn(usize, &str, &str) -> String,
    proxy: Option<(usize, &TcpProxy)>,
) -> Rig {
    let etcd = EtcdCluster::start(3);
    let primary = HttpTarget::start(ip("127.0.0.11"));
    let backup = HttpTarget::start(ip("127.0.0.12"));
    let endpoints: Vec<Vec<String>> = (0..3)
        .map(|i| match proxy {
            Some((n, p)) if n == i => vec![p.url()],
            _ => etcd.endpoints(),
        })
        .collect();
    let svc: Vec<String> = (0..3)
        .map(|i| services(i, &primary.url(), &backup.url()))
        .collect();
    let nodes = Nodes::start(&endpoints, &svc);
    let r = Rig {
        nodes,
        etcd,
        primary,
        _backup: backup,
    };
    r.nodes
        .wait_leader(Duration::from_secs(10))
        .unwrap_or_else(|| panic!("no leader; logs:\n{}", r.nodes.logs()));
    r.wait_agreed("primary", Some(true));
    r.wait_agreed("backup", Some(true));
    r.nodes
        .wait_all_answer(PRIMARY, Duration::from_secs(5))
        .unwrap_or_else(|| panic!("nodes disagree: {}", r.nodes.answers()));
    r
}

impl Rig {
    /// Wait until every live node reports `target`'s agreed verdict as `want`.
    fn wait_agreed(&self, target: &str, want: Option<bool>) {
        let ok = crate::support::ggond::poll(Duration::from_secs(10), || {
            self.nodes
                .live()
                .iter()
                .all(|i| {
                    self.nodes.status(*i).is_some_and(|s| {
                        s["cluster"]["verdicts"]
                            .as_array()
                            .into_iter()
                            .flatten()
                            .any(|v| v["target"] == target && v["agreed"].as_bool() == want)
                    })
                })
                .then_some(())
        });
        assert!(
            ok.is_some(),
            "verdict on {target} never became {want:?}; logs:\n{}",
            self.nodes.logs()
        );
    }

    fn ctl(&self, i: usize, args: &[&str]) -> crate::support::ggond::CtlOut {
        self.nodes.node(i).ctl(args)
    }

    fn followers(&self, leader: usize) -> Vec<usize> {
        self.nodes
            .live()
            .into_iter()
            .filter(|i| *i != leader)
            .collect()
    }
}

#[test]
fn a_remap_sent_to_a_follower_reaches_every_node_with_one_serial() {
    let r = rig();
    let leader = r.nodes.wait_leader(Duration::from_secs(5)).unwrap();
    let f = r.followers(leader)[0];
    let (_, before) = r.nodes.answer(0);
    let out = r.ctl(
        f,
        &[
            "remap",
            "cic",
            "--to",
            "backup",
            "--reason",
            "from a follower",
        ],
    );
    assert!(out.ok(), "{out:?}");
    // The leader answers once every node serves the change: no node is
    // left answering the old target when the command returns.
    for i in 0..3 {
        assert_eq!(r.nodes.answer(i).0, vec![BACKUP], "{}", r.nodes.answers());
    }
    let (took, serial) = r
        .nodes
        .wait_all_answer(BACKUP, AGREE)
        .unwrap_or_else(|| panic!("not agreed within 1 s: {}", r.nodes.answers()));
    assert!(serial > before, "serial {serial} after {before}");
    println!("remap on a follower: all nodes answer it after {took:?}");
    // Status on any node shows the pin and the whole cluster.
    let st = r.nodes.status(f).unwrap();
    assert_eq!(st["services"][0]["mode"], "manual");
    assert_eq!(st["cluster"]["members"].as_array().unwrap().len(), 3);
    let out = r.ctl(f, &["cluster"]);
    assert!(
        out.ok() && out.stdout.contains("node1") && out.stdout.contains("VOTES"),
        "{out:?}"
    );
    // History is the cluster's: the follower shows the leader's record
    // (written by the leader's cluster task within a step).
    let seen = crate::support::ggond::poll(AGREE, || {
        let out = r.ctl(f, &["history", "--json"]);
        out.stdout.contains("from a follower").then_some(())
    });
    assert!(seen.is_some(), "{:?}", r.ctl(f, &["history", "--json"]));
}

/// A follower that does not apply a change (stopped with SIGSTOP, so its
/// lease still counts it as live) is named in a warning: the remap is made
/// and the other nodes answer it, but the operator learns that one node
/// may still answer the old target, and ggon-ctl exits 1.
#[test]
fn a_change_a_paused_follower_has_not_applied_is_reported() {
    let r = rig();
    let leader = r.nodes.wait_leader(Duration::from_secs(5)).unwrap();
    let paused = r.followers(leader)[0];
    r.nodes.node(paused).signal(libc::SIGSTOP);
    let out = r.ctl(leader, &["remap", "cic", "--to", "backup"]);
    r.nodes.node(paused).signal(libc::SIGCONT);
    assert_eq!(out.code, Some(1), "{out:?}");
    assert!(out.stdout.contains("cic: primary -> backup"), "{out:?}");
    let name = format!("node{}", paused + 1);
    assert!(
        out.stderr.contains(&format!(
            "WARNING: {name} did not confirm the change within 2s: it may still answer"
        )),
        "{out:?}"
    );
    // It catches up once it runs again.
    r.nodes
        .wait_all_answer(BACKUP, LEASE + Duration::from_secs(5))
        .unwrap_or_else(|| panic!("no catch-up: {}", r.nodes.answers()));
}

#[test]
fn leader_killed_another_leads_within_the_lease_and_nothing_is_lost() {
    let mut r = rig();
    let leader = r.nodes.wait_leader(Duration::from_secs(5)).unwrap();
    let f = r.followers(leader)[0];
    assert!(r.ctl(f, &["remap", "cic", "--to", "backup"]).ok());
    r.nodes.wait_all_answer(BACKUP, AGREE).expect("agreed");
    let t0 = Instant::now();
    r.nodes.kill(leader);
    let next = r
        .nodes
        .wait_leader(LEASE + Duration::from_secs(3))
        .unwrap_or_else(|| panic!("no new leader; logs:\n{}", r.nodes.logs()));
    let took = t0.elapsed();
    println!(
        "leader node{} killed: node{} leads after {took:?}",
        leader + 1,
        next + 1
    );
    assert_ne!(next, leader);
    assert!(took <= LEASE + Duration::from_secs(2), "took {took:?}");
    // The pin made before the kill is still the cluster's decision.
    let st = r.nodes.status(next).unwrap_or_else(|| {
        panic!(
            "node{} status: {:?}",
            next + 1,
            r.nodes.node(next).ctl(&["status", "--json"])
        )
    });
    assert_eq!(st["services"][0]["active"], "backup");
    assert_eq!(st["services"][0]["mode"], "manual");
    // And the new leader carries on: a release goes back to the primary.
    let out = r.ctl(r.followers(next)[0], &["release", "cic"]);
    assert!(out.ok(), "{out:?}");
    r.nodes.wait_all_answer(PRIMARY, AGREE).expect("agreed");
    // The killed node comes back as a follower and answers the agreed
    // state from its first answer (its own file still says backup).
    r.nodes.restart(leader);
    assert_eq!(
        r.nodes.answer(leader).0,
        vec![PRIMARY],
        "first answer after restart"
    );
    r.nodes
        .wait_all_answer(PRIMARY, Duration::from_secs(5))
        .unwrap_or_else(|| {
            panic!(
                "restarted node disagrees: {}\n{}",
                r.nodes.answers(),
                r.nodes.logs()
            )
        });
}

#[test]
fn leader_killed_during_a_failover_the_failover_completes_once() {
    let mut r = rig();
    let leader = r.nodes.wait_leader(Duration::from_secs(5)).unwrap();
    r.primary.stop();
    r.nodes.kill(leader);
    let (took, _) = r
        .nodes
        .wait_all_answer(BACKUP, Duration::from_secs(10))
        .unwrap_or_else(|| panic!("no failover: {}\n{}", r.nodes.answers(), r.nodes.logs()));
    println!("failover with the leader killed: all survivors answer the backup after {took:?}");
    let next = r.nodes.wait_leader(Duration::from_secs(5)).unwrap();
    let out = r.ctl(next, &["history", "--json"]);
    let failovers = out.stdout.matches("\"failover\"").count();
    assert!(
        failovers <= 1,
        "one failover at most, got {failovers}: {}",
        out.stdout
    );
}

#[test]
fn a_node_that_sees_every_target_down_fails_nothing_over() {
    // Node 3 checks addresses it cannot reach: its probes all fail.
    let dead = dead_url();
    let r = rig_with(
        |i, p, b| if i == 2 { cic(&dead, &dead) } else { cic(p, b) },
        None,
    );
    // Node 3 votes down on both; the others outvote it.
    let ok = crate::support::ggond::poll(Duration::from_secs(10), || {
        let st = r.nodes.status(0)?;
        let v = st["cluster"]["verdicts"].as_array()?.clone();
        v.iter()
            .all(|x| x["votes"]["node3"] == false && x["agreed"] == true)
            .then_some(())
    });
    assert!(ok.is_some(), "node3's votes: {:?}", r.nodes.status(0));
    let t0 = Instant::now();
    while t0.elapsed() < Duration::from_secs(2) {
        for i in 0..3 {
            assert_eq!(r.nodes.answer(i).0, vec![PRIMARY], "node{}", i + 1);
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn targets_really_down_fail_over_on_every_node() {
    let mut r = rig();
    let t0 = Instant::now();
    r.primary.stop();
    let (took, serial) = r
        .nodes
        .wait_all_answer(BACKUP, Duration::from_secs(5))
        .unwrap_or_else(|| panic!("no failover: {}", r.nodes.answers()));
    println!(
        "primary down: all nodes answer the backup (serial {serial}) after {:?}",
        t0.elapsed()
    );
    // fall 2 x interval 200 ms + a step of every node's loop, far under the lease.
    assert!(took < Duration::from_secs(3), "{took:?}");
}

#[test]
fn a_node_cut_off_from_etcd_answers_the_last_state_decides_nothing_and_catches_up() {
    let etcd = EtcdCluster::start(3);
    let proxy = TcpProxy::start(etcd.client_addr(0));
    let primary = HttpTarget::start(ip("127.0.0.11"));
    let backup = HttpTarget::start(ip("127.0.0.12"));
    let endpoints = vec![etcd.endpoints(), etcd.endpoints(), vec![proxy.url()]];
    let svc: Vec<String> = (0..3).map(|_| cic(&primary.url(), &backup.url())).collect();
    let nodes = Nodes::start(&endpoints, &svc);
    nodes.wait_leader(Duration::from_secs(10)).expect("leader");
    nodes
        .wait_all_answer(PRIMARY, Duration::from_secs(5))
        .expect("agreed");

    let metrics = || {
        let (code, text) = crate::support::ggond::http_request(
            nodes.node(2).control,
            "GET",
            "/metrics",
            Some(crate::support::cluster::TOKEN),
            None,
        );
        assert_eq!(code, 200);
        text
    };
    let text = metrics();
    assert!(text.contains("ggon_cluster_leases_lost_total 0"), "{text}");
    proxy.blackhole();
    // After the lease the node says so, and refuses decisions.
    let ok = crate::support::ggond::poll(LEASE + Duration::from_secs(4), || {
        let st = nodes.status(2)?;
        (st["cluster"]["connected"] == false).then_some(())
    });
    assert!(ok.is_some(), "node3 never noticed: {:?}", nodes.status(2));
    // ... in /metrics too, with the lost lease counted (an alert on the
    // counter catches an outage shorter than the scrape interval). The
    // watch may break first (connected: false at once); the lease is lost
    // a TTL and etcd's 2 s request deadline after the last renewal.
    let lost = |t: &str| -> u64 {
        t.lines()
            .find_map(|l| l.strip_prefix("ggon_cluster_leases_lost_total "))
            .and_then(|v| v.trim().parse().ok())
            .unwrap_or(0)
    };
    let mut text = String::new();
    let counted = crate::support::ggond::poll(LEASE * 3 + Duration::from_secs(6), || {
        text = metrics();
        (lost(&text) >= 1).then_some(())
    });
    assert!(counted.is_some(), "{text}\n{}", nodes.logs());
    assert!(text.contains("ggon_cluster_connected 0"), "{text}");
    let out = nodes.node(2).ctl(&["remap", "cic", "--to", "backup"]);
    assert!(!out.ok(), "{out:?}");
    assert!(out.stderr.contains("cannot reach etcd"), "{out:?}");
    // The others carry on without it.
    let leader = nodes
        .wait_leader_among(&[0, 1], Duration::from_secs(6))
        .expect("leader of the rest");
    let out = nodes.node(leader).ctl(&["remap", "cic", "--to", "backup"]);
    // Made either way; if etcd has not yet expired node3's lease, node3 is
    // still a member and the leader says it did not confirm (it has not:
    // it answers the old state).
    let warned_node3 = out.code == Some(1)
        && out
            .stderr
            .contains("WARNING: node3 did not confirm the change");
    assert!(out.ok() || warned_node3, "{out:?}\n{}", nodes.logs());
    assert!(out.stdout.contains("cic: primary -> backup"), "{out:?}");
    let both = crate::support::ggond::poll(AGREE, || {
        [0, 1]
            .iter()
            .all(|i| nodes.answer(*i).0 == vec![BACKUP])
            .then_some(())
    });
    assert!(both.is_some(), "{}", nodes.answers());
    // Fail-static: the cut-off node still answers the last agreed state.
    assert_eq!(nodes.answer(2).0, vec![PRIMARY]);
    proxy.restore();
    let (took, _) = nodes
        .wait_all_answer(BACKUP, LEASE + Duration::from_secs(5))
        .unwrap_or_else(|| panic!("no catch-up: {}\n{}", nodes.answers(), nodes.logs()));
    println!("node3 back in touch with etcd: answers agree after {took:?}");
    drop(nodes);
    drop(etcd);
}

#[test]
fn etcd_losing_one_member_is_invisible() {
    let mut r = rig();
    r.etcd.stop(0);
    let f = r.followers(r.nodes.wait_leader(Duration::from_secs(5)).unwrap())[0];
    let t0 = Instant::now();
    let out = r.ctl(f, &["remap", "cic", "--to", "backup"]);
    assert!(out.ok(), "{out:?}");
    r.nodes
        .wait_all_answer(BACKUP, Duration::from_secs(3))
        .unwrap_or_else(|| panic!("{}", r.nodes.answers()));
    println!(
        "one etcd member down: remap agreed after {:?}",
        t0.elapsed()
    );
    // Leadership held throughout.
    assert!(r.nodes.wait_leader(Duration::from_secs(2)).is_some());
}

#[test]
fn all_etcd_down_answers_stay_remaps_are_refused_and_it_resumes() {
    let mut r = rig();
    for m in 0..3 {
        r.etcd.stop(m);
    }
    // Every node keeps answering the last agreed state.
    for i in 0..3 {
        assert_eq!(r.nodes.answer(i).0, vec![PRIMARY]);
    }
    // A remap is refused with a clear error, on the leader as on a follower.
    std::thread::sleep(LEASE + Duration::from_millis(500));
    for i in 0..3 {
        let out = r.ctl(i, &["remap", "cic", "--to", "backup"]);
        assert!(!out.ok(), "node{}: {out:?}", i + 1);
        assert!(
            out.stderr.contains("etcd") || out.stderr.contains("leader"),
            "node{}: {out:?}",
            i + 1
        );
        assert_eq!(r.nodes.answer(i).0, vec![PRIMARY]);
    }
    r.etcd.restart_stopped();
    let leader = r
        .nodes
        .wait_leader(Duration::from_secs(10))
        .unwrap_or_else(|| panic!("no leader after etcd came back:\n{}", r.nodes.logs()));
    let out = r.ctl(leader, &["remap", "cic", "--to", "backup"]);
    assert!(out.ok(), "{out:?}");
    r.nodes
        .wait_all_answer(BACKUP, Duration::from_secs(3))
        .unwrap_or_else(|| panic!("{}", r.nodes.answers()));
}

#[test]
fn a_remap_during_a_leader_change_is_applied_once_or_refused() {
    let mut r = rig();
    let leader = r.nodes.wait_leader(Duration::from_secs(5)).unwrap();
    let f = r.followers(leader)[0];
    let node = r.nodes.node(f);
    let (control, token) = (node.control, node.token_file.clone());
    // The remap goes to a follower while the leader dies.
    let remap = std::thread::spawn(move || {
        std::process::Command::new(env!("CARGO_BIN_EXE_ggon-ctl"))
            .args(["--control", &control.to_string(), "--token-file"])
            .arg(&token)
            .args([
                "remap",
                "cic",
                "--to",
                "backup",
                "--reason",
                "during election",
            ])
            .output()
            .unwrap()
    });
    r.nodes.kill(leader);
    let out = remap.join().unwrap();
    let next = r
        .nodes
        .wait_leader(LEASE + Duration::from_secs(3))
        .expect("new leader");
    let stderr = String::from_utf8_lossy(&out.stderr);
    if out.status.success() {
        r.nodes
            .wait_all_answer(BACKUP, AGREE)
            .unwrap_or_else(|| panic!("acknowledged but not agreed: {}", r.nodes.answers()));
        println!("remap during the election: applied");
    } else {
        assert!(
            stderr.contains("nothing was changed") || stderr.contains("may or may not"),
            "{stderr}"
        );
        println!("remap during the election: refused: {stderr}");
    }
    let hist = r.ctl(next, &["history", "--json"]).stdout;
    assert!(
        hist.matches("during election").count() <= 1,
        "applied twice: {hist}"
    );
}
