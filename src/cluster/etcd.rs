//! ggon's etcd calls, through the `etcd-client` crate (etcd's v3 gRPC API).
//!
//! Why that crate: ggon needs watches that resume from a revision, lease
//! keep-alive streams, transactions and TLS with client certificates, and
//! its requests spread over the members (one balanced channel to every
//! endpoint). This module only adapts it to ggon: string keys and values,
//! a deadline on every unary call (a member that does not answer must not
//! hold a step up), one error type that says whether etcd was reached, and
//! the request latencies and bytes written that `/metrics` shows.

use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use etcd_client::{
    Client, Compare as EtcdCompare, CompareOp, ConnectOptions, GetOptions, KeyValue, TxnOp,
    WatchOptions,
};
use tokio::sync::OnceCell;

pub use etcd_client::{EventType, WatchResponse, WatchStream};

/// Why an etcd call failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EtcdError {
    /// No endpoint answered (down, cut off, or timing out).
    #[error("etcd unreachable: {0}")]
    Unreachable(String),
    /// An endpoint answered with an error.
    #[error("etcd refused the request: {0}")]
    Refused(String),
    /// A certificate or key file of `[cluster]` cannot be used.
    #[error("{0}")]
    Setup(String),
}

/// How etcd words a write refused under its NOSPACE alarm (`ErrNoSpace`).
const NOSPACE_MESSAGE: &str = "database space exceeded";

impl EtcdError {
    /// etcd refused a write because it is at its space quota (NOSPACE).
    pub fn is_nospace(&self) -> bool {
        matches!(self, EtcdError::Refused(m) if m.contains(NOSPACE_MESSAGE))
    }

    /// A write that failed so may still be applied: no answer (the request
    /// may have been delivered), or etcd's own "request timed out" or
    /// "leader changed" (the proposal may still commit). A refusal for a
    /// reason (NOSPACE, a bad request) is not.
    pub fn outcome_unknown(&self) -> bool {
        match self {
            EtcdError::Unreachable(_) => true,
            EtcdError::Refused(m) => m.contains("timed out") || m.contains("leader changed"),
            EtcdError::Setup(_) => false,
        }
    }
}

impl From<etcd_client::Error> for EtcdError {
    fn from(e: etcd_client::Error) -> EtcdError {
        use etcd_client::Error as E;
        match e {
            E::GRpcStatus(s) => match s.code() {
                tonic::Code::Unavailable
                | tonic::Code::DeadlineExceeded
                | tonic::Code::Cancelled => EtcdError::Unreachable(s.message().to_string()),
                _ => EtcdError::Refused(format!("{}: {}", code_name(s.code()), s.message())),
            },
            E::TransportError(t) => EtcdError::Unreachable(t.to_string()),
            E::IoError(io) => EtcdError::Unreachable(io.to_string()),
            other => EtcdError::Refused(other.to_string()),
        }
    }
}

fn code_name(c: tonic::Code) -> &'static str {
    match c {
        tonic::Code::ResourceExhausted => "resource exhausted",
        tonic::Code::PermissionDenied => "permission denied",
        tonic::Code::Unauthenticated => "unauthenticated",
        tonic::Code::InvalidArgument => "invalid argument",
        tonic::Code::FailedPrecondition => "failed precondition",
        tonic::Code::NotFound => "not found",
        _ => "error",
    }
}

/// The rustls error a cause is, or carries inside an `io::Error` (how
/// hyper passes TLS failures on). Shared with the control API's forwarder.
pub fn rustls_error<'a>(c: &'a (dyn std::error::Error + 'static)) -> Option<&'a rustls::Error> {
    c.downcast_ref::<rustls::Error>().or_else(|| {
        c.downcast_ref::<std::io::Error>()
            .and_then(|io| io.get_ref())
            .and_then(|i| i.downcast_ref::<rustls::Error>())
    })
}

/// Why TLS failed, if that is what `e` is: a rustls error somewhere in
/// its causes (the peer's alert, or its certificate not verified), in the
/// words of the innermost cause that says so (the outer ones repeat it
/// inside debug dumps).
fn tls_problem(e: &etcd_client::Error) -> Option<String> {
    let mut found = None;
    let mut cause: Option<&(dyn std::error::Error + 'static)> = Some(e);
    while let Some(c) = cause {
        match rustls_error(c) {
            Some(t @ rustls::Error::InvalidCertificate(_)) => {
                return Some(format!("etcd's certificate is not trusted: {t}"))
            }
            Some(t @ rustls::Error::AlertReceived(_)) => {
                return Some(format!("etcd refused this node's client certificate: {t}"))
            }
            Some(t) => return Some(t.to_string()),
            None => {}
        }
        let text = c.to_string();
        if let Some(at) = text.find("received fatal alert: ") {
            // etcd-client flattens its causes into one debug text.
            let alert: String = text[at..]
                .chars()
                .take_while(|ch| !matches!(ch, '"' | ')' | ','))
                .collect();
            found = Some(
                if alert.contains("Certificate") || alert.contains("UnknownCA") {
                    format!("etcd refused this node's client certificate: {alert}")
                } else {
                    alert
                },
            );
        } else if text.contains("invalid peer certificate") {
            found = Some(format!("etcd's certificate is not trusted: {text}"));
        }
        cause = c.source();
    }
    found
}

/// Keys per answer of a range read.
const PAGE: i64 = 2_000;

/// The request never reached a member (so trying another is safe).
fn not_delivered(message: &str) -> bool {
    let m = message.to_ascii_lowercase();
    m.contains("connect") || m.contains("connection refused") || m.contains("transport error")
}

/// One key-value pair as etcd stores it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Kv {
    pub key: String,
    pub value: String,
    pub create_revision: i64,
    pub mod_revision: i64,
    pub lease: i64,
}

impl Kv {
    /// A key-value pair from etcd's bytes (not UTF-8: replaced, never
    /// refused; no key of ggon's is anything but UTF-8). Separate from the
    /// etcd client's type so that the cluster model can be fed any bytes
    /// (the `etcd` fuzz target).
    pub fn from_bytes(
        key: &[u8],
        value: &[u8],
        create_revision: i64,
        mod_revision: i64,
        lease: i64,
    ) -> Kv {
        Kv {
            key: String::from_utf8_lossy(key).into_owned(),
            value: String::from_utf8_lossy(value).into_owned(),
            create_revision,
            mod_revision,
            lease,
        }
    }
}

impl From<&KeyValue> for Kv {
    fn from(kv: &KeyValue) -> Kv {
        Kv::from_bytes(
            kv.key(),
            kv.value(),
            kv.create_revision(),
            kv.mod_revision(),
            kv.lease(),
        )
    }
}

/// A condition of a transaction.
#[derive(Debug, Clone)]
pub enum Compare {
    /// The key was created at this revision (0: it does not exist).
    CreateRevision(String, i64),
    /// The key was last changed at this revision (0: it does not exist).
    ModRevision(String, i64),
    Value(String, String),
}

/// An operation of a transaction.
#[derive(Debug, Clone)]
pub enum Op {
    /// Put, bound to a lease unless 0.
    Put {
        key: String,
        value: String,
        lease: i64,
    },
    Delete(String),
    /// Delete every key in `[from, to)`.
    DeleteRange(String, Vec<u8>),
}

impl Compare {
    fn size(&self) -> u64 {
        match self {
            Compare::CreateRevision(k, _) | Compare::ModRevision(k, _) => k.len() as u64,
            Compare::Value(k, v) => (k.len() + v.len()) as u64,
        }
    }
}

impl Op {
    fn size(&self) -> u64 {
        match self {
            Op::Put { key, value, .. } => (key.len() + value.len()) as u64,
            Op::Delete(k) => k.len() as u64,
            Op::DeleteRange(k, e) => (k.len() + e.len()) as u64,
        }
    }
}

/// The end of the key range that holds every key starting with `prefix`.
pub fn prefix_end(prefix: &str) -> Vec<u8> {
    let mut end = prefix.as_bytes().to_vec();
    while let Some(last) = end.pop() {
        if last < 0xff {
            end.push(last + 1);
            return end;
        }
    }
    vec![0]
}

/// What the cluster's calls to etcd cost, for `/metrics`.
#[derive(Debug, Default)]
pub struct EtcdStats {
    pub requests: AtomicU64,
    pub failures: AtomicU64,
    /// Total latency of the requests, microseconds.
    pub latency_us: AtomicU64,
    /// Requests slower than 100 ms.
    pub slow: AtomicU64,
    /// Bytes of keys and values written (puts and deletes).
    pub bytes_written: AtomicU64,
    pub txns: AtomicU64,
    /// The largest transaction sent, in bytes: its keys and values plus
    /// [`OP_OVERHEAD`] per compare and operation (etcd refuses a request
    /// over `--max-request-bytes`, 1.5 MiB by default).
    pub largest_request: AtomicU64,
}

/// What a compare or an operation adds to a request besides its keys and
/// values (field tags, lengths, the lease and revision numbers): a bound.
pub const OP_OVERHEAD: u64 = 32;

/// How to reach etcd.
pub struct EtcdSettings<'a> {
    pub endpoints: Vec<String>,
    pub credentials: Option<(String, String)>,
    pub ca_file: Option<&'a Path>,
    /// Client certificate and key (PEM), for an etcd with --client-cert-auth.
    pub identity: Option<(&'a Path, &'a Path)>,
    /// A unary call that has not answered by then counts as unreachable.
    pub timeout: Duration,
}

/// The client, connected on first use (ggond starts while etcd is away).
pub struct Etcd {
    endpoints: Vec<String>,
    /// The files this node's TLS with etcd uses, said with a TLS failure.
    tls_files: String,
    /// The last TLS failure, until a call succeeds.
    tls_failure: std::sync::Mutex<Option<String>>,
    options: ConnectOptions,
    client: OnceCell<Client>,
    timeout: Duration,
    pub stats: Arc<EtcdStats>,
}

fn read(path: &Path, what: &str) -> Result<Vec<u8>, EtcdError> {
    std::fs::read(path).map_err(|e| {
        EtcdError::Setup(format!(
            "cluster: cannot read the {what} {}: {e}",
            path.display()
        ))
    })
}

impl Etcd {
    pub fn new(s: EtcdSettings<'_>) -> Result<Etcd, EtcdError> {
        let mut options = ConnectOptions::new()
            .with_connect_timeout(s.timeout)
            // A member that died is noticed by its silent connection, so a
            // watch moves to another member within a few seconds.
            .with_keep_alive(
                Duration::from_secs(1),
                s.timeout.max(Duration::from_secs(1)),
            )
            .with_keep_alive_while_idle(true);
        if let Some((user, password)) = s.credentials {
            options = options.with_user(user, password);
        }
        let tls = s.endpoints.iter().any(|e| e.starts_with("https://"));
        if tls || s.ca_file.is_some() || s.identity.is_some() {
            let mut t = etcd_client::TlsOptions::new();
            if let Some(ca) = s.ca_file {
                let pem = read(ca, "CA file")?;
                t = t.ca_certificate(etcd_client::Certificate::from_pem(pem));
            } else {
                t = t.with_webpki_roots();
            }
            if let Some((cert, key)) = s.identity {
                let (c, k) = (read(cert, "certificate")?, read(key, "key")?);
                t = t.identity(etcd_client::Identity::from_pem(c, k));
            }
            options = options.with_tls(t);
        }
        let mut files = Vec::new();
        if let Some((cert, key)) = s.identity {
            files.push(format!(
                "this node presents cert_file {} (key_file {})",
                cert.display(),
                key.display()
            ));
        }
        files.push(match s.ca_file {
            Some(ca) => format!("it trusts ca_file {}", ca.display()),
            None => "it trusts the public roots (no ca_file)".into(),
        });
        Ok(Etcd {
            tls_files: files.join("; "),
            tls_failure: Default::default(),
            endpoints: s.endpoints,
            options,
            client: OnceCell::new(),
            timeout: s.timeout,
            stats: Arc::default(),
        })
    }

    async fn client(&self) -> Result<Client, EtcdError> {
        let connect = || async {
            let c = Client::connect(&self.endpoints, Some(self.options.clone()));
            match tokio::time::timeout(self.timeout, c).await {
                Ok(r) => r.map_err(|e| self.explain(e)),
                Err(_) => Err(EtcdError::Unreachable("connect timed out".into())),
            }
        };
        self.client.get_or_try_init(connect).await.cloned()
    }

    /// An etcd error in words; a TLS failure (a certificate refused by
    /// either side) names the files this node uses, since that is what the
    /// operator has to check.
    ///
    /// etcd refusing a client certificate shows as an alert on one call
    /// and as "connection closed" on the calls after it; until a call
    /// succeeds, those are reported as the TLS failure too.
    fn explain(&self, e: etcd_client::Error) -> EtcdError {
        let mut seen = self.tls_failure.lock().unwrap();
        if let Some(why) = tls_problem(&e) {
            let msg = format!("TLS with etcd failed: {why}; {}", self.tls_files);
            *seen = Some(msg.clone());
            return EtcdError::Setup(msg);
        }
        match (EtcdError::from(e), seen.as_ref()) {
            (EtcdError::Unreachable(m) | EtcdError::Refused(m), Some(tls)) => {
                EtcdError::Setup(format!("{tls} (then: {m})"))
            }
            (other, _) => other,
        }
    }

    /// Run one unary call with the deadline, counted in the stats. A call
    /// the channel could not deliver (the member it picked is down) is tried
    /// again on another, within the same deadline: losing one member of
    /// three is invisible to callers.
    async fn call<T, F, Fut>(&self, f: F) -> Result<T, EtcdError>
    where
        F: Fn(Client) -> Fut,
        Fut: std::future::Future<Output = Result<T, etcd_client::Error>>,
    {
        let started = Instant::now();
        let deadline = tokio::time::Instant::now() + self.timeout;
        let mut result = Err(EtcdError::Unreachable("no endpoint tried".into()));
        for _ in 0..self.endpoints.len().max(1) + 1 {
            result = match self.client().await {
                Ok(c) => match tokio::time::timeout_at(deadline, f(c)).await {
                    Ok(r) => r.map_err(|e| self.explain(e)),
                    Err(_) => Err(EtcdError::Unreachable(format!(
                        "no answer within {}",
                        humantime::format_duration(self.timeout)
                    ))),
                },
                Err(e) => Err(e),
            };
            match &result {
                Err(EtcdError::Unreachable(m))
                    if not_delivered(m) && tokio::time::Instant::now() < deadline =>
                {
                    continue
                }
                _ => break,
            }
        }
        let took = started.elapsed();
        let st = &self.stats;
        st.requests.fetch_add(1, Ordering::Relaxed);
        st.latency_us
            .fetch_add(took.as_micros() as u64, Ordering::Relaxed);
        if took > Duration::from_millis(100) {
            st.slow.fetch_add(1, Ordering::Relaxed);
        }
        if result.is_err() {
            st.failures.fetch_add(1, Ordering::Relaxed);
        } else {
            *self.tls_failure.lock().unwrap() = None;
        }
        result
    }

    pub async fn get(&self, key: &str) -> Result<Option<Kv>, EtcdError> {
        let key = key.to_string();
        let r = self
            .call(|mut c| {
                let key = key.clone();
                async move { c.get(key, None).await }
            })
            .await?;
        Ok(r.kvs().first().map(Kv::from))
    }

    /// Every key under `prefix`, and the store's revision they were read at.
    /// Read in pages of [`PAGE`] keys, all at that one revision, so that no
    /// answer grows with the number of services (gRPC's 4 MiB message limit
    /// is reached by about 15,000 pinned services in one answer).
    pub async fn get_prefix(&self, prefix: &str) -> Result<(Vec<Kv>, i64), EtcdError> {
        let end = prefix_end(prefix);
        let mut from = prefix.as_bytes().to_vec();
        let (mut out, mut rev) = (Vec::new(), 0);
        loop {
            let mut opts = GetOptions::new().with_range(end.clone()).with_limit(PAGE);
            if rev != 0 {
                opts = opts.with_revision(rev);
            }
            let key = from.clone();
            let r = self
                .call(|mut c| {
                    let (key, opts) = (key.clone(), opts.clone());
                    async move { c.get(key, Some(opts)).await }
                })
                .await?;
            if rev == 0 {
                rev = r.header().map_or(0, |h| h.revision());
            }
            out.extend(r.kvs().iter().map(Kv::from));
            match r.kvs().last() {
                Some(last) if r.more() => {
                    from = last.key().to_vec();
                    from.push(0);
                }
                _ => return Ok((out, rev)),
            }
        }
    }

    /// How many keys are under `prefix`.
    pub async fn count_prefix(&self, prefix: &str) -> Result<i64, EtcdError> {
        let p = prefix.to_string();
        let opts = GetOptions::new().with_prefix().with_count_only();
        let r = self
            .call(|mut c| {
                let (p, opts) = (p.clone(), opts.clone());
                async move { c.get(p, Some(opts)).await }
            })
            .await?;
        Ok(r.count())
    }

    /// The first `limit` keys under `prefix`, in key order (keys only).
    pub async fn first_keys(&self, prefix: &str, limit: i64) -> Result<Vec<String>, EtcdError> {
        let p = prefix.to_string();
        let opts = GetOptions::new()
            .with_prefix()
            .with_keys_only()
            .with_limit(limit);
        let r = self
            .call(|mut c| {
                let (p, opts) = (p.clone(), opts.clone());
                async move { c.get(p, Some(opts)).await }
            })
            .await?;
        Ok(r.kvs().iter().map(|kv| Kv::from(kv).key).collect())
    }

    /// A transaction: `then` if every compare holds, else `otherwise`.
    /// Returns the store's revision after it if the compares held.
    pub async fn txn(
        &self,
        compare: &[Compare],
        then: &[Op],
        otherwise: &[Op],
    ) -> Result<Option<i64>, EtcdError> {
        let cmp: Vec<EtcdCompare> = compare
            .iter()
            .map(|c| match c {
                Compare::CreateRevision(k, r) => {
                    EtcdCompare::create_revision(k.as_str(), CompareOp::Equal, *r)
                }
                Compare::ModRevision(k, r) => {
                    EtcdCompare::mod_revision(k.as_str(), CompareOp::Equal, *r)
                }
                Compare::Value(k, v) => {
                    EtcdCompare::value(k.as_str(), CompareOp::Equal, v.as_str())
                }
            })
            .collect();
        let ops = |ops: &[Op]| -> Vec<TxnOp> {
            ops.iter()
                .map(|o| match o {
                    Op::Put { key, value, lease } => {
                        let opts = (*lease != 0)
                            .then(|| etcd_client::PutOptions::new().with_lease(*lease));
                        TxnOp::put(key.as_str(), value.as_str(), opts)
                    }
                    Op::Delete(k) => TxnOp::delete(k.as_str(), None),
                    Op::DeleteRange(k, end) => TxnOp::delete(
                        k.as_str(),
                        Some(etcd_client::DeleteOptions::new().with_range(end.clone())),
                    ),
                })
                .collect()
        };
        let txn = etcd_client::Txn::new()
            .when(cmp)
            .and_then(ops(then))
            .or_else(ops(otherwise));
        let written: u64 = then.iter().map(Op::size).sum();
        let request: u64 = written
            + otherwise.iter().map(Op::size).sum::<u64>()
            + compare.iter().map(Compare::size).sum::<u64>()
            + OP_OVERHEAD * (compare.len() + then.len() + otherwise.len()) as u64;
        self.stats
            .largest_request
            .fetch_max(request, Ordering::Relaxed);
        let r = self
            .call(|mut c| {
                let txn = txn.clone();
                async move { c.txn(txn).await }
            })
            .await?;
        self.stats.txns.fetch_add(1, Ordering::Relaxed);
        if r.succeeded() {
            self.stats
                .bytes_written
                .fetch_add(written, Ordering::Relaxed);
        }
        Ok(r.succeeded()
            .then(|| r.header().map_or(0, |h| h.revision())))
    }

    pub async fn put(&self, key: &str, value: &str, lease: i64) -> Result<i64, EtcdError> {
        let op = Op::Put {
            key: key.to_string(),
            value: value.to_string(),
            lease,
        };
        Ok(self.txn(&[], &[op], &[]).await?.unwrap_or(0))
    }

    pub async fn grant(&self, ttl: Duration) -> Result<i64, EtcdError> {
        let secs = ttl.as_secs().max(1) as i64;
        let r = self
            .call(|mut c| async move { c.lease_grant(secs, None).await })
            .await?;
        Ok(r.id())
    }

    pub async fn revoke(&self, lease: i64) -> Result<(), EtcdError> {
        self.call(|mut c| async move { c.lease_revoke(lease).await })
            .await?;
        Ok(())
    }

    /// Seconds left on `lease` (None: expired or unknown).
    pub async fn time_to_live(&self, lease: i64) -> Result<Option<i64>, EtcdError> {
        let r = self
            .call(|mut c| async move { c.lease_time_to_live(lease, None).await })
            .await?;
        Ok((r.ttl() > 0).then_some(r.ttl()))
    }

    /// A keep-alive stream for `lease` (see [`super::lease`]).
    pub async fn keep_alive(
        &self,
        lease: i64,
    ) -> Result<(etcd_client::LeaseKeeper, etcd_client::LeaseKeepAliveStream), EtcdError> {
        self.call(|mut c| async move { c.lease_keep_alive(lease).await })
            .await
    }

    /// Watch every key under `prefix` from revision `from` on.
    pub async fn watch_prefix(&self, prefix: &str, from: i64) -> Result<WatchStream, EtcdError> {
        let p = prefix.to_string();
        let opts = WatchOptions::new()
            .with_prefix()
            .with_start_revision(from)
            .with_progress_notify();
        self.call(|mut c| {
            let (p, opts) = (p.clone(), opts.clone());
            async move { c.watch(p, Some(opts)).await }
        })
        .await
    }

    /// Forget revisions before `revision` (the keys' current values stay).
    pub async fn compact(&self, revision: i64) -> Result<(), EtcdError> {
        self.call(|mut c| async move { c.compact(revision, None).await })
            .await?;
        Ok(())
    }

    /// The alarms raised on the cluster (e.g. NOSPACE), by name.
    pub async fn alarms(&self) -> Result<Vec<String>, EtcdError> {
        use etcd_client::{AlarmAction, AlarmType};
        let r = self
            .call(|mut c| async move { c.alarm(AlarmAction::Get, AlarmType::None, None).await })
            .await?;
        Ok(r.alarms()
            .iter()
            .map(|a| match a.alarm() {
                AlarmType::Nospace => "NOSPACE".to_string(),
                AlarmType::Corrupt => "CORRUPT".to_string(),
                AlarmType::None => "NONE".to_string(),
            })
            .collect())
    }

    /// The answering member's database size in bytes, and its quota (0:
    /// not reported by this etcd version).
    /// etcd's current revision (from a status call's header).
    pub async fn revision(&self) -> Result<i64, EtcdError> {
        let r = self.call(|mut c| async move { c.status().await }).await?;
        Ok(r.header().map_or(0, |h| h.revision()))
    }

    pub async fn db_size(&self) -> Result<(i64, i64), EtcdError> {
        let r = self.call(|mut c| async move { c.status().await }).await?;
        Ok((r.db_size(), r.db_size_quota()))
    }
}
