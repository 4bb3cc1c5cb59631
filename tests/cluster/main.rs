//! ggond against a real 3-member etcd cluster on loopback.
//!
//! `failures` is the failure table of docs/cluster.md, one test per row;
//! `control_tls` the control API over https between nodes.
//! `harness` proves the etcd harness itself (cluster start, member stop,
//! kill, pause and restart, the JSON gateway client, the TCP proxy that cuts
//! one node off from etcd), so when a failover test fails the harness is
//! known to be right. `nemesis` runs random kills, pauses and etcd faults
//! while remapping and reading, judged by `nemesis_check`; `nemesis_net`
//! does the same with every process in a network namespace of its own and
//! partitions added (`nemesis_net_faults`), health-driven failovers
//! (`nemesis_targets`) and three concurrent operator clients
//! (`nemesis_io`). Every wait is bounded.

#[path = "../support/mod.rs"]
mod support;

mod agreement;
mod catch_up;
mod control_tls;
mod etcd_tls;
mod failures;
mod harness;
mod nemesis;
mod nemesis_check;
mod nemesis_io;
mod nemesis_net;
mod nemesis_net_faults;
mod nemesis_targets;
mod quota;
mod storm_crash;
mod zone_updates;
