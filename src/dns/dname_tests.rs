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
    let mut m = Message::new(7, MessageType::Query, OpCode::Query);
    m.add_query(HQuery::query(Name::from_ascii(name).unwrap(), t));
    let mut out = Vec::new();
    assert_eq!(
        respond(s, &m.to_vec().unwrap(), Transport::Udp, &mut out),
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
