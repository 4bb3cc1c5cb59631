//! The RDATA forms with a grammar of their own: LOC (RFC 1876), SVCB and
//! HTTPS (RFC 9460), WKS (RFC 1035) and APL (RFC 3123).

use std::net::{Ipv4Addr, Ipv6Addr};

use super::error::{EscapeError, SyntaxError};
use super::fields::{b64, Fields};
use super::lexer::unescape;

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

fn apl_part(what: &'static str, item: &str) -> SyntaxError {
    SyntaxError::AplPart {
        what,
        item: item.to_string(),
    }
}

/// LOC (RFC 1876): "d [m [s]] N|S d [m [s]] E|W alt[m] [siz[m] [hp[m] [vp[m]]]]".
pub(super) fn loc(f: &mut Fields, out: &mut Vec<u8>) -> R<()> {
    let toks: Vec<&str> = f.rest().iter().map(|t| t.text.as_ref()).collect();
    let mut i = 0;
    let mut coord = |hemis: [&str; 2]| -> R<u32> {
        let mut parts = [0f64; 3];
        let mut k = 0;
        while i < toks.len() && k < 3 {
            let t = toks[i];
            if hemis.iter().any(|h| t.eq_ignore_ascii_case(h)) {
                break;
            }
            parts[k] = t
                .parse()
                .map_err(|_| SyntaxError::LocValue(t.to_string()))?;
            k += 1;
            i += 1;
        }
        let h = toks.get(i).ok_or(SyntaxError::LocMissing("hemisphere"))?;
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
            .map_err(|_| SyntaxError::LocValue(s.to_string()))
    };
    let alt = meters(toks.get(i).ok_or(SyntaxError::LocMissing("altitude"))?)?;
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
        return Err(SyntaxError::LocTooMany);
    }
    out.extend_from_slice(&[0, size, hp, vp]);
    out.extend_from_slice(&lat.to_be_bytes());
    out.extend_from_slice(&lon.to_be_bytes());
    out.extend_from_slice(&(((alt * 100.0).round() as i64 + 10_000_000) as u32).to_be_bytes());
    Ok(())
}

/// SVCB/HTTPS (RFC 9460): priority, target, then `key[=value]` parameters
/// in any order, written in increasing key order (the wire form requires
/// it). Values may be quoted; lists are comma-separated (`\,` escapes).
pub(super) fn svcb(f: &mut Fields, out: &mut Vec<u8>) -> R<()> {
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
            None => (t.text.to_string(), None),
        };
        // `key="value"` arrives as `key=` then a quoted token.
        if value.as_deref() == Some("") && toks.get(i).is_some_and(|n| n.quoted) {
            value = Some(toks[i].text.to_string());
            i += 1;
        }
        let k = svc_key(&key)?;
        if params.iter().any(|(x, _)| *x == k) {
            return Err(SyntaxError::SvcTwice(key));
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
            .ok_or_else(|| unknown("SvcParam key", k))?,
    })
}

/// A comma-separated list (RFC 9460 A.1), read at two levels as BIND
/// reads it: the value's escapes first (a character string), then, in
/// what they give, `\,` is a comma inside an item and `\\` a backslash.
/// So `h1\\,h2` is the one item `h1,h2`.
fn svc_list(v: &str) -> R<Vec<Vec<u8>>> {
    let bytes = unescape(v)?;
    let mut out = vec![Vec::new()];
    let mut i = 0;
    while i < bytes.len() {
        let item = out.last_mut().expect("one item at least");
        match bytes[i] {
            b'\\' => {
                let b = *bytes.get(i + 1).ok_or(EscapeError::LoneBackslash)?;
                item.push(b);
                i += 2;
            }
            b',' => {
                out.push(Vec::new());
                i += 1;
            }
            b => {
                item.push(b);
                i += 1;
            }
        }
    }
    Ok(out)
}

fn svc_value(key: u16, v: Option<&str>) -> R<Vec<u8>> {
    let need = |v: Option<&'_ str>| -> R<String> {
        v.map(str::to_string).ok_or(SyntaxError::SvcNeedsValue(key))
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
                    return Err(SyntaxError::AlpnLength);
                }
                out.push(id.len() as u8);
                out.extend(id);
            }
        }
        2 | 8 => {
            if v.is_some_and(|x| !x.is_empty()) {
                return Err(SyntaxError::SvcTakesNoValue(key));
            }
        }
        3 => out.extend_from_slice(
            &need(v)?
                .parse::<u16>()
                .map_err(|_| SyntaxError::SvcPort)?
                .to_be_bytes(),
        ),
        4 => {
            for a in need(v)?.split(',') {
                let a: Ipv4Addr = a.parse().map_err(|_| bad("ipv4hint", a))?;
                out.extend_from_slice(&a.octets());
            }
        }
        5 => out.extend(b64(&need(v)?)?),
        6 => {
            for a in need(v)?.split(',') {
                let a: Ipv6Addr = a.parse().map_err(|_| bad("ipv6hint", a))?;
                out.extend_from_slice(&a.octets());
            }
        }
        _ => out.extend(unescape(v.unwrap_or(""))?),
    }
    Ok(out)
}

/// WKS (RFC 1035 3.4.2): address, protocol, services (numbers or names).
pub(super) fn wks(f: &mut Fields, out: &mut Vec<u8>) -> R<()> {
    let a: Ipv4Addr = f.num("address")?;
    out.extend_from_slice(&a.octets());
    let p = f.text("protocol")?;
    let proto: u8 = match p.to_ascii_lowercase().as_str() {
        "tcp" => 6,
        "udp" => 17,
        n => n.parse().map_err(|_| unknown("protocol", p))?,
    };
    out.push(proto);
    let mut bits: Vec<u8> = Vec::new();
    for t in f.rest() {
        let port: u16 = match t.text.parse() {
            Ok(n) => n,
            Err(_) => {
                super::services::port(proto, &t.text).ok_or_else(|| unknown("service", &t.text))?
            }
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
pub(super) fn apl(f: &mut Fields, out: &mut Vec<u8>) -> R<()> {
    for t in f.rest() {
        let (neg, item) = match t.text.strip_prefix('!') {
            Some(x) => (true, x),
            None => (false, t.text.as_ref()),
        };
        let (afi, rest) = item.split_once(':').ok_or_else(|| bad("APL item", item))?;
        let (addr, prefix) = rest.split_once('/').ok_or_else(|| bad("APL item", item))?;
        let prefix: u8 = prefix.parse().map_err(|_| apl_part("prefix", item))?;
        let (afi, mut bytes): (u16, Vec<u8>) = match afi {
            "1" => (
                1,
                addr.parse::<Ipv4Addr>()
                    .map_err(|_| apl_part("address", item))?
                    .octets()
                    .to_vec(),
            ),
            "2" => (
                2,
                addr.parse::<Ipv6Addr>()
                    .map_err(|_| apl_part("address", item))?
                    .octets()
                    .to_vec(),
            ),
            _ => return Err(SyntaxError::AplFamily(item.to_string())),
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
