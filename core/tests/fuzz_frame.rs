//! Fuzzing the frame decoder (and the classifier on what it yields): arbitrary bytes in
//! arbitrary chunkings, and structured mutations of valid streams of real messages.
//!
//! Invariants checked on every case: no panic, no hang (watchdog), memory bounded
//! (`buffered_len() <= max_frame_bytes + 1` after draining), every frame non-empty, within the
//! limit and without a line feed, the same frames whatever the chunking, counters that agree
//! with what came out. `TRAPTOR_FUZZ_CASES` scales the case count (see `fuzz_support`).

mod fuzz_support;

use std::sync::Arc;

use fuzz_support::{config, fixture_messages, fixture_tweets, mutate, mutation, split, Watchdog};
use proptest::prelude::*;
use traptor_core::protocol::{classify, FrameDecoder, Item, DEFAULT_MAX_FRAME_BYTES};
use traptor_core::MessageKind;

/// What decoding one stream produced, and whether the decoder kept its bounds throughout.
struct Decoded {
    items: Vec<Item>,
    frames: Vec<Vec<u8>>,
}

/// Pushes each chunk and drains the decoder after it, as a stream reader does, checking the
/// memory bound after every drain.
fn decode_checked(max: usize, chunks: &[&[u8]]) -> Result<Decoded, TestCaseError> {
    let mut decoder = FrameDecoder::new(max);
    let mut items = Vec::new();
    let mut total = 0usize;
    for chunk in chunks {
        total += chunk.len();
        decoder.push(chunk);
        prop_assert!(decoder.buffered_len() <= max + 1 + chunk.len());
        while let Some(item) = decoder.next_item() {
            items.push(item);
        }
        prop_assert!(
            decoder.buffered_len() <= max + 1,
            "holding {} bytes with a limit of {max}",
            decoder.buffered_len()
        );
    }
    let finished = decoder.finish();
    prop_assert_eq!(decoder.buffered_len(), 0, "finish must reset the decoder");
    let frames: Vec<Vec<u8>> = items
        .iter()
        .filter_map(|i| match i {
            Item::Frame(f) => Some(f.clone()),
            _ => None,
        })
        .collect();
    for frame in &frames {
        prop_assert!(
            !frame.is_empty() && frame.len() <= max,
            "frame of {} bytes",
            frame.len()
        );
        prop_assert!(!frame.contains(&b'\n'));
    }
    let stats = decoder.stats();
    prop_assert_eq!(stats.bytes_in, total as u64);
    prop_assert_eq!(stats.frames as usize, frames.len());
    let errors = items.iter().filter(|i| matches!(i, Item::Error(_))).count()
        + usize::from(finished.is_some());
    prop_assert_eq!(stats.errors as usize, errors);
    Ok(Decoded { items, frames })
}

/// Bytes weighted toward what the framing reacts to.
fn stream_bytes(max_len: usize) -> impl Strategy<Value = Vec<u8>> {
    prop::collection::vec(
        prop_oneof![
            4 => any::<u8>(),
            2 => Just(b'\n'),
            2 => Just(b'\r'),
            2 => b'0'..=b'9',
            1 => Just(b' '),
            1 => Just(b'{'),
        ],
        0..max_len,
    )
}

fn frame_limit() -> impl Strategy<Value = usize> {
    prop_oneof![1usize..64, Just(1024), Just(DEFAULT_MAX_FRAME_BYTES)]
}

/// A valid stream of real messages: fixture tweets, control messages and keep-alives, each
/// message newline- or length-delimited.
fn valid_stream(choices: &[(u8, bool)]) -> Vec<u8> {
    static MESSAGES: std::sync::OnceLock<Vec<Vec<u8>>> = std::sync::OnceLock::new();
    let messages = MESSAGES.get_or_init(|| {
        let mut all = fixture_tweets();
        all.extend(fixture_messages());
        all
    });
    let mut out = Vec::new();
    for &(pick, length_delimited) in choices {
        let index = pick as usize % (messages.len() + 1);
        if index == messages.len() {
            out.extend_from_slice(b"\r\n");
            continue;
        }
        let message = &messages[index];
        if length_delimited {
            out.extend_from_slice(format!("{}\r\n", message.len() + 2).as_bytes());
        }
        out.extend_from_slice(message);
        out.extend_from_slice(b"\r\n");
    }
    out
}

/// JSON's grammar admits `\ud800` escapes and numbers like `1e999` that serde_json's `Value`
/// refuses; the classifier (which only validates what it skips) accepts them, as many JSON
/// readers downstream do.
fn is_value_only_error(frame: &[u8]) -> bool {
    serde_json::from_slice::<serde_json::Value>(frame)
        .err()
        .is_some_and(|e| {
            let text = e.to_string();
            text.contains("surrogate")
                || text.contains("end of hex escape")
                || text.contains("number out of range")
        })
}

fn watchdog() -> Arc<Watchdog> {
    Watchdog::new()
}

proptest! {
    #![proptest_config(config(128))]

    /// Any bytes, any chunking, any limit: bounded, and the frames do not depend on the chunking.
    #[test]
    fn arbitrary_bytes_in_arbitrary_chunks(
        bytes in stream_bytes(3_000),
        cuts in prop::collection::vec(any::<usize>(), 0..64),
        max in frame_limit(),
    ) {
        let dog = watchdog();
        dog.run("frame decoder (arbitrary bytes)", &bytes, || -> Result<(), TestCaseError> {
            let whole = decode_checked(max, &[&bytes])?;
            let chunked = decode_checked(max, &split(&bytes, &cuts))?;
            let one_by_one: Vec<&[u8]> = bytes.chunks(1).collect();
            let bytewise = decode_checked(max, &one_by_one)?;
            prop_assert_eq!(&whole.frames, &chunked.frames);
            prop_assert_eq!(&whole.frames, &bytewise.frames);
            for frame in &whole.frames {
                let _ = classify(frame);
            }
            Ok(())
        })?;
    }

    /// Valid streams of real messages, mutated the way a fuzzer does: still bounded, still the
    /// same frames under any chunking, and every frame classifies without panicking; a frame
    /// equal to an original message is classified as that message is.
    #[test]
    fn mutated_valid_streams(
        choices in prop::collection::vec((any::<u8>(), any::<bool>()), 1..12),
        mutations in prop::collection::vec(mutation(), 0..8),
        cuts in prop::collection::vec(any::<usize>(), 0..32),
        max in prop_oneof![Just(512usize), Just(4096), Just(DEFAULT_MAX_FRAME_BYTES)],
    ) {
        let original = valid_stream(&choices);
        let stream = mutate(&original, &mutations);
        let dog = watchdog();
        dog.run("frame decoder (mutated stream)", &stream, || -> Result<(), TestCaseError> {
            let whole = decode_checked(max, &[&stream])?;
            let chunked = decode_checked(max, &split(&stream, &cuts))?;
            prop_assert_eq!(&whole.frames, &chunked.frames);
            if mutations.is_empty() && max == DEFAULT_MAX_FRAME_BYTES {
                prop_assert!(whole.items.iter().all(|i| !matches!(i, Item::Error(_))), "{:?}", whole.items);
            }
            for frame in &whole.frames {
                let kind = classify(frame).kind;
                if let Ok(serde_json::Value::Object(map)) = serde_json::from_slice::<serde_json::Value>(frame) {
                    if map.contains_key("id_str") && map.contains_key("text") && !map.contains_key("limit")
                        && !map.keys().any(|k| ["delete", "scrub_geo", "status_withheld", "user_withheld", "disconnect", "warning"].contains(&k.as_str()))
                    {
                        prop_assert_eq!(kind, MessageKind::Tweet);
                    }
                } else if !is_value_only_error(frame) {
                    prop_assert_eq!(kind, MessageKind::Invalid, "{}", String::from_utf8_lossy(frame));
                }
            }
            Ok(())
        })?;
    }

    /// Length prefixes that lie, overflow, or point into the next message.
    #[test]
    fn hostile_length_prefixes(
        prefixes in prop::collection::vec(prop_oneof![
            "[0-9]{1,4}",
            "[0-9]{18,40}",
            Just("18446744073709551615".to_owned()),
            Just("0".to_owned()),
            Just("00000000000000000000000001".to_owned()),
        ], 1..6),
        choices in prop::collection::vec((any::<u8>(), any::<bool>()), 1..6),
        cuts in prop::collection::vec(any::<usize>(), 0..16),
    ) {
        let mut stream = Vec::new();
        let messages = valid_stream(&choices);
        for prefix in &prefixes {
            stream.extend_from_slice(prefix.as_bytes());
            stream.extend_from_slice(b"\r\n");
        }
        stream.extend_from_slice(&messages);
        let dog = watchdog();
        dog.run("frame decoder (length prefixes)", &stream, || -> Result<(), TestCaseError> {
            let clean = decode_checked(4096, &[&messages])?;
            let hostile = decode_checked(4096, &split(&stream, &cuts))?;
            // Whatever the prefixes said, every message of the valid stream still comes out.
            prop_assert_eq!(&hostile.frames, &clean.frames);
            Ok(())
        })?;
    }
}

/// A line far over the limit streamed in 64 KiB chunks is skipped without being held, reported
/// with its true size, and the message after it is intact.
#[test]
fn a_huge_line_is_skipped_with_bounded_memory() {
    for (size, chunk) in [
        (3 << 20, 64 << 10),
        (DEFAULT_MAX_FRAME_BYTES + 1, 7),
        (DEFAULT_MAX_FRAME_BYTES + 2, 4096),
    ] {
        let mut stream = vec![b'a'; size];
        stream.extend_from_slice(b"\r\n{\"after\":1}\r\n");
        let mut decoder = FrameDecoder::new(DEFAULT_MAX_FRAME_BYTES);
        let mut items = Vec::new();
        let mut peak = 0;
        for piece in stream.chunks(chunk) {
            decoder.push(piece);
            while let Some(item) = decoder.next_item() {
                items.push(item);
            }
            peak = peak.max(decoder.buffered_len());
        }
        assert!(peak <= DEFAULT_MAX_FRAME_BYTES + 1, "held {peak} bytes");
        assert!(
            matches!(&items[0], Item::Error(traptor_core::protocol::FrameError::Oversized { size: s, .. }) if *s == size),
            "{:?}",
            &items[..1]
        );
        assert_eq!(items[1], Item::Frame(b"{\"after\":1}".to_vec()));
        assert_eq!(decoder.finish(), None);
    }
}
