//! WebSocket transport at `/ws`: one JSON-RPC message per text frame in each direction,
//! subprotocol `mcp` when the client offers it. A connection is a `Conn` (legacy session
//! via `initialize`, or modern per-request `_meta`). `crash` drops the socket without a
//! close frame.

use std::sync::Arc;
use std::time::Duration;

use axum::extract::ws::{Message, WebSocket, WebSocketUpgrade};
use axum::extract::State;
use axum::http::HeaderMap;
use axum::response::Response;
use futures::{SinkExt, StreamExt};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use crate::app::App;
use crate::conn::Conn;
use crate::dispatch::{Out, Transport};

/// GET `/ws`.
pub async fn get(
    State(app): State<Arc<App>>,
    headers: HeaderMap,
    ws: WebSocketUpgrade,
) -> Response {
    if let Err(r) = crate::oauth::guard(&app, &headers) {
        return r;
    }
    let headers = Arc::new(headers);
    app.stats.set_last_headers(Arc::clone(&headers));
    ws.protocols(["mcp"])
        .on_upgrade(move |socket| serve(app, socket, headers))
}

async fn serve(app: Arc<App>, socket: WebSocket, headers: Arc<HeaderMap>) {
    app.stats.ws_connections.inc();
    let (sink, mut stream) = socket.split();
    let (conn, rx) = Conn::new(app, Transport::Ws, false);
    // `kill`: drop the socket at once (crash); `done`: close it politely.
    let kill = CancellationToken::new();
    let done = CancellationToken::new();
    let writer = tokio::spawn(write(sink, rx, kill.clone(), done.clone()));
    loop {
        tokio::select! {
            () = kill.cancelled() => break,
            m = stream.next() => match m {
                Some(Ok(Message::Text(t))) => deliver(&conn, t.as_bytes(), &headers),
                Some(Ok(Message::Binary(b))) => deliver(&conn, &b, &headers),
                Some(Ok(Message::Ping(_) | Message::Pong(_))) => {}
                Some(Ok(Message::Close(_)) | Err(_)) | None => break,
            },
        }
    }
    conn.scope.shutdown.cancel();
    done.cancel();
    if tokio::time::timeout(Duration::from_secs(5), writer)
        .await
        .is_err()
    {
        tracing::debug!("websocket writer did not finish");
    }
}

fn deliver(conn: &Arc<Conn>, bytes: &[u8], headers: &Arc<HeaderMap>) {
    if let Err(e) = conn.handle(bytes, Some(Arc::clone(headers))) {
        let _ = conn.out.send(Out::Json(e));
    }
}

async fn write(
    mut sink: futures::stream::SplitSink<WebSocket, Message>,
    mut rx: mpsc::UnboundedReceiver<Out>,
    kill: CancellationToken,
    done: CancellationToken,
) {
    loop {
        let item = tokio::select! {
            biased;
            () = kill.cancelled() => return,
            m = rx.recv() => m,
            () = done.cancelled() => None,
        };
        let msg = match item {
            Some(Out::Json(v)) => {
                Message::Text(serde_json::to_string(&v).unwrap_or_default().into())
            }
            Some(Out::Raw(s)) => Message::Text(s.into()),
            Some(Out::Crash) => {
                // No close frame: dropping both halves closes the TCP connection.
                kill.cancel();
                return;
            }
            None => {
                let _ = sink.close().await;
                return;
            }
        };
        // Batch: flush only when nothing else is queued.
        let sent = if rx.is_empty() {
            sink.send(msg).await
        } else {
            sink.feed(msg).await
        };
        if sent.is_err() {
            kill.cancel();
            return;
        }
    }
}
