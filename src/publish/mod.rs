//! Publisher: makes each service's active target visible in DNS.
//!
//! Owns: the served zone data — the zone file's contents plus, at each
//! service's name, the A/AAAA RRsets of its active target — the SOA serial
//! (bumped on every change, never going back across restarts), and swapping a
//! freshly compiled [`Snapshot`] in atomically. One change replaces whole
//! RRsets, so a query sees the old addresses or the new ones, never an empty
//! or mixed answer.
//!
//! For signed zones it also begins the rolls the key policy asks for and
//! asks a parent zone's servers for a new KSK's DS ([`keypolicy`]).
//!
//! Accepted UPDATEs are applied here too ([`zone_update`]: checked, then
//! applied; in a cluster in between written to the zone's journal in etcd
//! by the controller, and applied on every node from it).
//!
//! It must not choose targets (that is [`crate::decide::policy`]) or talk to clients.

mod journal;
pub mod keypolicy;
mod keyshare;
pub mod regional;
pub mod rfc2136;
pub mod update;
mod zone_update;

use std::borrow::Cow;
use std::collections::{BTreeMap, BTreeSet};
use std::net::IpAddr;
use std::path::PathBuf;
use std::sync::Arc;

use arc_swap::ArcSwap;
use hickory_proto::rr::{Name, RData, RecordType};
use tokio::sync::mpsc;

use crate::proto::dnssec::rrsig_covers;
use crate::proto::zone::{address_rrsets, fqdn_lower, DiffItem, RRset, Types, ZoneData};
use crate::sign::Signer;
use crate::snapshot::{compile, recompile, Diff, Snapshot};
pub use journal::{Entry as JournalEntry, JournalError};
use update::Change;
pub use zone_update::PreparedUpdate;

/// The records a service publishes.
#[derive(Debug, Clone, PartialEq)]
pub struct ServiceRecords {
    pub ttl: u32,
    pub addresses: Vec<IpAddr>,
}

/// How many changes IXFR can serve; older requests get a full transfer.
const JOURNAL_LEN: usize = 200;

struct ZoneRt {
    /// What is served now: the zone file plus accepted dynamic updates, with
    /// the service records overlaid (the same data the snapshot holds, so the
    /// zone is kept once). Service names never take dynamic updates, so
    /// overlaying them again on this data is the same as on the file's.
    current: Arc<ZoneData>,
    serial: u32,
    /// Service name → what it answers now.
    services: BTreeMap<Name, ServiceRecords>,
    journal: Arc<Vec<Arc<Diff>>>,
    /// Service names staged since `current` was last served, whose
    /// records must be laid over it again; None: all of them (`current`
    /// came from a file, a reload or a transfer). At 30,000 services laying
    /// every one over again made each remap cost 2 x 30,000 map updates.
    stale: Option<BTreeSet<Name>>,
    /// The last entry of the cluster's UPDATE journal of this zone applied
    /// here (0: none; single node: always 0).
    seq: u64,
}

/// A zone whose records live on another primary (RFC 2136 mode).
pub trait RemoteZone: Send {
    /// The desired records for every service name of the zone.
    fn set_desired(&mut self, desired: BTreeMap<Name, ServiceRecords>);
}

type Desired = BTreeMap<Name, ServiceRecords>;

/// A zone changed: secondaries should be told (NOTIFY).
#[derive(Debug, Clone, PartialEq)]
pub struct ZoneChanged {
    pub origin: Name,
    pub serial: u32,
}

pub struct Publisher {
    zones: BTreeMap<Name, ZoneRt>,
    /// Remote zones and the desired records of their service names.
    remotes: BTreeMap<Name, (Box<dyn RemoteZone>, Desired)>,
    snapshot: Arc<ArcSwap<Snapshot>>,
    /// Where accepted UPDATEs are journaled (None: not persisted, tests only).
    update_dir: Option<PathBuf>,
    events: Option<mpsc::UnboundedSender<ZoneChanged>>,
    /// Whether remote (RFC 2136) zones are told the desired records. In a
    /// cluster only the leader publishes to another primary.
    remotes_active: bool,
    /// Per-region services (None: there are none).
    geo: Option<regional::GeoState>,
    /// Zones ggond signs: what it serves is their effective data signed.
    signers: BTreeMap<Name, Signer>,
    /// In a cluster: key-set changes wait to be shared before they are
    /// served (keyshare.rs).
    keyshare: keyshare::KeyShare,
}

/// RFC 1982: is `a` later than `b`?
pub fn serial_gt(a: u32, b: u32) -> bool {
    a != b && a.wrapping_sub(b) < 0x8000_0000
}

/// The next serial: never 0 is not required by RFC 1982, but it keeps
/// serials readable; just add one.
fn next_serial(s: u32) -> u32 {
    s.wrapping_add(1)
}

/// Why a key roll cannot begin.
#[derive(Debug, thiserror::Error)]
pub enum StartRollError {
    #[error("{0} is not a zone ggond serves")]
    NotServed(Name),
    #[error("ggond does not sign {0} (no `dnssec` in its config)")]
    NotSigned(Name),
    #[error("{0}")]
    Roll(#[from] crate::sign::RollError),
}

/// A key-roll step that was due and failed.
#[derive(Debug, thiserror::Error)]
#[error("{zone}: {source}")]
pub struct RollStepError {
    pub zone: Name,
    pub source: crate::sign::RollError,
}

impl Publisher {
    pub fn new(snapshot: Arc<ArcSwap<Snapshot>>) -> Self {
        Publisher {
            zones: BTreeMap::new(),
            remotes: BTreeMap::new(),
            snapshot,
            update_dir: None,
            events: None,
            remotes_active: true,
            geo: None,
            signers: BTreeMap::new(),
            keyshare: keyshare::KeyShare::default(),
        }
    }

    /// Sign these zones from now on (start-up, reload: replaces the set).
    pub fn set_signers(&mut self, signers: Vec<Signer>) {
        self.signers = signers
            .into_iter()
            .map(|s| (s.origin().clone(), s))
            .collect();
    }

    pub fn signer(&self, origin: &Name) -> Option<&Signer> {
        self.signers.get(origin)
    }

    /// The data to serve for a zone: its effective data, signed when
    /// ggond signs it; and what `current` keeps (the unsigned data, so
    /// that UPDATEs apply to it and the signer sees only real changes).
    fn served(&mut self, origin: &Name) -> (Arc<ZoneData>, Arc<ZoneData>) {
        let z = self.zones.get_mut(origin).expect("caller checked");
        let data = Arc::new(effective(z));
        // The caller makes it `current`: every service is laid over it now.
        z.stale = Some(BTreeSet::new());
        match self.signers.get_mut(origin) {
            Some(s) => {
                let signed = Arc::new(s.sign(&data, unix_now()));
                (signed, data)
            }
            None => (data.clone(), data),
        }
    }

    /// Begin a key roll for a zone ggond signs (see [`crate::sign::roll`]).
    pub fn start_roll(
        &mut self,
        origin: &Name,
        kind: crate::sign::roll::RollKind,
    ) -> Result<String, StartRollError> {
        let Some(z) = self.zones.get(origin) else {
            return Err(StartRollError::NotServed(origin.clone()));
        };
        let data = z.current.clone();
        let Some(s) = self.signers.get_mut(origin) else {
            return Err(StartRollError::NotSigned(origin.clone()));
        };
        let what = s.start_roll(kind, &data, unix_now())?;
        self.keys_changed(origin);
        Ok(what)
    }

    /// Take the key-roll steps that are due; what each did.
    pub fn roll_tick(&mut self, now: u64) -> Vec<Result<String, RollStepError>> {
        let mut out = Vec::new();
        let origins: Vec<Name> = self.signers.keys().cloned().collect();
        for origin in origins {
            let step = match self.signers.get_mut(&origin) {
                Some(s) => s.advance_roll(now),
                None => continue,
            };
            out.extend(self.signed_step(origin, step));
        }
        out
    }

    /// What a key step did, published (a new key set is a new serial), or
    /// why it failed; nothing if no step was due.
    fn signed_step(
        &mut self,
        origin: Name,
        step: Result<Option<String>, crate::sign::RollError>,
    ) -> Option<Result<String, RollStepError>> {
        match step {
            Ok(Some(what)) => {
                self.keys_changed(&origin);
                Some(Ok(what))
            }
            Ok(None) => None,
            Err(source) => Some(Err(RollStepError {
                zone: origin,
                source,
            })),
        }
    }

    /// Re-sign the zones whose signatures are due for refresh (called
    /// periodically; a signature is made again well before it expires).
    /// Returns the zones changed.
    pub fn refresh_signatures(&mut self, now: u64) -> Vec<Name> {
        let due: Vec<Name> = self
            .signers
            .iter()
            .filter(|(o, s)| s.refresh_at() <= now && self.zones.contains_key(*o))
            .map(|(o, _)| o.clone())
            .collect();
        for origin in &due {
            self.commit(origin, &BTreeSet::new(), None);
        }
        due
    }

    /// Journal accepted UPDATEs under `dir` (one file per zone), and replay
    /// them onto zones added afterwards.
    pub fn with_update_dir(mut self, dir: PathBuf) -> Self {
        self.update_dir = Some(dir);
        self
    }

    /// Report every zone change on `tx` (for NOTIFY).
    pub fn with_events(mut self, tx: mpsc::UnboundedSender<ZoneChanged>) -> Self {
        self.events = Some(tx);
        self
    }

    fn journal_path(&self, origin: &Name) -> Option<PathBuf> {
        let name = origin.to_string();
        let file = format!("{}.jsonl", name.trim_end_matches('.'));
        self.update_dir.as_ref().map(|d| d.join(file))
    }

    /// Add a locally served zone. `last_serial` is the serial published
    /// before a restart: the new serial is above both it and the file's.
    /// Journaled UPDATEs are replayed onto the file's data.
    pub fn add_zone(
        &mut self,
        base: ZoneData,
        last_serial: Option<u32>,
    ) -> Result<(), JournalError> {
        self.add_zone_resuming(base, last_serial, false)
    }

    /// Like [`Publisher::add_zone`]; with `exact`, resume at `last_serial`
    /// itself (cluster mode: the saved state is the cluster's state at that
    /// serial, and a bumped serial of this node's own would name different
    /// contents than the leader's next one).
    pub fn add_zone_resuming(
        &mut self,
        mut base: ZoneData,
        last_serial: Option<u32>,
        exact: bool,
    ) -> Result<(), JournalError> {
        let mut seq = 0;
        if let Some(path) = self.journal_path(&base.origin) {
            seq = journal::replay(&mut base, &path)?;
        }
        let mut serial = base.serial();
        if let Some(last) = last_serial {
            if exact {
                serial = last;
            } else if !serial_gt(serial, last) {
                serial = next_serial(last);
            }
        }
        self.zones.insert(
            base.origin.clone(),
            ZoneRt {
                current: Arc::new(base),
                serial,
                services: BTreeMap::new(),
                journal: Arc::default(),
                stale: None,
                seq,
            },
        );
        Ok(())
    }

    /// Replace the locally served zones with freshly loaded ones (reload).
    /// Serials keep increasing; the IXFR journal restarts (older serials get
    /// a full transfer); service records must be staged again.
    pub fn reload_zones(&mut self, zones: Vec<ZoneData>) -> Result<(), JournalError> {
        let mut next = BTreeMap::new();
        for mut base in zones {
            let mut seq = 0;
            if let Some(path) = self.journal_path(&base.origin) {
                seq = journal::replay(&mut base, &path)?;
            }
            let mut serial = base.serial();
            if let Some(old) = self.zones.get(&base.origin) {
                if !serial_gt(serial, old.serial) {
                    serial = next_serial(old.serial);
                }
            }
            next.insert(
                base.origin.clone(),
                ZoneRt {
                    current: Arc::new(base),
                    serial,
                    services: BTreeMap::new(),
                    journal: Arc::default(),
                    stale: None,
                    seq,
                },
            );
        }
        self.zones = next;
        Ok(())
    }

    /// Serve `data` as transferred from a primary (secondary zones): its
    /// serial is the primary's. Our own secondaries are notified.
    pub fn replace_zone(&mut self, data: ZoneData) {
        let origin = data.origin.clone();
        let serial = data.serial();
        let current = Arc::new(data);
        let mut compiled = compile(current.clone());
        compiled.journal = Arc::default();
        self.zones.insert(
            origin.clone(),
            ZoneRt {
                current,
                serial,
                services: BTreeMap::new(),
                journal: Arc::default(),
                stale: None,
                seq: 0,
            },
        );
        let next = self.snapshot.load().with_zone(Arc::new(compiled));
        self.store(next);
        if let Some(tx) = &self.events {
            let _ = tx.send(ZoneChanged { origin, serial });
        }
    }

    /// Stop serving a zone (an expired secondary).
    pub fn remove_zone(&mut self, origin: &Name) {
        self.zones.remove(origin);
        let zones: Vec<_> = self
            .snapshot
            .load()
            .zones()
            .iter()
            .filter(|z| &z.origin != origin)
            .cloned()
            .collect();
        self.store(Snapshot::new(zones));
    }

    /// Publish everything after a reload and tell secondaries.
    pub fn publish_reload(&mut self) {
        self.publish_all();
        if let Some(tx) = &self.events {
            for (origin, z) in &self.zones {
                let _ = tx.send(ZoneChanged {
                    origin: origin.clone(),
                    serial: z.serial,
                });
            }
        }
    }

    /// Add a zone published to another primary.
    pub fn add_remote(&mut self, origin: Name, remote: Box<dyn RemoteZone>) {
        self.remotes
            .insert(fqdn_lower(&origin), (remote, BTreeMap::new()));
    }

    /// The zone containing `name` (most specific), local or remote.
    pub fn zone_of(&self, name: &Name) -> Option<Name> {
        self.zones
            .keys()
            .chain(self.remotes.keys())
            .filter(|o| o.zone_of(name))
            .max_by_key(|o| o.num_labels())
            .cloned()
    }

    /// Set a service's records without publishing (start-up, before the
    /// first [`Publisher::publish_all`]).
    pub fn stage(&mut self, fqdn: &Name, records: ServiceRecords) -> Option<Name> {
        let origin = self.zone_of(fqdn)?;
        if let Some((_, desired)) = self.remotes.get_mut(&origin) {
            desired.insert(fqdn_lower(fqdn), records.clone());
        }
        if let Some(zone) = self.zones.get_mut(&origin) {
            let name = fqdn_lower(fqdn);
            if let Some(stale) = zone.stale.as_mut() {
                stale.insert(name.clone());
            }
            zone.services.insert(name, records);
        }
        Some(origin)
    }

    /// Compile every zone and swap them in; hand remote zones their desired
    /// state (start-up).
    pub fn publish_all(&mut self) {
        let mut compiled = Vec::new();
        let origins: Vec<Name> = self.zones.keys().cloned().collect();
        for origin in origins {
            let (data, keep) = self.served(&origin);
            let z = self.zones.get_mut(&origin).expect("listed");
            z.current = keep;
            let mut c = compile(data);
            c.journal = z.journal.clone();
            compiled.push(Arc::new(c));
        }
        self.store(Snapshot::new(compiled));
        self.push_remotes();
    }

    fn push_remotes(&mut self) {
        if !self.remotes_active {
            return;
        }
        for (remote, desired) in self.remotes.values_mut() {
            remote.set_desired(desired.clone());
        }
    }

    /// Start or stop telling RFC 2136 primaries (cluster: leader only).
    /// Starting pushes the current desired records at once.
    pub fn set_remotes_active(&mut self, active: bool) {
        if self.remotes_active != active {
            self.remotes_active = active;
            self.push_remotes();
        }
    }

    /// Publish several services' records at once with the zones' serials
    /// given (a cluster follower answers exactly what the leader decided,
    /// with the same serials). A zone whose serial is already that is left
    /// alone unless one of its services changed.
    pub fn publish_at(
        &mut self,
        changes: Vec<(Name, ServiceRecords)>,
        serials: &BTreeMap<String, u32>,
    ) {
        let mut names: BTreeMap<Name, BTreeSet<Name>> = BTreeMap::new();
        for (fqdn, records) in changes {
            let Some(origin) = self.stage(&fqdn, records) else {
                continue;
            };
            names.entry(origin).or_default().insert(fqdn_lower(&fqdn));
        }
        let origins: Vec<Name> = self.zones.keys().cloned().collect();
        for origin in origins {
            let serial = serials.get(&origin.to_string()).copied();
            let current = self.zones[&origin].serial;
            let changed = names.remove(&origin);
            if changed.is_some() || serial.is_some_and(|s| s != current) {
                // Exactly the leader's serial, even when this node's own
                // (bumped at its start) happens to be the same number.
                let names = changed.unwrap_or_default();
                self.commit_at(&origin, &names, None, serial);
            }
        }
        self.push_remotes();
    }

    /// Recompile one zone after a change, journal the diff, swap it in.
    /// `known`: the change, when the caller already knows it (an UPDATE has
    /// already replaced `current`, so it cannot be diffed here).
    fn commit(&mut self, origin: &Name, names: &BTreeSet<Name>, known: Option<Change>) -> u32 {
        self.commit_at(origin, names, known, None)
    }

    /// [`Publisher::commit`] with the new serial given (None: the next one).
    fn commit_at(
        &mut self,
        origin: &Name,
        names: &BTreeSet<Name>,
        known: Option<Change>,
        serial: Option<u32>,
    ) -> u32 {
        let z = self.zones.get_mut(origin).expect("caller checked");
        let old_serial = z.serial;
        z.serial = serial.unwrap_or_else(|| next_serial(z.serial));
        let t0 = std::time::Instant::now();
        let (data, keep) = self.served(origin);
        let t_sign = t0.elapsed();
        let z = self.zones.get_mut(origin).expect("caller checked");
        let signs = self.signers.contains_key(origin);
        // The served zone is the one `names` changed (an UPDATE has already
        // replaced `current`, from the served data); else compile it all.
        let now = self.snapshot.load();
        let mut prev = now
            .zone(origin)
            .filter(|p| known.is_some() || Arc::ptr_eq(&p.data, &z.current));
        let mut changed = names.clone();
        let Change { removed, added } = if signs {
            // Signing changes records beside `names` (signatures, the SOA's,
            // NSEC bitmaps): compare with what was served, owner by owner.
            prev = now.zone(origin);
            let old = prev.map(|c| c.data.clone());
            let old = old.as_deref().unwrap_or(&z.current);
            // Two versions of one load: only their overlays are compared.
            changed = old
                .rrsets
                .diff(&data.rrsets)
                .into_iter()
                .map(|d| match d {
                    DiffItem::Add(n, _) | DiffItem::Remove(n, _) => n.clone(),
                    DiffItem::Update { new: (n, _), .. } => n.clone(),
                })
                .collect();
            let ch = update::diff(old, &data, &changed);
            // The apex's SOA and its signature change with every serial;
            // the compiler recompiles the apex anyway.
            if serial_only(old, &data) {
                changed.remove(origin);
            }
            ch
        } else {
            known.unwrap_or_else(|| update::diff(&z.current, &data, names))
        };
        let mut journal: Vec<Arc<Diff>> = z.journal.iter().cloned().collect();
        journal.push(Arc::new(Diff {
            from: old_serial,
            to: z.serial,
            removed,
            added,
        }));
        if journal.len() > JOURNAL_LEN {
            journal.drain(..journal.len() - JOURNAL_LEN);
        }
        z.journal = Arc::new(journal);
        z.current = keep;
        let t_diff = t0.elapsed();
        // Only the nodes the changed names reach (see snapshot/incremental.rs).
        let mut compiled = recompile(prev.map(|z| &**z), data, &changed);
        compiled.journal = z.journal.clone();
        let serial = z.serial;
        let next = now.with_zone(Arc::new(compiled));
        self.store(next);
        tracing::debug!(zone = %origin, effective_and_sign = ?t_sign,
            diff = ?(t_diff - t_sign), compile = ?(t0.elapsed() - t_diff), "zone published");
        if let Some(tx) = &self.events {
            let _ = tx.send(ZoneChanged {
                origin: origin.clone(),
                serial,
            });
        }
        serial
    }

    /// Change one service's records. Local zones: the serial is bumped and
    /// the new answers are live when this returns. Remote zones: the sync
    /// task is given the new desired state. Returns the zone and, for a local
    /// zone, its new serial.
    pub fn publish(&mut self, fqdn: &Name, records: ServiceRecords) -> Option<(Name, Option<u32>)> {
        let origin = self.zone_of(fqdn)?;
        let name = fqdn_lower(fqdn);
        if let Some((remote, desired)) = self.remotes.get_mut(&origin) {
            desired.insert(name.clone(), records.clone());
            if self.remotes_active {
                remote.set_desired(desired.clone());
            }
        }
        let mut serial = None;
        if let Some(zone) = self.zones.get_mut(&origin) {
            if let Some(stale) = zone.stale.as_mut() {
                stale.insert(name.clone());
            }
            zone.services.insert(name.clone(), records);
            serial = Some(self.commit(&origin, &BTreeSet::from([name]), None));
        }
        Some((origin, serial))
    }

    pub fn serials(&self) -> BTreeMap<String, u32> {
        self.zones
            .iter()
            .map(|(o, z)| (o.to_string(), z.serial))
            .collect()
    }

    /// The serials as they will be once these names' records are
    /// published in one go (their zones' next serials): for state persisted
    /// before the publish, so that a restart never serves a serial again.
    pub fn serials_after(&self, fqdns: &[&Name]) -> BTreeMap<String, u32> {
        let origins: BTreeSet<Name> = fqdns.iter().filter_map(|n| self.zone_of(n)).collect();
        self.zones
            .iter()
            .map(|(o, z)| {
                let serial = match origins.contains(o) {
                    true => next_serial(z.serial),
                    false => z.serial,
                };
                (o.to_string(), serial)
            })
            .collect()
    }
}

/// The zone as served: file data, service records, current serial.
fn effective(z: &ZoneRt) -> ZoneData {
    let mut data = (*z.current).clone();
    let overlay = |data: &mut ZoneData, name: &Name, rec: &ServiceRecords| {
        let [v4, v6] = address_rrsets(rec.ttl, &rec.addresses);
        data.replace_rrset(name, RecordType::A, v4);
        data.replace_rrset(name, RecordType::AAAA, v6);
    };
    match &z.stale {
        // `current` holds every other service's records already.
        Some(names) => names
            .iter()
            .filter_map(|n| Some((n, z.services.get(n)?)))
            .for_each(|(n, rec)| overlay(&mut data, n, rec)),
        None => z
            .services
            .iter()
            .for_each(|(n, rec)| overlay(&mut data, n, rec)),
    }
    data.set_serial(z.serial);
    data
}

#[cfg(test)]
mod tests;

/// Whether two versions of a zone differ at the apex only in the SOA
/// serial and the SOA's signatures.
fn serial_only(old: &ZoneData, new: &ZoneData) -> bool {
    let (Some(a), Some(b)) = (old.rrsets.get(&old.origin), new.rrsets.get(&new.origin)) else {
        return false;
    };
    fn sigs(m: &Types) -> impl Iterator<Item = Cow<'_, RData>> {
        m.get(&RecordType::RRSIG)
            .into_iter()
            .flat_map(|s| &s.rdatas)
            .filter(|rd| rrsig_covers(rd) != Some(RecordType::SOA))
    }
    fn rest(m: &Types) -> impl Iterator<Item = (&RecordType, &RRset)> {
        m.iter()
            .filter(|(t, _)| !matches!(t, RecordType::SOA | RecordType::RRSIG))
    }
    rest(a).eq(rest(b)) && sigs(a).eq(sigs(b)) && old.same_soa_but_serial(new)
}

pub(crate) fn unix_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}
