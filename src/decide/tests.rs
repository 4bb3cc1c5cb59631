//! The controller without sockets or sleeping: a real state directory
//! (tempdir), a real publisher and snapshot, and time passed in by hand.

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use arc_swap::ArcSwap;
use hickory_proto::rr::Name;
use tokio::sync::oneshot;

use super::requests::{DrainRequest, DrillRequest, HistoryQuery, RemapRequest};
use super::*;
use crate::monitor::ProbeKey;
use crate::proto::zone::ZoneData;
use crate::snapshot::Snapshot;

const ZONE: &str = "@ 60 IN SOA ns1 h 10 1 1 1 1\n@ 60 IN NS ns1\nns1 60 IN A 127.0.0.1\n";

fn config(failback: &str) -> Config {
    let text = format!(
        r#"
[[zone]]
origin = "ggon.org"
file = "zones/ggon.org.zone"

[[service]]
name = "cic"
fqdn = "cic.ggon.org"
failback = "{failback}"
hold_down = "10s"

[[service.target]]
name = "primary"
addresses = ["127.0.0.11"]
check = {{ type = "tcp", address = "127.0.0.11:8080", rise = 1, fall = 1 }}

[[service.target]]
name = "backup"
addresses = ["127.0.0.12"]
check = {{ type = "tcp", address = "127.0.0.12:8080", rise = 1, fall = 1 }}

[[service.target]]
name = "backup2"
addresses = ["127.0.0.13"]
check = {{ type = "tcp", address = "127.0.0.13:8080", rise = 1, fall = 1 }}
"#
    );
    Config::parse(&text, Path::new("test.toml")).expect("valid test config")
}

/// A controller over a tempdir, and the clock it is driven with.
struct Rig {
    ctl: Controller,
    snap: Arc<ArcSwap<Snapshot>>,
    dir: tempfile::TempDir,
    t0: Instant,
    u0: u64,
}

fn start(cfg: &Config, dir: tempfile::TempDir) -> Rig {
    start_at(cfg, dir, None)
}

/// As [`start`], at `secs` on the rig's clocks when given (a restart).
fn start_at(cfg: &Config, dir: tempfile::TempDir, secs: Option<u64>) -> Rig {
    let (t0, u0) = (Instant::now(), 1_800_000_000);
    let now = secs.map_or_else(Now::system, |s| Now {
        at: t0 + Duration::from_secs(s),
        unix: u0 + s,
    });
    let mut cfg = cfg.clone();
    cfg.server.state_dir = dir.path().to_path_buf();
    let snap = Arc::new(ArcSwap::from_pointee(Snapshot::default()));
    let mut publisher = Publisher::new(snap.clone());
    let origin = Name::from_ascii("ggon.org.").unwrap();
    let zone = ZoneData::parse(ZONE, None, &origin).unwrap();
    let store = StateStore::new(dir.path()).unwrap();
    // As the daemon does: the zone resumes after its last published serial.
    let last = match store.load() {
        Loaded::Ok(s) => s.serials.get("ggon.org.").copied(),
        _ => None,
    };
    publisher.add_zone(zone, last).unwrap();
    Rig {
        ctl: Controller::new_at(&cfg, publisher, store, now),
        snap,
        dir,
        t0,
        u0,
    }
}

fn rig(failback: &str) -> Rig {
    start(&config(failback), tempfile::tempdir().unwrap())
}

impl Rig {
    fn at(&self, secs: u64) -> Now {
        Now {
            at: self.t0 + Duration::from_secs(secs),
            unix: self.u0 + secs,
        }
    }

    fn check(&mut self, target: &str, ok: bool, secs: u64) {
        let obs = Observation {
            key: ProbeKey {
                service: "cic".into(),
                target: target.into(),
            },
            outcome: CheckOutcome {
                ok,
                detail: if ok { "connected" } else { "refused" }.into(),
                latency: Duration::from_millis(1),
                at: SystemTime::now(),
            },
        };
        self.ctl.observe(obs, self.at(secs));
    }

    fn all_up(&mut self, secs: u64) {
        for t in ["primary", "backup", "backup2"] {
            self.check(t, true, secs);
        }
    }

    fn active(&self) -> String {
        self.ctl.status().services[0].active.clone()
    }

    /// The addresses the snapshot answers for cic (what DNS clients see).
    fn answered(&self) -> String {
        let snap = self.snap.load();
        let zone = snap
            .zone(&Name::from_ascii("ggon.org.").unwrap())
            .expect("zone served");
        let name = Name::from_ascii("cic.ggon.org.").unwrap();
        let set = zone.data.rrsets[&name][&hickory_proto::rr::RecordType::A].clone();
        set.rdatas
            .iter()
            .map(|r| r.to_string())
            .collect::<Vec<_>>()
            .join(",")
    }

    fn call<T>(&mut self, secs: u64, make: impl FnOnce(oneshot::Sender<T>) -> Command) -> T {
        let (tx, mut rx) = oneshot::channel();
        let now = self.at(secs);
        self.ctl.command(make(tx), now);
        rx.try_recv().expect("the controller answers at once")
    }

    fn remap(&mut self, secs: u64, req: RemapRequest) -> Result<ChangeView, CtlError> {
        self.call(secs, |reply| Command::Remap {
            service: "cic".into(),
            request: req,
            actor: Actor::new("ops"),
            reply,
        })
    }

    fn drain(
        &mut self,
        secs: u64,
        target: &str,
        req: DrainRequest,
    ) -> Result<ChangeView, CtlError> {
        self.call(secs, |reply| Command::Drain {
            service: "cic".into(),
            target: target.into(),
            request: req,
            actor: Actor::new("ops"),
            reply,
        })
    }

    fn kinds(&mut self) -> Vec<EventKind> {
        self.history().into_iter().map(|e| e.kind).collect()
    }

    /// Stop (as a crash would: nothing more is saved) and start again on
    /// the same state directory at `secs`.
    fn restart_at(mut self, secs: u64) -> Rig {
        let dir = std::mem::replace(&mut self.dir, tempfile::tempdir().unwrap());
        drop(self);
        start_at(&config("manual"), dir, Some(secs))
    }

    fn history(&mut self) -> Vec<Event> {
        self.call(0, |reply| Command::History {
            query: HistoryQuery {
                limit: 100,
                ..HistoryQuery::default()
            },
            reply,
        })
    }

    fn drill(&mut self, secs: u64, target: &str, duration: &str) -> DrillView {
        let request = DrillRequest {
            fail: Some(target.into()),
            duration: Some(duration.into()),
            region: None,
        };
        self.drill_request(secs, request).unwrap()
    }

    fn drill_request(&mut self, secs: u64, request: DrillRequest) -> Result<DrillView, CtlError> {
        self.call(secs, |reply| Command::Drill {
            service: "cic".into(),
            request,
            actor: Actor::new("ops"),
            reply,
        })
    }

    fn saved(&self) -> PersistedState {
        match StateStore::new(self.dir.path()).unwrap().load() {
            Loaded::Ok(s) => s,
            other => panic!("state file: {other:?}"),
        }
    }
}

fn to(target: &str) -> RemapRequest {
    RemapRequest {
        to: target.into(),
        ..RemapRequest::default()
    }
}

#[test]
fn failover_to_the_next_healthy_and_failback_is_manual() {
    let mut r = rig("manual");
    assert_eq!(r.active(), "primary");
    assert_eq!(r.answered(), "127.0.0.11");
    r.all_up(1);
    r.check("primary", false, 2);
    assert_eq!(r.active(), "backup");
    assert_eq!(r.answered(), "127.0.0.12");
    assert_eq!(r.saved().services["cic"].active, "backup");
    r.check("primary", true, 3);
    r.ctl.tick(r.at(100));
    assert_eq!(r.active(), "backup", "manual failback: stays on the backup");
    assert!(r.kinds().contains(&EventKind::Failover));
}

#[test]
fn auto_failback_waits_for_the_hold_down() {
    let mut r = rig("auto");
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

#[test]
fn all_down_keeps_the_current_answer_and_raises_the_alarm() {
    let mut r = rig("manual");
    for t in ["primary", "backup", "backup2"] {
        r.check(t, false, 1);
    }
    assert_eq!(r.answered(), "127.0.0.11", "fail-open");
    assert!(r.ctl.status().services[0].all_down);
    r.check("backup2", true, 2);
    assert_eq!(r.active(), "backup2");
    let kinds = r.kinds();
    assert!(kinds.contains(&EventKind::AllDown) && kinds.contains(&EventKind::Recovered));
}

#[test]
fn remap_pins_persists_and_release_chooses_afresh() {
    let mut r = rig("manual");
    r.all_up(1);
    let v = r.remap(2, to("backup")).unwrap();
    assert!(v.changed);
    assert_eq!(
        (v.from.as_str(), v.to.as_str(), v.mode),
        ("primary", "backup", Mode::Manual)
    );
    assert_eq!(r.answered(), "127.0.0.12");
    let saved = r.saved();
    assert_eq!(saved.services["cic"].pin.as_ref().unwrap().target, "backup");
    assert_eq!(saved.services["cic"].pin.as_ref().unwrap().author, "ops");
    // A pinned service does not fail back, even with the primary healthy.
    r.ctl.tick(r.at(100));
    assert_eq!(r.active(), "backup");
    let v = r
        .call(101, |reply| Command::Release {
            service: "cic".into(),
            region: None,
            actor: Actor::new("ops"),
            reply,
        })
        .unwrap();
    assert_eq!((v.to.as_str(), v.mode), ("primary", Mode::Auto));
    assert!(r.saved().services["cic"].pin.is_none());
}

#[test]
fn remap_refusals_change_nothing() {
    let mut r = rig("manual");
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
    assert!(r.ctl.status().services[0].pin.is_none());
    let forced = RemapRequest {
        force: true,
        ..to("backup")
    };
    assert_eq!(r.remap(4, forced).unwrap().to, "backup");
}

#[test]
fn a_timed_pin_expires_on_the_wall_clock() {
    let mut r = rig("manual");
    r.all_up(1);
    let timed = RemapRequest {
        duration: Some("30s".into()),
        ..to("backup")
    };
    r.remap(2, timed).unwrap();
    assert_eq!(
        r.saved().services["cic"].pin.as_ref().unwrap().expires,
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

#[test]
fn drain_moves_the_service_and_expires() {
    let mut r = rig("manual");
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

#[test]
fn draining_the_pinned_target_is_refused_unless_forced() {
    let mut r = rig("manual");
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
    assert!(r.ctl.status().services[0].pin.is_some());
    let forced = DrainRequest {
        force: true,
        ..DrainRequest::default()
    };
    let v = r.drain(4, "primary", forced).unwrap();
    assert_eq!((v.to.as_str(), v.mode), ("backup", Mode::Auto));
    assert_eq!(r.answered(), "127.0.0.12");
    assert!(r.saved().services["cic"].pin.is_none());
    assert!(r.kinds().contains(&EventKind::Release));
}

#[test]
fn draining_when_nothing_else_is_up_warns_that_traffic_stays() {
    let mut r = rig("manual");
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

#[test]
fn a_failure_drill_moves_and_reverts() {
    let mut r = rig("manual");
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

#[test]
fn a_restart_resumes_the_saved_target_pin_and_serial() {
    let mut r = rig("manual");
    r.all_up(1);
    r.remap(2, to("backup2")).unwrap();
    let serial = r.ctl.status().zones[0].serial;
    let dir = std::mem::replace(&mut r.dir, tempfile::tempdir().unwrap());
    drop(r);
    let r = start(&config("manual"), dir);
    assert_eq!(r.active(), "backup2");
    assert_eq!(r.answered(), "127.0.0.13");
    assert!(r.ctl.status().services[0].pin.is_some());
    assert!(
        r.ctl.status().zones[0].serial > serial,
        "serials never go back"
    );
}

#[test]
fn reload_keeps_state_of_unchanged_services_and_restores_changed_ones() {
    let mut r = rig("manual");
    r.all_up(1);
    r.remap(2, to("backup")).unwrap();
    let zone =
        || vec![ZoneData::parse(ZONE, None, &Name::from_ascii("ggon.org.").unwrap()).unwrap()];
    let summary = r
        .call(3, |reply| Command::Reload {
            config: Box::new(config("auto")),
            zones: zone(),
            signers: Vec::new(),
            actor: Actor::new("reload"),
            reply,
        })
        .unwrap();
    assert!(
        summary.starts_with("1 services kept their state"),
        "{summary}"
    );
    let st = r.ctl.status();
    assert_eq!(st.services[0].active, "backup");
    assert_eq!(st.services[0].targets[0].healthy, Some(true), "health kept");
    // A changed target list: state restored from what was saved, health anew.
    let mut changed = config("manual");
    changed.services[0].targets.get_mut().pop();
    let summary = r
        .call(4, |reply| Command::Reload {
            config: Box::new(changed),
            zones: zone(),
            signers: Vec::new(),
            actor: Actor::new("reload"),
            reply,
        })
        .unwrap();
    assert!(summary.contains("1 new or changed"), "{summary}");
    let st = r.ctl.status();
    assert_eq!(st.services[0].active, "backup");
    assert!(st.services[0].pin.is_some());
    assert_eq!(st.services[0].targets.len(), 2);
    assert_eq!(st.services[0].targets[0].healthy, None);
    assert!(r.kinds().contains(&EventKind::Reload));
}

#[test]
fn a_drill_survives_a_restart_and_ends_at_its_deadline() {
    let mut r = rig("manual");
    r.all_up(1);
    r.drill(2, "primary", "60s");
    assert_eq!(r.active(), "backup");
    let saved = r.saved().services["cic"]
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
    let shown = r.ctl.status().services[0].drill.clone();
    assert_eq!(shown.map(|d| d.0), Some("primary".to_string()));
    r.ctl.tick(r.at(61));
    assert_eq!(r.active(), "backup");
    r.ctl.tick(r.at(62));
    assert_eq!(r.active(), "primary", "drill over on time: reverted");
    assert_eq!(r.saved().services["cic"].drill, None);
}

#[test]
fn a_drill_whose_deadline_passed_while_down_is_reverted_at_start() {
    let mut r = rig("manual");
    r.all_up(1);
    r.drill(2, "primary", "60s");
    assert_eq!(r.active(), "backup");
    let mut r = r.restart_at(300);
    assert_eq!(r.active(), "primary", "reverted before answering anything");
    assert_eq!(r.answered(), "127.0.0.11");
    assert_eq!(r.saved().services["cic"].drill, None);
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

#[test]
fn timed_pins_and_drains_after_a_restart_follow_their_deadlines() {
    // Restarted before the deadline: still pinned; after it: expired at start.
    for (restart, pinned) in [(20, true), (100, false)] {
        let mut r = rig("manual");
        r.all_up(1);
        let timed = RemapRequest {
            duration: Some("60s".into()),
            ..to("backup2")
        };
        r.remap(2, timed).unwrap();
        let mut r = r.restart_at(restart);
        assert_eq!(r.ctl.status().services[0].pin.is_some(), pinned);
        assert_eq!(r.active(), if pinned { "backup2" } else { "primary" });
        if !pinned {
            let h = r.history();
            let e = h.iter().find(|e| e.kind == EventKind::Expire).unwrap();
            assert!(e.reason.contains("while ggond was down"), "{}", e.reason);
        }
    }
    let mut r = rig("manual");
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

#[path = "batch_tests.rs"]
mod batch;
