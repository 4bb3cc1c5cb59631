//! Monitoring: how a target is checked.
//!
//! Owns: running one health check (TCP connect, HTTP(S) GET, DNS query or a
//! local command) within its timeout and reducing it to a [`CheckOutcome`]
//! ([`run_check`]), and the per-target schedule that runs those checks and
//! reports [`Observation`]s on a channel ([`spawn_probes`]).
//!
//! Must not touch: health state (rise/fall counting belongs to `health`),
//! failover policy, zones, snapshots or DNS answers. A probe only reports what
//! it saw; it never decides what that means for a service, so nothing here
//! reads `rise`/`fall` or knows which target is active. It holds no global
//! state: inputs are a [`CheckKind`] / [`CheckConfig`], outputs are outcomes.
//!
//! Guarantees the controller can rely on:
//! - [`run_check`] returns within `timeout` plus [`SLACK`], never panics, and
//!   turns every failure (including bad input) into `ok: false` with a short
//!   human-readable `detail`.
//! - Each probe runs in its own task with its own timeout, so a hung target
//!   never delays another target's checks.
//! - HTTP checks open a fresh connection every time (no pooling), follow no
//!   redirects and ignore proxy environment variables: the check measures the
//!   target, not a cached connection or a proxy.
//! - Exec checks run without a shell in their own process group; on timeout
//!   the whole group is killed, so a hung script cannot leak processes.

pub mod health;

use std::io;
use std::net::SocketAddr;
use std::process::{ExitStatus, Stdio};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use anyhow::Context as _;
use hickory_proto::op::{Message, MessageType, OpCode, Query};
use hickory_proto::rr::{Name, RecordType};
use rand::Rng as _;
use tokio::io::{AsyncRead, AsyncReadExt};
use tokio::net::TcpStream;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tokio::time::Instant;

use crate::config::{CheckConfig, CheckKind};
use crate::shutdown::Shutdown;
use crate::proto::codes::parse_rcode;

/// How long [`run_check`] may overrun its `timeout` before it gives up on a
/// check regardless (each check also enforces `timeout` itself, so this only
/// matters if one misbehaves).
pub const SLACK: Duration = Duration::from_millis(100);

/// At most this much of an HTTP body is read when looking for `body_contains`.
pub const BODY_LIMIT: usize = 64 * 1024;

/// At most this much of an exec check's stdout/stderr is kept (the rest is drained).
const CAPTURE_LIMIT: usize = 4096;

/// After an exec check's process exits, how long to wait for its pipes to close
/// (a background grandchild may keep them open indefinitely).
const PIPE_GRACE: Duration = Duration::from_millis(50);

/// `detail` strings are cut to this many characters.
const DETAIL_MAX: usize = 200;

/// A zero interval would spin; probes never run more often than this.
const MIN_INTERVAL: Duration = Duration::from_millis(10);

/// The result of one check.
#[derive(Debug, Clone, serde::Serialize)]
pub struct CheckOutcome {
    pub ok: bool,
    /// Short human text: "HTTP 200", "connect refused", "timeout after 500ms",
    /// "exit status 1", "rcode NXDOMAIN, expected NOERROR".
    pub detail: String,
    /// How long the check took (about `timeout` when it timed out).
    pub latency: Duration,
    /// When the check finished.
    pub at: SystemTime,
}

/// Shared resources for checks: two HTTP clients, one verifying TLS
/// certificates and one not (for `tls_verify = false`). Build once, share via `Arc`.
#[derive(Debug)]
pub struct Checker {
    verified: reqwest::Client,
    unverified: reqwest::Client,
}

impl Checker {
    pub fn new() -> anyhow::Result<Checker> {
        Ok(Checker {
            verified: http_client(true).context("building the HTTP check client")?,
            unverified: http_client(false)
                .context("building the HTTP check client without TLS verification")?,
        })
    }
}

fn http_client(verify_tls: bool) -> reqwest::Result<reqwest::Client> {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .no_proxy()
        .pool_max_idle_per_host(0)
        .user_agent(concat!("ggon/", env!("CARGO_PKG_VERSION"), " health-check"))
        .danger_accept_invalid_certs(!verify_tls)
        .build()
}

/// Identifies what a probe result is about.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct ProbeKey {
    pub service: String,
    pub target: String,
}

impl std::fmt::Display for ProbeKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.service, self.target)
    }
}

/// One outcome for one (service, target), as sent by [`spawn_probes`].
#[derive(Debug, Clone)]
pub struct Observation {
    pub key: ProbeKey,
    pub outcome: CheckOutcome,
}

/// One check, run once, never longer than `timeout` (+ [`SLACK`]). Never panics.
pub async fn run_check(checker: &Checker, kind: &CheckKind, timeout: Duration) -> CheckOutcome {
    let started = Instant::now();
    let check = async {
        match kind {
            CheckKind::Tcp { address } => check_tcp(*address, timeout).await,
            CheckKind::Http {
                url,
                expect_status,
                body_contains,
                host,
                tls_verify,
            } => {
                let client = if *tls_verify {
                    &checker.verified
                } else {
                    &checker.unverified
                };
                let req = HttpCheck {
                    url,
                    expect_status,
                    body_contains: body_contains.as_deref(),
                    host: host.as_deref(),
                };
                with_timeout(timeout, check_http(client, req)).await
            }
            CheckKind::Dns {
                server,
                qname,
                qtype,
                expect_rcode,
            } => check_dns(*server, qname, qtype, expect_rcode, timeout).await,
            CheckKind::Exec { command } => check_exec(command, timeout).await,
        }
    };
    let result = tokio::time::timeout(timeout + SLACK, check)
        .await
        .unwrap_or_else(|_| Err(timeout_detail(timeout)));
    let (ok, detail) = match result {
        Ok(d) => (true, d),
        Err(d) => (false, d),
    };
    CheckOutcome {
        ok,
        detail: shorten(detail),
        latency: started.elapsed(),
        at: SystemTime::now(),
    }
}

/// Spawn one task per (service, target) that runs its check every `interval`
/// (+ random jitter up to `jitter`; the first run comes after a random delay in
/// `[0, jitter]`) and sends an [`Observation`] on `tx`.
///
/// Intervals are measured start to start; a check that takes longer than its
/// interval is followed by the next one at once, never by a burst. Checks run
/// independently: each has its own task and its own timeout, and each check
/// runs in a task of its own, so even a panicking check only yields a failed
/// outcome. Tasks stop at shutdown or when `tx` is closed. Stopping cancels a check in flight (and kills its process,
/// for exec checks). Must be called from within a Tokio runtime.
pub fn spawn_probes(
    checker: Arc<Checker>,
    probes: Vec<(ProbeKey, CheckConfig)>,
    tx: mpsc::Sender<Observation>,
    shutdown: Shutdown,
) -> Vec<JoinHandle<()>> {
    probes
        .into_iter()
        .map(|(key, cfg)| {
            tokio::spawn(probe_loop(
                checker.clone(),
                key,
                cfg,
                tx.clone(),
                shutdown.clone(),
            ))
        })
        .collect()
}

async fn probe_loop(
    checker: Arc<Checker>,
    key: ProbeKey,
    cfg: CheckConfig,
    tx: mpsc::Sender<Observation>,
    mut shutdown: Shutdown,
) {
    let interval = cfg.interval.max(MIN_INTERVAL);
    let mut next = Instant::now() + random_up_to(cfg.jitter);
    loop {
        tokio::select! {
            biased;
            () = shutdown.requested() => return,
            () = tx.closed() => return,
            () = tokio::time::sleep_until(next) => {}
        }
        let outcome = tokio::select! {
            biased;
            () = shutdown.requested() => return,
            () = tx.closed() => return,
            o = run_isolated(&checker, &cfg) => o,
        };
        let obs = Observation {
            key: key.clone(),
            outcome,
        };
        tokio::select! {
            biased;
            () = shutdown.requested() => return,
            sent = tx.send(obs) => if sent.is_err() { return },
        }
        next = (next + interval + random_up_to(cfg.jitter)).max(Instant::now());
    }
}


/// Run one check in a task of its own, so a panic inside a library becomes a
/// failed outcome instead of ending the probe. Dropping this aborts the task.
async fn run_isolated(checker: &Arc<Checker>, cfg: &CheckConfig) -> CheckOutcome {
    struct AbortOnDrop(tokio::task::AbortHandle);
    impl Drop for AbortOnDrop {
        fn drop(&mut self) {
            self.0.abort();
        }
    }

    let started = Instant::now();
    let checker = checker.clone();
    let kind = cfg.kind.clone();
    let timeout = cfg.timeout;
    let task = tokio::spawn(async move { run_check(&checker, &kind, timeout).await });
    let _abort = AbortOnDrop(task.abort_handle());
    match task.await {
        Ok(outcome) => outcome,
        Err(e) => CheckOutcome {
            ok: false,
            detail: if e.is_panic() {
                "check panicked".into()
            } else {
                "check cancelled".into()
            },
            latency: started.elapsed(),
            at: SystemTime::now(),
        },
    }
}

fn random_up_to(max: Duration) -> Duration {
    if max.is_zero() {
        return Duration::ZERO;
    }
    let nanos = u64::try_from(max.as_nanos()).unwrap_or(u64::MAX);
    Duration::from_nanos(rand::rng().random_range(0..=nanos))
}

// ---------------------------------------------------------------------------
// The checks. Each returns Ok(detail) for healthy, Err(detail) for not.

type Verdict = Result<String, String>;

async fn with_timeout(
    timeout: Duration,
    check: impl std::future::Future<Output = Verdict>,
) -> Verdict {
    tokio::time::timeout(timeout, check)
        .await
        .unwrap_or_else(|_| Err(timeout_detail(timeout)))
}

fn timeout_detail(timeout: Duration) -> String {
    format!("timeout after {}ms", timeout.as_millis())
}

fn io_detail(what: &str, e: &io::Error) -> String {
    match e.kind() {
        io::ErrorKind::ConnectionRefused => format!("{what} refused"),
        io::ErrorKind::ConnectionReset => format!("{what}: connection reset"),
        _ => format!("{what}: {e}"),
    }
}

/// Cut `s` to at most [`DETAIL_MAX`] characters.
fn shorten(mut s: String) -> String {
    if let Some((cut, _)) = s.char_indices().nth(DETAIL_MAX) {
        s.truncate(cut);
        s.push('…');
    }
    s
}

async fn check_tcp(address: SocketAddr, timeout: Duration) -> Verdict {
    match tokio::time::timeout(timeout, TcpStream::connect(address)).await {
        Err(_) => Err(timeout_detail(timeout)),
        Ok(Err(e)) => Err(io_detail("connect", &e)),
        Ok(Ok(_stream)) => Ok("connected".into()),
    }
}

struct HttpCheck<'a> {
    url: &'a str,
    expect_status: &'a [u16],
    body_contains: Option<&'a str>,
    host: Option<&'a str>,
}

async fn check_http(client: &reqwest::Client, check: HttpCheck<'_>) -> Verdict {
    let mut req = client.get(check.url);
    if let Some(host) = check.host {
        req = req.header(reqwest::header::HOST, host);
    }
    let mut resp = req.send().await.map_err(|e| http_error_detail(&e))?;
    let status = resp.status().as_u16();
    let status_ok = if check.expect_status.is_empty() {
        (200..=399).contains(&status)
    } else {
        check.expect_status.contains(&status)
    };
    if !status_ok {
        let expected = if check.expect_status.is_empty() {
            "200..=399".to_string()
        } else {
            let list: Vec<String> = check.expect_status.iter().map(u16::to_string).collect();
            list.join(" or ")
        };
        return Err(format!("HTTP {status}, expected {expected}"));
    }
    if let Some(needle) = check.body_contains {
        let body = read_body_prefix(&mut resp, BODY_LIMIT)
            .await
            .map_err(|e| format!("HTTP {status}, reading body: {}", http_error_detail(&e)))?;
        if !contains(&body, needle.as_bytes()) {
            let scope = if body.len() >= BODY_LIMIT {
                " in the first 64 KiB"
            } else {
                ""
            };
            return Err(format!("HTTP {status}, body lacks {needle:?}{scope}"));
        }
    }
    Ok(format!("HTTP {status}"))
}

async fn read_body_prefix(resp: &mut reqwest::Response, limit: usize) -> reqwest::Result<Vec<u8>> {
    let mut body = Vec::new();
    while body.len() < limit {
        match resp.chunk().await? {
            Some(chunk) => {
                let take = chunk.len().min(limit - body.len());
                body.extend_from_slice(&chunk[..take]);
            }
            None => break,
        }
    }
    Ok(body)
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    needle.is_empty() || haystack.windows(needle.len()).any(|w| w == needle)
}

/// reqwest's own message is "error sending request for url (...)"; the cause
/// at the bottom of the chain is what an operator needs.
fn http_error_detail(e: &reqwest::Error) -> String {
    let mut innermost: &dyn std::error::Error = e;
    let mut io_kind = None;
    while let Some(source) = innermost.source() {
        innermost = source;
        if let Some(io) = source.downcast_ref::<io::Error>() {
            io_kind = Some(io.kind());
        }
    }
    if io_kind == Some(io::ErrorKind::ConnectionRefused) {
        return "connect refused".into();
    }
    let cause = innermost.to_string();
    if e.is_builder() {
        format!("invalid request: {cause}")
    } else if e.is_connect() {
        format!("connect: {cause}")
    } else {
        cause
    }
}

async fn check_dns(
    server: SocketAddr,
    qname: &str,
    qtype: &str,
    expect_rcode: &str,
    timeout: Duration,
) -> Verdict {
    let expected =
        parse_rcode(expect_rcode).ok_or_else(|| format!("unknown rcode {expect_rcode:?}"))?;
    let name = Name::from_ascii(qname).map_err(|e| format!("bad qname {qname:?}: {e}"))?;
    let rtype: RecordType = qtype
        .parse()
        .map_err(|_| format!("unknown qtype {qtype:?}"))?;
    let id: u16 = rand::random();
    let mut query = Message::new(id, MessageType::Query, OpCode::Query);
    // Set like `dig` does, so the same check works against a resolver; an
    // authoritative server answers its own names whatever RD says.
    query.metadata.recursion_desired = true;
    query.add_query(Query::query(name, rtype));
    let wire = query
        .to_vec()
        .map_err(|e| format!("cannot encode query: {e}"))?;
    with_timeout(timeout, async {
        let rcode = dns_exchange(server, id, &wire).await?;
        if rcode == expected {
            Ok(format!("rcode {}", crate::proto::codes::rcode_label(rcode)))
        } else {
            Err(format!(
                "rcode {}, expected {}",
                crate::proto::codes::rcode_label(rcode),
                crate::proto::codes::rcode_label(expected)
            ))
        }
    })
    .await
}

/// Send `wire` to `server` over UDP and return the rcode of the first response
/// carrying `id`. The socket is connected, so only the server's datagrams
/// arrive; others with a wrong ID (late answers, spoofs) are skipped.
async fn dns_exchange(server: SocketAddr, id: u16, wire: &[u8]) -> Result<u16, String> {
    let socket = crate::proto::client::connected_udp(server)
        .await
        .map_err(|(what, e)| io_detail(what, &e))?;
    socket.send(wire).await.map_err(|e| io_detail("send", &e))?;
    let mut buf = vec![0u8; 4096];
    loop {
        let n = socket.recv(&mut buf).await.map_err(|e| {
            // An ICMP port-unreachable surfaces as ECONNREFUSED; "refused" alone
            // would read like the REFUSED rcode.
            if e.kind() == io::ErrorKind::ConnectionRefused {
                "port unreachable".to_string()
            } else {
                io_detail("receive", &e)
            }
        })?;
        let datagram = &buf[..n];
        let carries_id =
            datagram.len() >= 2 && u16::from_be_bytes([datagram[0], datagram[1]]) == id;
        if !carries_id {
            continue;
        }
        match Message::from_vec(datagram) {
            Ok(resp) if resp.metadata.message_type == MessageType::Response => {
                return Ok(u16::from(resp.metadata.response_code));
            }
            Ok(_) => continue,
            Err(e) => return Err(format!("malformed response: {e}")),
        }
    }
}

async fn check_exec(argv: &[String], timeout: Duration) -> Verdict {
    let Some((program, args)) = argv.split_first() else {
        return Err("empty command".into());
    };
    let mut cmd = tokio::process::Command::new(program);
    cmd.args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    #[cfg(unix)]
    cmd.process_group(0);
    let mut child = cmd
        .spawn()
        .map_err(|e| format!("cannot run {program:?}: {e}"))?;
    // Declared after `child`, so dropped before it: the group is killed while
    // its leader is not yet reaped, so the group id cannot have been reused.
    let mut group = KillGroupOnDrop::new(child.id());
    let mut stdout = child.stdout.take();
    let mut stderr = child.stderr.take();
    let mut out = Vec::new();
    let mut err = Vec::new();

    let waited = tokio::time::timeout(timeout, async {
        let drain = async {
            tokio::join!(
                read_capped(stdout.as_mut(), &mut out),
                read_capped(stderr.as_mut(), &mut err)
            )
        };
        tokio::pin!(drain);
        let mut drained = false;
        let status = loop {
            tokio::select! {
                status = child.wait() => break status,
                _ = &mut drain, if !drained => drained = true,
            }
        };
        if !drained {
            let _ = tokio::time::timeout(PIPE_GRACE, &mut drain).await;
        }
        status
    })
    .await;

    let status = match waited {
        // `group` (then `child`) is dropped on return: the process group is killed.
        Err(_) => return Err(timeout_detail(timeout)),
        Ok(Err(e)) => return Err(format!("waiting for {program:?}: {e}")),
        Ok(Ok(status)) => status,
    };
    // Reaped: from here on the group id may be reused, so never signal it.
    group.disarm();
    let (first, second) = if status.success() {
        (&out, &err)
    } else {
        (&err, &out)
    };
    let mut detail = exit_detail(status);
    if let Some(line) = first_line(first).or_else(|| first_line(second)) {
        detail.push_str(": ");
        detail.push_str(&line);
    }
    if status.success() {
        Ok(detail)
    } else {
        Err(detail)
    }
}

/// Read `from` to the end, keeping the first [`CAPTURE_LIMIT`] bytes in `into`
/// and discarding the rest (so the child never blocks on a full pipe).
async fn read_capped<R: AsyncRead + Unpin>(from: Option<&mut R>, into: &mut Vec<u8>) {
    let Some(from) = from else { return };
    let mut chunk = [0u8; 1024];
    loop {
        match from.read(&mut chunk).await {
            Ok(0) | Err(_) => return,
            Ok(n) => {
                let room = CAPTURE_LIMIT.saturating_sub(into.len());
                into.extend_from_slice(&chunk[..n.min(room)]);
            }
        }
    }
}

fn first_line(captured: &[u8]) -> Option<String> {
    String::from_utf8_lossy(captured)
        .lines()
        .map(str::trim)
        .find(|l| !l.is_empty())
        .map(str::to_string)
}

fn exit_detail(status: ExitStatus) -> String {
    if let Some(code) = status.code() {
        return format!("exit status {code}");
    }
    #[cfg(unix)]
    {
        use std::os::unix::process::ExitStatusExt as _;
        if let Some(signal) = status.signal() {
            return format!("killed by signal {signal}");
        }
    }
    status.to_string()
}

/// Kills the exec check's process group (the child and anything it started)
/// when dropped, unless disarmed once the child has been reaped.
struct KillGroupOnDrop {
    #[cfg_attr(not(unix), allow(dead_code))]
    pgid: Option<i32>,
}

impl KillGroupOnDrop {
    fn new(pid: Option<u32>) -> Self {
        // pid 0 or 1 would make kill(-pgid) hit our own group or everything.
        let pgid = pid.and_then(|p| i32::try_from(p).ok()).filter(|&p| p > 1);
        KillGroupOnDrop { pgid }
    }

    fn disarm(&mut self) {
        self.pgid = None;
    }
}

impl Drop for KillGroupOnDrop {
    fn drop(&mut self) {
        #[cfg(unix)]
        if let Some(pgid) = self.pgid.take() {
            // SAFETY: kill(2) has no memory-safety preconditions. `pgid` is the
            // process group our unreaped child leads (`process_group(0)`), so
            // it names only processes this check started.
            unsafe {
                libc::kill(-pgid, libc::SIGKILL);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
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
        CheckKind::Dns {
            server,
            qname: "probe.ggon.test".into(),
            qtype: "A".into(),
            expect_rcode: expect_rcode.into(),
        }
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
        let mut kind = dns(server, "NOERROR");
        if let CheckKind::Dns { qtype, .. } = &mut kind {
            *qtype = "NOPE".into();
        }
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
}
