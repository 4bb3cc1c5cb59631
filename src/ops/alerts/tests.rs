//! Alerts against real local webhook receivers and commands.

use super::*;
use crate::decide::EventCause;
use std::sync::Mutex;
use tokio::io::AsyncReadExt;
use tokio::net::TcpListener;

fn ev(kind: &str, service: Option<&str>) -> Alert {
    let mut event = Event::new(
        1_700_000_000,
        serde_json::from_value(serde_json::json!(kind)).unwrap(),
        EventCause::Health,
    )
    .from_target("a")
    .to_target("b")
    .reason("a is down")
    .who("ggon");
    event.service = service.map(str::to_string);
    Alert {
        event,
        at: 1_700_000_000,
        message: format!("{kind} for {}", service.unwrap_or("-")),
    }
}

fn webhook(url: &str, burst: u32, per: Duration, attempts: u32) -> NotifierConfig {
    NotifierConfig {
        kind: NotifierKind::Webhook { url: url.into() },
        burst,
        per,
        timeout: Duration::from_secs(2),
        attempts,
    }
}

async fn bounded<F: std::future::Future>(f: F) -> F::Output {
    tokio::time::timeout(Duration::from_secs(20), f)
        .await
        .expect("test took too long")
}

/// A tiny HTTP/1.1 receiver: records each request body and answers with
/// the next status from `script` (the last one repeats). Status 0 = hang.
struct Receiver {
    url: String,
    bodies: Arc<Mutex<Vec<Alert>>>,
    hits: Arc<AtomicU64>,
}

async fn receiver(script: Vec<u16>) -> Receiver {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/hook", listener.local_addr().unwrap());
    let bodies = Arc::new(Mutex::new(Vec::new()));
    let hits = Arc::new(AtomicU64::new(0));
    let (b, h) = (bodies.clone(), hits.clone());
    tokio::spawn(async move {
        loop {
            let Ok((mut sock, _)) = listener.accept().await else {
                return;
            };
            let (b, h, script) = (b.clone(), h.clone(), script.clone());
            tokio::spawn(async move {
                let Some(body) = read_request(&mut sock).await else {
                    return;
                };
                let n = h.fetch_add(1, Ordering::SeqCst) as usize;
                let status = script[n.min(script.len() - 1)];
                if status == 0 {
                    // Hang: hold the connection open, never answer.
                    tokio::time::sleep(Duration::from_secs(3600)).await;
                    return;
                }
                if (200..300).contains(&status) {
                    b.lock()
                        .unwrap()
                        .push(serde_json::from_slice(&body).unwrap());
                }
                let resp = format!(
                    "HTTP/1.1 {status} X\r\ncontent-length: 0\r\nconnection: close\r\n\r\n"
                );
                let _ = sock.write_all(resp.as_bytes()).await;
            });
        }
    });
    Receiver { url, bodies, hits }
}

/// Headers up to the blank line, then `content-length` bytes of body.
async fn read_request(sock: &mut tokio::net::TcpStream) -> Option<Vec<u8>> {
    let mut buf = Vec::new();
    let mut chunk = [0u8; 4096];
    let head_end = loop {
        if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            break i + 4;
        }
        let n = sock.read(&mut chunk).await.ok()?;
        if n == 0 {
            return None;
        }
        buf.extend_from_slice(&chunk[..n]);
    };
    let head = String::from_utf8_lossy(&buf[..head_end]).to_string();
    assert!(head.starts_with("POST /hook HTTP/1.1\r\n"), "{head}");
    let len: usize = head
        .lines()
        .find_map(|l| {
            let (k, v) = l.split_once(':')?;
            k.eq_ignore_ascii_case("content-length")
                .then(|| v.trim().parse().ok())?
        })
        .unwrap_or(0);
    while buf.len() < head_end + len {
        let n = sock.read(&mut chunk).await.ok()?;
        if n == 0 {
            return None;
        }
        buf.extend_from_slice(&chunk[..n]);
    }
    Some(buf[head_end..head_end + len].to_vec())
}

async fn wait_for(what: &str, mut cond: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while !cond() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[test]
fn backoff_doubles_and_caps() {
    assert_eq!(backoff(1), Duration::from_millis(200));
    assert_eq!(backoff(2), Duration::from_millis(400));
    assert_eq!(backoff(3), Duration::from_millis(800));
    assert_eq!(backoff(7), Duration::from_secs(10));
    assert_eq!(backoff(100), Duration::from_secs(10));
}

#[test]
fn limiter_buckets_per_service_and_refills() {
    let t0 = Instant::now();
    let mut l = Limiter::new(2, Duration::from_secs(10)); // one token per 5s
    let a = Some("a".to_string());
    assert_eq!(l.admit(&a, t0), Ok(0));
    assert_eq!(l.admit(&a, t0), Ok(0));
    assert_eq!(l.admit(&a, t0), Err(()));
    assert_eq!(l.admit(&a, t0), Err(()));
    // Other services and service-less events have their own buckets.
    assert_eq!(l.admit(&Some("b".into()), t0), Ok(0));
    assert_eq!(l.admit(&None, t0), Ok(0));
    assert_eq!(l.next_due(), Some(t0 + Duration::from_secs(5)));
    assert!(l.due(t0 + Duration::from_secs(4)).is_empty());
    assert_eq!(l.due(t0 + Duration::from_secs(5)), vec![(a.clone(), 2)]);
    assert_eq!(l.next_due(), None);
    // The summary did not spend the token.
    assert_eq!(l.admit(&a, t0 + Duration::from_secs(5)), Ok(0));
    assert_eq!(l.admit(&a, t0 + Duration::from_secs(5)), Err(()));
    // An event arriving when a token is back carries the count itself.
    assert_eq!(l.admit(&a, t0 + Duration::from_secs(10)), Ok(1));
}

#[test]
fn zero_burst_means_unlimited() {
    let mut l = Limiter::new(0, Duration::from_secs(1));
    for _ in 0..100 {
        assert_eq!(l.admit(&None, Instant::now()), Ok(0));
    }
    assert_eq!(l.next_due(), None);
}

#[tokio::test]
async fn disabled_sends_nothing() {
    let n = Notifier::disabled();
    n.send(ev("failover", Some("cic")));
    assert_eq!(n.stats(), NotifyStats::default());
}

#[tokio::test]
async fn webhook_receives_the_event_as_json() {
    bounded(async {
        let r = receiver(vec![200]).await;
        let (_tx, rx) = crate::shutdown::channel();
        let n = Notifier::spawn(&[webhook(&r.url, 5, Duration::from_secs(60), 3)], rx);
        let e = ev("failover", Some("cic"));
        n.send(e.clone());
        wait_for("delivery", || n.stats().sent == 1).await;
        assert_eq!(*r.bodies.lock().unwrap(), vec![e]);
        assert_eq!(n.stats().failed, 0);
    })
    .await;
}

#[tokio::test]
async fn webhook_retries_after_server_errors() {
    bounded(async {
        let r = receiver(vec![500, 500, 200]).await;
        let (_tx, rx) = crate::shutdown::channel();
        let n = Notifier::spawn(&[webhook(&r.url, 5, Duration::from_secs(60), 5)], rx);
        let started = Instant::now();
        n.send(ev("remap", Some("cic")));
        wait_for("delivery", || n.stats().sent == 1).await;
        // Two backoffs: 200ms + 400ms.
        assert!(started.elapsed() >= Duration::from_millis(600));
        assert_eq!(r.hits.load(Ordering::SeqCst), 3);
        assert_eq!(r.bodies.lock().unwrap().len(), 1);
        assert_eq!(n.stats().failed, 0);
    })
    .await;
}

#[tokio::test]
async fn webhook_gives_up_after_attempts() {
    bounded(async {
        let r = receiver(vec![503]).await;
        let (_tx, rx) = crate::shutdown::channel();
        let n = Notifier::spawn(&[webhook(&r.url, 5, Duration::from_secs(60), 2)], rx);
        n.send(ev("all_down", Some("cic")));
        wait_for("failure", || n.stats().failed == 1).await;
        assert_eq!(r.hits.load(Ordering::SeqCst), 2);
        assert_eq!(n.stats().sent, 0);
    })
    .await;
}

#[cfg(unix)]
#[tokio::test]
async fn command_gets_env_and_json_on_stdin() {
    bounded(async {
        let dir = tempfile::tempdir().unwrap();
        let out = dir.path().join("out");
        let script = format!(
            "printf '%s %s\\n' \"$GGON_EVENT\" \"$GGON_SERVICE\" > {p}; \
             printf '%s|%s|%s|%s|%s|%s\\n' \"$GGON_FROM\" \"$GGON_TO\" \"$GGON_CAUSE\" \
             \"$GGON_WHO\" \"$GGON_AT\" \"$GGON_MESSAGE\" >> {p}; cat >> {p}",
            p = out.display()
        );
        let cfg = NotifierConfig {
            kind: NotifierKind::Command {
                command: vec!["sh".into(), "-c".into(), script],
            },
            burst: 5,
            per: Duration::from_secs(60),
            timeout: Duration::from_secs(5),
            attempts: 1,
        };
        let (_tx, rx) = crate::shutdown::channel();
        let n = Notifier::spawn(&[cfg], rx);
        let e = ev("failback", Some("cic"));
        n.send(e.clone());
        wait_for("command", || n.stats().sent == 1).await;
        let text = std::fs::read_to_string(&out).unwrap();
        let mut lines = text.splitn(3, '\n');
        assert_eq!(lines.next(), Some("failback cic"));
        assert_eq!(
            lines.next(),
            Some("a|b|health|ggon|1700000000|failback for cic")
        );
        let json: Alert = serde_json::from_str(lines.next().unwrap()).unwrap();
        assert_eq!(json, e);
    })
    .await;
}

#[cfg(unix)]
#[tokio::test]
async fn command_failure_and_timeout_are_counted() {
    bounded(async {
        let cfg = |argv: &[&str]| NotifierConfig {
            kind: NotifierKind::Command {
                command: argv.iter().map(|s| s.to_string()).collect(),
            },
            burst: 5,
            per: Duration::from_secs(60),
            timeout: Duration::from_millis(300),
            attempts: 1,
        };
        let (_tx, rx) = crate::shutdown::channel();
        let n = Notifier::spawn(
            &[
                cfg(&["false"]),
                cfg(&["sleep", "30"]),
                cfg(&["/nonexistent/ggon-test"]),
            ],
            rx,
        );
        let started = Instant::now();
        n.send(ev("drain", None));
        wait_for("failures", || n.stats().failed == 3).await;
        assert!(started.elapsed() < Duration::from_secs(5));
        assert_eq!(n.stats().sent, 0);
    })
    .await;
}

#[tokio::test]
async fn rate_limit_suppresses_and_reports_once() {
    bounded(async {
        let r = receiver(vec![200]).await;
        let (_tx, rx) = crate::shutdown::channel();
        let n = Notifier::spawn(&[webhook(&r.url, 3, Duration::from_secs(3600), 1)], rx);
        for _ in 0..10 {
            n.send(ev("failover", Some("cic")));
        }
        wait_for("3 deliveries", || n.stats().sent == 3).await;
        wait_for("7 suppressed", || n.stats().suppressed == 7).await;
        tokio::time::sleep(Duration::from_millis(200)).await;
        assert_eq!(r.bodies.lock().unwrap().len(), 3);
        // A different service is not affected.
        n.send(ev("failover", Some("www")));
        wait_for("other service", || n.stats().sent == 4).await;
    })
    .await;
}

#[tokio::test]
async fn rate_limit_summary_after_refill() {
    bounded(async {
        let r = receiver(vec![200]).await;
        let (_tx, rx) = crate::shutdown::channel();
        // 3 tokens per 1.5s: one back every 500ms (wide enough that the
        // first three deliveries never earn a token back on a busy host).
        let n = Notifier::spawn(&[webhook(&r.url, 3, Duration::from_millis(1500), 1)], rx);
        for _ in 0..10 {
            n.send(ev("failover", Some("cic")));
        }
        // The summary is sent on its own once a token is back, without
        // waiting for another event.
        wait_for("summary", || r.bodies.lock().unwrap().len() == 4).await;
        let bodies = r.bodies.lock().unwrap().clone();
        assert!(bodies[..3].iter().all(|e| e.kind == "failover"));
        let s = &bodies[3];
        assert_eq!(s.kind, "suppressed");
        assert_eq!(s.service.as_deref(), Some("cic"));
        assert_eq!(s.message, "7 events suppressed for cic");
        let st = n.stats();
        assert_eq!((st.sent, st.suppressed), (4, 7));
        // After the refill, events flow again.
        tokio::time::sleep(Duration::from_millis(600)).await;
        n.send(ev("failback", Some("cic")));
        wait_for("next event", || r.bodies.lock().unwrap().len() == 5).await;
        assert_eq!(r.bodies.lock().unwrap()[4].kind, "failback");
    })
    .await;
}

#[tokio::test]
async fn send_never_blocks_on_a_hanging_webhook() {
    bounded(async {
        let r = receiver(vec![0]).await;
        let (tx, rx) = crate::shutdown::channel();
        let n = Notifier::spawn(&[webhook(&r.url, 1000, Duration::from_secs(1), 5)], rx);
        let started = std::time::Instant::now();
        for _ in 0..100 {
            n.send(ev("failover", Some("cic")));
        }
        let took = started.elapsed();
        assert!(took < Duration::from_millis(10), "100 sends took {took:?}");
        assert_eq!(n.stats().dropped, 0);
        tx.trigger();
    })
    .await;
}

#[tokio::test]
async fn full_queue_drops_and_counts() {
    let r = receiver(vec![0]).await;
    let (tx, rx) = crate::shutdown::channel();
    let n = Notifier::spawn(&[webhook(&r.url, 0, Duration::ZERO, 1)], rx);
    for _ in 0..(QUEUE + 50) {
        n.send(ev("failover", Some("cic")));
    }
    // The worker holds at most one event outside the queue.
    let dropped = n.stats().dropped;
    assert!((49..=50).contains(&dropped), "dropped {dropped}");
    tx.trigger();
}

#[cfg(unix)]
#[tokio::test]
async fn slow_webhook_does_not_delay_a_command() {
    bounded(async {
        let r = receiver(vec![0]).await;
        let dir = tempfile::tempdir().unwrap();
        let out = dir.path().join("out");
        let cmd = NotifierConfig {
            kind: NotifierKind::Command {
                command: vec![
                    "sh".into(),
                    "-c".into(),
                    format!("echo \"$GGON_EVENT\" >> {}", out.display()),
                ],
            },
            burst: 10,
            per: Duration::from_secs(60),
            timeout: Duration::from_secs(5),
            attempts: 1,
        };
        let (tx, rx) = crate::shutdown::channel();
        let mut hook = webhook(&r.url, 10, Duration::from_secs(60), 5);
        hook.timeout = Duration::from_secs(30);
        let n = Notifier::spawn(&[hook, cmd], rx);
        let started = Instant::now();
        n.send(ev("failover", Some("cic")));
        n.send(ev("failback", Some("cic")));
        wait_for("command", || {
            std::fs::read_to_string(&out).is_ok_and(|s| s.lines().count() == 2)
        })
        .await;
        assert!(started.elapsed() < Duration::from_secs(5));
        tx.trigger();
    })
    .await;
}

#[tokio::test]
async fn shutdown_stops_retrying() {
    bounded(async {
        let r = receiver(vec![500]).await;
        let (tx, rx) = crate::shutdown::channel();
        let mut cfg = webhook(&r.url, 5, Duration::from_secs(60), 20);
        cfg.timeout = Duration::from_secs(1);
        let n = Notifier::spawn(&[cfg], rx);
        n.send(ev("failover", Some("cic")));
        wait_for("first attempt", || r.hits.load(Ordering::SeqCst) >= 1).await;
        let started = Instant::now();
        tx.trigger();
        wait_for("give up", || n.stats().failed == 1).await;
        assert!(started.elapsed() < Duration::from_secs(2));
    })
    .await;
}
