//! Zone data: what a zone contains, as plain records, loaded from RFC 1035
//! master files.
//!
//! Owns: parsing master files (with hickory-proto's parser), the sanity rules a
//! zone must pass (one SOA at the apex, no data outside the zone, CNAME alone at
//! its name), and the record-level edit operations used by the publisher
//! (replace one RRset). It must not encode answers or know about the wire path:
//! [`crate::snapshot`] compiles a `ZoneData` into ready answers.

use std::borrow::Cow;
use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use hickory_proto::rr::{DNSClass, Name, RData, Record, RecordType};
use hickory_proto::serialize::binary::{BinEncodable, BinEncoder};

pub use super::rdatas::Rdatas;
pub use super::types::Types;
pub use map::{DiffItem, ZoneMap};
pub use order::canonical_key;
use order::{canonical_order, Ordered, SAME_OWNER};

mod map;
mod order;

/// One RRset: the records of one type at one name share a TTL.
#[derive(Debug, Clone, PartialEq)]
pub struct RRset {
    pub ttl: u32,
    /// Compact: an A record is not a 192-byte `RData` (see [`Rdatas`]).
    pub rdatas: Rdatas,
    /// RRSIG only: each signature keeps the TTL of the RRset it covers
    /// (RFC 4034 3), one per entry of `rdatas`; empty for every other type.
    pub ttls: Vec<u32>,
}

impl RRset {
    pub fn new(ttl: u32, rdatas: Vec<RData>) -> RRset {
        RRset {
            ttl,
            rdatas: rdatas.into(),
            ttls: Vec::new(),
        }
    }

    /// The TTL of the `i`-th record.
    pub fn ttl_of(&self, i: usize) -> u32 {
        if self.ttls.len() == self.rdatas.len() {
            self.ttls[i]
        } else {
            self.ttl
        }
    }
}

/// A zone's contents. Names are stored lowercase and fully qualified; the
/// map keeps DNSSEC canonical order, which is also a sensible AXFR order.
#[derive(Debug, Clone, PartialEq)]
pub struct ZoneData {
    pub origin: Name,
    pub rrsets: ZoneMap,
}

/// Why zone data cannot be loaded or served: the file, its syntax, or a
/// rule every served zone must keep.
#[derive(Debug, thiserror::Error)]
pub enum ZoneError {
    #[error("{}: cannot read: {source}", path.display())]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    /// Every problem of the master file, one per line.
    #[error("{}", super::zonefile::lines(.0))]
    Syntax(Vec<super::zonefile::FileError>),
    /// A problem found in this file.
    #[error("{}: {source}", path.display())]
    InFile {
        path: PathBuf,
        source: Box<ZoneError>,
    },
    #[error("{0}: only class IN is served")]
    Class(Name),
    #[error("{name} is outside the zone {origin}")]
    OutsideZone { name: Box<Name>, origin: Box<Name> },
    #[error("more than one SOA at the apex")]
    SoaCount,
    #[error("no SOA at the apex {0}")]
    NoSoa(Name),
    #[error("{name} {rtype}: this record cannot be encoded: {source}")]
    Unencodable {
        name: Name,
        rtype: RecordType,
        source: Box<hickory_proto::ProtoError>,
    },
    #[error("SOA at {0}, which is not the apex")]
    SoaBelowApex(Name),
    #[error("{0} has a CNAME and other data (RFC 1034 3.6.2)")]
    CnameAndOther(Name),
    #[error("CNAME at the zone apex")]
    CnameAtApex,
}

impl ZoneData {
    /// Load a master file. Errors name the file.
    pub fn load(path: &Path, origin: &Name) -> Result<ZoneData, ZoneError> {
        let text = super::zonefile::read_text(path).map_err(|source| ZoneError::Read {
            path: path.to_path_buf(),
            source,
        })?;
        Self::parse(&text, Some(path), origin).map_err(|e| ZoneError::InFile {
            path: path.to_path_buf(),
            source: Box::new(e),
        })
    }

    /// Parse master-file text for the zone `origin` (see
    /// [`super::zonefile`]: BIND's syntax, every RR type, all errors at
    /// once, each with its line). Data outside the zone is left out with a
    /// warning, as BIND does.
    pub fn parse(text: &str, path: Option<&Path>, origin: &Name) -> Result<ZoneData, ZoneError> {
        let origin = fqdn_lower(origin);
        let parsed = super::zonefile::parse(text, path, &origin).map_err(ZoneError::Syntax)?;
        let file = path.map_or_else(|| "zone".to_string(), |p| p.display().to_string());
        for w in &parsed.warnings {
            tracing::warn!("{file}: {w}");
        }
        let (zone, mut outside) = Self::build(origin.clone(), parsed.records, parsed.rest)?;
        if !outside.is_empty() {
            outside.dedup();
            tracing::warn!(
                "{file}: {} records outside the zone {origin} left out, as BIND does (first: {})",
                outside.len(),
                outside[0]
            );
        }
        zone.check()?;
        Ok(zone)
    }

    /// The zone of a master file's records, built in one pass: the owners
    /// lowercased, the records sorted by owner in canonical order (see
    /// [`canonical_order`]), and each name's RRsets laid down in that order
    /// as the map's array ([`ZoneMap::from_sorted`]): no name compared
    /// again. Inserting record by record into an ordered map made every
    /// record pay two walks down it with hickory's case-insensitive name
    /// compare (2.6 of the 6.2 s a million-record zone took to load, perf),
    /// and inserting each name once still cost 1.0 of 2.9 s. Records
    /// outside the zone are returned (their names), not loaded.
    fn build(
        origin: Name,
        mut records: Vec<Record>,
        mut rest: Vec<Record>,
    ) -> Result<(ZoneData, Vec<String>), ZoneError> {
        let Ordered {
            order,
            outside,
            not_in,
        } = canonical_order(&mut records, &mut rest, &origin);
        if let Some(i) = not_in {
            let name = &record_at(&mut records, &mut rest, i).name;
            return Err(ZoneError::Class(name.clone()));
        }
        let outside = outside
            .iter()
            .map(|&i| record_at(&mut records, &mut rest, i).name.to_string())
            .collect();
        // Each record taken once, in order, a stand-in left in its place.
        let stand_in = Record::from_rdata(Name::root(), 0, RData::Update0(RecordType::A));
        let mut take =
            |i: u32| std::mem::replace(record_at(&mut records, &mut rest, i), stand_in.clone());
        let names = order.iter().filter(|&&i| i & SAME_OWNER == 0).count();
        let mut entries = Vec::with_capacity(names);
        for group in order.chunk_by(|_, b| b & SAME_OWNER != 0) {
            let mut types = Types::new();
            let first = take(group[0]);
            let name = first.name.clone();
            add_to(&mut types, first);
            for &i in &group[1..] {
                add_to(&mut types, take(i & !SAME_OWNER));
            }
            entries.push((name, types));
        }
        let rrsets = ZoneMap::from_sorted(entries);
        Ok((ZoneData { origin, rrsets }, outside))
    }

    /// Add one record (used by dynamic updates and by the publisher).
    pub fn add_record(&mut self, rec: &Record) -> Result<(), ZoneError> {
        if rec.dns_class != DNSClass::IN {
            return Err(ZoneError::Class(rec.name.clone()));
        }
        let name = fqdn_lower(&rec.name);
        if !self.origin.zone_of(&name) {
            return Err(ZoneError::OutsideZone {
                name: Box::new(name),
                origin: Box::new(self.origin.clone()),
            });
        }
        add_to(self.rrsets.or_default(name), rec.clone());
        Ok(())
    }

    /// Structural rules every served zone must satisfy.
    pub fn check(&self) -> Result<(), ZoneError> {
        let soa = self
            .rrsets
            .get(&self.origin)
            .and_then(|t| t.get(&RecordType::SOA));
        match soa {
            Some(s) if s.rdatas.len() == 1 => {}
            Some(_) => return Err(ZoneError::SoaCount),
            None => return Err(ZoneError::NoSoa(self.origin.clone())),
        }
        // One buffer for every record (to_bytes made a vector per record).
        let mut buf = Vec::with_capacity(512);
        for (name, types) in &self.rrsets {
            // What the answer compiler will have to write, written once here:
            // a record ggond cannot encode is refused at load (and by
            // --check-config), never met later by the query path's compiler.
            for (rtype, set) in types {
                for rd in set.rdatas.stored() {
                    buf.clear();
                    if let Err(e) = rd.emit(&mut BinEncoder::new(&mut buf)) {
                        return Err(ZoneError::Unencodable {
                            name: name.clone(),
                            rtype: *rtype,
                            source: Box::new(e),
                        });
                    }
                }
            }
            if types.contains_key(&RecordType::SOA) && name != &self.origin {
                return Err(ZoneError::SoaBelowApex(name.clone()));
            }
            // DNSSEC data (RRSIG, NSEC, and KEY, RFC 2535) may sit beside a
            // CNAME (RFC 4035 2.5), as BIND allows.
            let others = types
                .keys()
                .filter(|t| {
                    !matches!(
                        t,
                        RecordType::CNAME | RecordType::RRSIG | RecordType::NSEC | RecordType::KEY
                    )
                })
                .count();
            if types.contains_key(&RecordType::CNAME) && others > 0 {
                return Err(ZoneError::CnameAndOther(name.clone()));
            }
            if types.contains_key(&RecordType::CNAME) && name == &self.origin {
                return Err(ZoneError::CnameAtApex);
            }
        }
        Ok(())
    }

    pub fn soa(&self) -> &hickory_proto::rr::rdata::SOA {
        match self
            .rrsets
            .get(&self.origin)
            .and_then(|t| t.get(&RecordType::SOA))
            .and_then(|s| s.rdatas.first())
        {
            Some(Cow::Borrowed(RData::SOA(soa))) => soa,
            _ => unreachable!("ZoneData::check guarantees an SOA"),
        }
    }

    pub fn soa_ttl(&self) -> u32 {
        self.rrsets[&self.origin][&RecordType::SOA].ttl
    }

    /// Delegation points: the owners below the apex with an NS RRset.
    pub fn cuts(&self) -> BTreeSet<Name> {
        self.rrsets
            .iter()
            // The type first: comparing every name with the apex was 2% of
            // a million-record start (perf).
            .filter(|(n, t)| t.contains_key(&RecordType::NS) && **n != self.origin)
            .map(|(n, _)| n.clone())
            .collect()
    }

    /// The TTL of negative answers (RFC 2308 §5, RFC 9077): the lower of
    /// the SOA's TTL and its minimum field.
    pub fn negative_ttl(&self) -> u32 {
        self.soa_ttl().min(self.soa().minimum)
    }

    /// The SOA RRset as negative answers carry it (with [`Self::negative_ttl`]).
    pub fn negative_soa(&self) -> RRset {
        RRset {
            ttl: self.negative_ttl(),
            rdatas: self.rrsets[&self.origin][&RecordType::SOA].rdatas.clone(),
            ttls: Vec::new(),
        }
    }

    /// Whether `other`'s SOA is this one's but for the serial (same TTL,
    /// names and timers): a change that only bumps the serial.
    pub fn same_soa_but_serial(&self, other: &ZoneData) -> bool {
        let (a, b) = (self.soa(), other.soa());
        self.soa_ttl() == other.soa_ttl()
            && (&a.mname, &a.rname, a.refresh, a.retry, a.expire, a.minimum)
                == (&b.mname, &b.rname, b.refresh, b.retry, b.expire, b.minimum)
    }

    pub fn serial(&self) -> u32 {
        self.soa().serial
    }

    /// Set the SOA serial (the publisher bumps it on every change).
    pub fn set_serial(&mut self, serial: u32) {
        if let Some(RData::SOA(soa)) = self
            .rrsets
            .get_mut(&self.origin)
            .and_then(|t| t.get_mut(&RecordType::SOA))
            .and_then(|s| s.rdatas.first_mut())
        {
            soa.serial = serial;
        }
    }

    /// Replace the RRset of `rtype` at `name` (None or empty removes it).
    pub fn replace_rrset(&mut self, name: &Name, rtype: RecordType, set: Option<RRset>) {
        let name = fqdn_lower(name);
        match set {
            Some(set) if !set.rdatas.is_empty() => {
                self.rrsets.or_default(name).insert(rtype, set);
            }
            _ => {
                if let Some(types) = self.rrsets.get_mut(&name) {
                    types.remove(&rtype);
                    if types.is_empty() {
                        self.rrsets.remove(&name);
                    }
                }
            }
        }
    }

    /// All records as hickory `Record`s (for transfers and diagnostics).
    pub fn records(&self) -> impl Iterator<Item = Record> + '_ {
        self.rrsets.iter().flat_map(|(name, types)| {
            types.values().flat_map(move |set| {
                set.rdatas.iter().enumerate().map(move |(i, rd)| {
                    Record::from_rdata(name.clone(), set.ttl_of(i), rd.into_owned())
                })
            })
        })
    }

    pub fn record_count(&self) -> usize {
        self.rrsets
            .values()
            .flat_map(|t| t.values())
            .map(|s| s.rdatas.len())
            .sum()
    }
}

/// A file's record by its index: `first`'s, then `rest`'s.
fn record_at<'a>(first: &'a mut [Record], rest: &'a mut [Record], i: u32) -> &'a mut Record {
    match (i as usize).checked_sub(first.len()) {
        None => &mut first[i as usize],
        Some(j) => &mut rest[j],
    }
}

/// Add `rec` to the RRsets of its owner (the caller has checked its class
/// and owner): RFC 2181 5.2, the TTLs of an RRset are equal, the lowest
/// kept; a record already there is not added twice.
fn add_to(types: &mut Types, rec: Record) {
    let rtype = rec.record_type();
    let set = types.get_or_insert_with(rtype, || RRset::new(rec.ttl, Vec::new()));
    set.ttl = set.ttl.min(rec.ttl);
    let data = normalized(rec.data);
    if !set.rdatas.iter().any(|x| same_rdata(&x, &data)) {
        if rtype == RecordType::RRSIG && set.ttls.len() == set.rdatas.len() {
            set.ttls.push(rec.ttl);
        }
        if set.rdatas.len() < 4 {
            // Most RRsets hold one or two records; the usual growth
            // would reserve room for four at once.
            set.rdatas.reserve_exact(1);
        }
        set.rdatas.push(data);
    }
}

/// SVCB/HTTPS parameters in increasing key order (RFC 9460 2.2): the wire
/// form requires it, and hickory-proto refuses to write them otherwise, so
/// an UPDATE or a file with another order must not reach the compiler.
/// Whether two RDATAs are one record of an RRset. Names compare without
/// case (hickory's equality), but in SVCB/HTTPS, whose target is not
/// among the names RFC 4034 6.2 lowercases, case counts, as in BIND.
fn same_rdata(a: &RData, b: &RData) -> bool {
    match (a, b) {
        (RData::SVCB(_), RData::SVCB(_)) | (RData::HTTPS(_), RData::HTTPS(_)) => {
            a == b && a.to_bytes().ok() == b.to_bytes().ok()
        }
        _ => a == b,
    }
}

fn normalized(rd: RData) -> RData {
    match rd {
        RData::SVCB(mut s) => {
            s.svc_params.sort_by_key(|(k, _)| u16::from(*k));
            RData::SVCB(s)
        }
        RData::HTTPS(mut h) => {
            h.0.svc_params.sort_by_key(|(k, _)| u16::from(*k));
            RData::HTTPS(h)
        }
        other => other,
    }
}

/// The topmost of `cuts` (from [`ZoneData::cuts`]) at or above `name`
/// and below the apex `origin`: set when the name is a delegation point or
/// delegated away.
pub fn cut_of<'c>(origin: &Name, cuts: &'c BTreeSet<Name>, name: &Name) -> Option<&'c Name> {
    // Most zones have no delegation: no walk up the name (a copy of it
    // per label) for each of a million names.
    if cuts.is_empty() {
        return None;
    }
    let mut n = name.clone();
    let mut found = None;
    while n.num_labels() > origin.num_labels() {
        if let Some(c) = cuts.get(&n) {
            found = Some(c);
        }
        n = n.base_name();
    }
    found
}

/// A service's addresses as its A and AAAA RRsets (None: no address of
/// that family).
pub fn address_rrsets(ttl: u32, addrs: &[std::net::IpAddr]) -> [Option<RRset>; 2] {
    let set = |v4: bool| {
        let rdatas: Vec<RData> = addrs
            .iter()
            .filter(|a| a.is_ipv4() == v4)
            .map(|a| match a {
                std::net::IpAddr::V4(a) => RData::A((*a).into()),
                std::net::IpAddr::V6(a) => RData::AAAA((*a).into()),
            })
            .collect();
        (!rdatas.is_empty()).then(|| RRset::new(ttl, rdatas))
    };
    [set(true), set(false)]
}

/// Lowercase, fully-qualified copy of a name: the key form used everywhere.
pub fn fqdn_lower(name: &Name) -> Name {
    let mut n = name.to_lowercase();
    n.set_fqdn(true);
    n
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn canonical_keys_sort_as_names_do() {
        // Labels that are prefixes of others, the bytes 0 and 1 (escaped in
        // the key), 2 and 255, and names of different depths.
        let labels: [&[u8]; 8] = [
            b"a", b"a\x00", b"a\x01", b"a\x02", b"ab", b"b", b"\x00", b"\xff",
        ];
        let mut names = vec![Name::root()];
        for a in labels {
            let one = Name::from_labels([a]).unwrap();
            names.push(one.clone());
            for b in labels {
                names.push(Name::from_labels([b, a]).unwrap());
            }
        }
        let mut by_name = names.clone();
        by_name.sort();
        let mut by_key = names;
        by_key.sort_by_cached_key(canonical_key);
        assert_eq!(by_name, by_key);
        assert_eq!(
            canonical_key(&Name::from_labels([&b"x\x00y"[..]]).unwrap()),
            b"x\x01\x01y\x00"
        );
    }

    #[test]
    fn a_file_out_of_order_loads_as_in_order() {
        let head = "$ORIGIN ggon.org.\n$TTL 300\n@ IN SOA ns1 hm 1 3600 600 86400 300\n@ IN NS ns1\nns1 IN A 127.0.0.1\n";
        let a = format!(
            "{head}b A 127.0.0.2\nA.b A 127.0.0.3\nb AAAA ::1\nb A 127.0.0.4\nb 60 A 127.0.0.2\n"
        );
        let b = format!("{head}b 60 A 127.0.0.2\nb A 127.0.0.4\nb AAAA ::1\na.B A 127.0.0.3\n");
        let (za, zb) = (
            ZoneData::parse(&a, None, &origin()).unwrap(),
            ZoneData::parse(&b, None, &origin()).unwrap(),
        );
        let b_a = &za.rrsets[&Name::from_ascii("b.ggon.org.").unwrap()][&RecordType::A];
        // The lowest TTL, the records in file order, a duplicate once.
        assert_eq!(b_a.ttl, 60);
        assert_eq!(b_a.rdatas.len(), 2);
        assert_eq!(za.records().count(), zb.records().count());
        assert_eq!(
            za.rrsets.keys().collect::<Vec<_>>(),
            zb.rrsets.keys().collect::<Vec<_>>()
        );
    }

    const ZONE: &str = "$ORIGIN ggon.org.\n$TTL 3600\n\
        @ IN SOA ns1 hostmaster 1 3600 600 86400 300\n\
        @ IN NS ns1\nns1 IN A 127.0.0.1\nWWW IN CNAME wiki\nwiki 60 IN A 127.0.0.80\n";

    fn origin() -> Name {
        Name::from_ascii("ggon.org.").unwrap()
    }

    #[test]
    fn loads_and_lowercases() {
        let z = ZoneData::parse(ZONE, None, &origin()).unwrap();
        assert_eq!(z.serial(), 1);
        let www = Name::from_ascii("www.ggon.org.").unwrap();
        assert!(z.rrsets[&www].contains_key(&RecordType::CNAME));
        assert_eq!(z.record_count(), 5);
    }

    #[test]
    fn rejects_cname_with_other_data() {
        let bad = format!("{ZONE}www IN A 127.0.0.9\n");
        let e = ZoneData::parse(&bad, None, &origin()).unwrap_err();
        assert!(matches!(e, ZoneError::CnameAndOther(_)), "{e}");
        assert!(e.to_string().contains("CNAME and other data"), "{e}");
    }

    #[test]
    fn rejects_missing_soa() {
        let e =
            ZoneData::parse("$ORIGIN ggon.org.\n@ 60 IN NS ns1\n", None, &origin()).unwrap_err();
        assert!(matches!(e, ZoneError::NoSoa(_)), "{e}");
        assert!(e.to_string().contains("no SOA"), "{e}");
    }

    #[test]
    fn replace_rrset_replaces_instead_of_appending() {
        let mut z = ZoneData::parse(ZONE, None, &origin()).unwrap();
        let wiki = Name::from_ascii("wiki.ggon.org.").unwrap();
        let a = |s: &str| RData::A(s.parse::<std::net::Ipv4Addr>().unwrap().into());
        z.replace_rrset(
            &wiki,
            RecordType::A,
            Some(RRset {
                ttl: 30,
                rdatas: vec![a("127.0.0.81")].into(),
                ttls: Vec::new(),
            }),
        );
        assert_eq!(
            z.rrsets[&wiki][&RecordType::A].rdatas,
            vec![a("127.0.0.81")]
        );
        z.replace_rrset(&wiki, RecordType::A, None);
        assert!(!z.rrsets.contains_key(&wiki));
    }
}

#[cfg(test)]
mod svcb_tests {
    use super::*;
    use hickory_proto::rr::rdata::svcb::{Alpn, SvcParamKey, SvcParamValue, SVCB};
    use hickory_proto::rr::rdata::HTTPS;

    #[test]
    fn svcb_parameters_out_of_order_are_put_in_order_and_compile() {
        let origin = Name::from_ascii("example.").unwrap();
        let mut z =
            ZoneData::parse("@ 60 SOA ns h 1 2 3 4 5\n@ 60 NS ns\n", None, &origin).unwrap();
        // As an UPDATE could carry it: port (3) before alpn (1).
        let svcb = SVCB::new(
            1,
            Name::from_ascii("svc.example.").unwrap(),
            vec![
                (SvcParamKey::Port, SvcParamValue::Port(8443)),
                (
                    SvcParamKey::Alpn,
                    SvcParamValue::Alpn(Alpn(vec!["h2".into()])),
                ),
            ],
        );
        let rec = Record::from_rdata(
            Name::from_ascii("www.example.").unwrap(),
            60,
            RData::HTTPS(HTTPS(svcb)),
        );
        z.add_record(&rec).unwrap();
        let compiled = crate::snapshot::compile(std::sync::Arc::new(z));
        assert!(compiled.data.record_count() >= 3);
    }

    #[test]
    fn svcb_targets_differing_in_case_are_two_records_ns_ones_are_one() {
        let origin = Name::from_ascii("example.").unwrap();
        let text = "@ 60 SOA ns h 1 2 3 4 5\n@ 60 NS ns\n@ 60 NS NS\n\
                    s 60 SVCB 10 A.exAmple.\ns 60 SVCB 10 a.EXampLE.\ns 60 SVCB 10 a.EXampLE.\n";
        let z = ZoneData::parse(text, None, &origin).unwrap();
        let s = Name::from_ascii("s.example.").unwrap();
        assert_eq!(z.rrsets[&s][&RecordType::SVCB].rdatas.len(), 2);
        assert_eq!(z.rrsets[&origin][&RecordType::NS].rdatas.len(), 1);
    }
}
