//! Operator commands over real sockets: drain, drills, dry runs, history,
//! reload.

use crate::support::ggond::*;

#[test]
fn drain_moves_the_service_and_undrain_expiry_and_history_are_recorded() {
    let p = HttpTarget::start(ip("127.0.0.151"));
    let b = HttpTarget::start(ip("127.0.0.152"));
    let mut env = Env::demo(&cic_two_targets(&p, &b));
    let g = env.start();
    g.wait_health("cic", "backup", true, secs(10.0));
    g.wait_answer("cic.ggon.org.", &[ip("127.0.0.151")], secs(5.0));

    let out = g.ctl(&["drain", "cic", "primary", "--reason", "disk swap", "--json"]);
    assert!(out.ok(), "{out:?}");
    assert_eq!(out.json()["to"], "backup");
    // The answer has changed when the command returns.
    assert_eq!(g.a("cic.ggon.org."), vec![ip("127.0.0.152")]);
    let st = g.service("cic");
    assert_eq!(st["targets"][0]["drained"]["reason"], "disk swap");
    // A drained target is refused for a remap without --force.
    let out = g.ctl(&["remap", "cic", "--to", "primary"]);
    assert!(!out.ok() && out.stderr.contains("drained"), "{out:?}");

    let out = g.ctl(&["undrain", "cic", "primary"]);
    assert!(out.ok(), "{out:?}");
    assert_eq!(
        out.stdout,
        "cic: undrained primary (back in selection)\ncic: stays on backup (127.0.0.152), mode auto\n"
    );
    // Manual failback: undraining does not move the service back.
    g.assert_answer_holds("cic.ggon.org.", &[ip("127.0.0.152")], secs(1.0));

    // A drain with an expiry is removed by itself.
    assert!(g.ctl(&["drain", "cic", "backup", "--for", "1s"]).ok());
    assert_eq!(g.a("cic.ggon.org."), vec![ip("127.0.0.151")]);
    wait_for("drain expiry", secs(5.0), || {
        g.service("cic")["targets"][1]["drained"]
            .is_null()
            .then_some(())
    });

    let out = g.ctl(&["history", "cic", "--json"]);
    let kinds: Vec<String> = out.json()["entries"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["kind"].as_str().unwrap().to_string())
        .collect();
    for k in ["drain", "undrain", "failover"] {
        assert!(kinds.iter().any(|x| x == k), "{k} missing from {kinds:?}");
    }
    let hist = std::fs::read_to_string(env.state_dir.join("history.jsonl")).unwrap();
    assert!(hist.contains("\"reason\":\"disk swap\""), "{hist}");
    assert!(hist.contains("\"who\":\"operator\""), "{hist}");
}

#[test]
fn drills_change_nothing_or_fail_a_target_for_a_while_then_revert() {
    let p = HttpTarget::start(ip("127.0.0.153"));
    let b = HttpTarget::start(ip("127.0.0.154"));
    let mut env = Env::demo(&cic_two_targets(&p, &b));
    let g = env.start();
    g.wait_health("cic", "primary", true, secs(10.0));
    g.wait_health("cic", "backup", true, secs(10.0));
    let serial = |g: &Ggond| {
        soa_serial(&ask_udp(
            g.dns,
            &query("ggon.org.", hickory_proto::rr::RecordType::SOA),
        ))
    };
    let before = serial(&g);

    // Dry run: the report, and nothing changes.
    let out = g.ctl(&["drill", "cic", "--json"]);
    assert!(out.ok(), "{out:?}");
    let v = out.json();
    assert_eq!(v["active"], "primary");
    assert_eq!(v["takeover"], "backup");
    assert_eq!(v["takeover_healthy"], true);
    assert_eq!(v["answers"][0], "127.0.0.154");
    assert_eq!(v["ttl"], 30);
    assert_eq!(v["serial"].as_u64(), Some(u64::from(before) + 1));
    assert_eq!(g.a("cic.ggon.org."), vec![ip("127.0.0.153")]);
    assert_eq!(serial(&g), before);

    // remap --dry-run changes nothing either.
    let out = g.ctl(&["remap", "cic", "--to", "backup", "--dry-run", "--json"]);
    assert!(out.ok() && out.json()["dry_run"] == true, "{out:?}");
    assert_eq!(g.a("cic.ggon.org."), vec![ip("127.0.0.153")]);
    assert_eq!(g.service("cic")["mode"], "auto");

    // A real drill: the primary is treated as failed for 2 s, then reverted.
    let out = g.ctl(&["drill", "cic", "--fail", "primary", "--for", "2s"]);
    assert!(out.ok(), "{out:?}");
    // The end of the drill is a time an operator can read.
    assert!(
        out.stdout
            .contains("DRILL RUNNING: primary treated as failed until 20"),
        "{out:?}"
    );
    g.wait_answer("cic.ggon.org.", &[ip("127.0.0.154")], secs(2.0));
    g.wait_answer("cic.ggon.org.", &[ip("127.0.0.153")], secs(6.0));
    let log = g.log_text();
    assert!(log.contains("drill started"), "{log}");
    assert!(log.contains("drill over"), "{log}");
    // The real targets were never touched.
    assert!(p.running() && b.running());
}

#[test]
fn reload_keeps_state_and_a_bad_config_keeps_the_old_one() {
    let p = HttpTarget::start(ip("127.0.0.155"));
    let b = HttpTarget::start(ip("127.0.0.156"));
    let mut env = Env::demo(&cic_two_targets(&p, &b));
    let g = env.start();
    g.wait_health("cic", "backup", true, secs(10.0));
    assert!(g.ctl(&["remap", "cic", "--to", "backup"]).ok());
    let good = std::fs::read_to_string(&env.config).unwrap();

    // A broken config: rejected with the error, the old answers stay.
    std::fs::write(&env.config, format!("{good}\n[[service]]\nname = 5\n")).unwrap();
    let out = g.ctl(&["reload"]);
    assert!(!out.ok(), "{out:?}");
    assert!(
        out.stderr.contains("ggon.toml:"),
        "names file and line: {out:?}"
    );
    assert_eq!(g.a("cic.ggon.org."), vec![ip("127.0.0.156")]);
    assert_eq!(g.a("wiki.ggon.org."), vec![ip("127.0.0.80")]);

    // A good config with a changed zone file: swapped in, the pinned service
    // keeps its state, new records are served.
    std::fs::write(&env.config, &good).unwrap();
    let zone = env.dir.path().join("ggon.org.zone");
    let text = std::fs::read_to_string(&zone).unwrap();
    std::fs::write(&zone, format!("{text}newname IN A 127.0.0.77\n")).unwrap();
    let out = g.ctl(&["reload"]);
    assert!(out.ok(), "{out:?}");
    assert!(
        out.stdout.contains("1 services kept their state"),
        "{out:?}"
    );
    assert_eq!(g.a("newname.ggon.org."), vec![ip("127.0.0.77")]);
    assert_eq!(g.a("cic.ggon.org."), vec![ip("127.0.0.156")]);
    assert_eq!(g.service("cic")["mode"], "manual");

    // SIGHUP does the same.
    std::fs::write(&zone, format!("{text}other IN A 127.0.0.78\n")).unwrap();
    g.signal(libc::SIGHUP);
    wait_for("SIGHUP reload", secs(5.0), || {
        (g.a("other.ggon.org.") == vec![ip("127.0.0.78")]).then_some(())
    });
}

#[test]
fn a_remap_that_cannot_be_persisted_is_refused_and_changes_nothing() {
    let p = HttpTarget::start(ip("127.0.0.157"));
    let b = HttpTarget::start(ip("127.0.0.158"));
    let mut env = Env::demo(&cic_two_targets(&p, &b));
    let g = env.start();
    g.wait_health("cic", "backup", true, secs(10.0));
    // Make the state file and its journal impossible to write: a non-empty
    // directory in the place of each.
    for f in ["state.json", "state.journal"] {
        let path = env.state_dir.join(f);
        let _ = std::fs::remove_file(&path);
        std::fs::create_dir_all(path.join("blocker")).unwrap();
    }
    let out = g.ctl(&["remap", "cic", "--to", "backup"]);
    assert!(!out.ok(), "{out:?}");
    assert!(out.stderr.contains("cannot persist state"), "{out:?}");
    assert_eq!(g.a("cic.ggon.org."), vec![ip("127.0.0.157")]);
    assert_eq!(g.service("cic")["mode"], "auto");
    let out = g.ctl(&["drain", "cic", "primary"]);
    assert!(!out.ok(), "{out:?}");
    assert!(g.service("cic")["targets"][0]["drained"].is_null());
    assert_eq!(g.a("cic.ggon.org."), vec![ip("127.0.0.157")]);
}

/// Draining the target a pin holds the service on would leave traffic on
/// it: refused with a clear message and a non-zero exit; `--force` releases
/// the pin and moves the service; `status` shows the drain and its expiry.
#[test]
fn draining_the_pinned_target_is_refused_then_forced_and_shown() {
    let p = HttpTarget::start(ip("127.0.0.161"));
    let b = HttpTarget::start(ip("127.0.0.162"));
    let mut env = Env::demo(&cic_two_targets(&p, &b));
    let g = env.start();
    g.wait_health("cic", "backup", true, secs(10.0));
    assert!(g.ctl(&["remap", "cic", "--to", "primary"]).ok());
    let out = g.ctl(&["status", "cic"]);
    assert!(
        out.stdout
            .contains("mode: manual (pinned by operator, until released)"),
        "{out:?}"
    );

    let out = g.ctl(&["drain", "cic", "primary", "--reason", "kernel update"]);
    assert!(!out.ok(), "{out:?}");
    assert!(
        out.stderr.contains("pinned to `primary`") && out.stderr.contains("--force"),
        "{out:?}"
    );
    assert!(!out.stdout.contains("stays on"), "{out:?}");
    assert_eq!(g.a("cic.ggon.org."), vec![ip("127.0.0.161")]);
    assert!(g.service("cic")["targets"][0]["drained"].is_null());

    let out = g.ctl(&["drain", "cic", "primary", "--force", "--for", "1h"]);
    assert!(out.ok(), "{out:?}");
    assert!(
        out.stdout
            .contains("cic: drained primary (for 1h)\ncic: primary -> backup"),
        "{out:?}"
    );
    assert_eq!(g.a("cic.ggon.org."), vec![ip("127.0.0.162")]);
    assert_eq!(g.service("cic")["mode"], "auto");

    let out = g.ctl(&["status", "cic"]);
    assert!(out.ok(), "{out:?}");
    assert!(
        out.stdout.contains("DRAINED by operator") && out.stdout.contains("until 20"),
        "{out:?}"
    );
}

/// A drain that cannot move the service (nothing else up) says so on
/// stderr and exits non-zero: traffic has not left the target.
#[test]
fn draining_the_last_healthy_target_warns_and_fails() {
    let p = HttpTarget::start(ip("127.0.0.163"));
    let mut env = Env::demo(&http_service(
        "cic",
        "cic.ggon.org",
        "manual",
        "1s",
        &[("primary", &p)],
    ));
    let g = env.start();
    g.wait_health("cic", "primary", true, secs(10.0));
    let out = g.ctl(&["drain", "cic", "primary"]);
    assert!(!out.ok(), "{out:?}");
    assert!(
        out.stderr.contains("WARNING") && out.stderr.contains("NOT left"),
        "{out:?}"
    );
    assert_eq!(g.a("cic.ggon.org."), vec![ip("127.0.0.163")]);
}

/// `ggon-ctl status | head`: output piped into a reader that goes away
/// ends the command quietly (no panic on the closed pipe). The reader here
/// closes its end at once, so the write always meets a closed pipe.
#[test]
fn status_into_a_closed_pipe_ends_quietly() {
    let p = HttpTarget::start(ip("127.0.0.171"));
    let b = HttpTarget::start(ip("127.0.0.172"));
    let mut env = Env::demo(&cic_two_targets(&p, &b));
    let g = env.start();
    let cmd = format!(
        "\"{}\" --control {} --token-file {} status | (exec 0<&-; sleep 0.3)",
        GGON_CTL,
        g.control,
        g.token_file.display()
    );
    let out = std::process::Command::new("sh")
        .args(["-c", &cmd])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!stderr.contains("panicked"), "{stderr}");
}
