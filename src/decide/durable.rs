//! Making the controller's state durable and recorded.
//!
//! Owns: the persisted form of the current state ([`Controller::persisted`]),
//! the write that makes it durable (shared store first in a cluster, then
//! the local file), the refusal an operator gets when it fails, the
//! history/sink fan-out of events. It must not decide
//! anything: callers change the state, then call these.

use std::collections::BTreeMap;

use tracing::error;

use super::state::{Override, PersistedState};
use super::{Controller, CtlError, Event, PersistError, Role};

/// A service's pins (one per region) and drains, as they were before a
/// command changed them.
pub(super) type Overrides = (Vec<Option<Override>>, BTreeMap<String, Override>);

/// A refused command's error when its change could not be made durable.
pub(super) fn persist_refusal(e: PersistError) -> CtlError {
    match e {
        PersistError::Local(e) => CtlError::Internal(format!("cannot persist state: {e}")),
        other => CtlError::Unavailable(other.to_string()),
    }
}

/// How often a write the shared store keeps refusing is logged as an error.
const RETRY_LOG_EVERY: std::time::Duration = std::time::Duration::from_secs(60);

/// The log line of each switch a batch made, once it is answered.
fn log_remaps(events: &[Event]) {
    for e in events.iter().filter(|e| e.to.is_some()) {
        tracing::info!(service = e.service.as_deref(), region = e.region.as_deref(),
            from = e.from.as_deref(), to = e.to.as_deref(), cause = e.cause.as_str(),
            reason = %e.reason, who = %e.who, "remap");
    }
}

impl Controller {
    pub(super) fn persisted(&self) -> PersistedState {
        PersistedState {
            services: self
                .services
                .iter()
                .map(|s| (s.name.clone(), s.state()))
                .collect(),
            serials: self.publisher.serials(),
            generation: 0,
        }
    }

    /// Make the current state durable: in a cluster, the leader's fenced
    /// write to the shared store first (a follower may not write), then
    /// the local file (what a restart starts from if the cluster is away).
    pub(super) fn persist(&self) -> Result<(), PersistError> {
        self.persist_state(self.persisted())
    }

    /// [`Self::persist`] after a change to the services `changed` only
    /// (an operator's command), with the zones' `serials` as they will be
    /// served. On a single node the cost follows the change, not the
    /// number of services (the state journal's line holds those services;
    /// the whole state is made only when the file is written again). In a
    /// cluster the shared store's write works out what changed itself.
    pub(super) fn persist_changed(
        &self,
        changed: impl IntoIterator<Item = usize>,
        serials: BTreeMap<String, u32>,
    ) -> Result<(), PersistError> {
        if self.shared.is_some() {
            let mut state = self.persisted();
            state.serials = serials;
            return self.persist_state(state);
        }
        let services = changed
            .into_iter()
            .map(|si| (self.services[si].name.clone(), self.services[si].state()))
            .collect();
        let whole = || {
            let mut state = self.persisted();
            state.serials = serials.clone();
            state
        };
        self.store.save_changed(services, &serials, whole)?;
        Ok(())
    }

    pub(super) fn persist_state(&self, state: PersistedState) -> Result<(), PersistError> {
        if let Some(shared) = &self.shared {
            if self.role != Role::Leader {
                return Err(PersistError::NotLeader);
            }
            shared.save(&state)?;
            // Durable in etcd: the local copy (what a restart answers if etcd
            // is away) follows at the next tick, off the change's path (at
            // 10,000 services it is a file of megabytes).
            self.local_copy_due.set(true);
            return Ok(());
        }
        self.store.save(&state)?;
        Ok(())
    }

    /// Run `f` with the state writes and history events of the
    /// health- and time-driven changes it makes folded into one write of
    /// each at the end: a site failure that moves a thousand services costs
    /// one state write and one history write, not a thousand of each.
    /// Operator commands are not deferred: each is durable before it is
    /// acknowledged.
    pub(super) fn in_one_write<R>(&mut self, f: impl FnOnce(&mut Self) -> R) -> R {
        let outer = self.deferred.replace(Some(super::Deferred::default()));
        let r = f(self);
        let done = self.deferred.replace(outer).unwrap_or_default();
        let leads = self.cluster_mode() && self.role == Role::Leader;
        if leads && !done.moved.is_empty() && self.deferred.borrow().is_none() {
            self.written_then_published(done);
            return r;
        }
        self.publish_together(done.publish);
        if done.persist {
            self.persist_or_log();
        }
        log_remaps(&done.events);
        self.record_all(done.events);
        r
    }

    /// A cluster leader's batch of health- and time-driven changes: written
    /// to the shared store first, answered after. Why this order: answered
    /// first, a decision whose write then failed was served under a serial
    /// that etcd (and so the next leader) may give to other contents, and
    /// a node that kept it (its state in memory) went on answering it as a
    /// follower, beside nodes answering etcd's. If the write fails (etcd
    /// unreachable, out of space, the fence gone) the switches are undone
    /// and nothing is answered; the services are evaluated again at the
    /// next tick, so the failover happens once etcd takes it. When the
    /// outcome is unknown the store has also given up the leadership, and
    /// the node reads etcd's state afresh before it decides again.
    fn written_then_published(&mut self, done: super::Deferred) {
        let serials = self.serials_for(&done.publish);
        let mut state = self.persisted();
        state.serials = serials.clone();
        if let Err(e) = self.persist_state(state) {
            self.hold_back(done, e);
            return;
        }
        if self.retry_error.take().is_some() {
            tracing::info!(
                "the shared store took the state again: decisions held back are answered"
            );
        }
        self.publish_batch(done.publish, &serials);
        log_remaps(&done.events);
        self.record_all(done.events);
    }

    /// A batch the shared store did not take: its switches undone (a
    /// listed region's answer, handed on at the switch, too), its services
    /// evaluated again at the next tick, its switches' events dropped (the
    /// retry records its own), and the error logged once a minute while it
    /// stays the same.
    fn hold_back(&mut self, done: super::Deferred, e: PersistError) {
        let again: std::collections::BTreeSet<usize> = done.moved.iter().map(|m| m.0).collect();
        let text = e.to_string();
        let repeat = self
            .retry_error
            .as_ref()
            .is_some_and(|(t, at)| *t == text && at.elapsed() < RETRY_LOG_EVERY);
        if repeat {
            tracing::debug!(error = %e, services = again.len(), "cannot persist state (again)");
        } else {
            error!(error = %e, services = again.len(),
                "cannot persist state: the decision is undone and not answered; tried again at every tick until etcd takes it");
            self.retry_error = Some((text, std::time::Instant::now()));
        }
        for &(si, ri, from) in done.moved.iter().rev() {
            self.services[si].regions[ri].active = from;
        }
        for &si in &again {
            self.publish_regions(si);
        }
        self.retry.extend(again);
        let kept = done.events.into_iter().filter(|e| e.to.is_none()).collect();
        self.record_all(kept);
    }

    /// The serials the zones of `changes` get when they are published.
    fn serials_for(
        &self,
        changes: &[(hickory_proto::rr::Name, crate::publish::ServiceRecords)],
    ) -> BTreeMap<String, u32> {
        let fqdns: Vec<&hickory_proto::rr::Name> = changes.iter().map(|c| &c.0).collect();
        self.publisher.serials_after(&fqdns)
    }

    /// Publish a batch's answers at `serials` (one compile per zone).
    fn publish_batch(
        &mut self,
        changes: Vec<(hickory_proto::rr::Name, crate::publish::ServiceRecords)>,
        serials: &BTreeMap<String, u32>,
    ) {
        let n = changes.len();
        self.publisher.publish_at(changes, serials);
        if n > 1 {
            tracing::info!(answers = n, ?serials, "changes published together");
        }
    }

    /// Publish the zone answers a batch changed: one compile and one new
    /// serial per zone (inside an outer batch: left to it).
    fn publish_together(
        &mut self,
        changes: Vec<(hickory_proto::rr::Name, crate::publish::ServiceRecords)>,
    ) {
        if changes.is_empty() {
            return;
        }
        if let Some(d) = self.deferred.borrow_mut().as_mut() {
            d.publish.extend(changes);
            return;
        }
        let serials = self.serials_for(&changes);
        self.publish_batch(changes, &serials);
    }

    pub(super) fn persist_or_log(&self) {
        if let Some(d) = self.deferred.borrow_mut().as_mut() {
            d.persist = true;
            return;
        }
        let result = if self.role == Role::Follower {
            self.local_copy_due.set(true);
            Ok(())
        } else {
            self.persist()
        };
        if let Err(e) = result {
            error!(error = %e, "cannot persist state");
        }
    }

    /// Persist after an operator changed a service's overrides (pin,
    /// drains); if that fails, put them back as they were and refuse: an
    /// acknowledged command must survive a crash.
    pub(super) fn persist_overrides(
        &mut self,
        si: usize,
        before: Overrides,
    ) -> Result<(), CtlError> {
        let serials = self.publisher.serials();
        self.persist_changed([si], serials).map_err(|e| {
            let svc = &mut self.services[si];
            let (pins, drains) = before;
            for (r, pin) in svc.regions.iter_mut().zip(pins) {
                r.pin = pin;
            }
            svc.drains = drains;
            persist_refusal(e)
        })
    }

    pub(super) fn overrides(&self, si: usize) -> Overrides {
        let svc = &self.services[si];
        let pins = svc.regions.iter().map(|r| r.pin.clone()).collect();
        (pins, svc.drains.clone())
    }

    /// Append to history and tell the sinks (the caller has logged it).
    pub(super) fn record(&self, e: Event) {
        self.record_all(vec![e]);
    }

    /// [`Self::record`] for several events, with one history write.
    pub(super) fn record_all(&self, mut events: Vec<Event>) {
        if events.is_empty() {
            return;
        }
        if let Some(d) = self.deferred.borrow_mut().as_mut() {
            d.events.append(&mut events);
            return;
        }
        if let (Some(shared), Role::Leader) = (&self.shared, self.role) {
            for e in &events {
                shared.record(e);
            }
        }
        if let Err(err) = self.history.append_all(&events) {
            error!(error = %err, path = %self.history.path().display(), "cannot append to history");
        }
        for e in &events {
            for s in &self.sinks {
                s.event(e);
            }
        }
    }
}
