//! Regional answers: for a per-region service name, one precompiled answer
//! per (type, region), consulted by the query path once it knows the
//! client's region (see [`crate::dns::geo`]).
//!
//! Owns: compiling a region's A/AAAA (and ANY, and NODATA for a family the
//! region's target lacks) like the zone's own answers, and the lookup by
//! name and region. Every other type at the name, and every other name,
//! is answered from the zone as usual. Built by the publisher whenever a
//! regional answer or the zone changes; immutable like the snapshot.

use std::net::IpAddr;
use std::sync::Arc;

use hickory_proto::rr::Name;
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
}

/// One per-region name: answers by region slot (the last is the default).
/// None: that region answers what the zone answers.
#[derive(Debug)]
pub struct RegionalName {
    slots: Box<[Option<RegionAnswers>]>,
}

impl RegionalName {
    /// The answer for `qtype` in region `slot` (None: in no region), if it
    /// is a regional one.
    pub fn get(&self, slot: Option<Slot>, qtype: u16) -> Option<&Prepared> {
        let default = self.slots.len() - 1;
        let i = slot.map_or(default, usize::from);
        let r = match self.slots.get(i) {
            Some(Some(r)) => r,
            _ => self.slots[default].as_ref()?,
        };
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
/// (None: as the zone answers), the last entry the default's.
pub fn compile_name(
    zone: &ZoneData,
    name: &Name,
    ttl: u32,
    slots: &[Option<Vec<IpAddr>>],
) -> RegionalName {
    let neg = zone.negative_soa();
    let auth: Vec<Rr> = rrs(&zone.origin, &neg).collect();
    let nodata = encode(Some(name), Mode::Relative, [&[], &auth, &[]], 0, true);
    let answer = |set: Option<RRset>| match set {
        None => nodata.clone(),
        Some(set) => {
            let ans: Vec<Rr> = rrs(name, &set).collect();
            encode(Some(name), Mode::Relative, [&ans, &[], &[]], 0, true)
        }
    };
    let slots = slots
        .iter()
        .map(|s| {
            s.as_ref().map(|addrs| {
                let [v4, v6] = address_rrsets(ttl, addrs);
                RegionAnswers {
                    any_is_aaaa: v4.is_none(),
                    a: answer(v4),
                    aaaa: answer(v6),
                }
            })
        })
        .collect();
    RegionalName { slots }
}
