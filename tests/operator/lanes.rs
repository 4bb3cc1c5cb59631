//! The status page's health lanes and latency sparklines: after a scripted
//! failure and recovery of a target, its lane shows up, down, up in order
//! (read back from the SVG's `data-` attributes), and its sparkline has a
//! point per recent check.

use crate::support::ggond::*;
use crate::timeline::{attr, elements};

/// The `<svg class="lanes">` for `service` in `page`.
fn lanes_svg<'a>(page: &'a str, service: &str) -> &'a str {
    let needle = format!("class=\"lanes\" data-service=\"{service}\"");
    let at = page
        .find(&needle)
        .unwrap_or_else(|| panic!("no lanes for {service}"));
    let start = page[..at].rfind("<svg").unwrap();
    let end = at + page[at..].find("</svg>").unwrap() + 6;
    &page[start..end]
}

#[test]
fn health_lane_shows_the_failure_and_recovery_and_sparkline_has_points() {
    let mut p = HttpTarget::start(ip("127.0.0.181"));
    let b = HttpTarget::start(ip("127.0.0.182"));
    let mut env = Env::demo(&cic_two_targets(&p, &b));
    let g = env.start();
    g.wait_health("cic", "primary", true, secs(10.0));
    std::thread::sleep(secs(0.5));
    p.stop();
    g.wait_health("cic", "primary", false, secs(10.0));
    std::thread::sleep(secs(1.0));
    p.restart();
    g.wait_health("cic", "primary", true, secs(10.0));
    std::thread::sleep(secs(0.5));

    let (code, page) = http_request(g.control, "GET", "/", Some(&g.token()), None);
    assert_eq!(code, 200);
    let svg = lanes_svg(&page, "cic");
    // Kept for a person to look at.
    let kept =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("target/ggon-status-lanes.svg");
    std::fs::write(&kept, svg).unwrap();
    assert!(
        !page.contains("<script") && !svg.contains("href"),
        "no script, no external assets"
    );
    let segments: Vec<_> = elements(svg, "rect", "health")
        .into_iter()
        .filter(|a| attr(a, "data-target") == "primary")
        .collect();
    let states: Vec<&str> = segments.iter().map(|a| attr(a, "data-state")).collect();
    let known: Vec<&str> = states.iter().copied().filter(|s| *s != "unknown").collect();
    assert_eq!(known, ["up", "down", "up"], "{svg}");
    // Time order, contiguous, and the down interval lasted about as long
    // as the target was away (at least the second slept while down).
    let span = |a: &Vec<(String, String)>| -> (u64, u64) {
        (
            attr(a, "data-start").parse().unwrap(),
            attr(a, "data-end").parse().unwrap(),
        )
    };
    for w in segments.windows(2) {
        assert_eq!(span(&w[0]).1, span(&w[1]).0, "{svg}");
    }
    let down = segments
        .iter()
        .find(|a| attr(a, "data-state") == "down")
        .unwrap();
    let (d0, d1) = span(down);
    assert!(
        d1 - d0 >= 1000 && d1 - d0 < 15_000,
        "down {d0}..{d1}: {svg}"
    );
    // The backup never failed: one lane state after the first verdict.
    let backup: Vec<_> = elements(svg, "rect", "health")
        .into_iter()
        .filter(|a| attr(a, "data-target") == "backup" && attr(a, "data-state") != "unknown")
        .map(|a| attr(&a, "data-state").to_string())
        .collect();
    assert_eq!(backup, ["up"], "{svg}");

    // Sparklines: one polyline per target with a point per recent check.
    for target in ["primary", "backup"] {
        let line = elements(svg, "polyline", "latency")
            .into_iter()
            .find(|a| attr(a, "data-target") == target)
            .unwrap_or_else(|| panic!("no sparkline for {target}: {svg}"));
        let n: usize = attr(&line, "data-points").parse().unwrap();
        let points: Vec<(f64, f64)> = attr(&line, "points")
            .split(' ')
            .map(|p| {
                let (x, y) = p.split_once(',').unwrap();
                (x.parse().unwrap(), y.parse().unwrap())
            })
            .collect();
        assert!(n >= 5, "{target}: {n} points");
        assert_eq!(points.len(), n);
        assert!(points.windows(2).all(|w| w[0].0 < w[1].0), "x grows");
        assert!(attr(&line, "data-max-ms").parse::<f64>().unwrap() > 0.0);
    }
    // The failed checks of the primary are marked on its sparkline.
    assert!(
        elements(svg, "circle", "failed-check")
            .iter()
            .any(|a| attr(a, "data-target") == "primary"),
        "{svg}"
    );
}
