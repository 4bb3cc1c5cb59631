//! The bodies of the fuzz targets, shared by the libFuzzer binaries
//! (`fuzz_targets/`), the plain `replay` binary (scripts/fuzz's fallback
//! when libFuzzer cannot be built) and the main crate's test suite, which
//! replays every target's checked-in corpus (`tests/dns/fuzz_corpus.rs`
//! includes this file with `#[path]`; so nothing here may say `crate::`).
//!
//! One module per input ggond takes from outside; each target checks
//! invariants, and a broken one panics, which the fuzzer reports as a crash.
//! What each target feeds and checks is in docs/reliability.md.

#[path = "config.rs"]
pub mod config;
#[path = "control.rs"]
pub mod control;
#[path = "dns.rs"]
pub mod dns;
#[path = "etcd.rs"]
pub mod etcd;
#[path = "seeds.rs"]
pub mod seeds;
#[path = "transfer.rs"]
pub mod transfer;
#[path = "tsig.rs"]
pub mod tsig;
#[path = "zone.rs"]
pub mod zone;

pub use dns::{query, snapshot, update};

/// A target's name (its corpus is `fuzz/corpus/NAME/`) and body.
pub type Target = (&'static str, fn(&[u8]));

/// Every target, in the order scripts/fuzz runs them.
pub const TARGETS: &[Target] = &[
    ("query", dns::query),
    ("update", dns::update),
    ("zone", zone::zone),
    ("config", config::config),
    ("control", control::control),
    ("tsig", tsig::tsig),
    ("notify", transfer::notify),
    ("transfer", transfer::transfer),
    ("etcd", etcd::etcd),
];

/// The body of the target called `name`.
pub fn target(name: &str) -> Option<fn(&[u8])> {
    TARGETS.iter().find(|t| t.0 == name).map(|t| t.1)
}
