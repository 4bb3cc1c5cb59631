//! Per-region answers in a zone ggond signs: each region's RRset goes out
//! with its own RRSIG, which verifies with the zone's DNSKEY (hickory-proto's
//! verifier, not ours), and a failover in one region signs only that
//! region's RRset.

use std::path::Path;
use std::sync::Arc;

use arc_swap::ArcSwap;
use hickory_proto::dnssec::rdata::{DNSSECRData, DNSKEY, RRSIG};
use hickory_proto::dnssec::Verifier;
use hickory_proto::op::{Edns, Message, MessageType, OpCode, Query};
use hickory_proto::rr::{DNSClass, Name, RData, Record, RecordType};
use hickory_proto::serialize::binary::BinDecodable;

use crate::config::Config;
use crate::dns::respond::{respond_from, Transport};
use crate::proto::zone::ZoneData;
use crate::publish::{Publisher, ServiceRecords};
use crate::sign::{keys, KeyState, Policy, SignStats, Signer, ZoneKey};
use crate::snapshot::Snapshot;

const ZONE: &str = "@ 60 IN SOA ns1 h 10 1 1 1 1\n@ 60 IN NS ns1\nns1 60 IN A 127.0.0.1\n\
                    www 60 IN A 127.0.0.80\n";

/// Regions eu (10.1/16) and us (10.2/16); the keys and zone are the rig's.
fn config() -> Config {
    let text = r#"
[[zone]]
origin = "ggon.org"
file = "zones/ggon.org.zone"

[[region]]
name = "eu"
nets = ["10.1.0.0/16"]

[[region]]
name = "us"
nets = ["10.2.0.0/16"]

[[service]]
name = "geo"
fqdn = "geo.ggon.org"
active = "per-region"
order = { eu = ["ams", "nyc"], us = ["nyc", "ams"] }

[[service.target]]
name = "ams"
addresses = ["127.0.0.11"]
check = { type = "tcp", address = "127.0.0.11:8080" }

[[service.target]]
name = "nyc"
addresses = ["127.0.0.12"]
check = { type = "tcp", address = "127.0.0.12:8080" }
"#;
    Config::parse(text, Path::new("test.toml")).expect("valid test config")
}

struct Rig {
    p: Publisher,
    snap: Arc<ArcSwap<Snapshot>>,
    origin: Name,
    geo: Name,
    _dir: tempfile::TempDir,
}

fn addrs(a: &str) -> Option<Vec<std::net::IpAddr>> {
    Some(vec![a.parse().unwrap()])
}

/// ggon.org signed by a KSK and a ZSK, geo answering ams in eu, nyc in us
/// and ams by default.
fn rig() -> Rig {
    let dir = tempfile::tempdir().unwrap();
    let k = keys::generate("ggon.org", keys::ECDSAP256SHA256, true, dir.path()).unwrap();
    let z = keys::generate("ggon.org", keys::ED25519, false, dir.path()).unwrap();
    let origin = Name::from_ascii("ggon.org.").unwrap();
    let signer = Signer::new(
        origin.clone(),
        vec![
            (ZoneKey::load(&k, "ggon.org.").unwrap(), KeyState::Active),
            (ZoneKey::load(&z, "ggon.org.").unwrap(), KeyState::Active),
        ],
        Policy::default(),
    );
    let cfg = config();
    let snap = Arc::new(ArcSwap::from_pointee(Snapshot::default()));
    let mut p = Publisher::new(snap.clone());
    p.add_zone(ZoneData::parse(ZONE, None, &origin).unwrap(), None)
        .unwrap();
    p.set_signers(vec![signer]);
    p.set_geo(&cfg, crate::geo::nets_map(&cfg));
    let geo = Name::from_ascii("geo.ggon.org.").unwrap();
    p.stage(
        &geo,
        ServiceRecords {
            ttl: 30,
            addresses: vec!["127.0.0.11".parse().unwrap()],
        },
    );
    p.stage_regional(
        &geo,
        30,
        vec![addrs("127.0.0.11"), addrs("127.0.0.12"), None],
    );
    p.publish_all();
    Rig {
        p,
        snap,
        origin,
        geo,
        _dir: dir,
    }
}

impl Rig {
    /// What a client at `src` is answered for geo A, through the query path.
    fn ask(&self, src: &str, dnssec: bool) -> Message {
        let mut m = Message::new(7, MessageType::Query, OpCode::Query);
        m.add_query(Query::query(self.geo.clone(), RecordType::A));
        let mut edns = Edns::new();
        edns.set_dnssec_ok(dnssec);
        m.set_edns(edns);
        let mut out = Vec::new();
        respond_from(
            &self.snap.load(),
            &m.to_vec().unwrap(),
            Transport::Udp,
            Some(src.parse().unwrap()),
            &mut out,
        );
        Message::from_bytes(&out).unwrap()
    }

    /// The zone's DNSKEYs, as it serves them.
    fn dnskeys(&self) -> Vec<DNSKEY> {
        let snap = self.snap.load();
        let data = &snap.zone(&self.origin).unwrap().data;
        data.rrsets[&self.origin][&RecordType::DNSKEY]
            .rdatas
            .iter()
            .map(|rd| match &*rd {
                RData::DNSSEC(DNSSECRData::DNSKEY(k)) => k.clone(),
                other => panic!("not a DNSKEY: {other:?}"),
            })
            .collect()
    }

    fn extra(&self) -> SignStats {
        self.p.signer(&self.origin).unwrap().extra_stats()
    }
}

/// The answer's A records and the RRSIGs covering them.
fn split(m: &Message) -> (Vec<Record>, Vec<RRSIG>) {
    let a = m
        .answers
        .iter()
        .filter(|r| r.record_type() == RecordType::A)
        .cloned()
        .collect();
    let sigs = m
        .answers
        .iter()
        .filter_map(|r| match &r.data {
            RData::DNSSEC(DNSSECRData::RRSIG(s)) => Some(s.clone()),
            _ => None,
        })
        .collect();
    (a, sigs)
}

/// Does `sig` over `records` verify with the zone's key of its tag?
fn verifies(keys: &[DNSKEY], name: &Name, sig: &RRSIG, records: &[Record]) -> bool {
    keys.iter()
        .filter(|k| k.calculate_key_tag().ok() == Some(sig.input().key_tag))
        .any(|k| {
            k.verify_rrsig(name, DNSClass::IN, sig, records.iter())
                .is_ok()
        })
}

fn a_of(records: &[Record]) -> Vec<String> {
    records.iter().map(|r| r.data.to_string()).collect()
}

#[test]
fn each_regions_rrsig_verifies_with_the_zones_dnskey() {
    let r = rig();
    let keys = r.dnskeys();
    let (eu, eu_sigs) = split(&r.ask("10.1.0.1", true));
    let (us, us_sigs) = split(&r.ask("10.2.0.1", true));
    assert_eq!(a_of(&eu), ["127.0.0.11"]);
    assert_eq!(a_of(&us), ["127.0.0.12"]);
    // One ZSK signs A: one RRSIG each, covering A, by the zone.
    for sigs in [&eu_sigs, &us_sigs] {
        assert_eq!(sigs.len(), 1, "{sigs:?}");
        assert_eq!(sigs[0].input().type_covered, RecordType::A);
        assert_eq!(sigs[0].input().signer_name, r.origin);
    }
    assert!(verifies(&keys, &r.geo, &eu_sigs[0], &eu), "eu's RRSIG");
    assert!(verifies(&keys, &r.geo, &us_sigs[0], &us), "us's RRSIG");
    // Each signature is the region's own: it does not cover the other's.
    assert!(!verifies(&keys, &r.geo, &eu_sigs[0], &us));
    assert!(!verifies(&keys, &r.geo, &us_sigs[0], &eu));
    // Without DO: the same addresses, no signatures.
    let (plain, none) = split(&r.ask("10.2.0.1", false));
    assert_eq!(a_of(&plain), ["127.0.0.12"]);
    assert!(none.is_empty());
}

#[test]
fn a_regions_failover_signs_only_that_regions_rrset() {
    let mut r = rig();
    // eu and us answer differently (the default region answers the zone's).
    assert_eq!(
        r.extra(),
        SignStats {
            signed: 2,
            reused: 0
        }
    );
    // eu fails over to a third address: only its RRset is signed.
    let geo = r.geo.clone();
    let records = vec![addrs("127.0.0.13"), addrs("127.0.0.12"), None];
    r.p.publish_regional(&geo, 30, records.clone());
    assert_eq!(
        r.extra(),
        SignStats {
            signed: 1,
            reused: 1
        }
    );
    let (eu, sigs) = split(&r.ask("10.1.0.1", true));
    assert_eq!(a_of(&eu), ["127.0.0.13"]);
    assert!(verifies(&r.dnskeys(), &geo, &sigs[0], &eu));
    // A change elsewhere in the zone rebuilds the table, signing nothing.
    let www = Name::from_ascii("www.ggon.org.").unwrap();
    r.p.publish(
        &www,
        ServiceRecords {
            ttl: 60,
            addresses: vec!["127.0.0.81".parse().unwrap()],
        },
    );
    assert_eq!(
        r.extra(),
        SignStats {
            signed: 0,
            reused: 2
        }
    );
    // The signer is due again before the regional signatures expire.
    let exp = u64::from(sigs[0].input().sig_expiration.get());
    let signer = r.p.signer(&r.origin).unwrap();
    assert!(signer.refresh_at() <= exp - u64::from(signer.policy().refresh));
}

#[test]
fn a_new_zone_signing_key_signs_the_regions_again() {
    let mut r = rig();
    let dir = r._dir.path().to_path_buf();
    let z2 = keys::generate("ggon.org", keys::ED25519, false, &dir).unwrap();
    let z2 = ZoneKey::load(&z2, "ggon.org.").unwrap();
    let new_tag = z2.tag;
    let signer = r.p.signers.get_mut(&r.origin).unwrap();
    // The old ZSK retired, the new one signing (a ZSK roll's swap step).
    let mut keys: Vec<(ZoneKey, KeyState)> = signer
        .keys()
        .iter()
        .map(|(k, _)| {
            let state = match k.is_ksk() {
                true => KeyState::Active,
                false => KeyState::Retired,
            };
            (ZoneKey::load(&k.file, "ggon.org.").unwrap(), state)
        })
        .collect();
    keys.push((z2, KeyState::Active));
    signer.set_keys(keys);
    // The zone is published again (as a roll's step does): the key set
    // changes, and the regions, whose answers did not, are signed again.
    let geo = r.geo.clone();
    let www = Name::from_ascii("www.ggon.org.").unwrap();
    r.p.publish(
        &www,
        ServiceRecords {
            ttl: 60,
            addresses: vec!["127.0.0.80".parse().unwrap()],
        },
    );
    assert_eq!(
        r.extra(),
        SignStats {
            signed: 2,
            reused: 0
        }
    );
    for src in ["10.1.0.1", "10.2.0.1"] {
        let (a, sigs) = split(&r.ask(src, true));
        assert_eq!(sigs.len(), 1, "{sigs:?}");
        assert_eq!(sigs[0].input().key_tag, new_tag);
        assert!(verifies(&r.dnskeys(), &geo, &sigs[0], &a), "{src}");
    }
}
