//! One benchmark session over stdio: a child process of its own, newline-delimited
//! JSON-RPC on its stdin and stdout.
//!
//! Owns the process: spawned with `kill_on_drop`, its stderr discarded (a server's logs
//! are not the benchmark's output), stopped at the end by closing its stdin, then killed
//! if it lingers. Lines are capped ([`MAX_LINE_BYTES`]).

use std::process::Stdio;
use std::time::Duration;

use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::process::{Child, ChildStdin, ChildStdout, Command};

use super::rpc::{self, ErrorKind, Failure, Reading};

/// The longest line read from the process.
const MAX_LINE_BYTES: usize = 64 << 20;
/// How long a process may take to exit after its stdin closes.
const EXIT_GRACE: Duration = Duration::from_secs(2);

/// A running server process.
#[derive(Debug)]
pub struct StdioSession {
    child: Child,
    stdin: ChildStdin,
    stdout: BufReader<ChildStdout>,
    line: Vec<u8>,
}

impl StdioSession {
    /// Starts `program args…`.
    ///
    /// # Errors
    /// [`ErrorKind::Connect`] when it cannot be started.
    pub fn spawn(program: &str, args: &[String]) -> Result<Self, Failure> {
        let mut child = Command::new(program)
            .args(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .map_err(|e| Failure::fatal(ErrorKind::Connect, format!("{program}: {e}")))?;
        let (Some(stdin), Some(stdout)) = (child.stdin.take(), child.stdout.take()) else {
            return Err(Failure::fatal(
                ErrorKind::Connect,
                "no pipes to the process",
            ));
        };
        Ok(StdioSession {
            child,
            stdin,
            stdout: BufReader::new(stdout),
            line: Vec::new(),
        })
    }

    /// Writes one message (a line).
    ///
    /// # Errors
    /// [`ErrorKind::Closed`] when the process no longer reads.
    pub async fn send(&mut self, mut body: String) -> Result<(), Failure> {
        body.push('\n');
        let written = async {
            self.stdin.write_all(body.as_bytes()).await?;
            self.stdin.flush().await
        };
        written
            .await
            .map_err(|e| Failure::fatal(ErrorKind::Closed, format!("writing to the process: {e}")))
    }

    /// Sends a request and reads lines until its response.
    ///
    /// # Errors
    /// Why it did not succeed.
    pub async fn exchange(&mut self, id: u64, body: String) -> Result<(), Failure> {
        self.send(body).await?;
        loop {
            self.read_line().await?;
            if self.line.iter().all(u8::is_ascii_whitespace) {
                continue;
            }
            if let Reading::Answer(outcome) = rpc::read(&self.line, id) {
                return outcome;
            }
        }
    }

    /// Reads the next line into `self.line`, without its end.
    async fn read_line(&mut self) -> Result<(), Failure> {
        self.line.clear();
        loop {
            let available = self
                .stdout
                .fill_buf()
                .await
                .map_err(|e| Failure::fatal(ErrorKind::Closed, format!("reading: {e}")))?;
            if available.is_empty() {
                return Err(Failure::fatal(
                    ErrorKind::Closed,
                    "the process closed stdout",
                ));
            }
            let (part, done) = match available.iter().position(|b| *b == b'\n') {
                Some(end) => (&available[..end], Some(end + 1)),
                None => (available, None),
            };
            if self.line.len() + part.len() > MAX_LINE_BYTES {
                return Err(Failure::fatal(
                    ErrorKind::Protocol,
                    "a line from the process passed 64 MiB",
                ));
            }
            self.line.extend_from_slice(part);
            let consumed = done.unwrap_or(part.len());
            self.stdout.consume(consumed);
            if done.is_some() {
                return Ok(());
            }
        }
    }

    /// Closes stdin, waits briefly for the process to exit, then kills it.
    pub async fn close(mut self) {
        drop(self.stdin);
        if tokio::time::timeout(EXIT_GRACE, self.child.wait())
            .await
            .is_err()
        {
            let _ = self.child.kill().await;
        }
    }
}
