//! Who may use the control API: bearer tokens, their roles, and the check
//! in front of every protected route.
//!
//! Owns: the token file (created on first start with one random operator
//! token, mode 0600), parsing it, constant-time comparison, and refusing
//! (401/403, logged with the peer address) what a token may not do. It must
//! not know what the routes do.
//!
//! Token file format: one token per line, either `TOKEN` (named `operator`,
//! role operator) or `NAME ROLE TOKEN`; `#` starts a comment.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use axum::extract::{ConnectInfo, Request, State};
use axum::http::{HeaderMap, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde_json::json;
use tracing::warn;

use crate::decide::Actor;

/// A token file's text is wrong.
#[derive(Debug, thiserror::Error)]
pub enum TokenError {
    #[error("line {line}: {why}")]
    Line { line: usize, why: String },
    #[error("no token in file")]
    Empty,
}

/// The token file cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum TokenFileError {
    #[error("{}: {source}", path.display())]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{}: {source}", path.display())]
    Parse { path: PathBuf, source: TokenError },
}

impl TokenFileError {
    fn io(path: &Path, source: std::io::Error) -> TokenFileError {
        TokenFileError::Io {
            path: path.to_path_buf(),
            source,
        }
    }
}

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
pub fn parse_tokens(text: &str) -> Result<Vec<Token>, TokenError> {
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
                        return Err(TokenError::Line {
                            line: i + 1,
                            why: format!("role must be `read` or `operator`, not `{other}`"),
                        })
                    }
                },
                secret: secret.to_string(),
            },
            _ => {
                return Err(TokenError::Line {
                    line: i + 1,
                    why: "expected `TOKEN` or `NAME ROLE TOKEN`".into(),
                })
            }
        };
        if token.secret.len() < 16 {
            return Err(TokenError::Line {
                line: i + 1,
                why: "token too short (16 characters at least)".into(),
            });
        }
        out.push(token);
    }
    if out.is_empty() {
        return Err(TokenError::Empty);
    }
    Ok(out)
}

/// Read the token file, creating it (mode 0600, one random operator token) if missing.
pub fn load_or_create_tokens(path: &Path) -> Result<Vec<Token>, TokenFileError> {
    use std::io::Write;
    use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
    if !path.exists() {
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir).map_err(|e| TokenFileError::io(dir, e))?;
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
            .map_err(|e| TokenFileError::io(path, e))?;
        writeln!(f, "{secret}").map_err(|e| TokenFileError::io(path, e))?;
        tracing::info!(path = %path.display(), "created control token file (mode 0600)");
    }
    if let Ok(meta) = std::fs::metadata(path) {
        if meta.permissions().mode() & 0o077 != 0 {
            warn!(path = %path.display(), mode = format!("{:o}", meta.permissions().mode() & 0o777),
                "token file is readable by group or others; chmod 600 it");
        }
    }
    let text = std::fs::read_to_string(path).map_err(|e| TokenFileError::io(path, e))?;
    parse_tokens(&text).map_err(|source| TokenFileError::Parse {
        path: path.to_path_buf(),
        source,
    })
}

/// Constant-time comparison: the time taken does not depend on where the
/// strings differ (only on their lengths, which are not secret).
pub(super) fn ct_eq(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// What the middleware needs: the tokens, the limit on failures, and the
/// browser sessions ([`super::session`]).
pub(super) struct Gate {
    pub tokens: Vec<Token>,
    pub limits: Arc<super::limits::Limits>,
    pub sessions: super::session::Sessions,
}

/// The token whose secret is `presented`: every token is compared (no early
/// exit), in constant time, so timing does not reveal which matched.
pub(super) fn find_token<'a>(tokens: &'a [Token], presented: &str) -> Option<&'a Token> {
    let mut found = None;
    for t in tokens {
        if ct_eq(presented.as_bytes(), t.secret.as_bytes()) {
            found = Some(t);
        }
    }
    found
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
