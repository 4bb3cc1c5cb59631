//! DNSSEC with real validators and real tools: `unbound` as a
//! validating resolver with a stub zone pointing at ggond and the zone's
//! trust anchor, `delv`, `dnssec-verify` and `ldns-verify-zone` on
//! transfers, keys from `dnssec-keygen` and `ggon-ctl dnssec keygen`, zones
//! pre-signed by `dnssec-signzone`, a BIND secondary. Every wait is bounded.

#[path = "../support/mod.rs"]
mod support;

mod cluster;
mod dnsviz;
mod keypolicy;
mod online;
mod parent;
mod presigned;
mod regional;
mod rfc2136;
mod roll;

use std::path::{Path, PathBuf};
use std::time::Duration;

use support::bind::*;

pub const PRIMARY: &str = "127.0.0.11";
pub const BACKUP: &str = "127.0.0.12";
pub const BACKUP2: &str = "127.0.0.13";

pub fn secs(s: u64) -> Duration {
    Duration::from_secs(s)
}

/// cic with three targets whose exec check is "DIR/<target>.up exists",
/// so a test fails a target by removing its file.
pub fn cic_service(dir: &Path) -> String {
    let mut s = String::from("[[service]]\nname = \"cic\"\nfqdn = \"cic.ggon.org\"\nttl = 1\n");
    for (name, addr) in [
        ("primary", PRIMARY),
        ("backup", BACKUP),
        ("backup2", BACKUP2),
    ] {
        let flag = dir.join(format!("{name}.up"));
        std::fs::write(&flag, "").expect("flag file");
        s += &format!(
            "\n[[service.target]]\nname = \"{name}\"\naddresses = [\"{addr}\"]\n\
             check = {{ type = \"exec\", command = [\"test\", \"-e\", \"{}\"], interval = \"300ms\", rise = 1, fall = 1 }}\n",
            flag.display()
        );
    }
    s
}

/// `dnssec-keygen` in `dir`; returns the key's path without extension.
pub fn bind_keygen(dir: &Path, alg: &str, ksk: bool) -> PathBuf {
    let d = dir.display().to_string();
    let mut args = vec!["-q", "-K", d.as_str(), "-a", alg];
    if ksk {
        args.extend(["-f", "KSK"]);
    }
    args.push("ggon.org");
    let out = run("dnssec-keygen", &args, None, 60);
    assert!(out.ok, "dnssec-keygen failed: {}", out.text());
    dir.join(out.stdout.trim())
}

/// An ECDSA P-256 KSK and ZSK from `dnssec-keygen` in `dir`.
pub fn bind_ecdsa_pair(dir: &Path) -> (PathBuf, PathBuf) {
    (
        bind_keygen(dir, "ECDSAP256SHA256", true),
        bind_keygen(dir, "ECDSAP256SHA256", false),
    )
}

/// `ggon-ctl dnssec keygen` in `dir`; returns the key's path without extension.
pub fn ctl_keygen(dir: &Path, alg: &str, ksk: bool) -> PathBuf {
    let d = dir.display().to_string();
    let mut args = vec![
        "dnssec",
        "keygen",
        "ggon.org",
        "--algorithm",
        alg,
        "--dir",
        d.as_str(),
    ];
    if ksk {
        args.push("--ksk");
    }
    let out = run(ctl_bin(), &args, None, 60);
    assert!(out.ok, "ggon-ctl dnssec keygen failed: {}", out.text());
    PathBuf::from(out.stdout.lines().next().unwrap().trim_end_matches(".key"))
}

/// The DNSKEY line of a `.key` file (a trust anchor for unbound/delv).
pub fn dnskey_line(base: &Path) -> String {
    let text = std::fs::read_to_string(format!("{}.key", base.display())).expect("key file");
    let line = text
        .lines()
        .find(|l| l.contains("DNSKEY") && !l.starts_with(';'))
        .expect("a DNSKEY line");
    let f: Vec<&str> = line.split_whitespace().collect();
    let at = f.iter().position(|w| *w == "DNSKEY").expect("DNSKEY");
    format!("ggon.org. DNSKEY {}", f[at + 1..].join(" "))
}

/// A delv trust-anchor file for the key.
pub fn delv_anchor(dir: &Path, base: &Path) -> PathBuf {
    let line = dnskey_line(base);
    let f: Vec<&str> = line.split_whitespace().collect();
    let p = dir.join("anchor.conf");
    std::fs::write(
        &p,
        format!(
            "trust-anchors {{\n  ggon.org. static-key {} {} {} \"{}\";\n}};\n",
            f[2],
            f[3],
            f[4],
            f[5..].concat()
        ),
    )
    .expect("anchor file");
    p
}

/// `delv @server -a anchor +root=ggon.org NAME TYPE`: true when "fully validated".
pub fn delv_validates(
    server: std::net::SocketAddr,
    anchor: &Path,
    name: &str,
    qtype: &str,
) -> (bool, String) {
    delv_under(server, anchor, "ggon.org", &["+tcp"], name, qtype)
}

/// `delv @server -a anchor +root=ROOT [extra] name qtype`: whether it says
/// "fully validated" (and no SERVFAIL), and its output.
pub fn delv_under(
    server: std::net::SocketAddr,
    anchor: &Path,
    root: &str,
    extra: &[&str],
    name: &str,
    qtype: &str,
) -> (bool, String) {
    let port = server.port().to_string();
    let a = anchor.display().to_string();
    let root = format!("+root={root}");
    let mut args = vec!["@127.0.0.1", "-p", &port, "-a", &a, &root];
    args.extend_from_slice(extra);
    args.extend_from_slice(&[name, qtype]);
    let out = run("delv", &args, None, 20);
    let text = out.text();
    (
        text.contains("fully validated") && !text.contains("resolution failed: SERVFAIL"),
        text,
    )
}

/// AXFR the zone from `server` into DIR/NAME and run `dnssec-verify` and
/// `ldns-verify-zone` on it; both must accept it.
pub fn verify_transfer(server: std::net::SocketAddr, dir: &Path, name: &str) {
    let port = server.port().to_string();
    let out = run(
        "dig",
        &[
            "@127.0.0.1",
            "-p",
            &port,
            "+nocmd",
            "+nostats",
            "+nocomments",
            "ggon.org",
            "AXFR",
        ],
        None,
        20,
    );
    assert!(
        out.ok && out.stdout.contains("RRSIG"),
        "AXFR failed or unsigned: {}",
        out.text()
    );
    let file = dir.join(name);
    std::fs::write(&file, &out.stdout).expect("write transfer");
    let f = file.display().to_string();
    // A lone key that signs everything (a CSK, flags 257) is checked with
    // -z, as BIND documents for such zones.
    let csk = !out.stdout.contains("DNSKEY\t256") && !out.stdout.contains("DNSKEY 256");
    let mut args = vec!["-o", "ggon.org", f.as_str()];
    if csk {
        args.insert(0, "-z");
    }
    let v = run("dnssec-verify", &args, None, 60);
    assert!(
        v.ok && v.text().contains("Zone fully signed"),
        "dnssec-verify rejects the transfer {name}: {}",
        v.text()
    );
    let l = run("ldns-verify-zone", &[&f], None, 60);
    assert!(
        l.ok,
        "ldns-verify-zone rejects the transfer {name}: {}",
        l.text()
    );
}

/// `ggon-ctl dnssec keygen --dir keys` where `keys/` (and its parent) do
/// not exist yet: made, and the key written into it.
#[test]
fn keygen_makes_its_directory() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("new/keys");
    let base = ctl_keygen(&dir, "ecdsap256sha256", false);
    assert_eq!(base.parent(), Some(dir.as_path()));
    assert!(std::path::Path::new(&format!("{}.private", base.display())).exists());
}
