//! ggon-perf: a dnsperf/queryperf-style DNS query flood generator.
//!
//! Reads a query file (`name type` per line), encodes every query once, then
//! floods the server from a single thread over non-blocking UDP sockets
//! (sendmmsg/recvmmsg) or pipelined TCP connections, and prints queryperf's
//! statistics block plus latency percentiles and a count per RCODE
//! (`--json` for one JSON object instead). Works against any DNS server.

use std::io::{IsTerminal, Read};
use std::net::{SocketAddr, ToSocketAddrs};
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::bail;
use clap::Parser;
use ggon::cli::perf::Args;

mod ecs;
mod inflight;
#[cfg(target_os = "linux")]
mod interval;
mod queries;
mod stats;

#[cfg(target_os = "linux")]
mod engine;
#[cfg(target_os = "linux")]
mod sockets;

/// Largest -c accepted (each socket keeps a table over the 16-bit ID space).
const MAX_CLIENTS: usize = 256;

/// An option's value or the query file that cannot be used.
#[derive(Debug, thiserror::Error)]
enum InputError {
    #[error("{option} must be a positive number of seconds/queries, got {value}")]
    NotPositive { option: &'static str, value: f64 },
    #[error("cannot resolve server `{server}`: {error}")]
    Resolve {
        server: String,
        error: std::io::Error,
    },
    #[error("server `{0}` has no address")]
    NoAddress(String),
    #[error("cannot read queries from standard input: {0}")]
    Stdin(std::io::Error),
    #[error("cannot read query file {file}: {error}")]
    QueryFile { file: String, error: std::io::Error },
    #[error(transparent)]
    Queries(#[from] queries::ParseError),
    #[error("{0}: no queries in the file")]
    NoQueries(String),
}

fn positive(option: &'static str, value: f64) -> Result<f64, InputError> {
    if !(value.is_finite() && value > 0.0) {
        return Err(InputError::NotPositive { option, value });
    }
    Ok(value)
}

fn resolve(server: &str, port: u16) -> Result<SocketAddr, InputError> {
    (server, port)
        .to_socket_addrs()
        .map_err(|error| InputError::Resolve {
            server: server.to_string(),
            error,
        })?
        .next()
        .ok_or_else(|| InputError::NoAddress(server.to_string()))
}

fn read_queries(path: &PathBuf) -> Result<(String, Vec<queries::Question>), InputError> {
    let source = path.display().to_string();
    let mut text = String::new();
    if source == "-" {
        std::io::stdin()
            .read_to_string(&mut text)
            .map_err(InputError::Stdin)?;
    } else {
        text = std::fs::read_to_string(path).map_err(|error| InputError::QueryFile {
            file: source.clone(),
            error,
        })?;
    }
    let qs = queries::parse_file(&text, &source)?;
    if qs.is_empty() {
        return Err(InputError::NoQueries(source));
    }
    Ok((source, qs))
}

#[cfg(target_os = "linux")]
fn run(args: Args) -> anyhow::Result<()> {
    let time_limit = args
        .time_limit
        .map(|v| positive("-l", v).map(Duration::from_secs_f64))
        .transpose()?;
    if args.passes == Some(0) {
        bail!("-n must be at least 1");
    }
    let passes = match (time_limit, args.passes) {
        (None, None) => Some(1),
        (_, p) => p,
    };
    if args.clients == 0 || args.clients > MAX_CLIENTS {
        bail!(
            "-c must be between 1 and {MAX_CLIENTS}, got {}",
            args.clients
        );
    }
    let max_outstanding = args.clients * (inflight::IDS - 256);
    if args.outstanding == 0 || args.outstanding > max_outstanding {
        bail!(
            "-q must be between 1 and {max_outstanding} with -c {}, got {}",
            args.clients,
            args.outstanding
        );
    }
    let stats_interval = args
        .stats_interval
        .map(|v| positive("-S", v).map(Duration::from_secs_f64))
        .transpose()?;
    let max_qps = args.max_qps.map(|v| positive("-Q", v)).transpose()?;
    let timeout = Duration::from_secs_f64(positive("-t", args.timeout)?);
    let server = resolve(&args.server, args.port)?;
    let (_source, questions) = read_queries(&args.datafile)?;
    let rotation = args
        .ecs
        .as_deref()
        .map(|s| ecs::Rotation::parse(s, args.ecs_rotate))
        .transpose()?;
    let mut wire = queries::WireSet::encode(
        &questions,
        queries::Edns {
            enabled: args.edns || args.dnssec || rotation.is_some(),
            dnssec_ok: args.dnssec,
        },
    );
    drop(questions);
    if let Some(r) = &rotation {
        wire = ecs::with_subnets(&wire, r);
    }

    let cfg = engine::Config {
        server,
        tcp: args.tcp,
        clients: args.clients,
        outstanding: args.outstanding,
        qps: max_qps,
        duration: time_limit,
        passes,
        timeout,
        progress: std::io::stderr().is_terminal() && stats_interval.is_none(),
        stats_interval,
        stats_to_stderr: args.json,
    };
    let outcome = engine::run(&cfg, &mut wire)?;
    let report = stats::Report {
        stats: &outcome.stats,
        run_time_s: outcome.run_time.as_secs_f64(),
        server: server.to_string(),
        transport: if args.tcp { "tcp" } else { "udp" },
        ended_by: outcome.ended_by,
    };
    if args.json {
        println!("{}", report.to_json());
    } else {
        print!("{}", report.to_text());
    }
    Ok(())
}

#[cfg(not(target_os = "linux"))]
fn run(_args: Args) -> anyhow::Result<()> {
    bail!("ggon-perf runs on Linux only (it uses sendmmsg/recvmmsg and ppoll)")
}

fn main() -> ExitCode {
    // Output piped into `head` ends the run quietly, as for other tools.
    #[cfg(unix)]
    // SAFETY: restoring SIGPIPE's default action before any thread exists.
    unsafe {
        libc::signal(libc::SIGPIPE, libc::SIG_DFL);
    }
    let args = Args::parse();
    match run(args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("ggon-perf: {e:#}");
            ExitCode::FAILURE
        }
    }
}
