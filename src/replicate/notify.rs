//! NOTIFY, both ways: in, from a secondary zone's primary (refresh now);
//! out, to each zone's secondaries on every change (retried, bounded; an
//! older serial's retries are dropped when a newer change arrives).

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use hickory_proto::op::{Message, MessageType, OpCode, Query};
use hickory_proto::rr::{DNSClass, Name, RecordType};
use tokio::sync::mpsc;
use tracing::{info, warn};

use super::reply::{error_reply, finish, parse_request};
use crate::dns::{refuse, Special};
use crate::proto::codes::rcode;
use crate::proto::tsig::{self, Verified};
use crate::publish::ZoneChanged;
use crate::shutdown::Shutdown;

/// A NOTIFY for one of our secondary zones from its primary: refresh now.
/// Public (hidden) for the `notify` fuzz target: it is what a NOTIFY from
/// the network meets.
#[doc(hidden)]
pub fn notify_in(
    secondary: &HashMap<Name, (IpAddr, Arc<tokio::sync::Notify>)>,
    packet: &[u8],
    peer: SocketAddr,
) -> Vec<Vec<u8>> {
    let (req, origin) = match parse_request(packet) {
        Ok(r) => r,
        Err(reply) => return reply,
    };
    match secondary.get(&origin) {
        Some((primary, trigger)) if *primary == peer.ip() => {
            trigger.notify_one();
            let mut m = error_reply(&req, rcode::NOERROR);
            m.metadata.authoritative = true;
            vec![finish(&m, &Verified::Unsigned)]
        }
        Some(_) => {
            warn!(%peer, zone = %origin, "NOTIFY from an address that is not the zone's primary: refused");
            vec![finish(
                &error_reply(&req, rcode::REFUSED),
                &Verified::Unsigned,
            )]
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

/// Why a secondary did not acknowledge a NOTIFY (after the last try).
#[derive(Debug, thiserror::Error)]
pub enum NotifyError {
    /// The socket could not be opened or the NOTIFY not sent.
    #[error("{0}")]
    Socket(std::io::Error),
    #[error("{0}")]
    Encode(Box<hickory_proto::ProtoError>),
    #[error("no answer")]
    NoAnswer,
    #[error("answered rcode {0}")]
    Rcode(u8),
    #[error("{0}")]
    Receive(std::io::Error),
}

/// One NOTIFY, retried until acknowledged (5 tries, 1 s then 2 s apart).
pub async fn send_notify(
    origin: &Name,
    addr: SocketAddr,
    key: Option<&tsig::Key>,
) -> Result<(), NotifyError> {
    let bind: SocketAddr = match addr.ip() {
        IpAddr::V4(ip) if ip.is_loopback() => "127.0.0.1:0".parse().unwrap(),
        IpAddr::V4(_) => "0.0.0.0:0".parse().unwrap(),
        IpAddr::V6(_) => "[::]:0".parse().unwrap(),
    };
    let sock = tokio::net::UdpSocket::bind(bind)
        .await
        .map_err(NotifyError::Socket)?;
    let mut last = NotifyError::NoAnswer;
    for attempt in 0..5u32 {
        let mut m = Message::new(rand::random(), MessageType::Query, OpCode::Notify);
        m.metadata.authoritative = true;
        let mut q = Query::query(origin.clone(), RecordType::SOA);
        q.set_query_class(DNSClass::IN);
        m.add_query(q);
        if let Some(k) = key {
            m.finalize(&k.signer, tsig::unix_time())
                .map_err(|e| NotifyError::Encode(Box::new(e)))?;
        }
        let bytes = m.to_vec().map_err(|e| NotifyError::Encode(Box::new(e)))?;
        sock.send_to(&bytes, addr)
            .await
            .map_err(NotifyError::Socket)?;
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
                    last = NotifyError::Rcode(rcode);
                    break;
                }
                Ok(Ok(_)) => continue,
                Ok(Err(e)) => {
                    last = NotifyError::Receive(e);
                    break;
                }
                Err(_) => break,
            }
        }
    }
    Err(last)
}
