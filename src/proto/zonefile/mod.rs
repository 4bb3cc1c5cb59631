//! Master files (RFC 1035 5) as BIND reads them: ggon's own parser layer.
//!
//! Why our own: hickory-proto's parser refuses whole zones for one record
//! of a type it does not know (DNAME, LOC, AFSDB, `TYPEnnn`, …) or of a
//! DNSSEC type, does not know `$GENERATE` or `\#`, needs `$TTL`, reads
//! `\DDD` as octal and loses the origin of relative SVCB targets. Here:
//! - [`lexer`] turns text into entries (parentheses, quotes, comments);
//! - this module handles the directives (`$ORIGIN`, `$TTL`, `$INCLUDE`
//!   relative to the including file and at most 8 deep, `$GENERATE`) and
//!   the owner/TTL/class/type fields (the owner repeats when a line starts
//!   blank; TTL and class in either order; without `$TTL` the last
//!   explicit TTL, else the SOA minimum, with a warning, as BIND does);
//! - [`rdata`] turns each type's RDATA into wire form, which is then read
//!   back with hickory-proto, so the rest of ggond sees ordinary records
//!   and RDATA it does not interpret is kept byte for byte.
//!
//! Every problem is reported with `file:line`, all of them, not only the
//! first. It must not know about serving: [`super::zone`] checks and holds
//! the result.

mod complex;
mod error;
mod fields;
mod halves;
mod lexer;
mod names;
pub mod rdata;
mod services;
mod uncommon;

use std::borrow::Cow;
use std::path::{Path, PathBuf};

use hickory_proto::rr::{DNSClass, Name, RData, Record, RecordType};
use hickory_proto::serialize::binary::{BinDecoder, BinEncodable, Restrict};

pub use error::{
    lines, EscapeError, FileError, GenerateError, LexProblem, NameProblem, SyntaxError,
};
use lexer::{Entry, Token};

/// What a master file holds, and what deserved a word.
#[derive(Debug, Default)]
pub struct Parsed {
    /// The records in file order: these, then [`Self::rest`].
    pub records: Vec<Record>,
    /// The records of the file's second half when it was parsed in two
    /// (see [`halves`]), else none. Kept apart: appending them to
    /// `records` moved 140 MB at a million records.
    pub rest: Vec<Record>,
    pub warnings: Vec<String>,
}

impl Parsed {
    /// Every record, in file order.
    pub fn iter(&self) -> impl Iterator<Item = &Record> {
        self.records.iter().chain(&self.rest)
    }
}

/// Parse master-file `text` (from `path`, for messages and `$INCLUDE`).
/// On failure every error found, each with its file and line.
pub fn parse(text: &str, path: Option<&Path>, origin: &Name) -> Result<Parsed, Vec<FileError>> {
    parse_with_ttl(text, path, origin, None)
}

/// [`parse`] with a TTL for records that give none, as if the text began
/// with `$TTL ttl` (files with no SOA to take one from, like BIND's `.key`).
pub fn parse_with_ttl(
    text: &str,
    path: Option<&Path>,
    origin: &Name,
    ttl: Option<u32>,
) -> Result<Parsed, Vec<FileError>> {
    let mut p = State::new(origin.clone(), ttl);
    let file = path
        .map(|p| p.display().to_string())
        .unwrap_or_else(|| "zone".into());
    p.file(text, &file, path.and_then(Path::parent), 0);
    if p.errors.is_empty() {
        Ok(p.out)
    } else {
        Err(p.errors)
    }
}

struct State {
    origin: Name,
    default_ttl: Option<u32>,
    last_ttl: Option<u32>,
    soa_minimum: Option<u32>,
    last_owner: Option<Name>,
    out: Parsed,
    errors: Vec<FileError>,
    warned_ttl: bool,
}

const MAX_INCLUDE_DEPTH: usize = 8;

impl State {
    /// The state at a file's start, under `origin` and with `default_ttl`
    /// as if `$TTL` had set it.
    fn new(origin: Name, default_ttl: Option<u32>) -> State {
        State {
            origin,
            default_ttl,
            last_ttl: None,
            soa_minimum: None,
            last_owner: None,
            out: Parsed::default(),
            errors: Vec::new(),
            warned_ttl: false,
        }
    }

    fn file(&mut self, text: &str, file: &str, dir: Option<&Path>, depth: usize) {
        let entries = match lexer::entries(text) {
            Ok(e) => e,
            Err(e) => {
                self.error(file, e.line, e.problem.into());
                return;
            }
        };
        self.entries(&entries, file, dir, depth);
    }

    fn error(&mut self, file: &str, line: usize, error: SyntaxError) {
        self.errors.push(FileError {
            file: file.to_string(),
            line,
            error,
        });
    }

    fn entry(&mut self, e: &Entry, dir: Option<&Path>, depth: usize) -> Result<(), SyntaxError> {
        if e.is_directive() {
            return self.directive(e, dir, depth);
        }
        let (owner, rest) = if e.blank_owner {
            let owner = self.last_owner.clone().ok_or(SyntaxError::NoOwner)?;
            (owner, &e.tokens[..])
        } else {
            (
                rdata::name(&e.tokens[0].text, &self.origin)?,
                &e.tokens[1..],
            )
        };
        self.last_owner = Some(owner.clone());
        self.record(owner, rest)
    }

    fn record(&mut self, owner: Name, toks: &[Token]) -> Result<(), SyntaxError> {
        let mut ttl = None;
        let mut class = None;
        let mut i = 0;
        let rtype = loop {
            let t = toks.get(i).ok_or(SyntaxError::Missing("type"))?;
            i += 1;
            if ttl.is_none() && t.text.starts_with(|c: char| c.is_ascii_digit()) {
                ttl = Some(
                    hickory_proto::serialize::txt::parse_ttl(&t.text)
                        .map_err(|_| SyntaxError::Ttl(t.text.to_string()))?,
                );
                continue;
            }
            if class.is_none() {
                if let Some(c) = parse_class(&t.text) {
                    class = Some(c);
                    continue;
                }
            }
            break rdata::rtype(&t.text)
                .ok_or_else(|| SyntaxError::UnknownType(t.text.to_string()))?;
        };
        let class = class.unwrap_or(DNSClass::IN);
        let wire =
            rdata::encode(rtype, &toks[i..], &self.origin).map_err(|e| SyntaxError::Rdata {
                rtype,
                source: Box::new(e),
            })?;
        if rtype == RecordType::SOA && wire.len() >= 4 {
            let n = wire.len();
            self.soa_minimum = Some(u32::from_be_bytes(wire[n - 4..].try_into().unwrap()));
        }
        let ttl = match ttl {
            Some(t) => {
                self.last_ttl = Some(t);
                t
            }
            None => match (self.default_ttl, self.last_ttl, self.soa_minimum) {
                (Some(t), _, _) => t,
                (None, Some(t), _) => {
                    self.warn_ttl(
                        "no $TTL: records without a TTL take the last explicit one, as BIND does",
                    );
                    t
                }
                (None, None, Some(t)) => {
                    self.warn_ttl(&format!(
                        "no $TTL and no TTL given: using the SOA minimum ({t})"
                    ));
                    // BIND: an SOA that takes its minimum this way sets the
                    // default, as a `$TTL` would (later explicit TTLs do
                    // not carry over to records without one).
                    if rtype == RecordType::SOA {
                        self.default_ttl = Some(t);
                    }
                    t
                }
                (None, None, None) => return Err(SyntaxError::NoTtl),
            },
        };
        let data = decode(rtype, &wire)?;
        let mut rec = Record::from_rdata(owner, ttl, data);
        rec.dns_class = class;
        self.out.records.push(rec);
        Ok(())
    }

    fn warn_ttl(&mut self, w: &str) {
        if !self.warned_ttl {
            self.warned_ttl = true;
            self.out.warnings.push(w.to_string());
        }
    }

    fn directive(
        &mut self,
        e: &Entry,
        dir: Option<&Path>,
        depth: usize,
    ) -> Result<(), SyntaxError> {
        let args: Vec<&str> = e.tokens[1..].iter().map(|t| t.text.as_ref()).collect();
        let needs = |directive, what| SyntaxError::DirectiveArgument { directive, what };
        match e.tokens[0].text.to_ascii_uppercase().as_str() {
            "$ORIGIN" => {
                let o = args.first().ok_or(needs("$ORIGIN", "a name"))?;
                self.origin = rdata::name(o, &self.origin)?;
            }
            "$TTL" => {
                let t = args.first().ok_or(needs("$TTL", "a value"))?;
                self.default_ttl = Some(
                    hickory_proto::serialize::txt::parse_ttl(t)
                        .map_err(|_| SyntaxError::Ttl(t.to_string()))?,
                );
            }
            "$INCLUDE" => {
                if depth >= MAX_INCLUDE_DEPTH {
                    return Err(SyntaxError::IncludeDepth(MAX_INCLUDE_DEPTH));
                }
                let f = args.first().ok_or(needs("$INCLUDE", "a file"))?;
                // Relative to the including file; failing that, to the
                // directory ggond runs in (where BIND and NSD look).
                let path: PathBuf = match dir {
                    Some(d) if Path::new(f).is_relative() && d.join(f).exists() => d.join(f),
                    _ => PathBuf::from(f),
                };
                let text = read_text(&path).map_err(|source| SyntaxError::Include {
                    path: path.clone(),
                    source,
                })?;
                let saved = (self.origin.clone(), self.last_owner.clone());
                if let Some(o) = args.get(1) {
                    self.origin = rdata::name(o, &self.origin)?;
                }
                let inc = path.display().to_string();
                self.file(&text, &inc, path.parent(), depth + 1);
                (self.origin, self.last_owner) = saved;
            }
            "$GENERATE" => self.generate(&e.tokens[1..])?,
            other => return Err(SyntaxError::UnknownDirective(other.to_string())),
        }
        Ok(())
    }

    /// BIND's `$GENERATE start-stop[/step] lhs [ttl] [class] type rhs`.
    fn generate(&mut self, toks: &[Token]) -> Result<(), SyntaxError> {
        let needs = |what| SyntaxError::DirectiveArgument {
            directive: "$GENERATE",
            what,
        };
        let number = |what| GenerateError::BadNumber(what);
        let range = toks.first().ok_or(needs("a range"))?;
        let (span, step) = match range.text.split_once('/') {
            Some((s, st)) => (s, st.parse::<u32>().map_err(|_| number("step"))?),
            None => (range.text.as_ref(), 1),
        };
        let (a, b) = span.split_once('-').ok_or(GenerateError::NotARange)?;
        let (a, b): (u32, u32) = (
            a.parse().map_err(|_| number("start"))?,
            b.parse().map_err(|_| number("stop"))?,
        );
        if b < a || step == 0 || (b - a) / step > 65_535 {
            return Err(GenerateError::RangeSize.into());
        }
        let rest = &toks[1..];
        if rest.len() < 3 {
            return Err(needs("lhs, type and rhs"));
        }
        let mut i = a;
        while i <= b {
            let subst: Vec<Token> = rest
                .iter()
                .map(|t| {
                    Ok(Token {
                        text: Cow::Owned(substitute(&t.text, i)?),
                        quoted: t.quoted,
                    })
                })
                .collect::<Result<_, GenerateError>>()?;
            let owner = rdata::name(&subst[0].text, &self.origin)?;
            self.record(owner, &subst[1..])?;
            i = match i.checked_add(step) {
                Some(n) => n,
                None => break,
            };
        }
        Ok(())
    }
}

/// A master file's text. Bytes above 127 become `\DDD` escapes, which the
/// parser turns back into the same bytes wherever data can hold them (zone
/// files are bytes, not necessarily UTF-8).
pub fn read_text(path: &Path) -> std::io::Result<String> {
    let bytes = std::fs::read(path)?;
    Ok(bytes_to_text(&bytes))
}

pub fn bytes_to_text(bytes: &[u8]) -> String {
    if bytes.is_ascii() {
        return String::from_utf8_lossy(bytes).into_owned();
    }
    let mut s = String::with_capacity(bytes.len() + 16);
    for &b in bytes {
        if b < 0x80 {
            s.push(b as char);
        } else {
            s.push_str(&format!("\\{b:03}"));
        }
    }
    s
}

/// BIND's nibble form (master.c `nibbles`): hex digits lowest first,
/// dot-separated, until the value is used up and `width` characters (the
/// dots counted) are written; it is not cut to `width`.
fn nibbles(mut value: u32, mut width: usize, upper: bool) -> String {
    let mut out = String::new();
    loop {
        let digit = char::from_digit(value & 0xF, 16).expect("a nibble");
        out.push(if upper {
            digit.to_ascii_uppercase()
        } else {
            digit
        });
        value >>= 4;
        width = width.saturating_sub(1);
        if width > 0 || value != 0 {
            out.push('.');
            width = width.saturating_sub(1);
        }
        if value == 0 && width == 0 {
            return out;
        }
    }
}

/// `$` → the counter; `${offset,width,base}`; `\$` → a literal `$`.
fn substitute(s: &str, n: u32) -> Result<String, GenerateError> {
    let b = s.as_bytes();
    let mut out = String::new();
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b'\\' if b.get(i + 1) == Some(&b'$') => {
                out.push('$');
                i += 2;
            }
            b'$' if b.get(i + 1) == Some(&b'{') => {
                let end = s[i..].find('}').ok_or(GenerateError::OpenBrace)? + i;
                let inner: Vec<&str> = s[i + 2..end].split(',').collect();
                let off: i64 = inner
                    .first()
                    .filter(|x| !x.is_empty())
                    .map_or(Ok(0), |x| x.parse())
                    .map_err(|_| GenerateError::BadNumber("offset"))?;
                let width: usize = inner
                    .get(1)
                    .map_or(Ok(0), |x| x.parse())
                    .map_err(|_| GenerateError::BadNumber("width"))?;
                // As BIND computes it: a C int, printed as unsigned but
                // for `d`.
                let v = (i64::from(n) + off) as i32;
                let u = v as u32;
                let text = match inner.get(2).copied().unwrap_or("d") {
                    "d" => format!("{v:0width$}"),
                    "o" => format!("{u:0width$o}"),
                    "x" => format!("{u:0width$x}"),
                    "X" => format!("{u:0width$X}"),
                    // Nibbles, lowest first, dot-separated (reverse zones).
                    m @ ("n" | "N") => nibbles(u, width, m == "N"),
                    other => return Err(GenerateError::Base(other.to_string())),
                };
                out.push_str(&text);
                i = end + 1;
            }
            b'$' => {
                out.push_str(&n.to_string());
                i += 1;
            }
            _ => {
                let c = s[i..].chars().next().unwrap();
                out.push(c);
                i += c.len_utf8();
            }
        }
    }
    Ok(out)
}

fn parse_class(s: &str) -> Option<DNSClass> {
    match s.to_ascii_uppercase().as_str() {
        "IN" => Some(DNSClass::IN),
        "CH" => Some(DNSClass::CH),
        "HS" => Some(DNSClass::HS),
        "NONE" => Some(DNSClass::NONE),
        "ANY" => Some(DNSClass::ANY),
        u => u
            .strip_prefix("CLASS")
            .and_then(|n| n.parse::<u16>().ok())
            .map(DNSClass::from),
    }
}

/// Wire RDATA → hickory-proto's record data. A type hickory-proto reads but
/// would not write back byte for byte is kept as opaque data, so that what
/// the file says is what is served and transferred.
pub fn decode(rtype: RecordType, wire: &[u8]) -> Result<RData, SyntaxError> {
    let opaque = || RData::Unknown {
        code: rtype,
        // `NULL::with` insists on data; empty RDATA is legal (`\# 0`).
        rdata: if wire.is_empty() {
            hickory_proto::rr::rdata::NULL::new()
        } else {
            hickory_proto::rr::rdata::NULL::with(wire.to_vec())
        },
    };
    if wire.is_empty() {
        return Ok(opaque());
    }
    let len = u16::try_from(wire.len()).map_err(|_| SyntaxError::RdataTooLong)?;
    let read = |w: &[u8]| {
        let len = u16::try_from(w.len()).ok()?;
        RData::read(&mut BinDecoder::new(w), rtype, Restrict::new(len)).ok()
    };
    let _ = len;
    // Typed when hickory-proto writes it back to the same value (names may
    // then be compressed on the wire, as RFC 1035 types allow); opaque when
    // its reading loses or changes something.
    match read(wire) {
        Some(rd) if rd.to_bytes().ok().and_then(|b| read(&b)).as_ref() == Some(&rd) => Ok(rd),
        _ => Ok(opaque()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn origin() -> Name {
        Name::from_ascii("example.").unwrap()
    }

    #[test]
    fn bind_style_defaults_generate_and_every_error_reported() {
        let text = "@ 3600 IN SOA ns1 h 1 2 3 4 300\n  NS ns1\nns1 A 192.0.2.1\n\
                    $GENERATE 1-3 host$ A 10.0.0.$\n$GENERATE 1-2/1 r${10,3,x} CNAME host$\n";
        let p = parse(text, None, &origin()).unwrap();
        assert_eq!(p.records.len(), 3 + 3 + 2);
        assert!(p.records.iter().all(|r| r.ttl == 3600), "last explicit TTL");
        assert!(p.warnings[0].contains("$TTL"));
        assert!(p
            .records
            .iter()
            .any(|r| r.name.to_string() == "r00b.example."));
        let errs = parse(
            "a A 1.2.3\nb BOGUS x\n$TTL 60\nc TXT \"ok\"\nd MX x y\n",
            None,
            &origin(),
        )
        .unwrap_err();
        assert_eq!(errs.len(), 3, "{errs:?}");
        let errs: Vec<String> = errs.iter().map(ToString::to_string).collect();
        assert!(errs[0].starts_with("zone:1: A:"), "{errs:?}");
        assert!(
            errs[1].starts_with("zone:2: unknown type `BOGUS`"),
            "{errs:?}"
        );
        assert!(errs[2].starts_with("zone:5: MX:"), "{errs:?}");
    }

    #[test]
    fn includes_are_relative_to_the_including_file_and_bounded() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("sub.zone"), "www A 192.0.2.80\n").unwrap();
        std::fs::write(dir.path().join("loop.zone"), "$INCLUDE loop.zone\n").unwrap();
        let main = dir.path().join("main.zone");
        let text = "$TTL 60\n@ SOA ns1 h 1 2 3 4 5\n$INCLUDE sub.zone sub\nafter A 192.0.2.2\n";
        let p = parse(text, Some(&main), &origin()).unwrap();
        let names: Vec<String> = p.records.iter().map(|r| r.name.to_string()).collect();
        assert!(names.contains(&"www.sub.example.".to_string()));
        assert!(
            names.contains(&"after.example.".to_string()),
            "origin restored"
        );
        let errs = parse("$INCLUDE loop.zone\n", Some(&main), &origin()).unwrap_err();
        assert!(
            errs[0].to_string().contains("nested more than 8"),
            "{errs:?}"
        );
    }

    #[test]
    fn dnssec_and_unknown_types_load_and_keep_their_bytes() {
        let text = "$TTL 60\n@ SOA ns1 h 1 2 3 4 5\n\
            @ DNSKEY 257 3 13 mdsswUyr3DPW132mOi8V9xESWE8jTo0dxCjjnopKl+GqJxpVXckHAeF+KkxLbxILfDLUT0rAK9iUzy1L53eKGQ==\n\
            @ RRSIG SOA 13 1 60 20260101000000 20251201000000 12345 example. AAAA\n\
            @ NSEC3PARAM 1 0 0 -\n\
            x TYPE65534 \\# 4 0a000001\n\
            d DNAME target.example.\n";
        let p = parse(text, None, &origin()).unwrap();
        let t: Vec<u16> = p
            .records
            .iter()
            .map(|r| u16::from(r.record_type()))
            .collect();
        assert_eq!(t, [6, 48, 46, 51, 65534, 39]);
        let x = &p.records[4];
        assert_eq!(x.data.to_bytes().unwrap(), [10, 0, 0, 1]);
        // Empty RDATA in the generic form (it once panicked inside hickory-proto).
        let p = parse(
            "$TTL 60\n@ SOA ns1 h 1 2 3 4 5\ne TYPE65534 \\# 0\n",
            None,
            &origin(),
        )
        .unwrap();
        assert!(p.records[1].data.to_bytes().unwrap().is_empty());
    }

    #[test]
    fn generate_modifiers_compute_as_bind() {
        // Nibbles until the value is used up and `width` characters
        // (dots counted) are written; a negative value as a 32-bit one.
        assert_eq!(substitute("${0,3,n}", 1024).unwrap(), "0.0.4");
        assert_eq!(substitute("${0,1,n}", 1024).unwrap(), "0.0.4");
        assert_eq!(substitute("${0,6,N}", 0xab).unwrap(), "B.A.0.");
        assert_eq!(substitute("${-2000,0,n}", 1024).unwrap(), "0.3.c.f.f.f.f.f");
        assert_eq!(substitute("${-2000,0,d}", 1024).unwrap(), "-976");
        assert_eq!(substitute("${0,4,x}", 1024).unwrap(), "0400");
    }

    #[test]
    fn without_ttl_the_soa_minimum_is_a_default_and_explicit_ttls_carry() {
        let ttls = |text: &str| -> Vec<u32> {
            let p = parse(text, None, &origin()).unwrap();
            p.records.iter().map(|r| r.ttl).collect()
        };
        // SOA without TTL: its minimum (3) is the default from then on.
        let t = ttls("@ SOA ns h 1 2 3 4 3\na TXT x\nb 2 TXT x\nc TXT x\n");
        assert_eq!(t, [3, 3, 2, 3]);
        // SOA with one: the last explicit TTL carries over (RFC 1035).
        let t = ttls("@ 1 SOA ns h 1 2 3 4 3\na TXT x\nb 2 TXT x\nc TXT x\n");
        assert_eq!(t, [1, 1, 2, 2]);
    }
}
