//! Zones ggond signs itself: validation through unbound across a failover
//! and remaps, NSEC and NSEC3, keys from BIND and from ggon-ctl, a wrong
//! trust anchor, transfers checked by the DNSSEC tools.

use super::*;
use support::unbound::Unbound;

/// ggond config: the demo zone signed with `keys` (`denial` nsec/nsec3),
/// transfers allowed from loopback, plus `extra` zone keys and the service.
fn signed_config(dir: &Path, keys: &[PathBuf], denial: &str, extra: &str) -> String {
    let zone = dir.join("ggon.org.zone");
    std::fs::write(&zone, zone_text()).expect("zone copy");
    let keys: Vec<String> = keys
        .iter()
        .map(|k| format!("\"{}\"", k.display()))
        .collect();
    format!(
        "[[zone]]\norigin = \"ggon.org\"\nfile = \"{}\"\nallow_transfer = [\"127.0.0.1\"]\n{extra}\
         dnssec = {{ keys = [{}], denial = \"{denial}\" }}\n\n{}",
        zone.display(),
        keys.join(", "),
        cic_service(dir)
    )
}

/// Poll unbound until cic's answer is `want` and validated (bounded); every
/// answer seen on the way must be validated too.
fn wait_validated(u: &Unbound, g: &Ggond, want: &str, limit: Duration) {
    let mut seen = Vec::new();
    let hit = poll(limit, Duration::from_millis(200), || {
        let s = u.ask("cic.ggon.org", "A");
        seen.push(s.clone());
        (s.answers == vec![want.to_string()]).then_some(())
    });
    assert!(
        hit.is_some(),
        "unbound never answered cic.ggon.org {want} (last: {:?}){}\n{}",
        seen.last(),
        u.log_tail(),
        g.log_tail()
    );
    for s in &seen {
        assert!(
            s.ad && s.rcode == "NOERROR",
            "an answer on the way was not validated: {s:?}\nall: {seen:?}\n{}",
            u.log_tail()
        );
    }
}

fn assert_denials_validate(u: &Unbound) {
    let nx = u.ask("nope.ggon.org", "A");
    assert!(
        nx.rcode == "NXDOMAIN" && nx.ad,
        "NXDOMAIN not validated: {nx:?}\n{}",
        u.log_tail()
    );
    let nodata = u.ask("cic.ggon.org", "TXT");
    assert!(
        nodata.rcode == "NOERROR" && nodata.ad && nodata.answers.is_empty(),
        "NODATA not validated: {nodata:?}\n{}",
        u.log_tail()
    );
    let wild = u.ask("foo.apps.ggon.org", "A");
    assert!(
        wild.ad && wild.answers == vec!["127.0.0.90".to_string()],
        "wildcard answer not validated: {wild:?}\n{}",
        u.log_tail()
    );
    let wild_nodata = u.ask("foo.apps.ggon.org", "MX");
    assert!(
        wild_nodata.ad && wild_nodata.rcode == "NOERROR" && wild_nodata.answers.is_empty(),
        "wildcard NODATA not validated: {wild_nodata:?}\n{}",
        u.log_tail()
    );
    let ent = u.ask("apps.ggon.org", "A");
    assert!(
        ent.ad && ent.rcode == "NOERROR" && ent.answers.is_empty(),
        "empty non-terminal NODATA not validated: {ent:?}\n{}",
        u.log_tail()
    );
}

#[test]
fn online_signed_zone_validates_across_failover_and_remaps() {
    let tmp = TestDir::new("dnssec-online");
    let kdir = tmp.sub("keys");
    let (ksk, zsk) = bind_ecdsa_pair(&kdir);
    let gdir = tmp.sub("ggond");
    let g = Ggond::start(
        gdir.clone(),
        &signed_config(&gdir, &[ksk.clone(), zsk], "nsec", ""),
    );
    let u = Unbound::start(tmp.sub("unbound"), "ggon.org", g.dns, &dnskey_line(&ksk));

    wait_validated(&u, &g, PRIMARY, secs(10));
    assert_denials_validate(&u);

    // Failover: the primary's check fails, the signed answer moves.
    std::fs::remove_file(gdir.join("primary.up")).unwrap();
    wait_validated(&u, &g, BACKUP, secs(15));
    // Manual remap.
    let out = g.ctl(&["remap", "cic", "--to", "backup2", "--reason", "dnssec test"]);
    assert!(out.ok, "remap failed: {}", out.text());
    wait_validated(&u, &g, BACKUP2, secs(10));

    // Ten more remaps, then the whole zone as transferred must verify.
    for i in 0..10 {
        let to = if i % 2 == 0 { "backup" } else { "backup2" };
        let out = g.ctl(&["remap", "cic", "--to", to, "--force"]);
        assert!(out.ok, "remap {i} failed: {}", out.text());
    }
    wait_validated(&u, &g, BACKUP2, secs(10));
    verify_transfer(g.dns, tmp.path(), "after-remaps.zone");

    // ggon-ctl dnssec status reads the keys back over DNS.
    let server = g.dns.to_string();
    let st = g.ctl(&["dnssec", "status", "--server", &server, "--json"]);
    assert!(st.ok, "dnssec status failed: {}", st.text());
    let v: serde_json::Value = serde_json::from_str(&st.stdout).expect("json");
    let keys = v[0]["keys"].as_array().expect("keys");
    assert_eq!(keys.len(), 2, "{v:#}");
    assert!(keys.iter().all(|k| k["signing"] == true), "{v:#}");
    let ds = run(
        "dnssec-dsfromkey",
        &["-2", &format!("{}.key", ksk.display())],
        None,
        10,
    );
    let want = ds
        .stdout
        .split_whitespace()
        .skip(3)
        .collect::<Vec<_>>()
        .join(" ");
    let ksk_entry = keys.iter().find(|k| k["role"] == "KSK").expect("a KSK");
    assert!(
        ksk_entry["ds"].as_str().unwrap_or("").ends_with(&want),
        "ggon-ctl's DS {} differs from dnssec-dsfromkey's {want}",
        ksk_entry["ds"]
    );
}

#[test]
fn nsec3_zone_with_ggon_ctl_keys_validates_and_wrong_anchor_fails() {
    let tmp = TestDir::new("dnssec-nsec3");
    let kdir = tmp.sub("keys");
    // One Ed25519 key that signs everything (a CSK), made by ggon-ctl.
    let base = ctl_keygen(&kdir, "ed25519", true);
    let gdir = tmp.sub("ggond");
    let g = Ggond::start(
        gdir.clone(),
        &signed_config(&gdir, std::slice::from_ref(&base), "nsec3", ""),
    );
    let u = Unbound::start(tmp.sub("unbound"), "ggon.org", g.dns, &dnskey_line(&base));
    wait_validated(&u, &g, PRIMARY, secs(10));
    assert_denials_validate(&u);
    let out = g.ctl(&["remap", "cic", "--to", "backup", "--reason", "nsec3 test"]);
    assert!(out.ok, "remap failed: {}", out.text());
    wait_validated(&u, &g, BACKUP, secs(10));
    verify_transfer(g.dns, tmp.path(), "nsec3.zone");

    // An NXDOMAIN with three NSEC3 proofs does not fit 512 octets: TC over
    // UDP, the whole answer over TCP.
    let port = g.dns.port();
    let udp = dig(
        port,
        &[
            "+dnssec",
            "+bufsize=512",
            "+ignore",
            "+norec",
            "x.y.nope.ggon.org",
            "A",
        ],
    );
    assert!(
        udp.contains(" tc"),
        "no TC on a signed answer over 512 octets: {udp}"
    );
    let tcp = dig(
        port,
        &["+dnssec", "+tcp", "+norec", "x.y.nope.ggon.org", "A"],
    );
    assert!(
        tcp.contains("NXDOMAIN") && tcp.matches("NSEC3 ").count() >= 2,
        "the TCP answer lacks its NSEC3 proofs: {tcp}"
    );
    // Without DO, no DNSSEC records; with it, DO echoed and AD never set.
    let plain = dig(port, &["+norec", "cic.ggon.org", "A"]);
    assert!(!plain.contains("RRSIG"), "RRSIG without DO: {plain}");
    let signed = dig(port, &["+dnssec", "+norec", "cic.ggon.org", "A"]);
    assert!(
        signed.contains("RRSIG") && signed.contains("flags: do"),
        "{signed}"
    );
    assert!(
        !signed
            .lines()
            .any(|l| l.contains(";; flags:") && l.contains(" ad")),
        "AD set by an authoritative server: {signed}"
    );

    // A resolver trusting another key must refuse the answers.
    let other = bind_keygen(&kdir, "ECDSAP256SHA256", true);
    let wrong = Unbound::start(
        tmp.sub("unbound-wrong"),
        "ggon.org",
        g.dns,
        &dnskey_line(&other),
    );
    let s = wrong.ask("cic.ggon.org", "A");
    assert_eq!(
        s.rcode, "SERVFAIL",
        "a wrong trust anchor must fail validation: {s:?}"
    );
    assert!(!s.ad);
}

#[test]
fn rsa_keys_from_bind_and_ggon_ctl_sign_and_a_bind_secondary_gets_a_valid_copy() {
    let tmp = TestDir::new("dnssec-rsa");
    let kdir = tmp.sub("keys");
    // The KSK from BIND's dnssec-keygen, the ZSK from ggon-ctl: both kinds
    // of RSA key file sign.
    let ksk = bind_keygen(&kdir, "RSASHA256", true);
    let zsk = ctl_keygen(&kdir, "rsasha256", false);
    let bind_port = free_port();
    let gdir = tmp.sub("ggond");
    let secondary = format!("secondaries = [{{ address = \"127.0.0.1:{bind_port}\" }}]\n");
    let g = Ggond::start(
        gdir.clone(),
        &signed_config(&gdir, &[ksk.clone(), zsk], "nsec", &secondary),
    );
    let anchor = delv_anchor(tmp.path(), &ksk);
    let (ok, text) = delv_validates(g.dns, &anchor, "cic.ggon.org", "A");
    assert!(
        ok,
        "delv does not validate the RSA-signed answer: {text}\n{}",
        g.log_tail()
    );

    let sec = Bind::start(tmp.sub("bind"), BindSpec::secondary(g.dns, Some(bind_port)));
    assert!(
        sec.wait_zone(secs(10)).is_some(),
        "no transfer to BIND\n{}",
        sec.log_tail()
    );
    let out = g.ctl(&["remap", "cic", "--to", "backup", "--reason", "ixfr"]);
    assert!(out.ok, "{}", out.text());
    let moved = poll(secs(10), Duration::from_millis(100), || {
        (dig_short(sec.port, "cic.ggon.org", "A") == vec![BACKUP.to_string()]).then_some(())
    });
    assert!(
        moved.is_some(),
        "the secondary did not follow the remap\n{}",
        sec.log_tail()
    );
    let glog = std::fs::read_to_string(&g.log).unwrap_or_default();
    assert!(
        glog.lines().any(|l| l.contains("qtype=IXFR")),
        "the secondary should have followed with an IXFR:\n{}",
        g.log_tail()
    );
    verify_transfer(sec.addr(), tmp.path(), "secondary-copy.zone");
    let (ok, text) = delv_validates(sec.addr(), &anchor, "cic.ggon.org", "A");
    assert!(
        ok && text.contains(BACKUP),
        "the secondary's answer does not validate: {text}"
    );
}
