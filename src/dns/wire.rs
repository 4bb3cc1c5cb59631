//! Query parsing: header, question and EDNS(0), straight from the packet bytes.
//!
//! Owns: deciding whether a packet is a well-formed query, and extracting what
//! the answer depends on (ID, flags, lowercased question name, type, class,
//! EDNS). It reads only what a query needs and allocates nothing, because it
//! runs for every packet. It must not look anything up or build responses.

use crate::proto::codes::rtype;
use crate::snapshot::QName;

pub const HEADER_LEN: usize = 12;

/// An OPT record without options (root owner, type, class, TTL, RDLENGTH).
pub const OPT_LEN: usize = 11;

/// EDNS(0) fields from the query's OPT record.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Edns {
    pub payload: u16,
    pub version: u8,
    pub do_bit: bool,
    /// The EDNS Client Subnet option's data (RFC 7871), as (offset in
    /// the packet, length); read by [`super::ecs`] where ECS is allowed.
    pub ecs: Option<(u16, u16)>,
}

/// A parsed query. `question` ends at `question_end` in the packet, so a
/// response can echo the question bytes (and the client's case) unchanged.
pub struct Query {
    pub id: u16,
    pub flags: u16,
    pub opcode: u8,
    pub qname: QName,
    pub qtype: u16,
    pub qclass: u16,
    pub question_end: usize,
    pub edns: Option<Edns>,
    /// The additional section holds a TSIG record (signed request).
    pub tsig: bool,
}

/// Why a packet is not a usable query.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reject {
    /// Not worth an answer: too short for a header, or a response (QR=1).
    Drop,
    /// Header readable, rest malformed: answer FORMERR.
    FormErr,
}

fn u16_at(p: &[u8], i: usize) -> Option<u16> {
    Some(u16::from_be_bytes([*p.get(i)?, *p.get(i + 1)?]))
}

/// Parse a question name starting at `pos` (no compression allowed in the
/// question), lowercasing into `q`. Returns the offset after the name.
pub(super) fn parse_qname(p: &[u8], mut pos: usize, q: &mut QName) -> Result<usize, Reject> {
    let mut len = 0usize;
    let mut labels = 0usize;
    loop {
        let l = *p.get(pos).ok_or(Reject::FormErr)? as usize;
        if l == 0 {
            if len + 1 > 255 {
                return Err(Reject::FormErr);
            }
            q.wire[len] = 0;
            q.starts[labels] = len as u8;
            q.len = len + 1;
            q.nlabels = labels;
            return Ok(pos + 1);
        }
        if l > 63 || labels >= 127 || len + 1 + l + 1 > 255 {
            // Label length > 63 also rejects compression pointers (0xC0) and
            // the obsolete extended label types.
            return Err(Reject::FormErr);
        }
        let label = p.get(pos + 1..pos + 1 + l).ok_or(Reject::FormErr)?;
        q.starts[labels] = len as u8;
        q.wire[len] = l as u8;
        for (dst, src) in q.wire[len + 1..len + 1 + l].iter_mut().zip(label) {
            *dst = src.to_ascii_lowercase();
        }
        len += 1 + l;
        labels += 1;
        pos += 1 + l;
    }
}

/// Skip a (possibly compressed) name in a non-question section.
fn skip_name(p: &[u8], mut pos: usize) -> Result<usize, Reject> {
    for _ in 0..128 {
        let l = *p.get(pos).ok_or(Reject::FormErr)?;
        match l {
            0 => return Ok(pos + 1),
            1..=63 => pos += 1 + l as usize,
            0xC0..=0xFF => {
                p.get(pos + 1).ok_or(Reject::FormErr)?;
                return Ok(pos + 2);
            }
            _ => return Err(Reject::FormErr),
        }
    }
    Err(Reject::FormErr)
}

/// Parse a query packet.
pub fn parse_query(p: &[u8]) -> Result<Query, Reject> {
    if p.len() < HEADER_LEN {
        return Err(Reject::Drop);
    }
    let id = u16_at(p, 0).unwrap();
    let flags = u16_at(p, 2).unwrap();
    if flags & 0x8000 != 0 {
        return Err(Reject::Drop);
    }
    let opcode = ((flags >> 11) & 0xF) as u8;
    let qd = u16_at(p, 4).unwrap();
    let an = u16_at(p, 6).unwrap();
    let ns = u16_at(p, 8).unwrap();
    let ar = u16_at(p, 10).unwrap();
    let mut q = Query {
        id,
        flags,
        opcode,
        qname: QName {
            wire: [0; 255],
            len: 0,
            starts: [0; 128],
            nlabels: 0,
        },
        qtype: 0,
        qclass: 0,
        question_end: HEADER_LEN,
        edns: None,
        tsig: false,
    };
    if qd != 1 {
        return Err(Reject::FormErr);
    }
    let mut pos = parse_qname(p, HEADER_LEN, &mut q.qname)?;
    q.qtype = u16_at(p, pos).ok_or(Reject::FormErr)?;
    q.qclass = u16_at(p, pos + 2).ok_or(Reject::FormErr)?;
    pos += 4;
    q.question_end = pos;
    if opcode != 0 || q.qtype == rtype::IXFR {
        // UPDATE and NOTIFY carry records in the other sections, and IXFR
        // its SOA in AUTHORITY; their handlers parse the whole message.
        return Ok(q);
    }
    if an != 0 || ns != 0 {
        return Err(Reject::FormErr);
    }
    for _ in 0..ar {
        let name_start = pos;
        pos = skip_name(p, pos)?;
        let rtype = u16_at(p, pos).ok_or(Reject::FormErr)?;
        let class = u16_at(p, pos + 2).ok_or(Reject::FormErr)?;
        let ttl_hi = u16_at(p, pos + 4).ok_or(Reject::FormErr)?;
        let ttl_lo = u16_at(p, pos + 6).ok_or(Reject::FormErr)?;
        let rdlen = u16_at(p, pos + 8).ok_or(Reject::FormErr)? as usize;
        let rdata = p.get(pos + 10..pos + 10 + rdlen).ok_or(Reject::FormErr)?;
        let rdata_at = pos + 10;
        pos += 10 + rdlen;
        match rtype {
            rtype::OPT => {
                // RFC 6891 6.1.1: one OPT, owned by the root.
                if q.edns.is_some() || p[name_start] != 0 {
                    return Err(Reject::FormErr);
                }
                let mut o = 0;
                let mut ecs = None;
                while o < rdata.len() {
                    let olen = u16_at(rdata, o + 2).ok_or(Reject::FormErr)? as usize;
                    if u16_at(rdata, o) == Some(super::ecs::OPTION_CODE) {
                        ecs = Some(((rdata_at + o + 4) as u16, olen as u16));
                    }
                    o += 4 + olen;
                }
                if o != rdata.len() {
                    return Err(Reject::FormErr);
                }
                q.edns = Some(Edns {
                    payload: class,
                    version: (ttl_hi & 0xFF) as u8,
                    do_bit: ttl_lo & 0x8000 != 0,
                    ecs,
                });
            }
            rtype::TSIG => q.tsig = true,
            _ => {}
        }
    }
    if pos != p.len() {
        return Err(Reject::FormErr);
    }
    Ok(q)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn query(name: &[u8], extra: &[u8], ar: u16) -> Vec<u8> {
        let mut p = vec![0x12, 0x34, 0x01, 0x00, 0, 1, 0, 0, 0, 0];
        p.extend(ar.to_be_bytes());
        p.extend(name);
        p.extend([0, 1, 0, 1]);
        p.extend(extra);
        p
    }

    #[test]
    fn parses_and_lowercases() {
        let q = parse_query(&query(b"\x03WwW\x04GGON\x03org\x00", &[], 0)).unwrap();
        assert_eq!(&q.qname.wire[..q.qname.len], b"\x03www\x04ggon\x03org\x00");
        assert_eq!(q.qname.nlabels, 3);
        assert_eq!(q.qname.starts[..4], [0, 4, 9, 13]);
        assert_eq!(q.qtype, 1);
        assert!(q.edns.is_none());
    }

    #[test]
    fn reads_edns() {
        let opt = [0, 0, 41, 0x04, 0xd0, 0, 0, 0x80, 0, 0, 0];
        let q = parse_query(&query(b"\x00", &opt, 1)).unwrap();
        assert_eq!(
            q.edns,
            Some(Edns {
                payload: 1232,
                version: 0,
                do_bit: true,
                ecs: None,
            })
        );
    }

    #[test]
    fn rejects_malformed() {
        assert_eq!(parse_query(&[0; 5]).err(), Some(Reject::Drop));
        // label longer than 63
        let mut long = vec![64u8];
        long.extend([b'a'; 64]);
        long.push(0);
        assert_eq!(
            parse_query(&query(&long, &[], 0)).err(),
            Some(Reject::FormErr)
        );
        // compression pointer in the question
        assert_eq!(
            parse_query(&query(b"\xc0\x0c", &[], 0)).err(),
            Some(Reject::FormErr)
        );
        // name longer than 255
        let mut big = Vec::new();
        for _ in 0..5 {
            big.push(60);
            big.extend([b'a'; 60]);
        }
        big.push(0);
        assert_eq!(
            parse_query(&query(&big, &[], 0)).err(),
            Some(Reject::FormErr)
        );
        // two OPT records
        let opt = [0, 0, 41, 0x04, 0xd0, 0, 0, 0, 0, 0, 0];
        let two: Vec<u8> = opt.iter().chain(opt.iter()).copied().collect();
        assert_eq!(
            parse_query(&query(b"\x00", &two, 2)).err(),
            Some(Reject::FormErr)
        );
        // an OPT option running past the record
        let bad = [0, 0, 41, 0x04, 0xd0, 0, 0, 0, 0, 0, 4, 0, 10, 0, 9];
        assert_eq!(
            parse_query(&query(b"\x00", &bad, 1)).err(),
            Some(Reject::FormErr)
        );
        // trailing garbage
        assert_eq!(
            parse_query(&query(b"\x00", &[1, 2, 3], 0)).err(),
            Some(Reject::FormErr)
        );
        // a response is dropped
        let mut resp = query(b"\x00", &[], 0);
        resp[2] |= 0x80;
        assert_eq!(parse_query(&resp).err(), Some(Reject::Drop));
    }
}
