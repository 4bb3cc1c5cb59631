//! Key sets in a cluster: a key-set change is served only once the
//! cluster's store holds it.
//!
//! Why: every node answering for a zone must publish the same DNSKEY set
//! and sign with the same keys, or a validator that asked one node and
//! then another fails. So on the leader a roll's step (or the key
//! policy's) changes the signer but is not published: the controller
//! writes the new key set to etcd (fenced, compared with the revision this
//! node last saw), and only then is the zone signed again and served; a
//! write etcd refuses puts the signer back as it was. Every node (the
//! leader too, for its own writes) adopts the key sets the watch brings.
//! Single node: nothing waits, every step is published at once.

use std::collections::{BTreeMap, BTreeSet};

use hickory_proto::rr::Name;

use super::Publisher;
use crate::sign::{AdoptError, KeyMark, SharedKeySet};

#[derive(Default)]
pub(super) struct KeyShare {
    /// Cluster mode: changes wait for [`Publisher::keyset_shared`].
    on: bool,
    /// Zones whose key set changed and is not served yet.
    pending: BTreeSet<Name>,
    /// What the store holds for each zone (as this node last wrote or
    /// adopted it) and that key's revision.
    shared: BTreeMap<Name, (KeyMark, i64)>,
}

impl Publisher {
    /// Cluster mode: key-set changes are shared before they are served.
    pub fn share_keys_first(&mut self, on: bool) {
        self.keyshare.on = on;
    }

    /// A signer's key set changed: sign the zone again now, or (cluster)
    /// once the store holds the change.
    pub(super) fn keys_changed(&mut self, origin: &Name) {
        if self.keyshare.on {
            self.keyshare.pending.insert(origin.clone());
        } else if self.zones.contains_key(origin) {
            self.commit(origin, &BTreeSet::new(), None);
        }
    }

    /// Whether every signed zone's key set is the one the store holds (the
    /// leader takes no key step before it is: a step from a key set the
    /// cluster does not share would be shared half).
    pub fn keys_in_step(&self) -> bool {
        self.signers.iter().all(|(o, s)| {
            self.keyshare
                .shared
                .get(o)
                .is_some_and(|(m, _)| *m == s.mark())
        })
    }

    /// The key sets that differ from what the store holds, each with the
    /// revision to compare with (0: the store has none yet).
    pub fn keysets_to_share(&self) -> Vec<(Name, Result<SharedKeySet, AdoptError>, i64)> {
        self.signers
            .iter()
            .filter_map(|(o, s)| {
                let held = self.keyshare.shared.get(o);
                if held.is_some_and(|(m, _)| *m == s.mark()) {
                    return None;
                }
                Some((o.clone(), s.shared(), held.map_or(0, |(_, r)| *r)))
            })
            .collect()
    }

    /// The store took the zone's key set at `rev`: serve it.
    pub fn keyset_shared(&mut self, origin: &Name, rev: i64) {
        let Some(s) = self.signers.get(origin) else {
            return;
        };
        self.keyshare.shared.insert(origin.clone(), (s.mark(), rev));
        if self.keyshare.pending.remove(origin) && self.zones.contains_key(origin) {
            self.commit(origin, &BTreeSet::new(), None);
        }
    }

    /// The store refused the zone's key set: back to what it holds (what
    /// is served). With nothing held yet there is nothing to go back to:
    /// the change stays unserved and is offered again.
    pub fn keyset_refused(&mut self, origin: &Name) -> Result<(), AdoptError> {
        let (Some(s), Some((mark, _))) = (
            self.signers.get_mut(origin),
            self.keyshare.shared.get(origin),
        ) else {
            return Ok(());
        };
        s.restore(mark)?;
        self.keyshare.pending.remove(origin);
        Ok(())
    }

    /// A key set the store holds (at `rev`): take it and serve it. Whether
    /// it changed this node's keys.
    pub fn adopt_keyset(
        &mut self,
        origin: &Name,
        set: &SharedKeySet,
        rev: i64,
    ) -> Result<bool, AdoptError> {
        let Some(s) = self.signers.get_mut(origin) else {
            return Ok(false);
        };
        let changed = s.adopt(set)?;
        self.keyshare.shared.insert(origin.clone(), (s.mark(), rev));
        if (changed || self.keyshare.pending.remove(origin)) && self.zones.contains_key(origin) {
            self.keyshare.pending.remove(origin);
            self.commit(origin, &BTreeSet::new(), None);
        }
        Ok(changed)
    }
}
