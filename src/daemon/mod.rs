//! ggond's assembly: starts the stages, serves reloads until a signal,
//! then stops the stages in order.
//!
//! Owns: start-up order (the state directory locked, one ggond per
//! directory ([`state_lock`]; main locks it when it exists, `run` once it
//! has been created) → config → zones → DNS and control sockets bound
//! ([`bind`]) → switch to the unprivileged user ([`privileges`]) → [`run`]:
//! publisher and zones → controller (and, in a cluster, the agreed state)
//! → secondary zones, NOTIFY → DNS served → certificate audit and health
//! checks → control API → cluster session → ready file and systemd's
//! READY=1) and the stop: [`tasks`] holds every task with the phase it
//! stops in (control API, producers, cluster, controller, outbound, DNS)
//! and stops them phase by phase. [`stages`] builds each stage from the
//! config, [`signals`] runs the signal and reload loop (and owns the reload
//! request the control API sends, [`ReloadRequest`]), [`logging`] and
//! [`systemd`] the log and systemd's protocol and watchdog. It must not
//! contain stage logic: each stage lives in its module.

mod certaudit;
pub mod logging;
pub mod privileges;
mod signals;
mod sinks;
mod stages;
pub mod state_lock;
pub mod systemd;
pub mod tasks;

use crate::ops::tls::ControlTls;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

use arc_swap::ArcSwap;
use tokio::sync::{mpsc, watch};
use tracing::info;

use crate::config::Config;
use crate::decide::ControllerHandle;
pub use crate::load::{load, LoadError, Loaded, Overrides, ReloadError, ReloadRequest, Source};
use crate::replicate::ProtocolHandler;
use crate::snapshot::Snapshot;

/// Why ggond could not start serving: the step and its cause (ggond logs
/// it and exits 1).
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error("binding DNS sockets: {0}")]
    BindDns(std::io::Error),
    #[error("binding the control API on {addr}: {source}")]
    BindControl {
        addr: SocketAddr,
        source: std::io::Error,
    },
    #[error("binding the control API's Unix socket {}: {source}", path.display())]
    BindControlSocket {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{0}")]
    Io(#[from] std::io::Error),
    #[error("{0}")]
    Paths(#[from] privileges::PathError),
    #[error("{0}")]
    Tokens(#[from] crate::ops::tokens::TokenFileError),
    #[error("state directory {}: {source}", dir.display())]
    StateDir {
        dir: PathBuf,
        source: std::io::Error,
    },
    /// A zone's UPDATE journal cannot be replayed.
    #[error("{0}")]
    Journal(#[from] crate::publish::JournalError),
    #[error("cluster: etcd {etcd:?}: {source}")]
    Cluster {
        etcd: Vec<String>,
        source: crate::cluster::etcd::EtcdError,
    },
    #[error("{0}")]
    Checker(#[from] crate::monitor::CheckerError),
    #[error("starting the health-check threads: {0}")]
    CheckThreads(std::io::Error),
    #[error("{0}")]
    Json(#[from] serde_json::Error),
    /// Another ggond holds the state directory.
    #[error("{0}")]
    StateLock(#[from] state_lock::StateLockError),
}

/// What a running daemon reports once it is ready (written to --ready-file).
#[derive(Debug, serde::Serialize, serde::Deserialize)]
pub struct Ready {
    pub dns: Vec<SocketAddr>,
    pub control: SocketAddr,
    pub pid: u32,
}

/// The listening sockets, bound before privileges are given up.
pub struct Sockets {
    pub dns: crate::dns::server::Bound,
    pub control: std::net::TcpListener,
    /// `[control] socket`, for operators on the host.
    pub control_unix: Option<std::os::unix::net::UnixListener>,
}

/// Bind the DNS sockets (UDP per worker, TCP) and the control listener of
/// `cfg`. Needs no runtime, so it can run before the user switch.
pub fn bind(cfg: &Config) -> Result<Sockets, StartError> {
    let dns = crate::dns::server::bind(&cfg.server.listen, cfg.server.workers)
        .map_err(StartError::BindDns)?;
    let addr = cfg.control.listen;
    let control = std::net::TcpListener::bind(addr)
        .map_err(|source| StartError::BindControl { addr, source })?;
    control.set_nonblocking(true)?;
    let control_unix = match &cfg.control.socket {
        None => None,
        Some(path) => Some(
            bind_unix(path).map_err(|source| StartError::BindControlSocket {
                path: path.clone(),
                source,
            })?,
        ),
    };
    Ok(Sockets {
        dns,
        control,
        control_unix,
    })
}

/// Bind the control API's Unix socket at `path`, mode 0660. A socket file
/// nobody listens on (left by a killed ggond) is replaced; one that answers
/// belongs to a running process and is an error, as is any other file.
fn bind_unix(path: &std::path::Path) -> std::io::Result<std::os::unix::net::UnixListener> {
    use std::os::unix::fs::{FileTypeExt, PermissionsExt};
    use std::os::unix::net::{UnixListener, UnixStream};
    if let Ok(meta) = std::fs::symlink_metadata(path) {
        if !meta.file_type().is_socket() {
            return Err(std::io::Error::new(
                std::io::ErrorKind::AlreadyExists,
                "a file that is not a socket is in the way",
            ));
        }
        if UnixStream::connect(path).is_ok() {
            return Err(std::io::Error::new(
                std::io::ErrorKind::AddrInUse,
                "another process listens on it",
            ));
        }
        std::fs::remove_file(path)?;
    }
    let l = UnixListener::bind(path)?;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o660))?;
    l.set_nonblocking(true)?;
    Ok(l)
}

/// The control listener's TLS configuration, if `[control]` asks for TLS:
/// read at start (and by `--check-config`), before privileges are given up,
/// so the key file may be readable by root only. Reload keeps it.
pub fn control_tls(cfg: &Config) -> Result<Option<ControlTls>, LoadError> {
    let (Some(cert), Some(key)) = (&cfg.control.tls_certificate, &cfg.control.tls_key) else {
        return Ok(None);
    };
    let fail = |source: crate::ops::tls::TlsFileError| {
        let span = match source.field {
            "control.tls_key" => key.span(),
            "control.tls_ca_file" => cfg
                .control
                .tls_ca_file
                .as_ref()
                .map_or(cert.span(), |c| c.span()),
            _ => cert.span(),
        };
        LoadError::ControlTls {
            at: cfg.place(span, source.field),
            source: Box::new(source),
        }
    };
    let server = crate::ops::tls::server_config(cert.get_ref(), key.get_ref()).map_err(fail)?;
    let peer_roots = match &cfg.control.tls_ca_file {
        Some(ca) => crate::ops::tls::ca_roots(ca.get_ref()).map_err(fail)?,
        None => Vec::new(),
    };
    Ok(Some(ControlTls { server, peer_roots }))
}

/// How [`run`] reports that it is serving.
pub struct RunOptions {
    /// Serve the control API over TLS with this ([`control_tls`]).
    pub control_tls: Option<ControlTls>,
    /// Write the bound addresses and pid here once serving.
    pub ready_file: Option<PathBuf>,
    /// systemd's notification socket and watchdog (no-op without systemd).
    pub notify: Arc<systemd::Notify>,
    /// The state directory's lock, if main took it before loading
    /// ([`lock_existing_state_dir`]); otherwise `run` takes it.
    pub state_lock: Option<state_lock::StateLock>,
}

/// Lock the state directory named by the config at `path` (and `o`) if it
/// exists; None when it does not exist yet (nothing in it can be read),
/// when the config does not parse (loading reports that), or for
/// `--check-config`, which may run beside the ggond it checks for.
pub fn lock_existing_state_dir(
    path: &std::path::Path,
    o: &Overrides,
    check_only: bool,
) -> Result<Option<state_lock::StateLock>, state_lock::StateLockError> {
    if check_only {
        return Ok(None);
    }
    match crate::load::state_dir(path, o) {
        Some(dir) if dir.is_dir() => state_lock::StateLock::acquire(&dir).map(Some),
        _ => Ok(None),
    }
}

/// Serve on `sockets` until SIGTERM or SIGINT: start every stage, serve
/// reloads, then stop the stages phase by phase ([`tasks`]).
pub async fn run(
    loaded: Loaded,
    sockets: Sockets,
    source: Source,
    mut opts: RunOptions,
) -> Result<(), StartError> {
    let signals = signals::Signals::install()?;
    let Loaded {
        cfg,
        regions,
        zones,
        keys,
        signers,
        ..
    } = loaded;
    privileges::check_paths(&cfg, &cfg.token_file())?;
    let _state_lock = match opts.state_lock.take() {
        Some(l) => l,
        None => state_lock::StateLock::acquire(&cfg.server.state_dir)?,
    };
    let tokens = crate::ops::tokens::load_or_create_tokens(&cfg.token_file())?;
    let mut a = stages::Assembly::new(cfg, keys);
    let snapshot = Arc::new(ArcSwap::from_pointee(Snapshot::default()));
    let zones = stages::zones(&mut a, (zones, signers), snapshot.clone())?;
    let checks = crate::decide::checklog::CheckLog::new();
    let controller =
        stages::controller(&a, regions, zones.publisher, zones.remote_status, &checks)?;
    let (controller, cluster) = stages::join_cluster(&a.cfg, controller).await?;
    let (cmd_tx, cmd_rx) = mpsc::channel(64);
    let handle = ControllerHandle { commands: cmd_tx };
    let (config_tx, config_rx) = watch::channel(a.cfg.clone());
    let secondaries = stages::secondaries(&mut a, &handle);
    stages::notify(&mut a, zones.changes, zones.notify);
    let relay = cluster.as_ref().map(|(_, c)| {
        let roots = opts.control_tls.as_ref().map(|t| t.peer_roots.as_slice());
        Arc::new(crate::ops::relay::LeaderRelay::new(
            c.clone(),
            roots,
            &tokens,
        )) as Arc<dyn crate::replicate::relay::UpdateRelay>
    });
    let access = Arc::new(ArcSwap::from_pointee(zones.access));
    let handler = ProtocolHandler {
        secondary_zones: Arc::new(secondaries),
        snapshot: snapshot.clone(),
        keys: a.keys.clone(),
        zones: access.clone(),
        controller: handle.clone(),
        relay,
    };
    let dns = stages::dns(&mut a, sockets.dns, snapshot, handler)?;
    let observations = stages::checks(&mut a, config_rx, &handle)?;
    stages::run_controller(&mut a, controller, observations, cmd_rx);
    let api = stages::ControlApi {
        tokens,
        tls: opts.control_tls.clone(),
        stats: dns.stats.clone(),
        cluster: cluster.as_ref().map(|(_, h)| h.clone()),
        checks,
    };
    let (control, reload_rx) = stages::control_api(
        &mut a,
        (sockets.control, sockets.control_unix),
        &handle,
        api,
    )?;
    if let Some((prepared, _)) = cluster {
        let info = crate::cluster::NodeInfo {
            config: config_tx.subscribe(),
            control,
            control_tls: opts.control_tls.is_some(),
            dns: dns.addrs.clone(),
        };
        stages::cluster_session(&mut a, prepared, info, &handle);
    }
    stages::announce_ready(&mut a, &opts, &dns, control, &handle)?;
    let follow = signals::Follow {
        config: &config_tx,
        access: &access,
    };
    signals::serve(signals, &source, &handle, follow, reload_rx, &opts.notify).await;
    info!("shutting down");
    opts.notify.send("STOPPING=1\nSTATUS=stopping");
    a.tasks.stop().await;
    info!("stopped");
    Ok(())
}

/// Loading and compiling zones leaves large freed blocks in the allocator;
/// hand them back to the system so RSS reflects what is really used.
pub fn release_free_memory() {
    crate::memory::release_free_memory();
}

#[cfg(test)]
mod tests {
    use super::bind_unix;

    #[test]
    fn the_control_socket_replaces_a_stale_file_and_nothing_else() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("control.sock");
        drop(std::os::unix::net::UnixListener::bind(&path).unwrap());
        let live = bind_unix(&path).expect("a stale socket file is replaced");
        let e = bind_unix(&path).expect_err("a socket someone listens on");
        assert!(e.to_string().contains("another process listens"), "{e}");
        drop(live);
        let file = dir.path().join("plain");
        std::fs::write(&file, "x").unwrap();
        let e = bind_unix(&file).expect_err("not a socket");
        assert!(e.to_string().contains("not a socket"), "{e}");
        assert_eq!(std::fs::read_to_string(&file).unwrap(), "x", "left alone");
    }
}
