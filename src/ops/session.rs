//! Browser sessions for the status page: a login form takes a token once and
//! sets a session cookie, so a person can open `/` and `/metrics` in a
//! browser without `public_status`.
//!
//! Owns: the session table (in memory, bounded, each session with a fixed
//! lifetime) and the cookie's flags (HttpOnly, SameSite=Strict, Path=/, Max-Age; Secure when
//! the request came over TLS: on ggond's own TLS listener ([`super::tls`]),
//! or through a TLS-terminating proxy that sets `X-Forwarded-Proto: https`). A session only opens read-only pages (GET):
//! every change still needs the bearer header, so a forged cross-site POST
//! carries no authority. Login and logout ([`super::login`]) are CSRF-safe: SameSite=Strict, a
//! cross-origin `Origin`/`Sec-Fetch-Site` is refused, and logout needs the
//! session's own random CSRF value from the page's form.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use axum::http::{header, HeaderMap};
use axum::Extension;

use super::tls::OverTls;
use super::tokens::Role;

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
    pub(super) fn create(&self, name: &str, role: Role, now: Instant) -> String {
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

    pub(super) fn remove(&self, id: &str) {
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

pub(super) fn over_tls(tls: &Option<Extension<OverTls>>, headers: &HeaderMap) -> bool {
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
pub(super) fn same_origin(headers: &HeaderMap) -> bool {
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

/// The logout form added to pages served through a session.
pub fn logout_form(csrf: &str) -> String {
    format!(
        "<form method=\"post\" action=\"/logout\" id=\"logout\">\
         <input type=\"hidden\" name=\"csrf\" value=\"{csrf}\">\
         <button type=\"submit\" id=\"logout-button\">Log out</button></form>\n"
    )
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
