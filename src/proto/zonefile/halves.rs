//! A large master file's records parsed on two threads.
//!
//! Why: after the map build stopped comparing names, reading the text
//! into records was the longest step of a large zone's start (about 1 s
//! of 2.5 for a million records, perf: owner names, RDATA, the records'
//! memory), on one core while the other was idle. The lexer still runs
//! first, alone (it must see every parenthesis and quote); the entries are
//! then cut in two where the second half needs nothing the first computes:
//! - it begins with a record that names its owner (no owner to inherit);
//! - it holds no directive, and the first half only `$ORIGIN` and `$TTL`,
//!   which are read ahead here (an `$INCLUDE`d file or a `$GENERATE` could
//!   change the state in ways only the sequential parse knows);
//! - a `$TTL` is in force at the cut, so that a record without a TTL does
//!   not take the last explicit one before it (BIND's rule without `$TTL`).
//!
//! Otherwise the file is parsed on one thread, as before. Either way the
//! records, warnings and errors come out in the file's order.

use hickory_proto::rr::Name;

use super::lexer::Entry;
use super::{Parsed, State};

/// Below this many entries a file is parsed on one thread.
const SPLIT_FROM: usize = 20_000;

impl State {
    /// Where `entries` can be cut, and the origin and `$TTL` in force
    /// there; `None` when the file must be parsed in one piece.
    fn cut(&self, entries: &[Entry], depth: usize) -> Option<(usize, Name, u32)> {
        // An `$INCLUDE`d file is not cut: the including one's records
        // follow it.
        if depth > 0 || entries.len() < SPLIT_FROM || !crate::memory::two_cores() {
            return None;
        }
        let at = (entries.len() / 2..entries.len())
            .find(|&i| !entries[i].blank_owner && !entries[i].is_directive())?;
        if entries[at..].iter().any(Entry::is_directive) {
            return None;
        }
        // The first half's `$ORIGIN`s and `$TTL`s, read ahead by the
        // parse's own `directive` on a scratch state.
        let mut ahead = State::new(self.origin.clone(), self.default_ttl);
        for e in entries[..at].iter().filter(|e| e.is_directive()) {
            match e.tokens[0].text.to_ascii_uppercase().as_str() {
                "$ORIGIN" | "$TTL" => ahead.directive(e, None, depth).ok()?,
                _ => return None,
            }
        }
        Some((at, ahead.origin, ahead.default_ttl?))
    }

    /// Parse `entries`, on two threads when [`Self::cut`] allows.
    pub(super) fn entries(
        &mut self,
        entries: &[Entry],
        file: &str,
        dir: Option<&std::path::Path>,
        depth: usize,
    ) {
        let Some((at, origin, ttl)) = self.cut(entries, depth) else {
            return self.run(entries, file, dir, depth);
        };
        let second = || State {
            // Made here, filled there: a large block freed later goes back
            // to this thread's allocator arena, not to one left resident.
            out: Parsed {
                records: Vec::with_capacity(entries.len() - at),
                ..Parsed::default()
            },
            ..State::new(origin.clone(), Some(ttl))
        };
        self.out.records.reserve(at);
        let (first, rest) = entries.split_at(at);
        let mut half = second();
        let second = std::thread::scope(|s| {
            let other = std::thread::Builder::new()
                .name("zone-parse".into())
                .spawn_scoped(s, move || {
                    half.run(rest, file, dir, depth);
                    half
                });
            self.run(first, file, dir, depth);
            match other {
                Ok(other) => other.join().expect("the zone parse thread panicked"),
                // No thread to be had: the second half here, after the first.
                Err(_) => {
                    let mut half = second();
                    half.run(rest, file, dir, depth);
                    half
                }
            }
        });
        self.append(second);
    }

    fn run(&mut self, entries: &[Entry], file: &str, dir: Option<&std::path::Path>, depth: usize) {
        for e in entries {
            if let Err(error) = self.entry(e, dir, depth) {
                self.error(file, e.line, error);
            }
        }
    }

    /// Take the second half's results, and the state it ends in.
    fn append(&mut self, second: State) {
        debug_assert!(self.out.rest.is_empty(), "a file is cut once");
        self.out.rest = second.out.records;
        self.out.warnings.extend(second.out.warnings);
        self.errors.extend(second.errors);
        self.last_owner = second.last_owner.or(self.last_owner.take());
        self.last_ttl = second.last_ttl.or(self.last_ttl);
        self.soa_minimum = second.soa_minimum.or(self.soa_minimum);
    }
}

#[cfg(test)]
mod tests {
    use super::super::{lines, parse};
    use super::*;

    /// A file large enough to be cut, with `$ORIGIN`s and `$TTL`s before
    /// the middle, owners left blank, TTLs given and not, and an error in
    /// each half; and the same file with a directive at its end, which
    /// keeps it in one piece. Both give the same records, in the same
    /// order, and the same errors at the same lines.
    #[test]
    fn two_halves_parse_as_one() {
        let mut text = String::from("$TTL 300\n@ SOA ns h 1 2 3 4 60\n  NS ns\nns A 192.0.2.1\n");
        for i in 0..30_000 {
            match i % 1000 {
                _ if i > 12_000 => {}
                0 => text += &format!("$ORIGIN z{}.example.\n", i / 1000),
                500 => text += &format!("$TTL {}\n", 100 + i / 1000),
                _ => {}
            }
            text += &format!("h{i} A 10.0.{}.{}\n", i / 256 % 256, i % 256);
            if i % 7 == 0 {
                text += &format!("  600 TXT \"t{i}\"\n");
            }
        }
        text += "bad1 A 1.2.3\n";
        let mid = text.len() / 3;
        text.insert_str(text[..mid].rfind('\n').unwrap() + 1, "bad0 MX x y\n");
        let origin = Name::from_ascii("example.").unwrap();
        let whole = format!("{text}$TTL 300\n");
        let entries = super::super::lexer::entries(&text).unwrap();
        let state = State::new(origin.clone(), None);
        assert!(state.cut(&entries, 0).is_some() || !crate::memory::two_cores());
        let whole_entries = super::super::lexer::entries(&whole).unwrap();
        assert!(state.cut(&whole_entries, 0).is_none());
        let (a, b) = (parse(&text, None, &origin), parse(&whole, None, &origin));
        let (a, b) = (a.unwrap_err(), b.unwrap_err());
        assert_eq!(lines(&a), lines(&b));
        assert_eq!(a.len(), 2);
        let ok = |t: &str| {
            parse(
                &t.replace("bad0 MX x y\n", "").replace("bad1 A 1.2.3\n", ""),
                None,
                &origin,
            )
            .unwrap()
        };
        let (a, b) = (ok(&text), ok(&whole));
        assert_eq!(a.iter().count(), 3 + 30_000 + 30_000 / 7 + 1);
        assert!(a.iter().eq(b.iter()));
        assert!(b.rest.is_empty());
        assert!(!a.rest.is_empty() || !crate::memory::two_cores());
        assert_eq!(a.warnings, b.warnings);
    }
}
