//! The legacy HTTP+SSE face (the transport of protocol 2024-11-05): `GET /sse` (every
//! server, aggregated names) or `GET /sse/{server}` (one server, its own names) opens a
//! stream whose first event, `endpoint`, names where to POST
//! (`/messages?sessionId=<id>`, or `/messages/{server}?sessionId=<id>`); each POST
//! carries one JSON-RPC message and is answered `202 Accepted`, and the answers go out on
//! the stream as `message` events.
//!
//! Owns the registry of open streams and the HTTP rules of both halves: both are
//! admitted exactly as a request on `/mcp` is (Host/Origin, API key, scope); a POST
//! finds its session only with the key that opened it and on the same endpoint (else
//! 404, as for an unknown one); a POST that is not JSON (`-32700`) or not one JSON-RPC
//! message (`-32600`) is answered 400 and does not reach the session; the body limit is
//! the router's. The stream is the session, run by the [`duplex`](super::duplex)
//! engine: when the client drops it, the session ends and its requests in flight are
//! cancelled; when the service shuts down, the stream ends once they have finished.
//! Without an API key, the session counts against the client address's session cap.
//!
//! Bounds, for a client that stops reading its stream: the session's answers wait in a
//! queue of [`OUTGOING_CAPACITY`] messages (and the connection's write buffer); once
//! that is full the engine waits, and POSTs wait in a queue of [`INCOMING_CAPACITY`].
//! A POST that finds that queue full is refused at once — `503` with `Retry-After` and
//! a JSON-RPC error [`TOO_MANY_IN_FLIGHT`] — never left hanging; and when the stream's
//! writes make no progress for the write-stall timeout (see
//! [`listener`](super::listener)), the connection is closed, which ends the session,
//! cancels its calls and frees what it held. Its POSTs are then answered `404`.

use std::collections::HashMap;
use std::convert::Infallible;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Extension, Json, Router};
use futures::{Stream, StreamExt};
use serde::Deserialize;
use serde_json::Value;
use tokio::sync::mpsc;

use super::duplex::{self, IncomingLine};
use super::handler::Scope;
use super::http_face::admit;
use super::sessions::{ClientAddress, TOO_MANY_IN_FLIGHT};
use super::{jsonrpc_error, AppState};
use crate::core::mcp::permissions::KeyDigest;
use crate::core::mcp::protocol::{self, Incoming};

/// Messages POSTed to a session and not yet taken by its engine; a POST that finds the
/// queue full is refused with `503`.
pub const INCOMING_CAPACITY: usize = 64;
/// Messages waiting to go out on a stream (the per-session outbound queue).
pub const OUTGOING_CAPACITY: usize = 256;
/// How often an idle stream carries a comment, so proxies keep it open.
const KEEP_ALIVE: Duration = Duration::from_secs(15);

/// `/sse`, `/sse/{server}`, `/messages` and `/messages/{server}`.
pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/sse", get(open_all))
        .route("/sse/{server}", get(open_one))
        .route("/messages", post(post_all))
        .route("/messages/{server}", post(post_one))
        .layer(Extension(Streams::default()))
}

/// The open streams by session id. One per router, so each service has its own.
#[derive(Clone, Default)]
struct Streams {
    open: Arc<Mutex<HashMap<String, OpenStream>>>,
}

/// What a POST needs to reach a session.
struct OpenStream {
    /// The key that opened it; only that key may post to it.
    owner: Option<KeyDigest>,
    /// The endpoint it was opened on.
    scope: Scope,
    /// The session's incoming messages.
    sender: mpsc::Sender<IncomingLine>,
}

impl Streams {
    fn insert(&self, id: String, stream: OpenStream) {
        if let Ok(mut open) = self.open.lock() {
            open.insert(id, stream);
        }
    }

    /// The sender of session `id`, when it is open, belongs to `owner` and was opened
    /// on `scope`'s endpoint.
    fn find(
        &self,
        id: &str,
        owner: Option<&KeyDigest>,
        scope: &Scope,
    ) -> Option<mpsc::Sender<IncomingLine>> {
        let open = self.open.lock().ok()?;
        let stream = open.get(id)?;
        (stream.owner.as_ref() == owner && stream.scope == *scope).then(|| stream.sender.clone())
    }

    fn remove(&self, id: &str) {
        if let Ok(mut open) = self.open.lock() {
            open.remove(id);
        }
    }
}

/// Removes its session from the registry when the stream goes, however it goes.
struct Registration {
    streams: Streams,
    id: String,
}

impl Drop for Registration {
    fn drop(&mut self) {
        self.streams.remove(&self.id);
        tracing::info!(session = %self.id, "downstream SSE session closed");
    }
}

/// The query of a POST: the session (`sessionId`, or the Python SDK's `session_id`).
#[derive(Debug, Deserialize)]
struct SessionQuery {
    #[serde(rename = "sessionId", alias = "session_id")]
    session_id: Option<String>,
}

async fn open_all(
    State(state): State<AppState>,
    Extension(streams): Extension<Streams>,
    address: ClientAddress,
    headers: HeaderMap,
) -> Response {
    open(state, streams, None, address, &headers).await
}

async fn open_one(
    State(state): State<AppState>,
    Extension(streams): Extension<Streams>,
    Path(server): Path<String>,
    address: ClientAddress,
    headers: HeaderMap,
) -> Response {
    open(state, streams, Some(server), address, &headers).await
}

async fn post_all(
    State(state): State<AppState>,
    Extension(streams): Extension<Streams>,
    Query(query): Query<SessionQuery>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    deliver(state, streams, None, query, &headers, body).await
}

async fn post_one(
    State(state): State<AppState>,
    Extension(streams): Extension<Streams>,
    Path(server): Path<String>,
    Query(query): Query<SessionQuery>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    deliver(state, streams, Some(server), query, &headers, body).await
}

/// A JSON-RPC error as an HTTP response.
fn error_response(status: StatusCode, code: i64, message: &str) -> Response {
    (status, Json(jsonrpc_error(Value::Null, code, message))).into_response()
}

/// Opens a session: registers it, and returns its stream with the engine inside.
async fn open(
    state: AppState,
    streams: Streams,
    server: Option<String>,
    address: ClientAddress,
    headers: &HeaderMap,
) -> Response {
    let (identity, scope) = match admit(&state, "sse", server, headers).await {
        Ok(admitted) => admitted,
        Err(response) => return response,
    };
    let slot =
        match state.sessions().reserve(identity.digest, address) {
            Ok(slot) => slot,
            Err(_) => return (
                axum::http::StatusCode::TOO_MANY_REQUESTS,
                axum::Json(super::jsonrpc_error(
                    Value::Null,
                    -32600,
                    "Too many sessions for this API key: close one or wait for idle ones to expire",
                )),
            )
                .into_response(),
        };
    let id = format!("{:032x}", rand::random::<u128>());
    let endpoint = match &scope {
        Scope::All => format!("/messages?sessionId={id}"),
        Scope::Server(name) => format!("/messages/{name}?sessionId={id}"),
    };
    let (in_tx, in_rx) = mpsc::channel(INCOMING_CAPACITY);
    streams.insert(
        id.clone(),
        OpenStream {
            owner: identity.digest,
            scope: scope.clone(),
            sender: in_tx,
        },
    );
    tracing::info!(key = %identity.name, session = %id, ?scope, "downstream SSE session opened");
    let registration = Registration { streams, id };
    let incoming = futures::stream::unfold(in_rx, |mut rx| async move {
        rx.recv().await.map(|line| (line, rx))
    });
    let (out_tx, out_rx) = mpsc::channel(OUTGOING_CAPACITY);
    let engine = duplex::run(state, identity, scope, "sse", incoming, out_tx);
    // The slot lives as long as the engine: the stream's end ends the session.
    let engine = async move {
        engine.await;
        drop(slot);
    };
    let first = Event::default().event("endpoint").data(endpoint);
    let events = futures::stream::once(async move { Ok(first) }).chain(messages(
        Box::pin(engine),
        out_rx,
        registration,
    ));
    Sse::new(events)
        .keep_alive(KeepAlive::new().interval(KEEP_ALIVE))
        .into_response()
}

/// The session's answers as `message` events, driving its engine meanwhile; ends when
/// the engine is done and everything it wrote has gone out.
fn messages(
    engine: std::pin::Pin<Box<dyn std::future::Future<Output = ()> + Send>>,
    out_rx: mpsc::Receiver<Value>,
    registration: Registration,
) -> impl Stream<Item = Result<Event, Infallible>> {
    futures::stream::unfold(
        (Some(engine), out_rx, registration),
        |(mut engine, mut out_rx, registration)| async move {
            loop {
                let running = async {
                    match engine.as_mut() {
                        Some(engine) => engine.await,
                        None => std::future::pending().await,
                    }
                };
                tokio::select! {
                    biased;
                    message = out_rx.recv() => {
                        let event = Event::default().event("message").data(protocol::encode(&message?));
                        return Some((Ok(event), (engine, out_rx, registration)));
                    }
                    () = running => engine = None,
                }
            }
        },
    )
}

/// Hands one POSTed message to its session.
async fn deliver(
    state: AppState,
    streams: Streams,
    server: Option<String>,
    query: SessionQuery,
    headers: &HeaderMap,
    body: Bytes,
) -> Response {
    let (identity, scope) = match admit(&state, "sse", server, headers).await {
        Ok(admitted) => admitted,
        Err(response) => return response,
    };
    if !super::http_face::is_json_content_type(headers) {
        return error_response(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            protocol::INVALID_REQUEST,
            "Unsupported Media Type: send Content-Type: application/json",
        );
    }
    let Some(id) = query.session_id else {
        return error_response(
            StatusCode::BAD_REQUEST,
            protocol::INVALID_REQUEST,
            "Bad Request: the sessionId query parameter is required",
        );
    };
    let Some(sender) = streams.find(&id, identity.digest.as_ref(), &scope) else {
        return error_response(StatusCode::NOT_FOUND, -32001, "Session not found");
    };
    // Checked here, so that a bad message is answered 400 and never reaches the
    // session; the session reads the text again (the id's exact digits live there).
    let text = match Incoming::parse_from_client(&body).map(|_| String::from_utf8(body.to_vec())) {
        Ok(Ok(text)) => text,
        Ok(Err(_)) => {
            return error_response(
                StatusCode::BAD_REQUEST,
                protocol::PARSE_ERROR,
                "Parse error: not UTF-8",
            )
        }
        Err(refusal) => {
            state.metrics().record_request("sse", "-", "error");
            return super::http_face::message_response(
                StatusCode::BAD_REQUEST,
                &refusal.to_response(),
            );
        }
    };
    // The owner is the stream's (checked above); this POST's own credential, possibly a
    // refreshed token, is the one the session acts with from now on.
    match sender.try_send(IncomingLine::TextAs(text, Box::new(identity))) {
        Ok(()) => StatusCode::ACCEPTED.into_response(),
        Err(mpsc::error::TrySendError::Full(_)) => {
            state.metrics().record_request("sse", "-", "error");
            let mut response = error_response(
                StatusCode::SERVICE_UNAVAILABLE,
                TOO_MANY_IN_FLIGHT,
                "Service Unavailable: this session's queue is full (its client is not reading the SSE stream, or sends faster than it reads); retry later",
            );
            response.headers_mut().insert(
                axum::http::header::RETRY_AFTER,
                axum::http::HeaderValue::from_static("1"),
            );
            response
        }
        // The stream ended while this was on its way.
        Err(mpsc::error::TrySendError::Closed(_)) => {
            error_response(StatusCode::NOT_FOUND, -32001, "Session not found")
        }
    }
}
