//! Every rule a config must satisfy beyond its types, checked once after
//! parsing. Side-effect free: nothing is opened, bound or started.

use super::*;
use crate::proto::codes::parse_rcode;

impl Config {
    pub(super) fn validate(&self, text: &str) -> Result<(), ConfigError> {
        let err = |span: std::ops::Range<usize>, field: &str, message: String| ConfigError {
            file: self.path.clone(),
            line: Some(line_of(text, span.start)),
            field: field.to_string(),
            message,
        };
        if let Some((field, message)) = self.control.limits.problem() {
            return Err(ConfigError {
                file: self.path.clone(),
                line: None,
                field: field.to_string(),
                message,
            });
        }
        self.validate_geo(text)?;
        match (&self.control.tls_certificate, &self.control.tls_key) {
            (Some(c), None) => {
                return Err(err(
                    c.span(),
                    "control.tls_key",
                    "tls_certificate is set but tls_key is not: TLS needs both".into(),
                ))
            }
            (None, Some(k)) => {
                return Err(err(
                    k.span(),
                    "control.tls_certificate",
                    "tls_key is set but tls_certificate is not: TLS needs both".into(),
                ))
            }
            (Some(c), Some(_)) if self.cluster.is_some() => {
                return Err(err(
                    c.span(),
                    "control.tls_certificate",
                    "control TLS is not supported in cluster mode yet: nodes forward changes \
                     to the leader's control API over plain HTTP"
                        .into(),
                ))
            }
            _ => {}
        }
        if self.cert_audit.warn_days < 0 {
            return Err(ConfigError {
                file: self.path.clone(),
                line: None,
                field: "cert_audit.warn_days".into(),
                message: "must be 0 or more".into(),
            });
        }
        if let Some(c) = &self.cluster {
            if c.etcd.get_ref().is_empty() {
                return Err(err(
                    c.etcd.span(),
                    "cluster.etcd",
                    "name at least one etcd endpoint".into(),
                ));
            }
            for e in c.etcd.get_ref() {
                if !(e.starts_with("http://") || e.starts_with("https://")) {
                    return Err(err(
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
                return Err(err(
                    c.node.span(),
                    "cluster.node",
                    format!("`{node}`: a node name is letters, digits, `-`, `_` or `.`"),
                ));
            }
            if c.lease_ttl < std::time::Duration::from_secs(2) {
                return Err(err(
                    c.node.span(),
                    "cluster.lease_ttl",
                    "at least 2s (etcd leases have a one-second granularity)".into(),
                ));
            }
            if !c.prefix.starts_with('/') || !c.prefix.ends_with('/') {
                return Err(err(
                    c.node.span(),
                    "cluster.prefix",
                    format!("`{}`: a prefix starts and ends with `/`", c.prefix),
                ));
            }
            if *c.keep_revisions.get_ref() == 0 {
                return Err(err(
                    c.keep_revisions.span(),
                    "cluster.keep_revisions",
                    "at least 1: a window of 0 revisions would compact away what a watch \
                     resumes from"
                        .into(),
                ));
            }
            if c.cert_file.is_some() != c.key_file.is_some() {
                return Err(err(
                    c.node.span(),
                    "cluster.cert_file",
                    "give both `cert_file` and `key_file` (the client certificate and its key), or neither"
                        .into(),
                ));
            }
            if c.username.is_some() != c.password.is_some() {
                return Err(err(
                    c.node.span(),
                    "cluster.username",
                    "give both `username` and `password`, or neither".into(),
                ));
            }
        }
        for (field, v) in [
            ("server.user", &self.server.user),
            ("server.group", &self.server.group),
        ] {
            if let Some(v) = v {
                let name = v.get_ref();
                if name.is_empty() || name.chars().any(|c| c.is_whitespace() || c == ':') {
                    return Err(err(
                        v.span(),
                        field,
                        format!("`{name}` is not an account name"),
                    ));
                }
            }
        }
        let mut key_names = HashSet::new();
        for k in &self.keys {
            if !key_names.insert(k.name.get_ref().as_str()) {
                return Err(err(
                    k.name.span(),
                    "key.name",
                    format!("key `{}` is declared twice", k.name.get_ref()),
                ));
            }
            let inline = k.secret.is_some();
            if inline == k.file.is_some() {
                return Err(err(
                    k.name.span(),
                    "key.file",
                    format!(
                        "key `{}`: give either `file` (a BIND key file) or `secret` (+ `algorithm`)",
                        k.name.get_ref()
                    ),
                ));
            }
        }
        let mut origins = HashSet::new();
        for z in &self.zones {
            let origin = normalize_name(z.origin.get_ref());
            if hickory_proto::rr::Name::from_ascii(&origin).is_err() {
                return Err(err(
                    z.origin.span(),
                    "zone.origin",
                    format!("`{}` is not a valid domain name", z.origin.get_ref()),
                ));
            }
            if !origins.insert(origin.clone()) {
                return Err(err(
                    z.origin.span(),
                    "zone.origin",
                    format!("zone `{origin}` is declared twice"),
                ));
            }
            let needs_file = z.mode == ZoneMode::Local || (z.mode == ZoneMode::Rfc2136 && z.serve);
            if needs_file && z.file.is_none() {
                return Err(err(
                    z.origin.span(),
                    "zone.file",
                    format!("zone `{origin}` is served by ggond and needs a `file`"),
                ));
            }
            if let Some(d) = &z.dnssec {
                let why = match z.mode {
                    ZoneMode::Local if d.keys.is_empty() => {
                        Some("needs at least one key in `keys`")
                    }
                    ZoneMode::Local if d.refresh >= d.validity || d.refresh.is_zero() => {
                        Some("`refresh` must be above zero and below `validity`")
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
                    return Err(err(
                        z.origin.span(),
                        "zone.dnssec",
                        format!("zone `{origin}` {why}"),
                    ));
                }
            }
            if matches!(z.mode, ZoneMode::Rfc2136 | ZoneMode::Secondary) && z.primary.is_none() {
                return Err(err(
                    z.origin.span(),
                    "zone.primary",
                    format!("zone `{origin}` is not local and needs `primary`"),
                ));
            }
            for k in z
                .update_keys
                .iter()
                .chain(&z.transfer_keys)
                .chain(z.key.iter())
            {
                if !key_names.contains(k.get_ref().as_str()) {
                    return Err(err(
                        k.span(),
                        "zone.key",
                        format!("no [[key]] named `{}`", k.get_ref()),
                    ));
                }
            }
            for sec in &z.secondaries {
                if let Some(k) = &sec.key {
                    if !key_names.contains(k.as_str()) {
                        return Err(err(
                            z.origin.span(),
                            "zone.secondaries.key",
                            format!("no [[key]] named `{k}`"),
                        ));
                    }
                }
            }
            for a in &z.allow_transfer {
                if crate::proto::acl::Net::parse(a.get_ref()).is_none() {
                    return Err(err(
                        a.span(),
                        "zone.allow_transfer",
                        format!("`{}` is not an IP address or CIDR prefix", a.get_ref()),
                    ));
                }
            }
        }
        let mut names = HashSet::new();
        let mut fqdns = HashSet::new();
        for s in &self.services {
            let name = s.name.get_ref();
            if name.is_empty()
                || !name
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
            {
                return Err(err(
                    s.name.span(),
                    "service.name",
                    format!("`{name}`: use letters, digits, '-' or '_'"),
                ));
            }
            if !names.insert(name.clone()) {
                return Err(err(
                    s.name.span(),
                    "service.name",
                    format!("service `{name}` is declared twice"),
                ));
            }
            let fqdn = normalize_name(s.fqdn.get_ref());
            if hickory_proto::rr::Name::from_ascii(&fqdn).is_err() {
                return Err(err(
                    s.fqdn.span(),
                    "service.fqdn",
                    format!("`{}` is not a valid domain name", s.fqdn.get_ref()),
                ));
            }
            if !origins.iter().any(|o| in_zone(&fqdn, o)) {
                return Err(err(
                    s.fqdn.span(),
                    "service.fqdn",
                    format!("`{fqdn}` is not inside any configured [[zone]]"),
                ));
            }
            let zone = self.zone_for(&fqdn);
            if zone.is_some_and(|z| z.mode == ZoneMode::Secondary) {
                return Err(err(
                    s.fqdn.span(),
                    "service.fqdn",
                    format!("`{fqdn}` is in a secondary zone: its primary owns the records"),
                ));
            }
            if !fqdns.insert(fqdn.clone()) {
                return Err(err(
                    s.fqdn.span(),
                    "service.fqdn",
                    format!("`{fqdn}` is owned by two services"),
                ));
            }
            if s.targets.get_ref().is_empty() {
                return Err(err(
                    s.targets.span(),
                    "service.target",
                    format!("service `{name}` needs at least one target"),
                ));
            }
            let mut tnames = HashSet::new();
            for t in s.targets.get_ref() {
                let tn = t.name.get_ref();
                if !tnames.insert(tn.clone()) {
                    return Err(err(
                        t.name.span(),
                        "service.target.name",
                        format!("target `{tn}` appears twice in service `{name}`"),
                    ));
                }
                if t.addresses.get_ref().is_empty() {
                    return Err(err(
                        t.addresses.span(),
                        "service.target.addresses",
                        format!("target `{tn}` needs at least one address"),
                    ));
                }
                let c = &t.check;
                let check_err = |field: &str, message: String| {
                    err(
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
                                format!(
                                    "target `{tn}`: `{url}` must start with http:// or https://"
                                ),
                            ));
                        }
                    }
                    CheckKind::Dns {
                        qname,
                        qtype,
                        expect_rcode,
                        ..
                    } => {
                        if hickory_proto::rr::Name::from_ascii(qname).is_err() {
                            return Err(check_err(
                                "qname",
                                format!("target `{tn}`: `{qname}` is not a valid name"),
                            ));
                        }
                        if qtype.parse::<hickory_proto::rr::RecordType>().is_err() {
                            return Err(check_err(
                                "qtype",
                                format!("target `{tn}`: unknown record type `{qtype}`"),
                            ));
                        }
                        if parse_rcode(expect_rcode).is_none() {
                            return Err(check_err(
                                "expect_rcode",
                                format!("target `{tn}`: unknown rcode `{expect_rcode}`"),
                            ));
                        }
                    }
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
            }
        }
        Ok(())
    }
}
