//! Certificate readiness of https targets: the audit behind `ggon-ctl
//! audit-certs` and ggond's periodic `[cert_audit]`.
//!
//! For every target of an https service (one whose check URL is `https://`),
//! connect to each of the target's answered addresses on the check URL's port
//! with SNI = the service's name, and report whether the certificate chain is
//! valid for that name (webpki roots plus `--ca-file`) and how many days the
//! leaf certificate has left. After a remap users reach the target under the
//! service's name, so a certificate for another name (or an expired one) on a
//! standby target is a failover that breaks for them.

use std::io::Read;
use std::net::{SocketAddr, TcpStream};
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use crate::config::{CheckKind, Config};
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::client::WebPkiServerVerifier;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{
    ClientConfig, ClientConnection, DigitallySignedStruct, RootCertStore, SignatureScheme,
};
use serde::Serialize;

/// One address of one target, checked.
#[derive(Debug, Clone, Serialize, serde::Deserialize, PartialEq)]
pub struct CertCheck {
    pub service: String,
    pub target: String,
    pub address: String,
    pub name: String,
    /// The chain is valid for `name` now.
    pub valid: bool,
    pub error: Option<String>,
    /// Days until the leaf certificate's notAfter (negative: expired).
    pub days_left: Option<i64>,
    pub not_after: Option<String>,
    /// Valid, but fewer than the warning threshold's days left.
    pub expiring: bool,
}

impl CertCheck {
    /// Why this certificate would break a remap, in a word or two
    /// ("wrong name", "expired", "expiring", ...); `None`: ready.
    pub fn problem(&self) -> Option<&'static str> {
        match &self.error {
            Some(e) => Some(short(e)),
            None if self.expiring => Some("expiring"),
            None => None,
        }
    }
}

/// A short reason for a broken certificate.
pub fn short(error: &str) -> &'static str {
    let e = error.to_ascii_lowercase();
    if e.contains("not valid for name") {
        "wrong name"
    } else if e.contains("expired") {
        "expired"
    } else if e.contains("unknownissuer") || e.contains("unknown issuer") {
        "untrusted issuer"
    } else if e.contains("connect") {
        "unreachable"
    } else {
        "handshake failed"
    }
}

/// Why the audit could not run at all (one broken certificate is a finding,
/// not an error).
#[derive(Debug, thiserror::Error)]
pub enum AuditError {
    /// The extra CA file (`--ca-file`, `cert_audit.ca_file`) cannot be used.
    #[error("{}: {error}", path.display())]
    CaFile {
        path: std::path::PathBuf,
        error: CaFileError,
    },
    #[error("{0}")]
    Tls(#[from] rustls::Error),
    #[error("{0}")]
    Verifier(#[from] rustls::client::VerifierBuilderError),
    /// Stopped between handshakes (ggond is shutting down).
    #[error("stopped")]
    Stopped,
    #[error("no service `{0}` in the config")]
    NoService(String),
}

/// What is wrong with an extra CA file.
#[derive(Debug, thiserror::Error)]
pub enum CaFileError {
    #[error("{0}")]
    Pem(#[from] rustls::pki_types::pem::Error),
    #[error("{0}")]
    Certificate(#[from] rustls::Error),
}

/// Why one handshake did not prove the certificate ready.
#[derive(Debug, thiserror::Error)]
enum HandshakeError {
    #[error("{0}")]
    Name(#[from] rustls::pki_types::InvalidDnsNameError),
    #[error("{0}")]
    Tls(#[from] rustls::Error),
    #[error("cannot connect: {0}")]
    Connect(std::io::Error),
    /// The TLS exchange failed: rustls's own error when it gave one.
    #[error("{}", .0.get_ref().map_or_else(|| "handshake failed".to_string(), ToString::to_string))]
    Exchange(std::io::Error),
    #[error("handshake did not finish")]
    Unfinished,
}

/// Records the leaf certificate, then verifies with webpki.
#[derive(Debug)]
struct Capture {
    inner: Arc<WebPkiServerVerifier>,
    leaf: Mutex<Option<Vec<u8>>>,
}

impl ServerCertVerifier for Capture {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        *self.leaf.lock().expect("not poisoned") = Some(end_entity.to_vec());
        self.inner
            .verify_server_cert(end_entity, intermediates, server_name, ocsp, now)
    }
    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.inner.verify_tls12_signature(message, cert, dss)
    }
    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.inner.verify_tls13_signature(message, cert, dss)
    }
    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.inner.supported_verify_schemes()
    }
}

fn roots(ca_file: Option<&Path>) -> Result<Arc<RootCertStore>, AuditError> {
    let mut store = RootCertStore {
        roots: webpki_roots::TLS_SERVER_ROOTS.to_vec(),
    };
    if let Some(path) = ca_file {
        let add = |store: &mut RootCertStore| -> Result<(), CaFileError> {
            for c in CertificateDer::pem_file_iter(path)? {
                store.add(c?)?;
            }
            Ok(())
        };
        add(&mut store).map_err(|error| AuditError::CaFile {
            path: path.to_path_buf(),
            error,
        })?;
    }
    Ok(Arc::new(store))
}

/// Reads one DER TLV at `d[at..]`: (tag, start of content, end of content).
fn tlv(d: &[u8], at: usize) -> Option<(u8, usize, usize)> {
    let tag = *d.get(at)?;
    let first = *d.get(at + 1)? as usize;
    let (len, start) = if first < 0x80 {
        (first, at + 2)
    } else {
        let n = first & 0x7f;
        if n == 0 || n > 4 {
            return None;
        }
        let mut len = 0usize;
        for i in 0..n {
            len = (len << 8) | *d.get(at + 2 + i)? as usize;
        }
        (len, at + 2 + n)
    };
    let end = start.checked_add(len)?;
    (end <= d.len()).then_some((tag, start, end))
}

/// The notAfter of an X.509 certificate (DER), as RFC 3339.
pub fn not_after(der: &[u8]) -> Option<String> {
    let (_, cert, _) = tlv(der, 0)?; // Certificate
    let (_, tbs, _) = tlv(der, cert)?; // TBSCertificate
    let mut at = tbs;
    let (tag, _, end) = tlv(der, at)?;
    if tag == 0xa0 {
        at = end; // [0] version
    }
    for _ in 0..3 {
        at = tlv(der, at)?.2; // serial, signature, issuer
    }
    let (_, validity, _) = tlv(der, at)?;
    let nb_end = tlv(der, validity)?.2;
    let (tag, s, e) = tlv(der, nb_end)?;
    let t = std::str::from_utf8(&der[s..e]).ok()?.trim_end_matches('Z');
    let full = match (tag, t.len()) {
        (0x17, 12) => {
            let yy: u32 = t[..2].parse().ok()?;
            format!("{}{t}", if yy >= 50 { "19" } else { "20" })
        }
        (0x18, 14) => t.to_string(),
        _ => return None,
    };
    Some(format!(
        "{}-{}-{}T{}:{}:{}Z",
        &full[..4],
        &full[4..6],
        &full[6..8],
        &full[8..10],
        &full[10..12],
        &full[12..14]
    ))
}

fn days_left(not_after: &str, now: SystemTime) -> Option<i64> {
    let t = humantime::parse_rfc3339(not_after).ok()?;
    let secs = match t.duration_since(now) {
        Ok(d) => d.as_secs() as i64,
        Err(e) => -(e.duration().as_secs() as i64),
    };
    Some(secs.div_euclid(86_400))
}

/// Handshakes with `addr` under `name`; returns the leaf and the verdict.
fn handshake(
    cfg: &Arc<ClientConfig>,
    capture: &Capture,
    addr: SocketAddr,
    name: &str,
    timeout: Duration,
) -> (Option<Vec<u8>>, Result<(), HandshakeError>) {
    *capture.leaf.lock().expect("not poisoned") = None;
    let run = || -> Result<(), HandshakeError> {
        let server_name = ServerName::try_from(name.to_string())?;
        let mut conn = ClientConnection::new(cfg.clone(), server_name)?;
        let mut sock =
            TcpStream::connect_timeout(&addr, timeout).map_err(HandshakeError::Connect)?;
        let _ = sock.set_read_timeout(Some(timeout));
        let _ = sock.set_write_timeout(Some(timeout));
        // Bounded: a handshake is a few round trips.
        for _ in 0..32 {
            if !conn.is_handshaking() {
                break;
            }
            conn.complete_io(&mut sock)
                .map_err(HandshakeError::Exchange)?;
        }
        if conn.is_handshaking() {
            return Err(HandshakeError::Unfinished);
        }
        conn.send_close_notify();
        let _ = conn.complete_io(&mut sock);
        let _ = sock.read(&mut [0u8; 1]);
        Ok(())
    };
    let verdict = run();
    let leaf = capture.leaf.lock().expect("not poisoned").take();
    (leaf, verdict)
}

/// The https targets of `service` (all services if `None`), checked.
pub fn audit(
    cfg: &Config,
    service: Option<&str>,
    warn_days: i64,
    ca_file: Option<&Path>,
    timeout: Duration,
) -> Result<Vec<CertCheck>, AuditError> {
    audit_until(
        cfg,
        service,
        warn_days,
        ca_file,
        timeout,
        &AtomicBool::new(false),
    )
}

/// [`audit`], giving up between handshakes once `stop` is set (ggond at
/// shutdown: a blocking audit must not hold the process for long).
pub fn audit_until(
    cfg: &Config,
    service: Option<&str>,
    warn_days: i64,
    ca_file: Option<&Path>,
    timeout: Duration,
    stop: &AtomicBool,
) -> Result<Vec<CertCheck>, AuditError> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let inner =
        WebPkiServerVerifier::builder_with_provider(roots(ca_file)?, provider.clone()).build()?;
    let capture = Arc::new(Capture {
        inner,
        leaf: Mutex::new(None),
    });
    let client = Arc::new(
        ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()?
            .dangerous()
            .with_custom_certificate_verifier(capture.clone())
            .with_no_client_auth(),
    );
    let mut out = Vec::new();
    let mut found = false;
    for svc in &cfg.services {
        if service.is_some_and(|s| s != svc.name.get_ref().as_str()) {
            continue;
        }
        found = true;
        let name = svc.fqdn.get_ref().trim_end_matches('.').to_string();
        for t in svc.targets.get_ref() {
            let CheckKind::Http { url, .. } = &t.check.kind else {
                continue;
            };
            let Ok(u) = reqwest::Url::parse(url) else {
                continue;
            };
            if u.scheme() != "https" {
                continue;
            }
            let port = u.port().unwrap_or(443);
            for ip in t.addresses.get_ref() {
                if stop.load(Ordering::Relaxed) {
                    return Err(AuditError::Stopped);
                }
                let addr = SocketAddr::new(*ip, port);
                let (leaf, verdict) = handshake(&client, &capture, addr, &name, timeout);
                let not_after = leaf.as_deref().and_then(not_after);
                let days = not_after
                    .as_deref()
                    .and_then(|n| days_left(n, SystemTime::now()));
                let valid = verdict.is_ok();
                out.push(CertCheck {
                    service: svc.name.get_ref().clone(),
                    target: t.name.get_ref().clone(),
                    address: addr.to_string(),
                    name: name.clone(),
                    valid,
                    error: verdict.err().map(|e| e.to_string()),
                    days_left: days,
                    not_after,
                    expiring: valid && days.is_some_and(|d| d < warn_days),
                });
            }
        }
    }
    if let (Some(s), false) = (service, found) {
        return Err(AuditError::NoService(s.to_string()));
    }
    Ok(out)
}
