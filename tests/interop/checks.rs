//! Checks shared by the BIND self-check and the ggond tests.

use super::*;

/// AXFR from 127.0.0.1 works; from 127.0.0.2 (unsigned) it is refused.
/// Returns the allowed transfer's records.
pub(super) fn check_axfr_acl(port: u16, who: &str) -> Vec<Rr> {
    let out = dig(port, &["-b", "127.0.0.1", ZONE, "AXFR"]);
    let recs = parse_records(&out);
    assert!(
        recs.len() >= 3,
        "{who}: AXFR from 127.0.0.1 (allowed) returned no zone:\n{out}"
    );
    assert_eq!(
        recs[0].rtype, "SOA",
        "{who}: AXFR must start with the SOA:\n{out}"
    );
    assert_eq!(
        recs.last().map(|r| r.rtype.as_str()),
        Some("SOA"),
        "{who}: AXFR must end with the SOA:\n{out}"
    );
    assert_eq!(
        recs.iter().filter(|r| r.rtype == "SOA").count(),
        2,
        "{who}: AXFR has the SOA exactly twice (first and last):\n{out}"
    );
    for (name, rtype, rdata) in [
        ("mail.ggon.org.", "A", "127.0.0.25"),
        ("ggon.org.", "MX", "10 mail.ggon.org."),
        ("wiki.ggon.org.", "AAAA", "::1"),
        ("*.apps.ggon.org.", "A", "127.0.0.90"),
    ] {
        assert!(
            recs.iter()
                .any(|r| r.name == name && r.rtype == rtype && r.rdata == rdata),
            "{who}: AXFR lacks {name} {rtype} {rdata}:\n{out}"
        );
    }

    let denied = dig(port, &["-b", "127.0.0.2", ZONE, "AXFR"]);
    assert!(
        denied.contains("Transfer failed") || denied.contains("REFUSED"),
        "{who}: AXFR from 127.0.0.2 (not in allow_transfer) must be refused:\n{denied}"
    );
    assert!(
        parse_records(&denied).is_empty(),
        "{who}: a refused AXFR must not carry records:\n{denied}"
    );
    recs
}

/// AXFR from 127.0.0.2 (not in the address ACL) signed with a transfer key works.
pub(super) fn check_axfr_signed(port: u16, xfr_key: &TsigKey, who: &str) {
    let key = xfr_key.file.to_str().expect("utf-8 path");
    let signed = dig(port, &["-b", "127.0.0.2", "-k", key, ZONE, "AXFR"]);
    let srecs = parse_records(&signed);
    assert!(
        srecs.len() >= 3 && srecs[0].rtype == "SOA" && srecs.last().unwrap().rtype == "SOA",
        "{who}: AXFR from 127.0.0.2 signed with transfer key `{}` must be allowed:\n{signed}",
        xfr_key.name
    );
}

/// IXFR=`old` after changes old_addr → … → new_addr is incremental: it opens
/// with the current SOA then the SOA at `old`, carries the removed and the
/// added cic A records, and none of the unchanged zone.
pub(super) fn check_ixfr_incremental(
    port: u16,
    old: u32,
    old_addr: &str,
    new_addr: &str,
    who: &str,
) {
    let cur = soa_serial(port).expect("current serial");
    assert!(cur != old, "{who}: serial did not change ({old})");
    let q = format!("IXFR={old}");
    let out = dig(port, &["-b", "127.0.0.1", "+tcp", ZONE, &q]);
    let recs = parse_records(&out);
    assert!(recs.len() >= 4, "{who}: {q} returned too little:\n{out}");
    assert_eq!(
        recs[0].soa_serial(),
        Some(cur),
        "{who}: {q} must open with the current SOA ({cur}):\n{out}"
    );
    assert_eq!(
        recs[1].soa_serial(),
        Some(old),
        "{who}: {q} must be incremental (second record = SOA {old}), not a full zone:\n{out}"
    );
    assert_eq!(
        recs.last().and_then(Rr::soa_serial),
        Some(cur),
        "{who}: {q} must close with the current SOA ({cur}):\n{out}"
    );
    for addr in [old_addr, new_addr] {
        assert!(
            recs.iter()
                .any(|r| r.name == "cic.ggon.org." && r.rtype == "A" && r.rdata == addr),
            "{who}: {q} lacks cic.ggon.org A {addr}:\n{out}"
        );
    }
    assert!(
        !recs.iter().any(|r| r.name == "mail.ggon.org."),
        "{who}: {q} carries unchanged records (mail.ggon.org), i.e. the whole zone:\n{out}"
    );
}

/// IXFR from a serial older than anything journaled gets the full zone
/// (AXFR-style: SOA, the records, SOA).
pub(super) fn check_ixfr_fallback(port: u16, too_old: u32, who: &str) {
    let cur = soa_serial(port).expect("current serial");
    let q = format!("IXFR={too_old}");
    let out = dig(port, &["-b", "127.0.0.1", "+tcp", ZONE, &q]);
    let recs = parse_records(&out);
    assert!(recs.len() >= 3, "{who}: {q} returned too little:\n{out}");
    assert_eq!(recs[0].soa_serial(), Some(cur), "{who}: {q}:\n{out}");
    assert_ne!(
        recs[1].rtype, "SOA",
        "{who}: {q} (older than the journal) must fall back to the full zone:\n{out}"
    );
    assert_eq!(
        recs.last().and_then(Rr::soa_serial),
        Some(cur),
        "{who}: {q}:\n{out}"
    );
    assert!(
        recs.iter()
            .any(|r| r.name == "mail.ggon.org." && r.rtype == "A"),
        "{who}: {q} full-zone fallback lacks mail.ggon.org:\n{out}"
    );
}

/// Wait for the serial at `port` to move past `old`; the new serial.
pub(super) fn wait_serial_past(port: u16, old: u32, limit: Duration) -> Option<u32> {
    poll(limit, Duration::from_millis(50), || {
        soa_serial(port).filter(|s| *s != old)
    })
}

pub(super) fn nsupdate_cic(port: u16, key: &TsigKey, addr: &str) -> Out {
    nsupdate(
        Some(&key.file),
        &update_script(
            port,
            &[
                "update delete cic.ggon.org A",
                &format!("update add cic.ggon.org 30 A {addr}"),
            ],
        ),
    )
}
