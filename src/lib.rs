//! ggon: a DNS-based failover controller.
//!
//! Data flow, one module per stage:
//! probes ([`probe`]) → health state ([`health`]) → failover policy ([`policy`])
//! → publisher ([`publisher`]) → zone snapshot ([`snapshot`]) → DNS answers ([`dns`]),
//! with the control API ([`control`]) beside it, driving the [`controller`].
//! [`state`] persists what must survive restarts; [`daemon`] wires it all up.

pub mod acl;
pub mod config;
pub mod control;
pub mod controller;
pub mod daemon;
pub mod dns;
pub mod health;
pub mod history;
pub mod linkaudit;
pub mod metrics;
pub mod notify;
pub mod policy;
pub mod probe;
pub mod publisher;
pub mod rfc2136;
pub mod secondary;
pub mod snapshot;
pub mod state;
pub mod stats;
pub mod status_page;
pub mod tsig;
pub mod update;
pub mod verify;
pub mod xfr;
pub mod zone;
