//! Client regions: which `[[region]]` a client address belongs to.
//!
//! Owns: the region map ([`map`]), built once at load time from the
//! regions' `nets` and GeoIP databases ([`mmdb`]) and handed on beside the
//! configuration (which holds only what the file says), and the lookup the query
//! path does for per-region names. The map is a sorted table of disjoint address ranges
//! per family (every CIDR prefix flattened, longest prefix winning), so a
//! lookup is a binary search with no allocation, and the same table tells
//! how far the answer holds (the ECS scope prefix, RFC 7871 7.2.1).
//!
//! It must not parse packets or decide what a region answers.

pub mod map;
pub mod mmdb;

use std::sync::Arc;

use crate::config::Config;
pub use map::{Located, Prefix, RegionMap, Slot, Source};

/// The region map of `cfg`: its regions' `nets` and GeoIP networks.
/// Fails on a GeoIP database that cannot be read (with the region's index).
pub fn load_map(cfg: &Config) -> Result<RegionMap, (usize, mmdb::GeoError)> {
    let prefixes = mmdb::prefixes(cfg)?;
    Ok(RegionMap::build(region_names(cfg), prefixes))
}

/// The map from the regions' `nets` alone, no file read: for a config
/// parsed without loading (unit tests).
pub fn nets_map(cfg: &Config) -> Arc<RegionMap> {
    let nets = cfg
        .regions
        .iter()
        .enumerate()
        .flat_map(|(i, r)| {
            r.prefixes()
                .iter()
                .map(move |&n| (n, i as Slot, Source::Nets))
        })
        .collect();
    Arc::new(RegionMap::build(region_names(cfg), nets))
}

fn region_names(cfg: &Config) -> Vec<String> {
    cfg.regions
        .iter()
        .map(|r| r.name.get_ref().clone())
        .collect()
}

#[cfg(test)]
mod tests;
