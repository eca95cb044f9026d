//! The WebSocket transport: JSON-RPC messages in text frames, subprotocol `mcp` (what the
//! Python SDK's `mcp.server.websocket` speaks).
//!
//! Owns the socket. A writer task owns the sink and drains a bounded channel; a reader
//! task delivers every text frame (and, leniently, UTF-8 binary frames) and reports the
//! end of the socket once. Pings are answered by tungstenite. Frames larger than the
//! message cap close the connection with an error.

use std::sync::Arc;
use std::time::Duration;

use futures::{SinkExt, StreamExt};
use tokio::sync::mpsc;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::http::{HeaderValue, StatusCode};
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;
use tokio_tungstenite::tungstenite::{Error as WsError, Message};
use tokio_util::sync::CancellationToken;

use super::{deliver_text, transport_error, ConnectParams, Inbound, Outgoing, SendError};
use crate::core::mcp::error::McpError;
use crate::core::mcp::limits::UPSTREAM_OUTBOX_MESSAGES;

/// A WebSocket connection.
pub(crate) struct WebSocketConnection {
    server_name: String,
    outbox: mpsc::Sender<Message>,
    cancel: CancellationToken,
}

impl WebSocketConnection {
    /// Performs the handshake (with credentials and static headers, subprotocol `mcp`)
    /// and starts the reader and writer tasks.
    ///
    /// # Errors
    /// [`McpError::AuthenticationError`] for a 401/403 handshake, a transport error
    /// otherwise.
    pub(crate) async fn connect(params: ConnectParams<'_>) -> Result<Self, McpError> {
        let server_name = params.server_name.to_string();
        let url = websocket_url(&params.config.url);
        let mut may_refresh = params.auth.can_refresh();
        let config = WebSocketConfig::default()
            .max_message_size(Some(params.limits.max_message_bytes))
            .max_frame_size(Some(params.limits.max_message_bytes));
        let stream = loop {
            let credentials = params.auth.headers().await?;
            let mut request = url.as_str().into_client_request().map_err(|e| {
                McpError::config(format!(
                    "server '{server_name}': invalid WebSocket url: {e}"
                ))
            })?;
            for (name, value) in &credentials {
                request.headers_mut().insert(name.clone(), value.clone());
            }
            request
                .headers_mut()
                .insert("Sec-WebSocket-Protocol", HeaderValue::from_static("mcp"));
            match tokio_tungstenite::connect_async_with_config(request, Some(config), true).await {
                Ok((stream, response)) => {
                    if response.headers().get("sec-websocket-protocol").is_none() {
                        tracing::debug!(server = %server_name, "the server did not confirm subprotocol 'mcp'");
                    }
                    break stream;
                }
                Err(WsError::Http(response))
                    if response.status() == StatusCode::UNAUTHORIZED && may_refresh =>
                {
                    may_refresh = false;
                    params.auth.invalidate(&credentials).await;
                }
                Err(WsError::Http(response))
                    if matches!(
                        response.status(),
                        StatusCode::UNAUTHORIZED | StatusCode::FORBIDDEN
                    ) =>
                {
                    return Err(params.auth.auth_error(format!(
                        "the WebSocket handshake was refused with HTTP {}",
                        response.status()
                    )));
                }
                Err(WsError::Http(response)) => {
                    return Err(transport_error(
                        &server_name,
                        format!(
                            "the WebSocket handshake was refused with HTTP {}",
                            response.status()
                        ),
                        false,
                    ))
                }
                Err(error) => {
                    return Err(transport_error(
                        &server_name,
                        format!("WebSocket connection failed: {error}"),
                        false,
                    ))
                }
            }
        };
        let (mut sink, mut source) = stream.split();
        let (outbox, mut pending) = mpsc::channel::<Message>(UPSTREAM_OUTBOX_MESSAGES);
        let cancel = params.cancel.clone();
        let writer_cancel = cancel.clone();
        params.tasks.spawn(async move {
            loop {
                tokio::select! {
                    () = writer_cancel.cancelled() => {
                        let _ = tokio::time::timeout(Duration::from_secs(1), sink.send(Message::Close(None))).await;
                        return;
                    }
                    frame = pending.recv() => match frame {
                        Some(frame) => {
                            if sink.send(frame).await.is_err() {
                                return;
                            }
                        }
                        None => return,
                    }
                }
            }
        });
        let inbound: Arc<dyn Inbound> = params.inbound.clone();
        let name = server_name.clone();
        let reader_cancel = cancel.clone();
        params.tasks.spawn(async move {
            let reason = loop {
                let frame = tokio::select! {
                    () = reader_cancel.cancelled() => return,
                    frame = source.next() => frame,
                };
                match frame {
                    Some(Ok(Message::Text(text))) => {
                        deliver_text(&name, &*inbound, text.as_bytes(), None);
                    }
                    Some(Ok(Message::Binary(data))) => {
                        deliver_text(&name, &*inbound, &data, None);
                    }
                    Some(Ok(Message::Close(frame))) => {
                        break match frame {
                            Some(f) => format!(
                                "the server closed the WebSocket ({}: {})",
                                f.code, f.reason
                            ),
                            None => "the server closed the WebSocket".to_string(),
                        }
                    }
                    Some(Ok(_)) => {}
                    Some(Err(error)) => break format!("the WebSocket failed: {error}"),
                    None => break "the WebSocket ended".to_string(),
                }
            };
            reader_cancel.cancel();
            tracing::info!(server = %name, %reason, "WebSocket connection ended");
            inbound.closed(&reason);
        });
        Ok(WebSocketConnection {
            server_name,
            outbox,
            cancel,
        })
    }

    /// Queues one text frame.
    pub(crate) async fn send(&self, outgoing: Outgoing<'_>) -> Result<(), SendError> {
        if self.cancel.is_cancelled() {
            return Err(
                transport_error(&self.server_name, "the WebSocket is closed", false).into(),
            );
        }
        let text = serde_json::to_string(outgoing.message).map_err(|e| {
            transport_error(&self.server_name, format!("cannot encode: {e}"), false)
        })?;
        self.outbox
            .send(Message::Text(text.into()))
            .await
            .map_err(|_| {
                transport_error(&self.server_name, "the WebSocket is closed", false).into()
            })
    }

    /// Sends a close frame and stops both tasks.
    pub(crate) async fn close(&self) {
        self.cancel.cancel();
    }
}

/// `http(s)://` URLs are accepted for WebSocket servers and mapped to `ws(s)://`.
fn websocket_url(url: &str) -> String {
    if let Some(rest) = url.strip_prefix("https://") {
        format!("wss://{rest}")
    } else if let Some(rest) = url.strip_prefix("http://") {
        format!("ws://{rest}")
    } else {
        url.to_string()
    }
}
