//! The status page's login and logout: `GET /login` (the form), `POST
//! /login` (a valid token opens a session and sets its cookie) and `POST
//! /logout` (given the session's CSRF value). The session table and the
//! cookie's flags are [`super::session`]'s; the tokens [`super::tokens`]'s.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Instant;

use axum::extract::{ConnectInfo, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{Html, IntoResponse, Response};
use axum::{Extension, Form};
use serde::Deserialize;
use tracing::{info, warn};

use super::auth::Gate;
use super::session::{cookie, over_tls, same_origin, set_cookie};
use super::tls::OverTls;
use super::tokens::{ct_eq, find_token};

const STYLE: &str = "body{font-family:sans-serif;max-width:24em;margin:4em auto}\
input,button{font-size:1em;padding:.4em;margin:.3em 0;width:100%}\
.err{color:#b00020}";

fn login_html(error: Option<&str>) -> String {
    let err = error
        .map(|e| format!("<p class=\"err\" id=\"error\">{e}</p>\n"))
        .unwrap_or_default();
    format!(
        "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n\
         <title>ggond: log in</title>\n<style>{STYLE}</style>\n</head>\n<body>\n\
         <h1>ggond status</h1>\n{err}<form method=\"post\" action=\"/login\" id=\"login\">\n\
         <label for=\"token\">Control token (read or operator)</label>\n\
         <input type=\"password\" id=\"token\" name=\"token\" autocomplete=\"current-password\" required>\n\
         <button type=\"submit\" id=\"login-button\">Log in</button>\n</form>\n</body>\n</html>\n"
    )
}

/// `GET /login`.
pub(super) async fn login_page() -> Response {
    Html(login_html(None)).into_response()
}

#[derive(Deserialize)]
pub(super) struct LoginForm {
    token: String,
}

/// `POST /login`: a valid token sets the cookie and goes to `/`.
pub(super) async fn login(
    State(gate): State<Arc<Gate>>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    tls: Option<Extension<OverTls>>,
    headers: HeaderMap,
    Form(form): Form<LoginForm>,
) -> Response {
    if !same_origin(&headers) {
        warn!(%peer, "login refused: cross-site request");
        return (StatusCode::FORBIDDEN, "cross-site login refused\n").into_response();
    }
    let Some(token) = find_token(&gate.tokens, form.token.trim()) else {
        use super::limits::AuthVerdict;
        let verdict = gate.limits.auth_failed(peer.ip(), Instant::now());
        if verdict == AuthVerdict::Refuse {
            warn!(%peer, "login refused: invalid token");
        }
        let status = if verdict == AuthVerdict::Refuse {
            StatusCode::UNAUTHORIZED
        } else {
            StatusCode::TOO_MANY_REQUESTS
        };
        return (status, Html(login_html(Some("Wrong token.")))).into_response();
    };
    let id = gate
        .sessions
        .create(&token.name, token.role, Instant::now());
    info!(%peer, token = %token.name, "status page login");
    (
        StatusCode::SEE_OTHER,
        [
            (header::LOCATION, "/".to_string()),
            (
                header::SET_COOKIE,
                set_cookie(Some(&id), over_tls(&tls, &headers)),
            ),
            (header::CACHE_CONTROL, "no-store".to_string()),
        ],
    )
        .into_response()
}

#[derive(Deserialize)]
pub(super) struct LogoutForm {
    #[serde(default)]
    csrf: String,
}

/// `POST /logout`: ends the session named by the cookie, given its CSRF value.
pub(super) async fn logout(
    State(gate): State<Arc<Gate>>,
    tls: Option<Extension<OverTls>>,
    headers: HeaderMap,
    Form(form): Form<LogoutForm>,
) -> Response {
    if !same_origin(&headers) {
        return (StatusCode::FORBIDDEN, "cross-site logout refused\n").into_response();
    }
    if let Some(id) = cookie(&headers) {
        if let Some((_, _, csrf)) = gate.sessions.get(&id, Instant::now()) {
            if !ct_eq(csrf.as_bytes(), form.csrf.as_bytes()) {
                return (StatusCode::FORBIDDEN, "bad CSRF value\n").into_response();
            }
            gate.sessions.remove(&id);
        }
    }
    (
        StatusCode::SEE_OTHER,
        [
            (header::LOCATION, "/login".to_string()),
            (
                header::SET_COOKIE,
                set_cookie(None, over_tls(&tls, &headers)),
            ),
        ],
    )
        .into_response()
}
