//! The key policy's driver (single node): on each tick, begin the rolls
//! whose keys are past their lifetime, hand the parent's servers' answers
//! to the rolls waiting for a DS, and ask those servers again when a check
//! is due. Deciding is the signer's pure step functions; asking is
//! [`crate::publish::keypolicy::ask_parent`], on the runtime (never on the
//! controller's thread, which must not wait on the network); its answer is
//! taken at the next tick. Every step is a `key_roll` event in the history.
//!
//! In cluster mode the policy is not run (as `ggon-ctl dnssec roll` is
//! refused there: a new key would exist on one node only), and the log says
//! so once.

use std::collections::HashSet;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use hickory_proto::rr::Name;
use tracing::{info, warn};

use super::{Controller, Event, EventCause, EventKind, Now, Role};
use crate::publish::RollStepError;
use crate::sign::roll::DsCheck;

/// How long one parent server may take to answer.
const ASK_TIMEOUT: Duration = Duration::from_secs(5);

/// Parent checks under way and their answers, waiting for the next tick.
#[derive(Default)]
pub(super) struct ParentChecks {
    answers: Arc<Mutex<Vec<(Name, DsCheck)>>>,
    asking: HashSet<Name>,
    /// Cluster mode: the log has said the policy is not run.
    said_suspended: bool,
}

impl Controller {
    /// The key policy's turn (from the tick).
    pub(super) fn key_policy(&mut self, now: Now) {
        if self.suspended() {
            if self.parent_checks.said_suspended {
                return;
            }
            let zones: Vec<String> = self
                .publisher
                .dnssec_views(true)
                .into_iter()
                .filter(|v| v.policy.is_some())
                .map(|v| v.zone)
                .collect();
            if !zones.is_empty() {
                warn!(zones = %zones.join(", "),
                    "DNSSEC key policy not run: this node is in a cluster, where key rolls are \
                     refused (a new key would exist on one node only); roll by config instead");
                self.parent_checks.said_suspended = true;
            }
            return;
        }
        let answers = std::mem::take(&mut *self.parent_checks.answers.lock().expect("answers"));
        for (zone, check) in answers {
            self.parent_checks.asking.remove(&zone);
            if let Some(step) = self.publisher.parent_checked(&zone, check, now.unix) {
                self.record_roll(now, step);
            }
        }
        for step in self.publisher.key_policy_tick(now.unix) {
            self.record_roll(now, step);
        }
        for q in self.publisher.parent_questions(now.unix) {
            if self.parent_checks.asking.contains(&q.zone) {
                continue;
            }
            let Ok(rt) = tokio::runtime::Handle::try_current() else {
                // Unit tests drive the controller without a runtime.
                continue;
            };
            self.parent_checks.asking.insert(q.zone.clone());
            let answers = self.parent_checks.answers.clone();
            rt.spawn(async move {
                let check = crate::publish::keypolicy::ask_parent(&q, ASK_TIMEOUT).await;
                tracing::debug!(zone = %q.zone, said = %check.summary(q.new_tag), "parent DS check");
                answers.lock().expect("answers").push((q.zone, check));
            });
        }
    }

    /// Cluster mode (or a role not yet single): the policy is not run.
    pub(super) fn suspended(&self) -> bool {
        self.shared.is_some() || self.role != Role::Single
    }

    /// Every signed zone's keys, roll and key policy.
    pub(super) fn dnssec_status(&self) -> Vec<crate::sign::ZoneKeysView> {
        self.publisher.dnssec_views(self.suspended())
    }

    /// A key-roll step (or its failure) in the log and the history.
    pub(super) fn record_roll(&mut self, now: Now, step: Result<String, RollStepError>) {
        let event = Event::new(now.unix, EventKind::KeyRoll, EventCause::Publisher);
        match step {
            Ok(what) => {
                info!("{what}");
                self.record(event.reason(&what).who("ggond"));
            }
            Err(e) => {
                warn!("key roll: {e}");
                self.record(
                    event
                        .reason(format!("key roll step failed: {e}"))
                        .who("ggond"),
                );
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::tests::{rig, Rig};
    use super::*;
    use crate::sign::policy::KeyPolicy;
    use crate::sign::{keys, KeyState, Policy, Signer, ZoneKey};

    /// A rig whose zone is signed with a key policy (ZSK lifetime 10 s).
    fn signed_rig() -> (Rig, Name) {
        let mut r = rig("manual");
        let origin = Name::from_ascii("ggon.org.").unwrap();
        let dir = r.dir.path().join("keys");
        std::fs::create_dir_all(&dir).unwrap();
        let k = keys::generate("ggon.org", keys::ECDSAP256SHA256, true, &dir).unwrap();
        let z = keys::generate("ggon.org", keys::ECDSAP256SHA256, false, &dir).unwrap();
        let policy = Policy {
            key_policy: Some(KeyPolicy {
                zsk_lifetime: 10,
                ksk_lifetime: None,
                parent_servers: vec![],
                check_interval: 1,
                parent_propagation: 1,
                parent_ds_ttl: None,
            }),
            ..Policy::default()
        };
        let keys = vec![
            (ZoneKey::load(&k, "ggon.org.").unwrap(), KeyState::Active),
            (ZoneKey::load(&z, "ggon.org.").unwrap(), KeyState::Active),
        ];
        let signer = Signer::new(origin.clone(), keys, policy)
            .with_state_dir(&r.dir.path().join("dnssec"))
            .unwrap();
        r.ctl.publisher.set_signers(vec![signer]);
        (r, origin)
    }

    #[test]
    fn a_zsk_past_its_lifetime_is_rolled_and_recorded() {
        let (mut r, origin) = signed_rig();
        r.ctl.tick(r.at(0));
        r.ctl.tick(r.at(9));
        assert!(r.ctl.publisher.signer(&origin).unwrap().roll().is_none());
        r.ctl.tick(r.at(10));
        let roll = r.ctl.publisher.signer(&origin).unwrap().roll().cloned();
        assert!(roll.as_ref().is_some_and(|r| r.auto), "{roll:?}");
        let h = r.ctl.history.read(None, None, 100);
        assert!(
            h.iter()
                .any(|e| e.kind == EventKind::KeyRoll && e.reason.starts_with("key policy: ZSK")),
            "{h:?}"
        );
    }

    #[test]
    fn the_policy_is_not_run_in_cluster_mode() {
        let (mut r, origin) = signed_rig();
        r.ctl.role = Role::Leader;
        r.ctl.tick(r.at(0));
        r.ctl.tick(r.at(100));
        assert!(r.ctl.parent_checks.said_suspended);
        assert!(r.ctl.publisher.signer(&origin).unwrap().roll().is_none());
        let views = r.ctl.publisher.dnssec_views(r.ctl.suspended());
        assert!(views[0].policy.as_ref().is_some_and(|p| p.suspended));
    }
}
