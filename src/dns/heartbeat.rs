//! The query path's pulse, for the systemd watchdog: the UDP loop bumps it,
//! the watchdog reads it. Kept apart from the server so that neither the
//! server nor the loop depends on the other for it.

use std::sync::atomic::{AtomicU64, Ordering};

/// Liveness of the query path: one counter per UDP worker thread, bumped at
/// every turn of its loop, which turns at least every 200 ms (the socket's
/// receive timeout) when all is well. The systemd watchdog compares two
/// readings: a counter that did not move is a wedged worker.
#[derive(Debug, Default)]
pub struct Heartbeats {
    beats: Vec<Beat>,
}

/// On its own cache line: workers never contend for one.
#[derive(Debug, Default)]
#[repr(align(64))]
struct Beat(AtomicU64);

impl Heartbeats {
    pub(super) fn new(n: usize) -> Heartbeats {
        Heartbeats {
            beats: (0..n).map(|_| Beat::default()).collect(),
        }
    }

    #[inline]
    pub(super) fn beat(&self, worker: usize) {
        self.beats[worker].0.fetch_add(1, Ordering::Relaxed);
    }

    /// Every worker's count now.
    pub fn counts(&self) -> Vec<u64> {
        self.beats
            .iter()
            .map(|b| b.0.load(Ordering::Relaxed))
            .collect()
    }
}
