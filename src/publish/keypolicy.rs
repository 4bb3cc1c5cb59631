//! The key policy's work in the publisher: beginning the rolls the signers'
//! policies ask for (publishing the new key), and asking the parent's
//! servers whether they serve a new KSK's DS.
//!
//! Why here: the publisher owns the served zone data (a roll's new key is
//! a change to it, with a new serial) and, like RFC 2136 publishing, talks
//! to other servers about how the zone is seen; the signer decides and
//! must not touch sockets. The DS question is plain DNS over TCP to each
//! configured server (like BIND's `parental-agents` checks): DS for the
//! zone, without recursion; an answer counts only when it is authoritative
//! (AA) and NOERROR. Its answers are not validated: they only hold the old
//! key back, and a forged "yes" needs the parent's own servers.

use std::time::Duration;

use hickory_proto::op::{Message, MessageType, OpCode, Query};
use hickory_proto::rr::{Name, RecordType};
use hickory_proto::serialize::binary::BinEncodable;

use super::{unix_now, Publisher, RollStepError};
use crate::proto::codes::rcode;
use crate::sign::roll::{DsCheck, ServerSaid};
use crate::sign::{ParentQuestion, ZoneKeysView};

impl Publisher {
    /// Time the signing keys and begin the rolls the key policies want;
    /// what began (each publishes its new key at once).
    pub fn key_policy_tick(&mut self, now: u64) -> Vec<Result<String, RollStepError>> {
        let mut out = Vec::new();
        let origins: Vec<Name> = self.signers.keys().cloned().collect();
        for origin in origins {
            let Some(data) = self.zones.get(&origin).map(|z| z.current.clone()) else {
                continue;
            };
            let Some(s) = self.signers.get_mut(&origin) else {
                continue;
            };
            let step = s.policy_tick(&data, now);
            out.extend(self.signed_step(origin, step));
        }
        out
    }

    /// The parent checks due now (KSK rolls waiting for their DS).
    pub fn parent_questions(&self, now: u64) -> Vec<ParentQuestion> {
        self.signers
            .values()
            .filter_map(|s| s.parent_question(now))
            .collect()
    }

    /// What the parent's servers answered for `origin`: what to record, if
    /// it is news.
    pub fn parent_checked(
        &mut self,
        origin: &Name,
        check: DsCheck,
        now: u64,
    ) -> Option<Result<String, RollStepError>> {
        let s = self.signers.get_mut(origin)?;
        s.parent_checked(check, now)
            .map_err(|source| RollStepError {
                zone: origin.clone(),
                source,
            })
            .transpose()
    }

    /// Every signed zone's keys, roll and policy.
    pub fn dnssec_views(&self, follows: bool) -> Vec<ZoneKeysView> {
        self.signers.values().map(|s| s.view(follows)).collect()
    }
}

/// Ask each of the question's servers for the zone's DS (one at a time;
/// each bounded by `timeout`).
pub async fn ask_parent(q: &ParentQuestion, timeout: Duration) -> DsCheck {
    let mut servers = Vec::new();
    for server in &q.servers {
        servers.push(ask_one(q, *server, timeout).await);
    }
    DsCheck {
        at: unix_now(),
        servers,
    }
}

async fn ask_one(
    q: &ParentQuestion,
    server: std::net::SocketAddr,
    timeout: Duration,
) -> ServerSaid {
    let failed = |e: String| ServerSaid {
        server,
        new_ds: false,
        tags: Vec::new(),
        ttl: None,
        error: Some(e),
    };
    // Recursion not desired: the parent's own answer, not a cache's.
    let mut m = Message::new(rand::random(), MessageType::Query, OpCode::Query);
    m.metadata.recursion_desired = false;
    m.add_query(Query::query(q.zone.clone(), RecordType::DS));
    let wire = match m.to_bytes() {
        Ok(w) => w,
        Err(e) => return failed(format!("cannot build the query: {e}")),
    };
    let answer = match crate::proto::client::tcp_exchange(server, &wire, timeout).await {
        Ok(a) => a,
        Err(e) => return failed(e.to_string()),
    };
    let msg = match Message::from_vec(&answer) {
        Ok(m) => m,
        Err(e) => return failed(format!("unreadable answer: {e}")),
    };
    let rc = u16::from(msg.metadata.response_code);
    if rc != u16::from(rcode::NOERROR) {
        return failed(format!("answered {}", crate::proto::codes::rcode_label(rc)));
    }
    if !msg.metadata.authoritative {
        return failed(format!("not authoritative for the DS of {}", q.zone));
    }
    judge(q, server, &msg)
}

/// The DS records of an authoritative answer, and whether the new key's is
/// among them.
fn judge(q: &ParentQuestion, server: std::net::SocketAddr, msg: &Message) -> ServerSaid {
    let zone_wire = crate::sign::rrsig::name_wire(&q.zone);
    let mut said = ServerSaid {
        server,
        new_ds: false,
        tags: Vec::new(),
        ttl: None,
        error: None,
    };
    for r in &msg.answers {
        if r.record_type() != RecordType::DS || r.name != q.zone {
            continue;
        }
        let Ok(ds) = r.data.to_bytes() else { continue };
        if ds.len() < 4 {
            continue;
        }
        said.tags.push(u16::from_be_bytes([ds[0], ds[1]]));
        said.ttl = Some(said.ttl.map_or(r.ttl, |t: u32| t.max(r.ttl)));
        said.new_ds |= crate::sign::ds_matches(&zone_wire, &q.new_dnskey, &ds);
    }
    said
}
