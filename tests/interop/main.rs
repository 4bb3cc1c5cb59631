//! Interop with real BIND 9 (`named`, `dig`, `nsupdate`): ggond
//! publishing to an existing primary over RFC 2136, accepting TSIG-signed
//! UPDATEs itself, and feeding secondaries with NOTIFY + AXFR/IXFR.
//!
//! `bind_harness_selfcheck` runs the same checks against BIND alone, so when a
//! ggond test fails the harness and the expectations are known to be right.
//! Every wait is bounded; each test stays well under a minute.

#[path = "../support/mod.rs"]
mod support;

mod catalog;
mod checks;
mod dname;
mod harness;
mod local;
mod rfc2136;

use checks::*;

use std::path::Path;
use std::time::{Duration, Instant};

use serde_json::Value;
use support::bind::*;

/// The cic service: three targets whose checks always pass (exec `true`), so
/// health never moves it and only operator remaps do.
const CIC_SERVICE: &str = r#"
[[service]]
name = "cic"
fqdn = "cic.ggon.org"
ttl = 30

[[service.target]]
name = "primary"
addresses = ["127.0.0.11"]
check = { type = "exec", command = ["true"], interval = "1s" }

[[service.target]]
name = "backup"
addresses = ["127.0.0.12"]
check = { type = "exec", command = ["true"], interval = "1s" }

[[service.target]]
name = "backup2"
addresses = ["127.0.0.13"]
check = { type = "exec", command = ["true"], interval = "1s" }
"#;

const PRIMARY: &str = "127.0.0.11";
const BACKUP: &str = "127.0.0.12";
const BACKUP2: &str = "127.0.0.13";

fn secs(s: u64) -> Duration {
    Duration::from_secs(s)
}

/// Copy the shipped zone into `dir` and return its path.
fn zone_copy(dir: &Path) -> String {
    let p = dir.join("ggon.org.zone");
    std::fs::write(&p, zone_text()).expect("write zone copy");
    p.display().to_string()
}

/// ggond config for zone mode rfc2136 against `primary`, with `key_toml` the
/// [[key]] table(s) and `key` the key named in the zone.
fn rfc2136_config(dir: &Path, key_toml: &str, key: &str, primary: u16) -> String {
    format!(
        r#"{key_toml}
[[zone]]
origin = "ggon.org"
file = "{zone}"
mode = "rfc2136"
primary = "127.0.0.1:{primary}"
key = "{key}"
serve = false
reconcile = "5m"
{CIC_SERVICE}"#,
        zone = zone_copy(dir),
    )
}

fn key_file_toml(name: &str, file: &Path) -> String {
    format!(
        "[[key]]\nname = \"{name}\"\nfile = \"{}\"\n",
        file.display()
    )
}

fn key_inline_toml(k: &TsigKey) -> String {
    format!(
        "[[key]]\nname = \"{}\"\nalgorithm = \"{}\"\nsecret = \"{}\"\n",
        k.name, k.algorithm, k.secret
    )
}

fn diag(g: &Ggond, binds: &[&Bind]) -> String {
    let mut s = format!("\nggond {}\n", g.log_tail());
    for b in binds {
        s += &format!("named (port {}) {}\n", b.port, b.log_tail());
    }
    s
}

/// publishers[0] of `status --json`, or a panic naming what is missing.
fn publisher(g: &Ggond) -> Value {
    let st = g.status();
    match st.get("publishers").and_then(Value::as_array) {
        Some(p) if !p.is_empty() => p[0].clone(),
        _ => panic!(
            "status --json has no non-empty top-level `publishers` array (zone mode rfc2136): {st:#}{}",
            diag(g, &[])
        ),
    }
}

/// Poll publishers[0] until `pred` holds (bounded); the last value seen on failure.
fn wait_publisher(
    g: &Ggond,
    limit: Duration,
    pred: impl Fn(&Value) -> bool,
) -> Result<Value, Value> {
    let mut last = Value::Null;
    poll(limit, Duration::from_millis(200), || {
        let p = publisher(g);
        let hit = pred(&p);
        last = p.clone();
        hit.then_some(p)
    })
    .ok_or(last)
}

fn last_error(p: &Value) -> String {
    p["last_error"].as_str().unwrap_or("").to_string()
}
