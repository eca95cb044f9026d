//! A Server-Sent Events parser with a line cap and an event cap, for the streamable HTTP
//! and legacy SSE transports.
//!
//! Owns the `text/event-stream` framing only (fields `event`, `data`, `id`, `retry`,
//! comments, CR/LF/CRLF line ends, a leading byte-order mark). It does not interpret the
//! events.
//!
//! Invariants, whatever a hostile peer sends:
//! - **Linear time.** Every byte is looked at once: a chunk is scanned from where the
//!   previous one ended, never from the start of the buffered line, so a line that never
//!   ends costs as much CPU as its bytes, not their square.
//! - **Bounded memory.** The unfinished line is at most [`SseLimits::max_line_bytes`]
//!   and an event's data at most [`SseLimits::max_event_bytes`]; past either cap
//!   [`SseParser::feed`] returns an [`SseError`] and the stream must be dropped. The
//!   error is sticky: every later feed returns it again.
//! - **Chunking does not matter.** Feeding a stream in any split gives the same events
//!   and the same error, at the same point, as feeding it whole (a property test checks
//!   this).

use crate::core::mcp::limits::SSE_LINE_ALLOWANCE;

/// The capacity of the line buffer kept between lines: a long line's memory is given
/// back after it.
const KEPT_CAPACITY: usize = 64 * 1024;

/// The caps of one stream.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct SseLimits {
    /// The longest line, its line end excluded.
    pub(crate) max_line_bytes: usize,
    /// The most data one event may carry (its `data:` lines joined by `\n`).
    pub(crate) max_event_bytes: usize,
}

impl SseLimits {
    /// The caps for a stream whose events each carry one message of at most
    /// `max_message_bytes`: the event cap is the message cap, and a line may have
    /// [`SSE_LINE_ALLOWANCE`] bytes more (its field name).
    pub(crate) fn for_messages(max_message_bytes: usize) -> Self {
        SseLimits {
            max_line_bytes: max_message_bytes.saturating_add(SSE_LINE_ALLOWANCE),
            max_event_bytes: max_message_bytes,
        }
    }
}

/// Why a stream was given up.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub(crate) enum SseError {
    /// A line grew past the line cap without ending.
    #[error("the server sent an SSE line longer than {max} bytes")]
    LineTooLong {
        /// The cap.
        max: usize,
    },
    /// An event's data grew past the event cap.
    #[error("the server sent an SSE event larger than {max} bytes")]
    EventTooLarge {
        /// The cap.
        max: usize,
    },
}

/// One event of a stream.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub(crate) struct SseEvent {
    /// `event:`; empty means `message`.
    pub(crate) event: String,
    /// The `data:` lines joined by `\n`.
    pub(crate) data: String,
    /// `id:`, when set.
    pub(crate) id: Option<String>,
}

/// Incremental parser: feed bytes, take complete events.
#[derive(Debug)]
pub(crate) struct SseParser {
    /// The start of the line that the last chunk left unfinished.
    partial: Vec<u8>,
    /// The last chunk ended with CR: a LF that starts the next chunk ends no line.
    after_cr: bool,
    /// No line has ended yet (a byte-order mark may start the first).
    at_start: bool,
    current: SseEvent,
    has_data: bool,
    limits: SseLimits,
    failed: Option<SseError>,
    /// The last `id:` seen (the SSE "last event ID", kept across events).
    pub(crate) last_event_id: Option<String>,
    /// The last `retry:` seen, in milliseconds.
    pub(crate) retry_ms: Option<u64>,
}

impl SseParser {
    /// A parser with the given caps.
    pub(crate) fn new(limits: SseLimits) -> Self {
        SseParser {
            partial: Vec::new(),
            after_cr: false,
            at_start: true,
            current: SseEvent::default(),
            has_data: false,
            limits,
            failed: None,
            last_event_id: None,
            retry_ms: None,
        }
    }

    /// Bytes held for the unfinished line (for tests of the cap).
    #[cfg(test)]
    pub(crate) fn buffered(&self) -> usize {
        self.partial.len() + self.current.data.len()
    }

    /// Feeds a chunk; appends the events it completed to `events`, in order.
    ///
    /// # Errors
    /// When a line or an event grows past its cap, or did so in an earlier feed; the
    /// events that completed before that point are in `events`.
    pub(crate) fn feed(
        &mut self,
        chunk: &[u8],
        events: &mut Vec<SseEvent>,
    ) -> Result<(), SseError> {
        if let Some(error) = &self.failed {
            return Err(error.clone());
        }
        let outcome = self.feed_inner(chunk, events);
        if let Err(error) = &outcome {
            self.failed = Some(error.clone());
            self.partial = Vec::new();
            self.current = SseEvent::default();
        }
        outcome
    }

    fn feed_inner(&mut self, chunk: &[u8], events: &mut Vec<SseEvent>) -> Result<(), SseError> {
        let mut rest = chunk;
        if self.after_cr {
            match rest.split_first() {
                Some((b'\n', tail)) => {
                    rest = tail;
                    self.after_cr = false;
                }
                Some(_) => self.after_cr = false,
                // An empty chunk decides nothing.
                None => return Ok(()),
            }
        }
        loop {
            let Some(end) = rest.iter().position(|&b| b == b'\n' || b == b'\r') else {
                // No line end in what is left: keep it for the next chunk, within the cap.
                if self.partial.len() + rest.len() > self.limits.max_line_bytes {
                    return Err(SseError::LineTooLong {
                        max: self.limits.max_line_bytes,
                    });
                }
                self.partial.extend_from_slice(rest);
                return Ok(());
            };
            let (line, tail) = rest.split_at(end);
            if self.partial.len() + line.len() > self.limits.max_line_bytes {
                return Err(SseError::LineTooLong {
                    max: self.limits.max_line_bytes,
                });
            }
            let event = if self.partial.is_empty() {
                self.line(line)?
            } else {
                let mut whole = std::mem::take(&mut self.partial);
                whole.extend_from_slice(line);
                let event = self.line(&whole);
                // Keep the allocation for the next unfinished line, unless it is large.
                whole.clear();
                whole.shrink_to(KEPT_CAPACITY);
                self.partial = whole;
                event?
            };
            events.extend(event);
            // `tail` starts with the line end; CRLF is one line end.
            rest = match tail.split_first() {
                Some((b'\r', after)) => match after.split_first() {
                    Some((b'\n', after_lf)) => after_lf,
                    Some(_) => after,
                    None => {
                        self.after_cr = true;
                        after
                    }
                },
                Some((_, after)) => after,
                None => tail,
            };
        }
    }

    /// Handles one complete line; returns the event an empty line completed.
    fn line(&mut self, line: &[u8]) -> Result<Option<SseEvent>, SseError> {
        let line = if std::mem::take(&mut self.at_start) {
            line.strip_prefix("\u{feff}".as_bytes()).unwrap_or(line)
        } else {
            line
        };
        if line.is_empty() {
            if !self.has_data && self.current.event.is_empty() {
                self.current = SseEvent::default();
                return Ok(None);
            }
            self.has_data = false;
            return Ok(Some(std::mem::take(&mut self.current)));
        }
        if line.first() == Some(&b':') {
            return Ok(None);
        }
        let (field, value) = match line.iter().position(|&b| b == b':') {
            Some(colon) => {
                let (field, value) = line.split_at(colon);
                let value = value.get(1..).unwrap_or_default();
                (field, value.strip_prefix(b" ").unwrap_or(value))
            }
            None => (line, &[][..]),
        };
        match field {
            b"event" => self.current.event = String::from_utf8_lossy(value).into_owned(),
            b"data" => {
                // Measured as text: a byte that is not UTF-8 becomes U+FFFD, 3 bytes.
                let value = String::from_utf8_lossy(value);
                let separator = usize::from(self.has_data);
                if self.current.data.len() + separator + value.len() > self.limits.max_event_bytes {
                    return Err(SseError::EventTooLarge {
                        max: self.limits.max_event_bytes,
                    });
                }
                if self.has_data {
                    self.current.data.push('\n');
                }
                self.current.data.push_str(&value);
                self.has_data = true;
            }
            // An id with NUL is ignored, as the spec says.
            b"id" if !value.contains(&0) => {
                let id = String::from_utf8_lossy(value).into_owned();
                self.current.id = Some(id.clone());
                self.last_event_id = Some(id);
            }
            b"retry" => {
                if let Some(ms) = std::str::from_utf8(value)
                    .ok()
                    .filter(|v| !v.is_empty() && v.bytes().all(|b| b.is_ascii_digit()))
                    .and_then(|v| v.parse().ok())
                {
                    self.retry_ms = Some(ms);
                }
            }
            _ => {}
        }
        Ok(None)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn feed_all(p: &mut SseParser, chunks: &[&[u8]]) -> (Vec<SseEvent>, Option<SseError>) {
        let mut events = Vec::new();
        for chunk in chunks {
            if let Err(e) = p.feed(chunk, &mut events) {
                return (events, Some(e));
            }
        }
        (events, None)
    }

    #[test]
    fn parses_events_across_chunks_and_line_endings() {
        let mut p = SseParser::new(SseLimits::for_messages(1024));
        let (events, error) = feed_all(
            &mut p,
            &[
                b"\xef\xbb\xbfevent: endpoint\r\ndata: /messages?s=1\r",
                b"\n\r\n: comment\ndata: {\"a\":\ndata: 1}\nid: 7\n",
                b"\n",
            ],
        );
        assert_eq!(error, None);
        assert_eq!(events.len(), 2);
        assert_eq!(events[0].event, "endpoint");
        assert_eq!(events[0].data, "/messages?s=1");
        assert_eq!(events[1].event, "");
        assert_eq!(events[1].data, "{\"a\":\n1}");
        assert_eq!(events[1].id.as_deref(), Some("7"));
        // A priming event: an id and a retry, no data.
        let mut p = SseParser::new(SseLimits::for_messages(1024));
        let (events, _) = feed_all(&mut p, &[b"id: s1::0\nretry: 500\n\n"]);
        assert!(events.is_empty());
        assert_eq!(p.last_event_id.as_deref(), Some("s1::0"));
        assert_eq!(p.retry_ms, Some(500));
    }

    #[test]
    fn a_lone_cr_ends_a_line_and_a_split_crlf_ends_only_one() {
        let mut p = SseParser::new(SseLimits::for_messages(1024));
        let (events, _) = feed_all(&mut p, &[b"data: a\r", b"\r", b"data: b\r", b"\n", b"\r\n"]);
        let data: Vec<&str> = events.iter().map(|e| e.data.as_str()).collect();
        assert_eq!(data, ["a", "b"]);
    }

    #[test]
    fn caps_lines_and_events_and_stays_failed() {
        let limits = SseLimits {
            max_line_bytes: 16,
            max_event_bytes: 16,
        };
        let mut p = SseParser::new(limits);
        let (_, error) = feed_all(&mut p, &[&[b'x'; 10], &[b'x'; 10]]);
        assert_eq!(error, Some(SseError::LineTooLong { max: 16 }));
        assert!(p.feed(b"\n\n", &mut Vec::new()).is_err(), "sticky");
        assert_eq!(p.buffered(), 0, "the buffer is released");
        let mut p = SseParser::new(limits);
        let (events, error) = feed_all(
            &mut p,
            &[b"data: 1\n\ndata: 0123456789\ndata: 0123456789\n"],
        );
        assert_eq!(events.len(), 1, "the event before the error is kept");
        assert_eq!(error, Some(SseError::EventTooLarge { max: 16 }));
        assert!(error.unwrap().to_string().contains("larger than 16 bytes"));
    }

    #[test]
    fn an_endless_line_costs_linear_time() {
        // 64 MiB in 16 KiB chunks under a 32 MiB cap: a quadratic parser needs minutes.
        let mut p = SseParser::new(SseLimits::for_messages(32 << 20));
        let chunk = vec![b'x'; 16 << 10];
        let started = std::time::Instant::now();
        let mut events = Vec::new();
        let mut fed = 0usize;
        let error = loop {
            if let Err(e) = p.feed(&chunk, &mut events) {
                break e;
            }
            fed += chunk.len();
        };
        assert!(matches!(error, SseError::LineTooLong { .. }));
        assert!(fed <= (32 << 20) + SSE_LINE_ALLOWANCE);
        assert!(
            started.elapsed() < std::time::Duration::from_secs(2),
            "took {:?}",
            started.elapsed()
        );
    }

    mod properties {
        use super::super::*;
        use proptest::prelude::*;

        /// Streams made of the pieces that matter (field names, every line end, a
        /// byte-order mark) and arbitrary bytes.
        fn stream() -> impl Strategy<Value = Vec<u8>> {
            let piece = prop_oneof![
                Just(b"\n".to_vec()),
                Just(b"\r".to_vec()),
                Just(b"\r\n".to_vec()),
                Just(b"data: ".to_vec()),
                Just(b"data:".to_vec()),
                Just(b"event: e".to_vec()),
                Just(b"id: 1".to_vec()),
                Just(b"retry: 10".to_vec()),
                Just(b": c".to_vec()),
                Just("\u{feff}".as_bytes().to_vec()),
                prop::collection::vec(any::<u8>(), 0..40),
            ];
            prop::collection::vec(piece, 0..60).prop_map(|pieces| pieces.concat())
        }

        /// What a parser produced: the events, the error, and the stream state.
        type Outcome = (Vec<SseEvent>, Option<SseError>, Option<String>, Option<u64>);

        fn run(limits: SseLimits, input: &[u8], cuts: &[usize]) -> Outcome {
            let mut parser = SseParser::new(limits);
            let mut events = Vec::new();
            let mut error = None;
            let mut start = 0;
            for &cut in cuts.iter().chain(std::iter::once(&input.len())) {
                let cut = cut.clamp(start, input.len());
                let chunk = input.get(start..cut).unwrap_or_default();
                start = cut;
                if let Err(e) = parser.feed(chunk, &mut events) {
                    error = Some(e);
                    break;
                }
                assert!(parser.partial.len() <= limits.max_line_bytes);
                assert!(parser.current.data.len() <= limits.max_event_bytes);
            }
            for event in &events {
                assert!(event.data.len() <= limits.max_event_bytes);
            }
            (events, error, parser.last_event_id, parser.retry_ms)
        }

        proptest! {
            #[test]
            fn any_chunking_parses_as_one_chunk_within_the_caps(
                input in stream(),
                mut cuts in prop::collection::vec(0usize..2400, 0..24),
                max_line in 1usize..120,
                max_event in 1usize..160,
            ) {
                cuts.sort_unstable();
                let limits = SseLimits { max_line_bytes: max_line, max_event_bytes: max_event };
                let whole = run(limits, &input, &[]);
                let chunked = run(limits, &input, &cuts);
                prop_assert_eq!(whole, chunked);
            }

            #[test]
            fn byte_by_byte_parses_as_one_chunk(input in stream()) {
                let limits = SseLimits::for_messages(64);
                let cuts: Vec<usize> = (0..input.len()).collect();
                prop_assert_eq!(run(limits, &input, &[]), run(limits, &input, &cuts));
            }
        }
    }
}
