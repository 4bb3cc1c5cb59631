//! The query path's geographic step: the client's region picks the answer
//! of a per-region name, and ECS goes back in the response's OPT.
//!
//! The client is located by the query's ECS option (RFC 7871) when its zone
//! has `ecs = true`, else by the packet's source address. Names that are not
//! per-region are answered from the zone; in an ECS zone their response
//! still carries the option, with scope 0 (the answer holds for everybody).
//! A query without ECS never gets one back, and neither does a query to a
//! zone that does not allow it. No allocation.

use std::net::IpAddr;

use super::ecs::{self, ClientSubnet};
use super::wire::{Query, HEADER_LEN, OPT_LEN};
use crate::proto::codes::rtype;
use crate::snapshot::{Prepared, Snapshot};

/// What the geographic step decided for one query.
#[derive(Default)]
pub struct Geo<'a> {
    /// The region's answer, when the name is per-region.
    pub answer: Option<&'a Prepared>,
    /// The ECS option to send back, and its scope prefix.
    pub ecs: Option<(ClientSubnet, u8)>,
    /// The ECS option was malformed: answer FORMERR.
    pub formerr: bool,
}

/// Locate the client if the question needs it. `src` is the packet's source;
/// `dnssec`: the query set DO (a signed zone's region answers with its RRSIGs).
pub fn locate<'a>(
    snap: &'a Snapshot,
    pkt: &[u8],
    q: &Query,
    src: Option<IpAddr>,
    dnssec: bool,
) -> Geo<'a> {
    let Some(reg) = snap.regional() else {
        return Geo::default();
    };
    let mut geo = Geo::default();
    let mut client = src;
    let mut subnet = None;
    if let Some((at, len)) = q.edns.and_then(|e| e.ecs) {
        if reg.ecs_allowed(&q.qname) {
            let (at, len) = (usize::from(at), usize::from(len));
            match ecs::parse(&pkt[at..at + len]) {
                Ok(c) => {
                    // Source prefix 0: the resolver asks for no tailoring.
                    if c.source > 0 {
                        client = Some(c.addr);
                    }
                    subnet = Some(c);
                }
                Err(_) => {
                    geo.formerr = true;
                    return geo;
                }
            }
        }
    }
    let regional = reg
        .name(&q.qname)
        .filter(|_| matches!(q.qtype, rtype::A | rtype::AAAA | rtype::ANY));
    let mut scope = 0;
    if let Some(name) = regional {
        let located = client.map(|a| reg.map.locate(a));
        geo.answer = name.get(located.and_then(|l| l.slot), q.qtype, dnssec);
        if let (Some(l), Some(c)) = (located, subnet) {
            if c.source > 0 {
                scope = l.scope;
            }
        }
    }
    geo.ecs = subnet.map(|c| (c, scope));
    geo
}

impl Geo<'_> {
    /// Octets the ECS option will add to the response (0: none).
    pub fn ecs_len(&self) -> usize {
        self.ecs.map_or(0, |(c, _)| c.wire_len())
    }
}

/// Add the ECS option to the OPT record that ends `out` (a response built
/// by [`super::respond`], which left room for it).
pub fn append_ecs(geo: &Geo<'_>, out: &mut Vec<u8>) {
    let Some((c, scope)) = geo.ecs else {
        return;
    };
    if out.len() < HEADER_LEN + OPT_LEN {
        return;
    }
    let rdlen_at = out.len() - 2;
    out[rdlen_at..].copy_from_slice(&(c.wire_len() as u16).to_be_bytes());
    c.write(scope, out);
}
