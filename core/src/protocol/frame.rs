//! Splits a streaming response body into messages.
//!
//! The body is a sequence of lines ending in `\r\n` (a bare `\n` is accepted too):
//! - a blank line is a keep-alive;
//! - a line of ASCII digits only is a `delimited=length` prefix: the next message line, its
//!   terminator included, must be exactly that many bytes;
//! - any other line is one message (a frame), whatever its content; telling JSON from junk is the
//!   classifier's job.
//!
//! Newline-delimited and length-delimited framing are detected per line, so one decoder reads
//! either. Messages of the streaming API never contain a raw line feed (JSON escapes it), so a
//! length prefix is checked against the line that follows it instead of being trusted blindly:
//! a prefix that disagrees (garbage, a truncated message, a prefix pointing into the next
//! message) is reported and the line is re-read as an ordinary line, so no frame after it is lost.
//!
//! What is guaranteed, for any input and any split into chunks:
//! - never a panic, and at most `max_frame_bytes + 1` bytes held between calls (plus the chunk
//!   being pushed): an oversized line is skipped as it streams in and reported once it ends;
//! - a message line of at most `max_frame_bytes` bytes that starts right after a line feed (the
//!   end of the previous message, keep-alive, length prefix or garbage line) comes out as exactly
//!   one [`Item::Frame`] holding exactly its bytes, in stream order. Garbage that does not end in a
//!   line feed merges with the line after it, which is then reported or passed on as one frame.

use memchr::memchr;

/// A sensible frame limit: real tweets are a few kilobytes; an extended tweet quoting another
/// with full entities stays well under this.
pub const DEFAULT_MAX_FRAME_BYTES: usize = 1 << 20;

/// One thing found in the stream.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Item {
    /// One message, without its line terminator.
    Frame(Vec<u8>),
    /// A blank line: the server's sign of life while no message is due.
    KeepAlive,
    /// Something was wrong with the framing; decoding goes on after it.
    Error(FrameError),
}

/// [`Item`] with the frame lent from the decoder's buffer, valid until the decoder is used
/// again: a stream enriches each frame where it lies, where an owned frame cost an allocation
/// and a copy per message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ItemRef<'a> {
    Frame(&'a [u8]),
    KeepAlive,
    Error(FrameError),
}

impl ItemRef<'_> {
    pub fn into_owned(self) -> Item {
        match self {
            ItemRef::Frame(frame) => Item::Frame(frame.to_vec()),
            ItemRef::KeepAlive => Item::KeepAlive,
            ItemRef::Error(error) => Item::Error(error),
        }
    }
}

/// What was wrong with the framing. Every error is recoverable: the decoder resynchronizes at
/// the next line boundary by itself.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FrameError {
    #[error(
        "a message of {size} bytes is over the frame limit of {limit} bytes and was skipped; \
         raise the frame limit if messages this large are expected"
    )]
    Oversized { size: usize, limit: usize },
    #[error("bad length prefix {prefix:?}: {why}; the line was skipped")]
    BadLengthPrefix { prefix: String, why: &'static str },
    #[error(
        "the length prefix announced {declared} bytes but the message line has {actual} bytes \
         (terminator included); the prefix is ignored and the line read as a newline-delimited message"
    )]
    LengthMismatch { declared: usize, actual: usize },
    #[error(
        "a length prefix announcing {declared} bytes was followed by another length prefix \
         instead of its message; the first prefix is ignored"
    )]
    MissingPayload { declared: usize },
    #[error("the stream ended inside a message; its first {bytes} bytes were dropped")]
    Truncated { bytes: usize },
}

/// Running totals of what the decoder has seen, for metrics and tests.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct FrameStats {
    /// Every byte pushed.
    pub bytes_in: u64,
    /// Frames returned.
    pub frames: u64,
    pub keep_alives: u64,
    /// Errors returned (including the one [`FrameDecoder::finish`] returns).
    pub errors: u64,
    /// Bytes of oversized lines skipped without being buffered.
    pub bytes_discarded: u64,
}

/// State of an oversized line that is being skipped until its line feed.
#[derive(Debug, Clone, Copy)]
struct Discarding {
    /// Bytes of the line skipped so far.
    skipped: usize,
    /// Whether the last skipped byte was `\r` (so it belongs to the terminator, not the message).
    ends_with_cr: bool,
}

/// Incremental decoder for one connection's body: push bytes as they arrive, then take items
/// until [`next_item`](FrameDecoder::next_item) returns `None`.
#[derive(Debug)]
pub struct FrameDecoder {
    max_frame_bytes: usize,
    buf: Vec<u8>,
    /// First byte of `buf` not consumed yet.
    start: usize,
    /// `buf[start..scan_from]` holds no line feed: searching resumes here.
    scan_from: usize,
    /// The size announced by the last length prefix, until its message line is read.
    expected_len: Option<usize>,
    discarding: Option<Discarding>,
    /// An error found while pushing (the end of a skipped oversized line), returned next.
    pending_error: Option<FrameError>,
    stats: FrameStats,
}

impl FrameDecoder {
    pub fn new(max_frame_bytes: usize) -> Self {
        FrameDecoder {
            max_frame_bytes: max_frame_bytes.max(1),
            buf: Vec::new(),
            start: 0,
            scan_from: 0,
            expected_len: None,
            discarding: None,
            pending_error: None,
            stats: FrameStats::default(),
        }
    }

    pub fn max_frame_bytes(&self) -> usize {
        self.max_frame_bytes
    }

    pub fn stats(&self) -> FrameStats {
        self.stats
    }

    /// Bytes held waiting for the rest of their line.
    pub fn buffered_len(&self) -> usize {
        self.buf.len() - self.start
    }

    /// Adds bytes from the body. Take items with [`next_item`](Self::next_item) until it returns
    /// `None` before pushing again, or memory grows by every chunk pushed.
    pub fn push(&mut self, mut bytes: &[u8]) {
        self.stats.bytes_in += bytes.len() as u64;
        if let Some(discarding) = &mut self.discarding {
            match memchr(b'\n', bytes) {
                None => {
                    discarding.skipped += bytes.len();
                    if let Some(&last) = bytes.last() {
                        discarding.ends_with_cr = last == b'\r';
                    }
                    self.stats.bytes_discarded += bytes.len() as u64;
                    return;
                }
                Some(newline) => {
                    let cr = if newline == 0 {
                        discarding.ends_with_cr
                    } else {
                        bytes[newline - 1] == b'\r'
                    };
                    let size = discarding.skipped + newline - usize::from(cr);
                    self.stats.bytes_discarded += newline as u64 + 1;
                    self.discarding = None;
                    self.pending_error = Some(FrameError::Oversized {
                        size,
                        limit: self.max_frame_bytes,
                    });
                    bytes = &bytes[newline + 1..];
                }
            }
        }
        if self.start > 0 {
            // Each byte moves at most once: after this, `start` stays 0 until a line is consumed.
            self.buf.drain(..self.start);
            self.scan_from -= self.start;
            self.start = 0;
        }
        self.buf.extend_from_slice(bytes);
    }

    /// The next frame, keep-alive or error, or `None` when more bytes are needed.
    pub fn next_item(&mut self) -> Option<Item> {
        self.next_item_ref().map(ItemRef::into_owned)
    }

    /// [`FrameDecoder::next_item`] with the frame lent, not copied.
    pub fn next_item_ref(&mut self) -> Option<ItemRef<'_>> {
        if let Some(error) = self.pending_error.take() {
            return Some(self.error(error));
        }
        if self.start > 0 && self.start == self.buf.len() {
            // Everything was consumed (the last frame lent is no longer borrowed): start over.
            self.buf.clear();
            self.start = 0;
            self.scan_from = 0;
        }
        loop {
            if self.discarding.is_some() {
                return None;
            }
            let Some(offset) = memchr(b'\n', &self.buf[self.scan_from..]) else {
                self.scan_from = self.buf.len();
                self.skip_if_oversized();
                return None;
            };
            let newline = self.scan_from + offset;
            self.scan_from = newline;
            let line_len = newline + 1 - self.start;
            let mut content_end = newline;
            if content_end > self.start && self.buf[content_end - 1] == b'\r' {
                content_end -= 1;
            }
            let content = &self.buf[self.start..content_end];

            if content.iter().all(|b| matches!(b, b' ' | b'\t' | b'\r')) {
                // Keep-alives may come between a length prefix and its message: the prefix stands.
                self.consume_line(newline);
                self.stats.keep_alives += 1;
                return Some(ItemRef::KeepAlive);
            }

            if content.iter().all(u8::is_ascii_digit) {
                if let Some(declared) = self.expected_len.take() {
                    // Leave this line to be read again as the new prefix.
                    return Some(self.error(FrameError::MissingPayload { declared }));
                }
                let parsed = parse_length_prefix(content);
                self.consume_line(newline);
                match parsed {
                    Ok(declared) => {
                        self.expected_len = Some(declared);
                        continue;
                    }
                    Err(error) => return Some(self.error(error)),
                }
            }

            if content.len() > self.max_frame_bytes {
                let size = content.len();
                self.expected_len = None;
                self.stats.bytes_discarded += line_len as u64;
                self.consume_line(newline);
                return Some(self.error(FrameError::Oversized {
                    size,
                    limit: self.max_frame_bytes,
                }));
            }

            if let Some(declared) = self.expected_len.take() {
                if declared != line_len {
                    // Not consumed: the next call reads the same line as a newline-delimited frame.
                    return Some(self.error(FrameError::LengthMismatch {
                        declared,
                        actual: line_len,
                    }));
                }
            }
            let frame = self.start..content_end;
            self.consume_line(newline);
            self.stats.frames += 1;
            return Some(ItemRef::Frame(&self.buf[frame]));
        }
    }

    /// Call when the body ends: reports a message cut short, and resets the decoder so it can
    /// read a new connection's body. Blank or prefix-only leftovers are not an error.
    pub fn finish(&mut self) -> Option<FrameError> {
        let leftover = if let Some(error) = self.pending_error.take() {
            Some(error)
        } else if let Some(discarding) = self.discarding {
            Some(FrameError::Truncated {
                bytes: discarding.skipped,
            })
        } else {
            let rest = &self.buf[self.start..];
            let blank = rest.iter().all(|b| matches!(b, b' ' | b'\t' | b'\r'));
            (!blank).then_some(FrameError::Truncated { bytes: rest.len() })
        };
        let stats = self.stats;
        *self = FrameDecoder::new(self.max_frame_bytes);
        self.stats = stats;
        if leftover.is_some() {
            self.stats.errors += 1;
        }
        leftover
    }

    fn error<'a>(&mut self, error: FrameError) -> ItemRef<'a> {
        self.stats.errors += 1;
        ItemRef::Error(error)
    }

    /// Consumes through `newline`. The bytes stay in the buffer (a frame lent from them may
    /// still be read) until the next push or read.
    fn consume_line(&mut self, newline: usize) {
        self.start = newline + 1;
        self.scan_from = self.start;
    }

    /// An unfinished line already over the limit (one `\r` of slack for its terminator) is
    /// dropped now and the rest of it skipped as it arrives, so memory stays bounded.
    fn skip_if_oversized(&mut self) {
        let pending = self.buf.len() - self.start;
        if pending <= self.max_frame_bytes + 1 {
            return;
        }
        self.expected_len = None;
        self.discarding = Some(Discarding {
            skipped: pending,
            ends_with_cr: self.buf.last() == Some(&b'\r'),
        });
        self.stats.bytes_discarded += pending as u64;
        self.buf.clear();
        self.start = 0;
        self.scan_from = 0;
    }
}

fn parse_length_prefix(digits: &[u8]) -> Result<usize, FrameError> {
    let bad = |why| FrameError::BadLengthPrefix {
        prefix: String::from_utf8_lossy(&digits[..digits.len().min(24)]).into_owned(),
        why,
    };
    // 19 digits always fit in a u64; longer prefixes are junk, not sizes.
    if digits.len() > 19 {
        return Err(bad("too many digits to be a size"));
    }
    let value = digits
        .iter()
        .fold(0u64, |n, d| n * 10 + u64::from(d - b'0'));
    match usize::try_from(value) {
        Ok(0) => Err(bad("a message cannot be empty")),
        Ok(n) => Ok(n),
        Err(_) => Err(bad("too large to be a size")),
    }
}

#[cfg(test)]
mod tests;
