//! What a stdio server writes: its stdout lines go to the session's dispatcher, its
//! stderr lines to our log, under a rate limit.
//!
//! Owns the two reader loops and the limits on what a child can make us hold or log:
//! - A stdout line is at most the message cap. A longer one is skipped and logged (its
//!   length and first bytes); when its first or last bytes name the id of one of our
//!   requests, that request fails at once with the reason instead of waiting for its
//!   timeout. A line that is not UTF-8 or not JSON-RPC is logged and skipped.
//! - A stderr line is logged as text (bytes that are not UTF-8 become U+FFFD) and cut at
//!   [`STDERR_LINE_BYTES`]; at most [`STDERR_LINES_PER_SECOND`] lines a second are
//!   logged per server (bursts of [`STDERR_BURST_LINES`]), and a note says how many were
//!   dropped.
//!
//! Invariant: both pipes are read to their end whatever arrives, so a child never
//! blocks on a full pipe or dies of SIGPIPE because of what we could not read. Neither
//! loop ever stops early except on cancellation or a read error.

use std::time::Duration;

use tokio::io::{AsyncRead, AsyncReadExt};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use super::lines::{Line, LineFramer};
use super::Inbound;
use crate::core::mcp::limits::{STDERR_BURST_LINES, STDERR_LINES_PER_SECOND, STDERR_LINE_BYTES};

/// Bytes read from a pipe at once.
const READ_BYTES: usize = 64 * 1024;
/// Bytes of a skipped stdout line shown in the log.
const PREVIEW_BYTES: usize = 120;
/// Bytes kept from the head of an overlong stdout line (to find its id).
const STDOUT_HEAD_BYTES: usize = 1024;

/// A token bucket over log lines: [`LogRateLimit::admit`] says whether a line may be
/// logged now, and how many were dropped since the last one that was.
#[derive(Debug)]
pub(crate) struct LogRateLimit {
    per_second: f64,
    burst: f64,
    tokens: f64,
    last: Instant,
    dropped: u64,
}

impl LogRateLimit {
    /// `per_second` lines a second on average, `burst` at once.
    pub(crate) fn new(per_second: u32, burst: u32, now: Instant) -> Self {
        LogRateLimit {
            per_second: f64::from(per_second),
            burst: f64::from(burst.max(1)),
            tokens: f64::from(burst.max(1)),
            last: now,
            dropped: 0,
        }
    }

    /// Whether a line may be logged at `now`: `Some(dropped)` with the number of lines
    /// dropped since the last admitted one, or `None` (the line is dropped and counted).
    pub(crate) fn admit(&mut self, now: Instant) -> Option<u64> {
        self.refill(now);
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            Some(std::mem::take(&mut self.dropped))
        } else {
            self.dropped += 1;
            None
        }
    }

    /// The lines dropped since the last admitted one, reset to zero when a note about
    /// them may be logged now (it costs a token).
    pub(crate) fn take_dropped(&mut self, now: Instant) -> u64 {
        self.refill(now);
        if self.dropped > 0 && self.tokens >= 1.0 {
            self.tokens -= 1.0;
            std::mem::take(&mut self.dropped)
        } else {
            0
        }
    }

    fn refill(&mut self, now: Instant) {
        let elapsed = now.saturating_duration_since(self.last).as_secs_f64();
        self.last = now;
        self.tokens = (self.tokens + elapsed * self.per_second).min(self.burst);
    }
}

/// Reads stdout to its end: every line within `max_line_bytes` is handed to `inbound`.
pub(crate) async fn read_stdout(
    server_name: String,
    mut stdout: impl AsyncRead + Unpin,
    inbound: std::sync::Arc<dyn Inbound>,
    max_line_bytes: usize,
    cancel: CancellationToken,
) {
    let mut framer = LineFramer::new(max_line_bytes, STDOUT_HEAD_BYTES);
    let mut warnings =
        LogRateLimit::new(STDERR_LINES_PER_SECOND, STDERR_BURST_LINES, Instant::now());
    let mut buffer = vec![0u8; READ_BYTES];
    loop {
        let read = tokio::select! {
            () = cancel.cancelled() => return,
            read = stdout.read(&mut buffer) => read,
        };
        let handle = |line: Line<'_>| {
            stdout_line(&server_name, &*inbound, &mut warnings, max_line_bytes, line)
        };
        match read {
            Ok(0) => {
                framer.finish(handle);
                return;
            }
            Ok(n) => framer.feed(buffer.get(..n).unwrap_or_default(), handle),
            Err(error) => {
                tracing::warn!(server = %server_name, %error, "reading the stdio server's stdout failed");
                return;
            }
        }
        // A child that writes without pause must not keep this worker thread.
        tokio::task::consume_budget().await;
    }
}

fn stdout_line(
    server_name: &str,
    inbound: &dyn Inbound,
    warnings: &mut LogRateLimit,
    max_line_bytes: usize,
    line: Line<'_>,
) {
    match line {
        Line::Complete(text) => {
            let text = text.trim_ascii();
            if text.is_empty() {
                return;
            }
            if let Err(error) = super::try_deliver_text(inbound, text, None) {
                if let Some(dropped) = warnings.admit(Instant::now()) {
                    tracing::warn!(server = %server_name, %error, preview = %preview(text), dropped, "skipped a stdout line that is not JSON-RPC");
                }
            }
        }
        Line::Overlong { head, tail, len } => {
            let reason = format!(
                "the server's response is larger than the cap of {max_line_bytes} bytes ({len} bytes)"
            );
            if let Some(id) = response_id(head, tail) {
                inbound.reject(id, &reason);
            }
            if let Some(dropped) = warnings.admit(Instant::now()) {
                tracing::warn!(server = %server_name, len, max = max_line_bytes, preview = %preview(head), dropped, "skipped a stdout line longer than the cap");
            }
        }
    }
}

/// Reads stderr to its end (or until `stop`), logging each line (cut, rate-limited)
/// with the server's name.
pub(crate) async fn read_stderr(
    server_name: String,
    mut stderr: impl AsyncRead + Unpin,
    stop: CancellationToken,
) {
    let mut framer = LineFramer::new(STDERR_LINE_BYTES, STDERR_LINE_BYTES);
    let mut limit = LogRateLimit::new(STDERR_LINES_PER_SECOND, STDERR_BURST_LINES, Instant::now());
    let mut buffer = vec![0u8; READ_BYTES];
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        let read = tokio::select! {
            read = stderr.read(&mut buffer) => read,
            // Stopping reads as the end of the stream.
            () = stop.cancelled() => Ok(0),
            _ = tick.tick() => {
                note_dropped(&server_name, limit.take_dropped(Instant::now()));
                continue;
            }
        };
        let handle = |line: Line<'_>| stderr_line(&server_name, &mut limit, line);
        match read {
            Ok(0) | Err(_) => {
                framer.finish(handle);
                let dropped = std::mem::take(&mut limit.dropped);
                note_dropped(&server_name, dropped);
                return;
            }
            Ok(n) => framer.feed(buffer.get(..n).unwrap_or_default(), handle),
        }
        tokio::task::consume_budget().await;
    }
}

fn stderr_line(server_name: &str, limit: &mut LogRateLimit, line: Line<'_>) {
    let Some(dropped) = limit.admit(Instant::now()) else {
        return;
    };
    note_dropped(server_name, dropped);
    match line {
        Line::Complete(text) => {
            let text = String::from_utf8_lossy(text);
            tracing::info!(server = %server_name, stream = "stderr", "{}", text.trim_end());
        }
        Line::Overlong { head, len, .. } => {
            let text = String::from_utf8_lossy(head);
            tracing::info!(server = %server_name, stream = "stderr", "{}… (cut: the line has {len} bytes)", text.trim_end());
        }
    }
}

fn note_dropped(server_name: &str, dropped: u64) {
    if dropped > 0 {
        tracing::warn!(server = %server_name, stream = "stderr", dropped, "{dropped} stderr lines dropped (more than {STDERR_LINES_PER_SECOND} lines/s)");
    }
}

/// The start of a line for a log, as text.
fn preview(bytes: &[u8]) -> String {
    let cut = bytes.get(..PREVIEW_BYTES).unwrap_or(bytes);
    String::from_utf8_lossy(cut).into_owned()
}

/// The id of a JSON-RPC response whose line was too long to read, when its first bytes
/// name it right before the result (`{"jsonrpc":"2.0","id":7,"result":…`, as the Python
/// SDK writes) or it starts with the result and its last bytes end with the id
/// (`{"result":…,"jsonrpc":"2.0","id":7}`, as the TypeScript SDK writes). Only numeric
/// ids (the gateway's own are numbers), and never from a request or notification.
pub(crate) fn response_id(head: &[u8], tail: &[u8]) -> Option<u64> {
    let head = head
        .trim_ascii_start()
        .strip_prefix(b"{")?
        .trim_ascii_start();
    if head.starts_with(b"\"result\"") || head.starts_with(b"\"error\"") {
        return tail_id(tail);
    }
    head_id(head)
}

/// `…"id":7,"result"` or `…"id":7,"error"`, with only `"jsonrpc":"2.0"` before it.
fn head_id(head: &[u8]) -> Option<u64> {
    let at = find(head, b"\"id\"")?;
    let before = head.get(..at)?;
    if !before.iter().all(|b| b" \t\r\n\"jsonrpc:2.0,".contains(b)) {
        return None;
    }
    let after = head.get(at + 4..)?.trim_ascii_start();
    let after = after.strip_prefix(b":")?.trim_ascii_start();
    let digits = after.iter().take_while(|b| b.is_ascii_digit()).count();
    let (number, rest) = after.split_at(digits);
    let rest = rest
        .trim_ascii_start()
        .strip_prefix(b",")?
        .trim_ascii_start();
    if !(rest.starts_with(b"\"result\"") || rest.starts_with(b"\"error\"")) {
        return None;
    }
    std::str::from_utf8(number).ok()?.parse().ok()
}

/// `…"id":7}` at the very end.
fn tail_id(tail: &[u8]) -> Option<u64> {
    let tail = tail.trim_ascii_end().strip_suffix(b"}")?.trim_ascii_end();
    let digits = tail.iter().rev().take_while(|b| b.is_ascii_digit()).count();
    let (rest, number) = tail.split_at(tail.len() - digits);
    let rest = rest.trim_ascii_end().strip_suffix(b":")?.trim_ascii_end();
    if !rest.ends_with(b"\"id\"") {
        return None;
    }
    std::str::from_utf8(number).ok()?.parse().ok()
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_rate_limit_admits_a_burst_then_the_rate_and_counts_the_rest() {
        let start = Instant::now();
        let mut limit = LogRateLimit::new(20, 100, start);
        let admitted = (0..1000).filter(|_| limit.admit(start).is_some()).count();
        assert_eq!(admitted, 100);
        // A second later: 20 more, and the first of them reports the 900 dropped.
        let later = start + Duration::from_secs(1);
        assert_eq!(limit.admit(later), Some(900));
        let more = (0..100).filter(|_| limit.admit(later).is_some()).count();
        assert_eq!(more, 19);
        assert_eq!(limit.take_dropped(later), 0, "no token left for the note");
        assert_eq!(limit.take_dropped(later + Duration::from_secs(1)), 81);
    }

    #[test]
    fn finds_the_id_at_either_end_of_a_response() {
        assert_eq!(
            response_id(br#"{"jsonrpc":"2.0","id":7,"result":{"x":"#, b""),
            Some(7)
        );
        assert_eq!(response_id(br#"{ "id" : 12 , "error""#, b""), Some(12));
        assert_eq!(
            response_id(b"{\"result\":{\"x\":", br#"aaa","jsonrpc":"2.0","id":9}"#),
            Some(9)
        );
        assert_eq!(
            response_id(b" {\"result\":{\"x\":", b"aaa\", \"id\" : 9 }\n"),
            Some(9)
        );
        // Not a response's id: inside the result, or of a request or a notification.
        assert_eq!(response_id(br#"{"result":{"id":3,"#, br#""id":3}]"#), None);
        assert_eq!(
            response_id(
                br#"{"jsonrpc":"2.0","id":5,"method":"sampling/createMessage""#,
                b""
            ),
            None
        );
        assert_eq!(
            response_id(
                br#"{"method":"x","params":{"id":5,"result":1"#,
                br#""id":5}"#
            ),
            None
        );
        assert_eq!(
            response_id(br#"{"method":"x","#, br#""jsonrpc":"2.0","id":5}"#),
            None
        );
        assert_eq!(response_id(b"garbage", b"garbage"), None);
        assert_eq!(response_id(br#"{"id":"a","result""#, b""), None);
    }
}
