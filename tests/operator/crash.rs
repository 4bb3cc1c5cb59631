//! Crashes and bad state: kill -9 in the middle of remaps, and a corrupt
//! state file at start.

use std::time::{Duration, Instant};

use crate::support::reliability::*;
use ggon::decide::state::PersistedState;

/// The state as the crash left it (the file and its journal, read the way a
/// restart reads them), or None if there is none yet.
fn read_state(env: &Env) -> Option<PersistedState> {
    match ggon::decide::state::read(&env.state_dir()) {
        Ok(s) => s.map(|(state, _, _)| state),
        Err(e) => panic!("state does not read after kill -9: {e}"),
    }
}

/// The target a restart will answer with: the operator's pin if there is one
/// (a remap writes the pin first, then the switch, so a crash in between
/// leaves `active` one step behind the pin), else `active`.
fn effective(s: &PersistedState) -> &str {
    let cic = &s.services["cic"];
    cic.pin
        .as_ref()
        .map_or(cic.active.as_str(), |p| p.target.as_str())
}

fn set_aside_files(env: &Env) -> Vec<std::path::PathBuf> {
    std::fs::read_dir(env.state_dir())
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| {
            p.file_name()
                .unwrap()
                .to_string_lossy()
                .starts_with("state.json.bad-")
        })
        .collect()
}

/// Remaps sent from another thread until the daemon dies: the last one
/// acknowledged (HTTP 200 read in full), the one in flight when it died.
struct Remaps {
    acked: Option<&'static str>,
    in_flight: Option<&'static str>,
    count: usize,
}

fn remap_until_dead(d_control: std::net::SocketAddr, start: usize) -> Remaps {
    let names = ["primary", "backup", "backup2"];
    let mut r = Remaps {
        acked: None,
        in_flight: None,
        count: 0,
    };
    let started = Instant::now();
    for i in start..start + 100_000 {
        if started.elapsed() > Duration::from_secs(20) {
            panic!("daemon not killed within 20 s");
        }
        let to = names[i % names.len()];
        r.in_flight = Some(to);
        match remap_at(d_control, to) {
            Ok((200, _)) => {
                r.acked = Some(to);
                r.in_flight = None;
                r.count += 1;
            }
            Ok((code, body)) => panic!("remap to {to}: HTTP {code} {body}"),
            // Connection refused/reset or a cut response: the daemon is gone.
            Err(_) => break,
        }
    }
    r
}

#[test]
fn kill9_during_remaps_keeps_an_acknowledged_target() {
    let env = Env::new("");
    let mut rng = Rng::new(0xdead);
    // What the state may hold after the crash: the last acknowledged remap,
    // or the one in flight when the process died (it may have been written
    // but not acknowledged). Before any remap: the primary.
    let mut last_acked: &str = "primary";
    let mut allowed: Vec<&str> = vec!["primary"];
    let mut total = 0;
    let mut in_flight_seen = 0;
    let rounds = 10;
    for round in 0..rounds {
        if let Some(s) = read_state(&env) {
            let effective = effective(&s);
            assert!(
                allowed.contains(&effective),
                "round {round}: state file says {effective}, expected one of {allowed:?}"
            );
        }
        let mut d = env.start();
        let active = d.active();
        assert!(
            allowed.contains(&active.as_str()),
            "round {round}: restarted on {active}, expected one of {allowed:?}"
        );
        assert_eq!(cic_address(d.dns), address_of(&active), "round {round}");
        if active != last_acked {
            in_flight_seen += 1;
        }
        // Remap in a loop from another thread; kill -9 at a random moment.
        let control = d.control;
        let start = rng.below(3);
        let worker = std::thread::spawn(move || remap_until_dead(control, start));
        std::thread::sleep(Duration::from_millis(100 + rng.below(400) as u64));
        d.kill9();
        let r = worker.join().expect("remap thread");
        total += r.count;
        if let Some(a) = r.acked {
            last_acked = a;
        }
        allowed = vec![last_acked];
        allowed.extend(r.in_flight);
        drop(d);
    }
    let s = read_state(&env).expect("state file");
    assert!(allowed.contains(&effective(&s)));
    let d = env.start();
    assert!(allowed.contains(&d.active().as_str()));
    assert!(
        set_aside_files(&env).is_empty(),
        "a state file was found corrupt after a crash"
    );
    println!(
        "{rounds} kill -9 rounds, {total} acknowledged remaps; restarted on the in-flight \
         (unacknowledged) target {in_flight_seen} times, on the last acknowledged one otherwise"
    );
    assert!(total >= rounds, "too few remaps to mean anything: {total}");
}

#[test]
fn corrupt_state_file_is_set_aside_and_the_primary_served() {
    let env = Env::new("");
    std::fs::create_dir_all(env.state_dir()).unwrap();
    // Nearly valid JSON that would pin `backup`, then binary garbage: a
    // lenient reader would serve backup.
    let mut garbage =
        br#"{"services":{"cic":{"active":"backup","pin":{"target":"backup","#.to_vec();
    garbage.extend(Rng::new(5).bytes(300));
    std::fs::write(env.state_file(), &garbage).unwrap();

    let d = env.start();
    assert_eq!(d.active(), "primary");
    assert_eq!(cic_address(d.dns), address_of("primary"));

    let kept = set_aside_files(&env);
    assert_eq!(kept.len(), 1, "{kept:?}");
    assert_eq!(
        std::fs::read(&kept[0]).unwrap(),
        garbage,
        "kept bytes differ"
    );
    // A fresh, valid state file replaces it.
    let fresh: PersistedState =
        serde_json::from_slice(&std::fs::read(env.state_file()).unwrap()).unwrap();
    assert_eq!(fresh.services["cic"].active, "primary");

    let stderr = d.stderr();
    let kept_name = kept[0].file_name().unwrap().to_string_lossy().into_owned();
    let line = stderr
        .lines()
        .find(|l| l.contains("ERROR") && l.contains("state file"))
        .unwrap_or_else(|| panic!("no error about the state file in stderr:\n{stderr}"));
    assert!(
        line.contains(&kept_name),
        "the error does not say where the file was kept: {line}"
    );
    println!("logged: {line}");
}
