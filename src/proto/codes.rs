//! DNS numbers in one place: response codes and the record types the query
//! path handles by number, with their mnemonics.
//!
//! Why our own constants next to hickory-proto's enums: the query path and
//! the counters work on raw bytes and compare `u8`/`u16` values; converting
//! to an enum per packet would cost for nothing. Everything that names an
//! rcode or type by number takes it from here, never a literal.

/// Response codes (RFC 1035, RFC 2136).
pub mod rcode {
    pub const NOERROR: u8 = 0;
    pub const FORMERR: u8 = 1;
    pub const SERVFAIL: u8 = 2;
    pub const NXDOMAIN: u8 = 3;
    pub const NOTIMP: u8 = 4;
    pub const REFUSED: u8 = 5;
    pub const YXDOMAIN: u8 = 6;
    pub const YXRRSET: u8 = 7;
    pub const NXRRSET: u8 = 8;
    pub const NOTAUTH: u8 = 9;
    pub const NOTZONE: u8 = 10;
}

/// Header opcodes (RFC 1035, RFC 1996, RFC 2136).
pub mod opcode {
    pub const QUERY: u8 = 0;
    pub const STATUS: u8 = 2;
    pub const NOTIFY: u8 = 4;
    pub const UPDATE: u8 = 5;

    /// The opcodes ggond implements; any other gets NOTIMP.
    pub fn implemented(op: u8) -> bool {
        matches!(op, QUERY | NOTIFY | UPDATE)
    }
}

/// Record types by number.
pub mod rtype {
    pub const A: u16 = 1;
    pub const NS: u16 = 2;
    pub const CNAME: u16 = 5;
    pub const SOA: u16 = 6;
    pub const PTR: u16 = 12;
    pub const MX: u16 = 15;
    pub const TXT: u16 = 16;
    pub const AAAA: u16 = 28;
    pub const SRV: u16 = 33;
    pub const OPT: u16 = 41;
    pub const HTTPS: u16 = 65;
    pub const TSIG: u16 = 250;
    pub const IXFR: u16 = 251;
    pub const MAILB: u16 = 253;
    pub const MAILA: u16 = 254;
    pub const AXFR: u16 = 252;
    pub const ANY: u16 = 255;
}

/// Mnemonics of the 4-bit header rcodes, indexed by number (11 to 15 are
/// ones ggon never sends, shown as `RCODEn`).
pub const RCODE_NAMES: [&str; 16] = [
    "NOERROR", "FORMERR", "SERVFAIL", "NXDOMAIN", "NOTIMP", "REFUSED", "YXDOMAIN", "YXRRSET",
    "NXRRSET", "NOTAUTH", "NOTZONE", "RCODE11", "RCODE12", "RCODE13", "RCODE14", "RCODE15",
];

/// Parse an rcode mnemonic (NOERROR, SERVFAIL, NXDOMAIN, REFUSED, ...) to its number.
pub fn parse_rcode(s: &str) -> Option<u16> {
    let upper = s.to_ascii_uppercase();
    RCODE_NAMES[..=10]
        .iter()
        .position(|n| *n == upper)
        .map(|i| i as u16)
}

/// The mnemonic of an rcode number, if it has one here.
pub fn rcode_name(r: u16) -> Option<&'static str> {
    RCODE_NAMES[..=10].get(r as usize).copied()
}

/// The mnemonic of an rcode, or `RCODEn` for the ones without a name here.
pub fn rcode_label(r: u16) -> String {
    match rcode_name(r) {
        Some(n) => n.to_string(),
        None => format!("RCODE{r}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip() {
        for r in 0..=10u16 {
            assert_eq!(parse_rcode(rcode_name(r).unwrap()), Some(r));
        }
        assert_eq!(parse_rcode("nxdomain"), Some(u16::from(rcode::NXDOMAIN)));
        assert_eq!(parse_rcode("BADVERS"), None);
        assert_eq!(rcode_label(16), "RCODE16");
        assert_eq!(rcode_label(5), "REFUSED");
    }
}
