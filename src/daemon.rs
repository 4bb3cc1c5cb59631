//! ggond's assembly: wires the stages together and runs them until a signal.
//!
//! Owns: start-up order (config → zones → state → publisher → DNS sockets →
//! probes → controller → control API → ready file) and graceful shutdown
//! (stop the control API and probes, let in-flight TCP answers finish, save
//! state). It must not contain stage logic: each stage lives in its module.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

use anyhow::Context;
use arc_swap::ArcSwap;
use hickory_proto::rr::Name;
use tokio::sync::{mpsc, watch};
use tracing::info;

use crate::config::Config;
use crate::controller::{Controller, ControllerHandle};
use crate::dns::server::{RefuseSpecial, TcpLimits};
use crate::dns::DnsServer;
use crate::probe::{Checker, ProbeKey};
use crate::publisher::Publisher;
use crate::snapshot::Snapshot;
use crate::state::StateStore;
use crate::stats::Stats;
use crate::zone::ZoneData;

/// Command-line overrides of the config file.
#[derive(Debug, Clone, Default)]
pub struct Overrides {
    pub listen: Vec<SocketAddr>,
    pub control: Option<SocketAddr>,
    pub state_dir: Option<PathBuf>,
    pub workers: Option<usize>,
}

/// Load and validate the config and every zone file it names. Nothing is
/// started: `--check-config` and reload use this to reject bad input.
pub fn load(path: &std::path::Path, o: &Overrides) -> Result<(Config, Vec<ZoneData>), String> {
    let mut cfg = Config::load(path).map_err(|e| e.to_string())?;
    if !o.listen.is_empty() {
        cfg.server.listen = o.listen.clone();
    }
    if let Some(c) = o.control {
        cfg.control.listen = c;
    }
    if let Some(d) = &o.state_dir {
        cfg.server.state_dir = d.clone();
    }
    if let Some(w) = o.workers {
        cfg.server.workers = w;
    }
    let mut zones = Vec::new();
    for z in &cfg.zones {
        let origin = Name::from_ascii(crate::config::normalize_name(z.origin.get_ref()))
            .map_err(|e| e.to_string())?;
        let data = ZoneData::load(z.file.get_ref(), &origin).map_err(|e| e.to_string())?;
        zones.push(data);
    }
    for s in &cfg.services {
        let fqdn = Name::from_ascii(crate::config::normalize_name(s.fqdn.get_ref()))
            .map_err(|e| e.to_string())?;
        let zone = zones
            .iter()
            .filter(|z| z.origin.zone_of(&fqdn))
            .max_by_key(|z| z.origin.num_labels())
            .expect("validated by config");
        if let Some(types) = zone.rrsets.get(&crate::zone::fqdn_lower(&fqdn)) {
            if types.contains_key(&hickory_proto::rr::RecordType::CNAME) {
                return Err(format!(
                    "{}: service `{}` owns {fqdn}, but the zone file has a CNAME there",
                    cfg.path.display(),
                    s.name.get_ref()
                ));
            }
        }
    }
    Ok((cfg, zones))
}

/// What a running daemon reports once it is ready (written to --ready-file).
#[derive(Debug, serde::Serialize, serde::Deserialize)]
pub struct Ready {
    pub dns: Vec<SocketAddr>,
    pub control: SocketAddr,
    pub pid: u32,
}

/// Run until SIGTERM or SIGINT.
pub async fn run(
    cfg: Config,
    zones: Vec<ZoneData>,
    ready_file: Option<PathBuf>,
) -> anyhow::Result<()> {
    let cfg = Arc::new(cfg);
    let store = StateStore::new(&cfg.server.state_dir)
        .with_context(|| format!("state directory {}", cfg.server.state_dir.display()))?;
    let tokens =
        crate::control::load_or_create_tokens(&cfg.token_file()).map_err(anyhow::Error::msg)?;
    // This first load sets an unreadable file aside, so the controller's own
    // load below finds none: the error must be reported here or never.
    let persisted_serials = match store.load() {
        crate::state::Loaded::Ok(s) => s.serials,
        crate::state::Loaded::Fresh => Default::default(),
        crate::state::Loaded::Corrupt { error, kept_at } => {
            tracing::error!(%error, kept_at = %kept_at.display(),
                "state file unreadable; set aside, starting every service on its primary");
            Default::default()
        }
    };

    let snapshot = Arc::new(ArcSwap::from_pointee(Snapshot::default()));
    let mut publisher = Publisher::new(snapshot.clone());
    for z in zones {
        let last = persisted_serials.get(&z.origin.to_string()).copied();
        info!(zone = %z.origin, records = z.record_count(), "zone loaded");
        publisher.add_zone(z, last);
    }
    let controller = Controller::new(&cfg, publisher, store);

    let stats = Arc::new(Stats::default());
    let dns = DnsServer::start(
        &cfg.server.listen,
        cfg.server.workers,
        snapshot.clone(),
        Arc::new(RefuseSpecial),
        TcpLimits {
            max_connections: cfg.server.tcp_max_connections,
            idle_timeout: cfg.server.tcp_idle_timeout,
        },
        stats.clone(),
    )
    .context("binding DNS sockets")?;

    let (shutdown_tx, shutdown_rx) = watch::channel(false);
    let (obs_tx, obs_rx) = mpsc::channel(1024);
    let (cmd_tx, cmd_rx) = mpsc::channel(64);
    let probes: Vec<(ProbeKey, crate::config::CheckConfig)> = cfg
        .services
        .iter()
        .flat_map(|s| {
            s.targets.get_ref().iter().map(move |t| {
                (
                    ProbeKey {
                        service: s.name.get_ref().clone(),
                        target: t.name.get_ref().clone(),
                    },
                    t.check.clone(),
                )
            })
        })
        .collect();
    let checker = Arc::new(Checker::new()?);
    let probe_tasks = crate::probe::spawn_probes(checker, probes, obs_tx, shutdown_rx.clone());
    let ctl_task = tokio::spawn(controller.run(obs_rx, cmd_rx, shutdown_rx.clone()));

    let listener = tokio::net::TcpListener::bind(cfg.control.listen)
        .await
        .with_context(|| format!("binding the control API on {}", cfg.control.listen))?;
    let control_addr = listener.local_addr()?;
    let router = crate::control::router(ControllerHandle { commands: cmd_tx }, tokens);
    let mut ctl_shutdown = shutdown_rx.clone();
    let api_task = tokio::spawn(crate::control::serve(listener, router, async move {
        let _ = ctl_shutdown.changed().await;
    }));
    info!(control = %control_addr, "control API listening");

    if let Some(path) = ready_file {
        let ready = Ready {
            dns: dns.local_addrs().to_vec(),
            control: control_addr,
            pid: std::process::id(),
        };
        let tmp = path.with_extension("tmp");
        std::fs::write(&tmp, serde_json::to_vec(&ready)?)?;
        std::fs::rename(&tmp, &path)?;
    }
    info!("ggond ready");

    wait_for_signal().await;
    info!("shutting down");
    let _ = shutdown_tx.send(true);
    // Graceful shutdown of the control API waits for requests in progress,
    // and a client that sent half a request would make that wait endless.
    // Give them a moment, then go on (the task ends with the runtime).
    if tokio::time::timeout(std::time::Duration::from_secs(2), api_task)
        .await
        .is_err()
    {
        tracing::warn!("control API connections still open after 2s; closing them");
    }
    for t in probe_tasks {
        t.abort();
    }
    let _ = ctl_task.await;
    dns.shutdown().await;
    info!("stopped");
    Ok(())
}

async fn wait_for_signal() {
    use tokio::signal::unix::{signal, SignalKind};
    let mut term = signal(SignalKind::terminate()).expect("SIGTERM handler");
    let mut int = signal(SignalKind::interrupt()).expect("SIGINT handler");
    tokio::select! {
        _ = term.recv() => {}
        _ = int.recv() => {}
    }
}
