//! Per-region answers: what each region of a per-region service answers,
//! compiled into the snapshot's [`Regional`] table next to the zones.
//!
//! The zone data (what transfers and status show) keeps the service's
//! default answer; a region's answer lives only in the table, which is
//! rebuilt, with every name's answers compiled afresh (the SOA of a NODATA
//! answer follows the zone's serial), each time a snapshot is stored.
//!
//! In a zone ggond signs, each region's RRsets are signed by the zone's
//! signer during that rebuild; the signer keeps their signatures (see
//! [`crate::sign`]'s `extra`), so a region's failover signs only the RRset
//! that changed and any other rebuild signs nothing.

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::sync::Arc;

use hickory_proto::rr::Name;

use super::{unix_now, Publisher};
use crate::config::geo::ActiveMode;
use crate::config::Config;
use crate::geo::RegionMap;
use crate::proto::zone::fqdn_lower;
use crate::snapshot::regions::{compile_name, Regional, SignFn};
use crate::snapshot::Snapshot;

/// The addresses of each region slot (None: the zone's answer), the last
/// entry the default's.
pub type RegionalRecords = Vec<Option<Vec<IpAddr>>>;

pub(super) struct GeoState {
    map: Arc<RegionMap>,
    ecs_zones: Vec<Name>,
    /// Per-region name → (TTL, addresses per slot).
    names: BTreeMap<Name, (u32, RegionalRecords)>,
}

impl Publisher {
    /// Take the regions of `cfg` and their `map` (start and reload);
    /// per-region names are staged again by the caller. Without per-region
    /// services or `ecs` zones there is no table and the query path skips
    /// the geographic step.
    pub fn set_geo(&mut self, cfg: &Config, map: Arc<RegionMap>) {
        let any = cfg
            .services
            .iter()
            .any(|s| s.active == ActiveMode::PerRegion)
            || cfg.zones.iter().any(|z| z.ecs);
        self.geo = any.then(|| GeoState {
            map,
            ecs_zones: cfg
                .zones
                .iter()
                .filter(|z| z.ecs)
                .map(|z| z.name())
                .collect(),
            names: BTreeMap::new(),
        });
    }

    /// Set a per-region name's answers without publishing.
    pub fn stage_regional(&mut self, fqdn: &Name, ttl: u32, records: RegionalRecords) {
        if let Some(g) = &mut self.geo {
            g.names.insert(fqdn_lower(fqdn), (ttl, records));
        }
    }

    /// Change a per-region name's answers; live when this returns.
    pub fn publish_regional(&mut self, fqdn: &Name, ttl: u32, records: RegionalRecords) {
        self.stage_regional(fqdn, ttl, records);
        let snap = (**self.snapshot.load()).clone();
        self.store(snap);
    }

    /// Swap in `snap` with the per-region table compiled for its zones.
    /// Every signer's round of regional signatures starts and ends here,
    /// with or without a table, so that none keeps (and refreshes) the
    /// signatures of answers no longer served.
    pub(super) fn store(&mut self, snap: Snapshot) {
        for s in self.signers.values_mut() {
            s.begin_extra();
        }
        let regional = self.geo.as_ref().map(|g| {
            let now = unix_now();
            let mut names = Vec::with_capacity(g.names.len());
            for (name, (ttl, records)) in &g.names {
                let Some(origin) = zone_of(&self.zones, name) else {
                    continue;
                };
                let zone = &self.zones[&origin].current;
                let mut sign = self
                    .signers
                    .get_mut(&origin)
                    .map(|s| move |n: &Name, t, set: &_| s.sign_extra(n, t, set, now));
                let sign = sign.as_mut().map(|f| f as &mut SignFn<'_>);
                let compiled = compile_name(zone, name, *ttl, records, sign);
                names.push((name.clone(), Arc::new(compiled)));
            }
            Arc::new(Regional::new(g.map.clone(), names, &g.ecs_zones))
        });
        for s in self.signers.values_mut() {
            s.end_extra();
        }
        self.snapshot.store(Arc::new(snap.with_regional(regional)));
    }
}

/// The local zone containing `name` (most specific): a per-region name is
/// always in a local zone (config/geo.rs).
fn zone_of<T>(zones: &BTreeMap<Name, T>, name: &Name) -> Option<Name> {
    zones
        .keys()
        .filter(|o| o.zone_of(name))
        .max_by_key(|o| o.num_labels())
        .cloned()
}

#[cfg(test)]
#[path = "regional_tests.rs"]
mod tests;
