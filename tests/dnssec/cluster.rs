//! DNSSEC in a cluster: three ggond nodes (3 etcd members) sign ggon.org
//! online with the same keys, handed to each node like its zone file.
//!
//! - A ZSK roll asked of a follower is begun by the leader, shared through
//!   etcd and taken by every node; then the key policy rolls the new ZSK
//!   by itself and the leader is killed in the middle: the next leader
//!   finishes the roll. delv validates on every node at every poll.
//! - The key policy rolls the KSK against a parent zone served by BIND:
//!   the leader is killed while the roll waits for the parent's DS, the
//!   next leader asks the parent itself and, once the test puts the new DS
//!   there (from the CDS every node serves), removes the old KSK. unbound,
//!   one per node trusting only the parent's key, validates throughout.
//!
//! Every node serves the same key set at every step.

use std::collections::BTreeSet;

use super::parent::{ds_line, Parent};
use super::roll::{keys_in, SHORT_ZONE};
use super::*;
use support::cluster::Nodes;
use support::dnstools::dig_short;
use support::etcd::EtcdCluster;
use support::unbound::Unbound;

type Keys = Vec<(String, u64, bool)>;

/// (role, tag, signing) of the keys node `i` serves (read over DNS).
fn served(nodes: &Nodes, i: usize) -> Vec<(String, u64, bool)> {
    let g = nodes.node(i);
    let config = nodes.config(i).display().to_string();
    let server = g.dns.to_string();
    let out = g.ctl(&[
        "--config", &config, "dnssec", "status", "--server", &server, "--json",
    ]);
    assert!(out.ok(), "{}\n{}", out.stdout, out.stderr);
    keys_in(&out.stdout)
}

/// Poll until `done` holds for the key set every live node serves, which
/// must be the same on all of them once each step is reached; delv
/// validates cic.ggon.org on every live node at every poll.
fn validate_until(
    nodes: &Nodes,
    anchor: &Path,
    limit: Duration,
    what: &str,
    done: impl Fn(&[(String, u64, bool)]) -> bool,
) -> Keys {
    let delv = |i: usize| delv_validates(nodes.node(i).dns, anchor, "cic.ggon.org", "A");
    poll_keys(nodes, &delv, limit, what, done)
}

/// [`validate_until`] with the validation of node `i` given.
fn poll_keys(
    nodes: &Nodes,
    validates: &dyn Fn(usize) -> (bool, String),
    limit: Duration,
    what: &str,
    done: impl Fn(&[(String, u64, bool)]) -> bool,
) -> Keys {
    let deadline = std::time::Instant::now() + limit;
    loop {
        let mut sets = Vec::new();
        for i in nodes.live() {
            let (ok, text) = validates(i);
            assert!(
                ok,
                "node{} does not validate ({what}): {text}\n{}",
                i + 1,
                nodes.logs()
            );
            sets.push(served(nodes, i));
        }
        if sets.iter().all(|s| done(s)) && sets.iter().all(|s| *s == sets[0]) {
            return sets.swap_remove(0);
        }
        assert!(
            std::time::Instant::now() < deadline,
            "not every node reached `{what}` within {limit:?}: {sets:?}\n{}",
            nodes.logs()
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}

fn zsks(k: &[(String, u64, bool)]) -> Vec<(u64, bool)> {
    role(k, "ZSK")
}

fn role(k: &[(String, u64, bool)], r: &str) -> Vec<(u64, bool)> {
    k.iter().filter(|k| k.0 == r).map(|k| (k.1, k.2)).collect()
}

/// Three nodes signing ggon.org with copies of `ksk` and `zsk`, the
/// zone's `dnssec` table ending with `tail` (inside its braces).
fn signed_nodes(tmp: &TestDir, etcd: &EtcdCluster, ksk: &Path, zsk: &Path, tail: &str) -> Nodes {
    let flags = tmp.sub("flags");
    let configs: Vec<String> = (1..=3)
        .map(|i| {
            let kdir = tmp.sub(&format!("node{i}-keys"));
            let mut bases = Vec::new();
            for base in [ksk, zsk] {
                for ext in ["key", "private"] {
                    let from = format!("{}.{ext}", base.display());
                    let name = format!("{}.{ext}", base.file_name().unwrap().to_string_lossy());
                    std::fs::copy(&from, kdir.join(name)).expect("copy key");
                }
                bases.push(kdir.join(base.file_name().unwrap()).display().to_string());
            }
            format!(
                "allow_transfer = [\"127.0.0.1\"]\n\
                 dnssec = {{ keys = [\"{}\", \"{}\"], {tail} }}\n\n{}",
                bases[0],
                bases[1],
                cic_service(&flags)
            )
        })
        .collect();
    Nodes::start_zone(&vec![etcd.endpoints(); 3], SHORT_ZONE, &configs)
}

#[test]
fn a_cluster_rolls_its_zsk_from_a_follower_and_by_policy_across_a_leader_kill() {
    let tmp = TestDir::new("dnssec-cluster");
    let (ksk, zsk) = bind_ecdsa_pair(&tmp.sub("keys"));
    let etcd = EtcdCluster::start(3);
    // Steps 4 s apart (TTL 1 s + 3 s); the policy rolls a ZSK that has
    // signed for 40 s.
    let tail = "propagation = \"3s\", policy = { zsk_lifetime = \"40s\" }";
    let mut nodes = signed_nodes(&tmp, &etcd, &ksk, &zsk, tail);
    let leader = nodes.wait_leader(secs(20)).expect("a leader");
    let follower = (0..3).find(|&i| i != leader).unwrap();
    let anchor = delv_anchor(tmp.path(), &ksk);
    let first = validate_until(&nodes, &anchor, secs(10), "the configured keys", |k| {
        k.len() == 2
    });
    let old_zsk = zsks(&first)[0].0;

    // An operator's roll, asked of a follower: begun by the leader, the
    // new ZSK published on every node when ggon-ctl returns.
    let out = nodes
        .node(follower)
        .ctl(&["dnssec", "roll", "ggon.org", "--zsk"]);
    assert!(
        out.ok() && out.stdout.contains("published"),
        "{}\n{}",
        out.stdout,
        out.stderr
    );
    let now: BTreeSet<_> = (0..3).map(|i| zsks(&served(&nodes, i))).collect();
    assert_eq!(now.len(), 1, "the nodes serve different ZSKs: {now:?}");
    let published = now.into_iter().next().unwrap();
    assert_eq!(published.len(), 2, "{published:?}");
    let new_zsk = published.iter().find(|z| z.0 != old_zsk).unwrap().0;
    assert!(
        published.contains(&(old_zsk, true)) && published.contains(&(new_zsk, false)),
        "pre-publication everywhere: {published:?}"
    );
    validate_until(&nodes, &anchor, secs(15), "the new ZSK signing", |k| {
        zsks(k) == [(old_zsk, false), (new_zsk, true)]
            || zsks(k) == [(new_zsk, true), (old_zsk, false)]
    });
    validate_until(&nodes, &anchor, secs(15), "the old ZSK gone", |k| {
        zsks(k) == [(new_zsk, true)]
    });

    // The key policy rolls the new ZSK 40 s after it began to sign; the
    // leader is killed once the next ZSK is published.
    let policy = validate_until(&nodes, &anchor, secs(60), "the policy's roll begun", |k| {
        zsks(k).len() == 2
    });
    let next = zsks(&policy)
        .into_iter()
        .find(|z| z.0 != new_zsk)
        .unwrap()
        .0;
    let leader = nodes.wait_leader(secs(5)).expect("a leader");
    nodes.kill(leader);
    let after = nodes
        .wait_leader(secs(20))
        .expect("a new leader after the kill");
    assert_ne!(after, leader);
    validate_until(
        &nodes,
        &anchor,
        secs(30),
        "the policy's roll finished",
        |k| zsks(k) == [(next, true)],
    );
    let history = nodes.node(after).ctl(&["history", "--json"]);
    assert!(
        history.stdout.contains("key policy: ZSK")
            && history.stdout.contains(&format!("key {new_zsk} removed")),
        "{}",
        history.stdout
    );
    // The killed node comes back with the key set the others moved to.
    nodes.restart(leader);
    validate_until(
        &nodes,
        &anchor,
        secs(20),
        "the restarted node in step",
        |k| zsks(k) == [(next, true)],
    );
}

#[test]
fn a_cluster_rolls_its_ksk_against_the_parent_across_a_leader_kill() {
    let tmp = TestDir::new("dnssec-cluster-ksk");
    let (ksk, zsk) = bind_ecdsa_pair(&tmp.sub("keys"));
    let parent = Parent::start(tmp.sub("parent"), &ds_line(&ksk));
    let etcd = EtcdCluster::start(3);
    let tail = format!(
        "propagation = \"1s\", policy = {{ zsk_lifetime = \"1h\", ksk_lifetime = \"8s\", \
         parent_servers = [\"127.0.0.1:{}\"], check_interval = \"1s\", parent_propagation = \"1s\" }}",
        parent.port
    );
    let mut nodes = signed_nodes(&tmp, &etcd, &ksk, &zsk, &tail);
    nodes.wait_leader(secs(20)).expect("a leader");
    // One resolver per node, trusting only the parent's key.
    let org = parent.key().expect("the parent's key");
    let stub = format!(
        "stub-zone:\n    name: \"org\"\n    stub-addr: 127.0.0.1@{}\n",
        parent.port
    );
    let resolvers: Vec<Unbound> = (0..3)
        .map(|i| {
            let dir = tmp.sub(&format!("unbound{i}"));
            Unbound::start_with(dir, "ggon.org", nodes.node(i).dns, &org, &stub)
        })
        .collect();
    let validates = |i: usize| {
        let s = resolvers[i].ask("cic.ggon.org", "A");
        (
            s.ad && s.answers == vec![PRIMARY.to_string()],
            format!("{s:?}"),
        )
    };
    let first = poll_keys(&nodes, &validates, secs(10), "the configured keys", |k| {
        k.len() == 2
    });
    let old_ksk = role(&first, "KSK")[0].0;
    // The policy begins the roll by itself: both KSKs sign the key set.
    let both = poll_keys(&nodes, &validates, secs(20), "the KSK roll begun", |k| {
        role(k, "KSK").len() == 2
    });
    let new_ksk = role(&both, "KSK")
        .into_iter()
        .find(|k| k.0 != old_ksk)
        .unwrap()
        .0;
    let cds_everywhere = || -> Option<Vec<String>> {
        let all: BTreeSet<Vec<String>> = nodes
            .live()
            .iter()
            .map(|&i| dig_short(nodes.node(i).dns.port(), "ggon.org", "CDS"))
            .collect();
        (all.len() == 1)
            .then(|| all.into_iter().next().unwrap())
            .filter(|c| !c.is_empty())
    };
    poll_keys(
        &nodes,
        &validates,
        secs(15),
        "CDS published on every node",
        |_| cds_everywhere().is_some(),
    );
    let cds = cds_everywhere().expect("one CDS set");
    assert!(
        cds.len() == 1 && cds[0].starts_with(&format!("{new_ksk} ")),
        "CDS names the new KSK alone: {cds:?}"
    );
    // The leader dies while the roll waits for the parent's DS.
    let leader = nodes.wait_leader(secs(5)).expect("a leader");
    nodes.kill(leader);
    let after = nodes.wait_leader(secs(20)).expect("a new leader");
    assert_ne!(after, leader);
    let waited = std::time::Instant::now();
    while waited.elapsed() < secs(4) {
        let k = poll_keys(&nodes, &validates, secs(5), "a poll", |_| true);
        assert!(
            role(&k, "KSK").contains(&(old_ksk, true)),
            "the old KSK left while the parent serves only its DS: {k:?}\n{}",
            nodes.logs()
        );
    }
    parent.set_ds_from_cds(&cds[0]);
    poll_keys(&nodes, &validates, secs(20), "the old KSK gone", |k| {
        role(k, "KSK") == [(new_ksk, true)]
    });
    let history = nodes.node(after).ctl(&["history", "--json"]);
    assert!(
        history.stdout.contains(&format!(
            "the parent's servers serve the DS of KSK {new_ksk}"
        )),
        "{}",
        history.stdout
    );
}
