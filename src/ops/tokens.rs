//! Control API tokens: the token file, its roles, and comparing a
//! presented token with them.
//!
//! Owns: the token file (created on first start with one random operator
//! token, mode 0600), parsing it, and constant-time comparison. It must not
//! know about HTTP: the check in front of the routes is [`super::auth`].
//!
//! Token file format: one token per line, either `TOKEN` (named `operator`,
//! role operator) or `NAME ROLE TOKEN`; `#` starts a comment.

use std::path::{Path, PathBuf};

use tracing::warn;

/// A token file's text is wrong.
#[derive(Debug, thiserror::Error)]
pub enum TokenError {
    #[error("line {line}: {why}")]
    Line { line: usize, why: LineError },
    #[error("no token in file")]
    Empty,
}

/// What is wrong with one line of a token file.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LineError {
    #[error("role must be `read` or `operator`, not `{0}`")]
    Role(String),
    #[error("expected `TOKEN` or `NAME ROLE TOKEN`")]
    Form,
    #[error("token too short (16 characters at least)")]
    Short,
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

impl Token {
    /// The secret itself: for this node's own calls to another node's
    /// control API (the nodes of a cluster share the token file).
    pub fn secret(&self) -> &str {
        &self.secret
    }
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
                            why: LineError::Role(other.to_string()),
                        })
                    }
                },
                secret: secret.to_string(),
            },
            _ => {
                return Err(TokenError::Line {
                    line: i + 1,
                    why: LineError::Form,
                })
            }
        };
        if token.secret.len() < 16 {
            return Err(TokenError::Line {
                line: i + 1,
                why: LineError::Short,
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
