//! ggon-perf against real servers, and remaps under a real flood.

#[path = "../support/mod.rs"]
mod support;

mod perf_cli;
mod remap_under_load;
