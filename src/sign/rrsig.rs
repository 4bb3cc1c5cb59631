//! The bytes DNSSEC signs and the records it makes: RRSIG over an RRset in
//! canonical form (RFC 4034 §3.1.8.1 and §6), NSEC and NSEC3 RDATA with
//! their type bitmaps (RFC 4034 §4.1.2), NSEC3 owner hashes (RFC 5155 §5).
//!
//! Plain functions over bytes, time passed in: nothing here knows about
//! zones or keys beyond what it is given, so each rule can be tested alone.

use hickory_proto::rr::{Name, RData, RecordType};
use hickory_proto::serialize::binary::{BinEncodable, BinEncoder};

use super::keys::ZoneKey;
use crate::proto::rdatas::Rdatas;

pub use crate::proto::dnssec::{name_wire, nsec3_hash, timestamp};

/// RDATA in canonical form: names inside it lowercased and uncompressed
/// for the types RFC 4034 §6.2 (as amended by RFC 6840 §5.1) lists.
pub fn canonical_rdata(rdata: &RData) -> Vec<u8> {
    let mut buf = Vec::new();
    let mut enc = BinEncoder::new(&mut buf);
    enc.set_canonical_form(true);
    rdata.emit(&mut enc).expect("encode rdata");
    buf
}

/// Labels of an owner for RRSIG's Labels field: the root and a leading
/// wildcard label are not counted (hickory-proto's `num_labels` already
/// leaves the `*` out).
pub fn labels(owner: &Name) -> u8 {
    owner.num_labels()
}

/// What one signature is made with.
pub struct SigParams<'a> {
    pub owner: &'a Name,
    pub rtype: RecordType,
    pub ttl: u32,
    pub inception: u32,
    pub expiration: u32,
    pub signer: &'a Name,
}

/// An RRSIG RDATA (wire form) for the RRset `rdatas` made with `key`.
pub fn sign_rrset(p: &SigParams<'_>, rdatas: &Rdatas, key: &ZoneKey) -> Vec<u8> {
    let mut rdata = Vec::with_capacity(128);
    rdata.extend_from_slice(&u16::from(p.rtype).to_be_bytes());
    rdata.push(key.algorithm);
    rdata.push(labels(p.owner));
    rdata.extend_from_slice(&p.ttl.to_be_bytes());
    rdata.extend_from_slice(&p.expiration.to_be_bytes());
    rdata.extend_from_slice(&p.inception.to_be_bytes());
    rdata.extend_from_slice(&key.tag.to_be_bytes());
    rdata.extend_from_slice(&name_wire(p.signer));
    let mut data = rdata.clone();
    let mut rrs: Vec<Vec<u8>> = rdatas.iter().map(|rd| canonical_rdata(&rd)).collect();
    rrs.sort();
    rrs.dedup();
    let owner = name_wire(p.owner);
    for rr in &rrs {
        data.extend_from_slice(&owner);
        data.extend_from_slice(&u16::from(p.rtype).to_be_bytes());
        data.extend_from_slice(&1u16.to_be_bytes());
        data.extend_from_slice(&p.ttl.to_be_bytes());
        data.extend_from_slice(&(rr.len() as u16).to_be_bytes());
        data.extend_from_slice(rr);
    }
    rdata.extend(key.sign(&data));
    rdata
}

/// RFC 4034 §4.1.2 type bitmap of RecordTypes.
pub fn type_bitmap(types: &[RecordType]) -> Vec<u8> {
    let mut codes: Vec<u16> = types.iter().map(|t| u16::from(*t)).collect();
    let mut out = Vec::new();
    crate::proto::dnssec::write_type_bitmap(&mut codes, &mut out);
    out
}

/// NSEC RDATA: the next owner and the types present.
pub fn nsec_rdata(next: &Name, types: &[RecordType]) -> Vec<u8> {
    let mut r = name_wire(next);
    r.extend(type_bitmap(types));
    r
}

/// NSEC3 RDATA: SHA-1, flags 0 (no opt-out), iterations, salt, next hash, types.
pub fn nsec3_rdata(iterations: u16, salt: &[u8], next: &[u8], types: &[RecordType]) -> Vec<u8> {
    let mut r = vec![1, 0];
    r.extend_from_slice(&iterations.to_be_bytes());
    r.push(salt.len() as u8);
    r.extend_from_slice(salt);
    r.push(next.len() as u8);
    r.extend_from_slice(next);
    r.extend(type_bitmap(types));
    r
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bitmap_matches_rfc4034_example() {
        // RFC 4034 4.3: A MX RRSIG NSEC TYPE1234.
        let b = type_bitmap(&[
            RecordType::A,
            RecordType::MX,
            RecordType::RRSIG,
            RecordType::NSEC,
            RecordType::from(1234),
        ]);
        let mut want = vec![0x00, 0x06, 0x40, 0x01, 0x00, 0x00, 0x00, 0x03, 0x04, 0x1b];
        want.extend([0u8; 26]);
        want.push(0x20);
        assert_eq!(b, want);
    }
}
