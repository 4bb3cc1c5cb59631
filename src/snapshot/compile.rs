//! Compiling zone data into per-name answers (see [`super`] for the forms).

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use hickory_proto::rr::{Name, RData, RecordType};
use hickory_proto::serialize::binary::BinEncodable;

use super::aliases::End;
use super::denial::{Chain, Proof};
use super::encode::{encode, rrs, Mode, Rr};
use super::{name_wire, Dname, Node, Prepared, Rare};
use crate::proto::dnssec::rrsig_covers;
use crate::proto::rdatas::Rd;
use crate::proto::zone::{RRset, Types, ZoneData};

/// What a name resolves to inside the zone, at compile time.
pub(super) enum Resolved<'z> {
    /// Data at the name (possibly synthesized from a wildcard).
    Data(&'z Types),
    /// The name exists but has no data (empty non-terminal).
    Empty,
    NxDomain,
    /// Out of the zone, or delegated away: nothing more to add.
    Elsewhere,
    /// Below the DNAME at this owner: the DNAME rewrites it.
    Below(&'z Name),
}

pub(super) struct Compiler<'z> {
    pub(super) zone: &'z ZoneData,
    /// The names that exist without data (empty non-terminals, and the
    /// apex if it had none): with the zone's owners, every name that
    /// exists. Only these are kept because a set of every name was a
    /// second copy of all the owners (about 150 bytes a name).
    pub(super) ents: Arc<BTreeSet<Name>>,
    pub(super) cuts: Arc<BTreeSet<Name>>,
    soa_neg: RRset,
    /// Compiling the answers for DO queries of a signed zone: every RRset
    /// goes with its RRSIGs, negative answers with their proofs.
    pub(super) dnssec: bool,
    pub(super) chain: Arc<Chain>,
    /// The zone's DNAMEs (see [`Compiler::dnames`]), which chains follow.
    pub(super) dnames: BTreeMap<Name, Arc<Dname>>,
}

/// A zone is served signed when its apex has keys and signatures.
pub(super) fn is_signed(zone: &ZoneData) -> bool {
    let apex = &zone.rrsets[&zone.origin];
    apex.contains_key(&RecordType::DNSKEY) && apex.contains_key(&RecordType::RRSIG)
}

impl<'z> Compiler<'z> {
    /// With the name and cut sets of an earlier compile of the same names.
    pub(super) fn with_sets(
        zone: &'z ZoneData,
        ents: Arc<BTreeSet<Name>>,
        cuts: Arc<BTreeSet<Name>>,
    ) -> Self {
        Compiler {
            zone,
            ents,
            cuts,
            soa_neg: zone.negative_soa(),
            dnssec: false,
            chain: Arc::new(Chain::None),
            dnames: BTreeMap::new(),
        }
    }

    pub(super) fn new(zone: &'z ZoneData) -> Self {
        let mut c = Compiler::with_sets(
            zone,
            Arc::new(empty_non_terminals(zone)),
            Arc::new(zone.cuts()),
        );
        c.dnames = c.dnames();
        c
    }

    /// Whether `name` exists in the zone (has data or names below it).
    fn exists(&self, name: &Name) -> bool {
        self.zone.rrsets.contains_key(name) || self.ents.contains(name)
    }

    /// An RRset's records, and in DNSSEC mode the RRSIGs that cover it.
    pub(super) fn set<'a>(
        &'a self,
        owner: &'a Name,
        rtype: RecordType,
        set: &'a RRset,
    ) -> Vec<Rr<'a>> {
        let mut out: Vec<Rr> = rrs(owner, set).collect();
        if self.dnssec && rtype != RecordType::RRSIG {
            out.extend(self.sigs(owner, rtype));
        }
        out
    }

    /// The RRSIGs at `owner` covering `rtype`.
    fn sigs<'a>(&'a self, owner: &'a Name, rtype: RecordType) -> Vec<Rr<'a>> {
        let Some(sigs) = self
            .zone
            .rrsets
            .get(owner)
            .and_then(|t| t.get(&RecordType::RRSIG))
        else {
            return Vec::new();
        };
        rrs(owner, sigs)
            .filter(|rr| rrsig_covers(&rr.rdata.get()) == Some(rtype))
            .collect()
    }

    /// One link of the denial chain, ready to append to any response.
    pub(super) fn proof(&self, owner: &Name, rtype: RecordType) -> Proof {
        let set = &self.zone.rrsets[owner][&rtype];
        let auth = self.set(owner, rtype, set);
        let p = encode(None, Mode::Independent, [&[], &auth, &[]], 0, true);
        Proof {
            wire: p.body,
            count: p.counts[1],
        }
    }

    /// The NSEC at `name`, or the NSEC3 whose hash is `name`'s, with
    /// RRSIGs (what a referral to an unsigned child carries).
    fn exact_proof<'a>(&'a self, name: &'a Name) -> Vec<Rr<'a>> {
        let owner = match &*self.chain {
            Chain::None => return Vec::new(),
            Chain::Nsec(_) => name.clone(),
            Chain::Nsec3 {
                salt, iterations, ..
            } => {
                let h = crate::proto::dnssec::nsec3_hash(&name_wire(name), salt, *iterations);
                match crate::proto::dnssec::nsec3_owner(&self.zone.origin, &h) {
                    Some(n) => n,
                    None => return Vec::new(),
                }
            }
        };
        let t = if self.chain.is_nsec3() {
            RecordType::NSEC3
        } else {
            RecordType::NSEC
        };
        match self.zone.rrsets.get_key_value(&owner) {
            Some((o, types)) => match types.get(&t) {
                Some(s) => self.set(o, t, s),
                None => Vec::new(),
            },
            None => Vec::new(),
        }
    }

    /// The cut at or above `name`, if `name` is delegated away.
    pub(super) fn cut_of(&self, name: &Name) -> Option<&Name> {
        crate::proto::zone::cut_of(&self.zone.origin, &self.cuts, name)
    }

    pub(super) fn resolve(&self, name: &Name) -> Resolved<'z> {
        if !self.zone.origin.zone_of(name) || self.cut_of(name).is_some() {
            return Resolved::Elsewhere;
        }
        if let Some(owner) = super::aliases::dname_owner_above(&self.dnames, name) {
            // The key of the zone's own map, so that it lives as long.
            if let Some((o, _)) = self.zone.rrsets.get_key_value(owner) {
                return Resolved::Below(o);
            }
        }
        if let Some(types) = self.zone.rrsets.get(name) {
            return Resolved::Data(types);
        }
        if self.ents.contains(name) {
            return Resolved::Empty;
        }
        let mut encloser = name.base_name();
        while !self.exists(&encloser) {
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

    /// Additional data for an answer; none for a signed wildcard answer,
    /// whose denial proofs are appended after its authority section.
    fn additional_for<'a>(&'a self, set: &'a RRset, mode: Mode) -> Vec<Rr<'a>> {
        if self.dnssec && mode == Mode::Independent {
            return Vec::new();
        }
        self.additional(set)
    }

    /// In-zone address records for names in NS/MX/SRV data.
    fn additional<'a>(&'a self, set: &'a RRset) -> Vec<Rr<'a>> {
        let mut out = Vec::new();
        for rd in set.rdatas.stored().iter().filter_map(Rd::boxed) {
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

    /// A negative answer; in DNSSEC mode with the SOA's RRSIGs and, for
    /// NODATA at `proof` (a name that exists), the NSEC/NSEC3 about it.
    pub(super) fn neg(
        &self,
        question: Option<&Name>,
        mode: Mode,
        answer: &[Rr<'_>],
        rcode: u8,
    ) -> Prepared {
        self.neg_proving(question, mode, answer, rcode, question)
    }

    fn neg_proving(
        &self,
        question: Option<&Name>,
        mode: Mode,
        answer: &[Rr<'_>],
        rcode: u8,
        proof: Option<&Name>,
    ) -> Prepared {
        let mut auth = self.set(&self.zone.origin, RecordType::SOA, &self.soa_neg);
        // The SOA's signatures go with the negative TTL, as the SOA does.
        for rr in &mut auth {
            rr.ttl = rr.ttl.min(self.soa_neg.ttl);
        }
        let mut p = encode(question, mode, [answer, &auth, &[]], rcode, true);
        if let Some(pr) = proof
            .filter(|_| self.dnssec)
            .and_then(|n| self.chain.about(&name_wire(n)))
        {
            let mut body = p.body.into_vec();
            body.extend_from_slice(&pr.wire);
            p.body = body.into_boxed_slice();
            p.counts[1] += pr.count;
        }
        p
    }

    pub(super) fn referral(&self, cut: &Name) -> Prepared {
        let ns = &self.zone.rrsets[cut][&RecordType::NS];
        let mut auth: Vec<Rr> = rrs(cut, ns).collect();
        if self.dnssec {
            // RFC 4035 3.1.4: the DS, or the proof that there is none.
            match self.zone.rrsets[cut].get(&RecordType::DS) {
                Some(ds) => auth.extend(self.set(cut, RecordType::DS, ds)),
                None => auth.extend(self.exact_proof(cut)),
            }
        }
        let glue: Vec<Rr> = self
            .additional(ns)
            .into_iter()
            .filter(|rr| cut.zone_of(rr.owner))
            .collect();
        encode(None, Mode::Independent, [&[], &auth, &glue], 0, false)
    }

    /// Every DNAME of the zone, ready for synthesis (not those below a cut).
    pub(super) fn dnames(&self) -> BTreeMap<Name, Arc<Dname>> {
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
            let sigs = self.sigs(name, RecordType::DNAME);
            let sigs = encode(None, Mode::Independent, [&sigs, &[], &[]], 0, true);
            out.insert(
                name.clone(),
                Arc::new(Dname {
                    rr: rr.into_boxed_slice(),
                    // Not num_labels(), which leaves out a wildcard's `*`.
                    owner_labels: name.iter().count(),
                    target: target.into_boxed_slice(),
                    ttl: set.ttl,
                    sigs: sigs.body,
                    sig_count: sigs.counts[0],
                }),
            );
        }
        out
    }

    /// A zone cut's own name: the referral for every type but DS, which
    /// the parent answers (the DS RRset, or NODATA).
    pub(super) fn cut_apex(&self, name: &Name, referral: Arc<Prepared>) -> Node {
        let mut answers = Vec::new();
        if let Some(ds) = self.zone.rrsets[name].get(&RecordType::DS) {
            let ans = self.set(name, RecordType::DS, ds);
            answers.push((
                u16::from(RecordType::DS),
                encode(Some(name), Mode::Relative, [&ans, &[], &[]], 0, true),
            ));
        }
        Node {
            answers: answers.into_boxed_slice(),
            rare: Some(Box::new(Rare {
                other: Some(self.neg(Some(name), Mode::Relative, &[], 0)),
                referral: Some(referral),
                cut_apex: true,
                ..Rare::default()
            })),
            ..Node::default()
        }
    }

    /// The answers of a CNAME's owner (other than for CNAME): the chain
    /// followed inside the zone (see aliases.rs), then the data of the
    /// name it ends at for each of its types, pushed to `answers`; the
    /// answer for every other type is returned.
    fn chain_answers(
        &self,
        name: &Name,
        cname: &'z RRset,
        mode: Mode,
        answers: &mut Vec<(u16, Prepared)>,
    ) -> Prepared {
        let (links, end) = self.aliases(name, cname);
        let chain = self.chain_records(&links);
        let (end_name, end) = match end {
            End::At(n, r) => (n, r),
            End::TooLong => return encode(Some(name), mode, [&chain, &[], &[]], 2, true),
            End::TooLongName => return encode(Some(name), mode, [&chain, &[], &[]], 6, true),
        };
        match end {
            Resolved::Data(t) => {
                for (rtype, set) in t {
                    let mut ans = chain.clone();
                    ans.extend(self.set(&end_name, *rtype, set));
                    let add = self.additional_for(set, mode);
                    answers.push((
                        u16::from(*rtype),
                        encode(Some(name), mode, [&ans, &[], &add], 0, true),
                    ));
                }
                self.neg_proving(Some(name), mode, &chain, 0, Some(&end_name))
            }
            Resolved::Empty => self.neg_proving(Some(name), mode, &chain, 0, Some(&end_name)),
            Resolved::NxDomain => self.neg_proving(Some(name), mode, &chain, 3, None),
            Resolved::Elsewhere | Resolved::Below(_) => {
                encode(Some(name), mode, [&chain, &[], &[]], 0, true)
            }
        }
    }

    /// The answer for each type `name` has, pushed to `answers`.
    fn own_answers(
        &self,
        name: &Name,
        types: &Types,
        mode: Mode,
        answers: &mut Vec<(u16, Prepared)>,
    ) {
        for (rtype, set) in types {
            // The NSEC3 chain is outside the namespace (see hashed_only):
            // as BIND, no NSEC3 or its RRSIGs here.
            if *rtype == RecordType::NSEC3 {
                continue;
            }
            let mut ans = self.set(name, *rtype, set);
            if *rtype == RecordType::RRSIG {
                ans.retain(|rr| rrsig_covers(&rr.rdata.get()) != Some(RecordType::NSEC3));
                if ans.is_empty() {
                    continue;
                }
            }
            let add = match rtype {
                &RecordType::CNAME => Vec::new(),
                _ => self.additional_for(set, mode),
            };
            answers.push((
                u16::from(*rtype),
                encode(Some(name), mode, [&ans, &[], &add], 0, true),
            ));
        }
    }

    /// Answers for a name that exists (or a wildcard owner, in independent mode).
    pub(super) fn node(&self, name: &Name, mode: Mode) -> Node {
        self.node_of(name, self.zone.rrsets.get(name), mode)
    }

    /// [`Self::node`] with the name's RRsets already found (a whole-zone
    /// compile walks the map: no lookup per name).
    pub(super) fn node_of(&self, name: &Name, types: Option<&Types>, mode: Mode) -> Node {
        let empty = Types::new();
        let types = types.unwrap_or(&empty);
        let mut answers: Vec<(u16, Prepared)> = Vec::new();
        let other;
        // RFC 8482: ANY gets one RRset rather than everything (see Node::any).
        let any;
        // The name's own RRsets; beside a CNAME only those that may be
        // there (RRSIG, NSEC, KEY), which a question of their type gets
        // rather than the chain, as BIND and NSD answer.
        self.own_answers(name, types, mode, &mut answers);
        if let Some(cname) = types.get(&RecordType::CNAME) {
            any = Some(u16::from(RecordType::CNAME));
            other = Some(self.chain_answers(name, cname, mode, &mut answers));
        } else {
            // The first type's answer, unless the data has type 255 itself.
            any = match answers.first() {
                Some((t, _)) if !types.contains_key(&RecordType::from(255)) => Some(*t),
                _ => None,
            };
            // Relative: the zone's shared NODATA (CompiledZone::nodata, or
            // for DO the signed one with the name's proof added per query),
            // so a new serial changes no node here.
            other = (mode == Mode::Independent).then(|| self.neg(Some(name), mode, &[], 0));
        }
        // Stable: a type's own answer (pushed first) wins over a chain's.
        answers.sort_by_key(|(t, _)| *t);
        answers.dedup_by_key(|(t, _)| *t);
        Node {
            answers: answers.into_boxed_slice(),
            any,
            rare: other.map(|other| {
                Box::new(Rare {
                    other: Some(other),
                    ..Rare::default()
                })
            }),
            wildcard: mode == Mode::Independent,
            ..Node::default()
        }
    }
}

/// Whether an owner holds only the NSEC3 chain's data (NSEC3 and the
/// RRSIGs over it): such names are no part of the zone's namespace
/// (RFC 5155 7.2.8), so a question for one is answered as for a name that
/// does not exist, as BIND and NSD answer (NXDOMAIN, or a wildcard's).
pub(super) fn hashed_only(types: &Types) -> bool {
    !types.is_empty()
        && types.iter().all(|(t, set)| match *t {
            RecordType::NSEC3 => true,
            RecordType::RRSIG => set
                .rdatas
                .iter()
                .all(|rd| rrsig_covers(&rd) == Some(RecordType::NSEC3)),
            _ => false,
        })
}

/// The names of `zone` that exist but are not owners: the ancestors of
/// owners up to the apex that have no data, and the apex if it has none.
pub(super) fn empty_non_terminals(zone: &ZoneData) -> BTreeSet<Name> {
    let mut ents = BTreeSet::new();
    // Labels counted with a leading `*` (which `num_labels` leaves out).
    let child_labels = zone.origin.iter().len() + 1;
    for (owner, types) in zone.rrsets.iter() {
        // A child of the apex (most names of a large zone) has no name
        // between it and the apex: no copy of its parent to look up.
        if owner.iter().len() <= child_labels || hashed_only(types) {
            continue;
        }
        // Up to the apex (added below), an owner (its own turn adds its
        // ancestors) or a name added before (and its ancestors with it).
        let mut n = owner.base_name();
        while n != zone.origin && !zone.rrsets.contains_key(&n) && ents.insert(n.clone()) {
            if n.is_root() {
                break;
            }
            n = n.base_name();
        }
    }
    if !zone.rrsets.contains_key(&zone.origin) {
        ents.insert(zone.origin.clone());
    }
    ents
}

/// The DNAME strictly above `name`, if any.
pub(super) fn dname_above(dnames: &BTreeMap<Name, Arc<Dname>>, name: &Name) -> Option<Arc<Dname>> {
    if dnames.is_empty() {
        return None;
    }
    super::aliases::dname_owner_above(dnames, name).map(|o| dnames[o].clone())
}

/// The answers of one name.
pub(super) fn node_for(
    c: &Compiler<'_>,
    name: &Name,
    types: Option<&Types>,
    dnames: &BTreeMap<Name, Arc<Dname>>,
    referrals: &mut BTreeMap<Name, Arc<Prepared>>,
) -> Node {
    if let Some(cut) = c.cut_of(name) {
        let r = referrals
            .entry(cut.clone())
            .or_insert_with(|| Arc::new(c.referral(cut)))
            .clone();
        if cut == name {
            // The parent is authoritative for DS at the cut (RFC 4035 3.1.4.1).
            c.cut_apex(name, r)
        } else {
            Node::of(Rare {
                referral: Some(r),
                ..Rare::default()
            })
        }
    } else if let Some(d) = dname_above(dnames, name) {
        // Data below a DNAME is occluded: the DNAME rewrites the name.
        Node::of(Rare {
            below_dname: Some(d),
            ..Rare::default()
        })
    } else {
        let mode = match name.is_wildcard() {
            true => Mode::Independent,
            false => Mode::Relative,
        };
        let mut n = c.node_of(name, types, mode);
        // A DNAME at a wildcard owner applies below the literal `*`.
        if let Some(d) = dnames.get(name) {
            n.rare_mut().dname = Some(d.clone());
        }
        n
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_between_owners_and_the_apex_exist_even_above_a_wildcard() {
        let origin = Name::from_ascii("ggon.org.").unwrap();
        let text = "@ 300 IN SOA ns1 hm 1 3600 600 86400 300\n@ 300 IN NS ns1\n\
                    ns1 300 IN A 192.0.2.1\n*.w 300 IN A 192.0.2.2\n\
                    leaf.ent.b 300 IN TXT \"x\"\n* 300 IN A 192.0.2.3\nc 300 IN A 192.0.2.4\n";
        let zone = ZoneData::parse(text, None, &origin).unwrap();
        let want: BTreeSet<Name> = ["w.ggon.org.", "ent.b.ggon.org.", "b.ggon.org."]
            .iter()
            .map(|n| Name::from_ascii(n).unwrap())
            .collect();
        // `*.w` counts `*` as a label (hickory's num_labels does not).
        assert_eq!(empty_non_terminals(&zone), want);
    }
}
