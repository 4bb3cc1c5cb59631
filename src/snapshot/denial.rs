//! Authenticated denial of existence for signed zones: the zone's NSEC or
//! NSEC3 chain, each link pre-encoded with its RRSIGs, and the searches
//! that pick the links a negative or wildcard answer needs.
//!
//! Why a search at query time: which NSEC covers a name that does not exist
//! depends on the name asked, and there are infinitely many of those. The
//! links themselves (records and signatures) are encoded once, when the
//! snapshot is compiled; per query there is one binary search per link
//! (NSEC) or one SHA-1 and one binary search (NSEC3), and no allocation.

use std::cmp::Ordering;

use hickory_proto::rr::RecordType;

use crate::proto::dnssec::nsec3_hash;
use crate::proto::zone::ZoneData;

/// One link of the chain: its NSEC/NSEC3 RR and their RRSIGs, encoded
/// with owner names in full (they go in the authority section of any
/// response, after the precomputed part).
#[derive(Debug, PartialEq)]
pub struct Proof {
    pub wire: Box<[u8]>,
    pub count: u16,
}

/// Up to three links a response needs (RFC 5155 §7.2.2 is the most).
pub type Proofs<'a> = [Option<&'a Proof>; 3];

#[derive(Debug, Default)]
pub enum Chain {
    /// Not signed, or signed without a denial chain: no proofs.
    #[default]
    None,
    /// Sorted in canonical order by owner (lowercase wire form).
    Nsec(Vec<(Box<[u8]>, Proof)>),
    /// Sorted by hash.
    Nsec3 {
        salt: Box<[u8]>,
        iterations: u16,
        links: Vec<([u8; 20], Proof)>,
    },
}

/// RFC 4034 §6.1 canonical order of two lowercase wire names: label by
/// label from the root end, each label compared as bytes.
pub fn canonical_cmp(a: &[u8], b: &[u8]) -> Ordering {
    fn starts(n: &[u8], out: &mut [u8; 128]) -> usize {
        let (mut i, mut k) = (0usize, 0usize);
        while i < n.len() && n[i] != 0 && k < 128 {
            out[k] = i as u8;
            k += 1;
            i += 1 + n[i] as usize;
        }
        k
    }
    let (mut sa, mut sb) = ([0u8; 128], [0u8; 128]);
    let (mut na, mut nb) = (starts(a, &mut sa), starts(b, &mut sb));
    while na > 0 && nb > 0 {
        na -= 1;
        nb -= 1;
        let la = &a[sa[na] as usize + 1..][..a[sa[na] as usize] as usize];
        let lb = &b[sb[nb] as usize + 1..][..b[sb[nb] as usize] as usize];
        match la.cmp(lb) {
            Ordering::Equal => {}
            o => return o,
        }
    }
    na.cmp(&nb)
}

impl Chain {
    /// The chain's links as found in signed zone data.
    pub fn build(
        zone: &ZoneData,
        encode: impl Fn(&hickory_proto::rr::Name, RecordType) -> Proof,
    ) -> Chain {
        let apex = &zone.rrsets[&zone.origin];
        if let Some(param) = apex.get(&RecordType::NSEC3PARAM) {
            let Some(Ok(p)) = param.rdatas.first().map(|r| {
                use hickory_proto::serialize::binary::BinEncodable;
                r.to_bytes()
            }) else {
                return Chain::None;
            };
            if p.len() < 5 || p[0] != 1 || p.len() < 5 + p[4] as usize {
                return Chain::None;
            }
            let iterations = u16::from_be_bytes([p[2], p[3]]);
            let salt: Box<[u8]> = p[5..5 + p[4] as usize].into();
            let mut links = Vec::new();
            for (name, types) in &zone.rrsets {
                if !types.contains_key(&RecordType::NSEC3) || name.num_labels() == 0 {
                    continue;
                }
                let label = name.iter().next().unwrap_or_default();
                let Ok(h) = data_encoding::BASE32HEX_NOPAD.decode(&label.to_ascii_uppercase())
                else {
                    continue;
                };
                if let Ok(h) = <[u8; 20]>::try_from(h.as_slice()) {
                    links.push((h, encode(name, RecordType::NSEC3)));
                }
            }
            links.sort_by_key(|a| a.0);
            return Chain::Nsec3 {
                salt,
                iterations,
                links,
            };
        }
        if !apex.contains_key(&RecordType::NSEC) {
            return Chain::None;
        }
        let mut links: Vec<(Box<[u8]>, Proof)> = zone
            .rrsets
            .iter()
            .filter(|(_, t)| t.contains_key(&RecordType::NSEC))
            .map(|(n, _)| {
                (
                    super::name_wire(n).into_boxed_slice(),
                    encode(n, RecordType::NSEC),
                )
            })
            .collect();
        links.sort_by(|a, b| canonical_cmp(&a.0, &b.0));
        Chain::Nsec(links)
    }

    pub fn is_nsec3(&self) -> bool {
        matches!(self, Chain::Nsec3 { .. })
    }

    /// NSEC: the link whose owner is `name` or the last one before it
    /// (which covers it; before the apex nothing exists, so the last link,
    /// which wraps to the apex, covers names sorting after every owner).
    pub fn nsec_at_or_before(&self, name: &[u8]) -> Option<&Proof> {
        let Chain::Nsec(links) = self else {
            return None;
        };
        let i = links.partition_point(|(o, _)| canonical_cmp(o, name) != Ordering::Greater);
        let i = if i == 0 { links.len() } else { i };
        links.get(i - 1).map(|(_, p)| p)
    }

    /// NSEC3: the link matching `name`'s hash, or the one covering it.
    pub fn nsec3_for(&self, name: &[u8]) -> Option<&Proof> {
        let Chain::Nsec3 {
            salt,
            iterations,
            links,
        } = self
        else {
            return None;
        };
        let h = nsec3_hash(name, salt, *iterations);
        let i = links.partition_point(|(o, _)| *o <= h);
        let i = if i == 0 { links.len() } else { i };
        links.get(i - 1).map(|(_, p)| p)
    }

    /// The proof about one name: NSEC3 match/cover, or NSEC at/before it.
    pub fn about(&self, name: &[u8]) -> Option<&Proof> {
        match self {
            Chain::None => None,
            Chain::Nsec(_) => self.nsec_at_or_before(name),
            Chain::Nsec3 { .. } => self.nsec3_for(name),
        }
    }
}

/// Put the distinct proofs first, in order.
pub fn dedup(p: Proofs<'_>) -> Proofs<'_> {
    let mut out: Proofs = [None; 3];
    let mut k = 0;
    for x in p.into_iter().flatten() {
        if !out[..k]
            .iter()
            .any(|y| y.is_some_and(|y| std::ptr::eq(y, x)))
        {
            out[k] = Some(x);
            k += 1;
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Wire form from labels (leftmost first).
    fn w(labels: &[&[u8]]) -> Vec<u8> {
        let mut out = Vec::new();
        for l in labels {
            out.push(l.len() as u8);
            out.extend_from_slice(l);
        }
        out.push(0);
        out
    }

    #[test]
    fn canonical_order_matches_rfc4034_example() {
        // RFC 4034 6.1, in order.
        let wires = [
            w(&[b"example"]),
            w(&[b"a", b"example"]),
            w(&[b"yljkjljk", b"a", b"example"]),
            w(&[b"z", b"a", b"example"]),
            w(&[b"zabc", b"a", b"example"]),
            w(&[b"z", b"example"]),
            w(&[b"\x01", b"z", b"example"]),
            w(&[b"*", b"z", b"example"]),
            w(&[b"\x80", b"z", b"example"]),
        ];
        for pair in wires.windows(2) {
            assert_eq!(canonical_cmp(&pair[0], &pair[1]), Ordering::Less);
            assert_eq!(canonical_cmp(&pair[1], &pair[0]), Ordering::Greater);
        }
        assert_eq!(canonical_cmp(&wires[3], &wires[3]), Ordering::Equal);
    }
}
