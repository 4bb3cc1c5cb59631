//! A cluster leader's health decisions: written to the shared store
//! before they are answered (`Controller::written_then_published`).

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use super::state::PersistedState;
use super::tests::{answer, rig, Rig};
use super::*;

/// The shared store as the controller sees it: takes a write, or refuses
/// it as etcd does when its outcome is unknown.
#[derive(Clone, Default)]
struct Store {
    refuse: Arc<AtomicBool>,
    saved: Arc<Mutex<Vec<PersistedState>>>,
}

impl SharedState for Store {
    fn save(&self, state: &PersistedState) -> Result<(), SharedError> {
        if self.refuse.load(Ordering::SeqCst) {
            return Err(SharedError::Unknown("request timed out".into()));
        }
        self.saved.lock().unwrap().push(state.clone());
        Ok(())
    }
    fn record(&self, _: &Event) {}
    fn append_zone(&self, _: &str, _: &crate::publish::JournalEntry) -> Result<(), SharedError> {
        Ok(())
    }
    fn put_keyset(
        &self,
        _: &str,
        _: &crate::sign::SharedKeySet,
        _: i64,
    ) -> Result<i64, SharedError> {
        Ok(1)
    }
}

/// A leader of a cluster whose agreed verdicts say every target is up.
fn leader() -> (Rig, Store) {
    let mut r = rig("manual");
    let store = Store::default();
    r.ctl.shared = Some(Box::new(store.clone()));
    r.ctl.index();
    r.ctl.role = Role::Leader;
    r.ctl.set_verdicts(verdicts(true), r.at(1));
    (r, store)
}

fn verdicts(primary_up: bool) -> Verdicts {
    ["primary", "backup", "backup2"]
        .into_iter()
        .map(|t| ("cic".into(), t.into(), Some(t != "primary" || primary_up)))
        .collect()
}

fn answered(r: &Rig) -> String {
    answer(&r.snap, "cic.ggon.org.", "127.0.0.1")
}

fn serial(r: &Rig) -> u32 {
    r.ctl.publisher.serials()["ggon.org."]
}

#[test]
fn a_health_decision_is_answered_once_written_under_the_serial_it_was_written_with() {
    let (mut r, store) = leader();
    assert_eq!(answered(&r), "127.0.0.11");
    let before = serial(&r);
    r.ctl.set_verdicts(verdicts(false), r.at(2));
    assert_eq!(answered(&r), "127.0.0.12");
    let saved = store.saved.lock().unwrap().last().cloned().unwrap();
    assert_eq!(saved.services["cic"].active, "backup");
    assert!(serial(&r) > before);
    assert_eq!(saved.serials["ggon.org."], serial(&r));
}

#[test]
fn a_health_decision_the_store_did_not_take_is_undone_and_made_again_once_it_does() {
    let (mut r, store) = leader();
    let before = serial(&r);
    store.refuse.store(true, Ordering::SeqCst);
    r.ctl.set_verdicts(verdicts(false), r.at(2));
    assert_eq!(
        answered(&r),
        "127.0.0.11",
        "not answered before it is written"
    );
    assert_eq!(
        serial(&r),
        before,
        "no serial given to contents etcd may not hold"
    );
    assert_eq!(
        r.active(),
        "primary",
        "the switch is undone, not kept in memory"
    );
    // Still not taken at the next tick: still undone.
    let now = r.at(3);
    r.ctl.in_one_write(|c| c.tick(now));
    assert_eq!(answered(&r), "127.0.0.11");
    // Taken: made again at the next tick, and answered.
    store.refuse.store(false, Ordering::SeqCst);
    let now = r.at(4);
    r.ctl.in_one_write(|c| c.tick(now));
    assert_eq!(answered(&r), "127.0.0.12");
    assert_eq!(r.active(), "backup");
    let saved = store.saved.lock().unwrap().last().cloned().unwrap();
    assert_eq!(saved.services["cic"].active, "backup");
    assert_eq!(saved.serials["ggon.org."], serial(&r));
}
