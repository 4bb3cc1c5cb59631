//! ggon: a DNS-based failover controller.
//!
//! Data flow, one module per stage:
//! probes ([`probe`]) → health state ([`health`]) → failover policy ([`policy`])
//! → publisher ([`publisher`]) → zone snapshot ([`snapshot`]) → DNS answers ([`dns`]),
//! with the control API ([`control`]) beside it, driving the [`controller`].

pub mod config;
pub mod dns;
pub mod health;
pub mod policy;
pub mod publisher;
pub mod snapshot;
pub mod state;
pub mod stats;
pub mod zone;
pub mod control;
pub mod controller;
pub mod daemon;
