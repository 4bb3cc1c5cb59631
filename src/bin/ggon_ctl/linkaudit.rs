//! Link audit: find hard-coded links to names in our domain that failover
//! does not manage — links that would break (or bypass failover) after a
//! remap. A page at `cic.ggon.org` that links `https://wiki.ggon.org/...`
//! keeps sending visitors to wiki's one site whichever target cic answers
//! with.
//!
//! Owns: a small bounded crawler (GET, HTML only, body capped, same host(s)
//! as the start pages, depth and page limits) and a careful `href`/`src`
//! attribute scanner. Only links written as absolute URLs (`https://host/..`
//! or `//host/..`) are reported: relative links follow whatever name the page
//! was served under, so a remap cannot break them.
//!
//! It must not touch service state, follow links off the start hosts, or
//! send anything but GET requests.

use std::collections::{HashSet, VecDeque};
use std::time::Duration;

use reqwest::header::{ACCEPT, CONTENT_TYPE, LOCATION};
use reqwest::Url;
use serde::Serialize;
use tracing::debug;

/// Page bodies beyond this are cut off (links after it are not seen).
const MAX_BODY: usize = 1 << 20;

#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct LinkFinding {
    /// The page the link is on.
    pub page: String,
    /// The link, resolved to an absolute URL (without its #fragment).
    pub link: String,
    /// Its host (lower case, no trailing dot): inside the domain, not managed.
    pub host: String,
}

/// Crawl from `start` (following links on the start pages' hosts, up to
/// `max_depth` links away and `max_pages` fetches in all, each bounded by
/// `timeout`) and report absolute links to hosts inside `domain` (equal or
/// a subdomain) that are not among the `managed` names. Pages that cannot be
/// fetched are skipped; it is an error only when a start URL is invalid or
/// no start page could be fetched at all.
pub async fn audit_links(
    start: &[String],
    domain: &str,
    managed: &[String],
    max_depth: u32,
    max_pages: usize,
    timeout: Duration,
) -> anyhow::Result<Vec<LinkFinding>> {
    let domain = normalize_host(domain);
    anyhow::ensure!(!domain.is_empty(), "empty domain");
    let managed: HashSet<String> = managed.iter().map(|m| normalize_host(m)).collect();

    let mut queue = VecDeque::new();
    let mut seen = HashSet::new();
    let mut hosts = HashSet::new();
    for s in start {
        let url = Url::parse(s.trim()).map_err(|e| anyhow::anyhow!("bad start URL {s:?}: {e}"))?;
        anyhow::ensure!(
            matches!(url.scheme(), "http" | "https") && url.host_str().is_some(),
            "start URL {s:?} is not an http(s) URL"
        );
        hosts.insert(site(&url));
        let url = without_fragment(url);
        if seen.insert(url.clone()) {
            queue.push_back((url, 0u32, true));
        }
    }

    let client = reqwest::Client::builder()
        .timeout(timeout)
        .redirect(reqwest::redirect::Policy::none())
        .user_agent(concat!("ggon/", env!("CARGO_PKG_VERSION"), " link-audit"))
        .build()?;

    let mut findings = Vec::new();
    let mut reported = HashSet::new();
    let mut fetched = 0usize;
    let mut start_ok = false;
    let mut start_error = None;
    while let Some((url, depth, is_start)) = queue.pop_front() {
        if fetched >= max_pages {
            break;
        }
        fetched += 1;
        let page = match fetch(&client, &url).await {
            Ok(p) => p,
            Err(e) => {
                debug!(url = %url, error = %e, "link audit: page skipped");
                if is_start && start_error.is_none() {
                    start_error = Some(format!("{url}: {e}"));
                }
                continue;
            }
        };
        start_ok |= is_start;
        let (links, next_depth) = match page {
            Page::Html(body) => (page_links(&url, &body), depth + 1),
            // A redirect is the same page under another address: same depth.
            Page::Redirect(to) => (resolve(&url, &to).into_iter().collect(), depth),
            Page::Other => continue,
        };
        for link in links {
            // Fragments name places within a page: the same link for us.
            let target = without_fragment(link.url);
            let Some(host) = target.host_str().map(normalize_host) else {
                continue;
            };
            if link.absolute
                && in_domain(&host, &domain)
                && !managed.contains(&host)
                && reported.insert((url.to_string(), target.to_string()))
            {
                findings.push(LinkFinding {
                    page: url.to_string(),
                    link: target.to_string(),
                    host,
                });
            }
            if next_depth <= max_depth
                && matches!(target.scheme(), "http" | "https")
                && hosts.contains(&site(&target))
                && seen.insert(target.clone())
            {
                queue.push_back((target, next_depth, false));
            }
        }
    }
    if !start_ok && max_pages > 0 {
        if let Some(e) = start_error {
            anyhow::bail!("no start page could be fetched: {e}");
        }
    }
    Ok(findings)
}

enum Page {
    Html(String),
    Redirect(String),
    Other,
}

async fn fetch(client: &reqwest::Client, url: &Url) -> Result<Page, String> {
    let mut resp = client
        .get(url.clone())
        .header(ACCEPT, "text/html,application/xhtml+xml;q=0.9,*/*;q=0.1")
        .send()
        .await
        .map_err(|e| error_chain(&e))?;
    let status = resp.status();
    if status.is_redirection() {
        return match resp.headers().get(LOCATION).and_then(|v| v.to_str().ok()) {
            Some(to) => Ok(Page::Redirect(to.to_string())),
            None => Err(format!("HTTP {status} without Location")),
        };
    }
    if !status.is_success() {
        return Err(format!("HTTP {status}"));
    }
    let html = resp
        .headers()
        .get(CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .is_some_and(|mime| {
            let mime = mime.trim();
            mime.eq_ignore_ascii_case("text/html")
                || mime.eq_ignore_ascii_case("application/xhtml+xml")
        });
    if !html {
        return Ok(Page::Other);
    }
    let mut body = Vec::new();
    while let Some(chunk) = resp.chunk().await.map_err(|e| error_chain(&e))? {
        let room = MAX_BODY - body.len();
        body.extend_from_slice(&chunk[..chunk.len().min(room)]);
        if body.len() >= MAX_BODY {
            break;
        }
    }
    Ok(Page::Html(String::from_utf8_lossy(&body).into_owned()))
}

fn error_chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut src = e.source();
    while let Some(inner) = src {
        s.push_str(": ");
        s.push_str(&inner.to_string());
        src = inner.source();
    }
    s
}

/// Scheme, host and port: what "the same host" means for following links.
fn site(url: &Url) -> (String, String, Option<u16>) {
    (
        url.scheme().to_string(),
        url.host_str().map(normalize_host).unwrap_or_default(),
        url.port_or_known_default(),
    )
}

fn without_fragment(mut url: Url) -> Url {
    url.set_fragment(None);
    url
}

fn normalize_host(h: &str) -> String {
    h.trim().trim_end_matches('.').to_ascii_lowercase()
}

fn in_domain(host: &str, domain: &str) -> bool {
    host == domain
        || host
            .strip_suffix(domain)
            .is_some_and(|rest| rest.ends_with('.'))
}

struct Link {
    url: Url,
    /// Written with its own host (`scheme://host` or `//host`), not relative.
    absolute: bool,
}

fn resolve(base: &Url, raw: &str) -> Option<Link> {
    let raw = raw.trim();
    if raw.is_empty() {
        return None;
    }
    let absolute = raw.starts_with("//") || Url::parse(raw).is_ok();
    let url = base.join(raw).ok()?;
    Some(Link { url, absolute })
}

/// The `href`/`src` links of a page, resolved against its address (or its
/// `<base href>`).
fn page_links(page: &Url, html: &str) -> Vec<Link> {
    let mut base = page.clone();
    let mut base_set = false;
    let mut out = Vec::new();
    for attr in scan_attributes(html) {
        if attr.tag == "base" && attr.name == "href" {
            if !base_set {
                if let Ok(b) = page.join(attr.value.trim()) {
                    base = b;
                }
                base_set = true;
            }
            continue;
        }
        out.extend(resolve(&base, &attr.value));
    }
    out
}

#[derive(Debug, PartialEq)]
struct Attr {
    tag: String,
    name: String,
    value: String,
}

/// Every `href` and `src` attribute in start tags, values entity-decoded.
/// Skips comments, doctype/processing instructions, end tags and the raw
/// text inside `<script>` and `<style>` (whose own attributes still count).
fn scan_attributes(html: &str) -> Vec<Attr> {
    let b = html.as_bytes();
    let len = b.len();
    let mut out = Vec::new();
    let mut i = 0;
    while let Some(lt) = find_byte(b, i, b'<') {
        i = lt + 1;
        if b[i..].starts_with(b"!--") {
            i = find_seq(b, i + 3, b"-->").map_or(len, |e| e + 3);
            continue;
        }
        match b.get(i) {
            Some(b'!' | b'?' | b'/') => {
                i = find_byte(b, i, b'>').map_or(len, |e| e + 1);
                continue;
            }
            Some(c) if c.is_ascii_alphabetic() => {}
            // A bare "<" in text.
            _ => continue,
        }
        let name_start = i;
        while i < len && (b[i].is_ascii_alphanumeric() || b[i] == b'-' || b[i] == b':') {
            i += 1;
        }
        let tag = html[name_start..i].to_ascii_lowercase();
        let mut self_closing = false;
        // Attributes, up to the closing '>'.
        loop {
            while i < len && (b[i].is_ascii_whitespace() || b[i] == b'/') {
                self_closing = b[i] == b'/';
                i += 1;
            }
            if i >= len {
                break;
            }
            if b[i] == b'>' {
                i += 1;
                break;
            }
            self_closing = false;
            let attr_start = i;
            while i < len && !b[i].is_ascii_whitespace() && !matches!(b[i], b'=' | b'>' | b'/') {
                i += 1;
            }
            let name = html[attr_start..i].to_ascii_lowercase();
            while i < len && b[i].is_ascii_whitespace() {
                i += 1;
            }
            if i >= len || b[i] != b'=' {
                if name.is_empty() {
                    i += 1; // never stall
                }
                continue;
            }
            i += 1;
            while i < len && b[i].is_ascii_whitespace() {
                i += 1;
            }
            let value = match b.get(i) {
                Some(&q @ (b'"' | b'\'')) => {
                    let end = find_byte(b, i + 1, q).unwrap_or(len);
                    let v = &html[i + 1..end];
                    i = (end + 1).min(len);
                    v
                }
                _ => {
                    let start = i;
                    while i < len && !b[i].is_ascii_whitespace() && b[i] != b'>' {
                        i += 1;
                    }
                    &html[start..i]
                }
            };
            if name == "href" || name == "src" {
                out.push(Attr {
                    tag: tag.clone(),
                    name,
                    value: decode_entities(value),
                });
            }
        }
        if !self_closing && (tag == "script" || tag == "style") {
            let close = format!("</{tag}");
            i = find_ascii_ci(b, i, close.as_bytes()).unwrap_or(len);
        }
    }
    out
}

fn find_byte(b: &[u8], from: usize, needle: u8) -> Option<usize> {
    b.get(from..)?
        .iter()
        .position(|&c| c == needle)
        .map(|p| p + from)
}

fn find_seq(b: &[u8], from: usize, needle: &[u8]) -> Option<usize> {
    b.get(from..)?
        .windows(needle.len())
        .position(|w| w == needle)
        .map(|p| p + from)
}

fn find_ascii_ci(b: &[u8], from: usize, needle: &[u8]) -> Option<usize> {
    b.get(from..)?
        .windows(needle.len())
        .position(|w| w.eq_ignore_ascii_case(needle))
        .map(|p| p + from)
}

/// Decode the character references that matter in URLs: the named ones for
/// markup characters and numeric ones. Anything else is left as written.
fn decode_entities(s: &str) -> String {
    if !s.contains('&') {
        return s.to_string();
    }
    let mut out = String::with_capacity(s.len());
    let mut rest = s;
    while let Some(amp) = rest.find('&') {
        out.push_str(&rest[..amp]);
        rest = &rest[amp..];
        let decoded = rest.find(';').filter(|&semi| semi <= 10).and_then(|semi| {
            let entity = &rest[1..semi];
            let c = match entity {
                "amp" => Some('&'),
                "lt" => Some('<'),
                "gt" => Some('>'),
                "quot" => Some('"'),
                "apos" => Some('\''),
                _ => {
                    let num = entity.strip_prefix('#')?;
                    let code = match num.strip_prefix(['x', 'X']) {
                        Some(hex) => u32::from_str_radix(hex, 16).ok()?,
                        None => num.parse().ok()?,
                    };
                    char::from_u32(code)
                }
            }?;
            Some((c, semi + 1))
        });
        match decoded {
            Some((c, used)) => {
                out.push(c);
                rest = &rest[used..];
            }
            None => {
                out.push('&');
                rest = &rest[1..];
            }
        }
    }
    out.push_str(rest);
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;
    use std::net::SocketAddr;
    use std::sync::{Arc, Mutex};
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio::net::TcpListener;

    fn attrs(html: &str) -> Vec<(String, String, String)> {
        scan_attributes(html)
            .into_iter()
            .map(|a| (a.tag, a.name, a.value))
            .collect()
    }

    fn t(tag: &str, name: &str, value: &str) -> (String, String, String) {
        (tag.into(), name.into(), value.into())
    }

    #[test]
    fn scanner_handles_quotes_case_and_entities() {
        let html = r#"<!DOCTYPE html><HTML><A HREF="/a">x</A>
            <a class=x href='b c.html' title="it's > here">
            <img src=pic.png alt=x><link rel=stylesheet href = "s.css"/>
            <a href="?q=1&amp;r=2&#x2F;&#47;&bogus;&">q</a>
            <a data-href="no" hreflang="en" href>empty</a>
            <a href="/d"/><br/>"#;
        assert_eq!(
            attrs(html),
            vec![
                t("a", "href", "/a"),
                t("a", "href", "b c.html"),
                t("img", "src", "pic.png"),
                t("link", "href", "s.css"),
                t("a", "href", "?q=1&r=2//&bogus;&"),
                t("a", "href", "/d"),
            ]
        );
    }

    #[test]
    fn scanner_skips_comments_scripts_and_styles() {
        let html = r#"<p>1 < 2</p><!-- <a href="/comment"> -->
            <script src="/app.js">var s = "<a href='/in-script'>";</SCRIPT>
            <style>a[href="/in-style"]{}</style><script/><a href="/after">
            <?xml href="/pi"?></a href="/end-tag">"#;
        assert_eq!(
            attrs(html),
            vec![t("script", "src", "/app.js"), t("a", "href", "/after")]
        );
    }

    #[test]
    fn scanner_survives_truncated_markup() {
        for html in [
            "<a href=\"/x",
            "<a href=",
            "<a href",
            "<a ",
            "<",
            "<!--",
            "<script>",
            "<a =x>",
        ] {
            scan_attributes(html);
        }
        assert_eq!(attrs("<a href=\"/x"), vec![t("a", "href", "/x")]);
    }

    #[test]
    fn domain_matching() {
        assert!(in_domain("ggon.org", "ggon.org"));
        assert!(in_domain("wiki.ggon.org", "ggon.org"));
        assert!(!in_domain("evilggon.org", "ggon.org"));
        assert!(!in_domain("ggon.org.evil", "ggon.org"));
        assert_eq!(normalize_host(" Wiki.GGON.org. "), "wiki.ggon.org");
    }

    #[test]
    fn base_href_and_absolute_detection() {
        let page = Url::parse("http://127.0.0.1:8080/dir/page.html").unwrap();
        let links = page_links(
            &page,
            r#"<base href="/other/"><a href="x.html"><a href="//wiki.ggon.org/y">
               <a href="https://cic.ggon.org/z"><a href="mailto:a@ggon.org"><base href="/ignored/"><a href="q">"#,
        );
        let got: Vec<(String, bool)> = links
            .iter()
            .map(|l| (l.url.to_string(), l.absolute))
            .collect();
        assert_eq!(
            got,
            vec![
                ("http://127.0.0.1:8080/other/x.html".into(), false),
                ("http://wiki.ggon.org/y".into(), true),
                ("https://cic.ggon.org/z".into(), true),
                ("mailto:a@ggon.org".into(), true),
                ("http://127.0.0.1:8080/other/q".into(), false),
            ]
        );
    }

    /// path → (status, content type, body, extra header)
    type Site = HashMap<String, (u16, &'static str, String, String)>;

    /// A minimal HTTP/1.1 server on 127.0.0.1 serving `site`; records the
    /// paths requested.
    async fn serve(site: impl FnOnce(SocketAddr) -> Site) -> (SocketAddr, Arc<Mutex<Vec<String>>>) {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let site = Arc::new(site(addr));
        let log = Arc::new(Mutex::new(Vec::new()));
        let log2 = log.clone();
        tokio::spawn(async move {
            loop {
                let Ok((mut sock, _)) = listener.accept().await else {
                    return;
                };
                let (site, log) = (site.clone(), log2.clone());
                tokio::spawn(async move {
                    let mut buf = Vec::new();
                    let mut chunk = [0u8; 1024];
                    while !buf.windows(4).any(|w| w == b"\r\n\r\n") {
                        match sock.read(&mut chunk).await {
                            Ok(0) | Err(_) => return,
                            Ok(n) => buf.extend_from_slice(&chunk[..n]),
                        }
                    }
                    let head = String::from_utf8_lossy(&buf).to_string();
                    let mut parts = head.split_whitespace();
                    assert_eq!(parts.next(), Some("GET"));
                    let path = parts.next().unwrap_or("/").to_string();
                    log.lock().unwrap().push(path.clone());
                    let (status, ctype, body, extra) = site.get(&path).cloned().unwrap_or((
                        404,
                        "text/plain",
                        "not found".into(),
                        String::new(),
                    ));
                    let resp = format!(
                        "HTTP/1.1 {status} X\r\ncontent-type: {ctype}\r\ncontent-length: {}\r\n{extra}connection: close\r\n\r\n",
                        body.len()
                    );
                    let _ = sock.write_all(resp.as_bytes()).await;
                    let _ = sock.write_all(body.as_bytes()).await;
                });
            }
        });
        (addr, log)
    }

    fn html(body: &str) -> (u16, &'static str, String, String) {
        (
            200,
            "text/html; charset=utf-8",
            body.to_string(),
            String::new(),
        )
    }

    async fn test_site() -> (SocketAddr, Arc<Mutex<Vec<String>>>) {
        serve(|addr| {
            let mut s = Site::new();
            s.insert(
                "/index.html".into(),
                html(&format!(
                    r#"<html><body>
                    <a href="/page2.html">two</a>
                    <a href='https://cic.ggon.org/x'>managed</a>
                    <img src=http://wiki.ggon.org/logo.png>
                    <a href="https://example.com/">outside</a>
                    <a href="HTTPS://Docs.GGON.org./a?b=1&amp;c=2">docs</a>
                    <!-- <a href="https://hidden.ggon.org/"> -->
                    <a href="/data.json">data</a>
                    <a href="http://localhost:{port}/elsewhere.html">other host</a>
                    <a href="/moved">moved</a>
                    <a href="http://wiki.ggon.org/logo.png#again">same link</a>
                    </body></html>"#,
                    port = addr.port()
                )),
            );
            s.insert(
                "/page2.html".into(),
                html(
                    r#"<a href="page3.html">three</a><a href="//ftp.ggon.org/file">ftp</a>
                       <a href="/index.html#top">back</a><a href="https://CIC.ggon.org/">managed</a>"#,
                ),
            );
            s.insert(
                "/page3.html".into(),
                html(r#"<a href="https://deep.ggon.org/">deep</a><a href="/page4.html">four</a>"#),
            );
            s.insert(
                "/page4.html".into(),
                html(r#"<a href="https://deeper.ggon.org/">deeper</a>"#),
            );
            s.insert(
                "/data.json".into(),
                (
                    200,
                    "application/json",
                    r#"{"href": "https://json.ggon.org/"}"#.into(),
                    String::new(),
                ),
            );
            s.insert(
                "/moved".into(),
                (
                    301,
                    "text/plain",
                    String::new(),
                    "location: https://new.ggon.org/\r\n".into(),
                ),
            );
            s
        })
        .await
    }

    fn hosts(f: &[LinkFinding]) -> Vec<&str> {
        f.iter().map(|f| f.host.as_str()).collect()
    }

    const T: Duration = Duration::from_secs(5);

    async fn bounded<F: std::future::Future>(f: F) -> F::Output {
        tokio::time::timeout(Duration::from_secs(30), f)
            .await
            .expect("test took too long")
    }

    #[tokio::test]
    async fn finds_unmanaged_links_within_depth() {
        bounded(async {
            let (addr, log) = test_site().await;
            let start = vec![format!("http://{addr}/index.html")];
            let managed = vec!["cic.ggon.org.".to_string()];
            let f = audit_links(&start, "ggon.org", &managed, 1, 100, T)
                .await
                .unwrap();
            assert_eq!(
                hosts(&f),
                vec![
                    "wiki.ggon.org",
                    "docs.ggon.org",
                    "ftp.ggon.org",
                    "new.ggon.org"
                ]
            );
            let index = format!("http://{addr}/index.html");
            assert_eq!(
                f[0],
                LinkFinding {
                    page: index.clone(),
                    link: "http://wiki.ggon.org/logo.png".into(),
                    host: "wiki.ggon.org".into(),
                }
            );
            assert_eq!(f[1].link, "https://docs.ggon.org./a?b=1&c=2");
            assert_eq!(f[2].page, format!("http://{addr}/page2.html"));
            assert_eq!(f[2].link, "http://ftp.ggon.org/file");
            // The redirect is reported against the address that redirected.
            assert_eq!(f[3].page, format!("http://{addr}/moved"));
            // Depth 1: page3 was not fetched; the other host never contacted.
            let log = log.lock().unwrap().clone();
            assert_eq!(
                log,
                vec!["/index.html", "/page2.html", "/data.json", "/moved"],
            );
        })
        .await;
    }

    #[tokio::test]
    async fn deeper_crawl_and_page_limit() {
        bounded(async {
            let (addr, _) = test_site().await;
            let start = vec![format!("http://{addr}/index.html")];
            let managed = vec!["cic.ggon.org".to_string()];
            let f = audit_links(&start, "ggon.org", &managed, 2, 100, T)
                .await
                .unwrap();
            assert!(hosts(&f).contains(&"deep.ggon.org"));
            assert!(!hosts(&f).contains(&"deeper.ggon.org"));
            let f = audit_links(&start, "ggon.org", &managed, 10, 100, T)
                .await
                .unwrap();
            assert!(hosts(&f).contains(&"deeper.ggon.org"));
            assert!(!hosts(&f)
                .iter()
                .any(|h| h.contains("hidden") || h.contains("json")));

            let (addr, log) = test_site().await;
            let start = vec![format!("http://{addr}/index.html")];
            let f = audit_links(&start, "ggon.org", &managed, 10, 2, T)
                .await
                .unwrap();
            assert_eq!(log.lock().unwrap().len(), 2);
            assert_eq!(
                hosts(&f),
                vec!["wiki.ggon.org", "docs.ggon.org", "ftp.ggon.org"]
            );
        })
        .await;
    }

    #[tokio::test]
    async fn body_is_capped() {
        bounded(async {
            let (addr, _) = serve(|_| {
                let mut s = Site::new();
                let mut body = String::from(r#"<a href="https://early.ggon.org/">"#);
                body.push_str(&" ".repeat(MAX_BODY));
                body.push_str(r#"<a href="https://late.ggon.org/">"#);
                s.insert("/".into(), html(&body));
                s
            })
            .await;
            let f = audit_links(&[format!("http://{addr}/")], "ggon.org", &[], 1, 10, T)
                .await
                .unwrap();
            assert_eq!(hosts(&f), vec!["early.ggon.org"]);
        })
        .await;
    }

    #[tokio::test]
    async fn errors_for_bad_or_unreachable_start() {
        bounded(async {
            assert!(
                audit_links(&["not a url".into()], "ggon.org", &[], 1, 10, T)
                    .await
                    .is_err()
            );
            assert!(
                audit_links(&["ftp://x.ggon.org/".into()], "ggon.org", &[], 1, 10, T)
                    .await
                    .is_err()
            );
            let closed = {
                let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
                l.local_addr().unwrap()
            };
            let e = audit_links(&[format!("http://{closed}/")], "ggon.org", &[], 1, 10, T)
                .await
                .unwrap_err();
            assert!(e.to_string().contains("no start page"), "{e}");
            // A 404 start page is an error too; one good start page is enough.
            let (addr, _) = test_site().await;
            let start = vec![
                format!("http://{addr}/missing"),
                format!("http://{addr}/page4.html"),
            ];
            let f = audit_links(&start, "ggon.org", &[], 0, 10, T)
                .await
                .unwrap();
            assert_eq!(hosts(&f), vec!["deeper.ggon.org"]);
        })
        .await;
    }
}
