//! Decide: the one owner of service state, where the stages meet.
//!
//! Owns: per service, the active target, the operator pin, drains and drills,
//! each target's health ([`crate::monitor::health`]) and last check result.
//! It feeds probe observations into health, asks the [`policy`] what to do,
//! tells the [`crate::publish`] stage to make it so, persists the result
//! ([`state`]) and records every change as an [`Event`] ([`history`], and
//! the [`EventSink`]s for alerts and metrics). Operator [`Command`]s from the
//! control API arrive on the same channel-driven loop, so there is exactly
//! one writer and no lock: exactly one target is active per service because
//! only this task ever changes it.
//!
//! Hands on: service records to the publisher; views ([`views`]) to whoever
//! asks. It must not run checks, parse packets, format wire data or serve
//! HTTP.
//!
//! Beside the loop: [`checklog`], the bounded ring of recent check results
//! and health runs per target that the status page draws (fed through the
//! sink hooks), and [`certs`], which standby targets' TLS certificates
//! would break a failover (from the periodic certificate audit), each
//! reported once.
//!
//! Files: this one holds the loop and the health-driven path (observe →
//! evaluate → switch); [`commands`] the operator commands; [`batch`] the
//! commands queued together (remaps share one state write); [`durable`]
//! the state write, the history fan-out and restoring a saved drill;
//! [`reload`] the
//! configuration reload and restoring saved state; [`views`] what is shown.
//! Time is passed in ([`Now`]), so every path is unit-tested without
//! sleeping (`tests.rs`).

mod batch;
pub mod certs;
pub mod checklog;
mod commands;
mod durable;
pub mod events;
pub mod history;
pub mod policy;
#[cfg(test)]
mod region_tests;
mod regions;
mod reload;
pub mod requests;
mod shared;
pub mod state;
#[cfg(test)]
mod tests;
pub mod views;

use std::collections::{BTreeMap, HashMap};
use std::net::IpAddr;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use hickory_proto::rr::Name;
use tokio::sync::mpsc;
use tracing::{error, info};

use crate::config::{Config, FailbackMode, TargetConfig};
use crate::monitor::health::TargetHealth;
use crate::monitor::{CheckOutcome, Observation};
use crate::publish::rfc2136::SharedStatus;
use crate::publish::{Publisher, ServiceRecords};
use crate::shutdown::Shutdown;
pub use events::{Event, EventCause, EventKind};
use history::History;
use policy::{Cause, ServiceView, TargetView};
pub use requests::{Actor, Command, ControllerHandle, CtlError, Reply};
pub use shared::{PersistError, Role, SharedState, Verdicts};
use state::{Loaded, Override, PersistedState, StateStore};
pub use views::{ChangeView, DrillView, Mode, StatusView};

/// The time, injected: the monotonic clock for health and drills, the wall
/// clock (unix seconds) for operator overrides, which must survive restarts.
#[derive(Debug, Clone, Copy)]
pub struct Now {
    pub at: Instant,
    pub unix: u64,
}

impl Now {
    pub fn system() -> Now {
        Now {
            at: Instant::now(),
            unix: unix_now(),
        }
    }
}

/// Said of a deadline that passed while ggond was not running.
fn late_note(late: bool, deadline: u64) -> String {
    if !late {
        return String::new();
    }
    let at = UNIX_EPOCH + Duration::from_secs(deadline);
    format!(
        " (due at {} while ggond was down; ended at start)",
        humantime::format_rfc3339_seconds(at)
    )
}

pub fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

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
    /// Cluster mode: decide on the agreed verdicts, not this node's own.
    agreed: bool,
    /// The config it was built from (reload keeps state when it is unchanged).
    config: Vec<TargetConfig>,
    /// Per-region services: each region's own answer (empty: single).
    regions: Vec<regions::RegionRt>,
    /// Region slots of the region map, the default's included.
    slots: usize,
}

struct TargetRt {
    name: String,
    addresses: Vec<IpAddr>,
    health: TargetHealth,
    last: Option<CheckOutcome>,
    /// Cluster mode: what a quorum of live nodes sees, and since when.
    agreed: Option<bool>,
    agreed_since: Option<Instant>,
}

/// A running drill: `target` is treated as failed until `until`.
#[derive(Debug, Clone)]
struct Drill {
    target: usize,
    until: Instant,
    /// The same end in unix seconds: what is persisted, and what a restart
    /// compares with.
    until_unix: u64,
    /// The target that was active when the drill began, restored at its end.
    previous: usize,
    who: String,
}

impl Drill {
    /// A drill of `target` for `dur` from `now`, begun while `previous` was
    /// active (service or region alike).
    fn start(target: usize, previous: usize, dur: Duration, actor: &Actor, now: Now) -> Drill {
        Drill {
            target,
            until: now.at + dur,
            until_unix: now.unix + dur.as_secs(),
            previous,
            who: actor.name.clone(),
        }
    }
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
                healthy: if self.agreed {
                    t.agreed
                } else {
                    t.health.healthy()
                },
                since: if self.agreed {
                    t.agreed_since
                } else {
                    t.health.since()
                },
                drained: self.drains.contains_key(&t.name),
                drill_failed: self.drill.as_ref().is_some_and(|d| d.target == i),
            })
            .collect()
    }

    fn pin_index(&self) -> Option<usize> {
        self.pin.as_ref().and_then(|p| self.target(&p.target))
    }

    /// The policy's view of this service, with `views` as its targets.
    fn policy_view<'a>(&self, views: &'a [TargetView], pin: Option<usize>) -> ServiceView<'a> {
        ServiceView {
            failback: self.failback,
            hold_down: self.hold_down,
            active: self.active,
            pin,
            targets: views,
        }
    }

    fn records(&self, idx: usize) -> ServiceRecords {
        ServiceRecords {
            ttl: self.ttl,
            addresses: self.targets[idx].addresses.clone(),
        }
    }

    fn drill_state(&self) -> Option<state::DrillState> {
        self.drill.as_ref().map(|d| state::DrillState {
            target: self.targets[d.target].name.clone(),
            previous: self.targets[d.previous].name.clone(),
            who: d.who.clone(),
            until: d.until_unix,
        })
    }

    fn mode(&self) -> Mode {
        if self.pin.is_some() {
            Mode::Manual
        } else {
            Mode::Auto
        }
    }
}

/// A service's operator overrides: its pin and its drains.
type Overrides = (Option<Override>, BTreeMap<String, Override>);

/// Where the controller reports what it does, besides the log and history
/// (alerts, metrics). Implementations must not block.
pub trait EventSink: Send {
    fn event(&self, _e: &Event) {}
    fn check(&self, _service: &str, _target: &str, _outcome: &CheckOutcome) {}
    /// This node's own verdict on a target changed (what it votes in a cluster).
    fn verdict(&self, _service: &str, _target: &str, _healthy: Option<bool>) {}
}

pub struct Controller {
    services: Vec<ServiceRt>,
    by_name: HashMap<String, usize>,
    publisher: Publisher,
    store: StateStore,
    history: History,
    sinks: Vec<Box<dyn EventSink>>,
    remote_status: Vec<SharedStatus>,
    role: Role,
    /// Cluster mode: the shared store (None: single node).
    shared: Option<Box<dyn SharedState>>,
    cluster_view: Option<std::sync::Arc<std::sync::Mutex<views::ClusterView>>>,
}

impl Controller {
    /// Build from config and the persisted state; publishes the initial zones.
    pub fn new(cfg: &Config, publisher: Publisher, store: StateStore) -> Controller {
        Controller::new_at(cfg, publisher, store, Now::system())
    }

    /// [`Controller::new`] at a given time: overrides and drills whose
    /// deadline passed while ggond was down end now, as they would have on
    /// time, with a history entry saying so.
    pub(super) fn new_at(
        cfg: &Config,
        mut publisher: Publisher,
        store: StateStore,
        now: Now,
    ) -> Controller {
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
            .map(|s| {
                let saved = persisted.services.get(s.name.get_ref());
                let mut rt = reload::restore(s, saved, now);
                regions::restore_regions(cfg, s, &mut rt, saved, now);
                rt
            })
            .collect();
        publisher.set_geo(cfg);
        for s in &services {
            if !s.regions.is_empty() {
                publisher.stage_regional(&s.fqdn, s.ttl, s.regional_records());
            }
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
            role: Role::Single,
            shared: None,
            cluster_view: None,
        };
        c.index();
        for si in 0..c.services.len() {
            c.expire(si, now, true);
        }
        c.persist_or_log();
        c
    }

    fn index(&mut self) {
        let agreed = self.shared.is_some();
        for s in &mut self.services {
            s.agreed = agreed;
        }
        self.by_name = self
            .services
            .iter()
            .enumerate()
            .map(|(i, s)| (s.name.clone(), i))
            .collect();
    }

    /// Status of RFC 2136 publishers, shown by `status`.
    pub fn with_remote_status(mut self, st: Vec<SharedStatus>) -> Self {
        self.remote_status = st;
        self
    }

    pub fn with_sink(mut self, sink: Box<dyn EventSink>) -> Self {
        self.sinks.push(sink);
        self
    }

    /// Cluster mode: this node follows the shared state until it is told it
    /// leads; health decisions use the agreed verdicts.
    pub fn with_shared(
        mut self,
        shared: Box<dyn SharedState>,
        view: std::sync::Arc<std::sync::Mutex<views::ClusterView>>,
    ) -> Self {
        self.shared = Some(shared);
        self.cluster_view = Some(view);
        self.role = Role::Follower;
        self.publisher.set_remotes_active(false);
        self.index();
        self
    }

    /// Run until shutdown; saves state on the way out.
    pub async fn run(
        mut self,
        mut observations: mpsc::Receiver<Observation>,
        mut commands: mpsc::Receiver<Command>,
        mut shutdown: Shutdown,
    ) {
        let mut tick = tokio::time::interval(Duration::from_millis(500));
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                Some(obs) = observations.recv() => self.observe(obs, Now::system()),
                Some(cmd) = commands.recv() => {
                    // Whatever else is queued is taken too: remaps that
                    // arrive together share their writes (batch.rs).
                    let mut batch = vec![cmd];
                    while batch.len() < batch::MAX {
                        match commands.try_recv() {
                            Ok(c) => batch.push(c),
                            Err(_) => break,
                        }
                    }
                    self.commands(batch, Now::system());
                }
                _ = tick.tick() => self.tick(Now::system()),
                _ = shutdown.requested() => break,
            }
        }
        match self.store.save(&self.persisted()) {
            Ok(()) => info!("state saved"),
            Err(e) => error!(error = %e, "cannot save state at shutdown"),
        }
    }

    /// Time-driven work: expiring overrides, ending drills, hold-downs.
    fn tick(&mut self, now: Now) {
        if !self.decides() {
            return;
        }
        // Signatures due for refresh are made again with a new serial (in
        // a cluster by the leader; followers re-sign when they publish it).
        for zone in self.publisher.refresh_signatures(now.unix) {
            info!(%zone, "signatures refreshed");
        }
        for step in self.publisher.roll_tick(now.unix) {
            let event = Event::new(now.unix, EventKind::KeyRoll, EventCause::Publisher);
            match step {
                Ok(what) => {
                    info!("{what}");
                    self.record(event.reason(&what).who("ggond"));
                }
                Err(e) => {
                    tracing::warn!("key roll: {e}");
                    self.record(
                        event
                            .reason(format!("key roll step failed: {e}"))
                            .who("ggond"),
                    );
                }
            }
        }
        for si in 0..self.services.len() {
            self.expire(si, now, false);
            self.evaluate(si, now);
        }
    }

    /// End what is due: timed pins and drains (wall clock) and a drill
    /// (monotonic clock; at start, `late`, the wall clock, since the
    /// deadline may have passed while ggond was down).
    fn expire(&mut self, si: usize, now: Now, late: bool) {
        // Drains first: a pin that ends at the same time then chooses
        // among targets no longer drained.
        let expired: Vec<String> = self.services[si]
            .drains
            .iter()
            .filter(|(_, d)| d.expires.is_some_and(|t| t <= now.unix))
            .map(|(n, _)| n.clone())
            .collect();
        for t in expired {
            let d = self.services[si].drains.remove(&t).expect("listed");
            let name = self.services[si].name.clone();
            let late = late_note(late, d.expires.unwrap_or(now.unix));
            info!(service = %name, target = %t, "drain expired{late}");
            self.record(
                Event::new(now.unix, EventKind::Undrain, EventCause::Expired)
                    .service(&name)
                    .to_target(&t)
                    .reason(format!("{}{late}", d.reason))
                    .who(&d.author),
            );
            self.persist_or_log();
        }
        let expired_pin = self.services[si]
            .pin
            .as_ref()
            .is_some_and(|p| p.expires.is_some_and(|t| t <= now.unix));
        if expired_pin {
            let pin = self.services[si].pin.take().expect("checked");
            let name = self.services[si].name.clone();
            let late = late_note(late, pin.expires.unwrap_or(now.unix));
            info!(service = %name, target = %pin.target, "pin expired{late}; automatic policy resumes");
            self.record(
                Event::new(now.unix, EventKind::Expire, EventCause::Expired)
                    .service(&name)
                    .from_target(&pin.target)
                    .reason(format!("{}{late}", pin.reason))
                    .who(&pin.author),
            );
            self.choose_afresh(si, &format!("pin expired{late}"), "ggond", now);
        }
        let drill_over = self.services[si].drill.as_ref().map(|d| {
            let due = if late {
                d.until_unix <= now.unix
            } else {
                d.until <= now.at
            };
            (due, d.until_unix)
        });
        if let Some((true, until)) = drill_over {
            self.end_drill(si, now, &late_note(late, until));
        }
        self.expire_regions(si, now, late);
    }

    fn observe(&mut self, obs: Observation, now: Now) {
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
        if let Some(healthy) = t.health.observe(obs.outcome.ok, now.at) {
            info!(service = %svc.name, target = %t.name, healthy, detail = %obs.outcome.detail,
                "target health changed");
            for s in &self.sinks {
                s.verdict(&obs.key.service, &obs.key.target, Some(healthy));
            }
        }
        t.last = Some(obs.outcome);
        self.evaluate(si, now);
    }

    /// Ask the policy and act on its answer; raise or clear the all-down alarm.
    fn evaluate(&mut self, si: usize, now: Now) {
        if !self.decides() {
            return;
        }
        let svc = &self.services[si];
        let views = svc.views();
        let view = svc.policy_view(&views, svc.pin_index());
        let decision = policy::decide(&view, now.at);
        let all_down = policy::all_down(&view);
        if all_down != svc.all_down_alarm {
            let name = svc.name.clone();
            let answering = svc.targets[svc.active].name.clone();
            self.services[si].all_down_alarm = all_down;
            let event = if all_down {
                error!(service = %name, %answering,
                    "ALARM: every target is down; still answering the current one (fail-open)");
                Event::new(now.unix, EventKind::AllDown, EventCause::Health)
                    .to_target(&answering)
                    .reason("every target is down")
            } else {
                info!(service = %name, "alarm cleared: a target is healthy again");
                Event::new(now.unix, EventKind::Recovered, EventCause::Health)
                    .reason("a target is healthy again")
            };
            self.record(event.service(&name).who("ggond"));
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
            self.switch(si, d.to, d.cause, &reason, "ggond", now);
        }
        self.evaluate_regions(si, now);
    }

    /// Make `to` the active target: publish, log, persist, record.
    fn switch(&mut self, si: usize, to: usize, cause: Cause, reason: &str, who: &str, now: Now) {
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
        self.record(
            Event::new(now.unix, cause.into(), cause.into())
                .service(&name)
                .from_target(&from_n)
                .to_target(&to_n)
                .reason(reason)
                .who(who),
        );
    }

    /// After a pin is released or expires: the most preferred available target.
    fn choose_afresh(&mut self, si: usize, reason: &str, who: &str, now: Now) {
        let svc = &self.services[si];
        let views = svc.views();
        let to = policy::fresh_choice(&svc.policy_view(&views, None));
        self.switch(si, to, Cause::Operator, reason, who, now);
        self.persist_or_log();
    }
}
