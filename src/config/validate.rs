//! Every rule a config must satisfy beyond its types, checked once after
//! parsing. Side-effect free: nothing is opened, bound or started.
//!
//! [`Config::validate`] is the list of steps, in the order their errors are
//! reported; each step is a method of [`Rules`], which knows the file's
//! text so that every error names its line.

use std::ops::Range;

use hickory_proto::rr::Name;

use crate::proto::acl::Net;

use super::*;

/// The config under validation and the text it was read from.
pub(super) struct Rules<'a> {
    pub cfg: &'a Config,
    pub text: &'a str,
}

impl Rules<'_> {
    /// An error at `span` of the file, about `field`.
    pub(super) fn err(&self, span: Range<usize>, field: &str, message: String) -> ConfigError {
        ConfigError {
            file: self.cfg.path.clone(),
            line: Some(line_of(self.text, span.start)),
            field: field.to_string(),
            message,
        }
    }

    /// An error about `field` with no line (a default, or a value whose
    /// place the parser does not keep).
    fn unplaced(&self, field: &str, message: String) -> ConfigError {
        ConfigError {
            file: self.cfg.path.clone(),
            line: None,
            field: field.to_string(),
            message,
        }
    }
}

/// What validation reads once, so nothing after it parses text again, in
/// file order: the regions' nets, the zones' origins and transfer ACLs, the
/// services' names.
pub(super) struct Read {
    pub regions: Vec<Vec<ipnet::IpNet>>,
    pub zones: Vec<Name>,
    pub transfer: Vec<Vec<Net>>,
    pub services: Vec<Name>,
    pub catalog: super::catalog::ReadCatalog,
}

/// The zones as validation read them: the origins (normalized text, to
/// find a service's zone), and in file order each origin as a DNS name and
/// its `allow_transfer` as prefixes.
struct Zones {
    origins: HashSet<String>,
    names: Vec<Name>,
    transfer: Vec<Vec<Net>>,
}

impl Config {
    pub(super) fn validate(&self, text: &str) -> Result<Read, ConfigError> {
        let rules = Rules { cfg: self, text };
        if let Some((field, message)) = self.control.limits.problem() {
            return Err(rules.unplaced(field, message));
        }
        let regions = rules.regions()?;
        rules.per_region_services()?;
        rules.control_tls()?;
        if self.cert_audit.warn_days < 0 {
            return Err(rules.unplaced("cert_audit.warn_days", "must be 0 or more".into()));
        }
        if let Some(c) = &self.cluster {
            rules.cluster(c)?;
        }
        rules.accounts()?;
        let key_names = rules.keys()?;
        let zones = rules.zones(&key_names)?;
        let services = rules.services(&zones.origins)?;
        let catalog = rules.catalog(&key_names, &zones.origins)?;
        Ok(Read {
            catalog,
            regions,
            zones: zones.names,
            transfer: zones.transfer,
            services,
        })
    }
}

impl Rules<'_> {
    /// TLS on the control listener: certificate and key together, not in
    /// a cluster.
    fn control_tls(&self) -> Result<(), ConfigError> {
        let control = &self.cfg.control;
        match (&control.tls_certificate, &control.tls_key) {
            (Some(c), None) => Err(self.err(
                c.span(),
                "control.tls_key",
                "tls_certificate is set but tls_key is not: TLS needs both".into(),
            )),
            (None, Some(k)) => Err(self.err(
                k.span(),
                "control.tls_certificate",
                "tls_key is set but tls_certificate is not: TLS needs both".into(),
            )),
            (Some(c), Some(_)) if self.cfg.cluster.is_some() && control.tls_ca_file.is_none() => {
                Err(self.err(
                    c.span(),
                    "control.tls_ca_file",
                    "cluster mode with control TLS needs tls_ca_file: the CA that signed the \
                     nodes' control certificates (a follower verifies the leader's against it \
                     before it passes an operator's change on)"
                        .into(),
                ))
            }
            (None, None) if control.tls_ca_file.is_some() => {
                let ca = control.tls_ca_file.as_ref().expect("checked");
                Err(self.err(
                    ca.span(),
                    "control.tls_ca_file",
                    "tls_ca_file is set but the control API has no TLS \
                     (tls_certificate and tls_key)"
                        .into(),
                ))
            }
            _ => Ok(()),
        }
    }

    /// `[cluster]`: etcd URLs, the node's name, lease, prefix, credentials.
    fn cluster(&self, c: &ClusterConfig) -> Result<(), ConfigError> {
        if c.etcd.get_ref().is_empty() {
            return Err(self.err(
                c.etcd.span(),
                "cluster.etcd",
                "name at least one etcd endpoint".into(),
            ));
        }
        for e in c.etcd.get_ref() {
            if !(e.starts_with("http://") || e.starts_with("https://")) {
                return Err(self.err(
                    c.etcd.span(),
                    "cluster.etcd",
                    format!("`{e}`: an etcd client URL starts with http:// or https://"),
                ));
            }
        }
        let node = c.node.get_ref();
        if node.is_empty()
            || !node
                .chars()
                .all(|ch| ch.is_ascii_alphanumeric() || ch == '-' || ch == '_' || ch == '.')
        {
            return Err(self.err(
                c.node.span(),
                "cluster.node",
                format!("`{node}`: a node name is letters, digits, `-`, `_` or `.`"),
            ));
        }
        if *c.keep_revisions.get_ref() == 0 {
            return Err(self.err(
                c.keep_revisions.span(),
                "cluster.keep_revisions",
                "at least 1: a window of 0 revisions would compact away what a watch resumes from"
                    .into(),
            ));
        }
        let problem = if c.lease_ttl < std::time::Duration::from_secs(2) {
            Some((
                "cluster.lease_ttl",
                "at least 2s (etcd leases have a one-second granularity)".to_string(),
            ))
        } else if !c.prefix.starts_with('/') || !c.prefix.ends_with('/') {
            Some((
                "cluster.prefix",
                format!("`{}`: a prefix starts and ends with `/`", c.prefix),
            ))
        } else if c.username.is_some() != c.password.is_some() {
            Some((
                "cluster.username",
                "give both `username` and `password`, or neither".to_string(),
            ))
        } else if c.cert_file.is_some() != c.key_file.is_some() {
            Some((
                "cluster.cert_file",
                "give both `cert_file` and `key_file` (the client certificate and its key), or neither"
                    .to_string(),
            ))
        } else {
            None
        };
        match problem {
            Some((field, message)) => Err(self.err(c.node.span(), field, message)),
            None => Ok(()),
        }
    }

    /// `server.user` and `server.group` are account names.
    fn accounts(&self) -> Result<(), ConfigError> {
        let server = &self.cfg.server;
        for (field, v) in [
            ("server.user", &server.user),
            ("server.group", &server.group),
        ] {
            if let Some(v) = v {
                let name = v.get_ref();
                if name.is_empty() || name.chars().any(|c| c.is_whitespace() || c == ':') {
                    return Err(self.err(
                        v.span(),
                        field,
                        format!("`{name}` is not an account name"),
                    ));
                }
            }
        }
        Ok(())
    }

    /// `[[key]]`: unique names, a file or an inline secret. Returns the names.
    fn keys(&self) -> Result<HashSet<&str>, ConfigError> {
        let mut key_names = HashSet::new();
        for k in &self.cfg.keys {
            if !key_names.insert(k.name.get_ref().as_str()) {
                return Err(self.err(
                    k.name.span(),
                    "key.name",
                    format!("key `{}` is declared twice", k.name.get_ref()),
                ));
            }
            let inline = k.secret.is_some();
            if inline == k.file.is_some() {
                return Err(self.err(
                    k.name.span(),
                    "key.file",
                    format!(
                        "key `{}`: give either `file` (a BIND key file) or `secret` (+ `algorithm`)",
                        k.name.get_ref()
                    ),
                ));
            }
        }
        Ok(key_names)
    }

    /// `[[zone]]`: valid, unique origins and what each mode needs. Returns
    /// the origins (normalized), and each zone's as a DNS name and its
    /// `allow_transfer` as prefixes.
    fn zones(&self, key_names: &HashSet<&str>) -> Result<Zones, ConfigError> {
        let mut origins = HashSet::new();
        let mut names = Vec::with_capacity(self.cfg.zones.len());
        let mut transfer = Vec::with_capacity(self.cfg.zones.len());
        for z in &self.cfg.zones {
            let origin = normalize_name(z.origin.get_ref());
            let Ok(name) = Name::from_ascii(&origin) else {
                return Err(self.err(
                    z.origin.span(),
                    "zone.origin",
                    format!("`{}` is not a valid domain name", z.origin.get_ref()),
                ));
            };
            names.push(name);
            if !origins.insert(origin.clone()) {
                return Err(self.err(
                    z.origin.span(),
                    "zone.origin",
                    format!("zone `{origin}` is declared twice"),
                ));
            }
            self.zone_mode(z, &origin)?;
            transfer.push(self.zone_keys(z, key_names)?);
        }
        Ok(Zones {
            origins,
            names,
            transfer,
        })
    }

    /// What a zone's mode needs: a file when ggond serves it, a primary when
    /// it does not, `dnssec` only where ggond signs.
    fn zone_mode(&self, z: &ZoneConfig, origin: &str) -> Result<(), ConfigError> {
        let needs_file = z.mode == ZoneMode::Local || (z.mode == ZoneMode::Rfc2136 && z.serve);
        if needs_file && z.file.is_none() {
            return Err(self.err(
                z.origin.span(),
                "zone.file",
                format!("zone `{origin}` is served by ggond and needs a `file`"),
            ));
        }
        if let Some(d) = &z.dnssec {
            let why = match z.mode {
                ZoneMode::Local if d.keys.is_empty() => Some("needs at least one key in `keys`"),
                ZoneMode::Local if d.refresh >= d.validity || d.refresh.is_zero() => {
                    Some("`refresh` must be above zero and below `validity`")
                }
                ZoneMode::Local if d.policy.as_ref().and_then(|p| p.problem()).is_some() => {
                    d.policy.as_ref().and_then(|p| p.problem())
                }
                ZoneMode::Local => None,
                ZoneMode::Rfc2136 => Some(
                    "is published to another primary, which signs it (e.g. BIND's \
                     dnssec-policy): remove `dnssec` here",
                ),
                ZoneMode::Secondary => {
                    Some("is a secondary: it is served signed as its primary signed it")
                }
            };
            if let Some(why) = why {
                return Err(self.err(
                    z.origin.span(),
                    "zone.dnssec",
                    format!("zone `{origin}` {why}"),
                ));
            }
        }
        if matches!(z.mode, ZoneMode::Rfc2136 | ZoneMode::Secondary) && z.primary.is_none() {
            return Err(self.err(
                z.origin.span(),
                "zone.primary",
                format!("zone `{origin}` is not local and needs `primary`"),
            ));
        }
        Ok(())
    }

    /// Every key a zone names is a `[[key]]`; `allow_transfer` holds
    /// addresses and prefixes, returned.
    fn zone_keys(
        &self,
        z: &ZoneConfig,
        key_names: &HashSet<&str>,
    ) -> Result<Vec<Net>, ConfigError> {
        for k in z
            .update_keys
            .iter()
            .chain(&z.transfer_keys)
            .chain(z.key.iter())
        {
            if !key_names.contains(k.get_ref().as_str()) {
                return Err(self.err(
                    k.span(),
                    "zone.key",
                    format!("no [[key]] named `{}`", k.get_ref()),
                ));
            }
        }
        for sec in &z.secondaries {
            if let Some(k) = &sec.key {
                if !key_names.contains(k.as_str()) {
                    return Err(self.err(
                        z.origin.span(),
                        "zone.secondaries.key",
                        format!("no [[key]] named `{k}`"),
                    ));
                }
            }
        }
        let mut nets = Vec::with_capacity(z.allow_transfer.len());
        for a in &z.allow_transfer {
            let Some(net) = Net::parse(a.get_ref()) else {
                return Err(self.err(
                    a.span(),
                    "zone.allow_transfer",
                    format!("`{}` is not an IP address or CIDR prefix", a.get_ref()),
                ));
            };
            nets.push(net);
        }
        Ok(nets)
    }

    /// `[[service]]`: unique names and names inside a zone ggond or its
    /// primary answers, then each target. Returns each service's DNS name.
    fn services(&self, origins: &HashSet<String>) -> Result<Vec<Name>, ConfigError> {
        let mut names = HashSet::new();
        let mut fqdns = HashSet::new();
        let mut dns_names = Vec::with_capacity(self.cfg.services.len());
        for s in &self.cfg.services {
            let name = s.name.get_ref();
            if name.is_empty()
                || !name
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
            {
                return Err(self.err(
                    s.name.span(),
                    "service.name",
                    format!("`{name}`: use letters, digits, '-' or '_'"),
                ));
            }
            if !names.insert(name.clone()) {
                return Err(self.err(
                    s.name.span(),
                    "service.name",
                    format!("service `{name}` is declared twice"),
                ));
            }
            let fqdn = normalize_name(s.fqdn.get_ref());
            dns_names.push(self.service_name(s, &fqdn, origins)?);
            if !fqdns.insert(fqdn.clone()) {
                return Err(self.err(
                    s.fqdn.span(),
                    "service.fqdn",
                    format!("`{fqdn}` is owned by two services"),
                ));
            }
            self.targets(s)?;
        }
        Ok(dns_names)
    }

    /// A service's name: valid, inside a configured zone, not a secondary's.
    fn service_name(
        &self,
        s: &ServiceConfig,
        fqdn: &str,
        origins: &HashSet<String>,
    ) -> Result<Name, ConfigError> {
        let Ok(name) = Name::from_ascii(fqdn) else {
            return Err(self.err(
                s.fqdn.span(),
                "service.fqdn",
                format!("`{}` is not a valid domain name", s.fqdn.get_ref()),
            ));
        };
        if !origins.iter().any(|o| in_zone(fqdn, o)) {
            return Err(self.err(
                s.fqdn.span(),
                "service.fqdn",
                format!("`{fqdn}` is not inside any configured [[zone]]"),
            ));
        }
        let zone = self.cfg.zone_for(fqdn);
        if zone.is_some_and(|z| z.mode == ZoneMode::Secondary) {
            return Err(self.err(
                s.fqdn.span(),
                "service.fqdn",
                format!("`{fqdn}` is in a secondary zone: its primary owns the records"),
            ));
        }
        Ok(name)
    }

    /// A service's targets: at least one, unique names, addresses, a check.
    fn targets(&self, s: &ServiceConfig) -> Result<(), ConfigError> {
        let name = s.name.get_ref();
        if s.targets.get_ref().is_empty() {
            return Err(self.err(
                s.targets.span(),
                "service.target",
                format!("service `{name}` needs at least one target"),
            ));
        }
        let mut tnames = HashSet::new();
        for t in s.targets.get_ref() {
            let tn = t.name.get_ref();
            if !tnames.insert(tn.clone()) {
                return Err(self.err(
                    t.name.span(),
                    "service.target.name",
                    format!("target `{tn}` appears twice in service `{name}`"),
                ));
            }
            if t.addresses.get_ref().is_empty() {
                return Err(self.err(
                    t.addresses.span(),
                    "service.target.addresses",
                    format!("target `{tn}` needs at least one address"),
                ));
            }
            self.check(t)?;
        }
        Ok(())
    }

    /// A target's check: rise, fall, interval and timeout, and what its kind needs.
    fn check(&self, t: &TargetConfig) -> Result<(), ConfigError> {
        let tn = t.name.get_ref();
        let c = &t.check;
        let check_err = |field: &str, message: String| {
            self.err(
                t.name.span(),
                &format!("service.target.check.{field}"),
                message,
            )
        };
        if c.rise == 0 || c.fall == 0 {
            return Err(check_err(
                "rise",
                format!("target `{tn}`: rise and fall must be at least 1"),
            ));
        }
        if c.interval.is_zero() || c.timeout.is_zero() {
            return Err(check_err(
                "interval",
                format!("target `{tn}`: interval and timeout must be positive"),
            ));
        }
        match &c.kind {
            CheckKind::Http { url, .. } => {
                if !(url.starts_with("http://") || url.starts_with("https://")) {
                    return Err(check_err(
                        "url",
                        format!("target `{tn}`: `{url}` must start with http:// or https://"),
                    ));
                }
            }
            CheckKind::Dns(DnsCheck {
                query: Err(bad), ..
            }) => {
                let (field, why) = match bad {
                    BadQuery::Qname { qname, .. } => {
                        ("qname", format!("`{qname}` is not a valid name"))
                    }
                    BadQuery::Qtype(qtype) => ("qtype", format!("unknown record type `{qtype}`")),
                    BadQuery::Rcode(rcode) => ("expect_rcode", format!("unknown rcode `{rcode}`")),
                };
                return Err(check_err(field, format!("target `{tn}`: {why}")));
            }
            CheckKind::Dns(_) => {}
            CheckKind::Exec { command } => {
                if command.is_empty() {
                    return Err(check_err(
                        "command",
                        format!("target `{tn}`: command must not be empty"),
                    ));
                }
            }
            CheckKind::Tcp { .. } => {}
        }
        Ok(())
    }
}
