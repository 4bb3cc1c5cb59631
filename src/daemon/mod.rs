//! ggond's assembly: wires the stages together and runs them until a signal.
//!
//! Owns: start-up order (config → zones → DNS and control sockets bound
//! ([`bind`]) → switch to the unprivileged user ([`privileges`]) → state →
//! publisher → DNS served → probes → controller (and the periodic
//! certificate audit, [`certaudit`]) → control API → ready file
//! and systemd's READY=1) and graceful shutdown (STOPPING=1, stop the control
//! API and probes, let in-flight TCP answers finish, save state); logging
//! ([`logging`]) and the systemd protocol and watchdog ([`systemd`]). It must
//! not contain stage logic: each stage lives in its module.

mod certaudit;
mod load;
pub mod logging;
pub mod privileges;
mod sinks;
pub mod systemd;

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use arc_swap::ArcSwap;
use tokio::sync::mpsc;
use tracing::info;

use crate::config::{Config, ConfigError, ZoneMode};
use crate::decide::state::StateStore;
use crate::decide::{Actor, Command, Controller, ControllerHandle, Event, EventCause, EventKind};
use crate::dns::server::TcpLimits;
use crate::dns::stats::Stats;
use crate::dns::DnsServer;
use crate::monitor::{Checker, ProbeKey};
use crate::proto::acl::Net;
use crate::publish::Publisher;
use crate::replicate::{ProtocolHandler, ZoneAccess};
use crate::shutdown::{self, Shutdown};
use crate::snapshot::Snapshot;
pub use load::{load, LoadError, Loaded, Overrides, Source};
use sinks::Sinks;

/// What a running daemon reports once it is ready (written to --ready-file).
#[derive(Debug, serde::Serialize, serde::Deserialize)]
pub struct Ready {
    pub dns: Vec<SocketAddr>,
    pub control: SocketAddr,
    pub pid: u32,
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

/// The listening sockets, bound before privileges are given up.
pub struct Sockets {
    pub dns: crate::dns::server::Bound,
    pub control: std::net::TcpListener,
}

/// Bind the DNS sockets (UDP per worker, TCP) and the control listener of
/// `cfg`. Needs no runtime, so it can run before the user switch.
pub fn bind(cfg: &Config) -> anyhow::Result<Sockets> {
    let dns = crate::dns::server::bind(&cfg.server.listen, cfg.server.workers)
        .context("binding DNS sockets")?;
    let control = std::net::TcpListener::bind(cfg.control.listen)
        .with_context(|| format!("binding the control API on {}", cfg.control.listen))?;
    control.set_nonblocking(true)?;
    Ok(Sockets { dns, control })
}

/// The control listener's TLS configuration, if `[control]` asks for TLS:
/// read at start (and by `--check-config`), before privileges are given up,
/// so the key file may be readable by root only. Reload keeps it.
pub fn control_tls(cfg: &Config) -> Result<Option<Arc<rustls::ServerConfig>>, ConfigError> {
    let (Some(cert), Some(key)) = (&cfg.control.tls_certificate, &cfg.control.tls_key) else {
        return Ok(None);
    };
    crate::ops::tls::server_config(cert.get_ref(), key.get_ref())
        .map(Some)
        .map_err(|e| {
            let span = if e.field == "control.tls_key" {
                key.span()
            } else {
                cert.span()
            };
            cfg.error_at(span, e.field, e.message)
        })
}

/// How [`run`] reports that it is serving.
pub struct RunOptions {
    /// Serve the control API over TLS with this ([`control_tls`]).
    pub control_tls: Option<Arc<rustls::ServerConfig>>,
    /// Write the bound addresses and pid here once serving.
    pub ready_file: Option<PathBuf>,
    /// systemd's notification socket and watchdog (no-op without systemd).
    pub notify: Arc<systemd::Notify>,
}

/// Serve on `sockets` until SIGTERM or SIGINT.
pub async fn run(
    loaded: Loaded,
    sockets: Sockets,
    source: Source,
    opts: RunOptions,
) -> anyhow::Result<()> {
    let Loaded {
        cfg,
        zones,
        keys,
        signers,
        ..
    } = loaded;
    let RunOptions {
        ready_file,
        notify,
        control_tls,
    } = opts;
    privileges::check_paths(&cfg, &cfg.token_file()).map_err(anyhow::Error::msg)?;
    let cfg = Arc::new(cfg);
    let keys = Arc::new(keys);
    let store = StateStore::new(&cfg.server.state_dir)
        .with_context(|| format!("state directory {}", cfg.server.state_dir.display()))?;
    let tokens = crate::ops::tokens::load_or_create_tokens(&cfg.token_file())?;
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

    let (shutdown_trigger, shutdown_rx) = shutdown::channel();
    let snapshot = Arc::new(ArcSwap::from_pointee(Snapshot::default()));
    let (changes_tx, changes_rx) = mpsc::unbounded_channel();
    let mut publisher = Publisher::new(snapshot.clone())
        .with_update_dir(cfg.server.state_dir.join("updates"))
        .with_events(changes_tx);
    for z in zones {
        let last = persisted_serials.get(&z.origin.to_string()).copied();
        info!(zone = %z.origin, records = z.record_count(), "zone loaded");
        publisher.add_zone_resuming(z, last, cfg.cluster.is_some())?;
    }
    publisher.set_signers(signers);
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
                            let event = Event::new(
                                crate::decide::unix_now(),
                                EventKind::PublisherError,
                                EventCause::Publisher,
                            )
                            .reason(e)
                            .who("ggond");
                            notifier.send(crate::ops::alerts::Alert {
                                at: event.time,
                                message: format!("RFC 2136 publishing of {zone} failed: {e}"),
                                event,
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
    // Recent check results per target, for the status page's health lanes.
    let checklog = crate::decide::checklog::CheckLog::new();
    let mut controller = Controller::new(&cfg, publisher, store)
        .with_remote_status(remote_status)
        .with_sink(Box::new(Sinks {
            notifier: notifier.clone(),
            metrics: metrics.clone(),
        }))
        .with_sink(Box::new(checklog.clone()));
    let failed_alerts =
        spawn_failed_alert_counter(notifier.clone(), metrics.clone(), shutdown_rx.clone());
    // Cluster mode: the controller follows the shared state until this node
    // wins the election; its health decisions use the agreed verdicts.
    let cluster = match &cfg.cluster {
        Some(c) => {
            let (prepared, store, votes, cluster) = crate::cluster::spawn(&cfg)
                .with_context(|| format!("cluster: etcd {:?}", c.etcd.get_ref()))?;
            controller = controller
                .with_shared(Box::new(store), cluster.view.clone())
                .with_sink(Box::new(votes));
            // Answer the agreed state from the first query on, not this
            // node's own last copy (it may be a decision or two behind).
            let key = cluster.keys.state();
            match tokio::time::timeout(Duration::from_secs(3), cluster.etcd.get(&key)).await {
                Ok(Ok(Some(kv))) => match serde_json::from_str(&kv.value) {
                    Ok(state) => controller.start_from_shared(state),
                    Err(e) => tracing::warn!(error = %e, "the shared state in etcd does not parse"),
                },
                Ok(Ok(None)) => info!("no shared state in etcd yet: a new cluster"),
                Ok(Err(e)) => tracing::warn!(error = %e,
                    "etcd unreachable at start: answering this node's last copy of the agreed state"),
                Err(_) => tracing::warn!(
                    "etcd did not answer within 3 s at start: answering this node's last copy of the agreed state"),
            }
            info!(node = %c.node.get_ref(), etcd = ?c.etcd.get_ref(), "cluster mode");
            Some((prepared, cluster))
        }
        None => None,
    };
    let (cmd_tx, cmd_rx) = mpsc::channel(64);
    let handle = ControllerHandle { commands: cmd_tx };
    let (config_tx, config_rx) = tokio::sync::watch::channel(cfg.clone());
    let cert_task = certaudit::spawn(
        config_rx,
        handle.clone(),
        metrics.clone(),
        notifier.clone(),
        shutdown_rx.clone(),
    );
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
                saved: Some(crate::replicate::saved::Saved::new(
                    &cfg.server.state_dir,
                    &origin,
                )),
            },
            handle.clone(),
            trigger.clone(),
            shutdown_rx.clone(),
        ));
        secondary_zones.insert(origin, (primary.ip(), trigger));
    }
    let notifier =
        crate::replicate::spawn_notifier(changes_rx, notify_targets, shutdown_rx.clone());

    let stats = Arc::new(Stats::default());
    let dns = DnsServer::serve(
        sockets.dns,
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
    // The controller fsyncs its state and history on every change, so it
    // runs on a thread of its own (its future driven with the runtime's
    // handle; whatever it spawns goes to the runtime): a slow disk never
    // stalls the runtime's workers, and the control API keeps queueing
    // commands during a write, which are then written together
    // (decide/batch.rs). On one core there is one worker, and remaps from
    // several clients were served one write at a time.
    let ctl_thread = {
        let (handle, shutdown) = (tokio::runtime::Handle::current(), shutdown_rx.clone());
        std::thread::Builder::new()
            .name("controller".into())
            .spawn(move || handle.block_on(controller.run(obs_rx, cmd_rx, shutdown)))?
    };

    let listener = tokio::net::TcpListener::from_std(sockets.control)?;
    let control_addr = listener.local_addr()?;
    let (reload_tx, mut reload_rx) = mpsc::channel::<crate::ops::control::ReloadRequest>(4);
    let limits = crate::ops::limits::Limits::new(cfg.control.limits.clone(), metrics.clone());
    let router = crate::ops::control::router(
        handle.clone(),
        tokens,
        reload_tx,
        crate::ops::control::Pages {
            metrics: metrics.clone(),
            stats: stats.clone(),
            public: cfg.control.public_status,
            cluster: cluster.as_ref().map(|(_, h)| h.clone()),
            limits: limits.clone(),
            checks: checklog,
        },
    );
    let api_task = tokio::spawn(crate::ops::control::serve(
        listener,
        router,
        limits,
        control_tls.clone(),
        shutdown_rx.clone(),
    ));
    info!(control = %control_addr, tls = control_tls.is_some(), "control API listening");
    let cluster_task = cluster.map(|(prepared, _)| {
        prepared.run(
            crate::cluster::NodeInfo {
                control: control_addr,
                dns: dns.local_addrs().to_vec(),
            },
            handle.clone(),
            shutdown_rx.clone(),
        )
    });

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
    let dns_addrs: Vec<String> = dns.local_addrs().iter().map(|a| a.to_string()).collect();
    notify.send(&format!(
        "READY=1\nSTATUS=serving DNS on {}, control API on {control_addr}",
        dns_addrs.join(" ")
    ));
    let watchdog = notify.watchdog.map(|period| {
        info!(period = ?period, "systemd watchdog enabled");
        notify.send("WATCHDOG=1");
        systemd::spawn_watchdog(
            notify.clone(),
            period,
            dns.heartbeats(),
            handle.clone(),
            shutdown_rx.clone(),
        )
    });

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
        notify.reloading();
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
                let _ = config_tx.send(Arc::new(cfg.clone()));
                info!(%summary, "reload done");
                notify.send(&format!("READY=1\nSTATUS=reload done: {summary}"));
            }
            Err(e) => {
                tracing::error!(error = %e, "reload rejected; still serving the previous configuration");
                notify.send(&format!(
                    "READY=1\nSTATUS=reload rejected: {}",
                    e.replace('\n', " ")
                ));
            }
        }
        if let Some(reply) = reply {
            let _ = reply.send(result.map(|(s, _)| s));
        }
    }
    info!("shutting down");
    notify.send("STOPPING=1\nSTATUS=stopping");
    shutdown_trigger.trigger();
    if let Some(w) = watchdog {
        w.abort();
    }
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
    cert_task.abort();
    if let Some(t) = cluster_task {
        // It gives its lease back, so its votes and leadership go at once.
        let _ = tokio::time::timeout(Duration::from_secs(3), t).await;
    }
    let _ = tokio::task::spawn_blocking(move || ctl_thread.join()).await;
    notifier.abort();
    let _ = failed_alerts.await;
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

/// Failed alerts show up in /metrics: the notifier counts them, this
/// copies the count over every 2 s until shutdown.
fn spawn_failed_alert_counter(
    notifier: crate::ops::alerts::Notifier,
    metrics: Arc<crate::ops::metrics::Metrics>,
    mut shutdown: Shutdown,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let mut seen = 0;
        loop {
            tokio::select! {
                _ = tokio::time::sleep(Duration::from_secs(2)) => {}
                _ = shutdown.requested() => return,
            }
            let failed = notifier.stats().failed;
            for _ in seen..failed {
                metrics.notify_failed();
            }
            seen = failed;
        }
    })
}

/// Read and validate config and zones again, then hand them to the
/// controller. Nothing changes unless everything loads.
async fn reload(source: &Source, handle: &ControllerHandle) -> Result<(String, Config), String> {
    let path = source.path.clone();
    let overrides = source.overrides.clone();
    let loaded = tokio::task::spawn_blocking(move || load(&path, &overrides))
        .await
        .map_err(|e| e.to_string())?
        .map_err(|e| e.to_string())?;
    let cfg = loaded.cfg.clone();
    let summary = handle
        .call(|reply| Command::Reload {
            config: Box::new(loaded.cfg),
            zones: loaded.zones,
            signers: loaded.signers,
            actor: Actor::new("reload"),
            reply,
        })
        .await
        .and_then(|r| r)
        .map_err(|e| e.to_string())?;
    Ok((summary, cfg))
}
