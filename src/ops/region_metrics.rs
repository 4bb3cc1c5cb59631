//! `/metrics` of where a service's answer sits in its preference order:
//! which target each region answers, and which services (and regions) are
//! answered by a target other than their most preferred one.
//!
//! Why "off preferred" is exported at all: `ggon_service_active_target`
//! names the answered target but not its place in the order, so an alert
//! "this service has been on a backup for an hour" (failback is manual by
//! default: somebody has to bring it back) could not be written without it.
//! Why it is sparse (a series only while a service is off its preferred
//! target): at 30,000 services a dense gauge would add a line per service
//! to every scrape for what is, on a good day, nothing.

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

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ServiceLabels {
    service: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ServiceRegionLabels {
    service: String,
    region: String,
}

/// The place of `active` in `order` (0: the most preferred); a target
/// outside the order (an operator's pin to it) counts as past its end.
fn rank<'a>(order: impl Iterator<Item = &'a str>, active: &str) -> usize {
    let mut n = 0;
    for name in order {
        if name == active {
            return n;
        }
        n += 1;
    }
    n
}

/// `ggon_region_active_target{service,region,target}` (only when there are
/// regions), `ggon_service_off_preferred{service}` and
/// `ggon_region_off_preferred{service,region}`.
pub(super) fn register(reg: &mut Registry, status: &StatusView) {
    let regional = Family::<RegionLabels, Gauge>::default();
    let off = Family::<ServiceLabels, Gauge>::default();
    let region_off = Family::<ServiceRegionLabels, Gauge>::default();
    let mut any = false;
    for s in &status.services {
        // The targets are listed in the default region's order.
        let r = rank(s.targets.iter().map(|t| t.name.as_str()), &s.active);
        if r > 0 {
            off.get_or_create(&ServiceLabels {
                service: s.name.clone(),
            })
            .set(r as i64);
        }
        for reg_status in &s.regions {
            any = true;
            for t in &s.targets {
                regional
                    .get_or_create(&RegionLabels {
                        service: s.name.clone(),
                        region: reg_status.name.clone(),
                        target: t.name.clone(),
                    })
                    .set(i64::from(t.name == reg_status.active));
            }
            let r = rank(
                reg_status.order.iter().map(String::as_str),
                &reg_status.active,
            );
            if r > 0 {
                region_off
                    .get_or_create(&ServiceRegionLabels {
                        service: s.name.clone(),
                        region: reg_status.name.clone(),
                    })
                    .set(r as i64);
            }
        }
    }
    if any {
        reg.register(
            "ggon_region_active_target",
            "Per-region services: 1 for the target a region is answered with, 0 for the others",
            regional,
        );
        reg.register(
            "ggon_region_off_preferred",
            "Per-region services, only while a region is answered by a target other than the first of its order: that target's place in the order (1: the first backup)",
            region_off,
        );
    }
    reg.register(
        "ggon_service_off_preferred",
        "Only while a service is answered by a target other than its most preferred one: that target's place in the order (1: the first backup, 2: the second); no series: on the preferred target",
        off,
    );
}

#[cfg(test)]
mod tests {
    use super::rank;

    #[test]
    fn rank_counts_from_the_most_preferred() {
        let order = ["primary", "backup", "backup2"];
        assert_eq!(rank(order.into_iter(), "primary"), 0);
        assert_eq!(rank(order.into_iter(), "backup2"), 2);
        // Pinned to a target the region's order leaves out: past its end.
        assert_eq!(rank(order[..2].iter().copied(), "backup2"), 2);
    }
}
