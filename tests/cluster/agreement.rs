//! Nodes that check they agree: one node restarted with an extra service,
//! another definition of `cic` (a different check interval) and a
//! different token file. `ggon-ctl cluster` on another node names that
//! node and each difference, `/metrics` counts them, and the rule for a
//! service defined differently holds: its last agreed state is kept (a
//! stopped primary is not failed over) and a remap of it is refused. Once
//! the node's config agrees again and it is reloaded, the mismatch is gone
//! and the held-back failover happens.

use std::net::Ipv4Addr;
use std::time::Duration;

use crate::support::cluster::{cic, Nodes, TOKEN};
use crate::support::etcd::EtcdCluster;
use crate::support::ggond::{http_request, ip, poll, HttpTarget};

const PRIMARY: Ipv4Addr = Ipv4Addr::new(127, 0, 0, 11);
const BACKUP: Ipv4Addr = Ipv4Addr::new(127, 0, 0, 12);

fn extra_service(url: &str) -> String {
    format!(
        "\n[[service]]\nname = \"web\"\nfqdn = \"web.ggon.org\"\nttl = 30\n\n\
         [[service.target]]\nname = \"only\"\naddresses = [\"127.0.0.13\"]\n\
         check = {{ type = \"http\", url = \"{url}\", interval = \"200ms\", timeout = \"200ms\" }}\n"
    )
}

#[test]
fn a_node_configured_differently_is_named_and_its_differing_service_is_held() {
    let etcd = EtcdCluster::start(3);
    let mut primary = HttpTarget::start(ip("127.0.0.11"));
    let backup = HttpTarget::start(ip("127.0.0.12"));
    let same = cic(&primary.url(), &backup.url());
    let mut nodes = Nodes::start(&vec![etcd.endpoints(); 3], &vec![same.clone(); 3]);
    let leader = nodes
        .wait_leader(Duration::from_secs(15))
        .unwrap_or_else(|| panic!("no leader; logs:\n{}", nodes.logs()));
    let odd = (0..3).rev().find(|i| *i != leader).unwrap();
    let other = (0..3).find(|i| *i != leader && *i != odd).unwrap();
    let odd_name = format!("node{}", odd + 1);

    // The odd node comes back with another config and token.
    nodes.kill(odd);
    let base = std::fs::read_to_string(nodes.config(odd)).unwrap();
    // The first target's check interval differs, and a service is added.
    let different = base.replacen("interval = \"200ms\"", "interval = \"300ms\"", 1)
        + &extra_service(&backup.url());
    assert!(different.contains("300ms"), "{different}");
    std::fs::write(nodes.config(odd), &different).unwrap();
    let token_file = nodes
        .config(odd)
        .parent()
        .unwrap()
        .join("state/control.token");
    std::fs::write(&token_file, "another-token-of-node-three-77\n").unwrap();
    nodes.restart(odd);

    let expected = [
        "has services the leader has not: `web`",
        "defines services differently (targets, addresses or checks): `cic`",
        "control token file differs",
    ];
    let mut last = String::new();
    let seen = poll(Duration::from_secs(15), || {
        last = nodes.node(other).ctl(&["cluster"]).stdout;
        let named = last.contains(&format!("CONFIG MISMATCH: node {odd_name}"));
        (named && expected.iter().all(|w| last.contains(w))).then_some(())
    });
    assert!(
        seen.is_some(),
        "not every difference named:\n{last}\nlogs:\n{}",
        nodes.logs()
    );
    let ldr = nodes.node(leader);
    let want = format!("ggon_cluster_config_mismatch{{node=\"{odd_name}\"}} 3");
    let mut metrics = String::new();
    let counted = poll(Duration::from_secs(5), || {
        let (code, body) = http_request(ldr.control, "GET", "/metrics", Some(TOKEN), None);
        metrics = body;
        (code == 200 && metrics.contains(&want)).then_some(())
    });
    assert!(
        counted.is_some(),
        "no `{want}` in:\n{}",
        metrics
            .lines()
            .filter(|l| l.contains("ggon_cluster"))
            .collect::<Vec<_>>()
            .join("\n")
    );

    // The rule: `cic` keeps its last agreed state and cannot be changed.
    let out = ldr.ctl(&["remap", "cic", "--to", "backup"]);
    assert!(!out.ok(), "{out:?}");
    assert!(
        out.stderr.contains(&format!(
            "service `cic` is defined differently on node `{odd_name}`"
        )) && out.stderr.contains("nothing was changed"),
        "{out:?}"
    );
    primary.stop();
    std::thread::sleep(Duration::from_secs(2));
    for i in 0..3 {
        assert_eq!(nodes.answer(i).0, vec![PRIMARY], "{}", nodes.answers());
    }

    // The config made to agree and reloaded: the mismatch ends and the
    // held-back failover happens.
    std::fs::write(nodes.config(odd), &base).unwrap();
    std::fs::write(&token_file, format!("{TOKEN}\n")).unwrap();
    // It still runs with the token it started with.
    let old_token = nodes.dir.path().join("old.token");
    std::fs::write(&old_token, "another-token-of-node-three-77\n").unwrap();
    let out = nodes.node(odd).ctl_with_token_file(&old_token, &["reload"]);
    assert!(out.ok(), "{out:?}");
    let agreed = poll(Duration::from_secs(10), || {
        let out = nodes.node(other).ctl(&["cluster"]);
        (!out.stdout.contains("CONFIG MISMATCH")).then_some(())
    });
    assert!(
        agreed.is_some(),
        "{:?}",
        nodes.node(other).ctl(&["cluster"])
    );
    nodes
        .wait_all_answer(BACKUP, Duration::from_secs(5))
        .unwrap_or_else(|| panic!("no failover once agreed: {}", nodes.answers()));
}
