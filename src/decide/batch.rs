//! Group commit: remaps that reach the controller together share one state
//! write, one publish per zone and one history write.
//!
//! Why: once the compile is incremental, a remap's cost is its fsyncs (the
//! state file, its directory, the history line: about 0.2 ms each on the
//! bench VM, ten times that on a busy disk). A thousand remaps a second
//! (what a site failover driven by operators, or a cluster's fan-out,
//! needs) only fit if they share them.
//! The run loop takes whatever is queued when it wakes, without waiting to
//! fill a batch, so a lone remap is not delayed; under load the queue fills
//! while one batch is written and the next batch takes all of it.
//!
//! Owns: splitting a batch into runs of remaps (not dry runs) and
//! everything else, which runs one command at a time, in order. A remap
//! pins the region it names, or every region of the service (the default
//! one and, for a per-region service, each listed one). A run of remaps means what
//! running them one after the other would: each is checked against the
//! state the previous ones left, and each is acknowledged only after the
//! one state write that holds all of them. If that write fails, every
//! remap of the run is refused and the state is put back. [`Controller::remaps`]
//! is the one way a remap is made: a lone remap (commands.rs) is a run of
//! one.

use std::collections::BTreeSet;

use hickory_proto::rr::Name;
use tracing::info;

use super::commands::new_override;
use super::durable::persist_refusal;
use super::requests::{Remap, Reply};
use super::state::Override;
use super::views::ChangeView;
use super::{Actor, Cause, Command, Controller, CtlError, EventCause, EventKind};
use super::{Event, Now, DEFAULT};

/// The most commands taken from the queue at once.
pub(super) const MAX: usize = 256;

/// A remap taken from the queue: service, request, who, where to answer.
type Queued = (String, Remap, Actor, Reply<ChangeView>);

/// One region's remap of a run, applied in memory, not yet durable.
struct Applied<'r> {
    /// Its place in the run (for its result).
    at: usize,
    si: usize,
    ri: usize,
    from: usize,
    to: usize,
    /// The region's pin before.
    before: Option<Override>,
    /// What the operator is answered (the first region a remap names).
    view: Option<ChangeView>,
    request: &'r Remap,
    who: &'r str,
}

impl Controller {
    /// Run commands taken from the queue together, in order.
    pub(super) fn commands(&mut self, batch: Vec<Command>, now: Now) {
        let mut run: Vec<Queued> = Vec::new();
        // Agreed verdicts queued one after the other (a site failure seen
        // by the other nodes) are acted on together: one batch of writes.
        let mut verdicts: crate::decide::Verdicts = Vec::new();
        for cmd in batch {
            match cmd {
                Command::Remap {
                    service,
                    request,
                    actor,
                    reply,
                } if !request.dry_run => {
                    self.verdict_run(std::mem::take(&mut verdicts), now);
                    run.push((service, request, actor, reply));
                }
                Command::ClusterVerdicts { verdicts: more } => {
                    self.remap_run(std::mem::take(&mut run), now);
                    verdicts.extend(more);
                }
                other => {
                    self.remap_run(std::mem::take(&mut run), now);
                    self.verdict_run(std::mem::take(&mut verdicts), now);
                    self.command(other, now);
                }
            }
        }
        self.remap_run(run, now);
        self.verdict_run(verdicts, now);
    }

    fn verdict_run(&mut self, verdicts: crate::decide::Verdicts, now: Now) {
        if !verdicts.is_empty() {
            self.set_verdicts(verdicts, now);
        }
    }

    /// A run of queued remaps: made together, answered each.
    fn remap_run(&mut self, run: Vec<Queued>, now: Now) {
        if run.is_empty() {
            return;
        }
        let asked: Vec<(&str, &Remap, &Actor)> =
            run.iter().map(|(s, r, a, _)| (s.as_str(), r, a)).collect();
        let results = self.remaps(&asked, now);
        for ((_, _, _, reply), result) in run.into_iter().zip(results) {
            let _ = reply.send(result);
        }
    }

    /// Remaps (not dry runs), in order: each checked against the state
    /// the earlier ones left and applied, then all made durable in one
    /// state write (with the serials their publish will serve), published
    /// together and recorded with one history write. If the write fails,
    /// every applied one is put back and refused.
    pub(super) fn remaps(
        &mut self,
        asked: &[(&str, &Remap, &Actor)],
        now: Now,
    ) -> Vec<Result<ChangeView, CtlError>> {
        let mut results: Vec<Option<Result<ChangeView, CtlError>>> = vec![None; asked.len()];
        let mut applied = Vec::with_capacity(asked.len());
        for (at, &(service, request, actor)) in asked.iter().enumerate() {
            match self.pin_regions(at, service, request, actor, now) {
                Ok(a) => applied.extend(a),
                Err(e) => results[at] = Some(Err(e)),
            }
        }
        if !applied.is_empty() {
            self.make_durable(applied, &mut results, now);
        }
        results
            .into_iter()
            .map(|r| r.expect("every remap answered"))
            .collect()
    }

    /// Check a remap against every region it names, then pin them all (in
    /// memory): a remap refused for one region changes none.
    fn pin_regions<'r>(
        &mut self,
        at: usize,
        service: &str,
        request: &'r Remap,
        actor: &'r Actor,
        now: Now,
    ) -> Result<Vec<Applied<'r>>, CtlError> {
        let si = self.service_to_change(service)?;
        let which = self.services[si].regions_named(request.region.as_deref())?;
        let mut to = Vec::with_capacity(which.len());
        for &ri in &which {
            to.push(self.remap_target(si, ri, request)?);
        }
        let mut applied = Vec::with_capacity(which.len());
        for (ri, (ti, duration)) in which.into_iter().zip(to) {
            let pin = new_override(&request.to, &request.reason, actor, duration, now);
            let r = &mut self.services[si].regions[ri];
            let from = r.active;
            let before = r.pin.replace(pin);
            r.active = ti;
            let first = applied.is_empty();
            applied.push(Applied {
                at,
                si,
                ri,
                from,
                to: ti,
                before,
                view: first.then(|| self.change_view((si, ri), from, ti, false)),
                request,
                who: &actor.name,
            });
        }
        Ok(applied)
    }

    fn make_durable(
        &mut self,
        applied: Vec<Applied<'_>>,
        results: &mut [Option<Result<ChangeView, CtlError>>],
        now: Now,
    ) {
        // The answers that change: the zone's (with the serials their
        // publish will serve) and the listed regions'.
        let moved = |default: bool| -> BTreeSet<usize> {
            applied
                .iter()
                .filter(|a| a.from != a.to && (a.ri == DEFAULT) == default)
                .map(|a| a.si)
                .collect()
        };
        let (zone, regional) = (moved(true), moved(false));
        let fqdns: Vec<&Name> = zone.iter().map(|&si| &self.services[si].fqdn).collect();
        let serials = self.publisher.serials_after(&fqdns);
        let touched: BTreeSet<usize> = applied.iter().map(|a| a.si).collect();
        if let Err(e) = self.persist_changed(touched, serials.clone()) {
            let refusal = persist_refusal(e);
            // Undone last first, so each region ends as it was.
            for a in applied.into_iter().rev() {
                let r = &mut self.services[a.si].regions[a.ri];
                r.active = a.from;
                r.pin = a.before;
                results[a.at] = Some(Err(refusal.clone()));
            }
            return;
        }
        let changes = zone
            .iter()
            .map(|&si| {
                let svc = &self.services[si];
                (svc.fqdn.clone(), svc.records(svc.active()))
            })
            .collect();
        self.publisher.publish_at(changes, &serials);
        for &si in &regional {
            self.publish_regions(si);
        }
        let events = applied.iter().map(|a| self.remap_event(a, now)).collect();
        self.record_all(events);
        if applied.len() > 1 {
            info!(
                remaps = applied.len(),
                services = zone.len() + regional.len(),
                "remaps written together"
            );
        }
        for a in applied {
            if let Some(view) = a.view {
                results[a.at] = Some(Ok(view));
            }
        }
    }

    /// Log one remap of a run and the history event it leaves.
    fn remap_event(&self, a: &Applied<'_>, now: Now) -> Event {
        let svc = &self.services[a.si];
        let (from, to) = (&svc.targets[a.from].name, &svc.targets[a.to].name);
        let (service, reason, who) = (&svc.name, &a.request.reason, a.who);
        let region = svc.regions[a.ri].listed();
        info!(%service, region, target = %to, %reason, %who, force = a.request.force,
            "operator pinned target");
        let kind = if a.from == a.to {
            EventKind::Pin
        } else {
            info!(%service, region, %from, %to, cause = %Cause::Operator, %reason, %who, "remap");
            Cause::Operator.into()
        };
        Event::new(now.unix, kind, EventCause::Operator)
            .service(service)
            .region(region)
            .from_target(from)
            .to_target(to)
            .reason(reason)
            .who(who)
    }
}
