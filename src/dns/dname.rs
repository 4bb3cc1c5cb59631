//! DNAME answers (RFC 6672): the DNAME, the CNAME it synthesizes for the
//! question, and, when that CNAME's target is in the same zone, the lookup
//! continued there (RFC 6672 3.4 step 3.C, as BIND and NSD answer): its
//! records, its CNAME chain, further DNAMEs, and its rcode (NXDOMAIN for a
//! target that does not exist).
//!
//! Only questions that meet a DNAME come here, so nothing of this costs
//! the query path for other names. No allocation: the response is written
//! straight into `out`, names as pointers to what is already there.

use super::respond::{header, opt};
use super::wire::{parse_qname, Query, HEADER_LEN, OPT_LEN};
use crate::proto::codes::{rcode, rtype};
use crate::snapshot::{Dname, Lookup, Prepared, Proofs, QName, Snapshot, MAX_ALIASES};

/// A name written in full (uncompressed) earlier in the response: its
/// offset and length in octets.
#[derive(Clone, Copy)]
struct Written {
    at: usize,
    len: usize,
}

/// The whole answer for a question below a DNAME.
pub(super) fn dname(
    snap: &Snapshot,
    pkt: &[u8],
    q: &Query,
    first: &Dname,
    room: usize,
    out: &mut Vec<u8>,
) {
    let question = &pkt[HEADER_LEN..q.question_end];
    let edns = q.edns.is_some() as u16;
    let dnssec = q.edns.is_some_and(|e| e.do_bit);
    header(out, q, true, false, 0, [1, 0, 0, edns]);
    out.extend_from_slice(question);
    let mut counts = [0u16; 3];
    let mut rc = rcode::NOERROR;
    // The name being rewritten: first the question (in the question
    // section), then each synthesized target (in its CNAME's RDATA).
    let mut name = Written {
        at: HEADER_LEN,
        len: q.qname.len,
    };
    let mut labels = q.qname.nlabels;
    let mut d = first;
    let mut target = empty_qname();
    // Aliases so far: each DNAME applied synthesizes one, and a chain
    // met on the way holds its own (compiled with the zone, aliases.rs);
    // as BIND, at most MAX_ALIASES, and SERVFAIL past them.
    for aliases in 1..=MAX_ALIASES {
        let Some(t) = synthesize(out, d, name, labels, dnssec, &mut counts) else {
            rc = rcode::YXDOMAIN;
            break;
        };
        // A CNAME (or ANY, RFC 8482's one RRset) question is answered by
        // the synthesized CNAME itself.
        if matches!(q.qtype, rtype::CNAME | rtype::ANY) {
            break;
        }
        if aliases == MAX_ALIASES {
            rc = rcode::SERVFAIL;
            break;
        }
        if parse_qname(&out[..t.at + t.len], t.at, &mut target).is_err() {
            break;
        }
        let room_left = MAX_ALIASES - aliases;
        match snap.follow(&q.qname, &target, q.qtype, dnssec) {
            Some(Lookup::Dname(next)) => {
                d = next;
                name = t;
                labels = target.nlabels;
                continue;
            }
            Some(Lookup::Answer(p)) if p.aa => {
                rc = append(out, p, &[None; 3], t, room_left, &mut counts).unwrap_or(rc);
            }
            Some(Lookup::Denial(p, proofs)) => {
                rc = append(out, p, &proofs, t, room_left, &mut counts).unwrap_or(rc);
            }
            // Out of the zone, or delegated away: the resolver goes on.
            _ => {}
        }
        break;
    }
    let [an, ns, ar] = counts;
    if out.len() + OPT_LEN * edns as usize > room {
        out.clear();
        header(out, q, true, true, rc, [1, 0, 0, edns]);
        out.extend_from_slice(question);
    } else {
        let flags = flags_with(out, rc);
        out[2..4].copy_from_slice(&flags.to_be_bytes());
        for (i, c) in [an, ns, ar + edns].into_iter().enumerate() {
            out[6 + 2 * i..8 + 2 * i].copy_from_slice(&c.to_be_bytes());
        }
    }
    if let Some(e) = q.edns {
        opt(out, e, 0);
    }
}

fn flags_with(out: &[u8], rc: u8) -> u16 {
    (u16::from_be_bytes([out[2], out[3]]) & !0xF) | u16::from(rc & 0xF)
}

fn empty_qname() -> QName {
    QName {
        wire: [0; 255],
        len: 0,
        starts: [0; 128],
        nlabels: 0,
    }
}

/// Write the DNAME (with its RRSIGs for DO) and the CNAME from `name` to
/// `name` with the DNAME owner's suffix replaced by its target. The
/// CNAME's owner points at `name`; its target keeps `name`'s case for the
/// labels it takes over. None, with the DNAME alone written, when the new
/// name would be longer than 255 octets (YXDOMAIN, RFC 6672 2.2).
fn synthesize(
    out: &mut Vec<u8>,
    d: &Dname,
    name: Written,
    labels: usize,
    dnssec: bool,
    counts: &mut [u16; 3],
) -> Option<Written> {
    // The labels of `name` above the DNAME owner, as written.
    let keep = labels - d.owner_labels;
    let prefix_len = label_offset(&out[name.at..name.at + name.len], keep);
    let target_len = prefix_len + d.target.len();
    out.extend_from_slice(&d.rr);
    counts[0] += 1;
    if dnssec && !d.sigs.is_empty() {
        out.extend_from_slice(&d.sigs);
        counts[0] += d.sig_count;
    }
    if target_len > 255 {
        return None;
    }
    write_owner(out, name);
    out.extend_from_slice(&rtype::CNAME.to_be_bytes());
    out.extend_from_slice(&1u16.to_be_bytes());
    out.extend_from_slice(&d.ttl.to_be_bytes());
    out.extend_from_slice(&(target_len as u16).to_be_bytes());
    let at = out.len();
    out.extend_from_within(name.at..name.at + prefix_len);
    out.extend_from_slice(&d.target);
    counts[0] += 1;
    Some(Written {
        at,
        len: target_len,
    })
}

/// The offset of label `n` in an uncompressed wire name.
fn label_offset(wire: &[u8], n: usize) -> usize {
    let mut pos = 0;
    for _ in 0..n {
        pos += 1 + wire[pos] as usize;
    }
    pos
}

/// A pointer to `name` where one can reach it, else the name in full.
fn write_owner(out: &mut Vec<u8>, name: Written) {
    if name.at < 0x4000 {
        out.extend_from_slice(&(0xC000 | name.at as u16).to_be_bytes());
    } else {
        out.extend_from_within(name.at..name.at + name.len);
    }
}

/// Append the answer for the synthesized name `t`, its names pointing into
/// this response (see [`relocate`]); the body's rcode, or None (and
/// nothing appended) when it cannot be placed here. SERVFAIL (and nothing
/// appended) when its own chain holds more than `aliases` aliases.
fn append(
    out: &mut Vec<u8>,
    p: &Prepared,
    proofs: &Proofs<'_>,
    t: Written,
    aliases: usize,
    counts: &mut [u16; 3],
) -> Option<u8> {
    let start = out.len();
    out.extend_from_slice(&p.body);
    let Some(chained) = relocate(&mut out[start..], start, p.counts, t) else {
        out.truncate(start);
        return None;
    };
    if chained >= aliases || p.rcode == rcode::SERVFAIL {
        out.truncate(start);
        return Some(rcode::SERVFAIL);
    }
    let mut extra = 0;
    for pr in proofs.iter().flatten() {
        out.extend_from_slice(&pr.wire);
        extra += pr.count;
    }
    counts[0] += p.counts[0];
    counts[1] += p.counts[1] + extra;
    counts[2] += p.counts[2];
    Some(p.rcode)
}

/// Rewrite the compression pointers of a compiled body (see the module
/// doc of [`crate::snapshot`]) copied to offset `at` of a response, where
/// the name it was compiled for is written at `t`. A body is compiled as
/// if its question were that name at offset 12, followed by its type and
/// class, so a pointer there goes to `t` and one into the body moves with
/// it. Pointers are kept pointers, so the body's length and layout stay
/// the same. The number of CNAMEs in its answer section; None if a
/// pointer leads elsewhere or beyond what a pointer can reach (a response
/// over 16 KB).
fn relocate(body: &mut [u8], at: usize, counts: [u16; 3], t: Written) -> Option<usize> {
    let base = HEADER_LEN + t.len + 4;
    let map = |v: usize| -> Option<u16> {
        let new = if (HEADER_LEN..HEADER_LEN + t.len).contains(&v) {
            t.at + v - HEADER_LEN
        } else if v >= base {
            at + v - base
        } else {
            return None;
        };
        (new < 0x4000).then_some(0xC000 | new as u16)
    };
    let mut pos = 0;
    let mut cnames = 0;
    let records = counts.iter().map(|&c| usize::from(c)).sum();
    for i in 0..records {
        pos = name(body, pos, &map)?;
        let rtype = u16::from_be_bytes([*body.get(pos)?, *body.get(pos + 1)?]);
        if rtype == rtype::CNAME && i < usize::from(counts[0]) {
            cnames += 1;
        }
        let rdlen = u16::from_be_bytes([*body.get(pos + 8)?, *body.get(pos + 9)?]) as usize;
        pos += 10;
        let end = pos + rdlen;
        // The types whose RDATA names the compiler compresses (hickory's
        // "standard records" of RFC 1035 3.3).
        match rtype {
            rtype::NS | rtype::CNAME | rtype::PTR => {
                name(body, pos, &map)?;
            }
            rtype::MX => {
                name(body, pos + 2, &map)?;
            }
            rtype::SOA => {
                let next = name(body, pos, &map)?;
                name(body, next, &map)?;
            }
            _ => {}
        }
        pos = end;
    }
    (pos == body.len()).then_some(cnames)
}

/// Walk the name at `pos`, rewriting its pointer if it ends in one; the
/// offset after the name.
fn name(body: &mut [u8], mut pos: usize, map: &impl Fn(usize) -> Option<u16>) -> Option<usize> {
    for _ in 0..128 {
        match *body.get(pos)? {
            0 => return Some(pos + 1),
            l @ 1..=63 => pos += 1 + l as usize,
            l if l >= 0xC0 => {
                let v = usize::from(u16::from_be_bytes([l, *body.get(pos + 1)?]) & 0x3FFF);
                body[pos..pos + 2].copy_from_slice(&map(v)?.to_be_bytes());
                return Some(pos + 2);
            }
            _ => return None,
        }
    }
    None
}
