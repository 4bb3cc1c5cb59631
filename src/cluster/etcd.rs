//! A small etcd v3 client over etcd's own JSON gateway (`/v3/...`, served
//! by every etcd member on its client URL since 3.4).
//!
//! Why not the gRPC client crate: ggond already speaks HTTP through
//! `reqwest` (rustls), the gateway is part of etcd itself, and the handful
//! of calls ggon needs (lease grant/keep-alive, range, put, delete and
//! transactions) are plain request/response. Keys and values are bytes,
//! base64 in JSON; 64-bit integers arrive as strings.
//!
//! Endpoints are tried in order, starting with the last one that answered:
//! losing one member of three is invisible to callers.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;
use std::time::Duration;

use serde::{Deserialize, Deserializer};
use serde_json::{json, Value};

/// Why an etcd call failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EtcdError {
    /// No endpoint answered (down, cut off, or timing out).
    #[error("etcd unreachable: {0}")]
    Unreachable(String),
    /// An endpoint answered with an error.
    #[error("etcd refused the request: {0}")]
    Refused(String),
}

fn b64(s: &[u8]) -> String {
    data_encoding::BASE64.encode(s)
}

fn unb64(s: &str) -> Vec<u8> {
    data_encoding::BASE64
        .decode(s.as_bytes())
        .unwrap_or_default()
}

/// int64 fields come as JSON strings; accept numbers too.
fn de_i64<'de, D: Deserializer<'de>>(d: D) -> Result<i64, D::Error> {
    let v = Value::deserialize(d)?;
    match v {
        Value::String(s) => s.parse().map_err(serde::de::Error::custom),
        Value::Number(n) => n
            .as_i64()
            .ok_or_else(|| serde::de::Error::custom("not an i64")),
        Value::Null => Ok(0),
        other => Err(serde::de::Error::custom(format!("not an integer: {other}"))),
    }
}

/// One key-value pair as etcd stores it.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
pub struct Kv {
    #[serde(default, deserialize_with = "de_b64")]
    pub key: String,
    #[serde(default, deserialize_with = "de_b64")]
    pub value: String,
    #[serde(default, deserialize_with = "de_i64")]
    pub create_revision: i64,
    #[serde(default, deserialize_with = "de_i64")]
    pub mod_revision: i64,
    #[serde(default, deserialize_with = "de_i64")]
    pub lease: i64,
}

fn de_b64<'de, D: Deserializer<'de>>(d: D) -> Result<String, D::Error> {
    let s = String::deserialize(d)?;
    Ok(String::from_utf8_lossy(&unb64(&s)).into_owned())
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

/// One comparison of a transaction.
#[derive(Debug, Clone)]
pub enum Compare {
    /// The key's create revision (0: the key does not exist).
    CreateRevision(String, i64),
    /// The key's value.
    Value(String, String),
    /// The key's last modification revision (0: the key does not exist).
    ModRevision(String, i64),
}

/// One operation of a transaction.
#[derive(Debug, Clone)]
pub enum Op {
    Put {
        key: String,
        value: String,
        lease: i64,
    },
    Delete(String),
}

impl Compare {
    fn json(&self) -> Value {
        match self {
            Compare::CreateRevision(k, r) => json!({
                "result": "EQUAL", "target": "CREATE", "key": b64(k.as_bytes()),
                "create_revision": r.to_string(),
            }),
            Compare::Value(k, v) => json!({
                "result": "EQUAL", "target": "VALUE", "key": b64(k.as_bytes()),
                "value": b64(v.as_bytes()),
            }),
            Compare::ModRevision(k, r) => json!({
                "result": "EQUAL", "target": "MOD", "key": b64(k.as_bytes()),
                "mod_revision": r.to_string(),
            }),
        }
    }
}

impl Op {
    fn json(&self) -> Value {
        match self {
            Op::Put { key, value, lease } => json!({"request_put": {
                "key": b64(key.as_bytes()), "value": b64(value.as_bytes()),
                "lease": lease.to_string(),
            }}),
            Op::Delete(key) => json!({"request_delete_range": {"key": b64(key.as_bytes())}}),
        }
    }
}

/// A client for one etcd cluster.
pub struct Etcd {
    endpoints: Vec<String>,
    /// Index of the endpoint that answered last.
    current: AtomicUsize,
    http: reqwest::Client,
    credentials: Option<(String, String)>,
    token: Mutex<Option<String>>,
}

impl Etcd {
    /// `timeout` bounds every request (a cut-off member must not stall the
    /// node for long: the next endpoint is tried).
    pub fn new(
        endpoints: Vec<String>,
        credentials: Option<(String, String)>,
        ca_file: Option<&std::path::Path>,
        timeout: Duration,
    ) -> Result<Etcd, EtcdError> {
        let mut b = reqwest::Client::builder()
            .timeout(timeout)
            .connect_timeout(timeout)
            .no_proxy()
            .pool_max_idle_per_host(2);
        if let Some(path) = ca_file {
            let pem = std::fs::read(path)
                .map_err(|e| EtcdError::Refused(format!("{}: {e}", path.display())))?;
            let cert = reqwest::Certificate::from_pem(&pem)
                .map_err(|e| EtcdError::Refused(format!("{}: {e}", path.display())))?;
            b = b.add_root_certificate(cert);
        }
        let http = b.build().map_err(|e| EtcdError::Refused(e.to_string()))?;
        Ok(Etcd {
            endpoints: endpoints
                .into_iter()
                .map(|e| e.trim_end_matches('/').to_string())
                .collect(),
            current: AtomicUsize::new(0),
            http,
            credentials,
            token: Mutex::new(None),
        })
    }

    async fn authenticate(&self, base: &str) -> Result<Option<String>, EtcdError> {
        let Some((name, password)) = &self.credentials else {
            return Ok(None);
        };
        if let Some(t) = self.token.lock().unwrap().clone() {
            return Ok(Some(t));
        }
        let resp = self
            .http
            .post(format!("{base}/v3/auth/authenticate"))
            .json(&json!({"name": name, "password": password}))
            .send()
            .await
            .map_err(|e| EtcdError::Unreachable(e.to_string()))?;
        let v: Value = resp
            .json()
            .await
            .map_err(|e| EtcdError::Unreachable(e.to_string()))?;
        let token = v["token"]
            .as_str()
            .ok_or_else(|| EtcdError::Refused(format!("authentication failed: {v}")))?
            .to_string();
        *self.token.lock().unwrap() = Some(token.clone());
        Ok(Some(token))
    }

    /// POST `body` to `path` on the first endpoint that answers.
    async fn call(&self, path: &str, body: Value) -> Result<Value, EtcdError> {
        let n = self.endpoints.len();
        let start = self.current.load(Ordering::Relaxed);
        let mut last = String::from("no endpoint configured");
        for i in 0..n {
            let idx = (start + i) % n;
            let base = &self.endpoints[idx];
            let token = match self.authenticate(base).await {
                Ok(t) => t,
                Err(e) => {
                    last = e.to_string();
                    continue;
                }
            };
            let mut req = self.http.post(format!("{base}{path}")).json(&body);
            if let Some(t) = &token {
                req = req.header("Authorization", t);
            }
            match req.send().await {
                Ok(resp) => {
                    let status = resp.status();
                    let text = resp.text().await.unwrap_or_default();
                    // The keep-alive endpoint streams: the first line is the answer.
                    let first = text.lines().next().unwrap_or("");
                    let v: Value = serde_json::from_str(first).unwrap_or(Value::Null);
                    if status.is_success() && v.get("error").is_none() {
                        self.current.store(idx, Ordering::Relaxed);
                        return Ok(v);
                    }
                    if status.is_server_error() || status.as_u16() == 404 {
                        // An unhealthy member (no leader, stopping): try the next.
                        last = format!("{base}: HTTP {status}: {first}");
                        if v["error"].as_str().is_some_and(|e| e.contains("token")) {
                            *self.token.lock().unwrap() = None;
                        }
                        continue;
                    }
                    return Err(EtcdError::Refused(format!("HTTP {status}: {first}")));
                }
                Err(e) => last = format!("{base}: {e}"),
            }
        }
        Err(EtcdError::Unreachable(last))
    }

    /// A new lease of `ttl`; returns its ID.
    pub async fn grant(&self, ttl: Duration) -> Result<i64, EtcdError> {
        let v = self
            .call("/v3/lease/grant", json!({"TTL": ttl.as_secs().max(1)}))
            .await?;
        let id: i64 = v["ID"]
            .as_str()
            .and_then(|s| s.parse().ok())
            .or_else(|| v["ID"].as_i64())
            .ok_or_else(|| EtcdError::Refused(format!("no lease ID in {v}")))?;
        Ok(id)
    }

    /// Refresh a lease; false if it has expired (or never existed).
    pub async fn keep_alive(&self, lease: i64) -> Result<bool, EtcdError> {
        let v = self
            .call("/v3/lease/keepalive", json!({"ID": lease.to_string()}))
            .await?;
        let ttl = v["result"]["TTL"]
            .as_str()
            .and_then(|s| s.parse::<i64>().ok())
            .or_else(|| v["result"]["TTL"].as_i64())
            .unwrap_or(0);
        Ok(ttl > 0)
    }

    /// Seconds left on a lease (None: expired or unknown).
    pub async fn time_to_live(&self, lease: i64) -> Result<Option<i64>, EtcdError> {
        let v = self
            .call("/v3/lease/timetolive", json!({"ID": lease.to_string()}))
            .await?;
        let ttl = v["TTL"]
            .as_str()
            .and_then(|s| s.parse::<i64>().ok())
            .or_else(|| v["TTL"].as_i64())
            .unwrap_or(-1);
        Ok((ttl >= 0).then_some(ttl))
    }

    /// Give a lease back (its keys go at once).
    pub async fn revoke(&self, lease: i64) -> Result<(), EtcdError> {
        self.call("/v3/lease/revoke", json!({"ID": lease.to_string()}))
            .await
            .map(|_| ())
    }

    pub async fn put(&self, key: &str, value: &str, lease: i64) -> Result<(), EtcdError> {
        self.call(
            "/v3/kv/put",
            json!({"key": b64(key.as_bytes()), "value": b64(value.as_bytes()), "lease": lease.to_string()}),
        )
        .await
        .map(|_| ())
    }

    /// One key, if it exists.
    pub async fn get(&self, key: &str) -> Result<Option<Kv>, EtcdError> {
        let v = self
            .call("/v3/kv/range", json!({"key": b64(key.as_bytes())}))
            .await?;
        Ok(kvs(&v).into_iter().next())
    }

    /// Every key under `prefix`, in key order.
    pub async fn get_prefix(&self, prefix: &str) -> Result<Vec<Kv>, EtcdError> {
        let v = self
            .call(
                "/v3/kv/range",
                json!({"key": b64(prefix.as_bytes()), "range_end": b64(&prefix_end(prefix))}),
            )
            .await?;
        Ok(kvs(&v))
    }

    /// If every comparison holds, do `then`; else `otherwise`. Returns
    /// whether the comparisons held.
    pub async fn txn(
        &self,
        compare: &[Compare],
        then: &[Op],
        otherwise: &[Op],
    ) -> Result<bool, EtcdError> {
        let body = json!({
            "compare": compare.iter().map(Compare::json).collect::<Vec<_>>(),
            "success": then.iter().map(Op::json).collect::<Vec<_>>(),
            "failure": otherwise.iter().map(Op::json).collect::<Vec<_>>(),
        });
        let v = self.call("/v3/kv/txn", body).await?;
        // The gateway leaves out false booleans.
        Ok(v["succeeded"].as_bool().unwrap_or(false))
    }

    /// Like [`Etcd::txn`]; on success, the store's revision after it (the
    /// mod revision of every key it put).
    pub async fn txn_revision(
        &self,
        compare: &[Compare],
        then: &[Op],
    ) -> Result<Option<i64>, EtcdError> {
        let body = json!({
            "compare": compare.iter().map(Compare::json).collect::<Vec<_>>(),
            "success": then.iter().map(Op::json).collect::<Vec<_>>(),
            "failure": [],
        });
        let v = self.call("/v3/kv/txn", body).await?;
        if !v["succeeded"].as_bool().unwrap_or(false) {
            return Ok(None);
        }
        let rev = &v["header"]["revision"];
        let rev = rev
            .as_str()
            .and_then(|s| s.parse().ok())
            .or_else(|| rev.as_i64())
            .ok_or_else(|| EtcdError::Refused(format!("no revision in a txn answer: {v}")))?;
        Ok(Some(rev))
    }
}

fn kvs(v: &Value) -> Vec<Kv> {
    v["kvs"]
        .as_array()
        .map(|a| {
            a.iter()
                .filter_map(|kv| serde_json::from_value(kv.clone()).ok())
                .collect()
        })
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prefix_end_is_the_next_key_after_the_prefix() {
        assert_eq!(prefix_end("/ggon/obs/"), b"/ggon/obs0".to_vec());
        assert_eq!(prefix_end("a\u{7f}"), b"a\x80".to_vec());
    }

    #[test]
    fn kvs_decode_base64_and_string_integers() {
        let v = json!({"kvs": [{"key": b64(b"/k"), "value": b64(b"v"),
            "create_revision": "7", "mod_revision": "9", "lease": "694d"}]});
        // "694d" is not decimal: such a lease reads as an error, the pair is dropped.
        assert!(kvs(&v).is_empty());
        let v = json!({"kvs": [{"key": b64(b"/k"), "value": b64(b"v"),
            "create_revision": "7", "mod_revision": "9", "lease": "12"}]});
        let kv = &kvs(&v)[0];
        assert_eq!(
            (
                kv.key.as_str(),
                kv.value.as_str(),
                kv.create_revision,
                kv.mod_revision,
                kv.lease
            ),
            ("/k", "v", 7, 9, 12)
        );
    }
}
