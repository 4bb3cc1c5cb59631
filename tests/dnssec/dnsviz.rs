//! `dnsviz probe` + `dnsviz grok` on every kind of zone ggond serves signed:
//! no error and no warning at any level, the zone SECURE from its DS.

use super::*;

/// Every `errors`/`warnings` entry anywhere in dnsviz's grok output.
fn findings(v: &serde_json::Value, path: &str, out: &mut Vec<String>) {
    match v {
        serde_json::Value::Object(m) => {
            for (k, x) in m {
                if k == "errors" || k == "warnings" {
                    out.push(format!("{path}/{k}: {x}"));
                }
                findings(x, &format!("{path}/{k}"), out);
            }
        }
        serde_json::Value::Array(a) => {
            for x in a {
                findings(x, path, out);
            }
        }
        _ => {}
    }
}

/// Probe ggond's zone as an authoritative server with the KSK's DS, grok
/// it with the KSK as trust anchor; panics with dnsviz's findings.
fn dnsviz_clean(g: &Ggond, dir: &Path, ksk: &Path, what: &str) {
    let ds = run(
        "dnssec-dsfromkey",
        &["-2", &format!("{}.key", ksk.display())],
        None,
        10,
    );
    let ds: Vec<&str> = ds.stdout.split_whitespace().skip(3).collect();
    let server = format!("ggon.org:ns1.ggon.org=127.0.0.1:{}", g.dns.port());
    let ds_arg = format!("ggon.org:{}", ds.join(" "));
    let probe = run(
        "dnsviz",
        &[
            "probe", "-A", "-a", "ggon.org", "-N", &server, "-x", &server, "-D", &ds_arg,
            "ggon.org",
        ],
        None,
        90,
    );
    assert!(probe.ok, "{what}: dnsviz probe failed: {}", probe.stderr);
    let anchor = dir.join(format!("{what}.tk"));
    std::fs::write(&anchor, dnskey_line(ksk)).unwrap();
    // dnsviz 0.9.4 wants pygraphviz.release, which Debian's pygraphviz 1.7
    // lacks: the shim provides it and runs `dnsviz grok` unchanged.
    let shim = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/dnssec/dnsviz_grok.py");
    let grok = run(
        "/usr/bin/python3",
        &[
            &shim.display().to_string(),
            "-t",
            &anchor.display().to_string(),
        ],
        Some(&probe.stdout),
        90,
    );
    assert!(grok.ok, "{what}: dnsviz grok failed: {}", grok.stderr);
    let v: serde_json::Value = serde_json::from_str(&grok.stdout).expect("grok json");
    let mut found = Vec::new();
    findings(&v, "", &mut found);
    assert!(
        found.is_empty(),
        "{what}: dnsviz reports:\n{}",
        found.join("\n")
    );
    assert_eq!(
        v["ggon.org."]["zone"]["status"], "SECURE",
        "{what}: the zone is not SECURE for dnsviz: {:#}",
        v["ggon.org."]["zone"]
    );
    assert_eq!(v["ggon.org."]["delegation"]["status"], "SECURE", "{what}");
}

#[test]
fn dnsviz_finds_nothing_wrong_with_signed_zones() {
    let tmp = TestDir::new("dnssec-dnsviz");
    for denial in ["nsec", "nsec3"] {
        let kdir = tmp.sub(&format!("{denial}/keys"));
        let (ksk, zsk) = bind_ecdsa_pair(&kdir);
        let gdir = tmp.sub(&format!("{denial}/ggond"));
        let zone = gdir.join("ggon.org.zone");
        std::fs::write(&zone, zone_text()).unwrap();
        let cfg = format!(
            "[[zone]]\norigin = \"ggon.org\"\nfile = \"{}\"\n\
             dnssec = {{ keys = [\"{}\", \"{}\"], denial = \"{denial}\" }}\n\n{}",
            zone.display(),
            ksk.display(),
            zsk.display(),
            cic_service(&gdir)
        );
        let g = Ggond::start(gdir, &cfg);
        dnsviz_clean(&g, tmp.path(), &ksk, &format!("online-{denial}"));
    }
    let (file, ksk) =
        super::presigned::presign(&tmp.sub("presigned/keys"), &["-3", "-", "-H", "0"]);
    let gdir = tmp.sub("presigned/ggond");
    let g = Ggond::start(
        gdir,
        &format!(
            "[[zone]]\norigin = \"ggon.org\"\nfile = \"{}\"\n",
            file.display()
        ),
    );
    dnsviz_clean(&g, tmp.path(), &ksk, "presigned-nsec3");
}
