//! The controller without sockets or sleeping: a real state directory
//! (tempdir), a real publisher and snapshot, and time passed in by hand.
//!
//! One suite for both kinds of service: every scenario runs on a plain
//! service (its default region) and on one region of a per-region service,
//! through the same commands (`both!`), and reads the answer the way a
//! client in that region gets it.

use super::requests::{DrainRequest, DrillRequest, RemapRequest};
use super::*;
use crate::proto::zone::ZoneData;
use hickory_proto::rr::Name;
pub(super) use rig::{answer, rig, Rig};
use rig::{config_for, rig_of, to, Kind, ZONE};
use tokio::sync::oneshot;

#[path = "test_rig.rs"]
mod rig;

/// Each scenario as a module with two tests: on a plain service and on
/// region `eu` of a per-region one, through the same calls.
macro_rules! both {
    ($(fn $name:ident($kind:ident) $body:block)*) => {$(
        mod $name {
            use super::*;
            #[test]
            fn plain() {
                body(Kind::Plain)
            }
            #[test]
            fn regional() {
                body(Kind::Regional)
            }
            fn body($kind: Kind) $body
        }
    )*};
}

both! {
fn failover_to_the_next_healthy_and_failback_is_manual(kind) {
    let mut r = rig_of(kind, "manual");
    assert_eq!(r.active(), "primary");
    assert_eq!(r.answered(), "127.0.0.11");
    r.all_up(1);
    r.check("primary", false, 2);
    assert_eq!(r.active(), "backup");
    assert_eq!(r.answered(), "127.0.0.12");
    assert_eq!(r.saved_answer().active, "backup");
    r.check("primary", true, 3);
    r.ctl.tick(r.at(100));
    assert_eq!(r.active(), "backup", "manual failback: stays on the backup");
    assert!(r.kinds().contains(&EventKind::Failover));
}

fn auto_failback_waits_for_the_hold_down(kind) {
    let mut r = rig_of(kind, "auto");
    r.all_up(1);
    r.check("primary", false, 2);
    assert_eq!(r.active(), "backup");
    r.check("primary", true, 3);
    r.ctl.tick(r.at(12));
    assert_eq!(r.active(), "backup", "9 s of health < 10 s hold-down");
    r.ctl.tick(r.at(13));
    assert_eq!(r.active(), "primary");
    assert!(r.kinds().contains(&EventKind::Failback));
}

fn all_down_keeps_the_current_answer_and_raises_the_alarm(kind) {
    let mut r = rig_of(kind, "manual");
    for t in ["primary", "backup", "backup2"] {
        r.check(t, false, 1);
    }
    assert_eq!(r.answered(), "127.0.0.11", "fail-open");
    assert!(r.ctl.status().services[0].all_down);
    r.check("backup2", true, 2);
    assert!(r.kinds().contains(&EventKind::Recovered));
    // The more preferred targets get one check round (5 s interval + 100
    // ms jitter + 2 s timeout) to report before backup2 is settled on.
    r.ctl.tick(r.at(9));
    assert_eq!(r.active(), "primary", "within the round");
    r.ctl.tick(r.at(10));
    assert_eq!(r.active(), "backup2");
    assert_eq!(r.answered(), "127.0.0.13");
    assert!(r.kinds().contains(&EventKind::AllDown));
}

fn after_all_down_the_preferred_target_up_within_a_round_wins(kind) {
    let mut r = rig_of(kind, "manual");
    for t in ["primary", "backup", "backup2"] {
        r.check(t, false, 1);
    }
    r.check("backup2", true, 2);
    r.ctl.tick(r.at(3));
    r.check("backup", true, 4);
    r.ctl.tick(r.at(5));
    assert_eq!(r.active(), "primary", "the primary still has its round");
    r.check("primary", true, 6);
    assert_eq!(r.active(), "primary");
    r.ctl.tick(r.at(60));
    assert_eq!(r.active(), "primary", "and stays on it");
    assert!(!r.kinds().contains(&EventKind::Failover), "no move at all");
}

fn a_failover_to_a_standing_backup_is_not_delayed(kind) {
    let mut r = rig_of(kind, "manual");
    r.all_up(1);
    // backup2 down, then up again just before the primary fails: the
    // backup has stood healthy since 1 s, and the primary fell after it.
    r.check("backup2", false, 2);
    r.check("backup2", true, 3);
    r.check("primary", false, 3);
    assert_eq!(r.active(), "backup");
}

fn remap_pins_persists_and_release_chooses_afresh(kind) {
    let mut r = rig_of(kind, "manual");
    r.all_up(1);
    let v = r.remap(2, to("backup")).unwrap();
    assert!(v.changed);
    assert_eq!(
        (v.from.as_str(), v.to.as_str(), v.mode),
        ("primary", "backup", Mode::Manual)
    );
    assert_eq!(r.answered(), "127.0.0.12");
    let saved = r.saved_answer();
    assert_eq!(saved.pin.as_ref().unwrap().target, "backup");
    assert_eq!(saved.pin.as_ref().unwrap().author, "ops");
    // A pinned service does not fail back, even with the primary healthy.
    r.ctl.tick(r.at(100));
    assert_eq!(r.active(), "backup");
    let v = r.release(101).unwrap();
    assert_eq!((v.to.as_str(), v.mode), ("primary", Mode::Auto));
    assert!(r.saved_answer().pin.is_none());
}

fn remap_refusals_change_nothing(kind) {
    let mut r = rig_of(kind, "manual");
    r.all_up(1);
    r.check("backup", false, 2);
    let e = r.remap(3, to("backup")).unwrap_err();
    assert!(
        matches!(&e, CtlError::Conflict(m) if m.contains("unhealthy") && m.contains("--force"))
    );
    assert!(matches!(
        r.remap(3, to("nowhere")),
        Err(CtlError::NotFound(_))
    ));
    let bad = RemapRequest {
        duration: Some("soon".into()),
        ..to("backup2")
    };
    assert!(matches!(r.remap(3, bad), Err(CtlError::BadRequest(_))));
    let dry = RemapRequest {
        dry_run: true,
        ..to("backup2")
    };
    let v = r.remap(3, dry).unwrap();
    assert!(v.dry_run && v.changed);
    assert_eq!(r.active(), "primary");
    assert!(!r.pinned());
    let forced = RemapRequest {
        force: true,
        ..to("backup")
    };
    assert_eq!(r.remap(4, forced).unwrap().to, "backup");
}

fn a_timed_pin_expires_on_the_wall_clock(kind) {
    let mut r = rig_of(kind, "manual");
    r.all_up(1);
    let timed = RemapRequest {
        duration: Some("30s".into()),
        ..to("backup")
    };
    r.remap(2, timed).unwrap();
    assert_eq!(
        r.saved_answer().pin.as_ref().unwrap().expires,
        Some(r.u0 + 32)
    );
    r.ctl.tick(r.at(31));
    assert_eq!(r.active(), "backup");
    r.ctl.tick(r.at(32));
    assert_eq!(
        r.active(),
        "primary",
        "expired pin: the most preferred healthy target"
    );
    assert!(r.kinds().contains(&EventKind::Expire));
}

fn drain_moves_the_service_and_expires(kind) {
    let mut r = rig_of(kind, "manual");
    r.all_up(1);
    let req = DrainRequest {
        reason: "disk swap".into(),
        duration: Some("60s".into()),
        force: false,
    };
    let v = r.drain(2, "primary", req).unwrap();
    assert_eq!((v.from.as_str(), v.to.as_str()), ("primary", "backup"));
    assert!(v.warning.is_none());
    let d = r.ctl.status().services[0].targets[0]
        .drained
        .clone()
        .unwrap();
    assert_eq!(
        (d.reason.as_str(), d.expires),
        ("disk swap", Some(r.u0 + 62))
    );
    r.ctl.tick(r.at(62));
    assert!(r.ctl.status().services[0].targets[0].drained.is_none());
    let undrain = r.call(63, |reply| Command::Undrain {
        service: "cic".into(),
        target: "primary".into(),
        actor: Actor::new("ops"),
        reply,
    });
    assert!(matches!(undrain, Err(CtlError::Conflict(m)) if m.contains("not drained")));
}

fn draining_the_pinned_target_is_refused_unless_forced(kind) {
    let mut r = rig_of(kind, "manual");
    r.all_up(1);
    r.remap(2, to("primary")).unwrap();
    let e = r.drain(3, "primary", DrainRequest::default()).unwrap_err();
    let CtlError::Conflict(m) = e else {
        panic!("{e:?}")
    };
    assert!(
        m.contains("pinned to `primary`") && m.contains("--force"),
        "{m}"
    );
    // Refused: nothing changed, nothing saved.
    assert_eq!(r.active(), "primary");
    assert!(r.saved().services["cic"].drains.is_empty());
    assert!(r.pinned());
    let forced = DrainRequest {
        force: true,
        ..DrainRequest::default()
    };
    let v = r.drain(4, "primary", forced).unwrap();
    assert_eq!((v.to.as_str(), v.mode), ("backup", Mode::Auto));
    assert_eq!(r.answered(), "127.0.0.12");
    assert!(r.saved_answer().pin.is_none());
    assert!(r.kinds().contains(&EventKind::Release));
}

fn draining_when_nothing_else_is_up_warns_that_traffic_stays(kind) {
    let mut r = rig_of(kind, "manual");
    r.check("primary", true, 1);
    r.check("backup", false, 1);
    r.check("backup2", false, 1);
    let v = r.drain(2, "primary", DrainRequest::default()).unwrap();
    assert!(!v.changed);
    let w = v.warning.expect("a warning");
    assert!(
        w.contains("still answered") && w.contains("NOT left"),
        "{w}"
    );
}

fn a_failure_drill_moves_and_reverts(kind) {
    let mut r = rig_of(kind, "manual");
    r.all_up(1);
    let dry = r.drill_request(2, DrillRequest::default()).unwrap();
    assert_eq!(dry.takeover.as_deref(), Some("backup"));
    assert_eq!(r.active(), "primary", "a dry run changes nothing");
    let v = r.drill(3, "primary", "20s");
    assert_eq!(v.failing, Some(("primary".to_string(), r.u0 + 23)));
    assert_eq!(r.active(), "backup");
    r.ctl.tick(r.at(22));
    assert_eq!(r.active(), "backup");
    r.ctl.tick(r.at(23));
    assert_eq!(r.active(), "primary", "drill over: back where it was");
    let kinds = r.kinds();
    assert!(kinds.contains(&EventKind::DrillStart) && kinds.contains(&EventKind::DrillEnd));
    let no_duration = DrillRequest {
        fail: Some("primary".into()),
        duration: None,
        region: None,
    };
    let e = r.drill_request(30, no_duration);
    assert!(matches!(e, Err(CtlError::BadRequest(_))));
}

fn a_restart_resumes_the_saved_target_pin_and_serial(kind) {
    let mut r = rig_of(kind, "manual");
    r.all_up(1);
    r.remap(2, to("backup2")).unwrap();
    let serial = r.ctl.status().zones[0].serial;
    let r = r.restart_at(3);
    assert_eq!(r.active(), "backup2");
    assert_eq!(r.answered(), "127.0.0.13");
    assert!(r.pinned());
    assert!(
        r.ctl.status().zones[0].serial > serial,
        "serials never go back"
    );
}

fn reload_keeps_state_of_unchanged_services_and_restores_changed_ones(kind) {
    let mut r = rig_of(kind, "manual");
    r.all_up(1);
    r.remap(2, to("backup")).unwrap();
    let zone =
        || vec![ZoneData::parse(ZONE, None, &Name::from_ascii("ggon.org.").unwrap()).unwrap()];
    let summary = r
        .call(3, |reply| Command::Reload {
            config: Box::new(config_for("auto", kind == Kind::Regional)),
            regions: crate::geo::nets_map(&config_for("auto", kind == Kind::Regional)),
            zones: zone(),
            signers: Vec::new(),
            actor: Actor::new("reload"),
            reply,
        })
        .unwrap();
    // Only the failback changed: the state is kept, and the change is said.
    assert!(
        summary.starts_with("1 services kept their state (1 of them with a changed ttl"),
        "{summary}"
    );
    assert_eq!(r.active(), "backup");
    let st = r.ctl.status();
    assert_eq!(st.services[0].targets[0].healthy, Some(true), "health kept");
    // Only the TTL changed: the same, and the answer carries the new TTL.
    let mut ttl = config_for("auto", kind == Kind::Regional);
    ttl.services[0].ttl = 5;
    let summary = r
        .call(3, |reply| Command::Reload {
            regions: crate::geo::nets_map(&ttl),
            config: Box::new(ttl),
            zones: zone(),
            signers: Vec::new(),
            actor: Actor::new("reload"),
            reply,
        })
        .unwrap();
    assert!(summary.contains("(1 of them with a changed ttl"), "{summary}");
    assert_eq!(r.ctl.status().services[0].ttl, 5);
    // A changed target list: state restored from what was saved, health anew.
    let mut changed = config_for("manual", kind == Kind::Regional);
    changed.services[0].targets.get_mut().pop();
    let summary = r
        .call(4, |reply| Command::Reload {
            regions: crate::geo::nets_map(&changed),
            config: Box::new(changed),
            zones: zone(),
            signers: Vec::new(),
            actor: Actor::new("reload"),
            reply,
        })
        .unwrap();
    assert!(
        summary.contains("1 changed targets, checks or orders"),
        "{summary}"
    );
    assert_eq!(r.active(), "backup");
    assert!(r.pinned());
    let st = r.ctl.status();
    assert_eq!(st.services[0].targets.len(), 2);
    assert_eq!(st.services[0].targets[0].healthy, None);
    assert!(r.kinds().contains(&EventKind::Reload));
}

fn a_drill_survives_a_restart_and_ends_at_its_deadline(kind) {
    let mut r = rig_of(kind, "manual");
    r.all_up(1);
    r.drill(2, "primary", "60s");
    assert_eq!(r.active(), "backup");
    let saved = r
        .saved_answer()
        .drill
        .clone()
        .expect("drill saved");
    assert_eq!(
        (saved.until, saved.previous.as_str()),
        (r.u0 + 62, "primary")
    );
    // Down from 10 s to 30 s: the drill goes on for its remaining 32 s.
    let mut r = r.restart_at(30);
    assert_eq!(r.active(), "backup");
    assert_eq!(r.answered(), "127.0.0.12");
    let shown = r.drill_shown();
    assert_eq!(shown.map(|d| d.0), Some("primary".to_string()));
    r.ctl.tick(r.at(61));
    assert_eq!(r.active(), "backup");
    r.ctl.tick(r.at(62));
    assert_eq!(r.active(), "primary", "drill over on time: reverted");
    assert_eq!(r.saved_answer().drill, None);
}

fn a_drill_whose_deadline_passed_while_down_is_reverted_at_start(kind) {
    let mut r = rig_of(kind, "manual");
    r.all_up(1);
    r.drill(2, "primary", "60s");
    assert_eq!(r.active(), "backup");
    let mut r = r.restart_at(300);
    assert_eq!(r.active(), "primary", "reverted before answering anything");
    assert_eq!(r.answered(), "127.0.0.11");
    assert_eq!(r.saved_answer().drill, None);
    let h = r.history();
    let end = h
        .iter()
        .find(|e| e.kind == EventKind::DrillEnd)
        .expect("drill end");
    assert!(
        end.reason.contains("while ggond was down"),
        "{}",
        end.reason
    );
    let back = h.iter().rev().find(|e| e.kind == EventKind::Remap).unwrap();
    assert_eq!(back.to.as_deref(), Some("primary"));
}

fn timed_pins_and_drains_after_a_restart_follow_their_deadlines(kind) {
    // Restarted before the deadline: still pinned; after it: expired at start.
    for (restart, pinned) in [(20, true), (100, false)] {
        let mut r = rig_of(kind, "manual");
        r.all_up(1);
        let timed = RemapRequest {
            duration: Some("60s".into()),
            ..to("backup2")
        };
        r.remap(2, timed).unwrap();
        let mut r = r.restart_at(restart);
        assert_eq!(r.pinned(), pinned);
        assert_eq!(r.active(), if pinned { "backup2" } else { "primary" });
        if !pinned {
            let h = r.history();
            let e = h.iter().find(|e| e.kind == EventKind::Expire).unwrap();
            assert!(e.reason.contains("while ggond was down"), "{}", e.reason);
        }
    }
    let mut r = rig_of(kind, "manual");
    r.all_up(1);
    let req = DrainRequest {
        reason: "disk swap".into(),
        duration: Some("60s".into()),
        force: false,
    };
    r.drain(2, "primary", req).unwrap();
    assert_eq!(r.active(), "backup");
    let mut r = r.restart_at(100);
    assert!(r.saved().services["cic"].drains.is_empty());
    let h = r.history();
    let e = h.iter().find(|e| e.kind == EventKind::Undrain).unwrap();
    assert!(e.reason.contains("while ggond was down"), "{}", e.reason);
}
}

#[path = "batch_tests.rs"]
mod batch;

#[test]
fn an_unknown_service_is_refused_with_the_list_of_services() {
    let r = rig("manual");
    let e = r.ctl.service_index("cicc").unwrap_err();
    assert_eq!(
        e,
        CtlError::NotFound("no service named `cicc` (services: `cic`)".into())
    );
    let many: Vec<String> = (0..13).map(|i| format!("s{i}")).collect();
    let m = requests::no_such_service("x", many.iter().map(String::as_str));
    assert!(m.ends_with("`s8`, `s9` and 3 more)"), "{m}");
}

both! {
fn moves_caused_by_a_drain_or_a_drill_are_recorded_as_theirs(kind) {
    let mut r = rig_of(kind, "manual");
    r.all_up(1);
    let moves = |r: &mut Rig| -> Vec<(EventKind, EventCause, String, String)> {
        r.history()
            .into_iter()
            .filter(|e| e.from.is_some() && e.to.is_some() && e.from != e.to)
            .filter(|e| e.region == r.kind.region())
            .map(|e| (e.kind, e.cause, e.who, e.to.unwrap_or_default()))
            .collect()
    };
    r.drill(2, "primary", "30s");
    r.ctl.tick(r.at(40));
    assert_eq!(r.active(), "primary", "reverted");
    let drain = DrainRequest {
        reason: "disk swap".into(),
        ..DrainRequest::default()
    };
    r.drain(41, "primary", drain).unwrap();
    assert_eq!(
        moves(&mut r),
        [
            (EventKind::Failover, EventCause::Drill, "ops".to_string(), "backup".to_string()),
            (EventKind::Remap, EventCause::Drill, "ops".to_string(), "primary".to_string()),
            (EventKind::Failover, EventCause::Drain, "ops".to_string(), "backup".to_string()),
        ]
    );
    // A real failure is still the health's, by ggond.
    r.check("backup", false, 42);
    let last = moves(&mut r).pop().unwrap();
    assert_eq!((last.1, last.2.as_str()), (EventCause::Health, "ggond"));
}
}
