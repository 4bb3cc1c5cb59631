//! The DNS tools of the interop tests, run as a person would: `dig`,
//! `nsupdate` and `tsig-keygen`, each bounded by a timeout, and a reader of
//! dig's record lines.

use std::fs;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use super::bind::{poll, run, Out, ZONE};

// ---------------------------------------------------------------------------
// TSIG keys

#[derive(Debug, Clone)]
pub struct TsigKey {
    pub name: String,
    pub algorithm: String,
    pub secret: String,
    /// A BIND key file holding just this key (as `tsig-keygen` wrote it).
    pub file: PathBuf,
}

impl TsigKey {
    /// The `key "..." { ... };` statement, as in the file.
    pub fn statement(&self) -> String {
        fs::read_to_string(&self.file).expect("read key file")
    }
}

/// `tsig-keygen -a hmac-sha256 NAME > DIR/FILE`.
pub fn tsig_keygen(dir: &Path, name: &str, file: &str) -> TsigKey {
    let out = run("tsig-keygen", &["-a", "hmac-sha256", name], None, 10);
    assert!(out.ok, "tsig-keygen failed: {}", out.text());
    let path = dir.join(file);
    fs::write(&path, &out.stdout).expect("write key file");
    let secret = out
        .stdout
        .split("secret \"")
        .nth(1)
        .and_then(|s| s.split('"').next())
        .unwrap_or_else(|| panic!("no secret in tsig-keygen output: {}", out.stdout))
        .to_string();
    TsigKey {
        name: name.to_string(),
        algorithm: "hmac-sha256".to_string(),
        secret,
        file: path,
    }
}

// ---------------------------------------------------------------------------
// dig and nsupdate

/// `dig @127.0.0.1 -p PORT +time=2 +tries=1 ARGS` (bounded); stdout + stderr.
pub fn dig(port: u16, args: &[&str]) -> String {
    let p = port.to_string();
    let mut all = vec!["@127.0.0.1", "-p", p.as_str(), "+time=2", "+tries=1"];
    all.extend_from_slice(args);
    run("dig", &all, None, 15).text()
}

/// The +short answer lines for NAME TYPE, sorted.
pub fn dig_short(port: u16, name: &str, qtype: &str) -> Vec<String> {
    let p = port.to_string();
    let out = run(
        "dig",
        &[
            "@127.0.0.1",
            "-p",
            &p,
            "+time=1",
            "+tries=1",
            "+short",
            name,
            qtype,
        ],
        None,
        10,
    );
    if !out.ok {
        return Vec::new();
    }
    let mut v: Vec<String> = out
        .stdout
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with(';'))
        .map(String::from)
        .collect();
    v.sort();
    v
}

/// The ggon.org SOA serial a server answers, if it answers one.
pub fn soa_serial(port: u16) -> Option<u32> {
    dig_short(port, ZONE, "SOA")
        .first()
        .and_then(|l| l.split_whitespace().nth(2))
        .and_then(|s| s.parse().ok())
}

/// Wait until NAME A at PORT is exactly `addrs`; how long it took, or None.
pub fn wait_for_a(port: u16, name: &str, addrs: &[&str], limit: Duration) -> Option<Duration> {
    let t0 = Instant::now();
    let want: Vec<String> = addrs.iter().map(|s| s.to_string()).collect();
    poll(limit, Duration::from_millis(50), || {
        (dig_short(port, name, "A") == want).then(|| t0.elapsed())
    })
}

/// One record of dig's presentation output.
#[derive(Debug, Clone, PartialEq)]
pub struct Rr {
    pub name: String,
    pub ttl: u32,
    pub rtype: String,
    pub rdata: String,
}

impl Rr {
    pub fn soa_serial(&self) -> Option<u32> {
        if self.rtype != "SOA" {
            return None;
        }
        self.rdata.split_whitespace().nth(2)?.parse().ok()
    }
}

/// The records in dig output (comment lines skipped).
pub fn parse_records(out: &str) -> Vec<Rr> {
    out.lines()
        .filter(|l| !l.trim().is_empty() && !l.starts_with(';'))
        .filter_map(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            if f.len() < 5 || f[2] != "IN" {
                return None;
            }
            Some(Rr {
                name: f[0].to_ascii_lowercase(),
                ttl: f[1].parse().ok()?,
                rtype: f[3].to_string(),
                rdata: f[4..].join(" "),
            })
        })
        .collect()
}

/// `nsupdate` with an optional key file, script on stdin, bounded (UDP
/// retries capped); `ok` is nsupdate's exit status.
pub fn nsupdate(key: Option<&Path>, script: &str) -> Out {
    let mut args = vec!["-t", "6", "-u", "2", "-r", "1"];
    let key_s;
    if let Some(k) = key {
        key_s = k.to_str().expect("utf-8 path").to_string();
        args.push("-k");
        args.push(&key_s);
    }
    run("nsupdate", &args, Some(script), 15)
}

/// The nsupdate script: server, zone, the given update lines, send.
pub fn update_script(port: u16, lines: &[&str]) -> String {
    let mut s = format!("server 127.0.0.1 {port}\nzone {ZONE}\n");
    for l in lines {
        s += l;
        s.push('\n');
    }
    s += "send\n";
    s
}
