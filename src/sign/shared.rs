//! A zone's key set as a cluster shares it: the keys (their files' text,
//! private part included), their states, the roll under way and the key
//! policy's clocks, in one plain value the leader writes to etcd and every
//! node adopts.
//!
//! Why the files travel: a roll makes a new key on the leader, and every
//! node must sign with it (a DNSKEY set that differs between the nodes
//! answering for a zone breaks validation for whoever asks the other one).
//! The operator hands the first keys to every node like the zone files
//! (the digest of `cluster/digest.rs` checks they agree); keys a roll
//! makes are handed on here. So etcd holds private keys: docs/cluster.md
//! says to run it with client-certificate authentication.
//!
//! A node places a key it is handed in the directory of its own keys for
//! that zone, under the name the leader gave it (BIND's `K<zone>+alg+tag`),
//! and never overwrites a file that says something else.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::policy::Clocks;
use super::roll::Roll;
use super::{KeyError, KeyState, RollError, Signer, ZoneKey};

/// One key of a shared key set.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SharedKey {
    /// The file name without extension (`Kexample.org.+013+12345`).
    pub name: String,
    pub state: KeyState,
    /// The `.key` file's text.
    pub public: String,
    /// The `.private` file's text.
    pub private: String,
}

/// A zone's key set, roll and clocks (`state/dnssec/ZONE` in etcd).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SharedKeySet {
    pub keys: Vec<SharedKey>,
    pub roll: Option<Roll>,
    #[serde(default)]
    pub clocks: Clocks,
}

/// What a key set is, without the keys' text: cheap to take at every tick
/// and to compare (file names, not paths, which differ between nodes).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyMark {
    keys: Vec<(String, KeyState)>,
    roll: Option<Roll>,
    clocks: Clocks,
}

fn file_name(p: &Path) -> String {
    p.file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default()
}

/// The roll with its new key's file named, not placed (paths differ).
fn roll_named(roll: &Option<Roll>) -> Option<Roll> {
    roll.clone().map(|mut r| {
        r.new_file = PathBuf::from(file_name(&r.new_file));
        r
    })
}

#[derive(Debug, thiserror::Error)]
pub enum AdoptError {
    #[error("{0}")]
    Key(#[from] KeyError),
    #[error("cannot write the shared key {path}: {source}")]
    Write {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error(
        "{path} exists and differs from the key the cluster's leader made with that name: \
         not overwritten; move it aside"
    )]
    Differs { path: PathBuf },
    #[error("{0}")]
    Roll(#[from] RollError),
    #[error("a shared key is named `{0}`, which is not a key file's name")]
    BadName(String),
}

impl Signer {
    /// What the key set is now.
    pub fn mark(&self) -> KeyMark {
        KeyMark {
            keys: self
                .keys
                .iter()
                .map(|(k, s)| (file_name(&k.file), *s))
                .collect(),
            roll: roll_named(&self.roll),
            clocks: self.clocks.clone(),
        }
    }

    /// The key set with its keys' files, to share.
    pub fn shared(&self) -> Result<SharedKeySet, AdoptError> {
        let read = |p: PathBuf| {
            std::fs::read_to_string(&p).map_err(|source| AdoptError::Write { path: p, source })
        };
        let mut keys = Vec::new();
        for (k, s) in &self.keys {
            keys.push(SharedKey {
                name: file_name(&k.file),
                state: *s,
                public: read(with_ext(&k.file, "key"))?,
                private: read(with_ext(&k.file, "private"))?,
            });
        }
        Ok(SharedKeySet {
            keys,
            roll: roll_named(&self.roll),
            clocks: self.clocks.clone(),
        })
    }

    /// Take a shared key set: write the keys this node lacks beside its
    /// own, load them, take the states, roll and clocks, and save. Whether
    /// anything changed (then the zone is signed again in full).
    pub fn adopt(&mut self, set: &SharedKeySet) -> Result<bool, AdoptError> {
        let mark = KeyMark {
            keys: set.keys.iter().map(|k| (k.name.clone(), k.state)).collect(),
            roll: set.roll.clone(),
            clocks: set.clocks.clone(),
        };
        if mark == self.mark() {
            return Ok(false);
        }
        let dir = self.key_dir();
        let zone = self.origin.to_string();
        let mut keys = Vec::new();
        for k in &set.keys {
            if k.name.is_empty() || k.name.contains('/') || !k.name.starts_with('K') {
                return Err(AdoptError::BadName(k.name.clone()));
            }
            let base = dir.join(&k.name);
            let have = self
                .keys
                .iter()
                .position(|(z, _)| file_name(&z.file) == k.name);
            let key = match have {
                Some(i) => self.keys.remove(i).0,
                None => {
                    place(&with_ext(&base, "key"), &k.public, 0o644)?;
                    place(&with_ext(&base, "private"), &k.private, 0o600)?;
                    ZoneKey::load(&base, &zone)?
                }
            };
            keys.push((key, k.state));
        }
        self.take(keys, &mark, &dir)?;
        Ok(true)
    }

    /// Back to a key set taken before (a step the cluster's store did not
    /// take): keys no longer in the set are read again from their files.
    pub fn restore(&mut self, to: &KeyMark) -> Result<(), AdoptError> {
        let dir = self.key_dir();
        let zone = self.origin.to_string();
        let mut keys = Vec::new();
        for (name, state) in &to.keys {
            let key = match self
                .keys
                .iter()
                .position(|(z, _)| file_name(&z.file) == *name)
            {
                Some(i) => self.keys.remove(i).0,
                None => ZoneKey::load(&dir.join(name), &zone)?,
            };
            keys.push((key, *state));
        }
        self.take(keys, to, &dir)
    }

    /// Sign with `keys` from now on, with the roll and clocks of `mark`
    /// (the roll's new key placed in `dir`), signing everything again;
    /// saved.
    fn take(
        &mut self,
        keys: Vec<(ZoneKey, KeyState)>,
        mark: &KeyMark,
        dir: &Path,
    ) -> Result<(), AdoptError> {
        self.keys = keys;
        self.roll = mark.roll.clone().map(|mut r| {
            r.new_file = dir.join(&r.new_file);
            r
        });
        self.clocks = mark.clocks.clone();
        self.prev = None;
        self.save()?;
        self.save_clocks()?;
        Ok(())
    }

    /// Where this node keeps the zone's keys: beside its first key.
    fn key_dir(&self) -> PathBuf {
        self.keys
            .first()
            .and_then(|(k, _)| k.file.parent())
            .map(Path::to_path_buf)
            .unwrap_or_else(|| PathBuf::from("."))
    }
}

fn with_ext(base: &Path, ext: &str) -> PathBuf {
    let mut s = base.as_os_str().to_owned();
    s.push(".");
    s.push(ext);
    PathBuf::from(s)
}

/// Write a key file that is not there yet; one that is there must say the
/// same.
fn place(path: &Path, text: &str, mode: u32) -> Result<(), AdoptError> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    match std::fs::read_to_string(path) {
        Ok(have) if have == text => return Ok(()),
        Ok(_) => return Err(AdoptError::Differs { path: path.into() }),
        Err(_) => {}
    }
    let io = |source| AdoptError::Write {
        path: path.into(),
        source,
    };
    let tmp = with_ext(path, "tmp");
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(mode)
        .open(&tmp)
        .map_err(io)?;
    f.write_all(text.as_bytes()).map_err(io)?;
    f.sync_all().map_err(io)?;
    std::fs::rename(&tmp, path).map_err(io)
}
