//! Zones signed elsewhere (`dnssec-signzone`, NSEC and NSEC3 with and
//! without salt and iterations) served as they are: answers validate with
//! delv, transfers verify, and a service in such a zone needs ggond's keys.

use super::*;

/// Sign the demo zone with `dnssec-signzone` (a KSK and a ZSK made in
/// `dir`); `nsec3`: the `-3 SALT -H ITER` arguments. Returns the signed
/// file and the KSK.
pub fn presign(dir: &Path, nsec3: &[&str]) -> (PathBuf, PathBuf) {
    std::fs::create_dir_all(dir).unwrap();
    let ksk = bind_keygen(dir, "ECDSAP256SHA256", true);
    bind_keygen(dir, "ECDSAP256SHA256", false);
    let src = dir.join("ggon.org.zone");
    std::fs::write(&src, zone_text()).unwrap();
    let out = dir.join("ggon.org.signed");
    let d = dir.display().to_string();
    let o = out.display().to_string();
    let s = src.display().to_string();
    let mut args = vec![
        "-q",
        "-K",
        d.as_str(),
        // The dsset file goes beside the keys, not into the working directory.
        "-d",
        d.as_str(),
        "-S",
        "-o",
        "ggon.org",
        "-f",
        o.as_str(),
    ];
    args.extend_from_slice(nsec3);
    args.push(s.as_str());
    let r = run("dnssec-signzone", &args, None, 60);
    assert!(r.ok, "dnssec-signzone failed: {}", r.text());
    (out, ksk)
}

fn serve_presigned(dir: &Path, file: &Path, services: &str) -> Ggond {
    let cfg = format!(
        "[[zone]]\norigin = \"ggon.org\"\nfile = \"{}\"\nallow_transfer = [\"127.0.0.1\"]\n{services}",
        file.display()
    );
    Ggond::start(dir.to_path_buf(), &cfg)
}

#[test]
fn presigned_nsec_and_nsec3_zones_validate_with_delv() {
    let tmp = TestDir::new("dnssec-presigned");
    let cases: [(&str, &[&str]); 3] = [
        ("nsec", &[]),
        ("nsec3", &["-3", "-", "-H", "0"]),
        // Legacy parameters (salt, iterations) still seen in the field.
        ("nsec3-salted", &["-3", "aabbccdd", "-H", "5"]),
    ];
    for (name, args) in cases {
        let (file, ksk) = presign(&tmp.sub(&format!("{name}/keys")), args);
        let g = serve_presigned(&tmp.sub(&format!("{name}/ggond")), &file, "");
        let anchor = delv_anchor(&tmp.sub(&format!("{name}/keys")), &ksk);
        for (q, t) in [
            ("www.ggon.org", "A"),
            ("nope.ggon.org", "A"),
            ("ggon.org", "AAAA"),
            ("foo.apps.ggon.org", "A"),
            ("foo.apps.ggon.org", "MX"),
            ("apps.ggon.org", "A"),
            ("ggon.org", "DNSKEY"),
        ] {
            let (ok, text) = delv_validates(g.dns, &anchor, q, t);
            assert!(
                ok,
                "{name}: delv does not validate {q} {t}:\n{text}\n{}",
                g.log_tail()
            );
        }
        verify_transfer(g.dns, tmp.path(), &format!("{name}.axfr"));
        let plain = dig(g.dns.port(), &["+norec", "nope.ggon.org", "A"]);
        assert!(
            plain.contains("NXDOMAIN") && !plain.contains("NSEC") && !plain.contains("RRSIG"),
            "{name}: DNSSEC records without DO: {plain}"
        );
    }
}

#[test]
fn a_service_in_a_presigned_zone_needs_keys() {
    let tmp = TestDir::new("dnssec-presigned-service");
    let (file, _) = presign(&tmp.sub("keys"), &[]);
    let gdir = tmp.sub("ggond");
    let cfg = gdir.join("ggon.toml");
    std::fs::write(
        &cfg,
        format!(
            "[[zone]]\norigin = \"ggon.org\"\nfile = \"{}\"\n\n{}",
            file.display(),
            cic_service(&gdir)
        ),
    )
    .unwrap();
    let out = run(
        ggond_bin(),
        &["--check-config", "--config", &cfg.display().to_string()],
        None,
        20,
    );
    assert!(
        !out.ok,
        "a signed zone whose service records ggond would change unsigned was accepted"
    );
    let text = out.text();
    assert!(
        text.contains("ggon.org") && text.contains("dnssec") && text.contains("cic"),
        "the refusal should name the zone, the service and the fix: {text}"
    );
}
