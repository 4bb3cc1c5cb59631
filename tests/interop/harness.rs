//! The harness against BIND alone.

use super::*;

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
