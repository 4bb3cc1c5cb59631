//! Zone transfers, UPDATE intake and NOTIFY: the DNS protocol's own way of
//! scaling past one machine (ggond as hidden primary, standard secondaries).
//!
//! Owns: access control and TSIG for AXFR/IXFR and UPDATE (an unlisted
//! address or key is refused and logged), building AXFR and IXFR answers from
//! the snapshot (IXFR from the journal of recent changes, falling back to a
//! full transfer when the requested serial is too old, RFC 1995), sending
//! NOTIFY to configured secondaries on every change (retried, bounded), and
//! passing authenticated UPDATEs to the controller, the single writer.
//!
//! It must not change zone data itself: an UPDATE is applied by the
//! publisher on the controller's task.

pub mod secondary;

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use arc_swap::ArcSwap;
use hickory_proto::op::{Message, MessageType, OpCode, Query, ResponseCode};
use hickory_proto::rr::{DNSClass, Name, RData, Record, RecordType};
use hickory_proto::serialize::binary::{BinDecodable, BinEncodable};
use tokio::sync::mpsc;
use tracing::{debug, info, warn};

use crate::shutdown::Shutdown;
use crate::proto::acl::Net;
use crate::decide::{Command, ControllerHandle};
use crate::dns::{refuse, SpecialFuture, SpecialHandler};
use crate::dns::{Special, Transport};
use crate::publish::ZoneChanged;
use crate::snapshot::{CompiledZone, Snapshot};
use crate::proto::tsig::{self, Keyring, Verified};
use crate::proto::zone::fqdn_lower;

/// Per-zone access rules.
#[derive(Debug, Clone, Default)]
pub struct ZoneAccess {
    pub origin: Name,
    pub allow_transfer: Vec<Net>,
    pub transfer_keys: Vec<String>,
    /// Secondaries: their address may transfer (with their key, if set).
    pub secondaries: Vec<(SocketAddr, Option<String>)>,
    pub update_keys: Vec<String>,
}

pub struct ProtocolHandler {
    /// Secondary zones: the primary's address and the refresh trigger.
    pub secondary_zones: Arc<HashMap<Name, (IpAddr, Arc<tokio::sync::Notify>)>>,
    pub snapshot: Arc<ArcSwap<Snapshot>>,
    pub keys: Arc<Keyring>,
    pub zones: Arc<HashMap<Name, ZoneAccess>>,
    pub controller: ControllerHandle,
}

impl SpecialHandler for ProtocolHandler {
    fn handle(
        &self,
        kind: Special,
        packet: Vec<u8>,
        peer: SocketAddr,
        transport: Transport,
    ) -> SpecialFuture {
        let snapshot = self.snapshot.load_full();
        let keys = self.keys.clone();
        let zones = self.zones.clone();
        let controller = self.controller.clone();
        let secondary = self.secondary_zones.clone();
        Box::pin(async move {
            match kind {
                Special::Transfer => transfer(&snapshot, &keys, &zones, &packet, peer, transport),
                Special::Update => update(&keys, &zones, &controller, &packet, peer).await,
                Special::Signed => signed_query(&snapshot, &keys, &packet, transport),
                Special::Notify => notify_in(&secondary, &packet, peer),
            }
        })
    }
}

fn error_reply(req: &Message, rcode: u8) -> Message {
    let mut m = Message::new(req.metadata.id, MessageType::Response, req.metadata.op_code);
    m.metadata.response_code = ResponseCode::from_low(rcode);
    m.add_queries(req.queries.iter().cloned());
    m
}

/// Encode, signing when the request was signed (or its signature was bad).
fn finish(resp: &Message, v: &Verified) -> Vec<u8> {
    match tsig::response_context(v, resp.metadata.id) {
        Some(ctx) => tsig::sign_response(resp, ctx).unwrap_or_default(),
        None => resp.to_vec().unwrap_or_default(),
    }
}

fn formerr(packet: &[u8]) -> Vec<Vec<u8>> {
    let mut out = Vec::new();
    if packet.len() >= 12 {
        crate::dns::respond::header_only(packet, 1, &mut out);
        vec![out]
    } else {
        vec![]
    }
}

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

fn transfer(
    snap: &Snapshot,
    keys: &Keyring,
    zones: &HashMap<Name, ZoneAccess>,
    packet: &[u8],
    peer: SocketAddr,
    transport: Transport,
) -> Vec<Vec<u8>> {
    let Ok(req) = Message::from_bytes(packet) else {
        return formerr(packet);
    };
    let Some(q) = req.queries.first() else {
        return formerr(packet);
    };
    let origin = fqdn_lower(q.name());
    let qtype = q.query_type();
    let (Some(zone), Some(access)) = (snap.zone(&origin), zones.get(&origin)) else {
        debug!(%peer, zone = %origin, "transfer of a zone we do not serve");
        return vec![finish(&error_reply(&req, 9), &Verified::Unsigned)];
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
            return vec![finish(&error_reply(&req, 9), &v)];
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
        return vec![finish(&error_reply(&req, 5), &v)];
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
            let mut m = error_reply(&req, 0);
            m.metadata.authoritative = true;
            m.add_answer(soa_with_serial(zone, zone.serial));
            return vec![finish(&m, &v)];
        }
        return vec![finish(&error_reply(&req, 4), &v)];
    }
    let records = transfer_records(zone, ixfr_from);
    info!(%peer, zone = %origin, %qtype, serial = zone.serial, from = ?ixfr_from,
        records = records.len(), "zone transfer");
    let mut messages = Vec::new();
    let mut cur = error_reply(&req, 0);
    cur.metadata.authoritative = true;
    let mut size = 0;
    for r in records {
        let len = r.to_bytes().map_or(64, |b| b.len());
        if size + len > XFR_MESSAGE_BYTES && !cur.answers.is_empty() {
            let mut next = error_reply(&req, 0);
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
            vec![finish(&error_reply(&req, 2), &v)]
        }
    }
}

async fn update(
    keys: &Keyring,
    zones: &HashMap<Name, ZoneAccess>,
    controller: &ControllerHandle,
    packet: &[u8],
    peer: SocketAddr,
) -> Vec<Vec<u8>> {
    let Ok(req) = Message::from_bytes(packet) else {
        return formerr(packet);
    };
    let zone_q = match req.queries.as_slice() {
        [q] if q.query_type() == RecordType::SOA => q,
        _ => return vec![finish(&error_reply(&req, 1), &Verified::Unsigned)],
    };
    let origin = fqdn_lower(zone_q.name());
    let Some(access) = zones.get(&origin) else {
        warn!(%peer, zone = %origin, "UPDATE for a zone we do not serve: NOTAUTH");
        return vec![finish(&error_reply(&req, 9), &Verified::Unsigned)];
    };
    let v = tsig::verify_request(packet, &req, keys, &access.update_keys);
    let key_name = match &v {
        Verified::Unsigned => {
            warn!(%peer, zone = %origin, "unsigned UPDATE refused");
            return vec![finish(&error_reply(&req, 5), &v)];
        }
        Verified::Bad {
            error,
            key_dns_name,
            ..
        } => {
            warn!(%peer, zone = %origin, key = %key_dns_name, ?error, "UPDATE refused: TSIG not accepted");
            return vec![finish(&error_reply(&req, 9), &v)];
        }
        Verified::Ok { key_name, .. } => key_name.clone(),
    };
    let rcode = match controller
        .call(|reply| Command::Update {
            origin: origin.clone(),
            message: Box::new(req.clone()),
            key: key_name.clone(),
            peer,
            reply,
        })
        .await
    {
        Ok(rcode) => rcode,
        Err(e) => {
            warn!(error = %e, "UPDATE not applied");
            2
        }
    };
    vec![finish(&error_reply(&req, rcode), &v)]
}

/// A TSIG-signed ordinary query: verify with any configured key, answer as
/// usual, sign the answer.
fn signed_query(
    snap: &Snapshot,
    keys: &Keyring,
    packet: &[u8],
    transport: Transport,
) -> Vec<Vec<u8>> {
    let Ok(mut req) = Message::from_bytes(packet) else {
        return formerr(packet);
    };
    let all: Vec<String> = keys.names().map(str::to_string).collect();
    let v = tsig::verify_request(packet, &req, keys, &all);
    if let Verified::Bad { .. } = v {
        return vec![finish(&error_reply(&req, 9), &v)];
    }
    req.signature = None;
    let Ok(unsigned) = req.to_vec() else {
        return formerr(packet);
    };
    let mut out = Vec::new();
    if crate::dns::respond(snap, &unsigned, transport, &mut out) != crate::dns::Action::Reply {
        return Vec::new();
    }
    match Message::from_bytes(&out) {
        Ok(resp) => vec![finish(&resp, &v)],
        Err(_) => vec![out],
    }
}

/// A NOTIFY for one of our secondary zones from its primary: refresh now.
fn notify_in(
    secondary: &HashMap<Name, (IpAddr, Arc<tokio::sync::Notify>)>,
    packet: &[u8],
    peer: SocketAddr,
) -> Vec<Vec<u8>> {
    let Ok(req) = Message::from_bytes(packet) else {
        return formerr(packet);
    };
    let Some(q) = req.queries.first() else {
        return formerr(packet);
    };
    let origin = fqdn_lower(q.name());
    match secondary.get(&origin) {
        Some((primary, trigger)) if *primary == peer.ip() => {
            trigger.notify_one();
            let mut m = error_reply(&req, 0);
            m.metadata.authoritative = true;
            vec![finish(&m, &Verified::Unsigned)]
        }
        Some(_) => {
            warn!(%peer, zone = %origin, "NOTIFY from an address that is not the zone's primary: refused");
            vec![finish(&error_reply(&req, 5), &Verified::Unsigned)]
        }
        None => refuse(Special::Notify, packet).into_iter().collect(),
    }
}

/// Send NOTIFY to each zone's secondaries whenever the zone changes.
pub fn spawn_notifier(
    mut changes: mpsc::UnboundedReceiver<ZoneChanged>,
    targets: HashMap<Name, Vec<(SocketAddr, Option<tsig::Key>)>>,
    mut shutdown: Shutdown,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        // Only the newest serial matters: a NOTIFY for an older one that is
        // still being retried is abandoned when a newer change arrives.
        let mut inflight: HashMap<(Name, SocketAddr), tokio::task::JoinHandle<()>> = HashMap::new();
        loop {
            let change = tokio::select! {
                c = changes.recv() => match c { Some(c) => c, None => break },
                _ = shutdown.requested() => break,
            };
            for (addr, key) in targets.get(&change.origin).into_iter().flatten() {
                if let Some(old) = inflight.remove(&(change.origin.clone(), *addr)) {
                    old.abort();
                }
                let (origin, addr, key) = (change.origin.clone(), *addr, key.clone());
                let serial = change.serial;
                let task = tokio::spawn(async move {
                    match send_notify(&origin, addr, key.as_ref()).await {
                        Ok(()) => {
                            info!(zone = %origin, serial, secondary = %addr, "NOTIFY acknowledged")
                        }
                        Err(e) => {
                            warn!(zone = %origin, serial, secondary = %addr, error = %e, "NOTIFY not acknowledged")
                        }
                    }
                });
                inflight.insert((change.origin.clone(), addr), task);
            }
            inflight.retain(|_, t| !t.is_finished());
        }
    })
}

/// One NOTIFY, retried until acknowledged (5 tries, 1 s then 2 s apart).
pub async fn send_notify(
    origin: &Name,
    addr: SocketAddr,
    key: Option<&tsig::Key>,
) -> Result<(), String> {
    let bind: SocketAddr = match addr.ip() {
        IpAddr::V4(ip) if ip.is_loopback() => "127.0.0.1:0".parse().unwrap(),
        IpAddr::V4(_) => "0.0.0.0:0".parse().unwrap(),
        IpAddr::V6(_) => "[::]:0".parse().unwrap(),
    };
    let sock = tokio::net::UdpSocket::bind(bind)
        .await
        .map_err(|e| e.to_string())?;
    let mut last = String::from("no answer");
    for attempt in 0..5u32 {
        let mut m = Message::new(rand::random(), MessageType::Query, OpCode::Notify);
        m.metadata.authoritative = true;
        let mut q = Query::query(origin.clone(), RecordType::SOA);
        q.set_query_class(DNSClass::IN);
        m.add_query(q);
        if let Some(k) = key {
            m.finalize(&k.signer, tsig::unix_time())
                .map_err(|e| e.to_string())?;
        }
        let bytes = m.to_vec().map_err(|e| e.to_string())?;
        sock.send_to(&bytes, addr)
            .await
            .map_err(|e| e.to_string())?;
        let wait = Duration::from_secs(if attempt == 0 { 1 } else { 2 });
        let deadline = tokio::time::Instant::now() + wait;
        let mut buf = [0u8; 4096];
        loop {
            match tokio::time::timeout_at(deadline, sock.recv_from(&mut buf)).await {
                Ok(Ok((n, from))) if from == addr && n >= 12 => {
                    let id = u16::from_be_bytes([buf[0], buf[1]]);
                    if id != m.metadata.id || buf[2] & 0x80 == 0 {
                        continue;
                    }
                    let rcode = buf[3] & 0xF;
                    if rcode == 0 {
                        return Ok(());
                    }
                    last = format!("answered rcode {rcode}");
                    break;
                }
                Ok(Ok(_)) => continue,
                Ok(Err(e)) => {
                    last = e.to_string();
                    break;
                }
                Err(_) => break,
            }
        }
    }
    Err(last)
}
