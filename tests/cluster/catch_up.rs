//! How soon a follower that was paused past its lease answers a remap made
//! while it was away, after it is resumed (the nemesis's stale-read
//! question, docs/reliability.md): the follower is SIGSTOPped, a remap goes
//! through the leader (acknowledged with a warning after the lease: the
//! follower did not confirm), the follower is resumed 2.5 s after the pause
//! (past its 2 s lease), and from SIGCONT on its status (leader seen,
//! connected) and its answer are polled. Printed for each round; the
//! answer must come within [`BOUND`].

use std::time::{Duration, Instant};

use crate::support::cluster::Nodes;
use crate::support::etcd::EtcdCluster;

/// What docs/reliability.md states for a node back from a pause past its
/// lease: it serves the current state within this of being resumed.
const BOUND: Duration = Duration::from_secs(2);

fn services() -> String {
    let mut s = String::from("[[service]]\nname = \"cic\"\nfqdn = \"cic.ggon.org\"\nttl = 30\n");
    for t in 0..2 {
        s.push_str(&format!(
            "\n[[service.target]]\nname = \"t{t}\"\naddresses = [\"127.0.0.{}\"]\n\
             check = {{ type = \"exec\", command = [\"true\"], interval = \"1s\" }}\n",
            11 + t
        ));
    }
    s
}

/// From SIGCONT: when the follower first named the leader, first said it
/// is connected, and first answered `serial` (ms).
fn watch_resume(nodes: &Nodes, f: usize, leader: &str, serial: u32) -> [Option<u64>; 3] {
    let t0 = Instant::now();
    let mut first = [None; 3];
    nodes.node(f).signal(libc::SIGCONT);
    while t0.elapsed() < Duration::from_secs(10) && first.iter().any(Option::is_none) {
        let now = || Some(t0.elapsed().as_millis() as u64);
        if first[2].is_none() && nodes.answer(f).1 >= serial {
            first[2] = now();
        }
        if let Some(s) = nodes.status(f) {
            if first[0].is_none() && s["cluster"]["leader"] == leader {
                first[0] = now();
            }
            if first[1].is_none() && s["cluster"]["connected"] == true {
                first[1] = now();
            }
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    first
}

#[test]
fn a_follower_paused_past_its_lease_serves_the_current_state_soon_after_resuming() {
    let etcd = EtcdCluster::start(3);
    let nodes = Nodes::start(&vec![etcd.endpoints(); 3], &vec![services(); 3]);
    let leader = nodes
        .wait_leader(Duration::from_secs(15))
        .unwrap_or_else(|| panic!("no leader:\n{}", nodes.logs()));
    let name = format!("node{}", leader + 1);
    let mut worst = Duration::ZERO;
    for round in 0..4 {
        let f = (leader + 1 + round % 2) % 3;
        let paused = Instant::now();
        nodes.node(f).signal(libc::SIGSTOP);
        let to = format!("t{}", 1 - round % 2);
        let out = nodes
            .node(leader)
            .ctl(&["remap", "cic", "--to", &to, "--force"]);
        assert!(
            out.stderr.contains("did not confirm") || out.stdout.contains("did not confirm"),
            "the paused follower (node{}) cannot have confirmed: {out:?}\n{}",
            f + 1,
            nodes.logs()
        );
        let serial = nodes.answer(leader).1;
        std::thread::sleep(Duration::from_millis(2500).saturating_sub(paused.elapsed()));
        let held = paused.elapsed().as_millis();
        let [named, connected, answered] = watch_resume(&nodes, f, &name, serial);
        eprintln!(
            "round {round}: node{} resumed after {} ms paused: names the leader +{named:?} ms, \
             connected +{connected:?} ms, answers serial {serial} +{answered:?} ms",
            f + 1,
            held
        );
        let answered = Duration::from_millis(answered.unwrap_or(u64::MAX / 2));
        worst = worst.max(answered);
        assert!(
            answered <= BOUND,
            "node{} answered the remap {answered:?} after resuming (bound {BOUND:?}); logs:\n{}",
            f + 1,
            nodes.logs()
        );
        nodes
            .wait_leader(Duration::from_secs(20))
            .unwrap_or_else(|| panic!("no leader after round {round}:\n{}", nodes.logs()));
    }
    eprintln!("a paused follower answered the current state at most {worst:?} after SIGCONT");
}

/// The leader's list of members to wait for came from its view of the
/// cluster, refreshed on its half-second tick: a remap made right after a
/// node (re)joined was reported done without waiting for that node, which
/// could still answer the state before it. Now the list is read from etcd
/// after the write: the node that just joined, paused before it applied
/// anything, is waited for and named.
#[test]
fn a_remap_right_after_a_node_joined_waits_for_that_node() {
    let etcd = EtcdCluster::start(3);
    let mut nodes = Nodes::start(&vec![etcd.endpoints(); 3], &vec![services(); 3]);
    let leader = nodes
        .wait_leader(Duration::from_secs(15))
        .unwrap_or_else(|| panic!("no leader:\n{}", nodes.logs()));
    let f = (leader + 1) % 3;
    nodes.kill(f);
    // Its lease lapses and the leader no longer counts it.
    let gone = crate::support::ggond::poll(Duration::from_secs(10), || {
        let s = nodes.status(leader)?;
        (s["cluster"]["members"].as_array()?.len() == 2).then_some(())
    });
    assert!(
        gone.is_some(),
        "node{} still a member:\n{}",
        f + 1,
        nodes.logs()
    );
    nodes.restart(f);
    let joined = crate::support::ggond::poll(Duration::from_secs(10), || {
        nodes
            .node(f)
            .log_text()
            .contains("joined the cluster")
            .then_some(())
    });
    assert!(
        joined.is_some(),
        "node{} did not join:\n{}",
        f + 1,
        nodes.logs()
    );
    nodes.node(f).signal(libc::SIGSTOP);
    let out = nodes
        .node(leader)
        .ctl(&["remap", "cic", "--to", "t1", "--force"]);
    nodes.node(f).signal(libc::SIGCONT);
    let said = format!("{}{}", out.stdout, out.stderr);
    assert!(
        said.contains(&format!("node{} did not confirm", f + 1)),
        "the remap was reported done although node{} (a member, paused since it joined) \
         never applied it: {out:?}\n{}",
        f + 1,
        nodes.logs()
    );
}
