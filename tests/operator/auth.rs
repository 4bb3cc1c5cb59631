//! Control API authentication: missing/wrong tokens, read-only tokens,
//! secrets kept out of logs and status, token file permissions.

use std::process::Command;

use crate::support::reliability::*;

/// A wrong token as long as the real one, differing in its last character.
fn near_miss() -> String {
    let mut t = OPERATOR_TOKEN.to_string();
    let last = t.pop().unwrap();
    t.push(if last == 'x' { 'y' } else { 'x' });
    t
}

fn ctl(env: &Env, d: &Daemon, token_file: &std::path::Path, args: &[&str]) -> (bool, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_ggon-ctl"))
        .arg("--config")
        .arg(env.config())
        .arg("--control")
        .arg(d.control.to_string())
        .arg("--token-file")
        .arg(token_file)
        .args(args)
        .output()
        .expect("run ggon-ctl");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.success(), text)
}

fn assert_no_secret(what: &str, text: &str) {
    for secret in [OPERATOR_TOKEN, READ_TOKEN, near_miss().as_str()] {
        assert!(
            !text.contains(secret),
            "{what} contains a token secret:\n{text}"
        );
    }
    // Not even a recognisable part of one.
    for secret in [OPERATOR_TOKEN, READ_TOKEN] {
        assert!(
            !text.contains(&secret[..12]),
            "{what} contains part of a secret"
        );
    }
}

#[test]
fn tokens_and_roles_are_enforced_and_secrets_stay_secret() {
    let env = Env::new("");
    // This test makes many refused calls from one address on purpose; the
    // limit on them (answered 429) is tested in limits.rs.
    let cfg = std::fs::read_to_string(env.config()).unwrap();
    std::fs::write(
        env.config(),
        cfg + "\n[control.limits]\nauth_failures = 1000\n",
    )
    .unwrap();
    let d = env.start();
    let remap_body = r#"{"to":"backup","force":true}"#;
    let remap = "/v1/services/cic/remap";
    let release = "/v1/services/cic/release";
    let wrong = near_miss();

    // No token, a wrong token, an empty one, another scheme: 401.
    for (what, token) in [
        ("no token", None),
        ("wrong token", Some(wrong.as_str())),
        ("empty token", Some("")),
        ("token prefix", Some(&OPERATOR_TOKEN[..20])),
        ("token with suffix", Some(&*format!("{OPERATOR_TOKEN}x"))),
    ] {
        for (method, path, body) in [
            ("GET", "/v1/status", None),
            ("POST", remap, Some(remap_body)),
            ("POST", release, Some("")),
        ] {
            let (code, resp) = http(d.control, method, path, token, body).unwrap();
            assert_eq!(code, 401, "{what}: {method} {path}: {resp}");
            assert_no_secret("a 401 body", &resp);
        }
    }
    let (code, _) = http(d.control, "GET", "/v1/status", None, None).unwrap();
    assert_eq!(code, 401);
    // Basic auth carrying the real secret is not a bearer token.
    {
        use std::io::{Read, Write};
        let mut s = std::net::TcpStream::connect(d.control).unwrap();
        write!(
            s,
            "GET /v1/status HTTP/1.1\r\nHost: x\r\nAuthorization: Basic {OPERATOR_TOKEN}\r\nConnection: close\r\n\r\n"
        )
        .unwrap();
        let mut resp = String::new();
        s.read_to_string(&mut resp).unwrap();
        assert!(resp.starts_with("HTTP/1.1 401"), "{resp}");
    }

    // A read token may look but not change.
    let (code, status) = http(d.control, "GET", "/v1/status", Some(READ_TOKEN), None).unwrap();
    assert_eq!(code, 200, "{status}");
    assert_no_secret("status JSON", &status);
    for (path, body) in [(remap, remap_body), (release, "")] {
        let (code, resp) = http(d.control, "POST", path, Some(READ_TOKEN), Some(body)).unwrap();
        assert_eq!(code, 403, "read token POST {path}: {resp}");
        assert!(resp.contains("read-only"), "{resp}");
        assert_no_secret("a 403 body", &resp);
    }
    assert_eq!(d.active(), "primary", "a refused remap changed something");

    // The operator token may change.
    let (code, resp) = d.remap("backup").unwrap();
    assert_eq!(code, 200, "{resp}");
    assert_eq!(d.active(), "backup");
    assert_no_secret("remap response", &resp);

    // ggon-ctl's outputs.
    let (ok, out) = ctl(&env, &d, &env.token_file(), &["status"]);
    assert!(ok && out.contains("cic"), "{out}");
    assert_no_secret("ggon-ctl status", &out);
    let (ok, out) = ctl(&env, &d, &env.token_file(), &["status", "--json"]);
    assert!(ok && out.contains("\"active\": \"backup\""), "{out}");
    assert_no_secret("ggon-ctl status --json", &out);
    let ro = env.path().join("read.token");
    std::fs::write(&ro, format!("{READ_TOKEN}\n")).unwrap();
    let (ok, out) = ctl(
        &env,
        &d,
        &ro,
        &["remap", "cic", "--to", "primary", "--force"],
    );
    assert!(!ok && out.contains("403"), "{out}");
    assert_no_secret("ggon-ctl remap refused", &out);
    let bad = env.path().join("bad.token");
    std::fs::write(&bad, format!("{wrong}\n")).unwrap();
    let (ok, out) = ctl(&env, &d, &bad, &["status"]);
    assert!(!ok && out.contains("401"), "{out}");
    assert_no_secret("ggon-ctl status refused", &out);

    // ggond logged the refusals, without any secret, and no permission warning
    // (the token file is 0600).
    let stderr = d.stderr();
    assert!(
        stderr.contains("missing or invalid token") && stderr.contains("read-only"),
        "refusals not logged:\n{stderr}"
    );
    assert_no_secret("ggond's stderr", &stderr);
    assert!(
        !stderr.contains("readable by group or others"),
        "warning for a 0600 file:\n{stderr}"
    );
}

#[test]
fn world_readable_token_file_gets_a_warning() {
    let env = Env::with_token_mode("", 0o644);
    let d = env.start();
    let stderr = d.stderr();
    let line = stderr
        .lines()
        .find(|l| l.contains("WARN") && l.contains("token file"))
        .unwrap_or_else(|| panic!("no warning for a 0644 token file:\n{stderr}"));
    assert!(line.contains("644") && line.contains("chmod 600"), "{line}");
    println!("logged: {line}");
    assert_no_secret("ggond's stderr", &stderr);
    // The API still works (a warning, not a refusal to start).
    assert_eq!(d.active(), "primary");
}

/// TSIG secrets readable by others are warned about: a key file, and a
/// config holding an inline secret (`ggond --check-config` shows it too).
#[test]
fn readable_tsig_secrets_are_warned_about() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    let zone = dir.path().join("z.zone");
    std::fs::write(
        &zone,
        "$ORIGIN ggon.org.\n@ 60 IN SOA ns1 h 1 1 1 1 1\n@ 60 IN NS ns1\n",
    )
    .unwrap();
    let key = dir.path().join("k.key");
    std::fs::write(
        &key,
        "key \"k\" { algorithm hmac-sha256; secret \"c2VjcmV0c2VjcmV0c2VjcmV0\"; };\n",
    )
    .unwrap();
    let cfg = dir.path().join("ggon.toml");
    let check = |cfg_text: String, key_mode: u32, cfg_mode: u32| -> String {
        std::fs::write(&cfg, cfg_text).unwrap();
        std::fs::set_permissions(&key, std::fs::Permissions::from_mode(key_mode)).unwrap();
        std::fs::set_permissions(&cfg, std::fs::Permissions::from_mode(cfg_mode)).unwrap();
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_ggond"))
            .arg("--config")
            .arg(&cfg)
            .arg("--check-config")
            .output()
            .unwrap();
        assert!(out.status.success(), "{out:?}");
        String::from_utf8_lossy(&out.stderr).into_owned()
    };
    let zone_table = format!(
        "[[zone]]\norigin = \"ggon.org\"\nfile = \"{}\"\n",
        zone.display()
    );
    let from_file = format!(
        "[[key]]\nname = \"k\"\nfile = \"{}\"\n{zone_table}",
        key.display()
    );
    let inline =
        format!("[[key]]\nname = \"k\"\nsecret = \"c2VjcmV0c2VjcmV0c2VjcmV0\"\n{zone_table}");
    assert!(
        check(from_file.clone(), 0o644, 0o600).contains("key file is readable by group or others")
    );
    assert!(!check(from_file, 0o600, 0o644).contains("readable by group or others"));
    let err = check(inline.clone(), 0o600, 0o644);
    assert!(err.contains("inline TSIG secrets"), "{err}");
    assert!(
        !err.contains("c2VjcmV0"),
        "the secret itself is never printed: {err}"
    );
    assert!(!check(inline, 0o600, 0o600).contains("readable by group or others"));
}

/// Every error of the control API is `{"error": "…"}`, including those for
/// a body or query string that cannot be read (axum answered them in plain
/// text), and such a call changes nothing.
#[test]
fn unreadable_calls_get_json_errors_and_change_nothing() {
    let env = Env::new("");
    let d = env.start();
    let remap = "/v1/services/cic/remap";
    let token = Some(OPERATOR_TOKEN);
    for (method, path, body, want) in [
        ("POST", remap, Some(r#"{"to":5}"#), 422),
        ("POST", remap, Some(r#"{"reason":"no target"}"#), 422),
        ("POST", remap, Some("not json"), 400),
        // Read where the body is read: the controller never sees it.
        ("POST", remap, Some(r#"{"to":"backup","for":"soon"}"#), 400),
        ("GET", "/v1/history?limit=many", None, 400),
    ] {
        let (code, resp) = http(d.control, method, path, token, body).unwrap();
        assert_eq!(code, want, "{method} {path} {body:?}: {resp}");
        let v: serde_json::Value = serde_json::from_str(&resp)
            .unwrap_or_else(|e| panic!("{method} {path} {body:?}: not JSON ({e}): {resp}"));
        assert!(v["error"].as_str().is_some_and(|e| !e.is_empty()), "{resp}");
        if body.is_some_and(|b| b.contains("soon")) {
            assert!(
                v["error"]
                    .as_str()
                    .is_some_and(|e| e.starts_with("bad duration `soon`: ")),
                "{resp}"
            );
        }
    }
    let (code, status) = http(d.control, "GET", "/v1/status", token, None).unwrap();
    assert_eq!(code, 200);
    let v: serde_json::Value = serde_json::from_str(&status).unwrap();
    assert_eq!(v["services"][0]["active"], "primary", "{status}");
    assert_eq!(v["services"][0]["mode"], "auto", "{status}");
}
