//! Catalog zones (RFC 9432, schema version 2): the zone that lists member
//! zones for secondaries to provision.
//!
//! Owns: a catalog's records from its members — the apex SOA and NS
//! (`invalid.`, as the RFC asks: the zone is for transfers, not
//! resolution), `version TXT "2"`, one `<unique-id>.zones PTR <member>` per
//! member and its optional `group.<unique-id>.zones TXT`. The unique id
//! is the SHA-1 of the member's name in canonical wire form (lowercase), in
//! hex, as BIND names its own: it depends on the name alone, so a reload
//! or a restart keeps it, and a member that leaves and returns gets the
//! same one. Pure data: which zones are members is the caller's business.

use hickory_proto::rr::rdata::{NS, PTR, SOA, TXT};
use hickory_proto::rr::{Name, RData, Record};
use hickory_proto::serialize::binary::BinEncodable;

use super::zone::{fqdn_lower, ZoneData, ZoneError};

/// Every record of a catalog is served with this TTL (the RFC's examples
/// use 0: the zone is not meant for resolvers).
const TTL: u32 = 0;

/// The SOA timers: hourly refresh (NOTIFY brings changes sooner), retry
/// every ten minutes, and an expiry so far away that a primary's outage
/// never makes consumers drop every member zone.
const REFRESH: i32 = 3600;
const RETRY: i32 = 600;
const EXPIRE: i32 = 2_147_483_646;

/// A member zone of a catalog.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Member {
    pub zone: Name,
    /// RFC 9432 4.4.2: a group consumers may map to their own settings.
    pub group: Option<String>,
}

/// The member's unique id: hex SHA-1 of its lowercase wire-format name.
pub fn unique_id(zone: &Name) -> String {
    let wire = fqdn_lower(zone).to_bytes().unwrap_or_default();
    let digest = ring::digest::digest(&ring::digest::SHA1_FOR_LEGACY_USE_ONLY, &wire);
    digest.as_ref().iter().map(|b| format!("{b:02x}")).collect()
}

/// The catalog zone `origin` listing `members`, with SOA serial `serial`.
pub fn catalog_zone(origin: &Name, serial: u32, members: &[Member]) -> Result<ZoneData, ZoneError> {
    let origin = fqdn_lower(origin);
    let invalid = Name::from_ascii("invalid.").expect("a valid name");
    let at = |labels: &[&str]| -> Result<Name, ZoneError> {
        let mut name = origin.clone();
        for l in labels.iter().rev() {
            name = name.prepend_label(*l).map_err(|e| ZoneError::Unencodable {
                name: origin.clone(),
                rtype: hickory_proto::rr::RecordType::PTR,
                source: Box::new(e),
            })?;
        }
        Ok(name)
    };
    let soa = SOA::new(
        invalid.clone(),
        invalid.clone(),
        serial,
        REFRESH,
        RETRY,
        EXPIRE,
        TTL,
    );
    let mut records = vec![
        Record::from_rdata(origin.clone(), TTL, RData::SOA(soa)),
        Record::from_rdata(origin.clone(), TTL, RData::NS(NS(invalid))),
        Record::from_rdata(at(&["version"])?, TTL, txt("2")),
    ];
    for m in members {
        let id = unique_id(&m.zone);
        let ptr = RData::PTR(PTR(fqdn_lower(&m.zone)));
        records.push(Record::from_rdata(at(&[&id, "zones"])?, TTL, ptr));
        if let Some(g) = &m.group {
            records.push(Record::from_rdata(
                at(&["group", &id, "zones"])?,
                TTL,
                txt(g),
            ));
        }
    }
    let mut zone = ZoneData {
        origin: origin.clone(),
        rrsets: crate::proto::zone::ZoneMap::new(),
    };
    for r in &records {
        zone.add_record(r)?;
    }
    zone.check()?;
    Ok(zone)
}

fn txt(s: &str) -> RData {
    RData::TXT(TXT::new(vec![s.to_string()]))
}

#[cfg(test)]
mod tests {
    use hickory_proto::rr::RecordType;

    use super::*;

    fn name(s: &str) -> Name {
        Name::from_ascii(s).unwrap()
    }

    #[test]
    fn the_unique_id_is_bind_s_and_ignores_case() {
        // BIND's documentation lists domain.example. under this id.
        assert_eq!(
            unique_id(&name("domain.example.")),
            "5960775ba382e7a4e09263fc06e7c00569b6a05c"
        );
        assert_eq!(
            unique_id(&name("Example.COM")),
            unique_id(&name("example.com."))
        );
        assert_ne!(
            unique_id(&name("example.net.")),
            unique_id(&name("example.com."))
        );
    }

    #[test]
    fn a_catalog_holds_version_members_and_groups() {
        let members = [
            Member {
                zone: name("ggon.org."),
                group: None,
            },
            Member {
                zone: name("Example.NET"),
                group: Some("fast".into()),
            },
        ];
        let z = catalog_zone(&name("Catalog.Invalid"), 7, &members).unwrap();
        assert_eq!(z.serial(), 7);
        let get = |n: &str, t: RecordType| {
            z.rrsets
                .get(&name(n))
                .and_then(|ty| ty.get(&t))
                .map(|s| s.rdatas.iter().map(|r| r.to_string()).collect::<Vec<_>>())
        };
        assert_eq!(
            get("version.catalog.invalid.", RecordType::TXT),
            Some(vec!["2".into()])
        );
        assert_eq!(
            get("catalog.invalid.", RecordType::NS),
            Some(vec!["invalid.".into()])
        );
        let id = unique_id(&name("example.net."));
        assert_eq!(
            get(&format!("{id}.zones.catalog.invalid."), RecordType::PTR),
            Some(vec!["example.net.".into()])
        );
        assert_eq!(
            get(
                &format!("group.{id}.zones.catalog.invalid."),
                RecordType::TXT
            ),
            Some(vec!["fast".into()])
        );
        let gid = unique_id(&name("ggon.org."));
        assert!(get(
            &format!("group.{gid}.zones.catalog.invalid."),
            RecordType::TXT
        )
        .is_none());
        // apex (SOA, NS), version, two PTRs, one group.
        assert_eq!(z.record_count(), 6);
    }
}
