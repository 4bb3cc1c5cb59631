//! Monitoring: how a target is checked.
//!
//! Owns: running one health check (TCP connect, HTTP(S) GET, DNS query or a
//! local command) within its timeout and reducing it to a [`CheckOutcome`]
//! ([`run_check`]), and the per-target schedule that runs those checks and
//! reports [`Observation`]s on a channel ([`spawn_probes`]), on threads of
//! their own ([`runtime`]); and the TLS
//! certificate audit of https targets ([`certs`]: is the chain valid for the
//! service's name, how many days are left), used by `ggon-ctl audit-certs`
//! and by ggond's periodic audit.
//!
//! Must not touch: health state (rise/fall counting belongs to `health`),
//! failover policy, zones, snapshots or DNS answers. A probe only reports what
//! it saw; it never decides what that means for a service, so nothing here
//! reads `rise`/`fall` or knows which target is active. It holds no global
//! state: inputs are a [`CheckKind`] / [`CheckConfig`], outputs are outcomes.
//!
//! Guarantees the controller can rely on:
//! - [`run_check`] returns within `timeout` plus [`SLACK`], never panics, and
//!   turns every failure (including bad input) into `ok: false` with a short
//!   human-readable `detail`.
//! - Each check runs in a task of its own with its own timeout, so a hung
//!   target never delays another target's checks (one scheduler per probe
//!   set starts them: an idle probe is an entry in its queue, not a task).
//! - HTTP checks open a fresh connection every time (no pooling), follow no
//!   redirects and ignore proxy environment variables: the check measures the
//!   target, not a cached connection or a proxy.
//! - Exec checks run without a shell in their own process group; on timeout
//!   the whole group is killed, so a hung script cannot leak processes.

pub mod certs;
mod dns;
mod exec;
pub mod health;
mod http;
pub use http::http_error_detail;
pub mod runtime;
mod schedule;
mod tcp;
pub use schedule::{spawn_probes, STARTS_PER_SECOND};
#[cfg(test)]
mod tests;

use std::io;
use std::net::SocketAddr;
use std::process::{ExitStatus, Stdio};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use hickory_proto::op::{Message, MessageType, OpCode, Query};

use tokio::io::{AsyncRead, AsyncReadExt};
use tokio::net::TcpStream;
use tokio::sync::mpsc;
use tokio::time::Instant;

use crate::config::{CheckConfig, CheckKind};
use crate::shutdown::Shutdown;
use dns::check_dns;
use exec::check_exec;
use http::{check_http, HttpCheck};
use tcp::check_tcp;

/// How long [`run_check`] may overrun its `timeout` before it gives up on a
/// check regardless (each check also enforces `timeout` itself, so this only
/// matters if one misbehaves).
pub const SLACK: Duration = Duration::from_millis(100);

/// At most this much of an HTTP body is read when looking for `body_contains`.
pub const BODY_LIMIT: usize = 64 * 1024;

/// At most this much of an exec check's stdout/stderr is kept (the rest is drained).
const CAPTURE_LIMIT: usize = 4096;

/// After an exec check's process exits, how long to wait for its pipes to close
/// (a background grandchild may keep them open indefinitely).
const PIPE_GRACE: Duration = Duration::from_millis(50);

/// `detail` strings are cut to this many characters.
const DETAIL_MAX: usize = 200;

/// A zero interval would spin; probes never run more often than this.
pub(crate) const MIN_INTERVAL: Duration = Duration::from_millis(10);

/// The result of one check.
#[derive(Debug, Clone, serde::Serialize)]
pub struct CheckOutcome {
    pub ok: bool,
    /// Short human text: "HTTP 200", "connect refused", "timeout after 500ms",
    /// "exit status 1", "rcode NXDOMAIN, expected NOERROR".
    pub detail: String,
    /// How long the check took (about `timeout` when it timed out).
    pub latency: Duration,
    /// When the check finished.
    pub at: SystemTime,
}

/// Shared resources for checks: two HTTP clients, one verifying TLS
/// certificates and one not (for `tls_verify = false`). Build once, share via `Arc`.
#[derive(Debug)]
pub struct Checker {
    verified: reqwest::Client,
    unverified: reqwest::Client,
}

/// The HTTP check clients cannot be built (no TLS backend, ...).
#[derive(Debug, thiserror::Error)]
#[error(
    "building the HTTP check client{}: {}",
    if *verify_tls { "" } else { " without TLS verification" },
    error_chain(source)
)]
pub struct CheckerError {
    verify_tls: bool,
    source: reqwest::Error,
}

/// An error and every cause below it, `: `-separated.
fn error_chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut cause = e.source();
    while let Some(c) = cause {
        s.push_str(&format!(": {c}"));
        cause = c.source();
    }
    s
}

impl Checker {
    pub fn new() -> Result<Checker, CheckerError> {
        let client = |verify_tls| {
            http_client(verify_tls).map_err(|source| CheckerError { verify_tls, source })
        };
        Ok(Checker {
            verified: client(true)?,
            unverified: client(false)?,
        })
    }
}

fn http_client(verify_tls: bool) -> reqwest::Result<reqwest::Client> {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .no_proxy()
        .pool_max_idle_per_host(0)
        .user_agent(concat!("ggon/", env!("CARGO_PKG_VERSION"), " health-check"))
        .danger_accept_invalid_certs(!verify_tls)
        .build()
}

/// Identifies what a probe result is about.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct ProbeKey {
    pub service: String,
    pub target: String,
}

impl std::fmt::Display for ProbeKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.service, self.target)
    }
}

/// One outcome for one (service, target), as sent by [`spawn_probes`].
#[derive(Debug, Clone)]
pub struct Observation {
    pub key: ProbeKey,
    pub outcome: CheckOutcome,
}

/// One check, run once, never longer than `timeout` (+ [`SLACK`]). Never panics.
pub async fn run_check(checker: &Checker, kind: &CheckKind, timeout: Duration) -> CheckOutcome {
    let started = Instant::now();
    let check = async {
        match kind {
            CheckKind::Tcp { address } => check_tcp(*address, timeout).await,
            CheckKind::Http {
                url,
                expect_status,
                body_contains,
                host,
                tls_verify,
            } => {
                let client = if *tls_verify {
                    &checker.verified
                } else {
                    &checker.unverified
                };
                let req = HttpCheck {
                    url,
                    expect_status,
                    body_contains: body_contains.as_deref(),
                    host: host.as_deref(),
                };
                with_timeout(timeout, check_http(client, req)).await
            }
            CheckKind::Dns(check) => check_dns(check, timeout).await,
            CheckKind::Exec { command } => check_exec(command, timeout).await,
        }
    };
    let result = tokio::time::timeout(timeout + SLACK, check)
        .await
        .unwrap_or_else(|_| Err(CheckFailure::Timeout(timeout)));
    let (ok, detail) = match result {
        Ok(d) => (true, d),
        Err(why) => (false, why.to_string()),
    };
    CheckOutcome {
        ok,
        detail: shorten(detail),
        latency: started.elapsed(),
        at: SystemTime::now(),
    }
}

/// The probes stage: one probe task per target of `config`, all started
/// afresh when a reload brings a new configuration, until shutdown.
pub async fn run_probes(
    checker: Arc<Checker>,
    mut config: tokio::sync::watch::Receiver<Arc<crate::config::Config>>,
    tx: mpsc::Sender<Observation>,
    mut shutdown: Shutdown,
) {
    loop {
        let list = probe_list(&config.borrow_and_update());
        let probes = spawn_probes(checker.clone(), list, tx.clone(), shutdown.clone());
        let restart = tokio::select! {
            changed = config.changed() => changed.is_ok(),
            _ = shutdown.requested() => false,
        };
        for p in &probes {
            if restart {
                p.abort();
            }
        }
        if !restart {
            // Each probe ends at the signal by itself.
            for p in probes {
                let _ = p.await;
            }
            return;
        }
    }
}

/// Every target's probe key and check.
fn probe_list(cfg: &crate::config::Config) -> Vec<(ProbeKey, CheckConfig)> {
    cfg.services
        .iter()
        .flat_map(|s| {
            s.targets.get_ref().iter().map(move |t| {
                (
                    ProbeKey {
                        service: s.name.get_ref().clone(),
                        target: t.name.get_ref().clone(),
                    },
                    t.check.clone(),
                )
            })
        })
        .collect()
}

// ---------------------------------------------------------------------------
// The checks. Each returns Ok(detail) for healthy, Err(why) for not; the
// outcome's `detail` is either one's text.

type Verdict = Result<String, CheckFailure>;

/// Why a check says its target is down.
#[derive(Debug, thiserror::Error)]
enum CheckFailure {
    #[error("timeout after {}ms", .0.as_millis())]
    Timeout(Duration),
    /// A socket step (`connect`, `send`, `receive`, ...) failed.
    #[error("{}", io_detail(what, error))]
    Io {
        what: &'static str,
        error: io::Error,
    },
    /// An ICMP port-unreachable (ECONNREFUSED on a UDP socket); "refused"
    /// alone would read like the REFUSED rcode.
    #[error("port unreachable")]
    PortUnreachable,
    /// A `dns` check whose query does not read (refused by validation).
    #[error(transparent)]
    Query(crate::config::BadQuery),
    #[error("cannot encode query: {0}")]
    Encode(hickory_proto::ProtoError),
    #[error("malformed response: {0}")]
    Malformed(hickory_proto::serialize::binary::DecodeError),
    #[error(
        "rcode {}, expected {}",
        crate::proto::codes::rcode_label(*got),
        crate::proto::codes::rcode_label(*expected)
    )]
    Rcode { got: u16, expected: u16 },
    #[error("{}", http_error_detail(.0))]
    Http(reqwest::Error),
    /// `expected`: the accepted statuses, as configured.
    #[error("HTTP {status}, expected {expected}")]
    Status { status: u16, expected: String },
    #[error("HTTP {status}, reading body: {}", http_error_detail(error))]
    Body { status: u16, error: reqwest::Error },
    #[error(
        "HTTP {status}, body lacks {needle:?}{}",
        if *cut { " in the first 64 KiB" } else { "" }
    )]
    BodyLacks {
        status: u16,
        needle: String,
        /// The body was longer than what is read of it.
        cut: bool,
    },
    #[error("empty command")]
    EmptyCommand,
    #[error("cannot run {program:?}: {error}")]
    Spawn { program: String, error: io::Error },
    #[error("waiting for {program:?}: {error}")]
    Wait { program: String, error: io::Error },
    /// The command ran and failed: how it ended, and its first output line.
    #[error("{}{}", exec::exit_detail(*status), line.as_ref().map(|l| format!(": {l}")).unwrap_or_default())]
    Command {
        status: ExitStatus,
        line: Option<String>,
    },
}

async fn with_timeout(
    timeout: Duration,
    check: impl std::future::Future<Output = Verdict>,
) -> Verdict {
    tokio::time::timeout(timeout, check)
        .await
        .unwrap_or_else(|_| Err(CheckFailure::Timeout(timeout)))
}

fn io_detail(what: &str, e: &io::Error) -> String {
    match e.kind() {
        io::ErrorKind::ConnectionRefused => format!("{what} refused"),
        io::ErrorKind::ConnectionReset => format!("{what}: connection reset"),
        _ => format!("{what}: {e}"),
    }
}

/// Cut `s` to at most [`DETAIL_MAX`] characters.
fn shorten(mut s: String) -> String {
    if let Some((cut, _)) = s.char_indices().nth(DETAIL_MAX) {
        s.truncate(cut);
        s.push('…');
    }
    s
}
