//! Types BIND 9.18 reads in presentation form that few zones hold:
//! WALLET, RESINFO, AVC and NINFO (character strings, as TXT), HHIT and
//! BRID (base64), EID and NIMLOC (hex), ATMA, A6, TALINK, SINK, RKEY,
//! AMTRELAY and DOA. ggond serves them as opaque data; only their text
//! form is read here, as BIND writes it.

use std::net::{Ipv4Addr, Ipv6Addr};

use super::error::SyntaxError;
use super::fields::{b64, char_string, hex, Fields};

type R<T> = Result<T, SyntaxError>;

/// The type codes, for [`super::names::rtype`].
pub(super) const MNEMONICS: &[(&str, u16)] = &[
    ("EID", 31),
    ("NIMLOC", 32),
    ("ATMA", 34),
    ("A6", 38),
    ("SINK", 40),
    ("NINFO", 56),
    ("RKEY", 57),
    ("TALINK", 58),
    ("HHIT", 67),
    ("BRID", 68),
    ("UINFO", 100),
    ("UID", 101),
    ("GID", 102),
    ("UNSPEC", 103),
    ("AVC", 258),
    ("DOA", 259),
    ("AMTRELAY", 260),
    ("RESINFO", 261),
    ("WALLET", 262),
];

/// Write the RDATA of `code` if it is one of these types.
pub(super) fn encode(code: u16, f: &mut Fields, out: &mut Vec<u8>) -> R<bool> {
    match code {
        // NINFO AVC RESINFO WALLET: one or more character strings.
        56 | 258 | 261 | 262 => {
            if f.toks.is_empty() {
                return Err(SyntaxError::NoString);
            }
            for t in f.rest() {
                char_string(&t.text, out)?;
            }
        }
        // HHIT BRID
        67 | 68 => out.extend(b64(&f.joined())?),
        // EID NIMLOC
        31 | 32 => out.extend(hex(&f.joined())?),
        34 => atma(f, out)?,
        38 => a6(f, out)?,
        58 => {
            f.name("previous name", out)?;
            f.name("next name", out)?;
        }
        40 => {
            for what in ["meaning", "coding", "subcoding"] {
                out.push(f.num::<u8>(what)?);
            }
            out.extend(b64(&f.joined())?);
        }
        57 => {
            out.extend_from_slice(&f.num::<u16>("flags")?.to_be_bytes());
            out.push(f.num::<u8>("protocol")?);
            out.push(f.num::<u8>("algorithm")?);
            out.extend(b64(&f.joined())?);
        }
        260 => amtrelay(f, out)?,
        259 => {
            out.extend_from_slice(&f.num::<u32>("enterprise")?.to_be_bytes());
            out.extend_from_slice(&f.num::<u32>("type")?.to_be_bytes());
            out.push(f.num::<u8>("location")?);
            f.string("media type", out)?;
            let data = f.joined();
            if data != "-" {
                out.extend(b64(&data)?);
            }
        }
        _ => return Ok(false),
    }
    Ok(true)
}

/// ATMA (ATM Forum): `+digits` is E.164 (format 1), else hex NSAP (0).
fn atma(f: &mut Fields, out: &mut Vec<u8>) -> R<()> {
    let t = f.text("address")?;
    match t.strip_prefix('+') {
        Some(digits) if digits.bytes().all(|c| c.is_ascii_digit()) => {
            out.push(1);
            out.extend_from_slice(digits.as_bytes());
        }
        Some(_) => {
            return Err(SyntaxError::Bad {
                what: "E.164 address",
                text: t.to_string(),
            })
        }
        None => {
            out.push(0);
            out.extend(hex(&t.replace('.', ""))?);
        }
    }
    Ok(())
}

/// A6 (RFC 2874): prefix length, the address suffix (the octets the
/// prefix does not cover), then the prefix name when the length is not 0.
fn a6(f: &mut Fields, out: &mut Vec<u8>) -> R<()> {
    let prefix = f.num::<u8>("prefix length")?;
    if prefix > 128 {
        return Err(SyntaxError::Bad {
            what: "prefix length",
            text: prefix.to_string(),
        });
    }
    out.push(prefix);
    if prefix < 128 {
        let a: Ipv6Addr = f.num("address suffix")?;
        let octets = (128 - usize::from(prefix)).div_ceil(8);
        out.extend_from_slice(&a.octets()[16 - octets..]);
    }
    if prefix > 0 {
        f.name("prefix name", out)?;
    }
    Ok(())
}

/// AMTRELAY (RFC 8777): precedence, discovery bit, relay type, relay.
fn amtrelay(f: &mut Fields, out: &mut Vec<u8>) -> R<()> {
    out.push(f.num::<u8>("precedence")?);
    let d = f.num::<u8>("discovery optional")?;
    let kind = f.num::<u8>("relay type")?;
    if d > 1 || kind > 3 {
        return Err(SyntaxError::Bad {
            what: "AMTRELAY discovery bit or type",
            text: format!("{d} {kind}"),
        });
    }
    out.push((d << 7) | kind);
    match kind {
        0 => {
            // BIND writes "." for no relay; nothing goes on the wire.
            if f.toks.len() > 3 {
                f.text("relay")?;
            }
        }
        1 => out.extend_from_slice(&f.num::<Ipv4Addr>("IPv4 relay")?.octets()),
        2 => out.extend_from_slice(&f.num::<Ipv6Addr>("IPv6 relay")?.octets()),
        _ => f.name("relay", out)?,
    }
    Ok(())
}
