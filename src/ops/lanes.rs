//! The status page's health pictures: per service, one lane per target with
//! its up and down intervals over the chosen range ([`super::range`]), and a
//! sparkline of its latest check latencies; server-rendered SVG, no script,
//! no external assets.
//!
//! Draws only what is known: before a target's first recorded check the
//! lane says "no data"; the segment at "now" is in the table's state and is
//! drawn last, at least [`NOW_MIN`] pixels wide, so no 1-pixel rectangle
//! drawn after it can paint "now" another colour.
//!
//! Reads only the controller's check log ([`crate::decide::checklog`]).
//! Every segment and sparkline carries `data-` attributes (target, state,
//! start and end in unix milliseconds, number of points, largest latency)
//! so tests and tools can read the picture back.

use std::collections::HashMap;
use std::fmt::Write as _;

use super::range::{Axis, Range};
use super::timeline::NOW_MIN;
use crate::decide::checklog::TargetLog;
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

/// One drawn stretch of a lane: `[start, end]` unix ms in state `up`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Segment {
    pub start: u64,
    pub end: u64,
    pub up: Option<bool>,
}

/// What a lane draws over `[from, now]`: the log's runs clipped to it, the
/// last one carried to `now` in `table`'s state (the state the table shows
/// is the state at "now"; a different last run ends where it ended and the
/// table's state follows it). Nothing before the first run: the caller
/// draws that as "no data".
pub fn segments(log: &TargetLog, table: Option<bool>, from: u64, now: u64) -> Vec<Segment> {
    let mut out: Vec<Segment> = log
        .runs
        .iter()
        .filter(|r| r.end >= from && r.start <= now)
        .map(|r| Segment {
            start: r.start.max(from),
            end: r.end.min(now),
            up: r.up,
        })
        .collect();
    match out.last_mut() {
        Some(last) if last.up == table => last.end = now,
        Some(last) => {
            let start = last.end;
            out.push(Segment {
                start,
                end: now,
                up: table,
            });
        }
        None => {}
    }
    out
}

/// The SVG of one service's targets over `range` up to `now` (unix ms):
/// health lanes and latency sparklines.
pub fn render_svg(
    service: &ServiceStatus,
    logs: &HashMap<String, TargetLog>,
    now: u64,
    range: Range,
) -> String {
    let from = now.saturating_sub(range.secs() * 1000);
    let axis = Axis {
        from,
        to: now,
        left: LEFT,
        width: LANES_END - LEFT,
        per_sec: 1000,
    };
    let bottom = 8.0 + service.targets.len().max(1) as f64 * LANE;
    let height = bottom + 18.0;
    let mut s = String::new();
    let _ = writeln!(
        s,
        "<svg xmlns=\"http://www.w3.org/2000/svg\" class=\"lanes\" data-service=\"{}\" \
         data-from=\"{from}\" data-to=\"{now}\" data-range=\"{}\" width=\"{WIDTH}\" height=\"{height}\" \
         viewBox=\"0 0 {WIDTH} {height}\" role=\"img\" aria-label=\"{}: target health over the \
         {} and recent check latency\">",
        esc(&service.name),
        range.label(),
        esc(&service.name),
        range.words()
    );
    for (i, t) in service.targets.iter().enumerate() {
        let y = 8.0 + i as f64 * LANE;
        let empty = TargetLog::default();
        let log = logs.get(&t.name).unwrap_or(&empty);
        lane(
            &mut s,
            &axis,
            &t.name,
            y,
            &segments(log, t.healthy, from, now),
        );
        sparkline(&mut s, &esc(&t.name), log, y);
    }
    s.push_str(&axis.ticks(range, 8.0, bottom, height - 4.0));
    let _ = writeln!(
        s,
        "<text x=\"{SPARK_LEFT}\" y=\"{:.1}\" font-size=\"10\" font-family=\"sans-serif\">\
         latency, last checks</text>\n</svg>",
        height - 4.0
    );
    s
}

/// One target's lane at `y`: "no data" before its first segment, the
/// segments, short outages widened so they stay visible, and the segment at
/// "now" drawn last and at least [`NOW_MIN`] wide, so it is what "now" shows.
fn lane(s: &mut String, axis: &Axis, name: &str, y: f64, segs: &[Segment]) {
    let name = esc(name);
    let h = LANE - 6.0;
    let _ = writeln!(
        s,
        "<text x=\"4\" y=\"{:.1}\" font-size=\"11\" font-family=\"sans-serif\">{name}</text>\
         <rect x=\"{LEFT}\" y=\"{:.1}\" width=\"{:.1}\" height=\"{h:.1}\" fill=\"#f0f0f0\"/>",
        y + 12.0,
        y + 2.0,
        axis.width,
    );
    let known = segs.first().map_or(axis.to, |g| g.start);
    if known > axis.from {
        super::timeline::no_data(s, axis, (axis.from, known), (y + 2.0, y + 2.0 + h));
    }
    let right = axis.x(axis.to);
    let Some((last, before)) = segs.split_last() else {
        return;
    };
    for g in before {
        segment(s, &name, axis, g, y, axis.x(g.start));
    }
    // Short outages stay visible: each down run again on top, at least 2 px
    // wide (a minute of 24 h is well under a pixel), short of "now".
    for g in before.iter().filter(|g| g.up == Some(false)) {
        let x0 = axis.x(g.start);
        let _ = writeln!(
            s,
            "<rect class=\"down-mark\" x=\"{x0:.2}\" y=\"{:.1}\" width=\"{:.2}\" height=\"{h:.1}\" \
             fill=\"#c62828\"/>",
            y + 2.0,
            (axis.x(g.end) - x0).max(2.0).min(right - NOW_MIN - x0).max(0.0),
        );
    }
    segment(
        s,
        &name,
        axis,
        last,
        y,
        axis.x(last.start).min(right - NOW_MIN),
    );
}

/// One segment's rectangle, from `x0` to its end.
fn segment(s: &mut String, name: &str, axis: &Axis, g: &Segment, y: f64, x0: f64) {
    let (state, color) = match g.up {
        Some(true) => ("up", "#2e7d32"),
        Some(false) => ("down", "#c62828"),
        None => ("unknown", "#9e9e9e"),
    };
    let _ = writeln!(
        s,
        "<rect class=\"health\" data-target=\"{name}\" data-state=\"{state}\" \
         data-start=\"{}\" data-end=\"{}\" x=\"{x0:.2}\" y=\"{:.1}\" width=\"{:.2}\" \
         height=\"{:.1}\" fill=\"{color}\"><title>{name} {state} {}–{} UTC</title></rect>",
        g.start,
        g.end,
        y + 2.0,
        (axis.x(g.end) - x0).max(1.0),
        LANE - 6.0,
        clock(g.start),
        clock(g.end)
    );
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
    range: Range,
) -> String {
    let mut s = format!(
        "<h2>Target health, {} (UTC), and check latency</h2>\n",
        range.words()
    );
    for svc in services {
        let _ = writeln!(s, "<h3>{}</h3>", esc(&svc.name));
        s.push_str(&render_svg(svc, &logs(&svc.name), now, range));
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::decide::checklog::Run;

    fn log(runs: &[(u64, u64, Option<bool>)]) -> TargetLog {
        let mut l = TargetLog::default();
        l.runs = runs
            .iter()
            .map(|&(start, end, up)| Run { start, end, up })
            .collect();
        l
    }

    #[test]
    fn the_lane_ends_now_in_the_tables_state() {
        let now = 10_000_000;
        // Unknown, down, then up: the up run reaches "now".
        let l = log(&[
            (now - 3000, now - 2000, None),
            (now - 2000, now - 1000, Some(false)),
            (now - 1000, now - 200, Some(true)),
        ]);
        let segs = segments(&l, Some(true), now - 3_600_000, now);
        assert_eq!(
            segs.last(),
            Some(&Segment {
                start: now - 1000,
                end: now,
                up: Some(true)
            })
        );
        // The table says down, the log's last run is up: down follows it.
        let segs = segments(&l, Some(false), now - 3_600_000, now);
        assert_eq!(
            segs.last(),
            Some(&Segment {
                start: now - 200,
                end: now,
                up: Some(false)
            })
        );
        // Clipped to the range.
        let segs = segments(&l, Some(true), now - 1500, now);
        assert_eq!(segs[0].start, now - 1500);
    }

    #[test]
    fn a_lane_squeezed_into_the_last_pixel_still_shows_its_state_at_now() {
        // The picture: a 2-minute-old target over 7 days went
        // unknown, down, up within the last pixel; the red down mark used
        // to be drawn last, at "now".
        let now = 10_000_000_000;
        let l = log(&[
            (now - 120_000, now - 119_000, None),
            (now - 119_000, now - 118_000, Some(false)),
            (now - 118_000, now - 1000, Some(true)),
        ]);
        let svc: ServiceStatus = serde_json::from_value(serde_json::json!({
            "name": "cic", "fqdn": "cic.ggon.org.", "ttl": 30, "active": "primary",
            "mode": "auto", "failback": "auto", "pin": null, "all_down": false,
            "drill": null, "targets": [
                {"name": "primary", "addresses": [], "healthy": true, "last_check": null}
            ]
        }))
        .unwrap_or_else(|e| panic!("{e}"));
        let logs = HashMap::from([("primary".to_string(), l)]);
        let svg = render_svg(&svc, &logs, now, Range::Week);
        let last = &svg[svg.rfind("<rect").unwrap()..];
        assert!(last.contains("data-state=\"up\""), "{svg}");
        assert!(last.contains(&format!("data-end=\"{now}\"")), "{svg}");
        assert!(
            last.contains(&format!("x=\"{:.2}\"", LANES_END - NOW_MIN)),
            "{svg}"
        );
        assert!(svg.contains("class=\"nodata\""), "{svg}");
    }
}
