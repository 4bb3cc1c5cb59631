//! The region map itself: a sorted table of disjoint address ranges per
//! family, built from prefixes, and the lookup the query path does.
//!
//! Kept apart from the configuration (which holds a built map): it takes
//! prefixes and region names, not a `Config`, so the config can name this
//! type without the two depending on each other.

use std::net::IpAddr;

use ipnet::IpNet;

/// A region's index in the map (file order); `names().len()` is the default.
pub type Slot = u16;
/// Stored for addresses in no region.
const NONE: Slot = Slot::MAX;

/// A prefix of a region (by slot), and where it came from.
pub type Prefix = (IpNet, Slot, Source);

/// Where an address was found, and the prefix length for which that holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Located {
    /// The region; None: in no region (the default order applies).
    pub slot: Option<Slot>,
    /// Every address sharing this many leading bits is in the same region.
    pub scope: u8,
}

/// Why a prefix is in the map: a `nets` entry beats a GeoIP network of the
/// same length.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Source {
    Geoip = 0,
    Nets = 1,
}

#[derive(Debug, Default)]
struct Table<T> {
    /// Start of each range; the range ends where the next one starts.
    starts: Vec<T>,
    slots: Vec<Slot>,
}

/// The region map of a configuration.
#[derive(Debug, Default)]
pub struct RegionMap {
    names: Vec<String>,
    v4: Table<u32>,
    v6: Table<u128>,
    prefixes: usize,
}

/// One prefix as the builder sees it (addresses widened to u128).
struct Entry {
    start: u128,
    end: u128,
    len: u8,
    source: Source,
    slot: Slot,
}

impl RegionMap {
    /// Build from `(prefix, region slot, source)`; `names` are the regions
    /// in slot order. Longest prefix wins; at equal length `nets` beats
    /// GeoIP, then the earlier region.
    pub fn build(names: Vec<String>, prefixes: Vec<Prefix>) -> RegionMap {
        let count = prefixes.len();
        let (mut v4, mut v6) = (Vec::new(), Vec::new());
        for (net, slot, source) in prefixes {
            match net {
                IpNet::V4(n) => v4.push(Entry {
                    start: u128::from(u32::from(n.network())),
                    end: u128::from(u32::from(n.broadcast())),
                    len: n.prefix_len(),
                    source,
                    slot,
                }),
                IpNet::V6(n) => v6.push(Entry {
                    start: u128::from(n.network()),
                    end: u128::from(n.broadcast()),
                    len: n.prefix_len(),
                    source,
                    slot,
                }),
            }
        }
        let (s4, t4) = flatten(v4, u128::from(u32::MAX));
        RegionMap {
            names,
            v4: Table {
                starts: s4.into_iter().map(|s| s as u32).collect(),
                slots: t4,
            },
            v6: {
                let (starts, slots) = flatten(v6, u128::MAX);
                Table { starts, slots }
            },
            prefixes: count,
        }
    }

    /// Region names in slot order (the default slot is `names().len()`).
    pub fn names(&self) -> &[String] {
        &self.names
    }

    /// How many prefixes it was built from.
    pub fn prefixes(&self) -> usize {
        self.prefixes
    }

    /// How many ranges the lookup searches (IPv4, IPv6).
    pub fn ranges(&self) -> (usize, usize) {
        (self.v4.starts.len(), self.v6.starts.len())
    }

    /// The region of `addr`. No allocation.
    pub fn locate(&self, addr: IpAddr) -> Located {
        let addr = match addr {
            IpAddr::V6(a) => match a.to_ipv4_mapped() {
                Some(v4) => IpAddr::V4(v4),
                None => IpAddr::V6(a),
            },
            a => a,
        };
        match addr {
            IpAddr::V4(a) => {
                let (slot, lo, hi) = find(&self.v4, u32::from(a), u32::MAX);
                let scope = scope(u128::from(u32::from(a)), u128::from(lo), u128::from(hi), 32);
                located(slot, scope)
            }
            IpAddr::V6(a) => {
                let (slot, lo, hi) = find(&self.v6, u128::from(a), u128::MAX);
                located(slot, scope(u128::from(a), lo, hi, 128))
            }
        }
    }
}

fn located(slot: Slot, scope: u8) -> Located {
    Located {
        slot: (slot != NONE).then_some(slot),
        scope,
    }
}

/// The range holding `addr`: its slot, first and last address.
fn find<T: Copy + Ord + From<u8> + std::ops::Sub<Output = T>>(
    t: &Table<T>,
    addr: T,
    max: T,
) -> (Slot, T, T) {
    if t.starts.is_empty() {
        return (NONE, T::from(0), max);
    }
    let i = t.starts.partition_point(|s| *s <= addr) - 1;
    let hi = t.starts.get(i + 1).map_or(max, |n| *n - T::from(1));
    (t.slots[i], t.starts[i], hi)
}

/// The shortest prefix length whose block around `addr` lies in `lo..=hi`
/// (blocks only shrink as the length grows, so a binary search finds it).
fn scope(addr: u128, lo: u128, hi: u128, width: u32) -> u8 {
    let fits = |len: u32| {
        let host = width - len;
        let mask: u128 = if host >= 128 {
            u128::MAX
        } else {
            (1u128 << host) - 1
        };
        let start = addr & !mask;
        start >= lo && (start | mask) <= hi
    };
    let (mut a, mut b) = (0u32, width);
    while a < b {
        let mid = (a + b) / 2;
        if fits(mid) {
            b = mid;
        } else {
            a = mid + 1;
        }
    }
    a as u8
}

/// Disjoint ranges covering `0..=max` from nested or disjoint prefixes:
/// (starts, slots), adjacent ranges of one slot merged.
fn flatten(mut entries: Vec<Entry>, max: u128) -> (Vec<u128>, Vec<Slot>) {
    entries.sort_by(|a, b| {
        (a.start, a.len, std::cmp::Reverse(a.source), a.slot).cmp(&(
            b.start,
            b.len,
            std::cmp::Reverse(b.source),
            b.slot,
        ))
    });
    entries.dedup_by(|later, first| later.start == first.start && later.len == first.len);
    let mut starts: Vec<u128> = Vec::new();
    let mut slots: Vec<Slot> = Vec::new();
    let mut emit = |at: u128, slot: Slot| {
        if slots.last() != Some(&slot) {
            starts.push(at);
            slots.push(slot);
        }
    };
    // The next address not yet given a range (None: past `max`).
    let mut cursor = Some(0u128);
    let mut stack: Vec<(u128, Slot)> = Vec::new();
    let close = |stack: &mut Vec<(u128, Slot)>,
                 cursor: &mut Option<u128>,
                 emit: &mut dyn FnMut(u128, Slot),
                 before: Option<u128>| {
        while let Some(&(end, slot)) = stack.last() {
            if before.is_some_and(|b| end >= b) {
                break;
            }
            if let Some(c) = *cursor {
                if c <= end {
                    emit(c, slot);
                    *cursor = end.checked_add(1).filter(|n| *n <= max);
                }
            }
            stack.pop();
        }
    };
    for e in entries {
        close(&mut stack, &mut cursor, &mut emit, Some(e.start));
        if let Some(c) = cursor {
            if c < e.start {
                emit(c, stack.last().map_or(NONE, |t| t.1));
                cursor = Some(e.start);
            }
        }
        stack.push((e.end, e.slot));
    }
    close(&mut stack, &mut cursor, &mut emit, None);
    if let Some(c) = cursor {
        emit(c, NONE);
    }
    (starts, slots)
}
