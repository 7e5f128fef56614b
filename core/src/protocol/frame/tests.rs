//! Tests of the frame decoder: both framings, keep-alives, every kind of framing error, and
//! properties over random streams, garbage and chunk splits.

use proptest::prelude::*;

use super::*;

/// Pushes each chunk and drains the decoder after it, as a stream reader does.
fn decode(decoder: &mut FrameDecoder, chunks: &[&[u8]]) -> Vec<Item> {
    let mut items = Vec::new();
    for chunk in chunks {
        decoder.push(chunk);
        while let Some(item) = decoder.next_item() {
            items.push(item);
        }
    }
    items
}

fn decode_bytes(max: usize, bytes: &[u8]) -> Vec<Item> {
    decode(&mut FrameDecoder::new(max), &[bytes])
}

fn frame(text: &str) -> Item {
    Item::Frame(text.as_bytes().to_vec())
}

/// `delimited=length` framing: the size counts the message and its `\r\n`.
fn length_framed(message: &[u8]) -> Vec<u8> {
    let mut out = format!("{}\r\n", message.len() + 2).into_bytes();
    out.extend_from_slice(message);
    out.extend_from_slice(b"\r\n");
    out
}

#[test]
fn newline_delimited_messages_and_keep_alives() {
    let items = decode_bytes(1000, b"{\"a\":1}\r\n\r\n{\"b\":2}\n\n  \r\n");
    assert_eq!(
        items,
        [
            frame("{\"a\":1}"),
            Item::KeepAlive,
            frame("{\"b\":2}"),
            Item::KeepAlive,
            Item::KeepAlive
        ]
    );
}

#[test]
fn length_delimited_messages_with_keep_alives_before_each_length() {
    let mut stream = b"\r\n".to_vec();
    stream.extend(length_framed(b"{\"a\":1}"));
    stream.extend(b"\r\n\r\n");
    stream.extend(length_framed(b"{\"text\":\"x\"}"));
    let mut decoder = FrameDecoder::new(1000);
    let items = decode(&mut decoder, &[&stream]);
    assert_eq!(
        items,
        [
            Item::KeepAlive,
            frame("{\"a\":1}"),
            Item::KeepAlive,
            Item::KeepAlive,
            frame("{\"text\":\"x\"}")
        ]
    );
    let stats = decoder.stats();
    assert_eq!((stats.frames, stats.keep_alives, stats.errors), (2, 3, 0));
    assert_eq!(stats.bytes_in, stream.len() as u64);
}

#[test]
fn a_message_split_anywhere_across_pushes_comes_out_whole() {
    let stream = [length_framed(b"{\"a\":\"bc\"}"), b"{\"d\":1}\r\n".to_vec()].concat();
    for cut in 0..=stream.len() {
        let items = decode(
            &mut FrameDecoder::new(100),
            &[&stream[..cut], &stream[cut..]],
        );
        assert_eq!(
            items,
            [frame("{\"a\":\"bc\"}"), frame("{\"d\":1}")],
            "cut at {cut}"
        );
    }
}

#[test]
fn a_prefix_longer_than_its_message_is_reported_and_the_message_kept() {
    // truncated message: the prefix announces 50 bytes, the line has 9
    let items = decode_bytes(1000, b"50\r\n{\"a\":1}\r\n{\"b\":2}\r\n");
    assert_eq!(
        items,
        [
            Item::Error(FrameError::LengthMismatch {
                declared: 50,
                actual: 9
            }),
            frame("{\"a\":1}"),
            frame("{\"b\":2}")
        ]
    );
}

#[test]
fn a_prefix_pointing_into_the_next_message_does_not_lose_either() {
    let mut stream = b"12\r\n{\"a\":1}\r\n".to_vec();
    stream.extend(length_framed(b"{\"b\":2}"));
    let items = decode_bytes(1000, &stream);
    assert_eq!(
        items,
        [
            Item::Error(FrameError::LengthMismatch {
                declared: 12,
                actual: 9
            }),
            frame("{\"a\":1}"),
            frame("{\"b\":2}")
        ]
    );
}

#[test]
fn a_truncated_length_delimited_message_loses_only_itself() {
    // a 30-byte message lost all but 6 bytes; the next prefix ends up on the same line
    let mut stream = b"30\r\n{\"a\":1".to_vec();
    stream.extend(length_framed(b"{\"b\":2}"));
    let items = decode_bytes(1000, &stream);
    assert_eq!(
        items,
        [
            Item::Error(FrameError::LengthMismatch {
                declared: 30,
                actual: 9
            }),
            frame("{\"a\":19"),
            frame("{\"b\":2}")
        ]
    );
}

#[test]
fn a_prefix_without_its_message_is_reported() {
    let mut stream = b"40\r\n".to_vec();
    stream.extend(length_framed(b"{}"));
    let items = decode_bytes(1000, &stream);
    assert_eq!(
        items,
        [
            Item::Error(FrameError::MissingPayload { declared: 40 }),
            frame("{}")
        ]
    );
}

#[test]
fn bad_length_prefixes_are_skipped_with_a_reason() {
    let items = decode_bytes(1000, b"0\r\n99999999999999999999999\r\n{}\r\n");
    assert!(
        matches!(&items[0], Item::Error(FrameError::BadLengthPrefix { prefix, .. }) if prefix == "0")
    );
    assert!(
        matches!(&items[1], Item::Error(FrameError::BadLengthPrefix { why, .. }) if why.contains("digits"))
    );
    assert_eq!(items[2], frame("{}"));
    assert_eq!(items.len(), 3);
    assert!(items[1].clone() != items[0]);
    if let Item::Error(e) = &items[0] {
        assert!(e.to_string().contains("cannot be empty"), "{e}");
    }
}

#[test]
fn an_oversized_line_in_one_chunk_is_skipped_and_reported_with_its_size() {
    let big = format!("{{\"x\":\"{}\"}}", "a".repeat(100));
    let stream = format!("{{}}\r\n{big}\r\n{{\"ok\":1}}\r\n");
    let items = decode_bytes(50, stream.as_bytes());
    assert_eq!(
        items,
        [
            frame("{}"),
            Item::Error(FrameError::Oversized {
                size: big.len(),
                limit: 50
            }),
            frame("{\"ok\":1}")
        ]
    );
    let text = match &items[1] {
        Item::Error(e) => e.to_string(),
        _ => unreachable!(),
    };
    assert!(
        text.contains("108 bytes") && text.contains("limit of 50"),
        "{text}"
    );
}

#[test]
fn an_oversized_line_arriving_in_small_chunks_is_never_buffered_whole() {
    let big = format!("{{\"x\":\"{}\"}}", "a".repeat(10_000));
    let stream = format!("{big}\r\n{{\"ok\":1}}\r\n");
    let mut decoder = FrameDecoder::new(100);
    let mut items = Vec::new();
    for chunk in stream.as_bytes().chunks(7) {
        decoder.push(chunk);
        assert!(decoder.buffered_len() <= 100 + 1 + 7);
        while let Some(item) = decoder.next_item() {
            items.push(item);
        }
        assert!(decoder.buffered_len() <= 100 + 1);
    }
    assert_eq!(
        items,
        [
            Item::Error(FrameError::Oversized {
                size: big.len(),
                limit: 100
            }),
            frame("{\"ok\":1}")
        ]
    );
    assert_eq!(decoder.stats().bytes_discarded, big.len() as u64 + 2);
}

#[test]
fn a_message_of_exactly_the_limit_passes() {
    let message = format!("{{\"x\":\"{}\"}}", "a".repeat(42)); // 50 bytes
    let stream = length_framed(message.as_bytes());
    for chunk in [1, 3, stream.len()] {
        let chunks: Vec<&[u8]> = stream.chunks(chunk).collect();
        assert_eq!(
            decode(&mut FrameDecoder::new(50), &chunks),
            [frame(&message)],
            "chunks of {chunk}"
        );
    }
}

#[test]
fn binary_junk_between_messages_only_costs_its_own_line() {
    let mut stream = length_framed(b"{\"a\":1}");
    stream.extend(b"\x00\xff\xfe junk \x01\n");
    stream.extend(length_framed(b"{\"b\":2}"));
    stream.extend(b"\xc3\x28");
    stream.extend(length_framed(b"{\"c\":3}"));
    let items = decode_bytes(1000, &stream);
    let frames: Vec<&Item> = items
        .iter()
        .filter(|i| matches!(i, Item::Frame(f) if f.starts_with(b"{")))
        .collect();
    assert_eq!(
        frames,
        [
            &frame("{\"a\":1}"),
            &frame("{\"b\":2}"),
            &frame("{\"c\":3}")
        ]
    );
}

#[test]
fn finish_reports_a_message_cut_by_the_end_of_the_body() {
    let mut decoder = FrameDecoder::new(100);
    let items = decode(&mut decoder, &[b"{\"a\":1}\r\n{\"b\":"]);
    assert_eq!(items, [frame("{\"a\":1}")]);
    assert_eq!(decoder.finish(), Some(FrameError::Truncated { bytes: 5 }));
    assert_eq!(decoder.buffered_len(), 0);
    // ready for the next connection's body
    assert_eq!(decode(&mut decoder, &[b"{}\r\n"]), [frame("{}")]);
    assert_eq!(decoder.finish(), None);
    assert_eq!(decoder.stats().errors, 1);
}

#[test]
fn finish_after_a_clean_end_or_a_keep_alive_fragment_is_not_an_error() {
    let mut decoder = FrameDecoder::new(100);
    decode(&mut decoder, &[b"{}\r\n\r"]);
    assert_eq!(decoder.finish(), None);
}

// ---- properties ----

/// Realistic messages: JSON objects on one line, unique so they can be found again.
fn arb_messages() -> impl Strategy<Value = Vec<Vec<u8>>> {
    prop::collection::vec("[a-z0-9 ]{0,40}", 0..30).prop_map(|texts| {
        texts
            .into_iter()
            .enumerate()
            .map(|(i, t)| {
                serde_json::to_vec(&serde_json::json!({"id_str": i.to_string(), "text": t}))
                    .unwrap()
            })
            .collect()
    })
}

/// How one message is sent: keep-alives before it, and length-delimited or not.
#[derive(Debug, Clone)]
struct Framing {
    keep_alives: usize,
    length_delimited: bool,
    bare_newline: bool,
}

fn arb_framing() -> impl Strategy<Value = Framing> {
    (0..3usize, any::<bool>(), any::<bool>()).prop_map(
        |(keep_alives, length_delimited, bare_newline)| Framing {
            keep_alives,
            length_delimited,
            bare_newline,
        },
    )
}

fn serialize(message: &[u8], framing: &Framing, out: &mut Vec<u8>) {
    for _ in 0..framing.keep_alives {
        out.extend(b"\r\n");
    }
    let terminator: &[u8] = if framing.bare_newline { b"\n" } else { b"\r\n" };
    if framing.length_delimited {
        out.extend(format!("{}\r\n", message.len() + terminator.len()).into_bytes());
    }
    out.extend(message);
    out.extend(terminator);
}

/// Junk as streams really get it: bogus length prefixes, cut-off messages, binary noise, and
/// stretches longer than the frame limit.
fn arb_garbage() -> impl Strategy<Value = Vec<u8>> {
    let piece = prop_oneof![
        prop::collection::vec(any::<u8>(), 0..60),
        "[0-9]{1,3}\r\n".prop_map(String::into_bytes),
        "[0-9]{1,3}".prop_map(String::into_bytes),
        "\\{\"id_str\":\"[0-9]{0,3}".prop_map(String::into_bytes),
        Just(b"\r\n".to_vec()),
        Just(vec![b'x'; 300]),
    ];
    prop::collection::vec(piece, 1..4).prop_map(|pieces| pieces.concat())
}

/// Splits `bytes` at the given (unsorted, possibly repeated) cut points.
fn split<'a>(bytes: &'a [u8], cuts: &[usize]) -> Vec<&'a [u8]> {
    let mut points: Vec<usize> = cuts.iter().map(|c| c % (bytes.len() + 1)).collect();
    points.sort_unstable();
    let mut chunks = Vec::new();
    let mut from = 0;
    for p in points {
        chunks.push(&bytes[from..p]);
        from = p;
    }
    chunks.push(&bytes[from..]);
    chunks
}

fn frames_of(items: &[Item]) -> Vec<Vec<u8>> {
    items
        .iter()
        .filter_map(|i| {
            if let Item::Frame(f) = i {
                Some(f.clone())
            } else {
                None
            }
        })
        .collect()
}

fn is_subsequence(needles: &[Vec<u8>], haystack: &[Vec<u8>]) -> bool {
    let mut rest = haystack.iter();
    needles.iter().all(|n| rest.any(|h| h == n))
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(200))]

    #[test]
    fn clean_streams_decode_to_exactly_the_messages(
        messages in arb_messages(),
        framings in prop::collection::vec(arb_framing(), 30),
        cuts in prop::collection::vec(any::<usize>(), 0..20),
    ) {
        let mut stream = Vec::new();
        for (message, framing) in messages.iter().zip(&framings) {
            serialize(message, framing, &mut stream);
        }
        let mut decoder = FrameDecoder::new(200);
        let items = decode(&mut decoder, &split(&stream, &cuts));
        prop_assert_eq!(frames_of(&items), messages.clone());
        let keep_alives: usize = framings.iter().take(messages.len()).map(|f| f.keep_alives).sum();
        prop_assert_eq!(items.iter().filter(|i| **i == Item::KeepAlive).count(), keep_alives);
        prop_assert!(items.iter().all(|i| !matches!(i, Item::Error(_))), "{:?}", items);
        prop_assert_eq!(decoder.finish(), None);
    }

    /// Garbage (any bytes) before some messages. A message is guaranteed back when its line
    /// starts right after a line feed: it is length-delimited (its prefix line ends in one), or
    /// the garbage before it ends in one, or there is no garbage before it.
    #[test]
    fn messages_after_a_line_boundary_survive_garbage(
        messages in arb_messages(),
        framings in prop::collection::vec(arb_framing(), 30),
        garbage in prop::collection::vec(prop::option::weighted(0.4, arb_garbage()), 30),
        cuts in prop::collection::vec(any::<usize>(), 0..20),
    ) {
        let mut stream = Vec::new();
        let mut guaranteed = Vec::new();
        for ((message, framing), junk) in messages.iter().zip(&framings).zip(&garbage) {
            let after_line_feed = match junk {
                Some(junk) => {
                    stream.extend(junk);
                    junk.is_empty() || junk.ends_with(b"\n") || framing.length_delimited
                }
                None => true,
            };
            serialize(message, framing, &mut stream);
            if after_line_feed {
                guaranteed.push(message.clone());
            }
        }
        let mut decoder = FrameDecoder::new(200);
        let items = decode(&mut decoder, &split(&stream, &cuts));
        let frames = frames_of(&items);
        prop_assert!(is_subsequence(&guaranteed, &frames), "guaranteed {:?}\nframes {:?}", guaranteed, frames);
        // every frame is at most the limit, and the counters agree with what came out
        prop_assert!(frames.iter().all(|f| f.len() <= 200));
        prop_assert_eq!(decoder.stats().frames as usize, frames.len());
    }

    #[test]
    fn arbitrary_bytes_never_panic_and_memory_stays_bounded(
        bytes in prop::collection::vec(prop_oneof![any::<u8>(), Just(b'\n'), Just(b'1'), Just(b'{')], 0..2000),
        cuts in prop::collection::vec(any::<usize>(), 0..40),
        max in 1usize..64,
    ) {
        let mut decoder = FrameDecoder::new(max);
        let chunks = split(&bytes, &cuts);
        let largest_chunk = chunks.iter().map(|c| c.len()).max().unwrap_or(0);
        for chunk in chunks {
            decoder.push(chunk);
            prop_assert!(decoder.buffered_len() <= max + 1 + chunk.len());
            while let Some(item) = decoder.next_item() {
                if let Item::Frame(f) = item {
                    prop_assert!(!f.is_empty() && f.len() <= max);
                    prop_assert!(!f.contains(&b'\n'));
                }
            }
            prop_assert!(decoder.buffered_len() <= max + 1);
            prop_assert!(decoder.buf.capacity() <= 2 * (max + 1 + largest_chunk).max(8));
        }
        let _ = decoder.finish();
        prop_assert_eq!(decoder.stats().bytes_in, bytes.len() as u64);
    }
}

#[test]
fn lent_frames_are_the_message_bytes_and_the_buffer_is_reused_after_them() {
    let mut decoder = FrameDecoder::new(1000);
    decoder.push(b"{\"a\":1}\r\n{\"b\"");
    assert_eq!(decoder.next_item_ref(), Some(ItemRef::Frame(b"{\"a\":1}")));
    assert_eq!(decoder.next_item_ref(), None);
    assert_eq!(decoder.buffered_len(), 4, "the unfinished line is kept");
    decoder.push(b":2}\n");
    assert_eq!(decoder.next_item_ref(), Some(ItemRef::Frame(b"{\"b\":2}")));
    assert_eq!(decoder.buffered_len(), 0, "a lent frame counts as consumed");
    assert_eq!(decoder.next_item_ref(), None);
    decoder.push(b"\r\n{\"c\":3}\r\n");
    assert_eq!(decoder.next_item_ref(), Some(ItemRef::KeepAlive));
    assert_eq!(
        decoder.next_item_ref().map(ItemRef::into_owned),
        Some(Item::Frame(b"{\"c\":3}".to_vec()))
    );
    assert_eq!(decoder.stats().frames, 3);
}
