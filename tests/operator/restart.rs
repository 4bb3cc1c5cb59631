//! Deadlines across restarts, on a real ggond killed with -9: a drill
//! restarted before its end goes on and ends on time; one whose end passed
//! while ggond was down is reverted at start, with a history entry saying
//! so; a timed pin and a timed drain likewise.

use std::time::{Duration, Instant};

use crate::support::reliability::*;

fn post(d: &Daemon, path: &str, body: &str) {
    let (code, text) = http(d.control, "POST", path, Some(OPERATOR_TOKEN), Some(body)).unwrap();
    assert_eq!(code, 200, "{path}: {text}");
}

fn history(d: &Daemon) -> Vec<serde_json::Value> {
    let (code, text) = http(d.control, "GET", "/v1/history", Some(OPERATOR_TOKEN), None).unwrap();
    assert_eq!(code, 200, "{text}");
    let v: serde_json::Value = serde_json::from_str(&text).unwrap();
    v["entries"].as_array().unwrap().clone()
}

/// The first entry of `kind` whose reason mentions the downtime.
fn late_entry(d: &Daemon, kind: &str) -> Option<String> {
    history(d)
        .into_iter()
        .filter(|e| e["kind"] == kind)
        .filter_map(|e| e["reason"].as_str().map(str::to_string))
        .find(|r| r.contains("while ggond was down"))
}

/// Wait (bounded) until DNS answers `addr` for cic.
fn wait_answer(d: &Daemon, addr: &str, limit: Duration) -> Option<Duration> {
    let start = Instant::now();
    while start.elapsed() < limit {
        if cic_address(d.dns) == addr {
            return Some(start.elapsed());
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    None
}

/// A drill moves the service only once backup has been seen healthy.
fn wait_backup_healthy(d: &Daemon) {
    let start = Instant::now();
    while start.elapsed() < Duration::from_secs(10) {
        let s = d.status();
        if s["services"][0]["targets"][1]["healthy"] == true {
            return;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    panic!("backup not healthy within 10 s");
}

#[test]
fn a_drill_goes_on_after_a_restart_and_ends_at_its_deadline() {
    let env = Env::new("");
    let mut d = env.start();
    wait_backup_healthy(&d);
    post(
        &d,
        "/v1/services/cic/drill",
        r#"{"fail":"primary","for":"4s"}"#,
    );
    let started = Instant::now();
    assert_eq!(cic_address(d.dns), address_of("backup"));
    d.kill9();
    let d = env.start();
    assert_eq!(cic_address(d.dns), address_of("backup"), "drill forgotten");
    assert_eq!(d.status()["services"][0]["drill"][0], "primary");
    let back = wait_answer(&d, address_of("primary"), Duration::from_secs(10))
        .map(|_| started.elapsed())
        .expect("the drill never ended");
    eprintln!("drill of 4 s with a kill -9 and restart: reverted after {back:?}");
    assert!(
        back >= Duration::from_secs(3) && back < Duration::from_secs(6),
        "reverted after {back:?}, deadline 4 s"
    );
}

#[test]
fn deadlines_that_passed_while_down_are_applied_at_start() {
    let env = Env::new("");
    let mut d = env.start();
    wait_backup_healthy(&d);
    post(
        &d,
        "/v1/services/cic/drill",
        r#"{"fail":"primary","for":"1s"}"#,
    );
    assert_eq!(cic_address(d.dns), address_of("backup"));
    d.kill9();
    std::thread::sleep(Duration::from_millis(2100));
    let mut d = env.start();
    assert_eq!(
        cic_address(d.dns),
        address_of("primary"),
        "drill over while down: reverted before the first answer"
    );
    let why = late_entry(&d, "drill_end").expect("history says the drill ended while down");
    eprintln!("history: {why}");

    // A timed pin and a timed drain, both due while ggond is down.
    post(
        &d,
        "/v1/services/cic/remap",
        r#"{"to":"backup2","for":"1s","reason":"test","force":true}"#,
    );
    post(
        &d,
        "/v1/services/cic/targets/primary/drain",
        r#"{"for":"1s","reason":"test"}"#,
    );
    assert_eq!(cic_address(d.dns), address_of("backup2"));
    d.kill9();
    std::thread::sleep(Duration::from_millis(2100));
    let d = env.start();
    assert_eq!(
        cic_address(d.dns),
        address_of("primary"),
        "pin and drain over while down"
    );
    let s = d.status();
    assert!(s["services"][0]["pin"].is_null(), "{s}");
    assert!(late_entry(&d, "expire").is_some(), "{:?}", history(&d));
    assert!(late_entry(&d, "undrain").is_some(), "{:?}", history(&d));
}
