//! Bounds on the control API: what one client may cost it.
//!
//! Owns: accepting connections ([`serve`]: a cap in all and per source
//! address, each connection served by hyper with a header read timeout;
//! when every slot is taken, the oldest connection with no request in
//! progress is evicted to make room, [`Limits::admit`]), the
//! request body bound ([`bounded_body`]: size and read time) and the count of
//! failed authentications per source ([`Limits::auth_failed`]). Every refusal
//! is counted in `ggon_control_refused{reason}` and logged, at most once per
//! [`LOG_EVERY`] per reason (with the number left unlogged), so a flood cannot
//! fill the log either.
//!
//! Why: the control API is the operator's way to remap during an incident.
//! Without bounds, clients that send half a request are held forever, and at
//! the descriptor limit the listener stops accepting, taking that way with
//! it. Caps alone are not enough: clients from many addresses, each within
//! its per-source cap, can together hold every slot for as long as they keep
//! reconnecting, so a full table evicts rather than refuses. Why "oldest
//! without a request in progress": such a connection has cost the server
//! nothing yet but a slot, and an honest client (ggon-ctl sends its request
//! the moment it connects) leaves that state within a round trip, so it is
//! always among the newest and the last to go; a request being served is
//! never cut. It must not know what the routes do.

use std::collections::{BTreeMap, HashMap};
use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::body::Body;
use axum::extract::{ConnectInfo, Request, State};
use axum::http::StatusCode;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::{Json, Router};
use http_body_util::BodyExt;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::service::TowerToHyperService;
use serde_json::json;
use tokio::sync::Notify;
use tower::Layer;
use tracing::warn;

use crate::config::ControlLimits;
use crate::ops::metrics::Metrics;
use crate::shutdown::Shutdown;

/// At most one log line per reason this often; the rest are counted.
pub const LOG_EVERY: Duration = Duration::from_secs(10);

/// Reasons, as they appear in the metric's `reason` label.
pub mod reason {
    pub const CONNECTIONS: &str = "connections";
    pub const CONNECTIONS_PER_SOURCE: &str = "connections_per_source";
    pub const HEADER_TIMEOUT: &str = "header_timeout";
    pub const HEADER_TOO_LARGE: &str = "header_too_large";
    pub const BODY_TIMEOUT: &str = "body_timeout";
    pub const BODY_TOO_LARGE: &str = "body_too_large";
    pub const AUTH_FAILED: &str = "auth_failed";
    pub const AUTH_RATE_LIMITED: &str = "auth_rate_limited";
    /// A TLS listener got no (or a failed) handshake in time.
    pub const TLS_HANDSHAKE: &str = "tls_handshake";
    /// Closed to make room: every slot was taken and this was the oldest
    /// connection with no request in progress.
    pub const EVICTED: &str = "evicted";
}

/// What a failed authentication leads to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AuthVerdict {
    /// Under the limit: answer 401 and log it.
    Refuse,
    /// This failure reached the limit: answer 429, log that the source is limited.
    LimitReached,
    /// Over the limit: answer 429, counted only.
    Limited,
}

/// One admitted connection as the slot table sees it.
pub struct Conn {
    ip: IpAddr,
    /// Requests in progress (headers read, response not yet sent). Only a
    /// connection with none may be evicted.
    busy: AtomicUsize,
    /// Told when the connection was evicted; its task then closes it.
    evict: Notify,
}

/// Requests in progress on one connection; the count goes down when this
/// is dropped (with the response body, once it is sent).
pub struct Busy(Arc<Conn>);

impl Drop for Busy {
    fn drop(&mut self) {
        self.0.busy.fetch_sub(1, Ordering::AcqRel);
    }
}

/// The connection's entry, handed to its requests as an extension so they
/// can mark it busy.
#[derive(Clone)]
pub struct ConnRef(pub Arc<Conn>);

impl ConnRef {
    /// A request's headers were read: not evictable until it is answered.
    pub fn enter(&self) -> Busy {
        self.0.busy.fetch_add(1, Ordering::AcqRel);
        Busy(self.0.clone())
    }
}

#[derive(Default)]
struct Conns {
    next_id: u64,
    /// Admitted connections by admission order (oldest first).
    live: BTreeMap<u64, Arc<Conn>>,
    by_source: HashMap<IpAddr, usize>,
}

impl Conns {
    fn forget(&mut self, id: u64) -> bool {
        let Some(c) = self.live.remove(&id) else {
            return false;
        };
        if let Some(n) = self.by_source.get_mut(&c.ip) {
            *n -= 1;
            if *n == 0 {
                self.by_source.remove(&c.ip);
            }
        }
        true
    }

    /// The oldest connection with no request in progress: it has not
    /// finished sending its request headers (or is idle between requests).
    fn oldest_idle(&self) -> Option<u64> {
        self.live
            .iter()
            .find(|(_, c)| c.busy.load(Ordering::Acquire) == 0)
            .map(|(id, _)| *id)
    }
}

/// The control API's limits and their counters; shared by the accept loop
/// and the middleware.
pub struct Limits {
    pub cfg: ControlLimits,
    metrics: Arc<Metrics>,
    conns: Mutex<Conns>,
    /// Per source: start of its window and failures in it.
    auth: Mutex<HashMap<IpAddr, (Instant, u32)>>,
    /// Per reason: when last logged and how many since.
    logged: Mutex<HashMap<&'static str, (Instant, u64)>>,
}

/// One admitted connection; its slot is given back when dropped (unless it
/// was evicted, which gave it back already).
pub struct Slot {
    limits: Arc<Limits>,
    id: u64,
    pub conn: Arc<Conn>,
    /// The peer of the connection evicted to make room for this one.
    pub displaced: Option<IpAddr>,
}

impl Slot {
    /// Resolves when this connection is evicted to make room for a newer one.
    pub async fn evicted(&self) {
        self.conn.evict.notified().await
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        let mut c = self.limits.conns.lock().expect("not poisoned");
        if c.forget(self.id) {
            self.limits.metrics.control_connections(-1);
        }
    }
}

impl Limits {
    pub fn new(cfg: ControlLimits, metrics: Arc<Metrics>) -> Arc<Limits> {
        Arc::new(Limits {
            cfg,
            metrics,
            conns: Mutex::default(),
            auth: Mutex::default(),
            logged: Mutex::default(),
        })
    }

    /// Count a refusal; returns how many went unlogged before this one when
    /// this one should be logged, None when it should not.
    pub fn refused(&self, reason: &'static str) -> Option<u64> {
        self.metrics.control_refused(reason);
        let mut l = self.logged.lock().expect("not poisoned");
        let now = Instant::now();
        match l.get_mut(reason) {
            Some((at, n)) if now.duration_since(*at) < LOG_EVERY => {
                *n += 1;
                None
            }
            Some((at, n)) => {
                let unlogged = *n;
                (*at, *n) = (now, 0);
                Some(unlogged)
            }
            None => {
                l.insert(reason, (now, 0));
                Some(0)
            }
        }
    }

    /// Admit a connection from `ip`, or say which cap it hit. When every
    /// slot is taken, the oldest connection with no request in progress is
    /// evicted to make room (see [`Conns::oldest_idle`] and
    /// docs/reliability.md): holding a slot then costs an attacker a steady
    /// stream of new connections, and a client that sends its request at
    /// once is the newest, so the last to be evicted. Only when every slot
    /// is serving a request is the new connection refused.
    pub fn admit(self: &Arc<Self>, ip: IpAddr) -> Result<Slot, &'static str> {
        let mut c = self.conns.lock().expect("not poisoned");
        if c.by_source.get(&ip).copied().unwrap_or(0) >= self.cfg.max_connections_per_source {
            return Err(reason::CONNECTIONS_PER_SOURCE);
        }
        let mut displaced = None;
        if c.live.len() >= self.cfg.max_connections {
            let Some(old) = c.oldest_idle() else {
                return Err(reason::CONNECTIONS);
            };
            let conn = c.live[&old].clone();
            c.forget(old);
            conn.evict.notify_one();
            displaced = Some(conn.ip);
        } else {
            self.metrics.control_connections(1);
        }
        let conn = Arc::new(Conn {
            ip,
            busy: AtomicUsize::new(0),
            evict: Notify::new(),
        });
        let id = c.next_id;
        c.next_id += 1;
        c.live.insert(id, conn.clone());
        *c.by_source.entry(ip).or_insert(0) += 1;
        Ok(Slot {
            limits: self.clone(),
            id,
            conn,
            displaced,
        })
    }

    /// A request from `ip` presented no valid token.
    pub fn auth_failed(&self, ip: IpAddr, now: Instant) -> AuthVerdict {
        let mut m = self.auth.lock().expect("not poisoned");
        let window = self.cfg.auth_window;
        if m.len() > 10_000 {
            m.retain(|_, (start, _)| now.duration_since(*start) < window);
        }
        let e = m.entry(ip).or_insert((now, 0));
        if now.duration_since(e.0) >= window {
            *e = (now, 0);
        }
        e.1 += 1;
        let verdict = match e.1.cmp(&self.cfg.auth_failures) {
            std::cmp::Ordering::Less | std::cmp::Ordering::Equal => AuthVerdict::Refuse,
            std::cmp::Ordering::Greater if e.1 == self.cfg.auth_failures + 1 => {
                AuthVerdict::LimitReached
            }
            std::cmp::Ordering::Greater => AuthVerdict::Limited,
        };
        self.metrics.control_refused(match verdict {
            AuthVerdict::Refuse => reason::AUTH_FAILED,
            _ => reason::AUTH_RATE_LIMITED,
        });
        verdict
    }
}

fn refuse(status: StatusCode, message: String) -> Response {
    (status, Json(json!({ "error": message }))).into_response()
}

/// Mark the connection busy from the moment its request's headers are in
/// until the response body is sent (so it cannot be evicted mid-request),
/// then [`read_body`].
pub(super) async fn bounded_body(
    limits: State<Arc<Limits>>,
    peer: ConnectInfo<SocketAddr>,
    req: Request,
    next: Next,
) -> Response {
    let busy = req.extensions().get::<ConnRef>().map(ConnRef::enter);
    let response = read_body(limits, peer, req, next).await;
    match busy {
        None => response,
        Some(busy) => response.map(|inner| Body::new(BusyBody { inner, _busy: busy })),
    }
}

/// A response body that keeps its connection marked busy until it is
/// dropped (sent). Size and end pass through, so a sized body keeps its
/// content-length instead of becoming chunked.
struct BusyBody {
    inner: Body,
    _busy: Busy,
}

impl http_body::Body for BusyBody {
    type Data = axum::body::Bytes;
    type Error = axum::Error;

    fn poll_frame(
        self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Result<http_body::Frame<Self::Data>, Self::Error>>> {
        std::pin::Pin::new(&mut self.get_mut().inner).poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> http_body::SizeHint {
        self.inner.size_hint()
    }
}

/// Read the whole request body within `body_timeout` and `max_body` bytes,
/// then hand the request on; 408 or 413 otherwise.
async fn read_body(
    State(limits): State<Arc<Limits>>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    req: Request,
    next: Next,
) -> Response {
    let max = limits.cfg.max_body;
    let (parts, body) = req.into_parts();
    let declared = parts
        .headers
        .get(axum::http::header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    let too_large = |limits: &Limits| {
        if let Some(unlogged) = limits.refused(reason::BODY_TOO_LARGE) {
            warn!(%peer, max_bytes = max, unlogged, "control request refused: body too large");
        }
        refuse(
            StatusCode::PAYLOAD_TOO_LARGE,
            format!("request body larger than {max} bytes"),
        )
    };
    if declared.is_some_and(|n| n > max as u64) {
        return too_large(&limits);
    }
    let read = http_body_util::Limited::new(body, max).collect();
    match tokio::time::timeout(limits.cfg.body_timeout, read).await {
        Ok(Ok(collected)) => {
            let req = Request::from_parts(parts, Body::from(collected.to_bytes()));
            next.run(req).await
        }
        Ok(Err(e)) if e.is::<http_body_util::LengthLimitError>() => too_large(&limits),
        Ok(Err(e)) => refuse(
            StatusCode::BAD_REQUEST,
            format!("cannot read the request body: {e}"),
        ),
        Err(_) => {
            let t = limits.cfg.body_timeout;
            if let Some(unlogged) = limits.refused(reason::BODY_TIMEOUT) {
                warn!(%peer, timeout = ?t, unlogged, "control request refused: body not sent in time");
            }
            refuse(
                StatusCode::REQUEST_TIMEOUT,
                format!(
                    "request body not received within {}",
                    humantime::format_duration(t)
                ),
            )
        }
    }
}

/// What a refused connection is told before it is closed.
const BUSY: &[u8] = b"HTTP/1.1 503 Service Unavailable\r\ncontent-type: application/json\r\n\
connection: close\r\ncontent-length: 52\r\n\r\n{\"error\":\"too many control connections; try again\"}\n";

/// The peer address given to connections on the Unix socket: no network
/// client can have it, so their failed authentications are counted apart.
pub const LOCAL_PEER: SocketAddr = SocketAddr::new(IpAddr::V4(std::net::Ipv4Addr::UNSPECIFIED), 0);

/// What [`serve`] accepts connections from: the TCP listener, or the Unix
/// socket for operators on the host.
pub trait Listener: Send + 'static {
    type Io: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static;
    fn accept_one(
        &self,
    ) -> impl std::future::Future<Output = std::io::Result<(Self::Io, SocketAddr)>> + Send;
    /// Tell a refused connection why, without waiting.
    fn busy(io: &Self::Io);
}

impl Listener for tokio::net::TcpListener {
    type Io = tokio::net::TcpStream;
    async fn accept_one(&self) -> std::io::Result<(Self::Io, SocketAddr)> {
        self.accept().await
    }
    fn busy(io: &Self::Io) {
        let _ = io.try_write(BUSY);
    }
}

impl Listener for tokio::net::UnixListener {
    type Io = tokio::net::UnixStream;
    async fn accept_one(&self) -> std::io::Result<(Self::Io, SocketAddr)> {
        self.accept().await.map(|(s, _)| (s, LOCAL_PEER))
    }
    fn busy(io: &Self::Io) {
        let _ = io.try_write(BUSY);
    }
}

/// Serve the control API until `shutdown`: accept, admit within the caps,
/// serve each connection with a header read timeout (with `tls`, after a TLS
/// handshake that must finish within the same timeout). On shutdown, stop
/// accepting and let requests in progress finish (the caller bounds the wait).
pub async fn serve<L: Listener>(
    listener: L,
    router: Router,
    limits: Arc<Limits>,
    tls: Option<Arc<rustls::ServerConfig>>,
    mut shutdown: Shutdown,
) {
    let acceptor = tls.map(tokio_rustls::TlsAcceptor::from);
    let mut conns = tokio::task::JoinSet::new();
    loop {
        let accepted = tokio::select! {
            a = listener.accept_one() => a,
            Some(_) = conns.join_next(), if !conns.is_empty() => continue,
            _ = shutdown.requested() => break,
        };
        let (stream, peer) = match accepted {
            Ok(x) => x,
            Err(e) => {
                // Out of descriptors, most likely: wait for some to be freed.
                warn!(error = %e, "control API cannot accept a connection");
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        let slot = match limits.admit(peer.ip()) {
            Ok(s) => s,
            Err(why) => {
                if let Some(unlogged) = limits.refused(why) {
                    warn!(%peer, reason = why, unlogged,
                        max = limits.cfg.max_connections,
                        per_source = limits.cfg.max_connections_per_source,
                        "control connection refused: too many open connections");
                }
                L::busy(&stream);
                continue;
            }
        };
        if let Some(old) = slot.displaced {
            if let Some(unlogged) = limits.refused(reason::EVICTED) {
                warn!(%peer, evicted = %old, unlogged, max = limits.cfg.max_connections,
                    "control connection closed to make room: every slot taken, \
                     this was the oldest without a request in progress");
            }
        }
        let work = connection(
            stream,
            (peer, ConnRef(slot.conn.clone())),
            router.clone(),
            limits.clone(),
            acceptor.clone(),
            shutdown.clone(),
        );
        conns.spawn(async move {
            // Evicted: dropping `work` closes the socket.
            tokio::select! {
                _ = slot.evicted() => {}
                _ = work => {}
            }
            drop(slot);
        });
    }
    drop(listener);
    while conns.join_next().await.is_some() {}
}

/// Serve one admitted connection: a TLS handshake (within
/// `header_timeout`) if `acceptor`, then HTTP. `conn` goes to its requests
/// so that they can mark it busy.
async fn connection<S>(
    stream: S,
    (peer, conn): (SocketAddr, ConnRef),
    router: Router,
    limits: Arc<Limits>,
    acceptor: Option<tokio_rustls::TlsAcceptor>,
    stop: Shutdown,
) where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    let router = router.layer(axum::Extension(conn));
    let Some(acceptor) = acceptor else {
        return serve_connection(stream, router, peer, limits, stop).await;
    };
    let t = limits.cfg.header_timeout;
    match tokio::time::timeout(t, acceptor.accept(stream)).await {
        Ok(Ok(tls)) => {
            let router = router.layer(axum::Extension(super::tls::OverTls));
            serve_connection(tls, router, peer, limits, stop).await
        }
        Ok(Err(e)) => {
            if let Some(unlogged) = limits.refused(reason::TLS_HANDSHAKE) {
                warn!(%peer, error = %e, unlogged,
                    "control connection closed: TLS handshake failed (plain HTTP to a TLS listener?)");
            }
        }
        Err(_) => {
            if let Some(unlogged) = limits.refused(reason::TLS_HANDSHAKE) {
                warn!(%peer, timeout = ?t, unlogged,
                    "control connection closed: TLS handshake not finished in time");
            }
        }
    }
}

/// One admitted connection (plain or TLS), until it ends or shutdown.
async fn serve_connection<S>(
    stream: S,
    router: Router,
    peer: SocketAddr,
    limits: Arc<Limits>,
    mut stop: Shutdown,
) where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    let service = axum::Extension(ConnectInfo(peer)).layer(router);
    let mut http = hyper::server::conn::http1::Builder::new();
    http.timer(TokioTimer::new())
        .header_read_timeout(limits.cfg.header_timeout);
    let conn = http.serve_connection(TokioIo::new(stream), TowerToHyperService::new(service));
    tokio::pin!(conn);
    let result = tokio::select! {
        r = conn.as_mut() => r,
        _ = stop.requested() => {
            conn.as_mut().graceful_shutdown();
            conn.await
        }
    };
    if let Err(e) = result {
        connection_error(&limits, peer, &e);
    }
}

fn connection_error(limits: &Limits, peer: SocketAddr, e: &hyper::Error) {
    let t = limits.cfg.header_timeout;
    if e.is_timeout() {
        if let Some(unlogged) = limits.refused(reason::HEADER_TIMEOUT) {
            warn!(%peer, timeout = ?t, unlogged,
                "control connection closed: request headers not sent in time");
        }
    } else if e.is_parse_too_large() {
        if let Some(unlogged) = limits.refused(reason::HEADER_TOO_LARGE) {
            warn!(%peer, unlogged, "control connection closed: request headers too large");
        }
    } else {
        tracing::debug!(%peer, error = %e, "control connection ended with an error");
    }
}

#[cfg(test)]
#[path = "limits_tests.rs"]
mod tests;
