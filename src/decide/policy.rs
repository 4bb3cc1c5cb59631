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
//! Settling: when the service comes back from all-down, its targets race
//! each other's checks, and with failback `manual` the first to pass would
//! keep the service for good. So the more preferred targets get one check
//! round ([`TargetView::round`]), from the moment the first target turned
//! healthy, to report before a less preferred one is settled on. A normal
//! failover (the primary falls while a backup stands healthy) is not
//! delayed: see [`settling_until`].
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
    /// One check round of this target: the longest its checks can lag
    /// behind another target's to the same verdict (interval + `rise` ×
    /// jitter + timeout, [`check_round`]).
    pub round: Duration,
}

/// One check round of a target with this check: a target whose checks
/// started passing at the same moment as another's reaches its `rise`-th
/// success at most one interval (the phase of its schedule) plus `rise`
/// jitters (each interval adds up to one) plus one timeout (how long the
/// check itself may take) later.
pub fn check_round(interval: Duration, jitter: Duration, rise: u32, timeout: Duration) -> Duration {
    interval + jitter * rise.max(1) + timeout
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
        if settling_until(s, best).is_some_and(|until| now < until) {
            return None;
        }
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

/// While the answer must leave an unusable target and `best` is the most
/// preferred available one: until when the more preferred targets are given
/// to report, or None when there is none to wait for.
///
/// The window opens when the first of the available targets turned healthy
/// and lasts the longest round of the more preferred targets that may be
/// on their way up: not drained or drilled, and not fallen since the window
/// opened (a target that failed after a standby came up is not racing it,
/// it failed). So a recovery from all-down (every target racing to its
/// first success) waits at most one round, and a normal failover is not
/// delayed: the primary fell after the backup came up, or the backup has
/// stood healthy for longer than a round and the window closed long ago.
pub fn settling_until(s: &ServiceView<'_>, best: usize) -> Option<Instant> {
    let first = s
        .preferred()
        .filter(|(_, t)| t.available())
        .map(|(_, t)| t.since)
        .min()??;
    let fell_since =
        |t: &TargetView| t.healthy == Some(false) && t.since.is_some_and(|at| at > first);
    let wait = s
        .preferred()
        .take_while(|&(i, _)| i != best)
        .filter(|(_, t)| !t.drained && !t.drill_failed && !fell_since(t))
        .map(|(_, t)| t.round)
        .max()?;
    Some(first + wait)
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
        round: Duration::ZERO,
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

    fn with_round(mut t: TargetView) -> TargetView {
        t.round = Duration::from_secs(2);
        t
    }

    #[test]
    fn after_all_down_the_preferred_targets_get_a_round() {
        let t0 = Instant::now();
        let s = |n| t0 + Duration::from_secs(n);
        // All down since 0; backup2 up at 10: the primary and the backup
        // have until 12 to report.
        let t = [down(t0), down(t0), up(s(10))].map(with_round);
        let v = view(&t, 0, FailbackMode::Manual);
        assert_eq!(settling_until(&v, 2), Some(s(12)));
        assert_eq!(decide(&v, s(11)), None);
        assert_eq!(decide(&v, s(12)).unwrap().to, 2);
        // The primary up within the round wins at once (here the dead
        // answer was the backup's).
        let t = [up(s(11)), down(t0), up(s(10))].map(with_round);
        assert_eq!(
            decide(&view(&t, 1, FailbackMode::Manual), s(11))
                .unwrap()
                .to,
            0
        );
        // The backup up within the round still waits for the primary, in
        // the window opened by backup2 (not a new one).
        let t = [down(t0), up(s(11)), up(s(10))].map(with_round);
        let v = view(&t, 2, FailbackMode::Manual);
        assert_eq!(settling_until(&v, 1), Some(s(12)));
        // From backup2 (active, healthy) nothing moves: manual failback.
        assert_eq!(decide(&v, s(11)), None);
        // A drained or drilled primary is not waited for.
        let mut t = [down(t0), down(t0), up(s(10))].map(with_round);
        t[0].drained = true;
        t[1].drill_failed = true;
        assert_eq!(
            decide(&view(&t, 0, FailbackMode::Manual), s(10))
                .unwrap()
                .to,
            2
        );
    }

    #[test]
    fn a_normal_failover_is_not_delayed() {
        let t0 = Instant::now();
        let s = |n| t0 + Duration::from_secs(n);
        // The primary falls at 10; the backup came up at 9: it fell after
        // the backup stood, it is not racing it.
        let t = [down(s(10)), up(s(9))].map(with_round);
        assert_eq!(
            decide(&view(&t, 0, FailbackMode::Manual), s(10))
                .unwrap()
                .to,
            1
        );
        // The backup healthy for longer than a round.
        let t = [down(s(3)), up(s(0))].map(with_round);
        assert_eq!(
            decide(&view(&t, 0, FailbackMode::Manual), s(3)).unwrap().to,
            1
        );
        // Without a round (the default), nothing ever waits.
        let t = [down(t0), up(s(10))];
        assert_eq!(
            decide(&view(&t, 0, FailbackMode::Manual), s(10))
                .unwrap()
                .to,
            1
        );
    }

    #[test]
    fn a_round_is_interval_jitter_per_rise_and_timeout() {
        let ms = Duration::from_millis;
        assert_eq!(check_round(ms(1000), ms(100), 2, ms(500)), ms(1700));
        assert_eq!(check_round(ms(1000), ms(100), 0, ms(500)), ms(1600));
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
