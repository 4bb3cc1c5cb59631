//! What may be asked of the controller, and how it can refuse.
//!
//! Why one set of types: the control API, the controller and `ggon-ctl`
//! used to spell out each request's fields three times (an enum variant, an
//! HTTP body struct and a `json!` literal) and could drift apart. The request
//! structs below are the HTTP bodies themselves: `ggon-ctl` serializes them
//! and the control API deserializes them. Where the body is read, each is
//! parsed once into what the controller acts on ([`Remap`], [`Drain`],
//! [`DrillPlan`]: durations as [`Duration`]s), handed on inside a
//! [`Command`]; a bad value is refused there, before the controller sees it.

use std::time::Duration;

use hickory_proto::rr::Name;
use serde::{Deserialize, Serialize};
use tokio::sync::{mpsc, oneshot};

use super::events::Event;
use super::views::{ChangeView, DrillView, StatusView};
use crate::config::Config;
use crate::proto::zone::ZoneData;

/// Who asked, for logs, pins and history.
#[derive(Debug, Clone)]
pub struct Actor {
    pub name: String,
}

impl Actor {
    pub fn new(name: &str) -> Actor {
        Actor {
            name: name.to_string(),
        }
    }
}

/// The error for an unknown service name: it lists the services (the first
/// [`LISTED`] and how many more), so a typo is seen at once.
pub fn no_such_service<'a>(name: &str, known: impl Iterator<Item = &'a str>) -> String {
    let known: Vec<&str> = known.collect();
    let mut shown = known
        .iter()
        .take(LISTED)
        .map(|n| format!("`{n}`"))
        .collect::<Vec<_>>()
        .join(", ");
    if known.len() > LISTED {
        shown.push_str(&format!(" and {} more", known.len() - LISTED));
    }
    if known.is_empty() {
        shown = "none configured".into();
    }
    format!("no service named `{name}` (services: {shown})")
}

/// How many service names an error lists.
pub const LISTED: usize = 10;

/// Why the controller refused; each maps to one HTTP status.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CtlError {
    /// 404: no such service or target.
    #[error("{0}")]
    NotFound(String),
    /// 409: the request contradicts the current state.
    #[error("{0}")]
    Conflict(String),
    /// 400: the request itself is wrong.
    #[error("{0}")]
    BadRequest(String),
    /// 500: the controller could not do it (state not persisted, shutting down).
    #[error("{0}")]
    Internal(String),
    /// 503: the cluster cannot take a decision now (no leader, etcd away).
    #[error("{0}")]
    Unavailable(String),
}

/// A duration as operators type it ("90s", "2h"); None stays None.
fn parse_duration(s: Option<&str>) -> Result<Option<Duration>, CtlError> {
    s.map(|d| {
        humantime::parse_duration(d)
            .map_err(|e| CtlError::BadRequest(format!("bad duration `{d}`: {e}")))
    })
    .transpose()
}

/// `POST /v1/services/{service}/remap`: answer with `to` now and pin it.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct RemapRequest {
    pub to: String,
    #[serde(default)]
    pub reason: String,
    /// Remap even to a target whose checks say it is down (or drained).
    #[serde(default)]
    pub force: bool,
    /// Say what would happen, change nothing.
    #[serde(default)]
    pub dry_run: bool,
    /// Pin expiry, e.g. "2h"; None: until released.
    #[serde(default, rename = "for", skip_serializing_if = "Option::is_none")]
    pub duration: Option<String>,
    /// Per-region services: pin this region only (None: every region).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub region: Option<String>,
}

/// `POST /v1/services/{service}/targets/{target}/drain`.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct DrainRequest {
    #[serde(default)]
    pub reason: String,
    /// Undrain automatically after this long, e.g. "30m".
    #[serde(default, rename = "for", skip_serializing_if = "Option::is_none")]
    pub duration: Option<String>,
    /// Drain the target a pin holds the service on: the pin is released so
    /// the service can move. Without it that drain is refused.
    #[serde(default)]
    pub force: bool,
}

/// `POST /v1/services/{service}/drill`: a dry run, or with `fail` and
/// `duration` a timed failure of that target.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct DrillRequest {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fail: Option<String>,
    #[serde(default, rename = "for", skip_serializing_if = "Option::is_none")]
    pub duration: Option<String>,
    /// Per-region services: drill in this region only.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub region: Option<String>,
}

/// A remap as the controller takes it: [`RemapRequest`] with its duration read.
#[derive(Debug, Clone, Default)]
pub struct Remap {
    pub to: String,
    pub reason: String,
    pub force: bool,
    pub dry_run: bool,
    /// How long the pin holds; None: until released.
    pub duration: Option<Duration>,
    pub region: Option<String>,
}

impl RemapRequest {
    pub fn parse(self) -> Result<Remap, CtlError> {
        Ok(Remap {
            duration: parse_duration(self.duration.as_deref())?,
            to: self.to,
            reason: self.reason,
            force: self.force,
            dry_run: self.dry_run,
            region: self.region,
        })
    }
}

/// A drain as the controller takes it: [`DrainRequest`] with its duration read.
#[derive(Debug, Clone, Default)]
pub struct Drain {
    pub reason: String,
    /// Undrain after this long; None: until undrained.
    pub duration: Option<Duration>,
    pub force: bool,
}

impl DrainRequest {
    pub fn parse(self) -> Result<Drain, CtlError> {
        Ok(Drain {
            duration: parse_duration(self.duration.as_deref())?,
            reason: self.reason,
            force: self.force,
        })
    }
}

/// A drill as the controller takes it: what a failure would do, or with
/// `fail` a failure of that target for that long.
#[derive(Debug, Clone, Default)]
pub struct DrillPlan {
    pub fail: Option<(String, Duration)>,
    pub region: Option<String>,
}

impl DrillRequest {
    /// A failure drill needs a duration; a dry run's is read but not used.
    pub fn parse(self) -> Result<DrillPlan, CtlError> {
        let fail = match (self.fail, parse_duration(self.duration.as_deref())?) {
            (Some(t), Some(d)) => Some((t, d)),
            (Some(_), None) => {
                return Err(CtlError::BadRequest(
                    "a failure drill needs a duration (--for)".into(),
                ))
            }
            (None, _) => None,
        };
        Ok(DrillPlan {
            fail,
            region: self.region,
        })
    }
}

/// Which history entries to read.
#[derive(Debug, Clone, Default)]
pub struct HistoryQuery {
    pub service: Option<String>,
    /// Unix seconds.
    pub since: Option<u64>,
    pub limit: usize,
}

pub type Reply<T> = oneshot::Sender<Result<T, CtlError>>;

/// Everything the controller's loop accepts besides observations.
pub enum Command {
    /// Liveness: answered at once by a loop that is turning (the systemd
    /// watchdog asks).
    Ping {
        reply: oneshot::Sender<()>,
    },
    Status {
        reply: oneshot::Sender<StatusView>,
    },
    Remap {
        service: String,
        request: Remap,
        actor: Actor,
        reply: Reply<ChangeView>,
    },
    Release {
        service: String,
        /// Per-region services: this region only (None: all, and the service).
        region: Option<String>,
        actor: Actor,
        reply: Reply<ChangeView>,
    },
    Drain {
        service: String,
        target: String,
        request: Drain,
        actor: Actor,
        reply: Reply<ChangeView>,
    },
    Undrain {
        service: String,
        target: String,
        actor: Actor,
        reply: Reply<ChangeView>,
    },
    Drill {
        service: String,
        request: DrillPlan,
        actor: Actor,
        reply: Reply<DrillView>,
    },
    History {
        query: HistoryQuery,
        reply: oneshot::Sender<Vec<Event>>,
    },
    /// An authenticated RFC 2136 UPDATE for a local zone; the reply is the rcode.
    Update {
        origin: Name,
        message: Box<hickory_proto::op::Message>,
        key: String,
        peer: std::net::SocketAddr,
        reply: oneshot::Sender<u8>,
    },
    /// A secondary zone was transferred from its primary.
    SecondaryLoaded {
        zone: Box<ZoneData>,
        reply: Reply<()>,
    },
    /// A secondary zone expired: stop serving it.
    SecondaryExpired {
        origin: Name,
        reply: Reply<()>,
    },
    /// Cluster mode: this node now leads, or follows.
    ClusterRole {
        role: super::Role,
    },
    /// Cluster mode: services defined differently on some live node than
    /// on the leader (service → that node): their last agreed state is
    /// kept and operator changes to them are refused until they agree.
    ClusterDisagree {
        services: std::collections::BTreeMap<String, String>,
    },
    /// Cluster mode: what a quorum of live nodes sees.
    ClusterVerdicts {
        verdicts: super::Verdicts,
    },
    /// Cluster mode: entries of the zones' UPDATE journals (zone, entry),
    /// in order; each is applied unless it already is.
    ClusterZoneEntries {
        entries: Vec<(String, crate::publish::JournalEntry)>,
    },
    /// Cluster mode: the zones' key sets etcd holds (zone, key set, its
    /// revision); each node signs with them.
    ClusterKeySets {
        sets: Vec<(String, crate::sign::SharedKeySet, i64)>,
    },
    /// Cluster mode: the shared state changed (a follower answers it).
    /// Answered once the state is what this node serves, so the node can
    /// tell the leader it has applied it.
    ClusterApply {
        state: Box<super::state::PersistedState>,
        reply: oneshot::Sender<()>,
    },
    /// Begin a DNSSEC key roll of a zone ggond signs.
    DnssecRoll {
        zone: String,
        kind: crate::sign::roll::RollKind,
        actor: Actor,
        reply: Reply<String>,
    },
    /// The signed zones' keys, rolls and key policies.
    DnssecStatus {
        reply: oneshot::Sender<Vec<crate::sign::ZoneKeysView>>,
    },
    /// A validated new configuration, its regions' map and its zones.
    Reload {
        config: Box<Config>,
        regions: std::sync::Arc<crate::geo::RegionMap>,
        zones: Vec<ZoneData>,
        /// The zones ggond signs, keys read.
        signers: Vec<crate::sign::Signer>,
        actor: Actor,
        reply: Reply<String>,
    },
}

/// A cheap handle to send commands to the controller.
#[derive(Clone)]
pub struct ControllerHandle {
    pub commands: mpsc::Sender<Command>,
}

impl ControllerHandle {
    pub async fn call<T>(
        &self,
        make: impl FnOnce(oneshot::Sender<T>) -> Command,
    ) -> Result<T, CtlError> {
        let (tx, rx) = oneshot::channel();
        self.commands
            .send(make(tx))
            .await
            .map_err(|_| CtlError::Internal("controller is shutting down".into()))?;
        rx.await
            .map_err(|_| CtlError::Internal("controller is shutting down".into()))
    }
}
