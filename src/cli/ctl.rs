//! `ggon-ctl`'s command line: every subcommand, option and help text.
//!
//! It lives in the library (not in the binary) so that the man pages and
//! shell completions are generated from this very definition ([`super::docs`]).

use std::net::SocketAddr;
use std::path::PathBuf;

use clap::{Parser, Subcommand};

/// Operate ggond: look at services, remap, release.
#[derive(Parser, Debug)]
#[command(
    name = "ggon-ctl",
    version,
    long_about = "Operate a running ggond through its control API: look at services and the \
                  health of their targets, remap, release, drain, drill, read the history, \
                  reload. ggon-ctl finds the daemon's control address and token file in \
                  ggond's config file."
)]
pub struct Args {
    /// ggond's config file (where the control address and token file are found)
    /// [default: config/ggon.toml if it exists here, else /etc/ggon/ggon.toml].
    #[arg(long, global = true, env = "GGON_CONFIG", value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// Control API address: IP:PORT, a URL (http://IP:PORT,
    /// https://HOST:PORT), or unix:PATH for ggond's `[control] socket`.
    /// Default: from the config file (https when its `[control]` has
    /// tls_certificate).
    #[arg(long, global = true, env = "GGON_CONTROL", value_name = "ADDRESS|URL")]
    pub control: Option<String>,
    /// Extra trusted CA certificates (PEM), besides the webpki roots: for a
    /// control API served over TLS with a private CA, and for audit-certs
    /// and the certificate line of status and drill.
    #[arg(long, global = true, env = "GGON_CA_FILE", value_name = "FILE")]
    pub ca_file: Option<PathBuf>,
    /// Bearer token file (default: from the config file).
    #[arg(long, global = true, env = "GGON_TOKEN_FILE")]
    pub token_file: Option<PathBuf>,
    #[command(subcommand)]
    pub cmd: Cmd,
}

#[derive(Subcommand, Debug)]
pub enum Cmd {
    /// Show services, their active target, mode and target health.
    ///
    /// The filters are applied by ggond (only the matching services are
    /// sent) and combine: `status --down --region eu`.
    Status {
        /// Only these services (by their `name` in ggon.toml); default: every one.
        #[arg(value_name = "SERVICE")]
        services: Vec<String>,
        /// Only problem services: every target down, answering a target other
        /// than the most preferred (after a failover, a pin, a drain or a
        /// drill; for a per-region service in any region), or any target down.
        #[arg(long)]
        down: bool,
        /// Only per-region services with this region, showing only its answer.
        #[arg(long, value_name = "REGION")]
        region: Option<String>,
        /// Print JSON (the control API's answer) instead of text.
        #[arg(long)]
        json: bool,
    },
    /// Answer with TARGET now and pin the service to it (mode manual).
    Remap {
        /// The service, by its `name` in ggon.toml.
        service: String,
        /// The target to answer with, by its `name` in the service.
        #[arg(long, value_name = "TARGET")]
        to: String,
        /// Why, for the history and `status` (default: none given).
        #[arg(long, default_value = "", hide_default_value = true)]
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
        /// Per-region service: pin this region only (default: every region).
        #[arg(long)]
        region: Option<String>,
        /// Print JSON (the control API's answer) instead of text.
        #[arg(long)]
        json: bool,
    },
    /// Take a target out of selection (maintenance); the service moves if it was active.
    /// Exits 1 with a WARNING if the target is still answered afterwards.
    Drain {
        /// The service, by its `name` in ggon.toml.
        service: String,
        /// The target, by its `name` in the service.
        target: String,
        /// Why, for the history and `status` (default: none given).
        #[arg(long, default_value = "", hide_default_value = true)]
        reason: String,
        /// Undrain automatically after this long (e.g. 30m).
        #[arg(long = "for")]
        duration: Option<String>,
        /// Drain the target the service is pinned to: releases the pin so the
        /// service can move (without it, that drain is refused).
        #[arg(long)]
        force: bool,
        /// Print JSON (the control API's answer) instead of text.
        #[arg(long)]
        json: bool,
    },
    /// Put a drained target back into selection.
    Undrain {
        /// The service, by its `name` in ggon.toml.
        service: String,
        /// The target, by its `name` in the service.
        target: String,
        /// Print JSON (the control API's answer) instead of text.
        #[arg(long)]
        json: bool,
    },
    /// Dry run: what would happen if the active target failed now. With
    /// --fail TARGET --for DURATION, treat TARGET as failed for that long.
    Drill {
        /// The service, by its `name` in ggon.toml.
        service: String,
        /// Treat this target as failed (with --for): a live drill, not a dry run.
        #[arg(long, value_name = "TARGET")]
        fail: Option<String>,
        /// How long the drill lasts (e.g. 5m); needed with --fail.
        #[arg(long = "for")]
        duration: Option<String>,
        /// Per-region service: the drill concerns this region only.
        #[arg(long)]
        region: Option<String>,
        /// Print JSON (the control API's answer) instead of text.
        #[arg(long)]
        json: bool,
    },
    /// The audit log of changes.
    History {
        /// Only this service (by its `name` in ggon.toml); default: every one.
        service: Option<String>,
        /// Unix seconds, or how long ago (e.g. 1h).
        #[arg(long)]
        since: Option<String>,
        /// Print JSON (the control API's answer) instead of text.
        #[arg(long)]
        json: bool,
    },
    /// Which DNS servers (the zone's configured secondaries and any named
    /// here) still serve an answer other than the active target's, and how
    /// long caches may keep it (their TTL). Exit 1 if any is not current.
    Verify {
        /// The service, by its `name` in ggon.toml.
        service: String,
        /// A server to ask (IP:PORT); repeat for several.
        #[arg(long)]
        server: Vec<SocketAddr>,
        /// Print JSON (the control API's answer) instead of text.
        #[arg(long)]
        json: bool,
    },
    /// Fetch pages and list absolute links to names in DOMAIN that are not
    /// failover-managed: the links that would break after a remap.
    AuditLinks {
        /// The pages to start from (http:// or https:// URLs).
        #[arg(required = true)]
        url: Vec<String>,
        /// The domain whose names are looked for in the links (e.g. ggon.org).
        #[arg(long)]
        domain: String,
        /// How many links deep to follow from each URL, within its host.
        #[arg(long, default_value_t = 2)]
        depth: u32,
        /// Stop after fetching this many pages.
        #[arg(long, default_value_t = 50)]
        max_pages: usize,
        /// Print JSON (the control API's answer) instead of text.
        #[arg(long)]
        json: bool,
    },
    /// Remap readiness of TLS certificates: for every target of an https
    /// service (check URL `https://`), connect to each answered address on
    /// the check's port with SNI = the service's name; report whether the
    /// chain is valid for that name and the days left. Exit 1 if any is
    /// broken or expires within --warn-days.
    AuditCerts {
        /// Only this service (by its `name` in ggon.toml); default: every one.
        service: Option<String>,
        /// Warn when a certificate has fewer days left than this.
        #[arg(long, default_value_t = 21)]
        warn_days: i64,
        /// Seconds to wait for each connection and handshake.
        #[arg(long, default_value_t = 5.0)]
        timeout: f64,
        /// Print JSON (the control API's answer) instead of text.
        #[arg(long)]
        json: bool,
    },
    /// DNSSEC keys: make them, see what the served zones hold.
    Dnssec {
        #[command(subcommand)]
        cmd: DnssecCmd,
    },
    /// Re-read ggond's config and zone files (a bad one is rejected; the running one stays).
    Reload {
        /// Cluster mode: reload every node, report each node's result and
        /// name the nodes whose files still differ (exit 1 if any).
        #[arg(long)]
        cluster: bool,
        /// Print JSON (the control API's answer) instead of text.
        #[arg(long)]
        json: bool,
    },
    /// Cluster mode: the nodes, the leader, lease ages, and each node's vote
    /// on each target with the agreed verdict.
    Cluster {
        /// Print JSON (the control API's answer) instead of text.
        #[arg(long)]
        json: bool,
    },
    /// Remove the pin: the automatic policy chooses again.
    Release {
        /// The service, by its `name` in ggon.toml.
        service: String,
        /// Per-region service: release this region only (default: all).
        #[arg(long)]
        region: Option<String>,
        /// Print JSON (the control API's answer) instead of text.
        #[arg(long)]
        json: bool,
    },
    /// Print a shell completion script for ggon-ctl (bash, zsh or fish).
    #[command(
        long_about = "Print a shell completion script for ggon-ctl on standard output. \
        bash: `ggon-ctl completions bash > ~/.local/share/bash-completion/completions/ggon-ctl`; \
        zsh: write it as `_ggon-ctl` into a directory on $fpath; \
        fish: `ggon-ctl completions fish > ~/.config/fish/completions/ggon-ctl.fish`. \
        The Debian package installs all three."
    )]
    Completions {
        /// The shell to write the script for.
        #[arg(value_enum)]
        shell: Shell,
    },
    /// Write the man pages and completion scripts of ggond, ggon-ctl and
    /// ggon-perf under DIR (man/, completions/); used by scripts/package.
    #[command(hide = true)]
    GenerateDocs { dir: PathBuf },
}

/// `ggon-ctl dnssec …`
#[derive(Subcommand, Debug)]
pub enum DnssecCmd {
    /// Make a key pair for ZONE as BIND files (K<zone>.+<alg>+<tag>.key and
    /// .private) in --dir, print its DNSKEY and DS, and the line to add to
    /// the zone's `dnssec.keys`. No daemon needed.
    Keygen {
        /// The zone, e.g. ggon.org.
        zone: String,
        /// ecdsap256sha256 (default), ed25519 or rsasha256 (2048 bits).
        #[arg(long, default_value = "ecdsap256sha256")]
        algorithm: String,
        /// A key-signing key (flags 257, signs the DNSKEY RRset; its DS goes
        /// to the parent). Default: a zone-signing key (flags 256).
        #[arg(long)]
        ksk: bool,
        #[arg(long, default_value = ".")]
        dir: PathBuf,
    },
    /// Roll a zone's key: --zsk by pre-publication (new key published,
    /// then signing, then the old one removed), --ksk by double signature
    /// (both sign the key set; put the new DS in the parent; the old one
    /// leaves; with dnssec.policy.parent_servers, only once they serve the
    /// new DS). Steps are taken by ggond after the zone's longest TTL plus
    /// dnssec.propagation; each is logged and in the history. With a key
    /// policy (dnssec.policy) rolls also start by themselves.
    Roll {
        /// The zone, e.g. ggon.org.
        zone: String,
        #[arg(long, conflicts_with = "ksk", required_unless_present = "ksk")]
        zsk: bool,
        #[arg(long)]
        ksk: bool,
        /// Print JSON (the control API's answer) instead of text.
        #[arg(long)]
        json: bool,
    },
    /// For each zone ggond serves (or ZONE): the keys in its DNSKEY RRset,
    /// which sign, the earliest signature expiry, and the DS records to
    /// give the parent, read over DNS from ggond's listener; then, from the
    /// control API, the key policy and the roll under way (its step, when
    /// the next one is due, what the parent's servers last answered).
    Status {
        /// Only this zone; default: every zone ggond serves.
        zone: Option<String>,
        /// The DNS server to ask (default: ggond's first `listen` address).
        #[arg(long)]
        server: Option<SocketAddr>,
        /// Print JSON (the control API's answer) instead of text.
        #[arg(long)]
        json: bool,
    },
}

/// The shells completion scripts are made for.
#[derive(clap::ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum Shell {
    Bash,
    Zsh,
    Fish,
}

impl Args {
    /// The config file: `--config`/`GGON_CONFIG`, else the default search.
    pub fn config_file(&self) -> PathBuf {
        self.config
            .clone()
            .unwrap_or_else(crate::config::default_path)
    }
}
