//! Cluster mode: a follower passes UPDATEs on to the leader.
//!
//! Only the leader applies an UPDATE (it writes it into the zone's journal
//! in etcd, fenced, then every node applies the journal), so a follower
//! that receives one, after checking its TSIG as usual, hands it to the
//! leader and answers the client with the leader's rcode, signed with the
//! client's key by this node. RFC 2136 section 6 has secondaries forward
//! UPDATEs to the primary the same way; the client sees one server.
//!
//! The trait is here, the implementation beside the control API's own
//! forwarding (`ops::relay`), which knows the leader's address, TLS and
//! the token.

use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;

use hickory_proto::rr::Name;

/// The leader's answer to a passed-on UPDATE: its rcode.
pub type Relayed = Pin<Box<dyn Future<Output = u8> + Send>>;

pub trait UpdateRelay: Send + Sync {
    /// `None`: this node leads, apply here. Otherwise the rcode the leader
    /// answered (SERVFAIL when it could not be asked: the client may retry
    /// another server).
    fn relay(&self, zone: &Name, packet: &[u8], key: &str, peer: SocketAddr) -> Option<Relayed>;
}
