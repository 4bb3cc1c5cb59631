//! The shared DNS vocabulary every stage speaks.
//!
//! Owns: zone data as loaded from a file ([`zone`]), TSIG keys and signing
//! ([`tsig`]), address lists for access control ([`acl`]), the small outbound
//! DNS client used by probes, RFC 2136, secondaries and `ggon-ctl verify`
//! ([`client`]), the rcode/type numbers with their names ([`codes`]), and the DNSSEC
//! arithmetic the signer and the query path share ([`dnssec`]).
//!
//! Hands on: plain data and pure functions. It must not hold state, spawn
//! tasks or know about services, snapshots or the query path: every stage
//! may use it, so it may use no stage.

pub mod acl;
pub mod catalog;
pub mod client;
pub mod codes;
pub mod dnssec;
pub mod rdatas;
pub mod tsig;
pub mod types;
pub mod zone;
pub mod zonefile;
