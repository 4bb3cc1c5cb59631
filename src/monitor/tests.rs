//! The checks and the probe schedule, against real local listeners.

use super::*;
use crate::config::DnsCheck;
use hickory_proto::op::ResponseCode;
use std::future::Future;
use tokio::io::AsyncWriteExt;
use tokio::net::{TcpListener, UdpSocket};

/// The timeout most checks below run with.
const T: Duration = Duration::from_millis(300);
/// Scheduling noise allowed on top of `T + SLACK` on a busy machine.
const NOISE: Duration = Duration::from_millis(250);

/// Every test body is bounded, so a bug shows up as a failure, not a hang.
async fn bounded<F: Future>(f: F) -> F::Output {
    tokio::time::timeout(Duration::from_secs(10), f)
        .await
        .expect("test took longer than 10s")
}

fn checker() -> Checker {
    Checker::new().expect("Checker::new")
}

async fn check(kind: CheckKind, timeout: Duration) -> CheckOutcome {
    let started = std::time::Instant::now();
    let outcome = bounded(run_check(&checker(), &kind, timeout)).await;
    assert!(
        started.elapsed() <= timeout + SLACK + NOISE,
        "took {:?} with timeout {timeout:?}: {outcome:?}",
        started.elapsed()
    );
    outcome
}

/// A port on 127.0.0.1 that nothing listens on (TCP and UDP).
async fn closed_port() -> SocketAddr {
    let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
    l.local_addr().unwrap()
}

// --- tcp -------------------------------------------------------------

#[tokio::test]
async fn tcp_up() {
    let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let o = check(
        CheckKind::Tcp {
            address: l.local_addr().unwrap(),
        },
        T,
    )
    .await;
    assert!(o.ok, "{o:?}");
    assert_eq!(o.detail, "connected");
}

#[tokio::test]
async fn tcp_down() {
    let o = check(
        CheckKind::Tcp {
            address: closed_port().await,
        },
        T,
    )
    .await;
    assert!(!o.ok, "{o:?}");
    assert_eq!(o.detail, "connect refused");
}

// --- http ------------------------------------------------------------

enum Reply {
    Now(String),
    After(Duration, String),
    Never,
}

fn response(status: u16, extra_headers: &str, body: &str) -> String {
    format!(
        "HTTP/1.1 {status} Whatever\r\nContent-Length: {}\r\nConnection: close\r\n{extra_headers}\r\n{body}",
        body.len()
    )
}

/// A minimal HTTP/1.1 server on 127.0.0.1: reads one request head and
/// replies with whatever `handler` makes of it (the head, lowercased).
async fn http_server(handler: impl Fn(&str) -> Reply + Send + Sync + 'static) -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let handler = Arc::new(handler);
    tokio::spawn(async move {
        loop {
            let Ok((mut conn, _)) = listener.accept().await else {
                return;
            };
            let handler = handler.clone();
            tokio::spawn(async move {
                let mut head = Vec::new();
                let mut buf = [0u8; 1024];
                while !head.windows(4).any(|w| w == b"\r\n\r\n") && head.len() < 16 * 1024 {
                    match conn.read(&mut buf).await {
                        Ok(0) | Err(_) => return,
                        Ok(n) => head.extend_from_slice(&buf[..n]),
                    }
                }
                let head = String::from_utf8_lossy(&head).to_ascii_lowercase();
                let text = match handler(&head) {
                    Reply::Now(text) => text,
                    Reply::After(delay, text) => {
                        tokio::time::sleep(delay).await;
                        text
                    }
                    Reply::Never => {
                        tokio::time::sleep(Duration::from_secs(60)).await;
                        return;
                    }
                };
                let _ = conn.write_all(text.as_bytes()).await;
                let _ = conn.shutdown().await;
            });
        }
    });
    addr
}

fn http(url: String) -> CheckKind {
    CheckKind::Http {
        url,
        expect_status: vec![],
        body_contains: None,
        host: None,
        tls_verify: true,
    }
}

fn with_http(
    kind: CheckKind,
    f: impl FnOnce(&mut Vec<u16>, &mut Option<String>, &mut Option<String>, &mut bool),
) -> CheckKind {
    let mut kind = kind;
    if let CheckKind::Http {
        expect_status,
        body_contains,
        host,
        tls_verify,
        ..
    } = &mut kind
    {
        f(expect_status, body_contains, host, tls_verify);
    }
    kind
}

#[tokio::test]
async fn http_status_in_default_range() {
    let addr = http_server(|_| Reply::Now(response(200, "", "hello"))).await;
    let o = check(http(format!("http://{addr}/health")), T).await;
    assert!(o.ok, "{o:?}");
    assert_eq!(o.detail, "HTTP 200");
    let json = serde_json::to_value(&o).unwrap();
    assert_eq!(json["ok"], true);
}

/// A check host whose name does not resolve fails on its own, within its
/// timeout (the `.invalid` TLD never resolves, RFC 6761; with no
/// reachable resolver the lookup may also just hang, which the timeout
/// bounds), and does not hold up a healthy check running beside it.
#[tokio::test]
async fn http_check_host_that_does_not_resolve() {
    let addr = http_server(|_| Reply::Now(response(200, "", "ok"))).await;
    let t0 = Instant::now();
    let (bad, good) = tokio::join!(
        check(http("http://no-such-host.invalid:8080/".into()), T),
        check(http(format!("http://{addr}/")), T)
    );
    assert!(!bad.ok, "{bad:?}");
    assert!(good.ok, "{good:?}");
    assert!(
        good.latency < T,
        "the healthy check was not delayed: {good:?}"
    );
    assert!(
        t0.elapsed() < T + SLACK + Duration::from_millis(200),
        "{:?}",
        t0.elapsed()
    );
}

#[tokio::test]
async fn http_status_mismatch() {
    let addr = http_server(|_| Reply::Now(response(503, "", "down"))).await;
    let o = check(http(format!("http://{addr}/")), T).await;
    assert!(!o.ok, "{o:?}");
    assert_eq!(o.detail, "HTTP 503, expected 200..=399");

    let kind = with_http(http(format!("http://{addr}/")), |s, _, _, _| *s = vec![503]);
    let o = check(kind, T).await;
    assert!(o.ok, "explicit expect_status: {o:?}");

    let kind = with_http(http(format!("http://{addr}/")), |s, _, _, _| {
        *s = vec![200, 204]
    });
    let o = check(kind, T).await;
    assert!(!o.ok, "{o:?}");
    assert_eq!(o.detail, "HTTP 503, expected 200 or 204");
}

#[tokio::test]
async fn http_body_substring() {
    let addr = http_server(|_| Reply::Now(response(200, "", "status: all systems go\n"))).await;
    let url = format!("http://{addr}/");
    let present = with_http(http(url.clone()), |_, b, _, _| {
        *b = Some("systems go".into())
    });
    let o = check(present, T).await;
    assert!(o.ok, "{o:?}");

    let absent = with_http(http(url), |_, b, _, _| *b = Some("degraded".into()));
    let o = check(absent, T).await;
    assert!(!o.ok, "{o:?}");
    assert_eq!(o.detail, "HTTP 200, body lacks \"degraded\"");
}

#[tokio::test]
async fn http_body_is_read_only_up_to_the_limit() {
    let body = format!("{}needle", "a".repeat(BODY_LIMIT + 10));
    let addr = http_server(move |_| Reply::Now(response(200, "", &body))).await;
    let kind = with_http(http(format!("http://{addr}/")), |_, b, _, _| {
        *b = Some("needle".into())
    });
    let o = check(kind, Duration::from_secs(2)).await;
    assert!(!o.ok, "{o:?}");
    assert!(o.detail.ends_with("in the first 64 KiB"), "{o:?}");
}

#[tokio::test]
async fn http_host_header_is_sent() {
    let addr = http_server(|head| {
        if head.contains("\r\nhost: svc.example.test\r\n") {
            Reply::Now(response(200, "", "ok"))
        } else {
            Reply::Now(response(421, "", "wrong host"))
        }
    })
    .await;
    let url = format!("http://{addr}/");
    let kind = with_http(http(url.clone()), |_, _, h, _| {
        *h = Some("svc.example.test".into())
    });
    let o = check(kind, T).await;
    assert!(o.ok, "{o:?}");

    let o = check(http(url), T).await;
    assert!(!o.ok, "{o:?}");
    assert_eq!(o.detail, "HTTP 421, expected 200..=399");
}

#[tokio::test]
async fn http_redirects_are_not_followed() {
    let addr = http_server(|head| {
        if head.starts_with("get /moved ") {
            Reply::Now(response(200, "", "target"))
        } else {
            Reply::Now(response(302, "Location: /moved\r\n", ""))
        }
    })
    .await;
    let url = format!("http://{addr}/");
    let o = check(http(url.clone()), T).await;
    assert!(o.ok, "3xx is in the default range: {o:?}");
    assert_eq!(o.detail, "HTTP 302");

    let kind = with_http(http(url), |s, _, _, _| *s = vec![200]);
    let o = check(kind, T).await;
    assert!(!o.ok, "{o:?}");
    assert_eq!(o.detail, "HTTP 302, expected 200");
}

#[tokio::test]
async fn http_server_that_never_answers_times_out() {
    let addr = http_server(|_| Reply::Never).await;
    let o = check(http(format!("http://{addr}/")), T).await;
    assert!(!o.ok, "{o:?}");
    assert_eq!(o.detail, "timeout after 300ms");
    assert!(o.latency >= T && o.latency <= T + SLACK + NOISE, "{o:?}");
}

#[tokio::test]
async fn http_slow_server_is_a_failure() {
    let addr = http_server(|_| Reply::After(2 * T, response(200, "", "late"))).await;
    let o = check(http(format!("http://{addr}/")), T).await;
    assert!(!o.ok, "{o:?}");
    assert_eq!(o.detail, "timeout after 300ms");
}

#[tokio::test]
async fn http_connect_refused() {
    let o = check(http(format!("http://{}/", closed_port().await)), T).await;
    assert!(!o.ok, "{o:?}");
    assert_eq!(o.detail, "connect refused");
}

#[tokio::test]
async fn https_to_a_plain_http_server_fails_fast() {
    // Like a real plain-HTTP server fed a TLS ClientHello: "400" and close.
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((mut conn, _)) = listener.accept().await {
            let mut buf = [0u8; 1024];
            let _ = conn.read(&mut buf).await;
            let _ = conn.write_all(response(400, "", "").as_bytes()).await;
        }
    });
    for verify in [true, false] {
        let kind = with_http(http(format!("https://{addr}/")), |_, _, _, v| *v = verify);
        let o = check(kind, Duration::from_secs(2)).await;
        assert!(!o.ok, "{o:?}");
        assert!(!o.detail.starts_with("timeout"), "{o:?}");
    }
}

// --- dns -------------------------------------------------------------

/// A UDP responder on 127.0.0.1 answering every query with `rcode`; with
/// `decoy`, each real answer is preceded by one carrying the wrong ID.
async fn dns_responder(rcode: ResponseCode, decoy: bool) -> SocketAddr {
    let socket = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let addr = socket.local_addr().unwrap();
    tokio::spawn(async move {
        let mut buf = [0u8; 1500];
        loop {
            let Ok((n, peer)) = socket.recv_from(&mut buf).await else {
                return;
            };
            let Ok(query) = Message::from_vec(&buf[..n]) else {
                continue;
            };
            let mut answer = Message::response(query.metadata.id, query.metadata.op_code);
            answer.metadata.response_code = rcode;
            answer.add_queries(query.queries.clone());
            if decoy {
                let mut wrong = answer.clone();
                wrong.metadata.id = query.metadata.id.wrapping_add(1);
                wrong.metadata.response_code = ResponseCode::ServFail;
                let _ = socket.send_to(&wrong.to_vec().unwrap(), peer).await;
            }
            let _ = socket.send_to(&answer.to_vec().unwrap(), peer).await;
        }
    });
    addr
}

fn dns(server: SocketAddr, expect_rcode: &str) -> CheckKind {
    CheckKind::Dns(DnsCheck::read(server, "probe.ggon.test", "A", expect_rcode))
}

#[tokio::test]
async fn dns_rcode_matches() {
    let server = dns_responder(ResponseCode::NXDomain, false).await;
    let o = check(dns(server, "NXDOMAIN"), T).await;
    assert!(o.ok, "{o:?}");
    assert_eq!(o.detail, "rcode NXDOMAIN");
}

#[tokio::test]
async fn dns_rcode_mismatch() {
    let server = dns_responder(ResponseCode::NXDomain, false).await;
    let o = check(dns(server, "NOERROR"), T).await;
    assert!(!o.ok, "{o:?}");
    assert_eq!(o.detail, "rcode NXDOMAIN, expected NOERROR");
}

#[tokio::test]
async fn dns_reply_with_wrong_id_is_ignored() {
    let server = dns_responder(ResponseCode::NoError, true).await;
    let o = check(dns(server, "NOERROR"), T).await;
    assert!(o.ok, "{o:?}");
    assert_eq!(o.detail, "rcode NOERROR");
}

#[tokio::test]
async fn dns_silent_server_times_out() {
    // Bound, so no ICMP port-unreachable comes back: the query just vanishes.
    let silent = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let o = check(dns(silent.local_addr().unwrap(), "NOERROR"), T).await;
    assert!(!o.ok, "{o:?}");
    assert_eq!(o.detail, "timeout after 300ms");
}

#[tokio::test]
async fn dns_no_responder_fails() {
    // Nothing bound: the ICMP error surfaces as "refused", or the query times out.
    let o = check(dns(closed_port().await, "NOERROR"), T).await;
    assert!(!o.ok, "{o:?}");
    assert!(
        o.detail == "port unreachable" || o.detail.starts_with("timeout"),
        "{o:?}"
    );
}

#[tokio::test]
async fn dns_bad_input_is_a_failed_outcome() {
    let server = dns_responder(ResponseCode::NoError, false).await;
    let kind = CheckKind::Dns(DnsCheck::read(server, "probe.ggon.test", "NOPE", "NOERROR"));
    let o = check(kind, T).await;
    assert!(!o.ok, "{o:?}");
    assert_eq!(o.detail, "unknown qtype \"NOPE\"");

    let o = check(dns(server, "MAYBE"), T).await;
    assert!(!o.ok, "{o:?}");
}

// --- exec ------------------------------------------------------------

fn exec(argv: &[&str]) -> CheckKind {
    CheckKind::Exec {
        command: argv.iter().map(|s| s.to_string()).collect(),
    }
}

const EXEC_T: Duration = Duration::from_millis(200);

#[tokio::test]
async fn exec_exit_status() {
    let o = check(exec(&["true"]), EXEC_T).await;
    assert!(o.ok, "{o:?}");
    assert_eq!(o.detail, "exit status 0");

    let o = check(exec(&["false"]), EXEC_T).await;
    assert!(!o.ok, "{o:?}");
    assert_eq!(o.detail, "exit status 1");
}

#[tokio::test]
async fn exec_output_goes_into_detail() {
    let o = check(
        exec(&["sh", "-c", "echo partial; echo 'disk full' >&2; exit 3"]),
        Duration::from_secs(2),
    )
    .await;
    assert!(!o.ok, "{o:?}");
    assert_eq!(o.detail, "exit status 3: disk full");

    let o = check(exec(&["echo", "", "all good"]), Duration::from_secs(2)).await;
    assert!(o.ok, "{o:?}");
    assert_eq!(o.detail, "exit status 0: all good");
}

#[tokio::test]
async fn exec_is_killed_at_timeout() {
    let o = check(exec(&["sleep", "5"]), EXEC_T).await;
    assert!(!o.ok, "{o:?}");
    assert_eq!(o.detail, "timeout after 200ms");
}

#[tokio::test]
async fn exec_timeout_kills_the_whole_process_group() {
    let dir = tempfile::tempdir().unwrap();
    let pidfile = dir.path().join("pid");
    let script = format!("sleep 30 & echo $! > {}; wait", pidfile.display());
    let o = check(exec(&["sh", "-c", &script]), Duration::from_millis(500)).await;
    assert!(!o.ok, "{o:?}");
    let pid = std::fs::read_to_string(&pidfile).unwrap();
    let stat = format!("/proc/{}/stat", pid.trim());
    bounded(async {
        // Gone, or a zombie waiting for its new parent to reap it.
        while std::fs::read_to_string(&stat).is_ok_and(|s| !s.contains(") Z ")) {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await;
}

#[tokio::test]
async fn exec_background_child_holding_pipes_does_not_stall() {
    let o = check(
        exec(&["sh", "-c", "sleep 2 & exit 0"]),
        Duration::from_secs(1),
    )
    .await;
    assert!(o.ok, "{o:?}");
    assert!(o.latency < Duration::from_millis(500), "{o:?}");
}

#[tokio::test]
async fn exec_bad_command_is_a_failed_outcome() {
    let o = check(exec(&["/nonexistent/ggon-check"]), EXEC_T).await;
    assert!(!o.ok, "{o:?}");
    assert!(o.detail.starts_with("cannot run"), "{o:?}");

    let o = check(exec(&[]), EXEC_T).await;
    assert!(!o.ok, "{o:?}");
    assert_eq!(o.detail, "empty command");
}

// --- scheduling --------------------------------------------------------

fn probe(
    service: &str,
    target: &str,
    kind: CheckKind,
    timeout: Duration,
) -> (ProbeKey, CheckConfig) {
    let key = ProbeKey {
        service: service.into(),
        target: target.into(),
    };
    let cfg = CheckConfig {
        kind,
        interval: Duration::from_millis(200),
        timeout,
        rise: 1,
        fall: 1,
        jitter: Duration::from_millis(20),
    };
    (key, cfg)
}

#[tokio::test]
async fn hung_probe_does_not_delay_another() {
    let up = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let hang = http_server(|_| Reply::Never).await;
    let probes = vec![
        probe(
            "svc",
            "good",
            CheckKind::Tcp {
                address: up.local_addr().unwrap(),
            },
            T,
        ),
        probe(
            "svc",
            "hung",
            http(format!("http://{hang}/")),
            Duration::from_secs(1),
        ),
    ];
    let (tx, mut rx) = mpsc::channel(64);
    let (stop, shutdown) = crate::shutdown::channel();
    let handles = spawn_probes(Arc::new(checker()), probes, tx, shutdown);

    let mut good = Vec::new();
    let mut hung = Vec::new();
    let window = tokio::time::sleep(Duration::from_millis(1500));
    tokio::pin!(window);
    loop {
        tokio::select! {
            () = &mut window => break,
            obs = rx.recv() => {
                let obs: Observation = obs.expect("probes alive");
                match obs.key.target.as_str() {
                    "good" => good.push(obs.outcome),
                    _ => hung.push(obs.outcome),
                }
            }
        }
    }
    // First run within the jitter, then every ~200ms: about 8 in 1.5 s.
    assert!(
        good.len() >= 5,
        "good probe reported {} times: {good:?}",
        good.len()
    );
    assert!(good.iter().all(|o| o.ok), "{good:?}");
    assert!(hung.len() <= 2, "{hung:?}");
    assert!(
        hung.iter()
            .all(|o| !o.ok && o.detail == "timeout after 1000ms"),
        "{hung:?}"
    );

    stop.trigger();
    for h in handles {
        bounded(h).await.unwrap();
    }
}

#[tokio::test]
async fn probes_stop_when_the_receiver_is_gone() {
    let up = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let probes = vec![probe(
        "svc",
        "a",
        CheckKind::Tcp {
            address: up.local_addr().unwrap(),
        },
        T,
    )];
    let (tx, mut rx) = mpsc::channel(1);
    let (_stop, shutdown) = crate::shutdown::channel();
    let handles = spawn_probes(Arc::new(checker()), probes, tx, shutdown);
    let first = bounded(rx.recv()).await.expect("one observation");
    assert_eq!(first.key.to_string(), "svc/a");
    drop(rx);
    for h in handles {
        bounded(h).await.unwrap();
    }
}

#[tokio::test]
async fn shutdown_cancels_a_check_in_flight() {
    let hang = http_server(|_| Reply::Never).await;
    let probes = vec![probe(
        "svc",
        "hung",
        http(format!("http://{hang}/")),
        Duration::from_secs(30),
    )];
    let (tx, _rx) = mpsc::channel(1);
    let (stop, shutdown) = crate::shutdown::channel();
    let handles = spawn_probes(Arc::new(checker()), probes, tx, shutdown);
    tokio::time::sleep(Duration::from_millis(200)).await;
    stop.trigger();
    let started = std::time::Instant::now();
    for h in handles {
        bounded(h).await.unwrap();
    }
    assert!(started.elapsed() < Duration::from_secs(1));
}
