//! The certificate audit's gauges in `/metrics`.
//!
//! Owns: `ggon_cert_days_left{service,target}`, `ggon_cert_valid{service,target}`,
//! `ggon_cert_ready{service,target}` and the audit counters, set from the
//! latest periodic audit ([`crate::monitor::certs`]); each audit replaces the
//! previous values, so targets no longer configured disappear. A target with
//! several addresses shows its worst one (fewest days, invalid if any is).

use prometheus_client::encoding::{text, EncodeLabelSet};
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;

use crate::monitor::certs::CertCheck;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct TargetLabels {
    service: String,
    target: String,
}

/// The gauges; `Send + Sync`, part of [`super::metrics::Metrics`].
pub struct CertMetrics {
    registry: Registry,
    days_left: Family<TargetLabels, Gauge>,
    valid: Family<TargetLabels, Gauge>,
    ready: Family<TargetLabels, Gauge>,
    audits: Counter,
    last_audit: Gauge,
}

impl Default for CertMetrics {
    fn default() -> Self {
        let mut registry = Registry::default();
        let days_left = Family::<TargetLabels, Gauge>::default();
        registry.register(
            "ggon_cert_days_left",
            "Days until the TLS certificate of an https target expires (negative: expired), from the last certificate audit",
            days_left.clone(),
        );
        let valid = Family::<TargetLabels, Gauge>::default();
        registry.register(
            "ggon_cert_valid",
            "1 if the target's certificate chain is valid for the service's name now, 0 if not (wrong name, expired, untrusted, unreachable)",
            valid.clone(),
        );
        let ready = Family::<TargetLabels, Gauge>::default();
        registry.register(
            "ggon_cert_ready",
            "1 if a remap to the target would show users a valid certificate with at least cert_audit.warn_days left",
            ready.clone(),
        );
        let audits = Counter::default();
        registry.register(
            "ggon_cert_audits",
            "Certificate audits of https targets completed",
            audits.clone(),
        );
        let last_audit = Gauge::default();
        registry.register(
            "ggon_cert_audit_timestamp_seconds",
            "Unix time of the last completed certificate audit",
            last_audit.clone(),
        );
        CertMetrics {
            registry,
            days_left,
            valid,
            ready,
            audits,
            last_audit,
        }
    }
}

impl CertMetrics {
    /// One audit finished at `now` (unix seconds): its results replace the last.
    pub fn audited(&self, checks: &[CertCheck], now: u64) {
        self.days_left.clear();
        self.valid.clear();
        self.ready.clear();
        for c in checks {
            let labels = TargetLabels {
                service: c.service.clone(),
                target: c.target.clone(),
            };
            // Worst address wins: start at "fine" only when first seen.
            let first = self.valid.get(&labels).is_none();
            let valid = self.valid.get_or_create(&labels);
            let ready = self.ready.get_or_create(&labels);
            if first {
                valid.set(1);
                ready.set(1);
            }
            if !c.valid {
                valid.set(0);
            }
            if c.problem().is_some() {
                ready.set(0);
            }
            if let Some(d) = c.days_left {
                let g = self.days_left.get_or_create(&labels);
                if first || d < g.get() {
                    g.set(d);
                }
            }
        }
        self.audits.inc();
        self.last_audit.set(now as i64);
    }

    /// Append the gauges to an OpenMetrics text (before its `# EOF`).
    pub fn encode(&self, out: &mut String) {
        let _ = text::encode_registry(out, &self.registry);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn worst_address_and_replaced_by_each_audit() {
        let m = CertMetrics::default();
        let c = |target: &str, valid: bool, days: i64| CertCheck {
            service: "cic".into(),
            target: target.into(),
            address: String::new(),
            name: "cic.ggon.org".into(),
            valid,
            error: (!valid).then(|| "certificate expired".to_string()),
            days_left: Some(days),
            not_after: None,
            expiring: false,
        };
        m.audited(&[c("a", true, 90), c("a", false, -3), c("b", true, 40)], 7);
        let mut out = String::new();
        m.encode(&mut out);
        assert!(
            out.contains("ggon_cert_days_left{service=\"cic\",target=\"a\"} -3"),
            "{out}"
        );
        assert!(
            out.contains("ggon_cert_valid{service=\"cic\",target=\"a\"} 0"),
            "{out}"
        );
        assert!(
            out.contains("ggon_cert_valid{service=\"cic\",target=\"b\"} 1"),
            "{out}"
        );
        assert!(out.contains("ggon_cert_audits_total 1"), "{out}");
        m.audited(&[c("b", true, 39)], 8);
        let mut out = String::new();
        m.encode(&mut out);
        assert!(!out.contains("target=\"a\""), "{out}");
        assert!(
            out.contains("ggon_cert_days_left{service=\"cic\",target=\"b\"} 39"),
            "{out}"
        );
    }
}
