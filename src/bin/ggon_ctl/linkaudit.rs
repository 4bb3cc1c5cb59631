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

/// Why a URL does not parse (the `url` crate's error, through reqwest).
type UrlError = <Url as std::str::FromStr>::Err;

/// Why the audit found nothing to report on.
#[derive(Debug, thiserror::Error)]
pub enum AuditError {
    #[error("empty domain")]
    EmptyDomain,
    #[error("bad start URL {url:?}: {error}")]
    BadUrl { url: String, error: UrlError },
    #[error("start URL {0:?} is not an http(s) URL")]
    NotHttp(String),
    #[error("{0}")]
    Client(reqwest::Error),
    #[error("no start page could be fetched: {url}: {error}")]
    NoStartPage { url: Url, error: FetchError },
}

/// Why one page could not be fetched (the page is skipped).
#[derive(Debug, thiserror::Error)]
pub enum FetchError {
    #[error("{}", error_chain(.0))]
    Http(reqwest::Error),
    #[error("HTTP {0} without Location")]
    RedirectWithoutLocation(reqwest::StatusCode),
    #[error("HTTP {0}")]
    Status(reqwest::StatusCode),
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
) -> Result<Vec<LinkFinding>, AuditError> {
    let domain = normalize_host(domain);
    if domain.is_empty() {
        return Err(AuditError::EmptyDomain);
    }
    let managed: HashSet<String> = managed.iter().map(|m| normalize_host(m)).collect();

    let StartPages {
        mut queue,
        mut seen,
        hosts,
    } = start_pages(start)?;
    let client = reqwest::Client::builder()
        .timeout(timeout)
        .redirect(reqwest::redirect::Policy::none())
        .user_agent(concat!("ggon/", env!("CARGO_PKG_VERSION"), " link-audit"))
        .build()
        .map_err(AuditError::Client)?;

    let mut findings = Vec::new();
    let mut reported = HashSet::new();
    let mut fetched = 0usize;
    let mut start_ok = false;
    let mut start_error = None;
    // On a terminal, one line of progress rewritten in place (stderr);
    // nothing when stderr is a file or a pipe.
    let progress = std::io::IsTerminal::is_terminal(&std::io::stderr());
    while let Some((url, depth, is_start)) = queue.pop_front() {
        if fetched >= max_pages {
            break;
        }
        fetched += 1;
        if progress {
            let shown: String = url.as_str().chars().take(60).collect();
            eprint!(
                "\r\x1b[K[{fetched}/{max_pages} pages, {} queued, {} findings] {shown}",
                queue.len(),
                findings.len()
            );
        }
        let page = match fetch(&client, &url).await {
            Ok(p) => p,
            Err(e) => {
                debug!(url = %url, error = %e, "link audit: page skipped");
                if is_start && start_error.is_none() {
                    start_error = Some((url.clone(), e));
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
    if progress {
        eprint!("\r\x1b[K");
    }
    if !start_ok && max_pages > 0 {
        if let Some((url, error)) = start_error {
            return Err(AuditError::NoStartPage { url, error });
        }
    }
    Ok(findings)
}

/// Where a crawl begins: the start pages queued (URL, depth, is a start
/// page), the URLs seen, and the sites links are followed on.
struct StartPages {
    queue: VecDeque<(Url, u32, bool)>,
    seen: HashSet<Url>,
    hosts: HashSet<(String, String, Option<u16>)>,
}

fn start_pages(start: &[String]) -> Result<StartPages, AuditError> {
    let mut pages = StartPages {
        queue: VecDeque::new(),
        seen: HashSet::new(),
        hosts: HashSet::new(),
    };
    for s in start {
        let url = Url::parse(s.trim()).map_err(|error| AuditError::BadUrl {
            url: s.clone(),
            error,
        })?;
        if !(matches!(url.scheme(), "http" | "https") && url.host_str().is_some()) {
            return Err(AuditError::NotHttp(s.clone()));
        }
        pages.hosts.insert(site(&url));
        let url = without_fragment(url);
        if pages.seen.insert(url.clone()) {
            pages.queue.push_back((url, 0u32, true));
        }
    }
    Ok(pages)
}

enum Page {
    Html(String),
    Redirect(String),
    Other,
}

async fn fetch(client: &reqwest::Client, url: &Url) -> Result<Page, FetchError> {
    let mut resp = client
        .get(url.clone())
        .header(ACCEPT, "text/html,application/xhtml+xml;q=0.9,*/*;q=0.1")
        .send()
        .await
        .map_err(FetchError::Http)?;
    let status = resp.status();
    if status.is_redirection() {
        return match resp.headers().get(LOCATION).and_then(|v| v.to_str().ok()) {
            Some(to) => Ok(Page::Redirect(to.to_string())),
            None => Err(FetchError::RedirectWithoutLocation(status)),
        };
    }
    if !status.is_success() {
        return Err(FetchError::Status(status));
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
    while let Some(chunk) = resp.chunk().await.map_err(FetchError::Http)? {
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
mod tests;
