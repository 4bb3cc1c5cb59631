//! AXFR and IXFR out: the whole zone, or the changes since a serial from
//! the journal (RFC 1995; a full transfer when that serial is too old), in
//! messages of at most [`XFR_MESSAGE_BYTES`], signed as a chain when the
//! request was (RFC 8945 5.3.1). Allowed by address list or by key.

use std::collections::HashMap;
use std::net::SocketAddr;

use hickory_proto::rr::{Name, RData, Record, RecordType};
use hickory_proto::serialize::binary::BinEncodable;
use tracing::{debug, info, warn};

use super::reply::{error_reply, finish, parse_request};
use super::ZoneAccess;
use crate::dns::Transport;
use crate::proto::codes::rcode;
use crate::proto::tsig::{self, Keyring, Verified};
use crate::snapshot::{CompiledZone, Snapshot};

fn soa_with_serial(zone: &CompiledZone, serial: u32) -> Record {
    let mut soa = zone.data.soa().clone();
    soa.serial = serial;
    Record::from_rdata(zone.origin.clone(), zone.data.soa_ttl(), RData::SOA(soa))
}

/// Which records a transfer sends, in order (first and last are the SOA).
pub fn transfer_records(zone: &CompiledZone, ixfr_from: Option<u32>) -> Vec<Record> {
    let current = soa_with_serial(zone, zone.serial);
    if let Some(from) = ixfr_from {
        if from == zone.serial {
            return vec![current];
        }
        if let Some(start) = zone.journal.iter().position(|d| d.from == from) {
            let chain = &zone.journal[start..];
            let contiguous = chain.windows(2).all(|w| w[0].to == w[1].from)
                && chain.last().is_some_and(|d| d.to == zone.serial);
            if contiguous {
                let mut out = vec![current.clone()];
                for d in chain {
                    out.push(soa_with_serial(zone, d.from));
                    out.extend(d.removed.iter().cloned());
                    out.push(soa_with_serial(zone, d.to));
                    out.extend(d.added.iter().cloned());
                }
                out.push(current);
                return out;
            }
        }
    }
    let mut out = vec![current.clone()];
    out.extend(
        zone.data
            .records()
            .filter(|r| r.record_type() != RecordType::SOA),
    );
    out.push(current);
    out
}

/// Soft limit per transfer message (well under 64 KiB).
const XFR_MESSAGE_BYTES: usize = 16 * 1024;

pub(super) fn transfer(
    snap: &Snapshot,
    keys: &Keyring,
    zones: &HashMap<Name, ZoneAccess>,
    packet: &[u8],
    peer: SocketAddr,
    transport: Transport,
) -> Vec<Vec<u8>> {
    let (req, origin) = match parse_request(packet) {
        Ok(r) => r,
        Err(reply) => return reply,
    };
    let qtype = req.queries[0].query_type();
    let (Some(zone), Some(access)) = (snap.zone(&origin), zones.get(&origin)) else {
        debug!(%peer, zone = %origin, "transfer of a zone we do not serve");
        return vec![finish(
            &error_reply(&req, rcode::NOTAUTH),
            &Verified::Unsigned,
        )];
    };
    let allowed_keys: Vec<String> = access
        .transfer_keys
        .iter()
        .cloned()
        .chain(access.secondaries.iter().filter_map(|(_, k)| k.clone()))
        .collect();
    let v = tsig::verify_request(packet, &req, keys, &allowed_keys);
    let permitted = match &v {
        Verified::Bad { error, .. } => {
            warn!(%peer, zone = %origin, ?error, "transfer refused: TSIG not accepted");
            return vec![finish(&error_reply(&req, rcode::NOTAUTH), &v)];
        }
        Verified::Ok { key_name, .. } => {
            access.transfer_keys.contains(key_name)
                || access
                    .secondaries
                    .iter()
                    .any(|(a, k)| a.ip() == peer.ip() && k.as_deref() == Some(key_name))
        }
        Verified::Unsigned => {
            access.allow_transfer.iter().any(|n| n.contains(peer.ip()))
                || access
                    .secondaries
                    .iter()
                    .any(|(a, k)| k.is_none() && a.ip() == peer.ip())
        }
    };
    if !permitted {
        warn!(%peer, zone = %origin, %qtype, "transfer refused: address or key not allowed");
        return vec![finish(&error_reply(&req, rcode::REFUSED), &v)];
    }
    let ixfr_from = if qtype == RecordType::IXFR {
        req.authorities.iter().find_map(|r| match &r.data {
            RData::SOA(s) => Some(s.serial),
            _ => None,
        })
    } else {
        None
    };
    if transport == Transport::Udp {
        // Over UDP: IXFR gets the current SOA (RFC 1995 2: "use TCP"), AXFR is not offered.
        if qtype == RecordType::IXFR {
            let mut m = error_reply(&req, rcode::NOERROR);
            m.metadata.authoritative = true;
            m.add_answer(soa_with_serial(zone, zone.serial));
            return vec![finish(&m, &v)];
        }
        return vec![finish(&error_reply(&req, rcode::NOTIMP), &v)];
    }
    let records = transfer_records(zone, ixfr_from);
    info!(%peer, zone = %origin, %qtype, serial = zone.serial, from = ?ixfr_from,
        records = records.len(), "zone transfer");
    let mut messages = Vec::new();
    let mut cur = error_reply(&req, rcode::NOERROR);
    cur.metadata.authoritative = true;
    let mut size = 0;
    for r in records {
        let len = r.to_bytes().map_or(64, |b| b.len());
        if size + len > XFR_MESSAGE_BYTES && !cur.answers.is_empty() {
            let mut next = error_reply(&req, rcode::NOERROR);
            next.metadata.authoritative = true;
            messages.push(std::mem::replace(&mut cur, next));
            size = 0;
        }
        size += len;
        cur.add_answer(r);
    }
    messages.push(cur);
    match tsig::sign_chain(&messages, &v) {
        Ok(signed) => signed,
        Err(e) => {
            warn!(%peer, zone = %origin, error = %e, "cannot encode the transfer");
            vec![finish(&error_reply(&req, rcode::SERVFAIL), &v)]
        }
    }
}
