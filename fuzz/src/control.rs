//! The `control` target: what the control API's handlers decode from a
//! request before the controller sees it: the JSON bodies of remap, drain,
//! drill and DNSSEC roll (axum's `Json` decoder, then the request types'
//! own validation, as the handlers run them) and the query strings of
//! status, release, history and the status page (axum's `Query` decoder,
//! then the handlers' validation). Not the HTTP server: its limits and
//! timeouts are tested over real sockets (tests/operator/limits.rs).
//!
//! Input: one byte chooses the route, the rest is the body (or the query
//! string).
//!
//! Invariants: no panic; a body that does not decode is refused with a
//! 4xx and a message; a request that decodes and validates keeps what was
//! asked (target, durations read exactly as `humantime` reads them), and
//! the request types, which `ggon-ctl` serializes, come back the same from
//! their own JSON.

use axum::extract::Query;
use axum::http::Uri;
use axum::Json;
use ggon::decide::requests::{DrainRequest, DrillRequest, RemapRequest};
use ggon::ops::control::{HistoryParams, PageQuery, ReleaseParams, RollRequest, StatusQuery};
use serde::de::DeserializeOwned;
use serde::Serialize;

/// "Now" for `since=1h` (unix seconds): fixed, so a failure replays.
const NOW: u64 = 1_800_000_000;

/// The `control` target.
pub fn control(data: &[u8]) {
    let Some((&route, input)) = data.split_first() else {
        return;
    };
    match route % 8 {
        0 => {
            if let Some(r) = body::<RemapRequest>(input) {
                let (to, duration) = (r.to.clone(), r.duration.clone());
                if let Ok(remap) = r.parse() {
                    assert_eq!(remap.to, to);
                    assert_eq!(remap.duration, duration.map(|d| parse(&d)));
                }
            }
        }
        1 => {
            if let Some(r) = body::<DrainRequest>(input) {
                let duration = r.duration.clone();
                if let Ok(drain) = r.parse() {
                    assert_eq!(drain.duration, duration.map(|d| parse(&d)));
                }
            }
        }
        2 => {
            if let Some(r) = body::<DrillRequest>(input) {
                let (fail, duration) = (r.fail.clone(), r.duration.clone());
                match r.parse() {
                    Ok(plan) => match plan.fail {
                        Some((target, d)) => {
                            assert_eq!(Some(target), fail);
                            assert_eq!(Some(d), duration.map(|d| parse(&d)));
                        }
                        None => assert!(fail.is_none(), "a failure drill became a dry run"),
                    },
                    Err(e) => assert!(!e.to_string().is_empty()),
                }
            }
        }
        3 => {
            decode_json::<RollRequest>(input);
        }
        4 => {
            query::<StatusQuery>(input);
        }
        5 => {
            query::<ReleaseParams>(input);
        }
        6 => {
            if let Some(q) = query::<HistoryParams>(input) {
                let (since, limit) = (q.since.clone(), q.limit);
                if let Ok(h) = q.parse(NOW) {
                    assert_eq!(h.limit, limit.unwrap_or(1000));
                    // Unix seconds as given, or a duration back from NOW.
                    match since.map(|s| s.parse::<u64>()) {
                        None => assert_eq!(h.since, None),
                        Some(Ok(t)) => assert_eq!(h.since, Some(t)),
                        Some(Err(_)) => assert!(h.since.is_some_and(|t| t <= NOW)),
                    }
                }
            }
        }
        _ => {
            if let Some(q) = query::<PageQuery>(input) {
                if let Some(r) = q.range.as_deref() {
                    if let Ok(range) = ggon::ops::range::Range::parse(r) {
                        assert_eq!(range.label(), r);
                    }
                }
            }
        }
    }
}

/// A duration the validation accepted, read again.
fn parse(d: &str) -> std::time::Duration {
    humantime::parse_duration(d).expect("accepted, so it parses")
}

/// A JSON body as axum's `Json` decodes it: the value, or a 4xx refusal.
fn decode_json<T: DeserializeOwned>(input: &[u8]) -> Option<T> {
    match Json::<T>::from_bytes(input) {
        Ok(Json(v)) => Some(v),
        Err(e) => {
            assert!(e.status().is_client_error(), "status {}", e.status());
            assert!(!e.body_text().is_empty());
            None
        }
    }
}

/// A request type `ggon-ctl` sends: decoded, and its own JSON decodes to
/// the same JSON.
fn body<T: DeserializeOwned + Serialize>(input: &[u8]) -> Option<T> {
    let v = decode_json::<T>(input)?;
    let json = serde_json::to_vec(&v).expect("a request serializes");
    let again = decode_json::<T>(&json).expect("ggon-ctl's JSON of a request decodes");
    assert_eq!(
        serde_json::to_vec(&again).unwrap(),
        json,
        "a request changed on its way"
    );
    Some(v)
}

/// A query string as axum's `Query` decodes it (only strings hyper would
/// take as a request target get that far).
fn query<T: DeserializeOwned>(input: &[u8]) -> Option<T> {
    let text = std::str::from_utf8(input).ok()?;
    let uri: Uri = format!("/v1/x?{text}").parse().ok()?;
    match Query::<T>::try_from_uri(&uri) {
        Ok(Query(v)) => Some(v),
        Err(e) => {
            assert!(e.status().is_client_error(), "status {}", e.status());
            None
        }
    }
}
