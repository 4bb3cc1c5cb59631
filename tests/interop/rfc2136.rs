//! ggond publishing to a BIND primary (zone mode rfc2136).

use super::*;

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
