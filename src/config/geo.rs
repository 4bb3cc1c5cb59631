//! Geographic answers in the config: `[[region]]` blocks, a service's
//! `active = "per-region"` and its `order` per region, a zone's `ecs`.
//!
//! Validation only (side-effect free like the rest of [`crate::config`]): the
//! region map itself, with a GeoIP database read, is built at load time by
//! [`crate::geo::map::RegionMap`].

use std::collections::{BTreeMap, HashSet};
use std::path::PathBuf;

use ipnet::IpNet;
use serde::Deserialize;
use toml::Spanned;

use super::validate::Rules;
use super::{normalize_name, Config, ConfigError, ServiceConfig, TargetConfig, ZoneMode};

/// How many targets answer a service at once.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Default)]
#[serde(rename_all = "kebab-case")]
pub enum ActiveMode {
    /// Exactly one target for every client (databases, single writers).
    #[default]
    Single,
    /// Each client region gets its own most preferred available target.
    PerRegion,
}

/// Region name (or `default`) → target names by preference.
pub type Orders = BTreeMap<String, Vec<Spanned<String>>>;

/// The name of the order used for clients in no region (or in a region the
/// service has no order for).
pub const DEFAULT_REGION: &str = "default";

/// `[[region]]`: which clients belong to a region.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RegionConfig {
    pub name: Spanned<String>,
    /// CIDR prefixes (IPv4 and IPv6); the longest matching prefix of all
    /// regions wins.
    #[serde(default)]
    pub nets: Vec<Spanned<String>>,
    /// More prefixes, one per line (`#` comments), read at load time: for
    /// long lists, which would be slow and large to parse as TOML.
    #[serde(default)]
    pub nets_file: Option<Spanned<PathBuf>>,
    /// Networks from a MaxMind DB (GeoLite2/GeoIP2 Country or City, DB-IP
    /// country) whose country or continent code is listed.
    #[serde(default)]
    pub geoip: Option<Spanned<GeoipConfig>>,
    /// `nets` as prefixes, read once by validation.
    #[serde(skip)]
    pub(super) prefixes: Vec<IpNet>,
}

#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct GeoipConfig {
    pub database: PathBuf,
    /// ISO 3166-1 alpha-2 codes, e.g. "DE".
    #[serde(default)]
    pub countries: Vec<String>,
    /// Continent codes, e.g. "EU", "NA".
    #[serde(default)]
    pub continents: Vec<String>,
}

impl RegionConfig {
    /// The prefixes of `nets`.
    pub fn prefixes(&self) -> &[IpNet] {
        &self.prefixes
    }
}

/// Why a text is not a region's prefix.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NetError {
    #[error("`{0}` is not a CIDR prefix")]
    NotAPrefix(String),
    #[error("`{text}` has host bits set (did you mean {}?)", net.trunc())]
    HostBits { text: String, net: IpNet },
}

/// A CIDR prefix, or a single address as its host prefix. Host bits must
/// be zero (a typo like 192.0.2.1/24 is refused, not guessed at).
pub fn parse_net(s: &str) -> Result<IpNet, NetError> {
    let net: IpNet = match s.parse() {
        Ok(n) => n,
        Err(_) => match s.parse::<std::net::IpAddr>() {
            Ok(a) => IpNet::from(a),
            Err(_) => return Err(NetError::NotAPrefix(s.to_string())),
        },
    };
    if net.trunc() != net {
        return Err(NetError::HostBits {
            text: s.to_string(),
            net,
        });
    }
    Ok(net)
}

impl Config {
    /// Region index by name, in file order; the default slot is `regions.len()`.
    pub fn region_slot(&self, name: &str) -> Option<usize> {
        if name == DEFAULT_REGION {
            return Some(self.regions.len());
        }
        self.regions.iter().position(|r| r.name.get_ref() == name)
    }
}

impl Rules<'_> {
    /// `[[region]]`: names, and nets or GeoIP codes for each. Returns each
    /// region's `nets` as prefixes.
    pub(super) fn regions(&self) -> Result<Vec<Vec<IpNet>>, ConfigError> {
        let mut names = HashSet::new();
        let mut prefixes = Vec::with_capacity(self.cfg.regions.len());
        if self.cfg.regions.len() >= usize::from(u16::MAX) {
            return Err(self.err(0..0, "region", "too many regions".into()));
        }
        for r in &self.cfg.regions {
            let name = r.name.get_ref();
            let ok = !name.is_empty()
                && name
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_');
            if !ok || name == DEFAULT_REGION {
                return Err(self.err(
                    r.name.span(),
                    "region.name",
                    format!("`{name}`: use letters, digits, '-' or '_' (and not `default`)"),
                ));
            }
            if !names.insert(name.clone()) {
                return Err(self.err(
                    r.name.span(),
                    "region.name",
                    format!("region `{name}` is declared twice"),
                ));
            }
            prefixes.push(self.region_sources(r)?);
        }
        Ok(prefixes)
    }

    /// Where a region's clients are found: `nets`, `nets_file` or `geoip`.
    /// Returns the `nets`.
    fn region_sources(&self, r: &RegionConfig) -> Result<Vec<IpNet>, ConfigError> {
        let name = r.name.get_ref();
        let mut nets = Vec::with_capacity(r.nets.len());
        for n in &r.nets {
            nets.push(
                parse_net(n.get_ref())
                    .map_err(|e| self.err(n.span(), "region.nets", e.to_string()))?,
            );
        }
        if let Some(g) = &r.geoip {
            let gc = g.get_ref();
            if gc.countries.is_empty() && gc.continents.is_empty() {
                return Err(self.err(
                    g.span(),
                    "region.geoip",
                    format!("region `{name}`: list `countries` or `continents`"),
                ));
            }
            let bad = gc
                .countries
                .iter()
                .chain(&gc.continents)
                .find(|c| c.len() != 2 || !c.chars().all(|x| x.is_ascii_uppercase()));
            if let Some(bad) = bad {
                return Err(self.err(
                    g.span(),
                    "region.geoip",
                    format!("`{bad}` is not a two-letter upper-case country or continent code"),
                ));
            }
        } else if r.nets.is_empty() && r.nets_file.is_none() {
            return Err(self.err(
                r.name.span(),
                "region.nets",
                format!("region `{name}` has no `nets`, `nets_file` or `geoip`"),
            ));
        }
        Ok(nets)
    }

    /// Per-region services: an `order` (and only they), in a zone ggond
    /// answers (signed: targets of one address-family set), naming known
    /// regions and the service's targets.
    pub(super) fn per_region_services(&self) -> Result<(), ConfigError> {
        for s in &self.cfg.services {
            let sname = s.name.get_ref();
            let order = match (s.active, &s.order) {
                (ActiveMode::Single, None) => continue,
                (ActiveMode::Single, Some(o)) => {
                    return Err(self.err(
                        o.span(),
                        "service.order",
                        format!("service `{sname}`: `order` needs active = \"per-region\""),
                    ))
                }
                (ActiveMode::PerRegion, None) => {
                    return Err(self.err(
                        s.name.span(),
                        "service.order",
                        format!("service `{sname}` is per-region: give an `order` per region"),
                    ))
                }
                (ActiveMode::PerRegion, Some(o)) => o,
            };
            self.per_region_zone(s)?;
            self.order(s, order)?;
        }
        Ok(())
    }

    /// A per-region service's zone is local (ggond answers it).
    fn per_region_zone(&self, s: &ServiceConfig) -> Result<(), ConfigError> {
        let sname = s.name.get_ref();
        let fqdn = normalize_name(s.fqdn.get_ref());
        if let Some(z) = self
            .cfg
            .zone_for(&fqdn)
            .filter(|z| z.mode != ZoneMode::Local)
        {
            let mode = if z.mode == ZoneMode::Rfc2136 {
                "rfc2136"
            } else {
                "secondary"
            };
            return Err(self.err(
                s.name.span(),
                "service.active",
                format!(
                    "service `{sname}` is per-region, but its zone `{}` is in {mode} mode: \
                     per-region answers need ggond to answer the zone (mode = \"local\")",
                    z.origin.get_ref()
                ),
            ));
        }
        if let Some(z) = self.cfg.zone_for(&fqdn).filter(|z| z.dnssec.is_some()) {
            self.same_families(s, z.origin.get_ref())?;
        }
        Ok(())
    }

    /// In a signed zone, every target of a per-region service has the same
    /// address families: the name's NSEC/NSEC3 bitmap, one for all regions,
    /// says which of A and AAAA exist, so a region whose target lacked one
    /// could not prove its NODATA (validators would call it bogus).
    fn same_families(&self, s: &ServiceConfig, zone: &str) -> Result<(), ConfigError> {
        let families = |t: &TargetConfig| {
            let a = t.addresses.get_ref();
            (a.iter().any(|x| x.is_ipv4()), a.iter().any(|x| x.is_ipv6()))
        };
        let targets = s.targets.get_ref();
        let Some(first) = targets.first() else {
            return Ok(());
        };
        let Some(odd) = targets.iter().find(|t| families(t) != families(first)) else {
            return Ok(());
        };
        let says = |t: &TargetConfig| match families(t) {
            (true, true) => "IPv4 and IPv6",
            (true, false) => "IPv4 only",
            (false, true) => "IPv6 only",
            (false, false) => "no address",
        };
        Err(self.err(
            odd.addresses.span(),
            "service.target.addresses",
            format!(
                "service `{}` is per-region in the signed zone `{zone}`: its targets must all \
                 have the same address families (`{}` has {}, `{}` has {}), since the zone's \
                 proof of which types the name has is one for every region",
                s.name.get_ref(),
                first.name.get_ref(),
                says(first),
                odd.name.get_ref(),
                says(odd)
            ),
        ))
    }

    /// A per-region service's `order`: known regions, each a non-empty list
    /// of the service's own targets, none twice.
    fn order(&self, s: &ServiceConfig, order: &Spanned<Orders>) -> Result<(), ConfigError> {
        let sname = s.name.get_ref();
        if order.get_ref().is_empty() {
            return Err(self.err(
                order.span(),
                "service.order",
                format!("service `{sname}`: the order is empty"),
            ));
        }
        let targets: HashSet<&String> = s
            .targets
            .get_ref()
            .iter()
            .map(|t| t.name.get_ref())
            .collect();
        for (region, list) in order.get_ref() {
            if self.cfg.region_slot(region).is_none() {
                return Err(self.err(
                    order.span(),
                    "service.order",
                    format!(
                        "service `{sname}`: no [[region]] is named `{region}` (an order is \
                         for one of: {}, or `{DEFAULT_REGION}` for clients in none)",
                        self.cfg
                            .regions
                            .iter()
                            .map(|r| format!("`{}`", r.name.get_ref()))
                            .collect::<Vec<_>>()
                            .join(", ")
                    ),
                ));
            }
            if list.is_empty() {
                return Err(self.err(
                    order.span(),
                    "service.order",
                    format!("service `{sname}`: the order for `{region}` is empty"),
                ));
            }
            let mut seen = HashSet::new();
            for t in list {
                if !targets.contains(t.get_ref()) {
                    return Err(self.err(
                        t.span(),
                        "service.order",
                        format!("service `{sname}` has no target `{}`", t.get_ref()),
                    ));
                }
                if !seen.insert(t.get_ref()) {
                    return Err(self.err(
                        t.span(),
                        "service.order",
                        format!(
                            "`{}` appears twice in the order for `{region}`",
                            t.get_ref()
                        ),
                    ));
                }
            }
        }
        Ok(())
    }
}
