//! The steps every protocol operation shares: parse the request and find
//! the zone it names, and build (and, when the request was signed, sign)
//! the reply. TSIG is verified once per request, by the operation, against
//! the keys that zone allows for it.

use hickory_proto::op::ResponseCode;
use hickory_proto::op::{Message, MessageType};
use hickory_proto::rr::Name;
use hickory_proto::serialize::binary::BinDecodable;

use crate::proto::codes::rcode;
use crate::proto::tsig::{self, Verified};
use crate::proto::zone::fqdn_lower;

/// Parse a request and name the zone of its first question (lowercased).
/// A message that does not parse, or has no question, gets FORMERR (or
/// nothing, if even the header is short).
pub(super) fn parse_request(packet: &[u8]) -> Result<(Message, Name), Vec<Vec<u8>>> {
    let Ok(req) = Message::from_bytes(packet) else {
        return Err(formerr(packet));
    };
    let Some(q) = req.queries.first() else {
        return Err(formerr(packet));
    };
    let origin = fqdn_lower(q.name());
    Ok((req, origin))
}

pub(super) fn error_reply(req: &Message, code: u8) -> Message {
    let mut m = Message::new(req.metadata.id, MessageType::Response, req.metadata.op_code);
    m.metadata.response_code = ResponseCode::from_low(code);
    m.add_queries(req.queries.iter().cloned());
    m
}

/// Encode, signing when the request was signed (or its signature was bad).
pub(super) fn finish(resp: &Message, v: &Verified) -> Vec<u8> {
    match tsig::response_context(v, resp.metadata.id) {
        Some(ctx) => tsig::sign_response(resp, ctx).unwrap_or_default(),
        None => resp.to_vec().unwrap_or_default(),
    }
}

pub(super) fn formerr(packet: &[u8]) -> Vec<Vec<u8>> {
    let mut out = Vec::new();
    if packet.len() >= 12 {
        crate::dns::respond::header_only(packet, rcode::FORMERR, &mut out);
        vec![out]
    } else {
        vec![]
    }
}
