//! The partition nemesis's health targets: real TCP listeners in the
//! targets' network namespace (one port per web target, all on that
//! namespace's address), accepted and closed by one thread that lives in
//! that namespace; and the outage thread, which now and then stops the
//! listener of the target web answers, holds it down, and starts it again
//! (each stop recorded as an [`Outage`]).

use std::net::{Ipv4Addr, SocketAddr, TcpListener};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{channel, Receiver, Sender};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

use rand::{Rng, SeedableRng};

use super::nemesis_check::Outage;
use super::nemesis_io::{read_node, Clock, Table};
use crate::support::netns::Mesh;

/// web's targets.
pub const WEB_TARGETS: usize = 4;
const PORT: u16 = 8000;

enum Cmd {
    Start(usize),
    Stop(usize),
    Quit,
}

/// The listeners; dropped: the thread ends (leaving the namespace).
pub struct Listeners {
    tx: Sender<(Cmd, Sender<()>)>,
    thread: Option<JoinHandle<()>>,
    pub ip: Ipv4Addr,
}

/// Target `w`'s check address.
pub fn address(ip: Ipv4Addr, w: usize) -> SocketAddr {
    SocketAddr::from((ip, PORT + w as u16))
}

fn serve(ip: Ipv4Addr, rx: Receiver<(Cmd, Sender<()>)>) {
    let mut open: Vec<Option<TcpListener>> = (0..WEB_TARGETS).map(|_| None).collect();
    loop {
        match rx.recv_timeout(Duration::from_millis(10)) {
            Ok((cmd, done)) => {
                match cmd {
                    Cmd::Start(w) => {
                        let l = TcpListener::bind(address(ip, w)).expect("bind a target");
                        l.set_nonblocking(true).expect("nonblocking");
                        open[w] = Some(l);
                    }
                    Cmd::Stop(w) => open[w] = None,
                    Cmd::Quit => return,
                }
                let _ = done.send(());
            }
            Err(std::sync::mpsc::RecvTimeoutError::Disconnected) => return,
            Err(_) => {}
        }
        for l in open.iter().flatten() {
            // Accept and close at once: a TCP check only connects.
            while l.accept().is_ok() {}
        }
    }
}

impl Listeners {
    /// Every target listening, in host `h`'s namespace of `mesh`.
    pub fn start(mesh: &Mesh, h: usize) -> Listeners {
        let ip = mesh.ip(h);
        let (tx, rx) = channel();
        let (ready_tx, ready_rx) = channel();
        let ns = format!("/run/netns/{}", mesh.ns(h));
        let thread = std::thread::spawn(move || {
            let f = std::fs::File::open(&ns).expect("open the targets' namespace");
            use std::os::fd::AsRawFd as _;
            // SAFETY: setns(2) on an fd we hold; it moves only this thread.
            let rc = unsafe { libc::setns(f.as_raw_fd(), libc::CLONE_NEWNET) };
            assert_eq!(rc, 0, "setns: {}", std::io::Error::last_os_error());
            let _ = ready_tx.send(());
            serve(ip, rx)
        });
        ready_rx
            .recv_timeout(Duration::from_secs(5))
            .expect("targets thread");
        let l = Listeners {
            tx,
            thread: Some(thread),
            ip,
        };
        for w in 0..WEB_TARGETS {
            l.send(Cmd::Start(w));
        }
        l
    }

    fn send(&self, cmd: Cmd) {
        let (done_tx, done_rx) = channel();
        self.tx.send((cmd, done_tx)).expect("targets thread alive");
        done_rx
            .recv_timeout(Duration::from_secs(5))
            .expect("targets thread answers");
    }

    pub fn stop(&self, w: usize) {
        self.send(Cmd::Stop(w));
    }

    pub fn start_again(&self, w: usize) {
        self.send(Cmd::Start(w));
    }
}

impl Drop for Listeners {
    fn drop(&mut self) {
        let (done_tx, _done_rx) = channel();
        let _ = self.tx.send((Cmd::Quit, done_tx));
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// Sleep `ms` in small steps; false if `stop` was set meanwhile.
fn nap(ms: u64, stop: &AtomicBool) -> bool {
    let mut left = ms;
    while left > 0 {
        if stop.load(Ordering::Relaxed) {
            return false;
        }
        let step = left.min(100);
        std::thread::sleep(Duration::from_millis(step));
        left -= step;
    }
    !stop.load(Ordering::Relaxed)
}

/// Every 4–9 s, stop the listener of the target web answers (as a random
/// running node says) for 3–5 s, then start it again; until `stop` (at
/// most 1,000 outages). Returns the outages.
pub fn spawn_outages(
    targets: Arc<Listeners>,
    table: &Table,
    clock: &Arc<Clock>,
    stop: &Arc<AtomicBool>,
    seed: u64,
) -> JoinHandle<Vec<Outage>> {
    let (table, clock, stop) = (table.clone(), clock.clone(), stop.clone());
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed ^ 0x7a12);
    std::thread::spawn(move || {
        let mut outages = Vec::new();
        while outages.len() < 1000 && nap(rng.random_range(4000..9000), &stop) {
            let dns: Vec<SocketAddr> = table
                .lock()
                .unwrap()
                .iter()
                .flatten()
                .map(|n| n.0)
                .collect();
            if dns.is_empty() {
                continue;
            }
            let Some((_, Some(web), _)) = read_node(dns[rng.random_range(0..dns.len())], true)
            else {
                continue;
            };
            let w: usize = web[1..].parse().expect("w<N>");
            targets.stop(w);
            let from = clock.ms();
            eprintln!("nemesis {from:>6} ms: web target {web} stopped");
            nap(rng.random_range(3000..5000), &AtomicBool::new(false));
            targets.start_again(w);
            let until = clock.ms();
            eprintln!("nemesis {until:>6} ms: web target {web} started again");
            outages.push(Outage {
                target: web,
                from,
                until,
            });
        }
        outages
    })
}
