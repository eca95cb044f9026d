//! The hostile HTTP server (`--hostile http`): a minimal MCP server over streamable HTTP
//! (`POST /mcp`, `/mcp-listen`) and legacy SSE (`GET /sse`, `POST /messages`) whose
//! tools and streams misbehave:
//!
//! | what | does |
//! |---|---|
//! | tool `attack` | its reply stream (the POST's SSE, or the legacy stream) sends `data: ` and then `x` without end, at full speed |
//! | tool `drip` | its reply stream sends `data: ` and then one `x` every 100 ms, without end |
//! | tool `echo` | answers `text` |
//! | tool `headers` | answers the names of the request's headers, comma-separated |
//! | `GET /mcp-listen` | the GET stream sends a line without end, at full speed (`GET /mcp`: 405) |
//! | `/same` | 307 to `/mcp` (the same origin) |
//! | `/cross` | 307 to `--redirect-to` (another origin) |
//! | `GET /stats` | `{"listen_streams", "legacy_streams", "endless_bytes"}` |
//!
//! A stream ends when the client hangs up.

use std::convert::Infallible;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::{Body, Bytes};
use axum::extract::State;
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{any, get, post};
use axum::{Json, Router};
use futures::StreamExt;
use serde_json::{json, Value};
use tokio::io::AsyncWriteExt;
use tokio::sync::mpsc;

use super::{common_answer, result, text, tool, Options};

/// What the legacy stream sends next.
enum Piece {
    /// An event, as is.
    Event(Bytes),
    /// `data: ` and then a line without end.
    Endless,
}

#[derive(Default)]
struct Counters {
    listen_streams: AtomicU64,
    legacy_streams: AtomicU64,
    endless_bytes: Arc<AtomicU64>,
}

struct Hostile {
    options: Options,
    counters: Counters,
    /// The open legacy stream's queue.
    legacy: Mutex<Option<mpsc::UnboundedSender<Piece>>>,
}

/// Binds 127.0.0.1:`port`, prints `LISTENING <port>`, serves until killed.
///
/// # Errors
/// When it cannot bind or serve.
pub async fn run(options: Options, port: u16) -> std::io::Result<()> {
    let listener = tokio::net::TcpListener::bind(("127.0.0.1", port)).await?;
    let port = listener.local_addr()?.port();
    let mut stdout = tokio::io::stdout();
    stdout
        .write_all(format!("LISTENING {port}\n").as_bytes())
        .await?;
    stdout.flush().await?;
    let state = Arc::new(Hostile {
        options,
        counters: Counters::default(),
        legacy: Mutex::new(None),
    });
    let router = Router::new()
        .route("/mcp", post(mcp_post).get(no_stream).delete(deleted))
        .route("/mcp-listen", post(mcp_post).get(listen).delete(deleted))
        .route("/sse", get(legacy_stream))
        .route("/messages", post(legacy_post))
        .route("/same", any(same_origin))
        .route("/cross", any(cross_origin))
        .route("/stats", get(stats))
        .with_state(state);
    axum::serve(listener, router).await
}

const BLOCK: usize = 64 * 1024;

/// `data: ` and then `x` without end, counted.
fn endless_line(counter: Arc<AtomicU64>) -> impl futures::Stream<Item = Result<Bytes, Infallible>> {
    let block = Bytes::from(vec![b'x'; BLOCK]);
    futures::stream::once(async { Ok(Bytes::from_static(b"data: ")) }).chain(
        futures::stream::repeat_with(move || {
            counter.fetch_add(BLOCK as u64, Ordering::Relaxed);
            Ok(block.clone())
        }),
    )
}

/// `data: ` and then one `x` every 100 ms.
fn dripping_line() -> impl futures::Stream<Item = Result<Bytes, Infallible>> {
    futures::stream::once(async { Ok(Bytes::from_static(b"data: ")) }).chain(
        futures::stream::unfold((), |()| async {
            tokio::time::sleep(Duration::from_millis(100)).await;
            Some((Ok(Bytes::from_static(b"x")), ()))
        }),
    )
}

fn event_stream(body: Body) -> Response {
    ([(header::CONTENT_TYPE, "text/event-stream")], body).into_response()
}

fn sse_event(message: &Value) -> Bytes {
    Bytes::from(format!("event: message\ndata: {message}\n\n"))
}

/// What a request gets: a JSON-RPC answer, or one of the misbehaving streams.
enum Answer {
    Json(Value),
    Endless,
    Drip,
    Nothing,
}

fn answer(request: &Value, headers: &HeaderMap) -> Answer {
    let Some(id) = request.get("id") else {
        return Answer::Nothing;
    };
    if let Some(answer) = common_answer(request) {
        return Answer::Json(answer);
    }
    let method = request
        .get("method")
        .and_then(Value::as_str)
        .unwrap_or_default();
    if method == "tools/list" {
        let tools: Vec<Value> = ["echo", "attack", "drip", "headers"]
            .iter()
            .map(|n| tool(n))
            .collect();
        return Answer::Json(result(id, json!({"tools": tools})));
    }
    match request.pointer("/params/name").and_then(Value::as_str) {
        Some("attack") => Answer::Endless,
        Some("drip") => Answer::Drip,
        Some("headers") => {
            let mut names: Vec<&str> = headers.keys().map(|k| k.as_str()).collect();
            names.sort_unstable();
            Answer::Json(result(id, text(&names.join(","))))
        }
        _ => Answer::Json(result(
            id,
            text(
                request
                    .pointer("/params/arguments/text")
                    .and_then(Value::as_str)
                    .unwrap_or_default(),
            ),
        )),
    }
}

async fn mcp_post(State(state): State<Arc<Hostile>>, headers: HeaderMap, body: Bytes) -> Response {
    let Ok(request) = serde_json::from_slice::<Value>(&body) else {
        return StatusCode::BAD_REQUEST.into_response();
    };
    match answer(&request, &headers) {
        Answer::Nothing => StatusCode::ACCEPTED.into_response(),
        Answer::Json(value) => {
            ([("mcp-session-id", "hostile-session")], Json(value)).into_response()
        }
        Answer::Endless => event_stream(Body::from_stream(endless_line(
            state.counters.endless_bytes.clone(),
        ))),
        Answer::Drip => event_stream(Body::from_stream(dripping_line())),
    }
}

async fn no_stream() -> Response {
    StatusCode::METHOD_NOT_ALLOWED.into_response()
}

async fn deleted() -> Response {
    StatusCode::OK.into_response()
}

async fn listen(State(state): State<Arc<Hostile>>) -> Response {
    state
        .counters
        .listen_streams
        .fetch_add(1, Ordering::Relaxed);
    event_stream(Body::from_stream(endless_line(
        state.counters.endless_bytes.clone(),
    )))
}

async fn legacy_stream(State(state): State<Arc<Hostile>>) -> Response {
    let n = state
        .counters
        .legacy_streams
        .fetch_add(1, Ordering::Relaxed);
    let (queue, pieces) = mpsc::unbounded_channel();
    if let Ok(mut slot) = state.legacy.lock() {
        *slot = Some(queue);
    }
    let endpoint = Bytes::from(format!("event: endpoint\ndata: /messages?s={n}\n\n"));
    let counter = state.counters.endless_bytes.clone();
    let rest = futures::stream::unfold(pieces, |mut pieces| async move {
        let piece = pieces.recv().await?;
        Some((piece, pieces))
    })
    .flat_map(move |piece| match piece {
        Piece::Event(bytes) => futures::stream::once(async move { Ok(bytes) }).boxed(),
        Piece::Endless => endless_line(counter.clone()).boxed(),
    });
    let body = futures::stream::once(async move { Ok::<_, Infallible>(endpoint) }).chain(rest);
    event_stream(Body::from_stream(body))
}

async fn legacy_post(
    State(state): State<Arc<Hostile>>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let Ok(request) = serde_json::from_slice::<Value>(&body) else {
        return StatusCode::BAD_REQUEST.into_response();
    };
    let piece = match answer(&request, &headers) {
        Answer::Nothing => None,
        Answer::Json(value) => Some(Piece::Event(sse_event(&value))),
        Answer::Endless | Answer::Drip => Some(Piece::Endless),
    };
    if let Some(piece) = piece {
        let queue = state.legacy.lock().ok().and_then(|q| q.clone());
        if let Some(queue) = queue {
            let _ = queue.send(piece);
        }
    }
    StatusCode::ACCEPTED.into_response()
}

async fn same_origin() -> Response {
    (StatusCode::TEMPORARY_REDIRECT, [(header::LOCATION, "/mcp")]).into_response()
}

async fn cross_origin(State(state): State<Arc<Hostile>>) -> Response {
    match &state.options.redirect_to {
        Some(to) => (
            StatusCode::TEMPORARY_REDIRECT,
            [(header::LOCATION, to.clone())],
        )
            .into_response(),
        None => StatusCode::NOT_FOUND.into_response(),
    }
}

async fn stats(State(state): State<Arc<Hostile>>) -> Response {
    let c = &state.counters;
    Json(json!({
        "listen_streams": c.listen_streams.load(Ordering::Relaxed),
        "legacy_streams": c.legacy_streams.load(Ordering::Relaxed),
        "endless_bytes": c.endless_bytes.load(Ordering::Relaxed),
    }))
    .into_response()
}
