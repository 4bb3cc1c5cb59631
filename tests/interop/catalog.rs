//! Catalog zones (RFC 9432): a BIND or Knot secondary configured with
//! nothing but ggond's catalog zone serves every zone ggond answers, and
//! drops the one a config reload removes. A reload with a bad `[catalog]`
//! is refused, naming file, line and field, and the catalog stays.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use super::*;
use support::knot::Knot;

const CATALOG: &str = "catalog.ggon.invalid";

/// The member zones beside ggon.org: (origin, the address of its `www`).
const SMALL: [(&str, &str); 3] = [
    ("a.test", "127.0.0.61"),
    ("b.test", "127.0.0.62"),
    ("c.test", "127.0.0.63"),
];

/// What the harness needs of a consumer.
trait Consumer {
    fn port(&self) -> u16;
    fn log_tail(&self) -> String;
}

impl Consumer for Bind {
    fn port(&self) -> u16 {
        self.port
    }
    fn log_tail(&self) -> String {
        Bind::log_tail(self)
    }
}

impl Consumer for Knot {
    fn port(&self) -> u16 {
        self.port
    }
    fn log_tail(&self) -> String {
        Knot::log_tail(self)
    }
}

/// ggond's config: ggon.org (group `demo`) and `small` zones, each
/// transferable from 127.0.0.1, and the catalog NOTIFYing `notify`.
fn config(dir: &Path, small: &[(&str, &str)], catalog: &str, notify: u16) -> String {
    let mut cfg = format!(
        "[[zone]]\norigin = \"ggon.org\"\nfile = \"{}\"\nallow_transfer = [\"127.0.0.1\"]\n\
         catalog_group = \"demo\"\n",
        zone_copy(dir)
    );
    for (zone, www) in small {
        let file = dir.join(format!("{zone}.zone"));
        let text = format!(
            "$TTL 300\n@ IN SOA ns1 hostmaster 7 3600 600 1209600 300\n@ IN NS ns1\n\
             ns1 IN A 127.0.0.1\nwww IN A {www}\n"
        );
        std::fs::write(&file, text).expect("write zone file");
        cfg += &format!(
            "\n[[zone]]\norigin = \"{zone}\"\nfile = \"{}\"\nallow_transfer = [\"127.0.0.1\"]\n",
            file.display()
        );
    }
    cfg + &format!(
        "\n[catalog]\nname = \"{catalog}\"\nallow_transfer = [\"127.0.0.1\"]\n\
         secondaries = [{{ address = \"127.0.0.1:{notify}\" }}]\n"
    )
}

/// The SOA serial `port` answers for `zone`.
fn serial_of(port: u16, zone: &str) -> Option<u32> {
    dig_short(port, zone, "SOA")
        .first()
        .and_then(|l| l.split_whitespace().nth(2))
        .and_then(|s| s.parse().ok())
}

/// The catalog as ggond transfers it: its serial, member → its unique-id
/// label, member → its group, and the version.
struct Catalog {
    serial: u32,
    ids: BTreeMap<String, String>,
    groups: BTreeMap<String, String>,
    version: Vec<String>,
}

fn catalog(g: &Ggond) -> Catalog {
    let out = dig(g.port(), &[CATALOG, "AXFR"]);
    let rrs = parse_records(&out);
    let serial = rrs.iter().find_map(Rr::soa_serial);
    let serial = serial.unwrap_or_else(|| panic!("no catalog AXFR from ggond: {out}"));
    let zones = format!(".zones.{CATALOG}.");
    let mut ids = BTreeMap::new();
    let mut by_id = BTreeMap::new();
    for r in rrs.iter().filter(|r| r.rtype == "PTR") {
        let id = r.name.strip_suffix(&zones).expect("PTR under zones");
        assert!(!id.contains('.'), "a unique id is one label: {}", r.name);
        let member = r.rdata.trim_end_matches('.').to_string();
        by_id.insert(id.to_string(), member.clone());
        assert!(ids.insert(member, id.to_string()).is_none(), "{out}");
    }
    let mut groups = BTreeMap::new();
    for r in rrs.iter().filter(|r| r.rtype == "TXT") {
        if let Some(id) = r.name.strip_prefix("group.") {
            let member = &by_id[id.strip_suffix(&zones).expect("group under zones")];
            groups.insert(member.clone(), r.rdata.trim_matches('"').to_string());
        }
    }
    let version = rrs
        .iter()
        .filter(|r| r.rtype == "TXT" && r.name == format!("version.{CATALOG}."))
        .map(|r| r.rdata.clone())
        .collect();
    Catalog {
        serial,
        ids,
        groups,
        version,
    }
}

/// Poll until `c` serves each of `zones` as ggond does: the same
/// (non-empty) `www` answer, and with `same_serial` the same SOA serial (a
/// reload bumps every zone's serial, which a consumer learns only at its
/// next refresh when the zone has no `secondaries` to NOTIFY).
fn wait_served<C: Consumer>(c: &C, g: &Ggond, zones: &[&str], same_serial: bool, what: &str) {
    let served = poll(secs(20), Duration::from_millis(200), || {
        zones
            .iter()
            .all(|z| {
                let www = format!("www.{z}");
                let want = dig_short(g.port(), &www, "A");
                serial_of(c.port(), z).is_some()
                    && (!same_serial || serial_of(c.port(), z) == serial_of(g.port(), z))
                    && !want.is_empty()
                    && dig_short(c.port(), &www, "A") == want
            })
            .then_some(())
    });
    assert!(
        served.is_some(),
        "{what} does not serve every member zone of ggond's catalog within 20 s: {zones:?}\n\
         {what}: {}{}",
        c.log_tail(),
        diag(g, &[])
    );
}

/// The whole story against one consumer, started by `start(dir, ggond's
/// DNS address, port)` on the port ggond NOTIFYs.
fn provisions_and_drops<C: Consumer>(
    test: &str,
    what: &str,
    start: impl FnOnce(PathBuf, SocketAddr, u16) -> C,
) {
    let tmp = TestDir::new(test);
    let notify = free_port();
    let gdir = tmp.sub("ggond");
    let mut g = Ggond::start(gdir.clone(), &config(&gdir, &SMALL, CATALOG, notify));
    let before = catalog(&g);
    assert_eq!(
        before.version,
        vec!["\"2\""],
        "version TXT \"2\" (RFC 9432 v2)"
    );
    let mut members: Vec<&str> = SMALL.iter().map(|(z, _)| *z).collect();
    members.push(ZONE);
    members.sort();
    assert_eq!(
        before.ids.keys().map(String::as_str).collect::<Vec<_>>(),
        members
    );
    assert_eq!(
        before.groups,
        BTreeMap::from([(ZONE.to_string(), "demo".to_string())])
    );

    for (z, www) in SMALL {
        assert_eq!(dig_short(g.port(), &format!("www.{z}"), "A"), vec![www]);
    }
    let c = start(tmp.sub(what), g.dns, notify);
    let mut all = members.clone();
    wait_served(&c, &g, &all, true, what);

    // A reload without b.test and with a new d.test: a new serial, the
    // same ids for the zones that stay, b.test dropped, d.test provisioned
    // (its transfer rules follow the reload).
    let kept = [SMALL[0], SMALL[2], ("d.test", "127.0.0.64")];
    std::fs::write(&g.config, config(&gdir, &kept, CATALOG, notify)).expect("rewrite config");
    let out = g.ctl(&["reload"]);
    assert!(out.ok, "reload: {}{}", out.text(), diag(&g, &[]));
    let after = catalog(&g);
    assert!(
        serial_gt(after.serial, before.serial),
        "{} -> {}",
        before.serial,
        after.serial
    );
    let mut expect = before.ids.clone();
    expect.remove("b.test");
    let mut now = after.ids.clone();
    let new_id = now.remove("d.test").expect("d.test joins the catalog");
    assert!(!before.ids.values().any(|id| *id == new_id), "{new_id}");
    assert_eq!(now, expect, "members keep their unique ids across a reload");
    let dropped = poll(secs(15), Duration::from_millis(200), || {
        serial_of(c.port(), "b.test").is_none().then_some(())
    });
    assert!(
        dropped.is_some(),
        "{what} still serves b.test 15 s after ggond's catalog dropped it\n{what}: {}{}",
        c.log_tail(),
        diag(&g, &[])
    );
    all.retain(|z| *z != "b.test");
    all.push("d.test");
    wait_served(&c, &g, &all, false, what);
    bad_catalog_is_refused(&g, &gdir, &kept, notify, after.serial);
    g.stop();
}

/// A bad [catalog] on reload: refused with file, line and field; the
/// running catalog stays at `serial`.
fn bad_catalog_is_refused(g: &Ggond, gdir: &Path, kept: &[(&str, &str)], notify: u16, serial: u32) {
    let bad = config(gdir, kept, "a.test", notify);
    let line = bad
        .lines()
        .position(|l| l == "name = \"a.test\"")
        .expect("the line")
        + 1;
    std::fs::write(&g.config, bad).expect("rewrite config");
    let out = g.ctl(&["reload"]);
    assert!(
        !out.ok,
        "a catalog named like a served zone must be refused"
    );
    let text = out.text();
    assert!(
        text.contains(&format!("ggon.toml:{line}")) && text.contains("`catalog.name`"),
        "the error names ggon.toml:{line} and `catalog.name`: {text}"
    );
    assert_eq!(catalog(g).serial, serial, "the running catalog stays");
}

/// RFC 1982: is `a` later than `b`?
fn serial_gt(a: u32, b: u32) -> bool {
    a != b && a.wrapping_sub(b) < 0x8000_0000
}

#[test]
fn bind_provisions_ggond_zones_from_the_catalog() {
    provisions_and_drops("catalog-bind", "named", |dir, primary, port| {
        Bind::start(
            dir,
            BindSpec::catalog_consumer(primary, CATALOG, Some(port)),
        )
    });
}

#[test]
fn knot_provisions_ggond_zones_from_the_catalog() {
    provisions_and_drops("catalog-knot", "knotd", |dir, primary, port| {
        Knot::catalog_consumer(dir, primary, CATALOG, Some(port))
    });
}
