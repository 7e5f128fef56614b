//! The frame decoder under arbitrary bytes cut at arbitrary places: no panic, memory bounded
//! by the frame limit, and the same frames whatever the chunking (a stream's frames must not
//! depend on how TCP cut it).
#![no_main]

use libfuzzer_sys::fuzz_target;
use traptor_core::protocol::{FrameDecoder, Item};

/// Small, so that the fuzzer reaches the oversized-frame paths often.
const MAX_FRAME: usize = 256;

fn frames(chunks: &[&[u8]]) -> Vec<Vec<u8>> {
    let mut decoder = FrameDecoder::new(MAX_FRAME);
    let mut frames = Vec::new();
    for chunk in chunks {
        decoder.push(chunk);
        while let Some(item) = decoder.next_item() {
            if let Item::Frame(frame) = item {
                assert!(!frame.is_empty() && frame.len() <= MAX_FRAME);
                frames.push(frame);
            }
        }
        assert!(decoder.buffered_len() <= MAX_FRAME + 1, "unbounded buffer");
    }
    decoder.finish();
    assert_eq!(decoder.buffered_len(), 0);
    frames
}

fuzz_target!(|data: &[u8]| {
    let Some((&cut_seed, body)) = data.split_first() else {
        return;
    };
    let whole = frames(&[body]);
    // Cut into pieces of 1 + cut_seed % 17 bytes.
    let piece = 1 + usize::from(cut_seed) % 17;
    let chunks: Vec<&[u8]> = body.chunks(piece).collect();
    assert_eq!(frames(&chunks), whole, "frames depend on the chunking");
});
