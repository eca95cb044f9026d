//! Message-stream connections (stdio, WebSocket, legacy HTTP+SSE sessions): decides the era
//! of each incoming message (an `initialize` handshake scoped to the connection, or modern
//! per-request `_meta`), runs requests concurrently, and forwards tool-list changes to
//! initialized legacy peers. The transport only moves bytes in and `Out` items out.

use std::sync::Arc;

use axum::http::HeaderMap;
use serde_json::{json, Value};
use tokio::sync::{broadcast, mpsc};
use tokio_util::task::TaskTracker;

use crate::app::App;
use crate::dispatch::{self, Cx, Out, Transport};
use crate::protocol::{self, Era, MODERN_METHODS};
use crate::rpc::{self, Incoming, RpcError, INVALID_PARAMS, INVALID_REQUEST, METHOD_NOT_FOUND};
use crate::scope::Scope;

pub struct Conn {
    pub app: Arc<App>,
    pub scope: Arc<Scope>,
    pub out: mpsc::UnboundedSender<Out>,
    pub transport: Transport,
    pub tracker: TaskTracker,
}

impl Conn {
    /// A new connection and the receiver its transport writes from. `default_logs`: send
    /// `notifications/message` before tool results without a `logging/setLevel`.
    pub fn new(
        app: Arc<App>,
        transport: Transport,
        default_logs: bool,
    ) -> (Arc<Self>, mpsc::UnboundedReceiver<Out>) {
        let (out, rx) = mpsc::unbounded_channel();
        let scope = Scope::new(default_logs);
        tokio::spawn(forward_changes(
            app.changes.subscribe(),
            Arc::clone(&scope),
            out.clone(),
        ));
        let conn = Arc::new(Self {
            app,
            scope,
            out,
            transport,
            tracker: TaskTracker::new(),
        });
        (conn, rx)
    }

    fn send(&self, msg: Value) {
        let _ = self.out.send(Out::Json(msg));
    }

    /// Handles one raw message. A message that is not JSON-RPC yields the error response
    /// for the caller to deliver (stdio/WS write it out; `/messages` answers 400).
    pub fn handle(
        self: &Arc<Self>,
        bytes: &[u8],
        headers: Option<Arc<HeaderMap>>,
    ) -> Result<(), Value> {
        let req = match rpc::parse(bytes)? {
            Incoming::Request(r) => r,
            Incoming::Notification { method, params } => {
                dispatch::notification(&self.app, Some(&self.scope), &method, params.as_ref());
                return Ok(());
            }
            Incoming::Response => return Ok(()),
        };
        self.app.stats.method(&req.method);
        let mode = self.app.cfg.era;
        let max = self.app.cfg.max_version;
        let p = req.params.as_ref();

        if req.method == "initialize" {
            let reply = if mode.legacy() {
                match protocol::initialize(p, max) {
                    Ok((version, result)) => {
                        self.scope.set_legacy_version(version);
                        rpc::result_response(req.id, result)
                    }
                    Err(e) => e.into_response(req.id),
                }
            } else {
                protocol::reject_initialize(p).into_response(req.id)
            };
            self.send(reply);
            return Ok(());
        }

        let (era, modern_log) = if mode.modern() && protocol::has_modern_meta(p) {
            let checked = protocol::parse_modern_meta(p).and_then(|m| {
                protocol::check_modern_version(m.version, mode, max).map(|v| (v, m.log_level))
            });
            match checked {
                Ok((v, log)) => (Era::Modern(v), log),
                Err(e) => {
                    self.send(e.into_response(req.id));
                    return Ok(());
                }
            }
        } else if let Some(v) = self.scope.legacy_version() {
            (Era::Legacy(v), None)
        } else if req.method == "ping" && mode.legacy() {
            // Legacy pings are allowed before initialization.
            self.send(rpc::result_response(req.id, json!({})));
            return Ok(());
        } else {
            self.send(uninitialized(mode, &req.method).into_response(req.id));
            return Ok(());
        };

        let cx = Cx {
            app: Arc::clone(&self.app),
            era,
            transport: self.transport,
            headers,
            scope: Some(Arc::clone(&self.scope)),
            out: Some(self.out.clone()),
            modern_log,
        };
        self.tracker.spawn(async move {
            let outcome = dispatch::request(&cx, req.id, &req.method, req.params).await;
            if let Some(out) = &cx.out {
                outcome.emit(out);
            }
        });
        Ok(())
    }
}

/// The answer to a request that is neither modern nor part of an initialized session.
fn uninitialized(mode: protocol::EraMode, method: &str) -> RpcError {
    use protocol::EraMode;
    match mode {
        // A legacy server does not know `server/discover` (the era probe must fail here).
        EraMode::Legacy if method == "server/discover" => {
            RpcError::new(METHOD_NOT_FOUND, format!("Method not found: {method}"))
        }
        EraMode::Legacy => RpcError::new(
            INVALID_REQUEST,
            "Invalid Request: server not initialized (send initialize first)",
        ),
        _ if !MODERN_METHODS.contains(&method) => {
            RpcError::new(METHOD_NOT_FOUND, format!("Method not found: {method}"))
        }
        _ => RpcError::new(
            INVALID_PARAMS,
            format!(
                "Invalid params: missing _meta {} (or send initialize first for a legacy session)",
                protocol::META_PROTOCOL_VERSION
            ),
        ),
    }
}

/// Sends `notifications/tools/list_changed` to an initialized legacy peer on every change.
async fn forward_changes(
    mut rx: broadcast::Receiver<String>,
    scope: Arc<Scope>,
    out: mpsc::UnboundedSender<Out>,
) {
    loop {
        tokio::select! {
            r = rx.recv() => match r {
                Ok(_) | Err(broadcast::error::RecvError::Lagged(_)) => {
                    if scope.legacy_version().is_some() {
                        let msg = json!({"jsonrpc": "2.0", "method": "notifications/tools/list_changed"});
                        if out.send(Out::Json(msg)).is_err() {
                            return;
                        }
                    }
                }
                Err(broadcast::error::RecvError::Closed) => return,
            },
            () = scope.shutdown.cancelled() => return,
            () = out.closed() => return,
        }
    }
}
