//! Controller: the one owner of service state, where the stages meet.
//!
//! Owns: per service, the active target, the operator pin, drains and drills,
//! each target's health ([`crate::health`]) and last check result. It feeds
//! probe observations into health, asks the [`crate::policy`] what to do, tells
//! the [`crate::publisher`] to make it so, persists the result
//! ([`crate::state`]) and logs every change with its cause. Operator commands
//! from the control API arrive on the same channel-driven loop, so there is
//! exactly one writer and no lock: exactly one target is active per service
//! because only this task ever changes it.
//!
//! It must not run checks, parse packets or format wire data.

use std::collections::{BTreeMap, HashMap};
use std::net::IpAddr;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use hickory_proto::rr::Name;
use serde::Serialize;
use tokio::sync::{mpsc, oneshot, watch};
use tracing::{error, info, warn};

use crate::config::{Config, FailbackMode, ServiceConfig};
use crate::health::TargetHealth;
use crate::policy::{self, Cause, ServiceView, TargetView};
use crate::probe::{CheckOutcome, Observation};
use crate::publisher::{Publisher, ServiceRecords};
use crate::state::{Loaded, Override, PersistedState, ServiceState, StateStore};

struct ServiceRt {
    name: String,
    fqdn: Name,
    ttl: u32,
    failback: FailbackMode,
    hold_down: Duration,
    targets: Vec<TargetRt>,
    active: usize,
    pin: Option<Override>,
    all_down_alarm: bool,
}

struct TargetRt {
    name: String,
    addresses: Vec<IpAddr>,
    health: TargetHealth,
    last: Option<CheckOutcome>,
}

impl ServiceRt {
    fn target(&self, name: &str) -> Option<usize> {
        self.targets.iter().position(|t| t.name == name)
    }

    fn views(&self) -> Vec<TargetView> {
        self.targets
            .iter()
            .map(|t| TargetView {
                healthy: t.health.healthy(),
                since: t.health.since(),
                drained: false,
                drill_failed: false,
            })
            .collect()
    }

    fn records(&self, idx: usize) -> ServiceRecords {
        ServiceRecords {
            ttl: self.ttl,
            addresses: self.targets[idx].addresses.clone(),
        }
    }
}

/// Errors returned to operators, with the HTTP status they map to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CtlError {
    NotFound(String),
    Conflict(String),
    Internal(String),
}

impl std::fmt::Display for CtlError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            CtlError::NotFound(m) | CtlError::Conflict(m) | CtlError::Internal(m) => f.write_str(m),
        }
    }
}

/// Who asked, for logs and pins.
#[derive(Debug, Clone)]
pub struct Actor {
    pub name: String,
}

pub enum Command {
    Status {
        reply: oneshot::Sender<StatusView>,
    },
    Remap {
        service: String,
        to: String,
        reason: String,
        force: bool,
        actor: Actor,
        reply: oneshot::Sender<Result<ChangeView, CtlError>>,
    },
    Release {
        service: String,
        actor: Actor,
        reply: oneshot::Sender<Result<ChangeView, CtlError>>,
    },
    /// An authenticated RFC 2136 UPDATE for a local zone; the reply is the rcode.
    Update {
        origin: Name,
        message: Box<hickory_proto::op::Message>,
        key: String,
        peer: std::net::SocketAddr,
        reply: oneshot::Sender<u8>,
    },
}

#[derive(Debug, Clone, Serialize)]
pub struct StatusView {
    pub services: Vec<ServiceStatus>,
    pub zones: Vec<ZoneStatus>,
    /// RFC 2136 publishers (zones kept on another primary).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub publishers: Vec<crate::rfc2136::PublisherStatus>,
}

#[derive(Debug, Clone, Serialize)]
pub struct ZoneStatus {
    pub origin: String,
    pub serial: u32,
}

#[derive(Debug, Clone, Serialize)]
pub struct ServiceStatus {
    pub name: String,
    pub fqdn: String,
    pub active: String,
    /// "manual" while pinned by an operator, else "auto".
    pub mode: &'static str,
    pub failback: FailbackMode,
    pub pin: Option<Override>,
    pub all_down: bool,
    pub targets: Vec<TargetStatus>,
}

#[derive(Debug, Clone, Serialize)]
pub struct TargetStatus {
    pub name: String,
    pub addresses: Vec<IpAddr>,
    pub healthy: Option<bool>,
    pub last_check: Option<CheckView>,
}

#[derive(Debug, Clone, Serialize)]
pub struct CheckView {
    pub ok: bool,
    pub detail: String,
    pub latency_ms: f64,
    /// Unix seconds.
    pub at: f64,
}

/// The result of an operator command.
#[derive(Debug, Clone, Serialize)]
pub struct ChangeView {
    pub service: String,
    pub from: String,
    pub to: String,
    pub changed: bool,
    pub mode: &'static str,
    pub addresses: Vec<IpAddr>,
}

impl Serialize for FailbackMode {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(match self {
            FailbackMode::Manual => "manual",
            FailbackMode::Auto => "auto",
        })
    }
}

pub fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

pub struct Controller {
    services: Vec<ServiceRt>,
    by_name: HashMap<String, usize>,
    publisher: Publisher,
    store: StateStore,
    remote_status: Vec<crate::rfc2136::SharedStatus>,
}

impl Controller {
    /// Build from config and the persisted state; publishes the initial zones.
    pub fn new(cfg: &Config, mut publisher: Publisher, store: StateStore) -> Controller {
        let persisted = match store.load() {
            Loaded::Fresh => PersistedState::default(),
            Loaded::Ok(s) => s,
            Loaded::Corrupt { error, kept_at } => {
                error!(%error, kept_at = %kept_at.display(),
                    "state file unreadable; set aside, starting every service on its primary");
                PersistedState::default()
            }
        };
        let services: Vec<ServiceRt> = cfg
            .services
            .iter()
            .map(|s| restore(s, persisted.services.get(s.name.get_ref())))
            .collect();
        for s in &services {
            publisher.stage(&s.fqdn, s.records(s.active));
            info!(service = %s.name, active = %s.targets[s.active].name,
                pinned = s.pin.is_some(), "service starts");
        }
        publisher.publish_all();
        let by_name = services
            .iter()
            .enumerate()
            .map(|(i, s)| (s.name.clone(), i))
            .collect();
        let c = Controller {
            services,
            by_name,
            publisher,
            store,
            remote_status: Vec::new(),
        };
        if let Err(e) = c.persist() {
            error!(error = %e, "cannot write the state file");
        }
        c
    }

    /// Status of RFC 2136 publishers, shown by `status`.
    pub fn with_remote_status(mut self, st: Vec<crate::rfc2136::SharedStatus>) -> Self {
        self.remote_status = st;
        self
    }

    fn persisted(&self) -> PersistedState {
        PersistedState {
            services: self
                .services
                .iter()
                .map(|s| {
                    (
                        s.name.clone(),
                        ServiceState {
                            active: s.targets[s.active].name.clone(),
                            pin: s.pin.clone(),
                            drains: BTreeMap::new(),
                        },
                    )
                })
                .collect(),
            serials: self.publisher.serials(),
        }
    }

    fn persist(&self) -> std::io::Result<()> {
        self.store.save(&self.persisted())
    }

    /// Run until `shutdown` turns true; saves state on the way out.
    pub async fn run(
        mut self,
        mut observations: mpsc::Receiver<Observation>,
        mut commands: mpsc::Receiver<Command>,
        mut shutdown: watch::Receiver<bool>,
    ) {
        let mut tick = tokio::time::interval(Duration::from_secs(1));
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                Some(obs) = observations.recv() => self.observe(obs, Instant::now()),
                Some(cmd) = commands.recv() => self.command(cmd, Instant::now()),
                _ = tick.tick() => {
                    for i in 0..self.services.len() {
                        self.evaluate(i, Instant::now());
                    }
                }
                _ = shutdown.changed() => break,
            }
        }
        match self.persist() {
            Ok(()) => info!("state saved"),
            Err(e) => error!(error = %e, "cannot save state at shutdown"),
        }
    }

    fn observe(&mut self, obs: Observation, now: Instant) {
        let Some(&si) = self.by_name.get(&obs.key.service) else {
            return;
        };
        let svc = &mut self.services[si];
        let Some(ti) = svc.target(&obs.key.target) else {
            return;
        };
        let t = &mut svc.targets[ti];
        if let Some(healthy) = t.health.observe(obs.outcome.ok, now) {
            info!(service = %svc.name, target = %t.name, healthy, detail = %obs.outcome.detail,
                "target health changed");
        }
        t.last = Some(obs.outcome);
        self.evaluate(si, now);
    }

    fn evaluate(&mut self, si: usize, now: Instant) {
        let svc = &self.services[si];
        let views = svc.views();
        let pin = svc.pin.as_ref().and_then(|p| svc.target(&p.target));
        let view = ServiceView {
            failback: svc.failback,
            hold_down: svc.hold_down,
            active: svc.active,
            pin,
            targets: &views,
        };
        let decision = policy::decide(&view, now);
        let all_down = policy::all_down(&view);
        let svc = &mut self.services[si];
        if all_down != svc.all_down_alarm {
            svc.all_down_alarm = all_down;
            if all_down {
                error!(service = %svc.name, answering = %svc.targets[svc.active].name,
                    "ALARM: every target is down; still answering the current one (fail-open)");
            } else {
                info!(service = %svc.name, "alarm cleared: a target is healthy again");
            }
        }
        if let Some(d) = decision {
            let reason = match d.cause {
                Cause::Health => format!(
                    "{} is unhealthy",
                    self.services[si].targets[self.services[si].active].name
                ),
                Cause::Failback => "preferred target healthy for the hold-down".to_string(),
                Cause::Operator => "pinned by operator".to_string(),
            };
            self.switch(si, d.to, d.cause, &reason, "ggond");
        }
    }

    /// Make `to` the active target: publish, persist, log.
    fn switch(&mut self, si: usize, to: usize, cause: Cause, reason: &str, who: &str) {
        let svc = &mut self.services[si];
        let from = svc.active;
        if from == to {
            return;
        }
        svc.active = to;
        let records = svc.records(to);
        let fqdn = svc.fqdn.clone();
        let published = self.publisher.publish(&fqdn, records);
        let svc = &self.services[si];
        info!(service = %svc.name, from = %svc.targets[from].name, to = %svc.targets[to].name,
            %cause, reason, who, serial = published.map(|p| p.1), "remap");
        if let Err(e) = self.persist() {
            error!(error = %e, service = %svc.name, "cannot persist the remap");
        }
    }

    fn command(&mut self, cmd: Command, now: Instant) {
        match cmd {
            Command::Status { reply } => {
                let _ = reply.send(self.status());
            }
            Command::Remap {
                service,
                to,
                reason,
                force,
                actor,
                reply,
            } => {
                let _ = reply.send(self.remap(&service, &to, &reason, force, &actor));
            }
            Command::Release {
                service,
                actor,
                reply,
            } => {
                let _ = reply.send(self.release(&service, &actor, now));
            }
            Command::Update {
                origin,
                message,
                key,
                peer,
                reply,
            } => {
                let rcode = match self.publisher.apply_update(&origin, &message) {
                    Ok((change, serial)) => {
                        info!(zone = %origin, key, %peer, serial,
                            added = change.added.len(), removed = change.removed.len(),
                            "UPDATE applied");
                        if let Err(e) = self.persist() {
                            error!(error = %e, "cannot persist the zone serial");
                        }
                        0
                    }
                    Err(r) => {
                        warn!(zone = %origin, key, %peer, rcode = r.rcode, why = %r.why, "UPDATE refused");
                        r.rcode
                    }
                };
                let _ = reply.send(rcode);
            }
        }
    }

    fn service_index(&self, name: &str) -> Result<usize, CtlError> {
        self.by_name
            .get(name)
            .copied()
            .ok_or_else(|| CtlError::NotFound(format!("no service named `{name}`")))
    }

    fn change_view(&self, si: usize, from: usize) -> ChangeView {
        let s = &self.services[si];
        ChangeView {
            service: s.name.clone(),
            from: s.targets[from].name.clone(),
            to: s.targets[s.active].name.clone(),
            changed: from != s.active,
            mode: if s.pin.is_some() { "manual" } else { "auto" },
            addresses: s.targets[s.active].addresses.clone(),
        }
    }

    fn remap(
        &mut self,
        service: &str,
        to: &str,
        reason: &str,
        force: bool,
        actor: &Actor,
    ) -> Result<ChangeView, CtlError> {
        let si = self.service_index(service)?;
        let svc = &self.services[si];
        let ti = svc.target(to).ok_or_else(|| {
            let names: Vec<_> = svc.targets.iter().map(|t| t.name.as_str()).collect();
            CtlError::NotFound(format!(
                "service `{service}` has no target `{to}` (targets: {})",
                names.join(", ")
            ))
        })?;
        if svc.targets[ti].health.healthy() == Some(false) && !force {
            return Err(CtlError::Conflict(format!(
                "target `{to}` is unhealthy; use --force to remap to it anyway"
            )));
        }
        let from = svc.active;
        let old_pin = self.services[si].pin.replace(Override {
            target: to.to_string(),
            reason: reason.to_string(),
            author: actor.name.clone(),
            since: unix_now(),
            expires: None,
        });
        // Persist the pin before acting on it: an acknowledged remap must
        // survive a crash.
        if let Err(e) = self.persist() {
            self.services[si].pin = old_pin;
            return Err(CtlError::Internal(format!("cannot persist state: {e}")));
        }
        info!(service, target = to, reason, who = %actor.name, force, "operator pinned target");
        self.switch(si, ti, Cause::Operator, reason, &actor.name);
        Ok(self.change_view(si, from))
    }

    fn release(
        &mut self,
        service: &str,
        actor: &Actor,
        _now: Instant,
    ) -> Result<ChangeView, CtlError> {
        let si = self.service_index(service)?;
        let from = self.services[si].active;
        let old_pin = self.services[si].pin.take();
        if let Err(e) = self.persist() {
            self.services[si].pin = old_pin;
            return Err(CtlError::Internal(format!("cannot persist state: {e}")));
        }
        info!(service, who = %actor.name, "operator released the service to automatic policy");
        let svc = &self.services[si];
        let views = svc.views();
        let to = policy::fresh_choice(&ServiceView {
            failback: svc.failback,
            hold_down: svc.hold_down,
            active: svc.active,
            pin: None,
            targets: &views,
        });
        self.switch(si, to, Cause::Operator, "released", &actor.name);
        Ok(self.change_view(si, from))
    }

    pub fn status(&self) -> StatusView {
        StatusView {
            services: self
                .services
                .iter()
                .map(|s| ServiceStatus {
                    name: s.name.clone(),
                    fqdn: s.fqdn.to_string(),
                    active: s.targets[s.active].name.clone(),
                    mode: if s.pin.is_some() { "manual" } else { "auto" },
                    failback: s.failback,
                    pin: s.pin.clone(),
                    all_down: s.all_down_alarm,
                    targets: s
                        .targets
                        .iter()
                        .map(|t| TargetStatus {
                            name: t.name.clone(),
                            addresses: t.addresses.clone(),
                            healthy: t.health.healthy(),
                            last_check: t.last.as_ref().map(|o| CheckView {
                                ok: o.ok,
                                detail: o.detail.clone(),
                                latency_ms: o.latency.as_secs_f64() * 1000.0,
                                at: o
                                    .at
                                    .duration_since(UNIX_EPOCH)
                                    .map_or(0.0, |d| d.as_secs_f64()),
                            }),
                        })
                        .collect(),
                })
                .collect(),
            zones: self
                .publisher
                .serials()
                .into_iter()
                .map(|(origin, serial)| ZoneStatus { origin, serial })
                .collect(),
            publishers: self
                .remote_status
                .iter()
                .map(|s| s.lock().unwrap().clone())
                .collect(),
        }
    }
}

fn restore(cfg: &ServiceConfig, saved: Option<&ServiceState>) -> ServiceRt {
    let targets: Vec<TargetRt> = cfg
        .targets
        .get_ref()
        .iter()
        .map(|t| TargetRt {
            name: t.name.get_ref().clone(),
            addresses: t.addresses.get_ref().clone(),
            health: TargetHealth::new(t.check.rise, t.check.fall),
            last: None,
        })
        .collect();
    let find = |n: &str| targets.iter().position(|t| t.name == n);
    let name = cfg.name.get_ref().clone();
    let mut active = 0;
    let mut pin = None;
    if let Some(saved) = saved {
        match find(&saved.active) {
            Some(i) => active = i,
            None => warn!(service = %name, target = %saved.active,
                "saved active target no longer exists; starting on the primary"),
        }
        if let Some(p) = &saved.pin {
            match find(&p.target) {
                Some(i) => {
                    active = i;
                    pin = Some(p.clone());
                }
                None => warn!(service = %name, target = %p.target,
                    "saved pin names a target that no longer exists; dropped"),
            }
        }
    }
    let fqdn = Name::from_ascii(crate::config::normalize_name(cfg.fqdn.get_ref()))
        .expect("validated by config");
    ServiceRt {
        name,
        fqdn,
        ttl: cfg.ttl,
        failback: cfg.failback,
        hold_down: cfg.hold_down,
        targets,
        active,
        pin,
        all_down_alarm: false,
    }
}

/// A cheap handle for the control API.
#[derive(Clone)]
pub struct ControllerHandle {
    pub commands: mpsc::Sender<Command>,
}

impl ControllerHandle {
    pub async fn call<T>(
        &self,
        make: impl FnOnce(oneshot::Sender<T>) -> Command,
    ) -> Result<T, CtlError> {
        let (tx, rx) = oneshot::channel();
        self.commands
            .send(make(tx))
            .await
            .map_err(|_| CtlError::Internal("controller is shutting down".into()))?;
        rx.await
            .map_err(|_| CtlError::Internal("controller is shutting down".into()))
    }
}

/// Convenience for tests and the daemon: an Arc'd config.
pub type SharedConfig = Arc<Config>;
