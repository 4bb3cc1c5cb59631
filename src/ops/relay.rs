//! A follower's UPDATEs, passed on to the leader's control API
//! (`POST /v1/zones/ZONE/update`); see `replicate::relay` for why.
//!
//! The follower has verified the TSIG; the leader trusts that because the
//! call carries an operator token of the cluster's shared token file, over
//! the same (optionally TLS) connection as forwarded operator changes. The
//! leader answers once every node applies the UPDATE, as it does for
//! remaps, so all nodes serve it when the client gets its answer.

use std::net::SocketAddr;

use hickory_proto::rr::Name;
use serde::{Deserialize, Serialize};
use tracing::{info, warn};

use super::forward::{Forwarder, FORWARDED};
use crate::proto::codes::rcode;
use crate::replicate::relay::{Relayed, UpdateRelay};

/// The body of `POST /v1/zones/ZONE/update`.
#[derive(Debug, Serialize, Deserialize)]
pub struct RelayedUpdate {
    /// The UPDATE message as the client sent it (base64).
    pub message: String,
    /// The TSIG key the receiving node verified it with.
    pub key: String,
    /// The client's address (for the leader's log).
    pub peer: SocketAddr,
}

/// The leader's answer: the rcode, and why when it is not NOERROR.
#[derive(Debug, Default, Serialize, Deserialize)]
pub struct RelayAnswer {
    pub rcode: u8,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

pub struct LeaderRelay {
    fwd: Forwarder,
    token: Option<String>,
}

impl LeaderRelay {
    /// `roots`: as for forwarded operator changes ([`Forwarder::new`]).
    pub fn new(
        cluster: crate::cluster::ClusterHandle,
        roots: Option<&[rustls::pki_types::CertificateDer<'static>]>,
        tokens: &[super::tokens::Token],
    ) -> LeaderRelay {
        let fwd = Forwarder::new(cluster, roots);
        let token = tokens
            .iter()
            .find(|t| t.role == super::tokens::Role::Operator)
            .map(|t| t.secret().to_string());
        LeaderRelay { fwd, token }
    }
}

impl UpdateRelay for LeaderRelay {
    fn relay(&self, zone: &Name, packet: &[u8], key: &str, peer: SocketAddr) -> Option<Relayed> {
        let (node, connected) = {
            let v = self.fwd.cluster.view.lock().unwrap();
            (v.node.clone(), v.connected)
        };
        if connected && self.fwd.cluster.is_leader() {
            return None;
        }
        let leader = self.fwd.cluster.leader_control().filter(|_| connected);
        let (http, token, zone) = (self.fwd.http.clone(), self.token.clone(), zone.clone());
        let body = RelayedUpdate {
            message: data_encoding::BASE64.encode(packet),
            key: key.to_string(),
            peer,
        };
        Some(Box::pin(async move {
            let Some(leader) = leader else {
                warn!(%zone, %peer, "UPDATE not applied: no cluster leader reachable from this node (SERVFAIL)");
                return rcode::SERVFAIL;
            };
            let url = format!("{leader}/v1/zones/{zone}/update");
            let mut req = http.post(&url).header(FORWARDED, node.as_str()).json(&body);
            if let Some(t) = token {
                req = req.bearer_auth(t);
            }
            match req.send().await {
                Ok(resp) => {
                    let status = resp.status();
                    let answer: RelayAnswer = resp.json().await.unwrap_or(RelayAnswer {
                        rcode: rcode::SERVFAIL,
                        error: Some(format!("HTTP {status}")),
                    });
                    info!(%zone, %peer, %leader, rcode = answer.rcode, error = ?answer.error,
                        "UPDATE passed on to the leader");
                    answer.rcode
                }
                Err(e) => {
                    warn!(%zone, %peer, %leader, error = %e, "UPDATE could not be passed on to the leader (SERVFAIL)");
                    rcode::SERVFAIL
                }
            }
        }))
    }
}

/// On the leader: apply an UPDATE a follower passed on. 200 with NOERROR
/// (then the caller waits for every node to apply it), 409 with the rcode
/// and why otherwise.
pub(super) async fn apply_relayed(
    ctl: &crate::decide::ControllerHandle,
    zone: &str,
    body: RelayedUpdate,
) -> (axum::http::StatusCode, RelayAnswer) {
    use axum::http::StatusCode;
    let bad = |why: String| {
        let answer = RelayAnswer {
            rcode: rcode::FORMERR,
            error: Some(why),
        };
        (StatusCode::BAD_REQUEST, answer)
    };
    let Ok(origin) = Name::from_ascii(zone) else {
        return bad(format!("`{zone}` is not a zone name"));
    };
    let Ok(bytes) = data_encoding::BASE64.decode(body.message.as_bytes()) else {
        return bad("message: not base64".into());
    };
    let Ok(message) = hickory_proto::op::Message::from_vec(&bytes) else {
        return bad("message: not a DNS message".into());
    };
    let called = ctl
        .call(|reply| crate::decide::Command::Update {
            origin,
            message: Box::new(message),
            key: body.key,
            peer: body.peer,
            reply,
        })
        .await;
    match called {
        Ok(0) => (StatusCode::OK, RelayAnswer::default()),
        Ok(r) => (
            StatusCode::CONFLICT,
            RelayAnswer {
                rcode: r,
                error: Some(format!(
                    "UPDATE not applied (rcode {r}): see the leader's log"
                )),
            },
        ),
        Err(e) => (
            StatusCode::SERVICE_UNAVAILABLE,
            RelayAnswer {
                rcode: rcode::SERVFAIL,
                error: Some(e.to_string()),
            },
        ),
    }
}
