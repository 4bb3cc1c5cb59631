//! The time range of the status page's pictures and their shared time axis.
//!
//! Owns: the ranges an operator can pick (1 h, 6 h, 24 h, 7 d, `?range=` on
//! the status page), the default (the shortest range in which the newest
//! change is visible: a 2-minute-old failover drawn over 24 h is a line one
//! pixel wide at "now"), and the axis both [`super::timeline`] and
//! [`super::lanes`] draw: where a time falls, and tick labels in UTC.
//! It must not read clocks or state: `now` and the changes are passed in.

use std::fmt::Write as _;

/// A range the pictures can show.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Range {
    Hour,
    SixHours,
    Day,
    Week,
}

/// Every range, shortest first (the selector's order).
pub const RANGES: [Range; 4] = [Range::Hour, Range::SixHours, Range::Day, Range::Week];

/// A `?range=` value that is not one of the ranges.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown range `{0}`: use 1h, 6h, 24h or 7d")]
pub struct UnknownRange(pub String);

impl Range {
    /// Its length in seconds.
    pub fn secs(self) -> u64 {
        match self {
            Range::Hour => 3600,
            Range::SixHours => 6 * 3600,
            Range::Day => 24 * 3600,
            Range::Week => 7 * 24 * 3600,
        }
    }

    /// As written in `?range=` and on the selector.
    pub fn label(self) -> &'static str {
        match self {
            Range::Hour => "1h",
            Range::SixHours => "6h",
            Range::Day => "24h",
            Range::Week => "7d",
        }
    }

    /// In words, for headings.
    pub fn words(self) -> &'static str {
        match self {
            Range::Hour => "last hour",
            Range::SixHours => "last 6 hours",
            Range::Day => "last 24 hours",
            Range::Week => "last 7 days",
        }
    }

    pub fn parse(s: &str) -> Result<Range, UnknownRange> {
        RANGES
            .into_iter()
            .find(|r| r.label() == s)
            .ok_or_else(|| UnknownRange(s.to_string()))
    }

    /// The shortest range in which a change at `newest` (unix seconds) is
    /// visible at `now`; the hour when there is none in the last 7 days
    /// (the current state is then all there is to see).
    pub fn fitting(newest: Option<u64>, now: u64) -> Range {
        let Some(age) = newest.map(|t| now.saturating_sub(t)) else {
            return Range::Hour;
        };
        RANGES
            .into_iter()
            .find(|r| age < r.secs())
            .unwrap_or(Range::Hour)
    }

    /// The distance between labelled ticks, in seconds.
    fn tick(self) -> u64 {
        match self {
            Range::Hour => 600,
            Range::SixHours => 3600,
            Range::Day => 4 * 3600,
            Range::Week => 24 * 3600,
        }
    }
}

/// Where times fall on a picture: `[from, to]` (in any unit, the same as
/// the times given) over `[left, left + width]` pixels.
#[derive(Debug, Clone, Copy)]
pub struct Axis {
    pub from: u64,
    pub to: u64,
    pub left: f64,
    pub width: f64,
    /// Units per second (1 for seconds, 1000 for milliseconds).
    pub per_sec: u64,
}

impl Axis {
    /// The x of time `t`, clamped to the picture.
    pub fn x(&self, t: u64) -> f64 {
        let span = self.to.saturating_sub(self.from).max(1) as f64;
        self.left + (t.clamp(self.from, self.to) - self.from) as f64 * self.width / span
    }

    /// Tick lines and their UTC labels along the bottom (`y0..y1` the
    /// lines, `label_y` the text): `HH:MM` on ranges of a day or less,
    /// `MM-DD` on the week (the headings say the times are UTC).
    pub fn ticks(&self, range: Range, y0: f64, y1: f64, label_y: f64) -> String {
        let mut s = String::new();
        let step = range.tick() * self.per_sec;
        let first = self.from.div_ceil(step) * step;
        let mut t = first;
        while t <= self.to {
            let x = self.x(t);
            let label = utc_label(t / self.per_sec, range == Range::Week);
            let _ = write!(
                s,
                "<line class=\"tick\" data-time=\"{}\" x1=\"{x:.1}\" x2=\"{x:.1}\" y1=\"{y0:.1}\" \
                 y2=\"{y1:.1}\" stroke=\"#bbb\" stroke-width=\"0.6\"/><text class=\"tick-label\" \
                 x=\"{x:.1}\" y=\"{label_y:.1}\" font-size=\"10\" font-family=\"sans-serif\" \
                 text-anchor=\"middle\" fill=\"#555\">{label}</text>",
                t / self.per_sec
            );
            t += step;
        }
        s
    }
}

/// Unix seconds as `HH:MM` (UTC), or `MM-DD` for `days`.
pub fn utc_label(secs: u64, days: bool) -> String {
    let stamp = humantime::format_rfc3339_seconds(
        std::time::UNIX_EPOCH + std::time::Duration::from_secs(secs),
    )
    .to_string();
    // 2026-12-06T17:04:14Z
    if days {
        stamp[5..10].to_string()
    } else {
        stamp[11..16].to_string()
    }
}

/// The selector above the pictures: a link per range (the chosen one in
/// bold, not a link). Relative links to this page only.
pub fn selector(chosen: Range) -> String {
    let mut s = String::from("<p class=\"range\">Range:");
    for r in RANGES {
        if r == chosen {
            let _ = write!(s, " <strong data-range=\"{0}\">{0}</strong>", r.label());
        } else {
            let _ = write!(
                s,
                " <a data-range=\"{0}\" href=\"?range={0}\">{0}</a>",
                r.label()
            );
        }
    }
    s.push_str("</p>\n");
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_default_range_fits_the_newest_change() {
        let now = 1_800_000_000;
        assert_eq!(Range::fitting(Some(now - 120), now), Range::Hour);
        assert_eq!(Range::fitting(Some(now - 3 * 3600), now), Range::SixHours);
        assert_eq!(Range::fitting(Some(now - 7 * 3600), now), Range::Day);
        assert_eq!(Range::fitting(Some(now - 3 * 86_400), now), Range::Week);
        assert_eq!(Range::fitting(Some(now - 30 * 86_400), now), Range::Hour);
        assert_eq!(Range::fitting(None, now), Range::Hour);
    }

    #[test]
    fn ranges_parse_and_refuse() {
        for r in RANGES {
            assert_eq!(Range::parse(r.label()), Ok(r));
        }
        let e = Range::parse("2h").unwrap_err();
        assert_eq!(e.to_string(), "unknown range `2h`: use 1h, 6h, 24h or 7d");
    }

    #[test]
    fn ticks_are_labelled_in_utc() {
        // 2027-01-15T08:00:00Z = 1_800_000_000 - 0 (a whole hour).
        let to = 1_800_000_000 / 3600 * 3600;
        let axis = Axis {
            from: to - 3600,
            to,
            left: 100.0,
            width: 600.0,
            per_sec: 1,
        };
        let t = axis.ticks(Range::Hour, 0.0, 10.0, 20.0);
        assert_eq!(t.matches("class=\"tick\"").count(), 7, "{t}");
        assert!(
            t.contains(&format!(">{}</text>", utc_label(to, false))),
            "{t}"
        );
        assert_eq!(axis.x(to), 700.0);
        assert_eq!(axis.x(to - 1800), 400.0);
        assert_eq!(axis.x(0), 100.0, "clamped");
        assert_eq!(utc_label(1_765_040_654, false), "17:04");
        assert_eq!(utc_label(1_765_040_654, true), "12-06");
    }

    #[test]
    fn the_selector_links_only_to_this_page() {
        let s = selector(Range::SixHours);
        assert!(s.contains("<strong data-range=\"6h\">6h</strong>"));
        assert_eq!(s.matches("href=\"?range=").count(), 3);
        assert_eq!(s.matches("href=").count(), 3);
    }
}
