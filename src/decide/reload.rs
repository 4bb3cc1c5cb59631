//! Reload and restore: rebuilding service state from a configuration,
//! keeping what an operator decided wherever the service is unchanged.

use std::collections::{BTreeMap, HashMap};

use tracing::{info, warn};

use super::durable::restore_drill;
use super::state::ServiceState;
use super::{Actor, Controller, CtlError, Event, EventCause, EventKind, Now, ServiceRt, TargetRt};
use crate::config::{Config, ServiceConfig, TargetConfig};
use crate::monitor::health::TargetHealth;
use crate::proto::zone::ZoneData;

impl Controller {
    /// Swap in a validated configuration. A service whose targets and checks
    /// are unchanged keeps all its state (health, pin, drains, drill); a
    /// changed one starts from its saved active target, pin and drains.
    pub(super) fn reload(
        &mut self,
        cfg: &Config,
        zones: Vec<ZoneData>,
        signers: Vec<crate::sign::Signer>,
        actor: &Actor,
        now: Now,
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
                    if targets_equal(&o.config, new_targets)
                        && o.fqdn == sc.fqdn_name()
                        && same_order(&o, sc) =>
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
                        drill: o.drill_state(),
                        regions: o.region_state(),
                    };
                    restore(sc, Some(&saved), now)
                }
                None => {
                    fresh += 1;
                    restore(sc, None, now)
                }
            };
            // Regions follow the new config; what each one answered,
            // its pin and drill carry over where they still fit.
            let mut rt = rt;
            let saved = ServiceState {
                active: String::new(),
                pin: None,
                drains: Default::default(),
                drill: None,
                regions: rt.region_state(),
            };
            rt.regions.clear();
            super::regions::restore_regions(cfg, sc, &mut rt, Some(&saved), now);
            services.push(rt);
        }
        let removed = old.len();
        self.services = services;
        self.index();
        self.publisher
            .reload_zones(zones)
            .map_err(|e| CtlError::BadRequest(e.to_string()))?;
        self.publisher.set_signers(signers);
        self.publisher.set_geo(cfg);
        for s in &self.services {
            if !s.regions.is_empty() {
                self.publisher
                    .stage_regional(&s.fqdn, s.ttl, s.regional_records());
            }
            self.publisher.stage(&s.fqdn, s.records(s.active));
        }
        self.publisher.publish_reload();
        self.persist_or_log();
        let summary =
            format!("{kept} services kept their state, {fresh} new or changed, {removed} removed");
        info!(who = %actor.name, %summary, "configuration reloaded");
        self.record(
            Event::new(now.unix, EventKind::Reload, EventCause::Operator)
                .reason(&summary)
                .who(&actor.name),
        );
        Ok(summary)
    }
}

/// The service-level order is unchanged (a per-region `default` may reorder).
fn same_order(o: &ServiceRt, sc: &ServiceConfig) -> bool {
    let new = super::regions::default_order(sc);
    o.targets.len() == new.len()
        && o.targets
            .iter()
            .zip(new)
            .all(|(a, b)| &a.name == b.name.get_ref())
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

/// A service's runtime state from its config and what was saved for it.
/// Saved names that no longer exist are dropped with a warning.
pub(super) fn restore(cfg: &ServiceConfig, saved: Option<&ServiceState>, now: Now) -> ServiceRt {
    let targets: Vec<TargetRt> = super::regions::default_order(cfg)
        .into_iter()
        .map(|t| TargetRt {
            name: t.name.get_ref().clone(),
            addresses: t.addresses.get_ref().clone(),
            health: TargetHealth::new(t.check.rise, t.check.fall),
            last: None,
            agreed: None,
            agreed_since: None,
        })
        .collect();
    let find = |n: &str| targets.iter().position(|t| t.name == n);
    let name = cfg.name.get_ref().clone();
    let mut active = 0;
    let mut pin = None;
    let mut drains = BTreeMap::new();
    let mut drill = None;
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
        drill = saved
            .drill
            .as_ref()
            .and_then(|d| restore_drill(&name, d, find(&d.target), find(&d.previous), now));
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
        drill,
        all_down_alarm: false,
        agreed: false,
        config: cfg.targets.get_ref().clone(),
        regions: Vec::new(),
        slots: 1,
    }
}
