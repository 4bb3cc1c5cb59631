//! etcd at its space quota: a real three-member etcd cluster with
//! `--quota-backend-bytes` of 16 MiB, filled with junk under another prefix
//! until it raises NOSPACE, under two real ggond nodes. DNS keeps
//! answering; the alarm is reported (log, `status`, `/metrics`); a remap
//! is refused with an error saying nothing was changed; after the junk is
//! deleted, the revision history compacted, every member defragmented and
//! the alarm disarmed, remaps work again and every acknowledged change is
//! still there.

use std::net::Ipv4Addr;
use std::time::{Duration, Instant};

use serde_json::json;

use crate::support::cluster::{cic, Nodes};
use crate::support::etcd::{b64, etcd_post, json_u64, EtcdCluster};
use crate::support::ggond::{http_request, ip, poll, HttpTarget};

const PRIMARY: Ipv4Addr = Ipv4Addr::new(127, 0, 0, 11);
const BACKUP: Ipv4Addr = Ipv4Addr::new(127, 0, 0, 12);
const QUOTA: &str = "16777216";
/// The junk's prefix: nothing of ggon's.
const JUNK: &str = "/junk/";

/// Put 512 KiB values under [`JUNK`] until etcd refuses with NOSPACE;
/// how many went in.
fn fill(endpoint: &str) -> usize {
    let value = b64(&vec![b'x'; 512 * 1024]);
    for n in 0..400 {
        let key = b64(format!("{JUNK}{n:05}").as_bytes());
        match etcd_post(endpoint, "/v3/kv/put", &json!({"key": key, "value": value})) {
            Ok(_) => {}
            Err(e) if e.contains("database space exceeded") => return n,
            // A put that timed out while the backend grew: try the next.
            Err(e) => eprintln!("junk put {n}: {e}"),
        }
    }
    panic!("etcd never reached its {QUOTA}-byte quota");
}

/// What an operator runs (docs/cluster.md): delete the junk, compact to
/// the current revision, defragment every member, disarm the alarm.
fn recover(etcd: &EtcdCluster) {
    let ep = etcd.endpoint(0);
    let deleted = etcd_post(
        &ep,
        "/v3/kv/deleterange",
        &json!({"key": b64(JUNK.as_bytes()), "range_end": b64(b"/junk0")}),
    )
    .expect("delete the junk (deletes pass under NOSPACE)");
    eprintln!("deleted {} junk keys", json_u64(&deleted["deleted"]));
    let rev = json_u64(&deleted["header"]["revision"]);
    etcd_post(
        &ep,
        "/v3/kv/compaction",
        &json!({"revision": rev.to_string(), "physical": true}),
    )
    .expect("compact");
    for ep in etcd.endpoints() {
        etcd_post(&ep, "/v3/maintenance/defragment", &json!({})).expect("defragment");
    }
    let alarms = etcd_post(&ep, "/v3/maintenance/alarm", &json!({"action": "GET"})).unwrap();
    for a in alarms["alarms"].as_array().into_iter().flatten() {
        etcd_post(
            &ep,
            "/v3/maintenance/alarm",
            &json!({"action": "DEACTIVATE", "memberID": a["memberID"], "alarm": "NOSPACE"}),
        )
        .expect("disarm");
    }
}

fn nospace_metric(nodes: &Nodes, i: usize) -> Option<String> {
    let g = nodes.node(i);
    let (code, body) = http_request(g.control, "GET", "/metrics", Some(&g.token()), None);
    assert_eq!(code, 200, "{body}");
    body.lines()
        .find_map(|l| l.strip_prefix("ggon_etcd_nospace "))
        .map(|v| v.trim().to_string())
}

#[test]
fn etcd_at_its_quota_answers_stay_changes_are_refused_and_it_recovers_intact() {
    let etcd = EtcdCluster::start_with(3, &["--quota-backend-bytes", QUOTA]);
    let primary = HttpTarget::start(ip("127.0.0.11"));
    let backup = HttpTarget::start(ip("127.0.0.12"));
    let svc = cic(&primary.url(), &backup.url());
    let nodes = Nodes::start(&[etcd.endpoints(), etcd.endpoints()], &[svc.clone(), svc]);
    let leader = nodes
        .wait_leader(Duration::from_secs(10))
        .unwrap_or_else(|| panic!("no leader:\n{}", nodes.logs()));
    let follower = 1 - leader;
    nodes
        .wait_all_answer(PRIMARY, Duration::from_secs(10))
        .unwrap_or_else(|| panic!("{}", nodes.answers()));
    // An acknowledged change before the quota is reached.
    let out = nodes.node(follower).ctl(&[
        "remap",
        "cic",
        "--to",
        "backup",
        "--reason",
        "before the quota",
    ]);
    assert!(out.ok(), "{out:?}");
    nodes
        .wait_all_answer(BACKUP, Duration::from_secs(3))
        .unwrap();

    let t = Instant::now();
    let puts = fill(&etcd.endpoint(0));
    eprintln!(
        "NOSPACE after {puts} junk puts of 512 KiB ({:?})",
        t.elapsed()
    );

    // Answers stay.
    for i in 0..2 {
        assert_eq!(nodes.answer(i).0, vec![BACKUP], "{}", nodes.answers());
    }
    // The alarm is reported on every node: log, status, metric.
    let t = Instant::now();
    for i in 0..2 {
        let g = nodes.node(i);
        assert!(
            g.wait_log(
                "ALARM: etcd is out of space (NOSPACE)",
                Duration::from_secs(40)
            ),
            "node{} logged no NOSPACE alarm:\n{}",
            i + 1,
            nodes.logs()
        );
        let seen = poll(Duration::from_secs(5), || {
            let s = nodes.status(i)?;
            (s["cluster"]["etcd"]["nospace"] == true).then_some(())
        });
        assert!(seen.is_some(), "node{}: {:?}", i + 1, nodes.status(i));
        assert_eq!(nospace_metric(&nodes, i).as_deref(), Some("1"));
        for cmd in ["status", "cluster"] {
            let out = nodes.node(i).ctl(&[cmd]);
            assert!(
                out.stdout.contains("ALARM: etcd is out of space"),
                "{cmd}: {out:?}"
            );
        }
    }
    eprintln!(
        "alarm reported on both nodes {:?} after NOSPACE",
        t.elapsed()
    );
    // A change is refused, clearly, and changes nothing.
    for i in [leader, follower] {
        let out = nodes
            .node(i)
            .ctl(&["remap", "cic", "--to", "primary", "--reason", "refused"]);
        eprintln!("remap under NOSPACE on node{}: {out:?}", i + 1);
        assert!(!out.ok(), "{out:?}");
        assert!(
            out.stderr.contains("NOSPACE") || out.stderr.contains("space"),
            "{out:?}"
        );
        assert!(out.stderr.contains("nothing was changed"), "{out:?}");
        assert_eq!(nodes.answer(i).0, vec![BACKUP]);
    }
    std::thread::sleep(Duration::from_secs(1));
    for i in 0..2 {
        assert_eq!(nodes.answer(i).0, vec![BACKUP], "{}", nodes.answers());
    }

    recover(&etcd);
    let t = Instant::now();
    let leader = nodes
        .wait_leader(Duration::from_secs(10))
        .unwrap_or_else(|| panic!("no leader after recovery:\n{}", nodes.logs()));
    let changed = poll(Duration::from_secs(15), || {
        let out = nodes.node(leader).ctl(&[
            "remap",
            "cic",
            "--to",
            "primary",
            "--reason",
            "after the quota",
        ]);
        out.ok().then_some(())
    });
    assert!(changed.is_some(), "remaps never resumed:\n{}", nodes.logs());
    eprintln!(
        "remaps resumed {:?} after the alarm was disarmed",
        t.elapsed()
    );
    nodes
        .wait_all_answer(PRIMARY, Duration::from_secs(3))
        .unwrap_or_else(|| panic!("{}", nodes.answers()));
    for i in 0..2 {
        let cleared = poll(Duration::from_secs(10), || {
            let s = nodes.status(i)?;
            (s["cluster"]["etcd"]["nospace"] == false).then_some(())
        });
        assert!(cleared.is_some(), "node{}: {:?}", i + 1, nodes.status(i));
        assert!(
            nodes
                .node(i)
                .log_text()
                .contains("etcd's NOSPACE alarm is cleared"),
            "node{}:\n{}",
            i + 1,
            nodes.logs()
        );
        assert_eq!(nospace_metric(&nodes, i).as_deref(), Some("0"));
        let out = nodes.node(i).ctl(&["cluster"]);
        assert!(out.ok() && !out.stdout.contains("ALARM"), "{out:?}");
        // Every acknowledged change is in the shared history, the refused one is not.
        let hist = nodes.node(i).ctl(&["history", "--json"]).stdout;
        assert_eq!(hist.matches("before the quota").count(), 1, "{hist}");
        assert_eq!(hist.matches("after the quota").count(), 1, "{hist}");
        assert_eq!(hist.matches("\"refused\"").count(), 0, "{hist}");
    }
}
