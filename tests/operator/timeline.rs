//! The status page's 24 h timeline: after a scripted failover, remap and
//! drain, the SVG shows those intervals in order (read back from its
//! `data-` attributes).

use crate::support::ggond::*;

/// The attributes of every `<tag ...>` in `svg` whose class is `class`.
pub(crate) fn elements(svg: &str, tag: &str, class: &str) -> Vec<Vec<(String, String)>> {
    let mut out = Vec::new();
    let open = format!("<{tag} ");
    // Bounded by the text: each step moves past one tag.
    let mut rest = svg;
    while let Some(i) = rest.find(&open) {
        let after = &rest[i + open.len()..];
        let end = after.find('>').expect("tag closes");
        let attrs: Vec<(String, String)> = after[..end]
            .split("\" ")
            .filter_map(|kv| kv.split_once("=\""))
            .map(|(k, v)| (k.trim().to_string(), v.trim_end_matches('"').to_string()))
            .collect();
        if attrs.iter().any(|(k, v)| k == "class" && v == class) {
            out.push(attrs);
        }
        rest = &after[end..];
    }
    out
}

pub(crate) fn attr<'a>(attrs: &'a [(String, String)], name: &str) -> &'a str {
    attrs
        .iter()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.as_str())
        .unwrap_or_else(|| panic!("no {name} in {attrs:?}"))
}

#[test]
fn timeline_shows_failover_remap_and_drain_in_order() {
    let mut p = HttpTarget::start(ip("127.0.0.171"));
    let b = HttpTarget::start(ip("127.0.0.172"));
    let mut env = Env::demo(&cic_two_targets(&p, &b));
    let g = env.start();
    g.wait_health("cic", "backup", true, secs(10.0));
    g.wait_answer("cic.ggon.org.", &[ip("127.0.0.171")], secs(5.0));
    // Event times are in seconds, and the picture starts at ggond's start:
    // keep the primary's first interval at least one second long.
    std::thread::sleep(secs(1.1));

    // Failover: the primary stops answering.
    p.stop();
    g.wait_answer("cic.ggon.org.", &[ip("127.0.0.172")], secs(15.0));
    p.restart();
    g.wait_health("cic", "primary", true, secs(15.0));
    // Event times are in seconds: keep each interval at least one long.
    std::thread::sleep(secs(1.1));
    assert!(g.ctl(&["remap", "cic", "--to", "primary"]).ok());
    std::thread::sleep(secs(1.1));
    let out = g.ctl(&["drain", "cic", "primary", "--force", "--reason", "disk"]);
    assert!(out.ok(), "{out:?}");

    let (code, page) = http_request(g.control, "GET", "/", Some(&g.token()), None);
    assert_eq!(code, 200);
    let start = page.find("<svg").expect("an SVG on the page");
    let svg = &page[start..start + page[start..].find("</svg>").unwrap() + 6];
    assert!(svg.contains("data-service=\"cic\""), "{svg}");
    assert!(
        !page.contains("<script") && !svg.contains("href"),
        "no script, no external assets"
    );

    let active = elements(svg, "rect", "active");
    let order: Vec<&str> = active.iter().map(|a| attr(a, "data-target")).collect();
    assert_eq!(order, ["primary", "backup", "primary", "backup"], "{svg}");
    // Contiguous, in time order, ending now.
    let span = |a: &Vec<(String, String)>| -> (u64, u64) {
        (
            attr(a, "data-start").parse().unwrap(),
            attr(a, "data-end").parse().unwrap(),
        )
    };
    for w in active.windows(2) {
        assert_eq!(span(&w[0]).1, span(&w[1]).0, "{svg}");
        assert!(span(&w[0]).0 < span(&w[0]).1);
    }
    let (first, last) = (span(&active[0]), span(active.last().unwrap()));
    let to: u64 = attr(&elements(svg, "svg", "timeline")[0], "data-to")
        .parse()
        .unwrap();
    assert_eq!(last.1, to, "drawn up to now");
    // Known from ggond's start: before it, "no data", not the primary.
    let nodata = elements(svg, "rect", "nodata");
    assert_eq!(attr(&nodata[0], "data-end"), first.0.to_string(), "{svg}");

    let marks = elements(svg, "line", "mark");
    let kinds: Vec<&str> = marks.iter().map(|m| attr(m, "data-kind")).collect();
    let pos = |k: &str| {
        kinds
            .iter()
            .position(|x| *x == k)
            .unwrap_or_else(|| panic!("no {k} mark: {kinds:?}"))
    };
    assert!(
        pos("failover") < pos("remap") && pos("remap") < pos("drain"),
        "{kinds:?}"
    );
    let drain = &marks[pos("drain")];
    assert_eq!(attr(drain, "data-target"), "primary");
}

/// The svg of class `class` for `service` in `page`.
pub(crate) fn svg_of<'a>(page: &'a str, class: &str, service: &str) -> &'a str {
    let needle = format!("class=\"{class}\" data-service=\"{service}\"");
    let at = page
        .find(&needle)
        .unwrap_or_else(|| panic!("no {class} picture for {service}"));
    let start = page[..at].rfind("<svg").unwrap();
    let end = at + page[at..].find("</svg>").unwrap() + 6;
    &page[start..end]
}

/// A 2-minute-old ggond after a failover: the pictures cover the last hour
/// (the range that fits), say "no data" before ggond started, and at "now"
/// show the table's state: `cic` active on the backup, the backups up, the
/// primary down. The page is kept in target/ for a screenshot.
#[test]
fn a_two_minute_old_ggond_after_a_failover_draws_only_what_it_knows() {
    let mut p = HttpTarget::start(ip("127.0.0.173"));
    let b = HttpTarget::start(ip("127.0.0.174"));
    let b2 = HttpTarget::start(ip("127.0.0.175"));
    let mut env = Env::demo(&http_service(
        "cic",
        "cic.ggon.org",
        "manual",
        "1s",
        &[("primary", &p), ("backup", &b), ("backup2", &b2)],
    ));
    let started = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let born = std::time::Instant::now();
    let g = env.start();
    g.wait_health("cic", "backup2", true, secs(10.0));
    std::thread::sleep(secs(60.0).saturating_sub(born.elapsed()));
    p.stop();
    g.wait_answer("cic.ggon.org.", &[ip("127.0.0.174")], secs(15.0));
    std::thread::sleep(secs(120.0).saturating_sub(born.elapsed()));

    let (code, page) = http_request(g.control, "GET", "/", Some(&g.token()), None);
    assert_eq!(code, 200);
    let kept =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("target/ggon-status-2min.html");
    std::fs::write(&kept, &page).unwrap();
    assert!(
        page.contains("<strong data-range=\"1h\">1h</strong>"),
        "1 h fits"
    );

    let svg = svg_of(&page, "timeline", "cic");
    let to: u64 = attr(&elements(svg, "svg", "timeline")[0], "data-to")
        .parse()
        .unwrap();
    let active = elements(svg, "rect", "active");
    let order: Vec<&str> = active.iter().map(|a| attr(a, "data-target")).collect();
    assert_eq!(order, ["primary", "backup"], "{svg}");
    let start: u64 = attr(&active[0], "data-start").parse().unwrap();
    assert!(
        start >= started.saturating_sub(1) && start <= started + 5,
        "{start} vs {started}"
    );
    assert_eq!(
        attr(&active[1], "data-end"),
        to.to_string(),
        "backup at now"
    );
    let nodata = elements(svg, "rect", "nodata");
    assert_eq!(nodata.len(), 1, "{svg}");
    assert_eq!(attr(&nodata[0], "data-end"), start.to_string());
    assert!(elements(svg, "line", "tick").len() >= 6, "an axis of times");

    let lanes = svg_of(&page, "lanes", "cic");
    let to = attr(&elements(lanes, "svg", "lanes")[0], "data-to").to_string();
    for (target, want) in [("primary", "down"), ("backup", "up"), ("backup2", "up")] {
        let segs: Vec<_> = elements(lanes, "rect", "health")
            .into_iter()
            .filter(|a| attr(a, "data-target") == target)
            .collect();
        let last = segs
            .last()
            .unwrap_or_else(|| panic!("no {target} lane: {lanes}"));
        assert_eq!(attr(last, "data-state"), want, "{target} at now: {lanes}");
        assert_eq!(attr(last, "data-end"), to, "{target} drawn to now");
        let width: f64 = attr(last, "width").parse().unwrap();
        assert!(width >= 3.0, "{target} at now is visible: {lanes}");
    }
    // Nothing is drawn after the last segment of a lane that could cover "now".
    let tail = &lanes[lanes.rfind("class=\"health\"").unwrap()..];
    assert!(!tail.contains("down-mark"), "{lanes}");
    assert_eq!(elements(lanes, "rect", "nodata").len(), 3, "{lanes}");
}
