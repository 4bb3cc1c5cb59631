//! ggon-ctl: the operator's command line for a running ggond.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

mod linkaudit;
mod verify;
use serde_json::{json, Value};

/// Operate ggond: look at services, remap, release.
#[derive(Parser, Debug)]
#[command(name = "ggon-ctl", version)]
struct Args {
    /// ggond's config file (where the control address and token file are found).
    #[arg(long, global = true, default_value = "config/ggon.toml")]
    config: PathBuf,
    /// Control API address (default: from the config file).
    #[arg(long, global = true, env = "GGON_CONTROL")]
    control: Option<SocketAddr>,
    /// Bearer token file (default: from the config file).
    #[arg(long, global = true, env = "GGON_TOKEN_FILE")]
    token_file: Option<PathBuf>,
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Subcommand, Debug)]
enum Cmd {
    /// Show services, their active target, mode and target health.
    Status {
        service: Option<String>,
        #[arg(long)]
        json: bool,
    },
    /// Answer with TARGET now and pin the service to it (mode manual).
    Remap {
        service: String,
        #[arg(long)]
        to: String,
        #[arg(long, default_value = "")]
        reason: String,
        /// Remap even to a target whose checks say it is down.
        #[arg(long)]
        force: bool,
        /// Show what would happen, change nothing.
        #[arg(long)]
        dry_run: bool,
        /// Let the pin expire after this long (e.g. 2h); default: until released.
        #[arg(long = "for")]
        duration: Option<String>,
        #[arg(long)]
        json: bool,
    },
    /// Take a target out of selection (maintenance); the service moves if it was active.
    Drain {
        service: String,
        target: String,
        #[arg(long, default_value = "")]
        reason: String,
        /// Undrain automatically after this long (e.g. 30m).
        #[arg(long = "for")]
        duration: Option<String>,
        #[arg(long)]
        json: bool,
    },
    /// Put a drained target back into selection.
    Undrain {
        service: String,
        target: String,
        #[arg(long)]
        json: bool,
    },
    /// Dry run: what would happen if the active target failed now. With
    /// --fail TARGET --for DURATION, treat TARGET as failed for that long.
    Drill {
        service: String,
        #[arg(long)]
        fail: Option<String>,
        #[arg(long = "for")]
        duration: Option<String>,
        #[arg(long)]
        json: bool,
    },
    /// The audit log of changes.
    History {
        service: Option<String>,
        /// Unix seconds, or how long ago (e.g. 1h).
        #[arg(long)]
        since: Option<String>,
        #[arg(long)]
        json: bool,
    },
    /// Which DNS servers (the zone's configured secondaries and any named
    /// here) still serve an answer other than the active target's, and how
    /// long caches may keep it (their TTL). Exit 1 if any is not current.
    Verify {
        service: String,
        /// A server to ask (IP:PORT); repeat for several.
        #[arg(long)]
        server: Vec<SocketAddr>,
        #[arg(long)]
        json: bool,
    },
    /// Fetch pages and list absolute links to names in DOMAIN that are not
    /// failover-managed: the links that would break after a remap.
    AuditLinks {
        #[arg(required = true)]
        url: Vec<String>,
        #[arg(long)]
        domain: String,
        #[arg(long, default_value_t = 2)]
        depth: u32,
        #[arg(long, default_value_t = 50)]
        max_pages: usize,
        #[arg(long)]
        json: bool,
    },
    /// Re-read ggond's config and zone files (a bad one is rejected; the running one stays).
    Reload {
        #[arg(long)]
        json: bool,
    },
    /// Remove the pin: the automatic policy chooses again.
    Release {
        service: String,
        #[arg(long)]
        json: bool,
    },
}

struct Client {
    base: String,
    token: String,
    http: reqwest::Client,
}

fn fail(msg: impl std::fmt::Display) -> ExitCode {
    eprintln!("ggon-ctl: error: {msg}");
    ExitCode::from(1)
}

fn client(args: &Args) -> Result<Client, String> {
    let cfg = if args.control.is_none() || args.token_file.is_none() {
        Some(ggon::config::Config::load(&args.config).map_err(|e| {
            format!("{e} (give --control and --token-file, or GGON_CONTROL and GGON_TOKEN_FILE)")
        })?)
    } else {
        None
    };
    let control = args
        .control
        .or(cfg.as_ref().map(|c| c.control.listen))
        .expect("one of them is set");
    let token_file = args
        .token_file
        .clone()
        .or(cfg.as_ref().map(|c| c.token_file()))
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
    Ok(Client {
        base: format!("http://{control}"),
        token,
        http: reqwest::Client::builder()
            .timeout(std::time::Duration::from_secs(10))
            .no_proxy()
            .build()
            .map_err(|e| e.to_string())?,
    })
}

impl Client {
    async fn call(
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
            .map_err(|e| format!("cannot reach ggond at {}: {e}", self.base))?;
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

fn ago(at: f64) -> String {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0.0, |d| d.as_secs_f64());
    format!("{:.0}s ago", (now - at).max(0.0))
}

fn print_status(v: &Value) {
    for s in v["services"].as_array().into_iter().flatten() {
        let pin = match &s["pin"] {
            Value::Null => String::new(),
            p => format!(
                " (pinned by {}{})",
                p["author"].as_str().unwrap_or("?"),
                match p["reason"].as_str() {
                    Some(r) if !r.is_empty() => format!(": {r}"),
                    _ => String::new(),
                }
            ),
        };
        println!(
            "{} ({})  active: {}  mode: {}{}  failback: {}{}",
            s["name"].as_str().unwrap_or(""),
            s["fqdn"].as_str().unwrap_or(""),
            s["active"].as_str().unwrap_or(""),
            s["mode"].as_str().unwrap_or(""),
            pin,
            s["failback"].as_str().unwrap_or(""),
            if s["all_down"].as_bool() == Some(true) {
                "  ALARM: all targets down"
            } else {
                ""
            }
        );
        println!(
            "    {:<12} {:<28} {:<8} LAST CHECK",
            "TARGET", "ADDRESSES", "HEALTH"
        );
        for t in s["targets"].as_array().into_iter().flatten() {
            let active = t["name"] == s["active"];
            let addrs: Vec<&str> = t["addresses"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(Value::as_str)
                .collect();
            let health = match t["healthy"].as_bool() {
                Some(true) => "up",
                Some(false) => "DOWN",
                None => "unknown",
            };
            let last = match &t["last_check"] {
                Value::Null => "-".to_string(),
                c => format!(
                    "{} ({:.1} ms, {})",
                    c["detail"].as_str().unwrap_or(""),
                    c["latency_ms"].as_f64().unwrap_or(0.0),
                    ago(c["at"].as_f64().unwrap_or(0.0))
                ),
            };
            println!(
                "  {} {:<12} {:<28} {:<8} {}",
                if active { "*" } else { " " },
                t["name"].as_str().unwrap_or(""),
                addrs.join(","),
                health,
                last
            );
        }
    }
}

fn print_change(v: &Value) {
    if v["dry_run"].as_bool() == Some(true) {
        print!("DRY RUN (nothing changed): ");
    }
    let addrs: Vec<&str> = v["addresses"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(Value::as_str)
        .collect();
    if v["changed"].as_bool() == Some(true) {
        println!(
            "{}: {} -> {} ({}), mode {}",
            v["service"].as_str().unwrap_or(""),
            v["from"].as_str().unwrap_or(""),
            v["to"].as_str().unwrap_or(""),
            addrs.join(","),
            v["mode"].as_str().unwrap_or("")
        );
    } else {
        println!(
            "{}: stays on {} ({}), mode {}",
            v["service"].as_str().unwrap_or(""),
            v["to"].as_str().unwrap_or(""),
            addrs.join(","),
            v["mode"].as_str().unwrap_or("")
        );
    }
}

fn print_drill(v: &Value) {
    let s = |k: &str| v[k].as_str().unwrap_or("-").to_string();
    let addrs: Vec<&str> = v["answers"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(Value::as_str)
        .collect();
    println!("service:   {} ({})", s("service"), s("fqdn"));
    println!("active:    {}", s("active"));
    match v["takeover"].as_str() {
        Some(t) => println!(
            "takeover:  {t} ({})",
            match v["takeover_healthy"].as_bool() {
                Some(true) => "healthy",
                _ => "NOT healthy",
            }
        ),
        None => println!("takeover:  none"),
    }
    println!(
        "would answer: {} A/AAAA {}  ttl {}  serial {}",
        s("fqdn"),
        addrs.join(","),
        v["ttl"],
        v["serial"]
    );
    println!("note:      {}", s("note"));
    if let Some(f) = v["failing"].as_array() {
        println!(
            "DRILL RUNNING: {} treated as failed until {} (unix)",
            f[0].as_str().unwrap_or(""),
            f[1]
        );
    }
}

fn print_history(v: &Value) {
    for e in v["entries"].as_array().into_iter().flatten() {
        let t = e["time"].as_u64().unwrap_or(0);
        let when = humantime::format_rfc3339_seconds(
            std::time::UNIX_EPOCH + std::time::Duration::from_secs(t),
        );
        let arrow = match (e["from"].as_str(), e["to"].as_str()) {
            (Some(f), Some(t)) => format!("{f} -> {t}"),
            (None, Some(t)) => t.to_string(),
            (Some(f), None) => f.to_string(),
            _ => String::new(),
        };
        println!(
            "{when}  {:<12} {:<8} {:<20} cause={} who={} {}",
            e["kind"].as_str().unwrap_or(""),
            e["service"].as_str().unwrap_or("-"),
            arrow,
            e["cause"].as_str().unwrap_or(""),
            e["who"].as_str().unwrap_or(""),
            match e["reason"].as_str() {
                Some(r) if !r.is_empty() => format!("reason=\"{r}\""),
                _ => String::new(),
            }
        );
    }
}

/// Service names ggond manages: from the config file, else from the daemon.
fn managed_names(args: &Args) -> Vec<String> {
    match ggon::config::Config::load(&args.config) {
        Ok(c) => c
            .services
            .iter()
            .map(|s| ggon::config::normalize_name(s.fqdn.get_ref()))
            .collect(),
        Err(_) => Vec::new(),
    }
}

async fn audit(
    args: &Args,
    url: &[String],
    domain: &str,
    depth: u32,
    max_pages: usize,
    json: bool,
) -> ExitCode {
    let mut managed = managed_names(args);
    if managed.is_empty() {
        if let Ok(c) = client(args) {
            if let Ok(v) = c.call(reqwest::Method::GET, "/v1/status", None).await {
                managed = v["services"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .filter_map(|s| s["fqdn"].as_str().map(str::to_string))
                    .collect();
            }
        }
    }
    match linkaudit::audit_links(
        url,
        domain,
        &managed,
        depth,
        max_pages,
        std::time::Duration::from_secs(10),
    )
    .await
    {
        Ok(found) if json => {
            println!("{}", json!({"managed": managed, "findings": found}));
            ExitCode::SUCCESS
        }
        Ok(found) => {
            if found.is_empty() {
                println!("no links to unmanaged names in {domain}");
            }
            for f in &found {
                println!(
                    "{}  ->  {}  (host {} is not failover-managed)",
                    f.page, f.link, f.host
                );
            }
            ExitCode::SUCCESS
        }
        Err(e) => fail(e),
    }
}

async fn verify(
    args: &Args,
    client: &Client,
    service: &str,
    servers: &[SocketAddr],
    json: bool,
) -> ExitCode {
    let st = match client
        .call(
            reqwest::Method::GET,
            &format!("/v1/status?service={service}"),
            None,
        )
        .await
    {
        Ok(v) => v,
        Err(e) => return fail(e),
    };
    let svc = &st["services"][0];
    let fqdn = svc["fqdn"].as_str().unwrap_or_default().to_string();
    let active = svc["active"].as_str().unwrap_or_default();
    let expected: Vec<std::net::IpAddr> = svc["targets"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|t| t["name"] == active)
        .and_then(|t| t["addresses"].as_array())
        .into_iter()
        .flatten()
        .filter_map(|a| a.as_str()?.parse().ok())
        .collect();
    let mut all: Vec<SocketAddr> = servers.to_vec();
    if let Ok(cfg) = ggon::config::Config::load(&args.config) {
        for sec in cfg.zone_for(&fqdn).into_iter().flat_map(|z| &z.secondaries) {
            if !all.contains(&sec.address) {
                all.push(sec.address);
            }
        }
    }
    if all.is_empty() {
        return fail(
            "no servers to check: the zone has no secondaries configured; name some with --server",
        );
    }
    let Ok(name) = hickory_proto::rr::Name::from_ascii(&fqdn) else {
        return fail(format!("bad name {fqdn}"));
    };
    let checks =
        verify::verify(&name, &expected, &all, std::time::Duration::from_secs(2)).await;
    let stale = checks.iter().filter(|c| !c.current).count();
    if json {
        println!(
            "{}",
            json!({"service": service, "fqdn": fqdn, "expected": expected, "servers": checks})
        );
    } else {
        let exp: Vec<String> = expected.iter().map(|a| a.to_string()).collect();
        println!("{service} ({fqdn}) active {active}: {}", exp.join(","));
        println!("  {:<24} {:<8} {:<28} TTL", "SERVER", "STATE", "ANSWER");
        for c in &checks {
            let ans: Vec<String> = c.answers.iter().map(|a| a.to_string()).collect();
            let state = match (&c.error, c.current) {
                (Some(_), _) => "ERROR",
                (None, true) => "current",
                (None, false) => "STALE",
            };
            let detail = match &c.error {
                Some(e) => e.clone(),
                None => ans.join(","),
            };
            let ttl = match (c.current, c.ttl) {
                (false, Some(t)) => format!("{t}s (caches may keep the old answer this long)"),
                (_, Some(t)) => format!("{t}s"),
                _ => "-".into(),
            };
            println!(
                "  {:<24} {:<8} {:<28} {}",
                c.server.to_string(),
                state,
                detail,
                ttl
            );
        }
    }
    if stale == 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    }
}

fn main() -> ExitCode {
    let args = Args::parse();
    if let Cmd::AuditLinks {
        url,
        domain,
        depth,
        max_pages,
        json,
    } = &args.cmd
    {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("runtime");
        return rt.block_on(audit(&args, url, domain, *depth, *max_pages, *json));
    }
    let client = match client(&args) {
        Ok(c) => c,
        Err(e) => return fail(e),
    };
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    if let Cmd::Verify {
        service,
        server,
        json,
    } = &args.cmd
    {
        return rt.block_on(verify(&args, &client, service, server, *json));
    }
    rt.block_on(async {
        use reqwest::Method;
        #[derive(PartialEq)]
        enum Out {
            Status,
            Change,
            Drill,
            History,
            Reload,
        }
        let (result, json_out, out) = match &args.cmd {
            Cmd::Status { service, json } => {
                let path = match service {
                    Some(s) => format!("/v1/status?service={s}"),
                    None => "/v1/status".to_string(),
                };
                (client.call(Method::GET, &path, None).await, *json, Out::Status)
            }
            Cmd::Remap {
                service,
                to,
                reason,
                force,
                dry_run,
                duration,
                json,
            } => (
                client
                    .call(
                        Method::POST,
                        &format!("/v1/services/{service}/remap"),
                        Some(json!({"to": to, "reason": reason, "force": force, "dry_run": dry_run, "for": duration})),
                    )
                    .await,
                *json,
                Out::Change,
            ),
            Cmd::Release { service, json } => (
                client
                    .call(Method::POST, &format!("/v1/services/{service}/release"), None)
                    .await,
                *json,
                Out::Change,
            ),
            Cmd::Drain {
                service,
                target,
                reason,
                duration,
                json,
            } => (
                client
                    .call(
                        Method::POST,
                        &format!("/v1/services/{service}/targets/{target}/drain"),
                        Some(json!({"reason": reason, "for": duration})),
                    )
                    .await,
                *json,
                Out::Change,
            ),
            Cmd::Undrain { service, target, json } => (
                client
                    .call(
                        Method::POST,
                        &format!("/v1/services/{service}/targets/{target}/undrain"),
                        None,
                    )
                    .await,
                *json,
                Out::Change,
            ),
            Cmd::Drill {
                service,
                fail,
                duration,
                json,
            } => (
                client
                    .call(
                        Method::POST,
                        &format!("/v1/services/{service}/drill"),
                        Some(json!({"fail": fail, "for": duration})),
                    )
                    .await,
                *json,
                Out::Drill,
            ),
            Cmd::History { service, since, json } => {
                let mut q = vec![];
                if let Some(s) = service {
                    q.push(format!("service={s}"));
                }
                if let Some(s) = since {
                    q.push(format!("since={s}"));
                }
                (
                    client
                        .call(Method::GET, &format!("/v1/history?{}", q.join("&")), None)
                        .await,
                    *json,
                    Out::History,
                )
            }
            Cmd::Verify { .. } | Cmd::AuditLinks { .. } => unreachable!("handled above"),
            Cmd::Reload { json } => (
                client.call(Method::POST, "/v1/reload", None).await,
                *json,
                Out::Reload,
            ),
        };
        match result {
            Ok(v) if json_out => {
                println!("{}", serde_json::to_string_pretty(&v).unwrap_or_default());
                ExitCode::SUCCESS
            }
            Ok(v) => {
                match out {
                    Out::Status => print_status(&v),
                    Out::Change => print_change(&v),
                    Out::Drill => print_drill(&v),
                    Out::History => print_history(&v),
                    Out::Reload => println!("reloaded: {}", v["summary"].as_str().unwrap_or("")),
                }
                ExitCode::SUCCESS
            }
            Err(e) => fail(e),
        }
    })
}
