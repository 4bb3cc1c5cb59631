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

/// A table header line's name and whether it is an array of tables:
/// `[control]` is ("control", false), `[[service.target]]` is
/// ("service.target", true); None for any other line.
fn header(line: &str) -> Option<(&str, bool)> {
    if !line.starts_with('[') {
        return None;
    }
    let name = line
        .trim_start_matches('[')
        .split(']')
        .next()
        .unwrap_or("")
        .trim();
    Some((name, line.starts_with("[[")))
}

/// Some lines of a config file, and the line of the file each came from.
#[derive(Default)]
struct Part {
    text: String,
    lines: Vec<usize>,
}

impl Part {
    /// The file's line for line `n` (1-based) of [`Part::text`].
    fn file_line(&self, n: usize) -> usize {
        match self.lines.get(n.saturating_sub(1)) {
            Some(&l) => l,
            None => self.lines.last().map_or(n, |l| l + 1),
        }
    }
}

/// The `[server]` and `[control]` tables of `text` (each from its header to
/// the next table header, a line that starts with `[`), and nothing else:
/// the TOML parser then reads a few lines however large the file is (at
/// 30,000 services, padding the rest with blank lines to keep line numbers
/// still cost the parser tens of milliseconds).
fn tables(text: &str) -> Part {
    let mut keep = false;
    let mut part = Part::default();
    for (i, line) in text.lines().enumerate() {
        if let Some((name, array)) = header(line) {
            keep =
                !array && (name == "server" || name == "control" || name.starts_with("control."));
        }
        if keep {
            part.text.push_str(line);
            part.text.push('\n');
            part.lines.push(i + 1);
        }
    }
    part
}

/// Read the control settings of the config at `path`.
pub fn control_settings(path: &Path) -> Result<ControlSettings, ConfigError> {
    let text = super::read_text(path)?;
    let part = tables(&text);
    let t: Tables = super::from_toml(&part.text, path).map_err(|mut e| {
        e.line = e.line.map(|n| part.file_line(n));
        e
    })?;
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

/// The `[[service]]` tables of the config at `path` that may have an https
/// target (their text holds `https://`), only `name`'s if given, each with
/// its `[[service.target]]` tables, parsed but not validated: what the
/// certificate line of `ggon-ctl status` and `drill` needs.
///
/// Why not [`super::Config::load`]: at 30,000 services parsing and
/// validating the whole file took 0.8 s of every `ggon-ctl status cic`,
/// for one service's targets; and a mistake elsewhere in the file must not
/// take the line away either.
pub fn https_services(path: &Path, name: Option<&str>) -> Result<super::Config, ConfigError> {
    let text = super::read_text(path)?;
    let mut picked = String::new();
    let mut pick = |block: &str| {
        if block.contains("https://") && name.is_none_or(|n| block.contains(n)) {
            picked.push_str(block);
            picked.push('\n');
        }
    };
    // The service table being read: where it starts in `text`.
    let mut open: Option<usize> = None;
    let mut at = 0;
    for line in text.split_inclusive('\n') {
        if let Some((table, array)) = header(line) {
            let inside = table.starts_with("service.");
            if !inside {
                if let Some(start) = open.take() {
                    pick(&text[start..at]);
                }
            }
            if array && table == "service" {
                open = Some(at);
            }
        }
        at += line.len();
    }
    if let Some(start) = open {
        pick(&text[start..]);
    }
    let mut cfg: super::Config = super::from_toml(&picked, path)?;
    cfg.services
        .retain(|s| name.is_none_or(|n| s.name.get_ref() == n));
    cfg.path = path.to_path_buf();
    Ok(cfg)
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
        // ... also after tables ggon-ctl leaves out.
        std::fs::write(
            &p,
            "[server]\n\n[[service]]\nname = \"x\"\n\n[[service.target]]\nname = \"a\"\n\n\
             [control]\n# the API\nlisten = 5\n",
        )
        .unwrap();
        let e = control_settings(&p).unwrap_err();
        assert_eq!(e.line, Some(11), "{e}");
    }

    #[test]
    fn https_services_reads_the_service_tables_with_https_targets() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("ggon.toml");
        let target = |name: &str, url: &str| {
            format!(
                "[[service.target]]\nname = \"{name}\"\naddresses = [\"127.0.0.1\"]\n\
                 check = {{ type = \"http\", url = \"{url}\" }}\n\n"
            )
        };
        let service =
            |name: &str| format!("[[service]]\nname = \"{name}\"\nfqdn = \"{name}.ggon.org\"\n\n");
        let mut text = String::from("[control]\nlisten = \"127.0.0.1:7\"\n\n");
        text += &service("web");
        text += &target("a", "https://127.0.0.1:8443/");
        text += &target("b", "http://127.0.0.2/");
        text += "[[zone]]\norigin = \"ggon.org\"\nfile = \"z\"\n\n";
        text += &service("plain");
        text += &target("a", "http://127.0.0.3/");
        text += &service("cic");
        text += &target("primary", "https://127.0.0.4/");
        // Rejected by ggond (no such key), and not read here.
        text += &service("broken");
        text += "no_such_key = 1\n";
        std::fs::write(&p, &text).unwrap();
        let names = |cfg: &super::super::Config| -> Vec<(String, usize)> {
            cfg.services
                .iter()
                .map(|s| (s.name.get_ref().clone(), s.targets.get_ref().len()))
                .collect()
        };
        let cfg = https_services(&p, Some("cic")).unwrap();
        assert_eq!(names(&cfg), [("cic".to_string(), 1)]);
        let cfg = https_services(&p, None).unwrap();
        assert_eq!(
            names(&cfg),
            [("web".to_string(), 2), ("cic".to_string(), 1)],
            "a zone table ends the service before it; only services with https"
        );
        assert!(https_services(&p, Some("plain"))
            .unwrap()
            .services
            .is_empty());
    }
}
