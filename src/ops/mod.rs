//! Operations: how people and their tools see and steer ggond.
//!
//! Owns: the control API ([`control`]: HTTP + JSON; [`auth`]: tokens and roles;
//! [`limits`]: connection, request and failed-authentication bounds), the
//! Prometheus text ([`metrics`]), the HTML status page ([`status_page`]) and
//! the alerts sent to webhooks and commands ([`alerts`]).
//!
//! Hands on: operator requests, as typed [`crate::decide::Command`]s, to the
//! controller. It must not change service state itself, run checks or touch
//! zone data: everything it shows comes from the controller's views and the
//! query path's counters, and everything it changes goes through the
//! controller, the single writer.

pub mod alerts;
pub mod auth;
pub mod control;
mod forward;
pub mod limits;
pub mod metrics;
mod region_metrics;
pub mod session;
pub mod status_page;
pub mod timeline;
