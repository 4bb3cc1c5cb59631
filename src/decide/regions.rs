//! Per-region services (`active = "per-region"`): each region of the
//! service's `order` has its own active target, pin and drill, decided by
//! the same pure [`policy`] applied to the region's own order. Health and
//! drains stay per target, so one site failure moves exactly the regions
//! that were answering it.
//!
//! The service-level state (active, pin, drill) goes on as for a single
//! service and answers clients whose region has no order of its own when
//! the service has no `default` order. Region state is persisted in the
//! same [`ServiceState`] as the rest (and so replicated in a cluster).

use std::collections::BTreeMap;

use tracing::{info, warn};

use super::requests::{parse_duration, DrillRequest, RemapRequest};
use super::state::{Override, RegionState, ServiceState};
use super::views::{ChangeView, DrillView, RegionStatus};
use super::{policy, Actor, Cause, Controller, CtlError, Drill, Event, EventCause, EventKind};
use super::{Now, ServiceRt};
use crate::config::geo::DEFAULT_REGION;
use crate::config::{Config, ServiceConfig};
use crate::publish::regional::RegionalRecords;
use policy::{ServiceView, TargetView};

/// The service-level order: the targets as listed, or for a per-region
/// service with a `default` order, that order first (the service-level
/// state is the default region's).
pub(super) fn default_order(sc: &ServiceConfig) -> Vec<&crate::config::TargetConfig> {
    let all = sc.targets.get_ref();
    let Some(order) = sc
        .order
        .as_ref()
        .and_then(|o| o.get_ref().get(DEFAULT_REGION))
    else {
        return all.iter().collect();
    };
    let mut out: Vec<_> = order
        .iter()
        .filter_map(|n| all.iter().find(|t| t.name.get_ref() == n.get_ref()))
        .collect();
    out.extend(
        all.iter()
            .filter(|t| !order.iter().any(|n| n.get_ref() == t.name.get_ref())),
    );
    out
}

pub(super) struct RegionRt {
    pub name: String,
    /// Its index in the region map (the default's is the number of regions).
    pub slot: usize,
    /// Target indices by preference.
    pub order: Vec<usize>,
    /// Target index answered now.
    pub active: usize,
    pub pin: Option<Override>,
    pub drill: Option<Drill>,
}

/// The regions of a per-region service from its config and saved state
/// (a saved name that no longer fits is dropped with a warning).
pub(super) fn restore_regions(
    cfg: &Config,
    sc: &ServiceConfig,
    svc: &mut ServiceRt,
    saved: Option<&ServiceState>,
    now: Now,
) {
    svc.slots = cfg.regions.len() + 1;
    let Some(order) = &sc.order else {
        return;
    };
    for (name, list) in order.get_ref() {
        let Some(slot) = cfg.region_slot(name).filter(|_| name != DEFAULT_REGION) else {
            continue;
        };
        let order: Vec<usize> = list
            .iter()
            .filter_map(|t| svc.target(t.get_ref()))
            .collect();
        let mut r = RegionRt {
            name: name.clone(),
            slot,
            active: order[0],
            order,
            pin: None,
            drill: None,
        };
        if let Some(s) = saved.and_then(|s| s.regions.get(name)) {
            match svc.target(&s.active) {
                Some(i) => r.active = i,
                None => warn!(service = %svc.name, region = %name, target = %s.active,
                    "saved regional target no longer exists; starting on the region's first"),
            }
            if let Some(p) = &s.pin {
                if let Some(i) = svc.target(&p.target) {
                    r.active = i;
                    r.pin = Some(p.clone());
                }
            }
            r.drill = s.drill.as_ref().and_then(|d| {
                let (t, p) = (svc.target(&d.target), svc.target(&d.previous));
                super::durable::restore_drill(&svc.name, d, t, p, now)
            });
        }
        svc.regions.push(r);
    }
}

impl ServiceRt {
    fn region(&self, name: &str) -> Result<usize, CtlError> {
        self.regions
            .iter()
            .position(|r| r.name == name)
            .ok_or_else(|| {
                let names: Vec<_> = self.regions.iter().map(|r| r.name.as_str()).collect();
                CtlError::NotFound(format!(
                    "service `{}` has no order for region `{name}` (regions: {})",
                    self.name,
                    if names.is_empty() {
                        "none, it is not per-region".to_string()
                    } else {
                        names.join(", ")
                    }
                ))
            })
    }

    /// The targets as region `ri` sees them, in its order.
    fn region_views(&self, ri: usize) -> Vec<TargetView> {
        let all = self.views();
        let r = &self.regions[ri];
        r.order
            .iter()
            .map(|&ti| {
                let mut v = all[ti];
                v.drill_failed |= r.drill.as_ref().is_some_and(|d| d.target == ti);
                v
            })
            .collect()
    }

    /// What each region slot answers (None: the service-level answer).
    pub(super) fn regional_records(&self) -> RegionalRecords {
        let mut out = vec![None; self.slots];
        for r in &self.regions {
            out[r.slot] = Some(self.targets[r.active].addresses.clone());
        }
        out
    }

    pub(super) fn region_state(&self) -> BTreeMap<String, RegionState> {
        self.regions
            .iter()
            .map(|r| {
                let drill = r.drill.as_ref().map(|d| super::state::DrillState {
                    target: self.targets[d.target].name.clone(),
                    previous: self.targets[d.previous].name.clone(),
                    who: d.who.clone(),
                    until: d.until_unix,
                });
                let active = self.targets[r.active].name.clone();
                (
                    r.name.clone(),
                    RegionState {
                        active,
                        pin: r.pin.clone(),
                        drill,
                    },
                )
            })
            .collect()
    }

    /// Follow a leader's region state (cluster follower): true if an answer changed.
    pub(super) fn apply_region_state(
        &mut self,
        saved: &BTreeMap<String, RegionState>,
        now: Now,
    ) -> bool {
        let mut changed = false;
        for ri in 0..self.regions.len() {
            let Some(s) = saved.get(&self.regions[ri].name) else {
                continue;
            };
            let active = self.target(&s.active);
            let drill = s.drill.as_ref().and_then(|d| {
                let (t, p) = (self.target(&d.target), self.target(&d.previous));
                super::durable::restore_drill(&self.name, d, t, p, now)
            });
            let r = &mut self.regions[ri];
            r.pin = s.pin.clone();
            r.drill = drill;
            if let Some(a) = active.filter(|a| *a != r.active) {
                r.active = a;
                changed = true;
            }
        }
        changed
    }
}

impl Controller {
    /// Hand the publisher what every region of service `si` answers now.
    pub(super) fn publish_regions(&mut self, si: usize) {
        let s = &self.services[si];
        if s.regions.is_empty() {
            return;
        }
        let (fqdn, ttl, records) = (s.fqdn.clone(), s.ttl, s.regional_records());
        self.publisher.publish_regional(&fqdn, ttl, records);
    }

    /// The policy, once per region, on the region's order.
    pub(super) fn evaluate_regions(&mut self, si: usize, now: Now) {
        if !self.decides() {
            return;
        }
        for ri in 0..self.services[si].regions.len() {
            let svc = &self.services[si];
            let r = &svc.regions[ri];
            let views = svc.region_views(ri);
            let pos = |ti: usize| r.order.iter().position(|&x| x == ti);
            let view = ServiceView {
                failback: svc.failback,
                hold_down: svc.hold_down,
                // A target outside the order (pinned there) counts as unusable.
                active: pos(r.active).unwrap_or(usize::MAX),
                pin: r
                    .pin
                    .as_ref()
                    .and_then(|p| svc.target(&p.target))
                    .and_then(pos),
                targets: &views,
            };
            if r.pin.is_some() {
                continue;
            }
            let decision = if view.active == usize::MAX {
                views
                    .iter()
                    .position(TargetView::available)
                    .map(|to| policy::Decision {
                        to,
                        cause: Cause::Health,
                    })
            } else {
                policy::decide(&view, now.at)
            };
            if let Some(d) = decision {
                let to = r.order[d.to];
                let cur = &svc.targets[r.active].name;
                let reason = match d.cause {
                    Cause::Health if r.drill.as_ref().is_some_and(|x| x.target == r.active) => {
                        format!("{cur} failed by a drill")
                    }
                    Cause::Health if svc.drains.contains_key(cur) => format!("{cur} is drained"),
                    Cause::Health => format!("{cur} is unhealthy"),
                    Cause::Failback => "preferred target healthy for the hold-down".to_string(),
                    Cause::Operator => "pinned by operator".to_string(),
                };
                self.switch_region((si, ri), to, d.cause, &reason, "ggond", now);
            }
        }
    }

    /// Make `to` region `ri`'s answer: publish, persist, log, record.
    pub(super) fn switch_region(
        &mut self,
        (si, ri): (usize, usize),
        to: usize,
        cause: Cause,
        reason: &str,
        who: &str,
        now: Now,
    ) {
        let from = self.services[si].regions[ri].active;
        if from == to {
            return;
        }
        self.services[si].regions[ri].active = to;
        self.publish_regions(si);
        let svc = &self.services[si];
        let (name, region) = (svc.name.clone(), svc.regions[ri].name.clone());
        let (from_n, to_n) = (svc.targets[from].name.clone(), svc.targets[to].name.clone());
        info!(service = %name, %region, from = %from_n, to = %to_n, %cause, reason, who, "regional remap");
        self.persist_or_log();
        self.record(
            Event::new(now.unix, cause.into(), cause.into())
                .service(&name)
                .region(&region)
                .from_target(&from_n)
                .to_target(&to_n)
                .reason(reason)
                .who(who),
        );
    }

    fn region_change_view(&self, si: usize, ri: usize, from: usize, dry_run: bool) -> ChangeView {
        let s = &self.services[si];
        let r = &s.regions[ri];
        let mut v = self.change_view(si, from, r.active, dry_run);
        v.mode = if r.pin.is_some() {
            super::Mode::Manual
        } else {
            super::Mode::Auto
        };
        v.region = Some(r.name.clone());
        v
    }

    /// `remap --region`: pin one region of a per-region service.
    pub(super) fn remap_region(
        &mut self,
        si: usize,
        region: &str,
        req: &RemapRequest,
        actor: &Actor,
        now: Now,
    ) -> Result<ChangeView, CtlError> {
        let ri = self.services[si].region(region)?;
        let ti = self.target_index(si, &req.to)?;
        let duration = parse_duration(req.duration.as_deref())?;
        let svc = &self.services[si];
        let views = svc.views();
        let drilled = svc.regions[ri]
            .drill
            .as_ref()
            .is_some_and(|d| d.target == ti);
        if (views[ti].unusable() || drilled) && !req.force {
            return Err(CtlError::Conflict(format!(
                "target `{}` is unhealthy, drained or failed by a drill; use --force to remap to it anyway",
                req.to
            )));
        }
        let from = svc.regions[ri].active;
        if req.dry_run {
            let mut v = self.region_change_view(si, ri, from, true);
            v.to = req.to.clone();
            v.changed = from != ti;
            v.addresses = svc.targets[ti].addresses.clone();
            v.mode = super::Mode::Manual;
            return Ok(v);
        }
        let before = self.services[si].regions[ri].pin.take();
        self.services[si].regions[ri].pin = Some(super::commands::new_override(
            &req.to,
            &req.reason,
            actor,
            duration,
            now,
        ));
        if let Err(e) = self.persist() {
            self.services[si].regions[ri].pin = before;
            return Err(super::durable::persist_refusal(e));
        }
        info!(service = %self.services[si].name, region, target = %req.to, who = %actor.name,
            "operator pinned a region's target");
        if from == ti {
            let name = self.services[si].name.clone();
            self.record(
                Event::new(now.unix, EventKind::Pin, EventCause::Operator)
                    .service(&name)
                    .region(region)
                    .from_target(&req.to)
                    .to_target(&req.to)
                    .reason(&req.reason)
                    .who(&actor.name),
            );
        }
        self.switch_region((si, ri), ti, Cause::Operator, &req.reason, &actor.name, now);
        Ok(self.region_change_view(si, ri, from, false))
    }

    /// `release --region` (or every region with `None`): back to the policy.
    pub(super) fn release_regions(
        &mut self,
        si: usize,
        region: Option<&str>,
        actor: &Actor,
        now: Now,
    ) -> Result<Option<ChangeView>, CtlError> {
        let which: Vec<usize> = match region {
            Some(r) => vec![self.services[si].region(r)?],
            None => (0..self.services[si].regions.len()).collect(),
        };
        let before: Vec<_> = which
            .iter()
            .map(|&ri| self.services[si].regions[ri].pin.take())
            .collect();
        if let Err(e) = self.persist() {
            for (&ri, p) in which.iter().zip(before) {
                self.services[si].regions[ri].pin = p;
            }
            return Err(super::durable::persist_refusal(e));
        }
        let mut view = None;
        for ri in which {
            let name = self.services[si].name.clone();
            let rname = self.services[si].regions[ri].name.clone();
            info!(service = %name, region = %rname, who = %actor.name, "operator released a region");
            self.record(
                Event::new(now.unix, EventKind::Release, EventCause::Operator)
                    .service(&name)
                    .region(&rname)
                    .reason("released")
                    .who(&actor.name),
            );
            let from = self.services[si].regions[ri].active;
            self.choose_region_afresh(si, ri, "released", &actor.name, now);
            view = Some(self.region_change_view(si, ri, from, false));
        }
        self.persist_or_log();
        Ok(view.filter(|_| region.is_some()))
    }

    fn choose_region_afresh(&mut self, si: usize, ri: usize, reason: &str, who: &str, now: Now) {
        let svc = &self.services[si];
        let views = svc.region_views(ri);
        let r = &svc.regions[ri];
        let active = r.order.iter().position(|&x| x == r.active).unwrap_or(0);
        let view = ServiceView {
            failback: svc.failback,
            hold_down: svc.hold_down,
            active,
            pin: None,
            targets: &views,
        };
        let to = r.order[policy::fresh_choice(&view)];
        self.switch_region((si, ri), to, Cause::Operator, reason, who, now);
    }

    /// Timed region pins and region drills that are due.
    pub(super) fn expire_regions(&mut self, si: usize, now: Now, late: bool) {
        for ri in 0..self.services[si].regions.len() {
            let r = &self.services[si].regions[ri];
            if let Some(p) = r
                .pin
                .as_ref()
                .filter(|p| p.expires.is_some_and(|t| t <= now.unix))
            {
                let note = super::late_note(late, p.expires.unwrap_or(now.unix));
                let (name, rname, target) = (
                    self.services[si].name.clone(),
                    r.name.clone(),
                    p.target.clone(),
                );
                self.services[si].regions[ri].pin = None;
                info!(service = %name, region = %rname, %target, "region pin expired{note}");
                self.record(
                    Event::new(now.unix, EventKind::Expire, EventCause::Expired)
                        .service(&name)
                        .region(&rname)
                        .from_target(&target)
                        .who("ggond"),
                );
                self.choose_region_afresh(si, ri, &format!("pin expired{note}"), "ggond", now);
                self.persist_or_log();
            }
            let r = &self.services[si].regions[ri];
            let due = r.drill.as_ref().filter(|d| {
                if late {
                    d.until_unix <= now.unix
                } else {
                    d.until <= now.at
                }
            });
            if let Some(d) = due {
                let note = super::late_note(late, d.until_unix);
                let svc = &self.services[si];
                let (name, rname) = (svc.name.clone(), r.name.clone());
                let (target, previous, who) = (
                    svc.targets[d.target].name.clone(),
                    d.previous,
                    d.who.clone(),
                );
                self.services[si].regions[ri].drill = None;
                info!(service = %name, region = %rname, %target, "region drill over{note}");
                self.record(
                    Event::new(now.unix, EventKind::DrillEnd, EventCause::Drill)
                        .service(&name)
                        .region(&rname)
                        .to_target(&target)
                        .reason(format!("drill over{note}"))
                        .who(&who),
                );
                let svc = &self.services[si];
                let r = &svc.regions[ri];
                if r.pin.is_none() && r.active != previous && !svc.views()[previous].unusable() {
                    let reason = format!("drill over{note}: reverting");
                    self.switch_region((si, ri), previous, Cause::Operator, &reason, "ggond", now);
                }
                self.persist_or_log();
            }
        }
    }

    /// `drill --region`: fail a target for one region only, for a while.
    pub(super) fn drill_region(
        &mut self,
        si: usize,
        region: &str,
        req: &DrillRequest,
        actor: &Actor,
        now: Now,
    ) -> Result<DrillView, CtlError> {
        let ri = self.services[si].region(region)?;
        let fail = req.failure()?;
        let fail_idx = match &fail {
            Some((t, _)) => Some(self.target_index(si, t)?),
            None => None,
        };
        let svc = &self.services[si];
        let r = &svc.regions[ri];
        let failing = fail_idx.unwrap_or(r.active);
        let mut views = svc.region_views(ri);
        let pos = r.order.iter().position(|&x| x == failing);
        if let Some(p) = pos {
            views[p].drill_failed = true;
        }
        let active_pos = r
            .order
            .iter()
            .position(|&x| x == r.active)
            .unwrap_or(usize::MAX);
        let takeover = if r.pin.is_some() || failing != r.active {
            None
        } else {
            let view = ServiceView {
                failback: svc.failback,
                hold_down: svc.hold_down,
                active: active_pos,
                pin: None,
                targets: &views,
            };
            policy::decide(&view, now.at).map(|d| r.order[d.to])
        };
        let shown = takeover.unwrap_or(r.active);
        let note = match (r.pin.is_some(), takeover) {
            (true, _) => {
                "the region is pinned: a failure would not move it (release it first)".to_string()
            }
            (false, None) if failing == r.active => {
                "no healthy target could take over: the region's answer would stay (fail-open)"
                    .to_string()
            }
            (false, None) => format!(
                "{} is not the region's answer: its failure would not change it",
                svc.targets[failing].name
            ),
            (false, Some(t)) => {
                format!("{} would take over in region {region}", svc.targets[t].name)
            }
        };
        let mut out = DrillView {
            service: svc.name.clone(),
            fqdn: svc.fqdn.to_string(),
            active: svc.targets[r.active].name.clone(),
            takeover: takeover.map(|t| svc.targets[t].name.clone()),
            takeover_healthy: takeover.map(|t| svc.views()[t].healthy == Some(true)),
            answers: svc.targets[shown].addresses.clone(),
            ttl: svc.ttl,
            serial: None,
            failing: None,
            note,
        };
        if let (Some((t, dur)), Some(ti)) = (fail, fail_idx) {
            if self.services[si].regions[ri].drill.is_some() {
                return Err(CtlError::Conflict(format!(
                    "a drill is already running in region `{region}`"
                )));
            }
            let previous = self.services[si].regions[ri].active;
            self.services[si].regions[ri].drill = Some(Drill::start(ti, previous, dur, actor, now));
            if let Err(e) = self.persist() {
                self.services[si].regions[ri].drill = None;
                return Err(super::durable::persist_refusal(e));
            }
            let name = self.services[si].name.clone();
            info!(service = %name, region, target = %t, duration = ?dur, who = %actor.name,
                "region drill started: target treated as failed in this region");
            self.record(Event::drill_start(now.unix, &name, &t, dur, actor).region(region));
            self.evaluate_regions(si, now);
            out.failing = Some((t, now.unix + dur.as_secs()));
        }
        Ok(out)
    }

    /// The regions of a service, as status shows them.
    pub(super) fn region_status(&self, s: &ServiceRt) -> Vec<RegionStatus> {
        let (now, unix) = (std::time::Instant::now(), super::unix_now());
        if s.regions.is_empty() {
            return Vec::new();
        }
        // The service-level state answers everybody else: the default region.
        let default = RegionStatus {
            name: DEFAULT_REGION.to_string(),
            active: s.targets[s.active].name.clone(),
            addresses: s.targets[s.active].addresses.clone(),
            order: s.targets.iter().map(|t| t.name.clone()).collect(),
            pin: s.pin.clone(),
            drill: s.drill.as_ref().map(|d| {
                let left = d.until.saturating_duration_since(now);
                (s.targets[d.target].name.clone(), unix + left.as_secs())
            }),
        };
        s.regions
            .iter()
            .map(|r| RegionStatus {
                name: r.name.clone(),
                active: s.targets[r.active].name.clone(),
                addresses: s.targets[r.active].addresses.clone(),
                order: r.order.iter().map(|&t| s.targets[t].name.clone()).collect(),
                pin: r.pin.clone(),
                drill: r.drill.as_ref().map(|d| {
                    let left = d.until.saturating_duration_since(now);
                    (s.targets[d.target].name.clone(), unix + left.as_secs())
                }),
            })
            .chain(std::iter::once(default))
            .collect()
    }
}
