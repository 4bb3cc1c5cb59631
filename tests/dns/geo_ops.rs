//! Geographic answers, operated: per-region remap, release and drill, the
//! region state across a restart, a GeoIP (.mmdb) database written here,
//! and the configs ggond refuses.

use std::process::{Command, Stdio};

use crate::geo::{allow_ecs, ask_from, geo_service, wait_region, REGIONS, WWW};
use crate::support::ggond::*;
use crate::support::mmdb::{country_db, Network};

fn a_from(port: u16, src: &str) -> Vec<String> {
    ask_from(port, src, WWW, "A", &[]).addrs
}

/// eu, us and no-region clients' answers.
fn answers(port: u16) -> [String; 3] {
    ["127.0.15.9", "127.0.16.9", "127.0.17.9"].map(|s| a_from(port, s).join(","))
}

fn region<'a>(status: &'a serde_json::Value, name: &str) -> &'a serde_json::Value {
    status["regions"]
        .as_array()
        .expect("regions")
        .iter()
        .find(|r| r["name"] == name)
        .unwrap_or_else(|| panic!("no region {name} in {status}"))
}

#[test]
fn per_region_remap_release_and_drill_and_the_state_survives_a_restart() {
    let ams = HttpTarget::start(ip("127.0.14.21"));
    let fra = HttpTarget::start(ip("127.0.14.22"));
    let nyc = HttpTarget::start(ip("127.0.14.23"));
    let (a, f, n) = ("127.0.14.21", "127.0.14.22", "127.0.14.23");
    let order = r#"{ eu = ["ams", "fra", "nyc"], us = ["nyc", "ams"], default = ["fra", "nyc"] }"#;
    let services = format!(
        "{REGIONS}{}",
        geo_service(
            "geo",
            "geo.ggon.org",
            Some(order),
            &[("ams", &ams), ("fra", &fra), ("nyc", &nyc)]
        )
    );
    let mut env = Env::demo(&services);
    allow_ecs(&env, "ggon.org.zone");
    let mut d = env.start();
    let port = d.dns.port();
    for t in ["ams", "fra", "nyc"] {
        d.wait_health("geo", t, true, secs(10.0));
    }
    assert_eq!(answers(port), [a, n, f]);

    // One region pinned: only eu moves.
    let out = d.ctl(&[
        "remap",
        "geo",
        "--to",
        "nyc",
        "--region",
        "eu",
        "--reason",
        "eu maintenance",
        "--json",
    ]);
    assert!(out.ok(), "{out:?}");
    assert_eq!(out.json()["region"], "eu");
    assert_eq!(answers(port), [n, n, f]);
    let s = d.service("geo");
    assert_eq!(region(&s, "eu")["pin"]["target"], "nyc");
    assert!(region(&s, "us")["pin"].is_null());
    assert!(
        s["pin"].is_null(),
        "the service-level (default) answer is not pinned"
    );

    // A restart answers the saved region state at once.
    d.stop();
    let mut d = env.start();
    let port = d.dns.port();
    assert_eq!(answers(port), [n, n, f], "right after the restart");
    assert_eq!(region(&d.service("geo"), "eu")["pin"]["target"], "nyc");
    for t in ["ams", "fra", "nyc"] {
        d.wait_health("geo", t, true, secs(10.0));
    }

    // Release that region: back to its first choice.
    let out = d.ctl(&["release", "geo", "--region", "eu"]);
    assert!(out.ok(), "{out:?}");
    assert_eq!(answers(port), [a, n, f]);

    // Remap without --region: every region and the default.
    assert!(d.ctl(&["remap", "geo", "--to", "fra"]).ok());
    assert_eq!(answers(port), [f, f, f]);
    assert!(d.ctl(&["release", "geo"]).ok());
    assert_eq!(answers(port), [a, n, f]);

    // A dry-run drill of one region says which region it is about.
    let out = d.ctl(&["drill", "geo", "--region", "us"]);
    assert!(out.ok(), "{out:?}");
    assert!(
        out.stdout
            .starts_with("service:   geo (geo.ggon.org.) region us\n")
            && out
                .stdout
                .contains("note:      ams would take over in region us"),
        "{out:?}"
    );

    // A drill in us only: nyc treated as failed there; eu and the default
    // are not touched; it ends by itself and us goes back.
    let out = d.ctl(&[
        "drill", "geo", "--region", "us", "--fail", "nyc", "--for", "2s", "--json",
    ]);
    assert!(out.ok(), "{out:?}");
    assert_eq!(out.json()["takeover"], "ams");
    assert_eq!(answers(port), [a, a, f]);
    wait_region(port, "127.0.16.9", n, secs(8.0));
    assert_eq!(answers(port), [a, n, f]);

    // An unknown region is refused, naming the ones there are.
    let out = d.ctl(&["remap", "geo", "--to", "fra", "--region", "mars"]);
    assert!(!out.ok());
    assert!(out.stderr.contains("no order for region `mars`"), "{out:?}");

    // The history tells which region each change was in.
    let h = d.ctl(&["history", "geo", "--json"]).json()["entries"].clone();
    let entries = h.as_array().unwrap();
    let has = |kind: &str, region: &str| {
        entries
            .iter()
            .any(|e| e["kind"] == kind && e["region"] == region)
    };
    assert!(
        has("remap", "eu")
            && has("release", "eu")
            && has("drill_start", "us")
            && has("drill_end", "us"),
        "{h}"
    );
    let text = d.ctl(&["history", "geo"]).stdout;
    assert!(text.contains("geo@eu"), "{text}");
    let status = d.ctl(&["status", "geo"]).stdout;
    assert!(
        status.contains("REGION") && status.contains("ams > fra > nyc"),
        "{status}"
    );
    d.stop();
}

#[test]
fn a_geoip_database_maps_countries_and_continents_to_regions() {
    let a = HttpTarget::start(ip("127.0.14.31"));
    let b = HttpTarget::start(ip("127.0.14.32"));
    let c = HttpTarget::start(ip("127.0.14.33"));
    let db = country_db(&[
        Network {
            net: ip("127.0.18.0"),
            len: 24,
            country: "DE",
            continent: "EU",
        },
        Network {
            net: ip("127.0.19.0"),
            len: 24,
            country: "US",
            continent: "NA",
        },
        Network {
            net: ip("127.0.20.0"),
            len: 24,
            country: "JP",
            continent: "AS",
        },
    ]);
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("country.mmdb");
    std::fs::write(&path, db).unwrap();
    let nets = dir.path().join("us.nets");
    std::fs::write(
        &nets,
        "# more us clients\n127.0.21.0/24  # a comment\n\n127.0.22.0/24\n",
    )
    .unwrap();
    let regions = format!(
        "[[region]]\nname = \"eu\"\nnets = [\"127.0.19.128/25\"]\n\
         geoip = {{ database = \"{p}\", countries = [\"DE\", \"FR\"] }}\n\n\
         [[region]]\nname = \"us\"\nnets_file = \"{n}\"\n\
         geoip = {{ database = \"{p}\", continents = [\"NA\"] }}\n\n",
        p = path.display(),
        n = nets.display()
    );
    let order = r#"{ eu = ["a", "b"], us = ["b", "a"], default = ["c", "a"] }"#;
    let services = format!(
        "{regions}{}",
        geo_service(
            "geo",
            "geo.ggon.org",
            Some(order),
            &[("a", &a), ("b", &b), ("c", &c)]
        )
    );
    let mut env = Env::demo(&services);
    let d = env.start();
    let port = d.dns.port();
    for t in ["a", "b", "c"] {
        d.wait_health("geo", t, true, secs(10.0));
    }
    // DE → eu; US (continent NA) → us, but its upper half is eu by `nets`
    // (the longer prefix wins); JP is in no region.
    assert_eq!(a_from(port, "127.0.18.5"), ["127.0.14.31"]);
    assert_eq!(a_from(port, "127.0.19.5"), ["127.0.14.32"]);
    assert_eq!(a_from(port, "127.0.19.200"), ["127.0.14.31"]);
    assert_eq!(a_from(port, "127.0.20.5"), ["127.0.14.33"]);
    // nets_file: us.
    assert_eq!(a_from(port, "127.0.21.5"), ["127.0.14.32"]);
    assert_eq!(a_from(port, "127.0.22.5"), ["127.0.14.32"]);
    assert_eq!(a_from(port, "127.0.23.5"), ["127.0.14.33"]);

    // A database that is not there: refused at load, naming file, line, field.
    let bad = std::fs::read_to_string(&env.config)
        .unwrap()
        .replace("country.mmdb", "missing.mmdb");
    let (code, stderr) = check_config(&bad);
    assert_eq!(code, Some(2), "{stderr}");
    assert!(
        stderr.contains("ggon.toml:")
            && stderr.contains("region.geoip")
            && stderr.contains("missing.mmdb"),
        "{stderr}"
    );
    // A bad line in a nets_file: its file and line.
    std::fs::write(&nets, "127.0.21.0/24\n127.0.22.1/24\n").unwrap();
    let cfg = std::fs::read_to_string(&env.config).unwrap();
    let (code, stderr) = check_config(&cfg);
    assert_eq!(code, Some(2), "{stderr}");
    assert!(
        stderr.contains("region.nets_file")
            && stderr.contains("us.nets:2")
            && stderr.contains("host bits"),
        "{stderr}"
    );
}

/// `ggond --check-config` on `config` (with the demo zone beside it).
fn check_config(config: &str) -> (Option<i32>, String) {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("ggon.org.zone"), DEMO_ZONE).unwrap();
    std::fs::write(dir.path().join("ggon.toml"), config).unwrap();
    let out = Command::new(GGOND)
        .args(["--check-config", "--config", "ggon.toml"])
        .current_dir(dir.path())
        .stdin(Stdio::null())
        .output()
        .expect("run ggond --check-config");
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

const PER_REGION: &str = r#"
[[region]]
name = "eu"
nets = ["192.0.2.0/24"]

[[service]]
name = "geo"
fqdn = "geo.ggon.org"
active = "per-region"
order = { eu = ["a"], default = ["a"] }

[[service.target]]
name = "a"
addresses = ["127.0.14.41"]
check = { type = "tcp", address = "127.0.14.41:80" }
"#;

#[test]
fn per_region_services_need_ggond_to_answer_and_a_sound_order() {
    // Accepted in a local zone.
    let local = format!("[[zone]]\norigin = \"ggon.org\"\nfile = \"ggon.org.zone\"\n{PER_REGION}");
    let (code, stderr) = check_config(&local);
    assert_eq!(code, Some(0), "{stderr}");
    // RFC 2136 mode (even serving a copy) and secondaries cannot express it.
    for mode in [
        "mode = \"rfc2136\"\nprimary = \"127.0.0.1:5399\"\nserve = true\nfile = \"ggon.org.zone\"",
        "mode = \"secondary\"\nprimary = \"127.0.0.1:5399\"",
    ] {
        let cfg = format!("[[zone]]\norigin = \"ggon.org\"\n{mode}\n{PER_REGION}");
        let (code, stderr) = check_config(&cfg);
        assert_eq!(code, Some(2), "{stderr}");
        assert!(
            stderr.contains("service.active") && stderr.contains("per-region answers"),
            "{stderr}"
        );
        assert!(
            stderr.contains("ggon.toml:"),
            "names the file and line: {stderr}"
        );
    }
    // Online-signed zones: per-region answers are signed, but the targets
    // must share address families (one NSEC bitmap for every region).
    let signed = "[[zone]]\norigin = \"ggon.org\"\nfile = \"ggon.org.zone\"\n\
                  dnssec = { keys = [\"Kggon.org.+013+00001\"] }\n";
    let v6 = "\n[[service.target]]\nname = \"b\"\naddresses = [\"2001:db8::b\"]\n\
              check = { type = \"tcp\", address = \"127.0.14.42:80\" }\n";
    let (code, stderr) = check_config(&format!("{signed}{PER_REGION}{v6}"));
    assert_eq!(code, Some(2), "{stderr}");
    assert!(
        stderr.contains("service.target.addresses")
            && stderr.contains("same address families")
            && stderr.contains("`a` has IPv4 only, `b` has IPv6 only"),
        "{stderr}"
    );
    // An order for a region that does not exist, a target that does not,
    // an order on a single service, a host-bits prefix.
    for (from, to, says) in [
        (
            "eu = [\"a\"]",
            "mars = [\"a\"]",
            "no [[region]] is named `mars` (an order is for one of: `eu`, or `default` for clients in none)",
        ),
        ("eu = [\"a\"]", "eu = [\"b\"]", "has no target `b`"),
        (
            "active = \"per-region\"\n",
            "",
            "needs active = \"per-region\"",
        ),
        ("192.0.2.0/24", "192.0.2.1/24", "host bits set"),
    ] {
        let cfg = local.replace(from, to);
        assert_ne!(cfg, local);
        let (code, stderr) = check_config(&cfg);
        assert_eq!(code, Some(2), "{stderr}");
        assert!(stderr.contains(says), "{says}: {stderr}");
    }
}
