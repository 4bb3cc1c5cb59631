//! Operations: how people and their tools see and steer ggond.
//!
//! Owns: the control API ([`control`]: HTTP + JSON; [`tokens`]: the token
//! file and roles; [`auth`]: the check in front of the routes; [`session`]
//! and [`login`]: the status page's browser sessions;
//! [`limits`]: connection, request and failed-authentication bounds), the
//! Prometheus text ([`metrics`]; the certificate audit's gauges in
//! [`certmetrics`]), the HTML status page ([`status_page`]; its pictures:
//! [`timeline`] of active targets, [`lanes`] of target health and check
//! latency) and
//! the alerts sent to webhooks and commands ([`alerts`]), the control
//! listener's optional TLS ([`tls`]), and which services a status answer
//! or the page shows, problems first ([`select`]).
//!
//! Hands on: operator requests, as typed [`crate::decide::Command`]s, to the
//! controller; a reload request to the daemon's reload loop
//! ([`crate::load::ReloadRequest`], answered with a typed
//! [`crate::load::ReloadError`]). It must not change service state itself, run checks or touch
//! zone data: everything it shows comes from the controller's views and the
//! query path's counters, and everything it changes goes through the
//! controller, the single writer.

pub mod alerts;
pub mod auth;
pub mod certmetrics;
pub mod cluster_metrics;
mod cluster_reload;
pub mod control;
mod extract;
mod forward;
pub mod lanes;
pub mod limits;
mod login;
pub mod metrics;
pub mod range;
mod region_metrics;
pub mod relay;
pub mod select;
mod service_metrics;
pub mod session;
pub mod status_page;
pub mod timeline;
pub mod tls;
pub mod tokens;
