//! The canonical order of a zone's records, for [`super::ZoneData`]'s bulk
//! build: the owners' keys, sorted on two threads for a large zone.

use hickory_proto::rr::{DNSClass, Name, Record};

/// A key whose byte order is DNSSEC's canonical order of names (RFC 4034
/// 6.1): its labels from the root down, lowercased (ASCII), each ended by
/// a 0 byte, with the label bytes 0 and 1 written as 1 1 and 1 2 so that
/// the end of a label sorts before any byte of a longer one.
pub fn canonical_key(name: &Name) -> Vec<u8> {
    let mut key = Vec::with_capacity(name.len() + 2);
    canonical_key_into(name, &mut key);
    key
}

/// [`canonical_key`], appended to `key`; whether the name has an
/// uppercase letter.
fn canonical_key_into(name: &Name, key: &mut Vec<u8>) -> bool {
    let mut upper = false;
    for label in name.iter().rev() {
        for &b in label {
            match b {
                0 | 1 => key.extend_from_slice(&[1, b + 1]),
                _ => {
                    upper |= b.is_ascii_uppercase();
                    key.push(b.to_ascii_lowercase());
                }
            }
        }
        key.push(0);
    }
    upper
}

/// Below this many records the keys are made and sorted on one thread.
const SORT_SPLIT_FROM: usize = 20_000;

/// In [`canonical_order`]'s indices: the record has the owner of the one
/// before it.
pub(super) const SAME_OWNER: u32 = 1 << 31;

/// A file's records put in order.
pub(super) struct Ordered {
    /// The indices of the records inside the zone, in canonical order of
    /// their owners, stable (the records of a name keep their order in the
    /// file), each marked with [`SAME_OWNER`] when its owner is the
    /// previous one's.
    pub order: Vec<u32>,
    /// The indices of the records outside the zone, in file order.
    pub outside: Vec<u32>,
    /// A record inside the zone of another class than IN, if any.
    pub not_in: Option<u32>,
}

/// Put a file's records (`first`, then `second`, as the parse's `Parsed` holds
/// them) in order for the zone `origin` (lowercase): each owner
/// lowercased where it is not already, its key made ([`canonical_key`]),
/// the records outside the zone set apart by their keys (the origin's key
/// is a prefix of every name's inside), and the rest sorted. For a large
/// zone the two halves are done on two threads and merged: ggond starts
/// with every core idle, and the sort alone was 0.27 s of a million-record
/// zone's start (perf), the pass that lowercased owners and checked them
/// against the zone 0.1 s more. Sorting indices rather than the records
/// spares moving every record (280 bytes) around, and equal owners are
/// found by their keys instead of hickory's case-insensitive compare. The
/// keys of a half are one buffer, not one allocation each: freed, small
/// blocks in the other thread's arena stayed resident (+31 MiB after a
/// million-record load, one run in two).
pub(super) fn canonical_order(
    first: &mut [Record],
    second: &mut [Record],
    origin: &Name,
) -> Ordered {
    let n = first.len() + second.len();
    assert!(n < SAME_OWNER as usize, "fewer than 2^31 records");
    let origin = canonical_key(origin);
    let (mut a, mut b) = if n < SORT_SPLIT_FROM || !crate::memory::two_cores() {
        let mid = first.len();
        let a = Keys::room(first).sorted(first, 0, &origin);
        (a, Keys::room(second).sorted(second, mid, &origin))
    } else {
        // The file's two halves as its parse left them, or cut here.
        let (first, second) = match second.is_empty() {
            true => first.split_at_mut(first.len() / 2),
            false => (first, second),
        };
        let mid = first.len();
        // Made here, filled there: see `Keys::room`. Handed over in a
        // slot, so that it is still here if no thread can be started.
        let half = std::sync::Mutex::new(Some((Keys::room(second), second)));
        let take = || half.lock().expect("not poisoned").take();
        std::thread::scope(|s| {
            let origin = &origin;
            let other = std::thread::Builder::new()
                .name("zone-sort".into())
                .spawn_scoped(s, || {
                    take().map(|(room, recs)| room.sorted(recs, mid, origin))
                });
            let a = Keys::room(first).sorted(first, 0, origin);
            let b = match other.map(|h| h.join()) {
                Ok(Ok(b)) => b,
                Ok(Err(panic)) => std::panic::resume_unwind(panic),
                Err(_) => None,
            };
            // No thread to be had: the second half here.
            let b = b.or_else(|| take().map(|(room, recs)| room.sorted(recs, mid, origin)));
            (
                a,
                b.expect("the second half is sorted on one thread or the other"),
            )
        })
    };
    let mut outside = std::mem::take(&mut a.outside);
    outside.append(&mut b.outside);
    Ordered {
        order: merged(&a, &b),
        outside,
        not_in: a.not_in.or(b.not_in),
    }
}

/// Two halves' sorted keys merged; ties go to the first (the lower
/// indices).
fn merged(a: &Keys, b: &Keys) -> Vec<u32> {
    let mut order = Vec::with_capacity(a.spans.len() + b.spans.len());
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
    /// The records outside the zone (not in `spans`).
    outside: Vec<u32>,
    /// The first record inside the zone of another class than IN.
    not_in: Option<u32>,
}

impl Keys {
    /// Room for the keys of `records`, made on this thread. Why: a block
    /// is freed to the arena of the thread that made it, and the top of
    /// another thread's arena stayed resident after the load (+20 MiB
    /// after a million-record load; `malloc_trim` gives back the main
    /// arena's top, not theirs). A key takes at most twice its name's
    /// length (bytes 0 and 1 are escaped), so filling never grows the
    /// buffer.
    fn room(records: &[Record]) -> Keys {
        let bytes: usize = records.iter().map(|r| 2 * r.name.len()).sum();
        Keys {
            bytes: Vec::with_capacity(bytes),
            spans: Vec::with_capacity(records.len()),
            outside: Vec::new(),
            not_in: None,
        }
    }

    /// The keys of `records` (the file's from index `from` on), sorted, in
    /// this room; their owners lowercased.
    fn sorted(mut self, records: &mut [Record], from: usize, origin: &[u8]) -> Keys {
        for (i, rec) in records.iter_mut().enumerate() {
            let index = (from + i) as u32;
            let start = self.bytes.len();
            if canonical_key_into(&rec.name, &mut self.bytes) || !rec.name.is_fqdn() {
                rec.name = super::fqdn_lower(&rec.name);
            }
            if self.bytes[start..].starts_with(origin) {
                if rec.dns_class != DNSClass::IN && self.not_in.is_none() {
                    self.not_in = Some(index);
                }
                self.spans.push((start, self.bytes.len(), index));
            } else {
                self.bytes.truncate(start);
                self.outside.push(index);
            }
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
        // Every 11th owner in capitals, every 13th outside the zone.
        let owner = |i: usize| {
            let o = format!("h{}.x{}.example.", (i * 7919) % 5003, i % 3);
            match (i % 11, i % 13) {
                (_, 0) => format!("h{i}.elsewhere."),
                (0, _) => o.to_uppercase(),
                _ => o,
            }
        };
        let mut records: Vec<Record> = (0..n)
            .map(|i| {
                let name = Name::from_ascii(owner(i)).unwrap();
                let ip = std::net::Ipv4Addr::new(10, 0, 0, (i % 250) as u8);
                Record::from_rdata(name, 60, RData::A(ip.into()))
            })
            .collect();
        let origin = Name::from_ascii("example.").unwrap();
        let inside: Vec<usize> = (0..n).filter(|i| i % 13 != 0).collect();
        let mut expected = inside.clone();
        expected.sort_by_cached_key(|&i| canonical_key(&records[i].name));
        let (a, b) = records.split_at_mut(n / 3);
        let ordered = canonical_order(a, b, &origin);
        let indices: Vec<usize> = ordered
            .order
            .iter()
            .map(|i| (i & !SAME_OWNER) as usize)
            .collect();
        assert_eq!(indices, expected);
        for (k, i) in ordered.order.iter().enumerate() {
            let same = k > 0 && records[expected[k - 1]].name == records[expected[k]].name;
            assert_eq!(i & SAME_OWNER != 0, same, "at {k}");
        }
        let outside: Vec<u32> = (0..n as u32).filter(|i| i % 13 == 0).collect();
        assert_eq!(ordered.outside, outside);
        assert!(ordered.not_in.is_none());
        for &i in &inside {
            assert!(records[i]
                .name
                .eq_case(&Name::from_ascii(owner(i).to_lowercase()).unwrap()));
        }
        records[5].dns_class = DNSClass::CH;
        records[13].dns_class = DNSClass::CH;
        let small = canonical_order(&mut records[..100], &mut [], &origin);
        assert_eq!((small.order.len(), small.not_in), (100 - 8, Some(5)));
    }
}
