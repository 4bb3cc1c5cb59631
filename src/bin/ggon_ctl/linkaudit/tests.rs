//! The link audit against a small local web site.

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
