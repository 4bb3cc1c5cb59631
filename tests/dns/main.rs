//! The nameserver over real sockets: answers, transfers, secondaries,
//! malformed input, TCP limits, rate limiting, parser robustness.

#[path = "../support/mod.rs"]
mod support;

mod authoritative;
mod fuzz_corpus;
mod geo;
mod geo_ops;
mod malformed;
mod parsers;
mod rrl;
mod secondary;
mod signed_transfer;
mod tcp_limits;
