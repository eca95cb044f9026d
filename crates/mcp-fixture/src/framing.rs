//! HTTP framing shared by the HTTP transports (`/mcp`, `/sse`): JSON responses, SSE event
//! framing and streaming bodies fed from an `Out` channel, `Accept` checks, and decoding of
//! the `=?base64?...?=` header sentinel.

use std::time::Duration;

use axum::body::{Body, Bytes};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::Response;
use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;
use futures::Stream;
use serde_json::Value;
use tokio::sync::mpsc;

use crate::dispatch::Out;
use crate::server::ConnKill;

/// Idle time after which long-lived SSE streams send a `:` comment.
pub const KEEPALIVE: Duration = Duration::from_secs(15);

pub fn header_str<'a>(h: &'a HeaderMap, name: &str) -> Option<&'a str> {
    h.get(name).and_then(|v| v.to_str().ok())
}

/// Decodes the `=?base64?...?=` sentinel form of `Mcp-Name` / `Mcp-Param-*` values.
pub fn decode_header_value(v: &str) -> Option<String> {
    match v
        .strip_prefix("=?base64?")
        .and_then(|r| r.strip_suffix("?="))
    {
        Some(b64) => String::from_utf8(STANDARD.decode(b64).ok()?).ok(),
        None => Some(v.to_owned()),
    }
}

pub fn json_response(status: StatusCode, body: &Value) -> Response {
    let bytes = serde_json::to_vec(body).unwrap_or_default();
    let mut r = Response::new(Body::from(bytes));
    *r.status_mut() = status;
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    r
}

/// One SSE event carrying a JSON-RPC message (or raw text).
pub fn sse_event(data: &[u8]) -> Bytes {
    let mut b = Vec::with_capacity(data.len() + 24);
    b.extend_from_slice(b"event: message\ndata: ");
    b.extend_from_slice(data);
    b.extend_from_slice(b"\n\n");
    Bytes::from(b)
}

pub fn out_event(item: &Out) -> Option<Bytes> {
    match item {
        Out::Json(v) => Some(sse_event(&serde_json::to_vec(v).unwrap_or_default())),
        Out::Raw(s) => Some(sse_event(s.as_bytes())),
        Out::Crash => None,
    }
}

pub fn sse_response<S>(stream: S) -> Response
where
    S: Stream<Item = Result<Bytes, std::io::Error>> + Send + 'static,
{
    let mut r = Response::new(Body::from_stream(stream));
    let h = r.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/event-stream"),
    );
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    h.insert("x-accel-buffering", HeaderValue::from_static("no"));
    r
}

pub fn empty_sse() -> Response {
    sse_response(futures::stream::empty())
}

pub fn accepts(h: &HeaderMap, json: bool, sse: bool) -> bool {
    let (mut has_json, mut has_sse) = (false, false);
    for v in h
        .get_all(header::ACCEPT)
        .iter()
        .filter_map(|v| v.to_str().ok())
    {
        if v.contains("*/*") {
            return true;
        }
        has_json |= v.contains("application/json");
        has_sse |= v.contains("text/event-stream");
    }
    (!json || has_json) && (!sse || has_sse)
}

/// The SSE body fed by a request's `Out` channel: ends with the channel, aborts the
/// connection on `Out::Crash`, sends `:` comments when idle if `keepalive`.
pub fn out_stream(
    first: Option<Bytes>,
    rx: mpsc::UnboundedReceiver<Out>,
    kill: ConnKill,
    keepalive: bool,
) -> impl Stream<Item = Result<Bytes, std::io::Error>> + Send + 'static {
    futures::stream::unfold((first, rx, kill), move |(first, mut rx, kill)| async move {
        if let Some(b) = first {
            return Some((Ok(b), (None, rx, kill)));
        }
        let item = if keepalive {
            match tokio::time::timeout(KEEPALIVE, rx.recv()).await {
                Ok(item) => item,
                Err(_) => {
                    return Some((Ok(Bytes::from_static(b": keepalive\n\n")), (None, rx, kill)))
                }
            }
        } else {
            rx.recv().await
        };
        match item {
            None => None,
            Some(o) => match out_event(&o) {
                Some(b) => Some((Ok(b), (None, rx, kill))),
                None => {
                    kill.0.cancel();
                    Some((Err(std::io::Error::other("crash")), (None, rx, kill)))
                }
            },
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn header_sentinel() {
        assert_eq!(decode_header_value("us-west1").as_deref(), Some("us-west1"));
        assert_eq!(
            decode_header_value("=?base64?SGVsbG8sIOS4lueVjA==?=").as_deref(),
            Some("Hello, 世界")
        );
        assert_eq!(decode_header_value("=?base64?!!!?="), None);
    }

    #[test]
    fn accept_rules() {
        let mut h = HeaderMap::new();
        h.insert(header::ACCEPT, HeaderValue::from_static("application/json"));
        assert!(!accepts(&h, true, true));
        h.insert(
            header::ACCEPT,
            HeaderValue::from_static("application/json, text/event-stream"),
        );
        assert!(accepts(&h, true, true));
        h.insert(header::ACCEPT, HeaderValue::from_static("*/*"));
        assert!(accepts(&h, true, true));
    }
}
