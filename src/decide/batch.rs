//! Group commit: remaps that reach the controller together share one state
//! write, one publish per zone and one history write.
//!
//! Why: once the compile is incremental, a remap's cost is its fsyncs (the
//! state file, its directory, the history line: about 0.2 ms each on the
//! bench VM, ten times that on a busy disk). A thousand remaps a second
//! (the remap benchmark's rate, and what cluster fan-out needs) only fit if
//! they share them.
//! The run loop takes whatever is queued when it wakes, without waiting to
//! fill a batch, so a lone remap is not delayed; under load the queue fills
//! while one batch is written and the next batch takes all of it.
//!
//! Owns: splitting a batch into runs of plain remaps (service level, not a
//! dry run, on a service without regions) and everything else, which runs
//! one command at a time, in order, as before. A run of remaps means what
//! running them one after the other would: each is checked against the
//! state the previous ones left, and each is acknowledged only after the
//! one state write that holds all of them. If that write fails, every
//! remap of the run is refused and the state is put back. [`Controller::remaps`]
//! is the one way a service-level remap is made: a lone remap (and the
//! service-level part of one on a service with regions, commands.rs) is a
//! run of one.

use std::collections::BTreeSet;

use hickory_proto::rr::Name;
use tracing::info;

use super::commands::new_override;
use super::durable::persist_refusal;
use super::requests::{RemapRequest, Reply};
use super::views::ChangeView;
use super::{Actor, Cause, Command, Controller, CtlError, EventCause, EventKind};
use super::{Event, Now, Overrides};

/// The most commands taken from the queue at once.
pub(super) const MAX: usize = 256;

type Remap = (String, RemapRequest, Actor, Reply<ChangeView>);

/// One remap of a run, applied in memory, not yet durable.
struct Applied<'r> {
    /// Its place in the run (for its result).
    at: usize,
    si: usize,
    from: usize,
    to: usize,
    before: Overrides,
    view: ChangeView,
    request: &'r RemapRequest,
    who: &'r str,
}

impl Controller {
    /// Run commands taken from the queue together, in order.
    pub(super) fn commands(&mut self, batch: Vec<Command>, now: Now) {
        let mut run: Vec<Remap> = Vec::new();
        for cmd in batch {
            match cmd {
                Command::Remap {
                    service,
                    request,
                    actor,
                    reply,
                } if self.groupable(&service, &request) => {
                    run.push((service, request, actor, reply));
                }
                other => {
                    self.remap_run(std::mem::take(&mut run), now);
                    self.command(other, now);
                }
            }
        }
        self.remap_run(run, now);
    }

    fn groupable(&self, service: &str, req: &RemapRequest) -> bool {
        !req.dry_run
            && req.region.is_none()
            && self
                .by_name
                .get(service)
                .is_some_and(|&si| self.services[si].regions.is_empty())
    }

    /// A run of queued remaps: made together, answered each.
    fn remap_run(&mut self, run: Vec<Remap>, now: Now) {
        if run.is_empty() {
            return;
        }
        let asked: Vec<(&str, &RemapRequest, &Actor)> =
            run.iter().map(|(s, r, a, _)| (s.as_str(), r, a)).collect();
        let results = self.remaps(&asked, now);
        for ((_, _, _, reply), result) in run.into_iter().zip(results) {
            let _ = reply.send(result);
        }
    }

    /// Service-level remaps (not dry runs), in order: each checked against
    /// the state the earlier ones left and applied, then all made durable
    /// in one state write (with the serials their publish will serve),
    /// published together and recorded with one history write. If the
    /// write fails, every applied one is put back and refused.
    pub(super) fn remaps(
        &mut self,
        asked: &[(&str, &RemapRequest, &Actor)],
        now: Now,
    ) -> Vec<Result<ChangeView, CtlError>> {
        let mut results: Vec<Option<Result<ChangeView, CtlError>>> = vec![None; asked.len()];
        let mut applied = Vec::with_capacity(asked.len());
        for (at, &(service, request, actor)) in asked.iter().enumerate() {
            let checked = self
                .service_index(service)
                .and_then(|si| Ok((si, self.remap_target(si, request)?)));
            let (si, (to, duration)) = match checked {
                Ok(c) => c,
                Err(e) => {
                    results[at] = Some(Err(e));
                    continue;
                }
            };
            let before = self.overrides(si);
            let from = self.services[si].active;
            let pin = new_override(&request.to, &request.reason, actor, duration, now);
            self.services[si].pin = Some(pin);
            self.services[si].active = to;
            applied.push(Applied {
                at,
                si,
                from,
                to,
                before,
                view: self.change_view(si, from, to, false),
                request,
                who: &actor.name,
            });
        }
        if !applied.is_empty() {
            self.make_durable(applied, &mut results, now);
        }
        results
            .into_iter()
            .map(|r| r.expect("every remap answered"))
            .collect()
    }

    fn make_durable(
        &mut self,
        applied: Vec<Applied<'_>>,
        results: &mut [Option<Result<ChangeView, CtlError>>],
        now: Now,
    ) {
        // The services whose answer changes, and the serials their
        // publish will serve.
        let moved: BTreeSet<usize> = applied
            .iter()
            .filter(|a| a.from != a.to)
            .map(|a| a.si)
            .collect();
        let fqdns: Vec<&Name> = moved.iter().map(|&si| &self.services[si].fqdn).collect();
        let serials = self.publisher.serials_after(&fqdns);
        let mut state = self.persisted();
        state.serials = serials.clone();
        if let Err(e) = self.persist_state(state) {
            let refusal = persist_refusal(e);
            // Undone last first, so each service ends as it was.
            for a in applied.into_iter().rev() {
                let svc = &mut self.services[a.si];
                svc.active = a.from;
                (svc.pin, svc.drains) = a.before;
                results[a.at] = Some(Err(refusal.clone()));
            }
            return;
        }
        let changes = moved
            .iter()
            .map(|&si| {
                let svc = &self.services[si];
                (svc.fqdn.clone(), svc.records(svc.active))
            })
            .collect();
        self.publisher.publish_at(changes, &serials);
        let events = applied.iter().map(|a| self.remap_event(a, now)).collect();
        self.record_all(events);
        if applied.len() > 1 {
            info!(
                remaps = applied.len(),
                services = moved.len(),
                "remaps written together"
            );
        }
        for a in applied {
            results[a.at] = Some(Ok(a.view));
        }
    }

    /// Log one remap of a run and the history event it leaves.
    fn remap_event(&self, a: &Applied<'_>, now: Now) -> Event {
        let svc = &self.services[a.si];
        let (from, to) = (&svc.targets[a.from].name, &svc.targets[a.to].name);
        let (service, reason, who) = (&svc.name, &a.request.reason, a.who);
        info!(%service, target = %to, %reason, %who, force = a.request.force,
            "operator pinned target");
        let kind = if a.from == a.to {
            EventKind::Pin
        } else {
            info!(%service, %from, %to, cause = %Cause::Operator, %reason, %who, "remap");
            Cause::Operator.into()
        };
        Event::new(now.unix, kind, EventCause::Operator)
            .service(service)
            .from_target(from)
            .to_target(to)
            .reason(reason)
            .who(who)
    }
}
