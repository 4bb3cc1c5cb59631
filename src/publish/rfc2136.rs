//! RFC 2136 publishing: keeps service records right on another primary.
//!
//! Owns: one sync task per `mode = "rfc2136"` zone. It holds the desired
//! A/AAAA records of every service name in the zone and makes the primary
//! match: one TSIG-signed UPDATE per name that deletes the A and AAAA RRsets
//! and adds the new ones, so the primary applies it atomically and never
//! serves an empty answer. Failures (primary down, REFUSED, TSIG errors) are
//! retried with capped exponential backoff and shown in status; every
//! `reconcile` interval (and at start) the primary's records are read back
//! and any drift is corrected.
//!
//! Messages are built and checked here with hickory-proto rather than through
//! hickory's client, because that client cannot report the rcode of an
//! unsigned error reply to a signed request (hickory-dns issue #1981): a wrong
//! key must reach the operator as "NOTAUTH (TSIG BADKEY)", not as a generic
//! protocol error. It must not choose targets or touch locally served zones.

use std::collections::BTreeMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use hickory_proto::op::{Message, MessageType, OpCode, Query};
use hickory_proto::rr::{DNSClass, Name, RData, Record, RecordType};
use hickory_proto::serialize::binary::BinDecodable;
use serde::Serialize;
use tokio::sync::watch;
use tracing::{info, warn};

use crate::proto::tsig::Key;
use crate::publish::{RemoteZone, ServiceRecords};
use crate::shutdown::Shutdown;

/// What `ggon-ctl status` shows for a remote zone.
#[derive(Debug, Clone, Serialize, serde::Deserialize)]
pub struct PublisherStatus {
    pub zone: String,
    pub mode: String,
    pub primary: SocketAddr,
    pub ok: bool,
    pub last_error: Option<String>,
    /// Changes not yet confirmed by the primary.
    pub pending: bool,
    /// Unix seconds of the last confirmed sync.
    pub last_success: Option<u64>,
}

pub type SharedStatus = Arc<Mutex<PublisherStatus>>;

pub struct Remote {
    desired: watch::Sender<BTreeMap<Name, ServiceRecords>>,
}

impl RemoteZone for Remote {
    fn set_desired(&mut self, desired: BTreeMap<Name, ServiceRecords>) {
        self.desired.send_replace(desired);
    }
}

/// Why the primary does not hold what it should (shown in status).
#[derive(Debug, thiserror::Error)]
pub enum RemoteError {
    #[error("cannot sign: {0}")]
    Sign(Box<hickory_proto::ProtoError>),
    #[error("{0}")]
    Encode(Box<hickory_proto::ProtoError>),
    #[error(transparent)]
    Exchange(#[from] crate::proto::client::ExchangeError),
    #[error("malformed or mismatched response")]
    Mismatched,
    /// The primary refused the UPDATE; `tsig`: the TSIG error it gave.
    #[error("primary answered {}{}", crate::proto::codes::rcode_label(*rcode), tsig_note(*rcode, tsig.as_deref()))]
    Refused { rcode: u16, tsig: Option<String> },
    #[error("response signature does not verify: {0}")]
    Unverified(Box<hickory_proto::ProtoError>),
    #[error("bad answer from primary: {0}")]
    BadAnswer(hickory_proto::serialize::binary::DecodeError),
    #[error(
        "primary answered {} to a query for {name}",
        crate::proto::codes::rcode_label(*rcode)
    )]
    QueryRefused { rcode: u16, name: Name },
}

fn tsig_note(rcode: u16, tsig: Option<&str>) -> String {
    match tsig {
        Some(t) => format!(" (TSIG {t})"),
        None if rcode == 9 => " (TSIG: key or signature not accepted)".into(),
        None => String::new(),
    }
}

/// Called with each new publisher error.
pub type ErrorHook = Arc<dyn Fn(&str) + Send + Sync>;

#[derive(Clone)]
pub struct RemoteConfig {
    pub origin: Name,
    pub primary: SocketAddr,
    pub key: Option<Key>,
    pub reconcile: Duration,
    /// First retry delay; doubles up to `max_backoff`.
    pub min_backoff: Duration,
    pub max_backoff: Duration,
    /// Told about each new publisher error (not about every retry).
    pub on_error: Option<ErrorHook>,
}

/// Start the sync task for one zone (it ends at `shutdown`).
pub fn spawn(
    cfg: RemoteConfig,
    mut shutdown: Shutdown,
) -> (Remote, SharedStatus, tokio::task::JoinHandle<()>) {
    let (tx, mut rx) = watch::channel(BTreeMap::new());
    let status = Arc::new(Mutex::new(PublisherStatus {
        zone: cfg.origin.to_string(),
        mode: "rfc2136".into(),
        primary: cfg.primary,
        ok: false,
        last_error: None,
        pending: true,
        last_success: None,
    }));
    let st = status.clone();
    let task = tokio::spawn(async move {
        // What the primary is known to hold, per name.
        let mut confirmed: BTreeMap<Name, ServiceRecords> = BTreeMap::new();
        let mut backoff = cfg.min_backoff;
        let mut next_reconcile = tokio::time::Instant::now();
        loop {
            // A round of reading back and sending; shutdown cancels it
            // mid-flight (the primary is reconciled again at the next start).
            let round = async {
                if tokio::time::Instant::now() >= next_reconcile {
                    let want = rx.borrow().clone();
                    match read_back(&cfg, &want).await {
                        Ok(actual) => {
                            for (name, recs) in actual {
                                if confirmed.get(&name) != Some(&recs) {
                                    confirmed.insert(name, recs);
                                }
                            }
                            next_reconcile = tokio::time::Instant::now() + cfg.reconcile;
                        }
                        Err(e) => {
                            // Cannot read: assume nothing, retry soon.
                            confirmed.clear();
                            report(&cfg, &st, &e.to_string());
                            next_reconcile = tokio::time::Instant::now() + backoff;
                        }
                    }
                }
                let desired = rx.borrow_and_update().clone();
                let mut failed = None;
                for (name, want) in &desired {
                    if confirmed.get(name) == Some(want) {
                        continue;
                    }
                    match send_update(&cfg, name, want).await {
                        Ok(()) => {
                            info!(zone = %cfg.origin, %name, primary = %cfg.primary,
                                addresses = ?want.addresses, "primary updated (RFC 2136)");
                            confirmed.insert(name.clone(), want.clone());
                        }
                        Err(e) => {
                            failed = Some(e);
                            break;
                        }
                    }
                }
                match failed {
                    Some(e) => {
                        warn!(zone = %cfg.origin, primary = %cfg.primary, error = %e,
                            retry_in = ?backoff, "RFC 2136 update failed");
                        report(&cfg, &st, &e.to_string());
                        let w = backoff;
                        backoff = (backoff * 2).min(cfg.max_backoff);
                        // Read back before retrying: the primary may have taken
                        // the update even though the answer was lost.
                        next_reconcile = tokio::time::Instant::now() + w;
                        w
                    }
                    None => {
                        backoff = cfg.min_backoff;
                        let mut s = st.lock().unwrap();
                        s.ok = true;
                        s.pending = false;
                        s.last_error = None;
                        s.last_success = Some(crate::proto::tsig::unix_time());
                        drop(s);
                        next_reconcile.saturating_duration_since(tokio::time::Instant::now())
                    }
                }
            };
            let wait = tokio::select! {
                wait = round => wait,
                _ = shutdown.requested() => break,
            };
            tokio::select! {
                r = rx.changed() => if r.is_err() { break },
                _ = tokio::time::sleep(wait) => {}
                _ = shutdown.requested() => break,
            }
            st.lock().unwrap().pending = true;
        }
    });
    (Remote { desired: tx }, status, task)
}

/// Record an error; tell `on_error` when it is new (was fine, or a different error).
fn report(cfg: &RemoteConfig, st: &SharedStatus, e: &str) {
    let new = {
        let s = st.lock().unwrap();
        s.ok || s.last_error.as_deref() != Some(e)
    };
    set_error(st, e);
    if new {
        if let Some(f) = &cfg.on_error {
            f(e);
        }
    }
}

fn set_error(st: &SharedStatus, e: &str) {
    let mut s = st.lock().unwrap();
    s.ok = false;
    s.pending = true;
    s.last_error = Some(e.to_string());
}

/// The UPDATE that makes `name` answer exactly `want`.
pub fn build_update(origin: &Name, name: &Name, want: &ServiceRecords) -> Message {
    let mut m = Message::new(rand::random(), MessageType::Query, OpCode::Update);
    m.add_query(Query::query(origin.clone(), RecordType::SOA));
    for t in [RecordType::A, RecordType::AAAA] {
        let mut del = Record::update0(name.clone(), 0, t);
        del.dns_class = DNSClass::ANY;
        m.add_authority(del);
    }
    for a in &want.addresses {
        let data = match a {
            IpAddr::V4(v4) => RData::A((*v4).into()),
            IpAddr::V6(v6) => RData::AAAA((*v6).into()),
        };
        m.add_authority(Record::from_rdata(name.clone(), want.ttl, data));
    }
    m
}

async fn send_update(
    cfg: &RemoteConfig,
    name: &Name,
    want: &ServiceRecords,
) -> Result<(), RemoteError> {
    let mut m = build_update(&cfg.origin, name, want);
    let mut verifier = None;
    if let Some(k) = &cfg.key {
        verifier = m
            .finalize(&k.signer, crate::proto::tsig::unix_time())
            .map_err(|e| RemoteError::Sign(Box::new(e)))?;
    }
    let bytes = m.to_vec().map_err(|e| RemoteError::Encode(Box::new(e)))?;
    let resp =
        crate::proto::client::tcp_exchange(cfg.primary, &bytes, Duration::from_secs(5)).await?;
    check_response(&resp, m.metadata.id, verifier)
}

/// Judge an UPDATE response from its raw bytes, so that an unsigned error
/// reply still yields its rcode and TSIG error.
pub fn check_response(
    resp: &[u8],
    id: u16,
    verifier: Option<hickory_proto::rr::TSigVerifier>,
) -> Result<(), RemoteError> {
    if resp.len() < 12 || u16::from_be_bytes([resp[0], resp[1]]) != id {
        return Err(RemoteError::Mismatched);
    }
    let rcode = u16::from(resp[3] & 0xF);
    let parsed = Message::from_bytes(resp).ok();
    let tsig_error = parsed
        .as_ref()
        .and_then(|m| m.signature())
        .and_then(|s| s.data.error)
        .map(|e| format!("{e:?}").to_uppercase());
    if rcode != 0 || tsig_error.is_some() {
        return Err(RemoteError::Refused {
            rcode,
            tsig: tsig_error,
        });
    }
    if let Some(mut v) = verifier {
        v.verify(resp)
            .map_err(|e| RemoteError::Unverified(Box::new(e)))?;
    }
    Ok(())
}

/// Read the A/AAAA records of every desired name from the primary.
async fn read_back(
    cfg: &RemoteConfig,
    desired: &BTreeMap<Name, ServiceRecords>,
) -> Result<BTreeMap<Name, ServiceRecords>, RemoteError> {
    let mut out = BTreeMap::new();
    for (name, want) in desired {
        let mut addresses = Vec::new();
        let mut ttl = want.ttl;
        for t in [RecordType::A, RecordType::AAAA] {
            let mut q = Message::new(rand::random(), MessageType::Query, OpCode::Query);
            q.add_query(Query::query(name.clone(), t));
            let resp = crate::proto::client::tcp_exchange(
                cfg.primary,
                &q.to_vec().map_err(|e| RemoteError::Encode(Box::new(e)))?,
                Duration::from_secs(5),
            )
            .await?;
            let m = Message::from_bytes(&resp).map_err(RemoteError::BadAnswer)?;
            let rc = u16::from(m.metadata.response_code);
            if rc != 0 && rc != 3 {
                return Err(RemoteError::QueryRefused {
                    rcode: rc,
                    name: name.clone(),
                });
            }
            for r in &m.answers {
                if crate::proto::zone::fqdn_lower(&r.name) != *name {
                    continue;
                }
                ttl = r.ttl;
                match &r.data {
                    RData::A(a) => addresses.push(IpAddr::V4(a.0)),
                    RData::AAAA(a) => addresses.push(IpAddr::V6(a.0)),
                    _ => {}
                }
            }
        }
        // Compare as sets: the primary may order records differently.
        let mut sorted_want = want.addresses.clone();
        sorted_want.sort();
        addresses.sort();
        let recs = if addresses == sorted_want && ttl == want.ttl {
            want.clone()
        } else {
            ServiceRecords { ttl, addresses }
        };
        out.insert(name.clone(), recs);
    }
    Ok(out)
}
