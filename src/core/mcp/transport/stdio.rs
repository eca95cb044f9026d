//! The stdio transport: a child process speaking newline-delimited JSON-RPC on its stdin
//! and stdout.
//!
//! Owns the process. The command line's form and the child's environment are documented
//! in [`crate::core::mcp::config`]. Stdout carries only protocol; stderr goes to our
//! log; both are read by [`super::child_output`], which logs and skips what it cannot
//! read (a line over the cap, not UTF-8, not JSON-RPC) and always drains the pipes. A
//! supervisor task owns the `Child`: when the process exits it reports the exit status
//! through [`Inbound::closed`] (failing in-flight calls at once) and reaps it; on close
//! — or when the connection is dropped, as when a handshake runs out of time — it runs
//! the shutdown sequence (close stdin, wait, SIGTERM, wait, SIGKILL, reap), so neither a
//! process nor a zombie is left. A write that a child never reads ends with the
//! connection too: the writer waits on the pipe and on cancellation at once. Restarting
//! after a crash (with backoff) is the session layer's job.
//!
//! [`Inbound::closed`]: super::Inbound::closed

use std::process::Stdio;
use std::time::Duration;

use tokio::io::AsyncWriteExt;
use tokio::process::{Child, ChildStdin, Command};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use super::child_output::{read_stderr, read_stdout};
use super::{transport_error, ConnectParams, Outgoing, SendError};
use crate::core::mcp::error::McpError;
use crate::core::mcp::limits::UPSTREAM_OUTBOX_MESSAGES;

/// Variables the child inherits from the gateway, where set.
const INHERITED_ENV: &[&str] = &[
    "HOME",
    "LOGNAME",
    "PATH",
    "SHELL",
    "TERM",
    "USER",
    "LANG",
    "LC_ALL",
    "TMPDIR",
    "SYSTEMROOT",
];
/// How long each step of the shutdown sequence waits for the process to exit.
const SHUTDOWN_STEP: Duration = Duration::from_secs(2);
/// How long stderr is still read after the child was reaped.
const STDERR_AFTER_EXIT: Duration = Duration::from_millis(500);

/// A parsed stdio command line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CommandLine {
    /// The program.
    pub program: String,
    /// Its arguments.
    pub args: Vec<String>,
    /// `NAME=value` assignments that preceded the program.
    pub env: Vec<(String, String)>,
}

impl CommandLine {
    /// Splits a command line as a POSIX shell would, taking leading `NAME=value` words
    /// as environment assignments.
    ///
    /// # Errors
    /// A description when quotes do not close or there is no program.
    pub fn parse(line: &str) -> Result<CommandLine, String> {
        let words = shell_words::split(line).map_err(|e| format!("invalid command line: {e}"))?;
        let mut env = Vec::new();
        let mut rest = words.into_iter().peekable();
        while let Some(word) = rest.peek() {
            match word.split_once('=') {
                Some((name, value)) if is_env_name(name) => {
                    env.push((name.to_string(), value.to_string()));
                    rest.next();
                }
                _ => break,
            }
        }
        let program = rest
            .next()
            .ok_or_else(|| "the command line names no program".to_string())?;
        Ok(CommandLine {
            program,
            args: rest.collect(),
            env,
        })
    }
}

fn is_env_name(name: &str) -> bool {
    let mut chars = name.chars();
    chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

/// A running stdio server.
pub(crate) struct StdioConnection {
    server_name: String,
    outbox: mpsc::Sender<Vec<u8>>,
    cancel: CancellationToken,
    supervisor: tokio::sync::Mutex<Option<tokio::task::JoinHandle<()>>>,
}

impl StdioConnection {
    /// Starts the process and its reader, writer, stderr and supervisor tasks.
    ///
    /// # Errors
    /// A transport error when the process cannot be started.
    pub(crate) fn spawn(params: ConnectParams<'_>) -> Result<Self, McpError> {
        let server_name = params.server_name.to_string();
        let command = CommandLine::parse(&params.config.url)
            .map_err(|m| McpError::config(format!("server '{server_name}': {m}")))?;
        let mut builder = Command::new(&command.program);
        builder
            .args(&command.args)
            .env_clear()
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true);
        for name in INHERITED_ENV {
            if let Some(value) = std::env::var_os(name) {
                builder.env(name, value);
            }
        }
        builder.envs(command.env.iter().map(|(k, v)| (k, v)));
        builder.envs(&params.config.static_headers);
        let mut child = builder.spawn().map_err(|e| {
            transport_error(
                &server_name,
                format!("cannot start '{}': {e}", command.program),
                false,
            )
        })?;
        let (Some(stdin), Some(stdout), Some(stderr)) =
            (child.stdin.take(), child.stdout.take(), child.stderr.take())
        else {
            return Err(transport_error(
                &server_name,
                "the child has no pipes",
                false,
            ));
        };
        tracing::info!(server = %server_name, program = %command.program, pid = ?child.id(), "started stdio server");
        let cancel = params.cancel.clone();
        let (outbox, lines) = mpsc::channel::<Vec<u8>>(UPSTREAM_OUTBOX_MESSAGES);
        let writer = params
            .tasks
            .spawn(write_lines(stdin, lines, cancel.clone()));

        let reader = params.tasks.spawn(read_stdout(
            server_name.clone(),
            stdout,
            params.inbound.clone(),
            params.limits.max_message_bytes,
            cancel.clone(),
        ));
        // Stderr is read until the child is reaped, not just until cancellation: the
        // child may still be writing while it shuts down, and must not block on a full
        // pipe. (A grandchild that keeps the pipe open does not keep the task.)
        let stderr_stop = CancellationToken::new();
        let stderr_reader = params.tasks.spawn(read_stderr(
            server_name.clone(),
            stderr,
            stderr_stop.clone(),
        ));

        let inbound = params.inbound.clone();
        let name = server_name.clone();
        let supervisor_cancel = cancel.clone();
        let supervisor = params.tasks.spawn(async move {
            tokio::select! {
                status = child.wait() => {
                    let reason = match status {
                        Ok(status) => format!("the stdio server process exited ({status})"),
                        Err(error) => format!("waiting for the stdio server process failed: {error}"),
                    };
                    tracing::warn!(server = %name, %reason, "stdio server stopped");
                    // Let the reader deliver what the process wrote before it died.
                    let _ = tokio::time::timeout(Duration::from_millis(200), reader).await;
                    supervisor_cancel.cancel();
                    inbound.closed(&reason);
                }
                () = supervisor_cancel.cancelled() => {
                    let _ = writer.await;
                    shut_down(&name, &mut child).await;
                    inbound.closed("the stdio server was stopped");
                }
            }
            // The child is reaped: let stderr deliver its last lines, then stop reading.
            if tokio::time::timeout(STDERR_AFTER_EXIT, stderr_reader).await.is_err() {
                stderr_stop.cancel();
            }
        });
        Ok(StdioConnection {
            server_name,
            outbox,
            cancel,
            supervisor: tokio::sync::Mutex::new(Some(supervisor)),
        })
    }

    /// Queues one line for the child's stdin.
    pub(crate) async fn send(&self, outgoing: Outgoing<'_>) -> Result<(), SendError> {
        if self.cancel.is_cancelled() {
            return Err(transport_error(
                &self.server_name,
                "the stdio server is not running",
                false,
            )
            .into());
        }
        let mut line = serde_json::to_vec(outgoing.message).map_err(|e| {
            transport_error(&self.server_name, format!("cannot encode: {e}"), false)
        })?;
        line.push(b'\n');
        self.outbox.send(line).await.map_err(|_| {
            transport_error(&self.server_name, "the stdio server is not running", false).into()
        })
    }

    /// Runs the shutdown sequence and waits for it.
    pub(crate) async fn close(&self) {
        self.cancel.cancel();
        let handle = self.supervisor.lock().await.take();
        if let Some(handle) = handle {
            let _ = handle.await;
        }
    }
}

impl Drop for StdioConnection {
    /// A connection dropped without [`StdioConnection::close`] (its handshake ran out of
    /// time, say) still stops its process: the supervisor runs the shutdown sequence.
    fn drop(&mut self) {
        self.cancel.cancel();
    }
}

async fn write_lines(
    mut stdin: ChildStdin,
    mut lines: mpsc::Receiver<Vec<u8>>,
    cancel: CancellationToken,
) {
    loop {
        let line = tokio::select! {
            () = cancel.cancelled() => break,
            line = lines.recv() => line,
        };
        let Some(line) = line else { break };
        // A child that never reads would block this write forever: cancellation ends it.
        let written = tokio::select! {
            () = cancel.cancelled() => break,
            written = async {
                stdin.write_all(&line).await?;
                stdin.flush().await
            } => written,
        };
        if written.is_err() {
            break;
        }
    }
    // Dropping stdin closes it: the first step of a graceful shutdown. (No `shutdown`
    // call: on a pipe it only flushes, and a deaf child would block that too.)
    drop(stdin);
}

/// Stdin is already closed; wait, then SIGTERM, wait, then SIGKILL, and reap.
async fn shut_down(server_name: &str, child: &mut Child) {
    if let Ok(Ok(status)) = tokio::time::timeout(SHUTDOWN_STEP, child.wait()).await {
        tracing::debug!(server = %server_name, %status, "stdio server exited after stdin closed");
        return;
    }
    if let Some(pid) = child.id().and_then(|id| i32::try_from(id).ok()) {
        let _ = nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(pid),
            nix::sys::signal::Signal::SIGTERM,
        );
        if let Ok(Ok(status)) = tokio::time::timeout(SHUTDOWN_STEP, child.wait()).await {
            tracing::debug!(server = %server_name, %status, "stdio server exited after SIGTERM");
            return;
        }
    }
    tracing::warn!(server = %server_name, "stdio server ignored SIGTERM; killing it");
    let _ = child.kill().await;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_assignments_quotes_and_arguments() {
        let c = CommandLine::parse(r#"TOKEN=abc LOG="a b" node "/opt/my server/index.js" --stdio"#)
            .unwrap();
        assert_eq!(c.program, "node");
        assert_eq!(c.args, vec!["/opt/my server/index.js", "--stdio"]);
        assert_eq!(
            c.env,
            vec![("TOKEN".into(), "abc".into()), ("LOG".into(), "a b".into())]
        );
        let c = CommandLine::parse("python3 -m server --opt=x").unwrap();
        assert_eq!(c.args, vec!["-m", "server", "--opt=x"]);
        assert!(c.env.is_empty());
        assert!(CommandLine::parse("A=1").is_err());
        assert!(CommandLine::parse("'unclosed").is_err());
        assert!(CommandLine::parse("").is_err());
    }
}
