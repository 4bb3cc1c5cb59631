//! The state file's journal: a change costs what it changed.
//!
//! Why: every remap used to rewrite the whole `state.json` (at 30,000
//! services about 5 MB serialised, written and fsynced per remap: 90 ms).
//! Now a save appends one line to `state.journal` holding only the services
//! (and serials) that differ from the last save, and fsyncs it; the whole
//! file is written again (compaction) every [`COMPACT_AFTER`] lines, at
//! start-up's first save and at shutdown.
//!
//! Crash safety: each line is appended and fsynced before the change is
//! acknowledged, as the whole file was. A torn last line (a crash while it
//! was written) was never acknowledged and is skipped. `state.json` carries
//! a generation, and the journal's first line names the generation it
//! continues: a compaction writes `state.json` with the next generation
//! (atomically), then a fresh journal; a crash between the two leaves a
//! journal of the old generation, whose changes are all in the new file,
//! and it is ignored.
//!
//! It must not decide anything: it stores and loads plain data.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::Path;

use serde::{Deserialize, Serialize};

use super::state::{PersistedState, ServiceState};

/// Lines before the whole state is written again.
pub const COMPACT_AFTER: usize = 1_000;

pub const FILE: &str = "state.journal";

/// The first line of a journal.
#[derive(Serialize, Deserialize)]
struct Header {
    generation: u64,
}

/// One save: what changed since the one before.
#[derive(Debug, Default, Serialize, Deserialize)]
struct Delta {
    /// Changed services (None: removed).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    services: BTreeMap<String, Option<ServiceState>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    serials: Option<BTreeMap<String, u32>>,
}

impl Delta {
    fn between(last: &PersistedState, now: &PersistedState) -> Delta {
        let mut d = Delta::default();
        for (name, s) in &now.services {
            if last.services.get(name) != Some(s) {
                d.services.insert(name.clone(), Some(s.clone()));
            }
        }
        for name in last.services.keys() {
            if !now.services.contains_key(name) {
                d.services.insert(name.clone(), None);
            }
        }
        if last.serials != now.serials {
            d.serials = Some(now.serials.clone());
        }
        d
    }

    fn is_empty(&self) -> bool {
        self.services.is_empty() && self.serials.is_none()
    }

    fn apply(self, to: &mut PersistedState) {
        for (name, s) in self.services {
            match s {
                Some(s) => to.services.insert(name, s),
                None => to.services.remove(&name),
            };
        }
        if let Some(serials) = self.serials {
            to.serials = serials;
        }
    }
}

/// What the store knows of its journal.
#[derive(Default)]
pub(super) struct Journal {
    /// The state as last saved or loaded (None: write it whole next).
    last: Option<PersistedState>,
    generation: u64,
    lines: usize,
}

/// What a load found of the journal.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Replayed {
    /// Lines applied onto the state file's contents.
    pub lines: usize,
    /// The journal continues the file's generation and every line of it
    /// was read: the next save may append to it. Otherwise (no journal, one
    /// of another generation, a torn last line) the next save writes the
    /// whole state and a fresh journal: a line appended after a torn one,
    /// or to a journal of another generation, would be skipped by the next
    /// restart's replay, and an acknowledged change lost.
    pub appendable: bool,
}

/// Apply the journal in `dir` onto `state` (read from `state.json`) if it
/// continues that file's generation.
pub(super) fn replay(dir: &Path, state: &mut PersistedState) -> Replayed {
    let none = Replayed {
        lines: 0,
        appendable: false,
    };
    let Ok(text) = std::fs::read_to_string(dir.join(FILE)) else {
        return none;
    };
    let mut lines = text.lines();
    let generation = lines
        .next()
        .and_then(|l| serde_json::from_str::<Header>(l).ok())
        .map(|h| h.generation);
    if generation != Some(state.generation) {
        return none;
    }
    let mut n = 0;
    for line in lines {
        // A torn last line was never acknowledged.
        let Ok(d) = serde_json::from_str::<Delta>(line) else {
            tracing::warn!(line = n + 2, "skipping an unreadable state journal line");
            return Replayed {
                lines: n,
                appendable: false,
            };
        };
        d.apply(state);
        n += 1;
    }
    Replayed {
        lines: n,
        appendable: text.ends_with('\n'),
    }
}

impl Journal {
    /// After a load: the state it gave and how many journal lines it took.
    pub(super) fn loaded(state: &PersistedState, generation: u64, found: Replayed) -> Journal {
        Journal {
            last: found.appendable.then(|| state.clone()),
            generation,
            lines: found.lines,
        }
    }

    /// Save `state`: one journal line, or the whole file when due.
    pub(super) fn save(&mut self, dir: &Path, state: &PersistedState) -> std::io::Result<()> {
        let Some(last) = self.last.as_ref().filter(|_| self.lines < COMPACT_AFTER) else {
            return self.compact(dir, state);
        };
        let delta = Delta::between(last, state);
        self.append(dir, delta)
    }

    /// Save only what the caller changed: `changed` services and the
    /// serials, compared with the last save for those names only, so a
    /// remap costs the same at 30,000 services as at 10. `whole` is the
    /// whole state, made only when the file is written again (compaction).
    /// The caller names every service it changed since its last save.
    pub(super) fn save_changed(
        &mut self,
        dir: &Path,
        changed: Vec<(String, ServiceState)>,
        serials: &BTreeMap<String, u32>,
        whole: impl FnOnce() -> PersistedState,
    ) -> std::io::Result<()> {
        let Some(last) = self.last.as_ref().filter(|_| self.lines < COMPACT_AFTER) else {
            return self.compact(dir, &whole());
        };
        let mut delta = Delta::default();
        for (name, s) in changed {
            if last.services.get(&name) != Some(&s) {
                delta.services.insert(name, Some(s));
            }
        }
        if last.serials != *serials {
            delta.serials = Some(serials.clone());
        }
        self.append(dir, delta)
    }

    /// Append one line (fsynced) and take it into `last`.
    fn append(&mut self, dir: &Path, delta: Delta) -> std::io::Result<()> {
        if delta.is_empty() {
            return Ok(());
        }
        let mut line = serde_json::to_vec(&delta).map_err(std::io::Error::other)?;
        line.push(b'\n');
        // Opened for each line: a journal replaced or removed under a
        // running ggond is noticed, not written to as an unlinked file;
        // one removed is begun again with the whole state.
        let opened = std::fs::OpenOptions::new()
            .append(true)
            .open(dir.join(FILE));
        let mut f = match opened {
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                let mut whole = self.last.take().unwrap_or_default();
                delta.apply(&mut whole);
                return self.compact(dir, &whole);
            }
            other => other?,
        };
        f.write_all(&line)?;
        f.sync_data()?;
        if let Some(last) = self.last.as_mut() {
            delta.apply(last);
        }
        self.lines += 1;
        Ok(())
    }

    /// Write the whole state (next generation), then an empty journal.
    pub(super) fn compact(&mut self, dir: &Path, state: &PersistedState) -> std::io::Result<()> {
        self.last = None;
        let mut whole = state.clone();
        whole.generation = self.generation + 1;
        let data = serde_json::to_vec_pretty(&whole).map_err(std::io::Error::other)?;
        super::state::write_atomic(&dir.join("state.json"), &data)?;
        self.generation = whole.generation;
        whole.generation = 0;
        let mut header = serde_json::to_vec(&Header {
            generation: self.generation,
        })
        .map_err(std::io::Error::other)?;
        header.push(b'\n');
        super::state::write_atomic(&dir.join(FILE), &header)?;
        self.last = Some(whole);
        self.lines = 0;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::super::state::{Loaded, StateStore};
    use super::*;

    fn with(active: &[(&str, &str)], serial: u32) -> PersistedState {
        let mut s = PersistedState::default();
        for (name, a) in active {
            s.services.insert(
                name.to_string(),
                ServiceState {
                    active: a.to_string(),
                    pin: None,
                    drains: BTreeMap::new(),
                    drill: None,
                    regions: BTreeMap::new(),
                },
            );
        }
        s.serials.insert("ggon.org.".into(), serial);
        s
    }

    fn load(dir: &Path) -> PersistedState {
        match StateStore::new(dir).unwrap().load() {
            Loaded::Ok(s) => s,
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn a_save_appends_what_changed_and_a_restart_reads_file_and_journal() {
        let dir = tempfile::tempdir().unwrap();
        let store = StateStore::new(dir.path()).unwrap();
        let s1 = with(&[("a", "primary"), ("b", "primary")], 1);
        store.save(&s1).unwrap();
        let whole = std::fs::read(dir.path().join("state.json")).unwrap();
        let s2 = with(&[("a", "backup"), ("b", "primary")], 2);
        store.save(&s2).unwrap();
        // The file is untouched; the journal holds only `a` and the serials.
        assert_eq!(std::fs::read(dir.path().join("state.json")).unwrap(), whole);
        let journal = std::fs::read_to_string(dir.path().join(FILE)).unwrap();
        assert_eq!(journal.lines().count(), 2, "{journal}");
        assert!(
            journal.contains("\"a\"") && !journal.contains("\"b\""),
            "{journal}"
        );
        // Nothing changed: nothing written.
        store.save(&s2).unwrap();
        assert_eq!(
            std::fs::read_to_string(dir.path().join(FILE)).unwrap(),
            journal
        );
        // A removed service.
        let s3 = with(&[("a", "backup")], 3);
        store.save(&s3).unwrap();
        assert_eq!(load(dir.path()), s3);
        // A torn last line (a crash while writing it) is skipped.
        let mut f = std::fs::OpenOptions::new()
            .append(true)
            .open(dir.path().join(FILE))
            .unwrap();
        f.write_all(b"{\"services\":{\"a\":{\"act").unwrap();
        assert_eq!(load(dir.path()), s3);
    }

    #[test]
    fn a_journal_of_an_older_generation_is_ignored_and_compaction_starts_a_new_one() {
        let dir = tempfile::tempdir().unwrap();
        let store = StateStore::new(dir.path()).unwrap();
        store.save(&with(&[("a", "primary")], 1)).unwrap();
        store.save(&with(&[("a", "backup")], 2)).unwrap();
        let old_journal = std::fs::read(dir.path().join(FILE)).unwrap();
        // Compaction (shutdown): the whole state, an empty journal.
        let s = with(&[("a", "backup2")], 3);
        store.save_whole(&s).unwrap();
        assert_eq!(load(dir.path()), s);
        // A crash between writing the file and the new journal leaves the
        // old journal: its changes are older than the file, and ignored.
        std::fs::write(dir.path().join(FILE), old_journal).unwrap();
        assert_eq!(load(dir.path()), s);
        // Every COMPACT_AFTER lines the whole file is written again.
        let store = StateStore::new(dir.path()).unwrap();
        let _ = store.load();
        for i in 0..COMPACT_AFTER as u32 + 5 {
            store.save(&with(&[("a", "primary")], 10 + i)).unwrap();
        }
        let lines = std::fs::read_to_string(dir.path().join(FILE))
            .unwrap()
            .lines()
            .count();
        assert!(lines < 10, "{lines} lines: not compacted");
        assert_eq!(
            load(dir.path()).serials["ggon.org."],
            10 + COMPACT_AFTER as u32 + 4
        );
    }

    #[test]
    fn a_save_after_a_load_survives_a_restart_whatever_journal_the_load_found() {
        let journal = |d: &Path| d.join(FILE);
        type Leave = fn(&Path);
        let cases: [(&str, Leave); 4] = [
            ("an intact journal", |_| {}),
            (
                "no journal (a state directory from before the journal)",
                |d| std::fs::remove_file(d.join(FILE)).unwrap(),
            ),
            (
                "a journal of an older generation (a crash inside a compaction)",
                |d| {
                    let old = "{\"generation\":0}\n{\"serials\":{\"ggon.org.\":99}}\n";
                    std::fs::write(d.join(FILE), old).unwrap()
                },
            ),
            ("a torn last line (a crash while it was written)", |d| {
                let mut f = std::fs::OpenOptions::new()
                    .append(true)
                    .open(d.join(FILE))
                    .unwrap();
                f.write_all(b"{\"services\":{\"a\":{\"act").unwrap();
            }),
        ];
        for (what, leave) in cases {
            let dir = tempfile::tempdir().unwrap();
            let store = StateStore::new(dir.path()).unwrap();
            store.save(&with(&[("a", "primary")], 1)).unwrap();
            store.save(&with(&[("a", "backup")], 2)).unwrap();
            leave(dir.path());
            // A restart, then an acknowledged save, then another restart.
            let store = StateStore::new(dir.path()).unwrap();
            let _ = store.load();
            let s3 = with(&[("a", "backup2")], 3);
            store.save(&s3).unwrap();
            assert_eq!(load(dir.path()), s3, "{what}");
            let s4 = with(&[("a", "primary")], 4);
            store
                .save_changed(vec![], &s4.serials, || s4.clone())
                .unwrap();
            assert_eq!(load(dir.path()).serials, s4.serials, "{what}");
        }
        // The journal removed under a running ggond: the next save writes
        // the whole state and begins it again.
        let dir = tempfile::tempdir().unwrap();
        let store = StateStore::new(dir.path()).unwrap();
        store.save(&with(&[("a", "primary")], 1)).unwrap();
        std::fs::remove_file(journal(dir.path())).unwrap();
        let s2 = with(&[("a", "backup")], 2);
        store.save(&s2).unwrap();
        assert!(journal(dir.path()).exists());
        assert_eq!(load(dir.path()), s2);
    }

    #[test]
    fn a_save_of_the_changed_services_reads_back_like_a_whole_save() {
        let dir = tempfile::tempdir().unwrap();
        let store = StateStore::new(dir.path()).unwrap();
        let s1 = with(&[("a", "primary"), ("b", "primary"), ("c", "primary")], 1);
        store.save(&s1).unwrap();
        let s2 = with(&[("a", "primary"), ("b", "backup"), ("c", "primary")], 2);
        let b = ("b".to_string(), s2.services["b"].clone());
        let whole_made = std::cell::Cell::new(false);
        let whole = || {
            whole_made.set(true);
            s2.clone()
        };
        store
            .save_changed(vec![b.clone()], &s2.serials, whole)
            .unwrap();
        assert!(!whole_made.get(), "the whole state was made for one change");
        let journal = std::fs::read_to_string(dir.path().join(FILE)).unwrap();
        assert!(
            journal.contains("\"b\"") && !journal.contains("\"a\""),
            "{journal}"
        );
        assert_eq!(load(dir.path()), s2);
        // A service named as changed that did not change is not written.
        store
            .save_changed(vec![b], &s2.serials, || s2.clone())
            .unwrap();
        assert_eq!(
            std::fs::read_to_string(dir.path().join(FILE)).unwrap(),
            journal
        );
        // When the file is due to be written again, the whole state is.
        let store = StateStore::new(dir.path()).unwrap();
        let _ = store.load();
        for i in 0..COMPACT_AFTER as u32 + 1 {
            let mut s = s2.clone();
            s.serials.insert("ggon.org.".into(), 10 + i);
            store
                .save_changed(vec![], &s.serials.clone(), || s.clone())
                .unwrap();
        }
        assert_eq!(
            load(dir.path()).serials["ggon.org."],
            10 + COMPACT_AFTER as u32
        );
        assert_eq!(load(dir.path()).services, s2.services);
    }
}
