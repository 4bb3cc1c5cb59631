//! Where the controller's events go besides history: alerts and metrics.

use std::sync::Arc;

use crate::decide::{Event, EventSink};
use crate::monitor::CheckOutcome;
use crate::ops::alerts::Notifier;
use crate::ops::metrics::Metrics;

/// Hands controller events to the notifiers and the metrics.
pub struct Sinks {
    pub notifier: Notifier,
    pub metrics: Arc<Metrics>,
}

impl EventSink for Sinks {
    fn event(&self, e: &Event) {
        if e.kind.is_remap() {
            if let Some(s) = &e.service {
                self.metrics.remap(s, e.cause.as_str());
            }
        }
        self.notifier.send(e.clone());
    }

    fn check(&self, service: &str, target: &str, o: &CheckOutcome) {
        self.metrics.observe_check(service, target, o.ok, o.latency);
    }
}
