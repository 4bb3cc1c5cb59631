//! The `notify` and `transfer` targets: what a secondary zone meets from
//! the network. `notify`: a NOTIFY as the query path hands it to
//! `ggon::replicate::notify_in`. `transfer`: the primary's answers to our
//! SOA query and to a transfer request, as read from TCP
//! (`ggon::replicate::secondary::{soa_serial_of_answer, Incoming}`).
//!
//! `notify` input: one byte (bit 0: sent from the zone's primary,
//! 127.0.0.1, or from another address), then the packet, its opcode forced
//! to NOTIFY. Invariants: no panic; every reply echoes the ID and has QR
//! set; a refresh is triggered only by a NOTIFY for the secondary zone
//! `ggon.org.` from its primary, which gets one NOERROR reply.
//!
//! `transfer` input: one byte (bit 0: we hold a copy, serial 7, so the
//! request was an IXFR; else an AXFR), then the TCP stream: 2-byte lengths
//! and messages. Invariants: no panic; "up to date" only when we hold a
//! copy with the serial the primary sent; a new copy passes the zone
//! checks, has the serial of the primary's first SOA, compiles and answers
//! its SOA query.

use std::collections::HashMap;
use std::future::Future;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::task::{Context, Poll, Waker};

use ggon::replicate::secondary::{soa_serial_of_answer, Incoming, Step};
use hickory_proto::op::Message;
use hickory_proto::rr::{Name, RData};
use hickory_proto::serialize::binary::BinDecodable;
use tokio::sync::Notify;

/// The secondary zone both targets are about.
pub fn origin() -> Name {
    Name::from_ascii("ggon.org.").unwrap()
}

/// The `notify` target.
pub fn notify(data: &[u8]) {
    let Some((&sel, pkt)) = data.split_first() else {
        return;
    };
    let mut pkt = pkt.to_vec();
    if pkt.len() >= 3 {
        pkt[2] = (pkt[2] & 0x87) | (4 << 3); // QR = 0, opcode = NOTIFY
    }
    let primary: IpAddr = "127.0.0.1".parse().unwrap();
    let trigger = Arc::new(Notify::new());
    let zones = HashMap::from([(origin(), (primary, trigger.clone()))]);
    let from_primary = sel & 1 == 0;
    let peer = SocketAddr::new(
        if from_primary {
            primary
        } else {
            "127.0.0.2".parse().unwrap()
        },
        53,
    );
    let replies = ggon::replicate::notify_in(&zones, &pkt, peer);
    for r in &replies {
        assert!(r.len() >= 12, "a reply of {} bytes", r.len());
        assert_eq!(r[..2], pkt[..2], "reply ID differs");
        assert!(r[2] & 0x80 != 0, "QR not set");
    }
    let notified = std::pin::pin!(trigger.notified());
    let fired = notified.poll(&mut Context::from_waker(Waker::noop())) == Poll::Ready(());
    if fired {
        assert!(
            from_primary,
            "a NOTIFY from another address triggered a refresh"
        );
        let msg = Message::from_bytes(&pkt).expect("a NOTIFY that triggered parses");
        let q = msg.queries.first().expect("and has a question");
        assert_eq!(ggon::proto::zone::fqdn_lower(q.name()), origin());
        assert_eq!(replies.len(), 1);
        assert_eq!(
            replies[0][3] & 0xF,
            0,
            "a NOTIFY that triggered is not answered NOERROR"
        );
    }
}

/// The copy we hold when the request was an IXFR: the `query` target's
/// zone (serial 7).
fn ours() -> &'static ggon::proto::zone::ZoneData {
    &super::dns::snapshot().zones()[0].data
}

/// The records a message holds, if it parses.
fn answers(msg: &[u8]) -> Vec<hickory_proto::rr::Record> {
    Message::from_bytes(msg)
        .map(|m| m.answers)
        .unwrap_or_default()
}

/// The `transfer` target.
pub fn transfer(data: &[u8]) {
    let Some((&sel, mut stream)) = data.split_first() else {
        return;
    };
    let origin = origin();
    let ours = (sel & 1 == 1).then(ours);
    // The same bytes as the answer to our SOA query (one message, no length).
    let _ = soa_serial_of_answer(stream);
    let mut incoming = Incoming::new(&origin, ours);
    let mut first = None;
    while stream.len() >= 2 {
        let len = u16::from_be_bytes([stream[0], stream[1]]) as usize;
        let Some(msg) = stream.get(2..2 + len) else {
            return; // the connection closed inside a message
        };
        stream = &stream[2 + len..];
        // The transfer's first record (the primary's SOA, if it is one).
        if first.is_none() {
            first = answers(msg).first().map(|r| match &r.data {
                RData::SOA(s) => Some(s.serial),
                _ => None,
            });
        }
        match incoming.message(msg) {
            // ggond gives up on the transfer (and retries later).
            Err(_) => return,
            Ok(Step::More) => {}
            Ok(Step::Done(None)) => {
                let ours = ours.expect("up to date without a copy");
                assert_eq!(
                    first.flatten(),
                    Some(ours.serial()),
                    "up to date at another serial"
                );
                return;
            }
            Ok(Step::Done(Some((zone, _how)))) => {
                assert!(
                    zone.check().is_ok(),
                    "a transferred copy fails the zone checks"
                );
                let primary = first
                    .flatten()
                    .expect("a transfer that began without an SOA");
                assert_eq!(
                    zone.serial(),
                    primary,
                    "the copy's serial is not the primary's"
                );
                super::dns::serves(zone);
                return;
            }
        }
    }
}
