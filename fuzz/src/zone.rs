//! The `zone` target: a master file as ggond reads one (BIND's syntax,
//! ggon's own parser in `ggon::proto::zonefile`, then the zone checks).
//!
//! Input: the zone's origin on the first line, the file's bytes after it
//! (turned into text as `ZoneData::load` does: non-ASCII bytes as `\DDD`).
//! Files with `$INCLUDE` are skipped: it reads the named file, and this
//! target is about parsing, not about which files exist.
//!
//! Invariants: no panic; a rejected file gets at least one error, each
//! naming a line of the file; an accepted zone compiles and answers its
//! SOA query with NOERROR and an answer (see `dns::serves`).

use ggon::proto::zone::{ZoneData, ZoneError};
use ggon::proto::zonefile::bytes_to_text;
use hickory_proto::rr::Name;

/// The `zone` target.
pub fn zone(data: &[u8]) {
    let split = data.iter().position(|&b| b == b'\n').unwrap_or(data.len());
    let Ok(origin) = std::str::from_utf8(&data[..split]) else {
        return;
    };
    let Ok(origin) = Name::from_ascii(origin.trim()) else {
        return;
    };
    let text = bytes_to_text(data.get(split + 1..).unwrap_or_default());
    if text.to_ascii_lowercase().contains("$include") {
        return;
    }
    let lines = text.bytes().filter(|&b| b == b'\n').count() + 1;
    match ZoneData::parse(&text, None, &origin) {
        Ok(zone) => {
            assert_eq!(zone.records().count(), zone.record_count());
            super::dns::serves(zone);
        }
        Err(ZoneError::Syntax(errors)) => {
            assert!(!errors.is_empty(), "a syntax error without an error");
            for e in &errors {
                assert!(
                    (1..=lines).contains(&e.line),
                    "error at line {} of a {lines}-line file: {e}",
                    e.line
                );
            }
        }
        Err(e) => assert!(!e.to_string().is_empty(), "an error without a message"),
    }
}
