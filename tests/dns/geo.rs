//! Geographic answers over real sockets: clients located by their source
//! address (`dig -b 127.0.X.Y`) or by EDNS Client Subnet (`dig +subnet`)
//! get their region's target; failures move only the regions that were
//! answering the failed site; the ECS scope prefix; ECS ignored where the
//! zone does not allow it; single-active services unchanged.

use std::time::Duration;

use crate::support::dnstools::{dig, parse_records};
use crate::support::ggond::*;

pub const WWW: &str = "geo.ggon.org.";

/// A second zone, without `ecs`.
pub const OTHER_ZONE: &str = "$ORIGIN other.test.\n$TTL 300\n\
@ IN SOA ns1 hostmaster 1 3600 600 86400 300\n@ IN NS ns1\nns1 IN A 127.0.0.1\n";

/// The regions of these tests: client sources 127.0.15.0/24 and ECS
/// 192.0.2.0/24 (but its upper half, `euw`) and 2001:db8:e::/48 are in
/// `eu`; 127.0.16.0/24 and 198.51.100.0/24 in `us`; anything else (e.g.
/// 127.0.17.9) in no region.
pub const REGIONS: &str = r#"
[[region]]
name = "eu"
nets = ["127.0.15.0/24", "192.0.2.0/24", "2001:db8:e::/48"]

[[region]]
name = "us"
nets = ["127.0.16.0/24", "198.51.100.0/24"]

[[region]]
name = "euw"
nets = ["192.0.2.128/25"]
"#;

/// A `[[service]]` with HTTP-checked targets (fast checks) and, if given,
/// `active = "per-region"` with `order`.
pub fn geo_service(
    name: &str,
    fqdn: &str,
    order: Option<&str>,
    targets: &[(&str, &HttpTarget)],
) -> String {
    let mut s = format!("[[service]]\nname = \"{name}\"\nfqdn = \"{fqdn}\"\nttl = 30\n");
    if let Some(o) = order {
        s.push_str(&format!("active = \"per-region\"\norder = {o}\n"));
    }
    s.push('\n');
    s + &http_targets(targets)
}

/// Turn on `ecs = true` for the zone whose file is `file_suffix`.
pub fn allow_ecs(env: &Env, file_suffix: &str) {
    let text = std::fs::read_to_string(&env.config).unwrap();
    let mut out = String::new();
    for line in text.lines() {
        out.push_str(line);
        out.push('\n');
        if line.starts_with("file = ") && line.ends_with(&format!("{file_suffix}\"")) {
            out.push_str("ecs = true\n");
        }
    }
    assert_ne!(
        out,
        text + "",
        "zone file {file_suffix} not found in the config"
    );
    std::fs::write(&env.config, out).unwrap();
}

/// What one query got: the A/AAAA addresses, and dig's CLIENT-SUBNET line
/// (`192.0.2.0/24/25`: address/source/scope) if the response had ECS.
#[derive(Debug, PartialEq)]
pub struct Got {
    pub addrs: Vec<String>,
    pub subnet: Option<String>,
}

/// Ask `name` `qtype` from source address `src`, with extra dig arguments.
pub fn ask_from(port: u16, src: &str, name: &str, qtype: &str, extra: &[&str]) -> Got {
    let mut args = vec!["-b", src, "+norec", name, qtype];
    args.extend_from_slice(extra);
    let out = dig(port, &args);
    assert!(out.contains("status: NOERROR"), "dig {args:?}: {out}");
    let mut addrs: Vec<String> = parse_records(&out)
        .into_iter()
        .filter(|r| r.rtype == "A" || r.rtype == "AAAA")
        .map(|r| r.rdata)
        .collect();
    addrs.sort();
    let subnet = out
        .lines()
        .find_map(|l| l.trim().strip_prefix("; CLIENT-SUBNET: "))
        .map(|s| s.trim().to_string());
    Got { addrs, subnet }
}

fn a_from(port: u16, src: &str) -> Vec<String> {
    ask_from(port, src, WWW, "A", &[]).addrs
}

/// Poll until the client at `src` gets `want` for www (bounded).
pub fn wait_region(port: u16, src: &str, want: &str, limit: Duration) {
    wait_for(&format!("{src} to get {want}"), limit, || {
        (a_from(port, src) == [want]).then_some(())
    });
}

#[test]
fn each_region_gets_its_first_choice_and_a_failure_moves_only_its_regions() {
    let mut ams = HttpTarget::start(ip("127.0.14.1"));
    let fra = HttpTarget::start(ip("127.0.14.2"));
    let nyc = HttpTarget::start(ip("127.0.14.3"));
    let single = HttpTarget::start(ip("127.0.14.4"));
    let order = r#"{ eu = ["ams", "fra", "nyc"], us = ["nyc", "ams"], euw = ["fra", "ams"], default = ["fra", "nyc"] }"#;
    let mut services = REGIONS.to_string();
    services.push_str(&geo_service(
        "geo",
        "geo.ggon.org",
        Some(order),
        &[("ams", &ams), ("fra", &fra), ("nyc", &nyc)],
    ));
    services.push_str(&geo_service(
        "db",
        "db.ggon.org",
        None,
        &[("only", &single)],
    ));
    let mut env = Env::demo(&services);
    allow_ecs(&env, "ggon.org.zone");
    let d = env.start();
    let port = d.dns.port();
    for t in ["ams", "fra", "nyc"] {
        d.wait_health("geo", t, true, secs(10.0));
    }
    d.wait_health("db", "only", true, secs(10.0));

    // By source address: eu, us, and a client in no region (the default order).
    assert_eq!(a_from(port, "127.0.15.9"), ["127.0.14.1"]);
    assert_eq!(a_from(port, "127.0.16.9"), ["127.0.14.3"]);
    assert_eq!(a_from(port, "127.0.17.9"), ["127.0.14.2"]);

    // A query without ECS never gets ECS back.
    let plain = ask_from(port, "127.0.15.9", WWW, "A", &[]);
    assert_eq!(plain.subnet, None, "{plain:?}");

    // ECS (allowed in ggon.org) locates the client whatever the source; the
    // scope is the block that answers alike: 192.0.2.0/24 holds for a /25
    // only (its upper half is `euw`).
    let eu = ask_from(port, "127.0.16.9", WWW, "A", &["+subnet=192.0.2.0/24"]);
    assert_eq!(eu.addrs, ["127.0.14.1"]);
    assert_eq!(eu.subnet.as_deref(), Some("192.0.2.0/24/25"));
    let euw = ask_from(port, "127.0.16.9", WWW, "A", &["+subnet=192.0.2.128/25"]);
    assert_eq!(euw.addrs, ["127.0.14.2"]);
    assert_eq!(euw.subnet.as_deref(), Some("192.0.2.128/25/25"));
    let us = ask_from(port, "127.0.15.9", WWW, "A", &["+subnet=198.51.100.0/24"]);
    assert_eq!(us.addrs, ["127.0.14.3"]);
    assert_eq!(us.subnet.as_deref(), Some("198.51.100.0/24/24"));
    let v6 = ask_from(
        port,
        "127.0.16.9",
        WWW,
        "A",
        &["+subnet=2001:db8:e:1200::/56"],
    );
    assert_eq!(v6.addrs, ["127.0.14.1"]);
    assert_eq!(v6.subnet.as_deref(), Some("2001:db8:e:1200::/56/48"));
    // A /32 inside us: scope stays the region's /24 (never more than asked
    // for the answer to hold).
    let host = ask_from(port, "127.0.15.9", WWW, "A", &["+subnet=198.51.100.77/32"]);
    assert_eq!(host.addrs, ["127.0.14.3"]);
    assert_eq!(host.subnet.as_deref(), Some("198.51.100.77/32/24"));
    // Source prefix 0: no tailoring asked; located by the source, scope 0.
    let zero = ask_from(port, "127.0.16.9", WWW, "A", &["+subnet=0.0.0.0/0"]);
    assert_eq!(zero.addrs, ["127.0.14.3"]);
    assert_eq!(zero.subnet.as_deref(), Some("0.0.0.0/0/0"));
    // AAAA: the region's target has none: NODATA, still with the scope.
    let aaaa = ask_from(port, "127.0.16.9", WWW, "AAAA", &["+subnet=192.0.2.0/24"]);
    assert!(aaaa.addrs.is_empty(), "{aaaa:?}");
    assert_eq!(aaaa.subnet.as_deref(), Some("192.0.2.0/24/25"));

    // The single-active service answers everybody alike, with scope 0.
    for (src, ecs) in [
        ("127.0.15.9", "192.0.2.0/24"),
        ("127.0.16.9", "198.51.100.0/24"),
    ] {
        let g = ask_from(port, src, "db.ggon.org.", "A", &[&format!("+subnet={ecs}")]);
        assert_eq!(g.addrs, ["127.0.14.4"]);
        assert_eq!(g.subnet, Some(format!("{ecs}/0")));
    }

    // Status shows each region's answer.
    let s = d.service("geo");
    let regions = s["regions"].as_array().expect("regions in status");
    let answer = |r: &str| {
        regions
            .iter()
            .find(|x| x["name"] == r)
            .map(|x| x["active"].as_str().unwrap().to_string())
    };
    assert_eq!(answer("eu").as_deref(), Some("ams"));
    assert_eq!(answer("us").as_deref(), Some("nyc"));
    assert_eq!(answer("default").as_deref(), Some("fra"));

    // ams fails: eu (whose first choice it was) moves to fra; us, euw and
    // the default did not answer ams and stay.
    ams.stop();
    wait_region(port, "127.0.15.9", "127.0.14.2", secs(5.0));
    assert_eq!(a_from(port, "127.0.16.9"), ["127.0.14.3"]);
    assert_eq!(a_from(port, "127.0.17.9"), ["127.0.14.2"]);
    let us = ask_from(port, "127.0.15.9", WWW, "A", &["+subnet=198.51.100.0/24"]);
    assert_eq!(us.addrs, ["127.0.14.3"]);
    let h = d.ctl(&["history", "geo", "--json"]).json()["entries"].clone();
    let failover = h
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["kind"] == "failover")
        .expect("a failover in the history");
    assert_eq!(failover["region"], "eu", "{failover}");
    assert_eq!(failover["from"], "ams");
    assert_eq!(failover["to"], "fra");
    assert_eq!(
        h.as_array()
            .unwrap()
            .iter()
            .filter(|e| e["kind"] == "failover")
            .count(),
        1,
        "only eu moved: {h}"
    );
    // The metrics carry the answer per region.
    let metrics = http_request(d.control, "GET", "/metrics", Some(&d.token()), None).1;
    assert!(
        metrics
            .contains("ggon_region_active_target{service=\"geo\",region=\"eu\",target=\"fra\"} 1"),
        "{metrics}"
    );
    // So does the status page.
    let page = http_request(d.control, "GET", "/", Some(&d.token()), None).1;
    for (region, target) in [("eu", "fra"), ("us", "nyc"), ("default", "fra")] {
        let cell = format!("data-region=\"{region}\">{region}: {target}</div>");
        assert!(page.contains(&cell), "{cell} in {page}");
    }
}

#[test]
fn ecs_is_ignored_in_a_zone_that_does_not_allow_it() {
    let a = HttpTarget::start(ip("127.0.14.11"));
    let b = HttpTarget::start(ip("127.0.14.12"));
    let mut services = REGIONS.to_string();
    services.push_str(&geo_service(
        "api",
        "api.other.test",
        Some(r#"{ eu = ["a", "b"], us = ["b", "a"] }"#),
        &[("a", &a), ("b", &b)],
    ));
    let mut env = Env::new(
        &[("ggon.org", DEMO_ZONE), ("other.test", OTHER_ZONE)],
        &services,
    );
    allow_ecs(&env, "ggon.org.zone");
    let d = env.start();
    let port = d.dns.port();
    d.wait_health("api", "a", true, secs(10.0));
    d.wait_health("api", "b", true, secs(10.0));
    // From us with an eu subnet: other.test has no `ecs`, so the source
    // decides and no ECS comes back.
    let g = ask_from(
        port,
        "127.0.16.9",
        "api.other.test.",
        "A",
        &["+subnet=192.0.2.0/24"],
    );
    assert_eq!(g.addrs, ["127.0.14.12"]);
    assert_eq!(g.subnet, None);
    let g = ask_from(
        port,
        "127.0.15.9",
        "api.other.test.",
        "A",
        &["+subnet=198.51.100.0/24"],
    );
    assert_eq!(g.addrs, ["127.0.14.11"]);
    assert_eq!(g.subnet, None);
    // No default order: a client in no region gets the service-level answer
    // (the first target while all are up).
    assert_eq!(
        ask_from(port, "127.0.17.9", "api.other.test.", "A", &[]).addrs,
        ["127.0.14.11"]
    );
    // TCP too is located by its source.
    let g = ask_from(port, "127.0.16.9", "api.other.test.", "A", &["+tcp"]);
    assert_eq!(g.addrs, ["127.0.14.12"]);
}
