//! What the controller shows: typed views of its state.
//!
//! Owns: the shapes `ggon-ctl`, the status page and `/metrics` read (status,
//! the result of a change, a drill report) and building them from the
//! controller's state. They serialize to the control API's JSON and
//! deserialize in `ggon-ctl`, so both ends share one definition.
//! It must not change anything: views are copies.

use std::net::IpAddr;
use std::time::{Instant, UNIX_EPOCH};

use serde::{Deserialize, Serialize};

use super::service::{Region, ServiceRt, DEFAULT};
use super::state::Override;
use super::Controller;
use crate::config::FailbackMode;
use crate::publish::rfc2136::PublisherStatus;

/// How a service's target is chosen now.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Mode {
    /// By the policy, from health.
    Auto,
    /// Pinned by an operator.
    Manual,
}

impl Mode {
    /// How region `r`'s answer is chosen now.
    fn of(r: &Region) -> Mode {
        if r.pin.is_some() {
            Mode::Manual
        } else {
            Mode::Auto
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Mode::Auto => "auto",
            Mode::Manual => "manual",
        }
    }
}

impl std::fmt::Display for Mode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.pad(self.as_str())
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct StatusView {
    pub services: Vec<ServiceStatus>,
    pub zones: Vec<ZoneStatus>,
    /// RFC 2136 publishers (zones kept on another primary).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub publishers: Vec<PublisherStatus>,
    /// Cluster mode: the nodes, the leader, each node's view of each target.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cluster: Option<ClusterView>,
}

/// The cluster as this node sees it.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct ClusterView {
    /// This node.
    pub node: String,
    pub role: super::Role,
    /// Reaching etcd now. While false the node answers the last agreed
    /// state (fail-static) and takes no decisions.
    pub connected: bool,
    pub leader: Option<String>,
    pub members: Vec<MemberView>,
    pub verdicts: Vec<VerdictView>,
    /// The last error talking to etcd, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_error: Option<String>,
    /// etcd's database and alarms as this node last saw them.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub etcd: Option<EtcdView>,
    /// Live nodes whose services, zones, keys or token differ from the
    /// leader's (empty: every node agrees).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub mismatches: Vec<MismatchView>,
}

/// One node whose configuration differs from the leader's, and how.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct MismatchView {
    pub node: String,
    /// The node it was compared with (the leader; this node if none).
    pub reference: String,
    pub differs: Vec<String>,
}

/// etcd's health, as a node of the cluster sees it.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct EtcdView {
    /// Database size in bytes, and the space quota (0: not reported).
    pub db_size: i64,
    pub db_quota: i64,
    /// The NOSPACE alarm is raised: etcd refuses every write.
    pub nospace: bool,
    /// etcd's newest revision seen, and the newest this node's watch delivered.
    pub revision: i64,
    pub watch_revision: i64,
    /// Requests to etcd, failed ones, their total latency (µs), and those
    /// slower than 100 ms.
    pub requests: u64,
    pub failures: u64,
    pub latency_us: u64,
    pub slow: u64,
    /// Bytes this node wrote to etcd, and the last shared-state change's.
    pub bytes_written: u64,
    pub last_change_bytes: u64,
    /// The largest request this node sent to etcd (bytes, a bound).
    pub largest_request: u64,
    /// Vote buckets changed and not yet written.
    pub votes_pending: u64,
    /// Leader changes this node saw.
    pub leader_changes: u64,
    /// Times this node lost its lease.
    #[serde(default)]
    pub leases_lost: u64,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct MemberView {
    pub node: String,
    /// Its control API (operator calls to a follower go to the leader's).
    pub control: Option<String>,
    /// Whether that API is served over TLS (https).
    #[serde(default)]
    pub control_tls: bool,
    /// Seconds left on its lease (its votes vanish when it runs out).
    pub lease_ttl: Option<i64>,
    /// Unix seconds it joined.
    pub since: Option<u64>,
}

/// One target: every live node's vote and the agreed verdict.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct VerdictView {
    pub service: String,
    pub target: String,
    /// Votes that make it down.
    pub needed: usize,
    pub votes: std::collections::BTreeMap<String, Option<bool>>,
    pub agreed: Option<bool>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ZoneStatus {
    pub origin: String,
    pub serial: u32,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ServiceStatus {
    pub name: String,
    pub fqdn: String,
    pub ttl: u32,
    pub active: String,
    /// "manual" while pinned by an operator, else "auto".
    pub mode: Mode,
    pub failback: FailbackMode,
    pub pin: Option<Override>,
    pub all_down: bool,
    /// Target under a failure drill, and until when (unix seconds).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub drill: Option<(String, u64)>,
    pub targets: Vec<TargetStatus>,
    /// Per-region services: each region's answer (empty: single).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub regions: Vec<RegionStatus>,
}

/// One region of a per-region service.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RegionStatus {
    pub name: String,
    /// The target the region answers.
    pub active: String,
    pub addresses: Vec<IpAddr>,
    /// Its targets by preference.
    pub order: Vec<String>,
    pub pin: Option<Override>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub drill: Option<(String, u64)>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct TargetStatus {
    pub name: String,
    pub addresses: Vec<IpAddr>,
    pub healthy: Option<bool>,
    /// Set while drained: by whom, why, until when.
    pub drained: Option<Override>,
    pub last_check: Option<CheckView>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct CheckView {
    pub ok: bool,
    pub detail: String,
    pub latency_ms: f64,
    /// Unix seconds.
    pub at: f64,
}

/// The result of an operator command.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ChangeView {
    pub service: String,
    pub from: String,
    pub to: String,
    pub changed: bool,
    pub mode: Mode,
    pub addresses: Vec<IpAddr>,
    /// Nothing was changed: this is what would happen.
    pub dry_run: bool,
    /// Something the operator must know: the command was carried out, but
    /// not to the effect they probably wanted (e.g. a drained target is
    /// still answered because nothing else is available).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub warning: Option<String>,
    /// The region changed (per-region services; None: the service-level answer).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub region: Option<String>,
}

/// What a drill reports.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct DrillView {
    pub service: String,
    pub fqdn: String,
    pub active: String,
    /// The target that would take over if the active one failed now.
    pub takeover: Option<String>,
    pub takeover_healthy: Option<bool>,
    /// The answer that would then be served.
    pub answers: Vec<IpAddr>,
    pub ttl: u32,
    /// The zone serial that change would publish.
    pub serial: Option<u32>,
    /// Set for `--fail`: the drill is running until this unix time.
    pub failing: Option<(String, u64)>,
    pub note: String,
}

impl Controller {
    /// Everything `ggon-ctl status` shows. `now`/`unix` turn a drill's
    /// monotonic deadline into wall-clock time.
    pub fn status(&self) -> StatusView {
        let (now, unix) = (Instant::now(), super::unix_now());
        let drill = |s: &ServiceRt, r: &Region| {
            r.drill.as_ref().map(|d| {
                let left = d.until.saturating_duration_since(now);
                (s.targets[d.target].name.clone(), unix + left.as_secs())
            })
        };
        StatusView {
            services: self
                .services
                .iter()
                .map(|s| {
                    let default = &s.regions[DEFAULT];
                    ServiceStatus {
                        name: s.name.clone(),
                        fqdn: s.fqdn.to_string(),
                        ttl: s.ttl,
                        active: s.targets[default.active].name.clone(),
                        mode: Mode::of(default),
                        failback: s.failback,
                        pin: default.pin.clone(),
                        all_down: s.all_down_alarm,
                        drill: drill(s, default),
                        targets: s
                            .targets
                            .iter()
                            .map(|t| TargetStatus {
                                name: t.name.clone(),
                                addresses: t.addresses.clone(),
                                healthy: t.health.healthy(),
                                drained: s.drains.get(&t.name).cloned(),
                                last_check: t.last.as_ref().map(|o| CheckView {
                                    ok: o.ok,
                                    detail: o.detail.clone(),
                                    latency_ms: o.latency.as_secs_f64() * 1000.0,
                                    at: o
                                        .at
                                        .duration_since(UNIX_EPOCH)
                                        .map_or(0.0, |d| d.as_secs_f64()),
                                }),
                            })
                            .collect(),
                        // A per-region service: its listed regions, then
                        // the default one, which answers everybody else.
                        regions: match s.is_regional() {
                            false => Vec::new(),
                            true => s.regions[1..]
                                .iter()
                                .chain(std::iter::once(default))
                                .map(|r| RegionStatus {
                                    name: r.name.clone(),
                                    active: s.targets[r.active].name.clone(),
                                    addresses: s.targets[r.active].addresses.clone(),
                                    order: r
                                        .order
                                        .iter()
                                        .map(|&t| s.targets[t].name.clone())
                                        .collect(),
                                    pin: r.pin.clone(),
                                    drill: drill(s, r),
                                })
                                .collect(),
                        },
                    }
                })
                .collect(),
            zones: self
                .publisher
                .serials()
                .into_iter()
                .map(|(origin, serial)| ZoneStatus { origin, serial })
                .collect(),
            publishers: self
                .remote_status
                .iter()
                .map(|s| s.lock().unwrap().clone())
                .collect(),
            cluster: self
                .cluster_view
                .as_ref()
                .map(|v| v.lock().unwrap().clone()),
        }
    }

    /// The result of a change to region `ri` of service `si`.
    pub(super) fn change_view(
        &self,
        (si, ri): (usize, usize),
        from: usize,
        to: usize,
        dry_run: bool,
    ) -> ChangeView {
        let s = &self.services[si];
        let r = &s.regions[ri];
        ChangeView {
            service: s.name.clone(),
            from: s.targets[from].name.clone(),
            to: s.targets[to].name.clone(),
            changed: from != to,
            mode: Mode::of(r),
            addresses: s.targets[to].addresses.clone(),
            dry_run,
            warning: None,
            region: r.listed().map(str::to_string),
        }
    }
}
