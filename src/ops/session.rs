//! Browser sessions for the status page: a login form takes a token once and
//! sets a session cookie, so a person can open `/` and `/metrics` in a
//! browser without `public_status`.
//!
//! Owns: the session table (in memory, bounded, each session with a fixed
//! lifetime), the `/login` form, `POST /login` and `POST /logout`, and the
//! cookie's flags (HttpOnly, SameSite=Strict, Path=/, Max-Age; Secure when
//! the request came over TLS: on ggond's own TLS listener ([`super::tls`]),
//! or through a TLS-terminating proxy that sets `X-Forwarded-Proto: https`). A session only opens read-only pages (GET):
//! every change still needs the bearer header, so a forged cross-site POST
//! carries no authority. Login and logout are CSRF-safe: SameSite=Strict, a
//! cross-origin `Origin`/`Sec-Fetch-Site` is refused, and logout needs the
//! session's own random CSRF value from the page's form.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::extract::{ConnectInfo, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{Html, IntoResponse, Response};
use axum::{Extension, Form};
use serde::Deserialize;
use tracing::{info, warn};

use super::auth::{find_token, Gate, Role};
use super::tls::OverTls;

/// The cookie's name.
pub const COOKIE: &str = "ggon_session";
/// How long a session lasts after login.
pub const LIFETIME: Duration = Duration::from_secs(8 * 3600);
/// At most this many live sessions; the oldest goes first.
const MAX_SESSIONS: usize = 256;

struct Session {
    name: String,
    role: Role,
    csrf: String,
    expires: Instant,
}

/// The live sessions.
#[derive(Default)]
pub struct Sessions {
    map: Mutex<HashMap<String, Session>>,
}

/// What a page served through a session needs: the logout form's value.
#[derive(Clone)]
pub struct SessionCsrf(pub String);

fn random_hex(bytes: usize) -> String {
    use rand::Rng;
    let mut rng = rand::rng();
    (0..bytes)
        .map(|_| format!("{:02x}", rng.random::<u8>()))
        .collect()
}

impl Sessions {
    fn create(&self, name: &str, role: Role, now: Instant) -> String {
        let id = random_hex(32);
        let mut m = self.map.lock().expect("not poisoned");
        m.retain(|_, s| s.expires > now);
        while m.len() >= MAX_SESSIONS {
            let oldest = m
                .iter()
                .min_by_key(|(_, s)| s.expires)
                .map(|(k, _)| k.clone());
            match oldest {
                Some(k) => m.remove(&k),
                None => break,
            };
        }
        m.insert(
            id.clone(),
            Session {
                name: name.to_string(),
                role,
                csrf: random_hex(16),
                expires: now + LIFETIME,
            },
        );
        id
    }

    /// The session's (token name, role, CSRF value), if it is live.
    pub fn get(&self, id: &str, now: Instant) -> Option<(String, Role, String)> {
        let mut m = self.map.lock().expect("not poisoned");
        match m.get(id) {
            Some(s) if s.expires > now => Some((s.name.clone(), s.role, s.csrf.clone())),
            Some(_) => {
                m.remove(id);
                None
            }
            None => None,
        }
    }

    fn remove(&self, id: &str) {
        self.map.lock().expect("not poisoned").remove(id);
    }
}

/// The session id in the request's `Cookie` header, if any.
pub fn cookie(headers: &HeaderMap) -> Option<String> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|kv| kv.trim().split_once('='))
        .find(|(k, _)| *k == COOKIE)
        .map(|(_, v)| v.to_string())
}

fn over_tls(tls: &Option<Extension<OverTls>>, headers: &HeaderMap) -> bool {
    tls.is_some()
        || headers
            .get("x-forwarded-proto")
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.eq_ignore_ascii_case("https"))
}

/// The Set-Cookie value for a new session (or, with `None`, one that
/// removes it).
pub fn set_cookie(id: Option<&str>, secure: bool) -> String {
    let (value, age) = match id {
        Some(id) => (id, LIFETIME.as_secs()),
        None => ("", 0),
    };
    let secure = if secure { "; Secure" } else { "" };
    format!("{COOKIE}={value}; HttpOnly; SameSite=Strict; Path=/; Max-Age={age}{secure}")
}

/// False for a request sent from another site (login CSRF): a browser says
/// so in `Sec-Fetch-Site`, or in an `Origin` that is not this host.
fn same_origin(headers: &HeaderMap) -> bool {
    let get = |h: &str| headers.get(h).and_then(|v| v.to_str().ok());
    if let Some(site) = get("sec-fetch-site") {
        if site != "same-origin" && site != "none" {
            return false;
        }
    }
    match (get("origin"), get("host")) {
        (None, _) => true,
        (Some(origin), Some(host)) => {
            origin == format!("http://{host}") || origin == format!("https://{host}")
        }
        (Some(_), None) => false,
    }
}

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

/// The logout form added to pages served through a session.
pub fn logout_form(csrf: &str) -> String {
    format!(
        "<form method=\"post\" action=\"/logout\" id=\"logout\">\
         <input type=\"hidden\" name=\"csrf\" value=\"{csrf}\">\
         <button type=\"submit\" id=\"logout-button\">Log out</button></form>\n"
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
            if !super::auth::ct_eq(csrf.as_bytes(), form.csrf.as_bytes()) {
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sessions_expire_and_are_bounded() {
        let s = Sessions::default();
        let t0 = Instant::now();
        let id = s.create("ro", Role::Read, t0);
        assert_eq!(s.get(&id, t0).unwrap().0, "ro");
        assert!(s.get(&id, t0 + LIFETIME).is_none(), "expired");
        for _ in 0..MAX_SESSIONS + 10 {
            s.create("ro", Role::Read, t0);
        }
        assert_eq!(s.map.lock().unwrap().len(), MAX_SESSIONS);
    }

    #[test]
    fn cookie_flags_and_origin_check() {
        let c = set_cookie(Some("abc"), false);
        assert!(c.starts_with("ggon_session=abc; HttpOnly; SameSite=Strict; Path=/; Max-Age=28800"));
        assert!(!c.contains("Secure"));
        assert!(set_cookie(Some("abc"), true).ends_with("; Secure"));
        let mut h = HeaderMap::new();
        h.insert("host", "127.0.0.1:8053".parse().unwrap());
        assert!(same_origin(&h));
        h.insert("origin", "http://127.0.0.1:8053".parse().unwrap());
        assert!(same_origin(&h));
        h.insert("origin", "http://evil.example".parse().unwrap());
        assert!(!same_origin(&h));
        h.remove("origin");
        h.insert("sec-fetch-site", "cross-site".parse().unwrap());
        assert!(!same_origin(&h));
        h.insert("cookie", "a=b; ggon_session=xyz".parse().unwrap());
        assert_eq!(cookie(&h).as_deref(), Some("xyz"));
    }
}
