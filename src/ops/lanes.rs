//! The status page's health pictures: per service, one lane per target with
//! its up and down intervals over the last 24 h, and a sparkline of its
//! latest check latencies; server-rendered SVG, no script, no external
//! assets.
//!
//! Reads only the controller's check log ([`crate::decide::checklog`]).
//! Every segment and sparkline carries `data-` attributes (target, state,
//! start and end in unix milliseconds, number of points, largest latency)
//! so tests and tools can read the picture back.

use std::collections::HashMap;
use std::fmt::Write as _;

use crate::decide::checklog::{TargetLog, WINDOW_MS};
use crate::decide::views::ServiceStatus;

const WIDTH: f64 = 860.0;
const LEFT: f64 = 90.0;
/// Where the 24 h lanes end and the sparklines begin.
const LANES_END: f64 = 660.0;
const SPARK_LEFT: f64 = 680.0;
const SPARK_WIDTH: f64 = 120.0;
const LANE: f64 = 20.0;

fn esc(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

/// Unix milliseconds as UTC `HH:MM:SS`.
fn clock(ms: u64) -> String {
    let s = (ms / 1000) % 86_400;
    format!("{:02}:{:02}:{:02}", s / 3600, (s / 60) % 60, s % 60)
}

/// The SVG of one service's targets: health lanes and latency sparklines.
pub fn render_svg(service: &ServiceStatus, logs: &HashMap<String, TargetLog>, now: u64) -> String {
    let from = now.saturating_sub(WINDOW_MS);
    let span = LANES_END - LEFT;
    let x = |t: u64| LEFT + (t.clamp(from, now) - from) as f64 * span / WINDOW_MS as f64;
    let height = 8.0 + service.targets.len().max(1) as f64 * LANE + 18.0;
    let mut s = String::new();
    let _ = writeln!(
        s,
        "<svg xmlns=\"http://www.w3.org/2000/svg\" class=\"lanes\" data-service=\"{}\" \
         data-from=\"{from}\" data-to=\"{now}\" width=\"{WIDTH}\" height=\"{height}\" \
         viewBox=\"0 0 {WIDTH} {height}\" role=\"img\" aria-label=\"{}: target health over the \
         last 24 hours and recent check latency\">",
        esc(&service.name),
        esc(&service.name)
    );
    for (i, t) in service.targets.iter().enumerate() {
        let y = 8.0 + i as f64 * LANE;
        let name = esc(&t.name);
        let _ = writeln!(
            s,
            "<text x=\"4\" y=\"{:.1}\" font-size=\"11\" font-family=\"sans-serif\">{name}</text>\
             <rect x=\"{LEFT}\" y=\"{:.1}\" width=\"{span:.1}\" height=\"{:.1}\" fill=\"#f0f0f0\"/>",
            y + 12.0,
            y + 2.0,
            LANE - 6.0
        );
        let empty = TargetLog::default();
        let log = logs.get(&t.name).unwrap_or(&empty);
        for r in log.runs.iter().filter(|r| r.end >= from) {
            let (state, color) = match r.up {
                Some(true) => ("up", "#2e7d32"),
                Some(false) => ("down", "#c62828"),
                None => ("unknown", "#9e9e9e"),
            };
            let (x0, x1) = (x(r.start), x(r.end));
            let _ = writeln!(
                s,
                "<rect class=\"health\" data-target=\"{name}\" data-state=\"{state}\" \
                 data-start=\"{}\" data-end=\"{}\" x=\"{x0:.2}\" y=\"{:.1}\" width=\"{:.2}\" \
                 height=\"{:.1}\" fill=\"{color}\"><title>{name} {state} {}–{} UTC</title></rect>",
                r.start,
                r.end,
                y + 2.0,
                (x1 - x0).max(1.0),
                LANE - 6.0,
                clock(r.start),
                clock(r.end)
            );
        }
        // Short outages stay visible: each down run again on top, at least
        // 2 px wide (a minute of 24 h is well under a pixel).
        for r in log
            .runs
            .iter()
            .filter(|r| r.end >= from && r.up == Some(false))
        {
            let _ = writeln!(
                s,
                "<rect class=\"down-mark\" x=\"{:.2}\" y=\"{:.1}\" width=\"{:.2}\" height=\"{:.1}\" \
                 fill=\"#c62828\"/>",
                x(r.start),
                y + 2.0,
                (x(r.end) - x(r.start)).max(2.0),
                LANE - 6.0
            );
        }
        sparkline(&mut s, &name, log, y);
    }
    let _ = writeln!(
        s,
        "<text x=\"{LEFT}\" y=\"{:.1}\" font-size=\"10\" font-family=\"sans-serif\">-24 h</text>\
         <text x=\"{LANES_END}\" y=\"{:.1}\" font-size=\"10\" font-family=\"sans-serif\" \
         text-anchor=\"end\">now</text><text x=\"{SPARK_LEFT}\" y=\"{:.1}\" font-size=\"10\" \
         font-family=\"sans-serif\">latency, last checks</text>\n</svg>",
        height - 4.0,
        height - 4.0,
        height - 4.0
    );
    s
}

/// The latest check latencies of one target as a polyline beside its lane
/// (scaled to the largest; failed checks marked in red).
fn sparkline(s: &mut String, name: &str, log: &TargetLog, y: f64) {
    let n = log.samples.len();
    if n == 0 {
        return;
    }
    let max = log
        .samples
        .iter()
        .map(|p| p.latency_ms)
        .fold(0.0_f64, f64::max)
        .max(0.001);
    let h = LANE - 6.0;
    let step = SPARK_WIDTH / (crate::decide::checklog::MAX_SAMPLES - 1) as f64;
    let px = |i: usize| SPARK_LEFT + (i + crate::decide::checklog::MAX_SAMPLES - n) as f64 * step;
    let py = |ms: f64| y + 2.0 + h - ms / max * h;
    let points: Vec<String> = log
        .samples
        .iter()
        .enumerate()
        .map(|(i, p)| format!("{:.1},{:.1}", px(i), py(p.latency_ms)))
        .collect();
    let last = log.samples.back().map_or(0.0, |p| p.latency_ms);
    let _ = writeln!(
        s,
        "<polyline class=\"latency\" data-target=\"{name}\" data-points=\"{n}\" \
         data-max-ms=\"{max:.3}\" data-last-ms=\"{last:.3}\" points=\"{}\" fill=\"none\" \
         stroke=\"#1565c0\" stroke-width=\"1.2\"><title>{name}: last {n} checks, latest \
         {last:.1} ms, largest {max:.1} ms</title></polyline>",
        points.join(" ")
    );
    for (i, p) in log.samples.iter().enumerate().filter(|(_, p)| !p.ok) {
        let _ = writeln!(
            s,
            "<circle class=\"failed-check\" data-target=\"{name}\" data-at=\"{}\" cx=\"{:.1}\" \
             cy=\"{:.1}\" r=\"1.6\" fill=\"#c62828\"/>",
            p.at,
            px(i),
            py(p.latency_ms)
        );
    }
    let _ = writeln!(
        s,
        "<text x=\"{:.1}\" y=\"{:.1}\" font-size=\"10\" font-family=\"sans-serif\">{last:.1} ms</text>",
        SPARK_LEFT + SPARK_WIDTH + 6.0,
        y + 13.0
    );
}

/// The section of the status page: one picture per service.
pub fn render_section(
    services: &[ServiceStatus],
    logs: impl Fn(&str) -> HashMap<String, TargetLog>,
    now: u64,
) -> String {
    let mut s = String::from("<h2>Target health (24 h) and check latency</h2>\n");
    for svc in services {
        let _ = writeln!(s, "<h3>{}</h3>", esc(&svc.name));
        s.push_str(&render_svg(svc, &logs(&svc.name), now));
    }
    s
}
