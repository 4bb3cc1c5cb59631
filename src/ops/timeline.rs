//! The status page's pictures: per service, which target was active when over
//! the last 24 h, with drains, pins, releases and drills marked, drawn from
//! the history as server-rendered SVG (no script, no external assets).
//!
//! Every drawn interval and mark carries `data-` attributes (target, start,
//! end, kind, time in unix seconds) so tests and tools can read the picture
//! back without guessing from coordinates.

use std::fmt::Write as _;

use crate::decide::views::ServiceStatus;
use crate::decide::{Event, EventKind};

/// The span drawn: 24 h.
pub const WINDOW: u64 = 24 * 3600;
const WIDTH: f64 = 720.0;
const LEFT: f64 = 90.0;
const LANE: f64 = 18.0;

/// One span of time during which `target` was active.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Active {
    pub target: String,
    pub start: u64,
    pub end: u64,
}

/// An event that moved the service from one target to another.
fn moved(e: &Event) -> Option<(&str, &str)> {
    match e.kind {
        EventKind::Drain | EventKind::Undrain | EventKind::Update | EventKind::Reload => None,
        _ => match (&e.from, &e.to) {
            (Some(f), Some(t)) if f != t => Some((f, t)),
            _ => None,
        },
    }
}

/// The active intervals of `service` in `[now - window, now]`, oldest first,
/// from the events (any order) and the target active now.
pub fn active_intervals(
    service: &ServiceStatus,
    events: &[Event],
    now: u64,
    window: u64,
) -> Vec<Active> {
    let from = now.saturating_sub(window);
    let mut moves: Vec<(u64, &str, &str)> = events
        .iter()
        .filter(|e| e.service.as_deref() == Some(service.name.as_str()))
        .filter(|e| e.time >= from && e.time <= now)
        .filter_map(|e| moved(e).map(|(f, t)| (e.time, f, t)))
        .collect();
    moves.sort_by_key(|m| m.0);
    let mut out = Vec::new();
    let mut start = from;
    let mut current = moves
        .first()
        .map_or(service.active.as_str(), |m| m.1)
        .to_string();
    for (t, _, to) in moves {
        if t > start {
            out.push(Active {
                target: current.clone(),
                start,
                end: t,
            });
        }
        start = t;
        current = to.to_string();
    }
    out.push(Active {
        target: current,
        start,
        end: now,
    });
    out
}

fn esc(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

fn mark_kind(k: EventKind) -> Option<&'static str> {
    Some(match k {
        EventKind::Drain => "drain",
        EventKind::Undrain => "undrain",
        EventKind::Pin => "pin",
        EventKind::Remap => "remap",
        EventKind::Release => "release",
        EventKind::Expire => "expire",
        EventKind::DrillStart => "drill-start",
        EventKind::DrillEnd => "drill-end",
        EventKind::Failover => "failover",
        EventKind::Failback => "failback",
        EventKind::AllDown => "all-down",
        EventKind::Recovered => "recovered",
        _ => return None,
    })
}

/// The SVG of one service's last `window` seconds.
pub fn render_svg(service: &ServiceStatus, events: &[Event], now: u64, window: u64) -> String {
    let from = now.saturating_sub(window);
    let x = |t: u64| {
        LEFT + (t.saturating_sub(from)) as f64 * (WIDTH - LEFT - 10.0) / window.max(1) as f64
    };
    let lanes: Vec<&str> = service.targets.iter().map(|t| t.name.as_str()).collect();
    let lane_y = |name: &str| {
        lanes
            .iter()
            .position(|l| *l == name)
            .map_or(10.0, |i| 10.0 + i as f64 * LANE)
    };
    let height = 10.0 + lanes.len().max(1) as f64 * LANE + 22.0;
    let mut s = String::new();
    let _ = writeln!(
        s,
        "<svg xmlns=\"http://www.w3.org/2000/svg\" class=\"timeline\" data-service=\"{}\" \
         data-from=\"{from}\" data-to=\"{now}\" width=\"{WIDTH}\" height=\"{height}\" \
         viewBox=\"0 0 {WIDTH} {height}\" role=\"img\" aria-label=\"{}: active target over the last 24 hours\">",
        esc(&service.name),
        esc(&service.name)
    );
    for t in &service.targets {
        let y = lane_y(&t.name);
        let health = match t.healthy {
            Some(true) => "healthy",
            Some(false) => "down",
            None => "unknown",
        };
        let _ = writeln!(
            s,
            "<text x=\"4\" y=\"{:.1}\" font-size=\"11\" font-family=\"sans-serif\" class=\"lane {health}\">{}</text>\
             <rect x=\"{LEFT}\" y=\"{:.1}\" width=\"{:.1}\" height=\"{:.1}\" fill=\"#f0f0f0\"/>",
            y + 12.0,
            esc(&t.name),
            y + 2.0,
            WIDTH - LEFT - 10.0,
            LANE - 4.0
        );
    }
    for a in active_intervals(service, events, now, window) {
        let (x0, x1) = (x(a.start), x(a.end));
        let _ = writeln!(
            s,
            "<rect class=\"active\" data-target=\"{}\" data-start=\"{}\" data-end=\"{}\" x=\"{x0:.1}\" \
             y=\"{:.1}\" width=\"{:.1}\" height=\"{:.1}\" fill=\"#2e7d32\"><title>{} active</title></rect>",
            esc(&a.target),
            a.start,
            a.end,
            lane_y(&a.target) + 2.0,
            (x1 - x0).max(1.0),
            LANE - 4.0,
            esc(&a.target)
        );
    }
    let mut marks: Vec<&Event> = events
        .iter()
        .filter(|e| e.service.as_deref() == Some(service.name.as_str()))
        .filter(|e| e.time >= from && e.time <= now)
        .collect();
    marks.sort_by_key(|e| e.time);
    for e in marks {
        let Some(kind) = mark_kind(e.kind) else {
            continue;
        };
        let target = e.to.as_deref().unwrap_or("");
        let color = match e.kind {
            EventKind::Drain | EventKind::Undrain => "#ef6c00",
            EventKind::DrillStart | EventKind::DrillEnd => "#6a1b9a",
            EventKind::Pin | EventKind::Remap | EventKind::Release | EventKind::Expire => "#1565c0",
            _ => "#c62828",
        };
        let _ = writeln!(
            s,
            "<line class=\"mark\" data-kind=\"{kind}\" data-target=\"{}\" data-time=\"{}\" x1=\"{x:.1}\" \
             x2=\"{x:.1}\" y1=\"6\" y2=\"{:.1}\" stroke=\"{color}\" stroke-width=\"2\"><title>{kind} {} {}</title></line>",
            esc(target),
            e.time,
            height - 20.0,
            esc(target),
            esc(&e.reason),
            x = x(e.time)
        );
    }
    let _ = writeln!(
        s,
        "<text x=\"{LEFT}\" y=\"{:.1}\" font-size=\"10\" font-family=\"sans-serif\">-24 h</text>\
         <text x=\"{:.1}\" y=\"{:.1}\" font-size=\"10\" font-family=\"sans-serif\" text-anchor=\"end\">now</text>\n</svg>",
        height - 6.0,
        WIDTH - 10.0,
        height - 6.0
    );
    s
}

/// The section of the status page: one picture per service.
pub fn render_section(services: &[ServiceStatus], events: &[Event], now: u64) -> String {
    let mut s = String::from("<h2>Last 24 hours</h2>\n");
    for svc in services {
        let _ = writeln!(s, "<h3>{}</h3>", esc(&svc.name));
        s.push_str(&render_svg(svc, events, now, WINDOW));
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::decide::EventCause;

    fn ev(time: u64, kind: EventKind, from: Option<&str>, to: Option<&str>) -> Event {
        let mut e = Event::new(time, kind, EventCause::Operator);
        e.service = Some("cic".into());
        e.from = from.map(String::from);
        e.to = to.map(String::from);
        e
    }

    #[test]
    fn intervals_follow_the_moves() {
        let svc: ServiceStatus = serde_json::from_value(serde_json::json!({
            "name": "cic", "fqdn": "cic.ggon.org.", "ttl": 30, "active": "primary",
            "mode": "auto", "failback": "auto", "pin": null, "all_down": false,
            "drill": null, "targets": []
        }))
        .unwrap_or_else(|e| panic!("{e}"));
        let now = 100_000;
        let events = [
            ev(
                now - 300,
                EventKind::Failover,
                Some("primary"),
                Some("backup"),
            ),
            ev(now - 200, EventKind::Remap, Some("backup"), Some("backup2")),
            ev(now - 150, EventKind::Drain, None, Some("primary")),
            ev(
                now - 100,
                EventKind::Release,
                Some("backup2"),
                Some("primary"),
            ),
        ];
        let a = active_intervals(&svc, &events, now, WINDOW);
        let got: Vec<_> = a
            .iter()
            .map(|a| (a.target.as_str(), a.start, a.end))
            .collect();
        assert_eq!(
            got,
            [
                ("primary", now - WINDOW, now - 300),
                ("backup", now - 300, now - 200),
                ("backup2", now - 200, now - 100),
                ("primary", now - 100, now),
            ]
        );
        let svg = render_svg(&svc, &events, now, WINDOW);
        assert!(
            svg.contains("data-kind=\"drain\" data-target=\"primary\""),
            "{svg}"
        );
        assert!(!svg.contains("<script"));
    }
}
