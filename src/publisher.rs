//! Publisher: makes each service's active target visible in DNS.
//!
//! Owns: the served zone data — the zone file's contents plus, at each
//! service's name, the A/AAAA RRsets of its active target — the SOA serial
//! (bumped on every change, never going back across restarts), and swapping a
//! freshly compiled [`Snapshot`] in atomically. One change replaces whole
//! RRsets, so a query sees the old addresses or the new ones, never an empty
//! or mixed answer.
//!
//! It must not choose targets (that is [`crate::policy`]) or talk to clients.

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::sync::Arc;

use arc_swap::ArcSwap;
use hickory_proto::rr::{Name, RData, RecordType};

use crate::snapshot::{compile, Snapshot};
use crate::zone::{fqdn_lower, RRset, ZoneData};

/// The records a service publishes.
#[derive(Debug, Clone, PartialEq)]
pub struct ServiceRecords {
    pub ttl: u32,
    pub addresses: Vec<IpAddr>,
}

struct ZoneRt {
    /// From the zone file.
    base: ZoneData,
    serial: u32,
    /// Service name → what it answers now.
    services: BTreeMap<Name, ServiceRecords>,
}

pub struct Publisher {
    zones: BTreeMap<Name, ZoneRt>,
    snapshot: Arc<ArcSwap<Snapshot>>,
}

/// RFC 1982: is `a` later than `b`?
pub fn serial_gt(a: u32, b: u32) -> bool {
    a != b && a.wrapping_sub(b) < 0x8000_0000
}

impl Publisher {
    pub fn new(snapshot: Arc<ArcSwap<Snapshot>>) -> Self {
        Publisher {
            zones: BTreeMap::new(),
            snapshot,
        }
    }

    /// Add a zone. `last_serial` is the serial published before a restart:
    /// the new serial is above both it and the file's.
    pub fn add_zone(&mut self, base: ZoneData, last_serial: Option<u32>) {
        let mut serial = base.serial();
        if let Some(last) = last_serial {
            if !serial_gt(serial, last) {
                serial = last.wrapping_add(1);
            }
        }
        self.zones.insert(
            base.origin.clone(),
            ZoneRt {
                base,
                serial,
                services: BTreeMap::new(),
            },
        );
    }

    /// The zone containing `name` (most specific).
    pub fn zone_of(&self, name: &Name) -> Option<Name> {
        self.zones
            .keys()
            .filter(|o| o.zone_of(name))
            .max_by_key(|o| o.num_labels())
            .cloned()
    }

    /// Set a service's records without publishing (used at start-up, before
    /// the first [`Publisher::publish_all`]).
    pub fn stage(&mut self, fqdn: &Name, records: ServiceRecords) -> Option<Name> {
        let origin = self.zone_of(fqdn)?;
        let zone = self.zones.get_mut(&origin)?;
        zone.services.insert(fqdn_lower(fqdn), records);
        Some(origin)
    }

    /// Compile every zone and swap them in (start-up and reload).
    pub fn publish_all(&mut self) {
        let compiled: Vec<_> = self
            .zones
            .values()
            .map(|z| Arc::new(compile(Arc::new(effective(z)))))
            .collect();
        self.snapshot.store(Arc::new(Snapshot::new(compiled)));
    }

    /// Change one service's records: the zone's serial is bumped and the new
    /// answers are live when this returns. Returns the zone and new serial.
    pub fn publish(&mut self, fqdn: &Name, records: ServiceRecords) -> Option<(Name, u32)> {
        let origin = self.zone_of(fqdn)?;
        let zone = self.zones.get_mut(&origin)?;
        zone.services.insert(fqdn_lower(fqdn), records);
        zone.serial = zone.serial.wrapping_add(1);
        let compiled = Arc::new(compile(Arc::new(effective(zone))));
        let next = self.snapshot.load().with_zone(compiled);
        self.snapshot.store(Arc::new(next));
        Some((origin, zone.serial))
    }

    pub fn serials(&self) -> BTreeMap<String, u32> {
        self.zones
            .iter()
            .map(|(o, z)| (o.to_string(), z.serial))
            .collect()
    }
}

/// The zone as served: file data, service records, current serial.
fn effective(z: &ZoneRt) -> ZoneData {
    let mut data = z.base.clone();
    for (name, rec) in &z.services {
        let (v4, v6): (Vec<_>, Vec<_>) = rec.addresses.iter().partition(|a| a.is_ipv4());
        let set = |addrs: Vec<&IpAddr>| {
            Some(RRset {
                ttl: rec.ttl,
                rdatas: addrs
                    .into_iter()
                    .map(|a| match a {
                        IpAddr::V4(a) => RData::A((*a).into()),
                        IpAddr::V6(a) => RData::AAAA((*a).into()),
                    })
                    .collect(),
            })
        };
        data.replace_rrset(name, RecordType::A, set(v4));
        data.replace_rrset(name, RecordType::AAAA, set(v6));
    }
    data.set_serial(z.serial);
    data
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn serials_follow_rfc1982() {
        assert!(serial_gt(2, 1));
        assert!(serial_gt(0, u32::MAX));
        assert!(!serial_gt(1, 1));
        assert!(!serial_gt(1, 2));
    }

    #[test]
    fn publish_replaces_the_rrset_and_bumps_the_serial() {
        let origin = Name::from_ascii("ggon.org.").unwrap();
        let z = ZoneData::parse(
            "@ 60 IN SOA ns1 h 10 1 1 1 1\n@ 60 IN NS ns1\nns1 60 IN A 127.0.0.1\n",
            None,
            &origin,
        )
        .unwrap();
        let snap = Arc::new(ArcSwap::from_pointee(Snapshot::default()));
        let mut p = Publisher::new(snap.clone());
        p.add_zone(z, Some(20));
        let cic = Name::from_ascii("cic.ggon.org.").unwrap();
        let rec = |a: &str| ServiceRecords {
            ttl: 30,
            addresses: vec![a.parse().unwrap()],
        };
        p.stage(&cic, rec("127.0.0.11"));
        p.publish_all();
        assert_eq!(snap.load().zone(&origin).unwrap().serial, 21);
        let (_, serial) = p.publish(&cic, rec("127.0.0.12")).unwrap();
        assert_eq!(serial, 22);
        let s = snap.load();
        let data = &s.zone(&origin).unwrap().data;
        let a = &data.rrsets[&cic][&RecordType::A];
        assert_eq!(a.rdatas.len(), 1);
        assert_eq!(
            a.rdatas[0],
            RData::A("127.0.0.12".parse::<std::net::Ipv4Addr>().unwrap().into())
        );
        assert_eq!(data.serial(), 22);
    }
}
