//! Writing RRs into a response body: the one encoder every compiled
//! answer goes through (see the module doc of [`super`] for the relative
//! and independent forms).

use hickory_proto::rr::Name;
use hickory_proto::serialize::binary::{BinEncodable, BinEncoder, NameEncoding};

use super::Prepared;
use crate::proto::rdatas::Rd;
use crate::proto::zone::RRset;

/// One resource record to encode.
#[derive(Clone, Copy)]
pub(super) struct Rr<'a> {
    pub owner: &'a Name,
    pub ttl: u32,
    /// As stored: an address is written from its octets, no `RData` made.
    pub rdata: &'a Rd,
}

pub(super) fn rrs<'a>(owner: &'a Name, set: &'a RRset) -> impl Iterator<Item = Rr<'a>> + 'a {
    set.rdatas
        .stored()
        .iter()
        .enumerate()
        .map(move |(i, rdata)| Rr {
            owner,
            ttl: set.ttl_of(i),
            rdata,
        })
}

#[derive(Clone, Copy, PartialEq)]
pub(super) enum Mode {
    Relative,
    Independent,
}

pub(super) fn encode(
    question: Option<&Name>,
    mode: Mode,
    sections: [&[Rr<'_>]; 3],
    rcode: u8,
    aa: bool,
) -> Prepared {
    let mut buf = Vec::with_capacity(256);
    let mut enc = BinEncoder::new(&mut buf);
    let start = if mode == Mode::Relative {
        // A stand-in header and question, so that names in the body can be
        // compressed against the question name; both are cut off below.
        enc.emit_vec(&[0u8; 12]).expect("encode");
        question
            .expect("a relative body has a question")
            .emit(&mut enc)
            .expect("encode");
        enc.emit_u16(1).expect("encode");
        enc.emit_u16(1).expect("encode");
        enc.offset()
    } else {
        enc.set_name_encoding(NameEncoding::Uncompressed);
        0
    };
    let mut counts = [0u16; 3];
    for (i, section) in sections.iter().enumerate() {
        for rr in section.iter() {
            if Some(rr.owner) == question {
                enc.emit_u16(0xC00C).expect("encode");
            } else {
                rr.owner.emit(&mut enc).expect("encode");
            }
            enc.emit_u16(u16::from(rr.rdata.record_type()))
                .expect("encode");
            enc.emit_u16(1).expect("encode");
            enc.emit_u32(rr.ttl).expect("encode");
            let place = enc.place::<u16>().expect("encode");
            rr.rdata.emit(&mut enc).expect("encode");
            let len = enc.len_since_place(&place);
            place.replace(&mut enc, len as u16).expect("encode");
            counts[i] += 1;
        }
    }
    drop(enc);
    Prepared {
        rcode,
        aa,
        counts,
        body: buf[start..].into(),
    }
}
