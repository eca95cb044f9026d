//! The legacy HTTP+SSE transport (MCP 2024-11-05): a GET opens an SSE stream whose first
//! event, `endpoint`, names the URL to POST messages to; every reply comes back on the
//! stream.
//!
//! Owns the stream and the endpoint. When the stream drops, [`Inbound::closed`] fails
//! what is in flight and the session layer opens a new connection (a new stream, a new
//! endpoint, a new `initialize`) on the next request. The endpoint must be on the same
//! origin as the SSE URL, so a hostile stream cannot make us post elsewhere. A line or
//! an event over the caps of [`SseLimits`] ends the stream with that error, which every
//! call in flight on it receives.

use std::sync::Arc;
use std::time::Duration;

use reqwest::header::{ACCEPT, CONTENT_TYPE};
use reqwest::StatusCode;
use tokio_util::sync::CancellationToken;

use super::event_stream::{SseEvent, SseLimits, SseParser};
use super::{
    deliver_text, http_send_error, transport_error, ConnectParams, Inbound, Outgoing, SendError,
};
use crate::core::mcp::auth::UpstreamAuth;
use crate::core::mcp::error::McpError;

/// How long we wait for the `endpoint` event after the stream opened.
const ENDPOINT_WAIT: Duration = Duration::from_secs(30);

/// A legacy HTTP+SSE connection.
pub(crate) struct SseConnection {
    server_name: String,
    endpoint: reqwest::Url,
    http: reqwest::Client,
    auth: Arc<UpstreamAuth>,
    cancel: CancellationToken,
}

impl SseConnection {
    /// Opens the stream and waits for the `endpoint` event.
    ///
    /// # Errors
    /// A transport or authentication error when the stream cannot be opened or names
    /// no usable endpoint.
    pub(crate) async fn connect(params: ConnectParams<'_>) -> Result<Self, McpError> {
        let server_name = params.server_name.to_string();
        let url = reqwest::Url::parse(&params.config.url)
            .map_err(|e| McpError::config(format!("server '{server_name}': invalid url: {e}")))?;
        let mut may_refresh = params.auth.can_refresh();
        let mut response = loop {
            let headers = params.auth.headers().await?;
            let response = params
                .http
                .get(url.clone())
                .headers(headers.clone())
                .header(ACCEPT, "text/event-stream")
                .send()
                .await
                .map_err(|e| http_send_error(&server_name, &e))?;
            match response.status() {
                StatusCode::UNAUTHORIZED if may_refresh => {
                    may_refresh = false;
                    params.auth.invalidate(&headers).await;
                }
                StatusCode::UNAUTHORIZED | StatusCode::FORBIDDEN => {
                    return Err(params
                        .auth
                        .auth_error(format!("the server answered HTTP {}", response.status())));
                }
                status if !status.is_success() => {
                    return Err(transport_error(
                        &server_name,
                        format!("opening the SSE stream: HTTP {status}"),
                        false,
                    ));
                }
                _ => break response,
            }
        };
        let mut parser = SseParser::new(SseLimits::for_messages(params.limits.max_message_bytes));
        let mut early: Vec<SseEvent> = Vec::new();
        let endpoint = tokio::time::timeout(ENDPOINT_WAIT, async {
            loop {
                let chunk = response
                    .chunk()
                    .await
                    .map_err(|e| http_send_error(&server_name, &e))?
                    .ok_or_else(|| {
                        transport_error(
                            &server_name,
                            "the SSE stream ended before the endpoint event",
                            false,
                        )
                    })?;
                let mut events = Vec::new();
                parser
                    .feed(&chunk, &mut events)
                    .map_err(|e| transport_error(&server_name, e.to_string(), false))?;
                tokio::task::consume_budget().await;
                let mut found = None;
                for event in events {
                    if found.is_none() && event.event == "endpoint" {
                        found = Some(event.data);
                    } else {
                        early.push(event);
                    }
                }
                if let Some(found) = found {
                    return Ok::<String, McpError>(found);
                }
            }
        })
        .await
        .map_err(|_| transport_error(&server_name, "no endpoint event within 30 s", false))??;
        let endpoint = url.join(endpoint.trim()).map_err(|e| McpError::Protocol {
            server_name: server_name.clone(),
            message: format!("the endpoint event is not a URL: {e}"),
        })?;
        if endpoint.origin() != url.origin() {
            return Err(McpError::Protocol {
                server_name,
                message: "the endpoint event names another origin".to_string(),
            });
        }
        let inbound = params.inbound.clone();
        for event in early {
            deliver_event(&server_name, &*inbound, &event);
        }
        let cancel = params.cancel.clone();
        let name = server_name.clone();
        params.tasks.spawn(async move {
            let reason = tokio::select! {
                () = cancel.cancelled() => return,
                reason = read_stream(&name, response, parser, &*inbound) => reason,
            };
            tracing::info!(server = %name, %reason, "the SSE stream ended");
            inbound.closed(&reason);
        });
        Ok(SseConnection {
            server_name,
            endpoint,
            http: params.http,
            auth: params.auth,
            cancel: params.cancel,
        })
    }

    /// POSTs a message to the endpoint; the reply arrives on the stream.
    pub(crate) async fn send(&self, outgoing: Outgoing<'_>) -> Result<(), SendError> {
        if self.cancel.is_cancelled() {
            return Err(
                transport_error(&self.server_name, "the SSE stream is closed", false).into(),
            );
        }
        let body = serde_json::to_vec(outgoing.message).map_err(|e| {
            transport_error(&self.server_name, format!("cannot encode: {e}"), false)
        })?;
        let mut may_refresh = outgoing.credential.is_none() && self.auth.can_refresh();
        loop {
            let headers = self.auth.headers_for(outgoing.credential).await?;
            let response = self
                .http
                .post(self.endpoint.clone())
                .headers(headers.clone())
                .header(CONTENT_TYPE, "application/json")
                .body(body.clone())
                .send()
                .await
                .map_err(|e| http_send_error(&self.server_name, &e))?;
            let status = response.status();
            match status {
                StatusCode::UNAUTHORIZED if may_refresh => {
                    may_refresh = false;
                    self.auth.invalidate(&headers).await;
                }
                StatusCode::UNAUTHORIZED | StatusCode::FORBIDDEN => {
                    return Err(self
                        .auth
                        .auth_error(format!("the server answered HTTP {status}"))
                        .into());
                }
                StatusCode::NOT_FOUND => return Err(SendError::SessionExpired),
                status if status.is_success() => return Ok(()),
                status => {
                    return Err(transport_error(
                        &self.server_name,
                        format!("posting to the SSE endpoint: HTTP {status}"),
                        status.is_server_error(),
                    )
                    .into())
                }
            }
        }
    }

    /// Stops reading the stream (the server notices the closed connection).
    pub(crate) fn close(&self) {
        self.cancel.cancel();
    }
}

fn deliver_event(server_name: &str, inbound: &dyn Inbound, event: &SseEvent) {
    if (event.event.is_empty() || event.event == "message") && !event.data.is_empty() {
        deliver_text(server_name, inbound, event.data.as_bytes(), None);
    }
}

async fn read_stream(
    server_name: &str,
    mut response: reqwest::Response,
    mut parser: SseParser,
    inbound: &dyn Inbound,
) -> String {
    let mut events = Vec::new();
    loop {
        match response.chunk().await {
            Ok(Some(chunk)) => {
                let fed = parser.feed(&chunk, &mut events);
                for event in events.drain(..) {
                    deliver_event(server_name, inbound, &event);
                }
                if let Err(error) = fed {
                    return error.to_string();
                }
            }
            Ok(None) => return "the server closed the SSE stream".to_string(),
            Err(error) => return crate::core::mcp::auth::without_url(&error),
        }
        // A server that sends without pause must not keep this worker thread.
        tokio::task::consume_budget().await;
    }
}
