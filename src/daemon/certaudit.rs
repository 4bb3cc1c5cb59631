//! The periodic certificate audit: wiring only. Every `[cert_audit]
//! interval` (and once at start) it runs the audit of https targets
//! ([`crate::monitor::certs`], on a blocking thread: handshakes are blocking
//! I/O with their own timeout), hands the results to the metrics, asks the
//! controller which targets are active, and sends what [`Readiness`] finds
//! worth telling to the notifiers.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::watch;
use tracing::{debug, info, warn};

use crate::config::Config;
use crate::decide::certs::Readiness;
use crate::decide::{Command, ControllerHandle};
use crate::ops::alerts::{Alert, Notifier};
use crate::ops::metrics::Metrics;
use crate::shutdown::Shutdown;

/// Run until shutdown; `config` follows reloads.
pub fn spawn(
    mut config: watch::Receiver<Arc<Config>>,
    ctl: ControllerHandle,
    metrics: Arc<Metrics>,
    notifier: Notifier,
    mut shutdown: Shutdown,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let mut readiness = Readiness::default();
        // Set when this task ends (shutdown aborts it): an audit in progress
        // on its blocking thread stops at the next handshake.
        let stop = StopOnDrop(Arc::new(AtomicBool::new(false)));
        loop {
            let cfg = config.borrow_and_update().clone();
            let interval = cfg.cert_audit.interval;
            if !interval.is_zero() {
                audit_once(&cfg, &ctl, &metrics, &notifier, &mut readiness, &stop.0).await;
            }
            // Off (interval 0): wait for a reload that turns it on.
            let wait = if interval.is_zero() {
                Duration::from_secs(365 * 86_400)
            } else {
                interval
            };
            tokio::select! {
                _ = tokio::time::sleep(wait) => {}
                r = config.changed() => if r.is_err() { return },
                _ = shutdown.requested() => return,
            }
        }
    })
}

async fn audit_once(
    cfg: &Arc<Config>,
    ctl: &ControllerHandle,
    metrics: &Metrics,
    notifier: &Notifier,
    readiness: &mut Readiness,
    stop: &Arc<AtomicBool>,
) {
    let c = cfg.clone();
    let stop = stop.clone();
    let result = tokio::task::spawn_blocking(move || {
        let a = &c.cert_audit;
        let ca = a.ca_file.as_deref();
        crate::monitor::certs::audit_until(&c, None, a.warn_days, ca, a.timeout, &stop)
    })
    .await;
    let checks = match result {
        Ok(Ok(checks)) => checks,
        Ok(Err(e)) => {
            warn!(error = %e, "certificate audit failed (cert_audit.ca_file?)");
            return;
        }
        Err(e) => {
            warn!(error = %e, "certificate audit task failed");
            return;
        }
    };
    let now = crate::decide::unix_now();
    metrics.certs.audited(&checks, now);
    let not_ready = checks.iter().filter(|c| c.problem().is_some()).count();
    if checks.is_empty() {
        debug!("certificate audit: no https targets");
        return;
    }
    info!(
        checked = checks.len(),
        not_ready, "certificate audit of https targets done"
    );
    let status = match ctl.call(|reply| Command::Status { reply }).await {
        Ok(s) => s,
        Err(e) => {
            warn!(error = %e, "certificate audit: no status from the controller");
            return;
        }
    };
    let active: HashMap<String, String> = status
        .services
        .into_iter()
        .map(|s| (s.name, s.active))
        .collect();
    for event in readiness.review(&checks, &active, now) {
        warn!(service = event.service.as_deref().unwrap_or("-"),
            target = event.to.as_deref().unwrap_or("-"), reason = %event.reason,
            "standby target not ready for a failover: certificate");
        notifier.send(Alert::from(event));
    }
}

/// Sets its flag when dropped.
struct StopOnDrop(Arc<AtomicBool>);

impl Drop for StopOnDrop {
    fn drop(&mut self) {
        self.0.store(true, Ordering::Relaxed);
    }
}
