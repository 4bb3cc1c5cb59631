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
use tokio::sync::{mpsc, watch};
use tracing::info;

use std::collections::HashMap;
use std::time::Duration;

use crate::proto::acl::Net;
use crate::config::{Config, ZoneMode};
use crate::decide::{Controller, ControllerHandle};
use crate::dns::server::TcpLimits;
use crate::dns::DnsServer;
use crate::monitor::{Checker, ProbeKey};
use crate::publish::Publisher;
use crate::snapshot::Snapshot;
use crate::decide::state::StateStore;
use crate::dns::stats::Stats;
use crate::replicate::{ProtocolHandler, ZoneAccess};
use crate::proto::zone::ZoneData;

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
pub fn load(path: &std::path::Path, o: &Overrides) -> Result<Loaded, String> {
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
        let origin = z.name();
        let Some(file) = &z.file else { continue };
        if (z.mode == ZoneMode::Rfc2136 && !z.serve) || z.mode == ZoneMode::Secondary {
            continue;
        }
        let data = ZoneData::load(file.get_ref(), &origin).map_err(|e| {
            cfg.error_at(file.span(), "zone.file", e.to_string())
                .to_string()
        })?;
        zones.push(data);
    }
    for s in &cfg.services {
        let fqdn = s.fqdn_name();
        let zone = zones
            .iter()
            .filter(|z| z.origin.zone_of(&fqdn))
            .max_by_key(|z| z.origin.num_labels());
        if let Some(types) = zone.and_then(|z| z.rrsets.get(&crate::proto::zone::fqdn_lower(&fqdn))) {
            if types.contains_key(&hickory_proto::rr::RecordType::CNAME) {
                return Err(format!(
                    "{}: service `{}` owns {fqdn}, but the zone file has a CNAME there",
                    cfg.path.display(),
                    s.name.get_ref()
                ));
            }
        }
    }
    if cfg.keys.iter().any(|k| k.secret.is_some()) {
        use std::os::unix::fs::PermissionsExt;
        if let Ok(meta) = std::fs::metadata(path) {
            if meta.permissions().mode() & 0o077 != 0 {
                tracing::warn!(path = %path.display(),
                    "the config holds inline TSIG secrets and is readable by group or others; chmod 600 it");
            }
        }
    }
    let keys = crate::proto::tsig::Keyring::load(&cfg.keys)
        .map_err(|e| format!("{}: {e}", cfg.path.display()))?;
    Ok(Loaded { cfg, zones, keys })
}

/// A validated configuration with its zone files and keys read.
pub struct Loaded {
    pub cfg: Config,
    /// Zones ggond serves itself (local, or rfc2136 with `serve = true`).
    pub zones: Vec<ZoneData>,
    pub keys: crate::proto::tsig::Keyring,
}

/// What a running daemon reports once it is ready (written to --ready-file).
#[derive(Debug, serde::Serialize, serde::Deserialize)]
pub struct Ready {
    pub dns: Vec<SocketAddr>,
    pub control: SocketAddr,
    pub pid: u32,
}

/// Run until SIGTERM or SIGINT.
/// Where the configuration came from, so that reload can read it again.
#[derive(Debug, Clone)]
pub struct Source {
    pub path: PathBuf,
    pub overrides: Overrides,
}

fn probe_list(cfg: &Config) -> Vec<(ProbeKey, crate::config::CheckConfig)> {
    cfg.services
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
        .collect()
}

pub async fn run(
    loaded: Loaded,
    source: Source,
    ready_file: Option<PathBuf>,
) -> anyhow::Result<()> {
    let Loaded { cfg, zones, keys } = loaded;
    let cfg = Arc::new(cfg);
    let keys = Arc::new(keys);
    let store = StateStore::new(&cfg.server.state_dir)
        .with_context(|| format!("state directory {}", cfg.server.state_dir.display()))?;
    let tokens =
        crate::ops::control::load_or_create_tokens(&cfg.token_file()).map_err(anyhow::Error::msg)?;
    // This first load sets an unreadable file aside, so the controller's own
    // load below finds none: the error must be reported here or never.
    let persisted_serials = match store.load() {
        crate::decide::state::Loaded::Ok(s) => s.serials,
        crate::decide::state::Loaded::Fresh => Default::default(),
        crate::decide::state::Loaded::Corrupt { error, kept_at } => {
            tracing::error!(%error, kept_at = %kept_at.display(),
                "state file unreadable; set aside, starting every service on its primary");
            Default::default()
        }
    };

    let (shutdown_tx, shutdown_rx) = watch::channel(false);
    let snapshot = Arc::new(ArcSwap::from_pointee(Snapshot::default()));
    let (changes_tx, changes_rx) = mpsc::unbounded_channel();
    let mut publisher = Publisher::new(snapshot.clone())
        .with_update_dir(cfg.server.state_dir.join("updates"))
        .with_events(changes_tx);
    for z in zones {
        let last = persisted_serials.get(&z.origin.to_string()).copied();
        info!(zone = %z.origin, records = z.record_count(), "zone loaded");
        publisher.add_zone(z, last).map_err(anyhow::Error::msg)?;
    }
    let notifier = crate::ops::alerts::Notifier::spawn(&cfg.notifiers, shutdown_rx.clone());
    let metrics = Arc::new(crate::ops::metrics::Metrics::new());
    let mut remote_status = Vec::new();
    let mut access = HashMap::new();
    let mut notify_targets = HashMap::new();
    let key = |n: &str| keys.get(n).cloned();
    for z in &cfg.zones {
        let origin = z.name();
        if z.mode == ZoneMode::Rfc2136 {
            let (remote, status) = crate::publish::rfc2136::spawn(
                crate::publish::rfc2136::RemoteConfig {
                    origin: origin.clone(),
                    primary: *z.primary.as_ref().expect("validated").get_ref(),
                    key: z.key.as_ref().and_then(|k| key(k.get_ref())),
                    reconcile: z.reconcile,
                    min_backoff: Duration::from_millis(500),
                    max_backoff: Duration::from_secs(30),
                    on_error: Some({
                        let (notifier, metrics, zone) =
                            (notifier.clone(), metrics.clone(), origin.to_string());
                        Arc::new(move |e: &str| {
                            metrics.publisher_error(&zone);
                            notifier.send(crate::ops::alerts::Event {
                                kind: "publisher_error".into(),
                                service: None,
                                from: None,
                                to: None,
                                cause: "publisher".into(),
                                reason: e.to_string(),
                                who: "ggond".into(),
                                at: crate::decide::unix_now(),
                                message: format!("RFC 2136 publishing of {zone} failed: {e}"),
                            });
                        })
                    }),
                },
                shutdown_rx.clone(),
            );
            publisher.add_remote(origin.clone(), Box::new(remote));
            remote_status.push(status);
        }
        access.insert(
            origin.clone(),
            ZoneAccess {
                origin: origin.clone(),
                allow_transfer: z
                    .allow_transfer
                    .iter()
                    .filter_map(|a| Net::parse(a.get_ref()))
                    .collect(),
                transfer_keys: z
                    .transfer_keys
                    .iter()
                    .map(|k| k.get_ref().clone())
                    .collect(),
                secondaries: z
                    .secondaries
                    .iter()
                    .map(|s| (s.address, s.key.clone()))
                    .collect(),
                update_keys: z.update_keys.iter().map(|k| k.get_ref().clone()).collect(),
            },
        );
        if !z.secondaries.is_empty() {
            notify_targets.insert(
                origin,
                z.secondaries
                    .iter()
                    .map(|s| (s.address, s.key.as_deref().and_then(key)))
                    .collect::<Vec<_>>(),
            );
        }
    }
    let controller = Controller::new(&cfg, publisher, store)
        .with_remote_status(remote_status)
        .with_sink(Box::new(Sinks {
            notifier: notifier.clone(),
            metrics: metrics.clone(),
        }));
    // Failed notifications show up in /metrics.
    {
        let (notifier, metrics) = (notifier.clone(), metrics.clone());
        tokio::spawn(async move {
            let mut seen = 0;
            loop {
                tokio::time::sleep(Duration::from_secs(2)).await;
                let failed = notifier.stats().failed;
                for _ in seen..failed {
                    metrics.notify_failed();
                }
                seen = failed;
            }
        });
    }
    let (cmd_tx, cmd_rx) = mpsc::channel(64);
    let handle = ControllerHandle { commands: cmd_tx };
    let mut secondary_zones = HashMap::new();
    let mut secondary_tasks = Vec::new();
    for z in cfg.zones.iter().filter(|z| z.mode == ZoneMode::Secondary) {
        let origin = z.name();
        let primary = *z.primary.as_ref().expect("validated").get_ref();
        let trigger = Arc::new(tokio::sync::Notify::new());
        secondary_tasks.push(crate::replicate::secondary::spawn(
            crate::replicate::secondary::SecondaryConfig {
                origin: origin.clone(),
                primary,
                key: z.key.as_ref().and_then(|k| key(k.get_ref())),
            },
            handle.clone(),
            trigger.clone(),
            shutdown_rx.clone(),
        ));
        secondary_zones.insert(origin, (primary.ip(), trigger));
    }
    let notifier = crate::replicate::spawn_notifier(changes_rx, notify_targets, shutdown_rx.clone());

    let stats = Arc::new(Stats::default());
    let dns = DnsServer::start(
        &cfg.server.listen,
        cfg.server.workers,
        snapshot.clone(),
        Arc::new(ProtocolHandler {
            secondary_zones: Arc::new(secondary_zones),
            snapshot: snapshot.clone(),
            keys: keys.clone(),
            zones: Arc::new(access),
            controller: handle.clone(),
        }),
        TcpLimits {
            max_connections: cfg.server.tcp_max_connections,
            idle_timeout: cfg.server.tcp_idle_timeout,
            rrl: cfg.server.rrl,
        },
        stats.clone(),
    )
    .context("binding DNS sockets")?;

    let (obs_tx, obs_rx) = mpsc::channel(1024);
    let checker = Arc::new(Checker::new()?);
    let mut probe_tasks = crate::monitor::spawn_probes(
        checker.clone(),
        probe_list(&cfg),
        obs_tx.clone(),
        shutdown_rx.clone(),
    );
    let ctl_task = tokio::spawn(controller.run(obs_rx, cmd_rx, shutdown_rx.clone()));

    let listener = tokio::net::TcpListener::bind(cfg.control.listen)
        .await
        .with_context(|| format!("binding the control API on {}", cfg.control.listen))?;
    let control_addr = listener.local_addr()?;
    let (reload_tx, mut reload_rx) = mpsc::channel::<crate::ops::control::ReloadRequest>(4);
    let router = crate::ops::control::router(
        handle.clone(),
        tokens,
        reload_tx,
        crate::ops::control::Pages {
            metrics: metrics.clone(),
            stats: stats.clone(),
            public: cfg.control.public_status,
        },
    );
    let mut ctl_shutdown = shutdown_rx.clone();
    let api_task = tokio::spawn(crate::ops::control::serve(listener, router, async move {
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
    release_free_memory();
    info!("ggond ready");

    use tokio::signal::unix::{signal, SignalKind};
    let mut term = signal(SignalKind::terminate())?;
    let mut int = signal(SignalKind::interrupt())?;
    let mut hup = signal(SignalKind::hangup())?;
    loop {
        let reply = tokio::select! {
            _ = term.recv() => break,
            _ = int.recv() => break,
            _ = hup.recv() => { info!("SIGHUP: reloading configuration"); None }
            r = reload_rx.recv() => match r { Some(r) => Some(r), None => continue },
        };
        let result = reload(&source, &handle).await;
        match &result {
            Ok((summary, cfg)) => {
                for t in probe_tasks.drain(..) {
                    t.abort();
                }
                probe_tasks = crate::monitor::spawn_probes(
                    checker.clone(),
                    probe_list(cfg),
                    obs_tx.clone(),
                    shutdown_rx.clone(),
                );
                info!(%summary, "reload done");
            }
            Err(e) => {
                tracing::error!(error = %e, "reload rejected; still serving the previous configuration")
            }
        }
        if let Some(reply) = reply {
            let _ = reply.send(result.map(|(s, _)| s));
        }
    }
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
    notifier.abort();
    for t in secondary_tasks {
        t.abort();
    }
    dns.shutdown().await;
    info!("stopped");
    Ok(())
}

/// Loading and compiling zones leaves large freed blocks in the allocator;
/// hand them back to the system so RSS reflects what is really used.
pub fn release_free_memory() {
    #[cfg(target_env = "gnu")]
    // SAFETY: malloc_trim only releases free memory; it is thread-safe.
    unsafe {
        libc::malloc_trim(0);
    }
}

/// Hands controller events to the notifiers and the metrics.
struct Sinks {
    notifier: crate::ops::alerts::Notifier,
    metrics: Arc<crate::ops::metrics::Metrics>,
}

impl crate::decide::EventSink for Sinks {
    fn event(&self, e: &crate::decide::history::Entry) {
        if matches!(e.kind.as_str(), "failover" | "failback" | "remap") {
            if let Some(s) = &e.service {
                self.metrics.remap(s, &e.cause);
            }
        }
        let service = e.service.as_deref().unwrap_or("-");
        let message = match (e.from.as_deref(), e.to.as_deref()) {
            (Some(f), Some(t)) => format!("{service}: {} {f} -> {t} ({})", e.kind, e.reason),
            (None, Some(t)) => format!("{service}: {} {t} ({})", e.kind, e.reason),
            _ => format!("{service}: {} ({})", e.kind, e.reason),
        };
        self.notifier.send(crate::ops::alerts::Event {
            kind: e.kind.clone(),
            service: e.service.clone(),
            from: e.from.clone(),
            to: e.to.clone(),
            cause: e.cause.clone(),
            reason: e.reason.clone(),
            who: e.who.clone(),
            at: e.time,
            message,
        });
    }

    fn check(&self, service: &str, target: &str, o: &crate::monitor::CheckOutcome) {
        self.metrics.observe_check(service, target, o.ok, o.latency);
    }
}

/// Read and validate config and zones again, then hand them to the
/// controller. Nothing changes unless everything loads.
async fn reload(source: &Source, handle: &ControllerHandle) -> Result<(String, Config), String> {
    let path = source.path.clone();
    let overrides = source.overrides.clone();
    let loaded = tokio::task::spawn_blocking(move || load(&path, &overrides))
        .await
        .map_err(|e| e.to_string())??;
    let cfg = loaded.cfg.clone();
    let summary = handle
        .call(|reply| crate::decide::Command::Reload {
            config: Box::new(loaded.cfg),
            zones: loaded.zones,
            actor: crate::decide::Actor {
                name: "reload".into(),
            },
            reply,
        })
        .await
        .and_then(|r| r)
        .map_err(|e| e.to_string())?;
    Ok((summary, cfg))
}
