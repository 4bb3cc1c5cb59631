//! docs/monitoring, checked: the Prometheus alerting rules pass `promtool
//! check rules` and their unit tests (`promtool test rules`), every query of
//! the Grafana dashboard parses as PromQL, and every `ggon_*` name the rules
//! and the dashboard use is one a real ggond exports. The names are taken
//! from `/metrics` of a single ggond made to export all it can (an https
//! target audited, a per-region service, a remap away from the preferred
//! target, a refused token, a query) and of a node of a two-node cluster on
//! etcd whose nodes disagree (cluster metrics exist only in cluster mode).

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use crate::certs::{leaf, test_ca};
use crate::support::cluster::{cic, Nodes, TOKEN};
use crate::support::etcd::EtcdCluster;
use crate::support::ggond::*;

const PROMTOOL: &str = "promtool";

fn dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("docs/monitoring")
}

/// Run promtool; a missing promtool fails the test with what to install
/// (scripts/test installs it).
fn promtool(args: &[&str]) -> (bool, String) {
    let out = Command::new(PROMTOOL)
        .args(args)
        .current_dir(dir())
        .output()
        .unwrap_or_else(|e| {
            panic!("cannot run {PROMTOOL} ({e}): install the Debian package prometheus")
        });
    let text =
        String::from_utf8_lossy(&out.stdout).to_string() + &String::from_utf8_lossy(&out.stderr);
    (out.status.success(), text)
}

/// Every `ggon_…` name in `text`, comment lines left out.
fn names_in(text: &str) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    for line in text.lines().filter(|l| !l.trim_start().starts_with('#')) {
        let mut rest = line;
        while let Some(at) = rest.find("ggon_") {
            let tail = &rest[at..];
            let end = tail
                .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
                .unwrap_or(tail.len());
            let starts_word = rest[..at]
                .chars()
                .last()
                .is_none_or(|c| !(c.is_ascii_alphanumeric() || c == '_'));
            if starts_word && end > "ggon_".len() {
                out.insert(tail[..end].to_string());
            }
            rest = &tail[end..];
        }
    }
    out
}

/// The sample names a `/metrics` text holds or announces: every sample's
/// name, and for each `# TYPE` the names its samples take (a counter's
/// `_total`, a histogram's `_bucket`, `_sum`, `_count`).
fn exported(text: &str) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    for line in text.lines() {
        if let Some(t) = line.strip_prefix("# TYPE ") {
            let mut w = t.split_whitespace();
            let (Some(name), Some(kind)) = (w.next(), w.next()) else {
                continue;
            };
            let suffixes: &[&str] = match kind {
                "counter" => &["_total"],
                "histogram" => &["_bucket", "_sum", "_count"],
                "info" => &["_info"],
                _ => &[""],
            };
            out.extend(suffixes.iter().map(|s| format!("{name}{s}")));
        } else if !line.starts_with('#') && !line.is_empty() {
            let end = line.find(['{', ' ']).unwrap_or(line.len());
            out.insert(line[..end].to_string());
        }
    }
    out
}

/// Every string under an `expr` key of the dashboard, and the template
/// variables' queries.
fn dashboard_queries(v: &serde_json::Value, out: &mut Vec<String>) {
    match v {
        serde_json::Value::Object(m) => {
            for (k, x) in m {
                match (k.as_str(), x) {
                    ("expr" | "query" | "definition", serde_json::Value::String(s)) => {
                        out.push(s.clone())
                    }
                    _ => dashboard_queries(x, out),
                }
            }
        }
        serde_json::Value::Array(a) => a.iter().for_each(|x| dashboard_queries(x, out)),
        _ => {}
    }
}

fn dashboard() -> Vec<String> {
    let text = std::fs::read_to_string(dir().join("ggon-dashboard.json")).unwrap();
    let v: serde_json::Value = serde_json::from_str(&text).expect("the dashboard is JSON");
    let mut out = Vec::new();
    dashboard_queries(&v, &mut out);
    out
}

/// A dashboard query as plain PromQL: Grafana's variables replaced by
/// values of the same kind.
fn plain_promql(q: &str) -> String {
    q.replace("$__rate_interval", "5m")
        .replace("$instance", ".*")
        .replace("$service", ".*")
}

#[test]
fn alerting_rules_pass_promtool_and_their_unit_tests() {
    let (ok, out) = promtool(&["check", "rules", "ggon-alerts.yml"]);
    assert!(ok, "promtool check rules:\n{out}");
    let (ok, out) = promtool(&["test", "rules", "ggon-alerts.test.yml"]);
    assert!(ok, "promtool test rules:\n{out}");

    // The dashboard's queries, as recording rules: promtool parses each.
    let queries: Vec<String> = dashboard()
        .iter()
        .filter(|q| !q.starts_with("label_values("))
        .map(|q| plain_promql(q))
        .collect();
    assert!(queries.len() >= 20, "dashboard queries found: {queries:?}");
    let mut rules = String::from("groups:\n  - name: dashboard\n    rules:\n");
    for (i, q) in queries.iter().enumerate() {
        let quoted = serde_json::to_string(q).unwrap();
        rules.push_str(&format!(
            "      - record: dashboard:q{i}\n        expr: {quoted}\n"
        ));
    }
    let tmp = tempfile::tempdir().unwrap();
    let file = tmp.path().join("dashboard-queries.yml");
    std::fs::write(&file, &rules).unwrap();
    let (ok, out) = promtool(&["check", "rules", file.to_str().unwrap()]);
    assert!(ok, "a dashboard query is not PromQL:\n{out}\n{rules}");
}

/// /metrics of a single ggond made to export every family it has.
fn single_node_metrics() -> String {
    let (ca, ca_key) = test_ca();
    let tls = leaf("cic.ggon.org", (-1, 90), &ca, &ca_key);
    let primary = HttpTarget::start(ip("127.0.0.225"));
    let other = HttpTarget::start(ip("127.0.0.226"));
    let dir = tempfile::tempdir().unwrap();
    let ca_file = dir.path().join("ca.pem");
    std::fs::write(&ca_file, ca.pem()).unwrap();
    let http = |url: &str| {
        format!("{{ type = \"http\", url = \"{url}\", interval = \"200ms\", timeout = \"500ms\", rise = 1 }}")
    };
    let config = format!(
        "[cert_audit]\ninterval = \"1s\"\nca_file = \"{ca}\"\n\n\
         [[region]]\nname = \"eu\"\nnets = [\"192.0.2.0/24\"]\n\n\
         [[service]]\nname = \"cic\"\nfqdn = \"cic.ggon.org\"\nttl = 30\n\n\
         [[service.target]]\nname = \"primary\"\naddresses = [\"127.0.0.225\"]\ncheck = {p}\n\n\
         [[service.target]]\nname = \"backup\"\naddresses = [\"127.0.0.1\"]\n\
         check = {{ type = \"https\", url = \"https://127.0.0.1:{port}/\", interval = \"200ms\", tls_verify = false, rise = 1 }}\n\n\
         [[service]]\nname = \"geo\"\nfqdn = \"geo.ggon.org\"\nactive = \"per-region\"\n\
         order = {{ eu = [\"ams\", \"nyc\"], default = [\"ams\", \"nyc\"] }}\n\n\
         [[service.target]]\nname = \"ams\"\naddresses = [\"127.0.0.225\"]\ncheck = {p}\n\n\
         [[service.target]]\nname = \"nyc\"\naddresses = [\"127.0.0.226\"]\ncheck = {o}\n",
        ca = ca_file.display(),
        p = http(&primary.url()),
        o = http(&other.url()),
        port = tls.addr.port(),
    );
    let mut env = Env::demo(&config);
    let g = env.start();
    g.wait_health("cic", "backup", true, secs(10.0));
    g.wait_health("geo", "nyc", true, secs(10.0));
    for args in [
        &["remap", "cic", "--to", "backup"][..],
        &["remap", "geo", "--to", "nyc", "--region", "eu"][..],
    ] {
        let out = g.ctl(args);
        assert!(out.ok(), "{args:?}: {}{}", out.stdout, out.stderr);
    }
    assert_eq!(g.a("cic.ggon.org."), vec![ip("127.0.0.1")]);
    let (code, _) = http_request(g.control, "GET", "/metrics", Some("not-the-token"), None);
    assert_eq!(code, 401);
    let token = g.token();
    let text = wait_for("a certificate audit of cic's backup", secs(20.0), || {
        let (_, text) = http_request(g.control, "GET", "/metrics", Some(&token), None);
        text.contains("ggon_cert_ready{service=\"cic\",target=\"backup\"}")
            .then_some(text)
    });
    // Off the preferred target: cic (its backup, the first after the
    // primary) and geo's eu region; geo's default region is not.
    for line in [
        "ggon_service_off_preferred{service=\"cic\"} 1",
        "ggon_region_off_preferred{service=\"geo\",region=\"eu\"} 1",
    ] {
        assert!(text.lines().any(|l| l == line), "{line}:\n{text}");
    }
    for absent in [
        "ggon_service_off_preferred{service=\"geo\"}",
        "ggon_region_off_preferred{service=\"geo\",region=\"default\"}",
    ] {
        assert!(!text.contains(absent), "{absent}:\n{text}");
    }
    text
}

/// /metrics of the leader of a two-node cluster whose second node has a
/// service the first has not (so the mismatch gauge has a sample).
fn cluster_node_metrics() -> String {
    let etcd = EtcdCluster::start(1);
    let p = HttpTarget::start(ip("127.0.0.227"));
    let b = HttpTarget::start(ip("127.0.0.228"));
    let same = cic(&p.url(), &b.url());
    let extra = format!(
        "{same}\n[[service]]\nname = \"web\"\nfqdn = \"web.ggon.org\"\n\n\
         [[service.target]]\nname = \"only\"\naddresses = [\"127.0.0.13\"]\n\
         check = {{ type = \"http\", url = \"{}\", interval = \"200ms\" }}\n",
        b.url()
    );
    let nodes = Nodes::start(&vec![etcd.endpoints(); 2], &[same, extra]);
    let leader = nodes
        .wait_leader(Duration::from_secs(20))
        .unwrap_or_else(|| panic!("no leader; logs:\n{}", nodes.logs()));
    let ctl = nodes.node(leader).control;
    wait_for(
        "the leader's /metrics with the mismatch",
        secs(20.0),
        || {
            let (code, text) = http_request(ctl, "GET", "/metrics", Some(TOKEN), None);
            (code == 200 && text.contains("ggon_cluster_config_mismatch{")).then_some(text)
        },
    )
}

#[test]
fn every_metric_in_the_rules_and_the_dashboard_is_one_ggond_exports() {
    let rules = std::fs::read_to_string(dir().join("ggon-alerts.yml")).unwrap();
    let in_rules = names_in(&rules);
    let in_dashboard: BTreeSet<String> = dashboard().iter().flat_map(|q| names_in(q)).collect();
    // The scan finds what is there (a scan that found nothing would pass).
    for (what, set, name) in [
        ("rules", &in_rules, "ggon_service_off_preferred"),
        ("rules", &in_rules, "ggon_cluster_config_mismatch"),
        ("rules", &in_rules, "ggon_etcd_nospace"),
        ("dashboard", &in_dashboard, "ggon_service_all_down"),
        ("dashboard", &in_dashboard, "ggon_etcd_db_size_bytes"),
    ] {
        assert!(
            set.contains(name),
            "{name} not found in the {what}: {set:?}"
        );
    }

    let single = single_node_metrics();
    let cluster = cluster_node_metrics();
    let mut known = exported(&single);
    known.extend(exported(&cluster));
    let missing = |used: &BTreeSet<String>| -> Vec<String> {
        used.iter()
            .filter(|n| !known.contains(*n))
            .cloned()
            .collect()
    };
    let (r, d) = (missing(&in_rules), missing(&in_dashboard));
    assert!(
        r.is_empty() && d.is_empty(),
        "not exported by ggond: in the rules {r:?}, in the dashboard {d:?}\n\
         --- single node ---\n{single}\n--- cluster node ---\n{cluster}"
    );
}

#[test]
fn the_name_scan_and_the_exported_set_read_what_they_should() {
    let text = "# TYPE ggon_remaps counter\nggon_remaps_total{service=\"cic\"} 1\n\
                # TYPE ggon_check_duration_seconds histogram\nggon_up 1\n";
    let e = exported(text);
    for n in [
        "ggon_remaps_total",
        "ggon_check_duration_seconds_bucket",
        "ggon_up",
    ] {
        assert!(e.contains(n), "{n}: {e:?}");
    }
    assert!(!e.contains("ggon_remaps"), "{e:?}");
    let n =
        names_in("# ggon_in_a_comment\nexpr: rate(ggon_a_total[5m]) / xggon_b + ggon_c{x=\"1\"}");
    let want: BTreeSet<String> = ["ggon_a_total", "ggon_c"].map(String::from).into();
    assert_eq!(n, want);
}
