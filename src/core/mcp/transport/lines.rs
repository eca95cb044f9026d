//! Newline framing with a cap, for what a stdio server writes on stdout and stderr.
//!
//! Owns the split of a byte stream into lines and nothing else: it does not decode
//! (a line is bytes; UTF-8 is the reader's business) and it never stops. A line longer
//! than the cap is not an error that ends the stream, as `LinesCodec` makes it: the
//! framer keeps its first bytes and its last bytes, counts the rest, and reports it as
//! [`Line::Overlong`] when its newline comes, so the pipe is always drained and the
//! child never blocks (or dies of SIGPIPE) because of what we could not read.
//!
//! Invariants: linear time (every byte is looked at once); memory at most the cap plus
//! [`TAIL_BYTES`]; the lines reported do not depend on how the stream was chunked (a
//! property test checks this).

/// Bytes kept from the end of an overlong line (where a JSON-RPC response may name its
/// id).
pub(crate) const TAIL_BYTES: usize = 256;
/// The buffer's capacity kept between lines: a long line's memory is given back after
/// it, not held until the next one.
const KEPT_CAPACITY: usize = 64 * 1024;

/// One line, without its `\n`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Line<'a> {
    /// A line within the cap.
    Complete(&'a [u8]),
    /// A line over the cap: its first bytes (as many as the cap allows, at most
    /// `head_bytes`), its last [`TAIL_BYTES`] bytes and its whole length.
    Overlong {
        /// The first bytes.
        head: &'a [u8],
        /// The last bytes.
        tail: &'a [u8],
        /// The whole length.
        len: usize,
    },
}

/// Splits a byte stream into lines of at most `max_line_bytes`.
#[derive(Debug)]
pub(crate) struct LineFramer {
    max_line_bytes: usize,
    head_bytes: usize,
    /// The unfinished line, or the head of an overlong one.
    buffer: Vec<u8>,
    /// Set while the current line is over the cap: its length so far.
    overlong: Option<usize>,
    /// The last bytes of an overlong line.
    tail: Vec<u8>,
}

impl LineFramer {
    /// A framer for lines of at most `max_line_bytes`; of a longer line, the first
    /// `head_bytes` (capped at `max_line_bytes`) are kept for the report.
    pub(crate) fn new(max_line_bytes: usize, head_bytes: usize) -> Self {
        LineFramer {
            max_line_bytes,
            head_bytes: head_bytes.min(max_line_bytes),
            buffer: Vec::new(),
            overlong: None,
            tail: Vec::new(),
        }
    }

    /// Bytes held now (for tests of the bound).
    #[cfg(test)]
    pub(crate) fn held(&self) -> usize {
        self.buffer.len() + self.tail.len()
    }

    /// Feeds a chunk; calls `on_line` for every line it completes, in order.
    pub(crate) fn feed(&mut self, chunk: &[u8], mut on_line: impl FnMut(Line<'_>)) {
        let mut rest = chunk;
        while let Some(end) = rest.iter().position(|&b| b == b'\n') {
            let (line, tail) = rest.split_at(end);
            self.take(line);
            self.emit(&mut on_line);
            rest = tail.get(1..).unwrap_or_default();
        }
        self.take(rest);
    }

    /// The stream ended: reports the unfinished line, if any.
    pub(crate) fn finish(&mut self, mut on_line: impl FnMut(Line<'_>)) {
        if !self.buffer.is_empty() || self.overlong.is_some() {
            self.emit(&mut on_line);
        }
    }

    /// Adds bytes of the current line.
    fn take(&mut self, bytes: &[u8]) {
        if let Some(len) = &mut self.overlong {
            *len += bytes.len();
            self.keep_tail(bytes);
            return;
        }
        if self.buffer.len() + bytes.len() <= self.max_line_bytes {
            self.buffer.extend_from_slice(bytes);
            return;
        }
        // The line just went over the cap: keep its head, then only its tail.
        let len = self.buffer.len() + bytes.len();
        let missing = self.head_bytes.saturating_sub(self.buffer.len());
        self.tail.clear();
        // The tail is the last bytes of buffer + bytes.
        let from_bytes = bytes.len().min(TAIL_BYTES);
        let from_buffer = (TAIL_BYTES - from_bytes).min(self.buffer.len());
        let buffer_tail = self
            .buffer
            .get(self.buffer.len() - from_buffer..)
            .unwrap_or_default();
        self.tail.extend_from_slice(buffer_tail);
        self.tail
            .extend_from_slice(bytes.get(bytes.len() - from_bytes..).unwrap_or_default());
        self.buffer
            .extend_from_slice(bytes.get(..missing.min(bytes.len())).unwrap_or_default());
        self.buffer.truncate(self.head_bytes);
        self.buffer.shrink_to(self.head_bytes.max(KEPT_CAPACITY));
        self.overlong = Some(len);
    }

    fn keep_tail(&mut self, bytes: &[u8]) {
        if bytes.len() >= TAIL_BYTES {
            self.tail.clear();
            self.tail
                .extend_from_slice(bytes.get(bytes.len() - TAIL_BYTES..).unwrap_or_default());
        } else {
            let excess = (self.tail.len() + bytes.len()).saturating_sub(TAIL_BYTES);
            self.tail.drain(..excess.min(self.tail.len()));
            self.tail.extend_from_slice(bytes);
        }
    }

    fn emit(&mut self, on_line: &mut impl FnMut(Line<'_>)) {
        match self.overlong.take() {
            None => on_line(Line::Complete(&self.buffer)),
            Some(len) => on_line(Line::Overlong {
                head: &self.buffer,
                tail: &self.tail,
                len,
            }),
        }
        self.buffer.clear();
        self.buffer.shrink_to(KEPT_CAPACITY);
        self.tail.clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A line as the tests compare it.
    #[derive(Debug, Clone, PartialEq, Eq)]
    enum Owned {
        Complete(Vec<u8>),
        Overlong(Vec<u8>, Vec<u8>, usize),
    }

    fn collect(framer: &mut LineFramer, chunks: &[&[u8]]) -> Vec<Owned> {
        let mut lines = Vec::new();
        let mut push = |line: Line<'_>| {
            lines.push(match line {
                Line::Complete(l) => Owned::Complete(l.to_vec()),
                Line::Overlong { head, tail, len } => {
                    Owned::Overlong(head.to_vec(), tail.to_vec(), len)
                }
            })
        };
        for chunk in chunks {
            framer.feed(chunk, &mut push);
        }
        framer.finish(&mut push);
        lines
    }

    #[test]
    fn splits_lines_and_reports_overlong_ones_without_stopping() {
        let mut framer = LineFramer::new(8, 4);
        let lines = collect(
            &mut framer,
            &[b"ab\ncd", b"efgh\n0123456789", b"abcdef\n\xff\xfe\nlast"],
        );
        assert_eq!(
            lines,
            vec![
                Owned::Complete(b"ab".to_vec()),
                Owned::Complete(b"cdefgh".to_vec()),
                Owned::Overlong(b"0123".to_vec(), b"0123456789abcdef".to_vec(), 16),
                Owned::Complete(b"\xff\xfe".to_vec()),
                Owned::Complete(b"last".to_vec()),
            ]
        );
    }

    #[test]
    fn the_tail_is_the_last_bytes_of_a_long_line() {
        let mut framer = LineFramer::new(16, 16);
        let mut line = vec![b'x'; 10_000];
        line.extend_from_slice(br#","id":42}"#);
        line.push(b'\n');
        let lines = collect(&mut framer, &line.chunks(100).collect::<Vec<_>>());
        let [Owned::Overlong(head, tail, len)] = lines.as_slice() else {
            panic!("{lines:?}");
        };
        assert_eq!(head.len(), 16);
        assert_eq!(tail.len(), TAIL_BYTES);
        assert!(tail.ends_with(br#","id":42}"#));
        assert_eq!(*len, 10_009);
    }

    mod properties {
        use super::super::*;
        use super::{collect, Owned};
        use proptest::prelude::*;

        fn stream() -> impl Strategy<Value = Vec<u8>> {
            let piece = prop_oneof![
                Just(b"\n".to_vec()),
                Just(b"\r\n".to_vec()),
                prop::collection::vec(any::<u8>(), 0..300),
            ];
            prop::collection::vec(piece, 0..40).prop_map(|pieces| pieces.concat())
        }

        fn chunks<'a>(input: &'a [u8], cuts: &[usize]) -> Vec<&'a [u8]> {
            let mut out = Vec::new();
            let mut start = 0;
            for &cut in cuts.iter().chain(std::iter::once(&input.len())) {
                let cut = cut.clamp(start, input.len());
                out.push(input.get(start..cut).unwrap_or_default());
                start = cut;
            }
            out
        }

        proptest! {
            #[test]
            fn any_chunking_frames_as_one_chunk_within_the_cap(
                input in stream(),
                mut cuts in prop::collection::vec(0usize..12_000, 0..30),
                max in 1usize..400,
                head in 0usize..400,
            ) {
                cuts.sort_unstable();
                let whole = collect(&mut LineFramer::new(max, head), &[&input]);
                let mut framer = LineFramer::new(max, head);
                let mut lines = Vec::new();
                for chunk in chunks(&input, &cuts) {
                    framer.feed(chunk, |line| lines.push(match line {
                        Line::Complete(l) => Owned::Complete(l.to_vec()),
                        Line::Overlong { head, tail, len } => Owned::Overlong(head.to_vec(), tail.to_vec(), len),
                    }));
                    prop_assert!(framer.held() <= max + TAIL_BYTES);
                }
                lines.extend(collect(&mut framer, &[]));
                prop_assert_eq!(&whole, &lines);
                // Every line is accounted for, whole or by its length.
                let total: usize = whole.iter().map(|l| match l {
                    Owned::Complete(l) => l.len(),
                    Owned::Overlong(_, _, len) => *len,
                }).sum::<usize>() + input.iter().filter(|&&b| b == b'\n').count();
                prop_assert_eq!(total, input.len());
                for line in &whole {
                    match line {
                        Owned::Complete(l) => prop_assert!(l.len() <= max),
                        Owned::Overlong(h, t, len) => {
                            prop_assert!(*len > max);
                            prop_assert!(h.len() <= head.min(max) && t.len() <= TAIL_BYTES);
                        }
                    }
                }
            }
        }
    }
}
