//! The canonical order of a zone's records, for [`super::ZoneData`]'s bulk
//! build: the owners' keys, sorted on two threads for a large zone.

use hickory_proto::rr::{Name, Record};

/// A key whose byte order is DNSSEC's canonical order of names (RFC 4034
/// 6.1) for a lowercase name: its labels from the root down, each ended
/// by a 0 byte, with the label bytes 0 and 1 written as 1 1 and 1 2 so
/// that the end of a label sorts before any byte of a longer one.
pub fn canonical_key(name: &Name) -> Vec<u8> {
    let mut key = Vec::with_capacity(name.len() + 2);
    canonical_key_into(name, &mut key);
    key
}

/// [`canonical_key`], appended to `key`.
fn canonical_key_into(name: &Name, key: &mut Vec<u8>) {
    for label in name.iter().rev() {
        for &b in label {
            match b {
                0 | 1 => key.extend_from_slice(&[1, b + 1]),
                _ => key.push(b),
            }
        }
        key.push(0);
    }
}

/// Below this many records the keys are made and sorted on one thread.
const SORT_SPLIT_FROM: usize = 20_000;

/// In [`canonical_order`]'s indices: the record has the owner of the one
/// before it.
pub(super) const SAME_OWNER: u32 = 1 << 31;

/// The indices of `records` in canonical order of their owners, stable
/// (the records of a name keep their order in the file), each marked with
/// [`SAME_OWNER`] when its owner is the previous one's. For a large zone
/// the two halves are keyed ([`canonical_key`]) and sorted on two threads
/// and merged: ggond starts with every core idle, and this sort was 0.27 s
/// of a million-record zone's start (perf). Sorting indices rather than
/// the records spares moving every record (about 300 bytes) around, and
/// equal owners are found by their keys instead of hickory's
/// case-insensitive compare. The keys of a half are one buffer, not one
/// allocation each: freed, small blocks in the other thread's arena stayed
/// resident (+31 MiB after a million-record load, one run in two).
pub(super) fn canonical_order(records: &[Record]) -> Vec<u32> {
    let n = records.len();
    assert!(n < SAME_OWNER as usize, "fewer than 2^31 records");
    let two = crate::memory::two_cores();
    let keyed = |from, to| Keys::room(records, from, to).sorted(records, from, to);
    let (a, b) = if n < SORT_SPLIT_FROM || !two {
        (keyed(0, n), keyed(n, n))
    } else {
        let mid = n / 2;
        // Made here, filled there: see `Keys::room`.
        let room = Keys::room(records, mid, n);
        std::thread::scope(|s| {
            let other = std::thread::Builder::new()
                .name("zone-sort".into())
                .spawn_scoped(s, || room.sorted(records, mid, n));
            let a = keyed(0, mid);
            match other.map(|h| h.join()) {
                Ok(Ok(b)) => (a, b),
                Ok(Err(panic)) => std::panic::resume_unwind(panic),
                Err(_) => (a, keyed(mid, n)),
            }
        })
    };
    // Merge the halves; ties go to the first (the lower indices).
    let mut order = Vec::with_capacity(n);
    let (mut i, mut j) = (0, 0);
    let mut last: Option<&[u8]> = None;
    while i < a.spans.len() || j < b.spans.len() {
        let from_a = j == b.spans.len() || (i < a.spans.len() && a.key(i) <= b.key(j));
        let (key, index) = if from_a {
            i += 1;
            (a.key(i - 1), a.spans[i - 1].2)
        } else {
            j += 1;
            (b.key(j - 1), b.spans[j - 1].2)
        };
        let same = last == Some(key);
        order.push(if same { index | SAME_OWNER } else { index });
        last = Some(key);
    }
    order
}

/// The canonical keys of some records, in one buffer, sorted.
struct Keys {
    bytes: Vec<u8>,
    /// Start and end in `bytes`, and the record's index; in order of
    /// key, then index.
    spans: Vec<(usize, usize, u32)>,
}

impl Keys {
    /// Room for the keys of `records[from..to]`, made on this thread. Why:
    /// a block is freed to the arena of the thread that made it, and the
    /// top of another thread's arena stayed resident after the load
    /// (+20 MiB after a million-record load; `malloc_trim` gives back the
    /// main arena's top, not theirs). A key takes at most twice its
    /// name's length (bytes 0 and 1 are escaped), so filling never grows
    /// the buffer.
    fn room(records: &[Record], from: usize, to: usize) -> Keys {
        let bytes: usize = records[from..to].iter().map(|r| 2 * r.name.len()).sum();
        Keys {
            bytes: Vec::with_capacity(bytes),
            spans: Vec::with_capacity(to - from),
        }
    }

    /// The keys of `records[from..to]`, sorted, in this room.
    fn sorted(mut self, records: &[Record], from: usize, to: usize) -> Keys {
        for (i, rec) in records.iter().enumerate().take(to).skip(from) {
            let start = self.bytes.len();
            canonical_key_into(&rec.name, &mut self.bytes);
            self.spans.push((start, self.bytes.len(), i as u32));
        }
        let bytes = &self.bytes;
        self.spans
            .sort_unstable_by(|x, y| (&bytes[x.0..x.1], x.2).cmp(&(&bytes[y.0..y.1], y.2)));
        self
    }

    fn key(&self, i: usize) -> &[u8] {
        let (start, end, _) = self.spans[i];
        &self.bytes[start..end]
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use hickory_proto::rr::RData;

    /// On two threads (above the split) as on one: the order a stable
    /// sort by key gives, owners repeated across the halves marked.
    #[test]
    fn the_order_is_a_stable_sort_by_key_with_repeats_marked() {
        let n = SORT_SPLIT_FROM + 1001;
        let records: Vec<Record> = (0..n)
            .map(|i| {
                let owner = format!("h{}.x{}.example.", (i * 7919) % 5003, i % 3);
                let name = Name::from_ascii(owner).unwrap();
                Record::from_rdata(
                    name,
                    60,
                    RData::A(std::net::Ipv4Addr::new(10, 0, 0, (i % 250) as u8).into()),
                )
            })
            .collect();
        let mut expected: Vec<usize> = (0..n).collect();
        expected.sort_by_cached_key(|&i| canonical_key(&records[i].name));
        let order = canonical_order(&records);
        let indices: Vec<usize> = order.iter().map(|i| (i & !SAME_OWNER) as usize).collect();
        assert_eq!(indices, expected);
        for (k, i) in order.iter().enumerate() {
            let same = k > 0 && records[expected[k - 1]].name == records[expected[k]].name;
            assert_eq!(i & SAME_OWNER != 0, same, "at {k}");
        }
        let small = canonical_order(&records[..100]);
        assert_eq!(small.len(), 100);
    }
}
