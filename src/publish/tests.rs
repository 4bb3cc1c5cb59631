//! The publisher: serials, RRset replacement, UPDATE journaling, serials
//! given by a cluster leader, and RFC 2136 remotes.

use std::sync::Mutex;

use hickory_proto::op::Message;

use super::*;

/// A publisher with one local zone `ggon.org.` at serial 20 (so 21 once
/// published), its snapshot, and a service name in it.
fn rig() -> (Publisher, Arc<ArcSwap<Snapshot>>, Name, Name) {
    let origin = Name::from_ascii("ggon.org.").unwrap();
    let z = ZoneData::parse(
        "@ 60 IN SOA ns1 h 10 1 1 1 1\n@ 60 IN NS ns1\nns1 60 IN A 127.0.0.1\n",
        None,
        &origin,
    )
    .unwrap();
    let snap = Arc::new(ArcSwap::from_pointee(Snapshot::default()));
    let mut p = Publisher::new(snap.clone());
    p.add_zone(z, Some(20)).unwrap();
    (p, snap, origin, Name::from_ascii("cic.ggon.org.").unwrap())
}

fn rec(a: &str) -> ServiceRecords {
    ServiceRecords {
        ttl: 30,
        addresses: vec![a.parse().unwrap()],
    }
}

#[test]
fn serials_follow_rfc1982() {
    assert!(serial_gt(2, 1));
    assert!(serial_gt(0, u32::MAX));
    assert!(!serial_gt(1, 1));
    assert!(!serial_gt(1, 2));
}

#[test]
fn publish_replaces_the_rrset_and_bumps_the_serial() {
    let (mut p, snap, origin, cic) = rig();
    p.stage(&cic, rec("127.0.0.11"));
    p.publish_all();
    assert_eq!(snap.load().zone(&origin).unwrap().serial, 21);
    let (_, serial) = p.publish(&cic, rec("127.0.0.12")).unwrap();
    assert_eq!(serial, Some(22));
    assert_eq!(snap.load().zone(&origin).unwrap().journal.len(), 1);
    let s = snap.load();
    let data = &s.zone(&origin).unwrap().data;
    let a = &data.rrsets[&cic][&RecordType::A];
    assert_eq!(
        a.rdatas,
        vec![RData::A(
            "127.0.0.12".parse::<std::net::Ipv4Addr>().unwrap().into()
        )]
    );
    assert_eq!(data.serial(), 22);
}

#[test]
fn an_update_is_journaled_for_ixfr_and_served() {
    use hickory_proto::op::{MessageType, OpCode, Query};
    let origin = Name::from_ascii("ggon.org.").unwrap();
    let z = ZoneData::parse(
        "@ 60 IN SOA ns1 h 10 1 1 1 1\n@ 60 IN NS ns1\n",
        None,
        &origin,
    )
    .unwrap();
    let snap = Arc::new(ArcSwap::from_pointee(Snapshot::default()));
    let mut p = Publisher::new(snap.clone());
    p.add_zone(z, None).unwrap();
    p.publish_all();
    let mut m = Message::new(1, MessageType::Query, OpCode::Update);
    m.add_query(Query::query(origin.clone(), RecordType::SOA));
    let test = Name::from_ascii("test.ggon.org.").unwrap();
    let a = RData::A("127.0.0.99".parse::<std::net::Ipv4Addr>().unwrap().into());
    m.add_authority(hickory_proto::rr::Record::from_rdata(
        test.clone(),
        300,
        a.clone(),
    ));
    let (change, serial) = p.apply_update(&origin, &m).unwrap();
    assert_eq!(change.added.len(), 1);
    assert_eq!(serial, 11);
    let s = snap.load();
    let zone = s.zone(&origin).unwrap();
    assert_eq!(zone.data.rrsets[&test][&RecordType::A].rdatas, vec![a]);
    let last = zone.journal.last().unwrap();
    assert_eq!(
        (last.from, last.to, last.added.len(), last.removed.len()),
        (10, 11, 1, 0)
    );
}

#[test]
fn cluster_journal_entries_apply_once_in_order_at_the_leaders_serial() {
    let (mut p, snap, origin, _) = rig();
    p.publish_all();
    let entry = |seq, serial, add: &str| JournalEntry {
        seq: Some(seq),
        serial: Some(serial),
        del: vec![],
        add: vec![add.to_string()],
    };
    let e1 = entry(1, 40, "a.ggon.org. 300 IN A 127.0.0.1");
    assert!(p.apply_entry(&origin, &e1).unwrap());
    assert_eq!(
        (p.zone_seq(&origin), p.serials()["ggon.org."]),
        (Some(1), 40)
    );
    // Seen again (the leader's own, a watch replayed after a resync): skipped.
    assert!(!p.apply_entry(&origin, &e1).unwrap());
    let e2 = entry(2, 41, "b.ggon.org. 300 IN A 127.0.0.2");
    assert!(p.apply_entry(&origin, &e2).unwrap());
    let z = snap.load().zone(&origin).unwrap().clone();
    assert_eq!(z.serial, 41);
    let b = Name::from_ascii("b.ggon.org.").unwrap();
    assert!(z.data.rrsets.contains_key(&b));
    let last = z.journal.last().unwrap();
    assert_eq!((last.from, last.to, last.added.len()), (40, 41, 1));
    // The next UPDATE here takes the next position.
    assert_eq!(p.zone_seq(&origin), Some(2));
}

#[test]
fn publish_at_takes_the_given_serial_even_a_lower_one() {
    let (mut p, snap, origin, cic) = rig();
    p.stage(&cic, rec("127.0.0.12"));
    p.publish_all();
    assert_eq!(snap.load().zone(&origin).unwrap().serial, 21);
    let serials = BTreeMap::from([("ggon.org.".to_string(), 20)]);
    p.publish_at(vec![(cic.clone(), rec("127.0.0.11"))], &serials);
    let z = snap.load().zone(&origin).unwrap().clone();
    assert_eq!(z.serial, 20);
    assert_eq!(p.serials()["ggon.org."], 20);
    // Same serial, nothing changed: left alone.
    p.publish_at(vec![], &serials);
    assert_eq!(snap.load().zone(&origin).unwrap().serial, 20);
    // A change at the serial this node already has (a restarted node
    // bumped its own serial to the leader's number): the leader's serial.
    p.publish_at(vec![(cic.clone(), rec("127.0.0.12"))], &serials);
    assert_eq!(snap.load().zone(&origin).unwrap().serial, 20);
    let loaded = snap.load();
    let a = &loaded.zone(&origin).unwrap().data.rrsets[&cic][&RecordType::A];
    assert_eq!(a.rdatas.first().unwrap().to_string(), "127.0.0.12");
}

/// Records what an RFC 2136 remote would be told.
struct Recorder(Arc<Mutex<Vec<usize>>>);

impl RemoteZone for Recorder {
    fn set_desired(&mut self, desired: BTreeMap<Name, ServiceRecords>) {
        self.0.lock().unwrap().push(desired.len());
    }
}

#[test]
fn only_an_active_publisher_tells_rfc2136_primaries() {
    let told = Arc::new(Mutex::new(Vec::new()));
    let snap = Arc::new(ArcSwap::from_pointee(Snapshot::default()));
    let mut p = Publisher::new(snap);
    let origin = Name::from_ascii("remote.test.").unwrap();
    p.add_remote(origin, Box::new(Recorder(told.clone())));
    // A cluster follower: nothing goes to the primary.
    p.set_remotes_active(false);
    let www = Name::from_ascii("www.remote.test.").unwrap();
    let rec = ServiceRecords {
        ttl: 30,
        addresses: vec!["127.0.0.11".parse().unwrap()],
    };
    p.publish(&www, rec.clone());
    p.publish_at(vec![(www.clone(), rec)], &BTreeMap::new());
    assert!(told.lock().unwrap().is_empty());
    // Becoming leader pushes the desired records at once.
    p.set_remotes_active(true);
    assert_eq!(*told.lock().unwrap(), vec![1]);
}

#[test]
fn laying_over_only_the_staged_names_serves_what_laying_over_all_would() {
    let (mut p, snap, origin, _) = rig();
    let names: Vec<Name> = (0..20)
        .map(|i| Name::from_ascii(format!("s{i}.ggon.org.")).unwrap())
        .collect();
    for n in &names {
        p.stage(n, rec("127.0.0.11"));
    }
    p.publish_all();
    for k in 0..300 {
        let n = &names[(k * 7) % names.len()];
        let r = rec(["127.0.0.12", "127.0.0.13", "::1"][k % 3]);
        match k % 4 {
            0 => {
                p.publish(n, r);
            }
            1 => {
                let serials = p.serials_after(&[n]);
                p.publish_at(vec![(n.clone(), r)], &serials);
            }
            // Staged now, published with a later change of another name.
            2 => {
                p.stage(n, r);
            }
            _ => {
                let other = &names[(k * 3) % names.len()];
                let serials = p.serials_after(&[other]);
                p.publish_at(vec![(other.clone(), rec("127.0.0.14"))], &serials);
            }
        }
    }
    let z = &p.zones[&origin];
    let all = ZoneRt {
        current: z.current.clone(),
        serial: z.serial,
        services: z.services.clone(),
        journal: Arc::default(),
        stale: None,
        seq: 0,
    };
    let served = snap.load().zone(&origin).unwrap().data.clone();
    // Everything staged is published once a later change commits the zone.
    assert_eq!(effective(&all).rrsets, served.rrsets);
}
