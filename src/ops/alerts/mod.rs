//! Notifications: telling people (webhooks) and programs (commands) that
//! something happened — failover, failback, remap, all targets down, ...
//!
//! Owns: one bounded queue and one worker task per configured notifier, the
//! per-(notifier, service) rate limit with its "N events suppressed" summary,
//! delivery (HTTP POST of the JSON event, or a command run without a shell
//! with the event in `GGON_*` variables and as JSON on stdin), retries with
//! exponential backoff, and the delivery counters ([`NotifyStats`]).
//!
//! It must not touch service state, decide what is worth notifying, or block
//! its caller: [`Notifier::send`] only queues, and a full queue drops the event
//! (counted) rather than waiting. A slow or dead notifier delays only its own
//! queue. It does not log the events themselves (the controller does that).

use std::collections::HashMap;
use std::process::Stdio;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use tokio::io::AsyncWriteExt;
use tokio::sync::mpsc;

use crate::shutdown::Shutdown;
use tokio::time::Instant;
use tracing::{debug, warn};

use crate::config::{NotifierConfig, NotifierKind};
use crate::decide::{Event, EventCause, EventKind};

/// Events waiting per notifier; beyond this, [`Notifier::send`] drops.
const QUEUE: usize = 1024;
/// First retry delay; doubled per attempt up to [`BACKOFF_MAX`].
const BACKOFF_START: Duration = Duration::from_millis(200);
const BACKOFF_MAX: Duration = Duration::from_secs(10);
/// At shutdown, what is already queued gets one attempt each within this.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(3);
/// Rate-limit buckets kept before idle (full, nothing suppressed) ones are pruned.
const MAX_BUCKETS: usize = 1024;

/// One event as delivered to every notifier: the [`Event`] (its fields at
/// the top level of the JSON), plus `at` and a one-line `message`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Alert {
    #[serde(flatten)]
    pub event: Event,
    /// Unix seconds (the event's time).
    pub at: u64,
    /// One human-readable line.
    pub message: String,
}

impl From<Event> for Alert {
    fn from(event: Event) -> Alert {
        Alert {
            at: event.time,
            message: event.message(),
            event,
        }
    }
}

impl std::ops::Deref for Alert {
    type Target = Event;
    fn deref(&self) -> &Event {
        &self.event
    }
}

/// Delivery counters, summed over all notifiers (one event sent to two
/// notifiers counts twice).
#[derive(Serialize, Clone, Debug, Default, PartialEq, Eq)]
pub struct NotifyStats {
    /// Deliveries that succeeded (including "suppressed" summaries).
    pub sent: u64,
    /// Deliveries that failed after all attempts.
    pub failed: u64,
    /// Events held back by the rate limit.
    pub suppressed: u64,
    /// Events dropped because a notifier's queue was full.
    pub dropped: u64,
}

#[derive(Default)]
struct Counters {
    sent: AtomicU64,
    failed: AtomicU64,
    suppressed: AtomicU64,
    dropped: AtomicU64,
}

/// Handle for sending events; cheap to clone.
#[derive(Clone)]
pub struct Notifier {
    inner: Arc<Inner>,
}

struct Inner {
    queues: Vec<mpsc::Sender<Alert>>,
    counters: Arc<Counters>,
}

impl Notifier {
    /// Start one worker task per notifier. Must be called inside a tokio
    /// runtime. Workers stop at shutdown, after giving what is already queued one attempt each.
    pub fn spawn(configs: &[NotifierConfig], shutdown: Shutdown) -> Notifier {
        let counters = Arc::new(Counters::default());
        let mut queues = Vec::with_capacity(configs.len());
        for cfg in configs {
            let (tx, rx) = mpsc::channel(QUEUE);
            let worker = Worker {
                sink: Sink::new(cfg),
                limiter: Limiter::new(cfg.burst, cfg.per),
                attempts: cfg.attempts.max(1),
                counters: counters.clone(),
            };
            tokio::spawn(worker.run(rx, shutdown.clone()));
            queues.push(tx);
        }
        Notifier {
            inner: Arc::new(Inner { queues, counters }),
        }
    }

    /// A notifier that sends nothing.
    pub fn disabled() -> Notifier {
        Notifier {
            inner: Arc::new(Inner {
                queues: Vec::new(),
                counters: Arc::default(),
            }),
        }
    }

    /// Queue `ev` for every notifier and return at once. Never blocks, never
    /// fails: if a notifier's queue is full (or its worker has stopped), the
    /// event is dropped for that notifier and counted in `dropped`.
    pub fn send(&self, ev: impl Into<Alert>) {
        let ev = ev.into();
        if let Some((last, rest)) = self.inner.queues.split_last() {
            for q in rest {
                self.enqueue(q, ev.clone());
            }
            self.enqueue(last, ev);
        }
    }

    fn enqueue(&self, queue: &mpsc::Sender<Alert>, ev: Alert) {
        if queue.try_send(ev).is_err() {
            self.inner.counters.dropped.fetch_add(1, Ordering::Relaxed);
        }
    }

    pub fn stats(&self) -> NotifyStats {
        let c = &self.inner.counters;
        NotifyStats {
            sent: c.sent.load(Ordering::Relaxed),
            failed: c.failed.load(Ordering::Relaxed),
            suppressed: c.suppressed.load(Ordering::Relaxed),
            dropped: c.dropped.load(Ordering::Relaxed),
        }
    }
}



// ---------------------------------------------------------------------------
// Rate limit

/// Token buckets per service for one notifier: `burst` tokens, refilled
/// continuously at `burst / per`.
struct Limiter {
    /// None = unlimited (`burst` or `per` of zero).
    rate: Option<(f64, f64)>,
    buckets: HashMap<Option<String>, Bucket>,
}

struct Bucket {
    tokens: f64,
    last: Instant,
    suppressed: u64,
}

impl Limiter {
    fn new(burst: u32, per: Duration) -> Limiter {
        let rate = (burst > 0 && !per.is_zero())
            .then(|| (f64::from(burst), f64::from(burst) / per.as_secs_f64()));
        Limiter {
            rate,
            buckets: HashMap::new(),
        }
    }

    fn bucket(&mut self, service: &Option<String>, now: Instant) -> Option<&mut Bucket> {
        let (burst, per_sec) = self.rate?;
        if self.buckets.len() >= MAX_BUCKETS && !self.buckets.contains_key(service) {
            self.prune(now);
        }
        let b = self.buckets.entry(service.clone()).or_insert(Bucket {
            tokens: burst,
            last: now,
            suppressed: 0,
        });
        let elapsed = now.saturating_duration_since(b.last).as_secs_f64();
        b.tokens = (b.tokens + elapsed * per_sec).min(burst);
        b.last = now;
        Some(b)
    }

    /// Take a token for one event. `Ok(n)`: send it, after a summary of `n`
    /// suppressed events if `n > 0`. `Err(())`: suppressed (counted here).
    fn admit(&mut self, service: &Option<String>, now: Instant) -> Result<u64, ()> {
        let Some(b) = self.bucket(service, now) else {
            return Ok(0);
        };
        if b.tokens >= 1.0 {
            b.tokens -= 1.0;
            Ok(std::mem::take(&mut b.suppressed))
        } else {
            b.suppressed += 1;
            Err(())
        }
    }

    /// Summaries now due: services with suppressed events whose bucket has a
    /// token again. The summary itself does not spend the token.
    fn due(&mut self, now: Instant) -> Vec<(Option<String>, u64)> {
        let waiting: Vec<Option<String>> = self
            .buckets
            .iter()
            .filter(|(_, b)| b.suppressed > 0)
            .map(|(k, _)| k.clone())
            .collect();
        let mut out = Vec::new();
        for key in waiting {
            if let Some(b) = self.bucket(&key, now) {
                if b.tokens >= 1.0 {
                    out.push((key, std::mem::take(&mut b.suppressed)));
                }
            }
        }
        out
    }

    /// When the next summary becomes due, if any is waiting.
    fn next_due(&self) -> Option<Instant> {
        let (_, per_sec) = self.rate?;
        self.buckets
            .values()
            .filter(|b| b.suppressed > 0)
            .map(|b| {
                let missing = (1.0 - b.tokens).max(0.0);
                b.last + Duration::from_secs_f64(missing / per_sec)
            })
            .min()
    }

    fn prune(&mut self, now: Instant) {
        let Some((burst, per_sec)) = self.rate else {
            return;
        };
        self.buckets.retain(|_, b| {
            let elapsed = now.saturating_duration_since(b.last).as_secs_f64();
            b.suppressed > 0 || b.tokens + elapsed * per_sec < burst
        });
    }
}

fn summary(service: Option<String>, count: u64) -> Alert {
    let what = service.as_deref().unwrap_or("events without a service");
    let message = format!("{count} events suppressed for {what}");
    let mut event = Event::new(crate::decide::unix_now(), EventKind::Suppressed, EventCause::RateLimit)
        .reason(&message)
        .who("ggon");
    event.service = service;
    Alert {
        at: event.time,
        event,
        message,
    }
}

// ---------------------------------------------------------------------------
// Delivery

enum Sink {
    Webhook {
        url: String,
        client: Result<reqwest::Client, String>,
    },
    Command {
        argv: Vec<String>,
        timeout: Duration,
    },
}

impl Sink {
    fn new(cfg: &NotifierConfig) -> Sink {
        match &cfg.kind {
            NotifierKind::Webhook { url } => Sink::Webhook {
                url: url.clone(),
                client: reqwest::Client::builder()
                    .timeout(cfg.timeout)
                    .redirect(reqwest::redirect::Policy::none())
                    .user_agent(concat!("ggon/", env!("CARGO_PKG_VERSION"), " notifier"))
                    .build()
                    .map_err(|e| e.to_string()),
            },
            NotifierKind::Command { command } => Sink::Command {
                argv: command.clone(),
                timeout: cfg.timeout,
            },
        }
    }

    fn describe(&self) -> String {
        match self {
            Sink::Webhook { url, .. } => format!("webhook {url}"),
            Sink::Command { argv, .. } => format!("command {argv:?}"),
        }
    }

    /// One delivery attempt.
    async fn attempt(&self, ev: &Alert) -> Result<(), String> {
        match self {
            Sink::Webhook { url, client } => {
                let client = client.as_ref().map_err(|e| format!("HTTP client: {e}"))?;
                let resp = client
                    .post(url)
                    .json(ev)
                    .send()
                    .await
                    .map_err(|e| error_chain(&e))?;
                let status = resp.status();
                if status.is_success() {
                    Ok(())
                } else {
                    Err(format!("HTTP status {status}"))
                }
            }
            Sink::Command { argv, timeout } => run_command(argv, ev, *timeout).await,
        }
    }
}

fn error_chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut src = e.source();
    while let Some(inner) = src {
        s.push_str(": ");
        s.push_str(&inner.to_string());
        src = inner.source();
    }
    s
}

async fn run_command(argv: &[String], ev: &Alert, timeout: Duration) -> Result<(), String> {
    let Some((program, args)) = argv.split_first() else {
        return Err("empty command".into());
    };
    let opt = |v: &Option<String>| v.clone().unwrap_or_default();
    let json = serde_json::to_vec(ev).map_err(|e| e.to_string())?;
    let mut cmd = tokio::process::Command::new(program);
    cmd.args(args)
        .env("GGON_EVENT", ev.kind.as_str())
        .env("GGON_SERVICE", opt(&ev.service))
        .env("GGON_FROM", opt(&ev.from))
        .env("GGON_TO", opt(&ev.to))
        .env("GGON_CAUSE", ev.cause.as_str())
        .env("GGON_REASON", &ev.reason)
        .env("GGON_WHO", &ev.who)
        .env("GGON_AT", ev.at.to_string())
        .env("GGON_MESSAGE", &ev.message)
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        // The daemon's stderr (the journal, usually): where a failing
        // notification command can explain itself.
        .stderr(Stdio::inherit())
        .kill_on_drop(true);
    #[cfg(unix)]
    cmd.process_group(0);
    let mut child = cmd
        .spawn()
        .map_err(|e| format!("cannot run {program:?}: {e}"))?;
    let pid = child.id();
    let mut stdin = child.stdin.take();
    let run = async {
        if let Some(stdin) = stdin.as_mut() {
            // A command that ignores stdin may exit before reading: not an error.
            let _ = stdin.write_all(&json).await;
            let _ = stdin.shutdown().await;
        }
        drop(stdin.take());
        child.wait().await
    };
    match tokio::time::timeout(timeout, run).await {
        Ok(Ok(status)) if status.success() => Ok(()),
        Ok(Ok(status)) => Err(format!("{program:?} failed: {status}")),
        Ok(Err(e)) => Err(format!("waiting for {program:?}: {e}")),
        Err(_) => {
            // Not reaped yet, so the group id is still ours: take the whole
            // group (anything the command started) down with it.
            #[cfg(unix)]
            if let Some(pgid) = pid.and_then(|p| i32::try_from(p).ok()).filter(|&p| p > 1) {
                // SAFETY: kill(2) has no memory-safety preconditions; `pgid`
                // is the group our unreaped child leads (`process_group(0)`).
                unsafe {
                    libc::kill(-pgid, libc::SIGKILL);
                }
            }
            #[cfg(not(unix))]
            let _ = pid;
            let _ = child.kill().await;
            Err(format!("{program:?} timed out after {timeout:?}"))
        }
    }
}

fn backoff(retry: u32) -> Duration {
    // retry 1 → 200ms, 2 → 400ms, ... capped.
    let factor = 1u32
        .checked_shl(retry.saturating_sub(1))
        .unwrap_or(u32::MAX);
    BACKOFF_START.saturating_mul(factor).min(BACKOFF_MAX)
}

struct Worker {
    sink: Sink,
    limiter: Limiter,
    attempts: u32,
    counters: Arc<Counters>,
}

impl Worker {
    async fn run(mut self, mut rx: mpsc::Receiver<Alert>, mut shutdown: Shutdown) {
        loop {
            let next_due = self.limiter.next_due();
            let flush = async {
                match next_due {
                    Some(t) => tokio::time::sleep_until(t).await,
                    None => std::future::pending().await,
                }
            };
            tokio::select! {
                biased;
                _ = shutdown.requested() => break,
                ev = rx.recv() => match ev {
                    Some(ev) => self.handle(ev, &mut shutdown).await,
                    None => return,
                },
                _ = flush => self.flush(&mut shutdown).await,
            }
        }
        // Shutting down: no new events (the queue is closed), one attempt
        // each for what is already queued, within a bounded time.
        rx.close();
        self.attempts = 1;
        let drain = async {
            while let Some(ev) = rx.recv().await {
                self.handle(ev, &mut shutdown).await;
            }
        };
        if tokio::time::timeout(SHUTDOWN_GRACE, drain).await.is_err() {
            debug!(notifier = %self.sink.describe(), "notifications left undelivered at shutdown");
        }
    }

    async fn handle(&mut self, ev: Alert, shutdown: &mut Shutdown) {
        match self.limiter.admit(&ev.service, Instant::now()) {
            Ok(0) => {}
            Ok(n) => {
                self.deliver(&summary(ev.service.clone(), n), shutdown)
                    .await
            }
            Err(()) => {
                self.counters.suppressed.fetch_add(1, Ordering::Relaxed);
                return;
            }
        }
        self.deliver(&ev, shutdown).await;
    }

    async fn flush(&mut self, shutdown: &mut Shutdown) {
        for (service, n) in self.limiter.due(Instant::now()) {
            self.deliver(&summary(service, n), shutdown).await;
        }
    }

    /// Deliver with retries; backoff waits end early at shutdown.
    async fn deliver(&self, ev: &Alert, shutdown: &mut Shutdown) {
        let mut last = String::new();
        for attempt in 1..=self.attempts {
            if attempt > 1 {
                tokio::select! {
                    _ = tokio::time::sleep(backoff(attempt - 1)) => {}
                    _ = shutdown.requested() => break,
                }
            }
            match self.sink.attempt(ev).await {
                Ok(()) => {
                    self.counters.sent.fetch_add(1, Ordering::Relaxed);
                    return;
                }
                Err(e) => {
                    debug!(notifier = %self.sink.describe(), attempt, error = %e, "notification attempt failed");
                    last = e;
                }
            }
        }
        self.counters.failed.fetch_add(1, Ordering::Relaxed);
        warn!(
            notifier = %self.sink.describe(),
            event = %ev.kind,
            service = ev.service.as_deref().unwrap_or(""),
            error = %last,
            "notification not delivered"
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;
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
}
