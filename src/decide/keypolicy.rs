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
        if self.role != Role::Single {
            let zones: Vec<String> = self
                .publisher
                .dnssec_views(true)
                .into_iter()
                .filter(|v| v.policy.is_some())
                .map(|v| v.zone)
                .collect();
            if !zones.is_empty() && !self.parent_checks.said_suspended {
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
