//! Failover policy: which target a service should answer with, as a pure function.
//!
//! Owns: the rules. The most preferred available target wins a failover;
//! failback is manual unless configured `auto`, and then only after the
//! preferred target has been healthy for `hold_down`; an operator pin overrides
//! everything; when no target is available the current one keeps being
//! answered (fail-open) and [`all_down`] tells the caller to raise the alarm.
//! Unknown health (no verdict yet) keeps the current target: before the first
//! check results a fresh start answers the primary, and a restart resumes the
//! persisted target without a flap.
//!
//! It must not do I/O, read clocks or hold state: callers pass the service's
//! view and `now`, so every rule is unit-tested without sockets or sleeping.

use std::time::{Duration, Instant};

use crate::config::FailbackMode;

/// What the policy needs to know about one target.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct TargetView {
    /// None: no verdict yet.
    pub healthy: Option<bool>,
    /// When `healthy` last changed.
    pub since: Option<Instant>,
    /// Taken out of selection by an operator (maintenance).
    pub drained: bool,
    /// Treated as failed by a drill, whatever its checks say.
    pub drill_failed: bool,
}

impl TargetView {
    /// Healthy and selectable.
    pub fn available(&self) -> bool {
        self.healthy == Some(true) && !self.drained && !self.drill_failed
    }

    /// Known to be unusable: the service must move away if it can.
    pub fn unusable(&self) -> bool {
        self.healthy == Some(false) || self.drained || self.drill_failed
    }
}

/// One answer's choice: a service's default answer, or one region's.
#[derive(Debug, Clone)]
pub struct ServiceView<'a> {
    pub failback: FailbackMode,
    pub hold_down: Duration,
    /// Every target of the service, by index.
    pub targets: &'a [TargetView],
    /// The targets this answer may use, most preferred first (indices into
    /// `targets`; a region's order may leave some out).
    pub order: &'a [usize],
    /// The target answered now (it may lie outside `order`, where a pin
    /// that has ended left it; it then counts as unusable).
    pub active: usize,
    /// Operator pin: the target to answer whatever health says.
    pub pin: Option<usize>,
}

impl ServiceView<'_> {
    /// The targets in order of preference, with their indices.
    fn preferred(&self) -> impl Iterator<Item = (usize, &TargetView)> + '_ {
        self.order.iter().map(|&i| (i, &self.targets[i]))
    }

    fn first(&self, pred: impl Fn(&TargetView) -> bool) -> Option<usize> {
        self.preferred().find(|(_, t)| pred(t)).map(|(i, _)| i)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Cause {
    /// The active target became unusable.
    Health,
    /// Automatic failback after the hold-down.
    Failback,
    /// An operator remapped, pinned or released.
    Operator,
}

impl std::fmt::Display for Cause {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Cause::Health => "health",
            Cause::Failback => "failback",
            Cause::Operator => "operator",
        })
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Decision {
    pub to: usize,
    pub cause: Cause,
}

/// The change the policy wants now, if any.
pub fn decide(s: &ServiceView<'_>, now: Instant) -> Option<Decision> {
    if let Some(pin) = s.pin {
        return (pin != s.active).then_some(Decision {
            to: pin,
            cause: Cause::Operator,
        });
    }
    let place = s.order.iter().position(|&i| i == s.active);
    let cur = &s.targets[s.active];
    let Some(place) = place.filter(|_| !cur.unusable()) else {
        let best = s.first(TargetView::available)?;
        return (best != s.active).then_some(Decision {
            to: best,
            cause: Cause::Health,
        });
    };
    if s.failback == FailbackMode::Auto && cur.healthy == Some(true) {
        let best = s.order[..place].iter().copied().find(|&i| {
            let t = &s.targets[i];
            t.available()
                && t.since
                    .is_some_and(|since| now.duration_since(since) >= s.hold_down)
        })?;
        return Some(Decision {
            to: best,
            cause: Cause::Failback,
        });
    }
    None
}

/// A fresh choice, as after `release`: the most preferred available target;
/// if none, the most preferred one without a verdict yet (and not drained or
/// drilled); if none, the current one.
pub fn fresh_choice(s: &ServiceView<'_>) -> usize {
    // Before any verdict (just started: a pin that expired while ggond was
    // down), the most preferred target not known to be unusable, as on a
    // fresh start; the checks move it on if it turns out down.
    s.first(TargetView::available)
        .or_else(|| s.first(|t| t.healthy.is_none() && !t.unusable()))
        .unwrap_or(s.active)
}

/// Every target of the order is unusable: the answer is a dead target
/// (fail-open).
pub fn all_down(s: &ServiceView<'_>) -> bool {
    s.preferred().all(|(_, t)| t.unusable())
}

/// When the next automatic failback could happen, for a caller that wants to
/// wake up exactly then.
pub fn next_failback_at(s: &ServiceView<'_>) -> Option<Instant> {
    if s.pin.is_some() || s.failback != FailbackMode::Auto {
        return None;
    }
    s.preferred()
        .take_while(|&(i, _)| i != s.active)
        .filter(|(_, t)| t.available())
        .filter_map(|(_, t)| t.since.map(|since| since + s.hold_down))
        .min()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn up(since: Instant) -> TargetView {
        TargetView {
            healthy: Some(true),
            since: Some(since),
            ..Default::default()
        }
    }
    fn down(since: Instant) -> TargetView {
        TargetView {
            healthy: Some(false),
            since: Some(since),
            ..Default::default()
        }
    }
    const UNKNOWN: TargetView = TargetView {
        healthy: None,
        since: None,
        drained: false,
        drill_failed: false,
    };

    const ORDER: [usize; 4] = [0, 1, 2, 3];

    fn view(targets: &[TargetView], active: usize, failback: FailbackMode) -> ServiceView<'_> {
        ServiceView {
            failback,
            hold_down: Duration::from_secs(60),
            targets,
            order: &ORDER[..targets.len()],
            active,
            pin: None,
        }
    }

    #[test]
    fn before_any_verdict_the_primary_stays() {
        let t = [UNKNOWN, UNKNOWN, UNKNOWN];
        assert_eq!(
            decide(&view(&t, 0, FailbackMode::Manual), Instant::now()),
            None
        );
        assert!(!all_down(&view(&t, 0, FailbackMode::Manual)));
    }

    #[test]
    fn failover_goes_to_the_most_preferred_healthy_target() {
        let t0 = Instant::now();
        let t = [down(t0), down(t0), up(t0), up(t0)];
        let d = decide(&view(&t, 0, FailbackMode::Manual), t0).unwrap();
        assert_eq!(
            d,
            Decision {
                to: 2,
                cause: Cause::Health
            }
        );
        // A backup with no verdict yet is not a failover target.
        let t = [down(t0), UNKNOWN, up(t0)];
        assert_eq!(
            decide(&view(&t, 0, FailbackMode::Manual), t0).unwrap().to,
            2
        );
    }

    #[test]
    fn manual_failback_stays_on_the_backup() {
        let t0 = Instant::now();
        let later = t0 + Duration::from_secs(3600);
        let t = [up(t0), up(t0)];
        assert_eq!(decide(&view(&t, 1, FailbackMode::Manual), later), None);
    }

    #[test]
    fn auto_failback_waits_for_the_hold_down() {
        let t0 = Instant::now();
        let t = [up(t0), up(t0), up(t0)];
        let v = view(&t, 2, FailbackMode::Auto);
        assert_eq!(decide(&v, t0 + Duration::from_secs(59)), None);
        assert_eq!(next_failback_at(&v), Some(t0 + Duration::from_secs(60)));
        assert_eq!(
            decide(&v, t0 + Duration::from_secs(60)),
            Some(Decision {
                to: 0,
                cause: Cause::Failback
            })
        );
    }

    #[test]
    fn a_flapping_primary_never_gets_traffic_back() {
        // The primary's healthy spell restarts at every flap, so with a
        // hold-down longer than its spells it is never chosen.
        let t0 = Instant::now();
        let mut now = t0;
        for i in 0..20 {
            now += Duration::from_secs(30);
            let primary = if i % 2 == 0 { up(now) } else { down(now) };
            let t = [primary, up(t0)];
            let v = view(&t, 1, FailbackMode::Auto);
            assert_eq!(decide(&v, now + Duration::from_secs(29)), None);
        }
    }

    #[test]
    fn all_down_keeps_the_current_target_and_alarms() {
        let t0 = Instant::now();
        let t = [down(t0), down(t0)];
        let v = view(&t, 1, FailbackMode::Manual);
        assert_eq!(decide(&v, t0), None);
        assert!(all_down(&v));
        // Recovery goes to the most preferred one that comes back.
        let t = [down(t0), down(t0), up(t0)];
        assert_eq!(
            decide(&view(&t, 1, FailbackMode::Manual), t0).unwrap().to,
            2
        );
        let t = [up(t0), down(t0), up(t0)];
        assert_eq!(
            decide(&view(&t, 1, FailbackMode::Manual), t0).unwrap().to,
            0
        );
    }

    #[test]
    fn a_pin_overrides_health() {
        let t0 = Instant::now();
        let t = [up(t0), down(t0)];
        let mut v = view(&t, 0, FailbackMode::Auto);
        v.pin = Some(1);
        assert_eq!(
            decide(&v, t0),
            Some(Decision {
                to: 1,
                cause: Cause::Operator
            })
        );
        v.active = 1;
        assert_eq!(decide(&v, t0 + Duration::from_secs(999)), None);
    }

    #[test]
    fn drained_and_drilled_targets_are_left() {
        let t0 = Instant::now();
        let mut t = [up(t0), up(t0)];
        t[0].drained = true;
        assert_eq!(
            decide(&view(&t, 0, FailbackMode::Manual), t0).unwrap().to,
            1
        );
        t[0].drained = false;
        t[0].drill_failed = true;
        assert_eq!(
            decide(&view(&t, 0, FailbackMode::Manual), t0).unwrap().to,
            1
        );
        assert_eq!(fresh_choice(&view(&t, 0, FailbackMode::Manual)), 1);
    }

    #[test]
    fn release_chooses_afresh() {
        let t0 = Instant::now();
        let t = [up(t0), up(t0)];
        assert_eq!(fresh_choice(&view(&t, 1, FailbackMode::Manual)), 0);
        let t = [down(t0), UNKNOWN];
        assert_eq!(fresh_choice(&view(&t, 1, FailbackMode::Manual)), 1);
        // Before any verdict (just started): the most preferred, not the current.
        let t = [UNKNOWN, UNKNOWN, UNKNOWN];
        assert_eq!(fresh_choice(&view(&t, 2, FailbackMode::Manual)), 0);
        // A known-healthy target still wins over one without a verdict.
        let t = [UNKNOWN, up(t0), UNKNOWN];
        assert_eq!(fresh_choice(&view(&t, 2, FailbackMode::Manual)), 1);
    }
}
