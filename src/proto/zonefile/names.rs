//! Names and type mnemonics in presentation form.

use std::str::FromStr;

use hickory_proto::rr::{Name, RecordType};

use super::error::{EscapeError, NameProblem, SyntaxError};

type R<T> = Result<T, SyntaxError>;

/// A name in presentation form (`@`, relative or absolute, `\X` and decimal
/// `\DDD` escapes), case kept.
pub fn name(s: &str, origin: &Name) -> R<Name> {
    if s == "@" {
        return Ok(origin.clone());
    }
    if s == "." {
        return Ok(Name::root());
    }
    if !s.is_empty() && !s.contains('\\') {
        return plain(s, origin);
    }
    escaped(s, origin)
}

/// [`name`] for text without escapes, nearly every name of a large file:
/// the labels borrowed from the text and the origin's appended in the same
/// construction. The general path's vector per label and second copy for
/// the origin were a sixth of a million-record file's parse (perf).
fn plain(s: &str, origin: &Name) -> R<Name> {
    let body = s.strip_suffix('.');
    let labels = || body.unwrap_or(s).split('.');
    if labels().any(str::is_empty) {
        return Err(SyntaxError::name(s, NameProblem::EmptyLabel));
    }
    if let Some(l) = labels().find(|l| l.len() > 63) {
        return Err(SyntaxError::name(s, NameProblem::LongLabel(l.len())));
    }
    let own = labels().map(str::as_bytes);
    let n = match body {
        Some(_) => Name::from_labels(own),
        None => Name::from_labels(own.chain(origin.iter())),
    };
    let mut n = n.map_err(|e| SyntaxError::name(s, e))?;
    n.set_fqdn(true);
    Ok(n)
}

/// [`name`] in general: `\X` and `\DDD` escapes.
fn escaped(s: &str, origin: &Name) -> R<Name> {
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
                        return Err(SyntaxError::name(s, EscapeError::NotAByte(v)));
                    }
                    cur.push(v as u8);
                    i += 4;
                } else if i + 1 < b.len() {
                    cur.push(b[i + 1]);
                    i += 2;
                } else {
                    return Err(SyntaxError::name(s, EscapeError::LoneBackslash));
                }
            }
            b'.' => {
                if cur.is_empty() {
                    return Err(SyntaxError::name(s, NameProblem::EmptyLabel));
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
        return Err(SyntaxError::name(s, NameProblem::LongLabel(l.len())));
    }
    let mut n = Name::from_labels(labels.iter().map(|l| l.as_slice()))
        .map_err(|e| SyntaxError::name(s, e))?;
    if !absolute {
        n = n
            .append_domain(origin)
            .map_err(|e| SyntaxError::name(s, e))?;
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
            u => super::uncommon::MNEMONICS
                .iter()
                .find(|(m, _)| *m == u)
                .map(|(_, c)| RecordType::from(*c)),
        },
        Ok(t) => Some(t),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The fast path gives what the general one gives, names and errors.
    #[test]
    fn plain_names_as_the_general_path_reads_them() {
        let origin = Name::from_ascii("Example.ORG.").unwrap();
        let long = "x".repeat(64);
        let deep = vec!["abcdefghij"; 30].join(".");
        for s in [
            "a",
            "A.b",
            "a.b.",
            "www.Example.com.",
            "*",
            "*.w",
            "..",
            "a..b",
            ".a",
            "a..",
            "a.",
            &long,
            &deep,
            "-._x",
            "h999999.ggon",
        ] {
            let (p, e) = (plain(s, &origin), escaped(s, &origin));
            match (&p, &e) {
                (Ok(a), Ok(b)) => {
                    assert!(a.eq_case(b) && a.is_fqdn() == b.is_fqdn(), "{s}: {a} {b}")
                }
                (Err(a), Err(b)) => assert_eq!(a.to_string(), b.to_string(), "{s}"),
                _ => panic!("{s}: {p:?} against {e:?}"),
            }
        }
    }
}
