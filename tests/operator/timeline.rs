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
    assert_eq!(last.1 - first.0, 24 * 3600, "24 h drawn");

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
