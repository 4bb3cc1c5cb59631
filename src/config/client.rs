//! What `ggon-ctl` needs from a config file: the control API's address,
//! whether it is TLS, and the token file. Only the `[server]` and
//! `[control]` tables are read.
//!
//! Why not the whole config: with 30,000 services parsing and validating
//! the file takes most of a second on every `ggon-ctl` call, and an
//! operator editing the file mid-incident must still be able to run
//! `ggon-ctl status` against the ggond that is serving while the rest of
//! the file does not parse yet.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use serde::Deserialize;

use super::control::ControlConfig;
use super::ConfigError;

/// How to reach a ggond's control API.
#[derive(Debug, Clone, PartialEq)]
pub struct ControlSettings {
    pub listen: SocketAddr,
    pub tls: bool,
    pub token_file: PathBuf,
    /// A syntax error outside `[server]` and `[control]`: ggon-ctl does not
    /// need that part and goes on, but says so (ggond would refuse the file
    /// at the next reload). Only looked for in files up to
    /// [`CHECK_REST_UP_TO`]: parsing a larger one is what reading two
    /// tables avoids.
    pub elsewhere: Option<ConfigError>,
}

/// The largest file whose other tables are checked for a syntax error
/// (256 KiB, some 900 services: toml takes about 1.4 s per MiB in a debug
/// build, so larger files keep to the two tables and stay fast).
pub const CHECK_REST_UP_TO: usize = 256 << 10;

/// No config file where ggon-ctl looks by default.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "no config file: looked for {} (from {}) and {}; name one with --config or GGON_CONFIG",
    super::CHECKOUT_CONFIG,
    cwd.display(),
    super::SYSTEM_CONFIG
)]
pub struct NotFound {
    pub cwd: PathBuf,
}

/// The config ggon-ctl reads when none is named: [`super::default_path`]
/// if it exists, else an error listing where it looked.
pub fn find_default() -> Result<PathBuf, NotFound> {
    let p = super::default_path();
    if p.exists() {
        return Ok(p);
    }
    Err(NotFound {
        cwd: std::env::current_dir().unwrap_or_default(),
    })
}

#[derive(Deserialize)]
struct Tables {
    #[serde(default)]
    server: Server,
    #[serde(default)]
    control: ControlConfig,
}

/// `[server]` as far as the default token file needs it.
#[derive(Deserialize)]
struct Server {
    #[serde(default = "super::default_state_dir")]
    state_dir: PathBuf,
}

impl Default for Server {
    fn default() -> Server {
        Server {
            state_dir: super::default_state_dir(),
        }
    }
}

/// The `[server]` and `[control]` tables of `text`, each from its header to
/// the next table header (a line that starts with `[`), with their line
/// numbers kept (blank lines in between), so that an error in them names
/// the right line.
fn tables(text: &str) -> String {
    let mut keep = false;
    let mut out: Vec<&str> = Vec::new();
    for line in text.lines() {
        if line.starts_with('[') {
            let name = line
                .trim_start_matches('[')
                .split(']')
                .next()
                .unwrap_or("")
                .trim();
            let array = line.starts_with("[[");
            keep =
                !array && (name == "server" || name == "control" || name.starts_with("control."));
        }
        out.push(if keep { line } else { "" });
    }
    out.join("\n")
}

/// Read the control settings of the config at `path`.
pub fn control_settings(path: &Path) -> Result<ControlSettings, ConfigError> {
    let text = super::read_text(path)?;
    let part = tables(&text);
    let t: Tables = super::from_toml(&part, path)?;
    let elsewhere = (text.len() <= CHECK_REST_UP_TO)
        .then(|| super::from_toml::<serde::de::IgnoredAny>(&text, path).err())
        .flatten();
    Ok(ControlSettings {
        elsewhere,
        listen: t.control.listen,
        tls: t.control.tls_certificate.is_some(),
        token_file: t
            .control
            .token_file
            .unwrap_or_else(|| t.server.state_dir.join("control.token")),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_control_and_server_and_nothing_else() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("ggon.toml");
        let text = "[server]\nstate_dir = \"/var/lib/x\"\nworkers = 2\n\n[control]\nlisten = \"127.0.0.1:7\"\n\n\
                    [[service]]\nname = \"cic\"\nthis is not toml at all\n";
        std::fs::write(&p, text).unwrap();
        let s = control_settings(&p).unwrap();
        assert_eq!(s.listen, "127.0.0.1:7".parse().unwrap());
        assert_eq!(s.token_file, PathBuf::from("/var/lib/x/control.token"));
        assert!(!s.tls);
        let e = s.elsewhere.expect("the broken [[service]] is noticed");
        assert_eq!(e.line, Some(10), "{e}");
        // A clean file: nothing to say.
        std::fs::write(
            &p,
            "[control]\nlisten = \"127.0.0.1:7\"\n[[service]]\nname = \"x\"\n",
        )
        .unwrap();
        assert_eq!(control_settings(&p).unwrap().elsewhere, None);
        // An error in [control] names its line.
        std::fs::write(&p, "[server]\n\n[control]\nlisten = 5\n").unwrap();
        let e = control_settings(&p).unwrap_err();
        assert_eq!(e.line, Some(4), "{e}");
    }
}
