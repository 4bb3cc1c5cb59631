//! systemd integration: sd_notify(3) messages and the watchdog.
//!
//! The protocol is one datagram per message to the AF_UNIX socket named by
//! `NOTIFY_SOCKET` (a path, or `@name` in the abstract namespace), so it is
//! done here with std's UnixDatagram rather than a library. ggond sends
//! `READY=1` once zones are loaded and sockets bound, `RELOADING=1` then
//! `READY=1` with the result around a reload, `STOPPING=1` at shutdown, and
//! `WATCHDOG=1` every half `WATCHDOG_USEC` while the query path's workers and
//! the controller loop are turning ([`spawn_watchdog`]). Without
//! `NOTIFY_SOCKET` every call is a no-op.

use std::os::unix::net::{SocketAddr, UnixDatagram};
use std::sync::Arc;
use std::time::Duration;

use tracing::{debug, error, info};

use crate::decide::{Command, ControllerHandle};
use crate::dns::heartbeat::Heartbeats;
use crate::shutdown::Shutdown;

/// Where to send notifications (nothing when not started by systemd).
#[derive(Debug)]
pub struct Notify {
    target: Option<(UnixDatagram, SocketAddr)>,
    /// `WATCHDOG_USEC`, when systemd expects keep-alives from this process.
    pub watchdog: Option<Duration>,
}

impl Notify {
    /// A notifier that sends nothing.
    pub fn none() -> Notify {
        Notify {
            target: None,
            watchdog: None,
        }
    }

    /// Read `NOTIFY_SOCKET`, `WATCHDOG_USEC` and `WATCHDOG_PID`, and remove
    /// them from the environment so child processes (exec checks, command
    /// notifiers) do not inherit them. Call it while the process has one
    /// thread.
    pub fn from_env() -> Notify {
        let socket = std::env::var_os("NOTIFY_SOCKET");
        let usec = std::env::var("WATCHDOG_USEC").ok();
        let pid = std::env::var("WATCHDOG_PID").ok();
        for k in ["NOTIFY_SOCKET", "WATCHDOG_USEC", "WATCHDOG_PID"] {
            std::env::remove_var(k);
        }
        let for_us = pid.is_none_or(|p| p.trim() == std::process::id().to_string());
        let watchdog = usec
            .and_then(|u| u.trim().parse::<u64>().ok())
            .filter(|&u| u > 0 && for_us)
            .map(Duration::from_micros);
        let target = socket.and_then(|s| {
            let addr = parse_addr(&s)?;
            let sock = UnixDatagram::unbound().ok()?;
            Some((sock, addr))
        });
        Notify { target, watchdog }
    }

    pub fn enabled(&self) -> bool {
        self.target.is_some()
    }

    /// Send one message (`KEY=value` lines). Failures are logged at debug:
    /// systemd being gone must not stop a nameserver.
    pub fn send(&self, msg: &str) {
        if let Some((sock, addr)) = &self.target {
            if let Err(e) = sock.send_to_addr(msg.as_bytes(), addr) {
                debug!(error = %e, "sd_notify failed");
            }
        }
    }

    /// `RELOADING=1` with the monotonic time systemd wants beside it.
    pub fn reloading(&self) {
        self.send(&format!(
            "RELOADING=1\nMONOTONIC_USEC={}\nSTATUS=reloading",
            monotonic_usec()
        ));
    }
}

fn parse_addr(s: &std::ffi::OsStr) -> Option<SocketAddr> {
    use std::os::unix::ffi::OsStrExt;
    let bytes = s.as_bytes();
    match bytes.first()? {
        b'@' => {
            use std::os::linux::net::SocketAddrExt;
            SocketAddr::from_abstract_name(&bytes[1..]).ok()
        }
        b'/' => SocketAddr::from_pathname(std::path::Path::new(s)).ok(),
        _ => None,
    }
}

fn monotonic_usec() -> u64 {
    // SAFETY: clock_gettime fills the timespec it is given.
    let mut ts: libc::timespec = unsafe { std::mem::zeroed() };
    unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut ts) };
    ts.tv_sec as u64 * 1_000_000 + ts.tv_nsec as u64 / 1_000
}

/// What the watchdog found in one look.
#[derive(Debug, PartialEq, Eq)]
enum Health {
    Alive,
    /// The UDP workers (by index) whose counters did not move.
    WorkersStalled(Vec<usize>),
    ControllerStuck,
}

/// Feed systemd's watchdog every `period / 2` while every UDP worker's
/// heartbeat moved since the last look and the controller answers a ping
/// within `period / 4`. A wedged part makes it withhold `WATCHDOG=1` (and
/// say why, once), so systemd restarts ggond after `WatchdogSec`.
pub fn spawn_watchdog(
    notify: Arc<Notify>,
    period: Duration,
    heartbeats: Arc<Heartbeats>,
    controller: ControllerHandle,
    mut shutdown: Shutdown,
) -> tokio::task::JoinHandle<()> {
    let every = (period / 2).max(Duration::from_millis(250));
    tokio::spawn(async move {
        let mut last = heartbeats.counts();
        let mut failing = false;
        loop {
            tokio::select! {
                _ = tokio::time::sleep(every) => {}
                _ = shutdown.requested() => return,
            }
            let now = heartbeats.counts();
            let stalled: Vec<usize> = now
                .iter()
                .zip(&last)
                .enumerate()
                .filter(|(_, (n, l))| n == l)
                .map(|(i, _)| i)
                .collect();
            last = now;
            let health = if !stalled.is_empty() {
                Health::WorkersStalled(stalled)
            } else {
                let ping = controller.call(|reply| Command::Ping { reply });
                match tokio::time::timeout(every / 2, ping).await {
                    Ok(Ok(())) => Health::Alive,
                    _ => Health::ControllerStuck,
                }
            };
            match health {
                Health::Alive => {
                    notify.send("WATCHDOG=1");
                    if failing {
                        info!("query path and controller turning again; feeding the watchdog");
                        failing = false;
                    }
                }
                bad if !failing => {
                    failing = true;
                    let what = match bad {
                        Health::WorkersStalled(w) => {
                            format!("UDP worker(s) {w:?} of the query path stopped turning")
                        }
                        _ => "the controller does not answer".to_string(),
                    };
                    error!("{what}; withholding WATCHDOG=1 so systemd restarts ggond");
                }
                _ => {}
            }
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_path_and_abstract_addresses() {
        let p = parse_addr(std::ffi::OsStr::new("/run/systemd/notify")).unwrap();
        assert_eq!(
            p.as_pathname(),
            Some(std::path::Path::new("/run/systemd/notify"))
        );
        assert!(parse_addr(std::ffi::OsStr::new("@abstract")).is_some());
        assert!(parse_addr(std::ffi::OsStr::new("relative")).is_none());
        assert!(parse_addr(std::ffi::OsStr::new("")).is_none());
    }

    #[test]
    fn sends_datagrams_to_the_socket() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("notify");
        let rx = UnixDatagram::bind(&path).unwrap();
        let n = Notify {
            target: Some((
                UnixDatagram::unbound().unwrap(),
                SocketAddr::from_pathname(&path).unwrap(),
            )),
            watchdog: None,
        };
        n.send("READY=1");
        n.reloading();
        let mut buf = [0u8; 256];
        let k = rx.recv(&mut buf).unwrap();
        assert_eq!(&buf[..k], b"READY=1");
        let k = rx.recv(&mut buf).unwrap();
        let msg = std::str::from_utf8(&buf[..k]).unwrap();
        assert!(msg.starts_with("RELOADING=1\nMONOTONIC_USEC="), "{msg}");
        Notify::none().send("READY=1");
    }
}
