//! The RRsets at one owner name, keyed by type: a sorted vector.
//!
//! Why not a `BTreeMap<RecordType, RRset>`: almost every name of a large
//! zone has one or two types, and a BTreeMap allocates a whole node (room
//! for 11 entries, 672 bytes here) for the first one; with a million names
//! that alone was about 640 MiB. A vector sized to its entries costs 64
//! bytes per type, and with this few entries a binary search is as fast as
//! a tree walk. The methods are the BTreeMap ones the code uses, with the
//! same order (by type number), so callers read the same.

use std::fmt;

use hickory_proto::rr::RecordType;

use super::zone::RRset;

/// RRsets by type, in increasing type number (as `RecordType`'s `Ord`).
#[derive(Clone, PartialEq, Default)]
pub struct Types(Vec<(RecordType, RRset)>);

impl Types {
    pub fn new() -> Types {
        Types(Vec::new())
    }

    /// Where `rtype` is, or would go. An equality scan first: with a
    /// name's one to four types it is cheaper than a binary search, whose
    /// `RecordType::cmp` (a conversion to the type number per compare)
    /// was 5% of a million-record start's compile (perf).
    fn find(&self, rtype: &RecordType) -> Result<usize, usize> {
        match self.0.iter().position(|(t, _)| t == rtype) {
            Some(i) => Ok(i),
            None => Err(self.0.partition_point(|(t, _)| t < rtype)),
        }
    }

    pub fn get(&self, rtype: &RecordType) -> Option<&RRset> {
        self.find(rtype).ok().map(|i| &self.0[i].1)
    }

    pub fn get_mut(&mut self, rtype: &RecordType) -> Option<&mut RRset> {
        self.find(rtype).ok().map(|i| &mut self.0[i].1)
    }

    pub fn contains_key(&self, rtype: &RecordType) -> bool {
        self.find(rtype).is_ok()
    }

    /// Set the RRset of `rtype`; the one it replaces, if any.
    pub fn insert(&mut self, rtype: RecordType, set: RRset) -> Option<RRset> {
        match self.find(&rtype) {
            Ok(i) => Some(std::mem::replace(&mut self.0[i].1, set)),
            Err(i) => {
                // Exactly one more slot: a name has few types, and the
                // vector's usual growth would reserve four at once.
                self.0.reserve_exact(1);
                self.0.insert(i, (rtype, set));
                None
            }
        }
    }

    /// The RRset of `rtype`, made with `make` when there is none (what
    /// `entry(rtype).or_insert_with(make)` does on a map).
    pub fn get_or_insert_with(
        &mut self,
        rtype: RecordType,
        make: impl FnOnce() -> RRset,
    ) -> &mut RRset {
        let i = match self.find(&rtype) {
            Ok(i) => i,
            Err(i) => {
                self.0.reserve_exact(1);
                self.0.insert(i, (rtype, make()));
                i
            }
        };
        &mut self.0[i].1
    }

    pub fn remove(&mut self, rtype: &RecordType) -> Option<RRset> {
        self.find(rtype).ok().map(|i| self.0.remove(i).1)
    }

    pub fn len(&self) -> usize {
        self.0.len()
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    pub fn iter(&self) -> impl DoubleEndedIterator<Item = (&RecordType, &RRset)> + Clone + '_ {
        self.0.iter().map(|(t, s)| (t, s))
    }

    pub fn keys(&self) -> impl DoubleEndedIterator<Item = &RecordType> + Clone + '_ {
        self.0.iter().map(|(t, _)| t)
    }

    pub fn values(&self) -> impl DoubleEndedIterator<Item = &RRset> + Clone + '_ {
        self.0.iter().map(|(_, s)| s)
    }

    /// Keep the RRsets for which `keep` is true.
    pub fn retain(&mut self, mut keep: impl FnMut(&RecordType, &mut RRset) -> bool) {
        self.0.retain_mut(|(t, s)| keep(t, s));
    }
}

impl std::ops::Index<&RecordType> for Types {
    type Output = RRset;

    fn index(&self, rtype: &RecordType) -> &RRset {
        self.get(rtype).expect("no RRset of this type at this name")
    }
}

impl<'a> IntoIterator for &'a Types {
    type Item = (&'a RecordType, &'a RRset);
    type IntoIter = std::iter::Map<
        std::slice::Iter<'a, (RecordType, RRset)>,
        fn(&'a (RecordType, RRset)) -> (&'a RecordType, &'a RRset),
    >;

    fn into_iter(self) -> Self::IntoIter {
        self.0.iter().map(|(t, s)| (t, s))
    }
}

/// As a map prints, so logs and test failures read as before.
impl fmt::Debug for Types {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_map().entries(self.iter()).finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_type_order_and_replaces() {
        let set = |ttl| RRset::new(ttl, Vec::new());
        let mut t = Types::new();
        assert!(t.insert(RecordType::TXT, set(1)).is_none());
        assert!(t.insert(RecordType::A, set(2)).is_none());
        assert!(t.insert(RecordType::MX, set(3)).is_none());
        assert_eq!(t.insert(RecordType::A, set(4)), Some(set(2)));
        let keys: Vec<_> = t.keys().copied().collect();
        assert_eq!(keys, [RecordType::A, RecordType::MX, RecordType::TXT]);
        assert_eq!(t[&RecordType::A].ttl, 4);
        t.get_or_insert_with(RecordType::NS, || set(5)).ttl = 6;
        assert_eq!(t.get(&RecordType::NS).map(|s| s.ttl), Some(6));
        assert_eq!(t.remove(&RecordType::MX), Some(set(3)));
        assert!(!t.contains_key(&RecordType::MX));
        assert_eq!(t.len(), 3);
    }
}
