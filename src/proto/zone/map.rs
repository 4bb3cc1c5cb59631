//! A zone's names and their RRsets, in canonical order: one sorted array,
//! shared between versions, with a small persistent map of the changes
//! laid over it.
//!
//! Why not one persistent ordered map (imbl's `OrdMap`, which this replaced):
//! a map has to be built insert by insert (imbl 7 has no bulk constructor),
//! and every insert walks down the tree comparing hickory `Name`s label by
//! label, about twenty times. For a million-record zone that was 1.0 of
//! its 2.9 s start (perf: `Name::cmp_labels` and the B-tree's inserts).
//! A master file's records are sorted once anyway (`order.rs`), so the
//! names can be laid down as they come: the array costs no compare at all
//! and no half-empty leaves. What changes afterwards (a remap's address
//! records, an UPDATE, a signature) goes into the overlay, a persistent
//! map as before, so a new version of the zone still costs the changes,
//! not the zone: cloning a `ZoneMap` copies a pointer and the overlay's
//! root.
//!
//! The overlay holds, per changed name, either its RRsets (`Some`: new, or
//! replacing the array's) or `None` (removed from the array). Lookups try
//! the overlay, then binary-search the array; iteration merges the two,
//! finding each overlay name's place in the array by a galloping search,
//! so a walk of the zone compares names about as often as the overlay has
//! entries, and no more than a plain merge would.
//!
//! It owns only the storage: what may be stored (lowercase, inside the
//! zone, one SOA) is [`super::ZoneData`]'s business.

use std::fmt;
use std::sync::Arc;

use hickory_proto::rr::Name;

use super::Types;

type Entry = (Name, Types);

/// A name found in a map, and its RRsets.
type Found<'a> = (&'a Name, &'a Types);

/// The names of a zone with their RRsets, in canonical order.
#[derive(Clone, Default)]
pub struct ZoneMap {
    /// Sorted by name, no name twice; shared by every version made from
    /// the same load.
    base: Arc<Vec<Entry>>,
    /// What differs from `base`: `Some` the name's RRsets, `None` removed.
    over: imbl::OrdMap<Name, Option<Types>>,
    len: usize,
}

/// How two versions differ at one name (the shape of imbl's `DiffItem`).
#[derive(Debug, PartialEq)]
pub enum DiffItem<'a, 'b> {
    Add(&'b Name, &'b Types),
    Update {
        old: (&'a Name, &'a Types),
        new: (&'b Name, &'b Types),
    },
    Remove(&'a Name, &'a Types),
}

impl ZoneMap {
    pub fn new() -> ZoneMap {
        ZoneMap::default()
    }

    /// The map of `entries`, which must be sorted by name with no name twice
    /// (checked in debug builds only: the caller sorted them).
    pub fn from_sorted(entries: Vec<Entry>) -> ZoneMap {
        debug_assert!(entries.windows(2).all(|w| w[0].0 < w[1].0));
        ZoneMap {
            len: entries.len(),
            base: Arc::new(entries),
            over: imbl::OrdMap::new(),
        }
    }

    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    fn in_base(&self, name: &Name) -> Option<usize> {
        self.base.binary_search_by(|(n, _)| n.cmp(name)).ok()
    }

    pub fn get_key_value(&self, name: &Name) -> Option<(&Name, &Types)> {
        match self.over.get_key_value(name) {
            Some((n, Some(t))) => Some((n, t)),
            Some((_, None)) => None,
            None => self.in_base(name).map(|i| {
                let (n, t) = &self.base[i];
                (n, t)
            }),
        }
    }

    pub fn get(&self, name: &Name) -> Option<&Types> {
        self.get_key_value(name).map(|(_, t)| t)
    }

    pub fn contains_key(&self, name: &Name) -> bool {
        self.get(name).is_some()
    }

    /// The RRsets of `name` to change: a name of the array is copied into
    /// the overlay first.
    pub fn get_mut(&mut self, name: &Name) -> Option<&mut Types> {
        if !self.over.contains_key(name) {
            let i = self.in_base(name)?;
            let (n, t) = self.base[i].clone();
            self.over.insert(n, Some(t));
        }
        self.over.get_mut(name).and_then(Option::as_mut)
    }

    /// Set the RRsets of `name`; the ones it replaces, if any.
    pub fn insert(&mut self, name: Name, types: Types) -> Option<Types> {
        let old = match self.over.insert(name.clone(), Some(types)) {
            Some(old) => old,
            None => self.in_base(&name).map(|i| self.base[i].1.clone()),
        };
        if old.is_none() {
            self.len += 1;
        }
        old
    }

    /// Remove `name`; its RRsets, if it had any.
    pub fn remove(&mut self, name: &Name) -> Option<Types> {
        let base = self.in_base(name);
        let old = match (self.over.remove(name), base) {
            (Some(old), _) => old,
            (None, Some(i)) => Some(self.base[i].1.clone()),
            (None, None) => None,
        };
        if base.is_some() {
            // The array's entry stays; the overlay hides it.
            self.over.insert(name.clone(), None);
        }
        if old.is_some() {
            self.len -= 1;
        }
        old
    }

    /// The RRsets of `name`, empty ones made when it has none (what
    /// `entry(name).or_default()` does on a map).
    pub fn or_default(&mut self, name: Name) -> &mut Types {
        if self.get_mut(&name).is_none() {
            self.insert(name.clone(), Types::new());
        }
        self.get_mut(&name).expect("just inserted")
    }

    pub fn iter(&self) -> Iter<'_> {
        let mut it = Iter {
            base: &self.base,
            over: self.over.iter(),
            next_over: None,
            before: 0,
        };
        it.next_overlay();
        it
    }

    pub fn keys(&self) -> impl Iterator<Item = &Name> + Clone + '_ {
        self.iter().map(|(n, _)| n)
    }

    pub fn values(&self) -> impl Iterator<Item = &Types> + Clone + '_ {
        self.iter().map(|(_, t)| t)
    }

    /// The names at which `other` differs from `self`, in order. Two
    /// versions made from the same load differ only where their overlays
    /// do, which is all that is compared; else every name is.
    pub fn diff<'a, 'b>(&'a self, other: &'b ZoneMap) -> Vec<DiffItem<'a, 'b>> {
        let pair = |n: &Name| (self.get_key_value(n), other.get_key_value(n));
        if Arc::ptr_eq(&self.base, &other.base) {
            let mut out = Vec::new();
            for d in self.over.diff(&other.over) {
                let name = match d {
                    imbl::ordmap::DiffItem::Add(n, _) | imbl::ordmap::DiffItem::Remove(n, _) => n,
                    imbl::ordmap::DiffItem::Update { new: (n, _), .. } => n,
                };
                out.extend(item(pair(name)));
            }
            return out;
        }
        let (mut a, mut b) = (self.iter().peekable(), other.iter().peekable());
        let mut out = Vec::new();
        loop {
            let step = match (a.peek(), b.peek()) {
                (None, None) => return out,
                (Some(_), None) => std::cmp::Ordering::Less,
                (None, Some(_)) => std::cmp::Ordering::Greater,
                (Some((x, _)), Some((y, _))) => x.cmp(y),
            };
            let (old, new) = match step {
                std::cmp::Ordering::Less => (a.next(), None),
                std::cmp::Ordering::Greater => (None, b.next()),
                std::cmp::Ordering::Equal => (a.next(), b.next()),
            };
            out.extend(item((old, new)));
        }
    }
}

/// One name's difference, if its two versions differ.
fn item<'a, 'b>(pair: (Option<Found<'a>>, Option<Found<'b>>)) -> Option<DiffItem<'a, 'b>> {
    match pair {
        (Some(old), Some(new)) if old.1 != new.1 => Some(DiffItem::Update { old, new }),
        (Some((n, t)), None) => Some(DiffItem::Remove(n, t)),
        (None, Some((n, t))) => Some(DiffItem::Add(n, t)),
        _ => None,
    }
}

/// The entries of a [`ZoneMap`] in order: runs of the array between the
/// overlay's names, each run's end found by [`before`].
#[derive(Clone)]
pub struct Iter<'a> {
    /// What is left of the array.
    base: &'a [Entry],
    over: imbl::ordmap::Iter<'a, Name, Option<Types>, imbl::shared_ptr::DefaultSharedPtr>,
    /// The overlay's next name, and how many of `base`'s entries come
    /// before it.
    next_over: Option<(&'a Name, &'a Option<Types>)>,
    before: usize,
}

impl<'a> Iter<'a> {
    fn next_overlay(&mut self) {
        self.next_over = self.over.next();
        self.before = match self.next_over {
            Some((n, _)) => before(self.base, n),
            None => self.base.len(),
        };
    }

    fn take_base(&mut self) -> Option<(&'a Name, &'a Types)> {
        let ((n, t), rest) = self.base.split_first()?;
        self.base = rest;
        Some((n, t))
    }
}

/// How many of `base`'s entries come before `name`: a galloping search
/// from the front (1, 2, 4, … entries, then a binary search in the last
/// step), so that an overlay as large as the array (a zone signed anew
/// name by name) costs a compare or two per name, not a whole binary
/// search each.
fn before(base: &[Entry], name: &Name) -> usize {
    let mut end = 1;
    while end <= base.len() && base[end - 1].0 < *name {
        end *= 2;
    }
    let start = end / 2;
    start + base[start..end.min(base.len())].partition_point(|(b, _)| b < name)
}

impl<'a> Iterator for Iter<'a> {
    type Item = (&'a Name, &'a Types);

    fn next(&mut self) -> Option<Self::Item> {
        loop {
            if self.before > 0 {
                self.before -= 1;
                return self.take_base();
            }
            let Some((name, types)) = self.next_over else {
                return self.take_base();
            };
            // The array's entry for this name, if any, is replaced.
            if self.base.first().is_some_and(|(b, _)| b == name) {
                self.base = &self.base[1..];
            }
            self.next_overlay();
            if let Some(t) = types {
                return Some((name, t));
            }
        }
    }
}

impl<'a> IntoIterator for &'a ZoneMap {
    type Item = (&'a Name, &'a Types);
    type IntoIter = Iter<'a>;

    fn into_iter(self) -> Iter<'a> {
        self.iter()
    }
}

impl std::ops::Index<&Name> for ZoneMap {
    type Output = Types;

    fn index(&self, name: &Name) -> &Types {
        self.get(name).expect("no such name in the zone")
    }
}

impl PartialEq for ZoneMap {
    fn eq(&self, other: &ZoneMap) -> bool {
        // Versions of one load: only where their overlays differ.
        self.len == other.len
            && match Arc::ptr_eq(&self.base, &other.base) {
                true => self.diff(other).is_empty(),
                false => self.iter().eq(other.iter()),
            }
    }
}

/// As a map prints, so logs and test failures read as before.
impl fmt::Debug for ZoneMap {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_map().entries(self.iter()).finish()
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use hickory_proto::rr::RecordType;

    use super::*;
    use crate::proto::zone::RRset;

    fn types(ttl: u32) -> Types {
        let mut t = Types::new();
        t.insert(RecordType::A, RRset::new(ttl, Vec::new()));
        t
    }

    fn name(i: u64) -> Name {
        Name::from_ascii(format!("h{}.x{}.example.", i % 97, i % 5)).unwrap()
    }

    /// Random changes on a map made from sorted entries, and the same on a
    /// BTreeMap: the same contents, order, lookups and differences, at
    /// every step, including versions that share the array.
    #[test]
    fn behaves_like_an_ordered_map() {
        let mut model: BTreeMap<Name, Types> = (0..300).map(|i| (name(i * 7), types(1))).collect();
        let mut map = ZoneMap::from_sorted(model.clone().into_iter().collect());
        let mut seed = 0x9e37_79b9_7f4a_7c15_u64;
        let mut rand = move |n: u64| {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            seed % n
        };
        for step in 0..2_000 {
            let before = (map.clone(), model.clone());
            let n = name(rand(1_000));
            match rand(4) {
                0 => assert_eq!(
                    map.insert(n.clone(), types(step)),
                    model.insert(n, types(step))
                ),
                1 => assert_eq!(map.remove(&n), model.remove(&n)),
                2 => {
                    let (a, b) = (map.get_mut(&n), model.get_mut(&n));
                    assert_eq!(a.is_some(), b.is_some());
                    if let (Some(a), Some(b)) = (a, b) {
                        *a = types(step);
                        *b = types(step);
                    }
                }
                _ => {
                    map.or_default(n.clone());
                    model.entry(n).or_default();
                }
            }
            assert_eq!(map.len(), model.len());
            assert!(map.iter().eq(model.iter()), "step {step}");
            let n = name(rand(1_000));
            assert_eq!(map.get_key_value(&n), model.get_key_value(&n));
            let expected: Vec<_> = before
                .1
                .keys()
                .chain(model.keys())
                .collect::<std::collections::BTreeSet<_>>()
                .into_iter()
                .filter(|k| before.1.get(k) != model.get(k))
                .collect();
            let diff: Vec<_> = before
                .0
                .diff(&map)
                .into_iter()
                .map(|d| match d {
                    DiffItem::Add(k, _)
                    | DiffItem::Remove(k, _)
                    | DiffItem::Update { new: (k, _), .. } => k,
                })
                .collect();
            assert_eq!(diff, expected, "step {step}");
        }
        // A version built anew (another array) differs only where it does.
        let rebuilt = ZoneMap::from_sorted(model.clone().into_iter().collect());
        assert!(map.diff(&rebuilt).is_empty());
        assert_eq!(map, rebuilt);
    }
}
