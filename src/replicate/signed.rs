//! TSIG-signed ordinary queries: verified with any configured key, answered
//! by the query path as usual, the answer signed.

use hickory_proto::op::Message;
use hickory_proto::serialize::binary::BinDecodable;

use super::reply::{error_reply, finish, formerr};
use crate::dns::Transport;
use crate::proto::codes::rcode;
use crate::proto::tsig::{self, Keyring, Verified};
use crate::snapshot::Snapshot;

/// A TSIG-signed ordinary query: verify with any configured key, answer as
/// usual, sign the answer.
pub(super) fn signed_query(
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
        return vec![finish(&error_reply(&req, rcode::NOTAUTH), &v)];
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
