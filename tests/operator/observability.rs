//! Observability over real sockets: notifications (webhook and command), /metrics,
//! the status page in headless Chromium, propagation check, link audit.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use crate::support::ggond::*;

/// A webhook receiver: records each POST body, answers 200.
fn webhook() -> (SocketAddr, Arc<Mutex<Vec<serde_json::Value>>>) {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = l.local_addr().unwrap();
    let got = Arc::new(Mutex::new(Vec::new()));
    let g = got.clone();
    std::thread::spawn(move || {
        for s in l.incoming().take(200) {
            let Ok(mut s) = s else { continue };
            s.set_read_timeout(Some(Duration::from_secs(5))).ok();
            let mut r = BufReader::new(s.try_clone().unwrap());
            let mut len = 0;
            loop {
                let mut line = String::new();
                if r.read_line(&mut line).unwrap_or(0) == 0 || line == "\r\n" {
                    break;
                }
                if let Some(v) = line.to_ascii_lowercase().strip_prefix("content-length:") {
                    len = v.trim().parse().unwrap_or(0);
                }
            }
            let mut body = vec![0; len];
            if r.read_exact(&mut body).is_ok() {
                if let Ok(v) = serde_json::from_slice(&body) {
                    g.lock().unwrap().push(v);
                }
            }
            let _ =
                s.write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\nConnection: close\r\n\r\n");
        }
    });
    (addr, got)
}

/// Serves fixed pages: path -> HTML.
fn pages(pages: Vec<(&'static str, String)>) -> SocketAddr {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = l.local_addr().unwrap();
    std::thread::spawn(move || {
        for s in l.incoming().take(100) {
            let Ok(mut s) = s else { continue };
            s.set_read_timeout(Some(Duration::from_secs(5))).ok();
            let mut r = BufReader::new(s.try_clone().unwrap());
            let mut first = String::new();
            let _ = r.read_line(&mut first);
            loop {
                let mut line = String::new();
                if r.read_line(&mut line).unwrap_or(0) == 0 || line == "\r\n" {
                    break;
                }
            }
            let path = first.split_whitespace().nth(1).unwrap_or("/").to_string();
            let body = pages
                .iter()
                .find(|(p, _)| *p == path)
                .map(|(_, b)| b.clone());
            let resp = match body {
                Some(b) => format!(
                    "HTTP/1.1 200 OK\r\nContent-Type: text/html\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{b}",
                    b.len()
                ),
                None => "HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\nConnection: close\r\n\r\n".into(),
            };
            let _ = s.write_all(resp.as_bytes());
        }
    });
    addr
}

#[test]
fn remaps_are_notified_by_webhook_and_command_with_a_rate_limit() {
    let p = HttpTarget::start(ip("127.0.0.161"));
    let b = HttpTarget::start(ip("127.0.0.162"));
    let (hook, got) = webhook();
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("events.txt");
    let script = dir.path().join("notify.sh");
    std::fs::write(
        &script,
        format!(
            "#!/bin/sh\necho \"$GGON_EVENT $GGON_SERVICE $GGON_FROM $GGON_TO\" >> {}\n",
            out.display()
        ),
    )
    .unwrap();
    std::fs::set_permissions(&script, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    let notifiers = format!(
        "[[notifier]]\ntype = \"webhook\"\nurl = \"http://{hook}/hook\"\nburst = 3\nper = \"1h\"\n\n\
         [[notifier]]\ntype = \"command\"\ncommand = [\"{}\"]\n\n",
        script.display()
    );
    let mut env = Env::demo(&format!("{notifiers}{}", cic_two_targets(&p, &b)));
    let g = env.start();
    g.wait_health("cic", "backup", true, secs(10.0));
    assert!(g
        .ctl(&["remap", "cic", "--to", "backup", "--reason", "maint"])
        .ok());
    let events = wait_for("webhook event", secs(5.0), || {
        let v = got.lock().unwrap().clone();
        (!v.is_empty()).then_some(v)
    });
    let remap = events
        .iter()
        .find(|e| e["kind"] == "remap")
        .expect("a remap event");
    assert_eq!(remap["service"], "cic");
    assert_eq!(remap["from"], "primary");
    assert_eq!(remap["to"], "backup");
    assert_eq!(remap["reason"], "maint");
    assert_eq!(remap["who"], "operator");
    wait_for("command notifier", secs(5.0), || {
        std::fs::read_to_string(&out)
            .ok()
            .filter(|t| t.contains("remap cic primary backup"))
    });
    // A flood of remaps: the webhook gets at most `burst` of them.
    for i in 0..8 {
        let to = if i % 2 == 0 { "primary" } else { "backup" };
        assert!(g.ctl(&["remap", "cic", "--to", to]).ok());
    }
    std::thread::sleep(Duration::from_millis(800));
    let n = got
        .lock()
        .unwrap()
        .iter()
        .filter(|e| e["service"] == "cic")
        .count();
    assert!(
        n <= 3,
        "rate limit: {n} events for cic delivered with burst 3"
    );
    // The command notifier has no limit worth hitting (default burst 5 per
    // 10 min), so it saw more than the webhook.
    let lines = std::fs::read_to_string(&out).unwrap().lines().count();
    assert!(lines >= 4, "command notifier lines: {lines}");
}

#[test]
fn metrics_are_prometheus_text_and_need_the_token() {
    let p = HttpTarget::start(ip("127.0.0.163"));
    let b = HttpTarget::start(ip("127.0.0.164"));
    let mut env = Env::demo(&cic_two_targets(&p, &b));
    let g = env.start();
    g.wait_health("cic", "primary", true, secs(10.0));
    for _ in 0..5 {
        g.a("cic.ggon.org.");
    }
    g.a("nope.ggon.org.");
    let (code, _) = http_request(g.control, "GET", "/metrics", None, None);
    assert_eq!(code, 401, "metrics are not public unless configured");
    let (code, body) = http_request(g.control, "GET", "/metrics", Some(&g.token()), None);
    assert_eq!(code, 200);
    let mut values = std::collections::HashMap::new();
    for line in body
        .lines()
        .filter(|l| !l.starts_with('#') && !l.is_empty())
    {
        let (series, value) = line
            .rsplit_once(' ')
            .unwrap_or_else(|| panic!("bad line {line}"));
        let v: f64 = value
            .parse()
            .unwrap_or_else(|_| panic!("bad value in {line}"));
        values.insert(series.to_string(), v);
    }
    let get = |k: &str| {
        *values
            .get(k)
            .unwrap_or_else(|| panic!("{k} missing from\n{body}"))
    };
    assert_eq!(
        get("ggon_service_active_target{service=\"cic\",target=\"primary\"}"),
        1.0
    );
    assert_eq!(
        get("ggon_service_active_target{service=\"cic\",target=\"backup\"}"),
        0.0
    );
    assert_eq!(
        get("ggon_target_healthy{service=\"cic\",target=\"primary\"}"),
        1.0
    );
    assert!(get("ggon_queries_total{rcode=\"NOERROR\"}") >= 5.0);
    assert!(get("ggon_queries_total{rcode=\"NXDOMAIN\"}") >= 1.0);
    assert!(get("ggon_queries_by_type_total{type=\"A\"}") >= 6.0);
    // One histogram for all checks (per target only on request), and the
    // last check's latency per target.
    assert!(get("ggon_check_duration_seconds_count") >= 2.0);
    let latency = get("ggon_target_check_latency_seconds{service=\"cic\",target=\"primary\"}");
    assert!(latency > 0.0 && latency < 5.0, "last latency {latency}");
    assert!(!body.contains("ggon_target_check_duration_seconds"));
    assert!(g.ctl(&["remap", "cic", "--to", "backup"]).ok());
    let (_, body) = http_request(g.control, "GET", "/metrics", Some(&g.token()), None);
    assert!(
        body.contains("ggon_remaps_total{service=\"cic\",cause=\"operator\"} 1"),
        "{body}"
    );
}

#[test]
fn the_status_page_renders_in_headless_chromium() {
    let chromium = ["chromium", "chromium-browser", "google-chrome"]
        .into_iter()
        .find(|c| std::process::Command::new(c).arg("--version").output().is_ok())
        .expect("headless Chromium is needed for this test (scripts/test installs the `chromium` package)");
    let p = HttpTarget::start(ip("127.0.0.165"));
    let b = HttpTarget::start(ip("127.0.0.166"));
    let mut env = Env::demo(&cic_two_targets(&p, &b));
    let cfg = std::fs::read_to_string(&env.config).unwrap();
    std::fs::write(
        &env.config,
        format!("[control]\npublic_status = true\n\n{cfg}"),
    )
    .unwrap();
    let g = env.start();
    g.wait_health("cic", "backup", true, secs(10.0));
    assert!(g
        .ctl(&[
            "remap",
            "cic",
            "--to",
            "backup",
            "--reason",
            "<script>alert(1)</script>"
        ])
        .ok());
    let url = format!("http://{}/", g.control);
    let profile = env.dir.path().join("chromium-profile");
    let flags = [
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
    ];
    let dom = std::process::Command::new(chromium)
        .args(flags)
        .arg(format!("--user-data-dir={}", profile.display()))
        .args(["--virtual-time-budget=2000", "--dump-dom", &url])
        .output()
        .expect("run chromium");
    let html = String::from_utf8_lossy(&dom.stdout);
    assert!(
        html.contains("data-service=\"cic\""),
        "service row missing:\n{html}"
    );
    assert!(html.contains("cic.ggon.org"), "{html}");
    assert!(html.contains("backup"), "{html}");
    assert!(
        !html.contains("<script>alert(1)"),
        "the reason must be escaped:\n{html}"
    );
    // A screenshot for people to look at, in the test output directory.
    let out_dir = std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join("status-page");
    std::fs::create_dir_all(&out_dir).unwrap();
    let shot = out_dir.join("status.png");
    let _ = std::fs::remove_file(&shot);
    let st = std::process::Command::new(chromium)
        .args(flags)
        .arg(format!("--user-data-dir={}", profile.display()))
        .arg(format!("--screenshot={}", shot.display()))
        .args(["--window-size=1200,800", &url])
        .output()
        .expect("run chromium");
    assert!(
        shot.metadata().map(|m| m.len() > 1000).unwrap_or(false),
        "no screenshot written: {}",
        String::from_utf8_lossy(&st.stderr)
    );
}

#[test]
fn verify_reports_servers_still_serving_the_old_answer() {
    let p = HttpTarget::start(ip("127.0.0.167"));
    let b = HttpTarget::start(ip("127.0.0.168"));
    let mut env = Env::demo(&cic_two_targets(&p, &b));
    let g = env.start();
    // A second server that never hears about the remap (a stale secondary).
    let mut stale_env = Env::demo(&cic_two_targets(&p, &b));
    let stale = stale_env.start();
    g.wait_health("cic", "backup", true, secs(10.0));
    assert!(g.ctl(&["remap", "cic", "--to", "backup"]).ok());
    let out = g.ctl(&[
        "verify",
        "cic",
        "--server",
        &g.dns.to_string(),
        "--server",
        &stale.dns.to_string(),
        "--json",
    ]);
    assert_eq!(
        out.code,
        Some(1),
        "a stale server makes verify fail: {out:?}"
    );
    let v = out.json();
    let servers = v["servers"].as_array().unwrap();
    let by = |a: SocketAddr| {
        servers
            .iter()
            .find(|s| s["server"] == a.to_string())
            .unwrap()
            .clone()
    };
    assert_eq!(by(g.dns)["current"], true);
    assert_eq!(by(stale.dns)["current"], false);
    assert_eq!(by(stale.dns)["answers"][0], "127.0.0.167");
    assert_eq!(by(stale.dns)["ttl"], 30);
    // Once the stale one catches up, verify passes.
    assert!(stale.ctl(&["remap", "cic", "--to", "backup"]).ok());
    let out = g.ctl(&[
        "verify",
        "cic",
        "--server",
        &g.dns.to_string(),
        "--server",
        &stale.dns.to_string(),
    ]);
    assert!(out.ok(), "{out:?}");
}

#[test]
fn audit_links_lists_links_to_unmanaged_names() {
    let site = pages(vec![
        (
            "/",
            "<html><a href=\"http://cic.ggon.org/x\">ok</a> <a href=\"/two\">next</a> \
             <a href=\"https://example.com/\">other domain</a></html>"
                .to_string(),
        ),
        (
            "/two",
            "<html><img src=\"http://wiki.ggon.org/logo.png\"></html>".to_string(),
        ),
    ]);
    let p = HttpTarget::start(ip("127.0.0.169"));
    let b = HttpTarget::start(ip("127.0.0.170"));
    let env = Env::demo(&cic_two_targets(&p, &b));
    let out = std::process::Command::new(GGON_CTL)
        .arg("--config")
        .arg(&env.config)
        .args([
            "audit-links",
            &format!("http://{site}/"),
            "--domain",
            "ggon.org",
            "--json",
        ])
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    assert!(
        out.stderr.is_empty(),
        "no progress when not a terminal: {out:?}"
    );
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let hosts: Vec<&str> = v["findings"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["host"].as_str().unwrap())
        .collect();
    assert_eq!(hosts, vec!["wiki.ggon.org"], "{v}");

    // On a terminal (a pty from script(1)) it shows its progress.
    let cmd = format!(
        "{GGON_CTL} --config {} audit-links http://{site}/ --domain ggon.org",
        env.config.display()
    );
    let Ok(out) = std::process::Command::new("script")
        .args(["-qec", &cmd, "/dev/null"])
        .stdin(std::process::Stdio::null())
        .output()
    else {
        eprintln!("SKIPPED the terminal half: no script(1)");
        return;
    };
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("[1/50 pages") && text.contains("[2/50 pages"),
        "{text}"
    );
    assert!(text.contains("wiki.ggon.org"), "{text}");
}
