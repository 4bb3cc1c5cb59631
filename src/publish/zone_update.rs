//! Accepted UPDATEs to local zones, in two steps, and their replication.
//!
//! Single node: [`Publisher::apply_update`] checks and applies an UPDATE,
//! journals it to disk, then serves it.
//!
//! Cluster: the leader first [`Publisher::prepare_update`]s (the checks
//! and the resulting change, nothing applied), writes the change to the
//! cluster's journal in etcd (fenced: only while it leads, and only at the
//! next position, so it is written once), and only then
//! [`Publisher::commit_update`]s it. Every node, the leader included,
//! [`Publisher::apply_entry`]s the cluster's entries it has not applied
//! yet, in order, at the leader's serial; each is also appended to the
//! node's own journal file with its position, so a restart (even with
//! etcd away) serves it and knows where it stands.

use std::collections::BTreeSet;
use std::sync::Arc;

use hickory_proto::op::Message;
use hickory_proto::rr::Name;
use tracing::{error, warn};

use super::journal::{self, Entry, RecordProblem};
use super::update::{self, Change, Rejected};
use super::{next_serial, Publisher};
use crate::proto::codes::rcode;
use crate::proto::zone::{fqdn_lower, ZoneData};

/// An UPDATE checked and worked out, not yet applied.
pub struct PreparedUpdate {
    pub origin: Name,
    base: ZoneData,
    change: Change,
    /// What goes to the journals: with the next position and serial.
    pub entry: Entry,
}

impl PreparedUpdate {
    /// Nothing to change (RFC 2136 allows it: NOERROR, no new serial).
    pub fn is_empty(&self) -> bool {
        self.change.is_empty()
    }

    pub fn change(&self) -> &Change {
        &self.change
    }
}

impl Publisher {
    /// Apply an authenticated RFC 2136 UPDATE to a local zone. It is
    /// journaled to disk before it is served, so an acknowledged update
    /// survives a crash.
    pub fn apply_update(
        &mut self,
        origin: &Name,
        msg: &Message,
    ) -> Result<(Change, u32), Rejected> {
        let p = self.prepare_update(origin, msg)?;
        if p.is_empty() {
            return Ok((p.change, self.zones[origin].serial));
        }
        let change = p.change.clone();
        let serial = self.commit_update(p, false)?;
        Ok((change, serial))
    }

    /// Check an UPDATE and work out its change; nothing is applied.
    pub fn prepare_update(&self, origin: &Name, msg: &Message) -> Result<PreparedUpdate, Rejected> {
        let Some(z) = self.zones.get(origin) else {
            return Err(Rejected {
                rcode: rcode::NOTAUTH,
                why: format!("not authoritative for {origin}"),
            });
        };
        update::check_prerequisites(&z.current, msg)?;
        let mut base = (*z.current).clone();
        let owned = |n: &Name| z.services.contains_key(n);
        let change = update::apply(&mut base, msg, &owned)?;
        if !change.is_empty() {
            if let Err(e) = base.check() {
                return Err(Rejected {
                    rcode: rcode::REFUSED,
                    why: format!("the zone would be invalid: {e}"),
                });
            }
        }
        let mut entry = Entry::of(&change);
        entry.seq = Some(z.seq + 1);
        entry.serial = Some(next_serial(z.serial));
        Ok(PreparedUpdate {
            origin: origin.clone(),
            base,
            change,
            entry,
        })
    }

    /// Apply a prepared UPDATE: journaled to disk, then served at the
    /// entry's serial. `replicated`: the entry is already in the cluster's
    /// journal in etcd, so a local journal that cannot be written is
    /// logged, not refused (the change is made; a restart with etcd
    /// reachable reads it again).
    pub fn commit_update(&mut self, p: PreparedUpdate, replicated: bool) -> Result<u32, Rejected> {
        if let Err(why) = self.journal_locally(&p) {
            if !replicated {
                return Err(Rejected {
                    rcode: rcode::SERVFAIL,
                    why,
                });
            }
            error!(zone = %p.origin, "{why}: served anyway (it is in the cluster's journal)");
        }
        Ok(self.serve_prepared(p))
    }

    fn journal_locally(&self, p: &PreparedUpdate) -> Result<(), String> {
        let Some(path) = self.journal_path(&p.origin) else {
            return Ok(());
        };
        journal::append(&path, &p.entry)
            .map_err(|e| format!("cannot journal the update to {}: {e}", path.display()))
    }

    fn serve_prepared(&mut self, p: PreparedUpdate) -> u32 {
        let names = names_of(&p.change);
        let z = self.zones.get_mut(&p.origin).expect("prepared from it");
        z.current = Arc::new(p.base);
        z.seq = z.seq.max(p.entry.seq.unwrap_or(0));
        self.commit_at(&p.origin, &names, Some(p.change), p.entry.serial)
    }

    /// The last cluster journal entry of `origin` applied here.
    pub fn zone_seq(&self, origin: &Name) -> Option<u64> {
        self.zones.get(origin).map(|z| z.seq)
    }

    /// Apply one entry of the cluster's journal of `origin`, unless it is
    /// already applied here. Returns whether it changed anything.
    pub fn apply_entry(&mut self, origin: &Name, entry: &Entry) -> Result<bool, RecordProblem> {
        let Some(z) = self.zones.get(origin) else {
            return Ok(false);
        };
        let seq = entry.seq.unwrap_or(0);
        if seq <= z.seq {
            return Ok(false);
        }
        if seq != z.seq + 1 {
            warn!(zone = %origin, expected = z.seq + 1, got = seq,
                "cluster UPDATE journal entries skipped: applying the later one");
        }
        let mut base = (*z.current).clone();
        let change = journal::apply(&mut base, entry)?;
        let p = PreparedUpdate {
            origin: origin.clone(),
            base,
            change,
            entry: entry.clone(),
        };
        if let Err(why) = self.journal_locally(&p) {
            error!(zone = %origin, "{why}: served anyway (it is in the cluster's journal)");
        }
        self.serve_prepared(p);
        Ok(true)
    }
}

fn names_of(change: &Change) -> BTreeSet<Name> {
    change
        .removed
        .iter()
        .chain(&change.added)
        .map(|r| fqdn_lower(&r.name))
        .collect()
}
