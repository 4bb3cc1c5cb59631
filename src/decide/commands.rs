//! Operator commands: remap, release, drain, undrain, drill, and the
//! UPDATE/secondary hand-offs from the replicate stage.
//!
//! Every command that changes an override persists it before acting and
//! puts it back if it cannot be persisted: an acknowledged command survives
//! a crash, a refused one changed nothing.

use std::time::Duration;

use tracing::{info, warn};

use super::requests::{parse_duration, DrainRequest, DrillRequest, RemapRequest};
use super::state::Override;
use super::views::{ChangeView, DrillView, Mode};
use super::{policy, Actor, Cause, Command, Controller, CtlError, Drill, Event, EventCause};
use super::{EventKind, Now};

/// An operator override of `target`, with its expiry.
pub(super) fn new_override(
    target: &str,
    reason: &str,
    actor: &Actor,
    duration: Option<Duration>,
    now: Now,
) -> Override {
    Override {
        target: target.to_string(),
        reason: reason.to_string(),
        author: actor.name.clone(),
        since: now.unix,
        expires: duration.map(|d| now.unix + d.as_secs().max(1)),
    }
}

/// A region named in a command, unless it is the default region (whose
/// state is the service-level state).
fn regional(region: Option<&str>) -> Option<&str> {
    region.filter(|r| *r != crate::config::geo::DEFAULT_REGION)
}

impl Controller {
    pub(super) fn command(&mut self, cmd: Command, now: Now) {
        match cmd {
            Command::Ping { reply } => {
                let _ = reply.send(());
            }
            Command::Status { reply } => {
                let _ = reply.send(self.status());
            }
            Command::Remap {
                service,
                request,
                actor,
                reply,
            } => {
                let _ = reply.send(self.remap(&service, &request, &actor, now));
            }
            Command::Release {
                service,
                region,
                actor,
                reply,
            } => {
                let _ = reply.send(self.release(&service, region.as_deref(), &actor, now));
            }
            Command::DnssecRoll {
                zone,
                kind,
                actor,
                reply,
            } => {
                let _ = reply.send(self.dnssec_roll(&zone, kind, &actor, now));
            }
            Command::Drain {
                service,
                target,
                request,
                actor,
                reply,
            } => {
                let _ = reply.send(self.drain(&service, &target, &request, &actor, now));
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
                request,
                actor,
                reply,
            } => {
                let _ = reply.send(self.drill(&service, &request, &actor, now));
            }
            Command::History { query, reply } => {
                let _ = reply.send(self.history.read(
                    query.service.as_deref(),
                    query.since,
                    query.limit,
                ));
            }
            Command::ClusterRole { role } => self.set_role(role, now),
            Command::ClusterVerdicts { verdicts } => self.set_verdicts(verdicts, now),
            Command::ClusterApply { state, reply } => {
                self.apply_shared(*state, now);
                let _ = reply.send(());
            }
            Command::Update {
                origin,
                message: _,
                key,
                peer,
                reply,
            } if self.cluster_mode() => {
                warn!(zone = %origin, key, %peer,
                    "UPDATE refused: in cluster mode zone data changes through the zone files on every node");
                let _ = reply.send(crate::proto::codes::rcode::REFUSED);
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
                        self.record(
                            Event::new(now.unix, EventKind::Update, EventCause::Update)
                                .reason(format!(
                                    "{} added, {} removed at serial {serial}",
                                    change.added.len(),
                                    change.removed.len()
                                ))
                                .who(&key),
                        );
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
                signers,
                actor,
                reply,
            } => {
                let _ = reply.send(self.reload(&config, zones, signers, &actor, now));
            }
        }
    }

    pub(super) fn service_index(&self, name: &str) -> Result<usize, CtlError> {
        self.by_name
            .get(name)
            .copied()
            .ok_or_else(|| CtlError::NotFound(format!("no service named `{name}`")))
    }

    pub(super) fn target_index(&self, si: usize, name: &str) -> Result<usize, CtlError> {
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

    fn remap(
        &mut self,
        service: &str,
        req: &RemapRequest,
        actor: &Actor,
        now: Now,
    ) -> Result<ChangeView, CtlError> {
        let si = self.service_index(service)?;
        if let Some(region) = regional(req.region.as_deref()) {
            return self.remap_region(si, region, req, actor, now);
        }
        if req.dry_run {
            let (ti, _) = self.remap_target(si, req)?;
            let from = self.services[si].active;
            let mut v = self.change_view(si, from, ti, true);
            v.mode = Mode::Manual;
            return Ok(v);
        }
        // Made durable, published and recorded like a remap queued with
        // others (batch.rs): one state write, before the answer changes.
        let view = self.remaps(&[(service, req, actor)], now).remove(0)?;
        // A per-region service: every region too (unless `--region default`).
        let regions: Vec<String> = match req.region {
            Some(_) => Vec::new(),
            None => self.services[si]
                .regions
                .iter()
                .map(|r| r.name.clone())
                .collect(),
        };
        for r in regions {
            self.remap_region(si, &r, req, actor, now)?;
        }
        Ok(view)
    }

    /// The target a (service-level) remap goes to and its pin's duration,
    /// or why it is refused.
    pub(super) fn remap_target(
        &self,
        si: usize,
        req: &RemapRequest,
    ) -> Result<(usize, Option<Duration>), CtlError> {
        let ti = self.target_index(si, &req.to)?;
        let duration = parse_duration(req.duration.as_deref())?;
        let views = self.services[si].views();
        if views[ti].unusable() && !req.force {
            let why = if views[ti].drained {
                "drained"
            } else if views[ti].drill_failed {
                "failed by a running drill"
            } else {
                "unhealthy"
            };
            return Err(CtlError::Conflict(format!(
                "target `{}` is {why}; use --force to remap to it anyway",
                req.to
            )));
        }
        Ok((ti, duration))
    }

    /// Begin a key roll (single node only: the new key is made in this
    /// node's key directory, which the other nodes of a cluster do not see).
    fn dnssec_roll(
        &mut self,
        zone: &str,
        kind: crate::sign::roll::RollKind,
        actor: &Actor,
        now: Now,
    ) -> Result<String, CtlError> {
        if self.role != super::Role::Single {
            return Err(CtlError::Unavailable(
                "key rolls are not coordinated across a cluster: roll by config on every node \
                 (dnssec.published, then dnssec.keys; see docs/dnssec.md)"
                    .into(),
            ));
        }
        let origin = hickory_proto::rr::Name::from_ascii(zone)
            .map(|n| crate::proto::zone::fqdn_lower(&n))
            .map_err(|e| CtlError::BadRequest(format!("{zone}: not a zone name: {e}")))?;
        let what = self
            .publisher
            .start_roll(&origin, kind)
            .map_err(CtlError::Conflict)?;
        info!(who = %actor.name, "{what}");
        self.record(
            Event::new(now.unix, EventKind::KeyRoll, EventCause::Operator)
                .reason(&what)
                .who(&actor.name),
        );
        Ok(what)
    }

    fn release(
        &mut self,
        service: &str,
        region: Option<&str>,
        actor: &Actor,
        now: Now,
    ) -> Result<ChangeView, CtlError> {
        let si = self.service_index(service)?;
        if let Some(region) = regional(region) {
            let view = self.release_regions(si, Some(region), actor, now)?;
            return Ok(view.expect("one region released"));
        }
        let from = self.services[si].active;
        let before = self.overrides(si);
        self.services[si].pin = None;
        self.persist_overrides(si, before)?;
        info!(service, who = %actor.name, "operator released the service to automatic policy");
        self.record(
            Event::new(now.unix, EventKind::Release, EventCause::Operator)
                .service(service)
                .reason("released")
                .who(&actor.name),
        );
        self.choose_afresh(si, "released", &actor.name, now);
        if region.is_none() {
            self.release_regions(si, None, actor, now)?;
        }
        let to = self.services[si].active;
        Ok(self.change_view(si, from, to, false))
    }

    /// Take a target out of selection. Draining the target a pin holds the
    /// service on would leave traffic where it is, which is the opposite of
    /// what a drain before maintenance is for: it is refused unless
    /// `force`, which releases the pin so the service can move.
    fn drain(
        &mut self,
        service: &str,
        target: &str,
        req: &DrainRequest,
        actor: &Actor,
        now: Now,
    ) -> Result<ChangeView, CtlError> {
        let si = self.service_index(service)?;
        let ti = self.target_index(si, target)?;
        let duration = parse_duration(req.duration.as_deref())?;
        let pinned_here = self.services[si].pin_index() == Some(ti);
        if pinned_here && !req.force {
            let pin = self.services[si].pin.as_ref().expect("pinned");
            let by = match pin.reason.as_str() {
                "" => format!("by {}", pin.author),
                r => format!("by {}: {r}", pin.author),
            };
            return Err(CtlError::Conflict(format!(
                "`{service}` is pinned to `{target}` ({by}), so draining `{target}` would not move \
                 the service: traffic would stay on it. Remap the service to another target first \
                 (ggon-ctl remap {service} --to TARGET), or drain with --force to release the pin \
                 and let the service move"
            )));
        }
        let from = self.services[si].active;
        let before = self.overrides(si);
        if pinned_here {
            self.services[si].pin = None;
        }
        self.services[si].drains.insert(
            target.to_string(),
            new_override(target, &req.reason, actor, duration, now),
        );
        self.persist_overrides(si, before)?;
        info!(service, target, reason = %req.reason, who = %actor.name, "target drained");
        self.record(
            Event::new(now.unix, EventKind::Drain, EventCause::Operator)
                .service(service)
                .to_target(target)
                .reason(&req.reason)
                .who(&actor.name),
        );
        if pinned_here {
            info!(service, target, who = %actor.name, "pin released to drain its target (--force)");
            self.record(
                Event::new(now.unix, EventKind::Release, EventCause::Operator)
                    .service(service)
                    .reason(format!("pin on {target} released to drain it (--force)"))
                    .who(&actor.name),
            );
        }
        self.evaluate(si, now);
        let to = self.services[si].active;
        let mut view = self.change_view(si, from, to, false);
        if to == ti {
            view.warning = Some(format!(
                "`{target}` is drained but still answered: no other target of `{service}` is \
                 available, so the current answer stays (fail-open). Traffic has NOT left `{target}`."
            ));
        }
        Ok(view)
    }

    fn undrain(
        &mut self,
        service: &str,
        target: &str,
        actor: &Actor,
        now: Now,
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
        self.record(
            Event::new(now.unix, EventKind::Undrain, EventCause::Operator)
                .service(service)
                .to_target(target)
                .who(&actor.name),
        );
        self.evaluate(si, now);
        let to = self.services[si].active;
        Ok(self.change_view(si, from, to, false))
    }

    fn drill(
        &mut self,
        service: &str,
        req: &DrillRequest,
        actor: &Actor,
        now: Now,
    ) -> Result<DrillView, CtlError> {
        let si = self.service_index(service)?;
        if let Some(region) = regional(req.region.as_deref()) {
            return self.drill_region(si, region, req, actor, now);
        }
        let fail = req.failure()?;
        let fail_idx = match &fail {
            Some((t, _)) => Some(self.target_index(si, t)?),
            None => None,
        };
        let svc = &self.services[si];
        // Which target takes over if `failing` (default: the active one) fails now.
        let failing = fail_idx.unwrap_or(svc.active);
        let mut views = svc.views();
        views[failing].drill_failed = true;
        let view = svc.policy_view(&views, svc.pin_index());
        let takeover = if svc.pin.is_some() || failing != svc.active {
            None
        } else {
            policy::decide(&view, now.at).map(|d| d.to)
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
            let previous = self.services[si].active;
            self.services[si].drill = Some(Drill::start(ti, previous, dur, actor, now));
            // Persisted with its deadline, so a restart neither forgets nor prolongs it.
            if let Err(e) = self.persist() {
                self.services[si].drill = None;
                return Err(super::durable::persist_refusal(e));
            }
            info!(service, target = %t, duration = ?dur, who = %actor.name, "drill started: target treated as failed");
            self.record(Event::drill_start(now.unix, service, &t, dur, actor));
            self.evaluate(si, now);
            out.failing = Some((t, now.unix + dur.as_secs()));
        }
        Ok(out)
    }

    /// End a drill; `late` is said in the log and history (see `late_note`).
    pub(super) fn end_drill(&mut self, si: usize, now: Now, late: &str) {
        let Some(d) = self.services[si].drill.take() else {
            return;
        };
        let svc = &self.services[si];
        let name = svc.name.clone();
        let target = svc.targets[d.target].name.clone();
        info!(service = %name, target = %target, "drill over{late}: target back to its real health");
        self.record(
            Event::new(now.unix, EventKind::DrillEnd, EventCause::Drill)
                .service(&name)
                .to_target(&target)
                .reason(format!("drill over{late}"))
                .who(&d.who),
        );
        // Revert: back to where the service was before the drill, if that is
        // still a sound choice (no pin took over meanwhile, and it is not down).
        let views = svc.views();
        if svc.pin.is_none() && svc.active != d.previous && !views[d.previous].unusable() {
            self.switch(
                si,
                d.previous,
                Cause::Operator,
                &format!("drill over{late}: reverting"),
                "ggond",
                now,
            );
        }
        self.persist_or_log();
    }
}
