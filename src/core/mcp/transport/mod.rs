//! The transport layer: one live connection to one upstream MCP server, over streamable
//! HTTP ([`http`]), legacy HTTP+SSE ([`sse`]), WebSocket ([`websocket`]) or a child
//! process's stdio ([`stdio`]), behind the closed enum [`Connection`].
//!
//! A transport moves JSON-RPC messages and nothing more: it sends what the session layer
//! gives it and hands every message it receives to an [`Inbound`] (the session's
//! dispatcher), which correlates responses with requests. It never interprets methods,
//! except that streamable HTTP stops reading a POST's response stream once the response
//! it was waiting for has arrived.
//!
//! Invariants: every read is capped ([`Limits`]) and takes time linear in its bytes
//! (SSE in [`event_stream`], stdio lines in [`lines`]); every background task runs on the
//! session's `TaskTracker` and stops when its `CancellationToken` fires; a transport that
//! dies calls [`Inbound::closed`] exactly once so in-flight requests fail at once instead
//! of waiting for their timeout.

pub(crate) mod child_output;
pub(crate) mod event_stream;
pub(crate) mod http;
pub(crate) mod lines;
pub(crate) mod sse;
pub(crate) mod stdio;
pub(crate) mod websocket;

use std::sync::Arc;

use serde_json::Value;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use super::auth::UpstreamAuth;
use super::config::{McpServerConfig, Transport};
use super::error::McpError;
use super::protocol::Incoming;

/// Receives what a transport reads.
pub(crate) trait Inbound: Send + Sync + 'static {
    /// A message arrived. `origin` is the id of our request whose HTTP response stream
    /// carried it, when the transport knows it.
    fn deliver(&self, message: Incoming, origin: Option<u64>);
    /// The connection is gone; everything in flight on it has failed.
    fn closed(&self, reason: &str);
    /// The response to our request `id` arrived but cannot be read (it is over the
    /// size cap): that request fails with `reason`.
    fn reject(&self, id: u64, reason: &str);
}

/// Size caps of one connection.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Limits {
    /// The largest message (JSON text, SSE event, stdio line, WebSocket frame) we accept.
    pub(crate) max_message_bytes: usize,
}

/// What a transport needs to connect.
pub(crate) struct ConnectParams<'a> {
    /// The server's name, for errors and logs.
    pub(crate) server_name: &'a str,
    /// The server's configuration.
    pub(crate) config: &'a McpServerConfig,
    /// The transport to use: the configured one, or legacy SSE when a server
    /// configured for streamable HTTP turned out to speak only that.
    pub(crate) transport: Transport,
    /// The gateway's shared, pooled HTTP client.
    pub(crate) http: reqwest::Client,
    /// The server's credentials.
    pub(crate) auth: Arc<UpstreamAuth>,
    /// Where received messages go.
    pub(crate) inbound: Arc<dyn Inbound>,
    /// Tracks the connection's background tasks.
    pub(crate) tasks: TaskTracker,
    /// Fires when the connection must stop.
    pub(crate) cancel: CancellationToken,
    /// Size caps.
    pub(crate) limits: Limits,
}

/// One message to send, with what the transport may need to know about it.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Outgoing<'a> {
    /// The whole JSON-RPC message.
    pub(crate) message: &'a Value,
    /// Its method (for the `Mcp-Method` header of the stateless revision).
    pub(crate) method: &'a str,
    /// The tool, resource or prompt it names (for the `Mcp-Name` header).
    pub(crate) name: Option<&'a str>,
    /// The id of the response this message waits for, if it is a request.
    pub(crate) awaiting: Option<u64>,
    /// `Mcp-Param-*` headers of the stateless revision (arguments marked
    /// `x-mcp-header`), as (name suffix, value).
    pub(crate) param_headers: &'a [(String, String)],
    /// This message's own bearer credential, in place of the server's configured one
    /// (HTTP transports only: the others carry no per-message headers).
    pub(crate) credential: Option<&'a crate::core::mcp::config::Secret>,
}

/// How a send failed.
#[derive(Debug)]
pub(crate) enum SendError {
    /// The server no longer knows our session (HTTP 404 on a request that carried a
    /// session id): initialize again.
    SessionExpired,
    /// Anything else.
    Failed(McpError),
}

impl From<McpError> for SendError {
    fn from(error: McpError) -> Self {
        SendError::Failed(error)
    }
}

/// What the session layer tells an HTTP transport after the handshake.
#[derive(Debug, Clone, Default)]
pub(crate) struct Negotiated {
    /// The protocol version to send in `MCP-Protocol-Version`.
    pub(crate) protocol_version: Option<String>,
    /// Whether the stateless revision is in use (adds `Mcp-Method`/`Mcp-Name`).
    pub(crate) stateless: bool,
}

/// A live connection over one of the four transports.
pub(crate) enum Connection {
    /// Streamable HTTP.
    Http(http::HttpConnection),
    /// Legacy HTTP+SSE.
    Sse(sse::SseConnection),
    /// WebSocket.
    WebSocket(websocket::WebSocketConnection),
    /// A child process.
    Stdio(stdio::StdioConnection),
}

impl Connection {
    /// Opens a connection of the configured transport. For HTTP nothing is sent yet;
    /// the other transports connect (or start the process) now.
    ///
    /// # Errors
    /// The transport's failure to connect.
    pub(crate) async fn open(params: ConnectParams<'_>) -> Result<Connection, McpError> {
        Ok(match params.transport {
            Transport::Http => Connection::Http(http::HttpConnection::new(params)?),
            Transport::Sse => Connection::Sse(sse::SseConnection::connect(params).await?),
            Transport::WebSocket => {
                Connection::WebSocket(websocket::WebSocketConnection::connect(params).await?)
            }
            Transport::Stdio => Connection::Stdio(stdio::StdioConnection::spawn(params)?),
        })
    }

    /// Sends one message; for streamable HTTP, also reads the reply it carries.
    ///
    /// # Errors
    /// [`SendError::SessionExpired`] when the server forgot the session, else the
    /// failure with whether the message may have been delivered.
    pub(crate) async fn send(&self, outgoing: Outgoing<'_>) -> Result<(), SendError> {
        match self {
            Connection::Http(c) => c.send(outgoing).await,
            Connection::Sse(c) => c.send(outgoing).await,
            // A per-message credential cannot travel here: refuse rather than send the
            // message under the connection's own credentials.
            Connection::WebSocket(_) | Connection::Stdio(_) if outgoing.credential.is_some() => {
                Err(SendError::Failed(McpError::AuthenticationError {
                    server_name: String::new(),
                    message: "a per-call credential needs an HTTP transport".to_string(),
                }))
            }
            Connection::WebSocket(c) => c.send(outgoing).await,
            Connection::Stdio(c) => c.send(outgoing).await,
        }
    }

    /// Records what the handshake negotiated (HTTP headers of later requests).
    pub(crate) fn set_negotiated(&self, negotiated: Negotiated) {
        if let Connection::Http(c) = self {
            c.set_negotiated(negotiated);
        }
    }

    /// Forgets an HTTP session id a failed probe may have left behind.
    pub(crate) fn reset_session(&self) {
        if let Connection::Http(c) = self {
            c.reset_session();
        }
    }

    /// Starts receiving server-initiated messages where the transport needs a separate
    /// channel for them (the GET stream of streamable HTTP), and waits, briefly, until
    /// that channel is open or refused.
    pub(crate) async fn start_listening(&self) {
        if let Connection::Http(c) = self {
            c.start_listening().await;
        }
    }

    /// Closes the connection: DELETE for an HTTP session, a close frame, or the stdio
    /// shutdown sequence. Waits for it to finish, within a bound.
    pub(crate) async fn close(&self) {
        match self {
            Connection::Http(c) => c.close().await,
            Connection::Sse(c) => c.close(),
            Connection::WebSocket(c) => c.close().await,
            Connection::Stdio(c) => c.close().await,
        }
    }
}

/// Maps a `reqwest` send error to a transport error, deciding whether the request can
/// have reached the server: a failure to connect means it did not.
pub(crate) fn http_send_error(server_name: &str, error: &reqwest::Error) -> McpError {
    McpError::Transport {
        server_name: server_name.to_string(),
        message: super::auth::without_url(error),
        maybe_delivered: !error.is_connect(),
    }
}

/// A transport failure.
pub(crate) fn transport_error(
    server_name: &str,
    message: impl Into<String>,
    maybe_delivered: bool,
) -> McpError {
    McpError::Transport {
        server_name: server_name.to_string(),
        message: message.into(),
        maybe_delivered,
    }
}

/// A header value as the stateless revision sends it: plain when it is visible ASCII
/// without surrounding whitespace, else `=?base64?<base64 of the UTF-8>?=`.
pub(crate) fn mcp_header_value(value: &str) -> String {
    use base64::Engine;
    let plain = !value.is_empty()
        && value.bytes().all(|b| (0x20..0x7f).contains(&b))
        && value.trim() == value
        && !value.starts_with("=?base64?");
    if plain {
        value.to_string()
    } else {
        format!(
            "=?base64?{}?=",
            base64::engine::general_purpose::STANDARD.encode(value.as_bytes())
        )
    }
}

/// Parses a received JSON text and hands each message to `inbound`; returns whether the
/// response with id `awaiting` was among them. A text that is not JSON-RPC is logged
/// and skipped.
pub(crate) fn deliver_text(
    server_name: &str,
    inbound: &dyn Inbound,
    text: &[u8],
    origin: Option<u64>,
) -> bool {
    match try_deliver_text(inbound, text, origin) {
        Ok(answered) => answered,
        Err(error) => {
            let preview: String = String::from_utf8_lossy(text.get(..120).unwrap_or(text)).into();
            tracing::warn!(server = %server_name, %error, preview = %preview, "ignored a message that is not JSON-RPC");
            false
        }
    }
}

/// [`deliver_text`] without the log line: the caller logs (under its own rate limit).
///
/// # Errors
/// Why the text is not JSON-RPC; nothing was delivered.
pub(crate) fn try_deliver_text(
    inbound: &dyn Inbound,
    text: &[u8],
    origin: Option<u64>,
) -> Result<bool, String> {
    let messages = Incoming::parse_all(text)?;
    let mut answered = false;
    for message in messages {
        if let (Some(awaiting), Incoming::Response { id, .. }) = (origin, &message) {
            answered |= super::protocol::our_id(id) == Some(awaiting);
        }
        inbound.deliver(message, origin);
    }
    Ok(answered)
}

#[cfg(test)]
mod tests {
    use super::mcp_header_value;

    #[test]
    fn header_values_are_encoded_when_they_are_not_plain_ascii() {
        assert_eq!(mcp_header_value("get_weather"), "get_weather");
        assert_eq!(mcp_header_value("café"), "=?base64?Y2Fmw6k=?=");
        assert_eq!(mcp_header_value(" padded"), "=?base64?IHBhZGRlZA==?=");
        assert!(mcp_header_value("=?base64?x?=").starts_with("=?base64?PT9"));
    }
}
