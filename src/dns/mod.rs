//! DNS answers: the query path, and nothing else.
//!
//! Owns: the sockets (UDP receive loops, the TCP listener and its connection
//! limits), the per-packet query path ([`respond`]: parse, look up, copy,
//! patch), response rate limiting ([`rrl`]) and the per-worker query
//! counters ([`stats`]).
//!
//! Reads: the current [`crate::snapshot::Snapshot`], and nothing else. It
//! never changes zone data or service state, allocates, locks or logs per
//! packet. Requests that change state or stream data (UPDATE, NOTIFY,
//! AXFR/IXFR, TSIG-signed queries) are handed to a [`SpecialHandler`], which
//! [`crate::replicate`] implements: the query path does not know what they do.

mod dname;
#[cfg(test)]
mod dname_tests;
pub mod ecs;
pub mod geo;
pub mod heartbeat;
pub mod respond;
pub mod rrl;
pub mod server;
pub mod special;
pub mod stats;
mod udp;
pub mod wire;

pub use respond::{respond, respond_from, Action, Special, Transport};
pub use server::DnsServer;
pub use special::{refuse, SpecialFuture, SpecialHandler};
