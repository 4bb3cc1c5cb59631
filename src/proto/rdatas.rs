//! The RDATAs of one RRset, stored compactly.
//!
//! Why not a `Vec<RData>`: hickory-proto 0.26's `RData` is 192 bytes
//! whatever the record, an A record's four octets included, and a large
//! zone is nearly all A and AAAA records: with a million of them, 192 MB
//! of the 621 MiB ggond held with the zone loaded (NSD: 539 MiB). Here an
//! address is kept as itself and any other RDATA boxed, 24 bytes an
//! entry (RSS 468 MiB with that zone, 438 with one RDATA kept in place,
//! see [`Rdatas`]); SOA, NS, RRSIG and the rest stay hickory `RData`s,
//! so that they can still be lent out by reference
//! ([`super::zone::ZoneData::soa`]).
//!
//! The methods are the `Vec` ones the code used; reading yields
//! `Cow<RData>` (borrowed for a boxed RDATA, made on the spot for an
//! address), and the answer encoder writes an address without making an
//! `RData` at all ([`Rd::emit`]).

use std::borrow::Cow;
use std::fmt;
use std::net::{Ipv4Addr, Ipv6Addr};

use hickory_proto::rr::rdata::{A, AAAA};
use hickory_proto::rr::{RData, RecordType};
use hickory_proto::serialize::binary::{BinEncodable, BinEncoder};
use hickory_proto::ProtoError;

/// One stored RDATA. An address is never boxed (every way in goes
/// through `From<RData>`), so the derived equality is `RData`'s.
#[derive(Clone, PartialEq)]
pub struct Rd(Repr);

#[derive(Clone, PartialEq)]
enum Repr {
    A(Ipv4Addr),
    Aaaa(Ipv6Addr),
    Other(Box<RData>),
}

impl From<RData> for Rd {
    fn from(rd: RData) -> Rd {
        Rd(match rd {
            RData::A(a) => Repr::A(a.0),
            RData::AAAA(a) => Repr::Aaaa(a.0),
            other => Repr::Other(Box::new(other)),
        })
    }
}

impl Rd {
    /// The RDATA as hickory's type: borrowed when boxed, made for an address.
    pub fn get(&self) -> Cow<'_, RData> {
        match &self.0 {
            Repr::A(a) => Cow::Owned(RData::A(A(*a))),
            Repr::Aaaa(a) => Cow::Owned(RData::AAAA(AAAA(*a))),
            Repr::Other(rd) => Cow::Borrowed(rd),
        }
    }

    /// The RDATA when it is kept as hickory's type: all but an address.
    /// For a walk that looks for other types only (the names NS, MX,
    /// CNAME... point to), so it makes no `RData` for every address.
    pub fn boxed(&self) -> Option<&RData> {
        match &self.0 {
            Repr::Other(rd) => Some(rd),
            _ => None,
        }
    }

    pub fn record_type(&self) -> RecordType {
        match &self.0 {
            Repr::A(_) => RecordType::A,
            Repr::Aaaa(_) => RecordType::AAAA,
            Repr::Other(rd) => rd.record_type(),
        }
    }

    /// Write the RDATA (wire form, no length): an address as its octets.
    pub fn emit(&self, enc: &mut BinEncoder<'_>) -> Result<(), ProtoError> {
        match &self.0 {
            Repr::A(a) => enc.emit_vec(&a.octets()),
            Repr::Aaaa(a) => enc.emit_vec(&a.octets()),
            Repr::Other(rd) => rd.emit(enc),
        }
    }

    /// Whether this is `rd` (`RData`'s equality).
    fn is(&self, rd: &RData) -> bool {
        match (&self.0, rd) {
            (Repr::A(x), RData::A(y)) => *x == y.0,
            (Repr::Aaaa(x), RData::AAAA(y)) => *x == y.0,
            (Repr::Other(x), y) => **x == *y,
            _ => false,
        }
    }
}

impl fmt::Debug for Rd {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.get().fmt(f)
    }
}

/// The RDATAs of an RRset, in order (see the module doc).
///
/// One RDATA, what most RRsets of a large zone hold, is kept in place:
/// the type is 24 bytes, as a `Vec` is, and such an RRset allocates
/// nothing (a `Vec<Rd>` took a 32-byte heap block for it, 30 MiB of a
/// million-record zone). Two or more are in a boxed `Vec`, which keeps
/// the type that small.
#[derive(Clone, Default)]
pub struct Rdatas(Store);

#[derive(Clone, Default)]
enum Store {
    #[default]
    Empty,
    One(Rd),
    // Boxed on purpose: a Vec here would make the type 32 bytes.
    #[allow(clippy::box_collection)]
    Many(Box<Vec<Rd>>),
}

/// What iterating over [`Rdatas`] yields.
pub type Iter<'a> = std::iter::Map<std::slice::Iter<'a, Rd>, fn(&'a Rd) -> Cow<'a, RData>>;

impl Rdatas {
    pub fn new() -> Rdatas {
        Rdatas(Store::Empty)
    }

    pub fn len(&self) -> usize {
        self.stored().len()
    }

    pub fn is_empty(&self) -> bool {
        self.stored().is_empty()
    }

    /// The RDATAs as hickory's type (see [`Rd::get`]).
    pub fn iter(&self) -> Iter<'_> {
        self.stored().iter().map(Rd::get)
    }

    /// The RDATAs as stored: for writing them without making `RData`s.
    pub fn stored(&self) -> &[Rd] {
        match &self.0 {
            Store::Empty => &[],
            Store::One(rd) => std::slice::from_ref(rd),
            Store::Many(v) => v,
        }
    }

    pub fn first(&self) -> Option<Cow<'_, RData>> {
        self.stored().first().map(Rd::get)
    }

    /// The first RDATA to change in place, when it is a boxed one: None
    /// for an address (A, AAAA), which is not stored as an `RData`. For
    /// the SOA, which always is.
    pub fn first_mut(&mut self) -> Option<&mut RData> {
        let first = match &mut self.0 {
            Store::Empty => None,
            Store::One(rd) => Some(rd),
            Store::Many(v) => v.first_mut(),
        };
        match first.map(|rd| &mut rd.0) {
            Some(Repr::Other(rd)) => Some(rd),
            _ => None,
        }
    }

    /// The RDATAs in a `Vec` with room for `additional` more (one in
    /// place moves there).
    fn many(&mut self, additional: usize) -> &mut Vec<Rd> {
        if !matches!(self.0, Store::Many(_)) {
            let mut v = Vec::with_capacity(self.len() + additional);
            if let Store::One(rd) = std::mem::take(&mut self.0) {
                v.push(rd);
            }
            self.0 = Store::Many(Box::new(v));
        }
        match &mut self.0 {
            Store::Many(v) => v,
            _ => unreachable!("made just above"),
        }
    }

    pub fn push(&mut self, rd: RData) {
        match self.0 {
            Store::Empty => self.0 = Store::One(rd.into()),
            _ => self.many(1).push(rd.into()),
        }
    }

    /// Room for `additional` more, exactly (as `Vec::reserve_exact`);
    /// none needed for the first, which is kept in place.
    pub fn reserve_exact(&mut self, additional: usize) {
        if !self.is_empty() {
            self.many(additional).reserve_exact(additional);
        }
    }

    pub fn retain(&mut self, mut keep: impl FnMut(&RData) -> bool) {
        match &mut self.0 {
            Store::Empty => {}
            Store::One(rd) => {
                if !keep(&rd.get()) {
                    self.0 = Store::Empty;
                }
            }
            Store::Many(v) => {
                v.retain(|rd| keep(&rd.get()));
                if v.len() < 2 {
                    // Back in place (or nothing): no box for one.
                    self.0 = v.pop().map_or(Store::Empty, Store::One);
                }
            }
        }
    }

    pub fn contains(&self, rd: &RData) -> bool {
        self.stored().iter().any(|x| x.is(rd))
    }

    pub fn to_vec(&self) -> Vec<RData> {
        self.iter().map(Cow::into_owned).collect()
    }
}

impl From<Vec<RData>> for Rdatas {
    fn from(v: Vec<RData>) -> Rdatas {
        v.into_iter().collect()
    }
}

impl FromIterator<RData> for Rdatas {
    fn from_iter<I: IntoIterator<Item = RData>>(iter: I) -> Rdatas {
        let mut v: Vec<Rd> = iter.into_iter().map(Rd::from).collect();
        Rdatas(match v.len() {
            0 => Store::Empty,
            1 => Store::One(v.pop().expect("one")),
            _ => Store::Many(Box::new(v)),
        })
    }
}

impl<'a> IntoIterator for &'a Rdatas {
    type Item = Cow<'a, RData>;
    type IntoIter = Iter<'a>;

    fn into_iter(self) -> Iter<'a> {
        self.iter()
    }
}

/// Element by element: one RDATA is the same in place or in a `Vec`.
impl PartialEq for Rdatas {
    fn eq(&self, other: &Rdatas) -> bool {
        self.stored() == other.stored()
    }
}

impl PartialEq<Vec<RData>> for Rdatas {
    fn eq(&self, other: &Vec<RData>) -> bool {
        self.len() == other.len() && self.stored().iter().zip(other).all(|(a, b)| a.is(b))
    }
}

impl fmt::Debug for Rdatas {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_list().entries(self.iter()).finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use hickory_proto::rr::rdata::{CNAME, SOA};
    use hickory_proto::rr::Name;

    fn name(s: &str) -> Name {
        Name::from_ascii(s).unwrap()
    }

    fn mixed() -> Vec<RData> {
        vec![
            RData::A(A::new(192, 0, 2, 1)),
            RData::AAAA(AAAA(Ipv6Addr::LOCALHOST)),
            RData::CNAME(CNAME(name("a.example."))),
        ]
    }

    #[test]
    fn an_entry_is_small() {
        // The point of the types: 24 bytes an entry, not 192; one in place.
        assert_eq!(std::mem::size_of::<Rd>(), 24);
        assert_eq!(std::mem::size_of::<Rdatas>(), 24);
    }

    #[test]
    fn one_is_kept_in_place_and_more_grow_one_slot_at_a_time() {
        let mut r = Rdatas::new();
        r.reserve_exact(1);
        r.push(RData::A(A::new(192, 0, 2, 1)));
        assert!(matches!(r.0, Store::One(_)));
        for n in 2..=4u8 {
            r.reserve_exact(1);
            r.push(RData::A(A::new(192, 0, 2, n)));
            match &r.0 {
                Store::Many(v) => assert_eq!(v.capacity(), usize::from(n)),
                _ => panic!("{n} RDATAs not in a Vec"),
            }
        }
        let one = Rdatas::from(vec![RData::A(A::new(192, 0, 2, 4))]);
        assert_ne!(r, one);
        r.retain(|d| d == &RData::A(A::new(192, 0, 2, 4)));
        assert!(matches!(r.0, Store::One(_)));
        assert_eq!(r, one);
        // Equal however stored: one in place or in a Vec with room for more.
        let mut roomy = one.clone();
        roomy.reserve_exact(1);
        assert!(matches!(roomy.0, Store::Many(_)));
        assert_eq!(roomy, one);
        assert_eq!(format!("{roomy:?}"), format!("{one:?}"));
        roomy.retain(|_| false);
        assert!(roomy.is_empty() && matches!(roomy.0, Store::Empty));
    }

    #[test]
    fn reads_back_what_was_stored() {
        let v = mixed();
        let r = Rdatas::from(v.clone());
        assert_eq!(r.len(), 3);
        assert_eq!(r.to_vec(), v);
        assert_eq!(r, v);
        assert_eq!(r.first().as_deref(), Some(&v[0]));
        assert_eq!(r.iter().nth(2).as_deref(), Some(&v[2]));
        assert_eq!(format!("{r:?}"), format!("{v:?}"));
        let types: Vec<_> = r.stored().iter().map(Rd::record_type).collect();
        assert_eq!(types, [RecordType::A, RecordType::AAAA, RecordType::CNAME]);
        let boxed: Vec<_> = r.stored().iter().filter_map(Rd::boxed).collect();
        assert_eq!(boxed, [&v[2]]);
    }

    #[test]
    fn writes_what_hickory_writes() {
        for rd in mixed() {
            let mut ours = Vec::new();
            Rd::from(rd.clone())
                .emit(&mut BinEncoder::new(&mut ours))
                .unwrap();
            assert_eq!(ours, rd.to_bytes().unwrap());
        }
    }

    #[test]
    fn compares_as_rdata_does() {
        let mut r = Rdatas::from(mixed());
        // Names without case, as hickory compares them.
        assert!(r.contains(&RData::CNAME(CNAME(name("A.Example.")))));
        assert!(r.contains(&RData::A(A::new(192, 0, 2, 1))));
        assert!(!r.contains(&RData::A(A::new(192, 0, 2, 2))));
        assert_ne!(r, mixed()[..2].to_vec());
        r.retain(|d| !matches!(d, RData::AAAA(_)));
        assert_eq!(r.len(), 2);
        r.push(RData::AAAA(AAAA(Ipv6Addr::LOCALHOST)));
        assert_ne!(r, Rdatas::from(mixed()));
    }

    #[test]
    fn the_soa_changes_in_place() {
        let soa = SOA::new(name("ns."), name("h."), 1, 2, 3, 4, 5);
        let mut r = Rdatas::from(vec![RData::SOA(soa)]);
        if let Some(RData::SOA(s)) = r.first_mut() {
            s.serial = 7;
        }
        assert!(matches!(r.first().as_deref(), Some(RData::SOA(s)) if s.serial == 7));
        let mut a = Rdatas::from(vec![RData::A(A::new(192, 0, 2, 1))]);
        assert!(a.first_mut().is_none());
    }
}
