//! The control API over TLS (`[control] tls_certificate`, `tls_key`) with
//! an rcgen certificate for 127.0.0.1 signed by a test CA: ggon-ctl works
//! over https with `--ca-file`, plain HTTP to the port gets no HTTP answer,
//! the login cookie is `Secure`; bad certificate or key paths are config
//! errors naming the field and the file.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::Duration;

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName};

use crate::certs::{leaf_cert, test_ca};
use crate::support::ggond::*;

/// Run ggon-ctl with `args` (nothing from the environment).
fn ctl(args: &[&str]) -> (Option<i32>, String, String) {
    let out = Command::new(GGON_CTL)
        .args(args)
        .env_remove("GGON_CONTROL")
        .env_remove("GGON_TOKEN_FILE")
        .env_remove("GGON_CA_FILE")
        .env_remove("GGON_CONFIG")
        .stdin(Stdio::null())
        .output()
        .unwrap();
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// One HTTPS request (trusting only `ca_pem`); the whole response text.
fn https(addr: SocketAddr, ca_pem: &str, request: &str) -> String {
    let mut roots = rustls::RootCertStore::empty();
    for c in CertificateDer::pem_slice_iter(ca_pem.as_bytes()) {
        roots.add(c.unwrap()).unwrap();
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let cfg = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
    let name = ServerName::IpAddress(addr.ip().into());
    let conn = rustls::ClientConnection::new(Arc::new(cfg), name).unwrap();
    let sock = TcpStream::connect_timeout(&addr, Duration::from_secs(5)).unwrap();
    sock.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let mut tls = rustls::StreamOwned::new(conn, sock);
    tls.write_all(request.as_bytes()).unwrap();
    let mut out = Vec::new();
    // The server closes after the answer (Connection: close); a missing
    // close_notify at the end is fine here.
    let _ = tls.read_to_end(&mut out);
    String::from_utf8_lossy(&out).into_owned()
}

fn write_pair(dir: &Path) -> String {
    let (ca, ca_key) = test_ca();
    let (cert, key) = leaf_cert(&["127.0.0.1", "localhost"], (-1, 30), &ca, &ca_key);
    std::fs::write(dir.join("control.crt"), cert.pem() + &ca.pem()).unwrap();
    std::fs::write(dir.join("control.key"), key.serialize_pem()).unwrap();
    std::fs::write(dir.join("ca.pem"), ca.pem()).unwrap();
    ca.pem()
}

#[test]
fn control_api_over_tls_with_ggon_ctl_and_a_secure_cookie() {
    let p = HttpTarget::start(ip("127.0.0.191"));
    let b = HttpTarget::start(ip("127.0.0.192"));
    let mut env = Env::demo(&cic_two_targets(&p, &b));
    let ca_pem = write_pair(env.dir.path());
    let mut config = std::fs::read_to_string(&env.config).unwrap();
    config.push_str(&format!(
        "\n[control]\ntls_certificate = \"{0}/control.crt\"\ntls_key = \"{0}/control.key\"\n",
        env.dir.path().display()
    ));
    std::fs::write(&env.config, config).unwrap();
    let g = env.start();
    let url = format!("https://{}", g.control);
    let ca = env.dir.path().join("ca.pem");
    let token_file = g.token_file.to_str().unwrap().to_string();
    let base = [
        "--control",
        url.as_str(),
        "--token-file",
        token_file.as_str(),
    ];

    // ggon-ctl over https, trusting the test CA.
    let (code, out, err) = ctl(&[
        &base[..],
        &["--ca-file", ca.to_str().unwrap(), "status", "--json"],
    ]
    .concat());
    assert_eq!(code, Some(0), "{out}{err}");
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v["services"][0]["name"], "cic");
    // Without the CA the certificate is not trusted.
    let (code, _, err) = ctl(&[&base[..], &["status"]].concat());
    assert_eq!(code, Some(1), "{err}");
    assert!(err.contains("cannot reach ggond at https://"), "{err}");
    // Plain HTTP to the TLS port: refused by ggon-ctl and by hand.
    let plain = g.control.to_string();
    let (code, _, err) = ctl(&["--control", &plain, "--token-file", &token_file, "status"]);
    assert_eq!(code, Some(1), "{err}");
    let mut s = TcpStream::connect(g.control).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    s.write_all(
        format!("GET /v1/status HTTP/1.1\r\nHost: {plain}\r\nConnection: close\r\n\r\n").as_bytes(),
    )
    .unwrap();
    let mut answer = Vec::new();
    let _ = s.read_to_end(&mut answer);
    assert!(
        !answer.starts_with(b"HTTP/"),
        "plain HTTP got an HTTP answer: {answer:?}"
    );

    // Browser login over TLS: the session cookie is Secure.
    let token = g.token();
    let body = format!("token={token}");
    let resp = https(
        g.control,
        &ca_pem,
        &format!(
            "POST /login HTTP/1.1\r\nHost: {plain}\r\nOrigin: {url}\r\nConnection: close\r\n\
             Content-Type: application/x-www-form-urlencoded\r\nContent-Length: {}\r\n\r\n{body}",
            body.len()
        ),
    );
    assert!(resp.starts_with("HTTP/1.1 303"), "{resp}");
    let cookie = resp
        .lines()
        .find(|l| l.to_ascii_lowercase().starts_with("set-cookie:"))
        .unwrap_or_else(|| panic!("no cookie: {resp}"));
    assert!(
        cookie.contains("HttpOnly") && cookie.contains("SameSite=Strict"),
        "{cookie}"
    );
    assert!(cookie.trim_end().ends_with("; Secure"), "{cookie}");
    // The cookie opens the status page over TLS.
    let id = cookie
        .split_once("ggon_session=")
        .unwrap()
        .1
        .split(';')
        .next()
        .unwrap();
    let page = https(
        g.control,
        &ca_pem,
        &format!("GET / HTTP/1.1\r\nHost: {plain}\r\nCookie: ggon_session={id}\r\nConnection: close\r\n\r\n"),
    );
    assert!(
        page.starts_with("HTTP/1.1 200") && page.contains("cic"),
        "{page}"
    );
}

#[test]
fn bad_control_tls_paths_are_config_errors_naming_field_and_file() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("ggon.org.zone"), DEMO_ZONE).unwrap();
    write_pair(dir.path());
    let check_with = |cert: &str, key: &str, extra: &str| {
        let cfg = format!(
            "[[zone]]\norigin = \"ggon.org\"\nfile = \"ggon.org.zone\"\n\n\
             [control]\ntls_certificate = \"{cert}\"\ntls_key = \"{key}\"\n{extra}"
        );
        std::fs::write(dir.path().join("ggon.toml"), cfg).unwrap();
        let out = Command::new(GGOND)
            .args(["--check-config", "--config", "ggon.toml"])
            .current_dir(dir.path())
            .stdin(Stdio::null())
            .output()
            .unwrap();
        (
            out.status.code(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    };
    let check = |cert: &str, key: &str| check_with(cert, key, "");
    let (code, err) = check("missing.crt", "control.key");
    assert_eq!(code, Some(2), "{err}");
    assert!(
        err.contains("ggon.toml:6: field `control.tls_certificate`")
            && err.contains("missing.crt: cannot read"),
        "{err}"
    );
    let (code, err) = check("control.crt", "nokey.pem");
    assert_eq!(code, Some(2), "{err}");
    assert!(
        err.contains("ggon.toml:7: field `control.tls_key`")
            && err.contains("nokey.pem: cannot read"),
        "{err}"
    );
    // A file with no private key in it.
    let (code, err) = check("control.crt", "ca.pem");
    assert_eq!(code, Some(2), "{err}");
    assert!(err.contains("field `control.tls_key`"), "{err}");
    let (code, out) = check("control.crt", "control.key");
    assert_eq!(code, Some(0), "{out}");
    // Cluster mode: the CA the leader's certificate is checked against is
    // needed, and must be a readable PEM certificate file.
    let cluster = "\n[cluster]\netcd = [\"http://127.0.0.1:2379\"]\nnode = \"a\"\n";
    let (code, err) = check_with("control.crt", "control.key", cluster);
    assert_eq!(code, Some(2), "{err}");
    assert!(
        err.contains("field `control.tls_ca_file`") && err.contains("needs tls_ca_file"),
        "{err}"
    );
    let with_ca = |ca: &str| format!("tls_ca_file = \"{ca}\"\n{cluster}");
    let (code, err) = check_with("control.crt", "control.key", &with_ca("none.pem"));
    assert_eq!(code, Some(2), "{err}");
    assert!(
        err.contains("ggon.toml:8: field `control.tls_ca_file`")
            && err.contains("none.pem: cannot read"),
        "{err}"
    );
    let (code, out) = check_with("control.crt", "control.key", &with_ca("ca.pem"));
    assert_eq!(code, Some(0), "{out}");
}

/// With nothing listening at `--control`, ggon-ctl says why (the refused
/// connection, not reqwest's "error sending request") and what to check.
#[test]
fn ggon_ctl_names_why_it_cannot_reach_ggond() {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let token = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(token.path(), "t0ken\n").unwrap();
    let control = format!("http://127.0.0.1:{port}");
    let (code, out, err) = ctl(&[
        "--control",
        &control,
        "--token-file",
        token.path().to_str().unwrap(),
        "status",
    ]);
    assert_eq!(code, Some(1), "{out}{err}");
    assert_eq!(
        err.trim_end(),
        format!(
            "ggon-ctl: error: cannot reach ggond at {control}: connect refused \
             (is ggond running, and is --control its control address?)"
        )
    );
}
