//! RDATA in presentation form → wire form, per type (RFC 1035, 3596, 4034,
//! 5155, 6672, 7553, 8659, 9460, … and RFC 3597's `\# len hex` for any type).
//!
//! Why our own: hickory-proto's master-file parser refuses DNSSEC and many
//! other types, reads `\DDD` as octal, and loses the origin of relative
//! names in SVCB targets. Encoding straight to wire keeps every byte as
//! written (names keep their case); the caller then decodes the wire with
//! hickory-proto, so the rest of ggond sees ordinary records.

use std::net::{Ipv4Addr, Ipv6Addr};

use data_encoding::BASE32HEX_NOPAD;
use hickory_proto::rr::{Name, RecordType};

use super::complex::{apl, loc, svcb, wks};
use super::error::SyntaxError;
use super::fields::{b64, char_string, hex, Fields};
use super::lexer::{unescape, Token};
pub use super::names::{name, name_wire, rtype};

type R<T> = Result<T, SyntaxError>;

fn bad(what: &'static str, text: &str) -> SyntaxError {
    SyntaxError::Bad {
        what,
        text: text.to_string(),
    }
}

fn unknown(what: &'static str, text: &str) -> SyntaxError {
    SyntaxError::Unknown {
        what,
        text: text.to_string(),
    }
}

/// DNSSEC time: YYYYMMDDHHmmSS or seconds since the epoch.
fn dnssec_time(s: &str) -> R<u32> {
    if s.len() == 14 && s.bytes().all(|c| c.is_ascii_digit()) {
        let p = |a: usize, b: usize| s[a..b].parse::<i64>().unwrap();
        let (y, mo, d, h, mi, se) = (p(0, 4), p(4, 6), p(6, 8), p(8, 10), p(10, 12), p(12, 14));
        // Days from civil (Howard Hinnant's algorithm).
        let y2 = if mo <= 2 { y - 1 } else { y };
        let era = y2.div_euclid(400);
        let yoe = y2 - era * 400;
        let mp = (mo + 9) % 12;
        let doy = (153 * mp + 2) / 5 + d - 1;
        let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
        let days = era * 146097 + doe - 719468;
        let t = days * 86400 + h * 3600 + mi * 60 + se;
        Ok(t as u32)
    } else {
        s.parse::<u32>().map_err(|_| bad("DNSSEC time", s))
    }
}

/// A type in a bit map: a mnemonic, `TYPEnnn`, or (as BIND writes
/// unknown ones) a bare number.
fn type_code(s: &str) -> Option<u16> {
    rtype(s).map(u16::from).or_else(|| s.parse().ok())
}

/// Type bit maps (RFC 4034 4.1.2).
fn bitmap(types: &[Token], out: &mut Vec<u8>) -> R<()> {
    let mut codes = Vec::new();
    for t in types {
        codes.push(type_code(&t.text).ok_or_else(|| SyntaxError::BitmapType(t.text.to_string()))?);
    }
    crate::proto::dnssec::write_type_bitmap(&mut codes, out);
    Ok(())
}

fn alg_or_num(s: &str) -> R<u8> {
    if let Ok(n) = s.parse::<u8>() {
        return Ok(n);
    }
    Ok(match s.to_ascii_uppercase().as_str() {
        "RSAMD5" => 1,
        "DH" => 2,
        "DSA" => 3,
        "RSASHA1" => 5,
        "DSA-NSEC3-SHA1" => 6,
        "RSASHA1-NSEC3-SHA1" => 7,
        "RSASHA256" => 8,
        "RSASHA512" => 10,
        "ECC-GOST" => 12,
        "ECDSAP256SHA256" => 13,
        "ECDSAP384SHA384" => 14,
        "ED25519" => 15,
        "ED448" => 16,
        "INDIRECT" => 252,
        "PRIVATEDNS" => 253,
        "PRIVATEOID" => 254,
        _ => return Err(unknown("algorithm", s)),
    })
}

/// The wire form of `rtype`'s RDATA written as `fields`.
pub fn encode(rt: RecordType, toks: &[Token], origin: &Name) -> R<Vec<u8>> {
    let mut f = Fields::new(toks, origin);
    let mut out = Vec::new();
    // RFC 3597: `\# length hex` for any type.
    if toks.first().is_some_and(|t| t.text == "\\#" && !t.quoted) {
        f.next("\\#")?;
        let len: usize = f.num("length")?;
        let data = hex(&f.joined())?;
        if data.len() != len {
            return Err(SyntaxError::GenericLength {
                said: len,
                found: data.len(),
            });
        }
        return Ok(data);
    }
    let code = u16::from(rt);
    let known = names_and_addresses(code, &mut f, &mut out)?
        || strings_and_opaque(code, &mut f, &mut out)?
        || dnssec(code, &mut f, &mut out)?
        || keys_and_fingerprints(code, &mut f, &mut out, origin)?
        || own_grammar(code, &mut f, &mut out)?
        || super::uncommon::encode(code, &mut f, &mut out)?;
    if !known {
        return Err(SyntaxError::NoPresentationForm(rt));
    }
    f.done()?;
    Ok(out)
}

// Each family below writes the RDATA of the types it knows and answers
// whether `code` was one of them.

/// Addresses, names and numbers: A, AAAA, the name-only types, SOA, the
/// MX family, RP/MINFO, SRV, NAPTR, NSAP-PTR, PX and the ILNP locators.
fn names_and_addresses(code: u16, f: &mut Fields, out: &mut Vec<u8>) -> R<bool> {
    match code {
        1 => {
            let a: Ipv4Addr = f.num("IPv4 address")?;
            out.extend_from_slice(&a.octets());
        }
        28 => {
            let a: Ipv6Addr = f.num("IPv6 address")?;
            out.extend_from_slice(&a.octets());
        }
        // NS CNAME PTR DNAME MB MG MR
        2 | 5 | 12 | 39 | 7 | 8 | 9 => f.name("name", out)?,
        6 => {
            f.name("primary server", out)?;
            f.name("mailbox", out)?;
            out.extend_from_slice(&f.num::<u32>("serial")?.to_be_bytes());
            for what in ["refresh", "retry", "expire", "minimum"] {
                let t = f.text(what)?;
                let v = hickory_proto::serialize::txt::parse_ttl(t).map_err(|_| {
                    SyntaxError::NotATime {
                        what,
                        text: t.to_string(),
                    }
                })?;
                out.extend_from_slice(&v.to_be_bytes());
            }
        }
        // MX AFSDB RT KX
        15 | 18 | 21 | 36 => {
            out.extend_from_slice(&f.num::<u16>("preference")?.to_be_bytes());
            f.name("host", out)?;
        }
        // RP MINFO
        17 | 14 => {
            f.name("mailbox", out)?;
            f.name("text domain", out)?;
        }
        33 => {
            for what in ["priority", "weight", "port"] {
                out.extend_from_slice(&f.num::<u16>(what)?.to_be_bytes());
            }
            f.name("target", out)?;
        }
        35 => {
            out.extend_from_slice(&f.num::<u16>("order")?.to_be_bytes());
            out.extend_from_slice(&f.num::<u16>("preference")?.to_be_bytes());
            f.string("flags", out)?;
            f.string("services", out)?;
            f.string("regexp", out)?;
            f.name("replacement", out)?;
        }
        // NSAP-PTR
        23 => f.name("name", out)?,
        // PX: preference, MAP822, MAPX400
        26 => {
            out.extend_from_slice(&f.num::<u16>("preference")?.to_be_bytes());
            f.name("MAP822", out)?;
            f.name("MAPX400", out)?;
        }
        // NID L64: preference, 64-bit as four 16-bit hex groups
        104 | 106 => {
            out.extend_from_slice(&f.num::<u16>("preference")?.to_be_bytes());
            let t = f.text("locator")?;
            let groups: Vec<&str> = t.split(':').collect();
            if groups.len() != 4 {
                return Err(SyntaxError::Locator(t.to_string()));
            }
            for g in groups {
                let v = u16::from_str_radix(g, 16).map_err(|_| bad("hex", g))?;
                out.extend_from_slice(&v.to_be_bytes());
            }
        }
        // L32: preference, IPv4-style locator
        105 => {
            out.extend_from_slice(&f.num::<u16>("preference")?.to_be_bytes());
            let a: Ipv4Addr = f.num("locator")?;
            out.extend_from_slice(&a.octets());
        }
        // LP: preference, FQDN
        107 => {
            out.extend_from_slice(&f.num::<u16>("preference")?.to_be_bytes());
            f.name("FQDN", out)?;
        }

        _ => return Ok(false),
    }
    Ok(true)
}

/// Character strings and opaque values: TXT/SPF, HINFO, X25, ISDN, CAA,
/// URI, GPOS, NSAP, EUI48/EUI64.
fn strings_and_opaque(code: u16, f: &mut Fields, out: &mut Vec<u8>) -> R<bool> {
    match code {
        // TXT SPF
        16 | 99 => {
            if f.toks.is_empty() {
                return Err(SyntaxError::NoString);
            }
            for t in f.rest() {
                char_string(&t.text, out)?;
            }
        }
        13 => {
            f.string("CPU", out)?;
            f.string("OS", out)?;
        }
        19 => f.string("address", out)?,
        20 => {
            f.string("address", out)?;
            if f.toks.len() > 1 {
                f.string("subaddress", out)?;
            }
        }
        257 => {
            out.push(f.num::<u8>("flags")?);
            let tag = f.text("tag")?;
            out.push(tag.len() as u8);
            out.extend_from_slice(tag.as_bytes());
            let v = f.next("value")?;
            out.extend_from_slice(&unescape(&v.text)?);
        }
        256 => {
            out.extend_from_slice(&f.num::<u16>("priority")?.to_be_bytes());
            out.extend_from_slice(&f.num::<u16>("weight")?.to_be_bytes());
            let t = f.next("target")?;
            out.extend(unescape(&t.text)?);
        }
        // GPOS: longitude, latitude, altitude as strings
        27 => {
            for what in ["longitude", "latitude", "altitude"] {
                f.string(what, out)?;
            }
        }
        22 => {
            let t = f.joined();
            let t = t
                .strip_prefix("0x")
                .or_else(|| t.strip_prefix("0X"))
                .unwrap_or(&t);
            out.extend(hex(&t.replace('.', ""))?);
        }
        108 | 109 => {
            let t = f.text("address")?;
            let want = if code == 108 { 6 } else { 8 };
            let octets = eui(t, want).ok_or_else(|| SyntaxError::Eui {
                text: t.to_string(),
                pairs: want,
            })?;
            out.extend(octets);
        }
        _ => return Ok(false),
    }
    Ok(true)
}

/// An EUI48/EUI64 address read as BIND reads it (`sscanf("%2x-%2x-…")`):
/// `pairs` groups of one or two hex digits separated by `-`; text after
/// the last group is ignored, as BIND ignores it.
fn eui(t: &str, pairs: usize) -> Option<Vec<u8>> {
    let b = t.as_bytes();
    let mut pos = 0;
    let mut out = Vec::with_capacity(pairs);
    for i in 0..pairs {
        if i > 0 {
            (b.get(pos) == Some(&b'-')).then_some(())?;
            pos += 1;
        }
        let digits = b[pos..]
            .iter()
            .take(2)
            .take_while(|c| c.is_ascii_hexdigit())
            .count();
        (digits > 0).then_some(())?;
        out.push(u8::from_str_radix(&t[pos..pos + digits], 16).ok()?);
        pos += digits;
    }
    Some(out)
}

/// DNSSEC: DS and its kin, DNSKEY/KEY, RRSIG/SIG, NSEC, NSEC3(PARAM), NXT,
/// CSYNC, ZONEMD.
fn dnssec(code: u16, f: &mut Fields, out: &mut Vec<u8>) -> R<bool> {
    match code {
        // DS CDS TA DLV
        43 | 59 | 32768 | 32769 => {
            out.extend_from_slice(&f.num::<u16>("key tag")?.to_be_bytes());
            out.push(alg_or_num(f.text("algorithm")?)?);
            out.push(f.num::<u8>("digest type")?);
            out.extend(hex(&f.joined())?);
        }
        // DNSKEY CDNSKEY KEY
        48 | 60 | 25 => {
            out.extend_from_slice(&f.num::<u16>("flags")?.to_be_bytes());
            out.push(f.num::<u8>("protocol")?);
            out.push(alg_or_num(f.text("algorithm")?)?);
            out.extend(b64(&f.joined())?);
        }
        // RRSIG SIG
        46 | 24 => {
            let covered = f.text("type covered")?;
            let rt = rtype(covered).ok_or_else(|| unknown("type covered", covered))?;
            out.extend_from_slice(&u16::from(rt).to_be_bytes());
            out.push(alg_or_num(f.text("algorithm")?)?);
            out.push(f.num::<u8>("labels")?);
            out.extend_from_slice(&f.num::<u32>("original TTL")?.to_be_bytes());
            out.extend_from_slice(&dnssec_time(f.text("expiration")?)?.to_be_bytes());
            out.extend_from_slice(&dnssec_time(f.text("inception")?)?.to_be_bytes());
            out.extend_from_slice(&f.num::<u16>("key tag")?.to_be_bytes());
            f.name("signer", out)?;
            out.extend(b64(&f.joined())?);
        }
        47 => {
            f.name("next name", out)?;
            bitmap(f.rest(), out)?;
        }
        50 => {
            out.push(f.num::<u8>("hash algorithm")?);
            out.push(f.num::<u8>("flags")?);
            out.extend_from_slice(&f.num::<u16>("iterations")?.to_be_bytes());
            let salt = hex(f.text("salt")?)?;
            out.push(salt.len() as u8);
            out.extend(salt);
            let next = f.text("next hashed owner")?;
            let h = BASE32HEX_NOPAD
                .decode(next.to_ascii_uppercase().as_bytes())
                .map_err(|source| SyntaxError::Base32Hex {
                    text: next.to_string(),
                    source,
                })?;
            out.push(h.len() as u8);
            out.extend(h);
            bitmap(f.rest(), out)?;
        }
        51 => {
            out.push(f.num::<u8>("hash algorithm")?);
            out.push(f.num::<u8>("flags")?);
            out.extend_from_slice(&f.num::<u16>("iterations")?.to_be_bytes());
            let salt = hex(f.text("salt")?)?;
            out.push(salt.len() as u8);
            out.extend(salt);
        }
        30 => {
            f.name("next name", out)?;
            // RFC 2535 bit map: bit N set for type N (types < 128).
            let mut bits = [0u8; 16];
            let mut max = 0;
            for t in f.rest() {
                let c = type_code(&t.text)
                    .ok_or_else(|| SyntaxError::UnknownType(t.text.to_string()))?;
                if c >= 128 {
                    return Err(SyntaxError::NxtType);
                }
                bits[c as usize / 8] |= 0x80 >> (c % 8);
                max = max.max(c as usize / 8 + 1);
            }
            out.extend_from_slice(&bits[..max]);
        }
        62 => {
            out.extend_from_slice(&f.num::<u32>("serial")?.to_be_bytes());
            out.extend_from_slice(&f.num::<u16>("flags")?.to_be_bytes());
            bitmap(f.rest(), out)?;
        }
        63 => {
            out.extend_from_slice(&f.num::<u32>("serial")?.to_be_bytes());
            out.push(f.num::<u8>("scheme")?);
            out.push(f.num::<u8>("hash algorithm")?);
            out.extend(hex(&f.joined())?);
        }
        _ => return Ok(false),
    }
    Ok(true)
}

/// Keys and fingerprints outside DNSSEC: SSHFP, TLSA/SMIMEA, CERT,
/// OPENPGPKEY/DHCID, IPSECKEY, HIP.
fn keys_and_fingerprints(code: u16, f: &mut Fields, out: &mut Vec<u8>, origin: &Name) -> R<bool> {
    match code {
        44 => {
            out.push(f.num::<u8>("algorithm")?);
            out.push(f.num::<u8>("fingerprint type")?);
            out.extend(hex(&f.joined())?);
        }
        // TLSA SMIMEA
        52 | 53 => {
            out.push(f.num::<u8>("usage")?);
            out.push(f.num::<u8>("selector")?);
            out.push(f.num::<u8>("matching type")?);
            out.extend(hex(&f.joined())?);
        }
        37 => {
            let t = f.text("certificate type")?;
            let ty: u16 = t.parse().or_else(|_| {
                Ok::<u16, SyntaxError>(match t.to_ascii_uppercase().as_str() {
                    "PKIX" => 1,
                    "SPKI" => 2,
                    "PGP" => 3,
                    "IPKIX" => 4,
                    "ISPKI" => 5,
                    "IPGP" => 6,
                    "ACPKIX" => 7,
                    "IACPKIX" => 8,
                    "URI" => 253,
                    "OID" => 254,
                    _ => return Err(unknown("certificate type", t)),
                })
            })?;
            out.extend_from_slice(&ty.to_be_bytes());
            out.extend_from_slice(&f.num::<u16>("key tag")?.to_be_bytes());
            out.push(alg_or_num(f.text("algorithm")?)?);
            out.extend(b64(&f.joined())?);
        }
        // OPENPGPKEY DHCID
        61 | 49 => out.extend(b64(&f.joined())?),
        45 => {
            out.push(f.num::<u8>("precedence")?);
            let gt: u8 = f.num("gateway type")?;
            out.push(gt);
            out.push(f.num::<u8>("algorithm")?);
            let gw = f.text("gateway")?;
            match gt {
                0 => {}
                1 => out.extend_from_slice(
                    &gw.parse::<Ipv4Addr>()
                        .map_err(|_| bad("gateway", gw))?
                        .octets(),
                ),
                2 => out.extend_from_slice(
                    &gw.parse::<Ipv6Addr>()
                        .map_err(|_| bad("gateway", gw))?
                        .octets(),
                ),
                3 => name_wire(&name(gw, origin)?, out),
                _ => return Err(SyntaxError::GatewayType(gt)),
            }
            out.extend(b64(&f.joined())?);
        }
        55 => {
            let alg: u8 = f.num("algorithm")?;
            let hit = hex(f.text("HIT")?)?;
            let pk = b64(f.text("public key")?)?;
            out.push(hit.len() as u8);
            out.push(alg);
            out.extend_from_slice(&(pk.len() as u16).to_be_bytes());
            out.extend(hit);
            out.extend(pk);
            for t in f.rest() {
                name_wire(&name(&t.text, origin)?, out);
            }
        }
        _ => return Ok(false),
    }
    Ok(true)
}

/// The forms with a grammar of their own ([`super::complex`]) and DSYNC.
fn own_grammar(code: u16, f: &mut Fields, out: &mut Vec<u8>) -> R<bool> {
    match code {
        29 => loc(f, out)?,
        // SVCB HTTPS
        64 | 65 => svcb(f, out)?,
        11 => wks(f, out)?,
        42 => apl(f, out)?,
        // DSYNC: rrtype, scheme, port, target
        66 => {
            let t = f.text("type")?;
            let rt = rtype(t).ok_or_else(|| SyntaxError::UnknownType(t.to_string()))?;
            out.extend_from_slice(&u16::from(rt).to_be_bytes());
            let scheme = f.text("scheme")?;
            out.push(match scheme.to_ascii_uppercase().as_str() {
                "NOTIFY" => 1,
                n => n.parse().map_err(|_| unknown("scheme", scheme))?,
            });
            out.extend_from_slice(&f.num::<u16>("port")?.to_be_bytes());
            f.name("target", out)?;
        }
        _ => return Ok(false),
    }
    Ok(true)
}

#[cfg(test)]
#[path = "rdata_tests.rs"]
mod tests;
