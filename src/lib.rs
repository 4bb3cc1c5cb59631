//! ggon: a DNS-based failover controller.
//!
//! The tree follows the data, one folder per stage:
//!
//! ```text
//! monitor ──► decide ──► publish ──► sign ──► snapshot ──► dns
//! (probes,    (policy,   (own zone,  (DNSSEC:  (compiled    (the query path:
//!  health)     controller, RFC 2136)  keys,     answers,     sockets, answers)
//!              state, history)        RRSIG,    denial
//!                                     NSEC)     proofs)
//! ```
//!
//! Beside the pipeline: [`cluster`] (several nodes agreeing through etcd),
//! [`replicate`] (AXFR/IXFR/UPDATE/NOTIFY intake,
//! NOTIFY out, secondary zones), [`ops`] (control API, metrics, status page,
//! alerts) and [`daemon`], which wires everything together. [`proto`] is the
//! shared DNS vocabulary (zone data, TSIG, ACLs, the outbound client, rcode
//! and type numbers) and [`config`] the operator's file; every stage may use
//! those two, and neither uses a stage; [`geo`] (client regions: the
//! longest-prefix region map and GeoIP) is shared the same way. [`cli`]
//! holds the three programs' command lines (and the man pages and
//! completions made from them).
//!
//! Dependencies point one way: a stage may use the ones to its right and the
//! shared modules, never one to its left. The controller in [`decide`] is the
//! single writer of service state; everything else reads snapshots or sends
//! it commands.

pub mod cli;
pub mod cluster;
pub mod config;
pub mod daemon;
pub mod decide;
pub mod dns;
pub mod geo;
pub mod load;
pub mod memory;
pub mod monitor;
pub mod ops;
pub mod proto;
pub mod publish;
pub mod replicate;
pub mod shutdown;
pub mod sign;
pub mod snapshot;
