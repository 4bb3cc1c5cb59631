//! Each stage of ggond started from the configuration, its tasks handed to
//! [`Tasks`] in the [`Phase`] they stop in.
//!
//! Owns: turning config sections into the values and tasks the stages need
//! (the publisher with its zones and RFC 2136 remotes, transfer ACLs, the
//! alert notifier, the controller with its sinks, the cluster session,
//! secondary zones, the control API). It must not hold stage logic: each
//! function only builds and spawns what the stage's own module provides.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use hickory_proto::rr::Name;
use tokio::sync::{mpsc, watch};
use tracing::{info, warn};

use super::sinks::Sinks;
use super::tasks::{Phase, Tasks};
use super::StartError;
use crate::config::{Config, ZoneMode};
use crate::decide::checklog::CheckLog;
use crate::decide::state::{self, StateStore};
use crate::decide::{Controller, ControllerHandle, Event, EventCause, EventKind};
use crate::ops::alerts::{Alert, Notifier};
use crate::ops::metrics::Metrics;
use crate::proto::tsig;
use crate::publish::{Publisher, ZoneChanged};
use crate::replicate::ZoneAccess;
use crate::snapshot::Snapshot;

type Keys = Arc<tsig::Keyring>;

/// What every stage is built from: the configuration and keys, the task
/// set they join, and where alerts and counters go.
pub struct Assembly {
    pub cfg: Arc<Config>,
    pub keys: Keys,
    pub tasks: Tasks,
    pub out: Outbound,
}

impl Assembly {
    pub fn new(cfg: Config, keys: tsig::Keyring) -> Assembly {
        let mut tasks = Tasks::new();
        let out = outbound(&cfg, &mut tasks);
        Assembly {
            cfg: Arc::new(cfg),
            keys: Arc::new(keys),
            tasks,
            out,
        }
    }
}

/// Where alerts and counters go: the notifier's workers and the copy of
/// its failure count into `/metrics` (both stop in [`Phase::Outbound`]).
pub struct Outbound {
    pub notifier: Notifier,
    pub metrics: Arc<Metrics>,
}

fn outbound(cfg: &Config, tasks: &mut Tasks) -> Outbound {
    let (notifier, workers) = Notifier::start(&cfg.notifiers, tasks.signal(Phase::Outbound));
    for w in workers {
        tasks.adopt(Phase::Outbound, "alert notifier", w);
    }
    let metrics = Arc::new(Metrics::with_target_histograms(
        cfg.control.metrics_target_histograms,
    ));
    let (n, m, mut stop) = (
        notifier.clone(),
        metrics.clone(),
        tasks.signal(Phase::Outbound),
    );
    // Failed alerts show up in /metrics: copied over every 2 s.
    tasks.spawn(Phase::Outbound, "failed-alert counter", async move {
        let mut seen = 0;
        loop {
            tokio::select! {
                _ = tokio::time::sleep(Duration::from_secs(2)) => {}
                _ = stop.requested() => return,
            }
            let failed = n.stats().failed;
            for _ in seen..failed {
                m.notify_failed();
            }
            seen = failed;
        }
    });
    Outbound { notifier, metrics }
}

/// The zones as served and published: the publisher (own zones, RFC 2136
/// remotes), who may transfer and update each zone, and whom to NOTIFY.
pub struct Zones {
    pub publisher: Publisher,
    pub access: HashMap<Name, ZoneAccess>,
    pub notify: HashMap<Name, Vec<(SocketAddr, Option<tsig::Key>)>>,
    pub changes: mpsc::UnboundedReceiver<ZoneChanged>,
    pub remote_status: Vec<crate::publish::rfc2136::SharedStatus>,
}

pub fn zones(
    a: &mut Assembly,
    (loaded, signers): (Vec<crate::proto::zone::ZoneData>, Vec<crate::sign::Signer>),
    snapshot: Arc<arc_swap::ArcSwap<Snapshot>>,
) -> Result<Zones, StartError> {
    let (cfg, keys, out, tasks) = (&a.cfg, &a.keys, &a.out, &mut a.tasks);
    // This first load sets an unreadable state file aside, so the
    // controller's own load finds none: the error must be reported here.
    let serials = match StateStore::new(&cfg.server.state_dir)?.load() {
        state::Loaded::Ok(s) => s.serials,
        state::Loaded::Fresh => Default::default(),
        state::Loaded::Corrupt { error, kept_at } => {
            tracing::error!(%error, kept_at = %kept_at.display(),
                "state file unreadable; set aside, starting every service on its primary");
            Default::default()
        }
    };
    let (changes_tx, changes) = mpsc::unbounded_channel();
    let mut publisher = Publisher::new(snapshot)
        .with_update_dir(cfg.server.state_dir.join("updates"))
        .with_events(changes_tx);
    for z in loaded {
        let last = serials.get(&z.origin.to_string()).copied();
        info!(zone = %z.origin, records = z.record_count(), "zone loaded");
        publisher.add_zone_resuming(z, last, cfg.cluster.is_some())?;
    }
    publisher.set_signers(signers);
    let key = |n: &str| keys.get(n).cloned();
    let (mut notify, mut remote_status) = (HashMap::new(), Vec::new());
    for z in &cfg.zones {
        let origin = z.name();
        if let (ZoneMode::Rfc2136, Some(primary)) = (z.mode, &z.primary) {
            let remote = crate::publish::rfc2136::RemoteConfig {
                origin: origin.clone(),
                primary: *primary.get_ref(),
                key: z.key.as_ref().and_then(|k| key(k.get_ref())),
                reconcile: z.reconcile,
                min_backoff: Duration::from_millis(500),
                max_backoff: Duration::from_secs(30),
                on_error: Some(publisher_alarm(out, &origin)),
            };
            let (remote, status, task) =
                crate::publish::rfc2136::spawn(remote, tasks.signal(Phase::Outbound));
            tasks.adopt(Phase::Outbound, "RFC 2136 publisher", task);
            publisher.add_remote(origin.clone(), Box::new(remote));
            remote_status.push(status);
        }
        if !z.secondaries.is_empty() {
            let targets = z.secondaries.iter();
            let targets = targets.map(|s| (s.address, s.key.as_deref().and_then(key)));
            notify.insert(origin, targets.collect());
        }
    }
    let catalog = cfg.catalog.iter().map(|c| (c.origin(), &c.secondaries));
    for (origin, secondaries) in catalog {
        let targets = secondaries.iter();
        let targets = targets.map(|s| (s.address, s.key.as_deref().and_then(key)));
        notify.insert(origin, targets.collect());
    }
    Ok(Zones {
        publisher,
        access: crate::replicate::access_rules(cfg),
        notify,
        changes,
        remote_status,
    })
}

/// Count and alert on each new RFC 2136 publishing error of `zone`.
fn publisher_alarm(out: &Outbound, zone: &Name) -> crate::publish::rfc2136::ErrorHook {
    let (notifier, metrics, zone) = (out.notifier.clone(), out.metrics.clone(), zone.to_string());
    Arc::new(move |e: &str| {
        metrics.publisher_error(&zone);
        let event = Event::new(
            crate::decide::unix_now(),
            EventKind::PublisherError,
            EventCause::Publisher,
        )
        .reason(e)
        .who("ggond");
        notifier.send(Alert {
            at: event.time,
            message: format!("RFC 2136 publishing of {zone} failed: {e}"),
            event,
        });
    })
}

/// The controller over the publisher, reporting to alerts, metrics and the
/// status page's check log.
pub fn controller(
    a: &Assembly,
    regions: Arc<crate::geo::RegionMap>,
    publisher: Publisher,
    remote_status: Vec<crate::publish::rfc2136::SharedStatus>,
    checklog: &Arc<CheckLog>,
) -> Result<Controller, StartError> {
    let (cfg, out, dir) = (&a.cfg, &a.out, &a.cfg.server.state_dir);
    let store = StateStore::new(dir).map_err(|source| StartError::StateDir {
        dir: dir.clone(),
        source,
    })?;
    Ok(Controller::new(cfg, regions, publisher, store)
        .with_remote_status(remote_status)
        .with_sink(Box::new(Sinks {
            notifier: out.notifier.clone(),
            metrics: out.metrics.clone(),
        }))
        .with_sink(Box::new(checklog.clone())))
}

/// Cluster mode: the controller follows the shared state until this node
/// wins the election, and decides on the agreed verdicts. It answers the
/// agreed state from the first query on, not this node's own last copy (a
/// decision or two behind).
pub async fn join_cluster(
    cfg: &Config,
    mut controller: Controller,
) -> Result<
    (
        Controller,
        Option<(crate::cluster::Prepared, crate::cluster::ClusterHandle)>,
    ),
    StartError,
> {
    let Some(c) = &cfg.cluster else {
        return Ok((controller, None));
    };
    let (prepared, store, votes, cluster) =
        crate::cluster::spawn(cfg).map_err(|source| StartError::Cluster {
            etcd: c.etcd.get_ref().clone(),
            source,
        })?;
    controller = controller
        .with_shared(Box::new(store), cluster.view.clone())
        .with_sink(Box::new(votes));
    match tokio::time::timeout(Duration::from_secs(3), cluster.read_state()).await {
        Ok(Ok(Some(state))) => controller.start_from_shared(state),
        Ok(Ok(None)) => info!("no shared state in etcd yet: a new cluster"),
        Ok(Err(e)) => warn!(error = %e,
            "etcd unreachable at start: answering this node's last copy of the agreed state"),
        Err(_) => warn!(
            "etcd did not answer within 3 s at start: answering this node's last copy of the agreed state"),
    }
    info!(node = %c.node.get_ref(), etcd = ?c.etcd.get_ref(), "cluster mode");
    Ok((controller, Some((prepared, cluster))))
}

/// The secondary zones' refresh tasks; returns, per zone, its primary's
/// address and the trigger a NOTIFY from it pokes.
pub fn secondaries(
    a: &mut Assembly,
    handle: &ControllerHandle,
) -> HashMap<Name, (std::net::IpAddr, Arc<tokio::sync::Notify>)> {
    let (cfg, keys, tasks) = (&a.cfg, &a.keys, &mut a.tasks);
    let mut zones = HashMap::new();
    // Validation saw to it that every secondary zone has its primary.
    let secondaries = cfg.zones.iter().filter_map(|z| match (z.mode, &z.primary) {
        (ZoneMode::Secondary, Some(p)) => Some((z, *p.get_ref())),
        _ => None,
    });
    for (z, primary) in secondaries {
        let origin = z.name();
        let trigger = Arc::new(tokio::sync::Notify::new());
        let task = crate::replicate::secondary::spawn(
            crate::replicate::secondary::SecondaryConfig {
                origin: origin.clone(),
                primary,
                key: z.key.as_ref().and_then(|k| keys.get(k.get_ref()).cloned()),
                saved: Some(crate::replicate::saved::Saved::new(
                    &cfg.server.state_dir,
                    &origin,
                )),
            },
            handle.clone(),
            trigger.clone(),
            tasks.signal(Phase::Producers),
        );
        tasks.adopt(Phase::Producers, "secondary zone refresh", task);
        zones.insert(origin, (primary.ip(), trigger));
    }
    zones
}

/// The controller on a thread of its own (its future driven with the
/// runtime's handle; whatever it spawns goes to the runtime). It fsyncs
/// its state and history on every change: a slow disk must never stall the
/// runtime's workers, and the control API keeps queueing commands during a
/// write, which are then written together (decide/batch.rs).
pub fn run_controller(
    a: &mut Assembly,
    controller: Controller,
    observations: mpsc::Receiver<crate::monitor::Observation>,
    commands: mpsc::Receiver<crate::decide::Command>,
) {
    let (rt, stop) = (
        tokio::runtime::Handle::current(),
        a.tasks.signal(Phase::Controller),
    );
    a.tasks
        .spawn_blocking(Phase::Controller, "controller", move || {
            rt.block_on(controller.run(observations, commands, stop))
        });
}

/// The certificate audit and the health checks, both following `config`
/// across reloads.
pub fn checks(
    a: &mut Assembly,
    config: watch::Receiver<Arc<Config>>,
    handle: &ControllerHandle,
) -> Result<mpsc::Receiver<crate::monitor::Observation>, StartError> {
    let (metrics, notifier) = (a.out.metrics.clone(), a.out.notifier.clone());
    let stop = a.tasks.signal(Phase::Producers);
    let audit = super::certaudit::spawn(config.clone(), handle.clone(), metrics, notifier, stop);
    a.tasks.adopt(Phase::Producers, "certificate audit", audit);
    let checker = Arc::new(crate::monitor::Checker::new()?);
    let (tx, rx) = mpsc::channel(1024);
    let stop = a.tasks.signal(Phase::Producers);
    // On threads of their own (see monitor::runtime): a backlog of checks
    // must never delay the control API, the cluster session or answers.
    let rt = crate::monitor::runtime::build().map_err(StartError::CheckThreads)?;
    a.tasks
        .spawn_blocking(Phase::Producers, "health checks", move || {
            rt.block_on(crate::monitor::run_probes(checker, config, tx, stop))
        });
    Ok(rx)
}

/// NOTIFY to each zone's secondaries whenever the zone changes.
pub fn notify(
    a: &mut Assembly,
    changes: mpsc::UnboundedReceiver<ZoneChanged>,
    targets: HashMap<Name, Vec<(SocketAddr, Option<tsig::Key>)>>,
) {
    let stop = a.tasks.signal(Phase::Outbound);
    let task = crate::replicate::spawn_notifier(changes, targets, stop);
    a.tasks.adopt(Phase::Outbound, "NOTIFY sender", task);
}

/// What the DNS server reports once it serves.
pub struct Serving {
    pub addrs: Vec<SocketAddr>,
    pub heartbeats: Arc<crate::dns::heartbeat::Heartbeats>,
    pub stats: Arc<crate::dns::stats::Stats>,
}

/// DNS answers on the bound sockets, from `snapshot`; the other protocol
/// operations (NOTIFY, UPDATE, transfers) through `handler`. It stops last
/// ([`Phase::Dns`]), letting TCP answers in flight finish.
pub fn dns(
    a: &mut Assembly,
    sockets: crate::dns::server::Bound,
    snapshot: Arc<arc_swap::ArcSwap<Snapshot>>,
    handler: crate::replicate::ProtocolHandler,
) -> Result<Serving, StartError> {
    let cfg = &a.cfg;
    let limits = crate::dns::server::TcpLimits {
        max_connections: cfg.server.tcp_max_connections,
        idle_timeout: cfg.server.tcp_idle_timeout,
        rrl: cfg.server.rrl,
    };
    let stats = Arc::new(crate::dns::stats::Stats::default());
    let dns =
        crate::dns::DnsServer::serve(sockets, snapshot, Arc::new(handler), limits, stats.clone())
            .map_err(StartError::BindDns)?;
    let serving = Serving {
        addrs: dns.local_addrs().to_vec(),
        heartbeats: dns.heartbeats(),
        stats,
    };
    let mut stop = a.tasks.signal(Phase::Dns);
    a.tasks.spawn(Phase::Dns, "DNS server", async move {
        stop.requested().await;
        dns.shutdown().await;
    });
    Ok(serving)
}

/// What the control API serves besides the controller.
pub struct ControlApi {
    pub tokens: Vec<crate::ops::tokens::Token>,
    pub tls: Option<crate::ops::tls::ControlTls>,
    pub stats: Arc<crate::dns::stats::Stats>,
    pub cluster: Option<crate::cluster::ClusterHandle>,
    pub checks: Arc<CheckLog>,
}

/// Serve the control API on `listener`; returns its address and where
/// reload requests arrive.
pub fn control_api(
    a: &mut Assembly,
    (listener, unix): (
        std::net::TcpListener,
        Option<std::os::unix::net::UnixListener>,
    ),
    handle: &ControllerHandle,
    api: ControlApi,
) -> Result<(SocketAddr, mpsc::Receiver<super::ReloadRequest>), StartError> {
    let listener = tokio::net::TcpListener::from_std(listener)?;
    let addr = listener.local_addr()?;
    let (reload_tx, reload_rx) = mpsc::channel(4);
    let metrics = a.out.metrics.clone();
    let limits = crate::ops::limits::Limits::new(a.cfg.control.limits.clone(), metrics.clone());
    let pages = crate::ops::control::Pages {
        metrics,
        stats: api.stats,
        public: a.cfg.control.public_status,
        cluster: api.cluster,
        limits: limits.clone(),
        checks: api.checks,
        peer_roots: api.tls.as_ref().map(|t| t.peer_roots.clone()),
    };
    let router = crate::ops::control::router(handle.clone(), api.tokens, reload_tx, pages);
    if let Some(unix) = unix {
        // Its own slots: network clients cannot fill them.
        let limits = crate::ops::limits::Limits::new(limits.cfg.clone(), a.out.metrics.clone());
        let (unix, router) = (tokio::net::UnixListener::from_std(unix)?, router.clone());
        let stop = a.tasks.signal(Phase::Intake);
        info!(socket = ?a.cfg.control.socket, "control API listening on a Unix socket");
        a.tasks
            .spawn(Phase::Intake, "control API (Unix socket)", async move {
                crate::ops::control::serve(unix, router, limits, None, stop).await;
            });
    }
    let tls = api.tls.as_ref().map(|t| t.server.clone());
    let stop = a.tasks.signal(Phase::Intake);
    a.tasks.spawn(Phase::Intake, "control API", async move {
        crate::ops::control::serve(listener, router, limits, tls, stop).await;
    });
    info!(control = %addr, tls = api.tls.is_some(), "control API listening");
    Ok((addr, reload_rx))
}

/// Cluster mode: this node's etcd session (lease, votes, election).
pub fn cluster_session(
    a: &mut Assembly,
    prepared: crate::cluster::Prepared,
    info: crate::cluster::NodeInfo,
    handle: &ControllerHandle,
) {
    let session = prepared.run(info, handle.clone(), a.tasks.signal(Phase::Cluster));
    a.tasks.adopt(Phase::Cluster, "cluster session", session);
}

/// Tell whoever waits that ggond serves: the ready file, systemd's
/// READY=1, and from then on its watchdog.
pub fn announce_ready(
    a: &mut Assembly,
    opts: &super::RunOptions,
    dns: &Serving,
    control: SocketAddr,
    handle: &ControllerHandle,
) -> Result<(), StartError> {
    if let Some(path) = &opts.ready_file {
        let ready = super::Ready {
            dns: dns.addrs.clone(),
            control,
            pid: std::process::id(),
        };
        let tmp = path.with_extension("tmp");
        std::fs::write(&tmp, serde_json::to_vec(&ready)?)?;
        std::fs::rename(&tmp, path)?;
    }
    super::release_free_memory();
    info!("ggond ready");
    let addrs: Vec<String> = dns.addrs.iter().map(|a| a.to_string()).collect();
    let notify = &opts.notify;
    notify.send(&format!(
        "READY=1\nSTATUS=serving DNS on {}, control API on {control}",
        addrs.join(" ")
    ));
    if let Some(period) = notify.watchdog {
        info!(period = ?period, "systemd watchdog enabled");
        notify.send("WATCHDOG=1");
        let stop = a.tasks.signal(Phase::Producers);
        let beats = dns.heartbeats.clone();
        let dog =
            super::systemd::spawn_watchdog(notify.clone(), period, beats, handle.clone(), stop);
        a.tasks.adopt(Phase::Producers, "systemd watchdog", dog);
    }
    Ok(())
}
