//! GeoIP: the networks of a MaxMind DB file (GeoLite2/GeoIP2 Country or
//! City, or DB-IP's country database in the same format) whose country or
//! continent code a region lists, as prefixes for the [`super::RegionMap`].
//! Read once at load time with the `maxminddb` crate.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use ipnet::IpNet;
use maxminddb::{geoip2, Reader, WithinOptions};

use super::map::{Prefix, Slot, Source};
use crate::config::Config;

#[derive(Debug, thiserror::Error)]
pub enum GeoError {
    #[error("cannot open GeoIP database {path}: {source}")]
    Open {
        path: PathBuf,
        source: maxminddb::MaxMindDbError,
    },
    #[error("GeoIP database {path} is unreadable: {source}")]
    Read {
        path: PathBuf,
        source: maxminddb::MaxMindDbError,
    },
    #[error("cannot read nets_file {path}: {source}")]
    NetsFile {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path}:{line}: {error}")]
    NetsLine {
        path: PathBuf,
        line: usize,
        error: crate::config::geo::NetError,
    },
}

impl GeoError {
    pub fn path(&self) -> &Path {
        match self {
            GeoError::Open { path, .. }
            | GeoError::Read { path, .. }
            | GeoError::NetsFile { path, .. }
            | GeoError::NetsLine { path, .. } => path,
        }
    }
}

/// A region's wish list: the codes it takes from one database.
struct Wanted<'a> {
    slot: Slot,
    countries: &'a [String],
    continents: &'a [String],
}

/// Every prefix of every region of `cfg`: its `nets`, and the matching
/// networks of the GeoIP databases named (each file read once).
pub fn prefixes(cfg: &Config) -> Result<Vec<Prefix>, (usize, GeoError)> {
    let mut out = Vec::new();
    let mut by_db: BTreeMap<&Path, (usize, Vec<Wanted>)> = BTreeMap::new();
    for (i, r) in cfg.regions.iter().enumerate() {
        let slot = i as Slot;
        out.extend(r.prefixes().iter().map(|&n| (n, slot, Source::Nets)));
        if let Some(f) = &r.nets_file {
            nets_file(f.get_ref(), slot, &mut out).map_err(|e| (i, e))?;
        }
        if let Some(g) = &r.geoip {
            let g = g.get_ref();
            by_db
                .entry(g.database.as_path())
                .or_insert_with(|| (i, Vec::new()))
                .1
                .push(Wanted {
                    slot,
                    countries: &g.countries,
                    continents: &g.continents,
                });
        }
    }
    for (path, (first, wanted)) in by_db {
        read(path, &wanted, &mut out).map_err(|e| (first, e))?;
    }
    Ok(out)
}

/// The prefixes of a `nets_file`: one per line, `#` starts a comment.
fn nets_file(path: &Path, slot: Slot, out: &mut Vec<Prefix>) -> Result<(), GeoError> {
    use std::io::BufRead;
    let file = std::fs::File::open(path).map_err(|source| GeoError::NetsFile {
        path: path.to_path_buf(),
        source,
    })?;
    for (i, line) in std::io::BufReader::new(file).lines().enumerate() {
        let line = line.map_err(|source| GeoError::NetsFile {
            path: path.to_path_buf(),
            source,
        })?;
        let text = line.split('#').next().unwrap_or("").trim();
        if text.is_empty() {
            continue;
        }
        let net = crate::config::geo::parse_net(text).map_err(|error| GeoError::NetsLine {
            path: path.to_path_buf(),
            line: i + 1,
            error,
        })?;
        out.push((net, slot, Source::Nets));
    }
    Ok(())
}

fn read(
    path: &Path,
    wanted: &[Wanted],
    out: &mut Vec<(IpNet, Slot, Source)>,
) -> Result<(), GeoError> {
    let reader = Reader::open_readfile(path).map_err(|source| GeoError::Open {
        path: path.to_path_buf(),
        source,
    })?;
    let bad = |source| GeoError::Read {
        path: path.to_path_buf(),
        source,
    };
    for item in reader.networks(WithinOptions::default()).map_err(bad)? {
        let item = item.map_err(bad)?;
        let Some(rec) = item.decode::<geoip2::Country>().map_err(bad)? else {
            continue;
        };
        let country = rec.country.iso_code;
        let continent = rec.continent.code;
        let Some(w) = wanted.iter().find(|w| {
            country.is_some_and(|c| w.countries.iter().any(|x| x == c))
                || continent.is_some_and(|c| w.continents.iter().any(|x| x == c))
        }) else {
            continue;
        };
        let net = item.network().map_err(bad)?;
        if let Ok(n) = IpNet::new(net.ip(), net.prefix()) {
            out.push((n, w.slot, Source::Geoip));
        }
    }
    Ok(())
}
