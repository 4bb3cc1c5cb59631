//! RDATA in presentation form → wire form, per type (RFC 1035, 3596, 4034,
//! 5155, 6672, 7553, 8659, 9460, … and RFC 3597's `\# len hex` for any type).
//!
//! Why our own: hickory-proto's master-file parser refuses DNSSEC and many
//! other types, reads `\DDD` as octal, and loses the origin of relative
//! names in SVCB targets. Encoding straight to wire keeps every byte as
//! written (names keep their case); the caller then decodes the wire with
//! hickory-proto, so the rest of ggond sees ordinary records.

use std::net::{Ipv4Addr, Ipv6Addr};
use std::str::FromStr;

use data_encoding::{BASE32HEX_NOPAD, BASE64, HEXLOWER_PERMISSIVE};
use hickory_proto::rr::{Name, RecordType};

use super::lexer::{unescape, Token};

type R<T> = Result<T, String>;

/// A name in presentation form (`@`, relative or absolute, `\X` and decimal
/// `\DDD` escapes), case kept.
pub fn name(s: &str, origin: &Name) -> R<Name> {
    if s == "@" {
        return Ok(origin.clone());
    }
    if s == "." {
        return Ok(Name::root());
    }
    let b = s.as_bytes();
    let mut labels: Vec<Vec<u8>> = Vec::new();
    let mut cur = Vec::new();
    let mut absolute = false;
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b'\\' => {
                if i + 4 <= b.len() && b[i + 1..i + 4].iter().all(u8::is_ascii_digit) {
                    let v: u16 = s[i + 1..i + 4].parse().unwrap_or(999);
                    if v > 255 {
                        return Err(format!("`{s}`: `\\{v}` is not a byte"));
                    }
                    cur.push(v as u8);
                    i += 4;
                } else if i + 1 < b.len() {
                    cur.push(b[i + 1]);
                    i += 2;
                } else {
                    return Err(format!("`{s}`: a lone `\\` at the end"));
                }
            }
            b'.' => {
                if cur.is_empty() {
                    return Err(format!("`{s}`: empty label"));
                }
                labels.push(std::mem::take(&mut cur));
                i += 1;
                if i == b.len() {
                    absolute = true;
                }
            }
            c => {
                cur.push(c);
                i += 1;
            }
        }
    }
    if !cur.is_empty() {
        labels.push(cur);
    }
    if let Some(l) = labels.iter().find(|l| l.len() > 63) {
        return Err(format!("`{s}`: a label of {} octets (63 at most)", l.len()));
    }
    let mut n = Name::from_labels(labels.iter().map(|l| l.as_slice()))
        .map_err(|e| format!("`{s}`: {e}"))?;
    if !absolute {
        n = n.append_domain(origin).map_err(|e| format!("`{s}`: {e}"))?;
    }
    n.set_fqdn(true);
    Ok(n)
}

/// A name in uncompressed wire form, case kept.
pub fn name_wire(n: &Name, out: &mut Vec<u8>) {
    for l in n.iter() {
        out.push(l.len() as u8);
        out.extend_from_slice(l);
    }
    out.push(0);
}

/// A type mnemonic or `TYPEnnn`.
pub fn rtype(s: &str) -> Option<RecordType> {
    let up = s.to_ascii_uppercase();
    if let Some(n) = up.strip_prefix("TYPE") {
        return n.parse::<u16>().ok().map(RecordType::from);
    }
    match RecordType::from_str(&up) {
        Ok(RecordType::Unknown(_)) | Err(_) => match up.as_str() {
            "DNAME" => Some(RecordType::DNAME),
            "SPF" => Some(RecordType::from(99)),
            "AFSDB" => Some(RecordType::from(18)),
            "RP" => Some(RecordType::from(17)),
            "LOC" => Some(RecordType::from(29)),
            "RT" => Some(RecordType::from(21)),
            "KX" => Some(RecordType::from(36)),
            "X25" => Some(RecordType::from(19)),
            "ISDN" => Some(RecordType::from(20)),
            "NSAP" => Some(RecordType::from(22)),
            "NXT" => Some(RecordType::from(30)),
            "EUI48" => Some(RecordType::from(108)),
            "EUI64" => Some(RecordType::from(109)),
            "URI" => Some(RecordType::from(256)),
            "ZONEMD" => Some(RecordType::from(63)),
            "IPSECKEY" => Some(RecordType::from(45)),
            "HIP" => Some(RecordType::from(55)),
            "DHCID" => Some(RecordType::from(49)),
            "MB" => Some(RecordType::from(7)),
            "MG" => Some(RecordType::from(8)),
            "MR" => Some(RecordType::from(9)),
            "MINFO" => Some(RecordType::from(14)),
            "TA" => Some(RecordType::from(32768)),
            "DLV" => Some(RecordType::from(32769)),
            "SMIMEA" => Some(RecordType::SMIMEA),
            "CDS" => Some(RecordType::CDS),
            "CDNSKEY" => Some(RecordType::CDNSKEY),
            "WKS" => Some(RecordType::from(11)),
            "NSAP-PTR" => Some(RecordType::from(23)),
            "PX" => Some(RecordType::from(26)),
            "GPOS" => Some(RecordType::from(27)),
            "APL" => Some(RecordType::from(42)),
            "DSYNC" => Some(RecordType::from(66)),
            "NID" => Some(RecordType::from(104)),
            "L32" => Some(RecordType::from(105)),
            "L64" => Some(RecordType::from(106)),
            "LP" => Some(RecordType::from(107)),
            _ => None,
        },
        Ok(t) => Some(t),
    }
}

/// A cursor over a record's RDATA tokens.
pub struct Fields<'a> {
    toks: &'a [Token],
    pos: usize,
    origin: &'a Name,
}

impl<'a> Fields<'a> {
    pub fn new(toks: &'a [Token], origin: &'a Name) -> Self {
        Fields {
            toks,
            pos: 0,
            origin,
        }
    }
    fn next(&mut self, what: &str) -> R<&'a Token> {
        let t = self
            .toks
            .get(self.pos)
            .ok_or_else(|| format!("missing {what}"))?;
        self.pos += 1;
        Ok(t)
    }
    fn text(&mut self, what: &str) -> R<&'a str> {
        Ok(&self.next(what)?.text)
    }
    fn rest(&mut self) -> &'a [Token] {
        let r = &self.toks[self.pos..];
        self.pos = self.toks.len();
        r
    }
    fn done(&self) -> R<()> {
        match self.toks.get(self.pos) {
            None => Ok(()),
            Some(t) => Err(format!("unexpected `{}` after the record data", t.text)),
        }
    }
    fn num<T: FromStr>(&mut self, what: &str) -> R<T> {
        let t = self.text(what)?;
        t.parse()
            .map_err(|_| format!("{what} `{t}` is not a valid number"))
    }
    fn name(&mut self, what: &str, out: &mut Vec<u8>) -> R<()> {
        let t = self.text(what)?;
        name_wire(&name(t, self.origin)?, out);
        Ok(())
    }
    fn string(&mut self, what: &str, out: &mut Vec<u8>) -> R<()> {
        let t = self.next(what)?;
        char_string(&t.text, out)
    }
    /// The remaining tokens joined (base64/hex may be split by spaces).
    fn joined(&mut self) -> String {
        self.rest().iter().map(|t| t.text.as_str()).collect()
    }
}

fn char_string(s: &str, out: &mut Vec<u8>) -> R<()> {
    let b = unescape(s)?;
    if b.len() > 255 {
        return Err(format!(
            "a character string of {} octets (255 at most)",
            b.len()
        ));
    }
    out.push(b.len() as u8);
    out.extend_from_slice(&b);
    Ok(())
}

fn hex(s: &str) -> R<Vec<u8>> {
    if s == "-" {
        return Ok(Vec::new());
    }
    HEXLOWER_PERMISSIVE
        .decode(s.as_bytes())
        .map_err(|e| format!("bad hex `{s}`: {e}"))
}

fn b64(s: &str) -> R<Vec<u8>> {
    BASE64
        .decode(s.as_bytes())
        .map_err(|e| format!("bad base64: {e}"))
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
        s.parse::<u32>()
            .map_err(|_| format!("bad DNSSEC time `{s}`"))
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
        codes.push(
            type_code(&t.text)
                .ok_or_else(|| format!("unknown type `{}` in the bit map", t.text))?,
        );
    }
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
        _ => return Err(format!("unknown algorithm `{s}`")),
    })
}

/// LOC (RFC 1876): "d [m [s]] N|S d [m [s]] E|W alt[m] [siz[m] [hp[m] [vp[m]]]]".
fn loc(f: &mut Fields, out: &mut Vec<u8>) -> R<()> {
    let toks: Vec<&str> = f.rest().iter().map(|t| t.text.as_str()).collect();
    let mut i = 0;
    let mut coord = |hemis: [&str; 2]| -> R<u32> {
        let mut parts = [0f64; 3];
        let mut k = 0;
        while i < toks.len() && k < 3 {
            let t = toks[i];
            if hemis.iter().any(|h| t.eq_ignore_ascii_case(h)) {
                break;
            }
            parts[k] = t.parse().map_err(|_| format!("LOC: bad `{t}`"))?;
            k += 1;
            i += 1;
        }
        let h = toks.get(i).ok_or("LOC: missing hemisphere")?;
        i += 1;
        let ms = ((parts[0] * 3600.0 + parts[1] * 60.0 + parts[2]) * 1000.0).round() as i64;
        let v = if h.eq_ignore_ascii_case(hemis[0]) {
            ms
        } else {
            -ms
        };
        Ok((2_147_483_648i64 + v) as u32)
    };
    let lat = coord(["N", "S"])?;
    let lon = coord(["E", "W"])?;
    let meters = |s: &str| -> R<f64> {
        s.trim_end_matches(['m', 'M'])
            .parse::<f64>()
            .map_err(|_| format!("LOC: bad `{s}`"))
    };
    let alt = meters(toks.get(i).ok_or("LOC: missing altitude")?)?;
    i += 1;
    let prec = |s: Option<&&str>, default: f64| -> R<u8> {
        let cm = match s {
            Some(s) => meters(s)? * 100.0,
            None => default,
        };
        let mut e = 0u8;
        let mut m = cm.round() as u64;
        while m >= 10 && e < 9 {
            m /= 10;
            e += 1;
        }
        Ok(((m.min(9) as u8) << 4) | e)
    };
    let size = prec(toks.get(i), 100.0)?;
    let hp = prec(toks.get(i + 1), 1_000_000.0)?;
    let vp = prec(toks.get(i + 2), 1000.0)?;
    if toks.len() > i + 3 {
        return Err("LOC: too many fields".into());
    }
    out.extend_from_slice(&[0, size, hp, vp]);
    out.extend_from_slice(&lat.to_be_bytes());
    out.extend_from_slice(&lon.to_be_bytes());
    out.extend_from_slice(&(((alt * 100.0).round() as i64 + 10_000_000) as u32).to_be_bytes());
    Ok(())
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
            return Err(format!("\\# says {len} octets but {} follow", data.len()));
        }
        return Ok(data);
    }
    let code = u16::from(rt);
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
        2 | 5 | 12 | 39 | 7 | 8 | 9 => f.name("name", &mut out)?,
        6 => {
            f.name("primary server", &mut out)?;
            f.name("mailbox", &mut out)?;
            out.extend_from_slice(&f.num::<u32>("serial")?.to_be_bytes());
            for what in ["refresh", "retry", "expire", "minimum"] {
                let t = f.text(what)?;
                let v = hickory_proto::serialize::txt::parse_ttl(t)
                    .map_err(|_| format!("{what} `{t}` is not a valid time"))?;
                out.extend_from_slice(&v.to_be_bytes());
            }
        }
        // MX AFSDB RT KX
        15 | 18 | 21 | 36 => {
            out.extend_from_slice(&f.num::<u16>("preference")?.to_be_bytes());
            f.name("host", &mut out)?;
        }
        // TXT SPF
        16 | 99 => {
            if toks.is_empty() {
                return Err("TXT needs at least one string".into());
            }
            for t in f.rest() {
                char_string(&t.text, &mut out)?;
            }
        }
        13 => {
            f.string("CPU", &mut out)?;
            f.string("OS", &mut out)?;
        }
        19 => f.string("address", &mut out)?,
        20 => {
            f.string("address", &mut out)?;
            if f.toks.len() > 1 {
                f.string("subaddress", &mut out)?;
            }
        }
        // RP MINFO
        17 | 14 => {
            f.name("mailbox", &mut out)?;
            f.name("text domain", &mut out)?;
        }
        33 => {
            for what in ["priority", "weight", "port"] {
                out.extend_from_slice(&f.num::<u16>(what)?.to_be_bytes());
            }
            f.name("target", &mut out)?;
        }
        35 => {
            out.extend_from_slice(&f.num::<u16>("order")?.to_be_bytes());
            out.extend_from_slice(&f.num::<u16>("preference")?.to_be_bytes());
            f.string("flags", &mut out)?;
            f.string("services", &mut out)?;
            f.string("regexp", &mut out)?;
            f.name("replacement", &mut out)?;
        }
        257 => {
            out.push(f.num::<u8>("flags")?);
            let tag = f.text("tag")?;
            out.push(tag.len() as u8);
            out.extend_from_slice(tag.as_bytes());
            let v = f.next("value")?;
            out.extend_from_slice(&unescape(&v.text)?);
        }
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
            let rt = rtype(covered).ok_or_else(|| format!("unknown type covered `{covered}`"))?;
            out.extend_from_slice(&u16::from(rt).to_be_bytes());
            out.push(alg_or_num(f.text("algorithm")?)?);
            out.push(f.num::<u8>("labels")?);
            out.extend_from_slice(&f.num::<u32>("original TTL")?.to_be_bytes());
            out.extend_from_slice(&dnssec_time(f.text("expiration")?)?.to_be_bytes());
            out.extend_from_slice(&dnssec_time(f.text("inception")?)?.to_be_bytes());
            out.extend_from_slice(&f.num::<u16>("key tag")?.to_be_bytes());
            f.name("signer", &mut out)?;
            out.extend(b64(&f.joined())?);
        }
        47 => {
            f.name("next name", &mut out)?;
            bitmap(f.rest(), &mut out)?;
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
                .map_err(|e| format!("bad base32hex `{next}`: {e}"))?;
            out.push(h.len() as u8);
            out.extend(h);
            bitmap(f.rest(), &mut out)?;
        }
        51 => {
            out.push(f.num::<u8>("hash algorithm")?);
            out.push(f.num::<u8>("flags")?);
            out.extend_from_slice(&f.num::<u16>("iterations")?.to_be_bytes());
            let salt = hex(f.text("salt")?)?;
            out.push(salt.len() as u8);
            out.extend(salt);
        }
        37 => {
            let t = f.text("certificate type")?;
            let ty: u16 = t.parse().or_else(|_| {
                Ok::<u16, String>(match t.to_ascii_uppercase().as_str() {
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
                    _ => return Err(format!("unknown certificate type `{t}`")),
                })
            })?;
            out.extend_from_slice(&ty.to_be_bytes());
            out.extend_from_slice(&f.num::<u16>("key tag")?.to_be_bytes());
            out.push(alg_or_num(f.text("algorithm")?)?);
            out.extend(b64(&f.joined())?);
        }
        // OPENPGPKEY DHCID
        61 | 49 => out.extend(b64(&f.joined())?),
        29 => loc(&mut f, &mut out)?,
        256 => {
            out.extend_from_slice(&f.num::<u16>("priority")?.to_be_bytes());
            out.extend_from_slice(&f.num::<u16>("weight")?.to_be_bytes());
            let t = f.next("target")?;
            out.extend(unescape(&t.text)?);
        }
        108 | 109 => {
            let t = f.text("address")?;
            let parts: Vec<&str> = t.split('-').collect();
            let want = if code == 108 { 6 } else { 8 };
            if parts.len() != want || parts.iter().any(|p| p.is_empty() || p.len() > 2) {
                return Err(format!("`{t}`: {want} hex pairs separated by `-`"));
            }
            for p in parts {
                out.push(u8::from_str_radix(p, 16).map_err(|_| format!("bad hex `{p}`"))?);
            }
        }
        63 => {
            out.extend_from_slice(&f.num::<u32>("serial")?.to_be_bytes());
            out.push(f.num::<u8>("scheme")?);
            out.push(f.num::<u8>("hash algorithm")?);
            out.extend(hex(&f.joined())?);
        }
        62 => {
            out.extend_from_slice(&f.num::<u32>("serial")?.to_be_bytes());
            out.extend_from_slice(&f.num::<u16>("flags")?.to_be_bytes());
            bitmap(f.rest(), &mut out)?;
        }
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
                        .map_err(|_| format!("bad gateway `{gw}`"))?
                        .octets(),
                ),
                2 => out.extend_from_slice(
                    &gw.parse::<Ipv6Addr>()
                        .map_err(|_| format!("bad gateway `{gw}`"))?
                        .octets(),
                ),
                3 => name_wire(&name(gw, origin)?, &mut out),
                _ => return Err(format!("unknown gateway type {gt}")),
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
                name_wire(&name(&t.text, origin)?, &mut out);
            }
        }
        22 => {
            let t = f.joined();
            let t = t.strip_prefix("0x").or_else(|| t.strip_prefix("0X")).unwrap_or(&t);
            out.extend(hex(&t.replace('.', ""))?);
        }
        30 => {
            f.name("next name", &mut out)?;
            // RFC 2535 bit map: bit N set for type N (types < 128).
            let mut bits = [0u8; 16];
            let mut max = 0;
            for t in f.rest() {
                let c = type_code(&t.text).ok_or_else(|| format!("unknown type `{}`", t.text))?;
                if c >= 128 {
                    return Err("NXT bit maps hold types below 128".into());
                }
                bits[c as usize / 8] |= 0x80 >> (c % 8);
                max = max.max(c as usize / 8 + 1);
            }
            out.extend_from_slice(&bits[..max]);
        }
        // SVCB HTTPS
        64 | 65 => svcb(&mut f, &mut out)?,
        // NSAP-PTR
        23 => f.name("name", &mut out)?,
        // PX: preference, MAP822, MAPX400
        26 => {
            out.extend_from_slice(&f.num::<u16>("preference")?.to_be_bytes());
            f.name("MAP822", &mut out)?;
            f.name("MAPX400", &mut out)?;
        }
        // GPOS: longitude, latitude, altitude as strings
        27 => {
            for what in ["longitude", "latitude", "altitude"] {
                f.string(what, &mut out)?;
            }
        }
        11 => wks(&mut f, &mut out)?,
        42 => apl(&mut f, &mut out)?,
        // DSYNC: rrtype, scheme, port, target
        66 => {
            let t = f.text("type")?;
            let rt = rtype(t).ok_or_else(|| format!("unknown type `{t}`"))?;
            out.extend_from_slice(&u16::from(rt).to_be_bytes());
            let scheme = f.text("scheme")?;
            out.push(match scheme.to_ascii_uppercase().as_str() {
                "NOTIFY" => 1,
                n => n.parse().map_err(|_| format!("unknown scheme `{scheme}`"))?,
            });
            out.extend_from_slice(&f.num::<u16>("port")?.to_be_bytes());
            f.name("target", &mut out)?;
        }
        // NID L64: preference, 64-bit as four 16-bit hex groups
        104 | 106 => {
            out.extend_from_slice(&f.num::<u16>("preference")?.to_be_bytes());
            let t = f.text("locator")?;
            let groups: Vec<&str> = t.split(':').collect();
            if groups.len() != 4 {
                return Err(format!("`{t}`: four 16-bit hex groups separated by `:`"));
            }
            for g in groups {
                let v = u16::from_str_radix(g, 16).map_err(|_| format!("bad hex `{g}`"))?;
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
            f.name("FQDN", &mut out)?;
        }
        _ => {
            return Err(format!(
                "type {rt} cannot be written in presentation form here; use the generic form `\\# LENGTH HEX` (RFC 3597)"
            ))
        }
    }
    f.done()?;
    Ok(out)
}

/// SVCB/HTTPS (RFC 9460): priority, target, then `key[=value]` parameters
/// in any order, written in increasing key order (the wire form requires
/// it). Values may be quoted; lists are comma-separated (`\,` escapes).
fn svcb(f: &mut Fields, out: &mut Vec<u8>) -> R<()> {
    out.extend_from_slice(&f.num::<u16>("priority")?.to_be_bytes());
    f.name("target", out)?;
    let toks = f.rest();
    let mut params: Vec<(u16, Vec<u8>)> = Vec::new();
    let mut i = 0;
    while i < toks.len() {
        let t = &toks[i];
        i += 1;
        let (key, mut value) = match t.text.split_once('=') {
            Some((k, v)) => (k.to_string(), Some(v.to_string())),
            None => (t.text.clone(), None),
        };
        // `key="value"` arrives as `key=` then a quoted token.
        if value.as_deref() == Some("") && toks.get(i).is_some_and(|n| n.quoted) {
            value = Some(toks[i].text.clone());
            i += 1;
        }
        let k = svc_key(&key)?;
        if params.iter().any(|(x, _)| *x == k) {
            return Err(format!("parameter `{key}` given twice"));
        }
        params.push((k, svc_value(k, value.as_deref())?));
    }
    params.sort_by_key(|(k, _)| *k);
    for (k, v) in params {
        out.extend_from_slice(&k.to_be_bytes());
        out.extend_from_slice(&(v.len() as u16).to_be_bytes());
        out.extend(v);
    }
    Ok(())
}

fn svc_key(k: &str) -> R<u16> {
    Ok(match k.to_ascii_lowercase().as_str() {
        "mandatory" => 0,
        "alpn" => 1,
        "no-default-alpn" => 2,
        "port" => 3,
        "ipv4hint" => 4,
        "ech" => 5,
        "ipv6hint" => 6,
        "dohpath" => 7,
        "ohttp" => 8,
        other => other
            .strip_prefix("key")
            .and_then(|n| n.parse().ok())
            .ok_or_else(|| format!("unknown SvcParam key `{k}`"))?,
    })
}

/// A comma-separated list; `\,` is a comma inside an item (RFC 9460 A.1).
fn svc_list(v: &str) -> R<Vec<Vec<u8>>> {
    let mut out = vec![Vec::new()];
    for (byte, escaped) in unescape_flagged(v)? {
        if byte == b',' && !escaped {
            out.push(Vec::new());
        } else {
            out.last_mut().expect("one item at least").push(byte);
        }
    }
    Ok(out)
}

/// Decode `\X` and `\DDD`, saying for each byte whether it was escaped.
fn unescape_flagged(s: &str) -> R<Vec<(u8, bool)>> {
    let b = s.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'\\' {
            if i + 4 <= b.len() && b[i + 1..i + 4].iter().all(u8::is_ascii_digit) {
                let v: u16 = s[i + 1..i + 4].parse().unwrap_or(999);
                if v > 255 {
                    return Err(format!("`\\{v}` is not a byte"));
                }
                out.push((v as u8, true));
                i += 4;
            } else if i + 1 < b.len() {
                out.push((b[i + 1], true));
                i += 2;
            } else {
                return Err("a lone `\\` at the end".into());
            }
        } else {
            out.push((b[i], false));
            i += 1;
        }
    }
    Ok(out)
}

fn svc_value(key: u16, v: Option<&str>) -> R<Vec<u8>> {
    let need = |v: Option<&'_ str>| -> R<String> {
        v.map(str::to_string)
            .ok_or_else(|| format!("SvcParam key{key} needs a value"))
    };
    let mut out = Vec::new();
    match key {
        0 => {
            let mut keys = Vec::new();
            for k in need(v)?.split(',') {
                keys.push(svc_key(k)?);
            }
            keys.sort_unstable();
            for k in keys {
                out.extend_from_slice(&k.to_be_bytes());
            }
        }
        1 => {
            for id in svc_list(&need(v)?)? {
                if id.is_empty() || id.len() > 255 {
                    return Err("an alpn id is 1 to 255 octets".into());
                }
                out.push(id.len() as u8);
                out.extend(id);
            }
        }
        2 | 8 => {
            if v.is_some_and(|x| !x.is_empty()) {
                return Err(format!("SvcParam key{key} takes no value"));
            }
        }
        3 => out.extend_from_slice(
            &need(v)?
                .parse::<u16>()
                .map_err(|_| "port is a number".to_string())?
                .to_be_bytes(),
        ),
        4 => {
            for a in need(v)?.split(',') {
                let a: Ipv4Addr = a.parse().map_err(|_| format!("bad ipv4hint `{a}`"))?;
                out.extend_from_slice(&a.octets());
            }
        }
        5 => out.extend(b64(&need(v)?)?),
        6 => {
            for a in need(v)?.split(',') {
                let a: Ipv6Addr = a.parse().map_err(|_| format!("bad ipv6hint `{a}`"))?;
                out.extend_from_slice(&a.octets());
            }
        }
        _ => out.extend(unescape(v.unwrap_or(""))?),
    }
    Ok(out)
}

/// WKS (RFC 1035 3.4.2): address, protocol, services (numbers or names).
fn wks(f: &mut Fields, out: &mut Vec<u8>) -> R<()> {
    let a: Ipv4Addr = f.num("address")?;
    out.extend_from_slice(&a.octets());
    let p = f.text("protocol")?;
    let proto: u8 = match p.to_ascii_lowercase().as_str() {
        "tcp" => 6,
        "udp" => 17,
        n => n.parse().map_err(|_| format!("unknown protocol `{p}`"))?,
    };
    out.push(proto);
    let mut bits: Vec<u8> = Vec::new();
    for t in f.rest() {
        let port: u16 = match t.text.to_ascii_lowercase().as_str() {
            "domain" => 53,
            "smtp" => 25,
            "http" | "www" => 80,
            "ftp" => 21,
            "telnet" => 23,
            "ssh" => 22,
            "pop3" => 110,
            "imap" => 143,
            "https" => 443,
            "ntp" => 123,
            n => n
                .parse()
                .map_err(|_| format!("unknown service `{}`", t.text))?,
        };
        let byte = port as usize / 8;
        if bits.len() <= byte {
            bits.resize(byte + 1, 0);
        }
        bits[byte] |= 0x80 >> (port % 8);
    }
    out.extend(bits);
    Ok(())
}

/// APL (RFC 3123): `[!]afi:address/prefix` items.
fn apl(f: &mut Fields, out: &mut Vec<u8>) -> R<()> {
    for t in f.rest() {
        let (neg, item) = match t.text.strip_prefix('!') {
            Some(x) => (true, x),
            None => (false, t.text.as_str()),
        };
        let (afi, rest) = item
            .split_once(':')
            .ok_or_else(|| format!("bad APL item `{item}`"))?;
        let (addr, prefix) = rest
            .split_once('/')
            .ok_or_else(|| format!("bad APL item `{item}`"))?;
        let prefix: u8 = prefix
            .parse()
            .map_err(|_| format!("bad prefix in `{item}`"))?;
        let (afi, mut bytes): (u16, Vec<u8>) = match afi {
            "1" => (
                1,
                addr.parse::<Ipv4Addr>()
                    .map_err(|_| format!("bad address in `{item}`"))?
                    .octets()
                    .to_vec(),
            ),
            "2" => (
                2,
                addr.parse::<Ipv6Addr>()
                    .map_err(|_| format!("bad address in `{item}`"))?
                    .octets()
                    .to_vec(),
            ),
            _ => return Err(format!("unknown APL family in `{item}`")),
        };
        while bytes.last() == Some(&0) {
            bytes.pop();
        }
        out.extend_from_slice(&afi.to_be_bytes());
        out.push(prefix);
        out.push((bytes.len() as u8) | if neg { 0x80 } else { 0 });
        out.extend(bytes);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn toks(s: &str) -> Vec<Token> {
        super::super::lexer::entries(&format!("x {s}\n")).unwrap()[0].tokens[1..].to_vec()
    }

    fn enc(t: &str, s: &str) -> R<Vec<u8>> {
        let origin = Name::from_ascii("example.").unwrap();
        encode(rtype(t).unwrap(), &toks(s), &origin)
    }

    #[test]
    fn names_use_decimal_escapes_keep_case_and_take_the_origin() {
        let o = Name::from_ascii("example.").unwrap();
        let n = name("A\\046b\\.c", &o).unwrap();
        let labels: Vec<&[u8]> = n.iter().collect();
        assert_eq!(labels, [&b"A.b.c"[..], b"example"]);
        assert_eq!(name("@", &o).unwrap(), o);
        assert!(name("a..b", &o).is_err());
        assert!(name(&"x".repeat(64), &o).is_err());
    }

    #[test]
    fn types_hickory_refuses_encode() {
        assert_eq!(enc("DNAME", "Other.").unwrap(), b"\x05Other\x00");
        assert_eq!(enc("TYPE65534", "\\# 4 0a000001").unwrap(), [10, 0, 0, 1]);
        assert!(enc("TYPE65534", "\\# 3 0a000001").is_err());
        assert_eq!(
            enc("AFSDB", "1 db").unwrap(),
            b"\x00\x01\x02db\x07example\x00"
        );
        let ds = enc("DS", "60485 5 1 2BB183AF5F22588179A53B0A 98631FAD1A292118").unwrap();
        assert_eq!(&ds[..4], &[0xec, 0x45, 5, 1]);
        assert_eq!(ds.len(), 4 + 20);
        let nsec = enc("NSEC", "host.example. A MX RRSIG NSEC TYPE1234").unwrap();
        // RFC 4034 4.3's example bit map, plus window 4.
        let mut want = vec![0x00, 0x06, 0x40, 0x01, 0x00, 0x00, 0x00, 0x03, 0x04, 0x1b];
        want.extend([0u8; 26]);
        want.push(0x20);
        assert!(nsec.ends_with(&want), "{nsec:?}");
        assert_eq!(dnssec_time("20260101000000").unwrap(), 1_767_225_600);
        assert_eq!(
            enc("EUI48", "00-00-5e-00-53-2a").unwrap(),
            [0, 0, 0x5e, 0, 0x53, 0x2a]
        );
        assert_eq!(enc("TXT", "\"a b\" c\\065").unwrap(), b"\x03a b\x02cA");
        assert!(enc("A", "1.2.3.4 5").is_err());
    }

    #[test]
    fn loc_matches_rfc1876_example() {
        // The example of RFC 1876 (section 3), known wire values.
        let w = enc("LOC", "42 21 54 N 71 06 18 W -24m 30m").unwrap();
        assert_eq!(&w[..4], &[0, 0x33, 0x16, 0x13]);
        assert_eq!(
            u32::from_be_bytes(w[4..8].try_into().unwrap()),
            2_147_483_648 + 152_514_000
        );
        assert_eq!(
            u32::from_be_bytes(w[8..12].try_into().unwrap()),
            2_147_483_648 - 255_978_000
        );
        assert_eq!(
            u32::from_be_bytes(w[12..16].try_into().unwrap()),
            10_000_000 - 2400
        );
    }

    #[test]
    fn svcb_targets_are_absolute_and_params_sorted() {
        let w = enc("HTTPS", "1 svc alpn=h2 port=8443").unwrap();
        let out_of_order = enc("HTTPS", "1 svc port=8443 alpn=h2").unwrap();
        assert_eq!(w, out_of_order);
        assert!(w.windows(13).any(|x| x == b"\x03svc\x07example\x00"));
    }
}
