//! The status page's browser login, driven in a real headless Chromium over
//! the DevTools protocol: log in with the token, see the services, check the
//! cookie's flags, log out; a wrong token is refused. A screenshot of the
//! logged-in page is kept under target/.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{json, Value};

use crate::support::reliability::*;

const LIMIT: Duration = Duration::from_secs(20);

/// A headless Chromium, killed on drop.
struct Browser {
    child: Child,
    _profile: tempfile::TempDir,
    devtools: SocketAddr,
}

impl Drop for Browser {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn chromium() -> Option<&'static str> {
    ["chromium", "chromium-browser"].into_iter().find(|b| {
        Command::new(b)
            .arg("--version")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success())
    })
}

impl Browser {
    fn start(bin: &str) -> Browser {
        let profile = tempfile::tempdir().unwrap();
        let mut child = Command::new(bin)
            .args([
                "--headless",
                "--no-sandbox",
                "--disable-gpu",
                "--no-first-run",
                "--disable-extensions",
                "--window-size=1000,700",
                "--remote-debugging-address=127.0.0.1",
                "--remote-debugging-port=0",
            ])
            .arg(format!("--user-data-dir={}", profile.path().display()))
            .arg("about:blank")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start chromium");
        let stderr = BufReader::new(child.stderr.take().unwrap());
        let mut devtools = None;
        // Bounded: Chromium prints the line within its first lines of output.
        for line in stderr.lines().take(500) {
            let Ok(line) = line else { break };
            if let Some(rest) = line.split("ws://").nth(1) {
                let hostport = rest.split('/').next().unwrap();
                devtools = hostport.parse().ok();
                break;
            }
        }
        let devtools = devtools.expect("chromium printed no DevTools address");
        Browser {
            child,
            _profile: profile,
            devtools,
        }
    }

    /// The DevTools WebSocket of the open page.
    fn page(&self) -> Cdp {
        let mut s = TcpStream::connect(self.devtools).unwrap();
        s.set_read_timeout(Some(LIMIT)).unwrap();
        write!(
            s,
            "GET /json/list HTTP/1.1\r\nHost: {}\r\nConnection: close\r\n\r\n",
            self.devtools
        )
        .unwrap();
        // The DevTools server keeps the connection open: read the headers,
        // then Content-Length bytes.
        let mut r = BufReader::new(s);
        let mut len = 0usize;
        for _ in 0..100 {
            let mut line = String::new();
            r.read_line(&mut line).unwrap();
            if let Some(v) = line.to_ascii_lowercase().strip_prefix("content-length:") {
                len = v.trim().parse().unwrap();
            }
            if line.trim().is_empty() {
                break;
            }
        }
        let mut body = vec![0u8; len];
        r.read_exact(&mut body).unwrap();
        let body = String::from_utf8(body).unwrap();
        let list: Value = serde_json::from_str(&body).unwrap();
        let url = list
            .as_array()
            .unwrap()
            .iter()
            .find(|t| t["type"] == "page")
            .and_then(|t| t["webSocketDebuggerUrl"].as_str())
            .expect("a page target")
            .to_string();
        let stream = TcpStream::connect(self.devtools).unwrap();
        stream.set_read_timeout(Some(LIMIT)).unwrap();
        let (ws, _) = tungstenite::client(url.as_str(), stream).expect("DevTools WebSocket");
        Cdp { ws, next: 1 }
    }
}

/// A DevTools protocol session on one page.
struct Cdp {
    ws: tungstenite::WebSocket<TcpStream>,
    next: u64,
}

impl Cdp {
    fn call(&mut self, method: &str, params: Value) -> Value {
        let id = self.next;
        self.next += 1;
        let msg = json!({"id": id, "method": method, "params": params});
        self.ws
            .send(tungstenite::Message::text(msg.to_string()))
            .unwrap();
        // Bounded: events in between are skipped, at most this many.
        for _ in 0..10_000 {
            let m = self.ws.read().expect("DevTools reply");
            let Ok(text) = m.to_text() else { continue };
            let v: Value = serde_json::from_str(text).unwrap();
            if v["id"] == id {
                assert!(v.get("error").is_none(), "{method}: {v}");
                return v["result"].clone();
            }
        }
        panic!("no reply to {method}");
    }

    fn eval(&mut self, expr: &str) -> Value {
        let r = self.call(
            "Runtime.evaluate",
            json!({"expression": expr, "returnByValue": true}),
        );
        assert!(r.get("exceptionDetails").is_none(), "{expr}: {r}");
        r["result"]["value"].clone()
    }

    /// Waits until the loaded page is at `path`; returns its text.
    fn wait_page(&mut self, path: &str) -> String {
        let start = Instant::now();
        while start.elapsed() < LIMIT {
            let v = self.eval(
                "document.readyState + ' ' + location.pathname + ' ' + \
                 (document.body ? document.body.innerText : '')",
            );
            let text = v.as_str().unwrap_or("").to_string();
            if let Some(rest) = text.strip_prefix(&format!("complete {path} ")) {
                return rest.to_string();
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        panic!("page never reached {path}: {}", self.eval("location.href"));
    }

    fn cookies(&mut self, base: &str) -> Vec<Value> {
        let r = self.call("Network.getCookies", json!({"urls": [base]}));
        r["cookies"].as_array().cloned().unwrap_or_default()
    }
}

fn target_dir() -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("target")
}

#[test]
fn browser_login_logout_and_wrong_token() {
    let Some(bin) = chromium() else {
        // scripts/test installs Debian's chromium; without it there is no
        // browser to drive.
        eprintln!("SKIPPED: no chromium on PATH");
        return;
    };
    let env = Env::new("");
    let d = env.start();
    let base = format!("http://{}", d.control);
    let browser = Browser::start(bin);
    let mut page = browser.page();
    page.call("Network.enable", json!({}));

    // Not logged in: the status page sends the browser to the login form.
    page.call("Page.navigate", json!({"url": format!("{base}/")}));
    let text = page.wait_page("/login");
    assert!(text.contains("Control token"), "{text}");

    // A wrong token: refused, no cookie.
    page.eval(
        "document.getElementById('token').value = 'wrong-token-0123456789'; \
         document.getElementById('login').submit(); 1",
    );
    let start = Instant::now();
    let text = loop {
        let t = page.wait_page("/login");
        if t.contains("Wrong token") || start.elapsed() > LIMIT {
            break t;
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    assert_eq!(
        page.eval("document.getElementById('error').textContent"),
        "Wrong token."
    );
    assert!(text.contains("Wrong token."), "{text}");
    assert!(page.cookies(&base).is_empty(), "{:?}", page.cookies(&base));

    // The read token: logged in, the status page shows the services.
    page.eval(&format!(
        "document.getElementById('token').value = '{READ_TOKEN}'; \
         document.getElementById('login').submit(); 1"
    ));
    let text = page.wait_page("/");
    assert!(
        text.contains("cic"),
        "service missing from the page:\n{text}"
    );
    assert!(text.contains("Log out"), "{text}");
    let cookies = page.cookies(&base);
    assert_eq!(cookies.len(), 1, "{cookies:?}");
    let c = &cookies[0];
    assert_eq!(c["name"], "ggon_session");
    assert_eq!(c["httpOnly"], true, "{c}");
    assert_eq!(c["sameSite"], "Strict", "{c}");
    assert_eq!(c["secure"], false, "plain HTTP: not Secure ({c})");
    let expires = c["expires"].as_f64().unwrap();
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs_f64();
    assert!(
        (now + 7.0 * 3600.0..now + 9.0 * 3600.0).contains(&expires),
        "bounded lifetime (8 h): expires {expires}, now {now}"
    );
    assert_eq!(page.eval("document.cookie"), "", "HttpOnly: not readable");
    let session = c["value"].as_str().unwrap().to_string();

    let shot = page.call("Page.captureScreenshot", json!({"format": "png"}));
    let png = data_encoding::BASE64
        .decode(shot["data"].as_str().unwrap().as_bytes())
        .unwrap();
    assert!(png.starts_with(b"\x89PNG"));
    let path = target_dir().join("ggon-status-login.png");
    std::fs::write(&path, png).unwrap();

    // The session only reads: a change with the cookie and no bearer header
    // is refused (a forged cross-site POST carries no authority).
    let (code, _) = cookie_request(d.control, "POST", "/v1/services/cic/release", &session);
    assert_eq!(code, 401);
    let (code, _) = cookie_request(d.control, "GET", "/v1/status", &session);
    assert_eq!(code, 200);

    // Log out: back to the login form, cookie gone, the session dead.
    page.eval("document.getElementById('logout').submit(); 1");
    page.wait_page("/login");
    assert!(page.cookies(&base).is_empty(), "{:?}", page.cookies(&base));
    let (code, _) = cookie_request(d.control, "GET", "/v1/status", &session);
    assert_eq!(code, 401, "a logged-out session opens nothing");
    page.call("Page.navigate", json!({"url": format!("{base}/")}));
    page.wait_page("/login");

    // Scripts keep using the bearer header.
    let (code, body) = http(d.control, "GET", "/", Some(READ_TOKEN), None).unwrap();
    assert_eq!(code, 200);
    assert!(body.contains("cic") && !body.contains("Log out"));
    drop(browser);
    eprintln!("screenshot: {}", path.display());
}

/// A cross-site login (another Origin) is refused before the token is looked at.
#[test]
fn cross_site_login_is_refused() {
    let env = Env::new("");
    let d = env.start();
    let body = format!("token={OPERATOR_TOKEN}");
    let mut s = TcpStream::connect(d.control).unwrap();
    s.set_read_timeout(Some(LIMIT)).unwrap();
    write!(
        s,
        "POST /login HTTP/1.1\r\nHost: {}\r\nOrigin: http://evil.example\r\n\
         Content-Type: application/x-www-form-urlencoded\r\nContent-Length: {}\r\n\
         Connection: close\r\n\r\n{body}",
        d.control,
        body.len()
    )
    .unwrap();
    let mut resp = String::new();
    s.read_to_string(&mut resp).unwrap();
    assert!(resp.starts_with("HTTP/1.1 403"), "{resp}");
    assert!(!resp.to_ascii_lowercase().contains("set-cookie"), "{resp}");
}

fn cookie_request(addr: SocketAddr, method: &str, path: &str, session: &str) -> (u16, String) {
    let mut s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(LIMIT)).unwrap();
    write!(
        s,
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nCookie: ggon_session={session}\r\n\
         Content-Length: 0\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut resp = String::new();
    s.read_to_string(&mut resp).unwrap();
    let code = resp.split(' ').nth(1).unwrap().parse().unwrap();
    (code, resp)
}
