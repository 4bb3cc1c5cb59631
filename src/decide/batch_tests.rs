//! Group commit (batch.rs): remaps queued together against the same
//! remaps one by one, and a run whose state write fails.

use super::*;

type Answer = oneshot::Receiver<Result<ChangeView, CtlError>>;

fn remap_cmd(target: &str) -> (Command, Answer) {
    let (reply, rx) = oneshot::channel();
    let cmd = Command::Remap {
        service: "cic".into(),
        request: to(target).parse().expect("no duration to read"),
        actor: Actor::new("ops"),
        reply,
    };
    (cmd, rx)
}

fn serial(r: &Rig) -> u32 {
    r.ctl.status().zones[0].serial
}

#[test]
fn remaps_queued_together_mean_what_they_would_one_by_one_and_publish_once() {
    let mut r = rig("manual");
    r.all_up(1);
    let before = serial(&r);
    let mut cmds = Vec::new();
    let mut answers = Vec::new();
    for target in ["backup", "nosuch"] {
        let (c, a) = remap_cmd(target);
        cmds.push(c);
        answers.push(a);
    }
    // A command of another kind between remaps sees the ones before it.
    let (status_tx, mut status_rx) = oneshot::channel();
    cmds.push(Command::Status { reply: status_tx });
    for target in ["backup2", "primary", "backup2"] {
        let (c, a) = remap_cmd(target);
        cmds.push(c);
        answers.push(a);
    }
    r.ctl.commands(cmds, r.at(2));
    let got: Vec<_> = answers
        .iter_mut()
        .map(|a| a.try_recv().expect("answered at once"))
        .collect();
    assert!(
        matches!(&got[1], Err(CtlError::NotFound(_))),
        "{:?}",
        got[1]
    );
    let moves: Vec<(String, String)> = [0, 2, 3, 4]
        .iter()
        .map(|&i| {
            let v = got[i].as_ref().expect("accepted");
            (v.from.clone(), v.to.clone())
        })
        .collect();
    let pairs = [
        ("primary", "backup"),
        ("backup", "backup2"),
        ("backup2", "primary"),
        ("primary", "backup2"),
    ];
    let want: Vec<(String, String)> = pairs
        .iter()
        .map(|(f, t)| (f.to_string(), t.to_string()))
        .collect();
    assert_eq!(moves, want);
    assert_eq!(status_rx.try_recv().unwrap().services[0].active, "backup");
    assert_eq!(r.active(), "backup2");
    assert_eq!(r.answered(), "127.0.0.13");
    // The first remap ran alone; the three after the status together.
    assert_eq!(serial(&r), before.wrapping_add(2));
    let history: Vec<(String, String)> = r
        .history()
        .into_iter()
        .filter(|e| e.kind == EventKind::Remap)
        .map(|e| (e.from.unwrap_or_default(), e.to.unwrap_or_default()))
        .collect();
    assert_eq!(history, want);
    let served = serial(&r);
    let r = r.restart_at(3);
    assert_eq!(r.active(), "backup2");
    assert_eq!(
        r.ctl.status().services[0].pin.as_ref().unwrap().target,
        "backup2"
    );
    assert!(serial(&r) > served, "serials never go back");
}

#[test]
fn a_run_that_cannot_be_persisted_is_refused_whole_and_changes_nothing() {
    let mut r = rig("manual");
    r.all_up(1);
    let before = serial(&r);
    // A non-empty directory where the state file and its journal go:
    // neither can be written.
    for f in ["state.json", "state.journal"] {
        let path = r.dir.path().join(f);
        let _ = std::fs::remove_file(&path);
        std::fs::create_dir_all(path.join("blocker")).unwrap();
    }
    let (c1, mut a1) = remap_cmd("backup");
    let (c2, mut a2) = remap_cmd("backup2");
    r.ctl.commands(vec![c1, c2], r.at(2));
    for a in [&mut a1, &mut a2] {
        let e = a.try_recv().unwrap().unwrap_err();
        assert!(e.to_string().contains("cannot persist state"), "{e}");
    }
    assert_eq!(r.active(), "primary");
    assert_eq!(r.answered(), "127.0.0.11");
    assert!(r.ctl.status().services[0].pin.is_none());
    assert_eq!(serial(&r), before);
    assert!(!r.kinds().contains(&EventKind::Remap));
}
