//! Incremental recompile: a change (a remap, an UPDATE) touches a few names,
//! so only the nodes whose answers hold those names' data are compiled
//! again; every other node is shared (`Arc`) with the previous snapshot.
//!
//! Owns: the full compile ([`compile`], which leaves the dependency index
//! behind, [`Index`]) and the choice between an incremental and a full
//! compile ([`recompile`]); the per-name compiler is in compile.rs.
//! Which nodes a changed name reaches:
//! - its own node;
//! - nodes whose CNAME chain or additional-section data (NS, MX, SRV,
//!   SVCB/HTTPS targets) name it, transitively (a chain through a chain);
//! - nodes whose bodies hold the SOA, whose serial every change bumps: the
//!   apex, CNAME owners (their NODATA/NXDOMAIN tails), cut apexes (NODATA
//!   for DS) and wildcard owners. Plain names share the zone's NODATA.
//!
//! Anything that changes the zone's shape falls back to a full compile:
//! a name appearing or disappearing, a wildcard, data at or below a zone
//! cut or below a DNAME, and changes to SOA (other than its serial), NS,
//! CNAME, DNAME, DS or the types whose targets feed additional sections.
//! The fallback is always correct; the incremental path only has to be
//! right for what it accepts, and the test in incremental_tests.rs checks
//! it against full compiles.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use hickory_proto::rr::{Name, RData, RecordType};
use rustc_hash::{FxHashMap, FxHashSet};

use super::compile::{dname_above, is_signed, node_for, Compiler};
use super::denial::Chain;
use super::encode::Mode;
use super::{name_wire, CompiledZone, Dname, Node};
use crate::proto::zone::{fqdn_lower, ZoneData};

/// What a full compile learned that an incremental one reuses.
#[derive(Debug)]
pub(super) struct Index {
    names: Arc<BTreeSet<Name>>,
    cuts: Arc<BTreeSet<Name>>,
    dnames: BTreeMap<Name, Arc<Dname>>,
    /// Target name → the owners whose answers include its data.
    dependents: FxHashMap<Name, Vec<Name>>,
    /// Names whose bodies hold the SOA record (and so its serial).
    serial_deps: Vec<Name>,
}

/// The types whose change alters the zone's shape or the dependency index.
const SHAPE: [RecordType; 9] = [
    RecordType::SOA,
    RecordType::NS,
    RecordType::CNAME,
    RecordType::DNAME,
    RecordType::DS,
    RecordType::MX,
    RecordType::SRV,
    RecordType::SVCB,
    RecordType::HTTPS,
];

/// The name an RDATA makes the server look up for its answer or its
/// additional section.
fn target_of(rd: &RData) -> Option<&Name> {
    Some(match rd {
        RData::CNAME(c) => &c.0,
        RData::NS(ns) => &ns.0,
        RData::MX(mx) => &mx.exchange,
        RData::SRV(srv) => &srv.target,
        RData::SVCB(s) => &s.target_name,
        RData::HTTPS(h) => &h.0.target_name,
        _ => return None,
    })
}

impl Index {
    pub(super) fn new(
        zone: &ZoneData,
        names: Arc<BTreeSet<Name>>,
        cuts: Arc<BTreeSet<Name>>,
        dnames: BTreeMap<Name, Arc<Dname>>,
    ) -> Index {
        let mut dependents: FxHashMap<Name, Vec<Name>> = FxHashMap::default();
        let mut serial_deps = vec![zone.origin.clone()];
        for (owner, types) in &zone.rrsets {
            if types.contains_key(&RecordType::CNAME) || owner.is_wildcard() || cuts.contains(owner)
            {
                serial_deps.push(owner.clone());
            }
            for rd in types.values().flat_map(|s| &s.rdatas) {
                if let Some(t) = target_of(rd) {
                    dependents
                        .entry(fqdn_lower(t))
                        .or_default()
                        .push(owner.clone());
                }
            }
        }
        serial_deps.sort();
        serial_deps.dedup();
        Index {
            names,
            cuts,
            dnames,
            dependents,
            serial_deps,
        }
    }
}

/// Compile `data`, the next version of `prev`'s zone in which only the
/// names in `changed` (lowercase, fully qualified) and the SOA serial
/// differ. Recompiles only the nodes those reach when it can, else all.
pub fn recompile(
    prev: Option<&CompiledZone>,
    data: Arc<ZoneData>,
    changed: &BTreeSet<Name>,
) -> CompiledZone {
    match prev {
        // Signed zones change beside the names (signatures, the chain):
        // compiled whole.
        Some(p)
            if p.origin == data.origin
                && !p.signed
                && !is_signed(&data)
                && incremental_ok(p, &data, changed) =>
        {
            incremental(p, data, changed).unwrap_or_else(compile)
        }
        _ => compile(data),
    }
}

/// Whether the change leaves the zone's shape and the index as they are.
fn incremental_ok(prev: &CompiledZone, data: &ZoneData, changed: &BTreeSet<Name>) -> bool {
    let old = &*prev.data;
    let (a, b) = (old.soa(), data.soa());
    let soa_same = old.soa_ttl() == data.soa_ttl()
        && (&a.mname, &a.rname, a.refresh, a.retry, a.expire, a.minimum)
            == (&b.mname, &b.rname, b.refresh, b.retry, b.expire, b.minimum);
    if !soa_same {
        return false;
    }
    let idx = &prev.index;
    changed.iter().all(|n| {
        if !data.origin.zone_of(n) {
            return true;
        }
        let (was, is) = (old.rrsets.get(n), data.rrsets.get(n));
        if n.is_wildcard() || was.is_some() != is.is_some() || !idx.names.contains(n) {
            return false;
        }
        let same = |t: &RecordType| was.and_then(|m| m.get(t)) == is.and_then(|m| m.get(t));
        let under_cut = {
            let mut up = n.clone();
            let mut found = false;
            while up.num_labels() > data.origin.num_labels() {
                found |= idx.cuts.contains(&up);
                up = up.base_name();
            }
            found
        };
        SHAPE.iter().all(same) && !under_cut && dname_above(&idx.dnames, n).is_none()
    })
}

/// The incremental compile; gives `data` back when a node it needs from
/// `prev` is missing (a full compile then).
fn incremental(
    prev: &CompiledZone,
    data: Arc<ZoneData>,
    changed: &BTreeSet<Name>,
) -> Result<CompiledZone, Arc<ZoneData>> {
    let idx = &prev.index;
    let mut nodes = prev.nodes.clone();
    {
        let c = Compiler::with_sets(&data, idx.names.clone(), idx.cuts.clone());
        let mut todo: Vec<Name> = changed.iter().cloned().collect();
        todo.extend(idx.serial_deps.iter().cloned());
        let mut seen: FxHashSet<Name> = FxHashSet::default();
        // Every name is taken once, so this ends after at most |names| turns.
        while let Some(n) = todo.pop() {
            if !seen.insert(n.clone()) {
                continue;
            }
            if let Some(deps) = idx.dependents.get(&n) {
                todo.extend(deps.iter().filter(|d| !seen.contains(*d)).cloned());
            }
            if !idx.names.contains(&n) || dname_above(&idx.dnames, &n).is_some() {
                continue;
            }
            let key: Arc<[u8]> = Arc::from(name_wire(&n));
            let node = match c.cut_of(&n) {
                Some(cut) if *cut == n => {
                    let Some(r) = prev.nodes.get(&key).and_then(|o| o.referral.clone()) else {
                        drop(c);
                        return Err(data);
                    };
                    c.cut_apex(&n, r)
                }
                // Below a cut: the referral, which no remap reaches.
                Some(_) => continue,
                None if n.is_wildcard() => c.node(&n, Mode::Independent),
                None => {
                    let mut node = c.node(&n, Mode::Relative);
                    node.dname = idx.dnames.get(&n).cloned();
                    node
                }
            };
            nodes.insert(key, Arc::new(node));
        }
    }
    let c = Compiler::with_sets(&data, idx.names.clone(), idx.cuts.clone());
    Ok(finish(&c, &data, nodes, idx.clone()))
}

/// Compile a zone into answers; a signed zone also into the answers for
/// DO queries (the same names, with signatures and proofs).
pub fn compile(zone: Arc<ZoneData>) -> CompiledZone {
    let c = Compiler::new(&zone);
    let signed = is_signed(&zone);
    let s = signed.then(|| {
        let mut s = Compiler::new(&zone);
        s.dnssec = true;
        s.chain = Chain::build(&zone, |n, t| s.proof(n, t));
        s
    });
    let mut nodes = FxHashMap::default();
    let dnames = c.dnames();
    let mut plain_referrals = BTreeMap::new();
    let mut signed_referrals = BTreeMap::new();
    for name in c.names.iter() {
        let mut node = node_for(&c, name, &dnames, &mut plain_referrals);
        if let Some(s) = &s {
            if node.below_dname.is_none() {
                node.dnssec = Some(Box::new(node_for(s, name, &dnames, &mut signed_referrals)));
            }
        }
        nodes.insert(Arc::from(name_wire(name)), Arc::new(node));
    }
    let index = Index::new(&zone, c.names.clone(), c.cuts.clone(), dnames);
    let mut z = finish(&c, &zone, nodes, Arc::new(index));
    if let Some(s) = s {
        z.nxdomain_signed = Some(s.neg(None, Mode::Independent, &[], 3));
        z.signed = true;
        z.chain = s.chain;
    }
    z
}

/// The zone-wide parts (NXDOMAIN, NODATA) around compiled nodes.
pub(super) fn finish(
    c: &Compiler<'_>,
    zone: &Arc<ZoneData>,
    nodes: FxHashMap<Arc<[u8]>, Arc<Node>>,
    index: Arc<Index>,
) -> CompiledZone {
    let nxdomain = c.neg(None, Mode::Independent, &[], 3);
    let nodata = c.neg(None, Mode::Independent, &[], 0);
    let apex = name_wire(&zone.origin).into_boxed_slice();
    CompiledZone {
        origin: zone.origin.clone(),
        serial: zone.serial(),
        apex_labels: zone.origin.num_labels() as usize,
        apex,
        nodes,
        nxdomain,
        nxdomain_signed: None,
        signed: false,
        chain: Chain::None,
        nodata,
        index,
        data: zone.clone(),
        journal: Arc::default(),
    }
}

#[cfg(test)]
#[path = "incremental_tests.rs"]
mod tests;
