//! Metrics: the `/metrics` text for Prometheus (OpenMetrics text format,
//! written by the `prometheus-client` crate).
//!
//! Owns: the counters and histograms that only grow with events (checks,
//! remaps, publisher errors, failed notifications), and the rendering of
//! gauges derived on each scrape from a [`StatusView`] and query [`Totals`].
//!
//! It must not hold service state of its own (gauges are computed from the
//! status handed to [`Metrics::render`], never cached), serve HTTP, or sit on
//! the DNS query path (query counts come from [`crate::dns::stats`]).

use std::time::Duration;

use prometheus_client::encoding::{text, EncodeLabelSet};
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::{Registry, Unit};

use crate::decide::StatusView;
use crate::dns::stats::Totals;

/// The `Content-Type` to serve [`Metrics::render`] output with.
pub const CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

/// Check latency buckets, in seconds: from a fast local probe to a timeout.
const CHECK_BUCKETS: [f64; 12] = [
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 10.0,
];

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct TargetLabels {
    service: String,
    target: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RemapLabels {
    service: String,
    cause: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ZoneLabels {
    zone: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ReasonLabels {
    reason: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ServiceLabels {
    service: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ModeLabels {
    service: String,
    mode: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RcodeLabels {
    rcode: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct TypeLabels {
    r#type: String,
}

type CheckHistograms = Family<TargetLabels, Histogram, fn() -> Histogram>;

fn check_histogram() -> Histogram {
    Histogram::new(CHECK_BUCKETS)
}

/// Event counters plus scrape-time gauges. `Send + Sync`; share as `Arc<Metrics>`.
pub struct Metrics {
    registry: Registry,
    check_duration: CheckHistograms,
    check_failures: Family<TargetLabels, Counter>,
    remaps: Family<RemapLabels, Counter>,
    publisher_errors: Family<ZoneLabels, Counter>,
    notify_failed: Counter,
    control_refused: Family<ReasonLabels, Counter>,
    control_open: Gauge,
    /// The certificate audit's gauges (`ggon_cert_*`).
    pub certs: super::certmetrics::CertMetrics,
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    pub fn new() -> Metrics {
        let mut registry = Registry::default();
        let check_duration: CheckHistograms = Family::new_with_constructor(check_histogram);
        registry.register_with_unit(
            "ggon_check_duration",
            "Health check duration by service and target",
            Unit::Seconds,
            check_duration.clone(),
        );
        let check_failures = Family::<TargetLabels, Counter>::default();
        registry.register(
            "ggon_check_failures",
            "Failed health checks by service and target",
            check_failures.clone(),
        );
        let remaps = Family::<RemapLabels, Counter>::default();
        registry.register(
            "ggon_remaps",
            "Changes of a service's active target, by cause",
            remaps.clone(),
        );
        let publisher_errors = Family::<ZoneLabels, Counter>::default();
        registry.register(
            "ggon_publisher_errors",
            "Errors publishing a zone's records",
            publisher_errors.clone(),
        );
        let notify_failed = Counter::default();
        registry.register(
            "ggon_notifications_failed",
            "Notifications not delivered after all attempts",
            notify_failed.clone(),
        );
        let control_refused = Family::<ReasonLabels, Counter>::default();
        registry.register(
            "ggon_control_refused",
            "Control API connections and requests refused by a limit, by reason",
            control_refused.clone(),
        );
        let control_open = Gauge::default();
        registry.register(
            "ggon_control_connections",
            "Open control API connections",
            control_open.clone(),
        );
        Metrics {
            registry,
            control_refused,
            control_open,
            check_duration,
            check_failures,
            remaps,
            publisher_errors,
            notify_failed,
            certs: Default::default(),
        }
    }

    /// One health check finished.
    pub fn observe_check(&self, service: &str, target: &str, ok: bool, latency: Duration) {
        let labels = TargetLabels {
            service: service.to_string(),
            target: target.to_string(),
        };
        self.check_duration
            .get_or_create(&labels)
            .observe(latency.as_secs_f64());
        let failures = self.check_failures.get_or_create(&labels);
        if !ok {
            failures.inc();
        }
    }

    /// A service's active target changed.
    pub fn remap(&self, service: &str, cause: &str) {
        self.remaps
            .get_or_create(&RemapLabels {
                service: service.to_string(),
                cause: cause.to_string(),
            })
            .inc();
    }

    pub fn publisher_error(&self, zone: &str) {
        self.publisher_errors
            .get_or_create(&ZoneLabels {
                zone: zone.to_string(),
            })
            .inc();
    }

    pub fn notify_failed(&self) {
        self.notify_failed.inc();
    }

    /// A control API limit refused a connection or request (`reason`: see
    /// [`crate::ops::limits`]).
    pub fn control_refused(&self, reason: &'static str) {
        self.control_refused
            .get_or_create(&ReasonLabels { reason })
            .inc();
    }

    /// A control API connection opened (+1) or closed (-1).
    pub fn control_connections(&self, delta: i64) {
        self.control_open.inc_by(delta);
    }

    /// Render everything; gauges come from the current status and query totals.
    pub fn render(&self, status: &StatusView, queries: &Totals) -> String {
        let scrape = scrape_registry(status, queries);
        let mut out = String::new();
        // Writing to a String cannot fail; the encoder only forwards fmt errors.
        let _ = text::encode_registry(&mut out, &self.registry);
        let _ = text::encode_registry(&mut out, &scrape);
        self.certs.encode(&mut out);
        let _ = text::encode_eof(&mut out);
        out
    }
}

/// A throwaway registry holding this scrape's view of the status.
fn scrape_registry(status: &StatusView, queries: &Totals) -> Registry {
    let mut reg = Registry::default();

    let active = Family::<TargetLabels, Gauge>::default();
    let healthy = Family::<TargetLabels, Gauge>::default();
    let mode = Family::<ModeLabels, Gauge>::default();
    let all_down = Family::<ServiceLabels, Gauge>::default();
    super::region_metrics::register(&mut reg, status);
    for s in &status.services {
        for t in &s.targets {
            let labels = TargetLabels {
                service: s.name.clone(),
                target: t.name.clone(),
            };
            active
                .get_or_create(&labels)
                .set(i64::from(t.name == s.active));
            healthy.get_or_create(&labels).set(match t.healthy {
                Some(true) => 1,
                Some(false) => 0,
                None => -1,
            });
        }
        for m in ["manual", "auto"] {
            mode.get_or_create(&ModeLabels {
                service: s.name.clone(),
                mode: m.to_string(),
            })
            .set(i64::from(s.mode.as_str() == m));
        }
        all_down
            .get_or_create(&ServiceLabels {
                service: s.name.clone(),
            })
            .set(i64::from(s.all_down));
    }
    reg.register(
        "ggon_service_active_target",
        "1 for the target a service's name answers with, 0 for the others",
        active,
    );
    reg.register(
        "ggon_service_mode",
        "1 for the service's current mode: manual (pinned by an operator) or auto",
        mode,
    );
    reg.register(
        "ggon_service_all_down",
        "1 while every target of the service is down",
        all_down,
    );
    reg.register(
        "ggon_target_healthy",
        "Target health: 1 up, 0 down, -1 unknown (not checked yet)",
        healthy,
    );
    if let Some(c) = &status.cluster {
        let connected = Gauge::<i64>::default();
        connected.set(i64::from(c.connected));
        reg.register(
            "ggon_cluster_connected",
            "Cluster mode: 1 while this node reaches etcd, 0 while cut off (answering the last agreed state, deciding nothing)",
            connected,
        );
        let leader = Gauge::<i64>::default();
        leader.set(i64::from(c.role == crate::decide::Role::Leader));
        reg.register(
            "ggon_cluster_leader",
            "Cluster mode: 1 while this node leads the cluster",
            leader,
        );
        if let Some(e) = &c.etcd {
            super::cluster_metrics::register(&mut reg, e);
        }
        let members = Gauge::<i64>::default();
        members.set(c.members.len() as i64);
        reg.register(
            "ggon_cluster_members",
            "Cluster mode: live nodes (holding a lease) as this node last saw them",
            members,
        );
        let agreed = Family::<TargetLabels, Gauge>::default();
        for v in &c.verdicts {
            agreed
                .get_or_create(&TargetLabels {
                    service: v.service.clone(),
                    target: v.target.clone(),
                })
                .set(match v.agreed {
                    Some(true) => 1,
                    Some(false) => 0,
                    None => -1,
                });
        }
        reg.register(
            "ggon_cluster_target_agreed",
            "Cluster mode: the agreed verdict on a target: 1 up, 0 down (a quorum says so), -1 unknown",
            agreed,
        );
    }

    let serial = Family::<ZoneLabels, Gauge>::default();
    for z in &status.zones {
        serial
            .get_or_create(&ZoneLabels {
                zone: z.origin.clone(),
            })
            .set(i64::from(z.serial));
    }
    reg.register("ggon_zone_serial", "SOA serial of each served zone", serial);

    let by_rcode = Family::<RcodeLabels, Counter>::default();
    for (i, &n) in queries.by_rcode.iter().enumerate() {
        let name = match crate::proto::codes::rcode_name(i as u16) {
            Some(name) => name.to_string(),
            None if n > 0 => format!("RCODE{i}"),
            None => continue,
        };
        by_rcode
            .get_or_create(&RcodeLabels { rcode: name })
            .inc_by(n);
    }
    reg.register("ggon_queries", "DNS responses sent, by rcode", by_rcode);

    if !queries.by_type.is_empty() {
        let by_type = Family::<TypeLabels, Counter>::default();
        for (t, n) in &queries.by_type {
            by_type
                .get_or_create(&TypeLabels { r#type: t.clone() })
                .inc_by(*n);
        }
        reg.register(
            "ggon_queries_by_type",
            "DNS queries answered, by query type",
            by_type,
        );
    }

    let dropped: Counter = Counter::default();
    dropped.inc_by(queries.dropped);
    reg.register(
        "ggon_queries_dropped",
        "DNS queries dropped without an answer",
        dropped,
    );
    let rrl_dropped: Counter = Counter::default();
    rrl_dropped.inc_by(queries.rrl_dropped);
    reg.register(
        "ggon_rrl_dropped",
        "UDP answers withheld by response rate limiting",
        rrl_dropped,
    );
    let rrl_slipped: Counter = Counter::default();
    rrl_slipped.inc_by(queries.rrl_slipped);
    reg.register(
        "ggon_rrl_slipped",
        "UDP answers sent truncated (TC=1) by response rate limiting",
        rrl_slipped,
    );
    let refused: Counter = Counter::default();
    refused.inc_by(queries.tcp_refused);
    reg.register(
        "ggon_tcp_refused",
        "TCP connections closed at once because the connection limit was reached",
        refused,
    );
    reg
}

#[cfg(test)]
mod tests {
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
        assert_eq!(value(&s, "ggon_check_duration_seconds_count", &ams), 2.0);
        assert_eq!(value(&s, "ggon_check_duration_seconds_sum", &fra), 0.02);
        let bucket = |le| {
            value(
                &s,
                "ggon_check_duration_seconds_bucket",
                &[("service", "cic"), ("target", "ams"), ("le", le)],
            )
        };
        assert_eq!(bucket("0.0025"), 1.0);
        assert_eq!(bucket("2.5"), 1.0);
        assert_eq!(bucket("10.0"), 2.0);
        assert_eq!(bucket("+Inf"), 2.0);
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
    fn metrics_are_send_and_sync() {
        fn check<T: Send + Sync>() {}
        check::<Metrics>();
    }
}
