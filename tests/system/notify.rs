//! sd_notify: a test plays systemd's part on a NOTIFY_SOCKET datagram socket.

use std::os::unix::net::UnixDatagram;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use hickory_proto::rr::RecordType;

use crate::exec_service;
use crate::support::ggond::{query, udp_exchange, Env, Extra, Ggond};

/// The notification socket systemd would listen on.
struct Systemd {
    sock: UnixDatagram,
    path: PathBuf,
    seen: Vec<String>,
}

impl Systemd {
    fn listen(dir: &Path) -> Systemd {
        let path = dir.join("notify.sock");
        let sock = UnixDatagram::bind(&path).expect("bind notify socket");
        Systemd {
            sock,
            path,
            seen: Vec::new(),
        }
    }

    /// The next message within `limit`.
    fn next(&mut self, limit: Duration) -> Option<String> {
        self.sock
            .set_read_timeout(Some(limit.max(Duration::from_millis(1))))
            .unwrap();
        let mut buf = [0u8; 4096];
        let n = self.sock.recv(&mut buf).ok()?;
        let msg = String::from_utf8_lossy(&buf[..n]).into_owned();
        self.seen.push(msg.clone());
        Some(msg)
    }

    /// Wait (bounded) for a message that starts with `prefix`; returns it.
    fn wait_for(&mut self, prefix: &str, limit: Duration) -> String {
        let deadline = Instant::now() + limit;
        while let Some(left) = deadline.checked_duration_since(Instant::now()) {
            if let Some(m) = self.next(left) {
                if m.starts_with(prefix) {
                    return m;
                }
            }
        }
        panic!(
            "no {prefix:?} within {limit:?}; messages seen: {:?}",
            self.seen
        );
    }

    /// Every message that arrives during `span`.
    fn during(&mut self, span: Duration) -> Vec<String> {
        let deadline = Instant::now() + span;
        let mut got = Vec::new();
        while let Some(left) = deadline.checked_duration_since(Instant::now()) {
            if let Some(m) = self.next(left) {
                got.push(m);
            }
        }
        got
    }
}

fn start(env: &mut Env, systemd: &Systemd, extra_env: &[(&str, &str)]) -> Ggond {
    let path = systemd.path.to_str().unwrap().to_string();
    let mut vars: Vec<(&str, &str)> = vec![("NOTIFY_SOCKET", &path)];
    vars.extend_from_slice(extra_env);
    env.start_extra(&Extra {
        listen: "127.0.0.1:0",
        args: &["--user", "root"],
        env: &vars,
    })
}

#[test]
fn ready_reloading_stopping_and_watchdog_messages() {
    let mut env = Env::demo(&exec_service("app"));
    let mut systemd = Systemd::listen(env.dir.path());
    let mut g = start(&mut env, &systemd, &[("WATCHDOG_USEC", "1000000")]);

    let ready = systemd.wait_for("READY=1", Duration::from_secs(10));
    assert!(
        ready.contains(&format!("STATUS=serving DNS on {}", g.dns)),
        "{ready}"
    );
    // WATCHDOG_USEC=1s: keep-alives every half period.
    let t0 = Instant::now();
    let beats = systemd
        .during(Duration::from_millis(2600))
        .iter()
        .filter(|m| *m == "WATCHDOG=1")
        .count();
    assert!(
        (3..=8).contains(&beats),
        "{beats} WATCHDOG=1 in {:?}; seen {:?}",
        t0.elapsed(),
        systemd.seen
    );

    // A good reload: RELOADING=1 (with the monotonic time), then READY=1 with the result.
    g.signal(libc::SIGHUP);
    let reloading = systemd.wait_for("RELOADING=1", Duration::from_secs(10));
    assert!(reloading.contains("\nMONOTONIC_USEC="), "{reloading}");
    let done = systemd.wait_for("READY=1", Duration::from_secs(10));
    assert!(done.contains("STATUS=reload done"), "{done}");

    // A bad one: rejected, still READY with the reason.
    let good = std::fs::read_to_string(&env.config).unwrap();
    std::fs::write(&env.config, format!("{good}\n[[service]]\nname = 7\n")).unwrap();
    g.signal(libc::SIGHUP);
    systemd.wait_for("RELOADING=1", Duration::from_secs(10));
    let rejected = systemd.wait_for("READY=1", Duration::from_secs(10));
    assert!(rejected.contains("STATUS=reload rejected: "), "{rejected}");
    std::fs::write(&env.config, good).unwrap();

    // ggon-ctl reload goes the same way.
    let out = g.ctl(&["reload"]);
    assert!(out.ok(), "{out:?}");
    systemd.wait_for("RELOADING=1", Duration::from_secs(10));
    systemd.wait_for("READY=1\nSTATUS=reload done", Duration::from_secs(10));

    let status = g.stop();
    assert!(status.success(), "{status}");
    systemd.wait_for("STOPPING=1", Duration::from_secs(2));
}

#[test]
fn a_wedged_query_path_stops_feeding_the_watchdog() {
    let mut env = Env::demo(&exec_service("app"));
    let mut systemd = Systemd::listen(env.dir.path());
    let wedge = env.dir.path().join("wedge");
    let wedge_var = wedge.to_str().unwrap().to_string();
    let mut g = start(
        &mut env,
        &systemd,
        &[
            ("WATCHDOG_USEC", "600000"),
            ("GGOND_TEST_WEDGE_FILE", &wedge_var),
        ],
    );
    systemd.wait_for("READY=1", Duration::from_secs(10));
    systemd.wait_for("WATCHDOG=1", Duration::from_secs(5));
    systemd.wait_for("WATCHDOG=1", Duration::from_secs(5));
    let q = query("ggon.org.", RecordType::SOA).to_vec().unwrap();
    assert!(
        udp_exchange(g.dns, &q, Duration::from_secs(2)).is_some(),
        "answers before the wedge"
    );

    std::fs::write(&wedge, "").unwrap();
    assert!(
        g.wait_log("withholding WATCHDOG=1", Duration::from_secs(5)),
        "the watchdog noticed; log:\n{}",
        g.log_text()
    );
    systemd.during(Duration::from_millis(400));
    let after = systemd.during(Duration::from_secs(2));
    assert!(
        !after.iter().any(|m| m == "WATCHDOG=1"),
        "no keep-alive once wedged: {after:?}"
    );
    assert!(
        udp_exchange(g.dns, &q, Duration::from_millis(500)).is_none(),
        "the wedged worker does not answer"
    );
    assert!(g
        .log_text()
        .contains("UDP worker(s) [0] of the query path stopped turning"));
    let status = g.stop();
    assert!(
        status.success(),
        "a wedged worker still stops on SIGTERM: {status}"
    );
}
