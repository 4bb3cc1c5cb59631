//! RDATA encoding against known wire forms.

use super::*;

fn toks(s: &str) -> Vec<Token<'static>> {
    let line = format!("x {s}\n");
    let entries = super::super::lexer::entries(&line).unwrap();
    let owned = |t: &Token| Token {
        text: std::borrow::Cow::Owned(t.text.to_string()),
        quoted: t.quoted,
    };
    entries[0].tokens[1..].iter().map(owned).collect()
}

fn enc(t: &str, s: &str) -> R<Vec<u8>> {
    let origin = Name::from_ascii("example.").unwrap();
    encode(rtype(t).unwrap(), &toks(s), &origin)
}

#[test]
fn names_use_decimal_escapes_keep_case_and_take_the_origin() {
    let o = Name::from_ascii("example.").unwrap();
    let n = name("A\\046b\\.c", &o).unwrap();
    let labels: Vec<&[u8]> = n.iter().collect();
    assert_eq!(labels, [&b"A.b.c"[..], b"example"]);
    assert_eq!(name("@", &o).unwrap(), o);
    assert!(name("a..b", &o).is_err());
    assert!(name(&"x".repeat(64), &o).is_err());
}

#[test]
fn types_hickory_refuses_encode() {
    assert_eq!(enc("DNAME", "Other.").unwrap(), b"\x05Other\x00");
    assert_eq!(enc("TYPE65534", "\\# 4 0a000001").unwrap(), [10, 0, 0, 1]);
    assert!(enc("TYPE65534", "\\# 3 0a000001").is_err());
    assert_eq!(
        enc("AFSDB", "1 db").unwrap(),
        b"\x00\x01\x02db\x07example\x00"
    );
    let ds = enc("DS", "60485 5 1 2BB183AF5F22588179A53B0A 98631FAD1A292118").unwrap();
    assert_eq!(&ds[..4], &[0xec, 0x45, 5, 1]);
    assert_eq!(ds.len(), 4 + 20);
    let nsec = enc("NSEC", "host.example. A MX RRSIG NSEC TYPE1234").unwrap();
    // RFC 4034 4.3's example bit map, plus window 4.
    let mut want = vec![0x00, 0x06, 0x40, 0x01, 0x00, 0x00, 0x00, 0x03, 0x04, 0x1b];
    want.extend([0u8; 26]);
    want.push(0x20);
    assert!(nsec.ends_with(&want), "{nsec:?}");
    assert_eq!(dnssec_time("20260101000000").unwrap(), 1_767_225_600);
    assert_eq!(
        enc("EUI48", "00-00-5e-00-53-2a").unwrap(),
        [0, 0, 0x5e, 0, 0x53, 0x2a]
    );
    assert_eq!(enc("TXT", "\"a b\" c\\065").unwrap(), b"\x03a b\x02cA");
    assert!(enc("A", "1.2.3.4 5").is_err());
}

#[test]
fn loc_matches_rfc1876_example() {
    // The example of RFC 1876 (section 3), known wire values.
    let w = enc("LOC", "42 21 54 N 71 06 18 W -24m 30m").unwrap();
    assert_eq!(&w[..4], &[0, 0x33, 0x16, 0x13]);
    assert_eq!(
        u32::from_be_bytes(w[4..8].try_into().unwrap()),
        2_147_483_648 + 152_514_000
    );
    assert_eq!(
        u32::from_be_bytes(w[8..12].try_into().unwrap()),
        2_147_483_648 - 255_978_000
    );
    assert_eq!(
        u32::from_be_bytes(w[12..16].try_into().unwrap()),
        10_000_000 - 2400
    );
}

#[test]
fn svcb_targets_are_absolute_and_params_sorted() {
    let w = enc("HTTPS", "1 svc alpn=h2 port=8443").unwrap();
    let out_of_order = enc("HTTPS", "1 svc port=8443 alpn=h2").unwrap();
    assert_eq!(w, out_of_order);
    assert!(w.windows(13).any(|x| x == b"\x03svc\x07example\x00"));
}

#[test]
fn types_bind_9_18_reads_in_text() {
    assert_eq!(enc("WALLET", "\"ab\" c").unwrap(), b"\x02ab\x01c");
    assert_eq!(enc("HHIT", "AAAA").unwrap(), [0, 0, 0]);
    assert_eq!(enc("BRID", "AAAA").unwrap(), [0, 0, 0]);
    assert_eq!(enc("EID", "0123 ab").unwrap(), [1, 0x23, 0xab]);
    assert_eq!(enc("ATMA", "+358").unwrap(), b"\x01358");
    // A6: the 8 octets below a /64 prefix, then the prefix's name.
    let a6 = enc("A6", "64 ::1:0:0:ff foo.").unwrap();
    assert_eq!(a6, b"\x40\x00\x01\x00\x00\x00\x00\x00\xff\x03foo\x00");
    assert_eq!(enc("A6", "0 ::1").unwrap().len(), 17);
    assert_eq!(
        enc("AMTRELAY", "10 1 1 192.0.2.1").unwrap(),
        [10, 0x81, 192, 0, 2, 1]
    );
    assert_eq!(enc("AMTRELAY", "0 0 0 .").unwrap(), [0, 0]);
    assert!(enc("AMTRELAY", "0 2 0 .").is_err());
    assert!(enc("WALLET", "").is_err());
}

#[test]
fn eui_and_wks_as_bind_reads_them() {
    // Text after the last group is ignored, as BIND's sscanf does.
    let eui = enc("EUI48", "01-23-45-67-89-abgarbage").unwrap();
    assert_eq!(eui, [1, 0x23, 0x45, 0x67, 0x89, 0xab]);
    assert_eq!(
        enc("EUI64", "1-2-3-4-5-6-7-8").unwrap(),
        [1, 2, 3, 4, 5, 6, 7, 8]
    );
    assert!(enc("EUI48", "01-23-45-67-89").is_err());
    assert!(enc("EUI48", "01:23:45:67:89:ab").is_err());
    // Services by name, from the protocol's list (tcpmux is port 1).
    assert_eq!(
        enc("WKS", "10.0.0.1 tcp tcpmux").unwrap(),
        [10, 0, 0, 1, 6, 0x40]
    );
    assert!(enc("WKS", "10.0.0.1 tcp no-such-service").is_err());
}

#[test]
fn alpn_lists_are_read_at_two_levels_as_bind_reads_them() {
    // `h1\\,h2`: the character string `h1\,h2`, then one id `h1,h2`.
    let one = enc("SVCB", "1 . alpn=h1\\\\,h2").unwrap();
    assert_eq!(&one[3..], b"\x00\x01\x00\x06\x05h1,h2");
    // `a\\,`: the id `a,`; `\\\\`: a backslash.
    assert_eq!(
        &enc("SVCB", "1 . alpn=a\\\\,").unwrap()[3..],
        b"\x00\x01\x00\x03\x02a,"
    );
    assert_eq!(
        &enc("SVCB", "1 . alpn=\\\\\\\\").unwrap()[3..],
        b"\x00\x01\x00\x02\x01\\"
    );
    assert_eq!(
        &enc("SVCB", "1 . alpn=h2,h3").unwrap()[3..],
        b"\x00\x01\x00\x06\x02h2\x02h3"
    );
    assert!(enc("SVCB", "1 . alpn=h2,,h3").is_err());
}
