//! The key policy: rolls that run themselves, on real processes with
//! second-scale timers (TTLs of 1 s). A ZSK past its lifetime is rolled by
//! pre-publication with no operator, delv and unbound validating at every
//! step, across a restart of ggond in the middle; a KSK past its lifetime is
//! rolled by double signature against a parent zone served by BIND, and the
//! old KSK stays until BIND serves the new DS (changed by the test with
//! nsupdate, from the child's CDS), validated by unbound and delv trusting
//! only the parent's key.

use super::parent::{ds_line, Parent};
use super::roll::{keys, validate_until, SHORT_ZONE};
use super::*;
use support::unbound::Unbound;

/// The key_roll entries of the history (reasons, oldest first).
fn roll_history(g: &Ggond) -> Vec<String> {
    let out = g.ctl(&["history", "--json"]);
    assert!(out.ok, "{}", out.text());
    let h: serde_json::Value = serde_json::from_str(&out.stdout).expect("history json");
    let h = h["entries"].clone();
    h.as_array()
        .into_iter()
        .flatten()
        .filter(|e| e["kind"] == "key_roll")
        .map(|e| e["reason"].as_str().unwrap_or("").to_string())
        .collect()
}

/// CDS records ggond serves (`tag alg digest-type digest`).
fn cds(g: &Ggond) -> Vec<String> {
    dig_short(g.port(), "ggon.org", "CDS")
}

/// ggond's config: the short zone (TTLs 1 s) signed with `ksk` and `zsk`,
/// `propagation` added to the TTL between timed steps, and `policy`.
fn config(gdir: &Path, ksk: &Path, zsk: &Path, propagation: &str, policy: &str) -> String {
    let zone = gdir.join("ggon.org.zone");
    std::fs::write(&zone, SHORT_ZONE).unwrap();
    format!(
        "[[zone]]\norigin = \"ggon.org\"\nfile = \"{}\"\nallow_transfer = [\"127.0.0.1\"]\n\
         dnssec = {{ keys = [\"{}\", \"{}\"], propagation = \"{propagation}\", policy = {{ {policy} }} }}\n\n{}",
        zone.display(),
        ksk.display(),
        zsk.display(),
        cic_service(gdir)
    )
}

/// delv (no cache: what is served now) validates the service name.
fn delv_ok(g: &Ggond, anchor: &Path, what: &str) {
    let (ok, text) = delv_validates(g.dns, anchor, "cic.ggon.org", "A");
    assert!(
        ok,
        "delv does not validate {what}: {text}\n{}",
        g.log_tail()
    );
}

#[test]
fn zsk_rolls_itself_and_validates_at_every_step() {
    let tmp = TestDir::new("dnssec-policy-zsk");
    let (ksk, zsk) = bind_ecdsa_pair(&tmp.sub("keys"));
    let gdir = tmp.sub("ggond");
    // Steps 4 s apart (TTL 1 s + 3 s), so that each state is seen even on
    // a loaded machine.
    let cfg = config(&gdir, &ksk, &zsk, "3s", "zsk_lifetime = \"5s\"");
    let mut g = Ggond::start(gdir, &cfg);
    let anchor = delv_anchor(tmp.path(), &ksk);
    let u = Unbound::start(tmp.sub("unbound"), "ggon.org", g.dns, &dnskey_line(&ksk));
    let old_zsk = keys(&g).iter().find(|k| k.0 == "ZSK").expect("a ZSK").1;
    delv_ok(&g, &anchor, "before the roll");
    // No operator: the policy publishes a new ZSK once the old one has
    // signed for 5 s (nothing happens before).
    let zsks = |g: &Ggond| {
        keys(g)
            .into_iter()
            .filter(|k| k.0 == "ZSK")
            .collect::<Vec<_>>()
    };
    validate_until(&[&u], &g, secs(15), || zsks(&g).len() == 2);
    let published = zsks(&g);
    let new_zsk = published.iter().find(|k| k.1 != old_zsk).unwrap().1;
    assert!(
        published.iter().any(|k| k.1 == old_zsk && k.2)
            && published.iter().any(|k| k.1 == new_zsk && !k.2),
        "pre-publication: the old ZSK signs, the new one does not yet: {published:?}"
    );
    delv_ok(&g, &anchor, "with the new ZSK published");
    assert!(cds(&g).is_empty(), "no CDS in a ZSK roll: {:?}", cds(&g));
    let status = g.ctl(&["dnssec", "status", "--server", &g.dns.to_string()]);
    assert!(
        status.stdout.contains("roll (key policy): ZSK")
            && status.stdout.contains("key policy: ZSK lifetime 5s"),
        "{}",
        status.text()
    );
    // The roll survives a restart: the same new key goes on, no second roll.
    g.restart();
    let u = Unbound::start(tmp.sub("unbound2"), "ggon.org", g.dns, &dnskey_line(&ksk));
    validate_until(&[&u], &g, secs(15), || {
        zsks(&g).iter().any(|k| k.1 == new_zsk && k.2)
    });
    let swapped = zsks(&g);
    assert!(
        swapped.iter().any(|k| k.1 == old_zsk && !k.2) && swapped.len() == 2,
        "the old ZSK should stay published, not signing, beside the same new one: {swapped:?}"
    );
    delv_ok(&g, &anchor, "with the new ZSK signing");
    validate_until(&[&u], &g, secs(15), || {
        !keys(&g).iter().any(|k| k.1 == old_zsk)
    });
    delv_ok(&g, &anchor, "after the old ZSK left");
    verify_transfer(g.dns, tmp.path(), "policy-zsk-rolled.zone");
    let h = roll_history(&g);
    let joined = h.join("\n");
    for want in [
        "key policy: ZSK",
        &format!("ZSK {new_zsk} signs now"),
        &format!("key {old_zsk} removed"),
    ] {
        assert!(joined.contains(want), "history lacks `{want}`:\n{joined}");
    }
    assert!(
        cds(&g).is_empty(),
        "no CDS outside a KSK roll: {:?}",
        cds(&g)
    );
}

/// delv through unbound (as its recursive server), trusting only the
/// parent's key `org` (`org. DNSKEY 257 …`): a second validator of the
/// whole chain org. → DS → ggon.org.
fn delv_from_parent(u: &Unbound, org: &str, dir: &Path, what: &str) {
    let f: Vec<&str> = org.split_whitespace().collect();
    let anchor = dir.join("org-anchor.conf");
    std::fs::write(
        &anchor,
        format!(
            "trust-anchors {{\n  org. static-key {} {} {} \"{}\";\n}};\n",
            f[2],
            f[3],
            f[4],
            f[5..].concat()
        ),
    )
    .unwrap();
    let unbound = std::net::SocketAddr::from(([127, 0, 0, 1], u.port));
    let (ok, text) = delv_under(unbound, &anchor, "org", &[], "cic.ggon.org", "A");
    assert!(
        ok,
        "delv (anchor: the parent's key) does not validate {what}: {text}"
    );
}

#[test]
fn ksk_rolls_itself_and_waits_for_the_parents_ds() {
    let tmp = TestDir::new("dnssec-policy-ksk");
    let (ksk, zsk) = bind_ecdsa_pair(&tmp.sub("keys"));
    let parent = Parent::start(tmp.sub("parent"), &ds_line(&ksk));
    let gdir = tmp.sub("ggond");
    let policy = format!(
        "zsk_lifetime = \"1h\", ksk_lifetime = \"6s\", parent_servers = [\"127.0.0.1:{}\"], \
         check_interval = \"1s\", parent_propagation = \"1s\"",
        parent.port
    );
    let cfg = config(&gdir, &ksk, &zsk, "1s", &policy);
    let g = Ggond::start(gdir, &cfg);
    // Validated from the parent's key: org. → DS → ggon.org.
    let org = parent.key().expect("the parent's key");
    let stub = format!(
        "stub-zone:\n    name: \"org\"\n    stub-addr: 127.0.0.1@{}\n",
        parent.port
    );
    let u = Unbound::start_with(tmp.sub("unbound"), "ggon.org", g.dns, &org, &stub);
    let old_ksk = keys(&g).iter().find(|k| k.0 == "KSK").expect("a KSK").1;
    validate_until(&[&u], &g, secs(5), || true);
    delv_from_parent(&u, &org, tmp.path(), "before the roll");
    // The policy begins the roll (both KSKs sign the key set), then names
    // the new KSK alone in CDS/CDNSKEY.
    let ksks = |g: &Ggond| {
        keys(g)
            .into_iter()
            .filter(|k| k.0 == "KSK")
            .collect::<Vec<_>>()
    };
    validate_until(&[&u], &g, secs(15), || ksks(&g).len() == 2);
    let new_ksk = ksks(&g).iter().find(|k| k.1 != old_ksk).unwrap().1;
    validate_until(&[&u], &g, secs(10), || !cds(&g).is_empty());
    let published = cds(&g);
    assert!(
        published.len() == 1 && published[0].starts_with(&format!("{new_ksk} ")),
        "CDS names the new KSK alone: {published:?}"
    );
    // The parent still has the old DS only: the old KSK stays, however long.
    let waited = std::time::Instant::now();
    while waited.elapsed() < secs(5) {
        validate_until(&[&u], &g, secs(1), || true);
        assert!(
            ksks(&g).iter().any(|k| k.1 == old_ksk && k.2),
            "the old KSK left while the parent serves only its DS ({:?}): {:?}\n{}",
            parent.ds_tags(),
            keys(&g),
            g.log_tail()
        );
    }
    delv_from_parent(&u, &org, tmp.path(), "while the parent has the old DS");
    let status = g.ctl(&["dnssec", "status", "--server", &g.dns.to_string()]);
    assert!(
        status.stdout.contains("waiting for the parent's DS")
            && status.stdout.contains(&format!("not of {new_ksk} yet")),
        "{}",
        status.text()
    );
    // The parent takes the DS from the child's CDS, as a registry would.
    parent.set_ds_from_cds(&published[0]);
    assert_eq!(parent.ds_tags(), vec![new_ksk]);
    validate_until(&[&u], &g, secs(15), || {
        !keys(&g).iter().any(|k| k.1 == old_ksk)
    });
    validate_until(&[&u], &g, secs(3), || cds(&g).is_empty());
    delv_from_parent(&u, &org, tmp.path(), "after the old KSK left");
    verify_transfer(g.dns, tmp.path(), "policy-ksk-rolled.zone");
    let joined = roll_history(&g).join("\n");
    for want in [
        "key policy: KSK".to_string(),
        format!("CDS/CDNSKEY now name KSK {new_ksk}"),
        format!("waiting for the parent to serve the DS of KSK {new_ksk}"),
        format!("the parent's servers serve the DS of KSK {new_ksk}"),
        format!("key {old_ksk} removed from the key set; CDS/CDNSKEY withdrawn"),
    ] {
        assert!(joined.contains(&want), "history lacks `{want}`:\n{joined}");
    }
}
