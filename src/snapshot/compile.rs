//! Compiling zone data into per-name answers (see [`super`] for the forms).

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use hickory_proto::rr::{Name, RData, RecordType};
use hickory_proto::serialize::binary::BinEncodable;
use rustc_hash::FxHashMap;

use super::encode::{encode, rrs, Mode, Rr};
use super::{name_wire, CompiledZone, Dname, Node, Prepared};
use crate::proto::zone::{RRset, ZoneData};

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
