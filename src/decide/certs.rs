//! Certificate readiness: which standby targets' TLS certificates would
//! break a failover, from the periodic audit ([`crate::monitor::certs`]).
//!
//! Owns: the rule (a target other than the service's active one whose
//! certificate is not valid for the service's name, expired, or has fewer
//! days left than the warning threshold, at any of its addresses; an
//! unreachable target is left to the health checks) and the memory of what
//! was already reported, so each (service, target, problem) becomes one
//! [`Event`] (`cert_not_ready`) and not one per audit. A problem that goes
//! away is forgotten, so it is reported again if it comes back. The memory
//! holds only what the latest audit still shows, so it stays bounded by the
//! configured targets.

use std::collections::{BTreeSet, HashMap};

use super::{Event, EventCause, EventKind};
use crate::monitor::certs::CertCheck;

/// What has been reported and still holds.
#[derive(Debug, Default)]
pub struct Readiness {
    reported: BTreeSet<(String, String, &'static str)>,
}

impl Readiness {
    /// Compare one audit (`checks`) with the active targets (service name →
    /// target name); the events to send, each new problem once.
    pub fn review(
        &mut self,
        checks: &[CertCheck],
        active: &HashMap<String, String>,
        now: u64,
    ) -> Vec<Event> {
        let mut current: BTreeSet<(String, String, &'static str)> = BTreeSet::new();
        let mut events = Vec::new();
        for c in checks {
            let Some(problem) = c.problem() else { continue };
            if problem == "unreachable" {
                continue;
            }
            let key = (c.service.clone(), c.target.clone(), problem);
            if !current.insert(key.clone()) {
                continue; // another address of the same target, same problem
            }
            let standby = active.get(&c.service).is_some_and(|a| *a != c.target);
            if !standby || self.reported.contains(&key) {
                continue;
            }
            let detail = match (&c.error, c.days_left) {
                (Some(e), _) => e.clone(),
                (None, Some(d)) => format!("{d} days left"),
                (None, None) => String::new(),
            };
            events.push(
                Event::new(now, EventKind::CertNotReady, EventCause::Certificate)
                    .service(&c.service)
                    .to_target(&c.target)
                    .reason(format!(
                        "a failover to {} would show users a certificate problem for {}: {problem} at {} ({detail})",
                        c.target, c.name, c.address
                    ))
                    .who("ggond"),
            );
            self.reported.insert(key);
        }
        // Forget what is fixed (or no longer configured); an active target's
        // problem that was reported while it was standby stays reported.
        self.reported.retain(|k| current.contains(k));
        events
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(target: &str, error: Option<&str>, days: i64, expiring: bool) -> CertCheck {
        CertCheck {
            service: "cic".into(),
            target: target.into(),
            address: "127.0.0.1:443".into(),
            name: "cic.ggon.org".into(),
            valid: error.is_none(),
            error: error.map(String::from),
            days_left: Some(days),
            not_after: None,
            expiring,
        }
    }

    #[test]
    fn each_standby_problem_once_until_fixed() {
        let active: HashMap<String, String> = [("cic".to_string(), "primary".to_string())].into();
        let audit = vec![
            check("primary", Some("certificate not valid for name"), 90, false),
            check("backup", Some("certificate not valid for name"), 90, false),
            check("backup2", Some("certificate expired"), -3, false),
            check("backup3", None, 5, true),
            check("backup4", Some("cannot connect: refused"), 0, false),
        ];
        let mut r = Readiness::default();
        let first = r.review(&audit, &active, 1);
        let got: Vec<(&str, &str)> = first
            .iter()
            .map(|e| (e.to.as_deref().unwrap(), e.kind.as_str()))
            .collect();
        assert_eq!(
            got,
            [
                ("backup", "cert_not_ready"),
                ("backup2", "cert_not_ready"),
                ("backup3", "cert_not_ready")
            ]
        );
        assert!(first[0].reason.contains("wrong name"), "{:?}", first[0]);
        assert!(first[2].reason.contains("expiring"), "{:?}", first[2]);
        assert!(r.review(&audit, &active, 2).is_empty(), "not again");
        // backup is fixed, then broken again: reported again.
        let mut fixed = audit.clone();
        fixed[1] = check("backup", None, 90, false);
        assert!(r.review(&fixed, &active, 3).is_empty());
        assert_eq!(r.review(&audit, &active, 4).len(), 1);
    }
}
