//! The deprecated HTTP+SSE transport (protocol 2024-11-05): GET `/sse` opens the stream
//! whose first event is `endpoint` (`/messages?sessionId=<id>`); clients POST JSON-RPC to
//! `/messages` (202 Accepted) and every answer arrives as an `event: message` on the stream.

use std::collections::HashMap;
use std::sync::{Arc, PoisonError, RwLock};

use axum::body::Bytes;
use axum::extract::{Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Extension;
use serde_json::Value;

use crate::app::App;
use crate::conn::Conn;
use crate::dispatch::Transport;
use crate::framing::{json_response, out_stream, sse_response};
use crate::rpc::{self, SERVER_ERROR};
use crate::server::ConnKill;
use crate::session::new_id;

pub struct SseSession {
    conn: Arc<Conn>,
}

#[derive(Default)]
pub struct SseSessions {
    map: RwLock<HashMap<String, Arc<SseSession>>>,
}

impl SseSessions {
    fn insert(&self, id: String, s: Arc<SseSession>) {
        self.map
            .write()
            .unwrap_or_else(PoisonError::into_inner)
            .insert(id, s);
    }

    fn get(&self, id: &str) -> Option<Arc<SseSession>> {
        self.map
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .get(id)
            .cloned()
    }

    fn remove(&self, id: &str) {
        let s = self
            .map
            .write()
            .unwrap_or_else(PoisonError::into_inner)
            .remove(id);
        if let Some(s) = s {
            s.conn.scope.shutdown.cancel();
        }
    }

    /// Drops every session (their streams end); returns how many there were.
    pub fn clear(&self) -> usize {
        let all: Vec<_> = self
            .map
            .write()
            .unwrap_or_else(PoisonError::into_inner)
            .drain()
            .collect();
        for (_, s) in &all {
            s.conn.scope.shutdown.cancel();
        }
        all.len()
    }
}

/// Removes the session when its stream goes away.
struct Unregister {
    app: Arc<App>,
    id: String,
}

impl Drop for Unregister {
    fn drop(&mut self) {
        self.app.sse_sessions.remove(&self.id);
    }
}

/// GET `/sse`.
pub async fn get(
    State(app): State<Arc<App>>,
    Extension(kill): Extension<ConnKill>,
    headers: HeaderMap,
) -> Response {
    if !app.cfg.era.legacy() {
        return StatusCode::NOT_FOUND.into_response();
    }
    if let Err(r) = crate::oauth::guard(&app, &headers) {
        return r;
    }
    app.stats.sse_connections.inc();
    app.stats.sessions_created.inc();
    app.stats.set_last_headers(Arc::new(headers));
    let id = new_id();
    let (conn, rx) = Conn::new(Arc::clone(&app), Transport::Sse, true);
    let shutdown = conn.scope.shutdown.clone();
    app.sse_sessions
        .insert(id.clone(), Arc::new(SseSession { conn }));
    tracing::debug!(session = %id, "legacy SSE session opened");
    let endpoint = Bytes::from(format!(
        "event: endpoint\ndata: /messages?sessionId={id}\n\n"
    ));
    let guard = Unregister { app, id };
    let body = out_stream(Some(endpoint), rx, kill, true);
    // End the stream when the session is dropped (forget-sessions); the guard lives as
    // long as the stream does.
    let stream = futures::StreamExt::take_until(body, async move {
        shutdown.cancelled().await;
        drop(guard);
    });
    sse_response(stream)
}

/// POST `/messages?sessionId=<id>`.
pub async fn post(
    State(app): State<Arc<App>>,
    Query(q): Query<HashMap<String, String>>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    if !app.cfg.era.legacy() {
        return StatusCode::NOT_FOUND.into_response();
    }
    if let Err(r) = crate::oauth::guard(&app, &headers) {
        return r;
    }
    let err = |status, m: &str| {
        json_response(
            status,
            &rpc::error_response(Value::Null, SERVER_ERROR, m, None),
        )
    };
    let Some(id) = q.get("sessionId") else {
        return err(
            StatusCode::BAD_REQUEST,
            "Bad Request: sessionId query parameter is required",
        );
    };
    let Some(session) = app.sse_sessions.get(id) else {
        return err(StatusCode::NOT_FOUND, "Session not found");
    };
    let headers = Arc::new(headers);
    app.stats.set_last_headers(Arc::clone(&headers));
    match session.conn.handle(&body, Some(headers)) {
        Ok(()) => (StatusCode::ACCEPTED, "Accepted").into_response(),
        Err(e) => json_response(StatusCode::BAD_REQUEST, &e),
    }
}
