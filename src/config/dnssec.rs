//! `dnssec = { … }` in a `[[zone]]`: ggond signs the zone it serves.

use std::path::PathBuf;
use std::time::Duration;

use serde::Deserialize;
use toml::Spanned;

/// Online signing of a local zone.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DnssecConfig {
    /// BIND key pairs (`Kggon.org.+013+12345`, with or without `.key`):
    /// `dnssec-keygen` or `ggon-ctl dnssec keygen` output. A key with the
    /// SEP flag (257) signs the DNSKEY RRset; the others sign the rest; a
    /// lone key signs everything.
    pub keys: Vec<Spanned<PathBuf>>,
    /// Keys in the DNSKEY RRset that do not sign yet (a ZSK pre-published
    /// for a rollover) or any more (a retired key waiting out caches).
    #[serde(default)]
    pub published: Vec<Spanned<PathBuf>>,
    /// Signature lifetime, from inception to expiration.
    #[serde(default = "default_validity", with = "humantime_serde")]
    pub validity: Duration,
    /// A signature with less than this left is made again.
    #[serde(default = "default_refresh", with = "humantime_serde")]
    pub refresh: Duration,
    /// Added to the zone's longest TTL between the steps of a key roll.
    #[serde(default = "default_propagation", with = "humantime_serde")]
    pub propagation: Duration,
    /// `nsec` (default) or `nsec3` (SHA-1, no extra iterations, no salt,
    /// as RFC 9276 recommends).
    #[serde(default)]
    pub denial: DenialConfig,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum DenialConfig {
    #[default]
    Nsec,
    Nsec3,
}

fn default_validity() -> Duration {
    Duration::from_secs(14 * 86_400)
}

fn default_propagation() -> Duration {
    Duration::from_secs(300)
}

fn default_refresh() -> Duration {
    Duration::from_secs(5 * 86_400)
}
