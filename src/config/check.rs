//! How a target is checked: the `check` table of a `[[service.target]]`.
//!
//! A `dns` check's query (name, type, expected rcode) is read once, with
//! the file ([`DnsCheck`]); validation refuses one that does not read.

use std::net::SocketAddr;
use std::time::Duration;

use serde::Deserialize;

/// How a target is checked. Monitoring is separate from resolution: the probed
/// address may differ from the answered one (internal vs public address).
#[derive(Debug, Clone, Deserialize)]
pub struct CheckConfig {
    #[serde(flatten)]
    pub kind: CheckKind,
    #[serde(default = "default_interval", with = "humantime_serde")]
    pub interval: Duration,
    #[serde(default = "default_check_timeout", with = "humantime_serde")]
    pub timeout: Duration,
    /// Consecutive successes to become healthy.
    #[serde(default = "default_rise")]
    pub rise: u32,
    /// Consecutive failures to become unhealthy.
    #[serde(default = "default_fall")]
    pub fall: u32,
    /// Up to this much random delay added to each interval, so checks spread out.
    #[serde(default = "default_jitter", with = "humantime_serde")]
    pub jitter: Duration,
}

#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(tag = "type", rename_all = "lowercase", deny_unknown_fields)]
pub enum CheckKind {
    /// Healthy if a TCP connection to `address` succeeds.
    Tcp { address: SocketAddr },
    /// Healthy if an HTTP(S) GET of `url` returns one of `expect_status`
    /// (default 200..=399) and, if set, the body contains `body_contains`.
    #[serde(alias = "https")]
    Http {
        url: String,
        #[serde(default)]
        expect_status: Vec<u16>,
        #[serde(default)]
        body_contains: Option<String>,
        /// Host header to send (e.g. the public name when probing an internal address).
        #[serde(default)]
        host: Option<String>,
        #[serde(default = "default_true")]
        tls_verify: bool,
    },
    /// Healthy if a DNS query to `server` for `qname`/`qtype` answers with `expect_rcode`.
    Dns(DnsCheck),
    /// Healthy if `command` (argv, no shell) exits 0 within the timeout.
    Exec { command: Vec<String> },
}

/// A `dns` check: its server and its query, read once with the file.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(from = "DnsSpec")]
pub struct DnsCheck {
    pub server: SocketAddr,
    /// The query and the rcode that means healthy, or the text that does
    /// not read as one (which validation refuses, and a check run on it
    /// fails with).
    pub query: Result<DnsQuery, BadQuery>,
}

/// What a `dns` check asks and expects.
#[derive(Debug, Clone, PartialEq)]
pub struct DnsQuery {
    pub qname: hickory_proto::rr::Name,
    pub qtype: hickory_proto::rr::RecordType,
    pub expect_rcode: hickory_proto::op::ResponseCode,
}

/// A `dns` check's text that does not read (the first of qname, qtype,
/// expect_rcode that does not). Its text is what a check run on it reports.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BadQuery {
    #[error("bad qname {qname:?}: {why}")]
    Qname { qname: String, why: String },
    #[error("unknown qtype {0:?}")]
    Qtype(String),
    #[error("unknown rcode {0:?}")]
    Rcode(String),
}

/// A `dns` check as the file writes it.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct DnsSpec {
    server: SocketAddr,
    qname: String,
    #[serde(default = "default_qtype")]
    qtype: String,
    #[serde(default = "default_rcode")]
    expect_rcode: String,
}

impl From<DnsSpec> for DnsCheck {
    fn from(s: DnsSpec) -> DnsCheck {
        DnsCheck::read(s.server, &s.qname, &s.qtype, &s.expect_rcode)
    }
}

impl DnsCheck {
    /// A check of `server` from the texts of its query, as the file gives them.
    pub fn read(server: SocketAddr, qname: &str, qtype: &str, expect_rcode: &str) -> DnsCheck {
        let query = (|| {
            let name = hickory_proto::rr::Name::from_ascii(qname).map_err(|e| BadQuery::Qname {
                qname: qname.to_string(),
                why: e.to_string(),
            })?;
            let rtype = qtype
                .parse()
                .map_err(|_| BadQuery::Qtype(qtype.to_string()))?;
            let rcode = crate::proto::codes::parse_rcode(expect_rcode)
                .ok_or_else(|| BadQuery::Rcode(expect_rcode.to_string()))?;
            Ok(DnsQuery {
                qname: name,
                qtype: rtype,
                expect_rcode: <hickory_proto::op::ResponseCode as From<u16>>::from(rcode),
            })
        })();
        DnsCheck { server, query }
    }
}

fn default_interval() -> Duration {
    Duration::from_secs(5)
}
fn default_check_timeout() -> Duration {
    Duration::from_secs(2)
}
fn default_rise() -> u32 {
    2
}
fn default_fall() -> u32 {
    3
}
fn default_jitter() -> Duration {
    Duration::from_millis(100)
}
fn default_true() -> bool {
    true
}
fn default_qtype() -> String {
    "A".into()
}
fn default_rcode() -> String {
    "NOERROR".into()
}
