//! History: the append-only audit log of every change.
//!
//! Owns: `history.jsonl` in the state directory, one JSON object per line:
//! time, kind, service, from → to, cause, reason, who (token name or
//! `ggond`). Lines are appended and flushed as changes happen; nothing is
//! ever rewritten. Reading filters by service and time. It must not decide
//! anything or hold service state.

use std::io::{BufRead, Write};
use std::path::{Path, PathBuf};

use super::events::Event;

pub struct History {
    path: PathBuf,
}

impl History {
    pub fn new(state_dir: &Path) -> History {
        History {
            path: state_dir.join("history.jsonl"),
        }
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Append entries in one write and one fsync (one event, or a batch of
    /// remaps).
    pub fn append_all(&self, events: &[Event]) -> std::io::Result<()> {
        let mut lines = String::new();
        for e in events {
            lines += &serde_json::to_string(e).map_err(std::io::Error::other)?;
            lines.push('\n');
        }
        let mut f = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.path)?;
        f.write_all(lines.as_bytes())?;
        f.sync_data()
    }

    /// Entries for `service` (all if None) at or after `since`, oldest first,
    /// at most `limit` (the newest ones).
    pub fn read(&self, service: Option<&str>, since: Option<u64>, limit: usize) -> Vec<Event> {
        let Ok(f) = std::fs::File::open(&self.path) else {
            return Vec::new();
        };
        let mut out: std::collections::VecDeque<Event> = Default::default();
        for line in std::io::BufReader::new(f).lines().map_while(Result::ok) {
            let Ok(e) = serde_json::from_str::<Event>(&line) else {
                continue;
            };
            if service.is_some_and(|s| e.service.as_deref() != Some(s)) {
                continue;
            }
            if since.is_some_and(|t| e.time < t) {
                continue;
            }
            out.push_back(e);
            if out.len() > limit {
                out.pop_front();
            }
        }
        out.into()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::decide::events::{EventCause, EventKind};

    #[test]
    fn append_and_filter() {
        let dir = tempfile::tempdir().unwrap();
        let h = History::new(dir.path());
        for (i, s) in ["cic", "gocdb", "cic"].iter().enumerate() {
            h.append_all(&[
                Event::new(100 + i as u64, EventKind::Remap, EventCause::Operator)
                    .service(s)
                    .from_target("primary")
                    .to_target("backup")
                    .reason("test")
                    .who("operator"),
            ])
            .unwrap();
        }
        assert_eq!(h.read(None, None, 100).len(), 3);
        assert_eq!(h.read(Some("cic"), None, 100).len(), 2);
        assert_eq!(h.read(Some("cic"), Some(101), 100).len(), 1);
        let last = h.read(None, None, 1);
        assert_eq!(last[0].time, 102);
    }
}
