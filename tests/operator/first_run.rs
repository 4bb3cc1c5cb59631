//! The README's first run: ggond on the shipped config/ggon.toml. Without
//! the demo's targets every check fails and ggond raises its all-down
//! ALARM within seconds (what it must do); with them, started as
//! scripts/run starts them (scripts/demo-targets), every target comes up
//! and the log holds no warning, and the tour's failover works: stopping
//! cic's primary moves cic.ggon.org to the backup.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use crate::support::ggond::*;

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// The demo's targets, their pid files in `dir`; stopped on drop.
struct DemoTargets {
    dir: PathBuf,
}

impl DemoTargets {
    fn run(dir: &Path, args: &[&str]) -> String {
        let out = Command::new(root().join("scripts/demo-targets"))
            .args(args)
            .env("GGON_DEMO_TARGETS_DIR", dir)
            .output()
            .expect("run scripts/demo-targets (needs python3)");
        let text = String::from_utf8_lossy(&out.stdout).to_string()
            + &String::from_utf8_lossy(&out.stderr);
        assert!(
            out.status.success(),
            "scripts/demo-targets {args:?}: {text}"
        );
        text
    }

    fn start(dir: &Path) -> DemoTargets {
        DemoTargets::run(dir, &["start"]);
        DemoTargets {
            dir: dir.to_path_buf(),
        }
    }
}

impl Drop for DemoTargets {
    fn drop(&mut self) {
        let _ = Command::new(root().join("scripts/demo-targets"))
            .arg("stop")
            .env("GGON_DEMO_TARGETS_DIR", &self.dir)
            .output();
    }
}

/// config/ggon.toml as ggond reads it from the checkout, written to `dir`
/// (the harness runs ggond there) with the zone file's path made absolute.
fn shipped_config(dir: &Path) -> PathBuf {
    let text = std::fs::read_to_string(root().join("config/ggon.toml")).unwrap();
    let zone = root().join("zones/ggon.org.zone");
    let text = text.replace(
        "file = \"zones/ggon.org.zone\"",
        &format!("file = \"{}\"", zone.display()),
    );
    assert!(text.contains(&zone.display().to_string()), "{text}");
    let path = dir.join("ggon.toml");
    std::fs::write(&path, text).unwrap();
    path
}

fn start(dir: &Path, n: usize) -> Ggond {
    Ggond::start(
        &shipped_config(dir),
        &dir.join(format!("state{n}")),
        &dir.join(format!("ggond.{n}.log")),
        &dir.join(format!("ready.{n}.json")),
    )
}

/// Every target of every service, and whether it is up.
fn health(g: &Ggond) -> Vec<(String, Option<bool>)> {
    let st = g.status();
    let mut out = Vec::new();
    for s in st["services"].as_array().unwrap() {
        for t in s["targets"].as_array().unwrap() {
            out.push((
                format!(
                    "{}/{}",
                    s["name"].as_str().unwrap(),
                    t["name"].as_str().unwrap()
                ),
                t["healthy"].as_bool(),
            ));
        }
    }
    out
}

#[test]
fn the_shipped_config_starts_quiet_with_the_demo_targets_and_alarms_without() {
    let dir = tempfile::tempdir().unwrap();
    // Nothing to check: the all-down ALARM, for cic within its fall of 3
    // one-second checks.
    let alone = start(dir.path(), 1);
    assert!(
        alone.wait_log("ALARM: every target is down", secs(10.0)),
        "{}",
        alone.log_text()
    );
    drop(alone);

    let _targets = DemoTargets::start(&dir.path().join("pids"));
    let g = start(dir.path(), 2);
    // gstat and sft are checked every 5 s: all nine up within two rounds.
    let mut last = Vec::new();
    let up = poll(secs(12.0), || {
        last = health(&g);
        last.iter().all(|(_, h)| *h == Some(true)).then_some(())
    });
    assert!(up.is_some(), "{last:?}\n{}", g.log_text());
    assert_eq!(last.len(), 9, "{last:?}");
    let log = g.log_text();
    for bad in ["ALARM", " WARN ", " ERROR "] {
        assert!(!log.contains(bad), "{bad} in the first run's log:\n{log}");
    }
    g.wait_answer("cic.ggon.org.", &[ip("127.0.0.11")], secs(2.0));

    // The tour's step 4.
    DemoTargets::run(&dir.path().join("pids"), &["stop", "cic/primary"]);
    g.wait_answer(
        "cic.ggon.org.",
        &[ip("127.0.0.12")],
        Duration::from_secs(10),
    );
}
