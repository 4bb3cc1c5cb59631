//! `[control]`: the control API's address, token file, TLS, and
//! `[control.limits]`: what one client may cost it.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use serde::Deserialize;
use toml::Spanned;

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ControlConfig {
    #[serde(default = "default_control_listen")]
    pub listen: SocketAddr,
    /// Bearer token file; created (mode 0600) with a random token on first
    /// start. Default: `control.token` in the state directory.
    #[serde(default)]
    pub token_file: Option<PathBuf>,
    /// Serve the read-only status page (`/`) and `/metrics` without a token.
    #[serde(default)]
    pub public_status: bool,
    /// Bounds on connections, request reading and failed authentications.
    #[serde(default)]
    pub limits: ControlLimits,
    /// Serve the control API over TLS: the certificate chain (PEM, leaf
    /// first). Needs `tls_key` too. Read at start (restart to change it).
    #[serde(default)]
    pub tls_certificate: Option<Spanned<PathBuf>>,
    /// The private key (PEM: PKCS#8, PKCS#1 or SEC1) for `tls_certificate`.
    #[serde(default)]
    pub tls_key: Option<Spanned<PathBuf>>,
    /// Cluster mode with TLS: the CA certificate(s) (PEM) that signed the
    /// nodes' control certificates. A follower passes an operator's change
    /// on to the leader over https only if the leader's certificate, for
    /// its control address, verifies against these (and only these).
    #[serde(default)]
    pub tls_ca_file: Option<Spanned<PathBuf>>,
    /// Also serve the control API on this Unix socket (mode 0660, plain
    /// HTTP, same tokens), for operators on the host: its connections have
    /// their own `limits`, so no network client can fill them.
    #[serde(default)]
    pub socket: Option<PathBuf>,
    /// `/metrics`: also a check-duration histogram per target
    /// (`ggon_target_check_duration_seconds`). Off by default: 15 lines per
    /// target, 86 MiB at 30,000 services of 2 targets; without it there is
    /// one histogram for all checks and each target's last latency as a
    /// gauge. Read at start.
    #[serde(default)]
    pub metrics_target_histograms: bool,
}

impl Default for ControlConfig {
    fn default() -> Self {
        ControlConfig {
            listen: default_control_listen(),
            token_file: None,
            public_status: false,
            limits: ControlLimits::default(),
            tls_certificate: None,
            tls_key: None,
            tls_ca_file: None,
            socket: None,
            metrics_target_histograms: false,
        }
    }
}

fn default_control_listen() -> SocketAddr {
    "127.0.0.1:5380".parse().unwrap()
}

/// Bounds on the control API's connections and requests. The defaults fit
/// an operator's API on loopback or a management network: far above what
/// `ggon-ctl` and a scraper use, far below what exhausts the process.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ControlLimits {
    /// Open connections in all; past it a new connection is closed at once.
    #[serde(default = "default_max_connections")]
    pub max_connections: usize,
    /// Open connections from one source address (below `max_connections`,
    /// so one abusive source cannot take every slot).
    #[serde(default = "default_per_source")]
    pub max_connections_per_source: usize,
    /// Time to send a request's headers (also bounds an idle keep-alive
    /// connection waiting for its next request).
    #[serde(default = "default_header_timeout", with = "humantime_serde")]
    pub header_timeout: Duration,
    /// Time to send a request's whole body.
    #[serde(default = "default_body_timeout", with = "humantime_serde")]
    pub body_timeout: Duration,
    /// Largest request body accepted, in bytes.
    #[serde(default = "default_max_body")]
    pub max_body: usize,
    /// Failed authentications one source address may make per `auth_window`;
    /// past it they are answered 429 and no longer logged one by one (a valid
    /// token is still accepted).
    #[serde(default = "default_auth_failures")]
    pub auth_failures: u32,
    #[serde(default = "default_auth_window", with = "humantime_serde")]
    pub auth_window: Duration,
}

impl Default for ControlLimits {
    fn default() -> Self {
        ControlLimits {
            max_connections: default_max_connections(),
            max_connections_per_source: default_per_source(),
            header_timeout: default_header_timeout(),
            body_timeout: default_body_timeout(),
            max_body: default_max_body(),
            auth_failures: default_auth_failures(),
            auth_window: default_auth_window(),
        }
    }
}

impl ControlLimits {
    /// What is wrong with these limits, if anything (field, message).
    pub(super) fn problem(&self) -> Option<(&'static str, String)> {
        if self.max_connections == 0 || self.max_connections_per_source == 0 {
            return Some((
                "control.limits.max_connections",
                "connection limits must be at least 1".into(),
            ));
        }
        if self.max_connections_per_source > self.max_connections {
            return Some((
                "control.limits.max_connections_per_source",
                format!(
                    "{} is more than max_connections ({}): one source could take every slot",
                    self.max_connections_per_source, self.max_connections
                ),
            ));
        }
        if self.header_timeout.is_zero() || self.body_timeout.is_zero() {
            return Some((
                "control.limits.header_timeout",
                "timeouts must be more than 0".into(),
            ));
        }
        if self.max_body < 1024 {
            return Some((
                "control.limits.max_body",
                "at least 1024 bytes (requests carry a reason)".into(),
            ));
        }
        None
    }
}

fn default_max_connections() -> usize {
    256
}
fn default_per_source() -> usize {
    64
}
fn default_header_timeout() -> Duration {
    Duration::from_secs(5)
}
fn default_body_timeout() -> Duration {
    Duration::from_secs(10)
}
fn default_max_body() -> usize {
    64 * 1024
}
fn default_auth_failures() -> u32 {
    10
}
fn default_auth_window() -> Duration {
    Duration::from_secs(60)
}
