//! BIND tools against ggond (zone mode local).

use super::*;

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
