//! `ggon-ctl reload --cluster`: reload every node and say how each went.
//!
//! In a cluster every node reads its own config and zone files, so a change
//! is copied to every node and each must reload. The node asked reloads
//! itself, then asks every other live member's control API to reload (with
//! the caller's own token: the nodes share the token file, and a node that
//! refuses it is named), at once, and answers with each node's result.
//! It then waits for the nodes' digests of what must be identical to be
//! published again and names the nodes whose services, zone files, keys or
//! token still differ from the leader's.

use std::time::Duration;

use axum::http::HeaderMap;
use serde::Serialize;

use super::forward::{Forwarder, FORWARDED};
use crate::decide::views::MismatchView;

/// One node's reload.
#[derive(Debug, Serialize)]
pub struct NodeReload {
    pub node: String,
    pub ok: bool,
    /// The reload's summary, or why it failed.
    pub result: String,
}

/// The whole answer.
#[derive(Debug, Serialize)]
pub struct ClusterReload {
    /// Every node reloaded.
    pub reloaded: bool,
    pub nodes: Vec<NodeReload>,
    /// Nodes whose configuration still differs from the leader's.
    pub differences: Vec<MismatchView>,
}

/// How long the answer waits for the nodes' new digests to agree.
const SETTLE: Duration = Duration::from_secs(5);
const FIRST: Duration = Duration::from_millis(1500);

/// Reload the other live members; `own` is this node's result.
pub(super) async fn reload_others(
    fwd: &Forwarder,
    headers: &HeaderMap,
    own: NodeReload,
) -> ClusterReload {
    let (me, members) = {
        let v = fwd.cluster.view.lock().unwrap();
        (v.node.clone(), v.members.clone())
    };
    let calls = members.into_iter().filter(|m| m.node != me).map(|m| {
        let url = m.control.as_ref().map(|c| {
            let scheme = if m.control_tls { "https" } else { "http" };
            format!("{scheme}://{c}/v1/reload")
        });
        let mut req = url.map(|u| fwd.http.post(u).header(FORWARDED, me.as_str()));
        if let (Some(r), Some(auth)) = (req.take(), headers.get("authorization")) {
            req = Some(r.header("authorization", auth.clone()));
        }
        async move { one(m.node, req).await }
    });
    let mut nodes = vec![own];
    nodes.extend(futures_join(calls).await);
    let reloaded = nodes.iter().all(|n| n.ok);
    let differences = settle(fwd).await;
    ClusterReload {
        reloaded,
        nodes,
        differences,
    }
}

async fn one(node: String, req: Option<reqwest::RequestBuilder>) -> NodeReload {
    let Some(req) = req else {
        return NodeReload {
            node,
            ok: false,
            result: "its control address is not known".into(),
        };
    };
    let (ok, result) = match req.send().await {
        Ok(resp) => {
            let status = resp.status();
            let v: serde_json::Value = resp.json().await.unwrap_or_default();
            match (
                status.is_success(),
                v["summary"].as_str(),
                v["error"].as_str(),
            ) {
                (true, Some(s), _) => (true, s.to_string()),
                (_, _, Some(e)) => (false, e.to_string()),
                _ => (false, format!("HTTP {status}")),
            }
        }
        Err(e) => (false, format!("not reached: {e}")),
    };
    NodeReload { node, ok, result }
}

/// Run the calls at once (a few nodes: no need for a join library).
async fn futures_join<F: std::future::Future<Output = NodeReload> + Send + 'static>(
    calls: impl Iterator<Item = F>,
) -> Vec<NodeReload> {
    let handles: Vec<_> = calls.map(tokio::spawn).collect();
    let mut out = Vec::with_capacity(handles.len());
    for h in handles {
        if let Ok(r) = h.await {
            out.push(r);
        }
    }
    out
}

/// The differences once the nodes' new digests are in: after [`FIRST`]
/// (a reloaded node publishes its digests within milliseconds, and the
/// watch brings them here), then until they agree or [`SETTLE`] has
/// passed, when those that still differ are named.
async fn settle(fwd: &Forwarder) -> Vec<MismatchView> {
    let t0 = tokio::time::Instant::now();
    tokio::time::sleep(FIRST).await;
    loop {
        let now = fwd.cluster.view.lock().unwrap().mismatches.clone();
        if now.is_empty() || t0.elapsed() >= SETTLE {
            return now;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}
