//! The status page's pictures: per service, which target was active when
//! over the chosen range ([`super::range`]), with drains, pins, releases and
//! drills marked, drawn from the history as server-rendered SVG (no script,
//! no external assets).
//!
//! Draws only what is known: the intervals are walked back from the target
//! active now (the table's), each move's `from` giving the one before, down
//! to `known_from` (the oldest of ggond's start and the oldest recorded
//! change); earlier time is drawn as "no data", never extrapolated. The
//! interval at "now" is drawn last and at least [`NOW_MIN`] pixels wide, so
//! the state at "now" is the table's state whatever was squeezed before it.
//!
//! Every drawn interval and mark carries `data-` attributes (target, start,
//! end, kind, time in unix seconds) so tests and tools can read the picture
//! back without guessing from coordinates.

use std::fmt::Write as _;

use super::range::{Axis, Range};
use crate::decide::views::ServiceStatus;
use crate::decide::{Event, EventKind};

const WIDTH: f64 = 760.0;
const LEFT: f64 = 90.0;
/// Where the time axis ends (room for its "UTC" on the right).
const RIGHT: f64 = 720.0;
const LANE: f64 = 18.0;
/// The narrowest the interval at "now" is drawn, in pixels.
pub const NOW_MIN: f64 = 3.0;

/// One span of time during which `target` was active.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Active {
    pub target: String,
    pub start: u64,
    pub end: u64,
}

/// An event that moved the service's default answer from one target to
/// another (a region's own moves are the region's, not the service's).
fn moved(e: &Event) -> Option<(&str, &str)> {
    match e.kind {
        EventKind::Drain | EventKind::Undrain | EventKind::Update | EventKind::Reload => None,
        _ if e.region.is_some() => None,
        _ => match (&e.from, &e.to) {
            (Some(f), Some(t)) if f != t => Some((f, t)),
            _ => None,
        },
    }
}

/// The events of `service` in `[from, now]`, oldest first.
fn of_service<'a>(service: &str, events: &'a [Event], from: u64, now: u64) -> Vec<&'a Event> {
    let mut v: Vec<&Event> = events
        .iter()
        .filter(|e| e.service.as_deref() == Some(service))
        .filter(|e| e.time >= from && e.time <= now)
        .collect();
    v.sort_by_key(|e| e.time);
    v
}

/// The active intervals of `service` in `[max(now - window, known_from),
/// now]`, oldest first: walked back from the target active now through the
/// moves (any order in `events`). Nothing before `known_from` is claimed.
pub fn active_intervals(
    service: &ServiceStatus,
    events: &[Event],
    now: u64,
    window: u64,
    known_from: u64,
) -> Vec<Active> {
    let from = now.saturating_sub(window).max(known_from.min(now));
    let mut out = Vec::new();
    let mut end = now;
    let mut current = service.active.clone();
    for e in of_service(&service.name, events, from, now)
        .into_iter()
        .rev()
    {
        let Some((f, _)) = moved(e) else { continue };
        // The target at "now" always has its interval, even one that began
        // this second (it is the table's, drawn at least NOW_MIN wide).
        if e.time < end || out.is_empty() {
            out.push(Active {
                target: current.clone(),
                start: e.time,
                end,
            });
        }
        end = end.min(e.time);
        current = f.to_string();
    }
    if from < end || out.is_empty() {
        out.push(Active {
            target: current,
            start: from,
            end,
        });
    }
    out.reverse();
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

/// The SVG of one service over `range` up to `now` (unix seconds), with
/// nothing claimed before `known_from`.
pub fn render_svg(
    service: &ServiceStatus,
    events: &[Event],
    now: u64,
    range: Range,
    known_from: u64,
) -> String {
    let from = now.saturating_sub(range.secs());
    let axis = Axis {
        from,
        to: now,
        left: LEFT,
        width: RIGHT - LEFT,
        per_sec: 1,
    };
    let lanes: Vec<&str> = service.targets.iter().map(|t| t.name.as_str()).collect();
    let lane_y = |name: &str| {
        lanes
            .iter()
            .position(|l| *l == name)
            .map_or(10.0, |i| 10.0 + i as f64 * LANE)
    };
    let bottom = 10.0 + lanes.len().max(1) as f64 * LANE;
    let height = bottom + 22.0;
    let mut s = String::new();
    let _ = writeln!(
        s,
        "<svg xmlns=\"http://www.w3.org/2000/svg\" class=\"timeline\" data-service=\"{}\" \
         data-from=\"{from}\" data-to=\"{now}\" data-known-from=\"{known_from}\" data-range=\"{}\" width=\"{WIDTH}\" height=\"{height}\" \
         viewBox=\"0 0 {WIDTH} {height}\" role=\"img\" aria-label=\"{}: active target over the {}\">",
        esc(&service.name),
        range.label(),
        esc(&service.name),
        range.words()
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
            RIGHT - LEFT,
            LANE - 4.0
        );
    }
    let known = known_from.clamp(from, now);
    if known > from {
        no_data(&mut s, &axis, (from, known), (6.0, bottom));
    }
    let intervals = active_intervals(service, events, now, range.secs(), known_from);
    let last = intervals.len().saturating_sub(1);
    for (i, a) in intervals.iter().enumerate() {
        let (mut x0, x1) = (axis.x(a.start), axis.x(a.end));
        if i == last {
            x0 = x0.min(x1 - NOW_MIN);
        }
        let _ = writeln!(
            s,
            "<rect class=\"active\" data-target=\"{}\" data-start=\"{}\" data-end=\"{}\" x=\"{x0:.1}\" \
             y=\"{:.1}\" width=\"{:.1}\" height=\"{:.1}\" fill=\"#2e7d32\"><title>{} active {}–{} UTC</title></rect>",
            esc(&a.target),
            a.start,
            a.end,
            lane_y(&a.target) + 2.0,
            (x1 - x0).max(1.0),
            LANE - 4.0,
            esc(&a.target),
            super::range::utc_label(a.start, false),
            super::range::utc_label(a.end, false),
        );
    }
    marks(&mut s, service, events, (from, now), &axis, height);
    s.push_str(&axis.ticks(range, 6.0, bottom, height - 6.0));
    s.push_str("</svg>\n");
    s
}

/// The hatched "no data" span `[t0, t1]` over the lanes `y0..y1`.
pub fn no_data(s: &mut String, axis: &Axis, (t0, t1): (u64, u64), (y0, y1): (f64, f64)) {
    let (x0, x1) = (axis.x(t0), axis.x(t1));
    let _ = writeln!(
        s,
        "<rect class=\"nodata\" data-start=\"{t0}\" data-end=\"{t1}\" x=\"{x0:.1}\" y=\"{y0:.1}\" \
         width=\"{:.1}\" height=\"{:.1}\" fill=\"#fafafa\" stroke=\"#ccc\" stroke-dasharray=\"3 3\">\
         <title>no data: ggond was not recording</title></rect>",
        (x1 - x0).max(0.0),
        y1 - y0
    );
    if x1 - x0 > 60.0 {
        let _ = writeln!(
            s,
            "<text x=\"{:.1}\" y=\"{:.1}\" font-size=\"10\" font-family=\"sans-serif\" \
             text-anchor=\"middle\" fill=\"#888\">no data</text>",
            (x0 + x1) / 2.0,
            (y0 + y1) / 2.0 + 3.0
        );
    }
}

/// The event marks: a coloured line per drain, pin, drill, failover, ….
fn marks(
    s: &mut String,
    service: &ServiceStatus,
    events: &[Event],
    (from, now): (u64, u64),
    axis: &Axis,
    height: f64,
) {
    for e in of_service(&service.name, events, from, now) {
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
            x = axis.x(e.time)
        );
    }
}

/// The section of the status page: one picture per service over `range`.
pub fn render_section(
    services: &[ServiceStatus],
    events: &[Event],
    now: u64,
    range: Range,
    started: u64,
) -> String {
    let mut s = format!("<h2>Active target, {} (UTC)</h2>\n", range.words());
    // Known from ggond's start, or from the oldest recorded change before
    // it (the history is kept across restarts).
    let oldest = events.iter().map(|e| e.time).min().unwrap_or(started);
    let known_from = started.min(oldest);
    for svc in services {
        let _ = writeln!(s, "<h3>{}</h3>", esc(&svc.name));
        s.push_str(&render_svg(svc, events, now, range, known_from));
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

    fn cic(active: &str) -> ServiceStatus {
        serde_json::from_value(serde_json::json!({
            "name": "cic", "fqdn": "cic.ggon.org.", "ttl": 30, "active": active,
            "mode": "auto", "failback": "auto", "pin": null, "all_down": false,
            "drill": null, "targets": [
                {"name": "primary", "addresses": [], "healthy": true, "last_check": null},
                {"name": "backup", "addresses": [], "healthy": true, "last_check": null},
                {"name": "backup2", "addresses": [], "healthy": true, "last_check": null}
            ]
        }))
        .unwrap_or_else(|e| panic!("{e}"))
    }

    fn spans(a: &[Active]) -> Vec<(&str, u64, u64)> {
        a.iter()
            .map(|a| (a.target.as_str(), a.start, a.end))
            .collect()
    }

    #[test]
    fn intervals_walk_back_from_now_and_claim_nothing_before_the_data() {
        let now = 100_000;
        let events = [
            ev(now - 200, EventKind::Remap, Some("backup"), Some("backup2")),
            ev(
                now - 300,
                EventKind::Failover,
                Some("primary"),
                Some("backup"),
            ),
            ev(now - 150, EventKind::Drain, None, Some("primary")),
            ev(
                now - 100,
                EventKind::Release,
                Some("backup2"),
                Some("primary"),
            ),
        ];
        let day = Range::Day.secs();
        // Known from 400 s ago (ggond's start): nothing drawn before it.
        let a = active_intervals(&cic("primary"), &events, now, day, now - 400);
        assert_eq!(
            spans(&a),
            [
                ("primary", now - 400, now - 300),
                ("backup", now - 300, now - 200),
                ("backup2", now - 200, now - 100),
                ("primary", now - 100, now),
            ]
        );
        // Known for longer than the window: the window's start.
        let a = active_intervals(&cic("primary"), &events, now, 3600, 0);
        assert_eq!(a[0].start, now - 3600);
        // The table's target is the one at "now", whatever the events say.
        let a = active_intervals(&cic("backup"), &[], now, day, now - 120);
        assert_eq!(spans(&a), [("backup", now - 120, now)]);
        // A move this very second still leaves the new target at "now".
        let moved_now = [ev(
            now,
            EventKind::Failover,
            Some("primary"),
            Some("backup"),
        )];
        let a = active_intervals(&cic("backup"), &moved_now, now, day, now - 120);
        assert_eq!(
            spans(&a),
            [("primary", now - 120, now), ("backup", now, now)]
        );
    }

    /// The attribute `name` of the elements of class `class`, in order.
    fn attrs<'a>(svg: &'a str, class: &str, name: &str) -> Vec<&'a str> {
        svg.split(&format!("class=\"{class}\""))
            .skip(1)
            .map(|rest| {
                let at = rest.find(&format!("{name}=\"")).unwrap() + name.len() + 2;
                &rest[at..at + rest[at..].find('"').unwrap()]
            })
            .collect()
    }

    #[test]
    fn a_two_minute_old_ggond_after_a_failover() {
        let now = 1_800_000_000;
        let events = [ev(
            now - 60,
            EventKind::Failover,
            Some("primary"),
            Some("backup"),
        )];
        let svc = cic("backup");
        let page = render_section(
            std::slice::from_ref(&svc),
            &events,
            now,
            Range::Hour,
            now - 120,
        );
        assert!(
            page.contains("<h2>Active target, last hour (UTC)</h2>"),
            "{page}"
        );
        assert_eq!(attrs(&page, "active", "data-target"), ["primary", "backup"]);
        assert_eq!(
            attrs(&page, "active", "data-start"),
            [(now - 120).to_string(), (now - 60).to_string()]
        );
        // 58 minutes of no data, not of primary.
        assert_eq!(
            attrs(&page, "nodata", "data-end"),
            [(now - 120).to_string()]
        );
        assert!(page.contains(">no data</text>"));
        // Ticks every 10 minutes, labelled with UTC times.
        assert_eq!(attrs(&page, "tick", "data-time").len(), 7, "{page}");
        assert!(page.contains(&format!(
            ">{}</text>",
            super::super::range::utc_label(now / 600 * 600, false)
        )));
        let marks = attrs(&page, "mark", "data-kind");
        assert_eq!(marks, ["failover"]);
        assert!(!page.contains("<script"));
        // The interval at "now" is at least NOW_MIN wide even when it began
        // a second ago, and it is drawn last.
        let svg = render_svg(
            &svc,
            &[ev(
                now - 1,
                EventKind::Failover,
                Some("primary"),
                Some("backup"),
            )],
            now,
            Range::Week,
            now - 120,
        );
        let widths = attrs(&svg, "active", "width");
        let last: f64 = widths.last().unwrap().parse().unwrap();
        assert!(last >= NOW_MIN, "{svg}");
        assert_eq!(attrs(&svg, "active", "data-target").last(), Some(&"backup"));
    }
}
