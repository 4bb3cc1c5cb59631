//! The Prometheus text: valid exposition, the expected series and labels.

use super::*;
use crate::config::FailbackMode;
use crate::decide::views::{CheckView, Mode, ServiceStatus, TargetStatus, ZoneStatus};

fn target(name: &str, healthy: Option<bool>) -> TargetStatus {
    TargetStatus {
        name: name.into(),
        addresses: vec!["192.0.2.1".parse().unwrap()],
        healthy,
        drained: None,
        last_check: healthy.map(|ok| CheckView {
            ok,
            detail: "HTTP 200".into(),
            latency_ms: 12.5,
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
                mode: Mode::Auto,
                failback: FailbackMode::Auto,
                pin: None,
                drill: None,
                ttl: 30,
                all_down: false,
                targets: vec![
                    target("ams", Some(false)),
                    target("fra", Some(true)),
                    target("lon", None),
                ],
                regions: Vec::new(),
            },
            ServiceStatus {
                name: "we\"ird".into(),
                fqdn: "weird.ggon.org.".into(),
                active: "x".into(),
                mode: Mode::Manual,
                failback: FailbackMode::Manual,
                pin: None,
                drill: None,
                ttl: 30,
                all_down: true,
                targets: vec![target("x", Some(false))],
                regions: Vec::new(),
            },
        ],
        zones: vec![ZoneStatus {
            origin: "ggon.org.".into(),
            serial: 2024010203,
        }],
        publishers: vec![],
        cluster: None,
    }
}

fn totals(by_type: Vec<(String, u64)>) -> Totals {
    let mut t = Totals::default();
    t.by_rcode[0] = 100;
    t.by_rcode[3] = 7;
    t.by_rcode[14] = 1;
    t.dropped = 2;
    t.by_type = by_type;
    t
}

/// Parse a sample line `name{k="v",...} value` strictly; returns
/// (name, labels, value).
/// (metric name, labels, value)
type Sample = (String, Vec<(String, String)>, f64);

fn parse_sample(line: &str) -> Result<Sample, String> {
    let name_end = line
        .find(['{', ' '])
        .ok_or_else(|| format!("no value: {line}"))?;
    let name = &line[..name_end];
    let mut chars = name.chars();
    let first = chars.next().ok_or("empty name")?;
    if !(first.is_ascii_alphabetic() || first == '_' || first == ':')
        || !chars.all(|c| c.is_ascii_alphanumeric() || c == '_' || c == ':')
    {
        return Err(format!("bad metric name {name:?}"));
    }
    let mut rest = &line[name_end..];
    let mut labels = Vec::new();
    if let Some(r) = rest.strip_prefix('{') {
        rest = r;
        loop {
            if let Some(r) = rest.strip_prefix('}') {
                rest = r;
                break;
            }
            let eq = rest.find('=').ok_or("label without =")?;
            let key = &rest[..eq];
            if key.is_empty() || !key.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
                return Err(format!("bad label name {key:?}"));
            }
            rest = rest[eq + 1..]
                .strip_prefix('"')
                .ok_or("unquoted label value")?;
            let mut value = String::new();
            let mut it = rest.char_indices();
            let end = loop {
                match it.next().ok_or("unterminated label value")? {
                    (i, '"') => break i,
                    (_, '\\') => match it.next().ok_or("dangling escape")?.1 {
                        'n' => value.push('\n'),
                        c @ ('\\' | '"') => value.push(c),
                        c => return Err(format!("bad escape \\{c}")),
                    },
                    (_, c) => value.push(c),
                }
            };
            labels.push((key.to_string(), value));
            rest = &rest[end + 1..];
            rest = rest.strip_prefix(',').unwrap_or(rest);
        }
    }
    let value = rest.strip_prefix(' ').ok_or("no space before value")?;
    let v = match value {
        "+Inf" => f64::INFINITY,
        "-Inf" => f64::NEG_INFINITY,
        v => v.parse().map_err(|_| format!("bad value {v:?}"))?,
    };
    Ok((name.to_string(), labels, v))
}

fn samples(text: &str) -> Vec<Sample> {
    let mut lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.pop(), Some("# EOF"), "must end with # EOF");
    let mut out = Vec::new();
    for line in lines {
        if let Some(c) = line.strip_prefix("# ") {
            assert!(
                c.starts_with("HELP ") || c.starts_with("TYPE ") || c.starts_with("UNIT "),
                "bad comment: {line}"
            );
            assert!(!line.contains("# EOF"), "EOF in the middle");
            continue;
        }
        out.push(parse_sample(line).unwrap_or_else(|e| panic!("{e}: {line:?}")));
    }
    out
}

fn value(s: &[Sample], name: &str, labels: &[(&str, &str)]) -> f64 {
    let found: Vec<f64> = s
        .iter()
        .filter(|(n, l, _)| {
            n == name
                && l.len() == labels.len()
                && labels
                    .iter()
                    .all(|(k, v)| l.iter().any(|(lk, lv)| lk == k && lv == v))
        })
        .map(|(_, _, v)| *v)
        .collect();
    assert_eq!(found.len(), 1, "{name}{labels:?} in {s:#?}");
    found[0]
}

#[test]
fn render_is_valid_exposition_with_the_expected_series() {
    let m = Metrics::new();
    m.observe_check("cic", "fra", true, Duration::from_millis(20));
    m.observe_check("cic", "ams", false, Duration::from_secs(3));
    m.observe_check("cic", "ams", false, Duration::from_millis(2));
    m.remap("cic", "health");
    m.remap("cic", "health");
    m.remap("cic", "operator");
    m.publisher_error("ggon.org.");
    m.notify_failed();
    let text = m.render(
        &status(),
        &totals(vec![("A".into(), 80), ("AAAA".into(), 27)]),
    );
    let s = samples(&text);

    let fra = [("service", "cic"), ("target", "fra")];
    let ams = [("service", "cic"), ("target", "ams")];
    let lon = [("service", "cic"), ("target", "lon")];
    assert_eq!(value(&s, "ggon_service_active_target", &fra), 1.0);
    assert_eq!(value(&s, "ggon_service_active_target", &ams), 0.0);
    assert_eq!(value(&s, "ggon_service_active_target", &lon), 0.0);
    assert_eq!(value(&s, "ggon_target_healthy", &fra), 1.0);
    assert_eq!(value(&s, "ggon_target_healthy", &ams), 0.0);
    assert_eq!(value(&s, "ggon_target_healthy", &lon), -1.0);
    let mode = |svc, m| value(&s, "ggon_service_mode", &[("service", svc), ("mode", m)]);
    assert_eq!(mode("cic", "auto"), 1.0);
    assert_eq!(mode("cic", "manual"), 0.0);
    // Label values are escaped, and come back intact.
    assert_eq!(mode("we\"ird", "manual"), 1.0);
    assert_eq!(
        value(&s, "ggon_service_all_down", &[("service", "we\"ird")]),
        1.0
    );
    assert_eq!(
        value(&s, "ggon_zone_serial", &[("zone", "ggon.org.")]),
        2024010203.0
    );

    assert_eq!(
        value(&s, "ggon_queries_total", &[("rcode", "NOERROR")]),
        100.0
    );
    assert_eq!(
        value(&s, "ggon_queries_total", &[("rcode", "NXDOMAIN")]),
        7.0
    );
    assert_eq!(
        value(&s, "ggon_queries_total", &[("rcode", "REFUSED")]),
        0.0
    );
    assert_eq!(
        value(&s, "ggon_queries_total", &[("rcode", "RCODE14")]),
        1.0
    );
    assert!(!text.contains("RCODE15"));
    assert_eq!(
        value(&s, "ggon_queries_by_type_total", &[("type", "AAAA")]),
        27.0
    );
    assert_eq!(value(&s, "ggon_queries_dropped_total", &[]), 2.0);

    assert_eq!(value(&s, "ggon_check_failures_total", &ams), 2.0);
    assert_eq!(value(&s, "ggon_check_failures_total", &fra), 0.0);
    // One histogram for every check: no per-target series by default.
    assert_eq!(value(&s, "ggon_check_duration_seconds_count", &[]), 3.0);
    assert_eq!(value(&s, "ggon_check_duration_seconds_sum", &[]), 3.022);
    let bucket = |le| value(&s, "ggon_check_duration_seconds_bucket", &[("le", le)]);
    assert_eq!(bucket("0.0025"), 1.0);
    assert_eq!(bucket("0.025"), 2.0);
    assert_eq!(bucket("2.5"), 2.0);
    assert_eq!(bucket("10.0"), 3.0);
    assert_eq!(bucket("+Inf"), 3.0);
    assert!(!text.contains("ggon_target_check_duration"));
    // The last check's latency, per target, from the status; none before
    // the first check.
    assert_eq!(value(&s, "ggon_target_check_latency_seconds", &fra), 0.0125);
    assert!(!s
        .iter()
        .any(|(n, l, _)| n == "ggon_target_check_latency_seconds"
            && l.iter().any(|(_, v)| v == "lon")));
    let remaps = |cause| {
        value(
            &s,
            "ggon_remaps_total",
            &[("service", "cic"), ("cause", cause)],
        )
    };
    assert_eq!(remaps("health"), 2.0);
    assert_eq!(remaps("operator"), 1.0);
    assert_eq!(
        value(&s, "ggon_publisher_errors_total", &[("zone", "ggon.org.")]),
        1.0
    );
    assert_eq!(value(&s, "ggon_notifications_failed_total", &[]), 1.0);

    assert!(text.contains("# TYPE ggon_queries counter\n"), "{text}");
    assert!(text.contains("# TYPE ggon_check_duration_seconds histogram\n"));
    assert!(text.contains("# TYPE ggon_target_healthy gauge\n"));
}

#[test]
fn by_type_is_omitted_when_not_counted_and_gauges_follow_status() {
    let m = Metrics::new();
    let text = m.render(&status(), &totals(vec![]));
    samples(&text);
    assert!(!text.contains("ggon_queries_by_type"));

    // Gauges are not remembered: a service gone from the status is gone here.
    let mut st = status();
    st.services.truncate(1);
    st.services[0].active = "ams".into();
    let s = samples(&m.render(&st, &Totals::default()));
    assert!(!s
        .iter()
        .any(|(_, l, _)| l.iter().any(|(_, v)| v == "we\"ird")));
    assert_eq!(
        value(
            &s,
            "ggon_service_active_target",
            &[("service", "cic"), ("target", "ams")]
        ),
        1.0
    );
}

#[test]
fn per_target_histograms_only_on_request() {
    let m = Metrics::with_target_histograms(true);
    m.observe_check("cic", "fra", true, Duration::from_millis(20));
    m.observe_check("cic", "ams", false, Duration::from_secs(3));
    m.observe_check("cic", "ams", false, Duration::from_millis(2));
    let text = m.render(&status(), &totals(vec![]));
    let s = samples(&text);
    let ams = [("service", "cic"), ("target", "ams")];
    let fra = [("service", "cic"), ("target", "fra")];
    assert_eq!(
        value(&s, "ggon_target_check_duration_seconds_count", &ams),
        2.0
    );
    assert_eq!(
        value(&s, "ggon_target_check_duration_seconds_sum", &fra),
        0.02
    );
    let bucket = |le| {
        value(
            &s,
            "ggon_target_check_duration_seconds_bucket",
            &[("service", "cic"), ("target", "ams"), ("le", le)],
        )
    };
    assert_eq!(bucket("0.0025"), 1.0);
    assert_eq!(bucket("2.5"), 1.0);
    assert_eq!(bucket("+Inf"), 2.0);
    assert_eq!(value(&s, "ggon_check_duration_seconds_count", &[]), 3.0);
}

#[test]
fn gzip_when_accepted_and_it_round_trips() {
    assert!(accepts_gzip(Some("gzip")));
    assert!(accepts_gzip(Some("deflate, GZIP;q=0.5")));
    assert!(accepts_gzip(Some("*")));
    assert!(!accepts_gzip(None));
    assert!(!accepts_gzip(Some("identity")));
    assert!(!accepts_gzip(Some("gzip;q=0, identity")));
    let text = Metrics::new().render(&status(), &totals(vec![]));
    let packed = gzip(&text);
    let mut back = String::new();
    std::io::Read::read_to_string(&mut flate2::read::GzDecoder::new(&packed[..]), &mut back)
        .unwrap();
    assert_eq!(back, text);
}

#[test]
fn metrics_are_send_and_sync() {
    fn check<T: Send + Sync>() {}
    check::<Metrics>();
}
