use super::*;

fn zone() -> ZoneData {
    let origin = Name::from_ascii("ggon.org.").unwrap();
    ZoneData::parse(
        "@ 60 IN SOA ns1 h 1 1 1 1 30\n@ 60 IN NS ns1\nns1 60 IN A 127.0.0.1\n\
         www 60 IN A 127.0.0.80\na.b.c 60 IN TXT x\nsub 60 IN NS ns.sub\nns.sub 60 IN A 127.0.0.9\n",
        None,
        &origin,
    )
    .unwrap()
}

fn signer(denial: Denial) -> Signer {
    let dir = std::env::temp_dir().join(format!("ggon-sign-{}-{:?}", std::process::id(), denial));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let k = keys::generate("ggon.org", keys::ECDSAP256SHA256, true, &dir).unwrap();
    let z = keys::generate("ggon.org", keys::ED25519, false, &dir).unwrap();
    let keys = vec![
        (ZoneKey::load(&k, "ggon.org.").unwrap(), KeyState::Active),
        (ZoneKey::load(&z, "ggon.org.").unwrap(), KeyState::Active),
    ];
    Signer::new(
        Name::from_ascii("ggon.org.").unwrap(),
        keys,
        Policy {
            denial,
            ..Policy::default()
        },
    )
}

/// Replaces `name`'s A RRset with one address (TTL 60).
fn set_a(z: &mut ZoneData, name: &Name, addr: &str) {
    let rrset = RRset::new(60, vec![RData::A(addr.parse().unwrap())]);
    z.replace_rrset(name, RecordType::A, Some(rrset));
}

fn has(z: &ZoneData, name: &str, t: RecordType) -> bool {
    let n = Name::from_ascii(name).unwrap();
    z.rrsets.get(&n).is_some_and(|s| s.contains_key(&t))
}

#[test]
fn signs_authoritative_data_not_glue_and_reuses_signatures() {
    let mut s = signer(Denial::Nsec);
    let signed = s.sign(&zone(), 1_800_000_000);
    signed.check().unwrap();
    assert!(has(&signed, "ggon.org.", RecordType::DNSKEY));
    assert!(has(&signed, "ggon.org.", RecordType::CDS));
    assert!(has(&signed, "www.ggon.org.", RecordType::RRSIG));
    assert!(has(&signed, "www.ggon.org.", RecordType::NSEC));
    // The cut gets an NSEC (signed), its NS is not signed, glue is left alone.
    assert!(has(&signed, "sub.ggon.org.", RecordType::NSEC));
    assert!(!has(&signed, "ns.sub.ggon.org.", RecordType::NSEC));
    assert!(!has(&signed, "ns.sub.ggon.org.", RecordType::RRSIG));
    let first = s.last;
    assert!(first.signed > 10 && first.reused == 0, "{first:?}");
    // Change one RRset: only it is signed again.
    let mut z = zone();
    let www = Name::from_ascii("www.ggon.org.").unwrap();
    set_a(&mut z, &www, "127.0.0.81");
    let again = s.sign(&signed, 1_800_000_100);
    assert_eq!(again, signed, "signing signed data again changes nothing");
    s.sign(&z, 1_800_000_200);
    assert_eq!(s.last.signed, 1, "{:?}", s.last);
    assert!(s.refresh_at() > 1_800_000_000 && s.refresh_at() < 1_800_000_000 + 14 * 86_400);
}

#[test]
fn nsec3_chain_covers_empty_non_terminals() {
    let mut s = signer(Denial::Nsec3);
    let signed = s.sign(&zone(), 1_800_000_000);
    let nsec3 = signed
        .rrsets
        .values()
        .filter(|t| t.contains_key(&RecordType::NSEC3))
        .count();
    // apex, ns1, www, a.b.c, b.c, c (ENTs), sub: 7 (not the glue).
    assert_eq!(nsec3, 7);
    assert!(has(&signed, "ggon.org.", RecordType::NSEC3PARAM));
}

#[test]
fn a_remap_takes_the_incremental_path_and_signs_like_a_full_run() {
    for denial in [Denial::Nsec, Denial::Nsec3] {
        let mut s = signer(denial);
        let z0 = zone();
        s.sign(&z0, 1_800_000_000);
        let mut z1 = z0.clone();
        let www = Name::from_ascii("www.ggon.org.").unwrap();
        set_a(&mut z1, &www, "127.0.0.82");
        z1.set_serial(2);
        let fast = s.sign_incremental(&z1, 1_800_000_100).expect("incremental");
        assert_eq!(s.last.signed, 2, "www's A and the SOA: {:?}", s.last);
        // A full run reuses the cached signatures: the same zone exactly.
        let full = s.sign_full(&z1, 1_800_000_100);
        assert_eq!(fast, full, "{denial:?}");
        // A new name changes the chain: no incremental path.
        let mut z2 = z1.clone();
        let new = Name::from_ascii("new.ggon.org.").unwrap();
        set_a(&mut z2, &new, "127.0.0.83");
        s.sign(&z1, 1_800_000_200);
        assert!(s.sign_incremental(&z2, 1_800_000_300).is_none());
        // Nor a new type at a name (its NSEC bitmap changes).
        let mut z3 = z1.clone();
        z3.replace_rrset(
            &www,
            RecordType::AAAA,
            Some(RRset::new(60, vec![RData::AAAA("::1".parse().unwrap())])),
        );
        assert!(s.sign_incremental(&z3, 1_800_000_300).is_none());
    }
}
