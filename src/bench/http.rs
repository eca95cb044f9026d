//! One benchmark session over streamable HTTP, either era.
//!
//! Owns the HTTP rules a client must follow: `Accept` for JSON and SSE, `Mcp-Session-Id`
//! and `MCP-Protocol-Version` after `initialize` (sessions era), `MCP-Protocol-Version`,
//! `Mcp-Method` and `Mcp-Name` on every stateless request, an answer that is JSON or an
//! SSE stream read until the response arrives, and `DELETE` to end a session.
//!
//! Every session shares one `reqwest::Client` (one connection pool), as a real client
//! application would; the headers a session sends are built once, at set-up.

use std::time::Duration;

use reqwest::header::{HeaderMap, HeaderName, HeaderValue, ACCEPT, CONTENT_TYPE};
use reqwest::{Client, StatusCode, Url};
use serde_json::Value;

use super::rpc::{self, Era, ErrorKind, Failure, Reading, Workload};

const SESSION_HEADER: &str = "mcp-session-id";
const VERSION_HEADER: &str = "mcp-protocol-version";
/// The most an SSE answer may buffer before the response (a bound, not a tuning knob).
const MAX_STREAM_BYTES: usize = 64 << 20;

/// What every HTTP session of a run shares.
#[derive(Debug, Clone)]
pub struct HttpTarget {
    /// The one connection pool.
    pub client: Client,
    /// The MCP endpoint.
    pub url: Url,
    /// `--header`s, plus `Content-Type` and `Accept`.
    pub headers: HeaderMap,
    /// The era spoken.
    pub era: Era,
}

impl HttpTarget {
    /// A target with a fresh connection pool.
    ///
    /// # Errors
    /// When the TLS back-end cannot be initialised.
    pub fn new(url: Url, extra: &[(HeaderName, HeaderValue)], era: Era) -> reqwest::Result<Self> {
        let client = Client::builder()
            .no_proxy()
            .tcp_nodelay(true)
            .pool_idle_timeout(Duration::from_secs(90))
            .build()?;
        let mut headers = HeaderMap::new();
        headers.insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
        headers.insert(
            ACCEPT,
            HeaderValue::from_static("application/json, text/event-stream"),
        );
        for (name, value) in extra {
            headers.insert(name.clone(), value.clone());
        }
        Ok(HttpTarget {
            client,
            url,
            headers,
            era,
        })
    }
}

/// One client session.
#[derive(Debug)]
pub struct HttpSession {
    target: HttpTarget,
    /// The headers of every request of the loop: the target's, plus the session's id
    /// and version (sessions era) or the stateless routing headers.
    headers: HeaderMap,
    /// `Mcp-Session-Id`, for `DELETE` at the end.
    session_id: Option<HeaderValue>,
}

impl HttpSession {
    /// Sets a session up: `initialize` and `notifications/initialized` in the sessions
    /// era; nothing on the wire in the stateless era.
    ///
    /// # Errors
    /// A [`Failure`] of the handshake.
    pub async fn connect(target: &HttpTarget, workload: &Workload) -> Result<Self, Failure> {
        let mut headers = target.headers.clone();
        let mut session_id = None;
        match target.era {
            Era::Stateless => {
                headers.insert(
                    VERSION_HEADER,
                    HeaderValue::from_static(rpc::STATELESS_VERSION),
                );
                headers.insert("mcp-method", HeaderValue::from_static(workload.method));
                if let Some(tool) = &workload.tool {
                    headers.insert("mcp-name", name_header(tool));
                }
            }
            Era::Sessions => {
                let response = target
                    .client
                    .post(target.url.clone())
                    .headers(target.headers.clone())
                    .body(rpc::initialize(0))
                    .send()
                    .await
                    .map_err(transport_failure)?;
                let id = response.headers().get(SESSION_HEADER).cloned();
                let result = initialize_result(response).await?;
                let version = result
                    .get("protocolVersion")
                    .and_then(Value::as_str)
                    .and_then(|v| HeaderValue::from_str(v).ok())
                    .unwrap_or(HeaderValue::from_static(rpc::SESSION_VERSION));
                headers.insert(VERSION_HEADER, version);
                if let Some(id) = &id {
                    headers.insert(SESSION_HEADER, id.clone());
                }
                session_id = id;
                let response = target
                    .client
                    .post(target.url.clone())
                    .headers(headers.clone())
                    .body(rpc::INITIALIZED)
                    .send()
                    .await
                    .map_err(transport_failure)?;
                if !response.status().is_success() {
                    return Err(status_failure(response, target.era).await);
                }
            }
        }
        Ok(HttpSession {
            target: target.clone(),
            headers,
            session_id,
        })
    }

    /// Sends one request and waits for its response.
    ///
    /// # Errors
    /// Why it did not succeed.
    pub async fn request(&mut self, id: u64, body: String) -> Result<(), Failure> {
        let response = self
            .target
            .client
            .post(self.target.url.clone())
            .headers(self.headers.clone())
            .body(body)
            .send()
            .await
            .map_err(transport_failure)?;
        read_answer(response, id, self.target.era).await
    }

    /// Ends the session (`DELETE`) unless `keep`; errors are ignored.
    pub async fn close(self, keep: bool) {
        if keep || self.session_id.is_none() {
            return;
        }
        let _ = self
            .target
            .client
            .delete(self.target.url.clone())
            .headers(self.headers)
            .send()
            .await;
    }
}

/// `Mcp-Name`: the name itself, or `=?base64?…?=` when it is not a valid header value.
fn name_header(name: &str) -> HeaderValue {
    use base64::Engine;
    HeaderValue::from_str(name).unwrap_or_else(|_| {
        let encoded = base64::engine::general_purpose::STANDARD.encode(name);
        HeaderValue::from_str(&format!("=?base64?{encoded}?="))
            .unwrap_or(HeaderValue::from_static(""))
    })
}

fn transport_failure(error: reqwest::Error) -> Failure {
    let kind = if error.is_connect() {
        ErrorKind::Connect
    } else if error.is_timeout() {
        ErrorKind::Timeout
    } else {
        ErrorKind::Closed
    };
    Failure::new(kind, error.to_string())
}

/// A non-success status, with the start of the body as the detail. A 404 in the
/// sessions era means the server forgot the session: set it up again.
async fn status_failure(response: reqwest::Response, era: Era) -> Failure {
    let status = response.status();
    let body = response.text().await.unwrap_or_default();
    let detail = format!(
        "HTTP {status}: {}",
        body.chars().take(200).collect::<String>()
    );
    if status == StatusCode::NOT_FOUND && era == Era::Sessions {
        Failure::fatal(ErrorKind::HttpStatus(status.as_u16()), detail)
    } else {
        Failure::new(ErrorKind::HttpStatus(status.as_u16()), detail)
    }
}

fn is_event_stream(response: &reqwest::Response) -> bool {
    response
        .headers()
        .get(CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("text/event-stream"))
}

/// Reads the answer to request `id`: a JSON body, or an SSE stream read until the
/// event that carries the response (later events are not waited for).
async fn read_answer(response: reqwest::Response, id: u64, era: Era) -> Result<(), Failure> {
    if response.status() != StatusCode::OK {
        return Err(status_failure(response, era).await);
    }
    if is_event_stream(&response) {
        let mut stream = EventStream::new(response);
        while let Some(data) = stream.next_data().await? {
            if let Reading::Answer(outcome) = rpc::read(&data, id) {
                return outcome;
            }
        }
        return Err(Failure::new(
            ErrorKind::Protocol,
            "the SSE stream ended without the response",
        ));
    }
    let body = response.bytes().await.map_err(transport_failure)?;
    match rpc::read(&body, id) {
        Reading::Answer(outcome) => outcome,
        Reading::Other => Err(Failure::new(
            ErrorKind::Protocol,
            "the JSON body is not the response to the request",
        )),
    }
}

/// The `result` of `initialize`.
async fn initialize_result(response: reqwest::Response) -> Result<Value, Failure> {
    if response.status() != StatusCode::OK {
        return Err(status_failure(response, Era::Sessions).await);
    }
    let messages: Vec<Vec<u8>> = if is_event_stream(&response) {
        let mut stream = EventStream::new(response);
        let mut all = Vec::new();
        while let Some(data) = stream.next_data().await? {
            all.push(data);
        }
        all
    } else {
        vec![response.bytes().await.map_err(transport_failure)?.to_vec()]
    };
    for message in messages {
        let Ok(value) = serde_json::from_slice::<Value>(&message) else {
            continue;
        };
        if value.get("id").and_then(Value::as_u64) != Some(0) {
            continue;
        }
        if let Some(result) = value.get("result") {
            return Ok(result.clone());
        }
        let code = value.pointer("/error/code").and_then(Value::as_i64);
        let message = value
            .pointer("/error/message")
            .and_then(Value::as_str)
            .unwrap_or("");
        return Err(Failure::new(
            ErrorKind::JsonRpc(code.unwrap_or(0)),
            format!("initialize: {message}"),
        ));
    }
    Err(Failure::new(
        ErrorKind::Protocol,
        "initialize: no response in the answer",
    ))
}

/// The `data` of each event of an SSE body, read as it arrives.
struct EventStream {
    response: reqwest::Response,
    buffer: Vec<u8>,
    /// Where the next event starts in `buffer`.
    start: usize,
    ended: bool,
}

impl EventStream {
    fn new(response: reqwest::Response) -> Self {
        EventStream {
            response,
            buffer: Vec::new(),
            start: 0,
            ended: false,
        }
    }

    /// The data of the next event that has any; `None` at the end of the stream.
    async fn next_data(&mut self) -> Result<Option<Vec<u8>>, Failure> {
        loop {
            if let Some(data) = self.take_event() {
                if data.is_empty() {
                    continue;
                }
                return Ok(Some(data));
            }
            if self.ended {
                return Ok(None);
            }
            match self.response.chunk().await.map_err(transport_failure)? {
                Some(chunk) => {
                    if self.start > 0 {
                        self.buffer.drain(..self.start);
                        self.start = 0;
                    }
                    if self.buffer.len() + chunk.len() > MAX_STREAM_BYTES {
                        return Err(Failure::new(
                            ErrorKind::Protocol,
                            "the SSE stream passed 64 MiB without the response",
                        ));
                    }
                    self.buffer.extend_from_slice(&chunk);
                }
                None => {
                    // A last event without its blank line still counts.
                    self.ended = true;
                    if self.start < self.buffer.len() {
                        self.buffer.extend_from_slice(b"\n\n");
                    }
                }
            }
        }
    }

    /// Cuts the next complete event out of the buffer and returns its data lines.
    fn take_event(&mut self) -> Option<Vec<u8>> {
        let rest = &self.buffer[self.start..];
        let (end, skip) = find_event_end(rest)?;
        let event = &rest[..end];
        let mut data = Vec::new();
        for line in event.split(|b| *b == b'\n') {
            let line = line.strip_suffix(b"\r").unwrap_or(line);
            if let Some(value) = line.strip_prefix(b"data:") {
                let value = value.strip_prefix(b" ").unwrap_or(value);
                if !data.is_empty() {
                    data.push(b'\n');
                }
                data.extend_from_slice(value);
            }
        }
        self.start += end + skip;
        Some(data)
    }
}

/// Where the first event of `bytes` ends (a blank line), and the terminator's length.
fn find_event_end(bytes: &[u8]) -> Option<(usize, usize)> {
    let mut i = 0;
    while i + 1 < bytes.len() {
        if bytes[i] == b'\n' {
            if bytes[i + 1] == b'\n' {
                return Some((i, 2));
            }
            if bytes[i + 1] == b'\r' && bytes.get(i + 2) == Some(&b'\n') {
                return Some((i, 3));
            }
        }
        i += 1;
    }
    None
}

#[cfg(test)]
mod tests {
    use super::find_event_end;

    #[test]
    fn events_end_at_a_blank_line() {
        assert_eq!(find_event_end(b"data: x\n\ndata: y"), Some((7, 2)));
        assert_eq!(find_event_end(b"data: x\r\n\r\n"), Some((8, 3)));
        assert_eq!(find_event_end(b"data: x\n"), None);
    }
}
