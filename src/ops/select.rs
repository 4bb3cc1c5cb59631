//! Choosing which services a status answer shows: the filters of
//! `GET /v1/status` (and `ggon-ctl status`) and of the status page, and what
//! counts as a *problem*.
//!
//! Filtering happens in ggond, before the answer is serialized: at 30,000
//! services the whole status is ~27 MB of JSON, which an operator asking
//! "what is wrong now?" mid-incident should not have to download and sift.
//!
//! A service is a **problem** when any of these holds (the order is the
//! order of [`Problem`], worst first):
//! - every target is down (the all-down alarm: ggond keeps answering the
//!   last target, fail-open);
//! - it answers a target other than its most preferred one (the first
//!   target in the config, or for a per-region service, a region answering
//!   other than the first target of that region's order), whatever the
//!   reason: failover, a pin, a drain or a drill. Failback is manual by
//!   default, so "back to normal" needs an operator, who needs to find these;
//! - one of its targets is down (a standby that failed: the next failover
//!   would skip it).
//!
//! A target not checked yet (health unknown) is not a problem.

use crate::decide::requests::{no_such_service, CtlError};
use crate::decide::views::{ServiceStatus, StatusView};

/// Why a service is listed as a problem, worst first.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Problem {
    /// Every target is down.
    AllDown,
    /// Answering (in at least one region) a target other than the most preferred.
    NotPreferred,
    /// At least one target is down.
    TargetDown,
}

impl Problem {
    /// The words the status page shows.
    pub fn words(self) -> &'static str {
        match self {
            Problem::AllDown => "all targets down",
            Problem::NotPreferred => "not on its preferred target",
            Problem::TargetDown => "a target is down",
        }
    }
}

/// The worst problem of a service, or None when it is as configured and
/// every checked target is up.
pub fn problem(s: &ServiceStatus) -> Option<Problem> {
    if s.all_down {
        return Some(Problem::AllDown);
    }
    let preferred = match s.regions.is_empty() {
        true => s.targets.first().is_none_or(|t| t.name == s.active),
        false => s
            .regions
            .iter()
            .all(|r| r.order.first().is_none_or(|t| *t == r.active)),
    };
    if !preferred {
        return Some(Problem::NotPreferred);
    }
    if s.targets.iter().any(|t| t.healthy == Some(false)) {
        return Some(Problem::TargetDown);
    }
    None
}

/// The filters of a status request. Every given filter must hold (AND).
#[derive(Debug, Default, Clone)]
pub struct Filter {
    /// Only these services (by name); empty: every service.
    pub services: Vec<String>,
    /// Only problem services (see the module documentation).
    pub down: bool,
    /// Only per-region services with this region, each showing only that
    /// region's answer.
    pub region: Option<String>,
    /// Only services whose name, DNS name or a target's name contains this
    /// (case-insensitive): the status page's search box.
    pub text: Option<String>,
}

impl Filter {
    /// `service=a,b` as the control API takes it: comma-separated names,
    /// empty parts ignored.
    pub fn names(list: Option<&str>) -> Vec<String> {
        list.map(|l| {
            l.split(',')
                .map(str::trim)
                .filter(|n| !n.is_empty())
                .map(String::from)
                .collect()
        })
        .unwrap_or_default()
    }

    /// Keep the services this filter selects, in their order. A service name
    /// or region that does not exist at all is an error (a typo should not
    /// look like "nothing is wrong"); a filter that matches nothing is not.
    pub fn apply(&self, status: &mut StatusView) -> Result<(), CtlError> {
        for name in &self.services {
            if !status.services.iter().any(|s| s.name == *name) {
                let known = status.services.iter().map(|s| s.name.as_str());
                return Err(CtlError::NotFound(no_such_service(name, known)));
            }
        }
        if let Some(region) = &self.region {
            let known = known_regions(status);
            if !known.iter().any(|r| r == region) {
                return Err(CtlError::NotFound(no_such_region(region, &known)));
            }
        }
        let text = self.text.as_ref().map(|t| t.to_lowercase());
        status.services.retain_mut(|s| {
            if !self.services.is_empty() && !self.services.contains(&s.name) {
                return false;
            }
            if let Some(t) = &text {
                if !matches_text(s, t) {
                    return false;
                }
            }
            if let Some(region) = &self.region {
                s.regions.retain(|r| r.name == *region);
                if s.regions.is_empty() {
                    return false;
                }
            }
            !self.down || problem(s).is_some()
        });
        Ok(())
    }
}

/// Case-insensitive substring of the name, the DNS name or a target name
/// (`needle` already lower case).
fn matches_text(s: &ServiceStatus, needle: &str) -> bool {
    s.name.to_lowercase().contains(needle)
        || s.fqdn.to_lowercase().contains(needle)
        || s.targets
            .iter()
            .any(|t| t.name.to_lowercase().contains(needle))
}

/// Every region name of the per-region services, sorted, once each.
fn known_regions(status: &StatusView) -> Vec<String> {
    let mut names: Vec<String> = status
        .services
        .iter()
        .flat_map(|s| s.regions.iter().map(|r| r.name.clone()))
        .collect();
    names.sort();
    names.dedup();
    names
}

fn no_such_region(name: &str, known: &[String]) -> String {
    if known.is_empty() {
        return format!("no region named `{name}` (no service is per-region)");
    }
    let list: Vec<String> = known.iter().map(|r| format!("`{r}`")).collect();
    format!("no region named `{name}` (regions: {})", list.join(", "))
}

/// Problem services first (worst first), the others after, each group in
/// config order (a stable sort).
pub fn problems_first(services: &mut [ServiceStatus]) {
    services.sort_by_key(|s| problem(s).map_or(u8::MAX, |p| p as u8));
}

#[cfg(test)]
#[path = "select_tests.rs"]
mod tests;
