//! Byte classes of tweet text, 64 bytes at a time, for the track tokenizer.
//!
//! Splitting a tweet's text into chunks and telling plain words from the rest went a byte at a
//! time, with a branch per byte; it was the largest single cost of track matching. Here a block
//! of text becomes three bit masks (one bit per byte), computed with SSE2 on x86_64 (part of its
//! baseline, so no runtime detection is needed) and by a portable loop elsewhere; the tokenizer
//! then walks chunk boundaries with bit operations.

/// The classes of the bytes of one block: bit `i` describes byte `i`. Bits past the end of a
/// short block are clear.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct BlockClasses {
    /// ASCII whitespace, as `char::is_whitespace` has it: `\t`, `\n`, `\x0b`, `\x0c`, `\r`, ` `.
    pub space: u64,
    /// ASCII word characters: letters, digits and `_`.
    pub word: u64,
    /// The first byte of a multi-byte UTF-8 character (0xC0 and above).
    pub lead: u64,
}

/// Bytes per block.
pub const BLOCK: usize = 64;

/// The classes of `block` (at most [`BLOCK`] bytes).
#[inline]
pub fn classify(block: &[u8]) -> BlockClasses {
    debug_assert!(block.len() <= BLOCK);
    if let Ok(full) = <&[u8; BLOCK]>::try_from(block) {
        return classify_full(full);
    }
    // A short last block: zero bytes are none of the classes, and the bits past the end are
    // cleared all the same.
    let mut padded = [0u8; BLOCK];
    padded[..block.len()].copy_from_slice(block);
    let classes = classify_full(&padded);
    let valid = (1u64 << block.len()) - 1;
    BlockClasses {
        space: classes.space & valid,
        word: classes.word & valid,
        lead: classes.lead & valid,
    }
}

#[cfg(target_arch = "x86_64")]
#[inline]
fn classify_full(block: &[u8; BLOCK]) -> BlockClasses {
    let mut classes = BlockClasses::default();
    for (i, chunk) in block.chunks_exact(16).enumerate() {
        let (space, word, lead) = sse2::classify16(chunk.try_into().expect("16 bytes"));
        let shift = 16 * i;
        classes.space |= u64::from(space) << shift;
        classes.word |= u64::from(word) << shift;
        classes.lead |= u64::from(lead) << shift;
    }
    classes
}

#[cfg(not(target_arch = "x86_64"))]
#[inline]
fn classify_full(block: &[u8; BLOCK]) -> BlockClasses {
    classify_scalar(block)
}

/// The portable definition of the classes (and the reference the SIMD path is tested against).
#[cfg_attr(target_arch = "x86_64", allow(dead_code))]
fn classify_scalar(block: &[u8; BLOCK]) -> BlockClasses {
    let mut classes = BlockClasses::default();
    for (i, &b) in block.iter().enumerate() {
        let bit = 1u64 << i;
        if matches!(b, b'\t' | b'\n' | b'\x0b' | b'\x0c' | b'\r' | b' ') {
            classes.space |= bit;
        }
        if b.is_ascii_alphanumeric() || b == b'_' {
            classes.word |= bit;
        }
        if b >= 0xC0 {
            classes.lead |= bit;
        }
    }
    classes
}

#[cfg(target_arch = "x86_64")]
mod sse2 {
    use std::arch::x86_64::{
        __m128i, _mm_and_si128, _mm_cmpeq_epi8, _mm_cmpgt_epi8, _mm_cmplt_epi8, _mm_loadu_si128,
        _mm_movemask_epi8, _mm_or_si128, _mm_set1_epi8,
    };

    /// (space, word, lead) masks of 16 bytes.
    #[inline(always)]
    pub fn classify16(bytes: &[u8; 16]) -> (u16, u16, u16) {
        // SAFETY: SSE2 is part of the x86_64 baseline; the load reads exactly the 16 bytes of
        // `bytes` and `loadu` has no alignment requirement.
        unsafe {
            let v = _mm_loadu_si128(bytes.as_ptr() as *const __m128i);
            let splat = |b: u8| _mm_set1_epi8(b as i8);
            // Signed compares: bytes from 0x80 are negative, so below every ASCII bound.
            let between = |low: u8, high: u8| {
                _mm_and_si128(
                    _mm_cmpgt_epi8(v, splat(low - 1)),
                    _mm_cmplt_epi8(v, splat(high + 1)),
                )
            };
            let space = _mm_or_si128(_mm_cmpeq_epi8(v, splat(b' ')), between(b'\t', b'\r'));
            // ASCII letters of either case: `b | 0x20` in `a..=z` (only letters land there).
            let folded = _mm_or_si128(v, splat(0x20));
            let letter = _mm_and_si128(
                _mm_cmpgt_epi8(folded, splat(b'a' - 1)),
                _mm_cmplt_epi8(folded, splat(b'z' + 1)),
            );
            let word = _mm_or_si128(
                _mm_or_si128(letter, between(b'0', b'9')),
                _mm_cmpeq_epi8(v, splat(b'_')),
            );
            // 0xC0..=0xFF are -64..=-1 as signed bytes.
            let lead = _mm_and_si128(_mm_cmpgt_epi8(v, splat(0xBF)), _mm_cmplt_epi8(v, splat(0)));
            (
                _mm_movemask_epi8(space) as u16,
                _mm_movemask_epi8(word) as u16,
                _mm_movemask_epi8(lead) as u16,
            )
        }
    }
}

/// Appends the ASCII prefix of `bytes` to `out`, lowercased, and returns its length: the
/// copy and the lowercasing in one pass, eight bytes at a time.
#[inline]
pub fn push_lowercase_ascii_prefix(out: &mut Vec<u8>, bytes: &[u8]) -> usize {
    const ONES: u64 = u64::MAX / 255;
    const HIGHS: u64 = ONES << 7;
    out.reserve(bytes.len());
    let mut pos = 0;
    while let Some(chunk) = bytes.get(pos..pos + 8) {
        let word = u64::from_le_bytes(chunk.try_into().expect("eight bytes"));
        if word & HIGHS != 0 {
            break;
        }
        // Every byte is below 0x80, so these sums stay within their byte: the high bit of a
        // byte of `from_a` is set for bytes >= `A`, that of `past_z` for bytes > `Z`.
        let from_a = word.wrapping_add(ONES * u64::from(0x80 - b'A'));
        let past_z = word.wrapping_add(ONES * u64::from(0x80 - b'Z' - 1));
        let capitals = from_a & !past_z & HIGHS;
        out.extend_from_slice(&(word | capitals >> 2).to_le_bytes());
        pos += 8;
    }
    while let Some(&b) = bytes.get(pos).filter(|b| b.is_ascii()) {
        out.push(b.to_ascii_lowercase());
        pos += 1;
    }
    pos
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn simd_classes_equal_the_portable_definition_for_every_byte_in_every_lane() {
        for b in 0..=255u8 {
            for lane in [0, 1, 15, 16, 31, 47, 63] {
                let mut block = [b'a'; BLOCK];
                block[lane] = b;
                assert_eq!(
                    classify_full(&block),
                    classify_scalar(&block),
                    "byte {b:#x} at {lane}"
                );
            }
        }
        let mixed: Vec<u8> = (0..BLOCK as u32).map(|i| (i * 37 + 11) as u8).collect();
        let mixed: [u8; BLOCK] = mixed.try_into().unwrap();
        assert_eq!(classify_full(&mixed), classify_scalar(&mixed));
    }

    #[test]
    fn short_blocks_have_no_bits_past_their_end() {
        let text = b"a b_\xc3\xa9\tz9 ";
        for len in 0..=text.len() {
            let classes = classify(&text[..len]);
            let mut padded = [0u8; BLOCK];
            padded[..len].copy_from_slice(&text[..len]);
            let expected = classify_scalar(&padded);
            assert_eq!(classes, expected, "{len}");
            let beyond = !((1u64 << len) - 1);
            assert_eq!((classes.space | classes.word | classes.lead) & beyond, 0);
        }
        assert_eq!(classify(b"a b").space, 0b010);
        assert_eq!(classify(b"a b").word, 0b101);
        assert_eq!(classify("é".as_bytes()).lead, 0b01);
    }

    #[test]
    fn the_ascii_prefix_ends_at_the_first_high_byte_and_is_lowercased() {
        for len in 0..40 {
            for at in 0..=len {
                // Every ASCII byte, the letters' neighbours `@`, `[`, `` ` `` and `{` included.
                let mut bytes: Vec<u8> = (0..len).map(|i| (i * 37 % 128) as u8).collect();
                if at < len {
                    bytes[at] = 0x80 | (at as u8);
                }
                let mut out = b"kept".to_vec();
                assert_eq!(
                    push_lowercase_ascii_prefix(&mut out, &bytes),
                    at,
                    "{len} {at}"
                );
                let expected: Vec<u8> = b"kept"
                    .iter()
                    .chain(&bytes[..at])
                    .map(u8::to_ascii_lowercase)
                    .collect();
                assert_eq!(out, expected, "{len} {at}");
            }
        }
    }

    #[test]
    fn every_ascii_byte_is_lowercased_as_std_does_in_every_lane() {
        for b in 0..0x80u8 {
            for lane in 0..8 {
                let mut bytes = *b"abcdefgh";
                bytes[lane] = b;
                let mut out = Vec::new();
                assert_eq!(push_lowercase_ascii_prefix(&mut out, &bytes), 8);
                assert_eq!(
                    out,
                    bytes.to_ascii_lowercase(),
                    "byte {b:#x} in lane {lane}"
                );
            }
        }
    }
}
