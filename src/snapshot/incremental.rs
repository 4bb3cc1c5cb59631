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

use std::borrow::Cow;
use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use hickory_proto::rr::{Name, RData, RecordType};
use rustc_hash::{FxHashMap, FxHashSet};

use super::aliases::synthesized_targets;
use super::compile::{dname_above, hashed_only, is_signed, node_for, Compiler};
use super::denial::Chain;
use super::encode::Mode;
use super::nodes::NodeMap;
use super::{name_wire, CompiledZone, Dname, Node};
use crate::memory::two_cores;
use crate::proto::dnssec::rrsig_covers;
use crate::proto::rdatas::Rd;
use crate::proto::zone::{fqdn_lower, RRset, Types, ZoneData};

/// What a full compile learned that an incremental one reuses.
#[derive(Debug)]
pub(super) struct Index {
    /// The names without data (see [`Compiler`]'s `ents`); with the owners
    /// of the zone compiled, which an incremental compile keeps, the names
    /// that exist.
    ents: Arc<BTreeSet<Name>>,
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
        ents: Arc<BTreeSet<Name>>,
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
            let boxed = types.values().flat_map(|s| s.rdatas.stored());
            for rd in boxed.filter_map(Rd::boxed) {
                if let Some(t) = target_of(rd) {
                    let t = fqdn_lower(t);
                    // A chain through a DNAME holds the data of the names
                    // it synthesizes.
                    let through = match rd {
                        RData::CNAME(_) => synthesized_targets(zone, &dnames, &t),
                        _ => Vec::new(),
                    };
                    for t in std::iter::once(t).chain(through) {
                        dependents.entry(t).or_default().push(owner.clone());
                    }
                }
            }
        }
        serial_deps.sort();
        serial_deps.dedup();
        Index {
            ents,
            cuts,
            dnames,
            dependents,
            serial_deps,
        }
    }

    /// Whether `n` exists in `zone`, a zone with the owners this index
    /// was made for.
    fn exists(&self, zone: &ZoneData, n: &Name) -> bool {
        zone.rrsets.contains_key(n) || self.ents.contains(n)
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
        // A signed zone stays incremental while its denial chain does not
        // change (a remap re-signs the service's RRsets and the SOA only).
        Some(p)
            if p.origin == data.origin
                && p.signed == is_signed(&data)
                && (!p.signed || chain_same(&p.data, &data, changed))
                && incremental_ok(p, &data, changed) =>
        {
            incremental(p, data, changed).unwrap_or_else(compile)
        }
        _ => compile(data),
    }
}

/// Signed zones: the NSEC/NSEC3 records at the changed names, and the
/// signatures over them, are as before (so the chain's links are).
fn chain_same(old: &ZoneData, data: &ZoneData, changed: &BTreeSet<Name>) -> bool {
    let denial = |t: RecordType| matches!(t, RecordType::NSEC | RecordType::NSEC3);
    let links = |z: &ZoneData, n: &Name| {
        let Some(types) = z.rrsets.get(n) else {
            return (Vec::new(), Vec::new());
        };
        let sets: Vec<(RecordType, RRset)> = types
            .iter()
            .filter(|(t, _)| denial(**t))
            .map(|(t, s)| (*t, s.clone()))
            .collect();
        let sigs: Vec<RData> = types
            .get(&RecordType::RRSIG)
            .map(|s| {
                s.rdatas
                    .iter()
                    .filter(|r| rrsig_covers(r).is_some_and(denial))
                    .map(Cow::into_owned)
                    .collect()
            })
            .unwrap_or_default();
        (sets, sigs)
    };
    changed.iter().all(|n| links(old, n) == links(data, n))
}

/// Whether the change leaves the zone's shape and the index as they are.
fn incremental_ok(prev: &CompiledZone, data: &ZoneData, changed: &BTreeSet<Name>) -> bool {
    let old = &*prev.data;
    if !old.same_soa_but_serial(data) {
        return false;
    }
    let idx = &prev.index;
    changed.iter().all(|n| {
        if !data.origin.zone_of(n) {
            return true;
        }
        let (was, is) = (old.rrsets.get(n), data.rrsets.get(n));
        if n.is_wildcard() || was.is_some() != is.is_some() || !idx.exists(old, n) {
            return false;
        }
        let same = |t: &RecordType| was.and_then(|m| m.get(t)) == is.and_then(|m| m.get(t));
        let under_cut = crate::proto::zone::cut_of(&data.origin, &idx.cuts, n).is_some();
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
    let mut nodes = prev.nodes.next();
    let signer = |data| {
        prev.signed.then(|| {
            let mut s = Compiler::with_sets(data, idx.ents.clone(), idx.cuts.clone());
            s.dnames = idx.dnames.clone();
            s.dnssec = true;
            s.chain = prev.chain.clone();
            s
        })
    };
    {
        let mut c = Compiler::with_sets(&data, idx.ents.clone(), idx.cuts.clone());
        c.dnames = idx.dnames.clone();
        let s = signer(&*data);
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
            if !idx.exists(&prev.data, &n)
                || dname_above(&idx.dnames, &n).is_some()
                || data.rrsets.get(&n).is_some_and(hashed_only)
            {
                continue;
            }
            let key: Arc<[u8]> = Arc::from(name_wire(&n));
            let old = prev.nodes.get(&key);
            // Below a cut: the referral, which no remap reaches.
            if c.cut_of(&n).is_some_and(|cut| *cut != n) {
                continue;
            }
            let Some(mut node) = one_node(&c, &n, old.map(|o| &**o), idx) else {
                drop((c, s));
                return Err(data);
            };
            if let Some(s) = &s {
                let Some(d) = one_node(s, &n, old.and_then(|o| o.dnssec.as_deref()), idx) else {
                    drop((c, s));
                    return Err(data);
                };
                node.dnssec = Some(Box::new(d));
            }
            nodes.insert(key, Arc::new(node));
        }
    }
    nodes.settle();
    let c = Compiler::with_sets(&data, idx.ents.clone(), idx.cuts.clone());
    let mut z = finish(&c, &data, nodes, idx.clone());
    if let Some(s) = signer(&*data) {
        signed_parts(&mut z, s);
    }
    Ok(z)
}

/// One name's node (not below a cut), from `old` where it must reuse its
/// referral; None when `old` lacks it.
fn one_node(c: &Compiler<'_>, n: &Name, old: Option<&Node>, idx: &Index) -> Option<Node> {
    Some(match c.cut_of(n) {
        Some(_) => c.cut_apex(n, old?.referral()?.clone()),
        None => {
            let mode = match n.is_wildcard() {
                true => Mode::Independent,
                false => Mode::Relative,
            };
            let mut node = c.node(n, mode);
            if let Some(d) = idx.dnames.get(n) {
                node.rare_mut().dname = Some(d.clone());
            }
            node
        }
    })
}

/// The zone-wide parts of a signed zone (DO NXDOMAIN and NODATA, the chain).
fn signed_parts(z: &mut CompiledZone, s: Compiler<'_>) {
    z.nxdomain_signed = Some(s.neg(None, Mode::Independent, &[], 3));
    z.nodata_signed = Some(s.neg(None, Mode::Independent, &[], 0));
    z.signed = true;
    z.chain = s.chain;
}

/// Compile a zone into answers; a signed zone also into the answers for
/// DO queries (the same names, with signatures and proofs).
pub fn compile(zone: Arc<ZoneData>) -> CompiledZone {
    let c = Compiler::new(&zone);
    let signed = is_signed(&zone);
    let s = signed.then(|| {
        let mut s = Compiler::new(&zone);
        s.dnssec = true;
        s.chain = Arc::new(Chain::build(&zone, |n, t| s.proof(n, t)));
        s
    });
    let owners = zone.rrsets.iter().filter(|(_, t)| !hashed_only(t));
    let names: Vec<(&Name, Option<&Types>)> = owners
        .map(|(n, t)| (n, Some(t)))
        .chain(c.ents.iter().map(|n| (n, None)))
        .collect();
    let nodes = compile_nodes(&c, s.as_ref(), &names, SPLIT_FROM);
    drop(names);
    let index = Index::new(&zone, c.ents.clone(), c.cuts.clone(), c.dnames.clone());
    let mut z = finish(&c, &zone, nodes.into(), Arc::new(index));
    if let Some(s) = s {
        signed_parts(&mut z, s);
    }
    z
}

/// Below this many names a zone's nodes are compiled on one thread: a
/// thread costs more than it saves. (A parameter of [`compile_nodes`],
/// so that a test splits a small zone.)
const SPLIT_FROM: usize = 20_000;

/// The nodes of `names`, on two threads for a large zone. Why: the
/// compile was 1.4 of the 3.8 s a million-record zone took from start to
/// first answer (perf), and ggond starts with every core idle. The other
/// thread compiles the last 5/8 of the names into a vector while this one
/// compiles the rest straight into the map, then adds the other's: the
/// map's inserts (0.3 s at a million names) stay on this thread. Each
/// thread keeps its own referral bodies, so names below one cut on both
/// sides of the split get two equal bodies instead of one shared.
fn compile_nodes(
    c: &Compiler<'_>,
    s: Option<&Compiler<'_>>,
    names: &[(&Name, Option<&Types>)],
    split_from: usize,
) -> FxHashMap<Arc<[u8]>, Arc<Node>> {
    let mut nodes = FxHashMap::default();
    nodes.reserve(names.len());
    let split = match names.len() >= split_from && two_cores() {
        true => names.len() * 3 / 8,
        false => names.len(),
    };
    let (mine, theirs) = names.split_at(split);
    // Made here, filled there: a block goes back to the arena of the
    // thread that made it, and glibc keeps the free top of another
    // thread's arena resident.
    let mut out = Vec::with_capacity(theirs.len());
    let other = std::thread::scope(|scope| {
        let other = (!theirs.is_empty()).then(|| {
            std::thread::Builder::new()
                .name("compile".into())
                .spawn_scoped(scope, || {
                    compile_each(c, s, theirs, |kn| out.push(kn));
                    out
                })
        });
        compile_each(c, s, mine, |(k, n)| {
            nodes.insert(k, n);
        });
        other.map(|h| h.map(|h| h.join()))
    });
    match other {
        Some(Ok(Ok(theirs))) => nodes.extend(theirs),
        Some(Ok(Err(panic))) => std::panic::resume_unwind(panic),
        // No thread could be started: the rest here.
        Some(Err(_)) => compile_each(c, s, theirs, |(k, n)| {
            nodes.insert(k, n);
        }),
        None => {}
    }
    nodes
}

type Referrals = BTreeMap<Name, Arc<super::Prepared>>;

/// Each of `names`' nodes with its key, handed to `put`, sharing referral
/// bodies among them.
fn compile_each(
    c: &Compiler<'_>,
    s: Option<&Compiler<'_>>,
    names: &[(&Name, Option<&Types>)],
    mut put: impl FnMut((Arc<[u8]>, Arc<Node>)),
) {
    let (mut plain, mut signed) = (BTreeMap::new(), BTreeMap::new());
    for &(name, types) in names {
        put(compiled(c, s, name, types, (&mut plain, &mut signed)));
    }
}

/// One name's node, with its DO answers in a signed zone, and its key.
fn compiled(
    c: &Compiler<'_>,
    s: Option<&Compiler<'_>>,
    name: &Name,
    types: Option<&Types>,
    (plain, signed): (&mut Referrals, &mut Referrals),
) -> (Arc<[u8]>, Arc<Node>) {
    let mut node = node_for(c, name, types, &c.dnames, plain);
    if let Some(s) = s {
        if node.below_dname().is_none() {
            node.dnssec = Some(Box::new(node_for(s, name, types, &c.dnames, signed)));
        }
    }
    (Arc::from(name_wire(name)), Arc::new(node))
}

/// The zone-wide parts (NXDOMAIN, NODATA) around compiled nodes.
pub(super) fn finish(
    c: &Compiler<'_>,
    zone: &Arc<ZoneData>,
    nodes: NodeMap,
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
        chain: Arc::new(Chain::None),
        nodata_signed: None,
        nodata,
        index,
        data: zone.clone(),
        journal: Arc::default(),
    }
}

#[cfg(test)]
#[path = "incremental_tests.rs"]
mod tests;
