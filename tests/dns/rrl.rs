//! Response rate limiting (off by default): a flood from one client prefix
//! gets at most the configured rate of full answers, every `slip`-th
//! suppressed answer comes back truncated (TC=1), other prefixes and TCP are
//! unaffected, and the bucket refills.

use std::net::UdpSocket;
use std::time::{Duration, Instant};

use crate::support::reliability::*;
use hickory_proto::rr::RecordType;

/// Send `n` queries at once from `sock`, then collect answers for `wait`:
/// (full answers, truncated answers).
fn burst(sock: &UdpSocket, dns: std::net::SocketAddr, n: u16, wait: Duration) -> (usize, usize) {
    for id in 0..n {
        let q = query_msg(id, "cic.ggon.org.", RecordType::A, None);
        sock.send_to(&q, dns).unwrap();
    }
    sock.set_read_timeout(Some(Duration::from_millis(100)))
        .unwrap();
    let (mut full, mut tc) = (0, 0);
    let deadline = Instant::now() + wait;
    let mut buf = [0u8; 1500];
    while Instant::now() < deadline {
        if let Ok(len) = sock.recv(&mut buf) {
            if len < 12 {
                continue;
            }
            if buf[2] & 0x02 != 0 {
                assert_eq!(
                    &buf[6..12],
                    &[0, 0, 0, 0, 0, 0],
                    "a slipped answer carries no records"
                );
                tc += 1;
            } else {
                full += 1;
            }
        }
    }
    (full, tc)
}

#[test]
fn rrl_limits_one_prefix_slips_and_spares_others() {
    let env = Env::new("rrl = { responses_per_second = 10, slip = 2 }");
    let d = env.start();
    let flooder = UdpSocket::bind("127.0.0.1:0").unwrap();
    let (full, tc) = burst(&flooder, d.dns, 100, Duration::from_millis(800));
    println!("100 queries from one /24: {full} full answers, {tc} truncated");
    assert!((10..=14).contains(&full), "{full} full answers at 10/s");
    let suppressed = 100 - full;
    assert!(
        tc + 1 >= suppressed / 2 && tc <= suppressed / 2 + 1,
        "slip 2: about half of {suppressed} suppressed answers truncated, got {tc}"
    );
    // Another /24 has its own budget; TCP is never limited.
    let other = UdpSocket::bind("127.0.1.1:0").unwrap();
    let (full, _) = burst(&other, d.dns, 5, Duration::from_millis(300));
    assert_eq!(full, 5, "another prefix is not limited");
    assert_eq!(
        a_addrs(&tcp_query(d.dns, "cic.ggon.org.", RecordType::A)).len(),
        1
    );
    // The bucket refills: after a second, full answers again.
    std::thread::sleep(Duration::from_millis(1100));
    let (full, _) = burst(&flooder, d.dns, 5, Duration::from_millis(300));
    assert_eq!(full, 5, "refilled after a second");
    let metrics = http(d.control, "GET", "/metrics", Some(OPERATOR_TOKEN), None)
        .unwrap()
        .1;
    assert!(metrics.contains("ggon_rrl_slipped_total"), "{metrics}");
}

#[test]
fn without_rrl_every_query_is_answered() {
    let env = Env::new("");
    let d = env.start();
    let sock = UdpSocket::bind("127.0.0.1:0").unwrap();
    let (full, tc) = burst(&sock, d.dns, 100, Duration::from_millis(800));
    assert_eq!((full, tc), (100, 0));
}
