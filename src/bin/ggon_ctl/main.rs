//! ggon-ctl: the operator's command line for a running ggond.

use std::net::SocketAddr;
use std::process::ExitCode;

use clap::Parser;
use ggon::cli::ctl::{Args, Cmd, DnssecCmd};
use ggon::cli::docs::{self, Program};
use ggon::decide::requests::{DrainRequest, DrillRequest, RemapRequest};
use ggon::decide::views::{ChangeView, DrillView, StatusView};
use ggon::decide::Event;
use serde_json::{json, Value};

mod certs;
mod client;
mod dnssec;
mod linkaudit;
mod print;
mod verify;

use client::{client, fail, Client, ClientError};

/// Service names ggond manages: from the config file, else from the daemon.
fn managed_names(args: &Args) -> Vec<String> {
    match ggon::config::Config::load(&args.config_file()) {
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
            let status = c.call(reqwest::Method::GET, "/v1/status", None).await;
            if let Ok(v) = status.and_then(parse::<StatusView>) {
                managed = v.services.into_iter().map(|s| s.fqdn).collect();
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
        .and_then(parse::<StatusView>)
    {
        Ok(v) => v,
        Err(e) => return fail(e),
    };
    let Some(svc) = st.services.first() else {
        return fail(format!("no service named `{service}`"));
    };
    let fqdn = svc.fqdn.clone();
    let active = svc.active.as_str();
    let expected: Vec<std::net::IpAddr> = svc
        .targets
        .iter()
        .find(|t| t.name == active)
        .map(|t| t.addresses.clone())
        .unwrap_or_default();
    let mut all: Vec<SocketAddr> = servers.to_vec();
    if let Ok(cfg) = ggon::config::Config::load(&args.config_file()) {
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
    let checks = verify::verify(&name, &expected, &all, std::time::Duration::from_secs(2)).await;
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

/// What a command prints, once ggond has answered.
enum Shown {
    Status,
    Cluster,
    /// A change of a service, after a line saying what the command did when
    /// the from/to line alone would not (a drain that leaves the service
    /// where it is must still read as done).
    Change(Option<String>),
    /// A drill, of one region if given.
    Drill(Option<String>),
    History,
    Reload,
    Message,
}

/// ` (reason "R", for 30m)` after "drained TARGET", or nothing.
fn drain_detail(reason: &str, duration: Option<&str>) -> String {
    let parts: Vec<String> = [
        (!reason.is_empty()).then(|| format!("reason {reason:?}")),
        duration.map(|d| format!("for {d}")),
    ]
    .into_iter()
    .flatten()
    .collect();
    if parts.is_empty() {
        String::new()
    } else {
        format!(" ({})", parts.join(", "))
    }
}

fn parse<T: serde::de::DeserializeOwned>(v: Value) -> Result<T, ClientError> {
    serde_json::from_value(v).map_err(ClientError::Unreadable)
}

/// Print a successful answer; the exit code says whether it is cause for concern.
fn show(v: Value, json_out: bool, shown: Shown) -> Result<ExitCode, ClientError> {
    // ggond's `warning` is always a string (ChangeView, or the cluster's
    // "did not confirm" added in ops/forward.rs).
    let warning = v["warning"].as_str().map(str::to_string);
    // `reload --cluster`: a node that failed or still differs is cause
    // for concern too.
    let cluster_reload = matches!(shown, Shown::Reload) && v.get("nodes").is_some();
    let differs = v["differences"].as_array().is_some_and(|d| !d.is_empty());
    let warned = warning.is_some() || (cluster_reload && (v["reloaded"] != true || differs));
    let change = matches!(shown, Shown::Change(_));
    if json_out {
        println!("{}", serde_json::to_string_pretty(&v).unwrap_or_default());
        if let Some(w) = &warning {
            eprintln!("ggon-ctl: WARNING: {w}");
        }
    } else {
        match shown {
            Shown::Status => print::status(&parse::<StatusView>(v)?),
            Shown::Cluster => match parse::<StatusView>(v)?.cluster {
                Some(c) => print::cluster(&c, true),
                None => return Err(ClientError::NoCluster),
            },
            Shown::Change(done) => {
                if let Some(done) = done {
                    println!("{done}");
                }
                print::change(&parse::<ChangeView>(v)?);
            }
            Shown::Drill(region) => print::drill(&parse::<DrillView>(v)?, region.as_deref()),
            Shown::History => print::history(&parse::<Vec<Event>>(v["entries"].clone())?),
            Shown::Reload if cluster_reload => print::cluster_reload(&v),
            Shown::Reload => println!("reloaded: {}", v["summary"].as_str().unwrap_or("")),
            Shown::Message => println!("{}", v.as_str().unwrap_or("")),
        }
        // print::change prints a change's warning itself, after its lines.
        if let Some(w) = warning.filter(|_| !change) {
            eprintln!("ggon-ctl: WARNING: {w}");
        }
    }
    Ok(if warned {
        ExitCode::from(1)
    } else {
        ExitCode::SUCCESS
    })
}

fn body<T: serde::Serialize>(request: &T) -> Option<Value> {
    Some(serde_json::to_value(request).expect("plain data"))
}

fn audit_certs(
    args: &Args,
    service: Option<&str>,
    warn_days: i64,
    ca_file: Option<&std::path::Path>,
    timeout: f64,
    json: bool,
) -> ExitCode {
    let cfg = match ggon::config::Config::load(&args.config_file()) {
        Ok(c) => c,
        Err(e) => return fail(format!("{e}")),
    };
    if !(timeout.is_finite() && timeout > 0.0) {
        return fail("--timeout must be a positive number of seconds");
    }
    let timeout = std::time::Duration::from_secs_f64(timeout);
    let checks = match certs::audit(&cfg, service, warn_days, ca_file, timeout) {
        Ok(c) => c,
        Err(e) => return fail(e),
    };
    if json {
        println!("{}", json!({ "certificates": checks }));
    } else {
        print!("{}", certs::render(&checks, warn_days));
    }
    if checks.iter().all(|c| c.valid && !c.expiring) {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}

fn main() -> ExitCode {
    // `ggon-ctl status | head` must end quietly when head has read enough,
    // as other command-line tools do, not panic on the closed pipe.
    #[cfg(unix)]
    // SAFETY: restoring the default action of SIGPIPE before any thread or
    // output exists; no handler of ours is replaced.
    unsafe {
        libc::signal(libc::SIGPIPE, libc::SIG_DFL);
    }
    let args = Args::parse();
    if let Some(code) = without_ggond(&args) {
        return code;
    }
    let client = match client(&args) {
        Ok(c) => c,
        Err(e) => return fail(e),
    };
    let rt = runtime();
    if let Cmd::Verify {
        service,
        server,
        json,
    } = &args.cmd
    {
        return rt.block_on(verify(&args, &client, service, server, *json));
    }
    let call = Call::of(&args.cmd);
    let answer = rt.block_on(client.call(call.method, &call.path, call.body));
    match answer.and_then(|v| show(v, call.json, call.shown)) {
        Ok(code) => {
            match &args.cmd {
                // The certificate line of one service (a list or a filter
                // would audit many hosts while the operator waits).
                Cmd::Status {
                    services,
                    down: false,
                    region: None,
                    json: false,
                } if services.len() <= 1 => cert_line(&args, services.first().map(String::as_str)),
                Cmd::Drill {
                    service,
                    json: false,
                    ..
                } => cert_line(&args, Some(service)),
                _ => {}
            }
            code
        }
        Err(e) => fail(e),
    }
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime")
}

/// The commands that do not ask ggond: completions, documentation, DNSSEC
/// keys and status (over DNS), the certificate and link audits. None for
/// the others.
fn without_ggond(args: &Args) -> Option<ExitCode> {
    Some(match &args.cmd {
        Cmd::Completions { shell } => {
            use std::io::Write;
            let script = docs::completion(Program::GgonCtl, *shell);
            match std::io::stdout().write_all(&script) {
                Ok(()) => ExitCode::SUCCESS,
                Err(e) => fail(e),
            }
        }
        Cmd::GenerateDocs { dir } => match docs::write_all(dir) {
            Ok(files) => {
                for f in files {
                    println!("{}", f.display());
                }
                ExitCode::SUCCESS
            }
            Err(e) => fail(format!("{}: {e}", dir.display())),
        },
        Cmd::Dnssec {
            cmd:
                DnssecCmd::Keygen {
                    zone,
                    algorithm,
                    ksk,
                    dir,
                },
        } => dnssec::keygen(zone, algorithm, *ksk, dir),
        Cmd::Dnssec {
            cmd: DnssecCmd::Status { zone, server, json },
        } => runtime().block_on(dnssec::status(args, zone.as_deref(), *server, *json)),
        Cmd::AuditCerts {
            service,
            warn_days,
            timeout,
            json,
        } => audit_certs(
            args,
            service.as_deref(),
            *warn_days,
            args.ca_file.as_deref(),
            *timeout,
            *json,
        ),
        Cmd::AuditLinks {
            url,
            domain,
            depth,
            max_pages,
            json,
        } => runtime().block_on(audit(args, url, domain, *depth, *max_pages, *json)),
        _ => return None,
    })
}

/// One request to the control API and how to show its answer.
struct Call {
    method: reqwest::Method,
    path: String,
    body: Option<Value>,
    /// Print the answer as JSON.
    json: bool,
    shown: Shown,
}

impl Call {
    /// The request a command makes (the commands that do not ask ggond,
    /// and `verify`, are handled before).
    fn of(cmd: &Cmd) -> Call {
        use reqwest::Method;
        let call = |method, path: String, body, json: &bool, shown| Call {
            method,
            path,
            body,
            json: *json,
            shown,
        };
        match cmd {
            Cmd::Status {
                services,
                down,
                region,
                json,
            } => call(
                Method::GET,
                status_path(services, *down, region.as_deref()),
                None,
                json,
                Shown::Status,
            ),
            Cmd::Cluster { json } => call(
                Method::GET,
                "/v1/status".to_string(),
                None,
                json,
                Shown::Cluster,
            ),
            Cmd::Dnssec {
                cmd: DnssecCmd::Roll {
                    zone, ksk, json, ..
                },
            } => call(
                Method::POST,
                format!("/v1/dnssec/{zone}/roll"),
                Some(json!({ "kind": if *ksk { "ksk" } else { "zsk" } })),
                json,
                Shown::Message,
            ),
            Cmd::History {
                service,
                since,
                json,
            } => {
                let mut q = vec![];
                if let Some(s) = service {
                    q.push(format!("service={s}"));
                }
                if let Some(s) = since {
                    q.push(format!("since={s}"));
                }
                let path = format!("/v1/history?{}", q.join("&"));
                call(Method::GET, path, None, json, Shown::History)
            }
            Cmd::Reload { json, cluster } => call(
                Method::POST,
                if *cluster {
                    "/v1/reload?cluster=true"
                } else {
                    "/v1/reload"
                }
                .to_string(),
                None,
                json,
                Shown::Reload,
            ),
            Cmd::Drill {
                service,
                fail,
                duration,
                region,
                json,
            } => call(
                Method::POST,
                format!("/v1/services/{service}/drill"),
                body(&DrillRequest {
                    fail: fail.clone(),
                    duration: duration.clone(),
                    region: region.clone(),
                }),
                json,
                Shown::Drill(region.clone()),
            ),
            _ => Call::change(cmd),
        }
    }

    /// The requests that change a service: remap, release, drain, undrain.
    fn change(cmd: &Cmd) -> Call {
        let post = |path: String, body, json: &bool, shown| Call {
            method: reqwest::Method::POST,
            path,
            body,
            json: *json,
            shown,
        };
        match cmd {
            Cmd::Remap {
                service,
                to,
                reason,
                force,
                dry_run,
                duration,
                region,
                json,
            } => post(
                format!("/v1/services/{service}/remap"),
                body(&RemapRequest {
                    to: to.clone(),
                    reason: reason.clone(),
                    force: *force,
                    dry_run: *dry_run,
                    duration: duration.clone(),
                    region: region.clone(),
                }),
                json,
                Shown::Change(None),
            ),
            Cmd::Release {
                service,
                region,
                json,
            } => post(
                match region {
                    Some(r) => format!("/v1/services/{service}/release?region={r}"),
                    None => format!("/v1/services/{service}/release"),
                },
                None,
                json,
                Shown::Change(Some(match region {
                    Some(r) => format!("{service} region {r}: released to automatic policy"),
                    None => format!("{service}: released to automatic policy"),
                })),
            ),
            Cmd::Drain {
                service,
                target,
                reason,
                duration,
                force,
                json,
            } => post(
                format!("/v1/services/{service}/targets/{target}/drain"),
                body(&DrainRequest {
                    reason: reason.clone(),
                    duration: duration.clone(),
                    force: *force,
                }),
                json,
                Shown::Change(Some(format!(
                    "{service}: drained {target}{}",
                    drain_detail(reason, duration.as_deref())
                ))),
            ),
            Cmd::Undrain {
                service,
                target,
                json,
            } => post(
                format!("/v1/services/{service}/targets/{target}/undrain"),
                None,
                json,
                Shown::Change(Some(format!(
                    "{service}: undrained {target} (back in selection)"
                ))),
            ),
            Cmd::Status { .. }
            | Cmd::Cluster { .. }
            | Cmd::Drill { .. }
            | Cmd::History { .. }
            | Cmd::Reload { .. }
            | Cmd::Verify { .. }
            | Cmd::Dnssec { .. }
            | Cmd::AuditCerts { .. }
            | Cmd::AuditLinks { .. }
            | Cmd::Completions { .. }
            | Cmd::GenerateDocs { .. } => unreachable!("handled before"),
        }
    }
}

/// `GET /v1/status` with the filters of `ggon-ctl status` as its query.
fn status_path(services: &[String], down: bool, region: Option<&str>) -> String {
    let mut query = Vec::new();
    if !services.is_empty() {
        query.push(format!("service={}", query_value(&services.join(","))));
    }
    if down {
        query.push("down=true".to_string());
    }
    if let Some(r) = region {
        query.push(format!("region={}", query_value(r)));
    }
    match query.is_empty() {
        true => "/v1/status".to_string(),
        false => format!("/v1/status?{}", query.join("&")),
    }
}

/// Percent-encode a query value: everything but unreserved characters and
/// the comma that separates service names.
fn query_value(v: &str) -> String {
    let mut out = String::with_capacity(v.len());
    for b in v.bytes() {
        match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' | b',' => {
                out.push(b as char)
            }
            _ => out.push_str(&format!("%{b:02X}")),
        }
    }
    out
}

/// After `status` and `drill`: one line on the https targets' certificates
/// (nothing if the config has none). Extra CAs from `--ca-file` (`GGON_CA_FILE`).
/// Only the service tables with https targets are read from the config
/// ([`ggon::config::client::https_services`]): fast at any size.
fn cert_line(args: &Args, service: Option<&str>) {
    let Ok(cfg) = ggon::config::client::https_services(&args.config_file(), service) else {
        return;
    };
    let timeout = std::time::Duration::from_secs(2);
    if let Ok(checks) = certs::audit(&cfg, service, 21, args.ca_file.as_deref(), timeout) {
        if !checks.is_empty() {
            println!("{}", certs::summary(&checks));
        }
    }
}
