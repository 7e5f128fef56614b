//! A validating JSON scanner for the enrichment hot path.
//!
//! Enrichment reads a dozen fields of a 2–6 KB tweet and must still reject any frame that is not
//! JSON. A serde pass does both but pays for its generality on every one of a tweet's hundreds
//! of values. [`Scanner`] walks the bytes once: it skips values it is not asked for, checking
//! them exactly as `serde_json::from_slice::<serde::de::IgnoredAny>` does (same grammar for
//! numbers, strings, escapes and literals, same whitespace, no depth limit on skipped values),
//! and hands out the raw bytes of the values its caller reads.
//!
//! Strings are also checked to be UTF-8 (as a `&str` input would be), so an accepted frame is
//! UTF-8 as a whole: outside strings, JSON has only ASCII.
//!
//! A scan ends in [`Stop::Invalid`] when serde_json would reject the bytes, and in
//! [`Stop::Unsure`] when the caller met something it leaves to serde (an escaped key, a value
//! of an unexpected type, nesting deeper than it handles). Both send the frame down the serde
//! path, so the scanner only has to be right about what it accepts.

/// Why a scan stopped before the end.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stop {
    /// serde_json rejects the input.
    Invalid,
    /// The input may be valid but is left to serde (see the module doc).
    Unsure,
}

/// The result of a scanning step.
pub type Scan<T> = Result<T, Stop>;

/// Nesting of typed values (not skipped ones) past which the caller leaves the frame to serde,
/// well below serde_json's recursion limit of 128.
pub const MAX_TYPED_DEPTH: usize = 32;

/// What a string literal spans in the input.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RawString {
    /// First byte after the opening quote.
    pub start: usize,
    /// The closing quote.
    pub end: usize,
    /// The literal has at least one backslash escape.
    pub escaped: bool,
    /// Every byte of the literal is ASCII.
    pub ascii: bool,
}

/// Where a string literal ended and what it held (see [`Scanner::string_end`]).
#[derive(Clone, Copy)]
struct StringEnd {
    /// The closing quote.
    quote: usize,
    kind: StringKind,
}

impl StringEnd {
    #[inline(always)]
    fn escaped(self) -> bool {
        matches!(self.kind, StringKind::Escaped | StringKind::EscapedNonAscii)
    }

    #[inline(always)]
    fn ascii(self) -> bool {
        matches!(self.kind, StringKind::Plain | StringKind::Escaped)
    }
}

/// The two flags of a [`RawString`] as one enum, whose unused values leave room for the
/// `Result` tag inside the 16 bytes of a [`StringEnd`].
#[derive(Clone, Copy)]
enum StringKind {
    Plain,
    Escaped,
    NonAscii,
    EscapedNonAscii,
}

impl StringKind {
    #[inline(always)]
    fn of(escaped: bool, ascii: bool) -> StringKind {
        match (escaped, ascii) {
            (false, true) => StringKind::Plain,
            (true, true) => StringKind::Escaped,
            (false, false) => StringKind::NonAscii,
            (true, false) => StringKind::EscapedNonAscii,
        }
    }
}

/// A stack of booleans, in one word up to 64 deep (a skipped value rarely nests deeper).
#[derive(Default)]
struct BitStack {
    bits: u64,
    depth: usize,
    deeper: Vec<bool>,
}

impl BitStack {
    #[inline]
    fn push(&mut self, value: bool) {
        if self.depth >= 64 {
            self.deeper.push(value);
        } else {
            self.bits = (self.bits << 1) | u64::from(value);
        }
        self.depth += 1;
    }

    #[inline]
    fn pop(&mut self) {
        self.depth -= 1;
        if self.depth >= 64 {
            self.deeper.pop();
        } else {
            self.bits >>= 1;
        }
    }

    #[inline]
    fn last(&self) -> Option<bool> {
        match self.depth {
            0 => None,
            d if d > 64 => self.deeper.last().copied(),
            _ => Some(self.bits & 1 == 1),
        }
    }
}

/// A position in a JSON document being scanned.
pub struct Scanner<'a> {
    bytes: &'a [u8],
    pos: usize,
}

const ONES: u64 = u64::MAX / 255;
const HIGHS: u64 = ONES << 7;

/// Bytes that end the fast part of a string scan: `"`, `\` and control characters.
#[inline(always)]
fn special_bytes(chunk: u64) -> u64 {
    let control = chunk.wrapping_sub(ONES * 0x20) & !chunk;
    let quote = chunk ^ (ONES * u64::from(b'"'));
    let quote = quote.wrapping_sub(ONES) & !quote;
    let backslash = chunk ^ (ONES * u64::from(b'\\'));
    let backslash = backslash.wrapping_sub(ONES) & !backslash;
    (control | quote | backslash) & HIGHS
}

impl<'a> Scanner<'a> {
    pub fn new(bytes: &'a [u8]) -> Scanner<'a> {
        Scanner { bytes, pos: 0 }
    }

    /// The next byte that is not whitespace (`None` at the end), not consumed.
    #[inline(always)]
    pub fn peek(&mut self) -> Option<u8> {
        loop {
            let b = *self.bytes.get(self.pos)?;
            if b > b' ' || !matches!(b, b' ' | b'\n' | b'\t' | b'\r') {
                return Some(b);
            }
            self.pos += 1;
        }
    }

    /// Consumes `byte` (after whitespace) or fails with [`Stop::Invalid`].
    #[inline(always)]
    pub fn expect(&mut self, byte: u8) -> Scan<()> {
        if self.peek() == Some(byte) {
            self.pos += 1;
            Ok(())
        } else {
            Err(Stop::Invalid)
        }
    }

    /// After the last value: only whitespace may follow.
    pub fn finish(&mut self) -> Scan<()> {
        match self.peek() {
            None => Ok(()),
            Some(_) => Err(Stop::Invalid),
        }
    }

    /// Consumes `null` if it comes next; `Ok(false)` leaves anything else unread.
    #[inline]
    pub fn null(&mut self) -> Scan<bool> {
        if self.peek() != Some(b'n') {
            return Ok(false);
        }
        self.literal(b"null")?;
        Ok(true)
    }

    /// Reads a string literal (the next value must be one, else [`Stop::Unsure`]: a value of
    /// another type, which the caller's serde fallback reports).
    #[inline]
    pub fn string(&mut self) -> Scan<RawString> {
        match self.peek() {
            Some(b'"') => {
                self.pos += 1;
                self.string_body()
            }
            Some(_) => Err(Stop::Unsure),
            None => Err(Stop::Invalid),
        }
    }

    /// [`Scanner::string`] for a plain ASCII string shorter than 32 bytes right at the position
    /// (ids, dates, names: most strings a tweet view reads), found inline rather than by the
    /// call of the general scan. `None` for anything else, with nothing consumed.
    #[inline(always)]
    pub fn short_plain_string(&mut self) -> Option<RawString> {
        if self.bytes.get(self.pos) != Some(&b'"') {
            return None;
        }
        let start = self.pos + 1;
        let end = short_plain_string_end(self.bytes, start)?;
        self.pos = end + 1;
        Some(RawString {
            start,
            end,
            escaped: false,
            ascii: true,
        })
    }

    /// Starts an object (`{` consumed) or fails: [`Stop::Unsure`] when another value is there.
    #[inline]
    pub fn begin_object(&mut self) -> Scan<()> {
        self.begin(b'{')
    }

    /// Starts an array (`[` consumed) or fails: [`Stop::Unsure`] when another value is there.
    #[inline]
    pub fn begin_array(&mut self) -> Scan<()> {
        self.begin(b'[')
    }

    fn begin(&mut self, open: u8) -> Scan<()> {
        match self.peek() {
            Some(b) if b == open => {
                self.pos += 1;
                Ok(())
            }
            Some(_) => Err(Stop::Unsure),
            None => Err(Stop::Invalid),
        }
    }

    /// The next key of an object being read (`first` for the one right after `{`), with its
    /// `:` consumed; `None` at the closing `}`. Keys with escapes are left to serde.
    #[inline(always)]
    pub fn next_key(&mut self, first: bool) -> Scan<Option<&'a [u8]>> {
        // Compact JSON: `,"key":` (or `"key":` first), the key short, ASCII and unescaped. This
        // part is inlined into every object loop; the rest is a call, so that the common case
        // pays for no register saves.
        let quote = self.pos + usize::from(!first);
        if (first || self.bytes.get(self.pos) == Some(&b','))
            && self.bytes.get(quote) == Some(&b'"')
        {
            if let Some(end) = short_key_end(self.bytes, quote + 1) {
                self.pos = end + 2;
                return Ok(Some(&self.bytes[quote + 1..end]));
            }
        }
        self.next_key_general(first)
    }

    /// [`Scanner::next_key`] for whitespace, the closing `}`, and long, escaped or non-ASCII
    /// keys.
    #[inline(never)]
    fn next_key_general(&mut self, first: bool) -> Scan<Option<&'a [u8]>> {
        match self.peek() {
            Some(b'}') => {
                self.pos += 1;
                return Ok(None);
            }
            Some(b',') if !first => self.pos += 1,
            _ if first => {}
            _ => return Err(Stop::Invalid),
        }
        if self.peek() != Some(b'"') {
            return Err(Stop::Invalid);
        }
        self.pos += 1;
        let key = self.string_body()?;
        if key.escaped {
            return Err(Stop::Unsure);
        }
        let name = &self.bytes[key.start..key.end];
        if !key.ascii {
            check_utf8(name)?;
        }
        self.expect(b':')?;
        Ok(Some(name))
    }

    /// Moves to the next element of an array being read: `true` when there is one.
    #[inline]
    pub fn next_element(&mut self, first: bool) -> Scan<bool> {
        match self.peek() {
            Some(b']') => {
                self.pos += 1;
                Ok(false)
            }
            Some(b',') if !first => {
                self.pos += 1;
                Ok(true)
            }
            Some(_) if first => Ok(true),
            _ => Err(Stop::Invalid),
        }
    }

    /// Reads a number and returns its text; [`Stop::Unsure`] when another value is there.
    pub fn number(&mut self) -> Scan<&'a [u8]> {
        match self.peek() {
            Some(b'-' | b'0'..=b'9') => {
                let start = self.pos;
                self.skip_number()?;
                Ok(&self.bytes[start..self.pos])
            }
            Some(_) => Err(Stop::Unsure),
            None => Err(Stop::Invalid),
        }
    }

    /// Skips one value of any type, checking it as serde_json's `IgnoredAny` does.
    ///
    /// Inlined into every object loop: most of a tweet's hundred values are short scalars,
    /// skipped here in a few instructions, for which a call cost as much as the skip.
    #[inline(always)]
    pub fn skip_value(&mut self) -> Scan<()> {
        // Most skipped values are scalars: they skip the container machinery.
        match self.peek() {
            Some(b'"') => {
                self.pos += 1;
                if let Some(end) = short_plain_string_end(self.bytes, self.pos) {
                    self.pos = end + 1;
                    return Ok(());
                }
                self.skip_string()
            }
            Some(b'0'..=b'9') => {
                if let Some(end) = short_integer_end(self.bytes, self.pos) {
                    self.pos = end;
                    return Ok(());
                }
                self.skip_number()
            }
            Some(b'-') => self.skip_number(),
            Some(b'n') => self.literal(b"null"),
            Some(b't') => self.literal(b"true"),
            Some(b'f') => self.literal(b"false"),
            Some(b'{' | b'[') => self.skip_nested_value(),
            _ => Err(Stop::Invalid),
        }
    }

    /// [`Scanner::skip_value`] for any value, containers included.
    #[inline(never)]
    fn skip_nested_value(&mut self) -> Scan<()> {
        // Enclosing containers, `true` for objects; skipped values have no depth limit.
        let mut stack = BitStack::default();
        loop {
            // A value starts here.
            match self.peek() {
                Some(b'"') => {
                    self.pos += 1;
                    self.skip_string()?;
                }
                Some(b'{') => {
                    self.pos += 1;
                    if self.peek() == Some(b'}') {
                        self.pos += 1;
                    } else {
                        stack.push(true);
                        self.key_and_colon()?;
                        continue;
                    }
                }
                Some(b'[') => {
                    self.pos += 1;
                    if self.peek() == Some(b']') {
                        self.pos += 1;
                    } else {
                        stack.push(false);
                        continue;
                    }
                }
                Some(b'0'..=b'9') => match short_integer_end(self.bytes, self.pos) {
                    Some(end) => self.pos = end,
                    None => self.skip_number()?,
                },
                Some(b'-') => self.skip_number()?,
                Some(b'n') => self.literal(b"null")?,
                Some(b't') => self.literal(b"true")?,
                Some(b'f') => self.literal(b"false")?,
                _ => return Err(Stop::Invalid),
            }
            // A value ended: close containers until one has another member.
            loop {
                let Some(in_object) = stack.last() else {
                    return Ok(());
                };
                match self.peek() {
                    Some(b',') => {
                        self.pos += 1;
                        if in_object {
                            self.key_and_colon()?;
                        }
                        break;
                    }
                    Some(b'}') if in_object => {
                        self.pos += 1;
                        stack.pop();
                    }
                    Some(b']') if !in_object => {
                        self.pos += 1;
                        stack.pop();
                    }
                    _ => return Err(Stop::Invalid),
                }
            }
        }
    }

    /// Skips the remaining elements of an array whose `[` (and maybe some elements) were read.
    pub fn skip_rest_of_array(&mut self, mut first: bool) -> Scan<()> {
        while self.next_element(first)? {
            self.skip_value()?;
            first = false;
        }
        Ok(())
    }

    #[inline]
    fn key_and_colon(&mut self) -> Scan<()> {
        if self.bytes.get(self.pos) == Some(&b'"') {
            if let Some(end) = short_key_end(self.bytes, self.pos + 1) {
                self.pos = end + 2;
                return Ok(());
            }
        }
        if self.peek() != Some(b'"') {
            return Err(Stop::Invalid);
        }
        self.pos += 1;
        self.skip_string()?;
        self.expect(b':')
    }

    #[inline]
    fn literal(&mut self, word: &[u8]) -> Scan<()> {
        if self.bytes[self.pos..].starts_with(word) {
            self.pos += word.len();
            Ok(())
        } else {
            Err(Stop::Invalid)
        }
    }

    #[inline]
    fn skip_string(&mut self) -> Scan<()> {
        let raw = self.string_body()?;
        if raw.ascii {
            return Ok(());
        }
        check_utf8(&self.bytes[raw.start..raw.end])
    }

    /// The text of a string read with [`Scanner::string`], checked to be UTF-8 (the one check
    /// of these bytes: the frame as a whole is not checked on this path).
    #[inline]
    pub fn str(&self, raw: RawString) -> Scan<&'a str> {
        let bytes = &self.bytes[raw.start..raw.end];
        if raw.ascii {
            debug_assert!(bytes.is_ascii());
            // SAFETY: the scan saw only bytes below 0x80 in the literal, and ASCII is UTF-8.
            return Ok(unsafe { std::str::from_utf8_unchecked(bytes) });
        }
        simdutf8::basic::from_utf8(bytes).map_err(|_| Stop::Unsure)
    }

    /// The literal of a string read with [`Scanner::string`], quotes included.
    pub fn literal_bytes(&self, raw: RawString) -> &'a [u8] {
        &self.bytes[raw.start - 1..=raw.end]
    }

    /// Scans a string whose opening quote was consumed, up to and past its closing quote. Its
    /// bytes are not checked to be UTF-8: callers do that, on the strings they keep or skip.
    #[inline(always)]
    fn string_body(&mut self) -> Scan<RawString> {
        let start = self.pos;
        let end = self.string_end()?;
        Ok(RawString {
            start,
            end: end.quote,
            escaped: end.escaped(),
            ascii: end.ascii(),
        })
    }

    /// The scan of [`Scanner::string_body`]. Its result is 16 bytes, so it comes back in
    /// registers: a [`RawString`] came back through the stack and was re-read with loads of
    /// other widths than its stores, a stall on every string.
    #[inline]
    fn string_end(&mut self) -> Scan<StringEnd> {
        let mut escaped = false;
        let mut ascii = true;
        let bytes = self.bytes;
        let mut pos = self.pos;
        loop {
            let (stop, high) = skip_plain(bytes, pos);
            pos = stop;
            ascii &= !high;
            let Some(&b) = bytes.get(pos) else {
                return Err(Stop::Invalid);
            };
            match b {
                b'"' => {
                    self.pos = pos + 1;
                    return Ok(StringEnd {
                        quote: pos,
                        kind: StringKind::of(escaped, ascii),
                    });
                }
                b'\\' => {
                    escaped = true;
                    pos = escape_end(bytes, pos + 1)?;
                }
                0..=0x1f => return Err(Stop::Invalid),
                _ => pos += 1,
            }
        }
    }

    fn skip_number(&mut self) -> Scan<()> {
        let bytes = self.bytes;
        let mut pos = self.pos;
        if bytes.get(pos) == Some(&b'-') {
            pos += 1;
        }
        match bytes.get(pos) {
            Some(b'0') => {
                pos += 1;
                if matches!(bytes.get(pos), Some(b'0'..=b'9')) {
                    return Err(Stop::Invalid);
                }
            }
            Some(b'1'..=b'9') => pos = digits_end(bytes, pos + 1),
            _ => return Err(Stop::Invalid),
        }
        if bytes.get(pos) == Some(&b'.') {
            let end = digits_end(bytes, pos + 1);
            if end == pos + 1 {
                return Err(Stop::Invalid);
            }
            pos = end;
        }
        if matches!(bytes.get(pos), Some(b'e' | b'E')) {
            pos += 1;
            if matches!(bytes.get(pos), Some(b'+' | b'-')) {
                pos += 1;
            }
            let end = digits_end(bytes, pos);
            if end == pos {
                return Err(Stop::Invalid);
            }
            pos = end;
        }
        self.pos = pos;
        Ok(())
    }
}

/// The first position at or after `pos` holding `"`, `\\` or a control character (or the end),
/// and whether a non-ASCII byte came before it.
#[cfg(target_arch = "x86_64")]
#[inline(always)]
fn skip_plain(bytes: &[u8], mut pos: usize) -> (usize, bool) {
    let mut high = 0;
    // 32 bytes a step (two 16-byte blocks): long strings (texts, URLs, descriptions) take half
    // as many loop branches.
    while let Some((special_lo, high_lo)) = special_and_high_16(bytes, pos) {
        let Some((special_hi, high_hi)) = special_and_high_16(bytes, pos + 16) else {
            break;
        };
        let special = special_lo | special_hi << 16;
        let high_bits = high_lo | high_hi << 16;
        if special != 0 {
            let before = special.trailing_zeros();
            high |= high_bits & ((1 << before) - 1);
            return (pos + before as usize, high != 0);
        }
        high |= high_bits;
        pos += 32;
    }
    while let Some((special, high_bits)) = special_and_high_16(bytes, pos) {
        if special != 0 {
            let before = special.trailing_zeros();
            high |= high_bits & ((1 << before) - 1);
            return (pos + before as usize, high != 0);
        }
        high |= high_bits;
        pos += 16;
    }
    let (pos, tail_high) = skip_plain_words(bytes, pos);
    (pos, high != 0 || tail_high)
}

#[cfg(not(target_arch = "x86_64"))]
#[inline(always)]
fn skip_plain(bytes: &[u8], pos: usize) -> (usize, bool) {
    skip_plain_words(bytes, pos)
}

/// The closing quote of a key starting at `start` when the key is plain ASCII, shorter than 32
/// bytes (`profile_background_image_url_https` is common too) and directly followed by `:`;
/// `None` sends the caller to the general path.
#[inline(always)]
fn short_key_end(bytes: &[u8], start: usize) -> Option<usize> {
    let end = short_plain_string_end(bytes, start)?;
    (bytes.get(end + 1) == Some(&b':')).then_some(end)
}

/// The closing quote of a string value starting at `start` when it is plain ASCII and shorter
/// than 32 bytes (ids, language codes, dates, names): such strings are read or skipped without
/// a call. The second 16 bytes are read only when the first hold no closing quote.
#[cfg(target_arch = "x86_64")]
#[inline(always)]
fn short_plain_string_end(bytes: &[u8], start: usize) -> Option<usize> {
    let (special, high) = special_and_high_16(bytes, start)?;
    let (special, high) = if special != 0 {
        (special, high)
    } else {
        let (special_2, high_2) = special_and_high_16(bytes, start + 16)?;
        (special_2 << 16, high | high_2 << 16)
    };
    if special == 0 {
        return None;
    }
    let len = special.trailing_zeros();
    let end = start + len as usize;
    (high & ((1 << len) - 1) == 0 && bytes[end] == b'"').then_some(end)
}

#[cfg(not(target_arch = "x86_64"))]
#[inline(always)]
fn short_plain_string_end(_bytes: &[u8], _start: usize) -> Option<usize> {
    None
}

/// The end of a non-negative integer starting at `start` (its first digit) when it has fewer
/// than 32 digits and no fraction or exponent (counts and ids: most numbers of a tweet), found
/// inline rather than by the call of [`Scanner::skip_number`]; `None` sends the number there,
/// invalid ones (`01`) included.
#[cfg(target_arch = "x86_64")]
#[inline(always)]
fn short_integer_end(bytes: &[u8], start: usize) -> Option<usize> {
    let mut non_digits = non_digits_16(bytes, start)?;
    if non_digits == 0 {
        non_digits = non_digits_16(bytes, start + 16)? << 16;
    }
    if non_digits == 0 {
        return None;
    }
    let end = start + non_digits.trailing_zeros() as usize;
    let leading_zero = bytes[start] == b'0' && end > start + 1;
    (!leading_zero && !matches!(bytes[end], b'.' | b'e' | b'E')).then_some(end)
}

#[cfg(not(target_arch = "x86_64"))]
#[inline(always)]
fn short_integer_end(_bytes: &[u8], _start: usize) -> Option<usize> {
    None
}

/// A mask of the 16 bytes from `start` that are not ASCII digits; `None` when fewer than 16
/// bytes are left.
#[cfg(target_arch = "x86_64")]
#[inline(always)]
fn non_digits_16(bytes: &[u8], start: usize) -> Option<u32> {
    use std::arch::x86_64::{
        __m128i, _mm_cmpeq_epi8, _mm_loadu_si128, _mm_min_epu8, _mm_movemask_epi8, _mm_set1_epi8,
        _mm_sub_epi8,
    };
    if start + 16 > bytes.len() {
        return None;
    }
    // SAFETY: SSE2 is part of the x86_64 baseline, and the 16 bytes read are in bounds
    // (checked just above); `loadu` has no alignment requirement.
    let digits = unsafe {
        let chunk = _mm_loadu_si128(bytes.as_ptr().add(start) as *const __m128i);
        // `b - '0'` wraps every non-digit above 9.
        let offset = _mm_sub_epi8(chunk, _mm_set1_epi8(b'0' as i8));
        let digit = _mm_cmpeq_epi8(_mm_min_epu8(offset, _mm_set1_epi8(9)), offset);
        _mm_movemask_epi8(digit) as u32
    };
    Some(!digits & 0xffff)
}

/// Masks of the 16 bytes from `start`: those that end a plain string run (`"`, `\\`, control
/// characters) and those that are not ASCII; `None` when fewer than 16 bytes are left.
#[cfg(target_arch = "x86_64")]
#[inline(always)]
fn special_and_high_16(bytes: &[u8], start: usize) -> Option<(u32, u32)> {
    use std::arch::x86_64::{
        __m128i, _mm_cmpeq_epi8, _mm_loadu_si128, _mm_min_epu8, _mm_movemask_epi8, _mm_or_si128,
        _mm_set1_epi8,
    };
    if start + 16 > bytes.len() {
        return None;
    }
    // SAFETY: SSE2 is part of the x86_64 baseline, and the 16 bytes read are in bounds
    // (checked just above); `loadu` has no alignment requirement.
    let masks = unsafe {
        let chunk = _mm_loadu_si128(bytes.as_ptr().add(start) as *const __m128i);
        let quote = _mm_cmpeq_epi8(chunk, _mm_set1_epi8(b'"' as i8));
        let backslash = _mm_cmpeq_epi8(chunk, _mm_set1_epi8(b'\\' as i8));
        let control = _mm_cmpeq_epi8(_mm_min_epu8(chunk, _mm_set1_epi8(0x1f)), chunk);
        let special = _mm_or_si128(_mm_or_si128(quote, backslash), control);
        (
            _mm_movemask_epi8(special) as u32,
            _mm_movemask_epi8(chunk) as u32,
        )
    };
    Some(masks)
}

/// [`skip_plain`] eight bytes at a time, then byte by byte.
#[inline(always)]
fn skip_plain_words(bytes: &[u8], mut pos: usize) -> (usize, bool) {
    let mut high = 0;
    while let Some(chunk) = bytes.get(pos..pos + 8) {
        let word = u64::from_le_bytes(chunk.try_into().expect("eight bytes"));
        let special = special_bytes(word);
        if special != 0 {
            let before = special.trailing_zeros() / 8;
            // The bytes before the special one, as a mask of their bits.
            let mask = (1u64 << (before * 8)).wrapping_sub(1);
            high |= word & HIGHS & mask;
            return (pos + before as usize, high != 0);
        }
        high |= word & HIGHS;
        pos += 8;
    }
    let mut tail_high = false;
    while let Some(&b) = bytes.get(pos) {
        if b == b'"' || b == b'\\' || b < 0x20 {
            break;
        }
        tail_high |= !b.is_ascii();
        pos += 1;
    }
    (pos, high != 0 || tail_high)
}

/// Non-UTF-8 bytes in a string: serde_json from a `&[u8]` would accept them, but enrichment
/// reports such a frame as not UTF-8, on the serde path, which checks the whole frame first.
#[inline]
fn check_utf8(bytes: &[u8]) -> Scan<()> {
    // simdutf8 keeps its pace on text that mixes ASCII with emoji and accents, where std's check
    // goes a byte at a time.
    if simdutf8::basic::from_utf8(bytes).is_ok() {
        Ok(())
    } else {
        Err(Stop::Unsure)
    }
}

#[inline]
fn digits_end(bytes: &[u8], mut pos: usize) -> usize {
    // Ids have 18 or 19 digits: eight at a time, the first other byte found within the word.
    while let Some(chunk) = bytes.get(pos..pos + 8) {
        let word = u64::from_le_bytes(chunk.try_into().expect("eight bytes"));
        // A digit is 0x30..=0x39: `x = b ^ 0x30` is below 10, so neither `x` nor `x + 6` reaches
        // the high nibble. A carry out of a byte comes only from a non-digit, and only into the
        // bytes after it, so the first flagged byte is the first non-digit.
        let x = word ^ (ONES * 0x30);
        let non_digits = (x | x.wrapping_add(ONES * 0x06)) & (ONES * 0xf0);
        if non_digits != 0 {
            return pos + (non_digits.trailing_zeros() / 8) as usize;
        }
        pos += 8;
    }
    while matches!(bytes.get(pos), Some(b'0'..=b'9')) {
        pos += 1;
    }
    pos
}

/// The end of an escape whose backslash is just before `pos`.
#[inline]
fn escape_end(bytes: &[u8], pos: usize) -> Scan<usize> {
    match bytes.get(pos) {
        Some(b'"' | b'\\' | b'/' | b'b' | b'f' | b'n' | b'r' | b't') => Ok(pos + 1),
        Some(b'u') => match bytes.get(pos + 1..pos + 5) {
            Some(hex) if hex.iter().all(u8::is_ascii_hexdigit) => Ok(pos + 5),
            _ => Err(Stop::Invalid),
        },
        _ => Err(Stop::Invalid),
    }
}

/// Whether `bytes` is UTF-8 and one JSON value (surrounded by whitespace at most), as
/// `std::str::from_utf8` and then serde_json's `from_str::<IgnoredAny>` decide.
pub fn is_valid_json(bytes: &[u8]) -> bool {
    let mut scanner = Scanner::new(bytes);
    scanner.skip_value().and_then(|()| scanner.finish()).is_ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn serde_accepts(bytes: &[u8]) -> bool {
        std::str::from_utf8(bytes).is_ok()
            && serde_json::from_slice::<serde::de::IgnoredAny>(bytes).is_ok()
    }

    #[test]
    fn short_skipped_strings_with_room_after_them_agree_with_serde() {
        // With 16 or 32 bytes readable after the opening quote, short plain strings take the
        // inline path of `skip_value`; everything else must still reach the full scan.
        let bodies: &[&[u8]] = &[
            b"",
            b"en",
            b"1234567890123456",
            b"123456789012345",
            b"Wed Jun 16 12:14:25 +0000 2010",
            b"1234567890123456789012345678901",
            b"12345678901234567890123456789012",
            b"1234567890123456789\\u00e9",
            b"12345678901234567890caf\xc3\xa9",
            b"12345678901234567\x01",
            b"caf\xc3\xa9",
            b"\xff\xfe",
            b"a\\\"b",
            b"a\\u00e9",
            b"a\\x",
            b"tab\there",
            b"line\nbreak",
            b"\x7f",
        ];
        for body in bodies {
            let mut doc = b"[\"".to_vec();
            doc.extend_from_slice(body);
            doc.extend_from_slice(b"\",\"padding padding padding\"]");
            assert_eq!(
                is_valid_json(&doc),
                serde_accepts(&doc),
                "{:?}",
                String::from_utf8_lossy(&doc)
            );
        }
    }

    #[test]
    fn agrees_with_serde_on_edge_cases() {
        let cases: &[&[u8]] = &[
            b"",
            b" ",
            b"{}",
            b" { } ",
            b"[]",
            b"[ ]",
            b"[1,]",
            b"[,1]",
            b"{\"a\":1,}",
            b"{\"a\" : 1 , \"b\":[true,false,null]}",
            b"{\"a\"1}",
            b"{1:2}",
            b"\"x\"",
            b"\"x",
            b"\"a\\\"b\"",
            b"\"\\u00e9\\uD83D\\uDE00\"",
            b"\"\\ud800\"",
            b"\"\\u00g0\"",
            b"\"\\u00\"",
            b"\"\\x\"",
            b"\"tab\there\"",
            b"\"\x7f\xff\"",
            b"0",
            b"-0",
            b"01",
            b"-",
            b"1.",
            b"1.5e",
            b"1.5e+",
            b"1.5E-3",
            b"1e400",
            b"-12.5e+10",
            b"nul",
            b"null",
            b"nulll",
            b"tru",
            b"false ",
            b"{} {}",
            b"[[[[[[[[[[]]]]]]]]]]",
            b"[[[[[[[[[[]]]]]]]]]",
            b"{\"a\":{\"b\":{\"c\":[1,{\"d\":\"e\"}]}}}",
            b"{\"a\":{\"b\":{\"c\":[1,{\"d\":\"e\"}]}}",
            b"\t\n\r{}\r\n",
            b"\x0c{}",
        ];
        for case in cases {
            assert_eq!(
                is_valid_json(case),
                serde_accepts(case),
                "{:?}",
                String::from_utf8_lossy(case)
            );
        }
    }

    #[test]
    fn a_string_scan_result_fits_in_two_registers() {
        assert_eq!(std::mem::size_of::<Scan<StringEnd>>(), 16);
    }

    #[test]
    fn digit_runs_end_at_the_first_other_byte() {
        for text in [
            "",
            "7",
            "12345678",
            "123456789",
            "1234567890123456789x",
            "1234:678",
            "12345678/",
        ] {
            let expected = text.bytes().take_while(u8::is_ascii_digit).count();
            assert_eq!(digits_end(text.as_bytes(), 0), expected, "{text}");
        }
        for b in 0..=255u8 {
            let mut bytes = *b"11111111";
            bytes[5] = b;
            let expected = if b.is_ascii_digit() { 8 } else { 5 };
            assert_eq!(digits_end(&bytes, 0), expected, "{b}");
            // Whatever follows a non-digit (a carry out of it included) does not matter.
            for after in [0x00, 0x30, 0x39, 0xf9, 0xff] {
                for at in 0..8 {
                    let mut bytes = [b'7'; 8];
                    bytes[at] = b;
                    if at < 7 {
                        bytes[at + 1] = after;
                    }
                    let expected = bytes.iter().take_while(|c| c.is_ascii_digit()).count();
                    assert_eq!(digits_end(&bytes, 0), expected, "{bytes:?}");
                }
            }
        }
    }

    /// Numbers of every length around the 16- and 32-digit steps of the inline integer skip,
    /// with every kind of ending, are accepted or refused as serde does, and end in the same
    /// place as the general skip.
    #[test]
    fn skipped_numbers_of_every_length_agree_with_serde_and_the_general_skip() {
        for len in 1..40 {
            let digits: String = (0..len).map(|i| char::from(b'1' + (i % 9) as u8)).collect();
            for first in ["", "0", "-", "-0"] {
                for after in ["", ".5", ".", "e3", "E+2", "e", "x", "0"] {
                    let number = format!("{first}{digits}{after}");
                    for tail in ["]", &format!(",{}]", " ".repeat(40))] {
                        let doc = format!("[{number}{tail}");
                        let bytes = doc.as_bytes();
                        assert_eq!(is_valid_json(bytes), serde_accepts(bytes), "{doc}");
                        let mut inline = Scanner::new(bytes);
                        inline.begin_array().unwrap();
                        assert!(inline.next_element(true).unwrap());
                        let mut general = Scanner::new(bytes);
                        general.pos = inline.pos;
                        assert_eq!(inline.skip_value(), general.skip_number(), "{doc}");
                        assert_eq!(inline.pos, general.pos, "{doc}");
                    }
                }
            }
        }
    }

    #[test]
    fn skipped_values_have_no_depth_limit() {
        let deep = format!("{}{}", "[".repeat(5000), "]".repeat(5000));
        assert!(is_valid_json(deep.as_bytes()));
        assert!(serde_accepts(deep.as_bytes()));
    }

    #[test]
    fn keys_of_every_length_are_read_whole() {
        for len in 0..40 {
            for odd in ["", "é", "\\n", " "] {
                let at = len / 2;
                let key = format!("{}{odd}{}", "k".repeat(at), "y".repeat(len - at));
                let json = format!(r#"{{"{key}":1,"{key}":[2],"z" :3}}"#);
                let mut s = Scanner::new(json.as_bytes());
                s.begin_object().unwrap();
                let first = s.next_key(true);
                if odd == "\\n" {
                    assert_eq!(first, Err(Stop::Unsure), "{json}");
                    continue;
                }
                assert_eq!(first, Ok(Some(key.as_bytes())), "{json}");
                s.skip_value().unwrap();
                assert_eq!(s.next_key(false), Ok(Some(key.as_bytes())), "{json}");
                s.skip_value().unwrap();
                assert_eq!(s.next_key(false), Ok(Some(&b"z"[..])), "{json}");
                s.skip_value().unwrap();
                assert_eq!(s.next_key(false), Ok(None), "{json}");
                assert_eq!(s.finish(), Ok(()));
            }
        }
    }

    /// Strings are scanned 32 and 16 bytes at a time, then by words and bytes: a special byte
    /// at every position of strings of every length up to past two steps is found, and the
    /// ASCII flag covers exactly the bytes before the closing quote.
    #[test]
    fn strings_of_every_length_end_where_their_quote_is() {
        for len in 0..80 {
            for at in 0..len.max(1) {
                for odd in ["", "é", "\\n", "\\u00e9", "\t", "\\x", "\u{7f}"] {
                    let mut text = "s".repeat(len);
                    if len > 0 {
                        text.replace_range(at..at + 1, odd);
                    }
                    for tail in ["", "      ", &" ".repeat(40)] {
                        let json = format!("[\"{text}\"{tail}]");
                        let bytes = json.as_bytes();
                        assert_eq!(is_valid_json(bytes), serde_accepts(bytes), "{json:?}");
                        let mut s = Scanner::new(bytes);
                        s.begin_array().unwrap();
                        assert!(s.next_element(true).unwrap());
                        match s.string() {
                            Ok(raw) => {
                                assert_eq!(&bytes[raw.start..raw.end], text.as_bytes(), "{json:?}");
                                assert_eq!(raw.ascii, text.is_ascii(), "{json:?}");
                                assert_eq!(raw.escaped, text.contains('\\'), "{json:?}");
                            }
                            Err(stop) => {
                                assert_eq!(stop, Stop::Invalid, "{json:?}");
                                assert!(!serde_accepts(bytes), "{json:?}");
                            }
                        }
                    }
                }
            }
        }
    }

    /// The inline read of short strings gives what the general one gives, or leaves the
    /// string to it untouched: at every length around its 16- and 32-byte limits, with a byte
    /// that ends or spoils a plain string at every position, and with the input ending early.
    #[test]
    fn short_plain_strings_are_read_as_the_general_scan_reads_them() {
        let mut inline_reads = 0;
        for len in 0..40 {
            for at in 0..len.max(1) {
                for odd in ["", "é", "\\n", "\t", "\u{7f}", "\u{1}"] {
                    let mut text = "s".repeat(len);
                    if len > 0 {
                        text.replace_range(at..at + 1, odd);
                    }
                    for tail in ["", "]", &format!(",{}]", " ".repeat(40))] {
                        let json = format!("[\"{text}\"{tail}");
                        let bytes = json.as_bytes();
                        let mut general = Scanner::new(bytes);
                        let mut inline = Scanner::new(bytes);
                        for s in [&mut general, &mut inline] {
                            s.begin_array().unwrap();
                            assert!(s.next_element(true).unwrap());
                        }
                        let before = inline.pos;
                        match inline.short_plain_string() {
                            Some(raw) => {
                                inline_reads += 1;
                                assert_eq!(general.string(), Ok(raw), "{json:?}");
                                assert_eq!(inline.pos, general.pos, "{json:?}");
                                assert!(text.is_ascii() && text.len() < 32, "{json:?}");
                            }
                            None => assert_eq!(inline.pos, before, "{json:?}"),
                        }
                    }
                }
            }
        }
        assert!(
            inline_reads > 1000,
            "only {inline_reads} strings were read inline"
        );
    }

    #[test]
    fn reading_keys_and_strings_reports_their_spans() {
        let json = br#"{"id_str":"12","text":"a\nb","n":null}"#;
        let mut s = Scanner::new(json);
        s.begin_object().unwrap();
        assert_eq!(s.next_key(true).unwrap(), Some(&b"id_str"[..]));
        let id = s.string().unwrap();
        assert_eq!((&json[id.start..id.end], id.escaped), (&b"12"[..], false));
        assert_eq!(s.next_key(false).unwrap(), Some(&b"text"[..]));
        assert!(s.string().unwrap().escaped);
        assert_eq!(s.next_key(false).unwrap(), Some(&b"n"[..]));
        assert_eq!(s.string(), Err(Stop::Unsure), "null is not a string");
        assert!(s.null().unwrap());
        assert_eq!(s.next_key(false).unwrap(), None);
        assert_eq!(s.finish(), Ok(()));
    }
}
