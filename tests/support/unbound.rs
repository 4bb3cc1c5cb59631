//! A real `unbound` validating resolver for the DNSSEC tests: a stub zone
//! pointing at ggond and the zone's trust anchor, nothing else (no root
//! anchor, no other zones), on a loopback port; stopped on drop.

use std::fs;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use super::bind::{poll, run};
use super::process::{free_port, tail, term_and_reap};

pub struct Unbound {
    child: Option<Child>,
    pub port: u16,
    pub dir: PathBuf,
    log: PathBuf,
}

/// What a resolver said about one question.
#[derive(Debug, Clone, PartialEq)]
pub struct Said {
    pub rcode: String,
    pub ad: bool,
    /// Answer-section records of the asked type (rdata only).
    pub answers: Vec<String>,
}

fn binary() -> &'static str {
    if std::path::Path::new("/usr/sbin/unbound").exists() {
        "/usr/sbin/unbound"
    } else {
        "unbound"
    }
}

impl Unbound {
    /// Start unbound validating `zone` (served by `stub`) with `anchor`, a
    /// DS or DNSKEY record in presentation form. Panics with its log if it
    /// does not answer within 10 s.
    pub fn start(dir: PathBuf, zone: &str, stub: SocketAddr, anchor: &str) -> Unbound {
        Unbound::start_with(dir, zone, stub, anchor, "")
    }

    /// [`Unbound::start`] with `extra` lines in its `server:` clause (they
    /// come last, so a `module-config` there replaces the default one).
    pub fn start_with(
        dir: PathBuf,
        zone: &str,
        stub: SocketAddr,
        anchor: &str,
        extra: &str,
    ) -> Unbound {
        fs::create_dir_all(&dir).expect("unbound dir");
        let port = free_port();
        let log = dir.join("unbound.log");
        let conf = dir.join("unbound.conf");
        fs::write(
            &conf,
            format!(
                r#"server:
    interface: 127.0.0.1
    port: {port}
    do-ip6: no
    do-daemonize: no
    use-syslog: no
    logfile: "{log}"
    verbosity: 1
    val-log-level: 2
    username: ""
    chroot: ""
    directory: "{dir}"
    pidfile: "{dir}/unbound.pid"
    do-not-query-localhost: no
    access-control: 127.0.0.0/8 allow
    module-config: "validator iterator"
    trust-anchor: "{anchor}"
    # Answers expire at once, so a remap is seen on the next question.
    cache-max-ttl: 1
    cache-max-negative-ttl: 1
    qname-minimisation: no
    harden-dnssec-stripped: yes
{extra}
stub-zone:
    name: "{zone}"
    stub-addr: {stub_ip}@{stub_port}
"#,
                log = log.display(),
                dir = dir.display(),
                stub_ip = stub.ip(),
                stub_port = stub.port(),
            ),
        )
        .expect("write unbound.conf");
        let child = Command::new(binary())
            .arg("-d")
            .arg("-c")
            .arg(&conf)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start unbound: {e}"));
        let u = Unbound {
            child: Some(child),
            port,
            dir,
            log,
        };
        let up = poll(Duration::from_secs(10), Duration::from_millis(100), || {
            let out = run(
                "dig",
                &[
                    "@127.0.0.1",
                    "-p",
                    &port.to_string(),
                    "+time=1",
                    "+tries=1",
                    "version.bind",
                    "CH",
                    "TXT",
                ],
                None,
                5,
            );
            out.stdout.contains("status:").then_some(())
        });
        assert!(
            up.is_some(),
            "unbound did not answer within 10 s\n{}",
            u.log_tail()
        );
        u
    }

    pub fn log_tail(&self) -> String {
        format!("unbound log:\n{}", tail(&self.log, 30))
    }

    /// Ask with DO set (as a validating stub would), bounded.
    pub fn ask(&self, name: &str, qtype: &str) -> Said {
        self.ask_with(&[], name, qtype)
    }

    /// [`Unbound::ask`] with extra dig arguments (`-b SRC`, `+subnet=…`).
    pub fn ask_with(&self, extra: &[&str], name: &str, qtype: &str) -> Said {
        let port = self.port.to_string();
        let mut args = vec![
            "@127.0.0.1",
            "-p",
            &port,
            "+time=3",
            "+tries=1",
            "+dnssec",
            "+noall",
            "+comments",
            "+answer",
        ];
        args.extend_from_slice(extra);
        args.extend([name, qtype]);
        let out = run("dig", &args, None, 10);
        let text = out.text();
        let rcode = text
            .lines()
            .find_map(|l| l.split("status: ").nth(1))
            .map(|s| s.split(',').next().unwrap_or("").to_string())
            .unwrap_or_else(|| format!("no answer: {text}"));
        let ad = text.lines().any(|l| {
            l.contains(";; flags:")
                && l.split(';')
                    .nth(2)
                    .is_some_and(|f| f.split_whitespace().any(|w| w == "ad"))
        });
        let answers = text
            .lines()
            .filter(|l| !l.starts_with(';') && !l.trim().is_empty())
            .filter_map(|l| {
                let f: Vec<&str> = l.split_whitespace().collect();
                (f.len() >= 5 && f[3].eq_ignore_ascii_case(qtype)).then(|| f[4..].join(" "))
            })
            .collect();
        Said { rcode, ad, answers }
    }
}

impl Drop for Unbound {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            term_and_reap(&mut c, Duration::from_secs(5));
        }
    }
}
