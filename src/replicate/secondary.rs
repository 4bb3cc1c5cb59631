//! Secondary zones: ggond serving a copy of a zone from another primary
//! (another ggond, BIND, ...), so several instances can answer one zone.
//!
//! Owns: one task per `mode = "secondary"` zone that asks the primary for its
//! SOA serial and, when it is newer than ours, transfers the zone over TCP
//! (AXFR for the first copy, then IXFR from our copy; TSIG-signed when a key
//! is configured). It refreshes when a NOTIFY
//! arrives from the primary's address and on the SOA refresh timer, retries
//! on the SOA retry timer, and stops serving the zone when the SOA expire
//! time passes without a successful check. The copy is handed to the
//! controller (the single writer) to publish, and saved ([`super::saved`]):
//! a restart serves the saved copy at once, and its refresh, retry and
//! expire timers go on counting from the last successful check.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use hickory_proto::op::{Message, MessageType, OpCode, Query};
use hickory_proto::rr::{Name, RData, Record, RecordType};
use hickory_proto::serialize::binary::BinDecodable;
use tokio::sync::Notify;
use tracing::{info, warn};

use crate::decide::{Command, ControllerHandle};
use crate::proto::client::{read_frame, write_frame};
use crate::proto::tsig::Key;
use crate::proto::zone::ZoneData;
use crate::publish::serial_gt;
use crate::shutdown::Shutdown;

#[derive(Clone)]
pub struct SecondaryConfig {
    pub origin: Name,
    pub primary: SocketAddr,
    pub key: Option<Key>,
    /// Where the last copy is kept (None: not kept).
    pub saved: Option<super::saved::Saved>,
}

/// Why a refresh did not bring a current copy (logged; retried).
#[derive(Debug, thiserror::Error)]
pub enum RefreshError {
    #[error("{0}")]
    Encode(Box<hickory_proto::ProtoError>),
    #[error(transparent)]
    Exchange(#[from] crate::proto::client::ExchangeError),
    #[error("bad answer: {0}")]
    BadAnswer(hickory_proto::serialize::binary::DecodeError),
    #[error("no SOA in the answer ({0})")]
    NoSoa(hickory_proto::op::ResponseCode),
    #[error("{0}")]
    Io(#[from] std::io::Error),
    #[error("bad transfer message: {0}")]
    BadMessage(hickory_proto::serialize::binary::DecodeError),
    #[error("transfer refused: {}", crate::proto::codes::rcode_label(*.0))]
    Refused(u16),
    #[error("transfer did not end")]
    Unended,
    #[error("transfer timed out")]
    TimedOut,
    #[error("transfer does not start with an SOA")]
    NoStartSoa,
    /// The transferred records do not make a zone ggond can serve.
    #[error("{0}")]
    Zone(#[from] crate::proto::zone::ZoneError),
}

fn unix_now() -> u64 {
    crate::decide::unix_now()
}

/// The SOA timers of a copy: (refresh, retry, expire).
fn timers(zone: &ZoneData) -> (Duration, Duration, Duration) {
    let soa = zone.soa();
    let secs = |v: i32| Duration::from_secs(v.max(1) as u64);
    (secs(soa.refresh), secs(soa.retry), secs(soa.expire))
}

/// Save the copy (or, when it is current, the time the primary said so).
fn save(cfg: &SecondaryConfig, zone: &ZoneData) {
    if let Some(saved) = &cfg.saved {
        if let Err(e) = saved.save(zone, unix_now()) {
            warn!(zone = %cfg.origin, path = %saved.path().display(), error = %e,
                "cannot save the secondary zone's copy; a restart will transfer it again");
        }
    }
}

/// The saved copy, if it is still within its SOA expire time, with how long
/// ago the primary was last reached.
fn load_saved(cfg: &SecondaryConfig) -> Option<(ZoneData, Duration)> {
    let saved = cfg.saved.as_ref()?;
    let copy = match saved.load(&cfg.origin) {
        Ok(c) => c?,
        Err(e) => {
            warn!(zone = %cfg.origin, error = %e, "saved secondary copy unusable; transferring afresh");
            return None;
        }
    };
    let age = Duration::from_secs(unix_now().saturating_sub(copy.last_ok));
    let (_, _, expire) = timers(&copy.zone);
    if age >= expire {
        warn!(zone = %cfg.origin, serial = copy.zone.serial(), age = %humantime::format_duration(age),
            expire = %humantime::format_duration(expire),
            "saved secondary copy expired while ggond was down (primary last reached longer ago than the SOA expire); not served until a transfer");
        return None;
    }
    Some((copy.zone, age))
}

/// Start the refresh task; `notify` is poked when a NOTIFY for the zone
/// arrives from the primary.
pub fn spawn(
    cfg: SecondaryConfig,
    controller: ControllerHandle,
    notify: Arc<Notify>,
    mut shutdown: Shutdown,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let mut ours: Option<ZoneData> = None;
        let mut last_ok = tokio::time::Instant::now();
        // Until the first SOA is seen: retry every 5 s, never expire.
        let (mut refresh, mut retry, mut expire) = (
            Duration::from_secs(5),
            Duration::from_secs(5),
            None::<Duration>,
        );
        // The first check: now, or when the saved copy's refresh is due.
        let mut wait = Duration::ZERO;
        if let Some((copy, age)) = serve_saved(&cfg, &controller).await {
            let (r, t, e) = timers(&copy);
            (refresh, retry, expire) = (r, t, Some(e));
            last_ok = tokio::time::Instant::now()
                .checked_sub(age)
                .unwrap_or_else(tokio::time::Instant::now);
            wait = refresh.saturating_sub(age);
            ours = Some(copy);
        }
        loop {
            // Wake by the expire time at the latest, to stop serving on time.
            if let (Some(exp), true) = (expire, ours.is_some()) {
                wait = wait.min(exp.saturating_sub(last_ok.elapsed()));
            }
            if !wait.is_zero() {
                tokio::select! {
                    _ = notify.notified() => info!(zone = %cfg.origin, "NOTIFY from the primary: refreshing"),
                    _ = tokio::time::sleep(wait) => {}
                    _ = shutdown.requested() => break,
                }
            }
            wait = match check(&cfg, ours.as_ref()).await {
                Ok(Some((zone, how))) => {
                    let (r, t, e) = timers(&zone);
                    (refresh, retry, expire) = (r, t, Some(e));
                    if let Some(copy) = hand_over(&cfg, &controller, zone, how).await {
                        ours = Some(copy);
                        last_ok = tokio::time::Instant::now();
                    }
                    refresh
                }
                Ok(None) => {
                    last_ok = tokio::time::Instant::now();
                    if let Some(z) = &ours {
                        save(&cfg, z);
                    }
                    refresh
                }
                Err(e) => {
                    warn!(zone = %cfg.origin, primary = %cfg.primary, error = %e, retry_in = ?retry,
                        "secondary refresh failed");
                    if let (Some(exp), true) = (expire, ours.is_some()) {
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
        }
    })
}

/// Hand the saved copy, if it is still good, to the controller to serve;
/// the copy and how long ago the primary was last reached.
async fn serve_saved(
    cfg: &SecondaryConfig,
    controller: &ControllerHandle,
) -> Option<(ZoneData, Duration)> {
    let (zone, age) = load_saved(cfg)?;
    let (serial, records) = (zone.serial(), zone.record_count());
    let copy = zone.clone();
    controller
        .call(|reply| Command::SecondaryLoaded {
            zone: Box::new(zone),
            reply,
        })
        .await
        .and_then(|r| r)
        .ok()?;
    info!(zone = %cfg.origin, serial, records, primary_last_reached = %humantime::format_duration(age),
        "secondary zone served from its saved copy");
    Some((copy, age))
}

/// Hand a transferred copy to the controller to serve, and save it; the
/// copy if the controller took it.
async fn hand_over(
    cfg: &SecondaryConfig,
    controller: &ControllerHandle,
    zone: ZoneData,
    how: &str,
) -> Option<ZoneData> {
    let (serial, records) = (zone.serial(), zone.record_count());
    let copy = zone.clone();
    let taken = controller
        .call(|reply| Command::SecondaryLoaded {
            zone: Box::new(zone),
            reply,
        })
        .await
        .and_then(|r| r);
    match taken {
        Ok(()) => {
            info!(zone = %cfg.origin, serial, records, primary = %cfg.primary,
                transfer = how, "secondary zone transferred");
            save(cfg, &copy);
            Some(copy)
        }
        Err(e) => {
            warn!(zone = %cfg.origin, error = %e, "transferred zone not taken");
            None
        }
    }
}

/// Ask the primary's serial; when it is newer than ours, transfer: IXFR
/// from our copy when we have one (the primary may still answer with the
/// whole zone), AXFR otherwise. Returns the new copy and how it came.
async fn check(
    cfg: &SecondaryConfig,
    ours: Option<&ZoneData>,
) -> Result<Option<(ZoneData, &'static str)>, RefreshError> {
    let serial = primary_serial(cfg).await?;
    if ours.is_some_and(|o| !serial_gt(serial, o.serial())) {
        return Ok(None);
    }
    transfer(cfg, ours).await
}

/// Sign `m` when the zone has a key, and encode it.
fn finish(cfg: &SecondaryConfig, m: &mut Message) -> Result<Vec<u8>, RefreshError> {
    if let Some(k) = &cfg.key {
        m.finalize(&k.signer, crate::proto::tsig::unix_time())
            .map_err(|e| RefreshError::Encode(Box::new(e)))?;
    }
    m.to_vec().map_err(|e| RefreshError::Encode(Box::new(e)))
}

async fn primary_serial(cfg: &SecondaryConfig) -> Result<u32, RefreshError> {
    let mut m = Message::new(rand::random(), MessageType::Query, OpCode::Query);
    m.add_query(Query::query(cfg.origin.clone(), RecordType::SOA));
    let bytes = finish(cfg, &mut m)?;
    let resp =
        crate::proto::client::tcp_exchange(cfg.primary, &bytes, Duration::from_secs(5)).await?;
    soa_serial_of_answer(&resp)
}

/// The serial in the primary's answer to our SOA query (the bytes as they
/// came over the network). Public (hidden) for the `transfer` fuzz target.
#[doc(hidden)]
pub fn soa_serial_of_answer(resp: &[u8]) -> Result<u32, RefreshError> {
    let r = Message::from_bytes(resp).map_err(RefreshError::BadAnswer)?;
    r.answers
        .iter()
        .find_map(|rr| match &rr.data {
            RData::SOA(s) => Some(s.serial),
            _ => None,
        })
        .ok_or(RefreshError::NoSoa(r.metadata.response_code))
}

fn soa_serial(r: &Record) -> Option<u32> {
    match &r.data {
        RData::SOA(s) => Some(s.serial),
        _ => None,
    }
}

/// Has the transfer in `recs` ended? An AXFR-style answer ends with the
/// second copy of the first SOA; an incremental one has that SOA three times
/// (start, the last change's new version, end); "up to date" is one SOA equal
/// to ours.
fn complete(recs: &[Record], ours: Option<u32>) -> bool {
    let Some(first) = recs.first().and_then(soa_serial) else {
        return false;
    };
    if recs.len() == 1 {
        return ours == Some(first);
    }
    let copies = recs.iter().filter(|r| soa_serial(r) == Some(first)).count();
    let incremental =
        ours.is_some() && recs.get(1).and_then(soa_serial).is_some_and(|s| s != first);
    copies == if incremental { 3 } else { 2 }
}

/// Build the new copy from a finished transfer.
fn apply_transfer(
    origin: &Name,
    recs: &[Record],
    ours: Option<&ZoneData>,
) -> Result<Option<(ZoneData, &'static str)>, RefreshError> {
    let first = soa_serial(&recs[0]).ok_or(RefreshError::NoStartSoa)?;
    if recs.len() == 1 {
        return Ok(None);
    }
    let incremental = ours.is_some() && soa_serial(&recs[1]).is_some_and(|s| s != first);
    let (mut zone, how) = if incremental {
        let mut z = ours.expect("checked").clone();
        let mut i = 1;
        while i < recs.len() - 1 {
            // One change: the old SOA, deletions, the new SOA, additions.
            i += 1;
            while i < recs.len() && soa_serial(&recs[i]).is_none() {
                let r = &recs[i];
                let name = crate::proto::zone::fqdn_lower(&r.name);
                if let Some(set) = z
                    .rrsets
                    .get_mut(&name)
                    .and_then(|t| t.get_mut(&r.record_type()))
                {
                    set.rdatas.retain(|d| d != &r.data);
                    if set.rdatas.is_empty() {
                        z.replace_rrset(&name, r.record_type(), None);
                    }
                }
                i += 1;
            }
            i += 1;
            while i < recs.len() - 1 && soa_serial(&recs[i]).is_none() {
                z.add_record(&recs[i])?;
                i += 1;
            }
        }
        (z, "incremental (IXFR)")
    } else {
        let mut z = ZoneData {
            origin: origin.clone(),
            rrsets: Default::default(),
        };
        for r in &recs[1..recs.len() - 1] {
            z.add_record(r)?;
        }
        (z, "full")
    };
    // The primary's SOA as it is now.
    zone.replace_rrset(
        origin,
        RecordType::SOA,
        Some(crate::proto::zone::RRset {
            ttl: recs[0].ttl,
            rdatas: vec![recs[0].data.clone()].into(),
            ttls: Vec::new(),
        }),
    );
    zone.check()?;
    Ok(Some((zone, how)))
}

/// The primary's answer to a transfer request, read one message at a time
/// (each as it came over TCP, without its length) until the transfer has
/// ended. Separate from the socket so that what the network hands in can be
/// fuzzed (the `transfer` fuzz target) and tested without one.
#[doc(hidden)]
pub struct Incoming<'a> {
    origin: &'a Name,
    ours: Option<&'a ZoneData>,
    recs: Vec<Record>,
}

/// Where a transfer is after one more message.
#[doc(hidden)]
pub enum Step {
    /// Not ended yet: read the next message.
    More,
    /// Ended: the new copy and how it came, or None when ours is current.
    Done(Option<(ZoneData, &'static str)>),
}

impl<'a> Incoming<'a> {
    /// A transfer into `origin`, incremental from `ours` when we have a copy.
    pub fn new(origin: &'a Name, ours: Option<&'a ZoneData>) -> Incoming<'a> {
        Incoming {
            origin,
            ours,
            recs: Vec::new(),
        }
    }

    /// Take one message of the answer.
    pub fn message(&mut self, buf: &[u8]) -> Result<Step, RefreshError> {
        let r = Message::from_bytes(buf).map_err(RefreshError::BadMessage)?;
        let rc = u16::from(r.metadata.response_code);
        if rc != 0 {
            return Err(RefreshError::Refused(rc));
        }
        self.recs.extend(r.answers);
        let ours_serial = self.ours.map(ZoneData::serial);
        if complete(&self.recs, ours_serial) {
            return apply_transfer(self.origin, &self.recs, self.ours).map(Step::Done);
        }
        Ok(Step::More)
    }
}

/// Transfer the zone: IXFR from `ours` if we have a copy, else AXFR.
async fn transfer(
    cfg: &SecondaryConfig,
    ours: Option<&ZoneData>,
) -> Result<Option<(ZoneData, &'static str)>, RefreshError> {
    let mut m = Message::new(rand::random(), MessageType::Query, OpCode::Query);
    match ours {
        Some(z) => {
            m.add_query(Query::query(cfg.origin.clone(), RecordType::IXFR));
            m.add_authority(Record::from_rdata(
                cfg.origin.clone(),
                0,
                RData::SOA(z.soa().clone()),
            ));
        }
        None => {
            m.add_query(Query::query(cfg.origin.clone(), RecordType::AXFR));
        }
    }
    let bytes = finish(cfg, &mut m)?;
    let io = async {
        let mut s = tokio::net::TcpStream::connect(cfg.primary).await?;
        write_frame(&mut s, &bytes).await?;
        let mut incoming = Incoming::new(&cfg.origin, ours);
        for _ in 0..100_000 {
            let buf = read_frame(&mut s).await?;
            if let Step::Done(copy) = incoming.message(&buf)? {
                return Ok(copy);
            }
        }
        Err(RefreshError::Unended)
    };
    tokio::time::timeout(Duration::from_secs(60), io)
        .await
        .map_err(|_| RefreshError::TimedOut)?
}

#[cfg(test)]
mod tests {
    use super::*;

    fn soa(serial: u32) -> Record {
        let z = ZoneData::parse(
            &format!("@ 60 IN SOA ns1 h {serial} 1 1 1 1\n@ 60 IN NS ns1\n"),
            None,
            &Name::from_ascii("ggon.org.").unwrap(),
        )
        .unwrap();
        Record::from_rdata(z.origin.clone(), 60, RData::SOA(z.soa().clone()))
    }

    fn a(name: &str, ip: &str) -> Record {
        Record::from_rdata(
            Name::from_ascii(name).unwrap(),
            30,
            RData::A(ip.parse::<std::net::Ipv4Addr>().unwrap().into()),
        )
    }

    #[test]
    fn an_incremental_transfer_applies_each_change_in_order() {
        let origin = Name::from_ascii("ggon.org.").unwrap();
        let mut base = ZoneData::parse(
            "@ 60 IN SOA ns1 h 1 1 1 1 1\n@ 60 IN NS ns1\n",
            None,
            &origin,
        )
        .unwrap();
        base.add_record(&a("cic.ggon.org.", "127.0.0.11")).unwrap();
        let recs = vec![
            soa(3),
            soa(1),
            a("cic.ggon.org.", "127.0.0.11"),
            soa(2),
            a("cic.ggon.org.", "127.0.0.12"),
            soa(2),
            a("cic.ggon.org.", "127.0.0.12"),
            soa(3),
            a("cic.ggon.org.", "127.0.0.13"),
            soa(3),
        ];
        assert!(!complete(&recs[..9], Some(1)));
        assert!(complete(&recs, Some(1)));
        let (z, how) = apply_transfer(&origin, &recs, Some(&base))
            .unwrap()
            .unwrap();
        assert_eq!(how, "incremental (IXFR)");
        assert_eq!(z.serial(), 3);
        let cic = Name::from_ascii("cic.ggon.org.").unwrap();
        assert_eq!(
            z.rrsets[&cic][&RecordType::A].rdatas,
            vec![a("cic.ggon.org.", "127.0.0.13").data]
        );
        // Up to date: one SOA equal to ours.
        assert!(complete(&[soa(1)], Some(1)));
        assert!(apply_transfer(&origin, &[soa(1)], Some(&base))
            .unwrap()
            .is_none());
        // A full answer to an IXFR (the journal did not reach back): AXFR style.
        let full = vec![soa(3), a("cic.ggon.org.", "127.0.0.13"), soa(3)];
        assert!(complete(&full, Some(1)));
        let (z, how) = apply_transfer(&origin, &full, Some(&base))
            .unwrap()
            .unwrap();
        assert_eq!(how, "full");
        assert_eq!(z.record_count(), 2);
    }
}
