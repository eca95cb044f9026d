//! The stdio face: `litellm-mcp stdio` serves the gateway as a local MCP server on
//! stdin/stdout, newline-delimited JSON-RPC, so a desktop client can launch it.
//!
//! Owns the framing and the one implicit session of the process: `initialize`, requests
//! run concurrently (each may be cancelled by `notifications/cancelled`), progress
//! written to stdout under the client's token, upstream `list_changed` forwarded after
//! `notifications/initialized`. Stdout carries protocol only; logs go to stderr.
//!
//! Identity: the key in the environment variable `LITELLM_MCP_API_KEY` when set (it
//! must be a configured key), else anonymous, which the permission manager decides with
//! its default level.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use futures::StreamExt;
use serde_json::{json, Value};
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt};
use tokio::sync::mpsc;
use tokio_util::codec::{FramedRead, LinesCodec, LinesCodecError};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use super::handler::{Identity, RequestContext, Scope};
use super::{jsonrpc_error, AppState};
use crate::core::mcp::protocol::{self, Incoming};

/// Serves MCP on `input`/`output` until `input` ends, then shuts the state down.
///
/// # Errors
/// When the API key in `LITELLM_MCP_API_KEY` is not a configured key, or stdout fails.
pub async fn serve<R, W>(state: AppState, input: R, output: W) -> std::io::Result<()>
where
    R: AsyncRead + Unpin,
    W: AsyncWrite + Unpin + Send + 'static,
{
    let identity = match std::env::var("LITELLM_MCP_API_KEY") {
        Ok(key) if state.keys().requires_key() => {
            let mut headers = axum::http::HeaderMap::new();
            let value = axum::http::HeaderValue::from_str(&key)
                .map_err(|_| std::io::Error::other("LITELLM_MCP_API_KEY is not a valid key"))?;
            headers.insert("x-api-key", value);
            state
                .keys()
                .identify(&headers)
                .map_err(|e| std::io::Error::other(e.message()))?
        }
        _ => Identity::anonymous(),
    };
    let (out_tx, mut out_rx) = mpsc::channel::<Value>(1024);
    let writer = tokio::spawn(async move {
        let mut output = output;
        while let Some(message) = out_rx.recv().await {
            let mut line = message.to_string();
            line.push('\n');
            if output.write_all(line.as_bytes()).await.is_err() || output.flush().await.is_err() {
                return;
            }
        }
    });
    let in_flight: Arc<Mutex<HashMap<String, CancellationToken>>> = Arc::default();
    let tasks = TaskTracker::new();
    let mut lines = FramedRead::new(input, LinesCodec::new_with_max_length(16 * 1024 * 1024));
    let mut announcing = false;
    while let Some(line) = lines.next().await {
        let line = match line {
            Ok(line) if line.trim().is_empty() => continue,
            Ok(line) => line,
            Err(LinesCodecError::MaxLineLengthExceeded) => {
                let _ = out_tx
                    .send(jsonrpc_error(
                        Value::Null,
                        protocol::INVALID_REQUEST,
                        "message too large",
                    ))
                    .await;
                continue;
            }
            Err(LinesCodecError::Io(_)) => break,
        };
        let message = match serde_json::from_str::<Value>(&line)
            .map_err(|e| (protocol::PARSE_ERROR, format!("Parse error: {e}")))
            .and_then(|v| {
                Incoming::from_value(v)
                    .map_err(|e| (protocol::INVALID_REQUEST, format!("Invalid Request: {e}")))
            }) {
            Ok(message) => message,
            Err((code, text)) => {
                let _ = out_tx.send(jsonrpc_error(Value::Null, code, &text)).await;
                continue;
            }
        };
        match message {
            Incoming::Response { .. } => {}
            Incoming::Notification { method, params } => match method.as_str() {
                protocol::NOTIFICATION_CANCELLED => {
                    let id = params
                        .get("requestId")
                        .map(Value::to_string)
                        .unwrap_or_default();
                    if let Some(token) = in_flight.lock().ok().and_then(|mut m| m.remove(&id)) {
                        token.cancel();
                    }
                }
                protocol::NOTIFICATION_INITIALIZED if !announcing => {
                    announcing = true;
                    tasks.spawn(forward_announcements(state.clone(), out_tx.clone()));
                }
                _ => {}
            },
            Incoming::Request { id, method, params } => {
                if method == protocol::METHOD_INITIALIZE {
                    let requested = params
                        .get("protocolVersion")
                        .and_then(Value::as_str)
                        .unwrap_or_default();
                    let result = state.handler().initialize_result(requested);
                    let _ = out_tx.send(protocol::response(id, result)).await;
                    continue;
                }
                let token = CancellationToken::new();
                if let Ok(mut map) = in_flight.lock() {
                    map.insert(id.to_string(), token.clone());
                }
                let state = state.clone();
                let identity = identity.clone();
                let out = out_tx.clone();
                let in_flight = in_flight.clone();
                tasks.spawn(async move {
                    let reply = run(&state, &identity, &id, &method, params, &out, &token).await;
                    if let Ok(mut map) = in_flight.lock() {
                        map.remove(&id.to_string());
                    }
                    if let Some(reply) = reply {
                        let _ = out.send(reply).await;
                    }
                });
            }
        }
    }
    tasks.close();
    tasks.wait().await;
    drop(out_tx);
    let _ = writer.await;
    state.shutdown(std::time::Duration::from_secs(5)).await;
    Ok(())
}

/// Runs one request; `None` when it was cancelled (no response is sent then).
async fn run(
    state: &AppState,
    identity: &Identity,
    id: &Value,
    method: &str,
    params: Value,
    out: &mpsc::Sender<Value>,
    cancel: &CancellationToken,
) -> Option<Value> {
    let token = params.pointer("/_meta/progressToken").cloned();
    let (progress, mut updates) = match token {
        Some(_) => {
            let (tx, rx) = mpsc::unbounded_channel::<Value>();
            (Some(tx), Some(rx))
        }
        None => (None, None),
    };
    let ctx = RequestContext {
        identity,
        scope: &Scope::All,
        progress,
    };
    let call = state.handler().handle(ctx, method, params);
    tokio::pin!(call);
    let outcome = loop {
        tokio::select! {
            () = cancel.cancelled() => return None,
            Some(mut update) = async { match updates.as_mut() { Some(rx) => rx.recv().await, None => None } } => {
                update["progressToken"] = token.clone().unwrap_or(Value::Null);
                let _ = out.send(protocol::notification(protocol::NOTIFICATION_PROGRESS, Some(update))).await;
            }
            outcome = &mut call => break outcome,
        }
    };
    if let Some(rx) = updates.as_mut() {
        while let Ok(mut update) = rx.try_recv() {
            update["progressToken"] = token.clone().unwrap_or(Value::Null);
            let _ = out
                .send(protocol::notification(
                    protocol::NOTIFICATION_PROGRESS,
                    Some(update),
                ))
                .await;
        }
    }
    state.metrics().record_request(
        "stdio",
        method,
        if outcome.is_ok() { "ok" } else { "error" },
    );
    Some(match outcome {
        Ok(result) => protocol::response(id.clone(), result),
        Err(error) => json!({"jsonrpc": "2.0", "id": id, "error": error.to_value()}),
    })
}

async fn forward_announcements(state: AppState, out: mpsc::Sender<Value>) {
    let mut announcements = state.announcements();
    let shutdown = state.shutdown_token();
    loop {
        let next = tokio::select! {
            () = shutdown.cancelled() => return,
            next = announcements.recv() => next,
        };
        match next {
            Ok(a) => {
                if out
                    .send(protocol::notification(&a.method, None))
                    .await
                    .is_err()
                {
                    return;
                }
            }
            Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => {}
            Err(tokio::sync::broadcast::error::RecvError::Closed) => return,
        }
    }
}
