//! How ggon-ctl shows what ggond answered: typed views in, lines out.
//!
//! Written for an operator at 3 a.m.: every line says which service, which
//! target, and whether traffic moved. A change that did not have the effect
//! the command is for (a drained target still answered) is printed as a
//! WARNING on stderr, and the caller exits non-zero.

use std::net::IpAddr;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use ggon::decide::state::Override;
use ggon::decide::views::{ChangeView, ClusterView, DrillView, StatusView};
use ggon::decide::Event;

fn now() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0.0, |d| d.as_secs_f64())
}

fn ago(at: f64) -> String {
    format!("{:.0}s ago", (now() - at).max(0.0))
}

/// The record types `a` is answered with: `A`, `AAAA` or `A/AAAA`.
fn families(a: &[IpAddr]) -> &'static str {
    match (a.iter().any(IpAddr::is_ipv4), a.iter().any(IpAddr::is_ipv6)) {
        (true, false) => "A",
        (false, true) => "AAAA",
        _ => "A/AAAA",
    }
}

fn addrs(a: &[IpAddr]) -> String {
    a.iter()
        .map(IpAddr::to_string)
        .collect::<Vec<_>>()
        .join(",")
}

fn rfc3339(unix: u64) -> String {
    humantime::format_rfc3339_seconds(UNIX_EPOCH + Duration::from_secs(unix)).to_string()
}

/// "by ops: disk swap, until 2026-11-30T03:00:00Z (in 25m)" for an override.
/// "by AUTHOR: REASON, until WHEN (in LEFT)", or "…, until ENDED_BY" for an
/// override with no expiry ("undrained" for a drain, "released" for a pin).
fn by_until(o: &Override, ended_by: &str) -> String {
    let mut s = format!("by {}", if o.author.is_empty() { "?" } else { &o.author });
    if !o.reason.is_empty() {
        s.push_str(&format!(": {}", o.reason));
    }
    match o.expires {
        Some(t) => {
            let left = (t as f64 - now()).max(0.0) as u64;
            s.push_str(&format!(
                ", until {} (in {})",
                rfc3339(t),
                humantime::format_duration(Duration::from_secs(left))
            ));
        }
        None => s.push_str(&format!(", until {ended_by}")),
    }
    s
}

fn vote(v: Option<bool>) -> &'static str {
    match v {
        Some(true) => "up",
        Some(false) => "DOWN",
        None => "unknown",
    }
}

/// One line about the cluster (status) or the whole picture (`cluster`).
pub fn cluster(c: &ClusterView, full: bool) {
    println!(
        "cluster: node {} ({}), leader {}, etcd {}{}",
        c.node,
        c.role,
        c.leader.as_deref().unwrap_or("none"),
        if c.connected {
            "connected"
        } else {
            "DISCONNECTED (answering the last agreed state, taking no decisions)"
        },
        c.last_error
            .as_ref()
            .map(|e| format!("; last error: {e}"))
            .unwrap_or_default()
    );
    // Shown in `status` too: a node that differs answers differently.
    for m in &c.mismatches {
        println!(
            "  CONFIG MISMATCH: node {} differs from {} (the leader): {}",
            m.node,
            m.reference,
            m.differs.join("; ")
        );
    }
    if c.etcd.as_ref().is_some_and(|e| e.nospace) {
        println!(
            "ALARM: etcd is out of space (NOSPACE): every change is refused, answers stay; make \
             room: etcdctl compact, etcdctl defrag on each member, etcdctl alarm disarm \
             (docs/cluster.md)"
        );
    }
    if !full {
        return;
    }
    println!("    {:<16} {:<9} {:<8} CONTROL", "NODE", "ROLE", "LEASE");
    for m in &c.members {
        let leads = c.leader.as_deref() == Some(m.node.as_str());
        println!(
            "  {} {:<16} {:<9} {:<8} {}",
            if m.node == c.node { "*" } else { " " },
            m.node,
            if leads { "leader" } else { "follower" },
            m.lease_ttl.map_or("-".to_string(), |t| format!("{t}s")),
            m.control.as_deref().unwrap_or("-")
        );
    }
    println!(
        "    {:<28} {:<8} {:<10} VOTES",
        "TARGET", "AGREED", "DOWN IF"
    );
    for v in &c.verdicts {
        let votes: Vec<String> = v
            .votes
            .iter()
            .map(|(n, x)| format!("{n}={}", vote(*x)))
            .collect();
        println!(
            "    {:<28} {:<8} {:<10} {}",
            format!("{}/{}", v.service, v.target),
            vote(v.agreed),
            format!("{} down", v.needed),
            votes.join(" ")
        );
    }
}

pub fn status(v: &StatusView) {
    if let Some(c) = &v.cluster {
        cluster(c, false);
    }
    if v.services.is_empty() {
        println!("no services to show (none matches the filters, or none is configured)");
    }
    for s in &v.services {
        let pin = match &s.pin {
            None => String::new(),
            Some(p) => format!(" (pinned {})", by_until(p, "released")),
        };
        println!(
            "{} ({})  active: {}  mode: {}{}  failback: {}{}",
            s.name,
            s.fqdn,
            s.active,
            s.mode,
            pin,
            match s.failback {
                ggon::config::FailbackMode::Manual => "manual",
                ggon::config::FailbackMode::Auto => "auto",
            },
            if s.all_down {
                "  ALARM: all targets down"
            } else {
                ""
            }
        );
        if let Some((t, until)) = &s.drill {
            println!("    DRILL: {t} treated as failed until {}", rfc3339(*until));
        }
        println!(
            "    {:<12} {:<28} {:<8} LAST CHECK",
            "TARGET", "ADDRESSES", "HEALTH"
        );
        for t in &s.targets {
            let health = match t.healthy {
                Some(true) => "up",
                Some(false) => "DOWN",
                None => "unknown",
            };
            let last = match &t.last_check {
                None => "-".to_string(),
                Some(c) => format!("{} ({:.1} ms, {})", c.detail, c.latency_ms, ago(c.at)),
            };
            println!(
                "  {} {:<12} {:<28} {:<8} {}",
                if t.name == s.active { "*" } else { " " },
                t.name,
                addrs(&t.addresses),
                health,
                last
            );
            if let Some(d) = &t.drained {
                println!("      DRAINED {}", by_until(d, "undrained"));
            }
        }
        if !s.regions.is_empty() {
            println!(
                "    {:<12} {:<12} {:<28} ORDER",
                "REGION", "ANSWER", "ADDRESSES"
            );
        }
        for r in &s.regions {
            println!(
                "    {:<12} {:<12} {:<28} {}{}",
                r.name,
                r.active,
                addrs(&r.addresses),
                r.order.join(" > "),
                match &r.pin {
                    Some(p) => format!("  PINNED {}", by_until(p, "released")),
                    None => String::new(),
                }
            );
            if let Some((t, until)) = &r.drill {
                println!(
                    "      DRILL: {t} treated as failed until {}",
                    rfc3339(*until)
                );
            }
        }
    }
}

/// Prints the change; returns false when it carries a warning.
pub fn change(v: &ChangeView) -> bool {
    if v.dry_run {
        print!("DRY RUN (nothing changed): ");
    }
    let service = match &v.region {
        Some(r) => format!("{} region {r}", v.service),
        None => v.service.clone(),
    };
    let v = &ChangeView {
        service,
        ..v.clone()
    };
    if v.changed {
        println!(
            "{}: {} -> {} ({}), mode {}",
            v.service,
            v.from,
            v.to,
            addrs(&v.addresses),
            v.mode
        );
    } else {
        println!(
            "{}: stays on {} ({}), mode {}",
            v.service,
            v.to,
            addrs(&v.addresses),
            v.mode
        );
    }
    match &v.warning {
        Some(w) => {
            eprintln!("ggon-ctl: WARNING: {w}");
            false
        }
        None => true,
    }
}

pub fn drill(v: &DrillView, region: Option<&str>) {
    match region {
        Some(r) => println!("service:   {} ({}) region {r}", v.service, v.fqdn),
        None => println!("service:   {} ({})", v.service, v.fqdn),
    }
    println!("active:    {}", v.active);
    match &v.takeover {
        Some(t) => println!(
            "takeover:  {t} ({})",
            match v.takeover_healthy {
                Some(true) => "healthy",
                _ => "NOT healthy",
            }
        ),
        None => println!("takeover:  none"),
    }
    println!(
        "would answer: {} {} {}  ttl {}{}",
        v.fqdn,
        families(&v.answers),
        addrs(&v.answers),
        v.ttl,
        // No serial when nothing would be published (no takeover).
        v.serial.map_or(String::new(), |s| format!("  serial {s}"))
    );
    println!("note:      {}", v.note);
    if let Some((t, until)) = &v.failing {
        println!(
            "DRILL RUNNING: {t} treated as failed until {}",
            rfc3339(*until)
        );
    }
}

pub fn history(entries: &[Event]) {
    for e in entries {
        let arrow = match (e.from.as_deref(), e.to.as_deref()) {
            (Some(f), Some(t)) => format!("{f} -> {t}"),
            (None, Some(t)) => t.to_string(),
            (Some(f), None) => f.to_string(),
            _ => String::new(),
        };
        println!(
            "{}  {:<12} {:<8} {:<20} cause={} who={} {}",
            rfc3339(e.time),
            e.kind,
            match &e.region {
                Some(r) => format!("{}@{r}", e.service.as_deref().unwrap_or("-")),
                None => e.service.as_deref().unwrap_or("-").to_string(),
            },
            arrow,
            e.cause,
            e.who,
            if e.reason.is_empty() {
                String::new()
            } else {
                format!("reason=\"{}\"", e.reason)
            }
        );
    }
}

/// `reload --cluster`: one line per node, then the nodes that still differ.
pub fn cluster_reload(v: &serde_json::Value) {
    for n in v["nodes"].as_array().into_iter().flatten() {
        let node = n["node"].as_str().unwrap_or("?");
        let result = n["result"].as_str().unwrap_or("");
        match n["ok"].as_bool() {
            Some(true) => println!("{node}: reloaded: {result}"),
            _ => println!("{node}: NOT reloaded: {result}"),
        }
    }
    let differences = v["differences"].as_array().cloned().unwrap_or_default();
    if differences.is_empty() {
        println!("every node's services, zone files, keys and token agree");
    }
    for d in differences {
        let differs: Vec<&str> = d["differs"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|x| x.as_str())
            .collect();
        println!(
            "{} still differs from {}: {}",
            d["node"].as_str().unwrap_or("?"),
            d["reference"].as_str().unwrap_or("?"),
            differs.join("; ")
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_drill_names_the_record_types_it_would_answer() {
        let v4: IpAddr = "192.0.2.1".parse().unwrap();
        let v6: IpAddr = "2001:db8::1".parse().unwrap();
        assert_eq!(families(&[v4]), "A");
        assert_eq!(families(&[v6]), "AAAA");
        assert_eq!(families(&[v4, v6]), "A/AAAA");
    }
}
