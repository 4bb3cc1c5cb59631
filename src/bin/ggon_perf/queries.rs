//! Query files (the dnsperf/queryperf `name type` format) and their wire form.
//!
//! Every query is encoded exactly once, at start, into one contiguous buffer.
//! Each entry is stored TCP-framed (2-byte length prefix, then the DNS
//! message), so UDP sends the slice after the prefix and TCP the whole thing.
//! The sender patches the 16-bit ID in place just before each send.

use std::str::FromStr;

use hickory_proto::rr::{Name, RecordType};

/// One parsed line of a query file: the owner name in wire form (uncompressed,
/// absolute) and the numeric query type.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Question {
    pub name_wire: Vec<u8>,
    pub qtype: u16,
}

/// A parse error, already carrying `file:line`.
#[derive(Debug, thiserror::Error)]
#[error("{file}:{line}: {problem}")]
pub struct ParseError {
    pub file: String,
    pub line: usize,
    pub problem: LineError,
}

/// What is wrong with one line of a query file.
#[derive(Debug, thiserror::Error)]
pub enum LineError {
    #[error("expected `name type`, found only `{0}`")]
    NoType(String),
    #[error("expected `name type`, found an extra field `{0}`")]
    ExtraField(String),
    #[error("query type `{0}` is out of range")]
    TypeRange(String),
    #[error("unknown query type `{0}`")]
    UnknownType(String),
    #[error("bad name `{name}`: {problem}")]
    Name { name: String, problem: NameProblem },
}

/// Why a query name has no wire form.
#[derive(Debug, thiserror::Error)]
pub enum NameProblem {
    #[error("{0}")]
    Syntax(Box<hickory_proto::ProtoError>),
    #[error("empty label")]
    EmptyLabel,
    #[error("longer than 255 octets")]
    TooLong,
}

/// Parses one line. `Ok(None)` for blank lines and comments (`#` or `;` as the
/// first non-blank character; a later field starting with `#` or `;` starts a
/// trailing comment).
pub fn parse_line(line: &str) -> Result<Option<Question>, LineError> {
    let mut fields = line
        .split_whitespace()
        .take_while(|f| !f.starts_with('#') && !f.starts_with(';'));
    let Some(name) = fields.next() else {
        return Ok(None);
    };
    let Some(qtype) = fields.next() else {
        return Err(LineError::NoType(name.to_string()));
    };
    if let Some(extra) = fields.next() {
        return Err(LineError::ExtraField(extra.to_string()));
    }
    let qtype = parse_type(qtype)?;
    let name_wire = name_to_wire(name)?;
    Ok(Some(Question { name_wire, qtype }))
}

/// Parses a whole query file. `source` names it in error messages.
pub fn parse_file(text: &str, source: &str) -> Result<Vec<Question>, ParseError> {
    let mut out = Vec::new();
    for (i, line) in text.lines().enumerate() {
        match parse_line(line) {
            Ok(Some(q)) => out.push(q),
            Ok(None) => {}
            Err(problem) => {
                return Err(ParseError {
                    file: source.to_string(),
                    line: i + 1,
                    problem,
                })
            }
        }
    }
    Ok(out)
}

/// Mnemonic (any case), `TYPEnnn` (RFC 3597) or `*` for ANY.
pub fn parse_type(s: &str) -> Result<u16, LineError> {
    let upper = s.to_ascii_uppercase();
    if let Some(num) = upper.strip_prefix("TYPE") {
        if !num.is_empty() && num.bytes().all(|b| b.is_ascii_digit()) {
            return num
                .parse::<u16>()
                .map_err(|_| LineError::TypeRange(s.to_string()));
        }
    }
    RecordType::from_str(&upper)
        .map(u16::from)
        .map_err(|_| LineError::UnknownType(s.to_string()))
}

/// Converts a presentation-format name (escapes allowed) into uncompressed
/// wire form. Relative names are taken as absolute, as dnsperf does.
pub fn name_to_wire(s: &str) -> Result<Vec<u8>, LineError> {
    let bad = |problem| LineError::Name {
        name: s.to_string(),
        problem,
    };
    let name = Name::from_ascii(s).map_err(|e| bad(NameProblem::Syntax(Box::new(e))))?;
    let mut wire = Vec::with_capacity(s.len() + 2);
    for label in name.iter() {
        if label.is_empty() {
            return Err(bad(NameProblem::EmptyLabel));
        }
        wire.push(label.len() as u8);
        wire.extend_from_slice(label);
    }
    wire.push(0);
    if wire.len() > 255 {
        return Err(bad(NameProblem::TooLong));
    }
    Ok(wire)
}

/// EDNS0 options applied to every query.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Edns {
    pub enabled: bool,
    pub dnssec_ok: bool,
}

/// UDP payload size advertised in the OPT record (the DNS flag day 2020 value).
pub const EDNS_PAYLOAD: u16 = 1232;

/// Location of one encoded query inside [`WireSet::buf`].
#[derive(Debug, Clone, Copy)]
pub struct WireQuery {
    /// Offset of the 2-byte TCP length prefix; the DNS message starts at `off + 2`.
    pub off: u32,
    /// Length of the DNS message (without the prefix).
    pub len: u16,
    /// Length of the question section (name + type + class).
    pub qlen: u16,
}

/// All queries, encoded once.
pub struct WireSet {
    pub buf: Vec<u8>,
    pub queries: Vec<WireQuery>,
}

impl WireSet {
    pub fn encode(questions: &[Question], edns: Edns) -> WireSet {
        let mut buf = Vec::new();
        let mut queries = Vec::with_capacity(questions.len());
        for q in questions {
            let off = buf.len();
            buf.extend_from_slice(&[0, 0]); // TCP length, filled below
            let arcount: u16 = if edns.enabled { 1 } else { 0 };
            // ID 0 (patched per send), flags: RD, QDCOUNT 1, AN 0, NS 0, AR.
            buf.extend_from_slice(&[0, 0, 0x01, 0x00, 0, 1, 0, 0, 0, 0]);
            buf.extend_from_slice(&arcount.to_be_bytes());
            buf.extend_from_slice(&q.name_wire);
            buf.extend_from_slice(&q.qtype.to_be_bytes());
            buf.extend_from_slice(&1u16.to_be_bytes()); // class IN
            if edns.enabled {
                buf.push(0); // root owner
                buf.extend_from_slice(&41u16.to_be_bytes()); // OPT
                buf.extend_from_slice(&EDNS_PAYLOAD.to_be_bytes());
                // extended RCODE 0, version 0, flags (DO is the top bit).
                let flags: u16 = if edns.dnssec_ok { 0x8000 } else { 0 };
                buf.extend_from_slice(&[0, 0]);
                buf.extend_from_slice(&flags.to_be_bytes());
                buf.extend_from_slice(&[0, 0]); // RDLENGTH
            }
            let len = buf.len() - off - 2;
            buf[off..off + 2].copy_from_slice(&(len as u16).to_be_bytes());
            queries.push(WireQuery {
                off: off as u32,
                len: len as u16,
                qlen: (q.name_wire.len() + 4) as u16,
            });
        }
        WireSet { buf, queries }
    }

    /// The DNS message of query `i` (no TCP prefix).
    #[inline]
    pub fn message(&self, i: usize) -> &[u8] {
        let q = self.queries[i];
        let start = q.off as usize + 2;
        &self.buf[start..start + q.len as usize]
    }

    /// The TCP-framed form of query `i`.
    #[inline]
    pub fn framed(&self, i: usize) -> &[u8] {
        let q = self.queries[i];
        let start = q.off as usize;
        &self.buf[start..start + 2 + q.len as usize]
    }

    /// The question section of query `i`.
    #[inline]
    pub fn question(&self, i: usize) -> &[u8] {
        let q = self.queries[i];
        let start = q.off as usize + 2 + 12;
        &self.buf[start..start + q.qlen as usize]
    }

    /// Writes `id` into query `i`'s header.
    #[inline]
    pub fn set_id(&mut self, i: usize, id: u16) {
        let start = self.queries[i].off as usize + 2;
        self.buf[start..start + 2].copy_from_slice(&id.to_be_bytes());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_names_types_comments_and_blanks() {
        let text = "\
# a comment
www.ggon.org A

  ; dnsperf-style comment
ggon.org.   soa
wiki.ggon.org AAAA   # trailing comment
x.ggon.org TYPE65
. NS
";
        let qs = parse_file(text, "q.txt").unwrap();
        assert_eq!(qs.len(), 5);
        assert_eq!(qs[0].qtype, 1);
        assert_eq!(
            qs[0].name_wire,
            b"\x03www\x04ggon\x03org\x00".to_vec(),
            "relative names are taken as absolute"
        );
        assert_eq!(qs[1].qtype, 6);
        assert_eq!(qs[1].name_wire, b"\x04ggon\x03org\x00".to_vec());
        assert_eq!(qs[2].qtype, 28);
        assert_eq!(qs[3].qtype, 65);
        assert_eq!(qs[4].name_wire, vec![0u8]);
        assert_eq!(qs[4].qtype, 2);
    }

    #[test]
    fn errors_carry_file_and_line() {
        let err = parse_file("www.ggon.org A\n\nbroken\n", "q.txt").unwrap_err();
        assert_eq!(err.line, 3);
        assert!(err.to_string().starts_with("q.txt:3: "), "{err}");

        let err = parse_file("www.ggon.org BOGUS\n", "f").unwrap_err();
        assert_eq!(err.line, 1);
        assert!(matches!(err.problem, LineError::UnknownType(_)), "{err}");
        assert!(err.to_string().contains("unknown query type"), "{err}");

        let err = parse_file("a A\nb A extra\n", "f").unwrap_err();
        assert_eq!(err.line, 2);
        assert!(matches!(err.problem, LineError::ExtraField(_)), "{err}");
        assert!(err.to_string().contains("extra field"), "{err}");

        let long = format!("{}.org A", "a".repeat(64));
        assert!(parse_file(&long, "f").is_err(), "label over 63 octets");
        assert!(parse_file("x TYPE70000", "f").is_err());
    }

    #[test]
    fn encodes_header_question_and_opt() {
        let qs = parse_file("wiki.ggon.org AAAA\nggon.org SOA\n", "f").unwrap();
        let mut set = WireSet::encode(&qs, Edns::default());
        set.set_id(0, 0xbeef);
        let m = set.message(0);
        assert_eq!(&m[..12], &[0xbe, 0xef, 0x01, 0x00, 0, 1, 0, 0, 0, 0, 0, 0]);
        assert_eq!(&m[12..], b"\x04wiki\x04ggon\x03org\x00\x00\x1c\x00\x01");
        assert_eq!(set.question(0), &m[12..]);
        let framed = set.framed(0);
        assert_eq!(u16::from_be_bytes([framed[0], framed[1]]) as usize, m.len());
        assert_eq!(&set.message(1)[..2], &[0, 0], "only query 0 was patched");

        let set = WireSet::encode(
            &qs,
            Edns {
                enabled: true,
                dnssec_ok: true,
            },
        );
        let m = set.message(1);
        assert_eq!(&m[10..12], &[0, 1], "ARCOUNT");
        let opt = &m[12 + set.queries[1].qlen as usize..];
        assert_eq!(opt, &[0, 0, 41, 0x04, 0xd0, 0, 0, 0x80, 0, 0, 0]);
    }
}
