//! Query counters for metrics and status.
//!
//! Owns: counting answers by rcode without contention on the query path.
//! Every worker (UDP thread or TCP connection) gets its own cache-line-aligned
//! slot and bumps it with relaxed atomics; readers sum the slots. It must not
//! lock, allocate or log per query.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

#[repr(align(128))]
#[derive(Default)]
pub struct LocalStats {
    rcode: [AtomicU64; 16],
    dropped: AtomicU64,
}

impl LocalStats {
    /// Count a response built by the query path (rcode read from its header).
    #[inline]
    pub fn count(&self, resp: &[u8]) {
        let rcode = crate::dns::respond::rcode_of(resp) as usize;
        self.rcode[rcode].fetch_add(1, Ordering::Relaxed);
    }

    #[inline]
    pub fn dropped(&self) {
        self.dropped.fetch_add(1, Ordering::Relaxed);
    }
}

#[derive(Default)]
pub struct Stats {
    slots: Mutex<Vec<Arc<LocalStats>>>,
    /// The counts of retired slots (see [`Stats::retire`]).
    retired: LocalStats,
    tcp_refused: AtomicU64,
}

/// A point-in-time sum.
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct Totals {
    pub by_rcode: [u64; 16],
    pub dropped: u64,
    pub tcp_refused: u64,
}

impl Stats {
    /// A new slot for one worker. A short-lived worker (a TCP connection)
    /// hands it back with [`Stats::retire`] when it ends.
    pub fn local(&self) -> Arc<LocalStats> {
        let slot = Arc::new(LocalStats::default());
        self.slots.lock().unwrap().push(slot.clone());
        slot
    }

    /// A worker is done: add its counts to the totals and drop its slot, so
    /// the slot list does not grow with every connection ever served.
    pub fn retire(&self, slot: Arc<LocalStats>) {
        let mut slots = self.slots.lock().unwrap();
        if let Some(i) = slots.iter().position(|s| Arc::ptr_eq(s, &slot)) {
            slots.swap_remove(i);
        }
        for (r, c) in self.retired.rcode.iter().zip(&slot.rcode) {
            r.fetch_add(c.load(Ordering::Relaxed), Ordering::Relaxed);
        }
        self.retired
            .dropped
            .fetch_add(slot.dropped.load(Ordering::Relaxed), Ordering::Relaxed);
    }

    pub fn tcp_refused(&self) {
        self.tcp_refused.fetch_add(1, Ordering::Relaxed);
    }

    pub fn totals(&self) -> Totals {
        let mut t = Totals {
            tcp_refused: self.tcp_refused.load(Ordering::Relaxed),
            ..Totals::default()
        };
        let mut slots = self.slots.lock().unwrap();
        for s in slots.iter().map(|s| &**s).chain([&self.retired]) {
            for (i, c) in s.rcode.iter().enumerate() {
                t.by_rcode[i] += c.load(Ordering::Relaxed);
            }
            t.dropped += s.dropped.load(Ordering::Relaxed);
        }
        // Fold slots whose worker is gone into one, so the list stays short.
        let (gone, live): (Vec<_>, Vec<_>) =
            slots.drain(..).partition(|s| Arc::strong_count(s) == 1);
        *slots = live;
        if !gone.is_empty() {
            let merged = LocalStats::default();
            for s in &gone {
                for (i, c) in s.rcode.iter().enumerate() {
                    merged.rcode[i].fetch_add(c.load(Ordering::Relaxed), Ordering::Relaxed);
                }
                merged
                    .dropped
                    .fetch_add(s.dropped.load(Ordering::Relaxed), Ordering::Relaxed);
            }
            // The merged slot stays referenced by the list only, so it is
            // folded again next time; that keeps at most one such slot.
            slots.push(Arc::new(merged));
        }
        t
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retired_slots_keep_their_counts_and_free_their_place() {
        let stats = Stats::default();
        let live = stats.local();
        live.count(&[0, 0, 0x84, 0x03]);
        for _ in 0..1000 {
            let conn = stats.local();
            conn.count(&[0, 0, 0x84, 0x00]);
            conn.dropped();
            stats.retire(conn);
        }
        assert_eq!(stats.slots.lock().unwrap().len(), 1, "only the live slot");
        let t = stats.totals();
        assert_eq!(t.by_rcode[0], 1000);
        assert_eq!(t.by_rcode[3], 1);
        assert_eq!(t.dropped, 1000);
    }
}
