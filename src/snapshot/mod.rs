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

use std::sync::Arc;

use hickory_proto::rr::{Name, RecordType};

use crate::proto::zone::ZoneData;
pub use denial::{Chain, Proof, Proofs};

mod nodes;
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
    /// A signed answer for a name that does not exist (NXDOMAIN, or a
    /// wildcard expansion): the body, then these proofs appended to its
    /// authority section (the body has no additional section).
    Denial(&'a Prepared, Proofs<'a>),
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
    /// Its RRSIGs (signed zones; for DO queries), owner in full.
    pub sigs: Box<[u8]>,
    pub sig_count: u16,
}

#[derive(Debug, Default)]
struct Node {
    /// Sorted by type, for a binary search.
    answers: Box<[(u16, Prepared)]>,
    /// The type whose answer ANY gets (RFC 8482: one RRset), when the name
    /// has data: a type number rather than a copy of that body, which was
    /// one more body and slot on every name.
    any: Option<u16>,
    /// Set on a wildcard owner (`*.X`): its answers are independent bodies and
    /// serve as the synthesized answers for names below X that do not exist.
    wildcard: bool,
    /// What only some names have. Boxed, so that the node of a plain name,
    /// most of a large zone's, is 40 bytes instead of 80 (48 MB less for
    /// a million names); None costs the query path one test, as the
    /// fields' own Nones did.
    rare: Option<Box<Rare>>,
    /// Signed zones: the same node's answers for DO queries (with RRSIGs
    /// and denial proofs).
    dnssec: Option<Box<Node>>,
}

// What the doc of `rare` promises (64-bit targets).
#[cfg(target_pointer_width = "64")]
const _: () = assert!(std::mem::size_of::<Node>() == 40);

/// The parts of a [`Node`] that plain names do not have.
#[derive(Debug, Default)]
struct Rare {
    /// For every type not in `answers` (NODATA, or the CNAME chain's tail).
    /// None on a plain name: the zone's shared NODATA body answers, so a
    /// new SOA serial does not change every node (incremental remaps).
    other: Option<Prepared>,
    /// Set for names at or below a zone cut: every question gets the referral.
    referral: Option<Arc<Prepared>>,
    /// At a zone cut: DS (whose RRset belongs to the parent) is answered
    /// from `answers`/`other`, everything else gets the referral.
    cut_apex: bool,
    /// On a DNAME owner: names below it are rewritten with it.
    dname: Option<Arc<Dname>>,
    /// On a name below a DNAME owner (occluded data): rewritten with it.
    below_dname: Option<Arc<Dname>>,
}

impl Node {
    /// A node of only these rare parts (no answers of its own).
    fn of(rare: Rare) -> Node {
        Node {
            rare: Some(Box::new(rare)),
            ..Node::default()
        }
    }

    fn rare_mut(&mut self) -> &mut Rare {
        self.rare.get_or_insert_with(Box::default)
    }

    fn other(&self) -> Option<&Prepared> {
        self.rare.as_ref().and_then(|r| r.other.as_ref())
    }

    fn referral(&self) -> Option<&Arc<Prepared>> {
        self.rare.as_ref().and_then(|r| r.referral.as_ref())
    }

    fn dname(&self) -> Option<&Arc<Dname>> {
        self.rare.as_ref().and_then(|r| r.dname.as_ref())
    }

    fn below_dname(&self) -> Option<&Arc<Dname>> {
        self.rare.as_ref().and_then(|r| r.below_dname.as_ref())
    }

    fn get(&self, qtype: u16) -> Option<&Prepared> {
        if let Some(rare) = &self.rare {
            if let Some(r) = &rare.referral {
                if !(rare.cut_apex && qtype == u16::from(RecordType::DS)) {
                    return Some(r);
                }
            }
        }
        let qtype = match (qtype, self.any) {
            (255, Some(t)) => t,
            _ => qtype,
        };
        match self.answers.binary_search_by_key(&qtype, |(t, _)| *t) {
            Ok(i) => Some(&self.answers[i].1),
            Err(_) => self.other(),
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
    /// Behind Arc so that an incremental recompile shares unchanged nodes.
    nodes: nodes::NodeMap,
    nxdomain: Prepared,
    /// Signed zones: NXDOMAIN with the SOA's RRSIG (the proofs are added
    /// per query, see [`denial`]).
    nxdomain_signed: Option<Prepared>,
    /// The zone has DNSKEY and RRSIG at its apex: DO queries get signatures.
    pub signed: bool,
    chain: Arc<Chain>,
    /// Signed zones: NODATA with the SOA's RRSIGs; the name's NSEC/NSEC3
    /// is added per query.
    nodata_signed: Option<Prepared>,
    /// NODATA (SOA in the authority section, names written in full): the
    /// answer of a plain node for a type it does not have. Nodes for DO
    /// queries carry their own (with the name's proof).
    nodata: Prepared,
    /// What an incremental recompile needs (see incremental.rs).
    index: Arc<incremental::Index>,
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
    /// `starts[i]` is the offset of label i; `starts[nlabels]` is the root byte.
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

    /// The answer for a question; `dnssec`: the query set DO (RFC 3225),
    /// so a signed zone answers with its signatures and denial proofs.
    /// No allocation.
    pub fn lookup(&self, q: &QName, qtype: u16, dnssec: bool) -> Lookup<'_> {
        match self.find_zone(q) {
            Some(zone) => zone.lookup(q, qtype, dnssec && zone.signed),
            None => Lookup::NotAuth,
        }
    }
    /// The answer for `target`, the name a DNAME rewrote `from` to, when
    /// it is in the zone of `from` (RFC 6672 3.4: the lookup goes on
    /// there); None when another zone, or none of ours, holds it.
    pub fn follow(
        &self,
        from: &QName,
        target: &QName,
        qtype: u16,
        dnssec: bool,
    ) -> Option<Lookup<'_>> {
        let zone = self.find_zone(target)?;
        let same = self.find_zone(from).is_some_and(|z| std::ptr::eq(z, zone));
        same.then(|| zone.lookup(target, qtype, dnssec && zone.signed))
    }
}

impl CompiledZone {
    fn lookup(&self, q: &QName, qtype: u16, dnssec: bool) -> Lookup<'_> {
        if let Some(node) = self.nodes.get(&q.wire[..q.len]) {
            if let Some(d) = node.below_dname() {
                return Lookup::Dname(d);
            }
            return match (&node.dnssec, dnssec) {
                (Some(n), true) => match (n.get(qtype), &self.nodata_signed) {
                    (Some(p), _) => Lookup::Answer(p),
                    (None, Some(nodata)) => {
                        Lookup::Denial(nodata, [self.chain.about(&q.wire[..q.len]), None, None])
                    }
                    (None, None) => Lookup::Answer(&self.nodata),
                },
                _ => Lookup::Answer(node.get(qtype).unwrap_or(&self.nodata)),
            };
        }
        self.lookup_missing(q, qtype, dnssec)
    }

    fn nx(&self, dnssec: bool) -> &Prepared {
        match (&self.nxdomain_signed, dnssec) {
            (Some(p), true) => p,
            _ => &self.nxdomain,
        }
    }

    /// A name with no node: below a DNAME, a cut, a wildcard, or nothing.
    fn lookup_missing<'s>(&'s self, q: &QName, qtype: u16, dnssec: bool) -> Lookup<'s> {
        // Closest encloser: the longest existing ancestor (the apex always exists).
        let below_apex = q.nlabels - self.apex_labels;
        for label in 1..=below_apex {
            let Some(encloser) = self.nodes.get(q.suffix(label)) else {
                continue;
            };
            if let Some(r) = encloser.referral() {
                return Lookup::Answer(match (&encloser.dnssec, dnssec) {
                    (Some(n), true) => n.referral().unwrap_or(r),
                    _ => r,
                });
            }
            if let Some(d) = encloser.dname().or(encloser.below_dname()) {
                return Lookup::Dname(d);
            }
            // RFC 4592: the source of synthesis is `*.<closest encloser>`.
            let suffix = q.suffix(label);
            let mut wild = [0u8; 257];
            wild[0] = 1;
            wild[1] = b'*';
            wild[2..2 + suffix.len()].copy_from_slice(suffix);
            let wild = &wild[..2 + suffix.len()];
            let w = self.nodes.get(wild).filter(|w| w.wildcard);
            if !dnssec {
                return Lookup::Answer(w.and_then(|w| w.get(qtype)).unwrap_or(&self.nxdomain));
            }
            return self.denial(
                q,
                label,
                wild,
                w.map(|w| w.dnssec.as_deref().unwrap_or(w)),
                qtype,
            );
        }
        Lookup::Answer(self.nx(dnssec))
    }

    /// A signed answer for a name that does not exist, with the proofs of
    /// RFC 4035 §3.1.3 (NSEC) or RFC 5155 §7.2 (NSEC3). `label`: where the
    /// closest encloser starts in `q`; `wild`: `*.<closest encloser>`.
    fn denial<'s>(
        &'s self,
        q: &QName,
        label: usize,
        wild: &[u8],
        w: Option<&'s Node>,
        qtype: u16,
    ) -> Lookup<'s> {
        let c = &self.chain;
        let qname = &q.wire[..q.len];
        let encloser = q.suffix(label);
        let next_closer = q.suffix(label - 1);
        let proofs = match (w.and_then(|w| w.get(qtype)), c.is_nsec3()) {
            // Wildcard answer: the name itself does not exist.
            (Some(p), false) if p.counts[0] > 0 => {
                return Lookup::Denial(p, [c.about(qname), None, None])
            }
            (Some(p), true) if p.counts[0] > 0 => {
                return Lookup::Denial(p, [c.about(next_closer), None, None])
            }
            // Wildcard NODATA: the body carries the wildcard's own proof.
            (Some(p), false) => return Lookup::Denial(p, [c.about(qname), None, None]),
            (Some(p), true) => {
                return Lookup::Denial(
                    p,
                    denial::dedup([c.about(encloser), c.about(next_closer), None]),
                )
            }
            (None, false) => [c.about(qname), c.about(wild), None],
            (None, true) => [c.about(encloser), c.about(next_closer), c.about(wild)],
        };
        Lookup::Denial(self.nx(true), denial::dedup(proofs))
    }
}

pub use crate::proto::dnssec::name_wire;

mod aliases;
mod compile;
pub mod denial;
mod encode;

mod incremental;

pub use aliases::MAX_ALIASES;
pub use incremental::compile;
pub use incremental::recompile;
