//! Loading: the config file, every zone file it names and the TSIG keys,
//! validated together before anything starts.
//!
//! `ggond --check-config`, start-up and reload all go through [`load`], so
//! what the check accepts is what start accepts, and a bad file is rejected
//! while a running instance keeps serving. The reload request the control
//! API sends ([`ReloadRequest`]) and why a reload changed nothing
//! ([`ReloadError`]) live here too, so that the control API and the daemon
//! both depend on loading and not on each other.
//!
//! Owns: reading files into a validated [`Loaded`]; hands it to the daemon
//! (start) and the controller (reload). It must not start anything.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use hickory_proto::rr::RecordType;
use tracing::warn;

use crate::config::{Config, ConfigError, DenialConfig, Place, ZoneMode};
use crate::geo::mmdb::GeoError;
use crate::geo::RegionMap;
use crate::proto::tsig::{KeyError, KeySource, Keyring};
use crate::proto::zone::{fqdn_lower, ZoneData, ZoneError};
use crate::sign::{Denial, KeyError as SignKeyError, KeyState, Policy, Signer, ZoneKey};

/// Command-line overrides of the config file.
#[derive(Debug, Clone, Default)]
pub struct Overrides {
    pub listen: Vec<SocketAddr>,
    pub control: Option<SocketAddr>,
    pub state_dir: Option<PathBuf>,
    pub workers: Option<usize>,
}

/// Where the configuration came from, so that reload can read it again.
#[derive(Debug, Clone)]
pub struct Source {
    pub path: PathBuf,
    pub overrides: Overrides,
}

/// Why a configuration cannot be used. Each message names the file, and
/// where it can, the line and field.
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    #[error("{0}")]
    Config(#[from] ConfigError),
    /// A zone file named by the config.
    #[error("{at}: {source}")]
    Zone { at: Place, source: Box<ZoneError> },
    /// A DNSSEC key file named by a zone's `dnssec`.
    #[error("{at}: {source}")]
    ZoneKey {
        at: Place,
        source: Box<SignKeyError>,
    },
    #[error("{path}: service `{service}` owns {fqdn}, but the zone file has a CNAME there")]
    CnameAtService {
        path: String,
        service: String,
        fqdn: String,
    },
    /// The TSIG keys of `[[key]]`.
    #[error("{path}: {source}")]
    Keys { path: String, source: Box<KeyError> },
    /// The saved key set of a zone ggond signs.
    #[error("{path}: {source}")]
    KeySet {
        path: String,
        source: Box<SignKeyError>,
    },
    /// The control listener's certificate or key.
    #[error("{at}: {source}")]
    ControlTls {
        at: Place,
        source: Box<crate::ops::tls::TlsFileError>,
    },
    /// A region's nets file or GeoIP database.
    #[error("{at}: {source}")]
    Geoip { at: Place, source: Box<GeoError> },
    #[error(
        "{path}: zone {zone} is signed (its file holds RRSIGs) and service `{service}` is in it: \
         ggond changes the service's records and must sign them; add \
         dnssec = {{ keys = [\"K…\"] }} to the zone with its key files (see docs/dnssec.md)"
    )]
    SignedWithoutKeys {
        path: String,
        zone: String,
        service: String,
    },
}

/// A validated configuration with its zone files and keys read.
pub struct Loaded {
    pub cfg: Config,
    /// The regions' map, nets files and GeoIP databases read (empty
    /// without regions).
    pub regions: Arc<RegionMap>,
    /// Zones ggond serves itself (local, or rfc2136 with `serve = true`).
    pub zones: Vec<ZoneData>,
    pub keys: Keyring,
    /// Things that load but deserve a word (already logged).
    pub warnings: Vec<String>,
    /// Zones ggond signs, with their keys read.
    pub signers: Vec<Signer>,
}

/// A signer for every zone with `dnssec`, its key files read and checked.
fn signers(cfg: &Config) -> Result<Vec<Signer>, LoadError> {
    let mut out = Vec::new();
    for z in &cfg.zones {
        let Some(d) = &z.dnssec else { continue };
        let origin = fqdn_lower(&z.name());
        let mut keys = Vec::new();
        let lists = [
            (&d.keys, KeyState::Active),
            (&d.published, KeyState::Published),
        ];
        for (list, state) in lists {
            for k in list {
                let key = ZoneKey::load(k.get_ref(), &origin.to_string()).map_err(|source| {
                    LoadError::ZoneKey {
                        at: cfg.place(k.span(), "zone.dnssec.keys"),
                        source: Box::new(source),
                    }
                })?;
                keys.push((key, state));
            }
        }
        let policy = Policy {
            validity: d.validity.as_secs().min(u64::from(u32::MAX / 2)) as u32,
            refresh: d.refresh.as_secs().min(u64::from(u32::MAX / 2)) as u32,
            denial: match d.denial {
                DenialConfig::Nsec => Denial::Nsec,
                DenialConfig::Nsec3 => Denial::Nsec3,
            },
            propagation: d.propagation.as_secs().min(u64::from(u32::MAX / 2)) as u32,
            key_policy: d.policy.as_ref().map(key_policy),
            ..Policy::default()
        };
        let dir = cfg.server.state_dir.join("dnssec");
        let signer = Signer::new(origin, keys, policy)
            .with_state_dir(&dir)
            .map_err(|source| LoadError::KeySet {
                path: dir.display().to_string(),
                source: Box::new(source),
            })?;
        out.push(signer);
    }
    Ok(out)
}

/// `dnssec.policy` in seconds (checked with the config: lifetimes and
/// interval above zero).
fn key_policy(p: &crate::config::KeyPolicyConfig) -> crate::sign::policy::KeyPolicy {
    crate::sign::policy::KeyPolicy {
        zsk_lifetime: p.zsk_lifetime.as_secs().max(1),
        ksk_lifetime: p.ksk_lifetime.map(|l| l.as_secs().max(1)),
        parent_servers: p.parent_servers.clone(),
        check_interval: p.check_interval.as_secs().max(1),
        parent_propagation: p.parent_propagation.as_secs(),
        parent_ds_ttl: p.parent_ds_ttl.map(|t| t.as_secs()),
    }
}

/// Load and validate the config and every zone file it names. Nothing is
/// started.
pub fn load(path: &Path, o: &Overrides) -> Result<Loaded, LoadError> {
    let mut cfg = Config::load(path)?;
    o.apply(&mut cfg);
    let regions = Arc::new(region_map(&cfg)?);
    let (mut zones, files) = zone_files(&cfg)?;
    let warnings = services_in_zones(&cfg, &zones, &files)?;
    zones.extend(catalog(&cfg)?);
    warn_if_secrets_readable(&cfg, path);
    let sources = cfg.keys.iter().map(|k| KeySource {
        name: k.name.get_ref(),
        file: k.file.as_deref(),
        algorithm: k.algorithm.as_deref(),
        secret: k.secret.as_deref(),
    });
    let keys = Keyring::load(sources).map_err(|source| LoadError::Keys {
        path: cfg.path.display().to_string(),
        source: Box::new(source),
    })?;
    let signers = signers(&cfg)?;
    Ok(Loaded {
        cfg,
        regions,
        zones,
        keys,
        warnings,
        signers,
    })
}

/// The state directory the config at `path` names (after `o`), read
/// without loading anything else; None when the config does not parse.
pub fn state_dir(path: &Path, o: &Overrides) -> Option<PathBuf> {
    let mut cfg = Config::load(path).ok()?;
    o.apply(&mut cfg);
    Some(cfg.server.state_dir)
}

impl Overrides {
    /// The command line wins over the file.
    fn apply(&self, cfg: &mut Config) {
        if !self.listen.is_empty() {
            cfg.server.listen = self.listen.clone();
        }
        if let Some(c) = self.control {
            cfg.control.listen = c;
        }
        if let Some(d) = &self.state_dir {
            cfg.server.state_dir = d.clone();
        }
        if let Some(w) = self.workers {
            cfg.server.workers = w;
        }
    }
}

/// The regions' map, its nets files and GeoIP databases read; an error
/// names the region's field that points at the file.
fn region_map(cfg: &Config) -> Result<RegionMap, LoadError> {
    crate::geo::load_map(cfg).map_err(|(i, e)| {
        let r = &cfg.regions[i];
        let (span, field) = match (&e, &r.nets_file, &r.geoip) {
            (GeoError::NetsFile { .. } | GeoError::NetsLine { .. }, Some(f), _) => {
                (f.span(), "region.nets_file")
            }
            (_, _, Some(g)) => (g.span(), "region.geoip"),
            _ => (r.name.span(), "region"),
        };
        LoadError::Geoip {
            at: cfg.place(span, field),
            source: Box::new(e),
        }
    })
}

/// The zones ggond serves itself, read from their files, and those files.
fn zone_files(cfg: &Config) -> Result<(Vec<ZoneData>, Vec<PathBuf>), LoadError> {
    let mut zones = Vec::new();
    let mut files = Vec::new();
    for z in &cfg.zones {
        let origin = z.name();
        let Some(file) = &z.file else { continue };
        if (z.mode == ZoneMode::Rfc2136 && !z.serve) || z.mode == ZoneMode::Secondary {
            continue;
        }
        let data = ZoneData::load(file.get_ref(), &origin).map_err(|source| LoadError::Zone {
            at: cfg.place(file.span(), "zone.file"),
            source: Box::new(source),
        })?;
        zones.push(data);
        files.push(file.get_ref().clone());
    }
    Ok((zones, files))
}

/// The catalog zone of `[catalog]`, listing every zone ggond answers, in
/// file order. Its serial is the time: above what an earlier start served
/// (the publisher also keeps it above the last one it published).
fn catalog(cfg: &Config) -> Result<Option<ZoneData>, LoadError> {
    use crate::proto::catalog::{catalog_zone, Member};
    let Some(c) = &cfg.catalog else {
        return Ok(None);
    };
    let members: Vec<Member> = cfg
        .zones
        .iter()
        .filter(|z| z.in_catalog())
        .map(|z| Member {
            zone: z.name(),
            group: z.catalog_group.as_ref().map(|g| g.get_ref().clone()),
        })
        .collect();
    let serial = crate::publish::unix_now() as u32;
    catalog_zone(&c.origin(), serial, &members)
        .map(Some)
        .map_err(|source| LoadError::Zone {
            at: cfg.place(c.name.span(), "catalog.name"),
            source: Box::new(source),
        })
}

/// What the zone files hold at the services' names: a CNAME there, or a
/// signed zone ggond has no keys for, is an error; A/AAAA records there are
/// ignored, with a warning (returned, and logged).
fn services_in_zones(
    cfg: &Config,
    zones: &[ZoneData],
    files: &[PathBuf],
) -> Result<Vec<String>, LoadError> {
    let mut warnings = Vec::new();
    for s in &cfg.services {
        let fqdn = s.fqdn_name();
        let Some((zone, file)) = zones
            .iter()
            .zip(files)
            .filter(|(z, _)| z.origin.zone_of(&fqdn))
            .max_by_key(|(z, _)| z.origin.num_labels())
        else {
            continue;
        };
        let signed = zone.rrsets[&zone.origin].contains_key(&RecordType::RRSIG);
        let signs = cfg
            .zones
            .iter()
            .any(|z| fqdn_lower(&z.name()) == zone.origin && z.dnssec.is_some());
        if signed && !signs {
            return Err(LoadError::SignedWithoutKeys {
                path: cfg.path.display().to_string(),
                zone: zone.origin.to_string(),
                service: s.name.get_ref().clone(),
            });
        }
        let Some(types) = zone.rrsets.get(&fqdn_lower(&fqdn)) else {
            continue;
        };
        if types.contains_key(&RecordType::CNAME) {
            return Err(LoadError::CnameAtService {
                path: cfg.path.display().to_string(),
                service: s.name.get_ref().clone(),
                fqdn: fqdn.to_string(),
            });
        }
        let owned: Vec<&str> = [(RecordType::A, "A"), (RecordType::AAAA, "AAAA")]
            .into_iter()
            .filter(|(t, _)| types.contains_key(t))
            .map(|(_, name)| name)
            .collect();
        if !owned.is_empty() {
            let at = match line_of_owner(file, &fqdn.to_string(), &zone.origin.to_string()) {
                Some(line) => format!("{}:{line}", file.display()),
                None => file.display().to_string(),
            };
            let w = format!(
                "{at}: the zone file has {} records at {fqdn}, which service `{}` owns: \
                 ggond answers the service's active target there and ignores these records; \
                 remove them from the zone file",
                owned.join("/"),
                s.name.get_ref()
            );
            warn!("{w}");
            warnings.push(w);
        }
    }
    Ok(warnings)
}

/// Inline TSIG secrets in a config file others may read deserve a word.
fn warn_if_secrets_readable(cfg: &Config, path: &Path) {
    if cfg.keys.iter().any(|k| k.secret.is_some()) {
        use std::os::unix::fs::PermissionsExt;
        if let Ok(meta) = std::fs::metadata(path) {
            if meta.permissions().mode() & 0o077 != 0 {
                warn!(path = %path.display(),
                    "the config holds inline TSIG secrets and is readable by group or others; chmod 600 it");
            }
        }
    }
}

/// The first line of a zone file whose owner field names `fqdn` (written
/// relative to `origin` or absolute), for pointing an operator at it. Best
/// effort: `$ORIGIN` changes and continuation lines are not followed.
fn line_of_owner(file: &Path, fqdn: &str, origin: &str) -> Option<usize> {
    let text = std::fs::read_to_string(file).ok()?;
    let fqdn = fqdn.to_ascii_lowercase();
    let relative = fqdn
        .strip_suffix(&format!(".{}", origin.to_ascii_lowercase()))
        .map(str::to_string);
    text.lines()
        .position(|l| {
            if l.starts_with(char::is_whitespace) {
                return false;
            }
            let owner = l
                .split_whitespace()
                .next()
                .unwrap_or("")
                .to_ascii_lowercase();
            owner == fqdn || Some(&owner) == relative.as_ref()
        })
        .map(|i| i + 1)
}

/// Asks the daemon to re-read config and zones; answered with a summary or
/// why nothing changed.
pub type ReloadRequest = tokio::sync::oneshot::Sender<Result<String, ReloadError>>;

/// Why a reload changed nothing: the running configuration stays.
#[derive(Debug, thiserror::Error)]
pub enum ReloadError {
    /// The config, a zone file or a key does not load.
    #[error("{0}")]
    Load(#[from] LoadError),
    /// The thread reading the files ended without an answer.
    #[error("{0}")]
    Task(#[from] tokio::task::JoinError),
    /// The controller refused the new configuration, or is stopping.
    #[error("{0}")]
    Controller(#[from] crate::decide::CtlError),
}
