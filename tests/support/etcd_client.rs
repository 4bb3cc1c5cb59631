//! A tiny blocking HTTP/1.1 client for etcd's JSON gateway, for tests
//! (std sockets only, short timeouts, base64 by hand).

use std::io::{self, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, Instant};

use serde_json::{json, Value};

use super::etcd::REQUEST_LIMIT;

// ---------------------------------------------------------------------------
// JSON gateway client

/// One HTTP/1.1 request to `endpoint` (`http://127.0.0.1:PORT`) with
/// `Connection: close`, all of it within `limit`; returns (status, body).
pub fn http_request(
    endpoint: &str,
    method: &str,
    path: &str,
    body: Option<&str>,
    limit: Duration,
) -> Result<(u16, String), String> {
    let addr = endpoint_addr(endpoint)?;
    let deadline = Instant::now() + limit;
    let left = || {
        deadline
            .checked_duration_since(Instant::now())
            .filter(|d| !d.is_zero())
            .ok_or_else(|| format!("{method} {endpoint}{path}: timed out after {limit:?}"))
    };
    let io_err = |e: io::Error| format!("{method} {endpoint}{path}: {e}");
    let mut s = TcpStream::connect_timeout(&addr, left()?).map_err(io_err)?;
    s.set_nodelay(true).map_err(io_err)?;
    let mut req = format!("{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n");
    if let Some(b) = body {
        req += &format!(
            "Content-Type: application/json\r\nContent-Length: {}\r\n",
            b.len()
        );
    }
    req += "\r\n";
    req += body.unwrap_or("");
    s.set_write_timeout(Some(left()?)).map_err(io_err)?;
    s.write_all(req.as_bytes()).map_err(io_err)?;
    let mut resp = Vec::new();
    let mut buf = [0u8; 8192];
    loop {
        s.set_read_timeout(Some(left()?)).map_err(io_err)?;
        match s.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => resp.extend_from_slice(&buf[..n]),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e)
                if matches!(
                    e.kind(),
                    io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
                ) =>
            {
                return Err(format!(
                    "{method} {endpoint}{path}: timed out after {limit:?}"
                ))
            }
            Err(e) => return Err(io_err(e)),
        }
    }
    parse_response(&resp).map_err(|e| format!("{method} {endpoint}{path}: {e}"))
}

/// `http://127.0.0.1:PORT[/]` (or a bare `127.0.0.1:PORT`) to its address.
fn endpoint_addr(endpoint: &str) -> Result<SocketAddr, String> {
    let hostport = endpoint
        .strip_prefix("http://")
        .unwrap_or(endpoint)
        .trim_end_matches('/');
    hostport
        .parse()
        .map_err(|e| format!("endpoint {endpoint:?} is not http://IP:PORT: {e}"))
}

/// Status and body of a complete HTTP/1.1 response (Content-Length, chunked
/// or read-to-close).
fn parse_response(resp: &[u8]) -> Result<(u16, String), String> {
    let text_err = || format!("bad HTTP response: {:?}", String::from_utf8_lossy(resp));
    let split = resp
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .ok_or_else(text_err)?;
    let head = String::from_utf8_lossy(&resp[..split]).into_owned();
    let raw = &resp[split + 4..];
    let status: u16 = head
        .split(' ')
        .nth(1)
        .and_then(|c| c.parse().ok())
        .ok_or_else(text_err)?;
    let header = |name: &str| {
        head.lines().skip(1).find_map(|l| {
            let (k, v) = l.split_once(':')?;
            k.trim()
                .eq_ignore_ascii_case(name)
                .then(|| v.trim().to_string())
        })
    };
    let body = if header("transfer-encoding").is_some_and(|v| v.eq_ignore_ascii_case("chunked")) {
        dechunk(raw).ok_or_else(text_err)?
    } else if let Some(len) = header("content-length").and_then(|v| v.parse::<usize>().ok()) {
        if raw.len() < len {
            return Err(format!(
                "short body: {} of {len} bytes: {}",
                raw.len(),
                text_err()
            ));
        }
        raw[..len].to_vec()
    } else {
        raw.to_vec()
    };
    Ok((status, String::from_utf8_lossy(&body).into_owned()))
}

fn dechunk(mut raw: &[u8]) -> Option<Vec<u8>> {
    let mut out = Vec::new();
    loop {
        let eol = raw.windows(2).position(|w| w == b"\r\n")?;
        let size_text = std::str::from_utf8(&raw[..eol]).ok()?;
        let size = usize::from_str_radix(size_text.split(';').next()?.trim(), 16).ok()?;
        raw = &raw[eol + 2..];
        if size == 0 {
            return Some(out);
        }
        if raw.len() < size + 2 {
            return None;
        }
        out.extend_from_slice(&raw[..size]);
        raw = &raw[size + 2..];
    }
}

/// POST `body` as JSON to a gateway path (`/v3/kv/put`, `/v3/lease/grant`,
/// ...) within [`REQUEST_LIMIT`]; the answer's JSON, or an error with the
/// status and body for a non-200 answer (etcd errors come as
/// `{"error":..,"message":..,"code":..}`).
pub fn etcd_post(endpoint: &str, path: &str, body: &Value) -> Result<Value, String> {
    let (status, text) = http_request(
        endpoint,
        "POST",
        path,
        Some(&body.to_string()),
        REQUEST_LIMIT,
    )?;
    if status != 200 {
        return Err(format!("POST {endpoint}{path}: HTTP {status}: {text}"));
    }
    serde_json::from_str(&text)
        .map_err(|e| format!("POST {endpoint}{path}: not JSON ({e}): {text:?}"))
}

/// Put `key` = `value` through `endpoint`.
pub fn etcd_put(endpoint: &str, key: &str, value: &str) -> Result<(), String> {
    etcd_post(
        endpoint,
        "/v3/kv/put",
        &json!({"key": b64(key.as_bytes()), "value": b64(value.as_bytes())}),
    )
    .map(drop)
}

/// Delete `key` through `endpoint`; how many keys were deleted.
pub fn etcd_delete(endpoint: &str, key: &str) -> Result<u64, String> {
    let v = etcd_post(
        endpoint,
        "/v3/kv/deleterange",
        &json!({"key": b64(key.as_bytes())}),
    )?;
    Ok(json_u64(&v["deleted"]))
}

/// Linearizable read of `key` through `endpoint` (goes through the leader,
/// so it needs a quorum).
pub fn etcd_get(endpoint: &str, key: &str) -> Result<Option<String>, String> {
    get_one(endpoint, key, false)
}

/// Serializable read of `key`: the member's own applied state, answered even
/// without a quorum (and possibly stale).
pub fn etcd_get_local(endpoint: &str, key: &str) -> Result<Option<String>, String> {
    get_one(endpoint, key, true)
}

fn get_one(endpoint: &str, key: &str, serializable: bool) -> Result<Option<String>, String> {
    let v = etcd_post(
        endpoint,
        "/v3/kv/range",
        &json!({"key": b64(key.as_bytes()), "serializable": serializable}),
    )?;
    Ok(kvs(&v)?.into_iter().next().map(|(_, val)| val))
}

/// Linearizable read of every key starting with `prefix` (every key for an
/// empty prefix), sorted by key.
pub fn etcd_get_prefix(endpoint: &str, prefix: &str) -> Result<Vec<(String, String)>, String> {
    let (key, end) = prefix_range(prefix.as_bytes());
    let v = etcd_post(
        endpoint,
        "/v3/kv/range",
        &json!({"key": b64(&key), "range_end": b64(&end)}),
    )?;
    kvs(&v)
}

/// The `[key, range_end)` of every key with `prefix`. etcd rejects an empty
/// key; `\0` as both ends means every key.
fn prefix_range(prefix: &[u8]) -> (Vec<u8>, Vec<u8>) {
    let mut end = prefix.to_vec();
    while let Some(last) = end.pop() {
        if last < 0xff {
            end.push(last + 1);
            return (prefix.to_vec(), end);
        }
    }
    let key = if prefix.is_empty() {
        vec![0]
    } else {
        prefix.to_vec()
    };
    (key, vec![0])
}

/// The (key, value) pairs of a range answer (`kvs` is absent when empty).
fn kvs(v: &Value) -> Result<Vec<(String, String)>, String> {
    let Some(list) = v.get("kvs") else {
        return Ok(Vec::new());
    };
    let list = list
        .as_array()
        .ok_or_else(|| format!("range answer: kvs is not an array: {v}"))?;
    list.iter()
        .map(|kv| {
            let field = |name: &str| -> Result<String, String> {
                // An empty value is left out of the JSON.
                let text = kv[name].as_str().unwrap_or("");
                let bytes = unb64(text).ok_or_else(|| format!("bad base64 in {name}: {kv}"))?;
                String::from_utf8(bytes).map_err(|_| format!("{name} is not UTF-8: {kv}"))
            };
            Ok((field("key")?, field("value")?))
        })
        .collect()
}

/// An int64 field of a gateway answer: a JSON string ("12"), a number, or
/// absent (0).
pub fn json_u64(v: &Value) -> u64 {
    match v {
        Value::String(s) => s.parse().unwrap_or(0),
        Value::Number(n) => n.as_u64().unwrap_or(0),
        _ => 0,
    }
}

const B64: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

/// Standard base64 with padding.
pub fn b64(data: &[u8]) -> String {
    let mut out = String::with_capacity(data.len().div_ceil(3) * 4);
    for chunk in data.chunks(3) {
        let b = [
            chunk[0],
            chunk.get(1).copied().unwrap_or(0),
            chunk.get(2).copied().unwrap_or(0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for (k, shift) in [18, 12, 6, 0].into_iter().enumerate() {
            if k <= chunk.len() {
                out.push(B64[((n >> shift) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

/// Standard base64 (padding optional); None if malformed.
pub fn unb64(text: &str) -> Option<Vec<u8>> {
    let text = text.trim_end_matches('=');
    let mut out = Vec::with_capacity(text.len() * 3 / 4);
    let mut acc: u32 = 0;
    let mut bits = 0;
    for c in text.bytes() {
        let d = B64.iter().position(|&x| x == c)? as u32;
        acc = (acc << 6) | d;
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            out.push((acc >> bits) as u8);
            acc &= (1 << bits) - 1;
        }
    }
    // A lone sixth of a byte (length 1 mod 4) is not base64.
    (bits < 6).then_some(out)
}
