//! Secondary zones: ggond serving a copy of a zone from another primary
//! (another ggond, BIND, ...), so several instances can answer one zone.
//!
//! Owns: one task per `mode = "secondary"` zone that asks the primary for its
//! SOA serial and, when it is newer than ours, transfers the zone (AXFR over
//! TCP, TSIG-signed when a key is configured). It refreshes when a NOTIFY
//! arrives from the primary's address and on the SOA refresh timer, retries
//! on the SOA retry timer, and stops serving the zone when the SOA expire
//! time passes without a successful check. The copy is handed to the
//! controller (the single writer) to publish; it is not written to disk, so
//! a restart transfers it again.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use hickory_proto::op::{Message, MessageType, OpCode, Query};
use hickory_proto::rr::{Name, RData, RecordType};
use hickory_proto::serialize::binary::BinDecodable;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::sync::{watch, Notify};
use tracing::{info, warn};

use crate::controller::{Command, ControllerHandle};
use crate::publisher::serial_gt;
use crate::tsig::Key;
use crate::zone::ZoneData;

#[derive(Clone)]
pub struct SecondaryConfig {
    pub origin: Name,
    pub primary: SocketAddr,
    pub key: Option<Key>,
}

/// Start the refresh task; `notify` is poked when a NOTIFY for the zone
/// arrives from the primary.
pub fn spawn(
    cfg: SecondaryConfig,
    controller: ControllerHandle,
    notify: Arc<Notify>,
    mut shutdown: watch::Receiver<bool>,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let mut ours: Option<u32> = None;
        let mut last_ok = tokio::time::Instant::now();
        // Until the first SOA is seen: retry every 5 s, never expire.
        let (mut refresh, mut retry, mut expire) = (
            Duration::from_secs(5),
            Duration::from_secs(5),
            None::<Duration>,
        );
        loop {
            let wait = match check(&cfg, ours).await {
                Ok(Some(zone)) => {
                    let soa = zone.soa().clone();
                    let serial = soa.serial;
                    refresh = Duration::from_secs(soa.refresh.max(1) as u64);
                    retry = Duration::from_secs(soa.retry.max(1) as u64);
                    expire = Some(Duration::from_secs(soa.expire.max(1) as u64));
                    let records = zone.record_count();
                    let origin = cfg.origin.clone();
                    match controller
                        .call(|reply| Command::SecondaryLoaded {
                            zone: Box::new(zone),
                            reply,
                        })
                        .await
                        .and_then(|r| r)
                    {
                        Ok(()) => {
                            info!(zone = %origin, serial, records, primary = %cfg.primary,
                                "secondary zone transferred");
                            ours = Some(serial);
                            last_ok = tokio::time::Instant::now();
                        }
                        Err(e) => warn!(zone = %origin, error = %e, "transferred zone not taken"),
                    }
                    refresh
                }
                Ok(None) => {
                    last_ok = tokio::time::Instant::now();
                    refresh
                }
                Err(e) => {
                    warn!(zone = %cfg.origin, primary = %cfg.primary, error = %e, retry_in = ?retry,
                        "secondary refresh failed");
                    if let (Some(exp), Some(_)) = (expire, ours) {
                        if last_ok.elapsed() >= exp {
                            warn!(zone = %cfg.origin, "SOA expire passed without reaching the primary: no longer serving the zone");
                            let origin = cfg.origin.clone();
                            let _ = controller
                                .call(|reply| Command::SecondaryExpired { origin, reply })
                                .await;
                            ours = None;
                        }
                    }
                    retry
                }
            };
            tokio::select! {
                _ = notify.notified() => info!(zone = %cfg.origin, "NOTIFY from the primary: refreshing"),
                _ = tokio::time::sleep(wait) => {}
                _ = shutdown.changed() => break,
            }
        }
    })
}

/// Ask the primary's serial; transfer the zone if it is newer than `ours`.
async fn check(cfg: &SecondaryConfig, ours: Option<u32>) -> Result<Option<ZoneData>, String> {
    let serial = primary_serial(cfg).await?;
    if ours.is_some_and(|o| !serial_gt(serial, o)) {
        return Ok(None);
    }
    axfr(cfg).await.map(Some)
}

async fn exchange_first(cfg: &SecondaryConfig, m: &mut Message) -> Result<Message, String> {
    if let Some(k) = &cfg.key {
        m.finalize(&k.signer, crate::tsig::unix_time())
            .map_err(|e| e.to_string())?;
    }
    let bytes = m.to_vec().map_err(|e| e.to_string())?;
    let resp = crate::rfc2136::tcp_exchange(cfg.primary, &bytes, Duration::from_secs(5)).await?;
    Message::from_bytes(&resp).map_err(|e| format!("bad answer: {e}"))
}

async fn primary_serial(cfg: &SecondaryConfig) -> Result<u32, String> {
    let mut m = Message::new(rand::random(), MessageType::Query, OpCode::Query);
    m.add_query(Query::query(cfg.origin.clone(), RecordType::SOA));
    let r = exchange_first(cfg, &mut m).await?;
    r.answers
        .iter()
        .find_map(|rr| match &rr.data {
            RData::SOA(s) => Some(s.serial),
            _ => None,
        })
        .ok_or_else(|| format!("no SOA in the answer ({})", r.metadata.response_code))
}

/// Transfer the whole zone: messages until the closing SOA.
async fn axfr(cfg: &SecondaryConfig) -> Result<ZoneData, String> {
    let mut m = Message::new(rand::random(), MessageType::Query, OpCode::Query);
    m.add_query(Query::query(cfg.origin.clone(), RecordType::AXFR));
    if let Some(k) = &cfg.key {
        m.finalize(&k.signer, crate::tsig::unix_time())
            .map_err(|e| e.to_string())?;
    }
    let bytes = m.to_vec().map_err(|e| e.to_string())?;
    let io = async {
        let mut s = tokio::net::TcpStream::connect(cfg.primary)
            .await
            .map_err(|e| e.to_string())?;
        let mut out = (bytes.len() as u16).to_be_bytes().to_vec();
        out.extend_from_slice(&bytes);
        s.write_all(&out).await.map_err(|e| e.to_string())?;
        let mut zone: Option<ZoneData> = None;
        let mut soas = 0;
        for _ in 0..100_000 {
            let mut len = [0u8; 2];
            s.read_exact(&mut len).await.map_err(|e| e.to_string())?;
            let mut buf = vec![0u8; u16::from_be_bytes(len) as usize];
            s.read_exact(&mut buf).await.map_err(|e| e.to_string())?;
            let r = Message::from_bytes(&buf).map_err(|e| format!("bad transfer message: {e}"))?;
            let rc = u16::from(r.metadata.response_code);
            if rc != 0 {
                return Err(format!(
                    "transfer refused: {}",
                    crate::config::parse_rcode_name(rc).unwrap_or("error")
                ));
            }
            for rr in &r.answers {
                if rr.record_type() == RecordType::SOA {
                    soas += 1;
                    if soas == 2 {
                        let z = zone.ok_or("empty transfer")?;
                        z.check().map_err(|e| e.to_string())?;
                        return Ok(z);
                    }
                }
                let z = zone.get_or_insert_with(|| ZoneData {
                    origin: cfg.origin.clone(),
                    rrsets: Default::default(),
                });
                z.add_record(rr).map_err(|e| e.to_string())?;
            }
        }
        Err("transfer did not end".to_string())
    };
    tokio::time::timeout(Duration::from_secs(60), io)
        .await
        .map_err(|_| "transfer timed out".to_string())?
}
