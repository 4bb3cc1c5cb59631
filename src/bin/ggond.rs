//! ggond: the nameserver and failover controller.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::Parser;
use ggon::daemon::{self, Overrides};

/// Authoritative nameserver whose answers follow health checks and operator remaps.
#[derive(Parser, Debug)]
#[command(name = "ggond", version)]
struct Args {
    /// Config file.
    #[arg(long, default_value = "config/ggon.toml")]
    config: PathBuf,
    /// DNS listen address (UDP and TCP); repeat for several. Overrides [server] listen.
    #[arg(long)]
    listen: Vec<SocketAddr>,
    /// Control API listen address. Overrides [control] listen.
    #[arg(long)]
    control: Option<SocketAddr>,
    /// State directory. Overrides [server] state_dir.
    #[arg(long)]
    state_dir: Option<PathBuf>,
    /// UDP worker threads (0 = one per core). Overrides [server] workers.
    #[arg(long)]
    workers: Option<usize>,
    /// Validate the config and zone files, then exit 0 (good) or 2 (bad).
    #[arg(long)]
    check_config: bool,
    /// Once serving, write the bound addresses and pid here as JSON.
    #[arg(long)]
    ready_file: Option<PathBuf>,
}

fn main() -> ExitCode {
    let args = Args::parse();
    // Logging first: loading the config may already warn (readable secrets).
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .init();

    let overrides = Overrides {
        listen: args.listen,
        control: args.control,
        state_dir: args.state_dir,
        workers: args.workers,
    };
    let source = daemon::Source {
        path: args.config.clone(),
        overrides: overrides.clone(),
    };
    let loaded = match daemon::load(&args.config, &overrides) {
        Ok(x) => x,
        Err(e) => {
            eprintln!("ggond: error: {e}");
            return ExitCode::from(2);
        }
    };
    if args.check_config {
        println!(
            "{}: OK ({} zones, {} services)",
            args.config.display(),
            loaded.zones.len(),
            loaded.cfg.services.len()
        );
        return ExitCode::SUCCESS;
    }
    let rt = match tokio::runtime::Runtime::new() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("ggond: error: cannot start runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match rt.block_on(daemon::run(loaded, source, args.ready_file)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("ggond: error: {e:#}");
            ExitCode::FAILURE
        }
    }
}
