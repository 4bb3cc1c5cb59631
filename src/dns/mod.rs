//! DNS answers: the network side of the nameserver.
//!
//! Owns: sockets (UDP receive loops, the TCP listener and its connection
//! limits) and the per-packet query path. It reads the current
//! [`crate::snapshot::Snapshot`] and nothing else; it never changes zone data
//! or service state. Requests that change state or stream data (UPDATE, NOTIFY,
//! AXFR/IXFR, TSIG-signed queries) are passed to a [`SpecialHandler`].

pub mod client;
pub mod respond;
pub mod rrl;
pub mod server;
mod udp;
pub mod wire;

pub use respond::{respond, Action, Special, Transport};
pub use server::{DnsServer, SpecialHandler};
