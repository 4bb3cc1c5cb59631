//! Reload and restore: rebuilding service state from a configuration,
//! keeping what an operator decided wherever the service is unchanged.

use std::collections::HashMap;

use tracing::info;

use super::service::{self, Reloaded, ServiceRt};
use super::{Actor, Controller, CtlError, Event, EventCause, EventKind, Now};
use crate::config::Config;
use crate::proto::zone::ZoneData;

impl Controller {
    /// Swap in a validated configuration. A service whose targets and checks
    /// are unchanged keeps all its state (health, pin, drains, drill); a
    /// changed one starts from its saved answers, pins and drains, where
    /// they still fit.
    pub(super) fn reload(
        &mut self,
        cfg: &Config,
        regions: std::sync::Arc<crate::geo::RegionMap>,
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
        let mut counts = HashMap::new();
        let mut services = Vec::new();
        for sc in &cfg.services {
            let (rt, how) = service::reload(cfg, sc, old.remove(sc.name.get_ref()), now);
            *counts.entry(how).or_insert(0usize) += 1;
            services.push(rt);
        }
        let n = |how| counts.get(&how).copied().unwrap_or(0);
        let removed = old.len();
        self.services = services;
        self.index();
        self.publisher
            .reload_zones(zones)
            .map_err(|e| CtlError::BadRequest(e.to_string()))?;
        self.publisher.set_signers(signers);
        self.publisher.set_geo(cfg, regions);
        for s in &self.services {
            if s.is_regional() {
                self.publisher
                    .stage_regional(&s.fqdn, s.ttl, s.regional_records());
            }
            self.publisher.stage(&s.fqdn, s.records(s.active()));
        }
        self.publisher.publish_reload();
        self.persist_or_log();
        let summary = format!(
            "{} services kept their state ({} of them with a changed ttl, failback or \
             hold_down), {} changed targets, checks or orders (health anew), {} new, {removed} removed",
            n(Reloaded::Same) + n(Reloaded::Changed),
            n(Reloaded::Changed),
            n(Reloaded::Rebuilt),
            n(Reloaded::New),
        );
        info!(who = %actor.name, %summary, "configuration reloaded");
        self.record(
            Event::new(now.unix, EventKind::Reload, EventCause::Operator)
                .reason(&summary)
                .who(&actor.name),
        );
        Ok(summary)
    }
}
