//! etcd over https with client certificates (`--client-cert-auth`), as
//! etcd is secured across sites: a ggond node with `[cluster] ca_file`,
//! `cert_file` and `key_file` joins, leads and takes a remap; one whose
//! certificate another CA signed is refused by etcd, and says so naming
//! its certificate file.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use rcgen::{BasicConstraints, CertificateParams, IsCa, KeyPair};

use crate::support::ggond::{poll, Ggond, DEMO_ZONE};
use crate::support::process::stable_port;

const ETCD: &str = "/usr/bin/etcd";

struct Ca {
    cert: rcgen::Certificate,
    key: KeyPair,
}

impl Ca {
    fn new(dir: &Path, name: &str) -> (Ca, PathBuf) {
        let key = KeyPair::generate().unwrap();
        let mut p = CertificateParams::new(Vec::<String>::new()).unwrap();
        p.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        let cert = p.self_signed(&key).unwrap();
        let path = dir.join(format!("{name}.pem"));
        std::fs::write(&path, cert.pem()).unwrap();
        (Ca { cert, key }, path)
    }

    /// A certificate for `names` and its key, as `dir/NAME.crt`/`.key`.
    fn issue(&self, dir: &Path, name: &str, names: &[&str]) -> (PathBuf, PathBuf) {
        let key = KeyPair::generate().unwrap();
        let p = CertificateParams::new(names.iter().map(|n| n.to_string()).collect::<Vec<_>>())
            .unwrap();
        let cert = p.signed_by(&key, &self.cert, &self.key).unwrap();
        let (c, k) = (
            dir.join(format!("{name}.crt")),
            dir.join(format!("{name}.key")),
        );
        std::fs::write(&c, cert.pem()).unwrap();
        std::fs::write(&k, key.serialize_pem()).unwrap();
        (c, k)
    }
}

/// One etcd member serving https and requiring client certificates signed
/// by `ca`; killed on drop.
struct TlsEtcd(Child);

impl Drop for TlsEtcd {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn node_config(dir: &Path, endpoint: &str, ca: &Path, cert: &Path, key: &Path) -> PathBuf {
    std::fs::write(dir.join("ggon.org.zone"), DEMO_ZONE).unwrap();
    let cfg = format!(
        "[cluster]\netcd = [\"{endpoint}\"]\nnode = \"node1\"\nlease_ttl = \"2s\"\n\
         ca_file = \"{}\"\ncert_file = \"{}\"\nkey_file = \"{}\"\n\n\
         [[zone]]\norigin = \"ggon.org\"\nfile = \"ggon.org.zone\"\n\n\
         [[service]]\nname = \"cic\"\nfqdn = \"cic.ggon.org\"\nttl = 30\n\n\
         [[service.target]]\nname = \"primary\"\naddresses = [\"127.0.0.11\"]\n\
         check = {{ type = \"exec\", command = [\"true\"], interval = \"1s\" }}\n\n\
         [[service.target]]\nname = \"backup\"\naddresses = [\"127.0.0.12\"]\n\
         check = {{ type = \"exec\", command = [\"true\"], interval = \"1s\" }}\n",
        ca.display(),
        cert.display(),
        key.display()
    );
    let path = dir.join("ggon.toml");
    std::fs::write(&path, cfg).unwrap();
    path
}

fn start_node(dir: &Path, config: &Path) -> Ggond {
    let state = dir.join("state");
    std::fs::create_dir_all(&state).unwrap();
    Ggond::start(
        config,
        &state,
        &dir.join("ggond.log"),
        &dir.join("ready.json"),
    )
}

#[test]
fn client_certificates_are_used_and_a_wrong_one_is_named() {
    let certs = tempfile::tempdir().unwrap();
    let (ca, ca_path) = Ca::new(certs.path(), "ca");
    let (server_crt, server_key) = ca.issue(certs.path(), "etcd", &["127.0.0.1", "localhost"]);
    let (client_crt, client_key) = ca.issue(certs.path(), "node1", &["node1"]);
    let (other, _) = Ca::new(certs.path(), "other-ca");
    let (stranger_crt, stranger_key) = other.issue(certs.path(), "stranger", &["node1"]);

    let (client_port, peer_port) = (stable_port(), stable_port());
    let endpoint = format!("https://127.0.0.1:{client_port}");
    let peer = format!("http://127.0.0.1:{peer_port}");
    let log = std::fs::File::create(certs.path().join("etcd.log")).unwrap();
    let etcd = TlsEtcd(
        Command::new(ETCD)
            .args(["--name", "m0", "--data-dir"])
            .arg(certs.path().join("m0.etcd"))
            .args([
                "--listen-client-urls",
                &endpoint,
                "--advertise-client-urls",
                &endpoint,
            ])
            .args([
                "--listen-peer-urls",
                &peer,
                "--initial-advertise-peer-urls",
                &peer,
            ])
            .args(["--initial-cluster", &format!("m0={peer}")])
            .arg("--cert-file")
            .arg(&server_crt)
            .arg("--key-file")
            .arg(&server_key)
            .arg("--trusted-ca-file")
            .arg(&ca_path)
            .arg("--client-cert-auth")
            .args(["--logger", "zap", "--log-outputs", "stderr"])
            .env_remove("ETCDCTL_API")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::from(log))
            .spawn()
            .expect("run etcd"),
    );

    // The right certificate: the node joins, leads and takes a remap.
    let good = tempfile::tempdir().unwrap();
    let cfg = node_config(good.path(), &endpoint, &ca_path, &client_crt, &client_key);
    let node = start_node(good.path(), &cfg);
    let led = poll(Duration::from_secs(20), || {
        let out = node.ctl(&["cluster"]);
        out.stdout.contains("(leader)").then_some(())
    });
    assert!(
        led.is_some(),
        "no leadership over etcd with a client certificate; log:\n{}\netcd:\n{}",
        std::fs::read_to_string(&node.log).unwrap_or_default(),
        std::fs::read_to_string(certs.path().join("etcd.log")).unwrap_or_default()
    );
    let out = node.ctl(&["remap", "cic", "--to", "backup"]);
    assert!(out.ok(), "{out:?}");
    drop(node);

    // Another CA's certificate: etcd refuses it, and the node says which
    // file it presented.
    let bad = tempfile::tempdir().unwrap();
    let cfg = node_config(
        bad.path(),
        &endpoint,
        &ca_path,
        &stranger_crt,
        &stranger_key,
    );
    let node = start_node(bad.path(), &cfg);
    let named = poll(Duration::from_secs(30), || {
        let out = node.ctl(&["cluster"]);
        let text = out.stdout + &out.stderr;
        (text.contains("certificate") && text.contains(&*stranger_crt.to_string_lossy()))
            .then_some(text)
    });
    assert!(
        named.is_some(),
        "the refused certificate is not named; ggon-ctl cluster: {:?}\nlog:\n{}",
        node.ctl(&["cluster"]),
        std::fs::read_to_string(&node.log).unwrap_or_default()
    );
    let log = std::fs::read_to_string(&node.log).unwrap();
    assert!(
        log.contains(&*stranger_crt.to_string_lossy()),
        "the log does not name the certificate file:\n{log}"
    );
    drop(node);
    drop(etcd);
}
