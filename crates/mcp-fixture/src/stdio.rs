//! stdio transport: newline-delimited JSON-RPC on stdin/stdout (logs only on stderr).
//! Requests run concurrently; answers are written in completion order and flushed when
//! the queue is empty. Exits when stdin closes (after in-flight requests finish, hangs
//! and listen streams excepted); the `crash` tool exits with status 3.

use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader, BufWriter};
use tokio::sync::mpsc;

use crate::app::App;
use crate::conn::Conn;
use crate::dispatch::{Out, Transport};

/// Exit status of the `crash` tool.
pub const CRASH_STATUS: i32 = 3;

/// Serves stdin/stdout until stdin closes; returns the process exit status.
pub async fn run(app: Arc<App>) -> i32 {
    let (conn, rx) = Conn::new(app, Transport::Stdio, false);
    let writer = tokio::spawn(write(rx));
    let mut reader = BufReader::with_capacity(64 * 1024, tokio::io::stdin());
    let mut line = Vec::with_capacity(4096);
    loop {
        line.clear();
        match reader.read_until(b'\n', &mut line).await {
            Ok(0) => break,
            Ok(_) => {}
            Err(e) => {
                tracing::warn!(error = %e, "stdin read failed");
                break;
            }
        }
        let msg = line.trim_ascii();
        if msg.is_empty() {
            continue;
        }
        if let Err(e) = conn.handle(msg, None) {
            let _ = conn.out.send(Out::Json(e));
        }
    }
    tracing::debug!("stdin closed; finishing in-flight requests");
    conn.scope.shutdown.cancel();
    conn.tracker.close();
    if tokio::time::timeout(Duration::from_secs(30), conn.tracker.wait())
        .await
        .is_err()
    {
        tracing::warn!("in-flight requests still running 30s after stdin closed; exiting");
    }
    drop(conn);
    match tokio::time::timeout(Duration::from_secs(5), writer).await {
        Ok(Ok(code)) => code,
        _ => 0,
    }
}

async fn write(mut rx: mpsc::UnboundedReceiver<Out>) -> i32 {
    let mut out = BufWriter::with_capacity(64 * 1024, tokio::io::stdout());
    let mut buf = Vec::with_capacity(4096);
    while let Some(item) = rx.recv().await {
        buf.clear();
        match item {
            Out::Json(v) => {
                if serde_json::to_writer(&mut buf, &v).is_err() {
                    continue;
                }
            }
            Out::Raw(s) => buf.extend_from_slice(s.as_bytes()),
            Out::Crash => {
                let _ = out.flush().await;
                tracing::warn!("crash tool: exiting with status {CRASH_STATUS}");
                std::process::exit(CRASH_STATUS);
            }
        }
        buf.push(b'\n');
        if out.write_all(&buf).await.is_err() {
            return 1;
        }
        if rx.is_empty() && out.flush().await.is_err() {
            return 1;
        }
    }
    let _ = out.flush().await;
    0
}
