//! The test rig: a controller over a tempdir, a real publisher and
//! snapshot, time passed in by hand, and the answer read the way a DNS
//! client gets it.

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use arc_swap::ArcSwap;
use hickory_proto::op::{Message, MessageType, OpCode, Query};
use hickory_proto::rr::{Name, RData, RecordType};
use hickory_proto::serialize::binary::BinDecodable;
use tokio::sync::oneshot;

use super::super::requests::{DrainRequest, DrillRequest, HistoryQuery, RemapRequest};
use super::super::state::RegionState;
use super::super::*;
use crate::dns::{respond_from, Transport};
use crate::monitor::ProbeKey;
use crate::proto::zone::ZoneData;
use crate::snapshot::Snapshot;

pub(crate) const ZONE: &str =
    "@ 60 IN SOA ns1 h 10 1 1 1 1\n@ 60 IN NS ns1\nns1 60 IN A 127.0.0.1\n";

/// The service `cic` with three targets; `regional`: per-region, with
/// `eu` in the same order as the default and `us` in the opposite one.
pub(crate) fn config_for(failback: &str, regional: bool) -> Config {
    let regions = if regional {
        r#"
[[region]]
name = "eu"
nets = ["10.1.0.0/16"]

[[region]]
name = "us"
nets = ["10.2.0.0/16"]
"#
    } else {
        ""
    };
    let order = if regional {
        r#"active = "per-region"
order = { eu = ["primary", "backup", "backup2"], us = ["backup2", "backup", "primary"] }"#
    } else {
        ""
    };
    let text = format!(
        r#"
[[zone]]
origin = "ggon.org"
file = "zones/ggon.org.zone"
{regions}
[[service]]
name = "cic"
fqdn = "cic.ggon.org"
failback = "{failback}"
hold_down = "10s"
{order}

[[service.target]]
name = "primary"
addresses = ["127.0.0.11"]
check = {{ type = "tcp", address = "127.0.0.11:8080", rise = 1, fall = 1 }}

[[service.target]]
name = "backup"
addresses = ["127.0.0.12"]
check = {{ type = "tcp", address = "127.0.0.12:8080", rise = 1, fall = 1 }}

[[service.target]]
name = "backup2"
addresses = ["127.0.0.13"]
check = {{ type = "tcp", address = "127.0.0.13:8080", rise = 1, fall = 1 }}
"#
    );
    Config::parse(&text, Path::new("test.toml")).expect("valid test config")
}

pub(crate) fn config(failback: &str) -> Config {
    config_for(failback, false)
}

/// What a client at `src` is answered for `name`, through the query path.
pub(crate) fn answer(snap: &ArcSwap<Snapshot>, name: &str, src: &str) -> String {
    let mut m = Message::new(7, MessageType::Query, OpCode::Query);
    m.add_query(Query::query(Name::from_ascii(name).unwrap(), RecordType::A));
    let mut out = Vec::new();
    let snap = snap.load();
    respond_from(
        &snap,
        &m.to_vec().unwrap(),
        Transport::Udp,
        Some(src.parse().unwrap()),
        &mut out,
    );
    let r = Message::from_bytes(&out).unwrap();
    r.answers
        .iter()
        .filter_map(|a| match &a.data {
            RData::A(a) => Some(a.to_string()),
            _ => None,
        })
        .collect::<Vec<_>>()
        .join(",")
}

/// Which answer a rig drives and reads: the plain service's, or region
/// `eu` of the per-region one.
#[derive(Clone, Copy, PartialEq)]
pub(crate) enum Kind {
    Plain,
    Regional,
}

impl Kind {
    pub(crate) fn region(self) -> Option<String> {
        (self == Kind::Regional).then(|| "eu".to_string())
    }
}

/// A controller over a tempdir, and the clock it is driven with.
pub(crate) struct Rig {
    pub(crate) ctl: Controller,
    pub(crate) snap: Arc<ArcSwap<Snapshot>>,
    pub(crate) dir: tempfile::TempDir,
    pub(crate) t0: Instant,
    pub(crate) u0: u64,
    pub(crate) kind: Kind,
    pub(crate) failback: String,
}

pub(crate) fn start(cfg: &Config, dir: tempfile::TempDir) -> Rig {
    start_at(cfg, dir, None)
}

/// A rig of `kind` on a fresh state directory.
pub(crate) fn rig_of(kind: Kind, failback: &str) -> Rig {
    let cfg = config_for(failback, kind == Kind::Regional);
    let mut r = start(&cfg, tempfile::tempdir().unwrap());
    (r.kind, r.failback) = (kind, failback.to_string());
    r
}

/// As [`start`], at `secs` on the rig's clocks when given (a restart).
pub(crate) fn start_at(cfg: &Config, dir: tempfile::TempDir, secs: Option<u64>) -> Rig {
    let (t0, u0) = (Instant::now(), 1_800_000_000);
    let now = secs.map_or_else(Now::system, |s| Now {
        at: t0 + Duration::from_secs(s),
        unix: u0 + s,
    });
    let mut cfg = cfg.clone();
    cfg.server.state_dir = dir.path().to_path_buf();
    let snap = Arc::new(ArcSwap::from_pointee(Snapshot::default()));
    let mut publisher = Publisher::new(snap.clone());
    let origin = Name::from_ascii("ggon.org.").unwrap();
    let zone = ZoneData::parse(ZONE, None, &origin).unwrap();
    let store = StateStore::new(dir.path()).unwrap();
    // As the daemon does: the zone resumes after its last published serial.
    let last = match store.load() {
        Loaded::Ok(s) => s.serials.get("ggon.org.").copied(),
        _ => None,
    };
    publisher.add_zone(zone, last).unwrap();
    Rig {
        ctl: Controller::new_at(&cfg, crate::geo::nets_map(&cfg), publisher, store, now),
        snap,
        dir,
        t0,
        u0,
        kind: Kind::Plain,
        failback: "manual".into(),
    }
}

pub(crate) fn rig(failback: &str) -> Rig {
    start(&config(failback), tempfile::tempdir().unwrap())
}

impl Rig {
    pub(crate) fn at(&self, secs: u64) -> Now {
        Now {
            at: self.t0 + Duration::from_secs(secs),
            unix: self.u0 + secs,
        }
    }

    pub(crate) fn check(&mut self, target: &str, ok: bool, secs: u64) {
        let obs = Observation {
            key: ProbeKey {
                service: "cic".into(),
                target: target.into(),
            },
            outcome: CheckOutcome {
                ok,
                detail: if ok { "connected" } else { "refused" }.into(),
                latency: Duration::from_millis(1),
                at: SystemTime::now(),
            },
        };
        self.ctl.observe(obs, self.at(secs));
    }

    pub(crate) fn all_up(&mut self, secs: u64) {
        for t in ["primary", "backup", "backup2"] {
            self.check(t, true, secs);
        }
    }

    /// The target the rig's answer is on.
    pub(crate) fn active(&self) -> String {
        let st = self.ctl.status();
        match self.kind.region() {
            None => st.services[0].active.clone(),
            Some(region) => st.services[0]
                .regions
                .iter()
                .find(|r| r.name == region)
                .expect("region shown")
                .active
                .clone(),
        }
    }

    /// The rig's answer's pin, as status shows it.
    pub(crate) fn pinned(&self) -> bool {
        let st = self.ctl.status();
        match self.kind.region() {
            None => st.services[0].pin.is_some(),
            Some(region) => st.services[0]
                .regions
                .iter()
                .any(|r| r.name == region && r.pin.is_some()),
        }
    }

    /// The rig's answer's drill, as status shows it.
    pub(crate) fn drill_shown(&self) -> Option<(String, u64)> {
        let st = self.ctl.status();
        match self.kind.region() {
            None => st.services[0].drill.clone(),
            Some(region) => st.services[0]
                .regions
                .iter()
                .find(|r| r.name == region)
                .and_then(|r| r.drill.clone()),
        }
    }

    /// The rig's answer's saved state.
    pub(crate) fn saved_answer(&self) -> RegionState {
        let region = self.kind.region().unwrap_or_else(|| "default".into());
        self.saved().services["cic"].region(&region).expect("saved")
    }

    /// What a DNS client gets: in the zone for the plain service, through
    /// the query path from an `eu` address for the regional one.
    pub(crate) fn answered(&self) -> String {
        if self.kind == Kind::Regional {
            return answer(&self.snap, "cic.ggon.org.", "10.1.0.1");
        }
        let snap = self.snap.load();
        let zone = snap
            .zone(&Name::from_ascii("ggon.org.").unwrap())
            .expect("zone served");
        let name = Name::from_ascii("cic.ggon.org.").unwrap();
        let set = zone.data.rrsets[&name][&hickory_proto::rr::RecordType::A].clone();
        set.rdatas
            .iter()
            .map(|r| r.to_string())
            .collect::<Vec<_>>()
            .join(",")
    }

    pub(crate) fn call<T>(
        &mut self,
        secs: u64,
        make: impl FnOnce(oneshot::Sender<T>) -> Command,
    ) -> T {
        let (tx, mut rx) = oneshot::channel();
        let now = self.at(secs);
        self.ctl.command(make(tx), now);
        rx.try_recv().expect("the controller answers at once")
    }

    pub(crate) fn remap(
        &mut self,
        secs: u64,
        mut req: RemapRequest,
    ) -> Result<ChangeView, CtlError> {
        req.region = self.kind.region();
        // Parsed as the control API parses the body.
        let req = req.parse()?;
        self.call(secs, |reply| Command::Remap {
            service: "cic".into(),
            request: req,
            actor: Actor::new("ops"),
            reply,
        })
    }

    pub(crate) fn drain(
        &mut self,
        secs: u64,
        target: &str,
        req: DrainRequest,
    ) -> Result<ChangeView, CtlError> {
        let req = req.parse()?;
        self.call(secs, |reply| Command::Drain {
            service: "cic".into(),
            target: target.into(),
            request: req,
            actor: Actor::new("ops"),
            reply,
        })
    }

    pub(crate) fn kinds(&mut self) -> Vec<EventKind> {
        self.history().into_iter().map(|e| e.kind).collect()
    }

    /// Stop (as a crash would: nothing more is saved) and start again on
    /// the same state directory at `secs`.
    pub(crate) fn restart_at(mut self, secs: u64) -> Rig {
        let dir = std::mem::replace(&mut self.dir, tempfile::tempdir().unwrap());
        let (kind, failback) = (self.kind, self.failback.clone());
        drop(self);
        let cfg = config_for(&failback, kind == Kind::Regional);
        let mut r = start_at(&cfg, dir, Some(secs));
        (r.kind, r.failback) = (kind, failback);
        r
    }

    pub(crate) fn release(&mut self, secs: u64) -> Result<ChangeView, CtlError> {
        let region = self.kind.region();
        self.call(secs, |reply| Command::Release {
            service: "cic".into(),
            region,
            actor: Actor::new("ops"),
            reply,
        })
    }

    pub(crate) fn history(&mut self) -> Vec<Event> {
        self.call(0, |reply| Command::History {
            query: HistoryQuery {
                limit: 100,
                ..HistoryQuery::default()
            },
            reply,
        })
    }

    pub(crate) fn drill(&mut self, secs: u64, target: &str, duration: &str) -> DrillView {
        let request = DrillRequest {
            fail: Some(target.into()),
            duration: Some(duration.into()),
            region: None,
        };
        self.drill_request(secs, request).unwrap()
    }

    pub(crate) fn drill_request(
        &mut self,
        secs: u64,
        mut request: DrillRequest,
    ) -> Result<DrillView, CtlError> {
        request.region = self.kind.region();
        let request = request.parse()?;
        self.call(secs, |reply| Command::Drill {
            service: "cic".into(),
            request,
            actor: Actor::new("ops"),
            reply,
        })
    }

    pub(crate) fn saved(&self) -> PersistedState {
        match StateStore::new(self.dir.path()).unwrap().load() {
            Loaded::Ok(s) => s,
            other => panic!("state file: {other:?}"),
        }
    }
}

pub(crate) fn to(target: &str) -> RemapRequest {
    RemapRequest {
        to: target.into(),
        ..RemapRequest::default()
    }
}
