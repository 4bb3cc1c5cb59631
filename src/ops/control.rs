//! Control API: HTTP + JSON on a loopback listener, for `ggon-ctl` and scripts.
//!
//! Owns: authentication (bearer tokens from a file, compared in constant time,
//! each with a name and a role: `read` may look, `operator` may change), request
//! parsing, and mapping controller results to HTTP statuses. Every refused call
//! is logged with the peer address. It must not change service state itself:
//! it sends [`Command`]s to the controller, the single writer.
//!
//! Token file format: one token per line, either `TOKEN` (named `operator`,
//! role operator) or `NAME ROLE TOKEN`; `#` starts a comment. On first start
//! the file is created with one random operator token, mode 0600.

use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;

use axum::extract::{ConnectInfo, Path as UrlPath, Query, Request, State};
use axum::http::{HeaderMap, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Extension, Json, Router};
use serde::Deserialize;
use serde_json::json;
use tracing::warn;

use crate::decide::{Actor, Command, ControllerHandle, CtlError};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    Read,
    Operator,
}

#[derive(Debug, Clone)]
pub struct Token {
    pub name: String,
    pub role: Role,
    secret: String,
}

/// Parse a token file's text.
pub fn parse_tokens(text: &str) -> Result<Vec<Token>, String> {
    let mut out = Vec::new();
    for (i, line) in text.lines().enumerate() {
        let line = line.split('#').next().unwrap_or("").trim();
        if line.is_empty() {
            continue;
        }
        let parts: Vec<&str> = line.split_whitespace().collect();
        let token = match parts.as_slice() {
            [secret] => Token {
                name: "operator".into(),
                role: Role::Operator,
                secret: secret.to_string(),
            },
            [name, role, secret] => Token {
                name: name.to_string(),
                role: match *role {
                    "read" => Role::Read,
                    "operator" => Role::Operator,
                    other => {
                        return Err(format!(
                            "line {}: role must be `read` or `operator`, not `{other}`",
                            i + 1
                        ))
                    }
                },
                secret: secret.to_string(),
            },
            _ => {
                return Err(format!(
                    "line {}: expected `TOKEN` or `NAME ROLE TOKEN`",
                    i + 1
                ))
            }
        };
        if token.secret.len() < 16 {
            return Err(format!(
                "line {}: token too short (16 characters at least)",
                i + 1
            ));
        }
        out.push(token);
    }
    if out.is_empty() {
        return Err("no token in file".into());
    }
    Ok(out)
}

/// Read the token file, creating it (mode 0600, one random operator token) if missing.
pub fn load_or_create_tokens(path: &Path) -> Result<Vec<Token>, String> {
    use std::io::Write;
    use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
    if !path.exists() {
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
        }
        let secret: String = {
            use rand::Rng;
            let mut rng = rand::rng();
            (0..32)
                .map(|_| format!("{:02x}", rng.random::<u8>()))
                .collect()
        };
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(path)
            .map_err(|e| format!("{}: {e}", path.display()))?;
        writeln!(f, "{secret}").map_err(|e| format!("{}: {e}", path.display()))?;
        tracing::info!(path = %path.display(), "created control token file (mode 0600)");
    }
    if let Ok(meta) = std::fs::metadata(path) {
        if meta.permissions().mode() & 0o077 != 0 {
            warn!(path = %path.display(), mode = format!("{:o}", meta.permissions().mode() & 0o777),
                "token file is readable by group or others; chmod 600 it");
        }
    }
    let text = std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))?;
    parse_tokens(&text).map_err(|e| format!("{}: {e}", path.display()))
}

/// Constant-time comparison: the time taken does not depend on where the
/// strings differ (only on their lengths, which are not secret).
fn ct_eq(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// Asks the daemon to re-read config and zones; answers with a summary or the error.
pub type ReloadRequest = tokio::sync::oneshot::Sender<Result<String, String>>;

#[derive(Clone)]
struct AppState {
    ctl: ControllerHandle,
    tokens: Arc<Vec<Token>>,
    reload: tokio::sync::mpsc::Sender<ReloadRequest>,
    metrics: Arc<crate::ops::metrics::Metrics>,
    stats: Arc<crate::dns::stats::Stats>,
}

/// What the read-only pages need besides the controller.
pub struct Pages {
    pub metrics: Arc<crate::ops::metrics::Metrics>,
    pub stats: Arc<crate::dns::stats::Stats>,
    /// Serve `/` and `/metrics` without a token.
    pub public: bool,
}

async fn auth(
    State(app): State<AppState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    mut req: Request,
    next: Next,
) -> Response {
    let presented = headers
        .get(axum::http::header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .map(str::trim);
    // Check every token (no early exit), so timing does not reveal which matched.
    let mut found: Option<&Token> = None;
    if let Some(p) = presented {
        for t in app.tokens.iter() {
            if ct_eq(p.as_bytes(), t.secret.as_bytes()) {
                found = Some(t);
            }
        }
    }
    let Some(token) = found else {
        warn!(%peer, path = %req.uri().path(), "control call refused: missing or invalid token");
        return (
            StatusCode::UNAUTHORIZED,
            Json(json!({"error": "missing or invalid bearer token"})),
        )
            .into_response();
    };
    let mutating = req.method() != axum::http::Method::GET;
    if mutating && token.role != Role::Operator {
        warn!(%peer, token = %token.name, path = %req.uri().path(),
            "control call refused: token is read-only");
        return (
            StatusCode::FORBIDDEN,
            Json(json!({"error": format!("token `{}` is read-only", token.name)})),
        )
            .into_response();
    }
    req.extensions_mut().insert(Actor {
        name: token.name.clone(),
    });
    next.run(req).await
}

fn error_response(e: CtlError) -> Response {
    let status = match e {
        CtlError::NotFound(_) => StatusCode::NOT_FOUND,
        CtlError::Conflict(_) => StatusCode::CONFLICT,
        CtlError::BadRequest(_) => StatusCode::BAD_REQUEST,
        CtlError::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
    };
    (status, Json(json!({"error": e.to_string()}))).into_response()
}

fn reply<T: serde::Serialize>(r: Result<Result<T, CtlError>, CtlError>) -> Response {
    match r.and_then(|x| x) {
        Ok(v) => Json(v).into_response(),
        Err(e) => error_response(e),
    }
}

#[derive(Deserialize)]
struct StatusQuery {
    service: Option<String>,
}

async fn status(State(app): State<AppState>, Query(q): Query<StatusQuery>) -> Response {
    match app.ctl.call(|reply| Command::Status { reply }).await {
        Ok(mut s) => {
            if let Some(name) = q.service {
                s.services.retain(|x| x.name == name);
                if s.services.is_empty() {
                    return error_response(CtlError::NotFound(format!(
                        "no service named `{name}`"
                    )));
                }
            }
            Json(s).into_response()
        }
        Err(e) => error_response(e),
    }
}

fn duration(s: &Option<String>) -> Result<Option<std::time::Duration>, CtlError> {
    s.as_deref()
        .map(|d| {
            humantime::parse_duration(d)
                .map_err(|e| CtlError::BadRequest(format!("bad duration `{d}`: {e}")))
        })
        .transpose()
}

#[derive(Deserialize)]
struct RemapBody {
    to: String,
    #[serde(default)]
    reason: String,
    #[serde(default)]
    force: bool,
    #[serde(default)]
    dry_run: bool,
    /// Pin expiry, e.g. "2h".
    #[serde(default, rename = "for")]
    duration: Option<String>,
}

async fn remap(
    State(app): State<AppState>,
    UrlPath(service): UrlPath<String>,
    Extension(actor): Extension<Actor>,
    Json(body): Json<RemapBody>,
) -> Response {
    let duration = match duration(&body.duration) {
        Ok(d) => d,
        Err(e) => return error_response(e),
    };
    reply(
        app.ctl
            .call(|reply| Command::Remap {
                service,
                to: body.to,
                reason: body.reason,
                force: body.force,
                dry_run: body.dry_run,
                duration,
                actor,
                reply,
            })
            .await,
    )
}

async fn release(
    State(app): State<AppState>,
    UrlPath(service): UrlPath<String>,
    Extension(actor): Extension<Actor>,
) -> Response {
    reply(
        app.ctl
            .call(|reply| Command::Release {
                service,
                actor,
                reply,
            })
            .await,
    )
}

#[derive(Deserialize)]
struct DrainBody {
    #[serde(default)]
    reason: String,
    #[serde(default, rename = "for")]
    duration: Option<String>,
}

async fn drain(
    State(app): State<AppState>,
    UrlPath((service, target)): UrlPath<(String, String)>,
    Extension(actor): Extension<Actor>,
    Json(body): Json<DrainBody>,
) -> Response {
    let duration = match duration(&body.duration) {
        Ok(d) => d,
        Err(e) => return error_response(e),
    };
    reply(
        app.ctl
            .call(|reply| Command::Drain {
                service,
                target,
                reason: body.reason,
                duration,
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

#[derive(Deserialize)]
struct DrillBody {
    /// Treat this target as failed...
    #[serde(default)]
    fail: Option<String>,
    /// ...for this long.
    #[serde(default, rename = "for")]
    duration: Option<String>,
}

async fn drill(
    State(app): State<AppState>,
    UrlPath(service): UrlPath<String>,
    Extension(actor): Extension<Actor>,
    Json(body): Json<DrillBody>,
) -> Response {
    let fail = match (body.fail, duration(&body.duration)) {
        (_, Err(e)) => return error_response(e),
        (Some(t), Ok(Some(d))) => Some((t, d)),
        (Some(_), Ok(None)) => {
            return error_response(CtlError::BadRequest(
                "a failure drill needs a duration (--for)".into(),
            ))
        }
        (None, Ok(_)) => None,
    };
    reply(
        app.ctl
            .call(|reply| Command::Drill {
                service,
                fail,
                actor,
                reply,
            })
            .await,
    )
}

#[derive(Deserialize)]
struct HistoryQuery {
    service: Option<String>,
    /// Unix seconds, or a duration ("1h") meaning that long ago.
    since: Option<String>,
    limit: Option<usize>,
}

async fn history(State(app): State<AppState>, Query(q): Query<HistoryQuery>) -> Response {
    let since = match q.since.as_deref() {
        None => None,
        Some(s) => match s.parse::<u64>() {
            Ok(t) => Some(t),
            Err(_) => match humantime::parse_duration(s) {
                Ok(d) => Some(crate::decide::unix_now().saturating_sub(d.as_secs())),
                Err(e) => {
                    return error_response(CtlError::BadRequest(format!("bad since `{s}`: {e}")))
                }
            },
        },
    };
    let limit = q.limit.unwrap_or(1000);
    match app
        .ctl
        .call(|reply| Command::History {
            service: q.service,
            since,
            limit,
            reply,
        })
        .await
    {
        Ok(v) => Json(json!({ "entries": v })).into_response(),
        Err(e) => error_response(e),
    }
}

async fn reload(
    State(app): State<AppState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
) -> Response {
    let (tx, rx) = tokio::sync::oneshot::channel();
    if app.reload.send(tx).await.is_err() {
        return error_response(CtlError::Internal("shutting down".into()));
    }
    match rx.await {
        Ok(Ok(summary)) => Json(json!({ "reloaded": true, "summary": summary })).into_response(),
        Ok(Err(e)) => {
            warn!(%peer, error = %e, "reload rejected; the running configuration stays");
            error_response(CtlError::BadRequest(e))
        }
        Err(_) => error_response(CtlError::Internal("shutting down".into())),
    }
}

/// The control API's routes.
pub fn router(
    ctl: ControllerHandle,
    tokens: Vec<Token>,
    reload_tx: tokio::sync::mpsc::Sender<ReloadRequest>,
    pages: Pages,
) -> Router {
    let app = AppState {
        ctl,
        tokens: Arc::new(tokens),
        reload: reload_tx,
        metrics: pages.metrics,
        stats: pages.stats,
    };
    let read_only = Router::new()
        .route("/", get(status_page))
        .route("/metrics", get(metrics));
    let read_only = if pages.public {
        read_only
    } else {
        read_only.layer(middleware::from_fn_with_state(app.clone(), auth))
    };
    let api = Router::new()
        .route("/v1/status", get(status))
        .route("/v1/history", get(history))
        .route("/v1/reload", post(reload))
        .route("/v1/services/{service}/remap", post(remap))
        .route("/v1/services/{service}/release", post(release))
        .route("/v1/services/{service}/drill", post(drill))
        .route("/v1/services/{service}/targets/{target}/drain", post(drain))
        .route(
            "/v1/services/{service}/targets/{target}/undrain",
            post(undrain),
        )
        .layer(middleware::from_fn_with_state(app.clone(), auth));
    api.merge(read_only).with_state(app)
}

async fn status_view(app: &AppState) -> Result<crate::decide::StatusView, CtlError> {
    app.ctl.call(|reply| Command::Status { reply }).await
}

/// Prometheus (OpenMetrics) text.
async fn metrics(State(app): State<AppState>) -> Response {
    match status_view(&app).await {
        Ok(s) => (
            [(
                axum::http::header::CONTENT_TYPE,
                crate::ops::metrics::CONTENT_TYPE,
            )],
            app.metrics.render(&s, &app.stats.totals()),
        )
            .into_response(),
        Err(e) => error_response(e),
    }
}

/// The read-only HTML status page (refreshes itself every 5 s).
async fn status_page(State(app): State<AppState>) -> Response {
    let status = match status_view(&app).await {
        Ok(s) => s,
        Err(e) => return error_response(e),
    };
    let mut history = app
        .ctl
        .call(|reply| Command::History {
            service: None,
            since: None,
            limit: 20,
            reply,
        })
        .await
        .unwrap_or_default();
    history.reverse();
    let history: Vec<serde_json::Value> = history
        .iter()
        .filter_map(|e| serde_json::to_value(e).ok())
        .collect();
    axum::response::Html(crate::ops::status_page::render_html(&status, &history, 5)).into_response()
}

/// Serve the control API until `shutdown` resolves.
pub async fn serve(
    listener: tokio::net::TcpListener,
    router: Router,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    axum::serve(
        listener,
        router.into_make_service_with_connect_info::<SocketAddr>(),
    )
    .with_graceful_shutdown(shutdown)
    .await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn token_file_formats() {
        let t = parse_tokens("# c\n0123456789abcdef0123\nro read fedcba9876543210aaaa\n").unwrap();
        assert_eq!(t.len(), 2);
        assert_eq!(t[0].role, Role::Operator);
        assert_eq!(t[1].name, "ro");
        assert_eq!(t[1].role, Role::Read);
        assert!(parse_tokens("x admin 0123456789abcdef0123").is_err());
        assert!(parse_tokens("short").is_err());
        assert!(parse_tokens("").is_err());
    }

    #[test]
    fn constant_time_compare() {
        assert!(ct_eq(b"abc", b"abc"));
        assert!(!ct_eq(b"abc", b"abd"));
        assert!(!ct_eq(b"abc", b"abcd"));
    }
}
