//! Streamable HTTP (MCP 2025-03-26 and later, and the stateless 2026-07-28 revision):
//! every message is a POST; a request's reply comes back as JSON or as an SSE stream that
//! may carry notifications and server requests before the response.
//!
//! Owns the HTTP side of a session: the `Mcp-Session-Id` the server assigned (taken from
//! any response that carries one, sent on every later request), the
//! `MCP-Protocol-Version` header after the handshake, the `Mcp-Method`/`Mcp-Name`
//! headers of the stateless revision, the optional GET stream for server-initiated
//! messages, DELETE on close, and retries with fresh OAuth credentials after a 401 or a
//! 403 that asks for more scope (as many as [`UpstreamAuth::max_retries`] allows).
//! A 404 on a request that carried a session id is reported as
//! [`SendError::SessionExpired`]; re-initializing is the session layer's job.
//!
//! Reply streams and the GET stream are parsed within the caps of
//! [`SseLimits`]: a reply that breaks them fails its request with that error; a GET
//! stream that breaks them (or is refused, or ends at once with nothing) counts as a
//! failure, is reopened after a pause that doubles up to 16 s, and is given up after
//! [`MAX_LISTEN_FAILURES`] in a row.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use reqwest::header::{HeaderMap, HeaderValue, ACCEPT, CONTENT_TYPE};
use reqwest::{Response, StatusCode};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use super::event_stream::{SseLimits, SseParser};
use super::{
    deliver_text, http_send_error, mcp_header_value, transport_error, ConnectParams, Inbound,
    Limits, Negotiated, Outgoing, SendError,
};
use crate::core::mcp::auth::{read_capped, UpstreamAuth};
use crate::core::mcp::config::Secret;
use crate::core::mcp::error::McpError;
use crate::core::mcp::limits::MAX_LISTEN_FAILURES;

const SESSION_HEADER: &str = "mcp-session-id";
const VERSION_HEADER: &str = "mcp-protocol-version";
const ACCEPT_BOTH: &str = "application/json, text/event-stream";
/// How many times one reply stream is resumed before giving up.
const MAX_RESUMPTIONS: u32 = 16;
/// A GET stream that lasted this long was healthy, even without a message.
const HEALTHY_STREAM: Duration = Duration::from_secs(30);
/// How long [`HttpConnection::start_listening`] waits for the server to answer the
/// first GET (open it, or refuse it) before the session's first request goes out.
pub(crate) const LISTEN_READY_WAIT: Duration = Duration::from_secs(2);

/// What reading one reply (a POST's, or a resumed stream) found.
#[derive(Debug, Default)]
struct Reply {
    /// Whether the awaited response was among its messages.
    answered: bool,
    /// The SSE last event ID, to resume from.
    last_event_id: Option<String>,
    /// The SSE `retry`, in milliseconds.
    retry_ms: Option<u64>,
}

/// A streamable HTTP connection.
pub(crate) struct HttpConnection {
    shared: Arc<Shared>,
    tasks: TaskTracker,
    cancel: CancellationToken,
    listening: AtomicBool,
}

/// What the POSTs and the GET stream share.
struct Shared {
    server_name: String,
    url: reqwest::Url,
    http: reqwest::Client,
    auth: Arc<UpstreamAuth>,
    inbound: Arc<dyn Inbound>,
    limits: Limits,
    /// The session id the server assigned.
    session_id: Mutex<Option<HeaderValue>>,
    /// What the handshake negotiated.
    negotiated: Mutex<Negotiated>,
}

impl HttpConnection {
    /// Prepares a connection; nothing is sent until the first message.
    ///
    /// # Errors
    /// [`McpError::InvalidConfig`] when the URL does not parse.
    pub(crate) fn new(params: ConnectParams<'_>) -> Result<Self, McpError> {
        let url = reqwest::Url::parse(&params.config.url).map_err(|e| {
            McpError::config(format!("server '{}': invalid url: {e}", params.server_name))
        })?;
        Ok(HttpConnection {
            shared: Arc::new(Shared {
                server_name: params.server_name.to_string(),
                url,
                http: params.http,
                auth: params.auth,
                inbound: params.inbound,
                limits: params.limits,
                session_id: Mutex::new(None),
                negotiated: Mutex::new(Negotiated::default()),
            }),
            tasks: params.tasks,
            cancel: params.cancel,
            listening: AtomicBool::new(false),
        })
    }

    pub(crate) fn set_negotiated(&self, negotiated: Negotiated) {
        if let Ok(mut current) = self.shared.negotiated.lock() {
            *current = negotiated;
        }
    }

    /// Forgets the session id (after a failed probe, before `initialize`).
    pub(crate) fn reset_session(&self) {
        if let Ok(mut session) = self.shared.session_id.lock() {
            *session = None;
        }
    }

    /// POSTs one message and reads its reply.
    pub(crate) async fn send(&self, outgoing: Outgoing<'_>) -> Result<(), SendError> {
        let shared = &self.shared;
        let body = bytes::Bytes::from(serde_json::to_vec(outgoing.message).map_err(|e| {
            transport_error(&shared.server_name, format!("cannot encode: {e}"), false)
        })?);
        let response = shared
            .authorized(outgoing.credential, |headers| {
                let mut request = shared
                    .http
                    .post(shared.url.clone())
                    .headers(headers)
                    .header(CONTENT_TYPE, "application/json")
                    .header(ACCEPT, ACCEPT_BOTH)
                    .body(body.clone());
                if let Ok(negotiated) = shared.negotiated.lock() {
                    if negotiated.stateless {
                        request = request.header("Mcp-Method", outgoing.method);
                        if let Some(name) = outgoing.name {
                            request = request.header("Mcp-Name", mcp_header_value(name));
                        }
                        for (name, value) in outgoing.param_headers {
                            request = request
                                .header(format!("Mcp-Param-{name}"), mcp_header_value(value));
                        }
                    }
                }
                request
            })
            .await?;
        let status = response.status();
        let sent_session = shared.session_header().is_some();
        if status == StatusCode::NOT_FOUND && sent_session {
            if let Ok(mut session) = shared.session_id.lock() {
                *session = None;
            }
            return Err(SendError::SessionExpired);
        }
        if let Some(session) = response
            .headers()
            .get(SESSION_HEADER)
            .filter(|_| status.is_success())
        {
            if let Ok(mut current) = shared.session_id.lock() {
                if current.as_ref() != Some(session) {
                    *current = Some(session.clone());
                }
            }
        }
        if status == StatusCode::ACCEPTED || status == StatusCode::NO_CONTENT {
            return match outgoing.awaiting {
                None => Ok(()),
                Some(_) => Err(transport_error(
                    &shared.server_name,
                    format!("the server answered a request with {status} and no body"),
                    true,
                )
                .into()),
            };
        }
        let mut reply = shared.read_reply(response, outgoing.awaiting).await?;
        // A 2025-11-25 server may close a reply stream early and let the client resume
        // it with GET and Last-Event-ID; follow it until the response arrives (the
        // caller's deadline bounds the whole).
        let mut resumptions = 0;
        while let (Some(_), false, Some(last_id)) = (
            outgoing.awaiting,
            reply.answered,
            reply.last_event_id.clone(),
        ) {
            resumptions += 1;
            if !status.is_success() || resumptions > MAX_RESUMPTIONS {
                break;
            }
            tokio::time::sleep(Duration::from_millis(
                reply.retry_ms.unwrap_or(500).min(10_000),
            ))
            .await;
            let resumed = shared
                .authorized(outgoing.credential, |headers| {
                    shared
                        .http
                        .get(shared.url.clone())
                        .headers(headers)
                        .header(ACCEPT, "text/event-stream")
                        .header("Last-Event-ID", last_id.as_str())
                })
                .await?;
            if !resumed.status().is_success() {
                return Err(transport_error(
                    &shared.server_name,
                    format!("resuming the reply stream: HTTP {}", resumed.status()),
                    true,
                )
                .into());
            }
            let next = shared.read_reply(resumed, outgoing.awaiting).await?;
            reply = Reply {
                answered: next.answered,
                last_event_id: next.last_event_id.or(reply.last_event_id),
                retry_ms: next.retry_ms.or(reply.retry_ms),
            };
        }
        let answered = reply.answered;
        match outgoing.awaiting {
            Some(_) if !answered && status.is_success() => Err(transport_error(
                &shared.server_name,
                "the reply ended before the response arrived",
                true,
            )
            .into()),
            Some(_) if !answered => Err(transport_error(
                &shared.server_name,
                format!("the server answered HTTP {status}"),
                true,
            )
            .into()),
            _ => Ok(()),
        }
    }

    /// Opens the GET stream for server-initiated messages, once, in the background; a
    /// server that answers 405 does not offer one. Waits (at most [`LISTEN_READY_WAIT`])
    /// until the server has answered that first GET, so that a request sent next, whose
    /// handling may send a server request on the GET stream, does not find it closed.
    pub(crate) async fn start_listening(&self) {
        if self.listening.swap(true, Ordering::SeqCst) {
            return;
        }
        let shared = self.shared.clone();
        let cancel = self.cancel.clone();
        let (answered, ready) = tokio::sync::oneshot::channel();
        self.tasks.spawn(async move {
            tokio::select! {
                () = cancel.cancelled() => {}
                () = shared.listen(Some(answered)) => {}
            }
        });
        if tokio::time::timeout(LISTEN_READY_WAIT, ready)
            .await
            .is_err()
        {
            tracing::debug!(server = %self.shared.server_name, "the GET stream is not answered yet; going on without it");
        }
    }

    /// Ends the session with DELETE (bounded to 2 s) and stops the GET stream.
    pub(crate) async fn close(&self) {
        self.cancel.cancel();
        let Some(session) = self.shared.session_header() else {
            return;
        };
        let Ok(headers) = self.shared.auth.headers().await else {
            return;
        };
        let request = self
            .shared
            .http
            .delete(self.shared.url.clone())
            .headers(headers)
            .header(SESSION_HEADER, session)
            .timeout(Duration::from_secs(2));
        if let Err(error) = request.send().await {
            tracing::debug!(server = %self.shared.server_name, error = %crate::core::mcp::auth::without_url(&error), "DELETE of the session failed");
        }
    }
}

impl Shared {
    fn session_header(&self) -> Option<HeaderValue> {
        self.session_id.lock().ok().and_then(|s| s.clone())
    }

    /// Sends a request built by `build` with the current credentials (or `credential`,
    /// this request's own) and session headers; after a 401, refreshes an OAuth token and
    /// sends once more.
    async fn authorized(
        &self,
        credential: Option<&Secret>,
        build: impl Fn(HeaderMap) -> reqwest::RequestBuilder,
    ) -> Result<Response, SendError> {
        // A refusal (401, or 403 for want of scope) is answered with new credentials as
        // often as the server's auth allows for one request.
        let mut retries_left = if credential.is_none() {
            self.auth.max_retries()
        } else {
            0
        };
        loop {
            let mut headers = self.auth.headers_for(credential).await?;
            let credentials = headers.clone();
            if let Some(session) = self.session_header() {
                headers.insert(SESSION_HEADER, session);
            }
            if let Ok(negotiated) = self.negotiated.lock() {
                if let Some(version) = negotiated
                    .protocol_version
                    .as_deref()
                    .and_then(|v| HeaderValue::from_str(v).ok())
                {
                    headers.insert(VERSION_HEADER, version);
                }
            }
            let response = build(headers)
                .send()
                .await
                .map_err(|e| http_send_error(&self.server_name, &e))?;
            let status = response.status();
            if (status == StatusCode::UNAUTHORIZED || status == StatusCode::FORBIDDEN)
                && retries_left > 0
                && self
                    .auth
                    .refused(&credentials, status.as_u16(), response.headers())
                    .await
            {
                retries_left -= 1;
                continue;
            }
            if status == StatusCode::UNAUTHORIZED || status == StatusCode::FORBIDDEN {
                return Err(self
                    .auth
                    .auth_error(format!("the server answered HTTP {status}"))
                    .into());
            }
            return Ok(response);
        }
    }

    /// Reads a reply body (JSON or SSE) and delivers its messages; returns whether the
    /// response to `awaiting` was among them. Stops reading an SSE reply as soon as it
    /// was.
    async fn read_reply(
        &self,
        mut response: Response,
        awaiting: Option<u64>,
    ) -> Result<Reply, SendError> {
        let is_sse = response
            .headers()
            .get(CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.starts_with("text/event-stream"));
        let cap = self.limits.max_message_bytes;
        if !is_sse {
            let status = response.status();
            let body = read_capped(response, cap)
                .await
                .map_err(|m| transport_error(&self.server_name, m, true))?;
            if body.iter().all(u8::is_ascii_whitespace) {
                return Ok(Reply::default());
            }
            if !status.is_success() && serde_json::from_slice::<serde_json::Value>(&body).is_err() {
                let preview = String::from_utf8_lossy(&body[..body.len().min(200)]).into_owned();
                return Err(transport_error(
                    &self.server_name,
                    format!("the server answered HTTP {status}: {preview}"),
                    true,
                )
                .into());
            }
            if status.is_success() && serde_json::from_slice::<serde_json::Value>(&body).is_err() {
                return Err(McpError::Protocol {
                    server_name: self.server_name.clone(),
                    message: "the reply is not JSON".to_string(),
                }
                .into());
            }
            return Ok(Reply {
                answered: deliver_text(&self.server_name, &*self.inbound, &body, awaiting),
                ..Reply::default()
            });
        }
        let mut parser = SseParser::new(SseLimits::for_messages(cap));
        let mut answered = false;
        let mut events = Vec::new();
        while let Some(chunk) = response.chunk().await.map_err(|e| {
            transport_error(
                &self.server_name,
                crate::core::mcp::auth::without_url(&e),
                true,
            )
        })? {
            let fed = parser.feed(&chunk, &mut events);
            for event in events.drain(..) {
                if (event.event.is_empty() || event.event == "message") && !event.data.is_empty() {
                    answered |= deliver_text(
                        &self.server_name,
                        &*self.inbound,
                        event.data.as_bytes(),
                        awaiting,
                    );
                }
            }
            if answered {
                break;
            }
            fed.map_err(|e| transport_error(&self.server_name, e.to_string(), true))?;
            // A server that sends without pause must not keep this worker thread.
            tokio::task::consume_budget().await;
        }
        Ok(Reply {
            answered,
            last_event_id: parser.last_event_id,
            retry_ms: parser.retry_ms,
        })
    }

    /// The GET stream: receives server-initiated messages until cancelled, reconnecting
    /// with backoff (resuming with `Last-Event-ID`) when the stream drops.
    /// `answered` fires once the server has answered the first GET, whatever it said.
    async fn listen(&self, mut answered: Option<tokio::sync::oneshot::Sender<()>>) {
        let mut failures = 0u32;
        let mut last_event_id: Option<String> = None;
        loop {
            let last = last_event_id.clone();
            let result = self
                .authorized(None, |headers| {
                    let mut request = self
                        .http
                        .get(self.url.clone())
                        .headers(headers)
                        .header(ACCEPT, "text/event-stream");
                    if let Some(id) = &last {
                        request = request.header("Last-Event-ID", id.as_str());
                    }
                    request
                })
                .await;
            if let Some(answered) = answered.take() {
                let _ = answered.send(());
            }
            match result {
                Ok(response) if response.status().is_success() => {
                    let opened = tokio::time::Instant::now();
                    let (delivered, error) =
                        self.read_listen_stream(response, &mut last_event_id).await;
                    match error {
                        // A stream that broke the caps is a failure however it began,
                        // so a server that sends it on every connection is backed off
                        // and at last given up.
                        Some(error) => {
                            failures += 1;
                            tracing::warn!(server = %self.server_name, %error, failures, "the GET stream was dropped");
                        }
                        None if delivered || opened.elapsed() >= HEALTHY_STREAM => {
                            failures = 0;
                            tracing::debug!(server = %self.server_name, "the GET stream ended; reconnecting");
                        }
                        None => failures += 1,
                    }
                }
                Ok(response)
                    if response.status() == StatusCode::METHOD_NOT_ALLOWED
                        || response.status() == StatusCode::NOT_FOUND =>
                {
                    tracing::debug!(server = %self.server_name, status = %response.status(), "the server offers no GET stream");
                    return;
                }
                Ok(response) => {
                    tracing::debug!(server = %self.server_name, status = %response.status(), "the GET stream was refused");
                    failures += 1;
                }
                Err(_) => failures += 1,
            }
            if failures > MAX_LISTEN_FAILURES {
                tracing::warn!(server = %self.server_name, "giving up on the GET stream after repeated failures");
                return;
            }
            let pause = Duration::from_millis(250u64 << failures.min(6));
            tokio::time::sleep(pause).await;
        }
    }

    /// Reads one GET stream to its end and delivers its messages; returns whether it
    /// delivered any, and the error that ended it, if one did.
    async fn read_listen_stream(
        &self,
        mut response: Response,
        last_event_id: &mut Option<String>,
    ) -> (bool, Option<String>) {
        let mut parser = SseParser::new(SseLimits::for_messages(self.limits.max_message_bytes));
        let mut events = Vec::new();
        let mut delivered = false;
        loop {
            let chunk = match response.chunk().await {
                Ok(Some(chunk)) => chunk,
                Ok(None) => return (delivered, None),
                // A connection that breaks is not the server's hostility; reconnect.
                Err(_) => return (delivered, None),
            };
            let fed = parser.feed(&chunk, &mut events);
            for event in events.drain(..) {
                if event.id.is_some() {
                    last_event_id.clone_from(&event.id);
                }
                if !event.data.is_empty() {
                    delivered = true;
                    deliver_text(
                        &self.server_name,
                        &*self.inbound,
                        event.data.as_bytes(),
                        None,
                    );
                }
            }
            if let Err(error) = fed {
                return (delivered, Some(error.to_string()));
            }
            tokio::task::consume_budget().await;
        }
    }
}
