//! Controller: the one owner of service state, where the stages meet.
//!
//! Owns: per service, the active target, the operator pin, drains and drills,
//! each target's health ([`crate::monitor::health`]) and last check result. It feeds
//! probe observations into health, asks the [`crate::decide::policy`] what to do, tells
//! the [`crate::publish`] to make it so, persists the result
//! ([`crate::decide::state`]) and logs every change with its cause. Operator commands
//! from the control API arrive on the same channel-driven loop, so there is
//! exactly one writer and no lock: exactly one target is active per service
//! because only this task ever changes it.
//!
//! It must not run checks, parse packets or format wire data.

pub mod history;
pub mod policy;
pub mod state;

use std::collections::{BTreeMap, HashMap};
use std::net::IpAddr;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use hickory_proto::rr::Name;
use serde::Serialize;
use tokio::sync::{mpsc, oneshot, watch};
use tracing::{error, info, warn};

use crate::config::{Config, FailbackMode, ServiceConfig, TargetConfig};
use crate::monitor::health::TargetHealth;
use crate::decide::history::{Entry, History};
use policy::{Cause, ServiceView, TargetView};
use crate::monitor::{CheckOutcome, Observation};
use crate::publish::{Publisher, ServiceRecords};
use crate::decide::state::{Loaded, Override, PersistedState, ServiceState, StateStore};
use crate::proto::zone::ZoneData;

struct ServiceRt {
    name: String,
    fqdn: Name,
    ttl: u32,
    failback: FailbackMode,
    hold_down: Duration,
    targets: Vec<TargetRt>,
    active: usize,
    pin: Option<Override>,
    /// Drained targets by name.
    drains: BTreeMap<String, Override>,
    drill: Option<Drill>,
    all_down_alarm: bool,
    /// The config it was built from (reload keeps state when it is unchanged).
    config: Vec<TargetConfig>,
}

struct TargetRt {
    name: String,
    addresses: Vec<IpAddr>,
    health: TargetHealth,
    last: Option<CheckOutcome>,
}

/// A running drill: `target` is treated as failed until `until`.
#[derive(Debug, Clone)]
struct Drill {
    target: usize,
    until: Instant,
    /// The target that was active when the drill began, restored at its end.
    previous: usize,
    who: String,
}

impl ServiceRt {
    fn target(&self, name: &str) -> Option<usize> {
        self.targets.iter().position(|t| t.name == name)
    }

    fn views(&self) -> Vec<TargetView> {
        self.targets
            .iter()
            .enumerate()
            .map(|(i, t)| TargetView {
                healthy: t.health.healthy(),
                since: t.health.since(),
                drained: self.drains.contains_key(&t.name),
                drill_failed: self.drill.as_ref().is_some_and(|d| d.target == i),
            })
            .collect()
    }

    fn pin_index(&self) -> Option<usize> {
        self.pin.as_ref().and_then(|p| self.target(&p.target))
    }

    fn records(&self, idx: usize) -> ServiceRecords {
        ServiceRecords {
            ttl: self.ttl,
            addresses: self.targets[idx].addresses.clone(),
        }
    }

    fn mode(&self) -> &'static str {
        if self.pin.is_some() {
            "manual"
        } else {
            "auto"
        }
    }
}

/// Errors returned to operators, with the HTTP status they map to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CtlError {
    NotFound(String),
    Conflict(String),
    BadRequest(String),
    Internal(String),
}

impl std::fmt::Display for CtlError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            CtlError::NotFound(m)
            | CtlError::Conflict(m)
            | CtlError::BadRequest(m)
            | CtlError::Internal(m) => f.write_str(m),
        }
    }
}

/// A service's operator overrides: its pin and its drains.
type Overrides = (Option<Override>, BTreeMap<String, Override>);

/// An operator override of `target`, with its expiry.
fn new_override(target: &str, reason: &str, actor: &Actor, duration: Option<Duration>) -> Override {
    Override {
        target: target.to_string(),
        reason: reason.to_string(),
        author: actor.name.clone(),
        since: unix_now(),
        expires: duration.map(|d| unix_now() + d.as_secs().max(1)),
    }
}

/// Who asked, for logs, pins and history.
#[derive(Debug, Clone)]
pub struct Actor {
    pub name: String,
}

/// Where the controller reports what it does, besides the log and history
/// (notifications, metrics). Implementations must not block.
pub trait EventSink: Send {
    fn event(&self, _e: &Entry) {}
    fn check(&self, _service: &str, _target: &str, _outcome: &CheckOutcome) {}
}

pub type Reply<T> = oneshot::Sender<Result<T, CtlError>>;

pub enum Command {
    Status {
        reply: oneshot::Sender<StatusView>,
    },
    Remap {
        service: String,
        to: String,
        reason: String,
        force: bool,
        dry_run: bool,
        /// Pin expiry.
        duration: Option<Duration>,
        actor: Actor,
        reply: Reply<ChangeView>,
    },
    Release {
        service: String,
        actor: Actor,
        reply: Reply<ChangeView>,
    },
    Drain {
        service: String,
        target: String,
        reason: String,
        duration: Option<Duration>,
        actor: Actor,
        reply: Reply<ChangeView>,
    },
    Undrain {
        service: String,
        target: String,
        actor: Actor,
        reply: Reply<ChangeView>,
    },
    /// Dry run (fail = None) or a timed failure drill.
    Drill {
        service: String,
        fail: Option<(String, Duration)>,
        actor: Actor,
        reply: Reply<DrillView>,
    },
    History {
        service: Option<String>,
        since: Option<u64>,
        limit: usize,
        reply: oneshot::Sender<Vec<Entry>>,
    },
    /// An authenticated RFC 2136 UPDATE for a local zone; the reply is the rcode.
    Update {
        origin: Name,
        message: Box<hickory_proto::op::Message>,
        key: String,
        peer: std::net::SocketAddr,
        reply: oneshot::Sender<u8>,
    },
    /// A secondary zone was transferred from its primary.
    SecondaryLoaded {
        zone: Box<ZoneData>,
        reply: Reply<()>,
    },
    /// A secondary zone expired: stop serving it.
    SecondaryExpired {
        origin: Name,
        reply: Reply<()>,
    },
    /// A validated new configuration and its zones.
    Reload {
        config: Box<Config>,
        zones: Vec<ZoneData>,
        actor: Actor,
        reply: Reply<String>,
    },
}

#[derive(Debug, Clone, Serialize)]
pub struct StatusView {
    pub services: Vec<ServiceStatus>,
    pub zones: Vec<ZoneStatus>,
    /// RFC 2136 publishers (zones kept on another primary).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub publishers: Vec<crate::publish::rfc2136::PublisherStatus>,
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
    pub ttl: u32,
    pub active: String,
    /// "manual" while pinned by an operator, else "auto".
    pub mode: &'static str,
    pub failback: FailbackMode,
    pub pin: Option<Override>,
    pub all_down: bool,
    /// Target under a failure drill, and until when (unix seconds).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub drill: Option<(String, u64)>,
    pub targets: Vec<TargetStatus>,
}

#[derive(Debug, Clone, Serialize)]
pub struct TargetStatus {
    pub name: String,
    pub addresses: Vec<IpAddr>,
    pub healthy: Option<bool>,
    pub drained: Option<Override>,
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
    /// Nothing was changed: this is what would happen.
    pub dry_run: bool,
}

/// What a drill reports.
#[derive(Debug, Clone, Serialize)]
pub struct DrillView {
    pub service: String,
    pub fqdn: String,
    pub active: String,
    /// The target that would take over if the active one failed now.
    pub takeover: Option<String>,
    pub takeover_healthy: Option<bool>,
    /// The answer that would then be served.
    pub answers: Vec<IpAddr>,
    pub ttl: u32,
    /// The zone serial that change would publish.
    pub serial: Option<u32>,
    /// Set for `--fail`: the drill is running until this unix time.
    pub failing: Option<(String, u64)>,
    pub note: String,
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
    history: History,
    sinks: Vec<Box<dyn EventSink>>,
    remote_status: Vec<crate::publish::rfc2136::SharedStatus>,
}

fn entry(
    kind: &str,
    service: &str,
    from: Option<&str>,
    to: Option<&str>,
    cause: &str,
    reason: &str,
    who: &str,
) -> Entry {
    Entry {
        time: unix_now(),
        kind: kind.to_string(),
        service: Some(service.to_string()),
        from: from.map(str::to_string),
        to: to.map(str::to_string),
        cause: cause.to_string(),
        reason: reason.to_string(),
        who: who.to_string(),
    }
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
        let history = History::new(&cfg.server.state_dir);
        let mut c = Controller {
            services,
            by_name: HashMap::new(),
            publisher,
            store,
            history,
            sinks: Vec::new(),
            remote_status: Vec::new(),
        };
        c.index();
        if let Err(e) = c.persist() {
            error!(error = %e, "cannot write the state file");
        }
        c
    }

    fn index(&mut self) {
        self.by_name = self
            .services
            .iter()
            .enumerate()
            .map(|(i, s)| (s.name.clone(), i))
            .collect();
    }

    /// Status of RFC 2136 publishers, shown by `status`.
    pub fn with_remote_status(mut self, st: Vec<crate::publish::rfc2136::SharedStatus>) -> Self {
        self.remote_status = st;
        self
    }

    pub fn with_sink(mut self, sink: Box<dyn EventSink>) -> Self {
        self.sinks.push(sink);
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
                            drains: s.drains.clone(),
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

    /// Log, append to history, tell the sinks.
    fn record(&self, e: Entry) {
        if let Err(err) = self.history.append(&e) {
            error!(error = %err, path = %self.history.path().display(), "cannot append to history");
        }
        for s in &self.sinks {
            s.event(&e);
        }
    }

    /// Run until `shutdown` turns true; saves state on the way out.
    pub async fn run(
        mut self,
        mut observations: mpsc::Receiver<Observation>,
        mut commands: mpsc::Receiver<Command>,
        mut shutdown: watch::Receiver<bool>,
    ) {
        let mut tick = tokio::time::interval(Duration::from_millis(500));
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                Some(obs) = observations.recv() => self.observe(obs, Instant::now()),
                Some(cmd) = commands.recv() => self.command(cmd, Instant::now()),
                _ = tick.tick() => self.tick(Instant::now()),
                _ = shutdown.changed() => break,
            }
        }
        match self.persist() {
            Ok(()) => info!("state saved"),
            Err(e) => error!(error = %e, "cannot save state at shutdown"),
        }
    }

    /// Time-driven work: expiring overrides, ending drills, hold-downs.
    fn tick(&mut self, now: Instant) {
        let unix = unix_now();
        for si in 0..self.services.len() {
            let expired_pin = self.services[si]
                .pin
                .as_ref()
                .is_some_and(|p| p.expires.is_some_and(|t| t <= unix));
            if expired_pin {
                let pin = self.services[si].pin.take().expect("checked");
                let svc = &self.services[si];
                info!(service = %svc.name, target = %pin.target, "pin expired; automatic policy resumes");
                self.record(entry(
                    "expire",
                    &svc.name,
                    Some(&pin.target),
                    None,
                    "expired",
                    &pin.reason,
                    &pin.author,
                ));
                self.choose_afresh(si, "pin expired", "ggond");
            }
            let expired: Vec<String> = self.services[si]
                .drains
                .iter()
                .filter(|(_, d)| d.expires.is_some_and(|t| t <= unix))
                .map(|(n, _)| n.clone())
                .collect();
            for t in expired {
                let d = self.services[si].drains.remove(&t).expect("listed");
                let name = self.services[si].name.clone();
                info!(service = %name, target = %t, "drain expired");
                self.record(entry(
                    "undrain",
                    &name,
                    None,
                    Some(&t),
                    "expired",
                    &d.reason,
                    &d.author,
                ));
                self.persist_or_log();
            }
            let drill_over = self.services[si]
                .drill
                .as_ref()
                .is_some_and(|d| d.until <= now);
            if drill_over {
                self.end_drill(si);
            }
            self.evaluate(si, now);
        }
    }

    /// Persist after an operator changed a service's overrides (pin,
    /// drains); if that fails, put them back as they were and refuse: an
    /// acknowledged command must survive a crash.
    fn persist_overrides(&mut self, si: usize, before: Overrides) -> Result<(), CtlError> {
        self.persist().map_err(|e| {
            (self.services[si].pin, self.services[si].drains) = before;
            CtlError::Internal(format!("cannot persist state: {e}"))
        })
    }

    fn overrides(&self, si: usize) -> Overrides {
        (
            self.services[si].pin.clone(),
            self.services[si].drains.clone(),
        )
    }

    fn persist_or_log(&self) {
        if let Err(e) = self.persist() {
            error!(error = %e, "cannot persist state");
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
        for s in &self.sinks {
            s.check(&obs.key.service, &obs.key.target, &obs.outcome);
        }
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
        let view = ServiceView {
            failback: svc.failback,
            hold_down: svc.hold_down,
            active: svc.active,
            pin: svc.pin_index(),
            targets: &views,
        };
        let decision = policy::decide(&view, now);
        let all_down = policy::all_down(&view);
        if all_down != svc.all_down_alarm {
            let name = svc.name.clone();
            let answering = svc.targets[svc.active].name.clone();
            self.services[si].all_down_alarm = all_down;
            if all_down {
                error!(service = %name, %answering,
                    "ALARM: every target is down; still answering the current one (fail-open)");
                self.record(entry(
                    "all_down",
                    &name,
                    None,
                    Some(&answering),
                    "health",
                    "every target is down",
                    "ggond",
                ));
            } else {
                info!(service = %name, "alarm cleared: a target is healthy again");
                self.record(entry(
                    "recovered",
                    &name,
                    None,
                    None,
                    "health",
                    "a target is healthy again",
                    "ggond",
                ));
            }
        }
        if let Some(d) = decision {
            let svc = &self.services[si];
            let reason = match d.cause {
                Cause::Health => {
                    let cur = &svc.targets[svc.active].name;
                    if svc.drill.as_ref().is_some_and(|x| x.target == svc.active) {
                        format!("{cur} failed by a drill")
                    } else if svc.drains.contains_key(cur) {
                        format!("{cur} is drained")
                    } else {
                        format!("{cur} is unhealthy")
                    }
                }
                Cause::Failback => "preferred target healthy for the hold-down".to_string(),
                Cause::Operator => "pinned by operator".to_string(),
            };
            self.switch(si, d.to, d.cause, &reason, "ggond");
        }
    }

    /// Make `to` the active target: publish, persist, log, record.
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
        let (name, from_n, to_n) = (
            svc.name.clone(),
            svc.targets[from].name.clone(),
            svc.targets[to].name.clone(),
        );
        info!(service = %name, from = %from_n, to = %to_n,
            %cause, reason, who, serial = ?published.and_then(|p| p.1), "remap");
        self.persist_or_log();
        let kind = match cause {
            Cause::Health => "failover",
            Cause::Failback => "failback",
            Cause::Operator => "remap",
        };
        self.record(entry(
            kind,
            &name,
            Some(&from_n),
            Some(&to_n),
            &cause.to_string(),
            reason,
            who,
        ));
    }

    /// After a pin is released or expires: the most preferred available target.
    fn choose_afresh(&mut self, si: usize, reason: &str, who: &str) {
        let svc = &self.services[si];
        let views = svc.views();
        let to = policy::fresh_choice(&ServiceView {
            failback: svc.failback,
            hold_down: svc.hold_down,
            active: svc.active,
            pin: None,
            targets: &views,
        });
        self.switch(si, to, Cause::Operator, reason, who);
        self.persist_or_log();
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
                dry_run,
                duration,
                actor,
                reply,
            } => {
                let _ = reply
                    .send(self.remap(&service, &to, &reason, force, dry_run, duration, &actor));
            }
            Command::Release {
                service,
                actor,
                reply,
            } => {
                let _ = reply.send(self.release(&service, &actor));
            }
            Command::Drain {
                service,
                target,
                reason,
                duration,
                actor,
                reply,
            } => {
                let _ = reply.send(self.drain(&service, &target, &reason, duration, &actor, now));
            }
            Command::Undrain {
                service,
                target,
                actor,
                reply,
            } => {
                let _ = reply.send(self.undrain(&service, &target, &actor, now));
            }
            Command::Drill {
                service,
                fail,
                actor,
                reply,
            } => {
                let _ = reply.send(self.drill(&service, fail, &actor, now));
            }
            Command::History {
                service,
                since,
                limit,
                reply,
            } => {
                let _ = reply.send(self.history.read(service.as_deref(), since, limit));
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
                        self.persist_or_log();
                        let mut e = entry(
                            "update",
                            "",
                            None,
                            None,
                            "update",
                            &format!(
                                "{} added, {} removed at serial {serial}",
                                change.added.len(),
                                change.removed.len()
                            ),
                            &key,
                        );
                        e.service = None;
                        self.record(e);
                        0
                    }
                    Err(r) => {
                        warn!(zone = %origin, key, %peer, rcode = r.rcode, why = %r.why, "UPDATE refused");
                        r.rcode
                    }
                };
                let _ = reply.send(rcode);
            }
            Command::SecondaryLoaded { zone, reply } => {
                self.publisher.replace_zone(*zone);
                self.persist_or_log();
                let _ = reply.send(Ok(()));
            }
            Command::SecondaryExpired { origin, reply } => {
                self.publisher.remove_zone(&origin);
                let _ = reply.send(Ok(()));
            }
            Command::Reload {
                config,
                zones,
                actor,
                reply,
            } => {
                let _ = reply.send(self.reload(&config, zones, &actor));
            }
        }
    }

    fn service_index(&self, name: &str) -> Result<usize, CtlError> {
        self.by_name
            .get(name)
            .copied()
            .ok_or_else(|| CtlError::NotFound(format!("no service named `{name}`")))
    }

    fn target_index(&self, si: usize, name: &str) -> Result<usize, CtlError> {
        let svc = &self.services[si];
        svc.target(name).ok_or_else(|| {
            let names: Vec<_> = svc.targets.iter().map(|t| t.name.as_str()).collect();
            CtlError::NotFound(format!(
                "service `{}` has no target `{name}` (targets: {})",
                svc.name,
                names.join(", ")
            ))
        })
    }

    fn change_view(&self, si: usize, from: usize, to: usize, dry_run: bool) -> ChangeView {
        let s = &self.services[si];
        ChangeView {
            service: s.name.clone(),
            from: s.targets[from].name.clone(),
            to: s.targets[to].name.clone(),
            changed: from != to,
            mode: s.mode(),
            addresses: s.targets[to].addresses.clone(),
            dry_run,
        }
    }

    #[allow(clippy::too_many_arguments)]
    fn remap(
        &mut self,
        service: &str,
        to: &str,
        reason: &str,
        force: bool,
        dry_run: bool,
        duration: Option<Duration>,
        actor: &Actor,
    ) -> Result<ChangeView, CtlError> {
        let si = self.service_index(service)?;
        let ti = self.target_index(si, to)?;
        let views = self.services[si].views();
        if views[ti].unusable() && !force {
            let why = if views[ti].drained {
                "drained"
            } else if views[ti].drill_failed {
                "failed by a running drill"
            } else {
                "unhealthy"
            };
            return Err(CtlError::Conflict(format!(
                "target `{to}` is {why}; use --force to remap to it anyway"
            )));
        }
        let from = self.services[si].active;
        if dry_run {
            let mut v = self.change_view(si, from, ti, true);
            v.mode = "manual";
            return Ok(v);
        }
        let before = self.overrides(si);
        self.services[si].pin = Some(new_override(to, reason, actor, duration));
        // The pin is persisted before it is acted on.
        self.persist_overrides(si, before)?;
        info!(service, target = to, reason, who = %actor.name, force, "operator pinned target");
        if from == ti {
            self.record(entry(
                "pin",
                service,
                Some(to),
                Some(to),
                "operator",
                reason,
                &actor.name,
            ));
        }
        self.switch(si, ti, Cause::Operator, reason, &actor.name);
        Ok(self.change_view(si, from, ti, false))
    }

    fn release(&mut self, service: &str, actor: &Actor) -> Result<ChangeView, CtlError> {
        let si = self.service_index(service)?;
        let from = self.services[si].active;
        let before = self.overrides(si);
        self.services[si].pin = None;
        self.persist_overrides(si, before)?;
        info!(service, who = %actor.name, "operator released the service to automatic policy");
        self.record(entry(
            "release",
            service,
            None,
            None,
            "operator",
            "released",
            &actor.name,
        ));
        self.choose_afresh(si, "released", &actor.name);
        let to = self.services[si].active;
        Ok(self.change_view(si, from, to, false))
    }

    fn drain(
        &mut self,
        service: &str,
        target: &str,
        reason: &str,
        duration: Option<Duration>,
        actor: &Actor,
        now: Instant,
    ) -> Result<ChangeView, CtlError> {
        let si = self.service_index(service)?;
        self.target_index(si, target)?;
        let from = self.services[si].active;
        let before = self.overrides(si);
        self.services[si].drains.insert(
            target.to_string(),
            new_override(target, reason, actor, duration),
        );
        self.persist_overrides(si, before)?;
        info!(service, target, reason, who = %actor.name, "target drained");
        self.record(entry(
            "drain",
            service,
            None,
            Some(target),
            "operator",
            reason,
            &actor.name,
        ));
        self.evaluate(si, now);
        let to = self.services[si].active;
        Ok(self.change_view(si, from, to, false))
    }

    fn undrain(
        &mut self,
        service: &str,
        target: &str,
        actor: &Actor,
        now: Instant,
    ) -> Result<ChangeView, CtlError> {
        let si = self.service_index(service)?;
        self.target_index(si, target)?;
        let from = self.services[si].active;
        let before = self.overrides(si);
        if self.services[si].drains.remove(target).is_none() {
            return Err(CtlError::Conflict(format!(
                "target `{target}` is not drained"
            )));
        }
        self.persist_overrides(si, before)?;
        info!(service, target, who = %actor.name, "target undrained");
        self.record(entry(
            "undrain",
            service,
            None,
            Some(target),
            "operator",
            "",
            &actor.name,
        ));
        self.evaluate(si, now);
        let to = self.services[si].active;
        Ok(self.change_view(si, from, to, false))
    }

    fn drill(
        &mut self,
        service: &str,
        fail: Option<(String, Duration)>,
        actor: &Actor,
        now: Instant,
    ) -> Result<DrillView, CtlError> {
        let si = self.service_index(service)?;
        let fail_idx = match &fail {
            Some((t, _)) => Some(self.target_index(si, t)?),
            None => None,
        };
        let svc = &self.services[si];
        // Which target takes over if `failing` (default: the active one) fails now.
        let failing = fail_idx.unwrap_or(svc.active);
        let mut views = svc.views();
        views[failing].drill_failed = true;
        let view = ServiceView {
            failback: svc.failback,
            hold_down: svc.hold_down,
            active: svc.active,
            pin: svc.pin_index(),
            targets: &views,
        };
        let takeover = if svc.pin.is_some() {
            None
        } else if failing == svc.active {
            policy::decide(&view, now).map(|d| d.to)
        } else {
            None
        };
        let zone_serial = self
            .publisher
            .zone_of(&svc.fqdn)
            .and_then(|o| self.publisher.serials().get(&o.to_string()).copied());
        let shown = takeover.unwrap_or(svc.active);
        let note = match (svc.pin.is_some(), takeover, failing == svc.active) {
            (true, _, _) => {
                "the service is pinned: a failure would not move it (release it first)".to_string()
            }
            (false, None, true) => {
                "no healthy target could take over: the current answer would stay (fail-open)"
                    .to_string()
            }
            (false, None, false) => format!(
                "{} is not active: its failure would not change the answer",
                svc.targets[failing].name
            ),
            (false, Some(t), _) => format!("{} would take over", svc.targets[t].name),
        };
        let mut out = DrillView {
            service: svc.name.clone(),
            fqdn: svc.fqdn.to_string(),
            active: svc.targets[svc.active].name.clone(),
            takeover: takeover.map(|t| svc.targets[t].name.clone()),
            takeover_healthy: takeover.map(|t| views[t].healthy == Some(true)),
            answers: svc.targets[shown].addresses.clone(),
            ttl: svc.ttl,
            serial: zone_serial.map(|s| {
                if takeover.is_some() {
                    s.wrapping_add(1)
                } else {
                    s
                }
            }),
            failing: None,
            note,
        };
        if let (Some((t, dur)), Some(ti)) = (fail, fail_idx) {
            if self.services[si].drill.is_some() {
                return Err(CtlError::Conflict(format!(
                    "a drill is already running on `{service}`"
                )));
            }
            let until = now + dur;
            let until_unix = unix_now() + dur.as_secs();
            let previous = self.services[si].active;
            self.services[si].drill = Some(Drill {
                target: ti,
                until,
                previous,
                who: actor.name.clone(),
            });
            info!(service, target = %t, duration = ?dur, who = %actor.name, "drill started: target treated as failed");
            self.record(entry(
                "drill_start",
                service,
                None,
                Some(&t),
                "drill",
                &format!(
                    "{t} treated as failed for {}",
                    humantime::format_duration(dur)
                ),
                &actor.name,
            ));
            self.evaluate(si, now);
            out.failing = Some((t, until_unix));
        }
        Ok(out)
    }

    fn end_drill(&mut self, si: usize) {
        let Some(d) = self.services[si].drill.take() else {
            return;
        };
        let svc = &self.services[si];
        let name = svc.name.clone();
        let target = svc.targets[d.target].name.clone();
        info!(service = %name, target = %target, "drill over: target back to its real health");
        self.record(entry(
            "drill_end",
            &name,
            None,
            Some(&target),
            "drill",
            "drill over",
            &d.who,
        ));
        // Revert: back to where the service was before the drill, if that is
        // still a sound choice (no pin took over meanwhile, and it is not down).
        let views = svc.views();
        if svc.pin.is_none() && svc.active != d.previous && !views[d.previous].unusable() {
            self.switch(
                si,
                d.previous,
                Cause::Operator,
                "drill over: reverting",
                "ggond",
            );
        }
    }

    fn reload(
        &mut self,
        cfg: &Config,
        zones: Vec<ZoneData>,
        actor: &Actor,
    ) -> Result<String, CtlError> {
        let mut old: HashMap<String, ServiceRt> = self
            .services
            .drain(..)
            .map(|s| (s.name.clone(), s))
            .collect();
        let mut kept = 0;
        let mut fresh = 0;
        let mut services = Vec::new();
        for sc in &cfg.services {
            let name = sc.name.get_ref();
            let new_targets = sc.targets.get_ref();
            let rt = match old.remove(name) {
                Some(mut o)
                    if targets_equal(&o.config, new_targets) && o.fqdn == sc.fqdn_name() =>
                {
                    o.ttl = sc.ttl;
                    o.failback = sc.failback;
                    o.hold_down = sc.hold_down;
                    kept += 1;
                    o
                }
                Some(o) => {
                    fresh += 1;
                    let saved = ServiceState {
                        active: o.targets[o.active].name.clone(),
                        pin: o.pin.clone(),
                        drains: o.drains.clone(),
                    };
                    restore(sc, Some(&saved))
                }
                None => {
                    fresh += 1;
                    restore(sc, None)
                }
            };
            services.push(rt);
        }
        let removed = old.len();
        self.services = services;
        self.index();
        self.publisher
            .reload_zones(zones)
            .map_err(CtlError::BadRequest)?;
        for s in &self.services {
            self.publisher.stage(&s.fqdn, s.records(s.active));
        }
        self.publisher.publish_reload();
        self.persist_or_log();
        let summary =
            format!("{kept} services kept their state, {fresh} new or changed, {removed} removed");
        info!(who = %actor.name, %summary, "configuration reloaded");
        let mut e = entry("reload", "", None, None, "operator", &summary, &actor.name);
        e.service = None;
        self.record(e);
        Ok(summary)
    }

    pub fn status(&self) -> StatusView {
        StatusView {
            services: self
                .services
                .iter()
                .map(|s| ServiceStatus {
                    name: s.name.clone(),
                    fqdn: s.fqdn.to_string(),
                    ttl: s.ttl,
                    active: s.targets[s.active].name.clone(),
                    mode: s.mode(),
                    failback: s.failback,
                    pin: s.pin.clone(),
                    all_down: s.all_down_alarm,
                    drill: s.drill.as_ref().map(|d| {
                        let left = d.until.saturating_duration_since(Instant::now());
                        (
                            s.targets[d.target].name.clone(),
                            unix_now() + left.as_secs(),
                        )
                    }),
                    targets: s
                        .targets
                        .iter()
                        .map(|t| TargetStatus {
                            name: t.name.clone(),
                            addresses: t.addresses.clone(),
                            healthy: t.health.healthy(),
                            drained: s.drains.get(&t.name).cloned(),
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

/// Same targets, addresses and checks (spans in the file do not matter).
fn targets_equal(a: &[TargetConfig], b: &[TargetConfig]) -> bool {
    a.len() == b.len()
        && a.iter().zip(b).all(|(x, y)| {
            x.name.get_ref() == y.name.get_ref()
                && x.addresses.get_ref() == y.addresses.get_ref()
                && x.check.kind == y.check.kind
                && x.check.interval == y.check.interval
                && x.check.timeout == y.check.timeout
                && x.check.rise == y.check.rise
                && x.check.fall == y.check.fall
        })
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
    let mut drains = BTreeMap::new();
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
        for (t, d) in &saved.drains {
            if find(t).is_some() {
                drains.insert(t.clone(), d.clone());
            }
        }
    }
    ServiceRt {
        fqdn: cfg.fqdn_name(),
        name,
        ttl: cfg.ttl,
        failback: cfg.failback,
        hold_down: cfg.hold_down,
        targets,
        active,
        pin,
        drains,
        drill: None,
        all_down_alarm: false,
        config: cfg.targets.get_ref().clone(),
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
