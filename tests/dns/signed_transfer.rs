//! A TSIG-signed AXFR that needs many messages: every message must verify
//! (RFC 8945 5.3.1 chaining), checked by BIND's `dig`.

use crate::support::ggond::*;

#[test]
fn a_large_signed_axfr_verifies_in_every_message() {
    let dir = tempfile::tempdir().unwrap();
    let key = dir.path().join("xfr.key");
    let out = std::process::Command::new("tsig-keygen")
        .args(["-a", "hmac-sha256", "xfr"])
        .output()
        .expect("tsig-keygen (bind9) is needed; scripts/test installs it");
    std::fs::write(&key, &out.stdout).unwrap();
    let mut zone = String::from(
        "$ORIGIN ggon.org.\n$TTL 3600\n@ IN SOA ns1 h 1 3600 600 86400 300\n@ IN NS ns1\nns1 IN A 127.0.0.1\n",
    );
    for i in 0..3000 {
        zone.push_str(&format!(
            "host{i} IN TXT \"record {i}, padded to make the zone span many messages\"\n"
        ));
    }
    let zone_file = dir.path().join("ggon.org.zone");
    std::fs::write(&zone_file, zone).unwrap();
    let cfg = dir.path().join("ggon.toml");
    std::fs::write(
        &cfg,
        format!(
            "[[key]]\nname = \"xfr\"\nfile = \"{}\"\n[[zone]]\norigin = \"ggon.org\"\nfile = \"{}\"\ntransfer_keys = [\"xfr\"]\n",
            key.display(),
            zone_file.display()
        ),
    )
    .unwrap();
    let g = Ggond::start(
        &cfg,
        &dir.path().join("state"),
        &dir.path().join("log"),
        &dir.path().join("ready"),
    );
    let dig = std::process::Command::new("timeout")
        .args([
            "20",
            "dig",
            "-p",
            &g.dns.port().to_string(),
            "@127.0.0.1",
            "-k",
        ])
        .arg(&key)
        .args(["ggon.org", "AXFR"])
        .output()
        .expect("dig");
    let text = String::from_utf8_lossy(&dig.stdout);
    let txt = text.lines().filter(|l| l.contains("\tTXT\t")).count();
    assert_eq!(txt, 3000, "{}", &text[text.len().saturating_sub(500)..]);
    let messages: usize = text
        .lines()
        .find_map(|l| l.split("messages ").nth(1))
        .and_then(|r| r.split(',').next())
        .and_then(|n| n.trim().parse().ok())
        .expect("dig reports the message count");
    assert!(messages > 1, "the transfer should span several messages");
    assert!(
        !text.contains("could not be validated"),
        "a TSIG did not verify:\n{}",
        &text[text.len() - 400..]
    );
    assert!(
        !text.to_lowercase().contains("tsig verify failure"),
        "{text}"
    );
    // Unsigned from an address not listed: refused.
    let dig = std::process::Command::new("timeout")
        .args([
            "20",
            "dig",
            "-p",
            &g.dns.port().to_string(),
            "@127.0.0.1",
            "ggon.org",
            "AXFR",
        ])
        .output()
        .expect("dig");
    assert!(String::from_utf8_lossy(&dig.stdout).contains("Transfer failed"));
}
