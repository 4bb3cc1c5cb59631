//! Regional answers: for a per-region service name, one precompiled answer
//! per (type, region), consulted by the query path once it knows the
//! client's region (see [`crate::dns::geo`]).
//!
//! Owns: compiling a region's A/AAAA (and ANY, and NODATA for a family the
//! region's target lacks) like the zone's own answers, and the lookup by
//! name and region. Every other type at the name, and every other name,
//! is answered from the zone as usual. Built by the publisher whenever a
//! regional answer or the zone changes; immutable like the snapshot.
//!
//! In a zone ggond signs, each region's A/AAAA RRset also comes with its
//! RRSIGs (made by the publisher's signer, see [`crate::sign`]): DO queries
//! get the region's RRset and its own signatures. A region has no signed
//! NODATA of its own: all targets of a per-region service in a signed zone
//! have the same address families (config/geo.rs), so the zone's NODATA
//! and its proof (the name's NSEC/NSEC3 bitmap) hold for every region.

use std::net::IpAddr;
use std::sync::Arc;

use hickory_proto::rr::{Name, RData, RecordType};
use rustc_hash::FxHashMap;

use super::encode::{encode, rrs, Mode, Rr};
use super::{name_wire, Prepared, QName};
use crate::geo::{RegionMap, Slot};
use crate::proto::codes::rtype;
use crate::proto::zone::{address_rrsets, RRset, ZoneData};

/// A region's answers at one name.
#[derive(Debug)]
pub struct RegionAnswers {
    a: Prepared,
    aaaa: Prepared,
    /// ANY gets one RRset (RFC 8482), as for the zone's own names.
    any_is_aaaa: bool,
    /// Signed zones: the answers for DO queries, [A, AAAA], each RRset
    /// followed by its RRSIGs; None for a family the region has not (the
    /// zone's signed NODATA answers it).
    signed: Option<Box<[Option<Prepared>; 2]>>,
}

/// Makes the RRSIGs of a region's RRset (owner, type, RRset), in a zone
/// ggond signs.
pub type SignFn<'a> = dyn FnMut(&Name, RecordType, &RRset) -> Vec<RData> + 'a;

/// One per-region name: answers by region slot (the last is the default).
/// None: that region answers what the zone answers.
#[derive(Debug)]
pub struct RegionalName {
    slots: Box<[Option<RegionAnswers>]>,
}

impl RegionalName {
    /// The answer for `qtype` in region `slot` (None: in no region), if it
    /// is a regional one; `dnssec`: the query set DO, so a signed region
    /// answers with its RRSIGs.
    pub fn get(&self, slot: Option<Slot>, qtype: u16, dnssec: bool) -> Option<&Prepared> {
        let default = self.slots.len() - 1;
        let i = slot.map_or(default, usize::from);
        let r = match self.slots.get(i) {
            Some(Some(r)) => r,
            _ => self.slots[default].as_ref()?,
        };
        if let (true, Some(s)) = (dnssec, &r.signed) {
            return match qtype {
                rtype::A => s[0].as_ref(),
                rtype::AAAA => s[1].as_ref(),
                rtype::ANY => s[usize::from(r.any_is_aaaa)].as_ref(),
                _ => None,
            };
        }
        match qtype {
            rtype::A => Some(&r.a),
            rtype::AAAA => Some(&r.aaaa),
            rtype::ANY if r.any_is_aaaa => Some(&r.aaaa),
            rtype::ANY => Some(&r.a),
            _ => None,
        }
    }
}

/// Everything the query path needs for geographic answers.
#[derive(Debug)]
pub struct Regional {
    pub map: Arc<RegionMap>,
    names: FxHashMap<Box<[u8]>, Arc<RegionalName>>,
    /// Zone apexes (lowercase wire) whose queries may locate the client by ECS.
    ecs_zones: Box<[Box<[u8]>]>,
}

impl Regional {
    pub fn new(
        map: Arc<RegionMap>,
        names: impl IntoIterator<Item = (Name, Arc<RegionalName>)>,
        ecs_zones: &[Name],
    ) -> Regional {
        Regional {
            map,
            names: names
                .into_iter()
                .map(|(n, r)| (name_wire(&n).into_boxed_slice(), r))
                .collect(),
            ecs_zones: ecs_zones
                .iter()
                .map(|z| name_wire(z).into_boxed_slice())
                .collect(),
        }
    }

    /// The per-region name asked for, if it is one. No allocation.
    pub fn name(&self, q: &QName) -> Option<&RegionalName> {
        self.names.get(&q.wire[..q.len]).map(|r| &**r)
    }

    /// Is the question in a zone with `ecs = true`?
    pub fn ecs_allowed(&self, q: &QName) -> bool {
        !self.ecs_zones.is_empty()
            && (0..=q.nlabels).any(|l| self.ecs_zones.iter().any(|z| **z == *q.suffix(l)))
    }
}

/// Compile a per-region name of `zone`: `slots[i]` is region i's addresses
/// (None: as the zone answers), the last entry the default's. `sign`: the
/// zone is signed, and this makes a region's RRSIGs.
pub fn compile_name(
    zone: &ZoneData,
    name: &Name,
    ttl: u32,
    slots: &[Option<Vec<IpAddr>>],
    mut sign: Option<&mut SignFn<'_>>,
) -> RegionalName {
    let neg = zone.negative_soa();
    let auth: Vec<Rr> = rrs(&zone.origin, &neg).collect();
    let nodata = encode(Some(name), Mode::Relative, [&[], &auth, &[]], 0, true);
    let answer = |set: Option<&RRset>, sigs: Option<&RRset>| match set {
        None => nodata.clone(),
        Some(set) => {
            let mut ans: Vec<Rr> = rrs(name, set).collect();
            ans.extend(sigs.into_iter().flat_map(|s| rrs(name, s)));
            encode(Some(name), Mode::Relative, [&ans, &[], &[]], 0, true)
        }
    };
    let slots = slots
        .iter()
        .map(|s| {
            s.as_ref().map(|addrs| {
                let sets = address_rrsets(ttl, addrs);
                let signed = sign.as_mut().map(|f| {
                    let types = [RecordType::A, RecordType::AAAA];
                    Box::new(std::array::from_fn(|i| {
                        let set = sets[i].as_ref()?;
                        let sigs = RRset::new(set.ttl, f(name, types[i], set));
                        Some(answer(Some(set), Some(&sigs)))
                    }))
                });
                RegionAnswers {
                    any_is_aaaa: sets[0].is_none(),
                    a: answer(sets[0].as_ref(), None),
                    aaaa: answer(sets[1].as_ref(), None),
                    signed,
                }
            })
        })
        .collect();
    RegionalName { slots }
}
