//! DNAME synthesis (RFC 6672) and DS at a zone cut (RFC 4035 3.1.4.1),
//! through the query path.

use std::sync::Arc;

use hickory_proto::op::{Message, MessageType, OpCode, Query as HQuery, ResponseCode};
use hickory_proto::rr::{Name, RData, RecordType};
use hickory_proto::serialize::binary::BinDecodable;

use super::respond::{respond, Action, Transport};
use crate::proto::zone::ZoneData;
use crate::snapshot::{compile, Snapshot};

const ZONE: &str = "$ORIGIN ggon.org.\n$TTL 3600\n\
@ SOA ns1 hostmaster 7 3600 600 86400 300\n@ NS ns1\nns1 A 127.0.0.1\n\
sub NS ns.sub\nsub DS 60485 5 1 2BB183AF5F22588179A53B0A98631FAD1A292118\nns.sub A 127.0.0.53\n\
nods NS ns.nods\nns.nods A 127.0.0.54\n\
d 300 DNAME Target.example.\nx.d A 192.0.2.1\n";

fn snap() -> Snapshot {
    let origin = Name::from_ascii("ggon.org.").unwrap();
    let z = ZoneData::parse(ZONE, None, &origin).unwrap();
    Snapshot::new(vec![Arc::new(compile(Arc::new(z)))])
}

fn ask(s: &Snapshot, name: &str, t: RecordType) -> Message {
    ask_over(s, name, t, Transport::Udp)
}

fn ask_over(s: &Snapshot, name: &str, t: RecordType, tr: Transport) -> Message {
    let mut m = Message::new(7, MessageType::Query, OpCode::Query);
    m.add_query(HQuery::query(Name::from_ascii(name).unwrap(), t));
    let mut out = Vec::new();
    assert_eq!(
        respond(s, &m.to_vec().unwrap(), tr, &mut out),
        Action::Reply
    );
    Message::from_bytes(&out).expect("response parses")
}

#[test]
fn ds_at_a_cut_is_answered_by_the_parent() {
    let s = snap();
    let r = ask(&s, "sub.ggon.org.", RecordType::DS);
    assert!(r.metadata.authoritative);
    assert_eq!(r.answers.len(), 1);
    assert_eq!(r.answers[0].record_type(), RecordType::DS);
    // No DS at a cut: NODATA from the parent, with its SOA.
    let r = ask(&s, "nods.ggon.org.", RecordType::DS);
    assert!(r.metadata.authoritative && r.answers.is_empty());
    assert_eq!(r.authorities[0].record_type(), RecordType::SOA);
    // Other types at the cut, and DS below it: the referral.
    for (n, t) in [
        ("sub.ggon.org.", RecordType::A),
        ("h.sub.ggon.org.", RecordType::DS),
    ] {
        let r = ask(&s, n, t);
        assert!(!r.metadata.authoritative, "{n}");
        assert_eq!(r.authorities[0].record_type(), RecordType::NS, "{n}");
    }
}

#[test]
fn names_below_a_dname_get_the_dname_and_a_synthesized_cname() {
    let s = snap();
    for q in ["www.d.ggon.org.", "WwW.x.D.ggon.org.", "x.d.ggon.org."] {
        let r = ask(&s, q, RecordType::A);
        assert_eq!(r.metadata.response_code, ResponseCode::NoError, "{q}");
        assert!(r.metadata.authoritative);
        assert_eq!(r.answers.len(), 2, "{q}: {:?}", r.answers);
        assert_eq!(u16::from(r.answers[0].record_type()), 39);
        assert_eq!(r.answers[0].name.to_string(), "d.ggon.org.");
        let RData::CNAME(c) = &r.answers[1].data else {
            panic!("{:?}", r.answers[1])
        };
        assert_eq!(
            r.answers[1].name.to_string().to_lowercase(),
            q.to_lowercase()
        );
        assert_eq!(r.answers[1].ttl, 300);
        let prefix = &q[..q.to_lowercase().find(".d.ggon.org.").unwrap()];
        assert_eq!(c.0.to_string(), format!("{prefix}.Target.example."));
    }
    // The DNAME's own name answers normally.
    let r = ask(&s, "d.ggon.org.", RecordType::from(39));
    assert_eq!(r.answers.len(), 1);
    let r = ask(&s, "d.ggon.org.", RecordType::A);
    assert!(r.answers.is_empty() && r.metadata.response_code == ResponseCode::NoError);
}

#[test]
fn a_substitution_longer_than_255_octets_is_yxdomain() {
    let s = snap();
    let long = format!(
        "{}.{}.{}.{}.d.ggon.org.",
        "a".repeat(63),
        "b".repeat(63),
        "c".repeat(63),
        "e".repeat(48)
    );
    // 241 + 12 ("d.ggon.org.") = 253 octets; with "Target.example." (16): 257.
    let r = ask(&s, &long, RecordType::A);
    assert_eq!(r.metadata.response_code, ResponseCode::YXDomain);
    assert_eq!(r.answers.len(), 1);
    assert_eq!(u16::from(r.answers[0].record_type()), 39);
}

/// DNAMEs whose targets are in the zone: the lookup goes on there.
const INZONE: &str = "$ORIGIN ggon.org.\n$TTL 3600\n\
@ SOA ns1 hostmaster 7 3600 600 86400 300\n@ NS ns1\nns1 A 127.0.0.1\n\
in 300 DNAME tgt.ggon.org.\n\
www.tgt A 192.0.2.7\nmail.tgt CNAME www.tgt\nmx.tgt MX 10 www.tgt\n\
deep.e.tgt A 192.0.2.8\nout.tgt CNAME example.com.\n\
*.wd DNAME tgt.ggon.org.\n\
loopa DNAME loopb.ggon.org.\nloopb DNAME loopa.ggon.org.\n\
cn CNAME mail.in\ncnx CNAME nope.in\n\
c0 CNAME c1\nc1 CNAME c2\nc2 CNAME c3\nc3 CNAME c4\nc4 CNAME c5\nc5 CNAME c6\n\
c6 CNAME c7\nc7 CNAME c8\nc8 CNAME c9\nc9 CNAME c10\nc10 CNAME c11\nc11 CNAME c12\n\
c12 A 192.0.2.12\n\
ring1 CNAME ring2\nring2 CNAME ring1\n";

fn inzone() -> Snapshot {
    let origin = Name::from_ascii("ggon.org.").unwrap();
    let z = ZoneData::parse(INZONE, None, &origin).unwrap();
    Snapshot::new(vec![Arc::new(compile(Arc::new(z)))])
}

/// (type, owner, data) of each answer record, owners lowercased.
fn answer(r: &Message) -> Vec<(u16, String, String)> {
    r.answers
        .iter()
        .map(|rr| {
            let data = match &rr.data {
                RData::CNAME(c) => c.0.to_string(),
                RData::A(a) => a.to_string(),
                RData::MX(mx) => mx.exchange.to_string(),
                other => format!("{other:?}"),
            };
            let owner = rr.name.to_string().to_lowercase();
            (u16::from(rr.record_type()), owner, data)
        })
        .collect()
}

fn soa_in_authority(r: &Message) -> bool {
    r.authorities
        .iter()
        .any(|rr| rr.record_type() == RecordType::SOA)
}

#[test]
fn a_dname_into_the_zone_is_followed_to_the_data() {
    let s = inzone();
    let r = ask(&s, "WWW.in.ggon.org.", RecordType::A);
    assert_eq!(r.metadata.response_code, ResponseCode::NoError);
    assert!(r.metadata.authoritative);
    let a = answer(&r);
    assert_eq!(a.len(), 3, "{a:?}");
    assert_eq!(a[0].0, 39);
    assert_eq!(a[0].1, "in.ggon.org.");
    // The synthesized CNAME keeps the question's case for its labels.
    assert_eq!(a[1].2, "WWW.tgt.ggon.org.");
    assert_eq!((a[2].0, &*a[2].1), (1, "www.tgt.ggon.org."));
    assert_eq!(a[2].2, "192.0.2.7");
    // Then a CNAME chain at the target; and an additional section whose
    // names point into this response.
    let a = answer(&ask(&s, "mail.in.ggon.org.", RecordType::A));
    let types: Vec<u16> = a.iter().map(|x| x.0).collect();
    assert_eq!(types, vec![39, 5, 5, 1], "{a:?}");
    assert_eq!(a[3].1, "www.tgt.ggon.org.");
    let r = ask(&s, "mx.in.ggon.org.", RecordType::MX);
    assert_eq!(answer(&r)[2].2, "www.tgt.ggon.org.");
    assert_eq!(r.additionals.len(), 1);
    assert_eq!(r.additionals[0].name.to_string(), "www.tgt.ggon.org.");
}

#[test]
fn the_target_s_rcode_is_the_answer_s() {
    let s = inzone();
    // NXDOMAIN at the target: the DNAME, the CNAME and the SOA.
    let r = ask(&s, "nope.in.ggon.org.", RecordType::A);
    assert_eq!(r.metadata.response_code, ResponseCode::NXDomain);
    assert_eq!(answer(&r).len(), 2);
    assert!(soa_in_authority(&r));
    // An empty non-terminal, and a type the target lacks: NODATA.
    for (q, t) in [
        ("e.in.ggon.org.", RecordType::A),
        ("www.in.ggon.org.", RecordType::TXT),
    ] {
        let r = ask(&s, q, t);
        assert_eq!(r.metadata.response_code, ResponseCode::NoError, "{q}");
        assert_eq!(answer(&r).len(), 2, "{q}");
        assert!(soa_in_authority(&r), "{q}");
    }
    // A CNAME question is answered by the synthesized CNAME alone.
    let r = ask(&s, "www.in.ggon.org.", RecordType::CNAME);
    assert_eq!(answer(&r).len(), 2);
    assert!(!soa_in_authority(&r));
    // Out of the zone: the resolver goes on from the CNAME.
    let r = ask(&s, "out.in.ggon.org.", RecordType::A);
    assert_eq!(r.metadata.response_code, ResponseCode::NoError);
    assert_eq!(answer(&r).len(), 3);
}

#[test]
fn cname_chains_go_through_dnames() {
    let s = inzone();
    let a = answer(&ask(&s, "cn.ggon.org.", RecordType::A));
    let types: Vec<u16> = a.iter().map(|x| x.0).collect();
    assert_eq!(types, vec![5, 39, 5, 5, 1], "{a:?}");
    assert_eq!(a[2].1, "mail.in.ggon.org.");
    assert_eq!(a[2].2, "mail.tgt.ggon.org.");
    let r = ask(&s, "cnx.ggon.org.", RecordType::A);
    assert_eq!(r.metadata.response_code, ResponseCode::NXDomain);
    // A DNAME at a wildcard owner applies below the literal `*`.
    let a = answer(&ask(&s, "www.*.wd.ggon.org.", RecordType::A));
    assert_eq!(a.len(), 3, "{a:?}");
    assert_eq!(a[1].2, "www.tgt.ggon.org.");
}

#[test]
fn loops_and_long_chains_are_servfail_as_in_bind() {
    let s = inzone();
    // 11 aliases (c1..c11) then the data: as many as BIND follows; one
    // more (from c0) is SERVFAIL, with the 12 aliases.
    let r = ask(&s, "c1.ggon.org.", RecordType::A);
    assert_eq!(r.metadata.response_code, ResponseCode::NoError);
    assert_eq!(answer(&r).len(), 12);
    let r = ask(&s, "c0.ggon.org.", RecordType::A);
    assert_eq!(r.metadata.response_code, ResponseCode::ServFail);
    assert_eq!(answer(&r).len(), crate::snapshot::MAX_ALIASES);
    let r = ask(&s, "ring1.ggon.org.", RecordType::A);
    assert_eq!(r.metadata.response_code, ResponseCode::ServFail);
    assert_eq!(answer(&r).len(), 2);
    // DNAMEs into each other: at most MAX_ALIASES synthesized CNAMEs
    // (more than 512 octets: truncated over UDP, whole over TCP).
    let r = ask(&s, "x.loopa.ggon.org.", RecordType::A);
    assert!(r.metadata.truncation && r.answers.is_empty());
    let r = ask_over(&s, "x.loopa.ggon.org.", RecordType::A, Transport::Tcp);
    assert_eq!(r.metadata.response_code, ResponseCode::ServFail);
    let cnames = answer(&r).iter().filter(|x| x.0 == 5).count();
    assert_eq!(cnames, crate::snapshot::MAX_ALIASES);
}
