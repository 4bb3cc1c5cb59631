//! Malformed input: the query path never panics, answers what it must
//! (FORMERR for a readable header with a bad body), drops what it must, and
//! the running server keeps serving after thousands of bad packets over UDP
//! and TCP.

use std::io::Write;
use std::net::{Shutdown, SocketAddr, UdpSocket};
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::PathBuf;
use std::time::{Duration, Instant};

use crate::support::reliability::*;
use ggon::dns::{respond, Action, Transport};
use hickory_proto::op::Message;
use hickory_proto::serialize::binary::BinDecodable;

fn corpus_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("fuzz/corpus/query")
}

/// The checked-in fuzz seeds are exactly what `seed_corpus()` generates.
/// Regenerate with `GGON_WRITE_CORPUS=1 cargo test --test reliability_malformed seed_corpus`.
#[test]
fn seed_corpus_matches_checked_in_files() {
    let dir = corpus_dir();
    let write = std::env::var_os("GGON_WRITE_CORPUS").is_some();
    if write {
        std::fs::create_dir_all(&dir).unwrap();
    }
    let cases = seed_corpus();
    assert!(cases.len() >= 12);
    for c in cases {
        let path = dir.join(&c.name);
        if write {
            std::fs::write(&path, &c.packet).unwrap();
        }
        let on_disk = std::fs::read(&path).unwrap_or_else(|e| {
            panic!("{}: {e} (regenerate: GGON_WRITE_CORPUS=1)", path.display())
        });
        assert_eq!(on_disk, c.packet, "{} is stale", path.display());
    }
}

fn hex(p: &[u8]) -> String {
    p.iter().map(|b| format!("{b:02x}")).collect()
}

/// Check a response against what was expected of the packet.
fn check_reply(c: &Case, resp: &[u8]) -> Result<(), String> {
    if resp.len() < 12 {
        return Err(format!("response of {} bytes", resp.len()));
    }
    if resp[..2] != c.packet[..2] {
        return Err("response ID differs".into());
    }
    if resp[2] & 0x80 == 0 {
        return Err("QR not set in the response".into());
    }
    match c.expect {
        Expect::Drop => Err("answered a packet that must be dropped".into()),
        Expect::Rcode(r) if rcode_of(resp) != r => {
            Err(format!("rcode {} instead of {r}", rcode_of(resp)))
        }
        _ => Ok(()),
    }
}

/// Every packet the network tests send: the seeds, the generated malformed
/// set (hand-written expectations) and 2,000 random plus 1,000 mutated
/// packets (expectation from the parser's classification).
fn all_cases() -> Vec<Case> {
    let mut cases = seed_corpus();
    cases.extend(malformed_set());
    for (i, p) in random_packets(0x6767_6f6e, 2000).into_iter().enumerate() {
        cases.push(Case {
            name: format!("random #{i}"),
            expect: classify(&p),
            packet: p,
        });
    }
    for (i, p) in mutated_packets(0x5eed, 1000).into_iter().enumerate() {
        cases.push(Case {
            name: format!("mutated #{i}"),
            expect: classify(&p),
            packet: p,
        });
    }
    cases
}

/// The hand-written expectations agree with the in-process query path, and
/// `respond` survives 100,000 random and mutated packets on both transports
/// with well-formed output: a reply echoes the ID, has QR set, fits the UDP
/// limit and parses as a DNS message.
#[test]
fn respond_survives_100k_random_and_mutated_packets() {
    let snap = snapshot();
    let mut out = Vec::with_capacity(4096);
    for c in seed_corpus().into_iter().chain(malformed_set()) {
        for t in [Transport::Udp, Transport::Tcp] {
            let reply = match respond(&snap, &c.packet, t, &mut out) {
                Action::Reply => Some(out.clone()),
                Action::Drop => None,
                // UPDATE, NOTIFY, transfers and signed queries go to the
                // daemon's protocol handler; their answers are checked over
                // real sockets in server_survives_malformed_packets_over_udp_and_tcp.
                Action::Special(_) => continue,
            };
            match (&reply, c.expect) {
                (None, Expect::Drop) => {}
                (Some(r), _) => check_reply(&c, r).unwrap_or_else(|e| panic!("{}: {e}", c.name)),
                (None, _) => panic!("{}: dropped", c.name),
            }
        }
    }

    let mut packets = random_packets(1, 50_000);
    packets.extend(mutated_packets(2, 50_000));
    let mut counts = [0usize; 3];
    let started = Instant::now();
    for p in &packets {
        for t in [Transport::Udp, Transport::Tcp] {
            let action = catch_unwind(AssertUnwindSafe(|| respond(&snap, p, t, &mut out)))
                .unwrap_or_else(|_| panic!("respond panicked on {t:?} packet {}", hex(p)));
            let parsed = ggon::dns::wire::parse_query(p);
            match action {
                Action::Drop => {
                    counts[0] += 1;
                    assert_eq!(classify(p), Expect::Drop, "dropped {}", hex(p));
                }
                Action::Special(kind) => {
                    counts[2] += 1;
                    assert!(parsed.is_ok(), "special for unparsable {}", hex(p));
                    let r = ggon::dns::refuse(kind, p).expect("refusal");
                    assert_eq!(r[..2], p[..2]);
                }
                Action::Reply => {
                    counts[1] += 1;
                    assert!(out.len() >= 12 && out[..2] == p[..2] && out[2] & 0x80 != 0);
                    if t == Transport::Udp {
                        let limit = match parsed.as_ref().ok().and_then(|q| q.edns) {
                            None => 512,
                            Some(_) => 1232,
                        };
                        assert!(
                            out.len() <= limit,
                            "{} bytes over UDP for {}",
                            out.len(),
                            hex(p)
                        );
                    }
                    if parsed.is_err() {
                        assert_eq!(out.len(), 12, "FORMERR/NOTIMP is the header alone");
                        assert_eq!(Expect::Rcode(rcode_of(&out)), classify(p));
                    }
                    if let Err(e) = Message::from_bytes(&out) {
                        panic!(
                            "our response does not parse ({e}): query {} response {}",
                            hex(p),
                            hex(&out)
                        );
                    }
                }
            }
        }
    }
    println!(
        "respond: {} packets x 2 transports in {:?}: {} dropped, {} replies, {} special",
        packets.len(),
        started.elapsed(),
        counts[0],
        counts[1],
        counts[2]
    );
    // The mix must reach every outcome, or it is not testing much.
    assert!(counts.iter().all(|&n| n > 1000), "{counts:?}");
}

fn udp_phase(addr: SocketAddr, cases: &[Case]) -> Vec<String> {
    let mut failures = Vec::new();
    let sock = UdpSocket::bind("127.0.0.1:0").unwrap();
    sock.set_read_timeout(Some(Duration::from_secs(2))).unwrap();
    let mut buf = vec![0u8; 65535];
    let mut strays = 0;
    for c in cases {
        sock.send_to(&c.packet, addr).unwrap();
        if c.expect == Expect::Drop {
            continue;
        }
        // Wait for the reply with this packet's ID; anything else is a reply
        // to an earlier packet that should have got none.
        loop {
            match sock.recv_from(&mut buf) {
                Ok((n, _)) if n >= 2 && buf[..2] == c.packet[..2] => {
                    if let Err(e) = check_reply(c, &buf[..n]) {
                        failures.push(format!("udp {}: {e}", c.name));
                    }
                    break;
                }
                Ok(_) => strays += 1,
                Err(_) => {
                    failures.push(format!("udp {}: no reply in 2s", c.name));
                    break;
                }
            }
        }
    }
    sock.set_read_timeout(Some(Duration::from_millis(300)))
        .unwrap();
    while sock.recv_from(&mut buf).is_ok() {
        strays += 1;
    }
    if strays > 0 {
        failures.push(format!(
            "udp: {strays} replies to packets that must be dropped"
        ));
    }
    failures
}

fn tcp_phase(addr: SocketAddr, cases: &[Case]) -> Vec<String> {
    let mut failures = Vec::new();
    let mut conn = tcp_connect(addr);
    let mut connections = 1;
    for c in cases {
        if tcp_send(&mut conn, &c.packet).is_err() {
            failures.push(format!("tcp {}: write failed", c.name));
            conn = tcp_connect(addr);
            connections += 1;
            continue;
        }
        if c.expect == Expect::Drop {
            // The server closes a connection that sends a non-query.
            if closed_within(&mut conn, Duration::from_secs(3)).is_none() {
                failures.push(format!("tcp {}: connection not closed", c.name));
            }
            conn = tcp_connect(addr);
            connections += 1;
            continue;
        }
        match tcp_read(&mut conn) {
            Ok(r) => {
                if let Err(e) = check_reply(c, &r) {
                    failures.push(format!("tcp {}: {e}", c.name));
                }
            }
            Err(e) => {
                failures.push(format!("tcp {}: {e}", c.name));
                conn = tcp_connect(addr);
                connections += 1;
            }
        }
    }
    println!(
        "tcp phase: {} packets over {connections} connections",
        cases.len()
    );
    failures
}

/// Stream-level abuse only TCP has: lying length prefixes, half messages,
/// a stream of garbage. Each connection must be closed by the server once
/// the client stops sending.
fn tcp_stream_abuse(addr: SocketAddr) -> Vec<String> {
    let mut failures = Vec::new();
    let mut rng = Rng::new(99);
    let streams: Vec<(&str, Vec<u8>)> = vec![
        ("length 65535, 100 bytes sent", {
            let mut v = vec![0xFF, 0xFF];
            v.extend(rng.bytes(100));
            v
        }),
        ("one byte of the length", vec![0x00]),
        ("length 0", vec![0, 0]),
        ("64 KiB of garbage", rng.bytes(64 * 1024)),
        ("valid query then half of another", {
            let mut v = tcp_frame(&query_msg(
                9,
                "wiki.ggon.org.",
                hickory_proto::rr::RecordType::A,
                None,
            ));
            v.extend_from_slice(&[0, 40, 1, 2, 3]);
            v
        }),
    ];
    for (name, bytes) in streams {
        let mut s = tcp_connect(addr);
        // The server may close while we write garbage; that is fine.
        let _ = s.write_all(&bytes);
        let _ = s.shutdown(Shutdown::Write);
        if closed_within(&mut s, Duration::from_secs(5)).is_none() {
            failures.push(format!("tcp stream {name}: not closed within 5s"));
        }
    }
    failures
}

#[test]
fn server_survives_malformed_packets_over_udp_and_tcp() {
    let env = Env::new("");
    let mut d = env.start();
    let cases = all_cases();
    let drops = cases.iter().filter(|c| c.expect == Expect::Drop).count();
    let started = Instant::now();
    let mut failures = udp_phase(d.dns, &cases);
    let udp_time = started.elapsed();
    failures.extend(tcp_phase(d.dns, &cases));
    failures.extend(tcp_stream_abuse(d.dns));
    println!(
        "{} packets ({drops} to be dropped) over UDP in {udp_time:?}, then TCP; total {:?}",
        cases.len(),
        started.elapsed()
    );
    assert!(d.alive(), "ggond died; stderr:\n{}", d.stderr());
    assert_serves(d.dns);
    assert_eq!(cic_address(d.dns), address_of("primary"));
    let stderr = d.stderr();
    assert!(!stderr.contains("panicked"), "{stderr}");
    assert!(
        failures.is_empty(),
        "{} failures:\n{}",
        failures.len(),
        failures.join("\n")
    );
}
