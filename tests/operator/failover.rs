//! Failover end to end: real HTTP health targets, a real ggond, real DNS queries.

use std::time::{Duration, Instant};

use crate::support::ggond::*;
use serde_json::Value;

const CIC: &str = "cic.ggon.org.";

#[test]
fn fails_over_stays_on_backup_then_operator_remaps_back() {
    let mut primary = HttpTarget::start(ip("127.0.0.101"));
    let backup = HttpTarget::start(ip("127.0.0.102"));
    let mut env = Env::demo(&http_service(
        "cic",
        "cic.ggon.org",
        "manual",
        "1s",
        &[("primary", &primary), ("backup", &backup)],
    ));
    let d = env.start();
    let p = [ip("127.0.0.101")];
    let b = [ip("127.0.0.102")];

    // Both up: the primary is answered.
    d.wait_health("cic", "primary", true, secs(10.0));
    d.wait_health("cic", "backup", true, secs(10.0));
    assert_eq!(d.a(CIC), p);

    // Primary down: the backup is answered within 5 s.
    primary.stop();
    let t0 = Instant::now();
    d.wait_answer(CIC, &b, secs(5.0));
    assert!(t0.elapsed() < secs(5.0));
    assert!(d.log_text().contains("remap"), "the switch is logged");
    let s = d.service("cic");
    assert_eq!(s["active"], "backup");
    assert_eq!(s["mode"], "auto");

    // Primary back: failback is manual, so the backup stays.
    primary.restart();
    d.wait_health("cic", "primary", true, secs(10.0));
    d.assert_answer_holds(CIC, &b, secs(2.0));
    assert_eq!(d.service("cic")["active"], "backup");

    // The operator moves it back: the very next answer is the primary.
    let out = d.ctl(&["remap", "cic", "--to", "primary", "--reason", "failback"]);
    assert!(out.ok(), "{out:?}");
    assert_eq!(d.a(CIC), p, "first answer after the remap returns");
    let s = d.service("cic");
    assert_eq!(s["active"], "primary");
    assert_eq!(s["mode"], "manual");
}

#[test]
fn auto_failback_returns_to_the_primary_after_the_hold_down() {
    let mut primary = HttpTarget::start(ip("127.0.0.103"));
    let backup = HttpTarget::start(ip("127.0.0.104"));
    let mut env = Env::demo(&http_service(
        "cic",
        "cic.ggon.org",
        "auto",
        "1s",
        &[("primary", &primary), ("backup", &backup)],
    ));
    let d = env.start();
    let p = [ip("127.0.0.103")];
    let b = [ip("127.0.0.104")];
    d.wait_health("cic", "primary", true, secs(10.0));
    d.wait_health("cic", "backup", true, secs(10.0));
    assert_eq!(d.a(CIC), p);

    primary.stop();
    d.wait_answer(CIC, &b, secs(5.0));

    // Back up: healthy after `rise` checks, then the 1 s hold-down, then failback.
    primary.restart();
    let restarted = Instant::now();
    d.wait_health("cic", "primary", true, secs(10.0));
    let healthy_after = restarted.elapsed();
    d.wait_answer(CIC, &p, secs(10.0));
    let back_after = restarted.elapsed();
    // Rise needs two checks 200 ms apart, then the 1 s hold-down: never
    // sooner than 1.2 s after the restart (load only makes it later).
    assert!(
        back_after >= Duration::from_secs(1),
        "failback must wait for the hold-down: healthy after ~{healthy_after:?}, \
         answered the primary after {back_after:?}"
    );
    let s = d.service("cic");
    assert_eq!(s["active"], "primary");
    assert_eq!(s["mode"], "auto");
    assert!(
        d.log_text().contains("failback"),
        "the failback is logged with its cause"
    );
}

fn assert_shape(status: &Value) {
    let services = status["services"]
        .as_array()
        .unwrap_or_else(|| panic!("services is an array: {status}"));
    assert!(!services.is_empty());
    for s in services {
        assert!(s["name"].is_string(), "name: {s}");
        assert!(s["active"].is_string(), "active: {s}");
        let mode = s["mode"].as_str().unwrap_or_else(|| panic!("mode: {s}"));
        assert!(mode == "auto" || mode == "manual", "mode: {mode}");
        let targets = s["targets"]
            .as_array()
            .unwrap_or_else(|| panic!("targets: {s}"));
        assert!(!targets.is_empty());
        let names: Vec<&str> = targets.iter().filter_map(|t| t["name"].as_str()).collect();
        assert!(
            names.contains(&s["active"].as_str().unwrap()),
            "active is one of the targets: {s}"
        );
        for t in targets {
            assert!(t["name"].is_string(), "target name: {t}");
            let addrs = t["addresses"]
                .as_array()
                .unwrap_or_else(|| panic!("addresses: {t}"));
            assert!(!addrs.is_empty());
            for a in addrs {
                a.as_str()
                    .and_then(|a| a.parse::<std::net::IpAddr>().ok())
                    .unwrap_or_else(|| panic!("address is an IP string: {a}"));
            }
            assert!(
                t["healthy"].is_boolean() || t["healthy"].is_null(),
                "healthy: {t}"
            );
            assert!(
                t.get("last_check").is_some(),
                "last_check present (null before the first check): {t}"
            );
            assert!(
                t["last_check"].is_object() || t["last_check"].is_null(),
                "last_check: {t}"
            );
        }
    }
}

#[test]
fn status_json_has_the_documented_shape() {
    let primary = HttpTarget::start(ip("127.0.0.105"));
    let backup = HttpTarget::start(ip("127.0.0.106"));
    let mut env = Env::demo(&http_service(
        "cic",
        "cic.ggon.org",
        "manual",
        "1s",
        &[("primary", &primary), ("backup", &backup)],
    ));
    let d = env.start();
    assert_shape(&d.status());
    d.wait_health("cic", "primary", true, secs(10.0));
    d.wait_health("cic", "backup", true, secs(10.0));
    let status = d.status();
    assert_shape(&status);
    let s = d.service("cic");
    assert_eq!(s["name"], "cic");
    assert_eq!(s["active"], "primary");
    assert_eq!(s["mode"], "auto");
    let t = &s["targets"];
    assert_eq!(t[0]["name"], "primary");
    assert_eq!(t[0]["addresses"], serde_json::json!(["127.0.0.105"]));
    assert_eq!(t[0]["healthy"], true);
    assert!(t[0]["last_check"].is_object());
    assert_eq!(t[1]["name"], "backup");

    // `status SERVICE --json` narrows to one service.
    let out = d.ctl(&["status", "cic", "--json"]);
    assert!(out.ok(), "{out:?}");
    let v = out.json();
    assert_eq!(v["services"].as_array().map(Vec::len), Some(1));
    assert_shape(&v);

    // After a remap the mode is manual.
    let out = d.ctl(&["remap", "cic", "--to", "backup", "--json"]);
    assert!(out.ok(), "{out:?}");
    let s = d.service("cic");
    assert_eq!(s["mode"], "manual");
    assert_eq!(s["active"], "backup");
    assert_shape(&d.status());

    // The human-readable status mentions the service and its targets.
    let out = d.ctl(&["status"]);
    assert!(out.ok(), "{out:?}");
    for word in ["cic", "primary", "backup", "manual"] {
        assert!(out.stdout.contains(word), "{word} in {}", out.stdout);
    }
}

/// After every target was down, `backup2` passes its checks 90 ms before
/// the primary: the primary still gets its check round and wins, without
/// an operator (failback is manual, so a move to backup2 would stick).
#[test]
fn after_all_down_the_primary_wins_over_a_faster_backup2() {
    let mut primary = HttpTarget::start(ip("127.0.0.107"));
    let mut backup = HttpTarget::start(ip("127.0.0.108"));
    let mut backup2 = HttpTarget::start(ip("127.0.0.109"));
    let mut env = Env::demo(&http_service(
        "cic",
        "cic.ggon.org",
        "manual",
        "1s",
        &[
            ("primary", &primary),
            ("backup", &backup),
            ("backup2", &backup2),
        ],
    ));
    primary.stop();
    backup.stop();
    backup2.stop();
    let d = env.start();
    for t in ["primary", "backup", "backup2"] {
        d.wait_health("cic", t, false, secs(10.0));
    }
    assert!(d.service("cic")["all_down"].as_bool().unwrap_or(false));

    backup2.restart();
    std::thread::sleep(Duration::from_millis(90));
    primary.restart();
    backup.restart();
    d.wait_health("cic", "primary", true, secs(10.0));
    d.wait_health("cic", "backup2", true, secs(10.0));
    // A round is 200 ms + 2 × 20 ms + 200 ms here: well past it, the
    // answer is the primary's and has never been backup2's.
    d.assert_answer_holds(CIC, &[ip("127.0.0.107")], secs(1.5));
    assert_eq!(d.service("cic")["active"], "primary");
    let log = d.log_text();
    assert!(
        !log.contains("to=backup"),
        "no move away from the primary:\n{log}"
    );
}
