//! The `tsig` target: TSIG verification (`ggon::proto::tsig`), which
//! stands in front of UPDATEs, transfers and signed queries, and the BIND
//! key-file reader.
//!
//! Input: one byte `n`, then 1 + n % 4 edits of three bytes each (a
//! position, big-endian u16, and a byte: XORed in, or 0 to cut the message
//! there), then a DNS message. Three things are done with it:
//! - the input's bytes as a request, verified against the key `ggon-key`:
//!   never accepted (nobody outside holds the key), and the refusal can be
//!   answered (signed or not, as ggond does);
//! - the message (if it parses) signed now with `ggon-key` and verified:
//!   accepted; then the edits applied to the signed bytes: the result is
//!   never accepted unless the edits only touched what the MAC does not
//!   cover (the header ID, which the TSIG's original ID stands in for, and
//!   the letter case of the names in the TSIG record, which are hashed in
//!   lowercase);
//! - the input as a BIND key file: read, and each key it holds loaded.

use std::sync::OnceLock;

use ggon::proto::tsig::{
    parse_bind_keys, response_context, sign_response, unix_time, verify_request, KeySource,
    Keyring, Verified,
};
use hickory_proto::op::{Message, MessageType, ResponseCode};
use hickory_proto::serialize::binary::BinDecodable;

/// The secret of `ggon-key` (base64 of 32 bytes).
pub const SECRET: &str = "Z2dvbi1mdXp6LWtleS0wMTIzNDU2Nzg5YWJjZGVmMDE=";

/// The keyring every input is verified against.
pub fn ring() -> &'static Keyring {
    static RING: OnceLock<Keyring> = OnceLock::new();
    RING.get_or_init(|| {
        Keyring::load([KeySource {
            name: "ggon-key",
            file: None,
            algorithm: Some("hmac-sha256"),
            secret: Some(SECRET),
        }])
        .expect("the fuzz key loads")
    })
}

fn allowed() -> Vec<String> {
    vec!["ggon-key".to_string()]
}

/// The `tsig` target.
pub fn tsig(data: &[u8]) {
    as_received(data);
    key_file(data);
    let Some((&n, rest)) = data.split_first() else {
        return;
    };
    let edits = 3 * (1 + n as usize % 4);
    if rest.len() < edits {
        return;
    }
    let (spec, message) = rest.split_at(edits);
    signed_then_edited(spec, message);
}

/// Bytes from the network: whatever they hold, not accepted; the refusal
/// (or the unsigned answer) is built as ggond builds it.
fn as_received(data: &[u8]) {
    let Ok(msg) = Message::from_bytes(data) else {
        return;
    };
    let v = verify_request(data, &msg, ring(), &allowed());
    assert!(
        !matches!(v, Verified::Ok { .. }),
        "bytes nobody signed with the key were accepted"
    );
    let mut reply = Message::new(msg.metadata.id, MessageType::Response, msg.metadata.op_code);
    reply.metadata.response_code = ResponseCode::NotAuth;
    reply.add_queries(msg.queries.iter().cloned());
    if let Some(ctx) = response_context(&v, msg.metadata.id) {
        let _ = sign_response(&reply, ctx);
    }
}

/// A BIND key file: read; each key loaded (name, algorithm, base64 secret).
fn key_file(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let Ok(keys) = parse_bind_keys(text) else {
        return;
    };
    for (name, algorithm, secret) in &keys {
        let _ = Keyring::load([KeySource {
            name,
            file: None,
            algorithm: Some(algorithm),
            secret: Some(secret),
        }]);
    }
}

/// Sign `message` with the key now, check it is accepted, apply the edits
/// in `spec`, check the result is refused.
fn signed_then_edited(spec: &[u8], message: &[u8]) {
    let Ok(mut m) = Message::from_bytes(message) else {
        return;
    };
    m.signature = None;
    let Ok(unsigned) = m.to_vec() else {
        return;
    };
    let key = ring().get("ggon-key").expect("the fuzz key");
    if m.finalize(&key.signer, unix_time()).is_err() {
        return;
    }
    let Ok(signed) = m.to_vec() else {
        return;
    };
    // (hickory's own encoding of what it decoded: not always decodable.)
    let Ok(parsed) = Message::from_bytes(&signed) else {
        return;
    };
    assert!(
        matches!(
            verify_request(&signed, &parsed, ring(), &allowed()),
            Verified::Ok { .. }
        ),
        "a message signed with the key was refused"
    );
    let mut edited = signed.clone();
    for e in spec.chunks_exact(3) {
        if edited.is_empty() {
            return;
        }
        let at = u16::from_be_bytes([e[0], e[1]]) as usize % edited.len();
        match e[2] {
            0 => edited.truncate(at),
            x => edited[at] ^= x,
        }
    }
    let Ok(parsed) = Message::from_bytes(&edited) else {
        return;
    };
    if let Verified::Ok { .. } = verify_request(&edited, &parsed, ring(), &allowed()) {
        assert!(
            outside_the_mac(&signed, &edited, unsigned.len()),
            "an edited signed message was accepted:\n signed {}\n edited {}",
            hex(&signed),
            hex(&edited)
        );
    }
}

/// Whether `edited` differs from `signed` only where the MAC does not
/// look: the header ID (bytes 0-1) and the letter case of bytes in the TSIG
/// record (from `tsig_at`).
fn outside_the_mac(signed: &[u8], edited: &[u8], tsig_at: usize) -> bool {
    signed.len() == edited.len()
        && signed
            .iter()
            .zip(edited)
            .enumerate()
            .all(|(i, (a, b))| a == b || i < 2 || (i >= tsig_at && a.eq_ignore_ascii_case(b)))
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}
