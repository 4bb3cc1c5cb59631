//! The signer's side of a KSK roll gated on the parent: CDS/CDNSKEY follow
//! the roll, the old key stays until the parent serves the new DS, and
//! repeated identical parent answers are recorded once.

use std::net::SocketAddr;

use super::policy::KeyPolicy;
use super::roll::{DsCheck, RollStep, ServerSaid};
use super::*;

const NOW: u64 = 1_800_000_000;

fn zone() -> ZoneData {
    let origin = Name::from_ascii("ggon.org.").unwrap();
    ZoneData::parse(
        "@ 60 IN SOA ns1 h 1 1 1 1 30\n@ 60 IN NS ns1\nns1 60 IN A 127.0.0.1\n",
        None,
        &origin,
    )
    .unwrap()
}

fn signer(dir: &std::path::Path) -> Signer {
    let k = keys::generate("ggon.org", keys::ECDSAP256SHA256, true, dir).unwrap();
    let z = keys::generate("ggon.org", keys::ECDSAP256SHA256, false, dir).unwrap();
    let keys = vec![
        (ZoneKey::load(&k, "ggon.org.").unwrap(), KeyState::Active),
        (ZoneKey::load(&z, "ggon.org.").unwrap(), KeyState::Active),
    ];
    let policy = Policy {
        propagation: 10,
        key_policy: Some(KeyPolicy {
            zsk_lifetime: 1_000_000,
            ksk_lifetime: Some(100),
            parent_servers: vec![SocketAddr::from(([127, 0, 0, 1], 5300))],
            check_interval: 5,
            parent_propagation: 3,
            parent_ds_ttl: None,
        }),
        ..Policy::default()
    };
    Signer::new(Name::from_ascii("ggon.org.").unwrap(), keys, policy)
        .with_state_dir(&dir.join("state"))
        .unwrap()
}

fn cds_tags(z: &ZoneData) -> Vec<u16> {
    let apex = Name::from_ascii("ggon.org.").unwrap();
    z.rrsets[&apex]
        .get(&RecordType::CDS)
        .map(|s| {
            s.rdatas
                .iter()
                .map(|r| {
                    let b = hickory_proto::serialize::binary::BinEncodable::to_bytes(&*r).unwrap();
                    u16::from_be_bytes([b[0], b[1]])
                })
                .collect()
        })
        .unwrap_or_default()
}

fn said(tags: &[u16], new: bool) -> DsCheck {
    DsCheck {
        at: NOW,
        servers: vec![ServerSaid {
            server: SocketAddr::from(([127, 0, 0, 1], 5300)),
            new_ds: new,
            tags: tags.to_vec(),
            ttl: Some(60),
            error: None,
        }],
    }
}

#[test]
fn the_policy_rolls_the_ksk_and_waits_for_the_parent() {
    let dir = tempfile::tempdir().unwrap();
    let mut s = signer(dir.path());
    let z = zone();
    assert_eq!(s.policy_tick(&z, NOW).unwrap(), None, "clocks start");
    assert!(
        cds_tags(&s.sign(&z, NOW)).is_empty(),
        "no CDS outside a roll"
    );
    let began = s.policy_tick(&z, NOW + 100).unwrap().expect("a KSK roll");
    assert!(began.starts_with("key policy: KSK"), "{began}");
    let r = s.roll().unwrap().clone();
    assert!(r.auto && r.parent.is_some());
    assert!(
        cds_tags(&s.sign(&z, NOW + 100)).is_empty(),
        "not before the wait"
    );
    assert_eq!(s.parent_question(NOW + 100), None);
    // After the longest TTL (60) plus propagation (10): CDS names the new key.
    let sub = s.advance_roll(NOW + 170).unwrap().expect("submitted");
    assert!(sub.contains("CDS/CDNSKEY now name"), "{sub}");
    assert_eq!(cds_tags(&s.sign(&z, NOW + 170)), vec![r.new_tag]);
    let q = s.parent_question(NOW + 170).expect("ask the parent");
    assert_eq!(q.new_tag, r.new_tag);
    // The parent serves the old DS: recorded once, however often asked.
    let wait = s.parent_checked(said(&[r.old_tag], false), NOW + 170);
    assert!(wait.unwrap().unwrap().contains("waiting for the parent"));
    assert_eq!(
        s.advance_roll(NOW + 10_000).unwrap(),
        None,
        "time alone does nothing"
    );
    let again = s.parent_checked(said(&[r.old_tag], false), NOW + 175);
    assert_eq!(again.unwrap(), None, "the same answer is not news");
    assert_eq!(s.roll().unwrap().step, RollStep::Submitted);
    // It serves the new DS: the old key leaves after TTL 60 + 3.
    let seen = s.parent_checked(said(&[r.new_tag], true), NOW + 180);
    assert!(seen.unwrap().unwrap().contains("serve the DS of KSK"));
    assert_eq!(s.advance_roll(NOW + 242).unwrap(), None);
    let done = s.advance_roll(NOW + 243).unwrap().expect("removed");
    assert!(done.contains("CDS/CDNSKEY withdrawn"), "{done}");
    let signed = s.sign(&z, NOW + 243);
    assert!(cds_tags(&signed).is_empty());
    assert!(!s.keys().iter().any(|(k, _)| k.tag == r.old_tag));
    // The next tick times the new KSK from now.
    s.policy_tick(&z, NOW + 244).unwrap();
    assert_eq!(s.view(false).policy.unwrap().next_ksk_roll, Some(NOW + 344));
}

#[test]
fn a_roll_and_the_clocks_survive_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let mut s = signer(dir.path());
    let z = zone();
    s.policy_tick(&z, NOW).unwrap();
    s.policy_tick(&z, NOW + 100).unwrap().expect("a KSK roll");
    let before = (s.roll().cloned(), s.view(false));
    let again = Signer::new(
        Name::from_ascii("ggon.org.").unwrap(),
        Vec::new(),
        s.policy().clone(),
    )
    .with_state_dir(&dir.path().join("state"))
    .unwrap();
    assert_eq!((again.roll().cloned(), again.view(false)), before);
}

#[test]
fn a_zsk_roll_under_a_policy_publishes_no_cds() {
    let dir = tempfile::tempdir().unwrap();
    let mut s = signer(dir.path());
    let z = zone();
    s.start_roll(RollKind::Zsk, &z, NOW).unwrap();
    assert!(cds_tags(&s.sign(&z, NOW)).is_empty());
    s.advance_roll(NOW + 70).unwrap().expect("swapped");
    assert!(cds_tags(&s.sign(&z, NOW + 70)).is_empty());
}

#[test]
fn without_a_policy_cds_lists_every_active_ksk() {
    let dir = tempfile::tempdir().unwrap();
    let mut s = signer(dir.path());
    s.policy.key_policy = None;
    let ksk = s.keys().iter().find(|(k, _)| k.is_ksk()).unwrap().0.tag;
    assert_eq!(cds_tags(&s.sign(&zone(), NOW)), vec![ksk]);
}

#[test]
fn ds_matching_checks_tag_algorithm_and_digest() {
    let dir = tempfile::tempdir().unwrap();
    let s = signer(dir.path());
    let k = &s.keys()[0].0;
    let zone_wire = rrsig::name_wire(s.origin());
    let ds = ds_rdata(s.origin(), k);
    assert!(ds_matches(&zone_wire, &k.dnskey_rdata(), &ds));
    let mut wrong = ds.clone();
    *wrong.last_mut().unwrap() ^= 1;
    assert!(!ds_matches(&zone_wire, &k.dnskey_rdata(), &wrong));
    assert!(!ds_matches(&zone_wire, &s.keys()[1].0.dnskey_rdata(), &ds));
    assert!(!ds_matches(&zone_wire, &k.dnskey_rdata(), &ds[..3]));
}

#[test]
fn a_roll_that_cannot_begin_is_tried_again_later_not_every_tick() {
    let dir = tempfile::tempdir().unwrap();
    let mut s = signer(dir.path());
    let z = zone();
    s.policy_tick(&z, NOW).unwrap();
    // The key directory is gone: the new key cannot be written.
    for (k, _) in &mut s.keys {
        k.file = dir.path().join("gone/K");
    }
    assert!(s.policy_tick(&z, NOW + 100).is_err());
    assert_eq!(
        s.policy_tick(&z, NOW + 101).unwrap(),
        None,
        "not every tick"
    );
    assert!(
        s.policy_tick(&z, NOW + 160).is_err(),
        "again after a minute"
    );
}
