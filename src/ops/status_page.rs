//! The read-only status page: one self-contained HTML document (inline CSS,
//! no scripts, no external assets) showing each service's active target,
//! mode and target health, plus the recent changes.
//!
//! Owns: turning a [`StatusView`] and history entries into escaped HTML,
//! and which services the page lists ([`Listing`]): those matching the
//! search box (`?q=`, and `?down=1` for problem services only), problem
//! services first (see [`super::select`]), at most [`ROWS`] of them, then a
//! "N more — filter to see them" row. At 10,000 services a page of every
//! row and its pictures is tens of MB the browser must lay out; the operator
//! looks for the few that are wrong, and those come first.
//!
//! It must not fetch state, serve HTTP, or offer any action: every byte of
//! text that came from config, operators or checks is HTML-escaped, and the
//! page contains no scripts, and no form but the search box (a GET to the
//! page itself).

use std::fmt::Write as _;
use std::time::{Duration, UNIX_EPOCH};

use serde_json::Value;

use super::select::{problem, problems_first, Filter};
use crate::decide::views::{ServiceStatus, StatusView, TargetStatus};

/// The most service rows the page shows (problem services first); the
/// others are counted in a last row that says how many and to filter.
pub const ROWS: usize = 100;

/// The most services the pictures (timeline, health lanes) are drawn for:
/// the first rows listed, so the problem services. Two pictures of 100
/// services are ~750 KB of SVG, most of the page's weight and layout time.
pub const PICTURES: usize = 20;

/// What the page lists: the status with its services chosen, ordered and
/// cut to [`ROWS`], and what the counts above and below the table say.
#[derive(Debug)]
pub struct Listing {
    /// The status, its services those shown, in the order shown.
    pub status: StatusView,
    /// Services configured, and those with a problem.
    pub total: usize,
    pub problems: usize,
    /// All-down services (the title's alarm), whether shown or not.
    pub all_down: usize,
    /// Services matching the search, and those left out beyond [`ROWS`].
    pub matched: usize,
    pub hidden: usize,
    /// The search as given (shown back in the box).
    pub text: String,
    pub down: bool,
}

impl Listing {
    /// The services the pictures are drawn for (the first [`PICTURES`] rows).
    pub fn pictured(&self) -> &[ServiceStatus] {
        let rows = &self.status.services;
        &rows[..rows.len().min(PICTURES)]
    }

    /// Said above the pictures when they leave rows out (else empty).
    pub fn pictures_note(&self) -> String {
        let rows = self.status.services.len();
        match rows > PICTURES {
            true => format!(
                "<p class=\"meta\" id=\"pictures-note\">Pictures of the first {PICTURES} of the {rows} services listed; filter to see others.</p>\n"
            ),
            false => String::new(),
        }
    }

    /// Choose the rows: `text` (the search box; empty: every service) and
    /// `down` (problem services only), problems first, at most `rows`.
    pub fn of(mut status: StatusView, text: &str, down: bool, rows: usize) -> Listing {
        let total = status.services.len();
        let problems = status
            .services
            .iter()
            .filter(|s| problem(s).is_some())
            .count();
        let all_down = status.services.iter().filter(|s| s.all_down).count();
        let filter = Filter {
            down,
            text: Some(text.trim().to_string()).filter(|t| !t.is_empty()),
            ..Filter::default()
        };
        // Without service names or a region the filter cannot fail.
        let _ = filter.apply(&mut status);
        problems_first(&mut status.services);
        let matched = status.services.len();
        status.services.truncate(rows);
        Listing {
            hidden: matched - status.services.len(),
            status,
            total,
            problems,
            all_down,
            matched,
            text: text.to_string(),
            down,
        }
    }
}

const STYLE: &str = "\
body{font-family:system-ui,-apple-system,Segoe UI,Helvetica,Arial,sans-serif;margin:1.5em;color:#222;background:#fafafa}
h1{font-size:1.4em;margin:0 0 .2em}
h2{font-size:1.1em;margin:1.5em 0 .5em}
p.meta{color:#666;margin:0 0 1em;font-size:.9em}
table{border-collapse:collapse;width:100%;background:#fff}
th,td{border:1px solid #ddd;padding:.35em .6em;text-align:left;vertical-align:top}
th{background:#f0f0f0;font-weight:600}
tr.alarm td{background:#fde2e2}
tr.problem td:first-child{border-left:4px solid #c77700}
tr.more td{color:#555;font-style:italic}
form.filter{margin:0 0 .6em}
form.filter input[type=search]{width:18em;padding:.2em .4em}
.problem-badge{background:#ffe6bf;color:#6b3d00}
.badge{display:inline-block;padding:0 .45em;border-radius:.3em;font-size:.85em;font-weight:600}
.up{background:#d9f2dd;color:#185c24}
.down{background:#f8d0d0;color:#8a1111}
.unknown{background:#eee;color:#555}
.alarm-badge{background:#b00020;color:#fff}
.manual{background:#fff0c2;color:#6b5200}
.auto{background:#e3ecff;color:#1d3f8a}
.active{font-weight:700}
ul.targets{list-style:none;margin:0;padding:0}
ul.targets li{margin:.15em 0}
.detail{color:#555;font-size:.85em}
code{font-size:.9em}
";

/// Escape text for HTML element content and double-quoted attribute values.
fn esc(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// Unix seconds as `2024-01-02T03:04:05Z`.
fn time(secs: f64) -> String {
    if !secs.is_finite() || secs < 0.0 {
        return String::new();
    }
    let t = UNIX_EPOCH + Duration::from_secs(secs as u64);
    humantime::format_rfc3339_seconds(t).to_string()
}

/// A history field as text: strings as they are, numbers and booleans
/// printed, anything else (missing, null) empty.
fn field(entry: &Value, key: &str) -> String {
    match entry.get(key) {
        Some(Value::String(s)) => s.clone(),
        Some(Value::Number(n)) => n.to_string(),
        Some(Value::Bool(b)) => b.to_string(),
        _ => String::new(),
    }
}

/// Render the page. `history` is shown in the order given (pass newest
/// first); each entry is a JSON object with at least `time` (unix seconds),
/// `service`, `from`, `to`, `cause`, `reason` and `who`. `refresh_secs` of 0
/// leaves out the automatic refresh.
pub fn render_html(listing: &Listing, history: &[Value], refresh_secs: u32) -> String {
    let status = &listing.status;
    let mut h = String::with_capacity(4096);
    let down = listing.all_down;
    h.push_str("<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n");
    h.push_str("<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n");
    if refresh_secs > 0 {
        let _ = writeln!(
            h,
            "<meta http-equiv=\"refresh\" content=\"{refresh_secs}\">"
        );
    }
    let title = if down > 0 {
        format!("ggon status: {down} service(s) ALL DOWN")
    } else {
        "ggon status".to_string()
    };
    let _ = writeln!(h, "<title>{}</title>", esc(&title));
    let _ = writeln!(h, "<style>\n{STYLE}</style>\n</head>\n<body>");
    let _ = writeln!(h, "<h1>{}</h1>", esc(&title));
    let now = std::time::SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0.0, |d| d.as_secs_f64());
    let _ = write!(h, "<p class=\"meta\">Generated {}", time(now));
    if refresh_secs > 0 {
        let _ = write!(h, "; refreshes every {refresh_secs}s");
    }
    h.push_str(".</p>\n");
    // Cluster nodes configured differently answer differently: first.
    for m in status.cluster.iter().flat_map(|c| &c.mismatches) {
        let _ = writeln!(
            h,
            "<p class=\"alarm\">Config mismatch: node <code>{}</code> differs from the leader <code>{}</code>: {}</p>",
            esc(&m.node),
            esc(&m.reference),
            esc(&m.differs.join("; "))
        );
    }

    h.push_str("<h2>Services</h2>\n");
    search_box(&mut h, listing);
    h.push_str("<table class=\"services\">\n<thead><tr>");
    h.push_str("<th>Service</th><th>Name</th><th>Active</th><th>Mode</th><th>Targets</th>");
    h.push_str("</tr></thead>\n<tbody>\n");
    for s in &status.services {
        service_row(&mut h, s);
    }
    if listing.hidden > 0 {
        let _ = writeln!(
            h,
            "<tr class=\"more\"><td colspan=\"5\">{} more — filter to see them</td></tr>",
            listing.hidden
        );
    }
    if listing.total == 0 {
        h.push_str("<tr><td colspan=\"5\">No services configured.</td></tr>\n");
    } else if listing.matched == 0 {
        h.push_str("<tr><td colspan=\"5\">No service matches the filter.</td></tr>\n");
    }
    h.push_str("</tbody>\n</table>\n");

    if !status.zones.is_empty() {
        h.push_str("<h2>Zones</h2>\n<table class=\"zones\">\n");
        h.push_str("<thead><tr><th>Zone</th><th>Serial</th></tr></thead>\n<tbody>\n");
        for z in &status.zones {
            let _ = writeln!(
                h,
                "<tr><td><code>{}</code></td><td>{}</td></tr>",
                esc(&z.origin),
                z.serial
            );
        }
        h.push_str("</tbody>\n</table>\n");
    }

    history_table(&mut h, history);
    h.push_str("</body>\n</html>\n");
    h
}

/// The recent changes, in the order given.
fn history_table(h: &mut String, history: &[Value]) {
    h.push_str("<h2>Recent changes</h2>\n<table class=\"history\">\n<thead><tr>");
    h.push_str("<th>Time</th><th>Service</th><th>From</th><th>To</th><th>Cause</th><th>Reason</th><th>Who</th>");
    h.push_str("</tr></thead>\n<tbody>\n");
    for e in history {
        let when = match e.get("time") {
            Some(Value::Number(n)) => n.as_f64().map(time).unwrap_or_default(),
            _ => field(e, "time"),
        };
        let _ = writeln!(
            h,
            "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
            esc(&when),
            esc(&field(e, "service")),
            esc(&field(e, "from")),
            esc(&field(e, "to")),
            esc(&field(e, "cause")),
            esc(&field(e, "reason")),
            esc(&field(e, "who")),
        );
    }
    if history.is_empty() {
        h.push_str("<tr><td colspan=\"7\">No changes recorded.</td></tr>\n");
    }
    h.push_str("</tbody>\n</table>\n");
}

/// The search box (a GET form to the page itself) and the counts.
fn search_box(h: &mut String, l: &Listing) {
    let _ = writeln!(
        h,
        "<form method=\"get\" class=\"filter\"><input type=\"search\" name=\"q\" value=\"{}\" \
         placeholder=\"service, DNS name or target\" aria-label=\"filter services\"> \
         <label><input type=\"checkbox\" name=\"down\" value=\"1\"{}> problems only</label> \
         <button type=\"submit\">Filter</button></form>",
        esc(&l.text),
        if l.down { " checked" } else { "" }
    );
    let _ = writeln!(
        h,
        "<p class=\"meta\" id=\"counts\">{} of {} services have a problem (all targets down, \
         not on the preferred target, or a target down); they are listed first. \
         Showing {} of {} matching.</p>",
        l.problems,
        l.total,
        l.status.services.len(),
        l.matched
    );
}

fn service_row(h: &mut String, s: &ServiceStatus) {
    let trouble = problem(s);
    let class = match (s.all_down, trouble.is_some()) {
        (true, _) => " class=\"alarm problem\"",
        (false, true) => " class=\"problem\"",
        (false, false) => "",
    };
    let _ = writeln!(h, "<tr data-service=\"{}\"{class}>", esc(&s.name));
    let _ = write!(h, "<td>{}", esc(&s.name));
    if s.all_down {
        h.push_str(" <span class=\"badge alarm-badge\">ALL DOWN</span>");
    } else if let Some(p) = trouble {
        let _ = write!(
            h,
            " <span class=\"badge problem-badge\">{}</span>",
            p.words()
        );
    }
    h.push_str("</td>");
    let _ = write!(h, "<td><code>{}</code></td>", esc(&s.fqdn));
    let _ = write!(h, "<td class=\"active\">{}", esc(&s.active));
    for r in &s.regions {
        let _ = write!(
            h,
            "<div class=\"detail\" data-region=\"{}\">{}: {}{}</div>",
            esc(&r.name),
            esc(&r.name),
            esc(&r.active),
            if r.pin.is_some() { " (pinned)" } else { "" }
        );
    }
    h.push_str("</td>");
    let mode_class = s.mode.as_str();
    let _ = write!(
        h,
        "<td><span class=\"badge {mode_class}\">{}</span>",
        esc(s.mode.as_str())
    );
    if let Some(pin) = &s.pin {
        let _ = write!(
            h,
            "<div class=\"detail\">pinned to {} by {}",
            esc(&pin.target),
            esc(&pin.author)
        );
        if !pin.reason.is_empty() {
            let _ = write!(h, ": {}", esc(&pin.reason));
        }
        if let Some(exp) = pin.expires {
            let _ = write!(h, " (until {})", time(exp as f64));
        }
        h.push_str("</div>");
    }
    h.push_str("</td>\n<td><ul class=\"targets\">\n");
    for t in &s.targets {
        target_item(h, t, t.name == s.active);
    }
    h.push_str("</ul></td>\n</tr>\n");
}

fn target_item(h: &mut String, t: &TargetStatus, active: bool) {
    let (class, label) = match t.healthy {
        Some(true) => ("up", "up"),
        Some(false) => ("down", "DOWN"),
        None => ("unknown", "unknown"),
    };
    let name_class = if active { " class=\"active\"" } else { "" };
    let _ = write!(
        h,
        "<li data-target=\"{}\"><span{name_class}>{}</span> <span class=\"badge {class}\">{label}</span>",
        esc(&t.name),
        esc(&t.name)
    );
    if !t.addresses.is_empty() {
        let addrs: Vec<String> = t.addresses.iter().map(|a| a.to_string()).collect();
        let _ = write!(h, " <code>{}</code>", esc(&addrs.join(", ")));
    }
    if let Some(c) = &t.last_check {
        let _ = write!(
            h,
            "<div class=\"detail\">last check {}: {} ({:.0} ms, {})</div>",
            if c.ok { "ok" } else { "failed" },
            esc(&c.detail),
            c.latency_ms,
            time(c.at)
        );
    } else {
        h.push_str("<div class=\"detail\">not checked yet</div>");
    }
    h.push_str("</li>\n");
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::FailbackMode;
    use crate::decide::state::Override;
    use crate::decide::views::{CheckView, Mode, ZoneStatus};
    use serde_json::json;

    fn target(name: &str, healthy: Option<bool>, detail: &str) -> TargetStatus {
        TargetStatus {
            name: name.into(),
            addresses: vec!["192.0.2.10".parse().unwrap()],
            healthy,
            drained: None,
            last_check: healthy.map(|ok| CheckView {
                ok,
                detail: detail.into(),
                latency_ms: 41.7,
                at: 1_700_000_000.0,
            }),
        }
    }

    fn status() -> StatusView {
        StatusView {
            services: vec![
                ServiceStatus {
                    name: "cic".into(),
                    fqdn: "cic.ggon.org.".into(),
                    active: "fra".into(),
                    mode: Mode::Manual,
                    failback: FailbackMode::Manual,
                    pin: Some(Override {
                        target: "fra".into(),
                        reason: "maintenance <b>ams</b>".into(),
                        author: "alice".into(),
                        since: 1_700_000_000,
                        expires: None,
                    }),
                    drill: None,
                    ttl: 30,
                    all_down: false,
                    targets: vec![
                        target("ams", Some(false), "connect: refused"),
                        target("fra", Some(true), "HTTP 200"),
                        target("lon", None, ""),
                    ],
                    regions: Vec::new(),
                },
                ServiceStatus {
                    name: "wiki".into(),
                    fqdn: "wiki.ggon.org.".into(),
                    active: "x".into(),
                    mode: Mode::Auto,
                    failback: FailbackMode::Auto,
                    pin: None,
                    drill: None,
                    ttl: 30,
                    all_down: true,
                    targets: vec![target("x", Some(false), "timeout")],
                    regions: Vec::new(),
                },
            ],
            zones: vec![ZoneStatus {
                origin: "ggon.org.".into(),
                serial: 7,
            }],
            publishers: vec![],
            cluster: None,
        }
    }

    fn history() -> Vec<Value> {
        vec![
            json!({"time": 1_700_000_100u64, "service": "cic", "from": "ams", "to": "fra",
                   "cause": "operator", "reason": "<script>alert('x')</script>", "who": "alice"}),
            json!({"time": 1_700_000_000u64, "service": "cic", "from": "fra", "to": "ams",
                   "cause": "health", "reason": "fra down", "who": "ggon", "extra": [1, 2]}),
        ]
    }

    fn all(status: StatusView) -> Listing {
        Listing::of(status, "", false, ROWS)
    }

    /// The `<tr data-service=...>` row of one service, up to its `</tr>`.
    fn row<'a>(page: &'a str, service: &str) -> &'a str {
        let start = page
            .find(&format!("<tr data-service=\"{service}\""))
            .unwrap_or_else(|| panic!("no row for {service}"));
        let end = page[start..].find("</tr>").unwrap() + start;
        &page[start..end]
    }

    #[test]
    fn one_row_per_service_with_targets_and_health() {
        let page = render_html(&all(status()), &history(), 15);
        assert!(page.starts_with("<!DOCTYPE html>"));
        assert!(page.contains("<meta http-equiv=\"refresh\" content=\"15\">"));
        assert_eq!(page.matches("<tr data-service=").count(), 2);

        let cic = row(&page, "cic");
        assert!(cic.contains("cic.ggon.org."));
        assert!(cic.contains("<td class=\"active\">fra</td>"));
        assert!(cic.contains(">manual</span>"));
        assert!(cic.contains("pinned to fra by alice: maintenance &lt;b&gt;ams&lt;/b&gt;"));
        assert!(cic.contains(
            "<li data-target=\"ams\"><span>ams</span> <span class=\"badge down\">DOWN</span>"
        ));
        assert!(
            cic.contains("<span class=\"active\">fra</span> <span class=\"badge up\">up</span>")
        );
        assert!(cic.contains("<span class=\"badge unknown\">unknown</span>"));
        assert!(cic.contains("last check failed: connect: refused (42 ms, 2023-11-14T22:13:20Z)"));
        assert!(cic.contains("not checked yet"));
        assert!(!cic.contains("alarm"));

        let wiki = row(&page, "wiki");
        assert!(wiki.starts_with("<tr data-service=\"wiki\" class=\"alarm problem\">"));
        assert!(wiki.contains("ALL DOWN"));
        assert!(page.contains("<title>ggon status: 1 service(s) ALL DOWN</title>"));
    }

    #[test]
    fn problems_first_search_and_the_rows_left_out() {
        let mut st = status();
        let mut fine = st.services[0].clone();
        fine.targets.retain(|t| t.name == "fra");
        for i in 0..3 {
            fine.name = format!("fine{i}");
            st.services.insert(0, fine.clone());
        }
        let page = render_html(&Listing::of(st.clone(), "", false, 3), &[], 0);
        let order: Vec<usize> = ["wiki", "cic", "fine2"]
            .iter()
            .map(|n| page.find(&format!("data-service=\"{n}\"")).unwrap())
            .collect();
        assert!(order.windows(2).all(|w| w[0] < w[1]), "{page}");
        assert!(!page.contains("data-service=\"fine1\""));
        assert!(page.contains("<td colspan=\"5\">2 more — filter to see them</td>"));
        assert!(page.contains("2 of 5 services have a problem"));
        assert!(page.contains("not on its preferred target"));

        let page = render_html(&Listing::of(st.clone(), " FINE1 ", false, 3), &[], 0);
        assert_eq!(page.matches("<tr data-service=").count(), 1);
        assert!(page.contains("data-service=\"fine1\""));
        assert!(page.contains("value=\" FINE1 \""));
        let page = render_html(&Listing::of(st.clone(), "", true, 100), &[], 0);
        assert_eq!(page.matches("<tr data-service=").count(), 2);
        assert!(page.contains("name=\"down\" value=\"1\" checked"));
        let page = render_html(&Listing::of(st, "nothing-like-it", false, 100), &[], 0);
        assert!(page.contains("No service matches the filter."));
    }

    #[test]
    fn recent_changes_are_listed_and_escaped() {
        let page = render_html(&all(status()), &history(), 15);
        let hist = &page[page.find("Recent changes").unwrap()..];
        assert!(hist.contains(
            "<tr><td>2023-11-14T22:15:00Z</td><td>cic</td><td>ams</td><td>fra</td><td>operator</td>\
             <td>&lt;script&gt;alert(&#39;x&#39;)&lt;/script&gt;</td><td>alice</td></tr>"
        ));
        assert!(hist.contains("<td>fra down</td><td>ggon</td>"));
        // The first entry is shown first.
        assert!(hist.find("operator").unwrap() < hist.find("fra down").unwrap());
        assert!(!page.contains("<script"));
    }

    #[test]
    fn hostile_names_cannot_break_out() {
        let mut st = status();
        st.services[0].name = "a\"><script>x</script>".into();
        st.services[0].targets[0].name = "t\"onmouseover=\"x".into();
        st.services[0].targets[0]
            .last_check
            .as_mut()
            .unwrap()
            .detail = "</td><img src=x>".into();
        let page = render_html(&all(st), &[json!({"time": "soon", "service": "<i>"})], 0);
        assert!(page.contains("data-service=\"a&quot;&gt;&lt;script&gt;x&lt;/script&gt;\""));
        assert!(page.contains("data-target=\"t&quot;onmouseover=&quot;x\""));
        assert!(!page.contains("<script"));
        assert!(!page.contains("<img"));
        assert!(!page.contains("<i>"));
        assert!(page.contains("<td>soon</td><td>&lt;i&gt;</td>"));
        // refresh 0: no automatic reload.
        assert!(!page.contains("http-equiv"));
    }

    #[test]
    fn self_contained() {
        let page = render_html(&all(status()), &history(), 30);
        for needle in [
            "<link", "<script", "src=", "href=", "http://", "https://", "@import", "url(",
        ] {
            assert!(!page.contains(needle), "found {needle}");
        }
        let empty = StatusView {
            services: vec![],
            zones: vec![],
            publishers: vec![],
            cluster: None,
        };
        let page = render_html(&all(empty), &[], 30);
        assert!(page.contains("No services configured."));
        assert!(page.contains("No changes recorded."));
    }
}
