//! `/metrics` for per-region services: which target each region answers.

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;

use crate::decide::StatusView;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RegionLabels {
    service: String,
    region: String,
    target: String,
}

/// `ggon_region_active_target{service,region,target}`: 1 for the target a
/// region is answered with, 0 for the others (only when there are regions).
pub(super) fn register(reg: &mut Registry, status: &StatusView) {
    let regional = Family::<RegionLabels, Gauge>::default();
    let mut any = false;
    for s in &status.services {
        for r in &s.regions {
            any = true;
            for t in &s.targets {
                regional
                    .get_or_create(&RegionLabels {
                        service: s.name.clone(),
                        region: r.name.clone(),
                        target: t.name.clone(),
                    })
                    .set(i64::from(t.name == r.active));
            }
        }
    }
    if any {
        reg.register(
            "ggon_region_active_target",
            "Per-region services: 1 for the target a region is answered with, 0 for the others",
            regional,
        );
    }
}
