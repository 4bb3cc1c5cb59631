//! Replicate: zone transfers, UPDATE intake and NOTIFY, the DNS protocol's
//! own way of scaling past one machine (ggond as hidden primary, standard
//! secondaries), and ggond's own secondary zones ([`secondary`]).
//!
//! One dispatcher ([`ProtocolHandler`], the query path's [`SpecialHandler`]),
//! one file per operation: [`transfer`] (AXFR/IXFR out), [`update`] (RFC 2136
//! in; in a cluster a follower passes it to the leader through [`relay`]),
//! [`notify`] (in and out), [`signed`] (TSIG-signed queries). They share
//! one parse-and-find-the-zone step and one reply builder ([`reply`]); each
//! verifies TSIG once, against the keys its zone allows for that operation.
//!
//! Owns: access control and TSIG for AXFR/IXFR and UPDATE (an unlisted
//! address or key is refused and logged), building AXFR and IXFR answers from
//! the snapshot (IXFR from the journal of recent changes, falling back to a
//! full transfer when the requested serial is too old, RFC 1995), sending
//! NOTIFY to configured secondaries on every change (retried, bounded), and
//! passing authenticated UPDATEs to the controller, the single writer.
//!
//! It must not change zone data itself: an UPDATE is applied by the
//! publisher on the controller's task.

pub mod saved;
pub mod secondary;

mod notify;
pub mod relay;
mod reply;
mod signed;
mod transfer;
mod update;

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;

use arc_swap::ArcSwap;
use hickory_proto::rr::Name;

use crate::decide::ControllerHandle;
use crate::dns::{Special, SpecialFuture, SpecialHandler, Transport};
use crate::proto::acl::Net;
use crate::proto::tsig::Keyring;
use crate::snapshot::Snapshot;
#[doc(hidden)]
pub use notify::notify_in;
pub use notify::{send_notify, spawn_notifier};
pub use transfer::transfer_records;

/// Per-zone access rules.
#[derive(Debug, Clone, Default)]
pub struct ZoneAccess {
    pub origin: Name,
    pub allow_transfer: Vec<Net>,
    pub transfer_keys: Vec<String>,
    /// Secondaries: their address may transfer (with their key, if set).
    pub secondaries: Vec<(SocketAddr, Option<String>)>,
    pub update_keys: Vec<String>,
}

/// Every zone's access rules as the config gives them: the `[[zone]]`s'
/// and the catalog's (which takes no UPDATEs). Built at start and again on
/// every reload, so a zone a reload adds can be transferred.
pub fn access_rules(cfg: &crate::config::Config) -> HashMap<Name, ZoneAccess> {
    let names = |v: &[toml::Spanned<String>]| v.iter().map(|k| k.get_ref().clone()).collect();
    let secondaries = |v: &[crate::config::SecondaryConfig]| {
        v.iter().map(|s| (s.address, s.key.clone())).collect()
    };
    let mut rules: HashMap<Name, ZoneAccess> = cfg
        .zones
        .iter()
        .map(|z| ZoneAccess {
            origin: z.name(),
            allow_transfer: z.transfer_acl().to_vec(),
            transfer_keys: names(&z.transfer_keys),
            secondaries: secondaries(&z.secondaries),
            update_keys: names(&z.update_keys),
        })
        .map(|a| (a.origin.clone(), a))
        .collect();
    if let Some(c) = &cfg.catalog {
        let a = ZoneAccess {
            origin: c.origin(),
            allow_transfer: c.transfer_acl().to_vec(),
            transfer_keys: names(&c.transfer_keys),
            secondaries: secondaries(&c.secondaries),
            update_keys: Vec::new(),
        };
        rules.insert(a.origin.clone(), a);
    }
    rules
}

pub struct ProtocolHandler {
    /// Secondary zones: the primary's address and the refresh trigger.
    pub secondary_zones: Arc<HashMap<Name, (IpAddr, Arc<tokio::sync::Notify>)>>,
    pub snapshot: Arc<ArcSwap<Snapshot>>,
    pub keys: Arc<Keyring>,
    /// Replaced on every reload ([`access_rules`]).
    pub zones: Arc<ArcSwap<HashMap<Name, ZoneAccess>>>,
    pub controller: ControllerHandle,
    /// Cluster mode: where a follower passes UPDATEs on to.
    pub relay: Option<Arc<dyn relay::UpdateRelay>>,
}

impl SpecialHandler for ProtocolHandler {
    fn handle(
        &self,
        kind: Special,
        packet: Vec<u8>,
        peer: SocketAddr,
        transport: Transport,
    ) -> SpecialFuture {
        let snapshot = self.snapshot.load_full();
        let keys = self.keys.clone();
        let zones = self.zones.load_full();
        let controller = self.controller.clone();
        let secondary = self.secondary_zones.clone();
        let relay = self.relay.clone();
        Box::pin(async move {
            match kind {
                Special::Transfer => {
                    transfer::transfer(&snapshot, &keys, &zones, &packet, peer, transport)
                }
                Special::Update => {
                    let ctx = update::Intake {
                        keys: &keys,
                        zones: &zones,
                        controller: &controller,
                        relay: relay.as_deref(),
                    };
                    update::update(ctx, &packet, peer).await
                }
                Special::Signed => signed::signed_query(&snapshot, &keys, &packet, transport),
                Special::Notify => notify::notify_in(&secondary, &packet, peer),
            }
        })
    }
}
