//! Metrics: the `/metrics` text for Prometheus (OpenMetrics text format,
//! written by the `prometheus-client` crate).
//!
//! Owns: the counters and histograms that only grow with events (checks,
//! remaps, publisher errors, failed notifications), and the rendering of
//! gauges derived on each scrape from a [`StatusView`] and query [`Totals`].
//!
//! Size at scale: every series is one line of about 60 bytes, so what is
//! kept per target decides the size. Per target there are the state
//! (`ggon_target_healthy`, `ggon_service_active_target`), the last check's
//! latency (`ggon_target_check_latency_seconds`) and the failure count; the
//! check-duration histogram is one for all checks (`ggon_check_duration_seconds`,
//! no labels). A histogram per target is 15 lines (12 buckets, `+Inf`, sum,
//! count), 86 MiB at 30,000 services of 2 targets; per service it would
//! still be 24 MiB. Per-target histograms come back with
//! `[control] metrics_target_histograms = true`
//! (`ggon_target_check_duration_seconds{service,target}`). Prometheus asks
//! for gzip, and the scrape is then about a tenth of the text ([`gzip`]).
//!
//! It must not hold service state of its own (gauges are computed from the
//! status handed to [`Metrics::render`], never cached), serve HTTP, or sit on
//! the DNS query path (query counts come from [`crate::dns::stats`]).

use std::io::Write as _;
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
struct NodeLabels {
    node: String,
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
    check_duration: Histogram,
    /// Per-target histograms, only with `metrics_target_histograms`.
    target_durations: Option<CheckHistograms>,
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
    /// The metrics without per-target histograms (the default).
    pub fn new() -> Metrics {
        Self::with_target_histograms(false)
    }

    /// `target_histograms`: also keep a check-duration histogram per target
    /// (`[control] metrics_target_histograms`; 15 lines per target).
    pub fn with_target_histograms(target_histograms: bool) -> Metrics {
        let mut registry = Registry::default();
        let check_duration = check_histogram();
        registry.register_with_unit(
            "ggon_check_duration",
            "Health check duration, all checks of all targets",
            Unit::Seconds,
            check_duration.clone(),
        );
        let target_durations = target_histograms.then(|| {
            let family: CheckHistograms = Family::new_with_constructor(check_histogram);
            registry.register_with_unit(
                "ggon_target_check_duration",
                "Health check duration by service and target (metrics_target_histograms = true)",
                Unit::Seconds,
                family.clone(),
            );
            family
        });
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
            target_durations,
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
        self.check_duration.observe(latency.as_secs_f64());
        if let Some(family) = &self.target_durations {
            family.get_or_create(&labels).observe(latency.as_secs_f64());
        }
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
        super::service_metrics::write(&mut out, status);
        self.certs.encode(&mut out);
        let _ = text::encode_eof(&mut out);
        out
    }
}

/// Whether an `Accept-Encoding` header accepts gzip (Prometheus sends
/// `gzip`; a `q=0` refuses it).
pub fn accepts_gzip(accept_encoding: Option<&str>) -> bool {
    accept_encoding.is_some_and(|h| {
        h.split(',').any(|part| {
            let mut it = part.split(';').map(str::trim);
            let coding = it.next().unwrap_or("");
            let refused = it.any(|p| {
                p.strip_prefix("q=")
                    .and_then(|q| q.parse::<f32>().ok())
                    .is_some_and(|q| q == 0.0)
            });
            (coding.eq_ignore_ascii_case("gzip") || coding == "*") && !refused
        })
    })
}

/// The text gzip-compressed at the fastest level: the repeated label names
/// of one series per line compress about tenfold, and the fast level costs
/// a few milliseconds per MiB (a scrape must not stall the control API).
pub fn gzip(text: &str) -> Vec<u8> {
    let mut enc = flate2::write::GzEncoder::new(
        Vec::with_capacity(text.len() / 8),
        flate2::Compression::fast(),
    );
    // Writing to a Vec cannot fail.
    let _ = enc.write_all(text.as_bytes());
    enc.finish().unwrap_or_default()
}

/// A throwaway registry holding this scrape's view of the status.
fn scrape_registry(status: &StatusView, queries: &Totals) -> Registry {
    let mut reg = Registry::default();
    super::region_metrics::register(&mut reg, status);
    if let Some(c) = &status.cluster {
        register_cluster(&mut reg, c);
    }
    register_zones(&mut reg, status);
    register_queries(&mut reg, queries);
    reg
}

/// 1/0/-1 for up, down and not known yet.
fn tristate(v: Option<bool>) -> i64 {
    match v {
        Some(true) => 1,
        Some(false) => 0,
        None => -1,
    }
}

/// Cluster mode: etcd reached, leadership, members, the agreed verdicts.
fn register_cluster(reg: &mut Registry, c: &crate::decide::views::ClusterView) {
    let gauge = |v: i64| {
        let g = Gauge::<i64>::default();
        g.set(v);
        g
    };
    reg.register(
        "ggon_cluster_connected",
        "Cluster mode: 1 while this node reaches etcd, 0 while cut off (answering the last agreed state, deciding nothing)",
        gauge(i64::from(c.connected)),
    );
    reg.register(
        "ggon_cluster_leader",
        "Cluster mode: 1 while this node leads the cluster",
        gauge(i64::from(c.role == crate::decide::Role::Leader)),
    );
    if let Some(e) = &c.etcd {
        super::cluster_metrics::register(reg, e);
    }
    let mismatch = Family::<NodeLabels, Gauge>::default();
    for m in &c.mismatches {
        mismatch
            .get_or_create(&NodeLabels {
                node: m.node.clone(),
            })
            .set(m.differs.len() as i64);
    }
    reg.register(
        "ggon_cluster_config_mismatch",
        "Cluster mode: per live node whose services, zone files, DNSSEC keys or control token differ from the leader's, how many kinds of difference (see ggon-ctl cluster); absent when every node agrees",
        mismatch,
    );
    reg.register(
        "ggon_cluster_members",
        "Cluster mode: live nodes (holding a lease) as this node last saw them",
        gauge(c.members.len() as i64),
    );
    let agreed = Family::<TargetLabels, Gauge>::default();
    for v in &c.verdicts {
        agreed
            .get_or_create(&TargetLabels {
                service: v.service.clone(),
                target: v.target.clone(),
            })
            .set(tristate(v.agreed));
    }
    reg.register(
        "ggon_cluster_target_agreed",
        "Cluster mode: the agreed verdict on a target: 1 up, 0 down (a quorum says so), -1 unknown",
        agreed,
    );
}

/// Each served zone's SOA serial.
fn register_zones(reg: &mut Registry, status: &StatusView) {
    let serial = Family::<ZoneLabels, Gauge>::default();
    for z in &status.zones {
        serial
            .get_or_create(&ZoneLabels {
                zone: z.origin.clone(),
            })
            .set(i64::from(z.serial));
    }
    reg.register("ggon_zone_serial", "SOA serial of each served zone", serial);
}

/// The query path's counters: answers by rcode and type, drops, RRL, TCP refusals.
fn register_queries(reg: &mut Registry, queries: &Totals) {
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

    let counter = |n: u64| {
        let c: Counter = Counter::default();
        c.inc_by(n);
        c
    };
    reg.register(
        "ggon_queries_dropped",
        "DNS queries dropped without an answer",
        counter(queries.dropped),
    );
    reg.register(
        "ggon_rrl_dropped",
        "UDP answers withheld by response rate limiting",
        counter(queries.rrl_dropped),
    );
    reg.register(
        "ggon_rrl_slipped",
        "UDP answers sent truncated (TC=1) by response rate limiting",
        counter(queries.rrl_slipped),
    );
    reg.register(
        "ggon_tcp_refused",
        "TCP connections closed at once because the connection limit was reached",
        counter(queries.tcp_refused),
    );
}

#[cfg(test)]
#[path = "metrics_tests.rs"]
mod tests;
