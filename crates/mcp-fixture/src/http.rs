//! Streamable HTTP at `/mcp`, both eras. Legacy (2025-03-26..2025-11-25): `initialize`
//! mints an `Mcp-Session-Id`, later requests need it (400 missing / 404 unknown), the
//! `MCP-Protocol-Version` header must match, GET opens the session's notification stream,
//! DELETE ends the session. Modern (2026-07-28): stateless POSTs validated against the
//! `MCP-Protocol-Version` / `Mcp-Method` / `Mcp-Name` headers and the body's `_meta`.

use std::sync::Arc;

use axum::body::{Body, Bytes};
use axum::extract::State;
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Extension;
use serde_json::Value;
use tokio::sync::{broadcast, mpsc};

use crate::app::App;
use crate::dispatch::{self, Cx, Out, Outcome, Transport, GARBAGE};
use crate::framing::{
    accepts, decode_header_value, empty_sse, header_str, json_response, out_stream, sse_event,
    sse_response, KEEPALIVE,
};
use crate::protocol::{self, Era, LEGACY_VERSIONS};
use crate::rpc::{self, Incoming, Request, RpcError, HEADER_MISMATCH, SERVER_ERROR};
use crate::server::ConnKill;
use crate::session::Session;

pub const SESSION_HEADER: &str = "mcp-session-id";
pub const VERSION_HEADER: &str = "mcp-protocol-version";

fn error(status: StatusCode, id: Value, code: i64, message: &str) -> Response {
    json_response(status, &rpc::error_response(id, code, message, None))
}

fn garbage_response() -> Response {
    let mut r = Response::new(Body::from(GARBAGE));
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    r
}

/// Kills the connection this request came on, never answering it.
async fn crash(kill: &ConnKill) -> Response {
    kill.0.cancel();
    std::future::pending().await
}

/// HTTP status of a modern error response (streamable-http "Server Validation").
fn modern_status(msg: &Value) -> StatusCode {
    match rpc::error_code(msg) {
        Some(
            rpc::HEADER_MISMATCH
            | rpc::MISSING_REQUIRED_CLIENT_CAPABILITY
            | rpc::UNSUPPORTED_PROTOCOL_VERSION,
        ) => StatusCode::BAD_REQUEST,
        Some(rpc::METHOD_NOT_FOUND) => StatusCode::NOT_FOUND,
        _ => StatusCode::OK,
    }
}

/// POST `/mcp`.
pub async fn post(
    State(app): State<Arc<App>>,
    Extension(kill): Extension<ConnKill>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    if let Err(r) = crate::oauth::guard(&app, &headers) {
        return r;
    }
    if !accepts(&headers, true, true) {
        let m = "Not Acceptable: Accept must list application/json and text/event-stream";
        return error(StatusCode::NOT_ACCEPTABLE, Value::Null, SERVER_ERROR, m);
    }
    if let Some(ct) = header_str(&headers, "content-type") {
        if !ct.starts_with("application/json") {
            let m = "Unsupported Media Type: Content-Type must be application/json";
            return error(
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                Value::Null,
                SERVER_ERROR,
                m,
            );
        }
    }
    let headers = Arc::new(headers);
    app.stats.set_last_headers(Arc::clone(&headers));
    let msg = match rpc::parse(&body) {
        Ok(m) => m,
        Err(e) => return json_response(StatusCode::BAD_REQUEST, &e),
    };
    let mode = app.cfg.era;
    let sid = if mode.legacy() {
        header_str(&headers, SESSION_HEADER)
    } else {
        None
    };
    match msg {
        Incoming::Request(req) => {
            app.stats.method(&req.method);
            if req.method == "initialize" {
                return initialize(&app, req);
            }
            if let Some(sid) = sid {
                let session = match legacy_session(&app, &headers, sid, &req.id) {
                    Ok(s) => s,
                    Err(r) => return r,
                };
                return legacy_request(app, kill, headers, session, req).await;
            }
            let version_header = header_str(&headers, VERSION_HEADER);
            let legacy_client = version_header.is_none_or(|v| LEGACY_VERSIONS.contains(&v));
            if !mode.modern() || (mode.legacy() && legacy_client) {
                let m = "Bad Request: Mcp-Session-Id header is required";
                return error(StatusCode::BAD_REQUEST, req.id, SERVER_ERROR, m);
            }
            modern_request(app, kill, headers, req).await
        }
        Incoming::Notification { method, params } => {
            let session = match sid.map(|s| legacy_session(&app, &headers, s, &Value::Null)) {
                Some(Ok(s)) => Some(s),
                Some(Err(r)) => return r,
                None if !mode.modern() => {
                    let m = "Bad Request: Mcp-Session-Id header is required";
                    return error(StatusCode::BAD_REQUEST, Value::Null, SERVER_ERROR, m);
                }
                None => None,
            };
            dispatch::notification(
                &app,
                session.as_ref().map(|s| &*s.scope),
                &method,
                params.as_ref(),
            );
            StatusCode::ACCEPTED.into_response()
        }
        Incoming::Response => {
            if let Some(Err(r)) = sid.map(|s| legacy_session(&app, &headers, s, &Value::Null)) {
                return r;
            }
            StatusCode::ACCEPTED.into_response()
        }
    }
}

fn initialize(app: &Arc<App>, req: Request) -> Response {
    let p = req.params.as_ref();
    if !app.cfg.era.legacy() {
        let e = protocol::reject_initialize(p).into_response(req.id);
        return json_response(StatusCode::BAD_REQUEST, &e);
    }
    match protocol::initialize(p, app.cfg.max_version) {
        Ok((version, result)) => {
            let session = app.sessions.create(version);
            app.stats.sessions_created.inc();
            tracing::debug!(session = %session.id, version, "session created");
            let mut r = json_response(StatusCode::OK, &rpc::result_response(req.id, result));
            if let Ok(v) = HeaderValue::from_str(&session.id) {
                r.headers_mut().insert(SESSION_HEADER, v);
            }
            r
        }
        Err(e) => json_response(StatusCode::BAD_REQUEST, &e.into_response(req.id)),
    }
}

/// Looks up a legacy session and checks the `MCP-Protocol-Version` header against it.
fn legacy_session(
    app: &App,
    headers: &HeaderMap,
    sid: &str,
    id: &Value,
) -> Result<Arc<Session>, Response> {
    let Some(session) = app.sessions.get(sid) else {
        return Err(error(
            StatusCode::NOT_FOUND,
            id.clone(),
            -32001,
            "Session not found",
        ));
    };
    if let Some(v) = header_str(headers, VERSION_HEADER) {
        if v != session.version {
            let m = format!(
                "Bad Request: unsupported MCP-Protocol-Version {v} (session negotiated {})",
                session.version
            );
            return Err(error(StatusCode::BAD_REQUEST, id.clone(), SERVER_ERROR, &m));
        }
    }
    Ok(session)
}

async fn legacy_request(
    app: Arc<App>,
    kill: ConnKill,
    headers: Arc<HeaderMap>,
    session: Arc<Session>,
    req: Request,
) -> Response {
    let stream = !app.cfg.json_response && req.method == "tools/call";
    let cx = Cx {
        app,
        era: Era::Legacy(session.version),
        transport: Transport::Http,
        headers: Some(headers),
        scope: Some(Arc::clone(&session.scope)),
        out: None,
        modern_log: None,
    };
    // 2025-11-25: prime the client with an event id and empty data.
    let priming =
        (session.version >= "2025-11-25").then(|| format!("{}-0", crate::session::new_id()));
    respond(cx, kill, req, stream, priming).await
}

async fn modern_request(
    app: Arc<App>,
    kill: ConnKill,
    headers: Arc<HeaderMap>,
    req: Request,
) -> Response {
    let id = req.id.clone();
    let bad = |code: i64, m: String| {
        json_response(
            StatusCode::BAD_REQUEST,
            &rpc::error_response(id.clone(), code, m, None),
        )
    };
    let Some(hv) = header_str(&headers, VERSION_HEADER) else {
        return bad(
            HEADER_MISMATCH,
            "Header mismatch: missing MCP-Protocol-Version header".into(),
        );
    };
    match header_str(&headers, "mcp-method") {
        None => {
            return bad(
                HEADER_MISMATCH,
                "Header mismatch: missing Mcp-Method header".into(),
            )
        }
        Some(m) if m != req.method => {
            return bad(
                HEADER_MISMATCH,
                format!(
                    "Header mismatch: Mcp-Method header value '{m}' does not match body value '{}'",
                    req.method
                ),
            )
        }
        Some(_) => {}
    }
    let p = req.params.as_ref();
    let meta = match protocol::parse_modern_meta(p) {
        Ok(m) => m,
        Err(e) => return json_response(StatusCode::BAD_REQUEST, &e.into_response(id)),
    };
    if hv != meta.version {
        return bad(
            HEADER_MISMATCH,
            format!("Header mismatch: MCP-Protocol-Version header '{hv}' does not match _meta value '{}'", meta.version),
        );
    }
    let version =
        match protocol::check_modern_version(meta.version, app.cfg.era, app.cfg.max_version) {
            Ok(v) => v,
            Err(e) => return json_response(StatusCode::BAD_REQUEST, &e.into_response(id)),
        };
    let modern_log = meta.log_level;
    if let Err(e) = check_name(&headers, &req) {
        return json_response(StatusCode::BAD_REQUEST, &e.into_response(id));
    }
    let stream = req.method == "subscriptions/listen"
        || (!app.cfg.json_response && req.method == "tools/call");
    let cx = Cx {
        app,
        era: Era::Modern(version),
        transport: Transport::Http,
        headers: Some(headers),
        scope: None,
        out: None,
        modern_log,
    };
    respond(cx, kill, req, stream, None).await
}

/// `Mcp-Name` must mirror `params.name` / `params.uri` for the methods that have one.
fn check_name(headers: &HeaderMap, req: &Request) -> Result<(), RpcError> {
    let field = match req.method.as_str() {
        "tools/call" | "prompts/get" => "name",
        "resources/read" => "uri",
        _ => return Ok(()),
    };
    let body = rpc::param(req.params.as_ref(), field).and_then(Value::as_str);
    let Some(raw) = header_str(headers, "mcp-name") else {
        return Err(RpcError::new(
            HEADER_MISMATCH,
            "Header mismatch: missing Mcp-Name header",
        ));
    };
    let decoded = decode_header_value(raw);
    if decoded.as_deref() != body {
        return Err(RpcError::new(
            HEADER_MISMATCH,
            format!(
                "Header mismatch: Mcp-Name header value '{raw}' does not match body value '{}'",
                body.unwrap_or("")
            ),
        ));
    }
    Ok(())
}

/// Records a modern request as cancelled if its response is dropped unfinished (closing the
/// connection is the modern cancellation signal).
struct CancelOnDrop {
    app: Option<Arc<App>>,
    id: Value,
}

impl Drop for CancelOnDrop {
    fn drop(&mut self) {
        if let Some(app) = self.app.take() {
            app.stats.cancelled(std::mem::take(&mut self.id));
        }
    }
}

/// Runs a request and answers with JSON or an SSE stream.
async fn respond(
    mut cx: Cx,
    kill: ConnKill,
    req: Request,
    stream: bool,
    priming: Option<String>,
) -> Response {
    let modern = cx.era.is_modern();
    if !stream {
        let mut guard = CancelOnDrop {
            app: modern.then(|| Arc::clone(&cx.app)),
            id: req.id.clone(),
        };
        let outcome = dispatch::request(&cx, req.id, &req.method, req.params).await;
        guard.app = None;
        return match outcome {
            Outcome::Reply(v) => {
                let status = if modern {
                    modern_status(&v)
                } else {
                    StatusCode::OK
                };
                json_response(status, &v)
            }
            Outcome::Garbage(_) => garbage_response(),
            Outcome::Crash => crash(&kill).await,
            Outcome::Silent => empty_sse(),
        };
    }
    let keepalive = req.method == "subscriptions/listen";
    let (tx, mut rx) = mpsc::unbounded_channel();
    cx.out = Some(tx.clone());
    let app = Arc::clone(&cx.app);
    let id = req.id.clone();
    tokio::spawn(async move {
        let work = async {
            let outcome = dispatch::request(&cx, req.id, &req.method, req.params).await;
            outcome.emit(&tx);
        };
        tokio::select! {
            () = work => {}
            () = tx.closed() => if modern { app.stats.cancelled(id) },
        }
    });
    let first = match rx.recv().await {
        None => return empty_sse(),
        Some(Out::Crash) => return crash(&kill).await,
        Some(Out::Raw(_)) => return garbage_response(),
        Some(Out::Json(v)) => v,
    };
    if modern && first.get("method").is_none() {
        let status = modern_status(&first);
        if status != StatusCode::OK {
            return json_response(status, &first);
        }
    }
    let head = match priming {
        Some(event_id) => format!("id: {event_id}\ndata: \n\n").into_bytes(),
        None => Vec::new(),
    };
    let mut first_bytes = head;
    first_bytes.extend_from_slice(&sse_event(&serde_json::to_vec(&first).unwrap_or_default()));
    sse_response(out_stream(
        Some(Bytes::from(first_bytes)),
        rx,
        kill,
        keepalive,
    ))
}

/// GET `/mcp`: the session's stream for server-initiated messages (tool-list changes).
pub async fn get(State(app): State<Arc<App>>, headers: HeaderMap) -> Response {
    if !app.cfg.era.legacy() {
        return StatusCode::METHOD_NOT_ALLOWED.into_response();
    }
    if let Err(r) = crate::oauth::guard(&app, &headers) {
        return r;
    }
    if !accepts(&headers, false, true) {
        let m = "Not Acceptable: Accept must list text/event-stream";
        return error(StatusCode::NOT_ACCEPTABLE, Value::Null, SERVER_ERROR, m);
    }
    let Some(sid) = header_str(&headers, SESSION_HEADER) else {
        let m = "Bad Request: Mcp-Session-Id header is required";
        return error(StatusCode::BAD_REQUEST, Value::Null, SERVER_ERROR, m);
    };
    let session = match legacy_session(&app, &headers, sid, &Value::Null) {
        Ok(s) => s,
        Err(r) => return r,
    };
    let Some(claim) = session.claim_get() else {
        let m = "Conflict: only one GET stream is allowed per session";
        return error(StatusCode::CONFLICT, Value::Null, SERVER_ERROR, m);
    };
    app.stats.get_streams.inc();
    app.stats.set_last_headers(Arc::new(headers));
    let changes = app.changes.subscribe();
    let stream = futures::stream::unfold((changes, claim), |(mut changes, claim)| async move {
        let shutdown = claim.0.scope.shutdown.clone();
        let ev = tokio::select! {
            () = shutdown.cancelled() => return None,
            r = tokio::time::timeout(KEEPALIVE, changes.recv()) => r,
        };
        let bytes = match ev {
            Err(_) => Bytes::from_static(b": keepalive\n\n"),
            Ok(Ok(_) | Err(broadcast::error::RecvError::Lagged(_))) => {
                sse_event(br#"{"jsonrpc":"2.0","method":"notifications/tools/list_changed"}"#)
            }
            Ok(Err(broadcast::error::RecvError::Closed)) => return None,
        };
        Some((Ok::<_, std::io::Error>(bytes), (changes, claim)))
    });
    sse_response(stream)
}

/// DELETE `/mcp`: ends the session.
pub async fn delete(State(app): State<Arc<App>>, headers: HeaderMap) -> Response {
    if !app.cfg.era.legacy() {
        return StatusCode::METHOD_NOT_ALLOWED.into_response();
    }
    if let Err(r) = crate::oauth::guard(&app, &headers) {
        return r;
    }
    let Some(sid) = header_str(&headers, SESSION_HEADER) else {
        let m = "Bad Request: Mcp-Session-Id header is required";
        return error(StatusCode::BAD_REQUEST, Value::Null, SERVER_ERROR, m);
    };
    match app.sessions.remove(sid) {
        Some(_) => StatusCode::OK.into_response(),
        None => error(
            StatusCode::NOT_FOUND,
            Value::Null,
            -32001,
            "Session not found",
        ),
    }
}
