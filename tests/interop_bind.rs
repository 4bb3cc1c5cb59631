//! Interop with real BIND 9 (`named`, `dig`, `nsupdate`) for issue 3: ggond
//! publishing to an existing primary over RFC 2136, accepting TSIG-signed
//! UPDATEs itself, and feeding secondaries with NOTIFY + AXFR/IXFR.
//!
//! `bind_harness_selfcheck` runs the same checks against BIND alone, so when a
//! ggond test fails the harness and the expectations are known to be right.
//! Every wait is bounded; each test stays well under a minute.

#[path = "support/mod.rs"]
mod support;

use std::path::Path;
use std::time::{Duration, Instant};

use serde_json::Value;
use support::bind::*;

/// The cic service: three targets whose checks always pass (exec `true`), so
/// health never moves it and only operator remaps do.
const CIC_SERVICE: &str = r#"
[[service]]
name = "cic"
fqdn = "cic.ggon.org"
ttl = 30

[[service.target]]
name = "primary"
addresses = ["127.0.0.11"]
check = { type = "exec", command = ["true"], interval = "1s" }

[[service.target]]
name = "backup"
addresses = ["127.0.0.12"]
check = { type = "exec", command = ["true"], interval = "1s" }

[[service.target]]
name = "backup2"
addresses = ["127.0.0.13"]
check = { type = "exec", command = ["true"], interval = "1s" }
"#;

const PRIMARY: &str = "127.0.0.11";
const BACKUP: &str = "127.0.0.12";
const BACKUP2: &str = "127.0.0.13";

fn secs(s: u64) -> Duration {
    Duration::from_secs(s)
}

/// Copy the shipped zone into `dir` and return its path.
fn zone_copy(dir: &Path) -> String {
    let p = dir.join("ggon.org.zone");
    std::fs::write(&p, zone_text()).expect("write zone copy");
    p.display().to_string()
}

/// ggond config for zone mode rfc2136 against `primary`, with `key_toml` the
/// [[key]] table(s) and `key` the key named in the zone.
fn rfc2136_config(dir: &Path, key_toml: &str, key: &str, primary: u16) -> String {
    format!(
        r#"{key_toml}
[[zone]]
origin = "ggon.org"
file = "{zone}"
mode = "rfc2136"
primary = "127.0.0.1:{primary}"
key = "{key}"
serve = false
reconcile = "5m"
{CIC_SERVICE}"#,
        zone = zone_copy(dir),
    )
}

fn key_file_toml(name: &str, file: &Path) -> String {
    format!(
        "[[key]]\nname = \"{name}\"\nfile = \"{}\"\n",
        file.display()
    )
}

fn key_inline_toml(k: &TsigKey) -> String {
    format!(
        "[[key]]\nname = \"{}\"\nalgorithm = \"{}\"\nsecret = \"{}\"\n",
        k.name, k.algorithm, k.secret
    )
}

fn diag(g: &Ggond, binds: &[&Bind]) -> String {
    let mut s = format!("\nggond {}\n", g.log_tail());
    for b in binds {
        s += &format!("named (port {}) {}\n", b.port, b.log_tail());
    }
    s
}

/// publishers[0] of `status --json`, or a panic naming what is missing.
fn publisher(g: &Ggond) -> Value {
    let st = g.status();
    match st.get("publishers").and_then(Value::as_array) {
        Some(p) if !p.is_empty() => p[0].clone(),
        _ => panic!(
            "status --json has no non-empty top-level `publishers` array (zone mode rfc2136): {st:#}{}",
            diag(g, &[])
        ),
    }
}

/// Poll publishers[0] until `pred` holds (bounded); the last value seen on failure.
fn wait_publisher(
    g: &Ggond,
    limit: Duration,
    pred: impl Fn(&Value) -> bool,
) -> Result<Value, Value> {
    let mut last = Value::Null;
    poll(limit, Duration::from_millis(200), || {
        let p = publisher(g);
        let hit = pred(&p);
        last = p.clone();
        hit.then_some(p)
    })
    .ok_or(last)
}

fn last_error(p: &Value) -> String {
    p["last_error"].as_str().unwrap_or("").to_string()
}

// ---------------------------------------------------------------------------
// checks shared by the BIND self-check and the ggond tests

/// AXFR from 127.0.0.1 works; from 127.0.0.2 (unsigned) it is refused.
/// Returns the allowed transfer's records.
fn check_axfr_acl(port: u16, who: &str) -> Vec<Rr> {
    let out = dig(port, &["-b", "127.0.0.1", ZONE, "AXFR"]);
    let recs = parse_records(&out);
    assert!(
        recs.len() >= 3,
        "{who}: AXFR from 127.0.0.1 (allowed) returned no zone:\n{out}"
    );
    assert_eq!(
        recs[0].rtype, "SOA",
        "{who}: AXFR must start with the SOA:\n{out}"
    );
    assert_eq!(
        recs.last().map(|r| r.rtype.as_str()),
        Some("SOA"),
        "{who}: AXFR must end with the SOA:\n{out}"
    );
    assert_eq!(
        recs.iter().filter(|r| r.rtype == "SOA").count(),
        2,
        "{who}: AXFR has the SOA exactly twice (first and last):\n{out}"
    );
    for (name, rtype, rdata) in [
        ("mail.ggon.org.", "A", "127.0.0.25"),
        ("ggon.org.", "MX", "10 mail.ggon.org."),
        ("wiki.ggon.org.", "AAAA", "::1"),
        ("*.apps.ggon.org.", "A", "127.0.0.90"),
    ] {
        assert!(
            recs.iter()
                .any(|r| r.name == name && r.rtype == rtype && r.rdata == rdata),
            "{who}: AXFR lacks {name} {rtype} {rdata}:\n{out}"
        );
    }

    let denied = dig(port, &["-b", "127.0.0.2", ZONE, "AXFR"]);
    assert!(
        denied.contains("Transfer failed") || denied.contains("REFUSED"),
        "{who}: AXFR from 127.0.0.2 (not in allow_transfer) must be refused:\n{denied}"
    );
    assert!(
        parse_records(&denied).is_empty(),
        "{who}: a refused AXFR must not carry records:\n{denied}"
    );
    recs
}

/// AXFR from 127.0.0.2 (not in the address ACL) signed with a transfer key works.
fn check_axfr_signed(port: u16, xfr_key: &TsigKey, who: &str) {
    let key = xfr_key.file.to_str().expect("utf-8 path");
    let signed = dig(port, &["-b", "127.0.0.2", "-k", key, ZONE, "AXFR"]);
    let srecs = parse_records(&signed);
    assert!(
        srecs.len() >= 3 && srecs[0].rtype == "SOA" && srecs.last().unwrap().rtype == "SOA",
        "{who}: AXFR from 127.0.0.2 signed with transfer key `{}` must be allowed:\n{signed}",
        xfr_key.name
    );
}

/// IXFR=`old` after changes old_addr → … → new_addr is incremental: it opens
/// with the current SOA then the SOA at `old`, carries the removed and the
/// added cic A records, and none of the unchanged zone.
fn check_ixfr_incremental(port: u16, old: u32, old_addr: &str, new_addr: &str, who: &str) {
    let cur = soa_serial(port).expect("current serial");
    assert!(cur != old, "{who}: serial did not change ({old})");
    let q = format!("IXFR={old}");
    let out = dig(port, &["-b", "127.0.0.1", "+tcp", ZONE, &q]);
    let recs = parse_records(&out);
    assert!(recs.len() >= 4, "{who}: {q} returned too little:\n{out}");
    assert_eq!(
        recs[0].soa_serial(),
        Some(cur),
        "{who}: {q} must open with the current SOA ({cur}):\n{out}"
    );
    assert_eq!(
        recs[1].soa_serial(),
        Some(old),
        "{who}: {q} must be incremental (second record = SOA {old}), not a full zone:\n{out}"
    );
    assert_eq!(
        recs.last().and_then(Rr::soa_serial),
        Some(cur),
        "{who}: {q} must close with the current SOA ({cur}):\n{out}"
    );
    for addr in [old_addr, new_addr] {
        assert!(
            recs.iter()
                .any(|r| r.name == "cic.ggon.org." && r.rtype == "A" && r.rdata == addr),
            "{who}: {q} lacks cic.ggon.org A {addr}:\n{out}"
        );
    }
    assert!(
        !recs.iter().any(|r| r.name == "mail.ggon.org."),
        "{who}: {q} carries unchanged records (mail.ggon.org), i.e. the whole zone:\n{out}"
    );
}

/// IXFR from a serial older than anything journaled gets the full zone
/// (AXFR-style: SOA, the records, SOA).
fn check_ixfr_fallback(port: u16, too_old: u32, who: &str) {
    let cur = soa_serial(port).expect("current serial");
    let q = format!("IXFR={too_old}");
    let out = dig(port, &["-b", "127.0.0.1", "+tcp", ZONE, &q]);
    let recs = parse_records(&out);
    assert!(recs.len() >= 3, "{who}: {q} returned too little:\n{out}");
    assert_eq!(recs[0].soa_serial(), Some(cur), "{who}: {q}:\n{out}");
    assert_ne!(
        recs[1].rtype, "SOA",
        "{who}: {q} (older than the journal) must fall back to the full zone:\n{out}"
    );
    assert_eq!(
        recs.last().and_then(Rr::soa_serial),
        Some(cur),
        "{who}: {q}:\n{out}"
    );
    assert!(
        recs.iter()
            .any(|r| r.name == "mail.ggon.org." && r.rtype == "A"),
        "{who}: {q} full-zone fallback lacks mail.ggon.org:\n{out}"
    );
}

/// Wait for the serial at `port` to move past `old`; the new serial.
fn wait_serial_past(port: u16, old: u32, limit: Duration) -> Option<u32> {
    poll(limit, Duration::from_millis(50), || {
        soa_serial(port).filter(|s| *s != old)
    })
}

fn nsupdate_cic(port: u16, key: &TsigKey, addr: &str) -> Out {
    nsupdate(
        Some(&key.file),
        &update_script(
            port,
            &[
                "update delete cic.ggon.org A",
                &format!("update add cic.ggon.org 30 A {addr}"),
            ],
        ),
    )
}

// ---------------------------------------------------------------------------
// the harness against BIND alone

/// BIND primary + BIND secondary: proves the key files, named configs,
/// nsupdate/dig runners, NOTIFY speed, TSIG-signed transfers,
/// restart-with-journal and the AXFR/IXFR expectations are right,
/// independently of ggond.
#[test]
fn bind_harness_selfcheck() {
    let tmp = TestDir::new("selfcheck");
    let key = tsig_keygen(tmp.path(), "ggon-key", "ggon-key.key");
    let wrong = tsig_keygen(tmp.path(), "ggon-key", "wrong-ggon-key.key");
    let xfr = tsig_keygen(tmp.path(), "xfr-key", "xfr-key.key");
    let sec_port = free_port();
    let mut spec = BindSpec::primary(vec![key.clone(), xfr.clone()], "ggon-key");
    if let BindZone::Primary { allow_transfer, .. } = &mut spec.zone {
        allow_transfer.push("key xfr-key".into());
    }
    spec.also_notify = vec![sec_port];
    let mut prim = Bind::start(tmp.sub("primary"), spec);
    let p = prim.port;

    // nsupdate outcomes the ggond tests rely on.
    let unsigned = nsupdate(
        None,
        &update_script(p, &["update add x.ggon.org 30 A 127.0.0.5"]),
    );
    assert!(
        !unsigned.ok && unsigned.text().contains("REFUSED"),
        "unsigned: {unsigned:?}"
    );
    let bad = nsupdate_cic(p, &wrong, PRIMARY);
    assert!(
        !bad.ok && bad.text().contains("NOTAUTH"),
        "wrong secret: {bad:?}"
    );
    let good = nsupdate_cic(p, &key, PRIMARY);
    assert!(
        good.ok,
        "signed nsupdate to BIND failed: {good:?}\n{}",
        prim.log_tail()
    );
    assert_eq!(dig_short(p, CIC, "A"), vec![PRIMARY]);
    let s0 = soa_serial(p).expect("serial");

    // A secondary of it (transfers signed with xfr-key) follows NOTIFY
    // (refresh is 3600 s).
    let sec = Bind::start(
        tmp.sub("secondary"),
        BindSpec::signed_secondary(prim.addr(), Some(sec_port), &xfr),
    );
    assert_eq!(
        sec.wait_zone(secs(10)),
        Some(s0),
        "BIND secondary never loaded the zone from the BIND primary\n{}",
        sec.log_tail()
    );
    assert_eq!(dig_short(sec.port, CIC, "A"), vec![PRIMARY]);
    assert!(nsupdate_cic(p, &key, BACKUP).ok);
    let took = wait_for_a(sec.port, CIC, &[BACKUP], secs(2));
    assert!(
        took.is_some(),
        "BIND secondary did not follow the primary's NOTIFY within 2 s\n{}\n{}",
        prim.log_tail(),
        sec.log_tail()
    );
    assert!(nsupdate_cic(p, &key, BACKUP2).ok);
    wait_serial_past(p, s0, secs(2)).expect("serial moves");

    check_axfr_acl(p, "BIND");
    check_axfr_signed(p, &xfr, "BIND");
    check_ixfr_incremental(p, s0, PRIMARY, BACKUP2, "BIND");
    check_ixfr_fallback(p, s0.wrapping_sub(1000), "BIND");

    // Outage and restart on the same port keep the journaled data.
    prim.stop();
    assert!(
        dig_short(p, CIC, "A").is_empty(),
        "primary still answers after stop"
    );
    prim.restart();
    assert_eq!(dig_short(p, CIC, "A"), vec![BACKUP2], "{}", prim.log_tail());
}

// ---------------------------------------------------------------------------
// ggond publishing to a BIND primary (zone mode rfc2136)

#[test]
fn rfc2136_remap_reaches_bind_primary() {
    let tmp = TestDir::new("rfc2136-remap");
    let key = tsig_keygen(tmp.path(), "ggon-key", "ggon-key.key");
    let bind = Bind::start(
        tmp.sub("bind"),
        BindSpec::primary(vec![key.clone()], "ggon-key"),
    );
    let gdir = tmp.sub("ggond");
    let cfg = rfc2136_config(
        &gdir,
        &key_file_toml("ggon-key", &key.file),
        "ggon-key",
        bind.port,
    );
    let g = Ggond::start(gdir, &cfg);

    // At start ggond reconciles: the active target (primary) appears on BIND.
    assert!(
        wait_for_a(bind.port, CIC, &[PRIMARY], secs(10)).is_some(),
        "ggond did not publish cic A {PRIMARY} to the BIND primary within 10 s of start \
         (BIND answers {:?}){}",
        dig_short(bind.port, CIC, "A"),
        diag(&g, &[&bind])
    );
    let before = soa_serial(bind.port).expect("BIND serial");

    let t0 = Instant::now();
    g.remap("cic", "backup");
    let ctl_took = t0.elapsed();
    let took = wait_for_a(bind.port, CIC, &[BACKUP], secs(1));
    assert!(
        took.is_some(),
        "after `remap cic --to backup` (ggon-ctl took {ctl_took:?}) BIND still answers {:?} \
         for cic.ggon.org A after 1 s, want [{BACKUP}]{}",
        dig_short(bind.port, CIC, "A"),
        diag(&g, &[&bind])
    );
    eprintln!(
        "remap reached BIND {:?} after ggon-ctl returned",
        took.unwrap()
    );
    let ans = parse_records(&dig(bind.port, &["+noall", "+answer", CIC, "A"]));
    assert_eq!(ans.len(), 1, "{ans:?}");
    assert_eq!(ans[0].ttl, 30, "the service ttl is published: {ans:?}");
    assert!(
        soa_serial(bind.port).unwrap() != before,
        "BIND's serial moved"
    );

    let p = wait_publisher(&g, secs(5), |p| {
        p["ok"] == Value::Bool(true) && p["pending"] == Value::Bool(false)
    })
    .unwrap_or_else(|p| {
        panic!(
            "publisher not ok/idle after success: {p:#}{}",
            diag(&g, &[&bind])
        )
    });
    assert_eq!(p["zone"], "ggon.org.", "{p:#}");
    assert_eq!(p["mode"], "rfc2136", "{p:#}");
    assert_eq!(p["primary"], format!("127.0.0.1:{}", bind.port), "{p:#}");
    assert!(p["last_error"].is_null(), "{p:#}");
}

#[test]
fn rfc2136_converges_after_primary_outage() {
    let tmp = TestDir::new("rfc2136-outage");
    let key = tsig_keygen(tmp.path(), "ggon-key", "ggon-key.key");
    let mut bind = Bind::start(
        tmp.sub("bind"),
        BindSpec::primary(vec![key.clone()], "ggon-key"),
    );
    let gdir = tmp.sub("ggond");
    // The inline form of a key (algorithm + secret) this time.
    let cfg = rfc2136_config(&gdir, &key_inline_toml(&key), "ggon-key", bind.port);
    let g = Ggond::start(gdir, &cfg);
    assert!(
        wait_for_a(bind.port, CIC, &[PRIMARY], secs(10)).is_some(),
        "ggond did not publish cic A {PRIMARY} to BIND within 10 s of start{}",
        diag(&g, &[&bind])
    );

    bind.stop();
    g.remap("cic", "backup");
    let down = wait_publisher(&g, secs(15), |p| {
        p["ok"] == Value::Bool(false) && !last_error(p).is_empty()
    })
    .unwrap_or_else(|p| {
        panic!(
            "with the primary down, publishers[0] must show ok=false and a last_error \
             within 15 s of a remap; last seen: {p:#}{}",
            diag(&g, &[&bind])
        )
    });
    assert_eq!(
        down["pending"],
        Value::Bool(true),
        "a change not yet on the primary is pending: {down:#}"
    );
    eprintln!("while the primary is down: {down}");

    bind.restart();
    let t0 = Instant::now();
    let took = wait_for_a(bind.port, CIC, &[BACKUP], secs(30));
    assert!(
        took.is_some(),
        "after the primary came back, ggond did not converge cic A to {BACKUP} within 30 s \
         (BIND answers {:?}; retries must continue with capped backoff){}",
        dig_short(bind.port, CIC, "A"),
        diag(&g, &[&bind])
    );
    eprintln!("converged {:?} after BIND restarted", t0.elapsed());
    wait_publisher(&g, secs(5), |p| {
        p["ok"] == Value::Bool(true)
            && p["last_error"].is_null()
            && p["pending"] == Value::Bool(false)
    })
    .unwrap_or_else(|p| panic!("publisher not back to ok: {p:#}{}", diag(&g, &[&bind])));
}

#[test]
fn rfc2136_wrong_key_is_reported() {
    let tmp = TestDir::new("rfc2136-wrongkey");
    let key = tsig_keygen(tmp.path(), "ggon-key", "ggon-key.key");
    // Same name, different secret: BIND answers NOTAUTH with TSIG error BADSIG.
    let wrong = tsig_keygen(tmp.path(), "ggon-key", "wrong-ggon-key.key");
    let bind = Bind::start(tmp.sub("bind"), BindSpec::primary(vec![key], "ggon-key"));
    let gdir = tmp.sub("ggond");
    let cfg = rfc2136_config(
        &gdir,
        &key_file_toml("ggon-key", &wrong.file),
        "ggon-key",
        bind.port,
    );
    let g = Ggond::start(gdir, &cfg);

    g.remap("cic", "backup");
    let p = wait_publisher(&g, secs(10), |p| {
        let e = last_error(p).to_ascii_uppercase();
        e.contains("NOTAUTH") && (e.contains("BADSIG") || e.contains("BADKEY"))
    })
    .unwrap_or_else(|p| {
        panic!(
            "with a wrong TSIG secret, publishers[0].last_error must name NOTAUTH and \
             BADSIG/BADKEY within 10 s; last seen: {p:#}{}",
            diag(&g, &[&bind])
        )
    });
    assert_eq!(p["ok"], Value::Bool(false), "{p:#}");
    assert!(
        dig_short(bind.port, CIC, "A").is_empty(),
        "BIND must not have accepted anything signed with the wrong key"
    );
}

/// A key BIND knows but does not allow to update: the refusal is reported.
#[test]
fn rfc2136_refusal_is_reported() {
    let tmp = TestDir::new("rfc2136-refused");
    let key = tsig_keygen(tmp.path(), "ggon-key", "ggon-key.key");
    let other = tsig_keygen(tmp.path(), "other-key", "other-key.key");
    let bind = Bind::start(
        tmp.sub("bind"),
        BindSpec::primary(vec![key.clone(), other], "other-key"),
    );
    let gdir = tmp.sub("ggond");
    let cfg = rfc2136_config(
        &gdir,
        &key_file_toml("ggon-key", &key.file),
        "ggon-key",
        bind.port,
    );
    let g = Ggond::start(gdir, &cfg);

    g.remap("cic", "backup");
    let p = wait_publisher(&g, secs(10), |p| {
        last_error(p).to_ascii_uppercase().contains("REFUSED")
    })
    .unwrap_or_else(|p| {
        panic!(
            "when BIND refuses the UPDATE, publishers[0].last_error must say REFUSED within \
             10 s; last seen: {p:#}{}",
            diag(&g, &[&bind])
        )
    });
    assert_eq!(p["ok"], Value::Bool(false), "{p:#}");
    assert!(dig_short(bind.port, CIC, "A").is_empty());
}

// ---------------------------------------------------------------------------
// BIND tools against ggond (zone mode local)

#[test]
fn nsupdate_to_ggond() {
    let tmp = TestDir::new("nsupdate");
    let key = tsig_keygen(tmp.path(), "ggon-key", "ggon-key.key");
    let wrong = tsig_keygen(tmp.path(), "ggon-key", "wrong-ggon-key.key");
    let other = tsig_keygen(tmp.path(), "other-key", "other-key.key");
    // ggond's key file holds two keys; `name` picks ggon-key.
    let both = tmp.path().join("keys.conf");
    std::fs::write(&both, other.statement() + &key.statement()).expect("write keys.conf");
    let gdir = tmp.sub("ggond");
    let cfg = format!(
        r#"{keys}
[[zone]]
origin = "ggon.org"
file = "{zone}"
mode = "local"
update_keys = ["ggon-key"]
{CIC_SERVICE}"#,
        keys = key_file_toml("ggon-key", &both),
        zone = zone_copy(&gdir),
    );
    let mut g = Ggond::start(gdir, &cfg);
    let s0 = soa_serial(g.port()).expect("ggond answers SOA");
    let add = |port| update_script(port, &["update add test.ggon.org 300 A 127.0.0.99"]);

    let ok = nsupdate(Some(&key.file), &add(g.port()));
    assert!(
        ok.ok,
        "signed nsupdate (key ggon-key) to ggond failed: {}{}",
        ok.text(),
        diag(&g, &[])
    );
    assert_eq!(
        dig_short(g.port(), "test.ggon.org", "A"),
        vec!["127.0.0.99"]
    );
    let s1 = soa_serial(g.port()).expect("serial");
    assert!(
        s1 > s0,
        "the SOA serial must increase after an UPDATE ({s0} -> {s1})"
    );

    // Refusals change nothing.
    let add2 = update_script(g.port(), &["update add test2.ggon.org 300 A 127.0.0.98"]);
    let unsigned = nsupdate(None, &add2);
    assert!(
        !unsigned.ok && unsigned.text().contains("REFUSED"),
        "unsigned UPDATE must fail with REFUSED: {unsigned:?}"
    );
    let bad = nsupdate(Some(&wrong.file), &add2);
    assert!(
        !bad.ok && bad.text().contains("NOTAUTH"),
        "UPDATE signed with the right name but a wrong secret must fail with NOTAUTH: {bad:?}"
    );
    let svc = nsupdate_cic(g.port(), &key, "127.0.0.98");
    assert!(
        !svc.ok && svc.text().contains("REFUSED"),
        "an UPDATE touching a service name (cic.ggon.org) must be REFUSED: {svc:?}"
    );
    assert!(dig_short(g.port(), "test2.ggon.org", "A").is_empty());
    assert_eq!(dig_short(g.port(), CIC, "A"), vec![PRIMARY]);
    assert_eq!(
        soa_serial(g.port()),
        Some(s1),
        "refused UPDATEs must not bump the serial"
    );

    // Accepted updates survive a restart (same state directory).
    g.restart();
    assert_eq!(
        dig_short(g.port(), "test.ggon.org", "A"),
        vec!["127.0.0.99"],
        "the UPDATE was lost across a restart{}",
        diag(&g, &[])
    );
    let s2 = soa_serial(g.port()).expect("serial");
    assert!(
        s2 >= s1,
        "serial went backwards across a restart ({s1} -> {s2})"
    );
}

#[test]
fn bind_secondary_follows_notify() {
    let tmp = TestDir::new("secondary");
    let bind_port = free_port();
    let gdir = tmp.sub("ggond");
    let cfg = format!(
        r#"
[[zone]]
origin = "ggon.org"
file = "{zone}"
allow_transfer = ["127.0.0.1"]
secondaries = [{{ address = "127.0.0.1:{bind_port}" }}]
{CIC_SERVICE}"#,
        zone = zone_copy(&gdir),
    );
    let g = Ggond::start(gdir, &cfg);
    let gserial = soa_serial(g.port()).expect("ggond answers SOA");
    let sec = Bind::start(tmp.sub("bind"), BindSpec::secondary(g.dns, Some(bind_port)));
    let loaded = sec.wait_zone(secs(10));
    assert_eq!(
        loaded,
        Some(gserial),
        "the BIND secondary did not transfer ggon.org from ggond within 10 s{}",
        diag(&g, &[&sec])
    );
    let soa = dig_short(sec.port, ZONE, "SOA");
    assert_eq!(
        soa[0].split_whitespace().nth(3),
        Some("3600"),
        "refresh is an hour, so only NOTIFY explains a fast update: {soa:?}"
    );
    assert_eq!(dig_short(sec.port, CIC, "A"), vec![PRIMARY]);

    g.remap("cic", "backup");
    let took = wait_for_a(sec.port, CIC, &[BACKUP], secs(2));
    assert!(
        took.is_some(),
        "the BIND secondary still answers {:?} 2 s after the remap: ggond must NOTIFY \
         127.0.0.1:{bind_port} and serve the transfer{}",
        dig_short(sec.port, CIC, "A"),
        diag(&g, &[&sec])
    );
    eprintln!("secondary followed in {:?}", took.unwrap());
    assert_eq!(soa_serial(sec.port), soa_serial(g.port()));
}

#[test]
fn axfr_acl_and_ixfr() {
    let tmp = TestDir::new("xfr");
    let xfr = tsig_keygen(tmp.path(), "xfr-key", "xfr-key.key");
    let gdir = tmp.sub("ggond");
    let cfg = format!(
        r#"{keys}
[[zone]]
origin = "ggon.org"
file = "{zone}"
allow_transfer = ["127.0.0.1/32"]
transfer_keys = ["xfr-key"]
{CIC_SERVICE}"#,
        keys = key_file_toml("xfr-key", &xfr.file),
        zone = zone_copy(&gdir),
    );
    let g = Ggond::start(gdir, &cfg);
    let port = g.port();

    let recs = check_axfr_acl(port, "ggond");
    assert!(
        recs.iter()
            .any(|r| r.name == "cic.ggon.org." && r.rtype == "A" && r.rdata == PRIMARY),
        "ggond's AXFR must include the service records (cic A {PRIMARY}): {recs:?}"
    );

    let s0 = soa_serial(port).expect("serial");
    g.remap("cic", "backup");
    let s1 = wait_serial_past(port, s0, secs(2)).expect("serial moves after the first remap");
    g.remap("cic", "backup2");
    wait_serial_past(port, s1, secs(2)).expect("serial moves after the second remap");

    check_ixfr_incremental(port, s0, PRIMARY, BACKUP2, "ggond");
    check_ixfr_fallback(port, s0.wrapping_sub(1000), "ggond");
}

/// `transfer_keys`: a signed AXFR is allowed from an address outside
/// `allow_transfer`, and a signed IXFR is answered too.
#[test]
fn signed_transfer_with_transfer_key() {
    let tmp = TestDir::new("xfr-signed");
    let xfr = tsig_keygen(tmp.path(), "xfr-key", "xfr-key.key");
    let gdir = tmp.sub("ggond");
    let cfg = format!(
        r#"{keys}
[[zone]]
origin = "ggon.org"
file = "{zone}"
allow_transfer = ["127.0.0.1"]
transfer_keys = ["xfr-key"]
{CIC_SERVICE}"#,
        keys = key_file_toml("xfr-key", &xfr.file),
        zone = zone_copy(&gdir),
    );
    let g = Ggond::start(gdir, &cfg);
    check_axfr_signed(g.port(), &xfr, "ggond");
    let s0 = soa_serial(g.port()).expect("serial");
    g.remap("cic", "backup");
    wait_serial_past(g.port(), s0, secs(2)).expect("serial moves after the remap");
    let key = xfr.file.to_str().expect("utf-8 path");
    let q = format!("IXFR={s0}");
    let out = dig(g.port(), &["-b", "127.0.0.2", "-k", key, "+tcp", ZONE, &q]);
    let recs = parse_records(&out);
    assert!(
        recs.len() >= 4 && recs[1].soa_serial() == Some(s0),
        "ggond: signed {q} from 127.0.0.2 must be answered incrementally:\n{out}"
    );
}

/// A BIND secondary that signs its SOA queries and transfers with a key
/// (`primaries { ... key xfr-key; }`), notified by ggond with that key.
#[test]
fn bind_secondary_with_tsig_follows_notify() {
    let tmp = TestDir::new("secondary-tsig");
    let xfr = tsig_keygen(tmp.path(), "xfr-key", "xfr-key.key");
    let bind_port = free_port();
    let gdir = tmp.sub("ggond");
    let cfg = format!(
        r#"{keys}
[[zone]]
origin = "ggon.org"
file = "{zone}"
transfer_keys = ["xfr-key"]
secondaries = [{{ address = "127.0.0.1:{bind_port}", key = "xfr-key" }}]
{CIC_SERVICE}"#,
        keys = key_file_toml("xfr-key", &xfr.file),
        zone = zone_copy(&gdir),
    );
    let g = Ggond::start(gdir, &cfg);
    let gserial = soa_serial(g.port()).expect("ggond answers SOA");
    let sec = Bind::start(
        tmp.sub("bind"),
        BindSpec::signed_secondary(g.dns, Some(bind_port), &xfr),
    );
    assert_eq!(
        sec.wait_zone(secs(10)),
        Some(gserial),
        "the BIND secondary (transfers signed with xfr-key) did not transfer ggon.org from \
         ggond within 10 s{}",
        diag(&g, &[&sec])
    );
    g.remap("cic", "backup");
    assert!(
        wait_for_a(sec.port, CIC, &[BACKUP], secs(2)).is_some(),
        "the signed BIND secondary still answers {:?} 2 s after the remap{}",
        dig_short(sec.port, CIC, "A"),
        diag(&g, &[&sec])
    );
}
