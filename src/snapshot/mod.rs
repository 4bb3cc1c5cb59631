//! Zone snapshot: every answer the server can give, precomputed in wire format.
//!
//! Owns: compiling a [`ZoneData`] into per-(name, type) response bodies and the
//! lookup that picks one for a question (exact match, closest encloser, RFC 4592
//! wildcard synthesis, referral, NXDOMAIN). A snapshot is immutable: the publisher
//! builds a new one on every change and swaps it in atomically (arc-swap), so a
//! query sees the old answer set or the new one, never a mix.
//!
//! It must not parse packets, touch sockets or decide *what* a service answers:
//! it only turns zone data into bytes. Doing the work here, once per change,
//! is what lets the query path (see [`crate::dns`]) be a hash lookup and a copy.
//!
//! Body encoding: a body is everything after the question section. "Relative"
//! bodies are encoded as if the question name were the node's own (lowercase)
//! name, so compression pointers may point into the question; they are only
//! served for a question of exactly that name, whose length is the same
//! whatever its case. Bodies that can be served for many question names
//! (NXDOMAIN, referrals, wildcard synthesis) are "independent": the owner that
//! equals the question is written as a pointer to offset 12, and every other
//! name is written in full.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use hickory_proto::rr::{Name, RData, RecordType};
use hickory_proto::serialize::binary::{BinEncodable, BinEncoder, NameEncoding};
use rustc_hash::FxHashMap;

use crate::proto::zone::{RRset, ZoneData};

pub mod regions;

/// A ready response body and the header fields that go with it.
#[derive(Debug, Clone, PartialEq)]
pub struct Prepared {
    pub rcode: u8,
    pub aa: bool,
    /// ANCOUNT, NSCOUNT, ARCOUNT of the body.
    pub counts: [u16; 3],
    pub body: Box<[u8]>,
}

/// What a query for a name in our zones gets.
#[derive(Debug)]
pub enum Lookup<'a> {
    Answer(&'a Prepared),
    /// The name is below a DNAME (RFC 6672): the query path writes the
    /// DNAME and the CNAME it synthesizes for this question.
    Dname(&'a Dname),
    /// The name is in none of our zones.
    NotAuth,
}

/// A DNAME ready to be applied to the names below its owner.
#[derive(Debug, PartialEq)]
pub struct Dname {
    /// The DNAME RR in wire form, owner written in full, no compression.
    pub rr: Box<[u8]>,
    /// Labels of the owner (the root not counted, like [`QName::nlabels`]).
    pub owner_labels: usize,
    /// The target name in wire form, as written.
    pub target: Box<[u8]>,
    pub ttl: u32,
}

#[derive(Debug, Default)]
struct Node {
    /// Sorted by type, for a binary search.
    answers: Box<[(u16, Prepared)]>,
    /// For every type not in `answers` (NODATA, or the CNAME chain's tail).
    other: Option<Prepared>,
    /// Set for names at or below a zone cut: every question gets the referral.
    referral: Option<Arc<Prepared>>,
    /// Set on a wildcard owner (`*.X`): its answers are independent bodies and
    /// serve as the synthesized answers for names below X that do not exist.
    wildcard: bool,
    /// At a zone cut: DS (whose RRset belongs to the parent) is answered
    /// from `answers`/`other`, everything else gets the referral.
    cut_apex: bool,
    /// On a DNAME owner: names below it are rewritten with it.
    dname: Option<Arc<Dname>>,
    /// On a name below a DNAME owner (occluded data): rewritten with it.
    below_dname: Option<Arc<Dname>>,
}

impl Node {
    fn get(&self, qtype: u16) -> Option<&Prepared> {
        if let Some(r) = &self.referral {
            if !(self.cut_apex && qtype == u16::from(RecordType::DS)) {
                return Some(r);
            }
        }
        match self.answers.binary_search_by_key(&qtype, |(t, _)| *t) {
            Ok(i) => Some(&self.answers[i].1),
            Err(_) => self.other.as_ref(),
        }
    }
}

/// One zone's answers.
#[derive(Debug)]
pub struct CompiledZone {
    pub origin: Name,
    pub serial: u32,
    apex: Box<[u8]>,
    apex_labels: usize,
    nodes: FxHashMap<Box<[u8]>, Node>,
    nxdomain: Prepared,
    /// The data it was compiled from (transfers, UPDATE and status read it).
    pub data: Arc<ZoneData>,
    /// Recent changes, oldest first, ending at `serial` (IXFR serves these).
    pub journal: Arc<Vec<Arc<Diff>>>,
}

/// One change of a zone: from serial `from` to serial `to`.
#[derive(Debug, Clone, PartialEq)]
pub struct Diff {
    pub from: u32,
    pub to: u32,
    pub removed: Vec<hickory_proto::rr::Record>,
    pub added: Vec<hickory_proto::rr::Record>,
}

/// All zones served at one moment.
#[derive(Debug, Default, Clone)]
pub struct Snapshot {
    /// Longest apex first, so the most specific zone wins.
    zones: Vec<Arc<CompiledZone>>,
    /// Per-region answers (None: no per-region service).
    regional: Option<Arc<regions::Regional>>,
}

/// A question name in wire form, lowercased, with the start of each label.
pub struct QName {
    pub wire: [u8; 255],
    pub len: usize,
    /// starts[i] is the offset of label i; starts[nlabels] is the root byte.
    pub starts: [u8; 128],
    pub nlabels: usize,
}

impl QName {
    fn suffix(&self, label: usize) -> &[u8] {
        &self.wire[self.starts[label] as usize..self.len]
    }
}

impl Snapshot {
    pub fn new(zones: Vec<Arc<CompiledZone>>) -> Snapshot {
        let mut zones = zones;
        zones.sort_by_key(|z| std::cmp::Reverse(z.apex_labels));
        Snapshot {
            zones,
            regional: None,
        }
    }

    /// The same zones with these per-region answers.
    pub fn with_regional(mut self, regional: Option<Arc<regions::Regional>>) -> Snapshot {
        self.regional = regional;
        self
    }

    pub fn regional(&self) -> Option<&regions::Regional> {
        self.regional.as_deref()
    }

    pub fn zones(&self) -> &[Arc<CompiledZone>] {
        &self.zones
    }

    pub fn zone(&self, origin: &Name) -> Option<&Arc<CompiledZone>> {
        self.zones.iter().find(|z| &z.origin == origin)
    }

    /// A copy with `zone` added or replacing the zone of the same origin.
    pub fn with_zone(&self, zone: Arc<CompiledZone>) -> Snapshot {
        let mut zones: Vec<_> = self
            .zones
            .iter()
            .filter(|z| z.origin != zone.origin)
            .cloned()
            .collect();
        zones.push(zone);
        Snapshot::new(zones).with_regional(self.regional.clone())
    }

    /// The zone that is authoritative for `q`, if any.
    pub fn find_zone(&self, q: &QName) -> Option<&CompiledZone> {
        self.zones
            .iter()
            .find(|z| z.apex_labels <= q.nlabels && q.suffix(q.nlabels - z.apex_labels) == &*z.apex)
            .map(|z| &**z)
    }

    /// The answer for a question. No allocation.
    pub fn lookup(&self, q: &QName, qtype: u16) -> Lookup<'_> {
        match self.find_zone(q) {
            Some(zone) => zone.lookup(q, qtype),
            None => Lookup::NotAuth,
        }
    }
}

impl CompiledZone {
    fn lookup(&self, q: &QName, qtype: u16) -> Lookup<'_> {
        if let Some(node) = self.nodes.get(&q.wire[..q.len]) {
            if let Some(d) = &node.below_dname {
                return Lookup::Dname(d);
            }
            return Lookup::Answer(node.get(qtype).unwrap_or(&self.nxdomain));
        }
        self.lookup_missing(q, qtype)
    }

    /// A name with no node: below a DNAME, a cut, a wildcard, or nothing.
    fn lookup_missing<'s>(&'s self, q: &QName, qtype: u16) -> Lookup<'s> {
        // Closest encloser: the longest existing ancestor (the apex always exists).
        let below_apex = q.nlabels - self.apex_labels;
        for label in 1..=below_apex {
            let Some(encloser) = self.nodes.get(q.suffix(label)) else {
                continue;
            };
            if let Some(r) = &encloser.referral {
                return Lookup::Answer(r);
            }
            if let Some(d) = encloser.dname.as_ref().or(encloser.below_dname.as_ref()) {
                return Lookup::Dname(d);
            }
            // RFC 4592: the source of synthesis is `*.<closest encloser>`.
            let suffix = q.suffix(label);
            let mut wild = [0u8; 257];
            wild[0] = 1;
            wild[1] = b'*';
            wild[2..2 + suffix.len()].copy_from_slice(suffix);
            return Lookup::Answer(match self.nodes.get(&wild[..2 + suffix.len()]) {
                Some(w) if w.wildcard => w.get(qtype).unwrap_or(&self.nxdomain),
                _ => &self.nxdomain,
            });
        }
        Lookup::Answer(&self.nxdomain)
    }
}

/// Lowercase wire form of a name.
pub fn name_wire(name: &Name) -> Vec<u8> {
    let mut out = Vec::with_capacity(name.len() + 2);
    for label in name.iter() {
        out.push(label.len() as u8);
        out.extend(label.iter().map(u8::to_ascii_lowercase));
    }
    out.push(0);
    out
}

/// One resource record to encode.
#[derive(Clone, Copy)]
struct Rr<'a> {
    owner: &'a Name,
    ttl: u32,
    rdata: &'a RData,
}

fn rrs<'a>(owner: &'a Name, set: &'a RRset) -> impl Iterator<Item = Rr<'a>> + 'a {
    set.rdatas.iter().enumerate().map(move |(i, rdata)| Rr {
        owner,
        ttl: set.ttl_of(i),
        rdata,
    })
}

#[derive(Clone, Copy, PartialEq)]
enum Mode {
    Relative,
    Independent,
}

fn encode(
    question: Option<&Name>,
    mode: Mode,
    sections: [&[Rr<'_>]; 3],
    rcode: u8,
    aa: bool,
) -> Prepared {
    let mut buf = Vec::with_capacity(256);
    let mut enc = BinEncoder::new(&mut buf);
    let start = if mode == Mode::Relative {
        // A stand-in header and question, so that names in the body can be
        // compressed against the question name; both are cut off below.
        enc.emit_vec(&[0u8; 12]).expect("encode");
        question
            .expect("a relative body has a question")
            .emit(&mut enc)
            .expect("encode");
        enc.emit_u16(1).expect("encode");
        enc.emit_u16(1).expect("encode");
        enc.offset()
    } else {
        enc.set_name_encoding(NameEncoding::Uncompressed);
        0
    };
    let mut counts = [0u16; 3];
    for (i, section) in sections.iter().enumerate() {
        for rr in section.iter() {
            if Some(rr.owner) == question {
                enc.emit_u16(0xC00C).expect("encode");
            } else {
                rr.owner.emit(&mut enc).expect("encode");
            }
            enc.emit_u16(u16::from(rr.rdata.record_type()))
                .expect("encode");
            enc.emit_u16(1).expect("encode");
            enc.emit_u32(rr.ttl).expect("encode");
            let place = enc.place::<u16>().expect("encode");
            rr.rdata.emit(&mut enc).expect("encode");
            let len = enc.len_since_place(&place);
            place.replace(&mut enc, len as u16).expect("encode");
            counts[i] += 1;
        }
    }
    drop(enc);
    Prepared {
        rcode,
        aa,
        counts,
        body: buf[start..].into(),
    }
}

/// What a name resolves to inside the zone, at compile time.
enum Resolved<'z> {
    /// Data at the name (possibly synthesized from a wildcard).
    Data(&'z BTreeMap<RecordType, RRset>),
    /// The name exists but has no data (empty non-terminal).
    Empty,
    NxDomain,
    /// Out of the zone, or delegated away: nothing more to add.
    Elsewhere,
}

struct Compiler<'z> {
    zone: &'z ZoneData,
    /// Every name that exists: owners and empty non-terminals.
    names: BTreeSet<Name>,
    cuts: BTreeSet<Name>,
    soa_neg: RRset,
}

impl<'z> Compiler<'z> {
    fn new(zone: &'z ZoneData) -> Self {
        let mut names = BTreeSet::new();
        for owner in zone.rrsets.keys() {
            let mut n = owner.clone();
            loop {
                if !names.insert(n.clone()) || n == zone.origin {
                    break;
                }
                n = n.base_name();
            }
        }
        names.insert(zone.origin.clone());
        let cuts = zone
            .rrsets
            .iter()
            .filter(|(n, t)| **n != zone.origin && t.contains_key(&RecordType::NS))
            .map(|(n, _)| n.clone())
            .collect();
        let soa = &zone.rrsets[&zone.origin][&RecordType::SOA];
        let neg_ttl = soa.ttl.min(zone.soa().minimum);
        Compiler {
            zone,
            names,
            cuts,
            soa_neg: RRset {
                ttl: neg_ttl,
                rdatas: soa.rdatas.clone(),
                ttls: Vec::new(),
            },
        }
    }

    /// The cut at or above `name`, if `name` is delegated away.
    fn cut_of(&self, name: &Name) -> Option<&Name> {
        let mut n = name.clone();
        let mut found = None;
        while n != self.zone.origin && n.num_labels() > self.zone.origin.num_labels() {
            if let Some(c) = self.cuts.get(&n) {
                found = Some(c);
            }
            n = n.base_name();
        }
        found
    }

    fn resolve(&self, name: &Name) -> Resolved<'z> {
        if !self.zone.origin.zone_of(name) || self.cut_of(name).is_some() {
            return Resolved::Elsewhere;
        }
        if let Some(types) = self.zone.rrsets.get(name) {
            return Resolved::Data(types);
        }
        if self.names.contains(name) {
            return Resolved::Empty;
        }
        let mut encloser = name.base_name();
        while !self.names.contains(&encloser) {
            encloser = encloser.base_name();
        }
        match encloser
            .prepend_label("*")
            .ok()
            .and_then(|w| self.zone.rrsets.get(&w))
        {
            Some(types) => Resolved::Data(types),
            None => Resolved::NxDomain,
        }
    }

    /// In-zone address records for names in NS/MX/SRV data.
    fn additional<'a>(&'a self, set: &'a RRset) -> Vec<Rr<'a>> {
        let mut out = Vec::new();
        for rd in &set.rdatas {
            let target = match rd {
                RData::NS(ns) => &ns.0,
                RData::MX(mx) => &mx.exchange,
                RData::SRV(srv) => &srv.target,
                // RFC 9460 4.2: the target's addresses (not for "." here).
                RData::SVCB(s) if !s.target_name.is_root() => &s.target_name,
                RData::HTTPS(h) if !h.0.target_name.is_root() => &h.0.target_name,
                _ => continue,
            };
            let target = crate::proto::zone::fqdn_lower(target);
            let Some((owner, types)) = self.zone.rrsets.get_key_value(&target) else {
                continue;
            };
            for t in [RecordType::A, RecordType::AAAA] {
                if let Some(s) = types.get(&t) {
                    out.extend(rrs(owner, s));
                }
            }
        }
        out
    }

    fn neg(&self, question: Option<&Name>, mode: Mode, answer: &[Rr<'_>], rcode: u8) -> Prepared {
        let auth: Vec<Rr> = rrs(&self.zone.origin, &self.soa_neg).collect();
        encode(question, mode, [answer, &auth, &[]], rcode, true)
    }

    fn referral(&self, cut: &Name) -> Prepared {
        let ns = &self.zone.rrsets[cut][&RecordType::NS];
        let auth: Vec<Rr> = rrs(cut, ns).collect();
        let glue: Vec<Rr> = self
            .additional(ns)
            .into_iter()
            .filter(|rr| cut.zone_of(rr.owner))
            .collect();
        encode(None, Mode::Independent, [&[], &auth, &glue], 0, false)
    }

    /// Every DNAME of the zone, ready for synthesis (not those below a cut).
    fn dnames(&self) -> BTreeMap<Name, Arc<Dname>> {
        let mut out = BTreeMap::new();
        for (name, types) in &self.zone.rrsets {
            let Some(set) = types.get(&RecordType::DNAME) else {
                continue;
            };
            if self.cut_of(name).is_some() {
                continue;
            }
            let Some(rd) = set.rdatas.first() else {
                continue;
            };
            let Ok(target) = rd.to_bytes() else {
                continue;
            };
            let mut rr = Vec::new();
            crate::proto::zonefile::rdata::name_wire(name, &mut rr);
            rr.extend_from_slice(&39u16.to_be_bytes());
            rr.extend_from_slice(&1u16.to_be_bytes());
            rr.extend_from_slice(&set.ttl.to_be_bytes());
            rr.extend_from_slice(&(target.len() as u16).to_be_bytes());
            rr.extend_from_slice(&target);
            out.insert(
                name.clone(),
                Arc::new(Dname {
                    rr: rr.into_boxed_slice(),
                    owner_labels: name.num_labels() as usize,
                    target: target.into_boxed_slice(),
                    ttl: set.ttl,
                }),
            );
        }
        out
    }

    /// A zone cut's own name: the referral for every type but DS, which
    /// the parent answers (the DS RRset, or NODATA).
    fn cut_apex(&self, name: &Name, referral: Arc<Prepared>) -> Node {
        let mut answers = Vec::new();
        if let Some(ds) = self.zone.rrsets[name].get(&RecordType::DS) {
            let ans: Vec<Rr> = rrs(name, ds).collect();
            answers.push((
                u16::from(RecordType::DS),
                encode(Some(name), Mode::Relative, [&ans, &[], &[]], 0, true),
            ));
        }
        Node {
            answers: answers.into_boxed_slice(),
            other: Some(self.neg(Some(name), Mode::Relative, &[], 0)),
            referral: Some(referral),
            cut_apex: true,
            ..Node::default()
        }
    }

    /// Answers for a name that exists (or a wildcard owner, in independent mode).
    fn node(&self, name: &Name, mode: Mode) -> Node {
        let empty = BTreeMap::new();
        let types = self.zone.rrsets.get(name).unwrap_or(&empty);
        let mut answers: Vec<(u16, Prepared)> = Vec::new();
        let other;
        if let Some(cname) = types.get(&RecordType::CNAME) {
            // Follow the chain inside the zone (bounded, loop-safe).
            let mut hops: Vec<(Name, &RRset)> = vec![(name.clone(), cname)];
            let mut seen = BTreeSet::from([name.clone()]);
            let mut end = Resolved::Elsewhere;
            let mut end_name = Name::root();
            for _ in 0..8 {
                let target = match &hops[hops.len() - 1].1.rdatas[0] {
                    RData::CNAME(c) => crate::proto::zone::fqdn_lower(&c.0),
                    _ => unreachable!("a CNAME RRset holds CNAME data"),
                };
                if !seen.insert(target.clone()) {
                    break;
                }
                match self.resolve(&target) {
                    Resolved::Data(t) if t.contains_key(&RecordType::CNAME) => {
                        hops.push((target, &t[&RecordType::CNAME]));
                    }
                    r => {
                        end = r;
                        end_name = target;
                        break;
                    }
                }
            }
            let first: Vec<Rr> = rrs(name, cname).collect();
            let cname_only = encode(Some(name), mode, [&first, &[], &[]], 0, true);
            answers.push((u16::from(RecordType::CNAME), cname_only.clone()));
            answers.push((255, cname_only));
            let chain: Vec<Rr> = hops.iter().flat_map(|(o, s)| rrs(o, s)).collect();
            other = match end {
                Resolved::Data(t) => {
                    for (rtype, set) in t {
                        let mut ans = chain.clone();
                        ans.extend(rrs(&end_name, set));
                        let add = self.additional(set);
                        answers.push((
                            u16::from(*rtype),
                            encode(Some(name), mode, [&ans, &[], &add], 0, true),
                        ));
                    }
                    self.neg(Some(name), mode, &chain, 0)
                }
                Resolved::Empty => self.neg(Some(name), mode, &chain, 0),
                Resolved::NxDomain => self.neg(Some(name), mode, &chain, 3),
                Resolved::Elsewhere => encode(Some(name), mode, [&chain, &[], &[]], 0, true),
            };
        } else {
            for (rtype, set) in types {
                let ans: Vec<Rr> = rrs(name, set).collect();
                let add = self.additional(set);
                answers.push((
                    u16::from(*rtype),
                    encode(Some(name), mode, [&ans, &[], &add], 0, true),
                ));
            }
            // RFC 8482: answer ANY with one RRset rather than everything.
            if let Some((_, first)) = answers.first() {
                let first = first.clone();
                answers.push((255, first));
            }
            other = self.neg(Some(name), mode, &[], 0);
        }
        answers.sort_by_key(|(t, _)| *t);
        answers.dedup_by_key(|(t, _)| *t);
        Node {
            answers: answers.into_boxed_slice(),
            other: Some(other),
            referral: None,
            wildcard: mode == Mode::Independent,
            ..Node::default()
        }
    }
}

/// The DNAME owner strictly above `name`, if any.
fn dname_above(dnames: &BTreeMap<Name, Arc<Dname>>, name: &Name) -> Option<Arc<Dname>> {
    if dnames.is_empty() {
        return None;
    }
    let mut n = name.base_name();
    while n.num_labels() > 0 {
        if let Some(d) = dnames.get(&n) {
            return Some(d.clone());
        }
        n = n.base_name();
    }
    dnames.get(&n).cloned()
}

/// Compile a zone into answers.
pub fn compile(zone: Arc<ZoneData>) -> CompiledZone {
    let c = Compiler::new(&zone);
    let mut nodes = FxHashMap::default();
    let mut referrals: BTreeMap<Name, Arc<Prepared>> = BTreeMap::new();
    let dnames = c.dnames();
    for name in &c.names {
        let node = if let Some(cut) = c.cut_of(name) {
            let r = referrals
                .entry(cut.clone())
                .or_insert_with(|| Arc::new(c.referral(cut)))
                .clone();
            if cut == name {
                // The parent is authoritative for DS at the cut (RFC 4035 3.1.4.1).
                c.cut_apex(name, r)
            } else {
                Node {
                    referral: Some(r),
                    ..Node::default()
                }
            }
        } else if let Some(d) = dname_above(&dnames, name) {
            // Data below a DNAME is occluded: the DNAME rewrites the name.
            Node {
                below_dname: Some(d),
                ..Node::default()
            }
        } else if name.is_wildcard() {
            c.node(name, Mode::Independent)
        } else {
            let mut n = c.node(name, Mode::Relative);
            n.dname = dnames.get(name).cloned();
            n
        };
        nodes.insert(name_wire(name).into_boxed_slice(), node);
    }
    let nxdomain = c.neg(None, Mode::Independent, &[], 3);
    let apex = name_wire(&zone.origin).into_boxed_slice();
    CompiledZone {
        origin: zone.origin.clone(),
        serial: zone.serial(),
        apex_labels: zone.origin.num_labels() as usize,
        apex,
        nodes,
        nxdomain,
        data: zone.clone(),
        journal: Arc::default(),
    }
}
