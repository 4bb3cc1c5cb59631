//! A small MaxMind DB writer (format 2.0, maxmind.github.io/MaxMind-DB),
//! enough for a GeoIP country database in the tests: IPv4 networks, each
//! with `country.iso_code` and `continent.code`, 24-bit records. The real
//! reader is the `maxminddb` crate inside ggond.

use std::net::Ipv4Addr;

/// One entry of the database: a network and its country and continent.
pub struct Network {
    pub net: Ipv4Addr,
    pub len: u8,
    pub country: &'static str,
    pub continent: &'static str,
}

#[derive(Clone, Copy)]
enum Rec {
    Empty,
    Node(usize),
    /// Offset in the data section.
    Data(usize),
}

/// The database bytes for `networks` (non-overlapping).
pub fn country_db(networks: &[Network]) -> Vec<u8> {
    let mut data = Vec::new();
    let mut nodes: Vec<[Rec; 2]> = vec![[Rec::Empty; 2]];
    for n in networks {
        let at = data.len();
        map(
            &mut data,
            &[
                ("continent", &|d: &mut Vec<u8>| {
                    map(d, &[("code", &|d: &mut Vec<u8>| string(d, n.continent))])
                }),
                ("country", &|d: &mut Vec<u8>| {
                    map(d, &[("iso_code", &|d: &mut Vec<u8>| string(d, n.country))])
                }),
            ],
        );
        let bits = u32::from(n.net);
        let mut node = 0;
        for depth in 0..n.len {
            let bit = ((bits >> (31 - depth)) & 1) as usize;
            if depth + 1 == n.len {
                nodes[node][bit] = Rec::Data(at);
                break;
            }
            node = match nodes[node][bit] {
                Rec::Node(i) => i,
                _ => {
                    nodes.push([Rec::Empty; 2]);
                    let i = nodes.len() - 1;
                    nodes[node][bit] = Rec::Node(i);
                    i
                }
            };
        }
    }
    let count = nodes.len();
    let mut out = Vec::new();
    for pair in &nodes {
        for r in pair {
            let v = match *r {
                Rec::Empty => count,
                Rec::Node(i) => i,
                Rec::Data(off) => count + 16 + off,
            } as u32;
            out.extend_from_slice(&v.to_be_bytes()[1..]);
        }
    }
    out.extend_from_slice(&[0u8; 16]);
    out.extend_from_slice(&data);
    out.extend_from_slice(b"\xAB\xCD\xEFMaxMind.com");
    map(
        &mut out,
        &[
            ("binary_format_major_version", &|d: &mut Vec<u8>| {
                uint(d, 5, 2)
            }),
            ("binary_format_minor_version", &|d: &mut Vec<u8>| {
                uint(d, 5, 0)
            }),
            ("build_epoch", &|d: &mut Vec<u8>| uint64(d, 1_700_000_000)),
            ("database_type", &|d: &mut Vec<u8>| {
                string(d, "ggon-test-Country")
            }),
            ("description", &|d: &mut Vec<u8>| {
                map(d, &[("en", &|d: &mut Vec<u8>| string(d, "ggon test"))])
            }),
            ("ip_version", &|d: &mut Vec<u8>| uint(d, 5, 4)),
            ("languages", &|d: &mut Vec<u8>| extended(d, 11, 0)),
            ("node_count", &|d: &mut Vec<u8>| uint(d, 6, count as u64)),
            ("record_size", &|d: &mut Vec<u8>| uint(d, 5, 24)),
        ],
    );
    out
}

type Field<'a> = (&'a str, &'a dyn Fn(&mut Vec<u8>));

/// A control byte for `kind` (1..=7) and `size` (< 29 here).
fn control(d: &mut Vec<u8>, kind: u8, size: usize) {
    assert!(size < 29, "small values only");
    d.push((kind << 5) | size as u8);
}

/// An extended type (8 and up): type 0 in the control byte, then `kind - 7`.
fn extended(d: &mut Vec<u8>, kind: u8, size: usize) {
    assert!(size < 29);
    d.push(size as u8);
    d.push(kind - 7);
}

fn string(d: &mut Vec<u8>, s: &str) {
    control(d, 2, s.len());
    d.extend_from_slice(s.as_bytes());
}

/// uint16 (kind 5) or uint32 (kind 6), in as few bytes as it needs.
fn uint(d: &mut Vec<u8>, kind: u8, v: u64) {
    let bytes = v.to_be_bytes();
    let skip = bytes.iter().take_while(|b| **b == 0).count();
    control(d, kind, 8 - skip);
    d.extend_from_slice(&bytes[skip..]);
}

fn uint64(d: &mut Vec<u8>, v: u64) {
    let bytes = v.to_be_bytes();
    let skip = bytes.iter().take_while(|b| **b == 0).count();
    extended(d, 9, 8 - skip);
    d.extend_from_slice(&bytes[skip..]);
}

fn map(d: &mut Vec<u8>, fields: &[Field<'_>]) {
    control(d, 7, fields.len());
    for (k, v) in fields {
        string(d, k);
        v(d);
    }
}
