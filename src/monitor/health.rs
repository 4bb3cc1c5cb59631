//! Health state: turns a stream of check outcomes into healthy / unhealthy.
//!
//! Owns: rise/fall damping per target (`rise` consecutive successes to become
//! healthy, `fall` consecutive failures to become unhealthy) and when the
//! current state began. It must not run checks (that is [`crate::monitor`]) or
//! choose targets (that is [`crate::decide::policy`]). Time is passed in, so it is
//! tested without clocks.

use std::time::Instant;

#[derive(Debug, Clone)]
pub struct TargetHealth {
    rise: u32,
    fall: u32,
    /// None until enough results have arrived to decide.
    healthy: Option<bool>,
    ok_run: u32,
    fail_run: u32,
    /// When `healthy` last changed.
    since: Option<Instant>,
}

impl TargetHealth {
    pub fn new(rise: u32, fall: u32) -> Self {
        TargetHealth {
            rise: rise.max(1),
            fall: fall.max(1),
            healthy: None,
            ok_run: 0,
            fail_run: 0,
            since: None,
        }
    }

    /// Record one check result; returns the new state if it changed.
    pub fn observe(&mut self, ok: bool, now: Instant) -> Option<bool> {
        if ok {
            self.ok_run = self.ok_run.saturating_add(1);
            self.fail_run = 0;
        } else {
            self.fail_run = self.fail_run.saturating_add(1);
            self.ok_run = 0;
        }
        let next = if self.ok_run >= self.rise {
            Some(true)
        } else if self.fail_run >= self.fall {
            Some(false)
        } else {
            self.healthy
        };
        if next != self.healthy {
            self.healthy = next;
            self.since = Some(now);
            next
        } else {
            None
        }
    }

    pub fn healthy(&self) -> Option<bool> {
        self.healthy
    }

    /// Since when the current state has held (None before the first verdict).
    pub fn since(&self) -> Option<Instant> {
        self.since
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn rise_and_fall_damp_flaps() {
        let t0 = Instant::now();
        let at = |s| t0 + Duration::from_secs(s);
        let mut h = TargetHealth::new(2, 3);
        assert_eq!(h.healthy(), None);
        assert_eq!(h.observe(true, at(0)), None);
        assert_eq!(h.observe(true, at(1)), Some(true));
        assert_eq!(h.since(), Some(at(1)));
        // Two failures are not enough; a success resets the run.
        assert_eq!(h.observe(false, at(2)), None);
        assert_eq!(h.observe(false, at(3)), None);
        assert_eq!(h.observe(true, at(4)), None);
        assert_eq!(h.observe(false, at(5)), None);
        assert_eq!(h.observe(false, at(6)), None);
        assert_eq!(h.observe(false, at(7)), Some(false));
        assert_eq!(h.healthy(), Some(false));
        // One success after going down is not enough to come back.
        assert_eq!(h.observe(true, at(8)), None);
        assert_eq!(h.observe(false, at(9)), None);
        assert_eq!(h.healthy(), Some(false));
        assert_eq!(h.since(), Some(at(7)));
    }

    #[test]
    fn starts_unknown_then_down() {
        let t0 = Instant::now();
        let mut h = TargetHealth::new(1, 1);
        assert_eq!(h.observe(false, t0), Some(false));
    }
}
