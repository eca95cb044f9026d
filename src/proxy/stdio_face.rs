//! The stdio face: `litellm-mcp stdio` serves the gateway as a local MCP server on
//! stdin/stdout, newline-delimited JSON-RPC, so a desktop client can launch it.
//!
//! Owns only the framing (lines of at most 16 MiB; a longer one is answered with
//! `-32600` and skipped; one that is not UTF-8 is answered with `-32700`) and the identity of the process; the session itself, the one
//! implicit session of the process, is the [`duplex`](super::duplex) engine's. Stdout
//! carries protocol only; logs go to stderr. When stdin ends, the requests in flight
//! still finish and are answered, then the state is shut down.
//!
//! Identity: the key in the environment variable `LITELLM_MCP_API_KEY` when set (it
//! must be a configured key), else anonymous, which the permission manager decides with
//! its default level.

use futures::{Stream, StreamExt};
use serde_json::Value;
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt};
use tokio::sync::mpsc;
use tokio_util::codec::{AnyDelimiterCodec, AnyDelimiterCodecError, FramedRead};

use super::duplex::{self, IncomingLine};
use super::handler::{Identity, Scope};
use super::AppState;
use crate::core::mcp::protocol;

/// The longest line read from stdin.
const MAX_LINE_BYTES: usize = 16 * 1024 * 1024;
/// Messages waiting to be written to stdout.
const OUTGOING_CAPACITY: usize = 1024;

/// Serves MCP on `input`/`output` until `input` ends, then shuts the state down.
///
/// # Errors
/// When the API key in `LITELLM_MCP_API_KEY` is not a configured key, or stdout fails.
pub async fn serve<R, W>(state: AppState, input: R, output: W) -> std::io::Result<()>
where
    R: AsyncRead + Unpin,
    W: AsyncWrite + Unpin + Send + 'static,
{
    let identity = identity(&state).await?;
    let (out_tx, out_rx) = mpsc::channel::<Value>(OUTGOING_CAPACITY);
    let engine = duplex::run(
        state.clone(),
        identity,
        Scope::All,
        "stdio",
        lines(input),
        out_tx,
    );
    let ((), written) = tokio::join!(engine, write_lines(out_rx, output));
    state.shutdown(std::time::Duration::from_secs(5)).await;
    written
}

/// The caller: the key in `LITELLM_MCP_API_KEY` when set and credentials are required,
/// else anonymous (the process was started by its local user).
async fn identity(state: &AppState) -> std::io::Result<Identity> {
    let auth = state.auth();
    let credential = match std::env::var("LITELLM_MCP_API_KEY") {
        Ok(credential) if auth.requires_credentials() => credential,
        _ => return Ok(Identity::anonymous()),
    };
    auth.identify_credential(credential.trim(), "/stdio")
        .await
        .map_err(|failure| std::io::Error::other(auth.message(&failure)))
}

/// The messages on `input`, one a line; blank lines are skipped, an over-long one
/// becomes [`IncomingLine::TooLarge`], a read error ends them.
fn lines<R: AsyncRead + Unpin>(input: R) -> impl Stream<Item = IncomingLine> {
    let framed = FramedRead::new(
        input,
        AnyDelimiterCodec::new_with_max_length(b"\n".to_vec(), b"\n".to_vec(), MAX_LINE_BYTES),
    );
    futures::stream::unfold(
        (framed, false),
        |(mut framed, mut after_error)| async move {
            loop {
                match framed.next().await {
                    Some(Ok(line)) => {
                        let line = match String::from_utf8(line.to_vec()) {
                            Ok(text) if text.trim().is_empty() => continue,
                            Ok(text) => IncomingLine::Text(text),
                            Err(_) => IncomingLine::NotUtf8,
                        };
                        return Some((line, (framed, false)));
                    }
                    Some(Err(AnyDelimiterCodecError::MaxChunkLengthExceeded)) => {
                        return Some((IncomingLine::TooLarge, (framed, true)));
                    }
                    // After a decoder error the reader yields one `None` of its own,
                    // then goes on reading (the codec skips the rest of the long line).
                    None if after_error => after_error = false,
                    Some(Err(AnyDelimiterCodecError::Io(_))) | None => return None,
                }
            }
        },
    )
}

/// Writes each message as one line, until every sender is gone or `output` fails.
///
/// # Errors
/// The first write error.
async fn write_lines<W: AsyncWrite + Unpin>(
    mut out_rx: mpsc::Receiver<Value>,
    mut output: W,
) -> std::io::Result<()> {
    while let Some(message) = out_rx.recv().await {
        let mut line = protocol::encode(&message);
        line.push('\n');
        output.write_all(line.as_bytes()).await?;
        output.flush().await?;
    }
    Ok(())
}
