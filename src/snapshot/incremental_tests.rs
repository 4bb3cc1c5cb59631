//! Incremental remaps against full compiles: after 1,000 remaps through the
//! publisher on a generated zone, every (name, type) answer of the served
//! snapshot equals a full compile of the same zone data.

use std::net::IpAddr;
use std::sync::Arc;

use arc_swap::ArcSwap;
use hickory_proto::rr::Name;

use super::super::{compile, CompiledZone, Lookup, QName, Snapshot};
use crate::proto::zone::ZoneData;
use crate::publish::{Publisher, ServiceRecords};

const SERVICES: usize = 20;
const HOSTS: usize = 300;

/// A zone with every kind of dependency on the service names s0..s19:
/// CNAMEs and chains of CNAMEs to them, MX/SRV/NS/HTTPS targets, a wildcard,
/// a delegation with glue and DS, a DNAME, an empty non-terminal, CNAMEs
/// ending out of zone, in NXDOMAIN and through the wildcard, and a CNAME
/// whose chain goes through an in-zone DNAME to a service name.
fn zone_text() -> String {
    let mut z = String::from(
        "@ 3600 IN SOA ns1 hostmaster 1 3600 600 86400 300\n\
         @ 3600 IN NS ns1\n@ 3600 IN NS s1\n@ 3600 IN MX 10 s0\n\
         ns1 3600 IN A 192.0.2.1\n\
         *.w 300 IN A 192.0.2.2\nviawild 300 IN CNAME x.w\n\
         sub 300 IN NS ns.sub\nns.sub 300 IN A 192.0.2.3\n\
         sub 300 IN DS 1 8 2 0123456789ABCDEF0123456789ABCDEF0123456789ABCDEF0123456789ABCDEF\n\
         d 300 IN DNAME example.net.\nout 300 IN CNAME www.example.net.\n\
         dangling 300 IN CNAME nothere\nleaf.ent.b 300 IN TXT \"x\"\n\
         _x._tcp 300 IN SRV 0 0 80 s3\nweb 300 IN HTTPS 1 s5 alpn=h2\n\
         loop1 300 IN CNAME loop2\nloop2 300 IN CNAME loop1\n\
         in 300 IN DNAME ggon.test.\nviadname 300 IN CNAME s2.in\n",
    );
    for i in 0..SERVICES {
        z += &format!("s{i} 30 IN A 10.0.0.{i}\n");
        z += &format!("c{i} 300 IN CNAME s{i}\ncc{i} 300 IN CNAME c{i}\n");
        z += &format!("m{i} 300 IN MX 5 s{i}\n");
    }
    for i in 0..HOSTS {
        z += &format!("h{i} 300 IN A 10.1.{}.{}\n", i / 256, i % 256);
    }
    z
}

/// A question for `name` as the query path builds it.
fn qname(name: &Name) -> QName {
    let wire = super::super::name_wire(name);
    let mut q = QName {
        wire: [0; 255],
        len: wire.len(),
        starts: [0; 128],
        nlabels: 0,
    };
    q.wire[..wire.len()].copy_from_slice(&wire);
    let mut at = 0;
    while wire[at] != 0 {
        q.starts[q.nlabels] = at as u8;
        q.nlabels += 1;
        at += 1 + wire[at] as usize;
    }
    q.starts[q.nlabels] = at as u8;
    q
}

/// Every answer of `a` and `b` for the zone's names, names below them that
/// do not exist, and the types in use, compared; returns how many.
fn assert_same_answers(a: &CompiledZone, b: &CompiledZone, when: &str) -> usize {
    let mut n = same_answers(a, b, when, false);
    if a.signed {
        n += same_answers(a, b, when, true);
    }
    n
}

fn same_answers(a: &CompiledZone, b: &CompiledZone, when: &str, dnssec: bool) -> usize {
    let owners = a.data.rrsets.keys();
    let mut names: Vec<Name> = owners.chain(a.index.ents.iter()).cloned().collect();
    for extra in ["nx", "x.y.w", "deep.sub", "q.d", "nothere", "z.h1", "ent.b"] {
        names.push(Name::from_ascii(format!("{extra}.ggon.test.")).unwrap());
    }
    let types = [1u16, 2, 5, 6, 15, 16, 28, 33, 39, 43, 65, 99, 255];
    let (sa, sb) = (
        Snapshot::new(vec![Arc::new(clone_zone(a))]),
        Snapshot::new(vec![Arc::new(clone_zone(b))]),
    );
    let mut n = 0;
    for name in &names {
        let q = qname(name);
        for t in types {
            let same = match (sa.lookup(&q, t, dnssec), sb.lookup(&q, t, dnssec)) {
                (Lookup::Answer(x), Lookup::Answer(y)) => x == y,
                (Lookup::Denial(x, px), Lookup::Denial(y, py)) => x == y && px == py,
                (Lookup::Dname(x), Lookup::Dname(y)) => x == y,
                (Lookup::NotAuth, Lookup::NotAuth) => true,
                _ => false,
            };
            assert!(
                same,
                "{when}: {name} type {t} (DO {dnssec}) differs from a full compile"
            );
            n += 1;
        }
    }
    n
}

/// The same zone (nodes shared) in a new Arc for a one-zone snapshot.
fn clone_zone(z: &CompiledZone) -> CompiledZone {
    CompiledZone {
        origin: z.origin.clone(),
        serial: z.serial,
        apex: z.apex.clone(),
        apex_labels: z.apex_labels,
        nodes: z.nodes.next(),
        nxdomain: z.nxdomain.clone(),
        nxdomain_signed: z.nxdomain_signed.clone(),
        signed: z.signed,
        chain: z.chain.clone(),
        nodata_signed: z.nodata_signed.clone(),
        nodata: z.nodata.clone(),
        index: z.index.clone(),
        data: z.data.clone(),
        journal: z.journal.clone(),
    }
}

#[test]
fn a_thousand_incremental_remaps_answer_like_a_full_compile() {
    let origin = Name::from_ascii("ggon.test.").unwrap();
    let zone = ZoneData::parse(&zone_text(), None, &origin).unwrap();
    let snap = Arc::new(ArcSwap::from_pointee(Snapshot::default()));
    let mut p = Publisher::new(snap.clone());
    p.add_zone(zone, None).unwrap();
    let svc = |i: usize| Name::from_ascii(format!("s{i}.ggon.test.")).unwrap();
    for i in 0..SERVICES {
        let a: IpAddr = format!("10.0.0.{i}").parse().unwrap();
        p.stage(
            &svc(i),
            ServiceRecords {
                ttl: 30,
                addresses: vec![a],
            },
        );
    }
    p.publish_all();
    let host = Name::from_ascii("h7.ggon.test.").unwrap();
    let mut shared = 0;
    let mut compared = 0;
    let mut largest = 0;
    // A fixed linear congruential sequence: the same remaps every run.
    let mut x: u64 = 12345;
    for round in 1..=1000u32 {
        x = x
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        let i = (x >> 33) as usize % SERVICES;
        let count = 1 + (x >> 20) as usize % 3;
        let mut addresses: Vec<IpAddr> = (0..count)
            .map(|k| format!("10.2.{}.{}", round % 250, k + 1).parse().unwrap())
            .collect();
        if x.is_multiple_of(3) {
            addresses.push(format!("2001:db8::{round:x}").parse().unwrap());
        }
        let before = snap.load_full();
        p.publish(
            &svc(i),
            ServiceRecords {
                ttl: 10 + round % 50,
                addresses,
            },
        );
        let after = snap.load_full();
        let (b, a) = (before.zone(&origin).unwrap(), after.zone(&origin).unwrap());
        assert_eq!(a.serial, b.serial.wrapping_add(1));
        // A host no remap reaches keeps its node: the compile was incremental.
        let key = super::super::name_wire(&host);
        if Arc::ptr_eq(&a.nodes[&key[..]], &b.nodes[&key[..]]) {
            shared += 1;
        }
        // Remaps of the same services recompile the same nodes: the
        // overlay holds each once and does not grow with the remaps.
        largest = largest.max(a.nodes.overlay_len());
        if round % 100 == 0 {
            let full = compile(a.data.clone());
            compared += assert_same_answers(a, &full, &format!("after remap {round}"));
        }
    }
    assert_eq!(shared, 1000, "every remap should have been incremental");
    assert!(
        (SERVICES..=SERVICES * 4 + 60).contains(&largest),
        "the overlay grew to {largest} nodes"
    );
    assert!(compared > 10 * (SERVICES * 4 + HOSTS) * 13);
}

#[test]
fn a_change_of_shape_falls_back_to_a_full_compile() {
    let origin = Name::from_ascii("ggon.test.").unwrap();
    let zone = Arc::new(ZoneData::parse(&zone_text(), None, &origin).unwrap());
    let prev = compile(zone.clone());
    // s3 loses its only RRset: the name disappears.
    let mut data = (*zone).clone();
    let s3 = Name::from_ascii("s3.ggon.test.").unwrap();
    data.replace_rrset(&s3, hickory_proto::rr::RecordType::A, None);
    data.set_serial(2);
    let data = Arc::new(data);
    let next = super::recompile(Some(&prev), data.clone(), &[s3].into_iter().collect());
    let key = super::super::name_wire(&Name::from_ascii("h1.ggon.test.").unwrap());
    assert!(!Arc::ptr_eq(&next.nodes[&key[..]], &prev.nodes[&key[..]]));
    assert_same_answers(&next, &compile(data), "after s3 disappeared");
}

/// The same on a zone ggond signs (NSEC, then NSEC3): the DO answers too,
/// with their proofs, equal a full compile after every 20 remaps; remaps
/// that leave the denial chain alone are incremental.
#[test]
fn signed_zone_remaps_answer_like_a_full_compile() {
    use crate::sign::{keys, Denial, KeyState, Policy, Signer, ZoneKey};
    let dir = std::env::temp_dir().join(format!("ggon-incr-signed-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let k = keys::generate("ggon.test", keys::ECDSAP256SHA256, true, &dir).unwrap();
    for denial in [Denial::Nsec, Denial::Nsec3] {
        let origin = Name::from_ascii("ggon.test.").unwrap();
        let zone = ZoneData::parse(&zone_text(), None, &origin).unwrap();
        let snap = Arc::new(ArcSwap::from_pointee(Snapshot::default()));
        let mut p = Publisher::new(snap.clone());
        p.add_zone(zone, None).unwrap();
        let key = ZoneKey::load(&k, "ggon.test.").unwrap();
        let policy = Policy {
            denial,
            ..Policy::default()
        };
        p.set_signers(vec![Signer::new(
            origin.clone(),
            vec![(key, KeyState::Active)],
            policy,
        )]);
        let svc = |i: usize| Name::from_ascii(format!("s{i}.ggon.test.")).unwrap();
        p.publish_all();
        let host = super::super::name_wire(&Name::from_ascii("h7.ggon.test.").unwrap());
        let mut shared = 0;
        for round in 1..=100u32 {
            let i = (round as usize * 7) % SERVICES;
            // Every fifth remap adds an IPv6 address: the name's types (and
            // its NSEC) change, which needs a full compile.
            let mut addresses: Vec<IpAddr> =
                vec![format!("10.3.{}.{}", round % 250, i + 1).parse().unwrap()];
            if round % 5 == 0 {
                addresses.push(format!("2001:db8::{round:x}").parse().unwrap());
            }
            let before = snap.load_full();
            p.publish(&svc(i), ServiceRecords { ttl: 30, addresses });
            let after = snap.load_full();
            let (b, a) = (before.zone(&origin).unwrap(), after.zone(&origin).unwrap());
            assert!(a.signed);
            if Arc::ptr_eq(&a.nodes[&host[..]], &b.nodes[&host[..]]) {
                shared += 1;
            }
            if round % 20 == 0 {
                let full = compile(a.data.clone());
                assert_same_answers(a, &full, &format!("{denial:?}, after remap {round}"));
            }
        }
        assert!(
            shared >= 50,
            "{denial:?}: only {shared} of 100 remaps were incremental"
        );
    }
    let _ = std::fs::remove_dir_all(&dir);
}

/// The nodes compiled on two threads are those compiled on one, the
/// split falling inside the delegation, below the wildcard and the DNAMEs
/// (wherever it falls, every node is compared).
#[test]
fn nodes_compiled_on_two_threads_are_those_compiled_on_one() {
    use super::super::compile::{hashed_only, Compiler};
    use super::compile_nodes;
    let origin = Name::from_ascii("ggon.test.").unwrap();
    let zone = ZoneData::parse(&zone_text(), None, &origin).unwrap();
    let c = Compiler::new(&zone);
    let owners = zone.rrsets.iter().filter(|(_, t)| !hashed_only(t));
    let names: Vec<_> = owners
        .map(|(n, t)| (n, Some(t)))
        .chain(c.ents.iter().map(|n| (n, None)))
        .collect();
    let one = compile_nodes(&c, None, &names, usize::MAX);
    let two = compile_nodes(&c, None, &names, 0);
    assert_eq!(one.len(), names.len());
    assert_eq!(one.len(), two.len());
    for (key, node) in &one {
        assert_eq!(format!("{node:?}"), format!("{:?}", two[key]), "{key:?}");
    }
}
