//! `[catalog]`: the catalog zone (RFC 9432, version 2) ggond serves, listing
//! the zones it answers so that standard secondaries (BIND `catalog-zones`,
//! Knot `catalog-role: interpret`, NSD `catalog` patterns) provision them.
//!
//! Owns the table's type and its rules: a valid name that is none of the
//! served zones and holds no service, known keys, addresses or prefixes in
//! `allow_transfer`, and each zone's `catalog_group` a TXT string of a zone
//! that is in the catalog.

use std::collections::HashSet;

use hickory_proto::rr::Name;
use serde::Deserialize;
use toml::Spanned;

use super::validate::Rules;
use super::{normalize_name, ZoneConfig, ZoneMode};
use crate::proto::acl::Net;

/// `[catalog]`: the catalog zone and who may transfer it.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CatalogConfig {
    /// The catalog zone's name, e.g. `catalog.ggon.invalid`.
    pub name: Spanned<String>,
    /// Addresses (IP or CIDR) allowed AXFR/IXFR of the catalog without a key.
    #[serde(default)]
    pub allow_transfer: Vec<Spanned<String>>,
    /// TSIG keys allowed AXFR/IXFR of the catalog from any address.
    #[serde(default)]
    pub transfer_keys: Vec<Spanned<String>>,
    /// Secondaries to NOTIFY when the catalog changes; their addresses may
    /// transfer it.
    #[serde(default)]
    pub secondaries: Vec<super::SecondaryConfig>,
    /// `name` as a DNS name, read once by validation.
    #[serde(skip)]
    pub(super) origin: Name,
    /// `allow_transfer` as prefixes, read once by validation.
    #[serde(skip)]
    pub(super) transfer_acl: Vec<Net>,
}

impl CatalogConfig {
    /// The catalog zone's name, lowercase and fully qualified.
    pub fn origin(&self) -> Name {
        self.origin.clone()
    }

    /// `allow_transfer` as prefixes.
    pub fn transfer_acl(&self) -> &[Net] {
        &self.transfer_acl
    }
}

impl ZoneConfig {
    /// Whether the zone is a member of the catalog: ggond answers it
    /// (local, secondary, or rfc2136 with `serve`).
    pub fn in_catalog(&self) -> bool {
        match self.mode {
            ZoneMode::Local | ZoneMode::Secondary => true,
            ZoneMode::Rfc2136 => self.serve,
        }
    }
}

/// What validation reads from `[catalog]`: its name and its ACL.
pub(super) type ReadCatalog = Option<(Name, Vec<Net>)>;

impl Rules<'_> {
    /// `[catalog]` and the zones' `catalog_group`. `origins`: the zones'
    /// origins, normalized.
    pub(super) fn catalog(
        &self,
        key_names: &HashSet<&str>,
        origins: &HashSet<String>,
    ) -> Result<ReadCatalog, super::ConfigError> {
        self.catalog_groups()?;
        let Some(c) = &self.cfg.catalog else {
            return Ok(None);
        };
        let text = normalize_name(c.name.get_ref());
        let name = match Name::from_ascii(&text) {
            Ok(n) if text != "." && !c.name.get_ref().trim().is_empty() => n,
            _ => {
                return Err(self.err(
                    c.name.span(),
                    "catalog.name",
                    format!("`{}` is not a valid domain name", c.name.get_ref()),
                ))
            }
        };
        if origins.contains(&text) {
            return Err(self.err(
                c.name.span(),
                "catalog.name",
                format!(
                    "`{text}` is a [[zone]] ggond serves: the catalog zone needs a name of \
                     its own (e.g. catalog.ggon.invalid)"
                ),
            ));
        }
        if let Some(s) = self
            .cfg
            .services
            .iter()
            .find(|s| super::in_zone(&normalize_name(s.fqdn.get_ref()), &text))
        {
            return Err(self.err(
                c.name.span(),
                "catalog.name",
                format!(
                    "service `{}` ({}) is inside the catalog zone `{text}`: choose a name \
                     no service is at or below",
                    s.name.get_ref(),
                    s.fqdn.get_ref()
                ),
            ));
        }
        for k in &c.transfer_keys {
            if !key_names.contains(k.get_ref().as_str()) {
                return Err(self.err(
                    k.span(),
                    "catalog.transfer_keys",
                    format!("no [[key]] named `{}`", k.get_ref()),
                ));
            }
        }
        for sec in &c.secondaries {
            if let Some(k) = sec.key.as_deref().filter(|k| !key_names.contains(k)) {
                return Err(self.err(
                    c.name.span(),
                    "catalog.secondaries.key",
                    format!("no [[key]] named `{k}`"),
                ));
            }
        }
        let mut nets = Vec::with_capacity(c.allow_transfer.len());
        for a in &c.allow_transfer {
            let Some(net) = Net::parse(a.get_ref()) else {
                return Err(self.err(
                    a.span(),
                    "catalog.allow_transfer",
                    format!("`{}` is not an IP address or CIDR prefix", a.get_ref()),
                ));
            };
            nets.push(net);
        }
        Ok(Some((name, nets)))
    }

    /// Each zone's `catalog_group`: a `[catalog]` exists, the zone is in it,
    /// and the group is one TXT string (1 to 255 bytes).
    fn catalog_groups(&self) -> Result<(), super::ConfigError> {
        for z in &self.cfg.zones {
            let Some(g) = &z.catalog_group else { continue };
            let why = if self.cfg.catalog.is_none() {
                Some("needs a [catalog] table".to_string())
            } else if !z.in_catalog() {
                Some(format!(
                    "zone `{}` is not answered by ggond (rfc2136 without `serve`), so it \
                     is not in the catalog",
                    z.origin.get_ref()
                ))
            } else if g.get_ref().is_empty() || g.get_ref().len() > 255 {
                Some("must be 1 to 255 bytes long (one TXT string)".to_string())
            } else {
                None
            };
            if let Some(why) = why {
                return Err(self.err(g.span(), "zone.catalog_group", why));
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::super::Config;

    const BASE: &str = r#"
[[key]]
name = "xfr"
secret = "c2VjcmV0c2VjcmV0c2VjcmV0"

[[zone]]
origin = "ggon.org"
file = "zones/ggon.org.zone"
catalog_group = "fast"

[[zone]]
origin = "example.net"
mode = "rfc2136"
primary = "127.0.0.1:53"

[catalog]
name = "catalog.ggon.invalid"
allow_transfer = ["127.0.0.1"]
transfer_keys = ["xfr"]
"#;

    fn err(text: &str) -> super::super::ConfigError {
        Config::parse(text, Path::new("c.toml")).unwrap_err()
    }

    #[test]
    fn a_catalog_is_read_once() {
        let c = Config::parse(BASE, Path::new("c.toml")).unwrap();
        let cat = c.catalog.as_ref().unwrap();
        assert_eq!(cat.origin().to_string(), "catalog.ggon.invalid.");
        assert_eq!(cat.transfer_acl().len(), 1);
        assert!(c.zones[0].in_catalog());
        assert!(!c.zones[1].in_catalog());
    }

    #[test]
    fn bad_catalogs_name_line_and_field() {
        let cases = [
            (
                "catalog.ggon.invalid",
                "GGON.org.",
                17,
                "catalog.name",
                "is a [[zone]]",
            ),
            (
                "catalog.ggon.invalid",
                "a..b",
                17,
                "catalog.name",
                "not a valid domain",
            ),
            (
                "catalog.ggon.invalid",
                "",
                17,
                "catalog.name",
                "not a valid domain",
            ),
            (
                "[\"xfr\"]",
                "[\"nope\"]",
                19,
                "catalog.transfer_keys",
                "no [[key]]",
            ),
            (
                "[\"127.0.0.1\"]",
                "[\"local\"]",
                18,
                "catalog.allow_transfer",
                "not an IP",
            ),
        ];
        for (from, to, line, field, says) in cases {
            let bad = BASE.replace(from, to);
            assert_ne!(bad, BASE);
            let e = err(&bad);
            assert_eq!((e.line, e.field.as_str()), (Some(line), field), "{e}");
            assert!(e.message.contains(says), "{e}");
        }
    }

    #[test]
    fn a_group_needs_a_catalog_and_a_member() {
        let e = err(&BASE.replace("[catalog]\nname = \"catalog.ggon.invalid\"\nallow_transfer = [\"127.0.0.1\"]\ntransfer_keys = [\"xfr\"]\n", ""));
        assert_eq!(
            (e.line, e.field.as_str()),
            (Some(9), "zone.catalog_group"),
            "{e}"
        );
        let e = err(&BASE.replace(
            "primary = \"127.0.0.1:53\"",
            "primary = \"127.0.0.1:53\"\ncatalog_group = \"x\"",
        ));
        assert_eq!(
            (e.line, e.field.as_str()),
            (Some(15), "zone.catalog_group"),
            "{e}"
        );
        let e = err(&BASE.replace("\"fast\"", "\"\""));
        assert!(e.message.contains("1 to 255"), "{e}");
    }
}
