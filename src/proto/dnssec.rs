//! The DNSSEC arithmetic both the signer and the query path need: names in
//! canonical (lowercase, uncompressed) wire form, NSEC3 owner hashes
//! (RFC 5155 §5), and BIND's timestamp format. Pure functions.

use hickory_proto::rr::{Name, RData, RecordType};
use hickory_proto::serialize::binary::BinEncodable;

/// Lowercase uncompressed wire form of a name (RFC 4034 §6.2's canonical
/// form; also the key of every compiled answer).
pub fn name_wire(name: &Name) -> Vec<u8> {
    let mut out = Vec::with_capacity(name.len() + 2);
    for label in name.iter() {
        out.push(label.len() as u8);
        out.extend(label.iter().map(u8::to_ascii_lowercase));
    }
    out.push(0);
    out
}

/// The type an RRSIG covers (its first two RDATA octets; read from the
/// typed record when hickory-proto parsed it, from the bytes otherwise).
pub fn rrsig_covers(rd: &RData) -> Option<RecordType> {
    use hickory_proto::dnssec::rdata::DNSSECRData;
    if let RData::DNSSEC(DNSSECRData::RRSIG(r)) = rd {
        return Some(r.input().type_covered);
    }
    let b = rd.to_bytes().ok()?;
    (b.len() >= 2).then(|| RecordType::from(u16::from_be_bytes([b[0], b[1]])))
}

/// RFC 4034 §4.1.2: the type bit map of NSEC and NSEC3 for `codes`
/// (sorted and deduplicated here), appended to `out`.
pub fn write_type_bitmap(codes: &mut Vec<u16>, out: &mut Vec<u8>) {
    codes.sort_unstable();
    codes.dedup();
    let mut i = 0;
    while i < codes.len() {
        let window = codes[i] >> 8;
        let mut bits = [0u8; 32];
        let mut len = 0;
        while i < codes.len() && codes[i] >> 8 == window {
            let low = (codes[i] & 0xff) as usize;
            bits[low / 8] |= 0x80 >> (low % 8);
            len = low / 8 + 1;
            i += 1;
        }
        out.push(window as u8);
        out.push(len as u8);
        out.extend_from_slice(&bits[..len]);
    }
}

/// The owner of an NSEC3 record: the hash in base32hex, below the zone
/// (None when the zone's name leaves no room for the label).
pub fn nsec3_owner(zone: &Name, hash: &[u8; 20]) -> Option<Name> {
    let label = data_encoding::BASE32HEX_NOPAD
        .encode(hash)
        .to_ascii_lowercase();
    zone.prepend_label(label).ok()
}

/// RFC 5155 §5: the NSEC3 hash of an owner (SHA-1, iterated).
pub fn nsec3_hash(owner_wire: &[u8], salt: &[u8], iterations: u16) -> [u8; 20] {
    use ring::digest::{Context, SHA1_FOR_LEGACY_USE_ONLY};
    let mut ctx = Context::new(&SHA1_FOR_LEGACY_USE_ONLY);
    ctx.update(owner_wire);
    ctx.update(salt);
    let mut h = [0u8; 20];
    h.copy_from_slice(ctx.finish().as_ref());
    for _ in 0..iterations {
        let mut ctx = Context::new(&SHA1_FOR_LEGACY_USE_ONLY);
        ctx.update(&h);
        ctx.update(salt);
        h.copy_from_slice(ctx.finish().as_ref());
    }
    h
}

/// YYYYMMDDHHmmSS in UTC (BIND's key timing fields).
pub fn timestamp(unix: u64) -> String {
    let days = (unix / 86_400) as i64;
    let secs = unix % 86_400;
    // Howard Hinnant's civil-from-days.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!(
        "{y:04}{m:02}{d:02}{:02}{:02}{:02}",
        secs / 3600,
        secs % 3600 / 60,
        secs % 60
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nsec3_hash_matches_rfc5155_appendix_a() {
        // example, salt aabbccdd, 12 iterations -> 0p9mhaveqvm6t7vbl5lop2u3t2rp3tom
        let h = nsec3_hash(b"\x07example\x00", &[0xaa, 0xbb, 0xcc, 0xdd], 12);
        assert_eq!(
            data_encoding::BASE32HEX_NOPAD
                .encode(&h)
                .to_ascii_lowercase(),
            "0p9mhaveqvm6t7vbl5lop2u3t2rp3tom"
        );
    }

    #[test]
    fn timestamps() {
        assert_eq!(timestamp(0), "19700101000000");
        assert_eq!(timestamp(1_796_000_000), "20261130005320");
    }
}
