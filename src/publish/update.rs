//! RFC 2136 UPDATE semantics, applied to zone data.
//!
//! Owns: the prerequisite checks (RFC 2136 3.2), the update prescan and the
//! update itself (3.4), producing the list of records removed and added. It
//! is pure: it works on a [`ZoneData`] passed in, with a predicate telling
//! which names belong to the controller (service names, which an UPDATE may
//! not touch). Authentication, persistence and serial bumps belong to the
//! caller ([`crate::replicate`] handler and [`crate::publish`]).

use std::collections::BTreeSet;

use hickory_proto::op::Message;
use hickory_proto::rr::{DNSClass, Name, RData, Record, RecordData, RecordType};

use crate::proto::zone::{fqdn_lower, RRset, Rdatas, ZoneData};

pub use crate::proto::codes::rcode::{
    FORMERR, NOERROR, NOTZONE, NXDOMAIN, NXRRSET, REFUSED, YXDOMAIN, YXRRSET,
};

/// A refused or failed update: the rcode to answer and why (for the log).
#[derive(Debug, Clone, PartialEq)]
pub struct Rejected {
    pub rcode: u8,
    pub why: String,
}

fn reject(rcode: u8, why: impl Into<String>) -> Rejected {
    Rejected {
        rcode,
        why: why.into(),
    }
}

/// What an accepted update changed.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Change {
    pub removed: Vec<Record>,
    pub added: Vec<Record>,
}

impl Change {
    pub fn is_empty(&self) -> bool {
        self.removed.is_empty() && self.added.is_empty()
    }
}

fn name_in_use(z: &ZoneData, n: &Name) -> bool {
    z.rrsets.contains_key(n)
}

/// Check the prerequisite section against `current` (what is served now).
pub fn check_prerequisites(current: &ZoneData, msg: &Message) -> Result<(), Rejected> {
    // RFC 2136 3.2.3: value-dependent prerequisites are compared as whole RRsets.
    let mut value_sets: std::collections::BTreeMap<(Name, RecordType), Vec<RData>> =
        Default::default();
    for rr in &msg.answers {
        let name = fqdn_lower(&rr.name);
        if rr.ttl != 0 {
            return Err(reject(FORMERR, "prerequisite with a non-zero TTL"));
        }
        if !current.origin.zone_of(&name) {
            return Err(reject(
                NOTZONE,
                format!("prerequisite name {name} is outside the zone"),
            ));
        }
        let rtype = rr.record_type();
        match rr.dns_class {
            DNSClass::ANY => {
                if !rr.data.is_update() {
                    return Err(reject(FORMERR, "class ANY prerequisite with data"));
                }
                if rtype == RecordType::ANY {
                    if !name_in_use(current, &name) {
                        return Err(reject(NXDOMAIN, format!("{name} does not exist")));
                    }
                } else if !current
                    .rrsets
                    .get(&name)
                    .is_some_and(|t| t.contains_key(&rtype))
                {
                    return Err(reject(NXRRSET, format!("no {rtype} RRset at {name}")));
                }
            }
            DNSClass::NONE => {
                if !rr.data.is_update() {
                    return Err(reject(FORMERR, "class NONE prerequisite with data"));
                }
                if rtype == RecordType::ANY {
                    if name_in_use(current, &name) {
                        return Err(reject(YXDOMAIN, format!("{name} exists")));
                    }
                } else if current
                    .rrsets
                    .get(&name)
                    .is_some_and(|t| t.contains_key(&rtype))
                {
                    return Err(reject(YXRRSET, format!("{rtype} RRset at {name} exists")));
                }
            }
            DNSClass::IN => {
                value_sets
                    .entry((name, rtype))
                    .or_default()
                    .push(rr.data.clone());
            }
            _ => return Err(reject(FORMERR, "prerequisite with a bad class")),
        }
    }
    for ((name, rtype), mut want) in value_sets {
        let mut have = current
            .rrsets
            .get(&name)
            .and_then(|t| t.get(&rtype))
            .map(|s| s.rdatas.to_vec())
            .unwrap_or_default();
        want.sort();
        want.dedup();
        have.sort();
        if want != have {
            return Err(reject(NXRRSET, format!("{rtype} RRset at {name} differs")));
        }
    }
    Ok(())
}

/// Prescan and apply the update section to `zone` (the zone's own data,
/// without controller-owned records). `owned` says whether a name belongs to
/// the controller. The SOA serial is the caller's business.
pub fn apply(
    zone: &mut ZoneData,
    msg: &Message,
    owned: &dyn Fn(&Name) -> bool,
) -> Result<Change, Rejected> {
    prescan(zone, msg, owned)?;
    let before = zone.clone();
    let mut touched = BTreeSet::new();
    for rr in &msg.authorities {
        if apply_record(zone, rr) {
            touched.insert(fqdn_lower(&rr.name));
        }
    }
    Ok(diff(&before, zone, &touched))
}

/// RFC 2136 3.4.1: the whole update is rejected before anything changes.
fn prescan(zone: &ZoneData, msg: &Message, owned: &dyn Fn(&Name) -> bool) -> Result<(), Rejected> {
    for rr in &msg.authorities {
        let name = fqdn_lower(&rr.name);
        if !zone.origin.zone_of(&name) {
            return Err(reject(NOTZONE, format!("{name} is outside the zone")));
        }
        if owned(&name) {
            return Err(reject(
                REFUSED,
                format!("{name} is managed by ggond (use ggon-ctl to change it)"),
            ));
        }
        let rtype = rr.record_type();
        match rr.dns_class {
            DNSClass::IN => {
                if rr.data.is_update()
                    || matches!(u16::from(rtype), 41 | 250 | 251 | 252 | 253 | 254 | 255)
                {
                    return Err(reject(FORMERR, format!("cannot add a {rtype} record")));
                }
            }
            DNSClass::ANY => {
                if rr.ttl != 0 || !rr.data.is_update() {
                    return Err(reject(FORMERR, "class ANY delete with TTL or data"));
                }
            }
            DNSClass::NONE => {
                if rr.ttl != 0 || rr.data.is_update() {
                    return Err(reject(FORMERR, "class NONE delete without data"));
                }
            }
            _ => return Err(reject(FORMERR, "update with a bad class")),
        }
    }
    Ok(())
}

/// Apply one prescanned update record (RFC 2136 3.4.2); false when it is
/// ignored (a CNAME conflict, an SOA edit, the last apex NS).
fn apply_record(zone: &mut ZoneData, rr: &Record) -> bool {
    let name = fqdn_lower(&rr.name);
    let rtype = rr.record_type();
    let apex = name == zone.origin;
    match rr.dns_class {
        DNSClass::IN => {
            let types = zone.rrsets.get(&name);
            let has_cname = types.is_some_and(|t| t.contains_key(&RecordType::CNAME));
            let has_other = types.is_some_and(|t| t.keys().any(|k| *k != RecordType::CNAME));
            // RFC 2136 3.4.2.2: CNAME and other data do not mix; the
            // conflicting add is ignored.
            if (rtype == RecordType::CNAME && has_other)
                || (rtype != RecordType::CNAME && has_cname)
            {
                return false;
            }
            if rtype == RecordType::SOA {
                return false; // the serial is ggond's; other SOA edits are not taken
            }
            if rtype == RecordType::CNAME {
                zone.replace_rrset(&name, rtype, None);
            }
            let set = zone
                .rrsets
                .or_default(name.clone())
                .get_or_insert_with(rtype, || RRset {
                    ttl: rr.ttl,
                    rdatas: Rdatas::new(),
                    ttls: Vec::new(),
                });
            set.ttl = rr.ttl;
            if !set.rdatas.contains(&rr.data) {
                set.rdatas.push(rr.data.clone());
            }
        }
        DNSClass::ANY => {
            if rtype == RecordType::ANY {
                if apex {
                    // Keep the apex SOA and NS (3.4.2.3).
                    if let Some(types) = zone.rrsets.get_mut(&name) {
                        types.retain(|t, _| matches!(t, RecordType::SOA | RecordType::NS));
                    }
                } else {
                    zone.rrsets.remove(&name);
                }
            } else if !(apex && matches!(rtype, RecordType::SOA | RecordType::NS)) {
                zone.replace_rrset(&name, rtype, None);
            }
        }
        DNSClass::NONE => {
            if apex && rtype == RecordType::SOA {
                return false;
            }
            if let Some(set) = zone.rrsets.get_mut(&name).and_then(|t| t.get_mut(&rtype)) {
                // Never remove the last apex NS.
                if apex && rtype == RecordType::NS && set.rdatas.len() == 1 {
                    return false;
                }
                set.rdatas.retain(|d| d != &rr.data);
                if set.rdatas.is_empty() {
                    zone.replace_rrset(&name, rtype, None);
                }
            }
        }
        _ => unreachable!("prescanned"),
    }
    true
}

/// Records removed and added at `names` between two versions of a zone.
pub fn diff(old: &ZoneData, new: &ZoneData, names: &BTreeSet<Name>) -> Change {
    let mut ch = Change::default();
    let records = |z: &ZoneData, n: &Name| -> Vec<Record> {
        z.rrsets
            .get(n)
            .into_iter()
            .flat_map(|t| t.iter())
            .filter(|(t, _)| **t != RecordType::SOA)
            .flat_map(|(_, s)| {
                s.rdatas
                    .iter()
                    .map(|d| Record::from_rdata(n.clone(), s.ttl, d.into_owned()))
            })
            .collect()
    };
    for n in names {
        if old.rrsets.get(n) == new.rrsets.get(n) {
            continue;
        }
        let a = records(old, n);
        let b = records(new, n);
        ch.removed
            .extend(a.iter().filter(|r| !b.iter().any(|x| same(x, r))).cloned());
        ch.added
            .extend(b.iter().filter(|r| !a.iter().any(|x| same(x, r))).cloned());
    }
    ch
}

/// Same record, TTL included (a TTL change is a remove plus an add).
fn same(a: &Record, b: &Record) -> bool {
    a.name == b.name && a.ttl == b.ttl && a.data == b.data
}

#[cfg(test)]
mod tests {
    use super::*;
    use hickory_proto::op::{MessageType, OpCode, Query};

    fn zone() -> ZoneData {
        let origin = Name::from_ascii("ggon.org.").unwrap();
        ZoneData::parse(
            "@ 60 IN SOA ns1 h 1 1 1 1 1\n@ 60 IN NS ns1\nns1 60 IN A 127.0.0.1\nwww 60 IN A 127.0.0.80\n",
            None,
            &origin,
        )
        .unwrap()
    }

    fn msg() -> Message {
        let mut m = Message::new(1, MessageType::Query, OpCode::Update);
        m.add_query(Query::query(
            Name::from_ascii("ggon.org.").unwrap(),
            RecordType::SOA,
        ));
        m
    }

    fn rr(name: &str, ttl: u32, class: DNSClass, data: RData) -> Record {
        let mut r = Record::from_rdata(Name::from_ascii(name).unwrap(), ttl, data);
        r.dns_class = class;
        r
    }

    fn a(ip: &str) -> RData {
        RData::A(ip.parse::<std::net::Ipv4Addr>().unwrap().into())
    }

    #[test]
    fn add_and_delete() {
        let mut z = zone();
        let mut m = msg();
        m.add_authority(rr("test.ggon.org.", 300, DNSClass::IN, a("127.0.0.99")));
        let ch = apply(&mut z, &m, &|_| false).unwrap();
        assert_eq!(ch.added.len(), 1);
        assert!(ch.removed.is_empty());
        let test = Name::from_ascii("test.ggon.org.").unwrap();
        assert_eq!(
            z.rrsets[&test][&RecordType::A].rdatas,
            vec![a("127.0.0.99")]
        );

        let mut m = msg();
        m.add_authority(rr(
            "test.ggon.org.",
            0,
            DNSClass::ANY,
            RData::Update0(RecordType::A),
        ));
        let ch = apply(&mut z, &m, &|_| false).unwrap();
        assert_eq!(ch.removed.len(), 1);
        assert!(!z.rrsets.contains_key(&test));
    }

    #[test]
    fn prerequisites() {
        let z = zone();
        let mut m = msg();
        m.add_answer(rr(
            "nothere.ggon.org.",
            0,
            DNSClass::ANY,
            RData::Update0(RecordType::ANY),
        ));
        assert_eq!(check_prerequisites(&z, &m).unwrap_err().rcode, NXDOMAIN);
        let mut m = msg();
        m.add_answer(rr(
            "www.ggon.org.",
            0,
            DNSClass::NONE,
            RData::Update0(RecordType::ANY),
        ));
        assert_eq!(check_prerequisites(&z, &m).unwrap_err().rcode, YXDOMAIN);
        let mut m = msg();
        m.add_answer(rr(
            "www.ggon.org.",
            0,
            DNSClass::NONE,
            RData::Update0(RecordType::A),
        ));
        assert_eq!(check_prerequisites(&z, &m).unwrap_err().rcode, YXRRSET);
        let mut m = msg();
        m.add_answer(rr(
            "www.ggon.org.",
            0,
            DNSClass::ANY,
            RData::Update0(RecordType::MX),
        ));
        assert_eq!(check_prerequisites(&z, &m).unwrap_err().rcode, NXRRSET);
        let mut m = msg();
        m.add_answer(rr("www.ggon.org.", 0, DNSClass::IN, a("127.0.0.80")));
        assert!(check_prerequisites(&z, &m).is_ok());
        let mut m = msg();
        m.add_answer(rr("www.ggon.org.", 0, DNSClass::IN, a("127.0.0.81")));
        assert_eq!(check_prerequisites(&z, &m).unwrap_err().rcode, NXRRSET);
        let mut m = msg();
        m.add_answer(rr(
            "www.example.com.",
            0,
            DNSClass::ANY,
            RData::Update0(RecordType::ANY),
        ));
        assert_eq!(check_prerequisites(&z, &m).unwrap_err().rcode, NOTZONE);
    }

    #[test]
    fn service_names_and_outside_names_are_refused_whole() {
        let mut z = zone();
        let before = z.clone();
        let mut m = msg();
        m.add_authority(rr("ok.ggon.org.", 300, DNSClass::IN, a("127.0.0.5")));
        m.add_authority(rr("cic.ggon.org.", 300, DNSClass::IN, a("127.0.0.6")));
        let cic = Name::from_ascii("cic.ggon.org.").unwrap();
        let e = apply(&mut z, &m, &|n| n == &cic).unwrap_err();
        assert_eq!(e.rcode, REFUSED);
        assert_eq!(z, before, "nothing applied");
        let mut m = msg();
        m.add_authority(rr("x.example.com.", 300, DNSClass::IN, a("127.0.0.5")));
        assert_eq!(apply(&mut z, &m, &|_| false).unwrap_err().rcode, NOTZONE);
    }

    #[test]
    fn apex_soa_and_last_ns_survive() {
        let mut z = zone();
        let mut m = msg();
        m.add_authority(rr(
            "ggon.org.",
            0,
            DNSClass::ANY,
            RData::Update0(RecordType::ANY),
        ));
        apply(&mut z, &m, &|_| false).unwrap();
        assert!(z.check().is_ok());
        assert!(z.rrsets[&z.origin].contains_key(&RecordType::NS));
    }
}
