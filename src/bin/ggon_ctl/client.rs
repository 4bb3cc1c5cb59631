//! The control API client: address and token from the config (or flags),
//! one call per command, errors as one line an operator can act on.

use serde_json::Value;

use ggon::cli::ctl::Args;

pub struct Client {
    base: String,
    token: String,
    http: reqwest::Client,
}

pub fn client(args: &Args) -> Result<Client, String> {
    // Only [server] and [control] are read: fast at any size, and a
    // mistake elsewhere in the file (mid-edit) does not lock the operator out.
    let cfg = if args.control.is_none() || args.token_file.is_none() {
        Some(
            ggon::config::client::control_settings(&args.config_file()).map_err(|e| {
                format!(
                    "{e} (give --control and --token-file, or GGON_CONTROL and GGON_TOKEN_FILE)"
                )
            })?,
        )
    } else {
        None
    };
    let base = match &args.control {
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
    let text = std::fs::read_to_string(&token_file)
        .map_err(|e| format!("cannot read token file {}: {e}", token_file.display()))?;
    let token = text
        .lines()
        .map(|l| l.split('#').next().unwrap_or("").trim())
        .find(|l| !l.is_empty())
        .and_then(|l| l.split_whitespace().last())
        .ok_or_else(|| format!("no token in {}", token_file.display()))?
        .to_string();
    let mut http = reqwest::Client::builder()
        .timeout(std::time::Duration::from_secs(10))
        .no_proxy();
    if let Some(path) = &args.ca_file {
        let pem = std::fs::read(path)
            .map_err(|e| format!("cannot read --ca-file {}: {e}", path.display()))?;
        let certs = reqwest::Certificate::from_pem_bundle(&pem)
            .map_err(|e| format!("--ca-file {}: {e}", path.display()))?;
        if certs.is_empty() {
            return Err(format!(
                "--ca-file {}: no certificate in it",
                path.display()
            ));
        }
        for c in certs {
            http = http.add_root_certificate(c);
        }
    }
    Ok(Client {
        base,
        token,
        http: http.build().map_err(|e| e.to_string())?,
    })
}

/// `--control`: IP:PORT (plain HTTP) or an http:// or https:// URL.
fn base_url(control: &str) -> Result<String, String> {
    let control = control.trim_end_matches('/');
    if let Some(rest) = control
        .strip_prefix("https://")
        .or_else(|| control.strip_prefix("http://"))
    {
        if rest.is_empty() || rest.contains('/') {
            return Err(format!(
                "--control {control}: give a URL without a path (https://HOST:PORT)"
            ));
        }
        return Ok(control.to_string());
    }
    control
        .parse::<std::net::SocketAddr>()
        .map(|a| format!("http://{a}"))
        .map_err(|_| format!("--control {control}: not IP:PORT nor an http:// or https:// URL"))
}

impl Client {
    pub async fn call(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<Value>,
    ) -> Result<Value, String> {
        let mut req = self
            .http
            .request(method, format!("{}{path}", self.base))
            .bearer_auth(&self.token);
        if let Some(b) = body {
            req = req.json(&b);
        }
        let resp = req
            .send()
            .await
            .map_err(|e| {
                format!(
                    "cannot reach ggond at {}: {} (is ggond running, and is --control its control address?)",
                    self.base,
                    ggon::monitor::http_error_detail(&e)
                )
            })?;
        let status = resp.status();
        let v: Value = resp.json().await.unwrap_or(Value::Null);
        if status.is_success() {
            Ok(v)
        } else {
            let msg = v["error"].as_str().unwrap_or("request failed").to_string();
            Err(format!("{msg} (HTTP {})", status.as_u16()))
        }
    }
}

pub fn fail(msg: impl std::fmt::Display) -> std::process::ExitCode {
    eprintln!("ggon-ctl: error: {msg}");
    std::process::ExitCode::from(1)
}
