//! `ggond`'s command line (in the library so that its man page and
//! completions are generated from it, see [`super::docs`]).

use std::net::SocketAddr;
use std::path::PathBuf;

use clap::{Parser, ValueEnum};

/// Authoritative nameserver whose answers follow health checks and operator remaps.
#[derive(Parser, Debug)]
#[command(
    name = "ggond",
    version,
    long_about = "ggond is an authoritative nameserver and failover controller. It health-checks \
                  each service's ordered targets (primary, backup, ...) and answers the \
                  service's name with exactly one target's addresses; it can also drive another \
                  primary with TSIG-signed RFC 2136 updates and feeds secondaries by NOTIFY and \
                  AXFR/IXFR. Operators talk to it with ggon-ctl(1).\n\n\
                  Started as root, ggond binds its DNS and control sockets, then switches to \
                  the unprivileged [server] user of its config (refusing to go on as root \
                  unless user = \"root\" is explicit). Under systemd it reports READY, \
                  RELOADING and STOPPING and keeps the watchdog fed while its query path and \
                  controller are alive (sd_notify(3))."
)]
pub struct Args {
    /// Config file [default: config/ggon.toml if it exists here, else /etc/ggon/ggon.toml].
    #[arg(long, env = "GGON_CONFIG", value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// DNS listen address (UDP and TCP); repeat for several. Overrides [server] listen.
    #[arg(long, value_name = "IP:PORT")]
    pub listen: Vec<SocketAddr>,
    /// Control API listen address. Overrides [control] listen.
    #[arg(long, value_name = "IP:PORT")]
    pub control: Option<SocketAddr>,
    /// State directory. Overrides [server] state_dir.
    #[arg(long, value_name = "DIR")]
    pub state_dir: Option<PathBuf>,
    /// UDP worker threads (0 = one per core). Overrides [server] workers.
    #[arg(long, value_name = "N")]
    pub workers: Option<usize>,
    /// User to run as once the sockets are bound (started as root). Overrides [server] user;
    /// "root" keeps root.
    #[arg(long, value_name = "USER")]
    pub user: Option<String>,
    /// Group to run as (default: the user's primary group). Overrides [server] group.
    #[arg(long, value_name = "GROUP")]
    pub group: Option<String>,
    /// Log format on standard error: text, json (one object per line), journal (syslog
    /// priority prefixes, no timestamps) or auto (journal when standard error is the
    /// systemd journal, else text).
    #[arg(long, value_enum, env = "GGON_LOG_FORMAT", default_value_t = LogFormat::Auto)]
    pub log_format: LogFormat,
    /// Validate the config, zone files, keys and user, then exit 0 (good) or 2 (bad).
    #[arg(long)]
    pub check_config: bool,
    /// Once serving, write the bound addresses and pid here as JSON.
    #[arg(long, value_name = "FILE")]
    pub ready_file: Option<PathBuf>,
}

/// How log lines are written to standard error.
#[derive(ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum LogFormat {
    /// `journal` when standard error is connected to the systemd journal, else `text`.
    Auto,
    /// Human-readable lines with a timestamp (colours on a terminal).
    Text,
    /// One JSON object per line (timestamp, level, target, message and fields).
    Json,
    /// For journald: a `<N>` syslog priority prefix per line and no timestamp
    /// (the journal adds its own).
    Journal,
}

impl Args {
    /// The config file: `--config`/`GGON_CONFIG`, else the default search.
    pub fn config_file(&self) -> PathBuf {
        self.config
            .clone()
            .unwrap_or_else(crate::config::default_path)
    }
}
