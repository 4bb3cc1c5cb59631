//! The key policy's driver (single node): on each tick, begin the rolls
//! whose keys are past their lifetime, hand the parent's servers' answers
//! to the rolls waiting for a DS, and ask those servers again when a check
//! is due. Deciding is the signer's pure step functions; asking is
//! [`crate::publish::keypolicy::ask_parent`], on the runtime (never on the
//! controller's thread, which must not wait on the network); its answer is
//! taken at the next tick. Every step is a `key_roll` event in the history.
//!
//! In a cluster the leader runs it, and only while every key set it signs
//! with is the one etcd holds; its steps are served once etcd holds them
//! (`keyshare.rs`). Followers take the leader's steps from etcd.

use std::collections::HashSet;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use hickory_proto::rr::Name;
use tracing::{info, warn};

#[cfg(test)]
use super::SharedError;
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
    /// What the last failed share of each zone's key set said (said
    /// once, not at every tick).
    pub(super) share_failed: std::collections::BTreeMap<Name, String>,
}

impl Controller {
    /// The key policy's turn (from the tick).
    pub(super) fn key_policy(&mut self, now: Now) {
        if self.suspended() {
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

    /// No key step here now: a follower takes the leader's; a leader
    /// whose key sets are not yet those etcd holds first shares them.
    pub(super) fn suspended(&self) -> bool {
        !self.decides() || (self.cluster_mode() && !self.publisher.keys_in_step())
    }

    /// Every signed zone's keys, roll and key policy.
    pub(super) fn dnssec_status(&self) -> Vec<crate::sign::ZoneKeysView> {
        self.publisher.dnssec_views(self.role == Role::Follower)
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

    /// A cluster's store for the controller alone: key sets are taken
    /// (or refused, as etcd refuses a deposed leader's write) and kept.
    #[derive(Clone, Default)]
    struct Store {
        refuse: Arc<std::sync::atomic::AtomicBool>,
        sets: Arc<Mutex<Vec<crate::sign::SharedKeySet>>>,
    }

    impl crate::decide::SharedState for Store {
        fn save(&self, _: &crate::decide::state::PersistedState) -> Result<(), SharedError> {
            Ok(())
        }
        fn record(&self, _: &Event) {}
        fn append_zone(
            &self,
            _: &str,
            _: &crate::publish::JournalEntry,
        ) -> Result<(), SharedError> {
            Ok(())
        }
        fn put_keyset(
            &self,
            _: &str,
            set: &crate::sign::SharedKeySet,
            _: i64,
        ) -> Result<i64, SharedError> {
            if self.refuse.load(std::sync::atomic::Ordering::Relaxed) {
                return Err(SharedError::Fenced);
            }
            let mut sets = self.sets.lock().unwrap();
            sets.push(set.clone());
            Ok(sets.len() as i64)
        }
    }

    fn leader(r: &mut Rig) -> Store {
        let store = Store::default();
        r.ctl.shared = Some(Box::new(store.clone()));
        r.ctl.publisher.share_keys_first(true);
        r.ctl.role = Role::Leader;
        store
    }

    fn serial(r: &Rig) -> u32 {
        r.ctl.publisher.serials()["ggon.org."]
    }

    /// How many DNSKEY records the zone serves.
    fn served_keys(r: &Rig, origin: &Name) -> usize {
        let s = r.snap.load();
        let data = &s.zone(origin).unwrap().data;
        data.rrsets[origin]
            .get(&hickory_proto::rr::RecordType::DNSKEY)
            .map_or(0, |k| k.rdatas.len())
    }

    #[test]
    fn a_cluster_leader_serves_a_key_step_only_once_the_store_holds_it() {
        let (mut r, origin) = signed_rig();
        let store = leader(&mut r);
        r.ctl.tick(r.at(0));
        // The key set as it was, then with the policy's clocks started.
        assert!(!store.sets.lock().unwrap().is_empty());
        assert!(r.ctl.publisher.keys_in_step());
        assert_eq!(served_keys(&r, &origin), 2);
        store
            .refuse
            .store(true, std::sync::atomic::Ordering::Relaxed);
        r.ctl.tick(r.at(10));
        // Refused: the roll is undone and nothing new is served.
        assert!(r.ctl.publisher.signer(&origin).unwrap().roll().is_none());
        assert_eq!(
            r.ctl
                .publisher
                .signer(&origin)
                .unwrap()
                .view(false)
                .keys
                .len(),
            2
        );
        assert_eq!(served_keys(&r, &origin), 2);
        assert!(r.ctl.parent_checks.share_failed.contains_key(&origin));
        store
            .refuse
            .store(false, std::sync::atomic::Ordering::Relaxed);
        r.ctl.tick(r.at(11));
        let last = store.sets.lock().unwrap().last().cloned().unwrap();
        assert!(last.roll.as_ref().is_some_and(|r| r.auto), "{last:?}");
        assert_eq!(last.keys.len(), 3);
        assert!(last
            .keys
            .iter()
            .all(|k| k.private.contains("Private-key-format")));
        assert_eq!(
            served_keys(&r, &origin),
            3,
            "the new key is served once stored"
        );
    }

    #[test]
    fn a_node_elected_leader_shares_its_key_sets_at_once() {
        // A roll asked right after the election must not find the key sets
        // unshared (it would be refused until the first tick).
        let (mut r, _) = signed_rig();
        let store = Store::default();
        r.ctl.shared = Some(Box::new(store.clone()));
        r.ctl.publisher.share_keys_first(true);
        r.ctl.role = Role::Follower;
        assert!(r.ctl.suspended());
        r.ctl.set_role(Role::Leader, r.at(0));
        assert!(
            !r.ctl.suspended(),
            "the new leader's key sets are not shared"
        );
        assert_eq!(store.sets.lock().unwrap().len(), 1);
    }

    #[test]
    fn a_follower_takes_no_key_step_and_adopts_the_leaders_keys() {
        let (mut a, _) = signed_rig();
        let store = leader(&mut a);
        a.ctl.tick(a.at(0));
        a.ctl.tick(a.at(10));
        let set = store.sets.lock().unwrap().last().cloned().unwrap();
        assert!(set.roll.is_some());

        // Another node, with keys of its own at first.
        let (mut b, origin) = signed_rig();
        b.ctl.shared = Some(Box::new(Store::default()));
        b.ctl.publisher.share_keys_first(true);
        b.ctl.tick(b.at(100));
        assert!(b.ctl.publisher.signer(&origin).unwrap().roll().is_none());
        assert_eq!(served_keys(&b, &origin), 2);
        b.ctl
            .adopt_keysets(vec![("ggon.org.".into(), set.clone(), 7)]);
        let view = b.ctl.publisher.signer(&origin).unwrap().view(true);
        let tags: Vec<u16> = view.keys.iter().map(|k| k.tag).collect();
        let want: Vec<u16> = a
            .ctl
            .publisher
            .signer(&origin)
            .unwrap()
            .view(false)
            .keys
            .iter()
            .map(|k| k.tag)
            .collect();
        assert_eq!(tags, want);
        assert_eq!(
            served_keys(&b, &origin),
            3,
            "signed again with the adopted keys"
        );
        let new = view
            .keys
            .iter()
            .find(|k| k.tag == set.roll.as_ref().unwrap().new_tag)
            .unwrap();
        use std::os::unix::fs::PermissionsExt;
        let private = std::fs::metadata(format!("{}.private", new.file.display())).unwrap();
        assert_eq!(private.permissions().mode() & 0o777, 0o600);
        assert!(new.file.starts_with(b.dir.path()));
        // The same set again changes nothing.
        let again = serial(&b);
        b.ctl.adopt_keysets(vec![("ggon.org.".into(), set, 8)]);
        assert_eq!(serial(&b), again);
    }
}
