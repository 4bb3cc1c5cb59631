//! Harness for Knot DNS (`knotd`) as a secondary that provisions its zones
//! from a catalog zone (`catalog-role: interpret`, members by a template),
//! on a free loopback port.
//!
//! Every wait is bounded; knotd is stopped on Drop (also when a test
//! panics). Its configuration is checked with `knotc conf-check` first, so
//! a harness mistake shows up as such.

use std::fs;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use super::process::*;

/// A running `knotd` consuming one catalog zone.
pub struct Knot {
    pub dir: PathBuf,
    pub port: u16,
    conf: PathBuf,
    log: PathBuf,
    child: Option<Child>,
}

impl Knot {
    /// Start knotd in `dir` with only the catalog zone `catalog` of
    /// `primary`; its members are transferred from `primary` too and NOTIFYs
    /// from 127.0.0.1 are accepted. `port`: listen there (the primary
    /// already NOTIFYs it); default: a free one.
    pub fn catalog_consumer(
        dir: PathBuf,
        primary: SocketAddr,
        catalog: &str,
        port: Option<u16>,
    ) -> Knot {
        fs::create_dir_all(&dir).expect("knot dir");
        let mut k = Knot {
            conf: dir.join("knot.conf"),
            log: dir.join("knotd.log"),
            dir,
            port: 0,
            child: None,
        };
        for attempt in 0..8 {
            k.port = port.unwrap_or_else(free_port);
            k.write_conf(primary, catalog);
            match k.spawn() {
                Ok(()) => return k,
                Err(true) => {
                    eprintln!("knotd: port {} busy (attempt {attempt})", k.port);
                    std::thread::sleep(Duration::from_millis(300));
                }
                Err(false) => panic!("knotd did not start\n{}", k.log_tail()),
            }
        }
        panic!("knotd could not listen after 8 attempts\n{}", k.log_tail())
    }

    fn write_conf(&self, primary: SocketAddr, catalog: &str) {
        let d = self.dir.display();
        let conf = format!(
            r#"server:
    listen: 127.0.0.1@{port}
    rundir: "{d}"
log:
  - target: stderr
    any: info
database:
    storage: "{d}"
remote:
  - id: primary
    address: {ip}@{pport}
acl:
  - id: notify_from_primary
    address: {ip}
    action: notify
template:
  - id: default
    storage: "{d}"
  - id: member
    storage: "{d}"
    master: primary
    acl: notify_from_primary
zone:
  - domain: {catalog}
    master: primary
    acl: notify_from_primary
    catalog-role: interpret
    catalog-template: member
"#,
            port = self.port,
            ip = primary.ip(),
            pport = primary.port(),
        );
        fs::write(&self.conf, conf).expect("write knot.conf");
        let conf = self.conf.to_str().expect("utf-8 path");
        let check = run("knotc", &["-c", conf, "conf-check"], None, 10);
        assert!(
            check.ok,
            "harness bug: knotc conf-check rejects {conf}:\n{}",
            check.text()
        );
    }

    /// Err(true): the port was taken; Err(false): any other failure.
    fn spawn(&mut self) -> Result<(), bool> {
        let _ = fs::remove_file(&self.log);
        let log = fs::File::create(&self.log).expect("create knotd.log");
        let child = Command::new("knotd")
            .arg("-c")
            .arg(&self.conf)
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("dup log"))
            .stderr(log)
            .spawn()
            .map_err(|e| {
                eprintln!("cannot start knotd: {e}");
                false
            })?;
        self.child = Some(child);
        let deadline = Instant::now() + Duration::from_secs(15);
        loop {
            let text = fs::read_to_string(&self.log).unwrap_or_default();
            if let Some(c) = self.child.as_mut() {
                if c.try_wait().ok().flatten().is_some() {
                    self.child = None;
                    return Err(text.contains("in use"));
                }
            }
            if text.contains("server started") {
                return Ok(());
            }
            if Instant::now() >= deadline {
                self.stop();
                return Err(false);
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    pub fn stop(&mut self) {
        if let Some(mut c) = self.child.take() {
            term_and_reap(&mut c, Duration::from_secs(5));
        }
    }

    pub fn addr(&self) -> SocketAddr {
        SocketAddr::from(([127, 0, 0, 1], self.port))
    }

    pub fn log_tail(&self) -> String {
        tail(&self.log, 30)
    }
}

impl Drop for Knot {
    fn drop(&mut self) {
        self.stop();
    }
}
