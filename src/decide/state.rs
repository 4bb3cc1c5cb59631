//! Persistent state: what must survive a restart or a crash.
//!
//! Owns: the state file (`state.json` in the state directory): each service's
//! active target, operator pin, drains and running drill (each with its
//! wall-clock deadline), and each zone's last SOA serial. Writes are
//! atomic (temp file, fsync, rename, fsync of the directory), so after a crash
//! the file holds either the last acknowledged state or the one before it. A
//! file that cannot be read or parsed is moved aside (`state.json.bad-<time>`)
//! and the daemon starts from the configured primaries, saying so loudly.
//!
//! It must not decide anything: it stores and loads plain data.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct PersistedState {
    #[serde(default)]
    pub services: BTreeMap<String, ServiceState>,
    /// Zone origin → last published SOA serial.
    #[serde(default)]
    pub serials: BTreeMap<String, u32>,
    /// Which journal continues this file (see [`super::state_journal`]);
    /// 0 in files written before the journal, and in the cluster's state.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub generation: u64,
}

fn is_zero(n: &u64) -> bool {
    *n == 0
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ServiceState {
    /// Name of the active target.
    pub active: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pin: Option<Override>,
    /// Drained targets by name.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub drains: BTreeMap<String, Override>,
    /// A failure drill running when this was written (absent in files
    /// written before drills were persisted).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub drill: Option<DrillState>,
    /// Per-region services: each region's answer, pin and drill.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub regions: BTreeMap<String, RegionState>,
}

impl ServiceState {
    /// The service's state from its regions': the default region's is
    /// kept at the top (the layout every state file has), the listed
    /// regions' under `regions`.
    pub fn from_regions(
        default: RegionState,
        drains: BTreeMap<String, Override>,
        regions: BTreeMap<String, RegionState>,
    ) -> ServiceState {
        ServiceState {
            active: default.active,
            pin: default.pin,
            drains,
            drill: default.drill,
            regions,
        }
    }

    /// One region's state by name (`default`: the top-level one).
    pub fn region(&self, name: &str) -> Option<RegionState> {
        if name == crate::config::geo::DEFAULT_REGION {
            return Some(RegionState {
                active: self.active.clone(),
                pin: self.pin.clone(),
                drill: self.drill.clone(),
            });
        }
        self.regions.get(name).cloned()
    }
}

/// One region of a service: the default one (kept at the top of
/// [`ServiceState`]) or a listed one.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RegionState {
    /// Name of the target the region answers.
    pub active: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pin: Option<Override>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub drill: Option<DrillState>,
}

/// A running failure drill: `target` is treated as failed until `until`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DrillState {
    pub target: String,
    /// The target that was active when it began, restored at its end.
    pub previous: String,
    #[serde(default)]
    pub who: String,
    /// Unix seconds.
    pub until: u64,
}

/// An operator's override: why, who, since when, until when.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Override {
    /// The target it concerns (for a pin: the pinned target).
    pub target: String,
    #[serde(default)]
    pub reason: String,
    #[serde(default)]
    pub author: String,
    /// Unix seconds.
    pub since: u64,
    /// Unix seconds; None = until removed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expires: Option<u64>,
}

pub struct StateStore {
    dir: PathBuf,
    journal: std::sync::Mutex<super::state_journal::Journal>,
}

/// What loading found.
#[derive(Debug)]
pub enum Loaded {
    Fresh,
    Ok(PersistedState),
    /// The file was unreadable; it was moved to the path given.
    Corrupt {
        error: String,
        kept_at: PathBuf,
    },
}

impl StateStore {
    pub fn new(dir: &Path) -> std::io::Result<StateStore> {
        std::fs::create_dir_all(dir)?;
        Ok(StateStore {
            dir: dir.to_path_buf(),
            journal: Default::default(),
        })
    }

    pub fn path(&self) -> PathBuf {
        self.dir.join("state.json")
    }

    /// The state as a restart finds it: the file and its journal.
    pub fn load(&self) -> Loaded {
        match read_journal(&self.dir) {
            Ok(None) => Loaded::Fresh,
            Ok(Some((state, generation, found))) => {
                *self.journal.lock().unwrap() =
                    super::state_journal::Journal::loaded(&state, generation, found);
                Loaded::Ok(state)
            }
            Err(error) => self.set_aside(error),
        }
    }

    fn set_aside(&self, error: String) -> Loaded {
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        // A name no earlier bad file has: two set aside within one second
        // (a crash loop) must not overwrite each other.
        let kept_at = (0..)
            .map(|n| match n {
                0 => self.dir.join(format!("state.json.bad-{now}")),
                n => self.dir.join(format!("state.json.bad-{now}.{n}")),
            })
            .find(|p| !p.exists())
            .expect("an unused name");
        match std::fs::rename(self.path(), &kept_at) {
            Ok(()) => Loaded::Corrupt { error, kept_at },
            Err(e) => Loaded::Corrupt {
                error: format!(
                    "{error} (and it could not be set aside: {e}; the next save replaces it)"
                ),
                kept_at: self.path(),
            },
        }
    }

    /// Make `state` durable: a journal line of what changed since the
    /// last save (the whole file when due), fsynced before it returns.
    pub fn save(&self, state: &PersistedState) -> std::io::Result<()> {
        self.journal.lock().unwrap().save(&self.dir, state)
    }

    /// [`Self::save`] of the services a change touched (and the serials);
    /// `whole` makes the whole state when the file is due to be written
    /// again. See [`super::state_journal::Journal::save_changed`].
    pub fn save_changed(
        &self,
        changed: Vec<(String, ServiceState)>,
        serials: &BTreeMap<String, u32>,
        whole: impl FnOnce() -> PersistedState,
    ) -> std::io::Result<()> {
        self.journal
            .lock()
            .unwrap()
            .save_changed(&self.dir, changed, serials, whole)
    }

    /// Write the whole state file and start an empty journal (shutdown).
    pub fn save_whole(&self, state: &PersistedState) -> std::io::Result<()> {
        self.journal.lock().unwrap().compact(&self.dir, state)
    }
}

/// The state in `dir` (`state.json` and its journal) without touching it:
/// None when there is none; the error says why the file cannot be read.
/// Also returns the file's generation (the state's is left 0) and how many
/// journal lines were applied.
pub fn read(dir: &Path) -> Result<Option<(PersistedState, u64, usize)>, String> {
    Ok(read_journal(dir)?.map(|(state, generation, found)| (state, generation, found.lines)))
}

/// [`read`], saying whether the journal may be appended to.
fn read_journal(
    dir: &Path,
) -> Result<Option<(PersistedState, u64, super::state_journal::Replayed)>, String> {
    let path = dir.join("state.json");
    let bytes = match std::fs::read(&path) {
        Ok(b) => b,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(format!("cannot read {}: {e}", path.display())),
    };
    let mut state: PersistedState =
        serde_json::from_slice(&bytes).map_err(|e| format!("{}: {e}", path.display()))?;
    let found = super::state_journal::replay(dir, &mut state);
    let generation = std::mem::take(&mut state.generation);
    Ok(Some((state, generation, found)))
}

/// Replace `path` with `data` so that a crash leaves the old file or the
/// new one, never a mix: a temporary file beside it, fsync, rename, fsync of
/// the directory.
pub fn write_atomic(path: &Path, data: &[u8]) -> std::io::Result<()> {
    let dir = path.parent().unwrap_or(Path::new("."));
    let name = path
        .file_name()
        .map_or("file".into(), |n| n.to_string_lossy());
    let tmp = dir.join(format!(".{name}.tmp"));
    {
        let mut f = std::fs::File::create(&tmp)?;
        f.write_all(data)?;
        f.sync_all()?;
    }
    std::fs::rename(&tmp, path)?;
    std::fs::File::open(dir)?.sync_all()?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_corrupt_file_is_set_aside() {
        let dir = tempfile::tempdir().unwrap();
        let store = StateStore::new(dir.path()).unwrap();
        assert!(matches!(store.load(), Loaded::Fresh));
        let mut s = PersistedState::default();
        s.services.insert(
            "cic".into(),
            ServiceState {
                active: "backup".into(),
                pin: None,
                drains: BTreeMap::new(),
                drill: Some(DrillState {
                    target: "primary".into(),
                    previous: "primary".into(),
                    who: "ops".into(),
                    until: 1_800_000_300,
                }),
                regions: BTreeMap::new(),
            },
        );
        s.serials.insert("ggon.org.".into(), 42);
        store.save(&s).unwrap();
        match store.load() {
            Loaded::Ok(l) => assert_eq!(l, s),
            other => panic!("{other:?}"),
        }
        // A file written before drills were persisted still loads.
        std::fs::write(store.path(), br#"{"services":{"cic":{"active":"backup"}}}"#).unwrap();
        match store.load() {
            Loaded::Ok(l) => assert_eq!(l.services["cic"].drill, None),
            other => panic!("{other:?}"),
        }
        // Two bad files in a row (the same second, as in a crash loop) are
        // both kept, under different names.
        let mut kept = Vec::new();
        for bad in [&b"{\"services\": {\"cic\": "[..], b"not json"] {
            std::fs::write(store.path(), bad).unwrap();
            match store.load() {
                Loaded::Corrupt { kept_at, .. } => {
                    assert_eq!(std::fs::read(&kept_at).unwrap(), bad);
                    assert!(!store.path().exists());
                    kept.push(kept_at);
                }
                other => panic!("{other:?}"),
            }
        }
        assert_ne!(kept[0], kept[1]);
    }
}
