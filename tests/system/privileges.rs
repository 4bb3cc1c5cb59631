//! Started as root with an unprivileged `user`, ggond binds, then runs as
//! that user, keeps answering and keeps writing its state; misconfigured
//! privileges are refused with the path or field named.

use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

use crate::support::ggond::{ip, Env, Extra, Ggond, GGOND};
use crate::{exec_service, is_root};

/// The test account: `nobody` and its primary group.
fn nobody() -> (u32, u32) {
    let id = |flag: &str| -> u32 {
        let out = Command::new("id").args([flag, "nobody"]).output().unwrap();
        String::from_utf8_lossy(&out.stdout).trim().parse().unwrap()
    };
    (id("-u"), id("-g"))
}

fn chown(path: &Path, uid: u32, gid: u32) {
    std::os::unix::fs::chown(path, Some(uid), Some(gid)).unwrap();
}

/// `Uid:` and `Gid:` of /proc/PID/status (real, effective, saved, fs).
fn ids(pid: u32) -> (Vec<u32>, Vec<u32>) {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let field = |name: &str| -> Vec<u32> {
        status
            .lines()
            .find_map(|l| l.strip_prefix(name))
            .unwrap()
            .split_whitespace()
            .map(|v| v.parse().unwrap())
            .collect()
    };
    (field("Uid:"), field("Gid:"))
}

/// An Env the account `nobody` can read, with `[server]` lines added.
fn env_for_nobody(server: &str) -> Env {
    let env = Env::demo(&format!("[server]\n{server}\n\n{}", exec_service("app")));
    std::fs::set_permissions(env.dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    env
}

/// Run ggond to its end (it is expected to refuse); (exit code, stderr).
fn run_to_end(env: &Env, args: &[&str]) -> (Option<i32>, String) {
    let out = Command::new(GGOND)
        .arg("--config")
        .arg(&env.config)
        .args(["--listen", "127.0.0.1:0", "--control", "127.0.0.1:0"])
        .arg("--state-dir")
        .arg(&env.state_dir)
        .args(args)
        .stdin(Stdio::null())
        .output()
        .unwrap();
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn started_as_root_it_runs_as_the_configured_user() {
    if !is_root() {
        eprintln!("skipped: needs root (CI runs as root)");
        return;
    }
    let (uid, gid) = nobody();
    let env = env_for_nobody("user = \"nobody\"");
    std::fs::create_dir(&env.state_dir).unwrap();
    chown(&env.state_dir, uid, gid);
    let run = env.dir.path().join("run");
    std::fs::create_dir(&run).unwrap();
    chown(&run, uid, gid);
    let mut g = Ggond::start_with(
        &env.config,
        &env.state_dir,
        &env.dir.path().join("ggond.log"),
        &run.join("ready.json"),
        &Extra {
            listen: "127.0.0.1:0",
            args: &[],
            env: &[],
        },
    );
    let (uids, gids) = ids(g.pid);
    assert_eq!(uids, vec![uid; 4], "real, effective, saved and fs uid");
    assert_eq!(gids, vec![gid; 4], "real, effective, saved and fs gid");
    assert!(g.log_text().contains("now running as an unprivileged user"));

    // It still answers on its port, and its checks (run as nobody) work.
    g.wait_answer("app.ggon.org", &[ip("127.0.0.11")], Duration::from_secs(10));
    // It still writes its state directory: token, state, history.
    let out = g.ctl(&["remap", "app", "--to", "backup", "--reason", "test"]);
    assert!(out.ok(), "{out:?}");
    g.wait_answer("app.ggon.org", &[ip("127.0.0.12")], Duration::from_secs(5));
    let status = g.stop();
    assert!(status.success(), "{status}\n{}", g.log_text());
    for f in [
        "control.token",
        "state.json",
        "state.journal",
        "history.jsonl",
        "ggond.lock",
    ] {
        let meta = std::fs::metadata(env.state_dir.join(f)).unwrap();
        assert_eq!(
            (meta.uid(), meta.gid()),
            (uid, gid),
            "{f} written by (or given to) nobody"
        );
    }
    let state = std::fs::read_to_string(env.state_dir.join("state.json")).unwrap();
    assert!(state.contains("backup"), "{state}");
}

#[test]
fn a_state_directory_the_user_cannot_write_is_named() {
    if !is_root() {
        eprintln!("skipped: needs root (CI runs as root)");
        return;
    }
    let env = env_for_nobody("user = \"nobody\"");
    std::fs::create_dir(&env.state_dir).unwrap();
    let (code, stderr) = run_to_end(&env, &[]);
    assert_eq!(code, Some(1), "{stderr}");
    let want = format!(
        "state directory {} is not writable by user nobody",
        env.state_dir.display()
    );
    assert!(stderr.contains(&want), "want {want:?} in:\n{stderr}");
}

#[test]
fn root_without_a_user_is_refused_and_root_on_purpose_is_not() {
    if !is_root() {
        eprintln!("skipped: needs root (CI runs as root)");
        return;
    }
    let env = env_for_nobody("");
    let (code, stderr) = run_to_end(&env, &[]);
    assert_eq!(code, Some(2), "{stderr}");
    assert!(
        stderr.contains("refusing to run as root") && stderr.contains("user = \"ggon\""),
        "{stderr}"
    );
    let mut g = env.start_extra(&Extra {
        listen: "127.0.0.1:0",
        args: &["--user", "root"],
        env: &[],
    });
    assert_eq!(ids(g.pid).0, vec![0; 4]);
    assert!(g.stop().success());
}

#[test]
fn unknown_accounts_are_config_errors_naming_the_line() {
    let env = env_for_nobody("user = \"no-such-user-ggon\"");
    let (code, stderr) = run_to_end(&env, &[]);
    assert_eq!(code, Some(2), "{stderr}");
    assert!(
        stderr.contains("field `server.user`: no user named `no-such-user-ggon`"),
        "{stderr}"
    );
    let line = std::fs::read_to_string(&env.config)
        .unwrap()
        .lines()
        .position(|l| l.starts_with("user ="))
        .unwrap()
        + 1;
    assert!(
        stderr.contains(&format!("{}:{line}:", env.config.display())),
        "{stderr}"
    );
    let env = env_for_nobody("user = \"nobody\"\ngroup = \"no-such-group-ggon\"");
    let (code, stderr) = run_to_end(&env, &[]);
    assert_eq!(code, Some(2), "{stderr}");
    assert!(
        stderr.contains("no group named `no-such-group-ggon`"),
        "{stderr}"
    );
    // --check-config looks the names up too.
    let out = Command::new(GGOND)
        .args(["--check-config", "--config"])
        .arg(&env.config)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
}
