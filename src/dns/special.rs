//! The hand-off for requests the query path does not answer itself.
//!
//! Why a trait: the query path must stay ignorant of zone transfers, UPDATE,
//! NOTIFY and TSIG, which need keys, access lists and the controller. It
//! recognises them ([`Special`]) and passes the packet on; whoever runs the
//! server ([`crate::replicate`] in ggond) answers. Both the UDP loop and the
//! TCP connections use this one definition.

use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;

use super::respond::{Special, Transport};
use crate::proto::codes::rcode;

/// Responses to a special request (an AXFR is several messages).
pub type SpecialFuture = Pin<Box<dyn Future<Output = Vec<Vec<u8>>> + Send>>;

/// Handles the requests the query path hands back: UPDATE, NOTIFY, transfers,
/// signed queries.
pub trait SpecialHandler: Send + Sync + 'static {
    fn handle(
        &self,
        kind: Special,
        packet: Vec<u8>,
        peer: SocketAddr,
        transport: Transport,
    ) -> SpecialFuture;
}

/// The plain refusal for a special request: NOTIMP for NOTIFY, REFUSED otherwise.
pub fn refuse(kind: Special, packet: &[u8]) -> Option<Vec<u8>> {
    let q = super::wire::parse_query(packet).ok()?;
    let rcode = match kind {
        Special::Notify => rcode::NOTIMP,
        _ => rcode::REFUSED,
    };
    let mut out = Vec::new();
    super::respond::error(packet, &q, rcode, &mut out);
    Some(out)
}
