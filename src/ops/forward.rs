//! Cluster mode: operator changes sent to any node are carried out by the
//! leader, the only node that decides.
//!
//! A follower passes a state-changing call (remap, release, drain,
//! undrain, drill) on to the leader's control API as it came (same path,
//! body and bearer token) and hands back the leader's answer. The leader
//! applies it with a fenced write, so the change happens once or not at
//! all. With no leader known the call is refused with 503 and nothing
//! changes. On the leader, a change is answered once every other member
//! answers it too, or with a warning naming those that did not confirm.
//! Reads (status, history) are answered locally.

use std::time::Duration;

use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{HeaderValue, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde_json::json;
use tracing::{info, warn};

use rustls::pki_types::CertificateDer;

use crate::cluster::ClusterHandle;

/// Set on a forwarded call, so that it is never forwarded twice.
pub(super) const FORWARDED: &str = "x-ggon-forwarded-by";
const BODY_LIMIT: usize = 64 * 1024;

#[derive(Clone)]
pub(super) struct Forwarder {
    pub cluster: ClusterHandle,
    pub http: reqwest::Client,
}

impl Forwarder {
    /// `roots`: with control TLS, the CA (`[control] tls_ca_file`) that the
    /// leader's certificate must verify against, in place of the public
    /// roots (the nodes' certificates are the operator's own).
    pub fn new(cluster: ClusterHandle, roots: Option<&[CertificateDer<'static>]>) -> Forwarder {
        let mut http = reqwest::Client::builder()
            .timeout(Duration::from_secs(10))
            .no_proxy();
        if let Some(roots) = roots {
            http = http.tls_built_in_root_certs(false);
            for der in roots {
                match reqwest::Certificate::from_der(der) {
                    Ok(c) => http = http.add_root_certificate(c),
                    Err(e) => warn!(error = %e, "a tls_ca_file certificate is not usable"),
                }
            }
        }
        Forwarder {
            cluster,
            http: http.build().expect("HTTP client"),
        }
    }
}

/// Why the leader's certificate was not accepted, if that is why the call
/// failed (the TLS handshake comes before the request: nothing was sent).
/// rustls's error reaches here wrapped in hyper's and io's errors, whose
/// layering changes between versions: every cause is looked at, as a
/// rustls error or by its words ("invalid peer certificate").
fn certificate_problem(e: &reqwest::Error) -> Option<String> {
    let mut cause: Option<&(dyn std::error::Error + 'static)> = Some(e);
    while let Some(c) = cause {
        match crate::cluster::etcd::rustls_error(c) {
            Some(t @ rustls::Error::InvalidCertificate(_)) => return Some(t.to_string()),
            Some(_) => return None,
            None if c.to_string().contains("invalid peer certificate") => {
                return Some(c.to_string())
            }
            None => cause = c.source(),
        }
    }
    None
}

fn unavailable(msg: String) -> Response {
    (
        StatusCode::SERVICE_UNAVAILABLE,
        Json(json!({ "error": msg })),
    )
        .into_response()
}

/// On the leader, after a change succeeded: wait until the other members
/// answer it too, and if some did not confirm within the lease, say so in
/// the answer's `warning` (ggon-ctl prints it and exits 1): the change is
/// made and durable, but those nodes may still answer the state before it.
async fn confirmed(cluster: &ClusterHandle, resp: Response) -> Response {
    if !resp.status().is_success() {
        return resp;
    }
    let behind = match cluster.wait_applied().await {
        Ok(behind) if behind.is_empty() => return resp,
        Ok(behind) => format!(
            "{} did not confirm the change within {}: {} may still answer the state \
             before it (paused, dead, or cut off from etcd; see `ggon-ctl cluster`). \
             The change is made and every node that follows etcd will answer it",
            behind.join(", "),
            humantime::format_duration(cluster.confirm_within),
            if behind.len() == 1 { "it" } else { "they" },
        ),
        Err(e) => format!(
            "the change is made, but whether the other nodes answer it is unknown \
             (etcd: {e}); see `ggon-ctl cluster`"
        ),
    };
    warn!(warning = %behind, "change not confirmed by every node");
    let (parts, body) = resp.into_parts();
    let Ok(bytes) = axum::body::to_bytes(body, BODY_LIMIT).await else {
        return (parts.status, "answer too large").into_response();
    };
    let mut v: serde_json::Value = match serde_json::from_slice(&bytes) {
        Ok(v @ serde_json::Value::Object(_)) => v,
        _ => json!({ "answer": String::from_utf8_lossy(&bytes) }),
    };
    let warning = match v["warning"].as_str() {
        Some(w) => format!("{w}. Also: {behind}"),
        None => behind,
    };
    v["warning"] = json!(warning);
    (parts.status, Json(v)).into_response()
}

/// Middleware on the state-changing routes.
pub(super) async fn to_leader(
    State(fwd): State<Option<Forwarder>>,
    req: Request,
    next: Next,
) -> Response {
    let Some(fwd) = fwd else {
        return next.run(req).await;
    };
    let (node, connected) = {
        let v = fwd.cluster.view.lock().unwrap();
        (v.node.clone(), v.connected)
    };
    if !connected {
        // Also when this node still holds the leadership's lease: with its
        // watch broken it could not confirm the change on the others, and
        // the status page already says it is cut off.
        return unavailable(format!("node `{node}` cannot reach etcd, so no decision can be made: nothing was changed; retry on another node or when etcd is back"));
    }
    if fwd.cluster.is_leader() {
        let resp = next.run(req).await;
        return confirmed(&fwd.cluster, resp).await;
    }
    if req.headers().contains_key(FORWARDED) {
        return unavailable(format!(
            "node `{node}` was asked as the leader but no longer leads: nothing was changed; retry"
        ));
    }
    let Some(leader) = fwd.cluster.leader_control() else {
        return unavailable(
            "no cluster leader right now (an election is under way): nothing was changed; retry in a few seconds".into(),
        );
    };
    let (parts, body) = req.into_parts();
    let Ok(bytes) = axum::body::to_bytes(body, BODY_LIMIT).await else {
        return (StatusCode::PAYLOAD_TOO_LARGE, "body too large").into_response();
    };
    let path = parts
        .uri
        .path_and_query()
        .map_or(parts.uri.path(), |p| p.as_str());
    let url = format!("{leader}{path}");
    let mut out = fwd
        .http
        .request(parts.method.clone(), &url)
        .header(FORWARDED, node.as_str())
        .body(bytes.to_vec());
    for h in ["authorization", "content-type"] {
        if let Some(v) = parts.headers.get(h) {
            out = out.header(h, v.clone());
        }
    }
    match out.send().await {
        Ok(resp) => {
            let status = resp.status();
            info!(%path, leader = %leader, status = status.as_u16(), "operator call passed to the leader");
            let body = resp.bytes().await.unwrap_or_default();
            let mut r = Response::new(Body::from(body));
            *r.status_mut() =
                StatusCode::from_u16(status.as_u16()).unwrap_or(StatusCode::BAD_GATEWAY);
            r.headers_mut()
                .insert("content-type", HeaderValue::from_static("application/json"));
            r
        }
        Err(e) if certificate_problem(&e).is_some() => {
            let why = certificate_problem(&e).unwrap_or_default();
            warn!(%path, leader = %leader, error = %why, "the leader's control certificate is not trusted: call refused");
            unavailable(format!(
                "the leader's control certificate ({leader}) cannot be verified against \
                 [control] tls_ca_file: {why}. Nothing was changed; check that every node's \
                 certificate is signed by that CA and names its control address"
            ))
        }
        Err(e) if e.is_connect() => {
            warn!(%path, leader = %leader, error = %e, "the leader cannot be reached");
            unavailable(format!(
                "the leader ({leader}) cannot be reached (it may just have died; an election follows within the lease): nothing was changed; retry"
            ))
        }
        Err(e) => {
            warn!(%path, leader = %leader, error = %e, "the leader did not answer a passed-on call");
            unavailable(format!(
                "the leader ({leader}) did not answer ({e}); the change may or may not have been made: check `ggon-ctl status`"
            ))
        }
    }
}
