//! TCP limits under abuse, with `tcp_max_connections = 8` and
//! `tcp_idle_timeout = "1s"`: the connection cap, slow-loris clients,
//! clients that never read, pipelining.

use std::io::Write;
use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, Instant};

use crate::support::reliability::*;
use hickory_proto::op::Message;
use hickory_proto::rr::RecordType;
use hickory_proto::serialize::binary::BinDecodable;

const LIMITS: &str = "tcp_max_connections = 8\ntcp_idle_timeout = \"1s\"";

/// One query on an open connection; panics unless answered correctly.
fn ask(s: &mut TcpStream, id: u16) {
    tcp_send(s, &query_msg(id, "wiki.ggon.org.", RecordType::A, None)).expect("send");
    let r = tcp_read(s).expect("answer on a held connection");
    let m = Message::from_bytes(&r).unwrap();
    assert_eq!(m.metadata.id, id);
    assert_eq!(a_addrs(&m), vec!["127.0.0.80"]);
}

/// A new connection beyond the cap: connected by the kernel, then closed by
/// ggond. Returns how long the close took (None: not closed within 500 ms).
fn refused_within(addr: SocketAddr) -> Option<Duration> {
    let mut s = tcp_connect(addr);
    closed_within(&mut s, Duration::from_millis(500))
}

/// A new connection answers a query (retrying for up to 2 s while slots free up).
fn new_connection_answers(addr: SocketAddr) -> bool {
    let deadline = Instant::now() + Duration::from_secs(2);
    while Instant::now() < deadline {
        let mut s = tcp_connect(addr);
        if tcp_send(
            &mut s,
            &query_msg(77, "wiki.ggon.org.", RecordType::A, None),
        )
        .is_ok()
        {
            if let Ok(r) = tcp_read(&mut s) {
                return id_of(&r) == 77;
            }
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    false
}

#[test]
fn ninth_connection_is_closed_at_once_while_udp_keeps_answering() {
    let env = Env::new(LIMITS);
    let d = env.start();
    let mut held: Vec<TcpStream> = (0..8).map(|_| tcp_connect(d.dns)).collect();
    // A query on each: all 8 are accepted and hold a slot.
    for (i, s) in held.iter_mut().enumerate() {
        ask(s, i as u16);
    }
    // For ~3 s (three idle timeouts) keep the 8 busy, try a 9th each round,
    // and query over UDP.
    let mut worst = Duration::ZERO;
    let started = Instant::now();
    let mut rounds = 0;
    while started.elapsed() < Duration::from_secs(3) {
        let t = refused_within(d.dns).unwrap_or_else(|| {
            panic!("round {rounds}: a 9th connection was not closed within 500 ms")
        });
        worst = worst.max(t);
        let m = udp_query(d.dns, "wiki.ggon.org.", RecordType::A);
        assert_eq!(a_addrs(&m), vec!["127.0.0.80"]);
        for (i, s) in held.iter_mut().enumerate() {
            ask(s, 100 + i as u16);
        }
        rounds += 1;
        std::thread::sleep(Duration::from_millis(250));
    }
    println!("{rounds} rounds: the 9th connection was closed after at most {worst:?}");
    assert!(rounds >= 5);
    // Closing the held connections frees their slots.
    drop(held);
    assert!(
        new_connection_answers(d.dns),
        "no slot freed after closing 8"
    );
}

#[test]
fn slow_loris_is_cut_after_the_idle_timeout_and_its_slot_freed() {
    let env = Env::new(LIMITS);
    let d = env.start();
    let mut held: Vec<TcpStream> = (0..7).map(|_| tcp_connect(d.dns)).collect();
    for (i, s) in held.iter_mut().enumerate() {
        ask(s, i as u16);
    }
    // The 8th slot: one byte of the length prefix, then nothing.
    let mut loris = tcp_connect(d.dns);
    loris.write_all(&[0x00]).unwrap();
    let sent = Instant::now();
    std::thread::sleep(Duration::from_millis(100));
    assert!(
        refused_within(d.dns).is_some(),
        "all 8 slots should be taken (7 held + the slow client)"
    );
    // Wait for ggond to cut the slow client, keeping the 7 busy meanwhile.
    let cut_after = loop {
        assert!(
            sent.elapsed() < Duration::from_secs(5),
            "slow client still connected after 5 s (idle timeout 1 s)"
        );
        if closed_within(&mut loris, Duration::from_millis(100)).is_some() {
            break sent.elapsed();
        }
        for (i, s) in held.iter_mut().enumerate() {
            ask(s, 200 + i as u16);
        }
    };
    println!("slow client cut after {cut_after:?} (idle timeout 1s)");
    assert!(
        cut_after >= Duration::from_millis(900),
        "cut too early: {cut_after:?}"
    );
    assert!(
        cut_after <= Duration::from_millis(2500),
        "cut too late: {cut_after:?}"
    );
    // Its slot is free again: a new connection works next to the 7.
    assert!(
        new_connection_answers(d.dns),
        "the slow client's slot was not freed"
    );
    for (i, s) in held.iter_mut().enumerate() {
        ask(s, 300 + i as u16);
    }
}

#[test]
fn pipelined_queries_are_all_answered_in_order() {
    let env = Env::new(LIMITS);
    let d = env.start();
    let asks = [
        ("wiki.ggon.org.", RecordType::A, 0u8, 1usize),
        ("cic.ggon.org.", RecordType::A, 0, 1),
        ("nope.ggon.org.", RecordType::A, 3, 0),
        ("big.ggon.org.", RecordType::TXT, 0, 5),
        ("ggon.org.", RecordType::MX, 0, 1),
        ("example.com.", RecordType::A, 5, 0),
    ];
    let n = 120u16;
    let mut stream = Vec::new();
    for id in 0..n {
        let (name, t, _, _) = asks[id as usize % asks.len()];
        stream.extend(tcp_frame(&query_msg(id, name, t, None)));
    }
    let mut s = tcp_connect(d.dns);
    // All queries in one write: they arrive back to back in a few segments.
    s.write_all(&stream).unwrap();
    for id in 0..n {
        let (name, _, rcode, answers) = asks[id as usize % asks.len()];
        let r = tcp_read(&mut s).unwrap_or_else(|e| panic!("answer {id} missing: {e}"));
        let m = Message::from_bytes(&r).unwrap();
        assert_eq!(m.metadata.id, id, "answers out of order");
        assert_eq!(u16::from(m.metadata.response_code), rcode as u16, "{name}");
        assert_eq!(m.answers.len(), answers, "{name}");
        assert!(!m.metadata.truncation, "TCP answers are never truncated");
    }
}

/// A client that sends queries but never reads their answers fills the
/// socket buffers; ggond's write then blocks. That must not hold the
/// connection slot for ever: the write is bounded by the idle timeout too.
#[test]
fn client_that_never_reads_loses_its_slot() {
    let env = Env::new("tcp_max_connections = 1\ntcp_idle_timeout = \"1s\"");
    let d = env.start();
    let mut hog = tcp_connect(d.dns);
    hog.set_write_timeout(Some(Duration::from_millis(300)))
        .unwrap();
    let frame = tcp_frame(&query_msg(1, "big.ggon.org.", RecordType::TXT, None));
    let batch: Vec<u8> = frame
        .iter()
        .copied()
        .cycle()
        .take(frame.len() * 500)
        .collect();
    let started = Instant::now();
    let mut sent = 0usize;
    // Write until the buffers are full (a write times out), bounded in count and time.
    while sent < 400_000 && started.elapsed() < Duration::from_secs(15) {
        if hog.write_all(&batch).is_err() {
            break;
        }
        sent += 500;
    }
    assert!(
        sent < 400_000 && started.elapsed() < Duration::from_secs(15),
        "buffers never filled"
    );
    println!(
        "non-reading client: writes blocked after ~{sent} queries in {:?}",
        started.elapsed()
    );
    // ggond is now blocked writing to it. After the idle timeout and some
    // margin the only slot must be free again.
    std::thread::sleep(Duration::from_millis(2500));
    assert!(
        new_connection_answers(d.dns),
        "a client that never reads still holds the only TCP slot"
    );
    drop(hog);
}

fn rss_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
        .expect("VmRSS")
}

/// Every TCP connection used to leave its statistics slot behind (about
/// 500 bytes, never freed): memory grew with the number of connections ever
/// served. After a warm-up, 10,000 more connections must not grow ggond's RSS.
#[test]
fn short_connections_do_not_grow_memory() {
    let env = Env::new(LIMITS);
    let d = env.start();
    let frame = tcp_frame(&query_msg(3, "wiki.ggon.org.", RecordType::A, None));
    let batch = |n: usize| {
        for _ in 0..n {
            let mut s = tcp_connect(d.dns);
            s.write_all(&frame).unwrap();
            tcp_read(&mut s).expect("answer");
            // Close with RST: no TIME_WAIT, so ports are not exhausted.
            socket2::SockRef::from(&s)
                .set_linger(Some(Duration::ZERO))
                .unwrap();
        }
        std::thread::sleep(Duration::from_millis(200));
    };
    batch(5000);
    let before = rss_kib(d.pid);
    let started = Instant::now();
    batch(10_000);
    let after = rss_kib(d.pid);
    println!(
        "RSS {before} KiB -> {after} KiB after 10,000 more TCP connections ({:?})",
        started.elapsed()
    );
    assert!(
        after <= before + 1024,
        "RSS grew by {} KiB over 10,000 connections",
        after - before
    );
}
