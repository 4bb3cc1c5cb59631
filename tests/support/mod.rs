//! The one test-support module of the integration suites: every suite
//! (`tests/<suite>/main.rs`) includes it.
//!
//! - [`wire`]: DNS over real loopback sockets (shared by all);
//! - [`ggond`]: a real `ggond` on ephemeral loopback ports, `ggon-ctl` runs,
//!   tiny HTTP health targets;
//! - [`reliability`]: a bare ggond in a temp dir, a raw HTTP client for the
//!   control API, and the generators of valid and malformed packets (also the
//!   fuzz seed corpus);
//! - [`packets`]: the malformed, random and mutated packets;
//! - [`etcd`], [`cluster`]: a real etcd cluster and ggond nodes in cluster mode;
//! - [`bind`]: real BIND and a ggond for interop; [`dnstools`]: `dig`,
//!   `nsupdate` and `tsig-keygen`; [`knot`]: real Knot DNS as a catalog
//!   zone consumer;
//! - [`netns`]: a routed mesh of network namespaces whose links a test cuts
//!   (partitions), with an observer link from the test to each namespace.
//!
//! Every wait is a bounded poll; only 127.0.0.0/8 is used, and the
//! addresses inside a test's own network namespaces ([`netns`]).
// Each suite uses part of the support code; the rest is unused there.
#![allow(dead_code)]

pub mod bind;
pub mod cluster;
pub mod dnstools;
pub mod etcd;
pub mod etcd_client;
pub mod ggond;
pub mod http_target;
pub mod knot;
pub mod mmdb;
pub mod netns;
pub mod packets;
pub mod process;
pub mod proxy;
pub mod reliability;
pub mod services;
pub mod unbound;
pub mod wire;
