//! One ggond per state directory: an exclusive `flock(2)` on
//! `<state_dir>/ggond.lock`, held for the life of the process.
//!
//! Why flock and why `libc` directly: the kernel releases a flock when the
//! last descriptor of the open file goes away, so a ggond killed with
//! SIGKILL (or by the OOM killer) never leaves a lock that blocks its
//! restart; no stale-pid guessing is needed. `libc` is already a
//! dependency and the call is one line, so a wrapper crate (`fs4`, `fs2`)
//! would add nothing. The descriptor is opened close-on-exec (Rust's
//! default), so commands ggond runs (exec checks, alert commands) never
//! inherit it and cannot keep the lock alive after ggond died.
//!
//! The running process writes its pid into the file, so a second ggond's
//! error can name it. The pid is information only: the lock is the flock,
//! never the file's content or existence.
//!
//! Owns: taking the lock ([`StateLock::acquire`]) and the error that names
//! the directory and the holder ([`StateLockError`]). It must not read or
//! write anything else in the state directory.

use std::fs::{File, OpenOptions};
use std::io::{Read, Seek, SeekFrom, Write};
use std::os::unix::io::AsRawFd;
use std::path::{Path, PathBuf};

/// The lock file's name inside the state directory.
pub const LOCK_FILE: &str = "ggond.lock";

/// Why the state directory could not be locked.
#[derive(Debug, thiserror::Error)]
pub enum StateLockError {
    /// Another live process holds the lock.
    #[error(
        "state directory {} is in use by another ggond ({}, lock {}): stop it, or give this \
         ggond its own [server] state_dir",
        dir.display(),
        holder_text(*pid),
        lock.display()
    )]
    InUse {
        dir: PathBuf,
        lock: PathBuf,
        /// From the lock file; None when the holder has not written it yet.
        pid: Option<u32>,
    },
    #[error("state directory {}: cannot lock {}: {source}", dir.display(), lock.display())]
    Io {
        dir: PathBuf,
        lock: PathBuf,
        source: std::io::Error,
    },
}

fn holder_text(pid: Option<u32>) -> String {
    match pid {
        Some(p) => format!("pid {p} according to the lock file"),
        None => "its pid not yet written".into(),
    }
}

/// The held lock; released when dropped (or when the process dies).
#[derive(Debug)]
pub struct StateLock {
    file: File,
    pub path: PathBuf,
}

impl StateLock {
    /// Lock `dir` (which must exist) for this process, or say who holds it.
    pub fn acquire(dir: &Path) -> Result<StateLock, StateLockError> {
        let lock = dir.join(LOCK_FILE);
        let io = |source| StateLockError::Io {
            dir: dir.to_path_buf(),
            lock: lock.clone(),
            source,
        };
        let (mut file, writable) = open(&lock).map_err(io)?;
        // SAFETY: flock on a descriptor we own; no memory is involved.
        let r = unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) };
        if r != 0 {
            let e = std::io::Error::last_os_error();
            if e.raw_os_error() == Some(libc::EWOULDBLOCK) {
                return Err(StateLockError::InUse {
                    dir: dir.to_path_buf(),
                    lock: lock.clone(),
                    pid: read_pid(&mut file),
                });
            }
            return Err(io(e));
        }
        if writable {
            write_pid(&mut file, std::process::id()).map_err(io)?;
        }
        Ok(StateLock { file, path: lock })
    }

    /// Give the lock file to the account ggond is about to switch to (it
    /// was created by root), so that a later start as that account can
    /// record its own pid in it.
    pub fn chown_to(&self, uid: u32, gid: u32) -> std::io::Result<()> {
        std::os::unix::fs::fchown(&self.file, Some(uid), Some(gid))
    }
}

/// Open for writing (to record the pid); a lock file left by another
/// account (root before a switch) is locked read-only, which flock allows.
fn open(lock: &Path) -> std::io::Result<(File, bool)> {
    match OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .open(lock)
    {
        Ok(f) => Ok((f, true)),
        Err(e) if e.kind() == std::io::ErrorKind::PermissionDenied => {
            File::open(lock).map(|f| (f, false))
        }
        Err(e) => Err(e),
    }
}

/// The pid in the lock file: one decimal line.
fn parse_pid(text: &str) -> Option<u32> {
    text.trim().parse().ok().filter(|p| *p > 0)
}

fn read_pid(file: &mut File) -> Option<u32> {
    let mut text = String::new();
    file.seek(SeekFrom::Start(0)).ok()?;
    file.read_to_string(&mut text).ok()?;
    parse_pid(&text)
}

fn write_pid(file: &mut File, pid: u32) -> std::io::Result<()> {
    file.set_len(0)?;
    file.seek(SeekFrom::Start(0))?;
    file.write_all(format!("{pid}\n").as_bytes())?;
    file.sync_data()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_second_lock_on_the_same_directory_is_refused_with_the_pid() {
        let dir = tempfile::tempdir().unwrap();
        let held = StateLock::acquire(dir.path()).unwrap();
        let text = std::fs::read_to_string(dir.path().join(LOCK_FILE)).unwrap();
        assert_eq!(parse_pid(&text), Some(std::process::id()));
        // A second open file description conflicts even in the same process.
        let e = StateLock::acquire(dir.path()).unwrap_err();
        let msg = e.to_string();
        assert!(
            matches!(e, StateLockError::InUse { pid: Some(p), .. } if p == std::process::id()),
            "{msg}"
        );
        assert!(msg.contains(&dir.path().display().to_string()), "{msg}");
        assert!(
            msg.contains(&format!("pid {}", std::process::id())),
            "{msg}"
        );
        drop(held);
        StateLock::acquire(dir.path()).expect("released on drop");
    }

    #[test]
    fn pids_parse_from_one_line_only() {
        assert_eq!(parse_pid("123\n"), Some(123));
        assert_eq!(parse_pid(""), None);
        assert_eq!(parse_pid("0"), None);
        assert_eq!(parse_pid("x"), None);
    }

    #[test]
    fn a_missing_directory_is_an_error_naming_it() {
        let dir = tempfile::tempdir().unwrap();
        let gone = dir.path().join("nope");
        let e = StateLock::acquire(&gone).unwrap_err();
        assert!(matches!(e, StateLockError::Io { .. }));
        assert!(e.to_string().contains("nope"), "{e}");
    }
}
