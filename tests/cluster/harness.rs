//! The etcd harness alone: no ggond involved.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use crate::support::etcd::*;
use crate::support::process::poll;

fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

/// Poll a serializable (member-local) read of `key` on `endpoint` until it
/// shows `want`, for at most `limit`; the last answer on failure.
fn wait_local(
    endpoint: &str,
    key: &str,
    want: &str,
    limit: Duration,
) -> Result<(), Result<Option<String>, String>> {
    let mut last = Ok(None);
    poll(limit, ms(50), || {
        last = etcd_get_local(endpoint, key);
        matches!(&last, Ok(Some(v)) if v == want).then_some(())
    })
    .ok_or(last)
}

#[test]
fn base64_matches_rfc4648_vectors() {
    for (plain, enc) in [
        ("", ""),
        ("f", "Zg=="),
        ("fo", "Zm8="),
        ("foo", "Zm9v"),
        ("foob", "Zm9vYg=="),
        ("fooba", "Zm9vYmE="),
        ("foobar", "Zm9vYmFy"),
    ] {
        assert_eq!(b64(plain.as_bytes()), enc, "encode {plain:?}");
        assert_eq!(
            unb64(enc).as_deref(),
            Some(plain.as_bytes()),
            "decode {enc:?}"
        );
    }
    let all: Vec<u8> = (0..=255).collect();
    assert_eq!(unb64(&b64(&all)).as_deref(), Some(&all[..]));
    assert_eq!(unb64("Z"), None, "a lone sixth of a byte");
    assert_eq!(unb64("Zm9v!"), None, "not in the alphabet");
}

/// Three members start as one cluster; a put through member 0 is read back
/// through member 2 (linearizable and from member 2's own state), prefix
/// reads see exactly the keys under the prefix, and the start-up probe key is
/// gone.
#[test]
fn three_members_replicate() {
    let cluster = EtcdCluster::start(3);
    let eps = cluster.endpoints();
    assert_eq!(eps.len(), 3);
    for (i, ep) in eps.iter().enumerate() {
        assert!(ep.starts_with("http://127.0.0.1:"), "{ep}");
        assert_eq!(ep, &cluster.endpoint(i));
        assert!(!eps[..i].contains(ep), "endpoint {ep} twice: {eps:?}");
    }
    assert!(
        cluster.leader().is_some(),
        "no leader{}",
        cluster.log_tails()
    );

    assert_eq!(etcd_get_prefix(&eps[2], "").unwrap(), vec![], "not empty");
    etcd_put(&eps[0], "/ggon/test/a", "alpha").unwrap();
    assert_eq!(
        etcd_get(&eps[2], "/ggon/test/a").unwrap().as_deref(),
        Some("alpha")
    );
    wait_local(&eps[2], "/ggon/test/a", "alpha", ms(2000)).unwrap();

    etcd_put(&eps[1], "/ggon/test/b", "").unwrap();
    etcd_put(&eps[1], "/ggon/test/c", "gamma é").unwrap();
    etcd_put(&eps[1], "/ggon/testx", "outside").unwrap();
    etcd_put(&eps[1], "/ggon/tesu", "outside").unwrap();
    assert_eq!(
        etcd_get_prefix(&eps[2], "/ggon/test/").unwrap(),
        vec![
            ("/ggon/test/a".to_string(), "alpha".to_string()),
            ("/ggon/test/b".to_string(), String::new()),
            ("/ggon/test/c".to_string(), "gamma é".to_string()),
        ]
    );
    assert_eq!(etcd_get_prefix(&eps[0], "").unwrap().len(), 5);
    assert_eq!(etcd_get(&eps[0], "/ggon/test/none").unwrap(), None);
    assert_eq!(etcd_delete(&eps[0], "/ggon/test/a").unwrap(), 1);
    assert_eq!(etcd_get(&eps[2], "/ggon/test/a").unwrap(), None);
}

/// With member 1 stopped, members 0 and 2 (a quorum) still take puts and
/// answer reads; member 1 restarted from its data dir catches up on what it
/// missed, in its own state (a serializable read on it).
#[test]
fn stopped_member_restarts_and_catches_up() {
    let mut cluster = EtcdCluster::start(3);
    let (e0, e1, e2) = (
        cluster.endpoint(0),
        cluster.endpoint(1),
        cluster.endpoint(2),
    );
    etcd_put(&e0, "/ggon/before", "1").unwrap();

    cluster.stop(1);
    assert!(!cluster.is_running(1));
    assert!(
        etcd_get(&e1, "/ggon/before").is_err(),
        "stopped member answers"
    );
    assert_eq!(cluster.health(1, ms(500)), None);

    // The quorum may need a new leader if member 1 led (it hands leadership
    // over on SIGTERM): allow a few election timeouts.
    let t = Instant::now();
    poll(Duration::from_secs(5), ms(50), || {
        etcd_put(&e0, "/ggon/during", "2").ok()
    })
    .unwrap_or_else(|| panic!("no put with member 1 stopped{}", cluster.log_tails()));
    eprintln!("put with member 1 stopped after {:?}", t.elapsed());
    etcd_put(&e2, "/ggon/during2", "3").unwrap();
    assert_eq!(etcd_get(&e2, "/ggon/during").unwrap().as_deref(), Some("2"));
    assert_eq!(
        etcd_get(&e0, "/ggon/during2").unwrap().as_deref(),
        Some("3")
    );

    let t = Instant::now();
    cluster.restart(1);
    eprintln!("member 1 healthy {:?} after restart", t.elapsed());
    assert!(cluster.is_running(1));
    wait_local(&e1, "/ggon/during", "2", Duration::from_secs(3)).unwrap();
    wait_local(&e1, "/ggon/during2", "3", Duration::from_secs(3)).unwrap();
    assert_eq!(etcd_get(&e1, "/ggon/before").unwrap().as_deref(), Some("1"));
    etcd_put(&e1, "/ggon/after", "4").unwrap();
    assert_eq!(etcd_get(&e2, "/ggon/after").unwrap().as_deref(), Some("4"));
}

/// A killed leader is replaced within a few election timeouts; a paused
/// member answers nothing and is healthy again after resume.
#[test]
fn killed_leader_is_replaced_and_paused_member_resumes() {
    let mut cluster = EtcdCluster::start(3);
    let leader = cluster
        .leader()
        .unwrap_or_else(|| panic!("no leader{}", cluster.log_tails()));
    let other = (leader + 1) % 3;
    let third = (leader + 2) % 3;

    cluster.kill(leader);
    assert!(!cluster.is_running(leader));
    let t = Instant::now();
    poll(Duration::from_secs(8), ms(50), || {
        etcd_put(&cluster.endpoint(other), "/ggon/k", "after-kill").ok()
    })
    .unwrap_or_else(|| panic!("no put after killing the leader{}", cluster.log_tails()));
    eprintln!("put after killing leader {leader} took {:?}", t.elapsed());
    let new_leader = cluster.leader().expect("new leader");
    assert_ne!(new_leader, leader);

    cluster.pause(third);
    assert!(cluster.is_paused(third) && cluster.is_running(third));
    let t = Instant::now();
    assert_eq!(
        cluster.health(third, ms(300)),
        None,
        "paused member answers"
    );
    assert!(
        t.elapsed() < ms(1000),
        "health limit not kept: {:?}",
        t.elapsed()
    );
    cluster.resume(third);
    assert!(
        cluster.wait_healthy(third, Duration::from_secs(5)),
        "resumed member not healthy{}",
        cluster.log_tails()
    );
    cluster.restart(leader);
    wait_local(&cluster.endpoint(leader), "/ggon/k", "after-kill", ms(3000)).unwrap();
}

/// The proxy forwards the JSON gateway; after cut() requests through it fail
/// fast (and a connection held across the cut is closed) while the member
/// itself still answers directly; restore() forwards again. blackhole()
/// makes requests hang instead of fail.
#[test]
fn proxy_cuts_and_restores() {
    let cluster = EtcdCluster::start(3);
    let direct = cluster.endpoint(0);
    let proxy = TcpProxy::start(cluster.client_addr(0));
    assert_eq!(proxy.target(), cluster.client_addr(0));
    assert_ne!(proxy.addr(), cluster.client_addr(0));
    let via = proxy.url();
    assert!(proxy.is_open());

    etcd_put(&via, "/ggon/p", "one").unwrap();
    assert_eq!(etcd_get(&via, "/ggon/p").unwrap().as_deref(), Some("one"));
    assert_eq!(
        etcd_get(&direct, "/ggon/p").unwrap().as_deref(),
        Some("one")
    );
    assert!(proxy.accepted() >= 2);

    // A keep-alive connection open across the cut.
    let mut held = TcpStream::connect(proxy.addr()).unwrap();
    held.set_read_timeout(Some(ms(2000))).unwrap();
    held.write_all(b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n")
        .unwrap();
    let mut buf = [0u8; 4096];
    let n = held.read(&mut buf).unwrap();
    assert!(
        String::from_utf8_lossy(&buf[..n]).contains("200 OK"),
        "{:?}",
        String::from_utf8_lossy(&buf[..n])
    );
    assert!(
        poll(ms(1000), ms(10), || (proxy.active() >= 1).then_some(())).is_some(),
        "held connection not tracked"
    );

    proxy.cut();
    assert!(!proxy.is_open());
    let t = Instant::now();
    let mut closed = false;
    while t.elapsed() < ms(2000) {
        match held.read(&mut buf) {
            Ok(0) | Err(_) => {
                closed = true;
                break;
            }
            Ok(_) => {}
        }
    }
    assert!(closed, "connection held across cut() still open");
    let t = Instant::now();
    let err = etcd_get(&via, "/ggon/p").expect_err("get through a cut proxy");
    assert!(
        t.elapsed() < ms(2000),
        "cut get took {:?}: {err}",
        t.elapsed()
    );
    assert!(etcd_put(&via, "/ggon/p", "lost").is_err());
    assert_eq!(proxy.active(), 0);
    // The other clients still reach the member directly.
    etcd_put(&direct, "/ggon/p", "two").unwrap();

    proxy.restore();
    assert!(proxy.is_open());
    assert_eq!(etcd_get(&via, "/ggon/p").unwrap().as_deref(), Some("two"));
    etcd_put(&via, "/ggon/p", "three").unwrap();
    assert_eq!(
        etcd_get(&direct, "/ggon/p").unwrap().as_deref(),
        Some("three")
    );

    proxy.blackhole();
    let t = Instant::now();
    let r = http_request(&via, "GET", "/health", None, ms(500));
    assert!(r.is_err(), "blackholed request answered: {r:?}");
    assert!(
        t.elapsed() >= ms(400) && t.elapsed() < ms(1500),
        "blackholed request should time out at its own limit, took {:?}: {r:?}",
        t.elapsed()
    );
    proxy.restore();
    assert_eq!(etcd_get(&via, "/ggon/p").unwrap().as_deref(), Some("three"));
}
