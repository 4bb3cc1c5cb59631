//! Configuration: the TOML file an operator writes, parsed and validated.
//!
//! Owns: the config data types, parsing, and every validation rule, with errors
//! that name the file, the line and the field. It must not open sockets, read
//! zone files or touch running state: `ggond --check-config` and `reload` rely on
//! validation being side-effect free, so a bad file can be rejected while the
//! running instance keeps serving.
//!
//! What later stages need typed is read once, by parsing or validation
//! (zone origins and service names as DNS names, region nets and transfer
//! ACLs as prefixes, a `dns` check's query) and kept beside its text,
//! rather than parsed again, and expected to parse, where it is used. The
//! config holds only what the file says: the region map built from it
//! (GeoIP databases read) is handed on beside it by the loader.

use std::collections::HashSet;
use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;
use toml::Spanned;

mod catalog;
mod certaudit;
mod check;
pub mod client;
mod control;
mod dnssec;
mod errors;
#[cfg(test)]
mod fields;
pub mod geo;
mod validate;

pub use catalog::CatalogConfig;
pub use certaudit::CertAuditConfig;
pub use check::{BadQuery, CheckConfig, CheckKind, DnsCheck, DnsQuery};
pub use control::{ControlConfig, ControlLimits};
pub use dnssec::{DenialConfig, DnssecConfig, KeyPolicyConfig};

use errors::{from_toml, line_of, read_text};
pub use errors::{ConfigError, Place};

/// The whole file.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    #[serde(default)]
    pub server: ServerConfig,
    #[serde(default)]
    pub control: ControlConfig,
    #[serde(default, rename = "zone")]
    pub zones: Vec<ZoneConfig>,
    #[serde(default, rename = "service")]
    pub services: Vec<ServiceConfig>,
    #[serde(default, rename = "key")]
    pub keys: Vec<KeyConfig>,
    #[serde(default, rename = "notifier")]
    pub notifiers: Vec<NotifierConfig>,
    /// Client regions for per-region services (see [`geo`]).
    #[serde(default, rename = "region")]
    pub regions: Vec<geo::RegionConfig>,
    #[serde(default)]
    pub cert_audit: CertAuditConfig,
    /// Several ggond nodes agreeing through etcd; absent: one node, local state.
    #[serde(default)]
    pub cluster: Option<ClusterConfig>,
    /// A catalog zone (RFC 9432) listing the zones ggond answers.
    #[serde(default)]
    pub catalog: Option<CatalogConfig>,
    /// Where the file was read from; relative paths inside it are resolved
    /// against the current directory (as the README shows: run from the checkout).
    #[serde(skip)]
    pub path: PathBuf,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ServerConfig {
    /// DNS listen addresses (UDP and TCP on each).
    #[serde(default = "default_listen")]
    pub listen: Vec<SocketAddr>,
    /// UDP receive threads; 0 = one per core.
    #[serde(default)]
    pub workers: usize,
    #[serde(default = "default_state_dir")]
    pub state_dir: PathBuf,
    /// Maximum concurrent TCP connections (beyond this, new ones are closed at once).
    #[serde(default = "default_tcp_max")]
    pub tcp_max_connections: usize,
    /// A TCP connection with no complete query for this long is closed.
    #[serde(default = "default_tcp_idle", with = "humantime_serde")]
    pub tcp_idle_timeout: Duration,
    /// Response rate limiting for UDP (off unless this table is present).
    #[serde(default)]
    pub rrl: Option<RrlConfig>,
    /// The account ggond runs as once its sockets are bound. Started as root,
    /// it switches to this user; `"root"` keeps root on purpose; unset and
    /// started as root, ggond refuses to start. Read at start only.
    #[serde(default)]
    pub user: Option<Spanned<String>>,
    /// The group to run as (default: the user's primary group).
    #[serde(default)]
    pub group: Option<Spanned<String>>,
}

/// Response rate limiting: per client prefix, at most `responses_per_second`
/// UDP answers (a burst of as many is allowed); beyond that answers are
/// dropped, except every `slip`-th, which is sent truncated (TC=1) so a real
/// client behind a spoofed flood can retry over TCP.
#[derive(Debug, Clone, Copy, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct RrlConfig {
    pub responses_per_second: u32,
    #[serde(default = "default_slip")]
    pub slip: u32,
    #[serde(default = "default_v4_prefix")]
    pub ipv4_prefix: u8,
    #[serde(default = "default_v6_prefix")]
    pub ipv6_prefix: u8,
}

fn default_slip() -> u32 {
    2
}
fn default_v4_prefix() -> u8 {
    24
}
fn default_v6_prefix() -> u8 {
    56
}

/// Where events (failover, failback, remap, all-down, publisher errors, ...)
/// are sent. Delivery never blocks the DNS path or the controller.
#[derive(Debug, Clone, Deserialize)]
pub struct NotifierConfig {
    #[serde(flatten)]
    pub kind: NotifierKind,
    /// Per service: at most `burst` events per `per`; the excess is counted
    /// and reported in one summary event once the limit allows again.
    #[serde(default = "default_burst")]
    pub burst: u32,
    #[serde(default = "default_per", with = "humantime_serde")]
    pub per: Duration,
    #[serde(default = "default_notify_timeout", with = "humantime_serde")]
    pub timeout: Duration,
    /// Delivery attempts (webhook: with exponential backoff).
    #[serde(default = "default_attempts")]
    pub attempts: u32,
}

#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(tag = "type", rename_all = "lowercase", deny_unknown_fields)]
pub enum NotifierKind {
    /// HTTP POST of the event as JSON.
    Webhook { url: String },
    /// Run a command (argv, no shell) with the event in GGON_* environment
    /// variables and as JSON on standard input.
    Command { command: Vec<String> },
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ZoneConfig {
    pub origin: Spanned<String>,
    /// Master file. Required for `local`; for `rfc2136` only when `serve = true`.
    #[serde(default)]
    pub file: Option<Spanned<PathBuf>>,
    #[serde(default)]
    pub mode: ZoneMode,
    /// TSIG keys allowed to send RFC 2136 UPDATEs for this zone.
    #[serde(default)]
    pub update_keys: Vec<Spanned<String>>,
    /// Addresses (IP or CIDR) allowed AXFR/IXFR without a key.
    #[serde(default)]
    pub allow_transfer: Vec<Spanned<String>>,
    /// TSIG keys allowed AXFR/IXFR from any address.
    #[serde(default)]
    pub transfer_keys: Vec<Spanned<String>>,
    /// Secondaries to NOTIFY on every change; their addresses may transfer.
    #[serde(default)]
    pub secondaries: Vec<SecondaryConfig>,
    /// rfc2136 mode: the primary to send UPDATEs to.
    #[serde(default)]
    pub primary: Option<Spanned<SocketAddr>>,
    /// rfc2136 mode: the TSIG key to sign UPDATEs with.
    #[serde(default)]
    pub key: Option<Spanned<String>>,
    /// rfc2136 mode: also answer the zone from ggond.
    #[serde(default)]
    pub serve: bool,
    /// rfc2136 mode: how often to read the primary's records and fix drift.
    #[serde(default = "default_reconcile", with = "humantime_serde")]
    pub reconcile: Duration,
    /// Locate clients by the EDNS Client Subnet option (RFC 7871) when present.
    #[serde(default)]
    pub ecs: bool,
    /// Sign the zone online (local zones; see docs/dnssec.md).
    #[serde(default)]
    pub dnssec: Option<DnssecConfig>,
    /// The zone's group in the catalog zone (RFC 9432 4.4.2), if any.
    #[serde(default)]
    pub catalog_group: Option<Spanned<String>>,
    /// `origin` as a DNS name, read once by validation.
    #[serde(skip)]
    name: hickory_proto::rr::Name,
    /// `allow_transfer` as prefixes, read once by validation.
    #[serde(skip)]
    transfer_acl: Vec<crate::proto::acl::Net>,
}

impl ZoneConfig {
    /// The origin as a DNS name, lowercase and fully qualified.
    pub fn name(&self) -> hickory_proto::rr::Name {
        self.name.clone()
    }

    /// `allow_transfer` as prefixes.
    pub fn transfer_acl(&self) -> &[crate::proto::acl::Net] {
        &self.transfer_acl
    }
}

impl ServiceConfig {
    /// The service's name as a DNS name, lowercase and fully qualified.
    pub fn fqdn_name(&self) -> hickory_proto::rr::Name {
        self.fqdn_name.clone()
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum ZoneMode {
    /// ggond is the primary and answers the zone.
    #[default]
    Local,
    /// The zone lives on another primary; ggond sends it RFC 2136 UPDATEs.
    Rfc2136,
    /// ggond serves a copy transferred from `primary` (AXFR, on NOTIFY and
    /// on the SOA refresh timer).
    Secondary,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SecondaryConfig {
    pub address: SocketAddr,
    #[serde(default)]
    pub key: Option<String>,
}

/// A TSIG key: from a BIND key file (`tsig-keygen` output) or inline.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KeyConfig {
    pub name: Spanned<String>,
    #[serde(default)]
    pub file: Option<PathBuf>,
    #[serde(default)]
    pub algorithm: Option<String>,
    #[serde(default)]
    pub secret: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, serde::Serialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum FailbackMode {
    /// After a failover the service stays where it is until an operator remaps it.
    #[default]
    Manual,
    /// The preferred target takes over again once it has been healthy for `hold_down`.
    Auto,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ServiceConfig {
    /// Short name used by operators (`ggon-ctl remap cic ...`).
    pub name: Spanned<String>,
    /// The DNS name this service owns, e.g. `cic.ggon.org`.
    pub fqdn: Spanned<String>,
    #[serde(default = "default_ttl")]
    pub ttl: u32,
    #[serde(default)]
    pub failback: FailbackMode,
    #[serde(default = "default_hold_down", with = "humantime_serde")]
    pub hold_down: Duration,
    /// Ordered by preference: the first is the primary.
    #[serde(rename = "target")]
    pub targets: Spanned<Vec<TargetConfig>>,
    /// Cluster mode: how many live nodes must see a target down (default:
    /// the `[cluster]` setting).
    #[serde(default)]
    pub quorum: Option<Quorum>,
    /// `"single"` (default) or `"per-region"` with an `order` per region.
    #[serde(default)]
    pub active: geo::ActiveMode,
    #[serde(default)]
    pub order: Option<Spanned<geo::Orders>>,
    /// `fqdn` as a DNS name, read once by validation.
    #[serde(skip)]
    fqdn_name: hickory_proto::rr::Name,
}

/// `[cluster]`: this node's place in a cluster of ggond nodes that agree
/// through etcd (see docs/cluster.md).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ClusterConfig {
    /// etcd client URLs (http:// or https://), tried in order.
    pub etcd: Spanned<Vec<String>>,
    /// This node's name, unique in the cluster.
    pub node: Spanned<String>,
    /// Every key ggon writes lives under this prefix.
    #[serde(default = "default_prefix")]
    pub prefix: String,
    /// A node's lease: its votes and its leadership vanish this long after
    /// it stops renewing them.
    #[serde(default = "default_lease_ttl", with = "humantime_serde")]
    pub lease_ttl: Duration,
    /// How many live nodes must see a target down before it counts as down.
    #[serde(default)]
    pub quorum: Quorum,
    /// etcd user name and password (etcd authentication), if enabled.
    #[serde(default)]
    pub username: Option<String>,
    #[serde(default)]
    pub password: Option<String>,
    /// CA certificate (PEM) for https:// endpoints with a private CA.
    #[serde(default)]
    pub ca_file: Option<PathBuf>,
    /// Client certificate and its key (PEM), for an etcd that checks
    /// client certificates (--client-cert-auth): both or neither.
    #[serde(default)]
    pub cert_file: Option<PathBuf>,
    #[serde(default)]
    pub key_file: Option<PathBuf>,
    /// The leader compacts etcd's revision history to this many revisions.
    #[serde(default = "default_keep_revisions")]
    pub keep_revisions: Spanned<u64>,
    /// The shared history keeps at most this many events ...
    #[serde(default = "default_history_keep")]
    pub history_keep: usize,
    /// ... none older than this.
    #[serde(default = "default_history_max_age", with = "humantime_serde")]
    pub history_max_age: Duration,
}

fn default_keep_revisions() -> Spanned<u64> {
    Spanned::new(0..0, 1_000)
}

fn default_history_keep() -> usize {
    10_000
}

fn default_history_max_age() -> Duration {
    Duration::from_secs(30 * 86_400)
}

/// How many checkers must agree that a target is down.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Quorum {
    /// More than half of the live nodes.
    #[default]
    Majority,
    /// At least N live nodes ("N of M vantage points").
    Count(u32),
}

impl Quorum {
    /// Votes needed among `live` nodes (at least 1).
    pub fn needed(self, live: usize) -> usize {
        match self {
            Quorum::Majority => live / 2 + 1,
            Quorum::Count(n) => (n as usize).max(1),
        }
    }
}

impl<'de> Deserialize<'de> for Quorum {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Repr {
            Word(String),
            Count(u32),
        }
        match Repr::deserialize(d)? {
            Repr::Word(w) if w == "majority" => Ok(Quorum::Majority),
            Repr::Word(w) => Err(serde::de::Error::custom(format!(
                "quorum must be \"majority\" or a number of nodes, not {w:?}"
            ))),
            Repr::Count(0) => Err(serde::de::Error::custom("quorum must be at least 1")),
            Repr::Count(n) => Ok(Quorum::Count(n)),
        }
    }
}

fn default_prefix() -> String {
    "/ggon/".into()
}

fn default_lease_ttl() -> Duration {
    Duration::from_secs(5)
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TargetConfig {
    pub name: Spanned<String>,
    /// The addresses answered while this target is active (A and/or AAAA).
    pub addresses: Spanned<Vec<IpAddr>>,
    pub check: CheckConfig,
}

fn default_listen() -> Vec<SocketAddr> {
    vec!["127.0.0.1:5353".parse().unwrap()]
}
pub(super) fn default_state_dir() -> PathBuf {
    PathBuf::from("state")
}
fn default_tcp_max() -> usize {
    256
}
fn default_tcp_idle() -> Duration {
    Duration::from_secs(10)
}
fn default_burst() -> u32 {
    5
}
fn default_per() -> Duration {
    Duration::from_secs(600)
}
fn default_notify_timeout() -> Duration {
    Duration::from_secs(5)
}
fn default_attempts() -> u32 {
    5
}
fn default_reconcile() -> Duration {
    Duration::from_secs(300)
}
fn default_ttl() -> u32 {
    30
}
fn default_hold_down() -> Duration {
    Duration::from_secs(300)
}

impl Default for ServerConfig {
    fn default() -> Self {
        ServerConfig {
            listen: default_listen(),
            workers: 0,
            state_dir: default_state_dir(),
            tcp_max_connections: default_tcp_max(),
            tcp_idle_timeout: default_tcp_idle(),
            rrl: None,
            user: None,
            group: None,
        }
    }
}

impl Config {
    /// Read and validate a config file, parsed apart
    /// ([`crate::memory::made_apart`]): the parse of a large config (toml's
    /// tables peak at about 2 KB per checked target) leaves garbage the
    /// allocator could not give back (about 180 MB at 30,000 services).
    pub fn load(path: &Path) -> Result<Config, ConfigError> {
        let text = read_text(path)?;
        crate::memory::made_apart(|| Config::parse(&text, path))
    }

    /// Parse and validate config text; `path` is only used in error messages.
    pub fn parse(text: &str, path: &Path) -> Result<Config, ConfigError> {
        let mut cfg: Config = from_toml(text, path)?;
        cfg.path = path.to_path_buf();
        let read = cfg.validate(text)?;
        for (r, prefixes) in cfg.regions.iter_mut().zip(read.regions) {
            r.prefixes = prefixes;
        }
        for ((z, name), acl) in cfg.zones.iter_mut().zip(read.zones).zip(read.transfer) {
            z.name = name;
            z.transfer_acl = acl;
        }
        for (s, name) in cfg.services.iter_mut().zip(read.services) {
            s.fqdn_name = name;
        }
        if let (Some(c), Some((origin, acl))) = (cfg.catalog.as_mut(), read.catalog) {
            c.origin = origin;
            c.transfer_acl = acl;
        }
        Ok(cfg)
    }

    /// The zone a (normalized) name belongs to: the most specific one.
    pub fn zone_for(&self, fqdn: &str) -> Option<&ZoneConfig> {
        self.zones
            .iter()
            .filter(|z| in_zone(fqdn, &normalize_name(z.origin.get_ref())))
            .max_by_key(|z| z.origin.get_ref().len())
    }

    /// The control token file: as configured, or in the state directory.
    pub fn token_file(&self) -> PathBuf {
        self.control
            .token_file
            .clone()
            .unwrap_or_else(|| self.server.state_dir.join("control.token"))
    }

    /// An error about the value at `span` in this config file (used for
    /// problems found after parsing, such as an unreadable zone file).
    pub fn error_at(
        &self,
        span: std::ops::Range<usize>,
        field: &str,
        message: String,
    ) -> ConfigError {
        let Place { file, line, field } = self.place(span, field);
        ConfigError {
            file,
            line,
            field,
            message,
        }
    }

    /// Where `span` of the config file is, naming `field`.
    pub fn place(&self, span: std::ops::Range<usize>, field: &str) -> Place {
        let text = std::fs::read_to_string(&self.path).unwrap_or_default();
        Place {
            file: self.path.clone(),
            line: (!text.is_empty()).then(|| line_of(&text, span.start)),
            field: field.to_string(),
        }
    }

    pub fn service(&self, name: &str) -> Option<&ServiceConfig> {
        self.services.iter().find(|s| s.name.get_ref() == name)
    }
}

/// The config of a checkout, used when it exists in the current directory.
pub const CHECKOUT_CONFIG: &str = "config/ggon.toml";
/// The config of an installed system (the Debian package's).
pub const SYSTEM_CONFIG: &str = "/etc/ggon/ggon.toml";

/// The config file used when none is named: `config/ggon.toml` if it exists
/// (running from a checkout), else `/etc/ggon/ggon.toml` if it exists (an
/// installed system), else `config/ggon.toml` (so the error names it).
pub fn default_path() -> PathBuf {
    let checkout = Path::new(CHECKOUT_CONFIG);
    if !checkout.exists() && Path::new(SYSTEM_CONFIG).exists() {
        return PathBuf::from(SYSTEM_CONFIG);
    }
    checkout.to_path_buf()
}

/// Lowercase, fully qualified (trailing dot) form of a domain name.
pub fn normalize_name(s: &str) -> String {
    let mut n = s.trim().to_ascii_lowercase();
    if !n.ends_with('.') {
        n.push('.');
    }
    n
}

/// Is normalized `name` equal to or below normalized `origin`?
pub fn in_zone(name: &str, origin: &str) -> bool {
    origin == "." || name == origin || name.ends_with(&format!(".{origin}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    const GOOD: &str = r#"
[[zone]]
origin = "ggon.org"
file = "zones/ggon.org.zone"

[[service]]
name = "cic"
fqdn = "cic.ggon.org"

[[service.target]]
name = "primary"
addresses = ["127.0.0.11"]
check = { type = "tcp", address = "127.0.0.11:8080", interval = "1s" }
"#;

    #[test]
    fn parses_a_minimal_config() {
        let c = Config::parse(GOOD, Path::new("x.toml")).unwrap();
        assert_eq!(c.services[0].ttl, 30);
        assert_eq!(c.services[0].failback, FailbackMode::Manual);
        assert_eq!(
            c.services[0].targets.get_ref()[0].check.interval,
            Duration::from_secs(1)
        );
    }

    #[test]
    fn type_error_names_file_line_and_field() {
        let bad = GOOD.replace("ttl_unused", "").replace(
            "fqdn = \"cic.ggon.org\"",
            "fqdn = \"cic.ggon.org\"\nttl = \"thirty\"",
        );
        let e = Config::parse(&bad, Path::new("conf/x.toml")).unwrap_err();
        assert_eq!(e.line, Some(9), "{e}");
        let s = e.to_string();
        assert!(s.starts_with("conf/x.toml:9"), "{s}");
        assert_eq!(e.field, "ttl", "{s}");
    }

    #[test]
    fn semantic_error_names_line() {
        let bad = GOOD.replace("cic.ggon.org", "cic.example.com");
        let e = Config::parse(&bad, Path::new("x.toml")).unwrap_err();
        assert_eq!(e.line, Some(8));
        assert_eq!(e.field, "service.fqdn");
    }

    #[test]
    fn wrong_values_name_their_key_not_the_value() {
        let cases = [
            ("ttl = 30", "ttl = 5.5", "ttl"),
            ("ttl = 30", "failback = \"sometimes\"", "failback"),
            ("interval = \"1s\"", "interval = 5", "interval"),
            ("address = \"127.0.0.11:8080\"", "address = 8080", "address"),
            ("type = \"tcp\"", "type = \"ftp\"", "check"),
            ("interval = \"1s\"", "interval = \"soon\"", "interval"),
            ("name = \"cic\"", "name = 7", "name"),
        ];
        let base = GOOD.replace(
            "fqdn = \"cic.ggon.org\"",
            "fqdn = \"cic.ggon.org\"\nttl = 30",
        );
        for (from, to, field) in cases {
            let bad = base.replace(from, to);
            assert_ne!(bad, base, "{from}");
            let e = Config::parse(&bad, Path::new("x.toml")).unwrap_err();
            assert_eq!(e.field, field, "{e}");
        }
    }

    #[test]
    fn a_dns_check_is_read_once_and_a_bad_one_named() {
        let dns = |qtype: &str| {
            GOOD.replace(
                "type = \"tcp\", address = \"127.0.0.11:8080\"",
                &format!(
                    "type = \"dns\", server = \"127.0.0.11:53\", qname = \"x.ggon.org\", \
                     qtype = \"{qtype}\", expect_rcode = \"nxdomain\""
                ),
            )
        };
        let c = Config::parse(&dns("MX"), Path::new("x.toml")).unwrap();
        let CheckKind::Dns(d) = &c.services[0].targets.get_ref()[0].check.kind else {
            panic!("a dns check")
        };
        let q = d.query.as_ref().unwrap();
        assert_eq!(q.qtype, hickory_proto::rr::RecordType::MX);
        assert_eq!(q.expect_rcode, hickory_proto::op::ResponseCode::NXDomain);
        let e = Config::parse(&dns("AX"), Path::new("x.toml")).unwrap_err();
        assert_eq!(e.field, "service.target.check.qtype", "{e}");
        assert_eq!(e.message, "target `primary`: unknown record type `AX`");
    }

    #[test]
    fn missing_field_is_named() {
        let bad = GOOD.replace("address = \"127.0.0.11:8080\", ", "");
        let e = Config::parse(&bad, Path::new("x.toml")).unwrap_err();
        assert_eq!(e.field, "address", "{e}");
        assert!(e.line.is_some());
    }
}
