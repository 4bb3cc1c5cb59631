//! Harness for the real-BIND interop tests: TSIG keys from `tsig-keygen`,
//! `named` as a primary or a secondary on a free loopback port, ggond from this
//! build, and bounded runners for `dig`, `nsupdate` and `ggon-ctl`.
//!
//! Every wait is bounded and every external command runs under `timeout`, so a
//! missing feature shows up as a failed assertion with the logs attached,
//! never as a hang. Processes are killed on Drop (also when a test panics).
//! Set GGON_KEEP_TMP=1 to keep the temporary directories for inspection.

use std::fs;
use std::io::Read;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub use super::dnstools::*;
pub use super::process::*;

pub const ZONE: &str = "ggon.org";
pub const CIC: &str = "cic.ggon.org";

/// The shipped demo zone, as both BIND and ggond load it.
pub fn zone_text() -> String {
    let p = Path::new(env!("CARGO_MANIFEST_DIR")).join("zones/ggon.org.zone");
    fs::read_to_string(&p).unwrap_or_else(|e| panic!("cannot read {}: {e}", p.display()))
}

// ---------------------------------------------------------------------------
// BIND

#[derive(Debug, Clone)]
pub enum BindZone {
    /// `type primary` for ggon.org, loaded from `text`.
    Primary {
        text: String,
        /// Key names in `allow-update`.
        allow_update: Vec<String>,
        /// Raw ACL elements for `allow-transfer` (e.g. "127.0.0.1", "key xfr-key").
        allow_transfer: Vec<String>,
    },
    /// `type secondary` for ggon.org, transferring from `primary` (SOA
    /// queries and transfers signed with `key` if set).
    Secondary {
        primary: SocketAddr,
        key: Option<String>,
    },
    /// No zone of its own but the catalog zone `catalog` (RFC 9432),
    /// transferred from `primary`, whose member zones BIND provisions
    /// (`catalog-zones`, members transferred from `primary` too).
    CatalogConsumer {
        primary: SocketAddr,
        catalog: String,
    },
}

#[derive(Debug, Clone)]
pub struct BindSpec {
    pub keys: Vec<TsigKey>,
    pub zone: BindZone,
    /// Ports on 127.0.0.1 to NOTIFY (also-notify, `notify explicit`).
    pub also_notify: Vec<u16>,
    /// Listen on this port (the other side already points at it); default: a free one.
    pub port: Option<u16>,
    /// More statements for the zone block (e.g. `dnssec-policy default;`).
    pub zone_extra: String,
}

impl BindSpec {
    /// A primary for the shipped zone, updatable with the given key.
    pub fn primary(keys: Vec<TsigKey>, update_key: &str) -> BindSpec {
        BindSpec {
            keys,
            zone: BindZone::Primary {
                text: zone_text(),
                allow_update: vec![update_key.to_string()],
                allow_transfer: vec!["127.0.0.1".to_string()],
            },
            also_notify: Vec::new(),
            port: None,
            zone_extra: String::new(),
        }
    }

    pub fn secondary(primary: SocketAddr, port: Option<u16>) -> BindSpec {
        BindSpec {
            keys: Vec::new(),
            zone: BindZone::Secondary { primary, key: None },
            also_notify: Vec::new(),
            port,
            zone_extra: String::new(),
        }
    }

    /// A secondary configured only with the catalog zone `catalog` of `primary`.
    pub fn catalog_consumer(primary: SocketAddr, catalog: &str, port: Option<u16>) -> BindSpec {
        BindSpec {
            keys: Vec::new(),
            zone: BindZone::CatalogConsumer {
                primary,
                catalog: catalog.to_string(),
            },
            also_notify: Vec::new(),
            port,
            zone_extra: String::new(),
        }
    }

    /// A secondary that signs its requests to the primary with `key`.
    pub fn signed_secondary(primary: SocketAddr, port: Option<u16>, key: &TsigKey) -> BindSpec {
        BindSpec {
            keys: vec![key.clone()],
            zone: BindZone::Secondary {
                primary,
                key: Some(key.name.clone()),
            },
            also_notify: Vec::new(),
            port,
            zone_extra: String::new(),
        }
    }
}

/// A running `named -g`.
pub struct Bind {
    pub dir: PathBuf,
    pub port: u16,
    spec: BindSpec,
    conf: PathBuf,
    log: PathBuf,
    child: Option<Child>,
}

enum StartErr {
    PortBusy,
    Other(String),
}

impl Bind {
    /// Write named.conf (and the zone file, for a primary) into `dir` and start
    /// named; returns once named logs "running" and, for a primary, answers SOA.
    pub fn start(dir: PathBuf, spec: BindSpec) -> Bind {
        fs::create_dir_all(&dir).expect("bind dir");
        if let BindZone::Primary { text, .. } = &spec.zone {
            fs::write(dir.join("ggon.org.db"), text).expect("write zone");
        }
        let mut b = Bind {
            conf: dir.join("named.conf"),
            log: dir.join("named.log"),
            dir,
            port: 0,
            spec,
            child: None,
        };
        let fixed = b.spec.port;
        for attempt in 0..8 {
            b.port = fixed.unwrap_or_else(free_port);
            b.write_conf();
            match b.spawn() {
                Ok(()) => return b,
                Err(StartErr::PortBusy) => {
                    eprintln!("named: port {} busy (attempt {attempt})", b.port);
                    std::thread::sleep(Duration::from_millis(300));
                }
                Err(StartErr::Other(e)) => panic!("{e}"),
            }
        }
        panic!("named could not listen after 8 attempts\n{}", b.log_tail())
    }

    /// Stop named (SIGTERM, as an outage of the primary); files and journal stay.
    pub fn stop(&mut self) {
        if let Some(mut c) = self.child.take() {
            term_and_reap(&mut c, Duration::from_secs(5));
        }
    }

    /// Start named again on the same port with the same files.
    pub fn restart(&mut self) {
        self.stop();
        for _ in 0..20 {
            match self.spawn() {
                Ok(()) => return,
                Err(StartErr::PortBusy) => std::thread::sleep(Duration::from_millis(250)),
                Err(StartErr::Other(e)) => panic!("{e}"),
            }
        }
        panic!(
            "named could not listen on port {} again\n{}",
            self.port,
            self.log_tail()
        )
    }

    pub fn addr(&self) -> SocketAddr {
        SocketAddr::from(([127, 0, 0, 1], self.port))
    }

    pub fn log_tail(&self) -> String {
        tail_filtered(&self.log, 25, NAMED_NOISE)
    }

    /// named's whole log.
    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// The zone statement of the spec.
    fn zone_block(&self) -> String {
        let d = self.dir.display();
        match &self.spec.zone {
            BindZone::Primary {
                allow_update,
                allow_transfer,
                ..
            } => {
                let upd: String = allow_update.iter().map(|k| format!("key {k}; ")).collect();
                let xfr: String = allow_transfer.iter().map(|a| format!("{a}; ")).collect();
                format!(
                    r#"zone "ggon.org" {{
  type primary;
  file "{d}/ggon.org.db";
  allow-update {{ {upd}}};
  allow-transfer {{ {xfr}}};
  {extra}
}};
"#,
                    extra = self.spec.zone_extra
                )
            }
            BindZone::Secondary { primary, key } => format!(
                r#"zone "ggon.org" {{
  type secondary;
  primaries {{ {ip} port {port}{key}; }};
  allow-notify {{ {ip}; }};
  file "{d}/sec.db";
}};
"#,
                ip = primary.ip(),
                port = primary.port(),
                key = key
                    .as_ref()
                    .map(|k| format!(" key {k}"))
                    .unwrap_or_default(),
            ),
            BindZone::CatalogConsumer { primary, catalog } => format!(
                r#"zone "{catalog}" {{
  type secondary;
  primaries {{ {ip} port {port}; }};
  file "{d}/catalog.db";
}};
"#,
                ip = primary.ip(),
                port = primary.port(),
            ),
        }
    }

    fn write_conf(&self) {
        let d = self.dir.display();
        let mut conf = String::new();
        if !self.spec.keys.is_empty() {
            let keys: String = self.spec.keys.iter().map(|k| k.statement()).collect();
            fs::write(self.dir.join("keys.conf"), keys).expect("write keys.conf");
            conf += &format!("include \"{d}/keys.conf\";\n");
        }
        let notify = if self.spec.also_notify.is_empty() {
            "notify no;".to_string()
        } else {
            let targets: String = self
                .spec
                .also_notify
                .iter()
                .map(|p| format!("127.0.0.1 port {p}; "))
                .collect();
            format!("notify explicit;\n  notify-delay 0;\n  also-notify {{ {targets}}};")
        };
        let catalogs = match &self.spec.zone {
            BindZone::CatalogConsumer { primary, catalog } => format!(
                "catalog-zones {{ zone \"{catalog}\" default-primaries {{ {} port {}; }} \
                     in-memory yes; }};",
                primary.ip(),
                primary.port()
            ),
            _ => String::new(),
        };
        conf += &named_options(&self.dir, self.port, &format!("{notify}\n  {catalogs}"));
        conf += &self.zone_block();
        fs::write(&self.conf, conf).expect("write named.conf");
        let check = run(
            "named-checkconf",
            &[self.conf.to_str().expect("utf-8 path")],
            None,
            10,
        );
        assert!(
            check.ok,
            "harness bug: named-checkconf rejects {}:\n{}\n{}",
            self.conf.display(),
            check.text(),
            fs::read_to_string(&self.conf).unwrap_or_default()
        );
    }

    fn spawn(&mut self) -> Result<(), StartErr> {
        let log = fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.log)
            .expect("open named.log");
        let start_at = log.metadata().map(|m| m.len()).unwrap_or(0);
        let child = Command::new("named")
            .args(["-g", "-n", "1", "-c"])
            .arg(&self.conf)
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("dup log"))
            .stderr(log)
            .spawn()
            .map_err(|e| StartErr::Other(format!("cannot start named: {e}")))?;
        self.child = Some(child);
        let new_log = |path: &Path| -> String {
            let mut f = match fs::File::open(path) {
                Ok(f) => f,
                Err(_) => return String::new(),
            };
            let mut s = String::new();
            let _ = f.read_to_string(&mut s);
            s.get(start_at as usize..).unwrap_or("").to_string()
        };
        let deadline = Instant::now() + Duration::from_secs(15);
        loop {
            let text = new_log(&self.log);
            let exited = self
                .child
                .as_mut()
                .and_then(|c| c.try_wait().ok().flatten());
            if let Some(status) = exited {
                self.child = None;
                if text.contains("address in use") || text.contains("unable to listen") {
                    return Err(StartErr::PortBusy);
                }
                return Err(StartErr::Other(format!(
                    "named exited ({status}) before it was running\n{}",
                    self.log_tail()
                )));
            }
            if text.contains("\nrunning") || text.contains(" running\n") {
                break;
            }
            if Instant::now() >= deadline {
                self.stop();
                return Err(StartErr::Other(format!(
                    "named did not log `running` within 15 s\n{}",
                    self.log_tail()
                )));
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        if let BindZone::Primary { .. } = self.spec.zone {
            if poll(Duration::from_secs(10), Duration::from_millis(50), || {
                soa_serial(self.port)
            })
            .is_none()
            {
                self.stop();
                return Err(StartErr::Other(format!(
                    "named (primary) runs on port {} but does not answer SOA {ZONE} within 10 s\n{}",
                    self.port,
                    self.log_tail()
                )));
            }
        }
        Ok(())
    }

    /// For a secondary: wait until it has the zone (answers SOA), bounded.
    pub fn wait_zone(&self, limit: Duration) -> Option<u32> {
        poll(limit, Duration::from_millis(50), || soa_serial(self.port))
    }
}

impl Drop for Bind {
    fn drop(&mut self) {
        self.stop();
    }
}

// ---------------------------------------------------------------------------
// ggond

pub fn ggond_bin() -> &'static str {
    env!("CARGO_BIN_EXE_ggond")
}

pub fn ctl_bin() -> &'static str {
    env!("CARGO_BIN_EXE_ggon-ctl")
}

/// A running ggond with its own config, state directory and stderr log.
pub struct Ggond {
    pub dir: PathBuf,
    pub config: PathBuf,
    pub state_dir: PathBuf,
    pub log: PathBuf,
    pub dns: SocketAddr,
    pub control: SocketAddr,
    ready_file: PathBuf,
    child: Option<Child>,
}

impl Ggond {
    /// Write `config_text` to DIR/ggon.toml and start ggond on 127.0.0.1:0
    /// (DNS and control), state in DIR/state, cwd DIR. Panics with ggond's
    /// stderr if it exits or is not ready within 20 s.
    pub fn start(dir: PathBuf, config_text: &str) -> Ggond {
        fs::create_dir_all(&dir).expect("ggond dir");
        let config = dir.join("ggon.toml");
        fs::write(&config, config_text).expect("write ggon.toml");
        let mut g = Ggond {
            state_dir: dir.join("state"),
            log: dir.join("ggond.log"),
            ready_file: dir.join("ready.json"),
            config,
            dir,
            dns: SocketAddr::from(([127, 0, 0, 1], 0)),
            control: SocketAddr::from(([127, 0, 0, 1], 0)),
            child: None,
        };
        if let Err(e) = g.spawn() {
            panic!("{e}");
        }
        g
    }

    fn spawn(&mut self) -> Result<(), String> {
        let _ = fs::remove_file(&self.ready_file);
        let log = fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.log)
            .expect("open ggond.log");
        let child = Command::new(ggond_bin())
            .arg("--config")
            .arg(&self.config)
            .args(["--listen", "127.0.0.1:0", "--control", "127.0.0.1:0"])
            .args(["--user", "root"])
            .arg("--state-dir")
            .arg(&self.state_dir)
            .arg("--ready-file")
            .arg(&self.ready_file)
            .current_dir(&self.dir)
            .env("RUST_LOG", "info")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .map_err(|e| format!("cannot start ggond: {e}"))?;
        self.child = Some(child);
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            if let Ok(text) = fs::read_to_string(&self.ready_file) {
                let v: serde_json::Value = serde_json::from_str(&text)
                    .map_err(|e| format!("bad ready file {text:?}: {e}"))?;
                self.dns = v["dns"][0]
                    .as_str()
                    .and_then(|s| s.parse().ok())
                    .ok_or_else(|| format!("ready file has no dns address: {text}"))?;
                self.control = v["control"]
                    .as_str()
                    .and_then(|s| s.parse().ok())
                    .ok_or_else(|| format!("ready file has no control address: {text}"))?;
                return Ok(());
            }
            if let Some(status) = self
                .child
                .as_mut()
                .and_then(|c| c.try_wait().ok().flatten())
            {
                self.child = None;
                return Err(format!(
                    "ggond exited ({status}) before it was ready. If stderr says `unknown field` \
                     for key/mode/update_keys/allow_transfer/secondaries/primary, ggond lacks \
                     the issue-3 config.\nconfig {}:\n{}\n{}",
                    self.config.display(),
                    fs::read_to_string(&self.config).unwrap_or_default(),
                    self.log_tail()
                ));
            }
            if Instant::now() >= deadline {
                self.stop();
                return Err(format!(
                    "ggond wrote no ready file within 20 s\n{}",
                    self.log_tail()
                ));
            }
            std::thread::sleep(Duration::from_millis(25));
        }
    }

    /// SIGTERM and wait (bounded).
    pub fn stop(&mut self) {
        if let Some(mut c) = self.child.take() {
            term_and_reap(&mut c, Duration::from_secs(10));
        }
    }

    /// Stop and start again with the same config and state directory (new ports).
    pub fn restart(&mut self) {
        self.stop();
        if let Err(e) = self.spawn() {
            panic!("restarting ggond: {e}");
        }
    }

    pub fn port(&self) -> u16 {
        self.dns.port()
    }

    pub fn log_tail(&self) -> String {
        tail(&self.log, 40)
    }

    pub fn token_file(&self) -> PathBuf {
        self.state_dir.join("control.token")
    }

    /// `ggon-ctl --control ADDR --token-file STATE/control.token ARGS`.
    pub fn ctl(&self, args: &[&str]) -> Out {
        let control = self.control.to_string();
        let token = self.token_file();
        let mut all = vec![
            "--control",
            control.as_str(),
            "--token-file",
            token.to_str().expect("utf-8 path"),
        ];
        all.extend_from_slice(args);
        run(ctl_bin(), &all, None, 15)
    }

    /// `ggon-ctl status --json`, parsed.
    pub fn status(&self) -> serde_json::Value {
        let out = self.ctl(&["status", "--json"]);
        assert!(
            out.ok,
            "ggon-ctl status --json failed: {}\n{}",
            out.text(),
            self.log_tail()
        );
        serde_json::from_str(&out.stdout)
            .unwrap_or_else(|e| panic!("status --json is not JSON ({e}): {}", out.stdout))
    }

    /// `ggon-ctl remap SERVICE --to TARGET --force`; panics if it fails.
    pub fn remap(&self, service: &str, to: &str) {
        let out = self.ctl(&["remap", service, "--to", to, "--force"]);
        assert!(
            out.ok,
            "ggon-ctl remap {service} --to {to} --force failed: {}\n{}",
            out.text(),
            self.log_tail()
        );
    }
}

impl Drop for Ggond {
    fn drop(&mut self) {
        self.stop();
    }
}

/// named's `options` (loopback `port`, files under `dir`, no recursion, no
/// validation, then `extra` statements) and an empty `controls`.
pub fn named_options(dir: &Path, port: u16, extra: &str) -> String {
    let d = dir.display();
    format!(
        r#"options {{
  directory "{d}";
  listen-on port {port} {{ 127.0.0.1; }};
  listen-on-v6 {{ none; }};
  pid-file "{d}/named.pid";
  session-keyfile "{d}/session.key";
  recursion no;
  dnssec-validation no;
  {extra}
}};
controls {{ }};
"#
    )
}
