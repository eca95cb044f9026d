//! A Server-Sent Events parser with a size cap, for the streamable HTTP and legacy SSE
//! transports.
//!
//! Owns the `text/event-stream` framing only (fields `event`, `data`, `id`, `retry`,
//! comments, CR/LF/CRLF line ends). It does not interpret the events. A line or an
//! event larger than the cap is an error, so a peer that never sends a newline cannot
//! make us buffer without bound.

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
    buffer: Vec<u8>,
    current: SseEvent,
    has_data: bool,
    max_event_bytes: usize,
    /// The last `id:` seen (the SSE "last event ID", kept across events).
    pub(crate) last_event_id: Option<String>,
    /// The last `retry:` seen, in milliseconds.
    pub(crate) retry_ms: Option<u64>,
}

impl SseParser {
    /// A parser that rejects events larger than `max_event_bytes`.
    pub(crate) fn new(max_event_bytes: usize) -> Self {
        SseParser {
            buffer: Vec::new(),
            current: SseEvent::default(),
            has_data: false,
            max_event_bytes,
            last_event_id: None,
            retry_ms: None,
        }
    }

    /// Feeds a chunk and returns the events it completed.
    ///
    /// # Errors
    /// When a line or an event grows past the cap.
    pub(crate) fn feed(&mut self, chunk: &[u8]) -> Result<Vec<SseEvent>, String> {
        self.buffer.extend_from_slice(chunk);
        let mut events = Vec::new();
        let mut start = 0;
        let mut i = 0;
        while i < self.buffer.len() {
            let b = self.buffer[i];
            if b == b'\n' || b == b'\r' {
                let line_end = i;
                // CRLF counts as one line end; a lone CR at the end of the buffer may be
                // followed by LF in the next chunk, which then yields an empty line we
                // must not take as the end of an event.
                let mut next = i + 1;
                if b == b'\r' {
                    if next == self.buffer.len() {
                        break;
                    }
                    if self.buffer[next] == b'\n' {
                        next += 1;
                    }
                }
                let line = String::from_utf8_lossy(&self.buffer[start..line_end]).into_owned();
                if let Some(event) = self.line(&line)? {
                    events.push(event);
                }
                start = next;
                i = next;
            } else {
                i += 1;
            }
        }
        self.buffer.drain(..start);
        if self.buffer.len() > self.max_event_bytes {
            return Err(format!(
                "an SSE line is longer than {} bytes",
                self.max_event_bytes
            ));
        }
        Ok(events)
    }

    fn line(&mut self, line: &str) -> Result<Option<SseEvent>, String> {
        if line.is_empty() {
            if !self.has_data && self.current.event.is_empty() {
                self.current = SseEvent::default();
                return Ok(None);
            }
            self.has_data = false;
            return Ok(Some(std::mem::take(&mut self.current)));
        }
        if line.starts_with(':') {
            return Ok(None);
        }
        let (field, value) = match line.split_once(':') {
            Some((f, v)) => (f, v.strip_prefix(' ').unwrap_or(v)),
            None => (line, ""),
        };
        match field {
            "event" => self.current.event = value.to_string(),
            "data" => {
                if self.has_data {
                    self.current.data.push('\n');
                }
                self.current.data.push_str(value);
                self.has_data = true;
                if self.current.data.len() > self.max_event_bytes {
                    return Err(format!(
                        "an SSE event is larger than {} bytes",
                        self.max_event_bytes
                    ));
                }
            }
            "id" => {
                self.current.id = Some(value.to_string());
                self.last_event_id = Some(value.to_string());
            }
            "retry" => {
                if let Ok(ms) = value.trim().parse() {
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

    #[test]
    fn parses_events_across_chunks_and_line_endings() {
        let mut p = SseParser::new(1024);
        let mut events = p.feed(b"event: endpoint\r\ndata: /messages?s=1\r").unwrap();
        assert!(events.is_empty());
        events.extend(
            p.feed(b"\n\r\n: comment\ndata: {\"a\":\ndata: 1}\nid: 7\n")
                .unwrap(),
        );
        events.extend(p.feed(b"\n").unwrap());
        assert_eq!(events.len(), 2);
        assert_eq!(events[0].event, "endpoint");
        assert_eq!(events[0].data, "/messages?s=1");
        assert_eq!(events[1].event, "");
        assert_eq!(events[1].data, "{\"a\":\n1}");
        assert_eq!(events[1].id.as_deref(), Some("7"));
        // A priming event: an id and a retry, no data.
        let mut p = SseParser::new(1024);
        assert!(p.feed(b"id: s1::0\nretry: 500\n\n").unwrap().is_empty());
        assert_eq!(p.last_event_id.as_deref(), Some("s1::0"));
        assert_eq!(p.retry_ms, Some(500));
    }

    #[test]
    fn caps_lines_and_events() {
        let mut p = SseParser::new(16);
        assert!(p.feed(&[b'x'; 40]).is_err());
        let mut p = SseParser::new(16);
        assert!(p.feed(b"data: 0123456789\ndata: 0123456789\n").is_err());
    }
}
