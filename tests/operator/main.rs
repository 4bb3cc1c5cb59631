//! The operator's side of a real ggond: failover, remaps, drains, drills,
//! history, metrics, config errors, authentication, crashes and shutdown.

#[path = "../support/mod.rs"]
mod support;

mod auth;
mod browser;
mod cert_audit;
mod certs;
mod concurrent_remaps;
mod config_errors;
mod control_tls;
mod crash;
mod failover;
mod first_run;
mod lanes;
mod limits;
mod many_sources;
mod monitoring;
mod observability;
mod operations;
mod operator;
mod probe;
mod restart;
mod scale_outputs;
mod shutdown;
mod state_lock;
mod timeline;
