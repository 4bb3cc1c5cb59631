//! Control TLS in cluster mode: three nodes serving their control API over
//! https with certificates for 127.0.0.1 signed by one CA, each trusting
//! that CA (`[control] tls_ca_file`) for the leader's certificate. A remap
//! sent to a follower is passed on over https and every node answers it; a
//! follower trusting another CA refuses to pass a change on, says why, and
//! nothing changes.

use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use rcgen::{BasicConstraints, CertificateParams, IsCa, KeyPair};

use crate::support::cluster::{cic, Nodes};
use crate::support::etcd::EtcdCluster;
use crate::support::ggond::{ip, HttpTarget};

const BACKUP: Ipv4Addr = Ipv4Addr::new(127, 0, 0, 12);

/// A CA written to `dir/NAME.pem`: (its path, the certificate, its key).
fn ca(dir: &Path, name: &str) -> (PathBuf, rcgen::Certificate, KeyPair) {
    let key = KeyPair::generate().unwrap();
    let mut p = CertificateParams::new(Vec::<String>::new()).unwrap();
    p.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    let cert = p.self_signed(&key).unwrap();
    let path = dir.join(format!("{name}.pem"));
    std::fs::write(&path, cert.pem()).unwrap();
    (path, cert, key)
}

/// A certificate for 127.0.0.1 signed by the CA, and its key, written to
/// `dir/NAME.crt` and `dir/NAME.key`.
fn leaf(dir: &Path, name: &str, ca: &rcgen::Certificate, ca_key: &KeyPair) -> (PathBuf, PathBuf) {
    let key = KeyPair::generate().unwrap();
    let p = CertificateParams::new(vec!["127.0.0.1".to_string()]).unwrap();
    let cert = p.signed_by(&key, ca, ca_key).unwrap();
    let (c, k) = (
        dir.join(format!("{name}.crt")),
        dir.join(format!("{name}.key")),
    );
    std::fs::write(&c, cert.pem()).unwrap();
    std::fs::write(&k, key.serialize_pem()).unwrap();
    (c, k)
}

fn control_tls(cert: &Path, key: &Path, trust: &Path) -> String {
    format!(
        "\n[control]\ntls_certificate = \"{}\"\ntls_key = \"{}\"\ntls_ca_file = \"{}\"\n",
        cert.display(),
        key.display(),
        trust.display()
    )
}

#[test]
fn changes_reach_the_leader_over_verified_https_and_an_untrusted_leader_is_refused() {
    let certs = tempfile::tempdir().unwrap();
    let (ca_path, ca_cert, ca_key) = ca(certs.path(), "ca");
    let (other_ca, _, _) = ca(certs.path(), "other-ca");
    let etcd = EtcdCluster::start(3);
    let primary = HttpTarget::start(ip("127.0.0.11"));
    let backup = HttpTarget::start(ip("127.0.0.12"));
    let tls: Vec<(PathBuf, PathBuf)> = (0..3)
        .map(|i| leaf(certs.path(), &format!("node{}", i + 1), &ca_cert, &ca_key))
        .collect();
    let services: Vec<String> = tls
        .iter()
        .map(|(c, k)| cic(&primary.url(), &backup.url()) + &control_tls(c, k, &ca_path))
        .collect();
    let mut nodes = Nodes::start_tls(&vec![etcd.endpoints(); 3], &services, &ca_path);
    let leader = nodes
        .wait_leader(Duration::from_secs(15))
        .unwrap_or_else(|| panic!("no leader; logs:\n{}", nodes.logs()));
    let f = (0..3).find(|i| *i != leader).unwrap();

    // A remap through a follower: passed on over https, answered by all.
    let out = nodes
        .node(f)
        .ctl(&["remap", "cic", "--to", "backup", "--reason", "tls"]);
    assert!(out.ok(), "{out:?}\n{}", nodes.logs());
    for i in 0..3 {
        assert_eq!(nodes.answer(i).0, vec![BACKUP], "{}", nodes.answers());
    }
    let log = std::fs::read_to_string(&nodes.node(f).log).unwrap();
    assert!(
        log.contains("operator call passed to the leader") && log.contains("leader=https://"),
        "the follower did not pass the call on over https:\n{log}"
    );

    // The follower now trusts another CA: it cannot verify the leader.
    nodes.kill(f);
    let cfg = std::fs::read_to_string(nodes.config(f)).unwrap();
    let wrong = cfg.replace(
        &format!("tls_ca_file = \"{}\"", ca_path.display()),
        &format!("tls_ca_file = \"{}\"", other_ca.display()),
    );
    assert_ne!(cfg, wrong);
    std::fs::write(nodes.config(f), wrong).unwrap();
    nodes.restart(f);
    let leader = nodes
        .wait_leader(Duration::from_secs(15))
        .unwrap_or_else(|| panic!("no leader after the restart; logs:\n{}", nodes.logs()));
    assert_ne!(leader, f, "the restarted follower took the lead");
    let out = nodes.node(f).ctl(&["release", "cic"]);
    assert!(
        !out.ok(),
        "a change passed to an unverified leader: {out:?}"
    );
    assert!(
        out.stderr
            .contains("cannot be verified against [control] tls_ca_file")
            && out.stderr.contains("Nothing was changed"),
        "{out:?}"
    );
    // Nothing changed: still pinned to the backup, on every node.
    let st = nodes.status(leader).unwrap();
    assert_eq!(st["services"][0]["mode"], "manual", "{st}");
    for i in 0..3 {
        assert_eq!(nodes.answer(i).0, vec![BACKUP], "{}", nodes.answers());
    }
    // Through the leader itself it works (the pin is released).
    let out = nodes.node(leader).ctl(&["release", "cic"]);
    assert!(out.ok(), "{out:?}");
}
