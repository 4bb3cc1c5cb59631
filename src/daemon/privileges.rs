//! Privileges: bind as root, then run as an unprivileged account.
//!
//! Like NSD's `username:`, ggond binds its DNS and control sockets first
//! (port 53 needs root or CAP_NET_BIND_SERVICE), then switches to `[server]
//! user` for good: groups from the user's entry (initgroups), then the real,
//! effective and saved group and user ids, and it checks that root cannot be
//! regained. Everything that writes (state, token, journal, history) or is
//! read again later (zone and key files on reload) is opened after the
//! switch, and [`check_paths`] names any of them the new user cannot use.
//!
//! Started as root without `user`, ggond refuses (`user = "root"` runs as
//! root on purpose). Started unprivileged (systemd's `User=` with
//! `AmbientCapabilities=CAP_NET_BIND_SERVICE`), there is nothing to switch:
//! `user` must then be unset, `"root"`, or the account already in use.

use std::ffi::{CStr, CString};
use std::io;
use std::ops::Range;
use std::path::{Path, PathBuf};

use crate::config::{Config, ConfigError};

/// An account to switch to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Account {
    pub user: String,
    pub uid: u32,
    pub group: String,
    pub gid: u32,
}

/// What start-up does about privileges once the sockets are bound.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Plan {
    /// Keep the current user (unprivileged already, or root on purpose).
    Stay,
    /// Switch to this account.
    Switch(Account),
}

#[derive(Debug, thiserror::Error)]
pub enum PrivilegeError {
    /// The configuration (or `--user`/`--group`) cannot work: exit 2.
    #[error("{0}")]
    Config(ConfigError),
    /// The switch itself failed: exit 1.
    #[error("cannot switch to user {user} (uid {uid}, gid {gid}): {step}: {source}")]
    Switch {
        user: String,
        uid: u32,
        gid: u32,
        step: &'static str,
        source: io::Error,
    },
}

impl PrivilegeError {
    pub fn exit_code(&self) -> u8 {
        match self {
            PrivilegeError::Config(_) => crate::cli::exit::CONFIG,
            PrivilegeError::Switch { .. } => crate::cli::exit::FAILURE,
        }
    }
}

/// A path ggond must write or read again is not open to the account it
/// runs as. Each names the path, the user and what to do.
#[derive(Debug, thiserror::Error)]
pub enum PathError {
    #[error(
        "state directory {} cannot be created by user {who}: {source}; create it and chown \
         it to that user, or set [server] state_dir",
        dir.display()
    )]
    StateDir {
        dir: PathBuf,
        who: String,
        source: io::Error,
    },
    /// `what`: "state directory" or "state file".
    #[error("{what} {} is not writable by user {who}: {source}; chown it to that user", path.display())]
    NotWritable {
        what: &'static str,
        path: PathBuf,
        who: String,
        source: io::Error,
    },
    #[error(
        "control token file {} is not readable by user {who}: {source}; chown it to that user",
        path.display()
    )]
    TokenUnreadable {
        path: PathBuf,
        who: String,
        source: io::Error,
    },
    #[error(
        "control token file {} cannot be created by user {who} ({} is not writable: {source})",
        path.display(),
        dir.display()
    )]
    TokenUncreatable {
        path: PathBuf,
        dir: PathBuf,
        who: String,
        source: io::Error,
    },
    /// A config, zone or key file: a reload would fail.
    #[error(
        "{} is not readable by user {who}: {source}; a reload would fail (chgrp it to the \
         user's group and make it group-readable)",
        path.display()
    )]
    Unreadable {
        path: PathBuf,
        who: String,
        source: io::Error,
    },
}

/// Where a user or group name came from, for error messages.
struct Named<'a> {
    value: &'a str,
    field: &'static str,
    /// Span in the config file; None: from the command line.
    span: Option<Range<usize>>,
}

impl Named<'_> {
    fn error(&self, cfg: &Config, message: String) -> PrivilegeError {
        PrivilegeError::Config(match &self.span {
            Some(span) => cfg.error_at(span.clone(), self.field, message),
            None => ConfigError {
                file: cfg.path.clone(),
                line: None,
                field: format!("{} (--{})", self.field, &self.field[7..]),
                message,
            },
        })
    }
}

/// Decide what to do about privileges. `starting` is false for
/// `--check-config`: then only the names are looked up (the check may run
/// as another user than the daemon will).
pub fn plan(
    cfg: &Config,
    user: Option<&str>,
    group: Option<&str>,
    starting: bool,
) -> Result<Plan, PrivilegeError> {
    let pick = |cli: Option<&str>, from_cfg: &Option<toml::Spanned<String>>| {
        cli.map(|v| (v.to_string(), None)).or_else(|| {
            from_cfg
                .as_ref()
                .map(|s| (s.get_ref().clone(), Some(s.span())))
        })
    };
    let user = pick(user, &cfg.server.user);
    let group = pick(group, &cfg.server.group);
    let user_named = user.as_ref().map(|(v, span)| Named {
        value: v,
        field: "server.user",
        span: span.clone(),
    });
    let group_named = group.as_ref().map(|(v, span)| Named {
        value: v,
        field: "server.group",
        span: span.clone(),
    });
    // SAFETY: geteuid cannot fail.
    let euid = unsafe { libc::geteuid() };
    let Some(u) = user_named else {
        if starting && euid == 0 {
            return Err(PrivilegeError::Config(ConfigError {
                file: cfg.path.clone(),
                line: None,
                field: "server.user".into(),
                message: "refusing to run as root: set [server] user = \"ggon\" (an \
                          unprivileged account ggond switches to once its sockets are bound), \
                          or user = \"root\" to run as root on purpose"
                    .into(),
            }));
        }
        return Ok(Plan::Stay);
    };
    if u.value == "root" && group_named.is_none() {
        return Ok(Plan::Stay);
    }
    let Some((uid, primary_gid)) = lookup_user(u.value) else {
        return Err(u.error(cfg, format!("no user named `{}`", u.value)));
    };
    let (group_name, gid) = match &group_named {
        Some(g) => match lookup_group(g.value) {
            Some(gid) => (g.value.to_string(), gid),
            None => return Err(g.error(cfg, format!("no group named `{}`", g.value))),
        },
        None => (
            group_name(primary_gid).unwrap_or_else(|| primary_gid.to_string()),
            primary_gid,
        ),
    };
    let account = Account {
        user: u.value.to_string(),
        uid,
        group: group_name,
        gid,
    };
    if !starting {
        return Ok(Plan::Switch(account));
    }
    if euid == 0 {
        return Ok(if uid == 0 {
            Plan::Stay
        } else {
            Plan::Switch(account)
        });
    }
    if euid == uid {
        return Ok(Plan::Stay);
    }
    Err(u.error(
        cfg,
        format!(
            "started as {} (uid {euid}), which cannot switch to user `{}`: start ggond as root \
             (it switches once its sockets are bound) or as `{}`",
            user_name(euid).unwrap_or_else(|| "?".into()),
            u.value,
            u.value
        ),
    ))
}

/// Switch the whole process to `account` for good. Call it while the
/// process has one thread (glibc changes every thread's ids anyway).
pub fn switch(account: &Account) -> Result<(), PrivilegeError> {
    let fail = |step: &'static str, source: io::Error| PrivilegeError::Switch {
        user: account.user.clone(),
        uid: account.uid,
        gid: account.gid,
        step,
        source,
    };
    let name = CString::new(account.user.as_str())
        .map_err(|_| fail("user name", io::ErrorKind::InvalidInput.into()))?;
    // SAFETY: plain libc calls with a valid C string and ids.
    unsafe {
        if libc::initgroups(name.as_ptr(), account.gid as libc::gid_t) != 0 {
            return Err(fail("initgroups", io::Error::last_os_error()));
        }
        if libc::setresgid(account.gid, account.gid, account.gid) != 0 {
            return Err(fail("setresgid", io::Error::last_os_error()));
        }
        if libc::setresuid(account.uid, account.uid, account.uid) != 0 {
            return Err(fail("setresuid", io::Error::last_os_error()));
        }
        if libc::getuid() != account.uid
            || libc::geteuid() != account.uid
            || libc::getgid() != account.gid
            || libc::getegid() != account.gid
        {
            return Err(fail("check", io::Error::other("ids did not change")));
        }
        if libc::setuid(0) == 0 {
            return Err(fail("check", io::Error::other("root could be regained")));
        }
        // A set-id switch makes the process non-dumpable, so /proc/self
        // would belong to root; the daemon's own files are its own again.
        libc::prctl(libc::PR_SET_DUMPABLE, 1, 0, 0, 0);
    }
    // Single-threaded here (see above): child processes (exec checks,
    // command notifiers) see the account they run as.
    for (k, v) in [
        ("USER", account.user.as_str()),
        ("LOGNAME", account.user.as_str()),
    ] {
        std::env::set_var(k, v);
    }
    if let Some(home) = home_of(account.uid) {
        std::env::set_var("HOME", home);
    }
    Ok(())
}

/// The account ggond runs as now, for messages: `ggon (uid 105)`.
pub fn current() -> String {
    let uid = unsafe { libc::geteuid() };
    format!(
        "{} (uid {uid})",
        user_name(uid).unwrap_or_else(|| "?".into())
    )
}

/// Check, as the account ggond now runs as, every path it will write or
/// read again: the state directory and what is in it (state, history,
/// UPDATE journal, token), the config, zone and key files (reload reads
/// them). The error names the path and the user.
pub fn check_paths(cfg: &Config, token_file: &Path) -> Result<(), PathError> {
    let who = current();
    let dir = &cfg.server.state_dir;
    if !dir.exists() {
        if let Err(source) = std::fs::create_dir_all(dir) {
            return Err(PathError::StateDir {
                dir: dir.clone(),
                who,
                source,
            });
        }
    }
    let mut writable: Vec<PathBuf> = vec![dir.clone()];
    let updates = dir.join("updates");
    writable.push(updates.clone());
    if let Ok(entries) = std::fs::read_dir(&updates) {
        writable.extend(entries.flatten().map(|e| e.path()));
    }
    for f in ["state.json", "state.journal", "history.jsonl"] {
        writable.push(dir.join(f));
    }
    for p in writable.iter().filter(|p| p.exists()) {
        if let Err(source) = access(p, libc::W_OK) {
            let what = if p == dir {
                "state directory"
            } else {
                "state file"
            };
            return Err(PathError::NotWritable {
                what,
                path: p.clone(),
                who,
                source,
            });
        }
    }
    if token_file.exists() {
        if let Err(source) = access(token_file, libc::R_OK) {
            return Err(PathError::TokenUnreadable {
                path: token_file.to_path_buf(),
                who,
                source,
            });
        }
    } else if let Some(parent) = token_file.parent().filter(|p| p.exists()) {
        if let Err(source) = access(parent, libc::W_OK) {
            return Err(PathError::TokenUncreatable {
                path: token_file.to_path_buf(),
                dir: parent.to_path_buf(),
                who,
                source,
            });
        }
    }
    let mut readable: Vec<&Path> = vec![&cfg.path];
    readable.extend(
        cfg.zones
            .iter()
            .filter_map(|z| z.file.as_ref().map(|f| f.get_ref().as_path())),
    );
    readable.extend(cfg.keys.iter().filter_map(|k| k.file.as_deref()));
    for p in readable {
        if let Err(source) = access(p, libc::R_OK) {
            return Err(PathError::Unreadable {
                path: p.to_path_buf(),
                who,
                source,
            });
        }
    }
    Ok(())
}

fn access(path: &Path, mode: libc::c_int) -> io::Result<()> {
    use std::os::unix::ffi::OsStrExt;
    let c = CString::new(path.as_os_str().as_bytes())
        .map_err(|_| io::Error::from(io::ErrorKind::InvalidInput))?;
    // SAFETY: a valid C string; access(2) only reads it.
    if unsafe { libc::access(c.as_ptr(), mode) } == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

/// (uid, primary gid) of a user name.
pub fn lookup_user(name: &str) -> Option<(u32, u32)> {
    let c = CString::new(name).ok()?;
    with_passwd(|pw, buf, res| unsafe {
        libc::getpwnam_r(c.as_ptr(), pw, buf.as_mut_ptr(), buf.len(), res)
    })
    .map(|(uid, gid, _, _)| (uid, gid))
}

fn user_name(uid: u32) -> Option<String> {
    with_passwd(|pw, buf, res| unsafe {
        libc::getpwuid_r(uid, pw, buf.as_mut_ptr(), buf.len(), res)
    })
    .map(|(_, _, name, _)| name)
}

fn home_of(uid: u32) -> Option<String> {
    with_passwd(|pw, buf, res| unsafe {
        libc::getpwuid_r(uid, pw, buf.as_mut_ptr(), buf.len(), res)
    })
    .map(|(_, _, _, home)| home)
}

/// Run a getpw*_r call; (uid, gid, name, home) of the entry found.
fn with_passwd(
    call: impl Fn(*mut libc::passwd, &mut Vec<libc::c_char>, *mut *mut libc::passwd) -> libc::c_int,
) -> Option<(u32, u32, String, String)> {
    let mut buf: Vec<libc::c_char> = vec![0; 4096];
    loop {
        // SAFETY: zeroed passwd is valid; the call fills it from `buf`.
        let mut pw: libc::passwd = unsafe { std::mem::zeroed() };
        let mut res: *mut libc::passwd = std::ptr::null_mut();
        let rc = call(&mut pw, &mut buf, &mut res);
        if rc == libc::ERANGE && buf.len() < 1 << 20 {
            buf.resize(buf.len() * 2, 0);
            continue;
        }
        if rc != 0 || res.is_null() {
            return None;
        }
        // SAFETY: on success the strings point into `buf`, still alive.
        let s =
            |p: *const libc::c_char| unsafe { CStr::from_ptr(p) }.to_string_lossy().into_owned();
        return Some((pw.pw_uid, pw.pw_gid, s(pw.pw_name), s(pw.pw_dir)));
    }
}

/// gid of a group name.
pub fn lookup_group(name: &str) -> Option<u32> {
    let c = CString::new(name).ok()?;
    with_group(|gr, buf, res| unsafe {
        libc::getgrnam_r(c.as_ptr(), gr, buf.as_mut_ptr(), buf.len(), res)
    })
    .map(|(gid, _)| gid)
}

fn group_name(gid: u32) -> Option<String> {
    with_group(|gr, buf, res| unsafe {
        libc::getgrgid_r(gid, gr, buf.as_mut_ptr(), buf.len(), res)
    })
    .map(|(_, name)| name)
}

fn with_group(
    call: impl Fn(*mut libc::group, &mut Vec<libc::c_char>, *mut *mut libc::group) -> libc::c_int,
) -> Option<(u32, String)> {
    let mut buf: Vec<libc::c_char> = vec![0; 4096];
    loop {
        // SAFETY: as in with_passwd.
        let mut gr: libc::group = unsafe { std::mem::zeroed() };
        let mut res: *mut libc::group = std::ptr::null_mut();
        let rc = call(&mut gr, &mut buf, &mut res);
        if rc == libc::ERANGE && buf.len() < 1 << 20 {
            buf.resize(buf.len() * 2, 0);
            continue;
        }
        if rc != 0 || res.is_null() {
            return None;
        }
        // SAFETY: as in with_passwd.
        let name = unsafe { CStr::from_ptr(gr.gr_name) }
            .to_string_lossy()
            .into_owned();
        return Some((gr.gr_gid, name));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg(server: &str) -> Config {
        Config::parse(&format!("[server]\n{server}\n"), Path::new("t.toml")).unwrap()
    }

    #[test]
    fn looks_up_root_and_rejects_unknown_names() {
        assert_eq!(lookup_user("root"), Some((0, 0)));
        assert_eq!(lookup_group("root"), Some(0));
        assert_eq!(lookup_user("no-such-user-ggon-test"), None);
        let c = cfg("user = \"no-such-user-ggon-test\"");
        let e = plan(&c, None, None, false).unwrap_err().to_string();
        assert!(e.contains("field `server.user`: no user named"), "{e}");
        let e = plan(&c, Some("no-such-either"), None, false)
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("(--user)") && e.contains("no-such-either"),
            "{e}"
        );
    }

    #[test]
    fn root_on_purpose_stays_and_missing_user_refuses_root() {
        assert_eq!(
            plan(&cfg("user = \"root\""), None, None, true).unwrap(),
            Plan::Stay
        );
        let none = cfg("");
        let as_root = unsafe { libc::geteuid() } == 0;
        match plan(&none, None, None, true) {
            Err(e) => {
                assert!(as_root);
                assert!(e.to_string().contains("refusing to run as root"), "{e}");
                assert_eq!(e.exit_code(), 2);
            }
            Ok(p) => {
                assert!(!as_root);
                assert_eq!(p, Plan::Stay);
            }
        }
        // --check-config never refuses for who runs it.
        assert_eq!(plan(&none, None, None, false).unwrap(), Plan::Stay);
    }

    #[test]
    fn bad_names_are_config_errors() {
        let e = Config::parse("[server]\nuser = \"a b\"\n", Path::new("t.toml")).unwrap_err();
        assert_eq!(e.field, "server.user");
        assert_eq!(e.line, Some(2));
    }
}
