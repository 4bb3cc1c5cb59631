use super::*;

fn roll(kind: RollKind) -> Roll {
    Roll {
        kind,
        old_tag: 1,
        new_tag: 2,
        new_file: PathBuf::from("K"),
        step: RollStep::Introduced,
        next_at: 100,
        wait: 50,
        auto: false,
        parent: None,
    }
}

fn said(port: u16, tags: &[u16], ttl: u32) -> ServerSaid {
    ServerSaid {
        server: SocketAddr::from(([127, 0, 0, 1], port)),
        new_ds: tags.contains(&2),
        tags: tags.to_vec(),
        ttl: Some(ttl),
        error: None,
    }
}

const TIMING: ParentTiming = ParentTiming {
    check_interval: 30,
    propagation: 7,
    ds_ttl: 0,
};

#[test]
fn zsk_roll_swaps_then_removes() {
    let r = roll(RollKind::Zsk);
    assert_eq!(r.due(99), Due::Nothing);
    let Due::Act(a, Some(next)) = r.due(100) else {
        panic!("a swap is due")
    };
    assert_eq!(a, RollAction::Swap { old: 1, new: 2 });
    assert_eq!((next.step, next.next_at), (RollStep::Swapped, 150));
    assert_eq!(next.due(149), Due::Nothing);
    assert_eq!(next.due(150), Due::Act(RollAction::Remove { old: 1 }, None));
}

#[test]
fn ksk_roll_without_parent_removes_the_old_key_after_the_wait() {
    let r = roll(RollKind::Ksk);
    assert_eq!(r.due(10), Due::Nothing);
    assert_eq!(r.due(100), Due::Act(RollAction::Remove { old: 1 }, None));
    assert_eq!(r.cds(), None, "both active KSKs, as before");
}

#[test]
fn gated_ksk_roll_waits_for_the_parent() {
    let r = Roll {
        parent: Some(ParentGate::default()),
        ..roll(RollKind::Ksk)
    };
    assert_eq!(r.cds(), Some(vec![]), "no CDS before the new key is known");
    let Due::Act(RollAction::Submit { new: 2 }, Some(sub)) = r.due(100) else {
        panic!("submission is due")
    };
    assert_eq!(sub.step, RollStep::Submitted);
    assert_eq!(sub.cds(), Some(vec![2]));
    // Time alone never removes the old key now: only checks are due.
    assert_eq!(sub.due(100), Due::CheckParent);
    assert_eq!(sub.due(1_000_000), Due::CheckParent);
    // One server has the new DS, the other not yet: check again later.
    let half = DsCheck {
        at: 100,
        servers: vec![said(1, &[1, 2], 60), said(2, &[1], 60)],
    };
    assert!(!half.all_serve_new());
    assert!(half.summary(2).contains("DS of 1 only, not of 2 yet"));
    let (again, seen) = sub.checked(half, TIMING, 100).unwrap();
    assert!(!seen);
    assert_eq!((again.step, again.next_at), (RollStep::Submitted, 130));
    assert_eq!(again.due(129), Due::Nothing);
    assert_eq!(again.due(130), Due::CheckParent);
    // Both serve it: the old DS's TTL (the longest answered) and the
    // parent's propagation are waited out, then the old key leaves.
    let all = DsCheck {
        at: 130,
        servers: vec![said(1, &[2], 60), said(2, &[1, 2], 90)],
    };
    let (done, seen) = again.checked(all, TIMING, 130).unwrap();
    assert!(seen);
    assert_eq!((done.step, done.next_at), (RollStep::DsSeen, 130 + 90 + 7));
    assert_eq!(done.parent.as_ref().unwrap().seen_at, Some(130));
    assert_eq!(done.cds(), Some(vec![2]));
    assert_eq!(done.due(226), Due::Nothing);
    assert_eq!(done.due(227), Due::Act(RollAction::Remove { old: 1 }, None));
    // A late answer after the DS was seen changes nothing.
    let late = DsCheck {
        at: 131,
        servers: vec![said(1, &[1], 60)],
    };
    assert_eq!(done.checked(late, TIMING, 131), None);
}

#[test]
fn a_configured_ds_ttl_longer_than_answered_wins() {
    let r = Roll {
        step: RollStep::Submitted,
        parent: Some(ParentGate::default()),
        ..roll(RollKind::Ksk)
    };
    let all = DsCheck {
        at: 0,
        servers: vec![said(1, &[2], 60)],
    };
    let t = ParentTiming {
        ds_ttl: 3600,
        ..TIMING
    };
    let (next, _) = r.checked(all, t, 1000).unwrap();
    assert_eq!(next.next_at, 1000 + 3600 + 7);
}

#[test]
fn no_server_or_an_error_is_not_the_new_ds() {
    let none = DsCheck {
        at: 0,
        servers: vec![],
    };
    assert!(!none.all_serve_new());
    let err = DsCheck {
        at: 0,
        servers: vec![ServerSaid {
            error: Some("timed out".into()),
            new_ds: false,
            tags: vec![],
            ttl: None,
            server: SocketAddr::from(([127, 0, 0, 1], 1)),
        }],
    };
    assert!(!err.all_serve_new());
    assert!(err.summary(2).contains("timed out"));
}

#[test]
fn a_roll_saved_before_the_policy_still_reads() {
    let old = r#"{"kind":"zsk","old_tag":1,"new_tag":2,"new_file":"K","step":"introduced","next_at":100,"wait":50}"#;
    let r: Roll = serde_json::from_str(old).unwrap();
    assert_eq!(r, roll(RollKind::Zsk));
}
