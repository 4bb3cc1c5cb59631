//! Unit tests of the control API's limits, and eviction over real sockets.

use super::*;

fn limits(max: usize, per: usize) -> Arc<Limits> {
    Limits::new(
        ControlLimits {
            max_connections: max,
            max_connections_per_source: per,
            auth_failures: 2,
            ..ControlLimits::default()
        },
        Arc::new(Metrics::new()),
    )
}

#[test]
fn caps_in_all_and_per_source_and_slots_come_back() {
    let l = limits(3, 2);
    let a: IpAddr = "127.0.0.2".parse().unwrap();
    let b: IpAddr = "127.0.0.3".parse().unwrap();
    let s1 = l.admit(a).unwrap();
    let s2 = l.admit(a).unwrap();
    assert_eq!(l.admit(a).err(), Some(reason::CONNECTIONS_PER_SOURCE));
    let s3 = l.admit(b).unwrap();
    // Every slot serving a request: nothing can be evicted.
    let _busy = [s1.conn.clone(), s2.conn.clone(), s3.conn.clone()].map(|c| ConnRef(c).enter());
    assert_eq!(l.admit(b).err(), Some(reason::CONNECTIONS));
    drop(s1);
    let _s4 = l.admit(b).expect("a slot came back");
    let open = l.conns.lock().unwrap().live.len();
    assert_eq!(open, 3);
}

#[test]
fn when_full_the_oldest_connection_without_a_request_is_evicted() {
    let l = limits(3, 3);
    let ip = |n: u8| IpAddr::from([127, 0, 1, n]);
    let s1 = l.admit(ip(1)).unwrap();
    let s2 = l.admit(ip(2)).unwrap();
    let s3 = l.admit(ip(3)).unwrap();
    let busy = ConnRef(s1.conn.clone()).enter();
    // s1 is older but serving a request; s2 is the oldest idle one.
    let s4 = l.admit(ip(4)).unwrap();
    assert_eq!(s4.displaced, Some(ip(2)));
    assert!(futures_ready(s2.evicted()), "s2 told to close");
    assert!(!futures_ready(s3.evicted()));
    // s2's slot was given back at eviction: dropping it frees nothing more.
    drop(s2);
    assert_eq!(l.conns.lock().unwrap().live.len(), 3);
    // s1's request done: now it is the oldest idle one.
    drop(busy);
    assert_eq!(l.admit(ip(5)).unwrap().displaced, Some(ip(1)));
    assert_eq!(l.conns.lock().unwrap().by_source.get(&ip(1)), None);
    drop((s1, s3, s4));
    assert_eq!(l.conns.lock().unwrap().live.len(), 0);
    assert!(l.conns.lock().unwrap().by_source.is_empty());
}

/// Whether `f` is ready at its first poll.
fn futures_ready<F: std::future::Future>(f: F) -> bool {
    let waker = std::task::Waker::noop();
    let mut cx = std::task::Context::from_waker(waker);
    std::pin::pin!(f).poll(&mut cx).is_ready()
}

#[test]
fn failed_authentications_are_limited_per_source_and_window() {
    let l = limits(3, 2);
    let a: IpAddr = "127.0.0.2".parse().unwrap();
    let b: IpAddr = "127.0.0.3".parse().unwrap();
    let t = Instant::now();
    assert_eq!(l.auth_failed(a, t), AuthVerdict::Refuse);
    assert_eq!(l.auth_failed(a, t), AuthVerdict::Refuse);
    assert_eq!(l.auth_failed(a, t), AuthVerdict::LimitReached);
    assert_eq!(l.auth_failed(a, t), AuthVerdict::Limited);
    assert_eq!(l.auth_failed(b, t), AuthVerdict::Refuse);
    let later = t + l.cfg.auth_window;
    assert_eq!(l.auth_failed(a, later), AuthVerdict::Refuse);
}

#[test]
fn refusals_are_logged_once_per_period_with_the_count_in_between() {
    let l = limits(3, 2);
    assert_eq!(l.refused(reason::BODY_TIMEOUT), Some(0));
    assert_eq!(l.refused(reason::BODY_TIMEOUT), None);
    assert_eq!(l.refused(reason::BODY_TIMEOUT), None);
    assert_eq!(l.refused(reason::HEADER_TIMEOUT), Some(0));
    l.logged
        .lock()
        .unwrap()
        .get_mut(reason::BODY_TIMEOUT)
        .unwrap()
        .0 -= LOG_EVERY;
    assert_eq!(l.refused(reason::BODY_TIMEOUT), Some(2));
}

/// Read one HTTP response with a content-length from `s`: (head, body).
async fn read_response(s: &mut tokio::net::TcpStream) -> (String, String) {
    use tokio::io::AsyncReadExt;
    let mut buf = Vec::new();
    let mut chunk = [0u8; 1024];
    loop {
        let n = s.read(&mut chunk).await.expect("read");
        assert!(n > 0, "closed before a response: {buf:?}");
        buf.extend_from_slice(&chunk[..n]);
        let text = String::from_utf8_lossy(&buf).to_string();
        if let Some((head, body)) = text.split_once("\r\n\r\n") {
            let len: usize = head
                .lines()
                .find_map(|l| {
                    l.to_ascii_lowercase()
                        .strip_prefix("content-length: ")
                        .map(str::to_string)
                })
                .expect("sized, not chunked")
                .trim()
                .parse()
                .unwrap();
            if body.len() >= len {
                return (head.to_string(), body.to_string());
            }
        }
    }
}

/// A connection to `to` from 127.0.1.`n` (each its own source, so the
/// per-source cap stays out of the way).
async fn connect_from(n: u8, to: SocketAddr) -> tokio::net::TcpStream {
    let s = tokio::net::TcpSocket::new_v4().unwrap();
    s.bind(SocketAddr::from(([127, 0, 1, n], 0))).unwrap();
    s.connect(to).await.unwrap()
}

/// Whether the server closed `s` within `limit` (EOF or reset).
async fn closed(s: &mut tokio::net::TcpStream, limit: Duration) -> bool {
    use tokio::io::AsyncReadExt;
    let mut b = [0u8; 64];
    matches!(
        tokio::time::timeout(limit, s.read(&mut b)).await,
        Ok(Ok(0) | Err(_))
    )
}

/// Over real sockets with 2 slots: a connection whose request is being
/// served is never evicted; one idle after a complete exchange (keep-alive)
/// is, and so is one that has sent nothing; the request in progress gets
/// its whole answer.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn eviction_spares_requests_in_progress_and_takes_idle_connections() {
    use axum::routing::get;
    use tokio::io::AsyncWriteExt;
    let l = limits(2, 1);
    let router = Router::new()
        .route(
            "/slow",
            get(|| async {
                tokio::time::sleep(Duration::from_millis(800)).await;
                "slow done"
            }),
        )
        .route("/", get(|| async { "hi" }))
        .layer(axum::middleware::from_fn_with_state(
            l.clone(),
            bounded_body,
        ));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (stop, shutdown) = crate::shutdown::channel();
    let server = tokio::spawn(serve(listener, router, l.clone(), None, shutdown));
    let req = |path: &str| format!("GET {path} HTTP/1.1\r\nHost: t\r\n\r\n");

    let mut slow = connect_from(1, addr).await;
    slow.write_all(req("/slow").as_bytes()).await.unwrap();
    let mut idle = connect_from(2, addr).await;
    idle.write_all(req("/").as_bytes()).await.unwrap();
    let (head, body) = read_response(&mut idle).await;
    assert!(head.starts_with("HTTP/1.1 200"), "{head}");
    assert_eq!(body, "hi");
    // Both slots taken: `slow` is serving, `idle` waits for a next request.
    let mut silent = connect_from(3, addr).await;
    assert!(closed(&mut idle, Duration::from_secs(2)).await, "idle kept");
    // Now `silent` (nothing sent) is the oldest without a request.
    let mut last = connect_from(4, addr).await;
    assert!(
        closed(&mut silent, Duration::from_secs(2)).await,
        "silent kept"
    );
    let (head, body) = read_response(&mut slow).await;
    assert!(head.starts_with("HTTP/1.1 200"), "{head}");
    assert_eq!(
        body, "slow done",
        "the request in progress was answered whole"
    );
    last.write_all(req("/").as_bytes()).await.unwrap();
    assert_eq!(read_response(&mut last).await.1, "hi");
    stop.trigger();
    drop((slow, last));
    tokio::time::timeout(Duration::from_secs(5), server)
        .await
        .expect("server stops")
        .unwrap();
}
