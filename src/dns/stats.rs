//! Query counters for metrics and status.
//!
//! Owns: counting answers by rcode without contention on the query path.
//! Every worker (UDP thread or TCP connection) gets its own cache-line-aligned
//! slot and bumps it with relaxed atomics; readers sum the slots. It must not
//! lock, allocate or log per query.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use crate::proto::codes::rtype;

/// Query types counted on their own; everything else is "other".
const TYPES: [(u16, &str); 11] = [
    (rtype::A, "A"),
    (rtype::AAAA, "AAAA"),
    (rtype::CNAME, "CNAME"),
    (rtype::MX, "MX"),
    (rtype::NS, "NS"),
    (rtype::SOA, "SOA"),
    (rtype::TXT, "TXT"),
    (rtype::SRV, "SRV"),
    (rtype::PTR, "PTR"),
    (rtype::HTTPS, "HTTPS"),
    (rtype::ANY, "ANY"),
];

#[repr(align(128))]
#[derive(Default)]
pub struct LocalStats {
    rcode: [AtomicU64; 16],
    /// Indexed like TYPES, plus one slot for "other".
    qtype: [AtomicU64; TYPES.len() + 1],
    dropped: AtomicU64,
    rrl_dropped: AtomicU64,
    rrl_slipped: AtomicU64,
}

/// The question type of a response (the question follows the header).
#[inline]
fn qtype_of(resp: &[u8]) -> Option<u16> {
    if resp.get(4..6)? != [0, 1] {
        return None;
    }
    let mut i = 12;
    loop {
        let l = *resp.get(i)? as usize;
        if l == 0 {
            break;
        }
        i += 1 + l;
    }
    Some(u16::from_be_bytes([*resp.get(i + 1)?, *resp.get(i + 2)?]))
}

impl LocalStats {
    /// Count a response built by the query path (rcode read from its header).
    #[inline]
    pub fn count(&self, resp: &[u8]) {
        let rcode = crate::dns::respond::rcode_of(resp) as usize;
        self.rcode[rcode].fetch_add(1, Ordering::Relaxed);
        if let Some(t) = qtype_of(resp) {
            let i = TYPES
                .iter()
                .position(|(n, _)| *n == t)
                .unwrap_or(TYPES.len());
            self.qtype[i].fetch_add(1, Ordering::Relaxed);
        }
    }

    /// An answer withheld by response rate limiting.
    #[inline]
    pub fn rrl_dropped(&self) {
        self.rrl_dropped.fetch_add(1, Ordering::Relaxed);
    }

    /// An answer sent truncated by response rate limiting.
    #[inline]
    pub fn rrl_slipped(&self) {
        self.rrl_slipped.fetch_add(1, Ordering::Relaxed);
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
    /// Answers by query type name ("A", "AAAA", ...). Empty until the query
    /// path counts types; metrics export it as `ggon_queries_by_type_total`.
    pub by_type: Vec<(String, u64)>,
    /// Answers withheld / sent truncated by response rate limiting.
    pub rrl_dropped: u64,
    pub rrl_slipped: u64,
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
        let add = |dst: &AtomicU64, src: &AtomicU64| {
            dst.fetch_add(src.load(Ordering::Relaxed), Ordering::Relaxed);
        };
        for (r, c) in self.retired.rcode.iter().zip(&slot.rcode) {
            add(r, c);
        }
        for (r, c) in self.retired.qtype.iter().zip(&slot.qtype) {
            add(r, c);
        }
        add(&self.retired.dropped, &slot.dropped);
        add(&self.retired.rrl_dropped, &slot.rrl_dropped);
        add(&self.retired.rrl_slipped, &slot.rrl_slipped);
    }

    pub fn tcp_refused(&self) {
        self.tcp_refused.fetch_add(1, Ordering::Relaxed);
    }

    pub fn totals(&self) -> Totals {
        let mut t = Totals {
            tcp_refused: self.tcp_refused.load(Ordering::Relaxed),
            ..Totals::default()
        };
        let slots = self.slots.lock().unwrap();
        let mut types = [0u64; TYPES.len() + 1];
        for s in slots.iter().map(|s| &**s).chain([&self.retired]) {
            for (i, c) in s.rcode.iter().enumerate() {
                t.by_rcode[i] += c.load(Ordering::Relaxed);
            }
            for (i, c) in s.qtype.iter().enumerate() {
                types[i] += c.load(Ordering::Relaxed);
            }
            t.dropped += s.dropped.load(Ordering::Relaxed);
            t.rrl_dropped += s.rrl_dropped.load(Ordering::Relaxed);
            t.rrl_slipped += s.rrl_slipped.load(Ordering::Relaxed);
        }
        t.by_type = TYPES
            .iter()
            .map(|(_, n)| *n)
            .chain(["other"])
            .zip(types)
            .filter(|(_, n)| *n > 0)
            .map(|(name, n)| (name.to_string(), n))
            .collect();
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
