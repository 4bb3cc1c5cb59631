//! Who may use the control API: the check in front of every protected
//! route.
//!
//! Owns: finding the presented bearer token or session
//! ([`super::tokens`], [`super::session`]) and refusing (401/403, logged
//! with the peer address) what it may not do. It must not know what the
//! routes do.

use std::net::SocketAddr;
use std::sync::Arc;

use axum::extract::{ConnectInfo, Request, State};
use axum::http::{HeaderMap, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde_json::json;
use tracing::warn;

use super::tokens::{find_token, Role, Token};
use crate::decide::Actor;

/// What the middleware needs: the tokens, the limit on failures, and the
/// browser sessions ([`super::session`]).
pub(super) struct Gate {
    pub tokens: Vec<Token>,
    pub limits: Arc<super::limits::Limits>,
    pub sessions: super::session::Sessions,
}

/// The middleware in front of every protected route: find the token (all
/// compared, in constant time), refuse and log if none or read-only for a
/// change, else pass the [`Actor`] on to the handler. Failures are counted
/// per source ([`super::limits::Limits::auth_failed`]): past the limit they
/// are answered 429 and logged once, not one by one.
pub(super) async fn auth(
    State(gate): State<Arc<Gate>>,
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
    let found = presented.and_then(|p| find_token(&gate.tokens, p));
    // No bearer header: a browser session opens the read-only routes (GET).
    if presented.is_none() && req.method() == axum::http::Method::GET {
        if let Some(id) = super::session::cookie(&headers) {
            if let Some((name, _role, csrf)) = gate.sessions.get(&id, std::time::Instant::now()) {
                req.extensions_mut().insert(Actor { name });
                req.extensions_mut()
                    .insert(super::session::SessionCsrf(csrf));
                return next.run(req).await;
            }
        }
        let browser = headers
            .get(axum::http::header::ACCEPT)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.contains("text/html"));
        if browser {
            return axum::response::Redirect::to("/login").into_response();
        }
    }
    let Some(token) = found else {
        use super::limits::AuthVerdict;
        let limits = &gate.limits.cfg;
        let verdict = gate
            .limits
            .auth_failed(peer.ip(), std::time::Instant::now());
        match verdict {
            AuthVerdict::Refuse => {
                warn!(%peer, path = %req.uri().path(), "control call refused: missing or invalid token")
            }
            AuthVerdict::LimitReached => warn!(%peer, failures = limits.auth_failures,
                window = ?limits.auth_window,
                "control calls with a missing or invalid token: limit reached for this source; \
                 its further failures are answered 429 and not logged until the window ends"),
            AuthVerdict::Limited => {}
        }
        if verdict != AuthVerdict::Refuse {
            return (
                StatusCode::TOO_MANY_REQUESTS,
                [(
                    axum::http::header::RETRY_AFTER,
                    limits.auth_window.as_secs().to_string(),
                )],
                Json(json!({"error": format!(
                    "missing or invalid bearer token, and more than {} such calls from this address within {}: \
                     check the token file; a valid token is still accepted",
                    limits.auth_failures,
                    humantime::format_duration(limits.auth_window)
                )})),
            )
                .into_response();
        }
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
