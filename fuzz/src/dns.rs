//! The `query` and `update` targets: both run `ggon::dns::respond` against a
//! snapshot compiled from a small zone and check the invariants every
//! response must keep; a broken invariant panics, which the fuzzer reports
//! as a crash.

use std::sync::{Arc, OnceLock};

use ggon::dns::refuse;
use ggon::dns::wire::parse_query;
use ggon::dns::{respond, Action, Special, Transport};
use ggon::proto::zone::ZoneData;
use ggon::snapshot::{compile, Snapshot};
use hickory_proto::op::Message;
use hickory_proto::rr::Name;
use hickory_proto::serialize::binary::BinDecodable;

const ZONE: &str = "$ORIGIN ggon.org.\n$TTL 3600\n\
@ IN SOA ns1 hostmaster 7 3600 600 86400 300\n\
@ IN NS ns1\n@ IN NS ns2\n@ IN MX 10 mail\n\
ns1 IN A 127.0.0.1\nns2 IN A 127.0.0.2\nmail IN A 127.0.0.25\n\
cic IN A 127.0.0.11\n\
www IN CNAME wiki\nwiki IN A 127.0.0.80\nwiki IN AAAA ::1\n\
loop1 IN CNAME loop2\nloop2 IN CNAME loop1\n\
*.apps IN A 127.0.0.90\nsub IN NS ns.sub\nns.sub IN A 127.0.0.53\n\
big IN TXT \"aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa1\"\n\
big IN TXT \"aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa2\"\n\
big IN TXT \"aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa3\"\n\
big IN TXT \"aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa4\"\n\
big IN TXT \"aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa5\"\n";

/// The snapshot every input is answered from (built once per process).
pub fn snapshot() -> &'static Snapshot {
    static SNAP: OnceLock<Snapshot> = OnceLock::new();
    SNAP.get_or_init(|| {
        let origin = Name::from_ascii("ggon.org.").unwrap();
        let zone = ZoneData::parse(ZONE, None, &origin).expect("fuzz zone parses");
        Snapshot::new(vec![Arc::new(compile(Arc::new(zone)))])
    })
}

/// Invariants of a reply built by `respond` for `pkt`.
pub fn check_reply(pkt: &[u8], out: &[u8], transport: Transport) {
    assert!(out.len() >= 12, "reply shorter than a header");
    assert_eq!(out[..2], pkt[..2], "reply ID differs");
    assert!(out[2] & 0x80 != 0, "QR not set");
    let parsed = parse_query(pkt);
    if transport == Transport::Udp {
        let limit = match parsed.as_ref().ok().and_then(|q| q.edns) {
            None => 512,
            Some(_) => 1232,
        };
        assert!(out.len() <= limit, "UDP reply of {} bytes", out.len());
    }
    if parsed.is_err() {
        assert_eq!(out.len(), 12, "FORMERR/NOTIMP must be the header alone");
        // An opcode ggond does not implement is NOTIMP whatever follows the
        // header (RFC 1035 4.1.1, as NSD, Knot and BIND); only a malformed
        // query, NOTIFY or UPDATE is FORMERR.
        let op = (pkt[2] >> 3) & 0xF;
        let want = if ggon::proto::codes::opcode::implemented(op) {
            1
        } else {
            4
        };
        assert_eq!(
            out[3] & 0xF,
            want,
            "unparsable message (opcode {op}): wrong rcode"
        );
    }
    if let Err(e) = Message::from_bytes(out) {
        panic!("our reply does not parse as DNS: {e}");
    }
}

/// The `query` target: any bytes, both transports.
pub fn query(data: &[u8]) {
    let snap = snapshot();
    let mut out = Vec::with_capacity(4096);
    for transport in [Transport::Udp, Transport::Tcp] {
        match respond(snap, data, transport, &mut out) {
            Action::Reply => check_reply(data, &out, transport),
            Action::Drop => assert!(
                data.len() < 12 || data[2] & 0x80 != 0,
                "dropped a query with a readable header"
            ),
            Action::Special(kind) => {
                // The plain refusal must always be buildable for a special
                // request (the protocol handler falls back to it).
                let r = refuse(kind, data).expect("special requests parse");
                assert_eq!(r[..2], data[..2]);
            }
        }
    }
}

/// The `update` target: what an UPDATE meets in ggond. The query path must
/// hand every opcode-5 packet with a readable question to the UPDATE
/// handler, and the handler's core — RFC 2136 prerequisite checks and the
/// prescan/apply of the update section (`ggon::publish::update`) — must never panic,
/// must leave the zone valid, and must leave it untouched when it rejects.
/// (TSIG verification and journaling around it are exercised by the BIND
/// interop tests.)
pub fn update(data: &[u8]) {
    if data.len() < 4 {
        return;
    }
    let mut pkt = data.to_vec();
    pkt[2] = (pkt[2] & 0x07) | (5 << 3); // QR = 0, opcode = UPDATE
    let mut out = Vec::with_capacity(4096);
    for transport in [Transport::Udp, Transport::Tcp] {
        match respond(snapshot(), &pkt, transport, &mut out) {
            Action::Special(Special::Update) => {}
            Action::Special(other) => panic!("opcode 5 gave {other:?}"),
            Action::Reply => {
                check_reply(&pkt, &out, transport);
                assert_eq!(
                    out[3] & 0xF,
                    1,
                    "an UPDATE answered directly must be FORMERR"
                );
            }
            Action::Drop => assert!(pkt.len() < 12, "dropped an UPDATE with a header"),
        }
    }
    let Ok(msg) = Message::from_bytes(&pkt) else {
        return;
    };
    let zone = snapshot().zones()[0].data.clone();
    let _ = ggon::publish::update::check_prerequisites(&zone, &msg);
    let cic = Name::from_ascii("cic.ggon.org.").unwrap();
    let mut edited = (*zone).clone();
    match ggon::publish::update::apply(&mut edited, &msg, &|n| n == &cic) {
        Ok(change) => {
            assert!(edited.check().is_ok(), "an accepted update broke the zone");
            assert!(
                !change
                    .added
                    .iter()
                    .chain(&change.removed)
                    .any(|r| r.name == cic),
                "an update touched a service name"
            );
        }
        Err(_) => assert!(edited == *zone, "a rejected update changed the zone"),
    }
}

/// A zone ggond accepted (from a file or a transfer) compiles, and the
/// compiled snapshot answers a query for its SOA with NOERROR and an answer,
/// and a query for its first record with a well-formed reply.
pub fn serves(zone: ZoneData) {
    let origin = zone.origin.clone();
    let first = zone
        .records()
        .find(|r| r.name != origin)
        .map(|r| (r.name.clone(), r.record_type()));
    let snap = Snapshot::new(vec![Arc::new(compile(Arc::new(zone)))]);
    let mut out = Vec::with_capacity(4096);
    let soa = query_bytes(&origin, hickory_proto::rr::RecordType::SOA);
    assert_eq!(
        respond(&snap, &soa, Transport::Tcp, &mut out),
        Action::Reply
    );
    check_header(&soa, &out, Transport::Tcp);
    assert_eq!(out[3] & 0xF, 0, "a served zone's SOA query is not NOERROR");
    assert!(
        out[6] != 0 || out[7] != 0,
        "a served zone's SOA query has no answer"
    );
    if let Some((name, rtype)) = first {
        let q = query_bytes(&name, rtype);
        if respond(&snap, &q, Transport::Udp, &mut out) == Action::Reply {
            check_header(&q, &out, Transport::Udp);
        }
    }
}

/// The invariants of a reply to a plain query that hold whatever the zone
/// holds: ID echoed, QR set, within 512 bytes over UDP. (Not that hickory
/// decodes it: it refuses RDATA of length 0 outside UPDATEs, which zone
/// files may hold, e.g. an empty APL, and ggond serves as written.)
fn check_header(pkt: &[u8], out: &[u8], transport: Transport) {
    assert!(out.len() >= 12, "reply shorter than a header");
    assert_eq!(out[..2], pkt[..2], "reply ID differs");
    assert!(out[2] & 0x80 != 0, "QR not set");
    if transport == Transport::Udp {
        assert!(out.len() <= 512, "UDP reply of {} bytes", out.len());
    }
}

/// A plain query for `name`/`rtype` (ID 0x6767, no EDNS).
pub fn query_bytes(name: &Name, rtype: hickory_proto::rr::RecordType) -> Vec<u8> {
    use hickory_proto::op::{MessageType, OpCode, Query};
    let mut m = Message::new(0x6767, MessageType::Query, OpCode::Query);
    m.add_query(Query::query(name.clone(), rtype));
    m.to_vec().expect("a query encodes")
}
