//! The per-service and per-target gauges of `/metrics`, written straight as
//! OpenMetrics text from the status of this scrape.
//!
//! At 30,000 services of 2 targets these are 270,000 samples a scrape. Built
//! as `prometheus-client` families (as the rest of [`super::metrics`] is),
//! each sample cost two label `String`s, a SipHash and a map insert, for
//! values thrown away after the scrape: half a second per scrape on an idle
//! machine, most of it hashing and malloc. Written here they are one pass
//! over the status into one buffer, in the same format (`# HELP`, `# TYPE`,
//! `# UNIT`, label values escaped as the crate escapes them).

use std::fmt::Write as _;

use crate::decide::views::ServiceStatus;
use crate::decide::StatusView;

/// `\`, `"` and newline escaped, as OpenMetrics label values need.
fn escaped(out: &mut String, v: &str) {
    if !v.bytes().any(|b| matches!(b, b'\\' | b'"' | b'\n')) {
        out.push_str(v);
        return;
    }
    for c in v.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '"' => out.push_str("\\\""),
            '\n' => out.push_str("\\n"),
            c => out.push(c),
        }
    }
}

/// The `# HELP`, `# TYPE` (and `# UNIT`) lines of one metric family.
fn header(out: &mut String, name: &str, help: &str, unit: Option<&str>) {
    // prometheus-client ends every help text with a period: the same here.
    let _ = writeln!(out, "# HELP {name} {help}.\n# TYPE {name} gauge");
    if let Some(u) = unit {
        let _ = writeln!(out, "# UNIT {name} {u}");
    }
}

/// `name{service="…",target="…"} value` (or `mode` as the second label).
fn sample(out: &mut String, name: &str, service: &str, second: Option<(&str, &str)>, value: f64) {
    out.push_str(name);
    out.push_str("{service=\"");
    escaped(out, service);
    out.push('"');
    if let Some((label, v)) = second {
        let _ = write!(out, ",{label}=\"");
        escaped(out, v);
        out.push('"');
    }
    let _ = writeln!(out, "}} {value}");
}

/// 1/0/-1 for up, down and not known yet.
fn tristate(v: Option<bool>) -> f64 {
    match v {
        Some(true) => 1.0,
        Some(false) => 0.0,
        None => -1.0,
    }
}

/// One gauge per target of every service, `value` of (service, target index).
fn per_target(
    out: &mut String,
    services: &[ServiceStatus],
    name: &str,
    value: impl Fn(&ServiceStatus, usize) -> Option<f64>,
) {
    for s in services {
        for (i, t) in s.targets.iter().enumerate() {
            if let Some(v) = value(s, i) {
                sample(out, name, &s.name, Some(("target", &t.name)), v);
            }
        }
    }
}

/// Per service: the active target, the mode, all down; per target: health
/// and the last check's latency.
pub(super) fn write(out: &mut String, status: &StatusView) {
    let services = &status.services;
    // About 70 bytes a sample, 4 samples per target and 3 per service.
    let targets: usize = services.iter().map(|s| s.targets.len()).sum();
    out.reserve(70 * (4 * targets + 3 * services.len()) + 1024);

    let name = "ggon_service_active_target";
    header(
        out,
        name,
        "1 for the target a service's name answers with, 0 for the others",
        None,
    );
    per_target(out, services, name, |s, i| {
        Some(f64::from(u8::from(s.targets[i].name == s.active)))
    });

    let name = "ggon_service_mode";
    header(
        out,
        name,
        "1 for the service's current mode: manual (pinned by an operator) or auto",
        None,
    );
    for s in services {
        for m in ["manual", "auto"] {
            let on = f64::from(u8::from(s.mode.as_str() == m));
            sample(out, name, &s.name, Some(("mode", m)), on);
        }
    }

    let name = "ggon_service_all_down";
    header(
        out,
        name,
        "1 while every target of the service is down",
        None,
    );
    for s in services {
        sample(out, name, &s.name, None, f64::from(u8::from(s.all_down)));
    }

    let name = "ggon_target_healthy";
    header(
        out,
        name,
        "Target health: 1 up, 0 down, -1 unknown (not checked yet)",
        None,
    );
    per_target(out, services, name, |s, i| {
        Some(tristate(s.targets[i].healthy))
    });

    let name = "ggon_target_check_latency_seconds";
    header(
        out,
        name,
        "How long the target's last health check took (absent until it is checked)",
        Some("seconds"),
    );
    per_target(out, services, name, |s, i| {
        s.targets[i]
            .last_check
            .as_ref()
            .map(|c| c.latency_ms / 1000.0)
    });
}
