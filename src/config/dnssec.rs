//! `dnssec = { … }` in a `[[zone]]`: ggond signs the zone it serves.

use std::net::SocketAddr;
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
    /// Rolls that run themselves (key lifetimes); none: rolls only when an
    /// operator types `ggon-ctl dnssec roll`.
    #[serde(default)]
    pub policy: Option<KeyPolicyConfig>,
}

/// `dnssec.policy`: when keys are rolled without an operator, and how the
/// parent is watched during a KSK roll (docs/dnssec.md#key-policy).
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KeyPolicyConfig {
    /// A ZSK signing this long is rolled (pre-publication). Knot's default.
    #[serde(default = "default_zsk_lifetime", with = "humantime_serde")]
    pub zsk_lifetime: Duration,
    /// A KSK signing this long is rolled (double signature); none (the
    /// default, as in Knot): KSKs are rolled only by an operator. Needs
    /// `parent_servers`: the old KSK leaves only once they serve the new DS.
    #[serde(default, with = "humantime_serde")]
    pub ksk_lifetime: Option<Duration>,
    /// The parent zone's servers (IP:PORT) asked for the zone's DS during a
    /// KSK roll, like BIND's `parental-agents`: every one of them must serve
    /// the new key's DS before the old KSK is withdrawn.
    #[serde(default)]
    pub parent_servers: Vec<SocketAddr>,
    /// How often the parent's servers are asked while a new DS is awaited.
    #[serde(default = "default_check_interval", with = "humantime_serde")]
    pub check_interval: Duration,
    /// Waited after every parent server serves the new DS, besides the
    /// DS's TTL, before the old KSK goes (BIND's `parent-propagation-delay`).
    #[serde(default = "default_parent_propagation", with = "humantime_serde")]
    pub parent_propagation: Duration,
    /// The parent's DS TTL when it is longer than what its servers answer
    /// (a hidden primary answering with another TTL); default: the TTL the
    /// servers answer.
    #[serde(default, with = "humantime_serde")]
    pub parent_ds_ttl: Option<Duration>,
}

impl KeyPolicyConfig {
    /// What is wrong with the policy, if anything (checked with the rest
    /// of the config, so a bad policy is a load error, never a panic later).
    pub fn problem(&self) -> Option<&'static str> {
        if self.zsk_lifetime.is_zero() {
            return Some("dnssec: `policy.zsk_lifetime` must be above zero");
        }
        if self.check_interval.is_zero() {
            return Some("dnssec: `policy.check_interval` must be above zero");
        }
        match self.ksk_lifetime {
            Some(l) if l.is_zero() => Some("dnssec: `policy.ksk_lifetime` must be above zero"),
            Some(_) if self.parent_servers.is_empty() => Some(
                "dnssec: `policy.ksk_lifetime` needs `policy.parent_servers`: the old KSK is withdrawn \
                 only once the parent's servers serve the new DS",
            ),
            _ => None,
        }
    }
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

fn default_zsk_lifetime() -> Duration {
    Duration::from_secs(30 * 86_400)
}

fn default_check_interval() -> Duration {
    Duration::from_secs(3600)
}

fn default_parent_propagation() -> Duration {
    Duration::from_secs(3600)
}

#[cfg(test)]
mod tests {
    use crate::config::Config;
    use std::path::Path;

    fn parse(policy: &str) -> Result<Config, String> {
        let text = format!(
            "[[zone]]\norigin = \"ggon.org\"\nfile = \"z\"\n\
             dnssec = {{ keys = [\"K\"], policy = {{ {policy} }} }}\n"
        );
        Config::parse(&text, Path::new("t.toml")).map_err(|e| e.to_string())
    }

    #[test]
    fn policy_defaults_and_second_scale_values() {
        let c = parse("").unwrap();
        let p = c.zones[0].dnssec.as_ref().unwrap().policy.clone().unwrap();
        assert_eq!(p.zsk_lifetime.as_secs(), 30 * 86_400);
        assert_eq!(p.ksk_lifetime, None);
        assert_eq!(p.check_interval.as_secs(), 3600);
        assert_eq!(p.parent_propagation.as_secs(), 3600);
        let c = parse(
            "zsk_lifetime = \"5s\", ksk_lifetime = \"2m\", parent_servers = [\"127.0.0.1:5300\"], \
             check_interval = \"1s\", parent_propagation = \"1s\", parent_ds_ttl = \"1d\"",
        )
        .unwrap();
        let p = c.zones[0].dnssec.as_ref().unwrap().policy.clone().unwrap();
        assert_eq!(p.zsk_lifetime.as_secs(), 5);
        assert_eq!(p.ksk_lifetime.map(|d| d.as_secs()), Some(120));
        assert_eq!(p.parent_ds_ttl.map(|d| d.as_secs()), Some(86_400));
    }

    #[test]
    fn bad_policies_are_refused_with_the_reason() {
        let e = parse("ksk_lifetime = \"1y\"").unwrap_err();
        assert!(e.contains("needs `policy.parent_servers`"), "{e}");
        let e = parse("zsk_lifetime = \"0s\"").unwrap_err();
        assert!(e.contains("zsk_lifetime` must be above zero"), "{e}");
        let e = parse("check_interval = \"0s\"").unwrap_err();
        assert!(e.contains("check_interval` must be above zero"), "{e}");
        let e = parse("parent_servers = [\"not an address\"]").unwrap_err();
        assert!(e.contains("parent_servers"), "{e}");
        let e = parse("zsk_lifetme = \"1d\"").unwrap_err();
        assert!(e.contains("zsk_lifetme"), "{e}");
    }
}
