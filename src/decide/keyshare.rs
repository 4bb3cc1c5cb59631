//! DNSSEC key sets across a cluster: the leader writes each key-set change
//! (a roll's step, the key policy's, its clocks) to etcd before it is
//! served; every node adopts what etcd holds (see `publish/keyshare.rs`
//! for why a change waits). So `ggon-ctl dnssec roll` works on any node
//! (a follower passes it on to the leader like a remap), the key policy
//! runs on whichever node leads, and a new leader goes on with a roll
//! where the last one left it.

use hickory_proto::rr::Name;
use tracing::{error, info, warn};

use super::shared::SharedError;
use super::{Controller, Role};
use crate::sign::{AdoptError, SharedKeySet};

/// Why a key set was not shared.
#[derive(Debug, thiserror::Error)]
pub enum ShareError {
    #[error("cannot read its key files: {0}")]
    Read(#[from] AdoptError),
    #[error("etcd did not take it: {0}")]
    Store(#[from] SharedError),
}

impl Controller {
    /// Cluster leader: write the key sets that changed; each is served once
    /// written, or put back as etcd holds it. Whether all were written.
    pub(super) fn share_keys(&mut self) -> Result<(), Box<ShareError>> {
        let Some(shared) = &self.shared else {
            return Ok(());
        };
        if self.role != Role::Leader {
            return Ok(());
        }
        let mut served = false;
        let mut first_error = None;
        for (origin, set, prev) in self.publisher.keysets_to_share() {
            let written = set
                .map_err(ShareError::from)
                .and_then(|set| Ok(shared.put_keyset(&origin.to_string(), &set, prev)?));
            match written {
                Ok(rev) => {
                    self.publisher.keyset_shared(&origin, rev);
                    if self.parent_checks.share_failed.remove(&origin).is_some() {
                        info!(zone = %origin, "the zone's key set is in etcd again");
                    }
                    served = true;
                }
                Err(e) => {
                    let said = e.to_string();
                    if self.parent_checks.share_failed.get(&origin) != Some(&said) {
                        warn!(zone = %origin, error = %said,
                            "DNSSEC key set not shared: the step waits, keys stay as etcd holds them");
                    }
                    self.parent_checks.share_failed.insert(origin.clone(), said);
                    if let Err(e) = self.publisher.keyset_refused(&origin) {
                        error!(zone = %origin, error = %e, "cannot go back to the shared key set");
                    }
                    first_error.get_or_insert(Box::new(e));
                }
            }
        }
        if served {
            // The new serial goes to the followers with the state.
            self.persist_or_log();
        }
        first_error.map_or(Ok(()), Err)
    }

    /// Key sets the watch brought (the leader's own writes too).
    pub(super) fn adopt_keysets(&mut self, sets: Vec<(String, SharedKeySet, i64)>) {
        for (zone, set, rev) in sets {
            let Ok(origin) = Name::from_ascii(&zone).map(|n| crate::proto::zone::fqdn_lower(&n))
            else {
                continue;
            };
            match self.publisher.adopt_keyset(&origin, &set, rev) {
                Ok(true) => {
                    let tags: Vec<String> = set
                        .keys
                        .iter()
                        .map(|k| {
                            format!("{} ({})", k.name, format!("{:?}", k.state).to_lowercase())
                        })
                        .collect();
                    info!(zone = %origin, keys = %tags.join(", "),
                        "the cluster's key set adopted: signing with it");
                }
                Ok(false) => {}
                Err(e) => error!(zone = %origin, error = %e,
                    "cannot adopt the cluster's key set: this node's DNSKEY set differs from \
                     the other nodes' until it can"),
            }
        }
    }
}
