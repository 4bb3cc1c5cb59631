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

mod limiter;
#[cfg(test)]
mod tests;

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
use crate::decide::Event;
use limiter::{summary, Limiter};

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
        Notifier::start(configs, shutdown).0
    }

    /// [`Notifier::spawn`], with the worker tasks for the caller to wait for.
    pub fn start(
        configs: &[NotifierConfig],
        shutdown: Shutdown,
    ) -> (Notifier, Vec<tokio::task::JoinHandle<()>>) {
        let mut workers = Vec::with_capacity(configs.len());
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
            workers.push(tokio::spawn(worker.run(rx, shutdown.clone())));
            queues.push(tx);
        }
        let notifier = Notifier {
            inner: Arc::new(Inner { queues, counters }),
        };
        (notifier, workers)
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

// ---------------------------------------------------------------------------
// Delivery

/// Why one delivery attempt failed (retried, then logged).
#[derive(Debug, thiserror::Error)]
enum DeliveryError {
    /// The webhook's HTTP client could not be built (from the config).
    #[error("HTTP client: {0}")]
    Client(Arc<reqwest::Error>),
    #[error("{}", error_chain(.0))]
    Send(reqwest::Error),
    #[error("HTTP status {0}")]
    Status(reqwest::StatusCode),
    #[error("empty command")]
    EmptyCommand,
    #[error("{0}")]
    Json(serde_json::Error),
    #[error("cannot run {program:?}: {source}")]
    Spawn {
        program: String,
        source: std::io::Error,
    },
    #[error("{program:?} failed: {status}")]
    Failed {
        program: String,
        status: std::process::ExitStatus,
    },
    #[error("waiting for {program:?}: {source}")]
    Wait {
        program: String,
        source: std::io::Error,
    },
    #[error("{program:?} timed out after {timeout:?}")]
    Timeout { program: String, timeout: Duration },
}

enum Sink {
    Webhook {
        url: String,
        client: Result<reqwest::Client, Arc<reqwest::Error>>,
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
                    .map_err(Arc::new),
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
    async fn attempt(&self, ev: &Alert) -> Result<(), DeliveryError> {
        match self {
            Sink::Webhook { url, client } => {
                let client = client
                    .as_ref()
                    .map_err(|e| DeliveryError::Client(e.clone()))?;
                let resp = client
                    .post(url)
                    .json(ev)
                    .send()
                    .await
                    .map_err(DeliveryError::Send)?;
                let status = resp.status();
                if status.is_success() {
                    Ok(())
                } else {
                    Err(DeliveryError::Status(status))
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

async fn run_command(argv: &[String], ev: &Alert, timeout: Duration) -> Result<(), DeliveryError> {
    let Some((program, args)) = argv.split_first() else {
        return Err(DeliveryError::EmptyCommand);
    };
    let opt = |v: &Option<String>| v.clone().unwrap_or_default();
    let json = serde_json::to_vec(ev).map_err(DeliveryError::Json)?;
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
    let mut child = cmd.spawn().map_err(|source| DeliveryError::Spawn {
        program: program.clone(),
        source,
    })?;
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
        Ok(Ok(status)) => Err(DeliveryError::Failed {
            program: program.clone(),
            status,
        }),
        Ok(Err(source)) => Err(DeliveryError::Wait {
            program: program.clone(),
            source,
        }),
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
            Err(DeliveryError::Timeout {
                program: program.clone(),
                timeout,
            })
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
        let mut last = None;
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
                    last = Some(e);
                }
            }
        }
        self.counters.failed.fetch_add(1, Ordering::Relaxed);
        warn!(
            notifier = %self.sink.describe(),
            event = %ev.kind,
            service = ev.service.as_deref().unwrap_or(""),
            error = %last.map_or_else(String::new, |e| e.to_string()),
            "notification not delivered"
        );
    }
}
