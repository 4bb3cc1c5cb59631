//! ggon: a DNS-based failover controller.
//!
//! Data flow, one module per stage:
//! probes ([`probe`]) → health state ([`health`]) → failover policy ([`policy`])
//! → publisher ([`publisher`]) → zone snapshot ([`snapshot`]) → DNS answers ([`dns`]),
//! with the control API ([`control`]) beside it, driving the [`controller`].

pub mod config;
pub mod probe;
