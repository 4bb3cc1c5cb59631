//! Operator actions against a running ggond: remap, pins across restarts,
//! release, refusals, control-API authentication, serials, fail-open.

use crate::support::ggond::*;
use hickory_proto::rr::RecordType;

const CIC: &str = "cic.ggon.org.";

/// primary + backup HTTP targets on the two given addresses, manual failback.
fn setup(p: &str, b: &str) -> (HttpTarget, HttpTarget, Env) {
    let primary = HttpTarget::start(ip(p));
    let backup = HttpTarget::start(ip(b));
    let env = Env::demo(&http_service(
        "cic",
        "cic.ggon.org",
        "manual",
        "1s",
        &[("primary", &primary), ("backup", &backup)],
    ));
    (primary, backup, env)
}

fn both_healthy(d: &Ggond) {
    d.wait_health("cic", "primary", true, secs(10.0));
    d.wait_health("cic", "backup", true, secs(10.0));
}

#[test]
fn remap_is_immediate_survives_a_restart_and_release_returns_to_auto() {
    let (_primary, _backup, mut env) = setup("127.0.0.111", "127.0.0.112");
    let p = [ip("127.0.0.111")];
    let b = [ip("127.0.0.112")];
    let mut d = env.start();
    both_healthy(&d);
    assert_eq!(d.a(CIC), p);

    let out = d.ctl(&["remap", "cic", "--to", "backup", "--reason", "maintenance"]);
    assert!(out.ok(), "{out:?}");
    assert!(out.stdout.contains("backup"), "{out:?}");
    assert_eq!(d.a(CIC), b, "the first answer after remap returns");
    let s = d.service("cic");
    assert_eq!(s["mode"], "manual");
    assert_eq!(s["pin"]["reason"], "maintenance");

    let serial_before = soa_serial(&ask_udp(d.dns, &query("ggon.org.", RecordType::SOA)));

    // Stop (SIGTERM) and start again on the same state dir.
    let status = d.stop();
    assert!(status.success(), "clean exit on SIGTERM: {status}");
    assert!(d.log_text().contains("state saved"), "{}", d.log_text());
    let d = env.start();
    // No flap: the very first answers, before any check result, are the backup.
    for _ in 0..5 {
        assert_eq!(d.a(CIC), b);
    }
    let s = d.service("cic");
    assert_eq!(s["active"], "backup");
    assert_eq!(s["mode"], "manual");
    let serial_after = soa_serial(&ask_udp(d.dns, &query("ggon.org.", RecordType::SOA)));
    assert!(
        serial_after > serial_before,
        "the serial never goes back across a restart: {serial_before} -> {serial_after}"
    );
    // ...and it stays pinned once checks say the primary is healthy.
    both_healthy(&d);
    d.assert_answer_holds(CIC, &b, secs(1.0));

    // Release: a fresh choice, the most preferred healthy target.
    let out = d.ctl(&["release", "cic", "--json"]);
    assert!(out.ok(), "{out:?}");
    let v = out.json();
    assert_eq!(v["to"], "primary");
    assert_eq!(v["mode"], "auto");
    assert_eq!(d.a(CIC), p);
    let s = d.service("cic");
    assert_eq!(s["mode"], "auto");
    assert!(s["pin"].is_null(), "{s}");
}

#[test]
fn remap_to_an_unhealthy_target_needs_force() {
    let (_primary, mut backup, mut env) = setup("127.0.0.113", "127.0.0.114");
    let p = [ip("127.0.0.113")];
    let b = [ip("127.0.0.114")];
    let d = env.start();
    both_healthy(&d);
    backup.stop();
    d.wait_health("cic", "backup", false, secs(10.0));

    let out = d.ctl(&["remap", "cic", "--to", "backup"]);
    assert!(!out.ok(), "refused: {out:?}");
    assert!(out.stderr.contains("--force"), "{out:?}");
    assert!(out.stderr.contains("unhealthy"), "{out:?}");
    assert_eq!(d.a(CIC), p, "nothing changed");
    assert_eq!(d.service("cic")["mode"], "auto");

    let out = d.ctl(&["remap", "cic", "--to", "backup", "--force"]);
    assert!(out.ok(), "{out:?}");
    assert_eq!(d.a(CIC), b);
    assert_eq!(d.service("cic")["mode"], "manual");
}

#[test]
fn unknown_service_or_target_is_a_clear_error() {
    let (_primary, _backup, mut env) = setup("127.0.0.115", "127.0.0.116");
    let d = env.start();
    let cases: [(&[&str], &str); 4] = [
        (&["remap", "nosuch", "--to", "primary"], "nosuch"),
        (&["remap", "cic", "--to", "nowhere"], "nowhere"),
        (&["release", "nosuch"], "nosuch"),
        (&["status", "nosuch"], "nosuch"),
    ];
    for (args, name) in cases {
        let out = d.ctl(args);
        assert!(!out.ok(), "{args:?}: {out:?}");
        assert!(
            out.stderr.contains(&format!("`{name}`")),
            "{args:?}: the message names {name}: {out:?}"
        );
        assert!(out.stderr.contains("no "), "{args:?}: {out:?}");
    }
    // The unknown target message lists the real ones.
    let out = d.ctl(&["remap", "cic", "--to", "nowhere"]);
    assert!(out.stderr.contains("primary, backup"), "{out:?}");
    assert_eq!(d.service("cic")["mode"], "auto");
}

#[test]
fn control_api_requires_the_token() {
    let (_primary, _backup, mut env) = setup("127.0.0.117", "127.0.0.118");
    let d = env.start();
    let p = [ip("127.0.0.117")];
    both_healthy(&d);

    let meta = std::fs::metadata(&d.token_file).expect("token file created");
    use std::os::unix::fs::PermissionsExt;
    assert_eq!(meta.permissions().mode() & 0o777, 0o600, "token file mode");

    let (code, _) = http_request(d.control, "GET", "/v1/status", None, None);
    assert_eq!(code, 401, "no token");
    let wrong = "0123456789abcdef0123456789abcdef";
    let (code, _) = http_request(d.control, "GET", "/v1/status", Some(wrong), None);
    assert_eq!(code, 401, "wrong token");
    let (code, _) = http_request(
        d.control,
        "POST",
        "/v1/services/cic/remap",
        Some(wrong),
        Some(r#"{"to":"backup","force":true}"#),
    );
    assert_eq!(code, 401, "wrong token on a change");
    assert_eq!(d.a(CIC), p, "a refused remap changes nothing");
    let token = d.token();
    let (code, body) = http_request(d.control, "GET", "/v1/status", Some(&token), None);
    assert_eq!(code, 200, "{body}");
    assert!(body.contains("\"services\""), "{body}");

    assert!(
        d.wait_log("control call refused", secs(2.0)),
        "refusals are logged: {}",
        d.log_text()
    );
    let refusals = d.log_text().matches("control call refused").count();
    assert!(refusals >= 3, "each refusal is logged ({refusals})");

    // ggon-ctl with the wrong token fails and says why.
    let bad = env.dir.path().join("wrong.token");
    std::fs::write(&bad, format!("{wrong}\n")).unwrap();
    let out = d.ctl_with_token_file(&bad, &["status"]);
    assert!(!out.ok(), "{out:?}");
    assert!(out.stderr.contains("401"), "{out:?}");
}

#[test]
fn soa_serial_increases_after_a_remap() {
    let (_primary, _backup, mut env) = setup("127.0.0.119", "127.0.0.120");
    let d = env.start();
    both_healthy(&d);
    let serial = |d: &Ggond| soa_serial(&ask_udp(d.dns, &query("ggon.org.", RecordType::SOA)));
    let before = serial(&d);
    assert!(
        before >= 2026112201,
        "not below the zone file's serial: {before}"
    );
    let out = d.ctl(&["remap", "cic", "--to", "backup"]);
    assert!(out.ok(), "{out:?}");
    let after = serial(&d);
    assert!(after > before, "serial {before} -> {after}");
    // Over TCP too (same snapshot).
    let tcp = soa_serial(&ask_tcp(d.dns, &query("ggon.org.", RecordType::SOA)));
    assert_eq!(tcp, after);
    let out = d.ctl(&["remap", "cic", "--to", "primary"]);
    assert!(out.ok(), "{out:?}");
    assert!(serial(&d) > after);
}

#[test]
fn all_targets_down_keeps_answering_and_raises_the_alarm() {
    let (mut primary, mut backup, mut env) = setup("127.0.0.121", "127.0.0.122");
    let b = [ip("127.0.0.122")];
    let d = env.start();
    both_healthy(&d);
    primary.stop();
    d.wait_answer(CIC, &b, secs(10.0));
    backup.stop();
    d.wait_health("cic", "backup", false, secs(10.0));
    assert!(
        d.wait_log("ALARM", secs(3.0)),
        "ALARM logged: {}",
        d.log_text()
    );
    // Fail-open: the current target is still answered, never an empty answer.
    d.assert_answer_holds(CIC, &b, secs(1.0));
    let s = d.service("cic");
    assert_eq!(s["all_down"], true);
    assert_eq!(s["active"], "backup");
    let out = d.ctl(&["status"]);
    assert!(out.stdout.contains("ALARM"), "{out:?}");

    // The most preferred target that comes back takes over.
    primary.restart();
    d.wait_answer(CIC, &[ip("127.0.0.121")], secs(10.0));
    assert!(d.wait_log("alarm cleared", secs(2.0)));
}
