//! The nameserver as a client sees it: real UDP and TCP against a running ggond.

use std::io::Write;
use std::net::SocketAddr;
use std::time::Duration;

use crate::support::ggond::*;
use hickory_proto::op::{Message, ResponseCode};
use hickory_proto::rr::{RData, RecordType};

/// SOA TTL 3600, minimum 300: negative answers are cached min(3600, 300) = 300 s.
const AUTH_ZONE: &str = r#"$ORIGIN auth.test.
$TTL 3600
@       IN SOA  ns1 hostmaster 2026010101 3600 600 1209600 300
@       IN NS   ns1
@       IN NS   ns2
ns1     IN A    127.0.0.1
ns2     IN A    127.0.0.2
wiki 60 IN A    127.0.0.80
wiki    IN AAAA ::1
www     IN CNAME wiki
docs    IN CNAME www
a.b.c   IN A    127.0.0.3
*.apps  IN A    127.0.0.90
exists.apps IN TXT "here"
"#;

/// SOA TTL 60, minimum 900: negative answers are cached min(60, 900) = 60 s.
const NEG_ZONE: &str = "$ORIGIN neg.test.\n\
@ 60 IN SOA ns1 hostmaster 7 3600 600 86400 900\n\
@ 60 IN NS ns1\n\
ns1 60 IN A 127.0.0.1\n";

/// Eight TXT records of 200 bytes each: far over 512 bytes.
fn big_txt() -> String {
    (0..8)
        .map(|i| format!("big IN TXT \"{}{i}\"\n", "x".repeat(199)))
        .collect()
}

fn server() -> (Env, Ggond) {
    let zone = format!("{AUTH_ZONE}{}", big_txt());
    let mut env = Env::new(&[("auth.test", &zone), ("neg.test", NEG_ZONE)], "");
    let d = env.start();
    (env, d)
}

/// Ask over UDP and over TCP; both answers must agree, return the UDP one.
fn ask_both(dns: SocketAddr, name: &str, t: RecordType) -> Message {
    let u = ask_udp(dns, &query(name, t));
    let tc = ask_tcp(dns, &query(name, t));
    assert_eq!(
        u.metadata.response_code, tc.metadata.response_code,
        "{name}"
    );
    assert_eq!(
        u.metadata.authoritative, tc.metadata.authoritative,
        "{name}"
    );
    assert_eq!(u.answers, tc.answers, "{name}: UDP and TCP answers agree");
    assert_eq!(u.authorities, tc.authorities, "{name}");
    u
}

fn neg_soa_ttl(m: &Message) -> u32 {
    assert_eq!(m.authorities.len(), 1, "one SOA in AUTHORITY: {m:?}");
    let soa = &m.authorities[0];
    assert_eq!(soa.record_type(), RecordType::SOA);
    soa.ttl
}

#[test]
fn answers_are_authoritative_and_echo_the_case() {
    let (_env, d) = server();
    let m = ask_both(d.dns, "WiKi.AUTH.test.", RecordType::A);
    assert_eq!(m.metadata.response_code, ResponseCode::NoError);
    assert!(m.metadata.authoritative, "AA set");
    assert!(!m.metadata.truncation);
    assert_eq!(m.queries[0].name().to_string(), "WiKi.AUTH.test.");
    assert_eq!(m.answers.len(), 1);
    assert_eq!(m.answers[0].name.to_string(), "WiKi.AUTH.test.");
    assert_eq!(m.answers[0].ttl, 60);
    assert_eq!(a_records(&m), [ip("127.0.0.80")]);
}

#[test]
fn nxdomain_carries_the_soa_with_the_negative_ttl() {
    let (_env, d) = server();
    for (name, ttl) in [("nope.auth.test.", 300), ("nope.neg.test.", 60)] {
        let m = ask_both(d.dns, name, RecordType::A);
        assert_eq!(m.metadata.response_code, ResponseCode::NXDomain, "{name}");
        assert!(m.metadata.authoritative, "{name}");
        assert!(m.answers.is_empty(), "{name}");
        assert_eq!(neg_soa_ttl(&m), ttl, "{name}: min(SOA TTL, SOA minimum)");
    }
    // Below an existing leaf is NXDOMAIN too.
    let m = ask_both(d.dns, "x.a.b.c.auth.test.", RecordType::A);
    assert_eq!(m.metadata.response_code, ResponseCode::NXDomain);
}

#[test]
fn nodata_for_an_existing_name_and_an_empty_non_terminal() {
    let (_env, d) = server();
    let cases = [
        ("wiki.auth.test.", RecordType::MX),
        ("b.c.auth.test.", RecordType::A),
        ("c.auth.test.", RecordType::TXT),
        ("neg.test.", RecordType::MX),
    ];
    for (name, t) in cases {
        let m = ask_both(d.dns, name, t);
        assert_eq!(
            m.metadata.response_code,
            ResponseCode::NoError,
            "{name} {t}: NODATA, not NXDOMAIN"
        );
        assert!(m.metadata.authoritative, "{name}");
        assert!(m.answers.is_empty(), "{name}");
        let want = if name.ends_with("neg.test.") { 60 } else { 300 };
        assert_eq!(neg_soa_ttl(&m), want, "{name}");
    }
}

#[test]
fn names_outside_our_zones_are_refused() {
    let (_env, d) = server();
    for name in ["example.com.", "test.", "other.test.", "."] {
        let m = ask_both(d.dns, name, RecordType::A);
        assert_eq!(m.metadata.response_code, ResponseCode::Refused, "{name}");
        assert!(!m.metadata.authoritative, "{name}");
        assert!(m.answers.is_empty(), "{name}");
    }
}

#[test]
fn cname_chains_are_followed() {
    let (_env, d) = server();
    let m = ask_both(d.dns, "docs.auth.test.", RecordType::A);
    assert_eq!(m.metadata.response_code, ResponseCode::NoError);
    assert!(m.metadata.authoritative);
    let chain: Vec<(String, RecordType)> = m
        .answers
        .iter()
        .map(|r| (r.name.to_string(), r.record_type()))
        .collect();
    assert_eq!(
        chain,
        [
            ("docs.auth.test.".to_string(), RecordType::CNAME),
            ("www.auth.test.".to_string(), RecordType::CNAME),
            ("wiki.auth.test.".to_string(), RecordType::A),
        ]
    );
    assert_eq!(a_records(&m), [ip("127.0.0.80")]);
}

#[test]
fn wildcards_synthesize_but_never_shadow_an_existing_name() {
    let (_env, d) = server();
    let m = ask_both(d.dns, "Foo.apps.auth.test.", RecordType::A);
    assert_eq!(m.metadata.response_code, ResponseCode::NoError);
    assert!(m.metadata.authoritative);
    assert_eq!(a_records(&m), [ip("127.0.0.90")]);
    assert_eq!(
        m.answers[0].name.to_string(),
        "Foo.apps.auth.test.",
        "synthesized owner is the question name"
    );
    let m = ask_both(d.dns, "a.deeper.apps.auth.test.", RecordType::A);
    assert_eq!(a_records(&m), [ip("127.0.0.90")]);

    // exists.apps has a TXT: the wildcard does not answer its A.
    let m = ask_both(d.dns, "exists.apps.auth.test.", RecordType::A);
    assert_eq!(m.metadata.response_code, ResponseCode::NoError);
    assert!(m.answers.is_empty(), "no wildcard A at an existing name");
    assert_eq!(neg_soa_ttl(&m), 300);
    let m = ask_both(d.dns, "exists.apps.auth.test.", RecordType::TXT);
    assert_eq!(m.answers.len(), 1);
    assert!(matches!(&m.answers[0].data, RData::TXT(t) if &*t.txt_data[0] == b"here"));
}

#[test]
fn large_rrset_truncates_over_udp_and_is_complete_over_tcp() {
    let (_env, d) = server();
    let q = query("big.auth.test.", RecordType::TXT);
    let raw = udp_exchange(d.dns, &q.to_vec().unwrap(), Duration::from_secs(2)).expect("reply");
    assert!(raw.len() <= 512, "fits a plain UDP datagram: {}", raw.len());
    let m = Message::from_vec(&raw).unwrap();
    assert!(m.metadata.truncation, "TC=1 over UDP without EDNS");
    assert!(m.metadata.authoritative);
    assert_eq!(m.metadata.response_code, ResponseCode::NoError);

    // With EDNS 1232 it still does not fit: TC again, within 1232 bytes.
    let q = query_edns("big.auth.test.", RecordType::TXT, 1232, 0);
    let raw = udp_exchange(d.dns, &q.to_vec().unwrap(), Duration::from_secs(2)).expect("reply");
    assert!(raw.len() <= 1232);
    assert!(Message::from_vec(&raw).unwrap().metadata.truncation);

    let m = ask_tcp(d.dns, &query("big.auth.test.", RecordType::TXT));
    assert!(!m.metadata.truncation, "complete over TCP");
    assert_eq!(m.metadata.response_code, ResponseCode::NoError);
    assert_eq!(m.answers.len(), 8);
    for r in &m.answers {
        match &r.data {
            RData::TXT(t) => assert_eq!(t.txt_data[0].len(), 200),
            other => panic!("not TXT: {other:?}"),
        }
    }
}

#[test]
fn edns_version_1_gets_badvers() {
    let (_env, d) = server();
    let q = query_edns("wiki.auth.test.", RecordType::A, 1232, 1);
    let raw = udp_exchange(d.dns, &q.to_vec().unwrap(), Duration::from_secs(2)).expect("reply");
    let m = Message::from_vec(&raw).unwrap();
    // 16 is BADVERS in an OPT-carrying response (hickory names it BADSIG,
    // which shares the number), so compare the number.
    assert_eq!(u16::from(m.metadata.response_code), 16, "BADVERS");
    assert_eq!(raw[3] & 0xF, 0, "low rcode bits in the header");
    let edns = m.edns.as_ref().expect("OPT in the response");
    assert_eq!(edns.rcode_high(), 1, "extended rcode bits");
    assert_eq!(edns.version(), 0, "we answer with the version we support");
    assert!(m.answers.is_empty());
    // EDNS 0 is fine.
    let m = ask_udp(
        d.dns,
        &query_edns("wiki.auth.test.", RecordType::A, 1232, 0),
    );
    assert_eq!(m.metadata.response_code, ResponseCode::NoError);
    assert_eq!(a_records(&m), [ip("127.0.0.80")]);
}

#[test]
fn unknown_opcode_gets_notimp() {
    let (_env, d) = server();
    for opcode in [2u8, 3, 6, 15] {
        let mut pkt = query("wiki.auth.test.", RecordType::A).to_vec().unwrap();
        pkt[2] = (pkt[2] & 0x87) | (opcode << 3);
        let raw = udp_exchange(d.dns, &pkt, Duration::from_secs(2)).expect("reply");
        assert_eq!(raw[..2], pkt[..2], "ID echoed");
        assert_ne!(raw[2] & 0x80, 0, "QR set");
        assert_eq!((raw[2] >> 3) & 0xF, opcode, "opcode echoed");
        assert_eq!(raw[3] & 0xF, 4, "NOTIMP for opcode {opcode}");
    }
}

/// The server still answers a normal query over UDP and TCP.
fn still_alive(dns: SocketAddr) {
    let m = ask_udp(dns, &query("wiki.auth.test.", RecordType::A));
    assert_eq!(a_records(&m), [ip("127.0.0.80")]);
    let m = ask_tcp(dns, &query("wiki.auth.test.", RecordType::A));
    assert_eq!(a_records(&m), [ip("127.0.0.80")]);
}

/// A deterministic xorshift generator: the "random" packets are the same every run.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
}

#[test]
fn malformed_packets_never_kill_the_server() {
    let (_env, d) = server();
    let short = Duration::from_millis(500);
    let good = query("wiki.auth.test.", RecordType::A).to_vec().unwrap();

    // Truncated header: no answer at all.
    assert_eq!(udp_exchange(d.dns, &good[..5], short), None);
    assert_eq!(udp_exchange(d.dns, &[], short), None);

    // QDCOUNT = 2 with one question: FORMERR.
    let mut two = good.clone();
    two[5] = 2;
    let raw = udp_exchange(d.dns, &two, Duration::from_secs(2)).expect("reply");
    assert_eq!(raw[..2], two[..2], "ID echoed");
    assert_ne!(raw[2] & 0x80, 0, "QR set");
    assert_eq!(raw[3] & 0xF, 1, "FORMERR for QDCOUNT=2");

    // A label longer than 63 bytes: FORMERR.
    let mut long = good[..12].to_vec();
    long.push(64);
    long.extend([b'a'; 64]);
    long.extend([0, 0, 1, 0, 1]);
    let raw = udp_exchange(d.dns, &long, Duration::from_secs(2)).expect("reply");
    assert_eq!(raw[..2], long[..2]);
    assert_eq!(raw[3] & 0xF, 1, "FORMERR for a 64-byte label");

    // Question cut short: FORMERR.
    let raw = udp_exchange(d.dns, &good[..good.len() - 3], Duration::from_secs(2)).expect("reply");
    assert_eq!(raw[3] & 0xF, 1);

    // Random bytes, random lengths, over UDP and TCP.
    let mut rng = Rng(0x9E37_79B9_7F4A_7C15);
    let sock = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    for i in 0..300 {
        let len = (rng.next() % 600) as usize;
        let mut pkt: Vec<u8> = (0..len).map(|_| rng.next() as u8).collect();
        if i % 3 == 0 && pkt.len() >= 12 {
            // Make it look like a query with one question, so parsing goes deeper.
            pkt[2] &= 0x7F;
            pkt[4] = 0;
            pkt[5] = 1;
        }
        sock.send_to(&pkt, d.dns).unwrap();
    }
    for _ in 0..20 {
        let mut s = tcp_connect(d.dns);
        let len = (rng.next() % 300) as usize;
        let body: Vec<u8> = (0..len).map(|_| rng.next() as u8).collect();
        // A random length prefix (maybe longer than what follows), then close.
        let _ = s.write_all(&(rng.next() as u16).to_be_bytes());
        let _ = s.write_all(&body);
    }
    still_alive(d.dns);

    // A bad message on a TCP connection does not stop the next valid one on it.
    let mut s = tcp_connect(d.dns);
    s.write_all(&tcp_frame(&two)).unwrap();
    let r = tcp_read(&mut s).expect("FORMERR over TCP");
    assert_eq!(r[3] & 0xF, 1);
    s.write_all(&tcp_frame(&good)).unwrap();
    let r = Message::from_vec(&tcp_read(&mut s).expect("answer")).unwrap();
    assert_eq!(a_records(&r), [ip("127.0.0.80")]);
    assert!(
        !d.log_text().contains("panicked"),
        "no panic in the log: {}",
        d.log_text()
    );
}

#[test]
fn tcp_pipelined_queries_are_answered_in_order() {
    let (_env, d) = server();
    let q1 = query("big.auth.test.", RecordType::TXT);
    let q2 = query("wiki.auth.test.", RecordType::A);
    let q3 = query("nope.auth.test.", RecordType::A);
    let mut s = tcp_connect(d.dns);
    // All three in one write: the server reads them off one stream.
    let mut buf = Vec::new();
    for q in [&q1, &q2, &q3] {
        buf.extend(tcp_frame(&q.to_vec().unwrap()));
    }
    s.write_all(&buf).unwrap();
    let r1 = Message::from_vec(&tcp_read(&mut s).unwrap()).unwrap();
    let r2 = Message::from_vec(&tcp_read(&mut s).unwrap()).unwrap();
    let r3 = Message::from_vec(&tcp_read(&mut s).unwrap()).unwrap();
    assert_eq!(r1.metadata.id, q1.metadata.id);
    assert_eq!(r1.answers.len(), 8);
    assert_eq!(r2.metadata.id, q2.metadata.id);
    assert_eq!(a_records(&r2), [ip("127.0.0.80")]);
    assert_eq!(r3.metadata.id, q3.metadata.id);
    assert_eq!(r3.metadata.response_code, ResponseCode::NXDomain);
}

/// A header with an opcode ggond does not implement and no question gets
/// NOTIMP (RFC 1035 4.1.1), as NSD, Knot and BIND answer, not FORMERR.
#[test]
fn unimplemented_opcode_without_a_question_gets_notimp() {
    let (_env, d) = server();
    for (opcode, rcode) in [(15u8, 4u8), (2, 4), (0, 1)] {
        let mut pkt = vec![0x4a, 0x11, opcode << 3, 0, 0, 0, 0, 0, 0, 0, 0, 0];
        pkt[3] = 0;
        let resp = udp_exchange(d.dns, &pkt, Duration::from_secs(2)).expect("an answer");
        assert_eq!(resp.len(), 12, "header only");
        assert_eq!(resp[2] & 0x80, 0x80, "QR set");
        assert_eq!((resp[2] >> 3) & 0xF, opcode, "opcode echoed");
        assert_eq!(resp[3] & 0xF, rcode, "opcode {opcode}");
    }
}
