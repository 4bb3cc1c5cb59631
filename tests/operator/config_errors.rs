//! `ggond --check-config`: the shipped config passes; bad ones exit 2 with an
//! error naming the file, the line and the field.

use std::path::Path;
use std::process::{Command, Stdio};

use crate::support::ggond::{cic_two_targets, ip, Env, HttpTarget, DEMO_ZONE, GGOND, GGON_CTL};

struct Checked {
    code: Option<i32>,
    stdout: String,
    stderr: String,
}

fn check_config(dir: &Path, config: &str) -> Checked {
    let out = Command::new(GGOND)
        .args(["--check-config", "--config", config])
        .current_dir(dir)
        .stdin(Stdio::null())
        .output()
        .expect("run ggond --check-config");
    Checked {
        code: out.status.code(),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

/// A valid config; lines are numbered in the comments so tests can point at them.
const GOOD: &str = r#"[[zone]]
origin = "ggon.org"
file = "ggon.org.zone"

[[service]]
name = "cic"
fqdn = "cic.ggon.org"
ttl = 30

[[service.target]]
name = "primary"
addresses = ["127.0.0.11"]
check = { type = "http", url = "http://127.0.0.11:8080/", interval = "1s" }
"#;
// Line numbers in GOOD: 3 file, 6 name, 7 fqdn, 8 ttl, 12 addresses, 13 check.

/// Write `config` (and the demo zone) into a fresh temp dir and check it.
fn check(config: &str) -> (tempfile::TempDir, Checked) {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("ggon.org.zone"), DEMO_ZONE).unwrap();
    std::fs::write(dir.path().join("ggon.toml"), config).unwrap();
    let out = check_config(dir.path(), "ggon.toml");
    (dir, out)
}

/// Expect exit 2 and an error naming `file:line` and the field.
fn expect_error(config: &str, file_line: &str, field: &str) -> String {
    let (_dir, out) = check(config);
    assert_eq!(out.code, Some(2), "exit 2: {}", out.stderr);
    assert!(
        out.stderr.contains(file_line),
        "names {file_line}: {}",
        out.stderr
    );
    assert!(
        out.stderr.contains(&format!("`{field}`")),
        "names the field `{field}`: {}",
        out.stderr
    );
    assert!(out.stdout.is_empty(), "nothing on stdout: {}", out.stdout);
    out.stderr
}

#[test]
fn the_shipped_config_is_valid() {
    let out = check_config(Path::new(env!("CARGO_MANIFEST_DIR")), "config/ggon.toml");
    assert_eq!(out.code, Some(0), "{}", out.stderr);
    assert!(out.stdout.contains("OK"), "{}", out.stdout);
}

#[test]
fn the_test_baseline_is_valid() {
    let (_dir, out) = check(GOOD);
    assert_eq!(out.code, Some(0), "{}", out.stderr);
}

#[test]
fn a_type_error_names_file_line_and_field() {
    let e = expect_error(
        &GOOD.replace("ttl = 30", "ttl = \"thirty\""),
        "ggon.toml:8",
        "ttl",
    );
    assert!(e.contains("thirty"), "{e}");
    // Inside an inline table.
    expect_error(
        &GOOD.replace("interval = \"1s\"", "interval = 5"),
        "ggon.toml:13",
        "interval",
    );
    // A bad enum value.
    expect_error(
        &GOOD.replace("ttl = 30", "failback = \"sometimes\""),
        "ggon.toml:8",
        "failback",
    );
    // A bad address in a list.
    expect_error(
        &GOOD.replace("127.0.0.11\"]", "127.0.0.300\"]"),
        "ggon.toml:12",
        "addresses",
    );
}

#[test]
fn an_unknown_field_is_named() {
    expect_error(
        &GOOD.replace("ttl = 30", "colour = \"blue\""),
        "ggon.toml:8",
        "colour",
    );
    expect_error(
        &GOOD.replace("interval = \"1s\"", "intervl = \"1s\""),
        "ggon.toml:13",
        "intervl",
    );
}

#[test]
fn a_service_outside_every_zone_is_rejected() {
    let e = expect_error(
        &GOOD.replace("cic.ggon.org\"", "cic.example.com\""),
        "ggon.toml:7",
        "service.fqdn",
    );
    assert!(e.contains("cic.example.com"), "{e}");
}

#[test]
fn a_missing_zone_file_is_named_with_the_config_line() {
    let e = expect_error(
        &GOOD.replace("file = \"ggon.org.zone\"", "file = \"nothere.zone\""),
        "ggon.toml:3",
        "zone.file",
    );
    assert!(e.contains("nothere.zone"), "names the zone file: {e}");
}

#[test]
fn a_bad_zone_file_is_named() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("ggon.toml"), GOOD).unwrap();
    let bad_zones = [
        // No SOA.
        "$ORIGIN ggon.org.\n@ 60 IN NS ns1\nns1 60 IN A 127.0.0.1\n",
        // Not an address.
        "$ORIGIN ggon.org.\n@ 60 IN SOA ns1 h 1 2 3 4 5\n@ 60 IN NS ns1\nns1 60 IN A 127.0.0.999\n",
        // A CNAME beside other data.
        "$ORIGIN ggon.org.\n@ 60 IN SOA ns1 h 1 2 3 4 5\n@ 60 IN NS ns1\nw 60 IN CNAME ns1\nw 60 IN A 127.0.0.1\n",
    ];
    for zone in bad_zones {
        std::fs::write(dir.path().join("ggon.org.zone"), zone).unwrap();
        let out = check_config(dir.path(), "ggon.toml");
        assert_eq!(out.code, Some(2), "{zone}: {}", out.stderr);
        assert!(
            out.stderr.contains("ggon.org.zone"),
            "names the zone file: {}",
            out.stderr
        );
    }
}

#[test]
fn check_config_starts_nothing() {
    // A valid config: exit 0, and no state directory or token file appears.
    let (dir, out) = check(&format!("[server]\nstate_dir = \"st\"\n\n{GOOD}"));
    assert_eq!(out.code, Some(0), "{}", out.stderr);
    assert!(!dir.path().join("st").exists(), "no state dir created");
}

/// Data outside the zone is left out with a warning naming it, as BIND
/// does (every file BIND loads, ggond loads); the zone is served.
#[test]
fn data_outside_the_zone_is_left_out_with_a_warning() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("ggon.toml"), GOOD).unwrap();
    std::fs::write(
        dir.path().join("ggon.org.zone"),
        "$ORIGIN ggon.org.\n@ 60 IN SOA ns1 h 1 2 3 4 5\n@ 60 IN NS ns1\nx.example.com. 60 IN A 127.0.0.1\n",
    )
    .unwrap();
    let out = check_config(dir.path(), "ggon.toml");
    assert_eq!(out.code, Some(0), "{}", out.stderr);
    assert!(
        out.stderr.contains("outside the zone") && out.stderr.contains("x.example.com."),
        "{}",
        out.stderr
    );
}

/// A zone file that already has A records at a service's name loads, but
/// says which file and line hold them and that the service's answer wins.
#[test]
fn static_records_at_a_service_name_are_reported_with_their_line() {
    let dir = tempfile::tempdir().unwrap();
    let zone = dir.path().join("ggon.org.zone");
    std::fs::write(&zone, format!("{DEMO_ZONE}gocdb IN A 192.0.2.13\n")).unwrap();
    let line = DEMO_ZONE.lines().count() + 1;
    let config = dir.path().join("ggon.toml");
    std::fs::write(
        &config,
        format!(
            "[[zone]]\norigin = \"ggon.org\"\nfile = \"{}\"\n\n[[service]]\nname = \"gocdb\"\n\
             fqdn = \"gocdb.ggon.org\"\n[[service.target]]\nname = \"primary\"\n\
             addresses = [\"127.0.0.21\"]\n\
             check = {{ type = \"tcp\", address = \"127.0.0.21:1\" }}\n",
            zone.display()
        ),
    )
    .unwrap();
    let out = Command::new(GGOND)
        .args(["--check-config", "--config"])
        .arg(&config)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    let at = format!("{}:{line}", zone.display());
    assert!(
        stderr.contains(&at) && stderr.contains("service `gocdb` owns"),
        "want a warning at {at}: {stderr}"
    );
}

/// `[cluster]` settings that cannot work: each is refused at start, naming
/// the file, the line and the field.
#[test]
fn cluster_settings_that_cannot_work_are_refused() {
    let cluster = |extra: &str| {
        format!("{GOOD}\n[cluster]\netcd = [\"http://127.0.0.1:2379\"]\nnode = \"n1\"\n{extra}\n")
    };
    // Lines: 15 [cluster], 16 etcd, 17 node, 18 the extra setting.
    let msg = expect_error(
        &cluster("lease_ttl = \"1s\""),
        "ggon.toml:17",
        "cluster.lease_ttl",
    );
    assert!(msg.contains("at least 2s"), "{msg}");
    let msg = expect_error(
        &cluster("keep_revisions = 0"),
        "ggon.toml:18",
        "cluster.keep_revisions",
    );
    assert!(msg.contains("at least 1"), "{msg}");
    let bad_scheme = cluster("").replace("http://127.0.0.1:2379", "etcd://127.0.0.1:2379");
    let msg = expect_error(&bad_scheme, "ggon.toml:16", "cluster.etcd");
    assert!(msg.contains("http:// or https://"), "{msg}");
    let msg = expect_error(
        &cluster("cert_file = \"c.pem\""),
        "ggon.toml:17",
        "cluster.cert_file",
    );
    assert!(msg.contains("key_file"), "{msg}");
}

#[test]
fn a_catalog_that_cannot_work_is_refused() {
    let catalog = |name: &str| format!("{GOOD}\n[catalog]\nname = \"{name}\"\n");
    // Lines: 15 [catalog], 16 name.
    let (_dir, ok) = check(&catalog("catalog.ggon.invalid"));
    assert_eq!(ok.code, Some(0), "a valid [catalog]: {}", ok.stderr);
    let msg = expect_error(&catalog("GGON.org"), "ggon.toml:16", "catalog.name");
    assert!(msg.contains("is a [[zone]]"), "{msg}");
    let msg = expect_error(&catalog("bad..name"), "ggon.toml:16", "catalog.name");
    assert!(msg.contains("not a valid domain name"), "{msg}");
    let msg = expect_error(&catalog("cic.ggon.org"), "ggon.toml:16", "catalog.name");
    assert!(msg.contains("service `cic`"), "{msg}");
    let group = GOOD.replace(
        "file = \"ggon.org.zone\"",
        "file = \"ggon.org.zone\"\ncatalog_group = \"g\"",
    );
    let msg = expect_error(&group, "ggon.toml:4", "zone.catalog_group");
    assert!(msg.contains("needs a [catalog]"), "{msg}");
}

/// Mid-incident, the operator is editing ggon.toml and a `[[service]]`
/// table does not parse yet: `ggon-ctl status` still reaches the running
/// ggond (it reads only [server] and [control]) and says, in one warning
/// line, what it ignored.
/// `ggon-ctl --config CONFIG status cic` run in `dir` with only the
/// config to find ggond by: whether it succeeded, stdout, stderr.
fn ctl_status_cic(
    config: &Path,
    dir: &Path,
    env: &[(&str, &std::ffi::OsStr)],
) -> (bool, String, String) {
    let out = Command::new(GGON_CTL)
        .arg("--config")
        .arg(config)
        .args(["status", "cic"])
        .current_dir(dir)
        .envs(env.iter().copied())
        .env_remove("GGON_CONTROL")
        .env_remove("GGON_TOKEN_FILE")
        .output()
        .unwrap();
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn ggon_ctl_works_while_the_config_has_a_syntax_error_elsewhere() {
    let p = HttpTarget::start(ip("127.0.0.191"));
    let b = HttpTarget::start(ip("127.0.0.192"));
    let mut env = Env::demo(&cic_two_targets(&p, &b));
    let g = env.start();
    // The file as the running ggond would read it (the harness gives the
    // control address and state dir on its command line), being edited.
    let mut text = format!(
        "[server]\nstate_dir = \"{}\"\n\n[control]\nlisten = \"{}\"\n\n",
        env.state_dir.display(),
        g.control
    );
    text.push_str(&std::fs::read_to_string(&env.config).unwrap());
    text.push_str("\n[[service]]\nname = \"half-typed\nfqdn = \n");
    std::fs::write(&env.config, &text).unwrap();
    let (ok, stdout, stderr) = ctl_status_cic(&env.config, &g.workdir, &[]);
    assert!(ok, "{stdout}{stderr}");
    assert!(
        stdout.contains("cic") && stdout.contains("primary"),
        "{stdout}"
    );
    assert_eq!(stderr.lines().count(), 1, "one warning line: {stderr}");
    assert!(
        stderr.starts_with("warning: ") && stderr.contains("outside [server] and [control]"),
        "{stderr}"
    );
    let line = text.lines().count() - 1;
    assert!(
        stderr.contains(&format!(":{line}")),
        "names line {line}: {stderr}"
    );
}

/// Outside a checkout, with no /etc/ggon/ggon.toml: the error lists where
/// ggon-ctl looked and how to name a file.
#[test]
fn ggon_ctl_without_a_config_lists_where_it_looked() {
    if Path::new("/etc/ggon/ggon.toml").exists() {
        eprintln!("skipped: this machine has /etc/ggon/ggon.toml");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let out = Command::new(GGON_CTL)
        .arg("status")
        .current_dir(dir.path())
        .env_remove("GGON_CONFIG")
        .env_remove("GGON_CONTROL")
        .env_remove("GGON_TOKEN_FILE")
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    for want in [
        "config/ggon.toml",
        &format!("(from {})", dir.path().display()),
        "/etc/ggon/ggon.toml",
        "--config",
    ] {
        assert!(stderr.contains(want), "{want} in {stderr}");
    }
}

/// One of the 29,999 services of the large config below: `failback =
/// "sometimes"` makes ggond refuse the file.
fn refused_service(i: usize) -> String {
    format!(
        "[[service]]\nname = \"s{i}\"\nfqdn = \"s{i}.ggon.org\"\nfailback = \"sometimes\"\n\n\
         [[service.target]]\nname = \"primary\"\naddresses = [\"10.0.{}.{}\"]\n\
         check = {{ type = \"tcp\", address = \"127.0.0.1:9\", interval = \"5s\" }}\n\n",
        i >> 8 & 255,
        i & 255
    )
}

/// `ggon-ctl --config FILE status cic` with 30,000 services in FILE, all
/// but cic's refused by ggond: it reads only [server], [control] and the
/// service tables with https targets (the certificate line), so it answers
/// (with cic's certificate line) and says nothing about the rest.
#[test]
fn ggon_ctl_reads_only_what_it_needs_from_a_large_config_ggond_would_refuse() {
    let (ca, ca_key) = crate::certs::test_ca();
    let tls = crate::certs::leaf("cic.ggon.org", (-1, 90), &ca, &ca_key);
    let p = HttpTarget::start(ip("127.0.0.193"));
    let cic = format!(
        "[[service]]\nname = \"cic\"\nfqdn = \"cic.ggon.org\"\nttl = 30\n\n\
         [[service.target]]\nname = \"primary\"\naddresses = [\"127.0.0.193\"]\n\
         check = {{ type = \"http\", url = \"{}\", interval = \"200ms\" }}\n\n\
         [[service.target]]\nname = \"backup\"\naddresses = [\"127.0.0.1\"]\n\
         check = {{ type = \"https\", url = \"https://127.0.0.1:{}/\", interval = \"200ms\", tls_verify = false }}\n\n",
        p.url(),
        tls.addr.port()
    );
    let mut env = Env::demo(&cic);
    let g = env.start();
    let ca_file = env.dir.path().join("ca.pem");
    std::fs::write(&ca_file, ca.pem()).unwrap();
    let head = format!(
        "[server]\nstate_dir = \"{}\"\n\n[control]\nlisten = \"{}\"\n\n",
        env.state_dir.display(),
        g.control
    );
    // The filler is refused by ggond (checked on a small file: a 10 MB one
    // takes a debug ggond most of a minute to parse).
    let small = env.dir.path().join("small.toml");
    std::fs::write(&small, format!("{head}{cic}{}", refused_service(1))).unwrap();
    let checked = check_config(env.dir.path(), small.to_str().unwrap());
    assert_eq!(
        checked.code,
        Some(2),
        "{}{}",
        checked.stdout,
        checked.stderr
    );
    assert!(checked.stderr.contains("failback"), "{}", checked.stderr);

    let mut text = head + &cic;
    for i in 1..30_000 {
        text.push_str(&refused_service(i));
    }
    let big = env.dir.path().join("big.toml");
    std::fs::write(&big, &text).unwrap();
    let ca = ca_file.as_os_str();
    let (ok, stdout, stderr) = ctl_status_cic(&big, &g.workdir, &[("GGON_CA_FILE", ca)]);
    assert!(ok, "{stdout}{stderr}");
    assert!(
        stdout.contains("cic (cic.ggon.org.)") && stdout.contains("backup"),
        "{stdout}"
    );
    assert!(
        stdout.contains("certificates: 1 ok for remap"),
        "cic's https target audited from the large file: {stdout}"
    );
    assert_eq!(
        stderr, "",
        "nothing said about the services it did not read"
    );
}
