//! The `http`/`https` check: a fresh connection, no redirects, no proxy;
//! status in the expected set and, optionally, a substring in the first
//! [`BODY_LIMIT`] bytes of the body.

use super::*;

pub(super) struct HttpCheck<'a> {
    pub url: &'a str,
    pub expect_status: &'a [u16],
    pub body_contains: Option<&'a str>,
    pub host: Option<&'a str>,
}

pub(super) async fn check_http(client: &reqwest::Client, check: HttpCheck<'_>) -> Verdict {
    let mut req = client.get(check.url);
    if let Some(host) = check.host {
        req = req.header(reqwest::header::HOST, host);
    }
    let mut resp = req.send().await.map_err(CheckFailure::Http)?;
    let status = resp.status().as_u16();
    let status_ok = if check.expect_status.is_empty() {
        (200..=399).contains(&status)
    } else {
        check.expect_status.contains(&status)
    };
    if !status_ok {
        let expected = if check.expect_status.is_empty() {
            "200..=399".to_string()
        } else {
            let list: Vec<String> = check.expect_status.iter().map(u16::to_string).collect();
            list.join(" or ")
        };
        return Err(CheckFailure::Status { status, expected });
    }
    if let Some(needle) = check.body_contains {
        let body = read_body_prefix(&mut resp, BODY_LIMIT)
            .await
            .map_err(|error| CheckFailure::Body { status, error })?;
        if !contains(&body, needle.as_bytes()) {
            return Err(CheckFailure::BodyLacks {
                status,
                needle: needle.to_string(),
                cut: body.len() >= BODY_LIMIT,
            });
        }
    }
    Ok(format!("HTTP {status}"))
}

async fn read_body_prefix(resp: &mut reqwest::Response, limit: usize) -> reqwest::Result<Vec<u8>> {
    let mut body = Vec::new();
    while body.len() < limit {
        match resp.chunk().await? {
            Some(chunk) => {
                let take = chunk.len().min(limit - body.len());
                body.extend_from_slice(&chunk[..take]);
            }
            None => break,
        }
    }
    Ok(body)
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    needle.is_empty() || haystack.windows(needle.len()).any(|w| w == needle)
}

/// reqwest's own message is "error sending request for url (...)"; the cause
/// at the bottom of the chain is what an operator needs. ggon-ctl uses it for
/// its own requests to ggond too.
pub fn http_error_detail(e: &reqwest::Error) -> String {
    let mut innermost: &dyn std::error::Error = e;
    let mut io_kind = None;
    while let Some(source) = innermost.source() {
        innermost = source;
        if let Some(io) = source.downcast_ref::<io::Error>() {
            io_kind = Some(io.kind());
        }
    }
    if io_kind == Some(io::ErrorKind::ConnectionRefused) {
        return "connect refused".into();
    }
    let cause = innermost.to_string();
    if e.is_builder() {
        format!("invalid request: {cause}")
    } else if e.is_connect() {
        format!("connect: {cause}")
    } else {
        cause
    }
}
