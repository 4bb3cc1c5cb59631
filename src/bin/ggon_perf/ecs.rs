//! `--ecs ADDR/LEN [--ecs-rotate N]`: every query carries an EDNS Client
//! Subnet option (RFC 7871), rotating over N consecutive subnets of that
//! length starting at ADDR. The options are written into the encoded query
//! set once (N copies of the query file, one per subnet), so the flood loop
//! is the same as without ECS.

use std::net::IpAddr;

use crate::queries::WireSet;

/// Why `--ecs`/`--ecs-rotate` cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum EcsError {
    #[error("--ecs `{0}`: expected ADDRESS/PREFIX-LENGTH")]
    Form(String),
    #[error("--ecs `{text}`: bad address: {error}")]
    Address {
        text: String,
        error: std::net::AddrParseError,
    },
    #[error("--ecs `{text}`: bad prefix length: {error}")]
    Length {
        text: String,
        error: std::num::ParseIntError,
    },
    #[error("--ecs `{text}`: a prefix length of at most {width}")]
    TooLong { text: String, width: u8 },
    #[error("--ecs-rotate must be at least 1")]
    NoRotation,
    #[error("--ecs `{0}`: host bits must be zero")]
    HostBits(String),
    #[error("--ecs-rotate {count}: fewer subnets of /{len} follow {base}")]
    TooFew { count: u32, len: u8, base: IpAddr },
}

/// The subnets to rotate over.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rotation {
    pub base: IpAddr,
    pub len: u8,
    pub count: u32,
}

impl Rotation {
    /// Parse `ADDR/LEN` and a count; host bits of ADDR must be zero and the
    /// N subnets must fit in the address family.
    pub fn parse(s: &str, count: u32) -> Result<Rotation, EcsError> {
        let text = || s.to_string();
        let (addr, len) = s.split_once('/').ok_or_else(|| EcsError::Form(text()))?;
        let base: IpAddr = addr.parse().map_err(|error| EcsError::Address {
            text: text(),
            error,
        })?;
        let len: u8 = len.parse().map_err(|error| EcsError::Length {
            text: text(),
            error,
        })?;
        let width = if base.is_ipv4() { 32 } else { 128 };
        if len > width {
            return Err(EcsError::TooLong {
                text: text(),
                width,
            });
        }
        if count == 0 {
            return Err(EcsError::NoRotation);
        }
        let r = Rotation { base, len, count };
        if r.subnet(0) != base {
            return Err(EcsError::HostBits(text()));
        }
        let (bits, host) = match base {
            IpAddr::V4(a) => (u128::from(u32::from(a)), 32 - u32::from(len)),
            IpAddr::V6(a) => (u128::from(a), 128 - u32::from(len)),
        };
        let first = bits.checked_shr(host).unwrap_or(0);
        let blocks = 1u128.checked_shl(u32::from(len)).unwrap_or(u128::MAX);
        if first.saturating_add(u128::from(count)) > blocks {
            return Err(EcsError::TooFew { count, len, base });
        }
        Ok(r)
    }

    /// Subnet `i`: the base plus i blocks of the prefix length (wrapping).
    pub fn subnet(&self, i: u32) -> IpAddr {
        match self.base {
            IpAddr::V4(a) => {
                let host = 32 - u32::from(self.len);
                let step = if host >= 32 { 0 } else { i << host };
                let mask = if host >= 32 { 0 } else { u32::MAX << host };
                IpAddr::V4((u32::from(a).wrapping_add(step) & mask).into())
            }
            IpAddr::V6(a) => {
                let host = 128 - u32::from(self.len);
                let step = if host >= 128 {
                    0
                } else {
                    u128::from(i) << host
                };
                let mask = if host >= 128 { 0 } else { u128::MAX << host };
                IpAddr::V6((u128::from(a).wrapping_add(step) & mask).into())
            }
        }
    }

    /// The option (code, length, data) for subnet `i`.
    fn option(&self, i: u32) -> Vec<u8> {
        let n = usize::from(self.len).div_ceil(8);
        let (family, bytes): (u16, Vec<u8>) = match self.subnet(i) {
            IpAddr::V4(a) => (1, a.octets()[..n].to_vec()),
            IpAddr::V6(a) => (2, a.octets()[..n].to_vec()),
        };
        let mut o = Vec::with_capacity(8 + n);
        o.extend_from_slice(&8u16.to_be_bytes());
        o.extend_from_slice(&((4 + n) as u16).to_be_bytes());
        o.extend_from_slice(&family.to_be_bytes());
        o.push(self.len);
        o.push(0);
        o.extend_from_slice(&bytes);
        o
    }
}

/// `set` (encoded with EDNS, an empty OPT last in each query) repeated
/// once per subnet with that subnet's option in the OPT.
pub fn with_subnets(set: &WireSet, r: &Rotation) -> WireSet {
    let mut out = WireSet {
        buf: Vec::new(),
        queries: Vec::with_capacity(set.queries.len() * r.count as usize),
    };
    for s in 0..r.count {
        let opt = r.option(s);
        for (i, q) in set.queries.iter().enumerate() {
            let msg = set.message(i);
            let off = out.buf.len();
            let len = msg.len() + opt.len();
            out.buf.extend_from_slice(&(len as u16).to_be_bytes());
            out.buf.extend_from_slice(msg);
            let rdlen = out.buf.len() - 2;
            out.buf[rdlen..].copy_from_slice(&(opt.len() as u16).to_be_bytes());
            out.buf.extend_from_slice(&opt);
            out.queries.push(crate::queries::WireQuery {
                off: off as u32,
                len: len as u16,
                qlen: q.qlen,
            });
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::queries::{parse_file, Edns};

    #[test]
    fn rotates_over_consecutive_subnets() {
        let r = Rotation::parse("10.0.0.0/24", 1000).unwrap();
        assert_eq!(r.subnet(0).to_string(), "10.0.0.0");
        assert_eq!(r.subnet(999).to_string(), "10.3.231.0");
        let v6 = Rotation::parse("2001:db8::/48", 3).unwrap();
        assert_eq!(v6.subnet(2).to_string(), "2001:db8:2::");
        assert!(Rotation::parse("10.0.0.1/24", 1).is_err());
        assert!(Rotation::parse("255.255.255.252/31", 3).is_err());
        assert!(Rotation::parse("255.255.255.252/31", 2).is_ok());
        assert!(Rotation::parse("10.0.0.0", 1).is_err());
    }

    #[test]
    fn each_query_carries_its_subnet() {
        let qs = parse_file("a.ggon.org A\nb.ggon.org A\n", "f").unwrap();
        let base = WireSet::encode(
            &qs,
            Edns {
                enabled: true,
                dnssec_ok: false,
            },
        );
        let r = Rotation::parse("192.0.2.0/24", 2).unwrap();
        let set = with_subnets(&base, &r);
        assert_eq!(set.queries.len(), 4);
        let m = set.message(3);
        assert_eq!(
            &m[m.len() - 13..],
            &[0, 11, 0, 8, 0, 7, 0, 1, 24, 0, 192, 0, 3]
        );
        assert_eq!(&m[10..12], &[0, 1], "ARCOUNT");
        let framed = set.framed(3);
        assert_eq!(u16::from_be_bytes([framed[0], framed[1]]) as usize, m.len());
    }
}
