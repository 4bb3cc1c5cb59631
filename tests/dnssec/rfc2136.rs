//! RFC 2136 mode with a primary that signs: BIND with `dnssec-policy
//! default` and inline signing takes ggond's unsigned UPDATEs and signs
//! them; the remapped answer validates.

use super::*;

#[test]
fn remap_through_a_signing_bind_primary_validates() {
    let tmp = TestDir::new("dnssec-rfc2136");
    let key = tsig_keygen(tmp.path(), "ggon-key", "ggon-key.key");
    let mut spec = BindSpec::primary(vec![key.clone()], "ggon-key");
    spec.zone_extra = "dnssec-policy default;\n  inline-signing yes;".to_string();
    let bind = Bind::start(tmp.sub("bind"), spec);
    // BIND signs the zone shortly after loading it.
    let dnskey = poll(secs(20), Duration::from_millis(200), || {
        let out = dig(
            bind.port,
            &["+norec", "+noall", "+answer", "ggon.org", "DNSKEY"],
        );
        out.lines()
            .find(|l| {
                let f: Vec<&str> = l.split_whitespace().collect();
                f.len() > 7 && f[3] == "DNSKEY" && f[4] == "257"
            })
            .map(|l| l.to_string())
    })
    .unwrap_or_else(|| {
        panic!(
            "BIND did not sign ggon.org within 20 s\n{}",
            bind.log_tail()
        )
    });
    let f: Vec<&str> = dnskey.split_whitespace().collect();
    let anchor = tmp.path().join("anchor.conf");
    std::fs::write(
        &anchor,
        format!(
            "trust-anchors {{\n  ggon.org. static-key {} {} {} \"{}\";\n}};\n",
            f[4],
            f[5],
            f[6],
            f[7..].concat()
        ),
    )
    .unwrap();
    let gdir = tmp.sub("ggond");
    let zone = gdir.join("ggon.org.zone");
    std::fs::write(&zone, zone_text()).unwrap();
    let cfg = format!(
        "[[key]]\nname = \"ggon-key\"\nfile = \"{}\"\n\n[[zone]]\norigin = \"ggon.org\"\nfile = \"{}\"\n\
         mode = \"rfc2136\"\nprimary = \"127.0.0.1:{}\"\nkey = \"ggon-key\"\nserve = false\n\n{}",
        key.file.display(),
        zone.display(),
        bind.port,
        cic_service(&gdir)
    );
    let g = Ggond::start(gdir, &cfg);
    let bind_addr = bind.addr();
    let signed_answer = |want: &str| {
        poll(secs(20), Duration::from_millis(250), || {
            let (ok, text) = delv_validates(bind_addr, &anchor, "cic.ggon.org", "A");
            (ok && text.contains(want)).then_some(text)
        })
    };
    assert!(
        signed_answer(PRIMARY).is_some(),
        "cic.ggon.org does not validate at the signing primary\n{}\n{}",
        bind.log_tail(),
        g.log_tail()
    );
    let out = g.ctl(&[
        "remap",
        "cic",
        "--to",
        "backup",
        "--reason",
        "signed primary",
    ]);
    assert!(out.ok, "{}", out.text());
    assert!(
        signed_answer(BACKUP).is_some(),
        "the remapped answer does not validate at the signing primary: {}\n{}\n{}",
        delv_validates(bind_addr, &anchor, "cic.ggon.org", "A").1,
        bind.log_tail(),
        g.log_tail()
    );
}
