//! Control API: HTTP + JSON on a loopback listener, for `ggon-ctl` and scripts.
//!
//! Owns: the routes, turning requests into typed [`Command`]s (the bodies
//! are the shared request types of [`crate::decide::requests`], parsed here
//! into what the controller acts on, so a bad duration is a 400 before the
//! controller sees it), and mapping
//! controller results to HTTP statuses. Authentication is [`super::auth`],
//! applied once in front of every protected route. It must not change
//! service state itself: it sends commands to the controller, the single
//! writer.

use std::net::SocketAddr;
use std::sync::Arc;

use axum::extract::{ConnectInfo, Path as UrlPath, State};
use axum::http::StatusCode;
use axum::middleware;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Extension, Json, Router};
use serde::Deserialize;
use serde_json::json;
use tracing::warn;

use super::auth::{auth, Gate};
use super::extract::{Body, Params};
use super::limits::{bounded_body, Limits};
use super::tokens::Token;
use crate::decide::requests::{DrainRequest, DrillRequest, HistoryQuery, RemapRequest};
use crate::decide::{Actor, Command, ControllerHandle, CtlError};
use crate::load::ReloadRequest;

#[derive(Clone)]
struct AppState {
    ctl: ControllerHandle,
    reload: tokio::sync::mpsc::Sender<ReloadRequest>,
    metrics: Arc<crate::ops::metrics::Metrics>,
    stats: Arc<crate::dns::stats::Stats>,
    cluster: Option<crate::cluster::ClusterHandle>,
    checks: Arc<crate::decide::checklog::CheckLog>,
    /// Cluster mode: the other nodes' control APIs (`reload --cluster`).
    peers: Option<super::forward::Forwarder>,
}

/// What the read-only pages need besides the controller.
pub struct Pages {
    pub metrics: Arc<crate::ops::metrics::Metrics>,
    pub stats: Arc<crate::dns::stats::Stats>,
    /// Serve `/` and `/metrics` without a token.
    pub public: bool,
    /// Cluster mode: changes go to the leader, history comes from etcd.
    pub cluster: Option<crate::cluster::ClusterHandle>,
    /// Bounds on connections, bodies and failed authentications.
    pub limits: Arc<Limits>,
    /// Recent check results per target (the health lanes), read only.
    pub checks: Arc<crate::decide::checklog::CheckLog>,
    /// With control TLS: the CA the leader's certificate is checked
    /// against when a change is passed on to it (`[control] tls_ca_file`).
    pub peer_roots: Option<Vec<rustls::pki_types::CertificateDer<'static>>>,
}

fn error_response(e: CtlError) -> Response {
    let status = match e {
        CtlError::NotFound(_) => StatusCode::NOT_FOUND,
        CtlError::Conflict(_) => StatusCode::CONFLICT,
        CtlError::BadRequest(_) => StatusCode::BAD_REQUEST,
        CtlError::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        CtlError::Unavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
    };
    (status, Json(json!({"error": e.to_string()}))).into_response()
}

fn reply<T: serde::Serialize>(r: Result<Result<T, CtlError>, CtlError>) -> Response {
    match r.and_then(|x| x) {
        Ok(v) => Json(v).into_response(),
        Err(e) => error_response(e),
    }
}

/// `GET /v1/status` filters; see [`super::select`].
#[doc(hidden)]
#[derive(Debug, Deserialize)]
pub struct StatusQuery {
    /// Comma-separated service names.
    pub service: Option<String>,
    /// Only problem services.
    #[serde(default)]
    pub down: bool,
    /// Only per-region services with this region (and only its answer).
    pub region: Option<String>,
}

async fn status(State(app): State<AppState>, Params(q): Params<StatusQuery>) -> Response {
    let filter = super::select::Filter {
        services: super::select::Filter::names(q.service.as_deref()),
        down: q.down,
        region: q.region,
        text: None,
    };
    match app.ctl.call(|reply| Command::Status { reply }).await {
        Ok(mut s) => match filter.apply(&mut s) {
            Ok(()) => Json(s).into_response(),
            Err(e) => error_response(e),
        },
        Err(e) => error_response(e),
    }
}

async fn remap(
    State(app): State<AppState>,
    UrlPath(service): UrlPath<String>,
    Extension(actor): Extension<Actor>,
    Body(request): Body<RemapRequest>,
) -> Response {
    let request = match request.parse() {
        Ok(r) => r,
        Err(e) => return error_response(e),
    };
    reply(
        app.ctl
            .call(|reply| Command::Remap {
                service,
                request,
                actor,
                reply,
            })
            .await,
    )
}

/// `?region=eu`: release one region of a per-region service.
#[doc(hidden)]
#[derive(Debug, Deserialize)]
pub struct ReleaseParams {
    pub region: Option<String>,
}

async fn release(
    State(app): State<AppState>,
    UrlPath(service): UrlPath<String>,
    Extension(actor): Extension<Actor>,
    Params(params): Params<ReleaseParams>,
) -> Response {
    reply(
        app.ctl
            .call(|reply| Command::Release {
                service,
                region: params.region,
                actor,
                reply,
            })
            .await,
    )
}

/// `POST /v1/dnssec/{zone}/roll`'s body.
#[doc(hidden)]
#[derive(Debug, Deserialize)]
pub struct RollRequest {
    pub kind: crate::sign::roll::RollKind,
}

async fn dnssec_roll(
    State(app): State<AppState>,
    UrlPath(zone): UrlPath<String>,
    Extension(actor): Extension<Actor>,
    Body(request): Body<RollRequest>,
) -> Response {
    reply(
        app.ctl
            .call(|reply| Command::DnssecRoll {
                zone,
                kind: request.kind,
                actor,
                reply,
            })
            .await,
    )
}

/// A follower's UPDATE, passed on to the leader (see `super::relay`).
async fn zone_update(
    State(app): State<AppState>,
    UrlPath(zone): UrlPath<String>,
    Body(request): Body<super::relay::RelayedUpdate>,
) -> Response {
    let (status, answer) = super::relay::apply_relayed(&app.ctl, &zone, request).await;
    (status, Json(answer)).into_response()
}

/// The signed zones' keys, rolls and key policies (what DNS cannot show:
/// key states, a roll's next step, the parent's last answer).
async fn dnssec_status(State(app): State<AppState>) -> Response {
    match app.ctl.call(|reply| Command::DnssecStatus { reply }).await {
        Ok(v) => Json(v).into_response(),
        Err(e) => error_response(e),
    }
}

async fn drain(
    State(app): State<AppState>,
    UrlPath((service, target)): UrlPath<(String, String)>,
    Extension(actor): Extension<Actor>,
    Body(request): Body<DrainRequest>,
) -> Response {
    let request = match request.parse() {
        Ok(r) => r,
        Err(e) => return error_response(e),
    };
    reply(
        app.ctl
            .call(|reply| Command::Drain {
                service,
                target,
                request,
                actor,
                reply,
            })
            .await,
    )
}

async fn undrain(
    State(app): State<AppState>,
    UrlPath((service, target)): UrlPath<(String, String)>,
    Extension(actor): Extension<Actor>,
) -> Response {
    reply(
        app.ctl
            .call(|reply| Command::Undrain {
                service,
                target,
                actor,
                reply,
            })
            .await,
    )
}

async fn drill(
    State(app): State<AppState>,
    UrlPath(service): UrlPath<String>,
    Extension(actor): Extension<Actor>,
    Body(request): Body<DrillRequest>,
) -> Response {
    let request = match request.parse() {
        Ok(r) => r,
        Err(e) => return error_response(e),
    };
    reply(
        app.ctl
            .call(|reply| Command::Drill {
                service,
                request,
                actor,
                reply,
            })
            .await,
    )
}

/// `GET /v1/history`'s query string. Public (hidden), like the other
/// request types below, for the `control` fuzz target.
#[doc(hidden)]
#[derive(Debug, Deserialize)]
pub struct HistoryParams {
    pub service: Option<String>,
    /// Unix seconds, or a duration ("1h") meaning that long ago.
    pub since: Option<String>,
    pub limit: Option<usize>,
}

impl HistoryParams {
    /// The query the controller is handed, `since` read (a duration is
    /// counted back from `now`, unix seconds); a bad `since` is a 400.
    pub fn parse(self, now: u64) -> Result<HistoryQuery, CtlError> {
        let since = match self.since.as_deref() {
            None => None,
            Some(s) => match s.parse::<u64>() {
                Ok(t) => Some(t),
                Err(_) => match humantime::parse_duration(s) {
                    Ok(d) => Some(now.saturating_sub(d.as_secs())),
                    Err(e) => return Err(CtlError::BadRequest(format!("bad since `{s}`: {e}"))),
                },
            },
        };
        Ok(HistoryQuery {
            service: self.service,
            since,
            limit: self.limit.unwrap_or(1000),
        })
    }
}

async fn history(State(app): State<AppState>, Params(q): Params<HistoryParams>) -> Response {
    let query = match q.parse(crate::decide::unix_now()) {
        Ok(query) => query,
        Err(e) => return error_response(e),
    };
    if let Some(cluster) = &app.cluster {
        // Cluster mode: the history the leaders wrote to etcd.
        let (service, since, limit) = (query.service.as_deref(), query.since, query.limit);
        return match cluster.history(service, since, limit).await {
            Ok(v) => Json(json!({ "entries": v })).into_response(),
            Err(e) => error_response(CtlError::Unavailable(format!(
                "the shared history cannot be read: {e}"
            ))),
        };
    }
    match app
        .ctl
        .call(|reply| Command::History { query, reply })
        .await
    {
        Ok(v) => Json(json!({ "entries": v })).into_response(),
        Err(e) => error_response(e),
    }
}

/// `?cluster=true`: reload every node of the cluster (see
/// [`super::cluster_reload`]).
#[derive(Deserialize, Default)]
struct ReloadParams {
    #[serde(default)]
    cluster: bool,
}

async fn reload(
    State(app): State<AppState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    Params(params): Params<ReloadParams>,
    headers: axum::http::HeaderMap,
) -> Response {
    let (tx, rx) = tokio::sync::oneshot::channel();
    if app.reload.send(tx).await.is_err() {
        return error_response(CtlError::Internal("shutting down".into()));
    }
    let own = match rx.await {
        Ok(Ok(summary)) => Ok(summary),
        Ok(Err(e)) => {
            warn!(%peer, error = %e, "reload rejected; the running configuration stays");
            Err(CtlError::BadRequest(e.to_string()))
        }
        Err(_) => return error_response(CtlError::Internal("shutting down".into())),
    };
    let Some(peers) = app.peers.as_ref().filter(|_| params.cluster) else {
        return match own {
            Ok(summary) => Json(json!({ "reloaded": true, "summary": summary })).into_response(),
            Err(e) => error_response(e),
        };
    };
    let node = peers.cluster.view.lock().unwrap().node.clone();
    let own = match own {
        Ok(summary) => super::cluster_reload::NodeReload {
            node,
            ok: true,
            result: summary,
        },
        Err(e) => super::cluster_reload::NodeReload {
            node,
            ok: false,
            result: e.to_string(),
        },
    };
    Json(super::cluster_reload::reload_others(peers, &headers, own).await).into_response()
}

/// The control API's routes.
pub fn router(
    ctl: ControllerHandle,
    tokens: Vec<Token>,
    reload_tx: tokio::sync::mpsc::Sender<ReloadRequest>,
    pages: Pages,
) -> Router {
    let limits = pages.limits.clone();
    let tokens = Arc::new(Gate {
        tokens,
        limits: limits.clone(),
        sessions: Default::default(),
    });
    let roots = pages.peer_roots;
    let forwarder = pages
        .cluster
        .clone()
        .map(|c| super::forward::Forwarder::new(c, roots.as_deref()));
    let app = AppState {
        ctl,
        reload: reload_tx,
        metrics: pages.metrics,
        stats: pages.stats,
        cluster: pages.cluster,
        checks: pages.checks,
        peers: forwarder.clone(),
    };
    let changes = Router::new()
        .route("/v1/services/{service}/remap", post(remap))
        .route("/v1/services/{service}/release", post(release))
        .route("/v1/dnssec/{zone}/roll", post(dnssec_roll))
        .route("/v1/zones/{zone}/update", post(zone_update))
        .route("/v1/services/{service}/drill", post(drill))
        .route("/v1/services/{service}/targets/{target}/drain", post(drain))
        .route(
            "/v1/services/{service}/targets/{target}/undrain",
            post(undrain),
        )
        .layer(middleware::from_fn_with_state(
            forwarder,
            super::forward::to_leader,
        ));
    let read_only = Router::new()
        .route("/", get(status_page))
        .route("/metrics", get(metrics));
    let read_only = if pages.public {
        read_only
    } else {
        read_only.layer(middleware::from_fn_with_state(tokens.clone(), auth))
    };
    let api = Router::new()
        .route("/v1/status", get(status))
        .route("/v1/history", get(history))
        .route("/v1/dnssec", get(dnssec_status))
        .route("/v1/reload", post(reload))
        .merge(changes)
        .layer(middleware::from_fn_with_state(tokens.clone(), auth));
    let login = Router::new()
        .route(
            "/login",
            get(super::login::login_page).post(super::login::login),
        )
        .route("/logout", post(super::login::logout))
        .with_state(tokens);
    api.merge(read_only)
        .with_state(app)
        .merge(login)
        .layer(middleware::from_fn_with_state(limits, bounded_body))
}

async fn status_view(app: &AppState) -> Result<crate::decide::StatusView, CtlError> {
    app.ctl.call(|reply| Command::Status { reply }).await
}

/// Prometheus (OpenMetrics) text, gzip-compressed when the scraper accepts
/// it (Prometheus does: about a tenth of the bytes at scale).
async fn metrics(State(app): State<AppState>, headers: axum::http::HeaderMap) -> Response {
    use axum::http::header;
    let s = match status_view(&app).await {
        Ok(s) => s,
        Err(e) => return error_response(e),
    };
    let text = app.metrics.render(&s, &app.stats.totals());
    let accept = headers
        .get(header::ACCEPT_ENCODING)
        .and_then(|v| v.to_str().ok());
    let content_type = (header::CONTENT_TYPE, crate::ops::metrics::CONTENT_TYPE);
    let vary = (header::VARY, "Accept-Encoding");
    if crate::ops::metrics::accepts_gzip(accept) {
        let body = crate::ops::metrics::gzip(&text);
        (
            [content_type, vary, (header::CONTENT_ENCODING, "gzip")],
            body,
        )
            .into_response()
    } else {
        ([content_type, vary], text).into_response()
    }
}

/// `?range=`, and the search box (`?q=`, `?down=1`) of the status page.
#[doc(hidden)]
#[derive(Debug, Default, serde::Deserialize)]
pub struct PageQuery {
    pub range: Option<String>,
    #[serde(default)]
    pub q: String,
    /// Problem services only: any value but empty, `0` or `false` (the
    /// page's checkbox sends `1`).
    #[serde(default)]
    pub down: String,
}

/// The read-only HTML status page (refreshes itself every 5 s). Its
/// pictures cover `?range=` (1h, 6h, 24h, 7d), by default the shortest in
/// which the newest change is visible.
async fn status_page(
    State(app): State<AppState>,
    session: Option<Extension<super::session::SessionCsrf>>,
    axum::extract::Query(q): axum::extract::Query<PageQuery>,
) -> Response {
    let chosen = match q.range.as_deref().map(super::range::Range::parse) {
        Some(Err(e)) => return (StatusCode::BAD_REQUEST, e.to_string()).into_response(),
        Some(Ok(r)) => Some(r),
        None => None,
    };
    let listing = match status_view(&app).await {
        Ok(s) => {
            let down = !matches!(q.down.as_str(), "" | "0" | "false");
            super::status_page::Listing::of(s, &q.q, down, super::status_page::ROWS)
        }
        Err(e) => return error_response(e),
    };
    let mut history = app
        .ctl
        .call(|reply| Command::History {
            query: HistoryQuery {
                limit: 20,
                ..HistoryQuery::default()
            },
            reply,
        })
        .await
        .unwrap_or_default();
    history.reverse();
    let now_ms = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64);
    let now = now_ms / 1000;
    let range = chosen
        .unwrap_or_else(|| super::range::Range::fitting(history.iter().map(|e| e.time).max(), now));
    let events = app
        .ctl
        .call(|reply| Command::History {
            query: HistoryQuery {
                since: Some(now.saturating_sub(range.secs())),
                limit: 2000,
                ..HistoryQuery::default()
            },
            reply,
        })
        .await
        .unwrap_or_default();
    let mut timelines = super::range::selector(range);
    timelines.push_str(&listing.pictures_note());
    timelines.push_str(&super::timeline::render_section(
        listing.pictured(),
        &events,
        now,
        range,
        app.checks.started() / 1000,
    ));
    timelines.push_str(&super::lanes::render_section(
        listing.pictured(),
        |name| app.checks.service(name),
        now_ms,
        range,
    ));
    let history: Vec<serde_json::Value> = history
        .iter()
        .filter_map(|e| serde_json::to_value(e).ok())
        .collect();
    let mut html = crate::ops::status_page::render_html(&listing, &history, 5);
    html = html.replacen(
        "<h2>Recent changes</h2>",
        &format!("{timelines}<h2>Recent changes</h2>"),
        1,
    );
    if let Some(Extension(csrf)) = session {
        let form = super::session::logout_form(&csrf.0);
        html = html.replacen("<body>\n", &format!("<body>\n{form}"), 1);
    }
    (
        [(axum::http::header::CACHE_CONTROL, "no-store")],
        axum::response::Html(html),
    )
        .into_response()
}

pub use super::limits::serve;
