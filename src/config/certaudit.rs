//! `[cert_audit]`: how often and how strictly ggond audits the TLS
//! certificates of https targets.

use std::path::PathBuf;
use std::time::Duration;

use serde::Deserialize;

/// `[cert_audit]`: the daemon's own periodic `audit-certs` of https targets
/// (results in `/metrics`; a notification when a standby target's
/// certificate would break a failover).
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CertAuditConfig {
    /// Time between audits (the first runs at start). 0 turns it off.
    #[serde(default = "default_cert_interval", with = "humantime_serde")]
    pub interval: Duration,
    /// A certificate with fewer days left than this is not ready.
    #[serde(default = "default_cert_warn_days")]
    pub warn_days: i64,
    /// Extra trusted CA certificates (PEM), besides the webpki roots.
    #[serde(default)]
    pub ca_file: Option<PathBuf>,
    /// Time for each connection and handshake.
    #[serde(default = "default_cert_timeout", with = "humantime_serde")]
    pub timeout: Duration,
}

impl Default for CertAuditConfig {
    fn default() -> Self {
        CertAuditConfig {
            interval: default_cert_interval(),
            warn_days: default_cert_warn_days(),
            ca_file: None,
            timeout: default_cert_timeout(),
        }
    }
}

fn default_cert_interval() -> Duration {
    Duration::from_secs(6 * 3600)
}
fn default_cert_warn_days() -> i64 {
    21
}
fn default_cert_timeout() -> Duration {
    Duration::from_secs(5)
}
