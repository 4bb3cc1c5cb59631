//! What only per-region services have, without sockets: regions with
//! different orders moving independently on one site failure, and the
//! region state carried by the persisted state (what a cluster follower
//! applies). Every other rule is tested on both kinds of service by
//! `tests.rs`.

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use arc_swap::ArcSwap;
use hickory_proto::rr::Name;

use super::*;
use crate::monitor::ProbeKey;
use crate::proto::zone::ZoneData;
use crate::snapshot::Snapshot;

const ZONE: &str = "@ 60 IN SOA ns1 h 10 1 1 1 1\n@ 60 IN NS ns1\nns1 60 IN A 127.0.0.1\n";

fn config() -> Config {
    let text = r#"
[[zone]]
origin = "ggon.org"
file = "zones/ggon.org.zone"

[[region]]
name = "eu"
nets = ["10.1.0.0/16"]

[[region]]
name = "us"
nets = ["10.2.0.0/16"]

[[service]]
name = "geo"
fqdn = "geo.ggon.org"
failback = "auto"
hold_down = "10s"
active = "per-region"
order = { eu = ["ams", "nyc"], us = ["nyc", "ams"] }

[[service.target]]
name = "ams"
addresses = ["127.0.0.11"]
check = { type = "tcp", address = "127.0.0.11:8080", rise = 1, fall = 1 }

[[service.target]]
name = "nyc"
addresses = ["127.0.0.12"]
check = { type = "tcp", address = "127.0.0.12:8080", rise = 1, fall = 1 }
"#;
    Config::parse(text, Path::new("test.toml")).expect("valid test config")
}

struct Rig {
    ctl: Controller,
    snap: Arc<ArcSwap<Snapshot>>,
    _dir: tempfile::TempDir,
    t0: Instant,
}

fn rig() -> Rig {
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = config();
    cfg.server.state_dir = dir.path().to_path_buf();
    let snap = Arc::new(ArcSwap::from_pointee(Snapshot::default()));
    let mut publisher = Publisher::new(snap.clone());
    let origin = Name::from_ascii("ggon.org.").unwrap();
    publisher
        .add_zone(ZoneData::parse(ZONE, None, &origin).unwrap(), None)
        .unwrap();
    let t0 = Instant::now();
    let now = Now {
        at: t0,
        unix: 1_800_000_000,
    };
    let store = StateStore::new(dir.path()).unwrap();
    Rig {
        ctl: Controller::new_at(&cfg, crate::geo::nets_map(&cfg), publisher, store, now),
        snap,
        _dir: dir,
        t0,
    }
}

impl Rig {
    fn at(&self, secs: u64) -> Now {
        Now {
            at: self.t0 + Duration::from_secs(secs),
            unix: 1_800_000_000 + secs,
        }
    }

    fn check(&mut self, target: &str, ok: bool, secs: u64) {
        let obs = Observation {
            key: ProbeKey {
                service: "geo".into(),
                target: target.into(),
            },
            outcome: CheckOutcome {
                ok,
                detail: String::new(),
                latency: Duration::from_millis(1),
                at: SystemTime::now(),
            },
        };
        self.ctl.observe(obs, self.at(secs));
    }

    /// What a client at `src` is answered, through the query path.
    fn answer(&self, src: &str) -> String {
        super::tests::answer(&self.snap, "geo.ggon.org.", src)
    }
}

#[test]
fn regions_fail_over_and_back_on_their_own_orders() {
    let mut r = rig();
    r.check("ams", true, 1);
    r.check("nyc", true, 1);
    assert_eq!(r.answer("10.1.0.1"), "127.0.0.11");
    assert_eq!(r.answer("10.2.0.1"), "127.0.0.12");
    // ams down: eu moves, us does not.
    r.check("ams", false, 2);
    assert_eq!(r.answer("10.1.0.1"), "127.0.0.12");
    assert_eq!(r.answer("10.2.0.1"), "127.0.0.12");
    // ams back: auto failback after the hold-down, in eu only.
    r.check("ams", true, 3);
    r.ctl.tick(r.at(5));
    assert_eq!(r.answer("10.1.0.1"), "127.0.0.12", "within the hold-down");
    r.ctl.tick(r.at(14));
    assert_eq!(r.answer("10.1.0.1"), "127.0.0.11");
    assert_eq!(r.answer("10.2.0.1"), "127.0.0.12");
}

#[test]
fn region_state_travels_in_the_persisted_state() {
    let mut leader = rig();
    let mut follower = rig();
    for r in [&mut leader, &mut follower] {
        r.check("ams", true, 1);
        r.check("nyc", true, 1);
    }
    // A region pin alone: the service-level answer and the serial stay.
    let req = super::requests::Remap {
        to: "nyc".into(),
        region: Some("eu".into()),
        ..Default::default()
    };
    let view = leader
        .ctl
        .remap("geo", &req, &Actor::new("ops"), leader.at(2))
        .unwrap();
    assert_eq!(view.region.as_deref(), Some("eu"));
    assert_eq!(leader.answer("10.1.0.1"), "127.0.0.12");
    let state = leader.ctl.persisted();
    let eu = &state.services["geo"].regions["eu"];
    assert_eq!(eu.active, "nyc");
    assert_eq!(eu.pin.as_ref().map(|p| p.target.as_str()), Some("nyc"));
    assert_eq!(state.services["geo"].active, "ams");
    // Through JSON, as the state file and etcd hold it.
    let json = serde_json::to_string(&state).unwrap();
    let copy: PersistedState = serde_json::from_str(&json).unwrap();
    assert_eq!(follower.answer("10.1.0.1"), "127.0.0.11");
    follower.ctl.apply_shared(copy, follower.at(3));
    assert_eq!(follower.answer("10.1.0.1"), "127.0.0.12");
    assert_eq!(follower.answer("10.2.0.1"), "127.0.0.12");
    let st = follower.ctl.status();
    let eu = st.services[0].regions.iter().find(|r| r.name == "eu");
    assert!(eu.is_some_and(|r| r.pin.is_some()), "the pin came along");
}
