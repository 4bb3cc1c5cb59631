//! The control API client: address and token from the config (or flags),
//! one call per command, errors as one line an operator can act on.

use std::path::PathBuf;

use serde_json::Value;

use ggon::cli::ctl::Args;

/// Why a command got no usable answer from ggond.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    #[error("{0} (give --control and --token-file, or GGON_CONTROL and GGON_TOKEN_FILE)")]
    Config(ggon::config::ConfigError),
    #[error("{0}, or give --control and --token-file (GGON_CONTROL, GGON_TOKEN_FILE)")]
    NoConfig(ggon::config::client::NotFound),
    #[error("--control {0}: give a URL without a path (https://HOST:PORT)")]
    UrlWithPath(String),
    #[error("--control {0}: not IP:PORT nor an http:// or https:// URL")]
    NotAnAddress(String),
    #[error("cannot read token file {}: {error}", path.display())]
    TokenFile {
        path: PathBuf,
        error: std::io::Error,
    },
    #[error("no token in {}", .0.display())]
    NoToken(PathBuf),
    #[error("cannot read --ca-file {}: {error}", path.display())]
    CaFile {
        path: PathBuf,
        error: std::io::Error,
    },
    #[error("--ca-file {}: {error}", path.display())]
    CaPem {
        path: PathBuf,
        error: reqwest::Error,
    },
    #[error("--ca-file {}: no certificate in it", .0.display())]
    NoCertificate(PathBuf),
    #[error("{0}")]
    Http(reqwest::Error),
    #[error(
        "cannot reach ggond at {base}: {} (is ggond running, and is --control its control address?)",
        ggon::monitor::http_error_detail(error)
    )]
    Unreachable { base: String, error: reqwest::Error },
    /// ggond answered with an error: its message and HTTP status.
    #[error("{message} (HTTP {status})")]
    Refused { status: u16, message: String },
    #[error("ggond answered something this ggon-ctl cannot read: {0}")]
    Unreadable(serde_json::Error),
    #[error("this ggond runs alone (no [cluster] in its config)")]
    NoCluster,
}

pub struct Client {
    base: String,
    token: String,
    http: reqwest::Client,
}

pub fn client(args: &Args) -> Result<Client, ClientError> {
    // Only [server] and [control] are read: fast at any size, and a
    // mistake elsewhere in the file (mid-edit) does not lock the operator out.
    let cfg = if args.control.is_none() || args.token_file.is_none() {
        let path = match &args.config {
            Some(p) => p.clone(),
            None => ggon::config::client::find_default().map_err(ClientError::NoConfig)?,
        };
        let c = ggon::config::client::control_settings(&path).map_err(ClientError::Config)?;
        if let Some(e) = &c.elsewhere {
            // One line: the operator may be mid-edit; ggond keeps serving.
            eprintln!(
                "warning: {e} (outside [server] and [control], which is all ggon-ctl reads; \
                 ggond would refuse this file at a reload)"
            );
        }
        Some(c)
    } else {
        None
    };
    let unix = args
        .control
        .as_deref()
        .and_then(|c| c.strip_prefix("unix:"))
        .map(std::path::PathBuf::from);
    let base = match &args.control {
        Some(_) if unix.is_some() => "http://localhost".to_string(),
        Some(c) => base_url(c)?,
        None => {
            let c = cfg.as_ref().expect("loaded when --control is not given");
            let scheme = if c.tls { "https" } else { "http" };
            format!("{scheme}://{}", c.listen)
        }
    };
    let token_file = args
        .token_file
        .clone()
        .or(cfg.as_ref().map(|c| c.token_file.clone()))
        .expect("one of them is set");
    let text = std::fs::read_to_string(&token_file).map_err(|error| ClientError::TokenFile {
        path: token_file.clone(),
        error,
    })?;
    let token = text
        .lines()
        .map(|l| l.split('#').next().unwrap_or("").trim())
        .find(|l| !l.is_empty())
        .and_then(|l| l.split_whitespace().last())
        .ok_or_else(|| ClientError::NoToken(token_file.clone()))?
        .to_string();
    let mut http = reqwest::Client::builder()
        .timeout(std::time::Duration::from_secs(10))
        .no_proxy();
    if let Some(path) = unix {
        http = http.unix_socket(path);
    }
    if let Some(path) = &args.ca_file {
        let pem = std::fs::read(path).map_err(|error| ClientError::CaFile {
            path: path.clone(),
            error,
        })?;
        let certs =
            reqwest::Certificate::from_pem_bundle(&pem).map_err(|error| ClientError::CaPem {
                path: path.clone(),
                error,
            })?;
        if certs.is_empty() {
            return Err(ClientError::NoCertificate(path.clone()));
        }
        for c in certs {
            http = http.add_root_certificate(c);
        }
    }
    Ok(Client {
        base,
        token,
        http: http.build().map_err(ClientError::Http)?,
    })
}

/// `--control`: IP:PORT (plain HTTP) or an http:// or https:// URL.
fn base_url(control: &str) -> Result<String, ClientError> {
    let control = control.trim_end_matches('/');
    if let Some(rest) = control
        .strip_prefix("https://")
        .or_else(|| control.strip_prefix("http://"))
    {
        if rest.is_empty() || rest.contains('/') {
            return Err(ClientError::UrlWithPath(control.to_string()));
        }
        return Ok(control.to_string());
    }
    control
        .parse::<std::net::SocketAddr>()
        .map(|a| format!("http://{a}"))
        .map_err(|_| ClientError::NotAnAddress(control.to_string()))
}

impl Client {
    pub async fn call(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<Value>,
    ) -> Result<Value, ClientError> {
        let mut req = self
            .http
            .request(method, format!("{}{path}", self.base))
            .bearer_auth(&self.token);
        if let Some(b) = body {
            req = req.json(&b);
        }
        let resp = req.send().await.map_err(|error| ClientError::Unreachable {
            base: self.base.clone(),
            error,
        })?;
        let status = resp.status();
        let v: Value = resp.json().await.unwrap_or(Value::Null);
        if status.is_success() {
            Ok(v)
        } else {
            let message = v["error"].as_str().unwrap_or("request failed").to_string();
            Err(ClientError::Refused {
                status: status.as_u16(),
                message,
            })
        }
    }
}

pub fn fail(msg: impl std::fmt::Display) -> std::process::ExitCode {
    eprintln!("ggon-ctl: error: {msg}");
    std::process::ExitCode::from(1)
}
