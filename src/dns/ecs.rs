//! EDNS Client Subnet (RFC 7871): reading the option of a query and
//! writing it back in the response with the scope the answer holds for.
//!
//! No allocation: the option is read in place from the packet and written
//! straight into the response buffer.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

/// The option code of ECS.
pub const OPTION_CODE: u16 = 8;

/// A query's ECS option, checked.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ClientSubnet {
    /// 1 = IPv4, 2 = IPv6.
    pub family: u16,
    pub source: u8,
    /// The prefix, host bits zero.
    pub addr: IpAddr,
}

/// A malformed option: the query gets FORMERR (RFC 7871 7.1.1 and 6).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Malformed;

/// Read the option data `d` (family, source and scope prefix lengths,
/// address truncated to the source prefix).
pub fn parse(d: &[u8]) -> Result<ClientSubnet, Malformed> {
    if d.len() < 4 {
        return Err(Malformed);
    }
    let family = u16::from_be_bytes([d[0], d[1]]);
    let source = d[2];
    let addr = &d[4..];
    let width = match family {
        1 => 32,
        2 => 128,
        _ => return Err(Malformed),
    };
    if source > width || addr.len() != usize::from(source).div_ceil(8) {
        return Err(Malformed);
    }
    // Bits past the source prefix must be zero.
    if !source.is_multiple_of(8) {
        let last = addr[addr.len() - 1];
        if last & (0xFFu8 >> (source % 8)) != 0 {
            return Err(Malformed);
        }
    }
    let addr = if family == 1 {
        let mut b = [0u8; 4];
        b[..addr.len()].copy_from_slice(addr);
        IpAddr::V4(Ipv4Addr::from(b))
    } else {
        let mut b = [0u8; 16];
        b[..addr.len()].copy_from_slice(addr);
        IpAddr::V6(Ipv6Addr::from(b))
    };
    Ok(ClientSubnet {
        family,
        source,
        addr,
    })
}

impl ClientSubnet {
    /// Bytes the option takes in a response (code, length, data).
    pub fn wire_len(&self) -> usize {
        4 + 4 + usize::from(self.source).div_ceil(8)
    }

    /// Append the option for a response: the query's family, source prefix
    /// and address, with `scope` (RFC 7871 7.2.1).
    pub fn write(&self, scope: u8, out: &mut Vec<u8>) {
        let n = usize::from(self.source).div_ceil(8);
        out.extend_from_slice(&OPTION_CODE.to_be_bytes());
        out.extend_from_slice(&((4 + n) as u16).to_be_bytes());
        out.extend_from_slice(&self.family.to_be_bytes());
        out.push(self.source);
        out.push(scope);
        match self.addr {
            IpAddr::V4(a) => out.extend_from_slice(&a.octets()[..n]),
            IpAddr::V6(a) => out.extend_from_slice(&a.octets()[..n]),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_and_writes_back() {
        let c = parse(&[0, 1, 24, 0, 192, 0, 2]).unwrap();
        assert_eq!(c.addr, "192.0.2.0".parse::<IpAddr>().unwrap());
        assert_eq!(c.source, 24);
        let mut out = Vec::new();
        c.write(16, &mut out);
        assert_eq!(out, [0, 8, 0, 7, 0, 1, 24, 16, 192, 0, 2]);
        assert_eq!(out.len(), c.wire_len());
        let v6 = parse(&[0, 2, 56, 0, 0x20, 1, 0xd, 0xb8, 0, 0, 0x12]).unwrap();
        assert_eq!(v6.addr, "2001:db8:0:1200::".parse::<IpAddr>().unwrap());
        assert_eq!(parse(&[0, 1, 0, 0]).unwrap().source, 0);
    }

    #[test]
    fn refuses_malformed() {
        for bad in [
            &[0, 1, 24][..],
            &[0, 3, 8, 0, 1],
            &[0, 1, 33, 0, 1, 2, 3, 4, 5],
            &[0, 1, 24, 0, 192, 0],
            &[0, 1, 24, 0, 192, 0, 2, 1],
            &[0, 1, 23, 0, 192, 0, 3],
        ] {
            assert_eq!(parse(bad), Err(Malformed), "{bad:?}");
        }
    }
}
