//! TLS for the control listener (optional: `[control] tls_certificate` and
//! `tls_key`).
//!
//! Owns: reading the certificate chain and private key (PEM) into a rustls
//! server configuration (ring provider, the one the whole build uses), with
//! errors that name the field and the file, and the marker [`OverTls`] that
//! tells handlers a request came over TLS (the session cookie is then
//! `Secure`); in a cluster, the CA (`tls_ca_file`) a follower checks the
//! leader's certificate against before passing a change on. Accepting and serving connections stays in [`super::limits`].

use std::path::{Path, PathBuf};
use std::sync::Arc;

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};

/// Put on every request that arrived over TLS on the control listener.
#[derive(Debug, Clone, Copy)]
pub struct OverTls;

/// What is wrong with the TLS files: the config field, the file, and why.
#[derive(Debug, thiserror::Error)]
#[error("{}: {problem}", path.display())]
pub struct TlsFileError {
    pub field: &'static str,
    pub path: PathBuf,
    pub problem: TlsProblem,
}

/// Why a certificate or key file cannot serve TLS.
#[derive(Debug, thiserror::Error)]
pub enum TlsProblem {
    #[error("cannot read: {0}")]
    Read(std::io::Error),
    #[error("not a PEM certificate file: {0}")]
    NotPem(rustls::pki_types::pem::Error),
    #[error("no CERTIFICATE in the file")]
    NoCertificate,
    #[error("no private key (PKCS#8, PKCS#1 or SEC1 PEM): {0}")]
    NoKey(rustls::pki_types::pem::Error),
    #[error("{0}")]
    Tls(rustls::Error),
    #[error("does not fit the certificate: {0}")]
    KeyMismatch(rustls::Error),
}

/// The server configuration from a certificate chain file and a key file.
pub fn server_config(cert: &Path, key: &Path) -> Result<Arc<rustls::ServerConfig>, TlsFileError> {
    let cert_err = |problem| TlsFileError {
        field: "control.tls_certificate",
        path: cert.to_path_buf(),
        problem,
    };
    let key_err = |problem| TlsFileError {
        field: "control.tls_key",
        path: key.to_path_buf(),
        problem,
    };
    let cert_pem = std::fs::read(cert).map_err(|e| cert_err(TlsProblem::Read(e)))?;
    let chain: Vec<CertificateDer<'static>> = CertificateDer::pem_slice_iter(&cert_pem)
        .collect::<Result<_, _>>()
        .map_err(|e| cert_err(TlsProblem::NotPem(e)))?;
    if chain.is_empty() {
        return Err(cert_err(TlsProblem::NoCertificate));
    }
    let key_pem = std::fs::read(key).map_err(|e| key_err(TlsProblem::Read(e)))?;
    let private =
        PrivateKeyDer::from_pem_slice(&key_pem).map_err(|e| key_err(TlsProblem::NoKey(e)))?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let cfg = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| cert_err(TlsProblem::Tls(e)))?
        .with_no_client_auth()
        .with_single_cert(chain, private)
        .map_err(|e| key_err(TlsProblem::KeyMismatch(e)))?;
    Ok(Arc::new(cfg))
}

/// The CA certificates of `[control] tls_ca_file`, that a follower
/// verifies the leader's control certificate against.
pub fn ca_roots(path: &Path) -> Result<Vec<CertificateDer<'static>>, TlsFileError> {
    let err = |problem| TlsFileError {
        field: "control.tls_ca_file",
        path: path.to_path_buf(),
        problem,
    };
    let pem = std::fs::read(path).map_err(|e| err(TlsProblem::Read(e)))?;
    let roots: Vec<CertificateDer<'static>> = CertificateDer::pem_slice_iter(&pem)
        .collect::<Result<_, _>>()
        .map_err(|e| err(TlsProblem::NotPem(e)))?;
    if roots.is_empty() {
        return Err(err(TlsProblem::NoCertificate));
    }
    Ok(roots)
}

/// The control API's TLS: its own server configuration and, in a cluster,
/// the CA the other nodes' certificates are checked against.
#[derive(Clone)]
pub struct ControlTls {
    pub server: Arc<rustls::ServerConfig>,
    pub peer_roots: Vec<CertificateDer<'static>>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn missing_and_wrong_files_name_the_field_and_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let cert = dir.path().join("cert.pem");
        let key = dir.path().join("key.pem");
        let e = server_config(&cert, &key).unwrap_err();
        assert_eq!(e.field, "control.tls_certificate");
        assert!(matches!(e.problem, TlsProblem::Read(_)), "{e:?}");
        assert!(e.to_string().contains("cert.pem: cannot read"), "{e:?}");
        std::fs::write(&cert, "not pem").unwrap();
        let e = server_config(&cert, &key).unwrap_err();
        assert_eq!(e.field, "control.tls_certificate");
        assert!(matches!(e.problem, TlsProblem::NoCertificate), "{e:?}");
        assert!(e.to_string().contains("no CERTIFICATE"), "{e:?}");
        let e = ca_roots(&cert).unwrap_err();
        assert_eq!(e.field, "control.tls_ca_file");
        assert!(matches!(e.problem, TlsProblem::NoCertificate), "{e:?}");
        let e = ca_roots(&dir.path().join("none.pem")).unwrap_err();
        assert!(e.to_string().contains("none.pem: cannot read"), "{e:?}");
    }
}
