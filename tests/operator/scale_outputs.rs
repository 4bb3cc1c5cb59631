//! Operator outputs that stay usable with many services, against a real
//! ggond on loopback: `/metrics` bytes per service (no histogram per
//! target unless asked for), `ggon-ctl status` and `GET /v1/status` filters
//! applied by ggond, and the status page's search box, order (problem
//! services first) and row limit.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener};
use std::time::Duration;

use serde_json::Value;

use crate::support::ggond::*;

/// Raw `/metrics` bytes per service allowed with the default settings, for
/// services of 2 targets with names like `s123`/`primary` (about 640 are
/// used: 4 series per target, 3 per service). A histogram per target adds
/// 15 lines per target (about 2,300 bytes per service).
const METRICS_BYTES_PER_SERVICE: usize = 800;
/// The same, gzip-compressed as Prometheus fetches it.
const GZIP_BYTES_PER_SERVICE: usize = 120;

/// A TCP listener that accepts and closes every connection (an "up" target
/// for TCP checks), for the life of the test process.
fn tcp_up() -> SocketAddr {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = l.local_addr().unwrap();
    std::thread::spawn(move || {
        for s in l.incoming() {
            drop(s);
        }
    });
    addr
}

/// A loopback port nobody listens on (connect: refused), a "down" target.
fn tcp_down() -> SocketAddr {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    l.local_addr().unwrap()
}

/// A `[[service.target]]` checked by TCP, often. The timeout is long: a
/// check against a listener on loopback answers at once unless the machine
/// is starved, and a starved check that timed out would move a service
/// nobody meant to move ("down" targets are refused, which is immediate).
fn target(name: &str, address: &str, check: SocketAddr, interval: &str) -> String {
    format!(
        "[[service.target]]\nname = \"{name}\"\naddresses = [\"{address}\"]\n\
         check = {{ type = \"tcp\", address = \"{check}\", interval = \"{interval}\", \
         timeout = \"3s\", rise = 2, fall = 2, jitter = \"20ms\" }}\n\n"
    )
}

/// `n` services `s0` … of 2 targets; the backup of every 10th is down.
fn many(n: usize, up: SocketAddr, down: SocketAddr) -> String {
    let mut s = String::new();
    for i in 0..n {
        s.push_str(&format!(
            "[[service]]\nname = \"s{i}\"\nfqdn = \"s{i}.ggon.org\"\nttl = 30\n\n"
        ));
        s.push_str(&target("primary", "192.0.2.1", up, "1s"));
        let backup = if i % 10 == 0 { down } else { up };
        s.push_str(&target("backup", "192.0.2.2", backup, "1s"));
    }
    s
}

/// One GET over a fresh connection: (status, headers, body bytes), the
/// body de-chunked if it was sent chunked.
fn get(addr: SocketAddr, path: &str, token: &str, gzip: bool) -> (u16, String, Vec<u8>) {
    let mut s = std::net::TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    let mut req = format!(
        "GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\
         Authorization: Bearer {token}\r\n"
    );
    if gzip {
        req.push_str("Accept-Encoding: gzip\r\n");
    }
    req.push_str("\r\n");
    s.write_all(req.as_bytes()).unwrap();
    let mut raw = Vec::new();
    s.read_to_end(&mut raw).unwrap();
    let split = raw
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .expect("end of headers");
    let head = String::from_utf8_lossy(&raw[..split]).to_ascii_lowercase();
    let mut body = raw[split + 4..].to_vec();
    if head.contains("transfer-encoding: chunked") {
        body = dechunk(&body);
    }
    let code = head.split_whitespace().nth(1).unwrap().parse().unwrap();
    (code, head, body)
}

fn dechunk(mut b: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    loop {
        let eol = b.windows(2).position(|w| w == b"\r\n").expect("chunk size");
        let size = usize::from_str_radix(std::str::from_utf8(&b[..eol]).unwrap().trim(), 16)
            .expect("hex chunk size");
        if size == 0 {
            return out;
        }
        out.extend_from_slice(&b[eol + 2..eol + 2 + size]);
        b = &b[eol + 2 + size + 2..];
    }
}

fn gunzip(b: &[u8]) -> String {
    let mut s = String::new();
    flate2::read::GzDecoder::new(b)
        .read_to_string(&mut s)
        .expect("gzip body");
    s
}

/// Wait until every target has been checked (its last latency is
/// exported) and its health is known.
fn metrics_when_all_checked(g: &Ggond, targets: usize) -> String {
    wait_for("a check of every target", secs(60.0), || {
        let (code, _, body) = get(g.control, "/metrics", &g.token(), false);
        let text = String::from_utf8(body).unwrap();
        let count = |prefix: &str, suffix: &str| {
            text.lines()
                .filter(|l| l.starts_with(prefix) && l.ends_with(suffix))
                .count()
        };
        let checked = count("ggon_target_check_latency_seconds{", "");
        let unknown = count("ggon_target_healthy{", " -1");
        (code == 200 && checked == targets && unknown == 0).then_some(text)
    })
}

#[test]
fn metrics_stay_small_per_service_and_the_page_lists_problems_first() {
    const N: usize = 300;
    let (up, down) = (tcp_up(), tcp_down());
    let mut env = Env::demo(&many(N, up, down));
    let g = env.start();
    let text = metrics_when_all_checked(&g, 2 * N);
    let per_service = text.len() / N;
    eprintln!("/metrics: {} bytes for {N} services", text.len());
    assert!(
        per_service <= METRICS_BYTES_PER_SERVICE,
        "/metrics is {} bytes for {N} services: {per_service} per service",
        text.len()
    );
    assert!(!text.contains("ggon_target_check_duration_seconds"));
    assert!(text.contains("ggon_check_duration_seconds_bucket{le=\"+Inf\"}"));
    assert!(text.contains("ggon_target_healthy{service=\"s10\",target=\"backup\"} 0"));
    assert!(text.contains("ggon_service_active_target{service=\"s299\",target=\"primary\"} 1"));
    let (code, head, packed) = get(g.control, "/metrics", &g.token(), true);
    assert_eq!(code, 200);
    assert!(head.contains("content-encoding: gzip"), "{head}");
    assert!(gunzip(&packed).starts_with("# HELP"));
    eprintln!("/metrics gzip: {} bytes for {N} services", packed.len());
    assert!(
        packed.len() / N <= GZIP_BYTES_PER_SERVICE,
        "gzip: {} bytes for {N} services",
        packed.len()
    );

    // The page: 100 rows, the 30 services with a backup down first.
    let (code, _, page) = get(g.control, "/", &g.token(), false);
    assert_eq!(code, 200);
    let page = String::from_utf8(page).unwrap();
    let rows = service_rows(&page);
    assert_eq!(rows.len(), 100, "{rows:?}");
    let problems: Vec<String> = (0..N).step_by(10).map(|i| format!("s{i}")).collect();
    assert_eq!(
        rows[..30],
        problems[..],
        "problem services first, in config order"
    );
    assert_eq!(rows[30], "s1");
    assert!(page.contains("200 more — filter to see them"), "{page}");
    assert!(page.contains("30 of 300 services have a problem"));
    // Pictures for the first 20 rows only (problem services: s0 … s190).
    assert!(page.contains("Pictures of the first 20 of the 100 services listed"));
    let pictured = page.matches("<h3>").count();
    assert_eq!(
        pictured, 40,
        "a timeline and a lanes picture for 20 services"
    );
    assert!(page.contains("<h3>s190</h3>") && !page.contains("<h3>s200</h3>"));
    // The search box: a service beyond the first 100 rows is found.
    let (_, _, found) = get(g.control, "/?q=S29", &g.token(), false);
    let found = String::from_utf8(found).unwrap();
    let rows = service_rows(&found);
    assert_eq!(rows.first().map(String::as_str), Some("s290"), "{rows:?}");
    assert!(rows.contains(&"s299".to_string()) && rows.contains(&"s29".to_string()));
    assert_eq!(
        rows.len(),
        11,
        "s290 (a problem), then s29, s291…s299: {rows:?}"
    );
    let (_, _, only) = get(g.control, "/?q=&down=1", &g.token(), false);
    assert_eq!(service_rows(&String::from_utf8(only).unwrap()), problems);
}

#[test]
fn per_target_histograms_come_only_on_request() {
    const N: usize = 100;
    let (up, down) = (tcp_up(), tcp_down());
    let mut env = Env::demo(&format!(
        "[control]\nmetrics_target_histograms = true\n\n{}",
        many(N, up, down)
    ));
    let g = env.start();
    let text = metrics_when_all_checked(&g, 2 * N);
    // What the bound of the other test is there to catch.
    eprintln!(
        "/metrics with per-target histograms: {} bytes for {N} services",
        text.len()
    );
    assert!(
        text.len() / N > METRICS_BYTES_PER_SERVICE,
        "{} bytes",
        text.len()
    );
    assert!(text.contains(
        "ggon_target_check_duration_seconds_bucket{le=\"+Inf\",service=\"s7\",target=\"backup\"}"
    ) || text.contains(
        "ggon_target_check_duration_seconds_bucket{service=\"s7\",target=\"backup\",le=\"+Inf\"}"
    ));
}

/// The `data-service` of each row of the services table, in order.
fn service_rows(page: &str) -> Vec<String> {
    page.split("<tr data-service=\"")
        .skip(1)
        .map(|r| r[..r.find('"').unwrap()].to_string())
        .collect()
}

/// calm (both up), standby (backup down), moved (primary down: failed
/// over), dark (both down), geo (per-region, us prefers the backup).
fn filter_config(up: SocketAddr, down: SocketAddr) -> String {
    let mut s = String::from(
        "[[region]]\nname = \"eu\"\nnets = [\"127.0.15.0/24\"]\n\n\
         [[region]]\nname = \"us\"\nnets = [\"127.0.16.0/24\"]\n\n",
    );
    for (name, p, b) in [
        ("calm", up, up),
        ("standby", up, down),
        ("moved", down, up),
        ("dark", down, down),
    ] {
        s.push_str(&format!(
            "[[service]]\nname = \"{name}\"\nfqdn = \"{name}.ggon.org\"\nttl = 30\n\n"
        ));
        s.push_str(&target("primary", "192.0.2.1", p, "200ms"));
        s.push_str(&target("backup", "192.0.2.2", b, "200ms"));
    }
    s.push_str(
        "[[service]]\nname = \"geo\"\nfqdn = \"geo.ggon.org\"\nttl = 30\n\
         active = \"per-region\"\n\
         order = { eu = [\"primary\", \"backup\"], us = [\"backup\", \"primary\"], default = [\"primary\", \"backup\"] }\n\n",
    );
    s.push_str(&target("primary", "192.0.2.1", up, "200ms"));
    s.push_str(&target("backup", "192.0.2.2", up, "200ms"));
    s
}

fn names(v: &Value) -> Vec<String> {
    v["services"]
        .as_array()
        .unwrap_or_else(|| panic!("no services in {v}"))
        .iter()
        .map(|s| s["name"].as_str().unwrap().to_string())
        .collect()
}

#[test]
fn status_filters_are_applied_by_ggond_for_ggon_ctl_and_the_api() {
    let (up, down) = (tcp_up(), tcp_down());
    let mut env = Env::demo(&filter_config(up, down));
    let g = env.start();
    wait_for("the failover and alarms", secs(20.0), || {
        let s = g.status();
        let by = |n: &str| {
            s["services"]
                .as_array()
                .unwrap()
                .iter()
                .find(|x| x["name"] == n)
                .cloned()
                .unwrap()
        };
        let settled = by("moved")["active"] == "backup"
            && by("dark")["all_down"] == true
            && by("standby")["targets"][1]["healthy"] == false
            && by("calm")["targets"][1]["healthy"] == true
            && by("geo")["targets"][1]["healthy"] == true;
        settled.then_some(())
    });

    through_ggon_ctl(&g);
    through_the_api(&g);
    on_the_page(&g);
}

/// `ggon-ctl status` with filters, JSON and text, and its errors.
fn through_ggon_ctl(g: &Ggond) {
    let json = |args: &[&str]| {
        let out = g.ctl(args);
        assert!(out.ok(), "{args:?}: {out:?}");
        out.json()
    };
    assert_eq!(
        names(&json(&["status", "--down", "--json"])),
        ["standby", "moved", "dark"]
    );
    assert_eq!(
        names(&json(&["status", "dark", "calm", "--json"])),
        ["calm", "dark"]
    );
    assert_eq!(
        names(&json(&["status", "calm", "dark", "--down", "--json"])),
        ["dark"]
    );
    let geo = json(&["status", "--region", "us", "--json"]);
    assert_eq!(names(&geo), ["geo"]);
    assert_eq!(geo["services"][0]["regions"].as_array().unwrap().len(), 1);
    assert_eq!(geo["services"][0]["regions"][0]["name"], "us");
    assert_eq!(geo["services"][0]["regions"][0]["active"], "backup");

    // The text form, and nothing to show.
    let out = g.ctl(&["status", "--down"]);
    assert!(out.ok(), "{out:?}");
    assert!(out.stdout.contains("dark (dark.ggon.org.)") && !out.stdout.contains("calm ("));
    let out = g.ctl(&["status", "calm", "--down"]);
    assert!(
        out.ok() && out.stdout.starts_with("no services to show"),
        "{out:?}"
    );

    // Typos are errors that say what exists.
    let out = g.ctl(&["status", "calm", "nope"]);
    assert!(
        !out.ok() && out.stderr.contains("no service named `nope`"),
        "{out:?}"
    );
    let out = g.ctl(&["status", "--region", "mars"]);
    assert!(
        !out.ok()
            && out
                .stderr
                .contains("no region named `mars` (regions: `default`, `eu`, `us`)"),
        "{out:?}"
    );
}

/// `GET /v1/status` with the same filters as query parameters.
fn through_the_api(g: &Ggond) {
    // The same over the API; the filtered answer is what travels.
    let token = g.token();
    let api = |path: &str| {
        let (code, _, body) = get(g.control, path, &token, false);
        (
            code,
            serde_json::from_slice::<Value>(&body).unwrap(),
            body.len(),
        )
    };
    let (code, all, all_len) = api("/v1/status");
    assert_eq!((code, names(&all).len()), (200, 5));
    let (code, down_only, down_len) = api("/v1/status?down=true");
    assert_eq!(code, 200);
    assert_eq!(names(&down_only), ["standby", "moved", "dark"]);
    assert!(down_len < all_len);
    assert_eq!(
        names(&api("/v1/status?service=calm,geo").1),
        ["calm", "geo"]
    );
    assert_eq!(
        names(&api("/v1/status?region=eu&down=true").1),
        Vec::<String>::new()
    );
    let (code, err, _) = api("/v1/status?region=mars");
    assert_eq!(code, 404, "{err}");
    let (code, err, _) = api("/v1/status?down=maybe");
    assert!(code == 400 || code == 422, "{code} {err}");
    assert!(err["error"].is_string(), "{err}");
}

/// The status page: order, search box, problems only.
fn on_the_page(g: &Ggond) {
    let token = g.token();
    // The status page: problems first (worst first), then the others.
    let (_, _, page) = get(g.control, "/", &token, false);
    let page = String::from_utf8(page).unwrap();
    assert_eq!(
        service_rows(&page),
        ["dark", "moved", "standby", "calm", "geo"]
    );
    assert!(page.contains("3 of 5 services have a problem"));
    let dark = &page[page.find("<tr data-service=\"dark\"").unwrap()..];
    assert!(dark.starts_with("<tr data-service=\"dark\" class=\"alarm problem\">"));
    let (_, _, page) = get(g.control, "/?q=GEO.ggon", &token, false);
    assert_eq!(service_rows(&String::from_utf8(page).unwrap()), ["geo"]);
    let (_, _, page) = get(g.control, "/?down=1", &token, false);
    assert_eq!(
        service_rows(&String::from_utf8(page).unwrap()),
        ["dark", "moved", "standby"]
    );
    let (_, _, page) = get(g.control, "/?down=0", &token, false);
    assert_eq!(service_rows(&String::from_utf8(page).unwrap()).len(), 5);
}
