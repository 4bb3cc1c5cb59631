//! The threads health checks run on.
//!
//! Why threads of their own: with 30,000 services (60,000 targets, 12,000
//! checks a second) the probes shared the daemon's runtime with the control
//! API, the cluster session and the publishers. On a saturated machine
//! (three cluster nodes on two cores) about 10,000 ready check tasks queued
//! in that runtime: a control request waited behind them until `ggon-ctl`
//! timed out, and connections the kernel had already completed sat in
//! CLOSE-WAIT until their task ran, using up the ephemeral ports. On their
//! own runtime the checks can only delay each other.
//!
//! Why not also a lower CPU priority: tried (nice +10 for these threads),
//! the checks of a site failure then ran up to 18 s late while the other
//! work of the failover took the CPU (1,000 primaries down at 10,000
//! services on three nodes sharing two cores: every node answered every
//! backup after 22 s instead of 11 s). Detection is what a failover waits
//! for; it keeps the daemon's priority.

use std::io;

/// The check runtime: up to two worker threads named `ggon-check`, with
/// timers and I/O.
pub fn build() -> io::Result<tokio::runtime::Runtime> {
    let workers = std::thread::available_parallelism().map_or(1, |n| n.get().min(2));
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(workers)
        .thread_name("ggon-check")
        .enable_all()
        .build()
}
