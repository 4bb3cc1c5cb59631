//! Log formats: JSON lines for log shippers, journald's priority prefixes
//! without timestamps (chosen by itself when standard error is the journal).

use std::os::unix::fs::MetadataExt;
use std::time::Duration;

use serde_json::Value;

use crate::exec_service;
use crate::support::ggond::{Env, Extra, Ggond};

fn start(env: &Env, args: &[&str], vars: &[(&str, &str)]) -> Ggond {
    let mut all = vec!["--user", "root"];
    all.extend_from_slice(args);
    env.start_extra(&Extra {
        listen: "127.0.0.1:0",
        args: &all,
        env: vars,
    })
}

fn lines(text: &str) -> Vec<&str> {
    text.lines().filter(|l| !l.trim().is_empty()).collect()
}

#[test]
fn json_is_one_object_per_line() {
    let env = Env::demo(&exec_service("app"));
    let mut g = start(&env, &["--log-format", "json"], &[]);
    assert!(g.wait_log("ggond ready", Duration::from_secs(5)));
    assert!(g.stop().success());
    let text = g.log_text();
    let objects: Vec<Value> = lines(&text)
        .iter()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON ({e}): {l}")))
        .collect();
    let ready = objects
        .iter()
        .find(|o| o["message"] == "ggond ready")
        .unwrap_or_else(|| panic!("no ready line in {text}"));
    assert_eq!(ready["level"], "INFO");
    assert!(
        ready["timestamp"].is_string() && ready["target"].is_string(),
        "{ready}"
    );
    let zone = objects
        .iter()
        .find(|o| o["message"] == "zone loaded")
        .expect("zone line");
    assert_eq!(
        zone["zone"], "ggon.org.",
        "fields are top-level keys: {zone}"
    );
}

#[test]
fn under_the_journal_lines_carry_priorities_and_no_timestamps() {
    let env = Env::demo(&exec_service("app"));
    // systemd names the stream it connected as DEVICE:INODE; here the log
    // file plays the journal's stream (the harness truncates, not replaces it).
    let log = env.dir.path().join("ggond.log");
    std::fs::write(&log, "").unwrap();
    let meta = std::fs::metadata(&log).unwrap();
    let stream = format!("{}:{}", meta.dev(), meta.ino());
    let mut g = start(&env, &[], &[("JOURNAL_STREAM", &stream)]);
    // An error line too: a rejected reload.
    let good = std::fs::read_to_string(&env.config).unwrap();
    std::fs::write(&env.config, "[[zone]]\n").unwrap();
    g.signal(libc::SIGHUP);
    assert!(g.wait_log("reload rejected", Duration::from_secs(5)));
    std::fs::write(&env.config, good).unwrap();
    assert!(g.stop().success());
    let text = g.log_text();
    for l in lines(&text) {
        assert!(
            l.starts_with("<3>")
                || l.starts_with("<4>")
                || l.starts_with("<6>")
                || l.starts_with("<7>"),
            "no priority prefix: {l}"
        );
        assert!(
            !l[3..].starts_with("20"),
            "a timestamp the journal adds anyway: {l}"
        );
        assert!(!l.contains('\x1b'), "no colours: {l}");
    }
    assert!(
        text.contains("<6> INFO") || text.contains("<6>INFO"),
        "{text}"
    );
    assert!(
        text.lines()
            .any(|l| l.starts_with("<3>") && l.contains("reload rejected")),
        "{text}"
    );

    // Not the journal's stream (redirected): plain text with timestamps.
    let env = Env::demo(&exec_service("app"));
    let mut g = start(&env, &[], &[("JOURNAL_STREAM", "1:2")]);
    assert!(g.stop().success());
    let text = g.log_text();
    assert!(lines(&text).iter().all(|l| l.starts_with("20")), "{text}");
}
