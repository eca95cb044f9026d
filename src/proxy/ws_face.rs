//! The WebSocket face: `GET /ws` (every server, aggregated names) and `GET /ws/{server}`
//! (one server, its own names), JSON-RPC in text frames, subprotocol `mcp` (what the
//! Python SDK 1.x `websocket_client` asks for). Not part of the MCP specification, but
//! spoken by SDK 1.x clients and servers.
//!
//! Owns the WebSocket rules: the upgrade request is admitted exactly as an HTTP request
//! on `/mcp` is (Host/Origin, API key, scope: refused with the HTTP status and JSON-RPC
//! body before any upgrade); a message may be at most `max_body_bytes` (a larger one
//! closes the connection with 1009, as the frame cannot be skipped); binary frames are
//! read as UTF-8 text (one that is not UTF-8 is answered `-32700`); a malformed message
//! is answered with a JSON-RPC error and the socket stays open. A violation of RFC 6455
//! closes the connection with 1002, a text frame that is not UTF-8 with 1007 (RFC 6455
//! §7.4.1). Without an API key, the session counts against the client address's session
//! cap. One connection is one session, run by the [`duplex`](super::duplex) engine; when
//! the client goes away, its requests in flight are cancelled.

use axum::extract::ws::{close_code, CloseFrame, Message, WebSocket, WebSocketUpgrade};
use axum::extract::RawQuery;
use axum::extract::{Path, State};
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use futures::{SinkExt, Stream, StreamExt};
use serde_json::Value;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use super::duplex::{self, IncomingLine};
use super::handler::{Identity, Scope};
use super::http_face::admit;
use super::sessions::ClientAddress;
use super::AppState;
use crate::core::mcp::protocol;

/// The subprotocol MCP clients ask for.
const SUBPROTOCOL: &str = "mcp";
/// Messages waiting to be written to the socket.
const OUTGOING_CAPACITY: usize = 256;

/// `/ws` and `/ws/{server}`.
pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/ws", get(upgrade_all))
        .route("/ws/{server}", get(upgrade_one))
}

/// The upgrade, or why the request is not one (checked after admission, so an
/// unauthenticated caller learns nothing else).
type Upgrade = Result<WebSocketUpgrade, axum::extract::ws::rejection::WebSocketUpgradeRejection>;

async fn upgrade_all(
    State(state): State<AppState>,
    address: ClientAddress,
    RawQuery(query): RawQuery,
    headers: HeaderMap,
    ws: Upgrade,
) -> Response {
    upgrade(state, None, address, &with_query_key(headers, query), ws).await
}

async fn upgrade_one(
    State(state): State<AppState>,
    Path(server): Path<String>,
    address: ClientAddress,
    RawQuery(query): RawQuery,
    headers: HeaderMap,
    ws: Upgrade,
) -> Response {
    upgrade(
        state,
        Some(server),
        address,
        &with_query_key(headers, query),
        ws,
    )
    .await
}

/// WebSocket clients often cannot set headers (browsers; the Python SDK's
/// `websocket_client`), so the upgrade also takes the key as `?api_key=…` when no header
/// carries one. (Request logs record the path only, never the query.)
fn with_query_key(mut headers: HeaderMap, query: Option<String>) -> HeaderMap {
    let has_header = headers.contains_key(axum::http::header::AUTHORIZATION)
        || headers.contains_key("x-api-key");
    if has_header {
        return headers;
    }
    let key = query.as_deref().and_then(|q| {
        url::form_urlencoded::parse(q.as_bytes())
            .find(|(name, _)| name == "api_key")
            .map(|(_, value)| value.into_owned())
    });
    if let Some(value) = key.and_then(|k| axum::http::HeaderValue::from_str(&k).ok()) {
        headers.insert("x-api-key", value);
    }
    headers
}

async fn upgrade(
    state: AppState,
    server: Option<String>,
    address: ClientAddress,
    headers: &HeaderMap,
    ws: Upgrade,
) -> Response {
    let (identity, scope) = match admit(&state, "ws", server, headers).await {
        Ok(admitted) => admitted,
        Err(response) => return response,
    };
    let ws = match ws {
        Ok(ws) => ws,
        Err(rejection) => return rejection.into_response(),
    };
    let slot = match state.sessions().reserve(identity.digest, address) {
        Ok(slot) => slot,
        Err(_) => return too_many_sessions(),
    };
    let limit = state.inner.max_body_bytes;
    ws.protocols([SUBPROTOCOL])
        .max_message_size(limit)
        .max_frame_size(limit)
        .on_failed_upgrade(|error| tracing::debug!(%error, "WebSocket upgrade failed"))
        .on_upgrade(move |socket| async move {
            session(socket, state, identity, scope).await;
            drop(slot);
        })
}

fn too_many_sessions() -> Response {
    (
        axum::http::StatusCode::TOO_MANY_REQUESTS,
        axum::Json(super::jsonrpc_error(
            Value::Null,
            -32600,
            "Too many sessions for this API key: close one or wait for idle ones to expire",
        )),
    )
        .into_response()
}

/// Why the connection ends, from our side.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Ending {
    /// The client closed it, or went away.
    Client,
    /// The client sent a message over the cap (1009).
    TooLarge,
    /// The client broke RFC 6455 (1002).
    ProtocolError,
    /// The client sent a text frame that is not UTF-8 (1007).
    NotUtf8,
}

impl Ending {
    /// The close frame we send for it, if any (a client that closed gets ours from
    /// the library's closing handshake).
    fn close_frame(self) -> Option<CloseFrame> {
        let (code, reason) = match self {
            Ending::Client => return None,
            Ending::TooLarge => (close_code::SIZE, "message too large"),
            Ending::ProtocolError => (close_code::PROTOCOL, "protocol error"),
            Ending::NotUtf8 => (close_code::INVALID, "text frame is not UTF-8"),
        };
        Some(CloseFrame {
            code,
            reason: reason.into(),
        })
    }

    /// What a read error says about the client. tungstenite's errors reach us boxed in
    /// `axum::Error`, of a version we do not link, so only their text tells them apart.
    fn of_read_error(text: &str) -> Self {
        if text.contains("Space limit exceeded") || text.contains("too long") {
            Ending::TooLarge
        } else if text.starts_with("UTF-8 encoding error") {
            Ending::NotUtf8
        } else if text.starts_with("WebSocket protocol error") {
            Ending::ProtocolError
        } else {
            Ending::Client
        }
    }
}

/// One connection: the engine between the socket's frames and its writer.
async fn session(socket: WebSocket, state: AppState, identity: Identity, scope: Scope) {
    tracing::info!(key = %identity.name, ?scope, "downstream WebSocket session opened");
    let (mut sink, frames) = socket.split();
    let (out_tx, mut out_rx) = mpsc::channel::<Value>(OUTGOING_CAPACITY);
    // Fires when the client stops sending: then nobody reads our answers either.
    let read_done = CancellationToken::new();
    let ending = std::sync::Arc::new(std::sync::Mutex::new(Ending::Client));
    let incoming = messages(frames, read_done.clone(), ending.clone());
    let engine = duplex::run(state, identity.clone(), scope, "ws", incoming, out_tx);
    let writer = async move {
        loop {
            // Answers already queued go out before the end is noticed.
            let message = tokio::select! {
                biased;
                message = out_rx.recv() => message,
                () = read_done.cancelled() => None,
            };
            let Some(message) = message else { break };
            if sink
                .send(Message::Text(protocol::encode(&message).into()))
                .await
                .is_err()
            {
                break;
            }
        }
        // Dropping the receiver tells the engine nobody reads any more.
        drop(out_rx);
        let ending = ending.lock().map(|e| *e).unwrap_or(Ending::Client);
        if let Some(frame) = ending.close_frame() {
            let _ = sink.send(Message::Close(Some(frame))).await;
        }
        let _ = sink.close().await;
    };
    tokio::join!(engine, writer);
    tracing::info!(key = %identity.name, "downstream WebSocket session closed");
}

/// The messages of the socket's data frames; ends (firing `done`) when the client
/// closes, goes away, or breaks the protocol.
fn messages(
    frames: impl Stream<Item = Result<Message, axum::Error>> + Unpin,
    done: CancellationToken,
    ending: std::sync::Arc<std::sync::Mutex<Ending>>,
) -> impl Stream<Item = IncomingLine> {
    // Fires `done` however the stream ends, including by being dropped.
    let guard = done.drop_guard();
    futures::stream::unfold((frames, guard), move |(mut frames, guard)| {
        let ending = ending.clone();
        async move {
            loop {
                let line = match frames.next().await? {
                    Ok(Message::Text(text)) => IncomingLine::Text(text.as_str().to_string()),
                    Ok(Message::Binary(bytes)) => match String::from_utf8(bytes.to_vec()) {
                        Ok(text) => IncomingLine::Text(text),
                        Err(_) => IncomingLine::NotUtf8,
                    },
                    Ok(Message::Ping(_) | Message::Pong(_)) => continue,
                    Ok(Message::Close(_)) => return None,
                    Err(error) => {
                        let text = error.to_string();
                        if let Ok(mut ending) = ending.lock() {
                            *ending = Ending::of_read_error(&text);
                        }
                        tracing::debug!(error = %text, "WebSocket read ended");
                        return None;
                    }
                };
                return Some((line, (frames, guard)));
            }
        }
    })
}
