//! RFC 2136 UPDATE in: only signed, only with a key the zone allows for
//! updates; the authenticated message goes to the controller, which applies
//! it through the publisher (the single writer) and answers the rcode.

use std::collections::HashMap;
use std::net::SocketAddr;

use hickory_proto::rr::{Name, RecordType};
use tracing::warn;

use super::relay::UpdateRelay;
use super::reply::{error_reply, finish, parse_request};
use super::ZoneAccess;
use crate::decide::{Command, ControllerHandle};
use crate::proto::codes::rcode;
use crate::proto::tsig::{self, Keyring, Verified};

/// What an UPDATE is checked against and handed to.
pub(super) struct Intake<'a> {
    pub keys: &'a Keyring,
    pub zones: &'a HashMap<Name, ZoneAccess>,
    pub controller: &'a ControllerHandle,
    /// Cluster mode: the way to the leader.
    pub relay: Option<&'a dyn UpdateRelay>,
}

pub(super) async fn update(ctx: Intake<'_>, packet: &[u8], peer: SocketAddr) -> Vec<Vec<u8>> {
    let Intake {
        keys,
        zones,
        controller,
        relay,
    } = ctx;
    let (req, origin) = match parse_request(packet) {
        Ok(r) => r,
        Err(reply) => return reply,
    };
    // RFC 2136 2.3: exactly one zone, of type SOA.
    if !matches!(req.queries.as_slice(), [q] if q.query_type() == RecordType::SOA) {
        return vec![finish(
            &error_reply(&req, rcode::FORMERR),
            &Verified::Unsigned,
        )];
    }
    let Some(access) = zones.get(&origin) else {
        warn!(%peer, zone = %origin, "UPDATE for a zone we do not serve: NOTAUTH");
        return vec![finish(
            &error_reply(&req, rcode::NOTAUTH),
            &Verified::Unsigned,
        )];
    };
    let v = tsig::verify_request(packet, &req, keys, &access.update_keys);
    let key_name = match &v {
        Verified::Unsigned => {
            warn!(%peer, zone = %origin, "unsigned UPDATE refused");
            return vec![finish(&error_reply(&req, rcode::REFUSED), &v)];
        }
        Verified::Bad {
            error,
            key_dns_name,
            ..
        } => {
            warn!(%peer, zone = %origin, key = %key_dns_name, ?error, "UPDATE refused: TSIG not accepted");
            return vec![finish(&error_reply(&req, rcode::NOTAUTH), &v)];
        }
        Verified::Ok { key_name, .. } => key_name.clone(),
    };
    // A follower passes it on (TSIG checked here, once); the leader applies.
    if let Some(relayed) = relay.and_then(|r| r.relay(&origin, packet, &key_name, peer)) {
        return vec![finish(&error_reply(&req, relayed.await), &v)];
    }
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
            rcode::SERVFAIL
        }
    };
    vec![finish(&error_reply(&req, rcode), &v)]
}
