//! Operator commands: remap, release, drain, undrain, drill, and the
//! UPDATE/secondary hand-offs from the replicate stage.
//!
//! Every command that changes an override persists it before acting and
//! puts it back if it cannot be persisted: an acknowledged command survives
//! a crash, a refused one changed nothing.

use std::time::Duration;

use tracing::{error, info, warn};

use super::requests::{Drain, DrillPlan, Remap};
use super::state::Override;
use super::views::{ChangeView, DrillView, Mode};
use super::{policy, Actor, Command, Controller, CtlError, Drill, Event, EventCause};
use super::{EventKind, Now, Role, DEFAULT};

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

impl Controller {
    pub(super) fn command(&mut self, cmd: Command, now: Now) {
        // A caller that has gone away needs no answer: sends may fail.
        match cmd {
            Command::Ping { reply } => reply.send(()).unwrap_or_default(),
            Command::Status { reply } => reply.send(self.status()).unwrap_or_default(),
            Command::DnssecStatus { reply } => reply.send(self.dnssec_status()).unwrap_or_default(),
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
            Command::ClusterDisagree { services } => self.set_disagreement(services, now),
            Command::ClusterZoneEntries { entries } => self.apply_zone_entries(entries),
            Command::ClusterKeySets { sets } => self.adopt_keysets(sets),
            Command::ClusterApply { state, reply } => {
                self.apply_shared(*state, now);
                let _ = reply.send(());
            }
            Command::Update {
                origin,
                message,
                key,
                peer,
                reply,
            } => {
                let _ = reply.send(self.update(&origin, &message, &key, peer, now));
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
                regions,
                zones,
                signers,
                actor,
                reply,
            } => {
                let _ = reply.send(self.reload(&config, regions, zones, signers, &actor, now));
            }
        }
    }

    /// An authenticated RFC 2136 UPDATE to a local zone; the rcode to answer.
    /// In a cluster only the leader applies one (a follower's DNS server
    /// passes it on, see `replicate::update`): first into the zone's
    /// journal in the shared store, then here; every node applies the
    /// journal in order.
    fn update(
        &mut self,
        origin: &hickory_proto::rr::Name,
        message: &hickory_proto::op::Message,
        key: &str,
        peer: std::net::SocketAddr,
        now: Now,
    ) -> u8 {
        if self.cluster_mode() && self.role != Role::Leader {
            warn!(zone = %origin, key, %peer,
                "UPDATE refused: this node no longer leads the cluster (it was passed on to it as the leader)");
            return crate::proto::codes::rcode::REFUSED;
        }
        let applied = self
            .publisher
            .prepare_update(origin, message)
            .and_then(|p| {
                if p.is_empty() {
                    return Ok((p.change().clone(), p.entry.serial.unwrap_or(0)));
                }
                if let Some(shared) = &self.shared {
                    shared
                        .append_zone(&origin.to_string(), &p.entry)
                        .map_err(|e| crate::publish::update::Rejected {
                            rcode: crate::proto::codes::rcode::SERVFAIL,
                            why: format!(
                                "the cluster store did not take it ({e}): nothing was changed"
                            ),
                        })?;
                }
                let change = p.change().clone();
                let serial = self.publisher.commit_update(p, self.cluster_mode())?;
                Ok((change, serial))
            });
        match applied {
            Ok((change, _)) if change.is_empty() => {
                info!(zone = %origin, key, %peer, "UPDATE changed nothing");
                0
            }
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
                        .who(key),
                );
                0
            }
            Err(r) => {
                warn!(zone = %origin, key, %peer, rcode = r.rcode, why = %r.why, "UPDATE refused");
                r.rcode
            }
        }
    }

    /// Entries of the cluster's UPDATE journals, in order: those not yet
    /// applied here are (any role: they are facts, not decisions).
    pub(super) fn apply_zone_entries(
        &mut self,
        entries: Vec<(String, crate::publish::JournalEntry)>,
    ) {
        for (zone, entry) in entries {
            let Ok(origin) = hickory_proto::rr::Name::from_ascii(&zone) else {
                continue;
            };
            match self.publisher.apply_entry(&origin, &entry) {
                Ok(true) => info!(zone = %origin, seq = entry.seq, serial = entry.serial,
                    "UPDATE applied from the cluster's journal"),
                Ok(false) => {}
                Err(e) => error!(zone = %origin, seq = entry.seq, error = %e,
                    "an UPDATE of the cluster's journal cannot be applied: this node's zone differs"),
            }
        }
    }

    pub(super) fn service_index(&self, name: &str) -> Result<usize, CtlError> {
        self.by_name.get(name).copied().ok_or_else(|| {
            let known = self.services.iter().map(|s| s.name.as_str());
            CtlError::NotFound(super::requests::no_such_service(name, known))
        })
    }

    /// The service an operator wants to change, unless the cluster's nodes
    /// define it differently (then nobody can say what the change means).
    pub(super) fn service_to_change(&self, name: &str) -> Result<usize, CtlError> {
        let si = self.service_index(name)?;
        match self.disagree.get(name) {
            Some(node) => Err(CtlError::Conflict(format!(
                "service `{name}` is defined differently on node `{node}` than on the leader \
                 (see `ggon-ctl cluster`): nothing was changed; make the configs agree and \
                 reload those nodes"
            ))),
            None => Ok(si),
        }
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

    pub(super) fn remap(
        &mut self,
        service: &str,
        req: &Remap,
        actor: &Actor,
        now: Now,
    ) -> Result<ChangeView, CtlError> {
        if req.dry_run {
            let si = self.service_to_change(service)?;
            let ri = self.services[si].regions_named(req.region.as_deref())?[0];
            let (ti, _) = self.remap_target(si, ri, req)?;
            let from = self.services[si].regions[ri].active;
            let mut v = self.change_view((si, ri), from, ti, true);
            v.mode = Mode::Manual;
            return Ok(v);
        }
        // Made durable, published and recorded like a remap queued with
        // others (batch.rs): one state write, before the answer changes.
        self.remaps(&[(service, req, actor)], now).remove(0)
    }

    /// The target a remap of region `ri` goes to and its pin's duration,
    /// or why it is refused.
    pub(super) fn remap_target(
        &self,
        si: usize,
        ri: usize,
        req: &Remap,
    ) -> Result<(usize, Option<Duration>), CtlError> {
        let ti = self.target_index(si, &req.to)?;
        let duration = req.duration;
        let views = self.services[si].views(ri);
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

    /// Begin a key roll. In a cluster on the leader (a follower passes the
    /// call on): the new key set is in etcd before this answers, and every
    /// node signs with it.
    fn dnssec_roll(
        &mut self,
        zone: &str,
        kind: crate::sign::roll::RollKind,
        actor: &Actor,
        now: Now,
    ) -> Result<String, CtlError> {
        if self.role == super::Role::Follower {
            return Err(CtlError::Unavailable(
                "this node follows the cluster's leader, which begins key rolls; no leader \
                 took the call (see `ggon-ctl cluster`): nothing was changed"
                    .into(),
            ));
        }
        // A leader that has not yet written its key sets (just elected,
        // its first tick still to come) writes them now.
        if self.suspended() {
            let _ = self.share_keys();
        }
        if self.suspended() {
            return Err(CtlError::Unavailable(
                "this leader's key sets are not yet the ones etcd holds (etcd unreachable, or \
                 the leader just changed): nothing was changed; try again in a few seconds"
                    .into(),
            ));
        }
        let origin = hickory_proto::rr::Name::from_ascii(zone)
            .map(|n| crate::proto::zone::fqdn_lower(&n))
            .map_err(|e| CtlError::BadRequest(format!("{zone}: not a zone name: {e}")))?;
        let what = self
            .publisher
            .start_roll(&origin, kind)
            .map_err(|e| CtlError::Conflict(e.to_string()))?;
        if let Err(e) = self.share_keys() {
            return Err(CtlError::Unavailable(format!(
                "the roll was not begun: {e}; nothing was changed"
            )));
        }
        info!(who = %actor.name, "{what}");
        self.record(
            Event::new(now.unix, EventKind::KeyRoll, EventCause::Operator)
                .reason(&what)
                .who(&actor.name),
        );
        Ok(what)
    }

    /// Back to the policy: the named region, or every region.
    fn release(
        &mut self,
        service: &str,
        region: Option<&str>,
        actor: &Actor,
        now: Now,
    ) -> Result<ChangeView, CtlError> {
        let si = self.service_to_change(service)?;
        let which = self.services[si].regions_named(region)?;
        let before: Vec<_> = which
            .iter()
            .map(|&ri| self.services[si].regions[ri].pin.take())
            .collect();
        if let Err(e) = self.persist_changed([si], self.publisher.serials()) {
            for (&ri, pin) in which.iter().zip(before) {
                self.services[si].regions[ri].pin = pin;
            }
            return Err(super::durable::persist_refusal(e));
        }
        let mut view = None;
        for ri in which {
            let r = &self.services[si].regions[ri];
            info!(service, region = r.listed(), who = %actor.name,
                "operator released the answer to automatic policy");
            let event = self
                .event((si, ri), now, EventKind::Release, EventCause::Operator)
                .reason("released")
                .who(&actor.name);
            self.record(event);
            let from = self.services[si].regions[ri].active;
            self.choose_afresh(si, ri, "released", &actor.name, now);
            let to = self.services[si].regions[ri].active;
            view.get_or_insert(self.change_view((si, ri), from, to, false));
        }
        Ok(view.expect("every service has a region"))
    }

    /// Take a target out of selection. Draining the target a pin holds an
    /// answer on (the service's, or a region's) would leave traffic where
    /// it is, which is the opposite of what a drain before maintenance is
    /// for: it is refused unless `force`, which releases those pins so the
    /// answers can move.
    fn drain(
        &mut self,
        service: &str,
        target: &str,
        req: &Drain,
        actor: &Actor,
        now: Now,
    ) -> Result<ChangeView, CtlError> {
        let si = self.service_to_change(service)?;
        let ti = self.target_index(si, target)?;
        let duration = req.duration;
        let svc = &self.services[si];
        let pinned: Vec<usize> = (0..svc.regions.len())
            .filter(|&ri| {
                svc.regions[ri]
                    .pin
                    .as_ref()
                    .is_some_and(|p| p.target == target)
            })
            .collect();
        if let (Some(&ri), false) = (pinned.first(), req.force) {
            let r = &svc.regions[ri];
            let pin = r.pin.as_ref().expect("pinned");
            let by = match pin.reason.as_str() {
                "" => format!("by {}", pin.author),
                why => format!("by {}: {why}", pin.author),
            };
            let (what, region) = match r.listed() {
                Some(region) => (
                    format!("region `{region}` of `{service}`"),
                    format!(" --region {region}"),
                ),
                None => (format!("`{service}`"), String::new()),
            };
            return Err(CtlError::Conflict(format!(
                "{what} is pinned to `{target}` ({by}), so draining `{target}` would not move \
                 the service: traffic would stay on it. Remap the service to another target first \
                 (ggon-ctl remap {service}{region} --to TARGET), or drain with --force to release the pin \
                 and let the service move"
            )));
        }
        let from = self.services[si].active();
        let before = self.overrides(si);
        for &ri in &pinned {
            self.services[si].regions[ri].pin = None;
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
        for ri in pinned {
            let region = self.services[si].regions[ri].listed();
            info!(service, region, target, who = %actor.name, "pin released to drain its target (--force)");
            let event = self
                .event((si, ri), now, EventKind::Release, EventCause::Operator)
                .reason(format!("pin on {target} released to drain it (--force)"))
                .who(&actor.name);
            self.record(event);
        }
        self.evaluate_by(si, now, Some((EventCause::Drain, &actor.name)));
        let to = self.services[si].active();
        let mut view = self.change_view((si, DEFAULT), from, to, false);
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
        let si = self.service_to_change(service)?;
        self.target_index(si, target)?;
        let from = self.services[si].active();
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
        let to = self.services[si].active();
        Ok(self.change_view((si, DEFAULT), from, to, false))
    }

    /// What a failure would do now, and with `--fail` a drill: the target
    /// treated as failed for a while, in one region or (the default
    /// region's drill) for the whole service.
    fn drill(
        &mut self,
        service: &str,
        req: &DrillPlan,
        actor: &Actor,
        now: Now,
    ) -> Result<DrillView, CtlError> {
        let si = self.service_to_change(service)?;
        let ri = match req.region.as_deref() {
            Some(r) => self.services[si].region(r)?,
            None => DEFAULT,
        };
        let fail = req.fail.clone();
        let fail_idx = match &fail {
            Some((t, _)) => Some(self.target_index(si, t)?),
            None => None,
        };
        let mut out = self.drill_view(si, ri, fail_idx, now);
        if let (Some((t, dur)), Some(ti)) = (fail, fail_idx) {
            let r = &mut self.services[si].regions[ri];
            if r.drill.is_some() {
                return Err(CtlError::Conflict(match r.listed() {
                    Some(region) => format!("a drill is already running in region `{region}`"),
                    None => format!("a drill is already running on `{service}`"),
                }));
            }
            r.drill = Some(Drill::start(ti, r.active, dur, actor, now));
            // Persisted with its deadline, so a restart neither forgets nor prolongs it.
            if let Err(e) = self.persist_changed([si], self.publisher.serials()) {
                self.services[si].regions[ri].drill = None;
                return Err(super::durable::persist_refusal(e));
            }
            let region = self.services[si].regions[ri].listed();
            info!(service, region, target = %t, duration = ?dur, who = %actor.name,
                "drill started: target treated as failed");
            self.record(Event::drill_start(now.unix, service, &t, dur, actor).region(region));
            self.evaluate_by(si, now, Some((EventCause::Drill, &actor.name)));
            out.failing = Some((t, now.unix + dur.as_secs()));
        }
        Ok(out)
    }

    /// What region `ri` would answer if `failing` (default: its answer)
    /// failed now.
    fn drill_view(&self, si: usize, ri: usize, failing: Option<usize>, now: Now) -> DrillView {
        let svc = &self.services[si];
        let r = &svc.regions[ri];
        let failing = failing.unwrap_or(r.active);
        let mut views = svc.views(ri);
        views[failing].drill_failed = true;
        let takeover = if r.pin.is_some() || failing != r.active {
            None
        } else {
            policy::decide(&svc.policy_view(ri, &views), now.at).map(|d| d.to)
        };
        // Only the default region's answer is in the zone (and its serial).
        let zone_serial = self
            .publisher
            .zone_of(&svc.fqdn)
            .and_then(|o| self.publisher.serials().get(&o.to_string()).copied())
            .filter(|_| ri == DEFAULT);
        let (what, place) = match r.listed() {
            Some(region) => ("region", format!(" in region {region}")),
            None => ("service", String::new()),
        };
        let note = match (r.pin.is_some(), takeover) {
            (true, _) => {
                format!("the {what} is pinned: a failure would not move it (release it first)")
            }
            (false, None) if failing == r.active => format!(
                "no healthy target could take over: the {what}'s answer would stay (fail-open)"
            ),
            (false, None) => format!(
                "{} is not the {what}'s answer: its failure would not change it",
                svc.targets[failing].name
            ),
            (false, Some(t)) => format!("{} would take over{place}", svc.targets[t].name),
        };
        DrillView {
            service: svc.name.clone(),
            fqdn: svc.fqdn.to_string(),
            active: svc.targets[r.active].name.clone(),
            takeover: takeover.map(|t| svc.targets[t].name.clone()),
            takeover_healthy: takeover.map(|t| views[t].healthy == Some(true)),
            answers: svc.targets[takeover.unwrap_or(r.active)].addresses.clone(),
            ttl: svc.ttl,
            serial: zone_serial.map(|s| s.wrapping_add(u32::from(takeover.is_some()))),
            failing: None,
            note,
        }
    }

    /// End region `ri`'s drill; `late` is said in the log and history (see `late_note`).
    pub(super) fn end_drill(&mut self, si: usize, ri: usize, now: Now, late: &str) {
        let Some(d) = self.services[si].regions[ri].drill.take() else {
            return;
        };
        let svc = &self.services[si];
        let target = svc.targets[d.target].name.clone();
        info!(service = %svc.name, region = svc.regions[ri].listed(), %target,
            "drill over{late}: target back to its real health");
        let event = self
            .event((si, ri), now, EventKind::DrillEnd, EventCause::Drill)
            .to_target(&target)
            .reason(format!("drill over{late}"))
            .who(&d.who);
        self.record(event);
        // Revert: back to where the answer was before the drill, if that is
        // still a sound choice (no pin took over meanwhile, and it is not down).
        let svc = &self.services[si];
        let r = &svc.regions[ri];
        if r.pin.is_none() && r.active != d.previous && !svc.views(ri)[d.previous].unusable() {
            let reason = format!("drill over{late}: reverting");
            let by = (EventKind::Remap, EventCause::Drill);
            self.switch_by(si, ri, d.previous, by, &reason, &d.who, now);
        }
        self.persist_or_log();
    }
}
