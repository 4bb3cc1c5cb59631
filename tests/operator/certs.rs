//! `ggon-ctl audit-certs` against local HTTPS listeners whose certificates
//! are made here (rcgen, signed by a test CA): one valid for the service's
//! name, one for another name, one expired.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener};
use std::process::Command;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

use rcgen::{BasicConstraints, CertificateParams, IsCa, KeyPair};
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use serde_json::Value;

use crate::support::ggond::DEMO_ZONE;

/// The longest a test listener runs.
const LIMIT: Duration = Duration::from_secs(90);

/// A TLS listener that completes handshakes (and answers one HTTP request
/// per connection with 200) until dropped, or for [`LIMIT`] at most.
pub(crate) struct TlsListener {
    pub(crate) addr: SocketAddr,
    stop: Arc<AtomicBool>,
    handle: Option<thread::JoinHandle<()>>,
}

impl Drop for TlsListener {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(h) = self.handle.take() {
            let _ = h.join();
        }
    }
}

/// One connection: handshake, read the request (if any), answer 200.
fn answer(cfg: Arc<rustls::ServerConfig>, mut sock: std::net::TcpStream) {
    sock.set_nonblocking(false).unwrap();
    sock.set_read_timeout(Some(Duration::from_secs(2))).unwrap();
    let mut conn = rustls::ServerConnection::new(cfg).unwrap();
    for _ in 0..32 {
        if !conn.is_handshaking() || conn.complete_io(&mut sock).is_err() {
            break;
        }
    }
    if !conn.is_handshaking() {
        let mut tls = rustls::Stream::new(&mut conn, &mut sock);
        let mut buf = [0u8; 4096];
        if matches!(tls.read(&mut buf), Ok(n) if n > 0) {
            let _ = tls.write_all(
                b"HTTP/1.1 200 OK\r\ncontent-length: 3\r\nconnection: close\r\n\r\nok\n",
            );
        }
    }
    conn.send_close_notify();
    let _ = conn.complete_io(&mut sock);
}

pub(crate) fn tls_listener(
    chain: Vec<CertificateDer<'static>>,
    key: PrivateKeyDer<'static>,
) -> TlsListener {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let cfg = Arc::new(
        rustls::ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_no_client_auth()
            .with_single_cert(chain, key)
            .unwrap(),
    );
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    listener.set_nonblocking(true).unwrap();
    let addr = listener.local_addr().unwrap();
    let stop = Arc::new(AtomicBool::new(false));
    let stop2 = stop.clone();
    let handle = thread::spawn(move || {
        let deadline = Instant::now() + LIMIT;
        while !stop2.load(Ordering::Relaxed) && Instant::now() < deadline {
            let Ok((sock, _)) = listener.accept() else {
                thread::sleep(Duration::from_millis(10));
                continue;
            };
            // Each connection on its own thread (ends within its read timeout).
            let cfg = cfg.clone();
            thread::spawn(move || answer(cfg, sock));
        }
    });
    TlsListener {
        addr,
        stop,
        handle: Some(handle),
    }
}

/// A test CA: its certificate and key.
pub(crate) fn test_ca() -> (rcgen::Certificate, KeyPair) {
    let ca_key = KeyPair::generate().unwrap();
    let mut ca_params = CertificateParams::new(Vec::<String>::new()).unwrap();
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    (ca_params.self_signed(&ca_key).unwrap(), ca_key)
}

/// A leaf for `names` valid from `days.0` to `days.1` days from now, signed
/// by the CA: (certificate, key).
pub(crate) fn leaf_cert(
    names: &[&str],
    days: (i64, i64),
    ca: &rcgen::Certificate,
    ca_key: &KeyPair,
) -> (rcgen::Certificate, KeyPair) {
    let key = KeyPair::generate().unwrap();
    let names: Vec<String> = names.iter().map(|n| n.to_string()).collect();
    let mut p = CertificateParams::new(names).unwrap();
    let now = time::OffsetDateTime::now_utc();
    p.not_before = now + time::Duration::days(days.0);
    p.not_after = now + time::Duration::days(days.1);
    let cert = p.signed_by(&key, ca, ca_key).unwrap();
    (cert, key)
}

pub(crate) fn leaf(
    name: &str,
    days: (i64, i64),
    ca: &rcgen::Certificate,
    ca_key: &KeyPair,
) -> TlsListener {
    let (cert, key) = leaf_cert(&[name], days, ca, ca_key);
    tls_listener(
        vec![cert.der().clone(), ca.der().clone()],
        PrivateKeyDer::Pkcs8(key.serialize_der().into()),
    )
}

fn audit(cfg: &std::path::Path, args: &[&str]) -> (bool, Value) {
    let out = Command::new(env!("CARGO_BIN_EXE_ggon-ctl"))
        .arg("--config")
        .arg(cfg)
        .arg("audit-certs")
        .args(args)
        .arg("--json")
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    let v: Value = serde_json::from_str(text.trim())
        .unwrap_or_else(|e| panic!("{e}: {text}{}", String::from_utf8_lossy(&out.stderr)));
    (out.status.success(), v)
}

fn by_target<'a>(v: &'a Value, target: &str) -> &'a Value {
    v["certificates"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["target"] == target)
        .unwrap_or_else(|| panic!("no {target} in {v}"))
}

/// The test CA (PEM), its three listeners, and `[[service]]` TOML whose
/// targets `primary`, `backup`, `backup2` are them (valid for cic.ggon.org,
/// valid for cic.in2p3.fr, expired).
fn three_targets() -> (String, Vec<TlsListener>, String) {
    let (ca, ca_key) = test_ca();
    let listeners = vec![
        leaf("cic.ggon.org", (-1, 90), &ca, &ca_key),
        leaf("cic.in2p3.fr", (-1, 90), &ca, &ca_key),
        leaf("cic.ggon.org", (-60, -3), &ca, &ca_key),
    ];
    let mut services = String::from("[[service]]\nname = \"cic\"\nfqdn = \"cic.ggon.org\"\n");
    for (name, l) in ["primary", "backup", "backup2"].iter().zip(&listeners) {
        services.push_str(&format!(
            "\n[[service.target]]\nname = \"{name}\"\naddresses = [\"127.0.0.1\"]\n\
             check = {{ type = \"https\", url = \"https://127.0.0.1:{}/\", interval = \"1s\" }}\n",
            l.addr.port()
        ));
    }
    (ca.pem(), listeners, services)
}

#[test]
fn audit_certs_valid_wrong_name_and_expired() {
    let (ca_pem, _listeners, services) = three_targets();
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("ggon.org.zone"), DEMO_ZONE).unwrap();
    let ca_file = dir.path().join("ca.pem");
    std::fs::write(&ca_file, ca_pem).unwrap();
    let cfg = format!("[[zone]]\norigin = \"ggon.org\"\nfile = \"ggon.org.zone\"\n\n{services}");
    let cfg_path = dir.path().join("ggon.toml");
    std::fs::write(&cfg_path, cfg).unwrap();
    let ca_arg = ca_file.to_str().unwrap();

    let start = Instant::now();
    let (ok, v) = audit(&cfg_path, &["cic", "--ca-file", ca_arg]);
    let took = start.elapsed();
    assert!(!ok, "a broken standby fails the audit: {v}");
    let p = by_target(&v, "primary");
    assert_eq!(p["valid"], true, "{p}");
    assert_eq!(p["name"], "cic.ggon.org");
    let days = p["days_left"].as_i64().unwrap();
    assert!((88..=90).contains(&days), "{p}");
    assert_eq!(p["expiring"], false);

    let b = by_target(&v, "backup");
    assert_eq!(b["valid"], false, "{b}");
    let err = b["error"].as_str().unwrap();
    assert!(err.contains("not valid for name"), "{err}");
    assert!(err.contains("cic.in2p3.fr"), "the name it covers: {err}");

    let e = by_target(&v, "backup2");
    assert_eq!(e["valid"], false, "{e}");
    let err = e["error"].as_str().unwrap();
    assert!(err.to_lowercase().contains("expired"), "{err}");
    assert!(e["days_left"].as_i64().unwrap() < 0, "{e}");

    // The warning threshold: 90 days left is "expiring" under 120.
    let (_, v) = audit(
        &cfg_path,
        &["cic", "--ca-file", ca_arg, "--warn-days", "120"],
    );
    assert_eq!(by_target(&v, "primary")["expiring"], true);

    // Without the test CA nothing is trusted.
    let (_, v) = audit(&cfg_path, &["cic"]);
    let p = by_target(&v, "primary");
    assert_eq!(p["valid"], false, "{p}");
    assert!(
        p["days_left"].as_i64().is_some(),
        "days left even when untrusted"
    );

    // The text form names each verdict.
    let out = Command::new(env!("CARGO_BIN_EXE_ggon-ctl"))
        .arg("--config")
        .arg(&cfg_path)
        .args(["audit-certs", "--ca-file", ca_arg])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    eprintln!("{text}");
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(text.lines().count(), 3, "{text}");
    assert!(
        text.contains("ok  ") && text.matches("BROKEN").count() == 2,
        "{text}"
    );
    assert!(took < Duration::from_secs(10), "{took:?}");
}

/// `status` and `drill` end with one line on the certificates.
#[test]
fn status_and_drill_name_the_targets_not_ready_for_a_remap() {
    let (ca_pem, _listeners, services) = three_targets();
    let mut env = crate::support::ggond::Env::demo(&services);
    let ca_file = env.dir.path().join("ca.pem");
    std::fs::write(&ca_file, ca_pem).unwrap();
    let g = env.start();
    let ctl = |args: &[&str]| {
        let out = Command::new(env!("CARGO_BIN_EXE_ggon-ctl"))
            .arg("--control")
            .arg(g.control.to_string())
            .arg("--token-file")
            .arg(&g.token_file)
            .arg("--config")
            .arg(&env.config)
            .args(args)
            .env("GGON_CA_FILE", &ca_file)
            .output()
            .unwrap();
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    for args in [&["status", "cic"][..], &["drill", "cic"][..]] {
        let out = ctl(args);
        let line = out
            .lines()
            .find(|l| l.starts_with("certificates:"))
            .unwrap_or_else(|| panic!("{args:?}: no certificate line in\n{out}"));
        assert!(line.contains("1 ok, 2 NOT READY"), "{line}");
        assert!(
            line.contains("cic/backup ") && line.contains("(wrong name)"),
            "{line}"
        );
        assert!(
            line.contains("cic/backup2 ") && line.contains("(expired)"),
            "{line}"
        );
    }
    // --json output stays JSON only.
    let out = ctl(&["status", "cic", "--json"]);
    assert!(serde_json::from_str::<Value>(out.trim()).is_ok(), "{out}");
}
