//! The query path: one packet in, one response out, as a chain of small steps.
//!
//! parse (wire.rs) → opcode/class/type screening → EDNS → snapshot lookup →
//! assemble (header + echoed question + precomputed body + OPT) → size limit
//! (TC=1 over UDP when it does not fit).
//!
//! Owns: the bytes of every response to a standard query. It must not block,
//! allocate per packet (it writes into a caller-owned buffer), log per packet,
//! or change any state: UPDATE, NOTIFY and zone transfers are handed back to
//! the caller as [`Action::Special`].

use super::wire::{parse_query, Edns, Query, Reject, HEADER_LEN, OPT_LEN};
use crate::proto::codes::{opcode, rcode, rtype};
use crate::snapshot::{Lookup, Prepared, Proofs, Snapshot};

/// The largest UDP response we send (the DNS flag day 2020 default).
pub const MAX_UDP: u16 = 1232;

/// Extended rcode (needs OPT): BADVERS = 16.
const EXT_BADVERS: u8 = 1;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Transport {
    Udp,
    Tcp,
}

/// Requests the query path does not answer itself.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Special {
    Notify,
    Update,
    /// AXFR or IXFR.
    Transfer,
    /// A query signed with TSIG.
    Signed,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    /// `out` holds the response (its rcode is in the last 4 bits of byte 3).
    Reply,
    /// Send nothing.
    Drop,
    /// Hand the packet to the handler for this kind of request.
    Special(Special),
}

/// Answer one packet into `out`.
pub fn respond(snap: &Snapshot, pkt: &[u8], transport: Transport, out: &mut Vec<u8>) -> Action {
    respond_from(snap, pkt, transport, None, out)
}

/// [`respond`] for a packet from `src` (per-region names answer by it).
pub fn respond_from(
    snap: &Snapshot,
    pkt: &[u8],
    transport: Transport,
    src: Option<std::net::IpAddr>,
    out: &mut Vec<u8>,
) -> Action {
    out.clear();
    let q = match parse_query(pkt) {
        Ok(q) => q,
        Err(Reject::Drop) => return Action::Drop,
        Err(Reject::FormErr) => {
            // An opcode we do not implement is NOTIMP whatever follows the
            // header (RFC 1035 4.1.1), as NSD, Knot and BIND answer; only a
            // malformed query, NOTIFY or UPDATE is FORMERR.
            let op = (pkt[2] >> 3) & 0xF;
            let rc = if opcode::implemented(op) {
                rcode::FORMERR
            } else {
                rcode::NOTIMP
            };
            header_only(pkt, rc, out);
            return Action::Reply;
        }
    };
    match q.opcode {
        opcode::QUERY => {}
        opcode::NOTIFY => return Action::Special(Special::Notify),
        opcode::UPDATE => return Action::Special(Special::Update),
        _ => {
            error(pkt, &q, rcode::NOTIMP, out);
            return Action::Reply;
        }
    }
    if let Some(e) = q.edns {
        if e.version > 0 {
            badvers(pkt, &q, e, out);
            return Action::Reply;
        }
    }
    // Transfers check their own TSIG; other signed queries go to the slow path.
    if matches!(q.qtype, rtype::IXFR | rtype::AXFR) {
        return Action::Special(Special::Transfer);
    }
    if q.tsig {
        return Action::Special(Special::Signed);
    }
    match q.qtype {
        // OPT and TSIG are not questions; MAILA/MAILB are obsolete.
        rtype::OPT | rtype::TSIG => {
            error(pkt, &q, rcode::FORMERR, out);
            return Action::Reply;
        }
        rtype::MAILB | rtype::MAILA => {
            error(pkt, &q, rcode::NOTIMP, out);
            return Action::Reply;
        }
        _ => {}
    }
    if q.qclass != 1 && q.qclass != 255 {
        error(pkt, &q, rcode::REFUSED, out);
        return Action::Reply;
    }
    // Geographic answers (geo.rs): the client's region may pick the body.
    let dnssec = q.edns.is_some_and(|e| e.do_bit);
    let geo = super::geo::locate(snap, pkt, &q, src, dnssec);
    if geo.formerr {
        error(pkt, &q, rcode::FORMERR, out);
        return Action::Reply;
    }
    // The room the answer may take: what the transport allows, less the
    // ECS option that goes back in the OPT (so one size check decides TC).
    let room = limit(&q, transport).saturating_sub(geo.ecs_len());
    match geo
        .answer
        .map_or_else(|| snap.lookup(&q.qname, q.qtype, dnssec), Lookup::Answer)
    {
        Lookup::Answer(p) => assemble(pkt, &q, p, &[None; 3], room, out),
        Lookup::Denial(p, proofs) => assemble(pkt, &q, p, &proofs, room, out),
        Lookup::Dname(d) => super::dname::dname(snap, pkt, &q, d, room, out),
        Lookup::NotAuth => error(pkt, &q, rcode::REFUSED, out),
    }
    super::geo::append_ecs(&geo, out);
    Action::Reply
}

fn limit(q: &Query, transport: Transport) -> usize {
    match (transport, q.edns) {
        (Transport::Tcp, _) => 65535,
        (Transport::Udp, None) => 512,
        (Transport::Udp, Some(e)) => e.payload.clamp(512, MAX_UDP) as usize,
    }
}

pub(super) fn header(
    out: &mut Vec<u8>,
    q: &Query,
    aa: bool,
    tc: bool,
    rcode: u8,
    counts: [u16; 4],
) {
    let mut flags: u16 = 0x8000 | (u16::from(q.opcode) << 11) | (q.flags & 0x0110);
    if aa {
        flags |= 0x0400;
    }
    if tc {
        flags |= 0x0200;
    }
    flags |= u16::from(rcode & 0xF);
    out.extend_from_slice(&q.id.to_be_bytes());
    out.extend_from_slice(&flags.to_be_bytes());
    for c in counts {
        out.extend_from_slice(&c.to_be_bytes());
    }
}

pub(super) fn opt(out: &mut Vec<u8>, e: Edns, ext_rcode: u8) {
    out.push(0);
    out.extend_from_slice(&41u16.to_be_bytes());
    out.extend_from_slice(&MAX_UDP.to_be_bytes());
    out.push(ext_rcode);
    out.push(0);
    out.extend_from_slice(&(if e.do_bit { 0x8000u16 } else { 0 }).to_be_bytes());
    out.extend_from_slice(&[0, 0]);
}

/// Header, question, the precomputed body, then any denial proofs (which
/// extend the authority section: such bodies have no additional section).
fn assemble(
    pkt: &[u8],
    q: &Query,
    p: &Prepared,
    proofs: &Proofs<'_>,
    room: usize,
    out: &mut Vec<u8>,
) {
    let question = &pkt[HEADER_LEN..q.question_end];
    let edns = q.edns.is_some() as u16;
    let (extra_len, extra_count) = proofs
        .iter()
        .flatten()
        .fold((0, 0), |(l, c), p| (l + p.wire.len(), c + p.count));
    let size = HEADER_LEN + question.len() + p.body.len() + extra_len + OPT_LEN * edns as usize;
    if size > room {
        header(out, q, p.aa, true, p.rcode, [1, 0, 0, edns]);
        out.extend_from_slice(question);
    } else {
        let [an, ns, ar] = p.counts;
        debug_assert!(extra_count == 0 || ar == 0);
        header(
            out,
            q,
            p.aa,
            false,
            p.rcode,
            [1, an, ns + extra_count, ar + edns],
        );
        out.extend_from_slice(question);
        out.extend_from_slice(&p.body);
        for pr in proofs.iter().flatten() {
            out.extend_from_slice(&pr.wire);
        }
    }
    if let Some(e) = q.edns {
        opt(out, e, 0);
    }
}

/// An answer with no records: the question echoed, the rcode set.
pub fn error(pkt: &[u8], q: &Query, rcode: u8, out: &mut Vec<u8>) {
    out.clear();
    let edns = q.edns.is_some() as u16;
    header(out, q, false, false, rcode, [1, 0, 0, edns]);
    out.extend_from_slice(&pkt[HEADER_LEN..q.question_end]);
    if let Some(e) = q.edns {
        opt(out, e, 0);
    }
}

fn badvers(pkt: &[u8], q: &Query, e: Edns, out: &mut Vec<u8>) {
    header(out, q, false, false, 0, [1, 0, 0, 1]);
    out.extend_from_slice(&pkt[HEADER_LEN..q.question_end]);
    opt(out, e, EXT_BADVERS);
}

/// For packets whose question could not be read: the header alone, no sections.
pub fn header_only(pkt: &[u8], rcode: u8, out: &mut Vec<u8>) {
    out.clear();
    let flags = u16::from_be_bytes([pkt[2], pkt[3]]);
    let flags = 0x8000 | (flags & 0x7900) | u16::from(rcode);
    out.extend_from_slice(&pkt[..2]);
    out.extend_from_slice(&flags.to_be_bytes());
    out.extend_from_slice(&[0; 8]);
}

/// The response code in a response built by this module.
pub fn rcode_of(resp: &[u8]) -> u8 {
    resp.get(3).map_or(0, |b| b & 0xF)
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use hickory_proto::op::{
        Edns as HEdns, Message, MessageType, OpCode, Query as HQuery, ResponseCode,
    };
    use hickory_proto::rr::{Name, RData, RecordType};
    use hickory_proto::serialize::binary::BinDecodable;

    use super::*;
    use crate::proto::zone::ZoneData;
    use crate::snapshot::{compile, Snapshot};

    const ZONE: &str = "$ORIGIN ggon.org.\n$TTL 3600\n\
@ IN SOA ns1 hostmaster 7 3600 600 86400 300\n\
@ IN NS ns1\n@ IN NS ns2\n@ IN MX 10 mail\n\
ns1 IN A 127.0.0.1\nns2 IN A 127.0.0.2\nmail IN A 127.0.0.25\n\
www IN CNAME wiki\nwiki 60 IN A 127.0.0.80\n\
chain IN CNAME www\nloop1 IN CNAME loop2\nloop2 IN CNAME loop1\n\
dangling IN CNAME nothere\nout IN CNAME example.com.\n\
a.b.c IN A 127.0.0.3\n\
*.apps IN A 127.0.0.90\nexists.apps IN TXT \"hi\"\n\
sub IN NS ns.sub\nns.sub IN A 127.0.0.53\n\
big IN TXT \"aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa1\"\n\
big IN TXT \"aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa2\"\n\
big IN TXT \"aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa3\"\n\
big IN TXT \"aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa4\"\n\
big IN TXT \"aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa5\"\n";

    fn snap() -> Snapshot {
        let origin = Name::from_ascii("ggon.org.").unwrap();
        let z = ZoneData::parse(ZONE, None, &origin).unwrap();
        Snapshot::new(vec![Arc::new(compile(Arc::new(z)))])
    }

    fn ask_with(
        s: &Snapshot,
        name: &str,
        t: RecordType,
        edns: Option<u16>,
        tr: Transport,
    ) -> Message {
        let mut m = Message::new(0x4242, MessageType::Query, OpCode::Query);
        m.metadata.recursion_desired = true;
        m.add_query(HQuery::query(Name::from_ascii(name).unwrap(), t));
        if let Some(size) = edns {
            let mut e = HEdns::new();
            e.set_max_payload(size);
            m.set_edns(e);
        }
        let pkt = m.to_vec().unwrap();
        let mut out = Vec::new();
        assert_eq!(respond(s, &pkt, tr, &mut out), Action::Reply);
        Message::from_bytes(&out).expect("our response parses")
    }

    fn ask(s: &Snapshot, name: &str, t: RecordType) -> Message {
        ask_with(s, name, t, None, Transport::Udp)
    }

    fn addrs(m: &Message) -> Vec<String> {
        m.answers
            .iter()
            .filter_map(|r| match &r.data {
                RData::A(a) => Some(a.to_string()),
                _ => None,
            })
            .collect()
    }

    fn neg_soa_ttl(m: &Message) -> Option<u32> {
        m.authorities
            .iter()
            .find(|r| r.record_type() == RecordType::SOA)
            .map(|r| r.ttl)
    }

    #[test]
    fn answers_a_with_aa_and_echoes_case() {
        let m = ask(&snap(), "WiKi.GGON.org.", RecordType::A);
        assert_eq!(m.metadata.response_code, ResponseCode::NoError);
        assert!(m.metadata.authoritative);
        assert!(m.metadata.recursion_desired);
        assert!(!m.metadata.recursion_available);
        assert_eq!(m.metadata.id, 0x4242);
        assert_eq!(m.queries[0].name().to_string(), "WiKi.GGON.org.");
        assert_eq!(m.answers[0].name.to_string(), "WiKi.GGON.org.");
        assert_eq!(addrs(&m), vec!["127.0.0.80"]);
        assert_eq!(m.answers[0].ttl, 60);
    }

    #[test]
    fn nxdomain_and_nodata_carry_the_soa_with_negative_ttl() {
        let s = snap();
        let m = ask(&s, "nope.ggon.org.", RecordType::A);
        assert_eq!(m.metadata.response_code, ResponseCode::NXDomain);
        assert!(m.metadata.authoritative);
        assert!(m.answers.is_empty());
        assert_eq!(neg_soa_ttl(&m), Some(300));
        let m = ask(&s, "wiki.ggon.org.", RecordType::MX);
        assert_eq!(m.metadata.response_code, ResponseCode::NoError);
        assert!(m.answers.is_empty());
        assert_eq!(neg_soa_ttl(&m), Some(300));
        // b.c.ggon.org is an empty non-terminal: NODATA, not NXDOMAIN.
        for ent in ["b.c.ggon.org.", "c.ggon.org."] {
            let m = ask(&s, ent, RecordType::A);
            assert_eq!(m.metadata.response_code, ResponseCode::NoError, "{ent}");
            assert_eq!(neg_soa_ttl(&m), Some(300));
        }
        // below an existing leaf: NXDOMAIN
        let m = ask(&s, "x.a.b.c.ggon.org.", RecordType::A);
        assert_eq!(m.metadata.response_code, ResponseCode::NXDomain);
    }

    #[test]
    fn cname_chains_are_followed_in_zone() {
        let s = snap();
        let m = ask(&s, "chain.ggon.org.", RecordType::A);
        let types: Vec<_> = m.answers.iter().map(|r| r.record_type()).collect();
        assert_eq!(
            types,
            vec![RecordType::CNAME, RecordType::CNAME, RecordType::A]
        );
        assert_eq!(addrs(&m), vec!["127.0.0.80"]);
        // CNAME then NODATA: the SOA goes in AUTHORITY.
        let m = ask(&s, "www.ggon.org.", RecordType::AAAA);
        assert_eq!(m.answers.len(), 1);
        assert_eq!(neg_soa_ttl(&m), Some(300));
        // CNAME to a name that does not exist: NXDOMAIN with the CNAME.
        let m = ask(&s, "dangling.ggon.org.", RecordType::A);
        assert_eq!(m.metadata.response_code, ResponseCode::NXDomain);
        assert_eq!(m.answers.len(), 1);
        // A loop ends, out-of-zone targets are left to the resolver.
        let m = ask(&s, "loop1.ggon.org.", RecordType::A);
        assert_eq!(m.answers.len(), 2);
        let m = ask(&s, "out.ggon.org.", RecordType::A);
        assert_eq!(m.answers.len(), 1);
        assert_eq!(m.metadata.response_code, ResponseCode::NoError);
        // Asking for the CNAME itself gives just the CNAME.
        let m = ask(&s, "www.ggon.org.", RecordType::CNAME);
        assert_eq!(m.answers.len(), 1);
    }

    #[test]
    fn wildcards_follow_rfc4592() {
        let s = snap();
        let m = ask(&s, "Foo.apps.ggon.org.", RecordType::A);
        assert_eq!(addrs(&m), vec!["127.0.0.90"]);
        assert_eq!(m.answers[0].name.to_string(), "Foo.apps.ggon.org.");
        let m = ask(&s, "deep.foo.apps.ggon.org.", RecordType::A);
        assert_eq!(addrs(&m), vec!["127.0.0.90"]);
        // A name that exists is never answered by the wildcard.
        let m = ask(&s, "exists.apps.ggon.org.", RecordType::A);
        assert!(m.answers.is_empty());
        assert_eq!(m.metadata.response_code, ResponseCode::NoError);
        // ...nor names below it (its closest encloser is exists.apps).
        let m = ask(&s, "x.exists.apps.ggon.org.", RecordType::A);
        assert_eq!(m.metadata.response_code, ResponseCode::NXDomain);
        // Synthesized NODATA.
        let m = ask(&s, "foo.apps.ggon.org.", RecordType::AAAA);
        assert_eq!(m.metadata.response_code, ResponseCode::NoError);
        assert_eq!(neg_soa_ttl(&m), Some(300));
    }

    #[test]
    fn refused_outside_our_zones() {
        let m = ask(&snap(), "example.com.", RecordType::A);
        assert_eq!(m.metadata.response_code, ResponseCode::Refused);
        assert!(!m.metadata.authoritative);
    }

    #[test]
    fn referral_below_a_cut() {
        let s = snap();
        for name in ["sub.ggon.org.", "host.sub.ggon.org.", "ns.sub.ggon.org."] {
            let m = ask(&s, name, RecordType::A);
            assert!(!m.metadata.authoritative, "{name}");
            assert!(m.answers.is_empty());
            assert_eq!(m.authorities[0].record_type(), RecordType::NS);
            assert_eq!(m.additionals.len(), 1, "glue for {name}");
        }
    }

    #[test]
    fn mx_gets_additional_addresses_and_any_is_minimal() {
        let s = snap();
        let m = ask(&s, "ggon.org.", RecordType::MX);
        assert_eq!(m.answers.len(), 1);
        assert_eq!(m.additionals.len(), 1);
        let m = ask(&s, "ggon.org.", RecordType::ANY);
        let types: std::collections::HashSet<_> =
            m.answers.iter().map(|r| r.record_type()).collect();
        assert_eq!(types.len(), 1, "RFC 8482: one RRset for ANY");
    }

    #[test]
    fn truncates_over_udp_and_edns_raises_the_limit() {
        let s = snap();
        let m = ask(&s, "big.ggon.org.", RecordType::TXT);
        assert!(m.metadata.truncation);
        assert!(m.answers.is_empty());
        let m = ask_with(&s, "big.ggon.org.", RecordType::TXT, None, Transport::Tcp);
        assert!(!m.metadata.truncation);
        assert_eq!(m.answers.len(), 5);
        let m = ask_with(
            &s,
            "big.ggon.org.",
            RecordType::TXT,
            Some(1232),
            Transport::Udp,
        );
        assert!(!m.metadata.truncation);
        assert_eq!(m.answers.len(), 5);
        assert_eq!(m.edns.as_ref().unwrap().max_payload(), MAX_UDP);
    }

    #[test]
    fn badvers_notimp_formerr() {
        let s = snap();
        let mut m = Message::new(1, MessageType::Query, OpCode::Query);
        m.add_query(HQuery::query(
            Name::from_ascii("wiki.ggon.org.").unwrap(),
            RecordType::A,
        ));
        let mut e = HEdns::new();
        e.set_version(1);
        m.set_edns(e);
        let mut out = Vec::new();
        respond(&s, &m.to_vec().unwrap(), Transport::Udp, &mut out);
        let r = Message::from_bytes(&out).unwrap();
        // 16 is BADVERS in an OPT (hickory names it BADSIG, the TSIG meaning).
        assert_eq!(u16::from(r.metadata.response_code), 16);

        let mut pkt = ask_pkt("wiki.ggon.org.");
        pkt[2] = (pkt[2] & 0x87) | (2 << 3); // opcode STATUS
        respond(&s, &pkt, Transport::Udp, &mut out);
        assert_eq!(rcode_of(&out), rcode::NOTIMP);

        // Header only (no question) with an opcode we do not implement:
        // NOTIMP, not FORMERR; with one we do: FORMERR.
        for (op, want) in [
            (2u8, rcode::NOTIMP),
            (15, rcode::NOTIMP),
            (0, rcode::FORMERR),
            (5, rcode::FORMERR),
        ] {
            let mut pkt = ask_pkt("wiki.ggon.org.")[..12].to_vec();
            pkt[2] = (pkt[2] & 0x87) | (op << 3);
            pkt[5] = 0; // QDCOUNT = 0
            respond(&s, &pkt, Transport::Udp, &mut out);
            assert_eq!(rcode_of(&out), want, "opcode {op}");
            assert_eq!((out[2] >> 3) & 0xF, op, "opcode echoed");
        }

        let mut pkt = ask_pkt("wiki.ggon.org.");
        pkt[5] = 2; // QDCOUNT = 2
        respond(&s, &pkt, Transport::Udp, &mut out);
        assert_eq!(rcode_of(&out), rcode::FORMERR);
        assert_eq!(&out[..2], &pkt[..2]);
    }

    fn ask_pkt(name: &str) -> Vec<u8> {
        let mut m = Message::new(7, MessageType::Query, OpCode::Query);
        m.add_query(HQuery::query(
            Name::from_ascii(name).unwrap(),
            RecordType::A,
        ));
        m.to_vec().unwrap()
    }
}
