//! One ggond per state directory, against real processes: a second ggond
//! on the same state directory (other ports) exits 1 naming the directory
//! and the running ggond's pid, and changes nothing there; after the first
//! is killed with -9, its lock never blocks a restart.

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::support::reliability::*;

/// Run a second ggond on `env`'s config and state directory (its own DNS
/// and control ports); its exit status and stderr, or a panic if it is
/// still running after 10 s.
fn second_ggond(env: &Env) -> (std::process::ExitStatus, String) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_ggond"))
        .arg("--config")
        .arg(env.config())
        .args(["--listen", "127.0.0.1:0", "--control", "127.0.0.1:0"])
        .args(["--user", "root"])
        .arg("--ready-file")
        .arg(env.path().join("second-ready.json"))
        .env("RUST_LOG", "info")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn ggond");
    let deadline = Instant::now() + Duration::from_secs(10);
    while child.try_wait().unwrap().is_none() {
        if Instant::now() > deadline {
            let _ = child.kill();
            let out = child.wait_with_output().unwrap();
            panic!(
                "a second ggond on the same state directory kept running; stderr:\n{}",
                String::from_utf8_lossy(&out.stderr)
            );
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let out = child.wait_with_output().unwrap();
    (
        out.status,
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn state_files(env: &Env) -> Vec<(String, Vec<u8>)> {
    let mut v: Vec<_> = std::fs::read_dir(env.state_dir())
        .unwrap()
        .flatten()
        .filter(|e| e.path().is_file())
        .map(|e| {
            let name = e.file_name().to_string_lossy().into_owned();
            (name, std::fs::read(e.path()).unwrap())
        })
        .collect();
    v.sort();
    v
}

#[test]
fn a_second_ggond_on_the_same_state_directory_is_refused_and_kill9_never_blocks_a_restart() {
    let env = Env::new("");
    let mut first = env.start();
    let (code, text) = first.remap("backup").unwrap();
    assert_eq!(code, 200, "{text}");
    let before = state_files(&env);

    let (status, stderr) = second_ggond(&env);
    println!("second ggond: {status}; stderr:\n{stderr}");
    assert_eq!(status.code(), Some(1), "{stderr}");
    let dir = env.state_dir().display().to_string();
    assert!(stderr.contains(&dir), "names the directory: {stderr}");
    assert!(
        stderr.contains(&format!("pid {}", first.pid)),
        "names the running ggond's pid {}: {stderr}",
        first.pid
    );
    assert!(stderr.contains("in use by another ggond"), "{stderr}");
    assert!(
        !env.path().join("second-ready.json").exists(),
        "the second ggond never got ready"
    );
    assert_eq!(
        state_files(&env),
        before,
        "the state directory is untouched"
    );
    assert!(first.alive(), "the first ggond still runs");
    assert_eq!(cic_address(first.dns), address_of("backup"));

    // kill -9 leaves the lock file (with the dead pid) but not the lock.
    first.kill9();
    let lock = env.state_dir().join("ggond.lock");
    assert_eq!(
        std::fs::read_to_string(&lock).unwrap().trim(),
        first.pid.to_string()
    );
    let second = env.start();
    assert_eq!(
        std::fs::read_to_string(&lock).unwrap().trim(),
        second.pid.to_string(),
        "the restarted ggond recorded its own pid"
    );
    assert_eq!(cic_address(second.dns), address_of("backup"));
    let (status, stderr) = second_ggond(&env);
    assert_eq!(status.code(), Some(1), "{stderr}");
    assert!(stderr.contains(&format!("pid {}", second.pid)), "{stderr}");
}
