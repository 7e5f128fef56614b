//! Messages framed by the pump for one connection and handed over as one chunk (load mode).
//!
//! At an unlimited rate the cost per tweet is what matters: queueing each tweet on its own
//! costs an allocation, a copy, a channel hand-off and a wake-up of the HTTP thread, and the
//! connection then copies it again to frame it. A batch is framed once, in place, into a
//! buffer that becomes the chunk the connection writes, and it carries the counts and tweet
//! ids the connection records when it sends the chunk, so the ground truth is unchanged.

use bytes::Bytes;

use crate::body::Tally;
use crate::generate::Digits;
use crate::messages::MessageKind;

/// A batch is handed over once it holds this many bytes...
pub const BATCH_BYTES: usize = 64 * 1024;
/// ...or this many messages. With it, a queue of `max_queue / BATCH_MESSAGES` batches holds
/// at most `max_queue` messages, as a queue of single messages would.
pub const BATCH_MESSAGES: usize = 16;

/// The `delimited=length` prefix of a message: the length of the JSON and its `\r\n`, then
/// `\r\n`, rendered without allocating.
pub struct LengthPrefix {
    text: [u8; 24],
    len: usize,
}

impl LengthPrefix {
    pub fn of(json_len: usize) -> LengthPrefix {
        let digits = Digits::of(json_len as u64 + 2);
        let digits = digits.as_bytes();
        let mut text = [0u8; 24];
        text[..digits.len()].copy_from_slice(digits);
        text[digits.len()..digits.len() + 2].copy_from_slice(b"\r\n");
        LengthPrefix {
            text,
            len: digits.len() + 2,
        }
    }

    pub fn as_bytes(&self) -> &[u8] {
        &self.text[..self.len]
    }
}

/// Framed messages handed to a connection, with what the connection counts when it sends them.
#[derive(Debug)]
pub struct FramedRun {
    pub bytes: Bytes,
    pub(crate) tally: Tally,
}

/// The batch the pump is filling for one connection.
#[derive(Default)]
pub struct Batch {
    bytes: Vec<u8>,
    tally: Tally,
    messages: usize,
}

impl Batch {
    /// Frames one message of `json_len` bytes, which `write_json` appends to the buffer.
    pub fn push(
        &mut self,
        delimited: bool,
        kind: MessageKind,
        tweet_id: Option<u64>,
        json_len: usize,
        write_json: impl FnOnce(&mut Vec<u8>),
    ) {
        if self.bytes.capacity() == 0 {
            self.bytes.reserve(BATCH_BYTES + 8 * 1024);
        }
        let start = self.bytes.len();
        if delimited {
            self.bytes
                .extend_from_slice(LengthPrefix::of(json_len).as_bytes());
        }
        let json_start = self.bytes.len();
        write_json(&mut self.bytes);
        debug_assert_eq!(
            self.bytes.len() - json_start,
            json_len,
            "the promised length"
        );
        self.bytes.extend_from_slice(b"\r\n");
        self.tally.add(kind, tweet_id, self.bytes.len() - start);
        self.messages += 1;
    }

    pub fn is_full(&self) -> bool {
        self.bytes.len() >= BATCH_BYTES || self.messages >= BATCH_MESSAGES
    }

    pub fn is_empty(&self) -> bool {
        self.messages == 0
    }

    /// Hands over what was framed; the batch starts again empty.
    pub fn take(&mut self) -> FramedRun {
        self.messages = 0;
        FramedRun {
            bytes: Bytes::from(std::mem::take(&mut self.bytes)),
            tally: std::mem::take(&mut self.tally),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn length_prefixes_count_the_message_and_its_line_end() {
        assert_eq!(LengthPrefix::of(0).as_bytes(), b"2\r\n");
        assert_eq!(LengthPrefix::of(8).as_bytes(), b"10\r\n");
        assert_eq!(LengthPrefix::of(4093).as_bytes(), b"4095\r\n");
        assert_eq!(
            LengthPrefix::of(usize::MAX - 2).as_bytes(),
            format!("{}\r\n", usize::MAX).as_bytes()
        );
    }

    #[test]
    fn a_batch_frames_each_message_and_counts_it() {
        let mut batch = Batch::default();
        let tweet = br#"{"id":7}"#;
        batch.push(true, MessageKind::Tweet, Some(7), tweet.len(), |out| {
            out.extend_from_slice(tweet)
        });
        batch.push(true, MessageKind::Delete, None, 2, |out| {
            out.extend_from_slice(b"{}")
        });
        assert!(!batch.is_full());
        let run = batch.take();
        assert_eq!(&run.bytes[..], b"10\r\n{\"id\":7}\r\n4\r\n{}\r\n");
        assert_eq!(run.tally.ids, [7]);
        assert_eq!(run.tally.bytes, run.bytes.len() as u64);
        assert!(batch.is_empty());
        assert!(batch.take().bytes.is_empty());
    }

    #[test]
    fn newline_framing_has_no_prefix() {
        let mut batch = Batch::default();
        batch.push(false, MessageKind::Tweet, Some(1), 2, |out| {
            out.extend_from_slice(b"{}")
        });
        assert_eq!(&batch.take().bytes[..], b"{}\r\n");
    }

    #[test]
    fn a_batch_is_full_at_its_message_or_byte_bound() {
        let mut batch = Batch::default();
        for _ in 0..BATCH_MESSAGES {
            assert!(!batch.is_full());
            batch.push(false, MessageKind::Tweet, Some(1), 2, |out| {
                out.extend_from_slice(b"{}")
            });
        }
        assert!(batch.is_full());
        batch.take();
        let big = vec![b' '; BATCH_BYTES];
        batch.push(false, MessageKind::Tweet, Some(2), big.len(), |out| {
            out.extend_from_slice(&big)
        });
        assert!(batch.is_full());
    }
}
