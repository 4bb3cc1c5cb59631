//! A service at run time: its targets and its answers, one per region.
//!
//! One decision model. Every service has at least one [`Region`], the
//! default one (index [`DEFAULT`]): its order is the service's target
//! order and its answer is the record in the zone, served to every client
//! outside a listed region. A per-region service (`active = "per-region"`)
//! has one more region per listed region of its `order`, each with its
//! own order, answer, pin and drill. Every rule (the policy, pins, drills,
//! their expiry, restoring and following saved state) is written once, for
//! a region: the service-level commands are the default region's, and a
//! command without `--region` applies to every region.
//!
//! Health and drains stay per target, so one site failure moves exactly the
//! regions answering it. A drill of the default region fails its target for
//! the whole service (every region sees it); a listed region's drill fails
//! it for that region only.
//!
//! It must not publish, persist or record: the controller does, after
//! asking these for the state.

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::time::{Duration, Instant};

use hickory_proto::rr::Name;
use tracing::warn;

use super::policy::{Cause, ServiceView, TargetView};
use super::state::{DrillState, Override, RegionState, ServiceState};
use super::{Actor, CtlError, Now};
use crate::config::geo::DEFAULT_REGION;
use crate::config::{Config, FailbackMode, ServiceConfig, TargetConfig};
use crate::monitor::health::TargetHealth;
use crate::monitor::CheckOutcome;
use crate::publish::regional::RegionalRecords;
use crate::publish::ServiceRecords;

/// The default region's index in [`ServiceRt::regions`].
pub(super) const DEFAULT: usize = 0;

pub(super) struct ServiceRt {
    pub name: String,
    pub fqdn: Name,
    pub ttl: u32,
    pub failback: FailbackMode,
    pub hold_down: Duration,
    /// In the default region's order (its `default` order first, for a
    /// per-region service that has one).
    pub targets: Vec<TargetRt>,
    /// Drained targets by name.
    pub drains: BTreeMap<String, Override>,
    /// The default region first, then the listed regions.
    pub regions: Vec<Region>,
    /// Region slots of the region map, the default's included.
    pub slots: usize,
    pub all_down_alarm: bool,
    /// Cluster mode: decide on the agreed verdicts, not this node's own.
    pub agreed: bool,
    /// The config it was built from (reload keeps state when it is unchanged).
    pub config: Vec<TargetConfig>,
}

pub(super) struct TargetRt {
    pub name: String,
    pub addresses: Vec<IpAddr>,
    pub health: TargetHealth,
    pub last: Option<CheckOutcome>,
    /// Cluster mode: what a quorum of live nodes sees, and since when.
    pub agreed: Option<bool>,
    pub agreed_since: Option<Instant>,
    /// One check round ([`super::policy::check_round`]): how long a more
    /// preferred target is waited for after a recovery from all-down.
    pub round: Duration,
}

/// One answer of a service: the default region's or a listed region's.
pub(super) struct Region {
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

/// A running drill: `target` is treated as failed until `until`.
#[derive(Debug, Clone)]
pub(super) struct Drill {
    pub target: usize,
    pub until: Instant,
    /// The same end in unix seconds: what is persisted, and what a restart
    /// compares with.
    pub until_unix: u64,
    /// The target that was active when the drill began, restored at its end.
    pub previous: usize,
    pub who: String,
}

impl Drill {
    /// A drill of `target` for `dur` from `now`, begun while `previous` was
    /// active.
    pub fn start(target: usize, previous: usize, dur: Duration, actor: &Actor, now: Now) -> Drill {
        Drill {
            target,
            until: now.at + dur,
            until_unix: now.unix + dur.as_secs(),
            previous,
            who: actor.name.clone(),
        }
    }

    /// Due now: on the monotonic clock, or at start (`late`) on the wall
    /// clock, since the deadline may have passed while ggond was down.
    pub fn due(&self, now: Now, late: bool) -> bool {
        if late {
            self.until_unix <= now.unix
        } else {
            self.until <= now.at
        }
    }
}

impl Region {
    pub fn is_default(&self) -> bool {
        self.name == DEFAULT_REGION
    }

    /// The region's name where history and answers must name it (None for
    /// the default region, whose changes are the service's).
    pub fn listed(&self) -> Option<&str> {
        (!self.is_default()).then_some(self.name.as_str())
    }
}

impl ServiceRt {
    pub fn target(&self, name: &str) -> Option<usize> {
        self.targets.iter().position(|t| t.name == name)
    }

    /// The target the zone answers (the default region's).
    pub fn active(&self) -> usize {
        self.regions[DEFAULT].active
    }

    pub fn is_regional(&self) -> bool {
        self.regions.len() > 1
    }

    /// A region by name (`default` is every service's).
    pub fn region(&self, name: &str) -> Result<usize, CtlError> {
        self.regions
            .iter()
            .position(|r| r.name == name)
            .ok_or_else(|| {
                let names: Vec<_> = self.regions.iter().map(|r| r.name.as_str()).collect();
                let known = if self.is_regional() {
                    names.join(", ")
                } else {
                    format!("{DEFAULT_REGION} only: it is not per-region")
                };
                CtlError::NotFound(format!(
                    "service `{}` has no order for region `{name}` (regions: {known})",
                    self.name
                ))
            })
    }

    /// The regions a command names: one, or every region without a name.
    pub fn regions_named(&self, name: Option<&str>) -> Result<Vec<usize>, CtlError> {
        match name {
            Some(n) => Ok(vec![self.region(n)?]),
            None => Ok((0..self.regions.len()).collect()),
        }
    }

    /// Every target as region `ri` sees it, by target index.
    pub fn views(&self, ri: usize) -> Vec<TargetView> {
        let drilled = |r: usize, i: usize| {
            self.regions[r]
                .drill
                .as_ref()
                .is_some_and(|d| d.target == i)
        };
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
                drill_failed: drilled(DEFAULT, i) || drilled(ri, i),
                round: t.round,
            })
            .collect()
    }

    /// The policy's view of region `ri`, with `views` as its targets.
    pub fn policy_view<'a>(&'a self, ri: usize, views: &'a [TargetView]) -> ServiceView<'a> {
        let r = &self.regions[ri];
        ServiceView {
            failback: self.failback,
            hold_down: self.hold_down,
            targets: views,
            order: &r.order,
            active: r.active,
            pin: r.pin.as_ref().and_then(|p| self.target(&p.target)),
        }
    }

    /// Why the policy moves region `ri` away from its answer.
    pub fn reason(&self, ri: usize, cause: Cause) -> String {
        let r = &self.regions[ri];
        let cur = &self.targets[r.active].name;
        match cause {
            Cause::Health if r.order.contains(&r.active) => {
                let drilled = |d: &Option<Drill>| d.as_ref().is_some_and(|d| d.target == r.active);
                if drilled(&r.drill) || drilled(&self.regions[DEFAULT].drill) {
                    format!("{cur} failed by a drill")
                } else if self.drains.contains_key(cur) {
                    format!("{cur} is drained")
                } else {
                    format!("{cur} is unhealthy")
                }
            }
            Cause::Health => format!("{cur} is not in the region's order"),
            Cause::Failback => "preferred target healthy for the hold-down".to_string(),
            Cause::Operator => "pinned by operator".to_string(),
        }
    }

    pub fn records(&self, idx: usize) -> ServiceRecords {
        ServiceRecords {
            ttl: self.ttl,
            addresses: self.targets[idx].addresses.clone(),
        }
    }

    /// What each region slot answers (None: the default region's answer).
    pub fn regional_records(&self) -> RegionalRecords {
        let mut out = vec![None; self.slots];
        for r in self.regions.iter().filter(|r| !r.is_default()) {
            out[r.slot] = Some(self.targets[r.active].addresses.clone());
        }
        out
    }

    fn region_state(&self, r: &Region) -> RegionState {
        RegionState {
            active: self.targets[r.active].name.clone(),
            pin: r.pin.clone(),
            drill: r.drill.as_ref().map(|d| DrillState {
                target: self.targets[d.target].name.clone(),
                previous: self.targets[d.previous].name.clone(),
                who: d.who.clone(),
                until: d.until_unix,
            }),
        }
    }

    /// What is persisted (and shared in a cluster) of this service.
    pub fn state(&self) -> ServiceState {
        ServiceState::from_regions(
            self.region_state(&self.regions[DEFAULT]),
            self.drains.clone(),
            self.regions
                .iter()
                .filter(|r| !r.is_default())
                .map(|r| (r.name.clone(), self.region_state(r)))
                .collect(),
        )
    }

    /// Take region `ri`'s pin and drill from saved state (a saved name that
    /// no longer fits is dropped with a warning); `set_active` also its
    /// answer. True if the answer changed.
    fn load(&mut self, ri: usize, s: &RegionState, set_active: bool, now: Now) -> bool {
        let region = self.regions[ri].name.clone();
        let find = |n: &str| {
            let i = self.target(n);
            if i.is_none() {
                warn!(service = %self.name, %region, target = n,
                    "saved state names a target that no longer exists; dropped");
            }
            i
        };
        let mut active = if set_active { find(&s.active) } else { None };
        let pin = s.pin.as_ref().filter(|p| find(&p.target).is_some());
        if let Some(p) = pin {
            active = self.target(&p.target);
        }
        let drill = s.drill.as_ref().and_then(|d| {
            let (t, p) = (find(&d.target)?, find(&d.previous)?);
            Some(restore_drill(d, t, p, now))
        });
        let r = &mut self.regions[ri];
        r.pin = pin.cloned();
        r.drill = drill;
        match active.filter(|&a| a != r.active) {
            Some(a) => {
                r.active = a;
                true
            }
            None => false,
        }
    }

    /// Follow saved (or a leader's shared) state: overrides, drills and
    /// every region's answer. Returns (the zone's answer changed, a
    /// listed region's answer changed).
    pub fn follow(&mut self, saved: &ServiceState, now: Now) -> (bool, bool) {
        self.drains = saved
            .drains
            .iter()
            .filter(|(t, _)| self.target(t).is_some())
            .map(|(t, d)| (t.clone(), d.clone()))
            .collect();
        let mut changed = (false, false);
        for ri in 0..self.regions.len() {
            let Some(s) = saved.region(&self.regions[ri].name) else {
                continue;
            };
            let moved = self.load(ri, &s, true, now);
            if ri == DEFAULT {
                changed.0 |= moved;
            } else {
                changed.1 |= moved;
            }
        }
        changed
    }
}

/// A saved drill as a running one: its monotonic end is as far from `now`
/// as its wall-clock end (already passed: ends at the next look).
fn restore_drill(d: &DrillState, target: usize, previous: usize, now: Now) -> Drill {
    Drill {
        target,
        until: now.at + Duration::from_secs(d.until.saturating_sub(now.unix)),
        until_unix: d.until,
        previous,
        who: d.who.clone(),
    }
}

/// The default region's order: the targets as listed, or for a per-region
/// service with a `default` order, that order first.
fn default_order(sc: &ServiceConfig) -> Vec<&TargetConfig> {
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

/// The default region's order is unchanged between `o` and `sc` (a
/// per-region `default` may reorder the targets).
pub(super) fn same_order(o: &ServiceRt, sc: &ServiceConfig) -> bool {
    let new = default_order(sc);
    o.targets.len() == new.len()
        && o.targets
            .iter()
            .zip(new)
            .all(|(a, b)| &a.name == b.name.get_ref())
}

/// A service's runtime state from its config and what was saved for it:
/// every region starts on its most preferred target unless saved state says
/// otherwise.
pub(super) fn restore(
    cfg: &Config,
    sc: &ServiceConfig,
    saved: Option<&ServiceState>,
    now: Now,
) -> ServiceRt {
    let targets: Vec<TargetRt> = default_order(sc)
        .into_iter()
        .map(|t| TargetRt {
            name: t.name.get_ref().clone(),
            addresses: t.addresses.get_ref().clone(),
            health: TargetHealth::new(t.check.rise, t.check.fall),
            last: None,
            agreed: None,
            agreed_since: None,
            round: super::policy::check_round(
                t.check.interval,
                t.check.jitter,
                t.check.rise,
                t.check.timeout,
            ),
        })
        .collect();
    let find = |n: &str| targets.iter().position(|t| t.name == n);
    let mut regions = vec![Region {
        name: DEFAULT_REGION.to_string(),
        slot: cfg.regions.len(),
        order: (0..targets.len()).collect(),
        active: 0,
        pin: None,
        drill: None,
    }];
    for (name, list) in sc
        .order
        .as_ref()
        .map(|o| o.get_ref().iter())
        .into_iter()
        .flatten()
    {
        let Some(slot) = cfg.region_slot(name).filter(|_| name != DEFAULT_REGION) else {
            continue;
        };
        let order: Vec<usize> = list.iter().filter_map(|t| find(t.get_ref())).collect();
        regions.push(Region {
            name: name.clone(),
            slot,
            active: order[0],
            order,
            pin: None,
            drill: None,
        });
    }
    let mut svc = ServiceRt {
        fqdn: sc.fqdn_name(),
        name: sc.name.get_ref().clone(),
        ttl: sc.ttl,
        failback: sc.failback,
        hold_down: sc.hold_down,
        targets,
        drains: BTreeMap::new(),
        regions,
        slots: cfg.regions.len() + 1,
        all_down_alarm: false,
        agreed: false,
        config: sc.targets.get_ref().clone(),
    };
    if let Some(saved) = saved {
        svc.follow(saved, now);
    }
    svc
}

/// Reload: `old` goes on where its targets, checks and default order are
/// unchanged (health, alarm); its overrides and answers carry over through
/// its saved state either way, where they still fit the new config.
pub(super) fn reload(
    cfg: &Config,
    sc: &ServiceConfig,
    old: Option<ServiceRt>,
    now: Now,
) -> (ServiceRt, Reloaded) {
    let Some(old) = old else {
        return (restore(cfg, sc, None, now), Reloaded::New);
    };
    let mut svc = restore(cfg, sc, Some(&old.state()), now);
    let kept = targets_equal(&old.config, sc.targets.get_ref())
        && old.fqdn == sc.fqdn_name()
        && same_order(&old, sc);
    if !kept {
        return (svc, Reloaded::Rebuilt);
    }
    // Settings that do not touch health: the state is kept, but the
    // service did change (the reload's summary says so).
    let settings =
        old.ttl != svc.ttl || old.failback != svc.failback || old.hold_down != svc.hold_down;
    svc.targets = old.targets;
    svc.all_down_alarm = old.all_down_alarm;
    let how = if settings {
        Reloaded::Changed
    } else {
        Reloaded::Same
    };
    (svc, how)
}

/// What a reload did to a service.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(super) enum Reloaded {
    /// Not in the old configuration.
    New,
    /// Targets, checks, name or orders changed: restored from its saved
    /// answers, pins and drains; health anew.
    Rebuilt,
    /// TTL, failback or hold-down changed: every state kept.
    Changed,
    /// Nothing changed.
    Same,
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
