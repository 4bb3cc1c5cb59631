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
//! One decision model ([`service`]): every service has a default region,
//! and a per-region service one more per listed region; every rule is
//! written once, for a region.
//!
//! Files: this one holds the loop and the health-driven path (observe →
//! evaluate → switch), for every region alike; [`service`] a service's
//! run-time state and its regions; [`commands`] the operator commands; [`batch`] the
//! commands queued together (remaps share one state write); [`durable`]
//! the state write, the history fan-out and restoring a saved drill;
//! [`reload`] the
//! configuration reload and restoring saved state; [`views`] what is shown;
//! `keypolicy` the DNSSEC key policy's turn on each tick (single node).
//! Time is passed in ([`Now`]), so every path is unit-tested without
//! sleeping (`tests.rs`).

mod batch;
pub mod certs;
pub mod checklog;
#[cfg(test)]
mod cluster_tests;
mod commands;
mod durable;
pub mod events;
pub mod history;
mod keypolicy;
mod keyshare;
pub mod policy;
#[cfg(test)]
mod region_tests;
mod reload;
pub mod requests;
mod service;
mod shared;
pub mod state;
mod state_journal;
#[cfg(test)]
mod tests;
pub mod views;

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use tokio::sync::mpsc;
use tracing::{error, info};

use crate::config::Config;
use crate::geo::RegionMap;
use crate::monitor::{CheckOutcome, Observation};
use crate::publish::rfc2136::SharedStatus;
use crate::publish::Publisher;
use crate::shutdown::Shutdown;
pub use events::{Event, EventCause, EventKind};
use history::History;
use policy::Cause;
pub use requests::{Actor, Command, ControllerHandle, CtlError, Reply};
use service::{Drill, ServiceRt, DEFAULT};
pub use shared::{PersistError, Role, SharedError, SharedState, Verdicts};
use state::{Loaded, PersistedState, StateStore};
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

/// `first` and whatever else is queued behind it, up to [`batch::MAX`]:
/// taken without waiting to fill a batch, so a lone message is not delayed.
fn with_queued<T>(first: T, rx: &mut mpsc::Receiver<T>) -> Vec<T> {
    let mut batch = vec![first];
    while batch.len() < batch::MAX {
        match rx.try_recv() {
            Ok(m) => batch.push(m),
            Err(_) => break,
        }
    }
    batch
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
    /// Inside [`Controller::in_one_write`]: the state writes and history
    /// events waiting for the end of the batch.
    deferred: std::cell::RefCell<Option<Deferred>>,
    /// Cluster mode: the local copy of the agreed state is behind (written
    /// at the next tick).
    local_copy_due: std::cell::Cell<bool>,
    /// Cluster mode: services some live node defines differently than the
    /// leader (service → that node); see [`Command::ClusterDisagree`].
    disagree: std::collections::BTreeMap<String, String>,
    /// The DNSSEC key policy's parent checks (single node).
    parent_checks: keypolicy::ParentChecks,
    /// Cluster leader: services whose decision the shared store did not
    /// take (undone, not answered); evaluated again at the next tick.
    retry: std::collections::BTreeSet<usize>,
    /// The last error of such a write and when it was logged: while etcd
    /// keeps refusing, the retry at every tick logs it once a minute.
    retry_error: Option<(String, std::time::Instant)>,
}

/// What a batch of health-driven changes has left to publish and write.
#[derive(Default)]
struct Deferred {
    persist: bool,
    events: Vec<Event>,
    /// Zone answers changed by the batch, published together at its end
    /// (one compile and one serial per zone, not one per service).
    publish: Vec<(hickory_proto::rr::Name, crate::publish::ServiceRecords)>,
    /// The switches the batch made, (service, region, from), so that a
    /// cluster leader can undo them when the shared store does not take
    /// them.
    moved: Vec<(usize, usize, usize)>,
}

impl Controller {
    /// Build from config (with its `regions` map) and the persisted state;
    /// publishes the initial zones.
    pub fn new(
        cfg: &Config,
        regions: Arc<RegionMap>,
        publisher: Publisher,
        store: StateStore,
    ) -> Controller {
        Controller::new_at(cfg, regions, publisher, store, Now::system())
    }

    /// [`Controller::new`] at a given time: overrides and drills whose
    /// deadline passed while ggond was down end now, as they would have on
    /// time, with a history entry saying so.
    pub(super) fn new_at(
        cfg: &Config,
        regions: Arc<RegionMap>,
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
            .map(|s| service::restore(cfg, s, persisted.services.get(s.name.get_ref()), now))
            .collect();
        publisher.set_geo(cfg, regions);
        for s in &services {
            if s.is_regional() {
                publisher.stage_regional(&s.fqdn, s.ttl, s.regional_records());
            }
            publisher.stage(&s.fqdn, s.records(s.active()));
            info!(service = %s.name, active = %s.targets[s.active()].name,
                pinned = s.regions[DEFAULT].pin.is_some(), "service starts");
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
            deferred: Default::default(),
            local_copy_due: Default::default(),
            disagree: Default::default(),
            parent_checks: Default::default(),
            retry: Default::default(),
            retry_error: None,
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
        self.publisher.share_keys_first(true);
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
                Some(obs) = observations.recv() => {
                    // Whatever else is queued is taken too: a site failure
                    // moves its services with one state write.
                    let batch = with_queued(obs, &mut observations);
                    let now = Now::system();
                    self.in_one_write(|c| batch.into_iter().for_each(|o| c.observe(o, now)));
                }
                Some(cmd) = commands.recv() => {
                    // Whatever else is queued is taken too: remaps that
                    // arrive together share their writes (batch.rs).
                    let batch = with_queued(cmd, &mut commands);
                    // Agreed verdicts in it are each one batch of writes
                    // (shared.rs); operator commands are each durable and
                    // published before they are answered.
                    self.commands(batch, Now::system());
                }
                _ = tick.tick() => self.in_one_write(|c| c.tick(Now::system())),
                _ = shutdown.requested() => break,
            }
        }
        match self.store.save_whole(&self.persisted()) {
            Ok(()) => info!("state saved"),
            Err(e) => error!(error = %e, "cannot save state at shutdown"),
        }
    }

    /// Time-driven work: expiring overrides, ending drills, hold-downs.
    fn tick(&mut self, now: Now) {
        self.save_local_copy();
        if !self.decides() {
            self.retry.clear();
            return;
        }
        // Decisions the shared store did not take, made afresh.
        for si in std::mem::take(&mut self.retry) {
            self.evaluate(si, now);
        }
        // Key steps (a cluster's leader shares each before serving it).
        let _ = self.share_keys();
        self.key_policy(now);
        if !self.suspended() {
            for step in self.publisher.roll_tick(now.unix) {
                self.record_roll(now, step);
            }
        }
        let _ = self.share_keys();
        // Signatures due for refresh are made again with a new serial (in
        // a cluster by the leader; followers re-sign when they publish it).
        for zone in self.publisher.refresh_signatures(now.unix) {
            info!(%zone, "signatures refreshed");
        }
        for si in 0..self.services.len() {
            self.expire(si, now, false);
            self.evaluate(si, now);
        }
    }

    /// End what is due: timed drains and pins (wall clock) and drills
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
        for ri in 0..self.services[si].regions.len() {
            let r = &self.services[si].regions[ri];
            if r.pin
                .as_ref()
                .is_some_and(|p| p.expires.is_some_and(|t| t <= now.unix))
            {
                let pin = self.services[si].regions[ri].pin.take().expect("checked");
                let late = late_note(late, pin.expires.unwrap_or(now.unix));
                let r = &self.services[si].regions[ri];
                info!(service = %self.services[si].name, region = r.listed(), target = %pin.target,
                    "pin expired{late}; automatic policy resumes");
                let event = self
                    .event((si, ri), now, EventKind::Expire, EventCause::Expired)
                    .from_target(&pin.target)
                    .reason(format!("{}{late}", pin.reason))
                    .who(&pin.author);
                self.record(event);
                self.choose_afresh(si, ri, &format!("pin expired{late}"), "ggond", now);
            }
            let due = self.services[si].regions[ri]
                .drill
                .as_ref()
                .filter(|d| d.due(now, late));
            if let Some(until) = due.map(|d| d.until_unix) {
                self.end_drill(si, ri, now, &late_note(late, until));
            }
        }
    }

    /// An event about region `ri` of service `si` (the default region's
    /// are the service's and name no region).
    fn event(
        &self,
        (si, ri): (usize, usize),
        now: Now,
        kind: EventKind,
        cause: EventCause,
    ) -> Event {
        let svc = &self.services[si];
        Event::new(now.unix, kind, cause)
            .service(&svc.name)
            .region(svc.regions[ri].listed())
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

    /// Ask the policy about every region and act on its answers; raise or
    /// clear the all-down alarm.
    fn evaluate(&mut self, si: usize, now: Now) {
        self.evaluate_by(si, now, None);
    }

    /// [`Controller::evaluate`] right after an operator's command (`by`:
    /// its cause and author): a move it causes (a drain or a drill taking
    /// the answered target out) is recorded as theirs, not as a health
    /// failover by ggond.
    fn evaluate_by(&mut self, si: usize, now: Now, by: Option<(EventCause, &str)>) {
        if !self.decides() || self.disagree.contains_key(&self.services[si].name) {
            return;
        }
        self.alarm(si, now);
        for ri in 0..self.services[si].regions.len() {
            let svc = &self.services[si];
            let views = svc.views(ri);
            if let Some(d) = policy::decide(&svc.policy_view(ri, &views), now.at) {
                let reason = svc.reason(ri, d.cause);
                let (cause, who) = match by {
                    Some(by) if d.cause == Cause::Health => by,
                    _ => (d.cause.into(), "ggond"),
                };
                self.switch_by(si, ri, d.to, (d.cause.into(), cause), &reason, who, now);
            }
        }
    }

    /// Raise or clear the all-down alarm (every target of the service is
    /// unusable: it answers a dead target, fail-open).
    fn alarm(&mut self, si: usize, now: Now) {
        let svc = &self.services[si];
        let views = svc.views(DEFAULT);
        let all_down = policy::all_down(&svc.policy_view(DEFAULT, &views));
        if all_down == svc.all_down_alarm {
            return;
        }
        let name = svc.name.clone();
        let answering = svc.targets[svc.active()].name.clone();
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

    /// Make `to` region `ri`'s answer: publish, log, persist, record.
    #[allow(clippy::too_many_arguments)]
    fn switch(
        &mut self,
        si: usize,
        ri: usize,
        to: usize,
        cause: Cause,
        reason: &str,
        who: &str,
        now: Now,
    ) {
        self.switch_by(si, ri, to, (cause.into(), cause.into()), reason, who, now);
    }

    /// [`Controller::switch`] recorded as `kind` with `cause`.
    #[allow(clippy::too_many_arguments)]
    fn switch_by(
        &mut self,
        si: usize,
        ri: usize,
        to: usize,
        (kind, cause): (EventKind, EventCause),
        reason: &str,
        who: &str,
        now: Now,
    ) {
        let from = self.services[si].regions[ri].active;
        if from == to {
            return;
        }
        self.services[si].regions[ri].active = to;
        if let Some(d) = self.deferred.borrow_mut().as_mut() {
            d.moved.push((si, ri, from));
        }
        let serial = self.publish(si, ri);
        let svc = &self.services[si];
        let (from_n, to_n) = (&svc.targets[from].name, &svc.targets[to].name);
        if self.deferred.borrow().is_none() {
            // In a batch it is logged once the batch is answered
            // (`Controller::in_one_write`): a cluster leader's may be undone.
            info!(service = %svc.name, region = svc.regions[ri].listed(), from = %from_n, to = %to_n,
                cause = cause.as_str(), reason, who, serial, "remap");
        }
        let event = self
            .event((si, ri), now, kind, cause)
            .from_target(from_n)
            .to_target(to_n)
            .reason(reason)
            .who(who);
        self.persist_or_log();
        self.record(event);
    }

    /// Publish region `ri`'s answer: the default region's is the zone's
    /// record (a new serial, returned), a listed region's the regional
    /// answer table.
    fn publish(&mut self, si: usize, ri: usize) -> Option<u32> {
        let svc = &self.services[si];
        if ri == DEFAULT {
            let (fqdn, records) = (svc.fqdn.clone(), svc.records(svc.active()));
            if let Some(d) = self.deferred.borrow_mut().as_mut() {
                d.publish.push((fqdn, records));
                return None;
            }
            return self.publisher.publish(&fqdn, records).and_then(|p| p.1);
        }
        self.publish_regions(si);
        None
    }

    /// Hand the publisher what every listed region of service `si` answers now.
    pub(super) fn publish_regions(&mut self, si: usize) {
        let s = &self.services[si];
        if !s.is_regional() {
            return;
        }
        let (fqdn, ttl, records) = (s.fqdn.clone(), s.ttl, s.regional_records());
        self.publisher.publish_regional(&fqdn, ttl, records);
    }

    /// After a pin is released or expires: the most preferred available target.
    fn choose_afresh(&mut self, si: usize, ri: usize, reason: &str, who: &str, now: Now) {
        let svc = &self.services[si];
        let views = svc.views(ri);
        let mut view = svc.policy_view(ri, &views);
        view.pin = None;
        let to = policy::fresh_choice(&view);
        self.switch(si, ri, to, Cause::Operator, reason, who, now);
        self.persist_or_log();
    }
}
