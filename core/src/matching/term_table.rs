//! The track terms of a rule set, looked up by the tokens of every tweet.
//!
//! A tweet yields a hundred or more tokens and holds only a few of the rules' terms, so nearly
//! every lookup is a miss. [`TermTable`] makes a miss cheap: first one bit of a 32 Kbit sketch
//! indexed by the token's length and its first and last bytes (no hashing, so most misses stop
//! there after a few instructions), then one pass of a multiply-rotate hash over the token and
//! one bit of a 64 Kbit filter (8 KB, resident in L1/L2) that is set only for the terms' hashes. The few tokens that pass probe an open-addressing table and are
//! compared byte for byte with the term, so a hash collision never makes a false match.

/// Terms with dense ids, and a filter and table keyed by their hash.
#[derive(Debug, Clone)]
pub struct TermTable {
    terms: Vec<Box<str>>,
    longest: usize,
    /// One bit per (length, first byte, last byte), each taken modulo 32, of some term.
    sketch: Box<[u64]>,
    filter: Box<[u64]>,
    /// (hash, term id); `EMPTY` ids mark free slots. Always at most half full.
    slots: Box<[(u64, u32)]>,
}

const FILTER_BITS: u32 = 16;
const SKETCH_BITS: u32 = 15;
const EMPTY: u32 = u32::MAX;
const K: u64 = 0x51_7c_c1_b7_27_22_0a_95;

impl Default for TermTable {
    fn default() -> TermTable {
        TermTable {
            terms: Vec::new(),
            longest: 0,
            sketch: vec![0; 1 << (SKETCH_BITS - 6)].into_boxed_slice(),
            filter: vec![0; 1 << (FILTER_BITS - 6)].into_boxed_slice(),
            slots: vec![(0, EMPTY); 16].into_boxed_slice(),
        }
    }
}

impl TermTable {
    /// The id of `term`, added if new. Ids are dense, from 0.
    pub fn insert(&mut self, term: &str) -> u32 {
        if let Some(id) = self.get(term.as_bytes()) {
            return id;
        }
        let id = self.terms.len() as u32;
        self.terms.push(term.into());
        self.longest = self.longest.max(term.len());
        if self.terms.len() * 2 > self.slots.len() {
            self.rebuild(self.slots.len() * 2);
        } else {
            self.place(term.as_bytes(), id);
        }
        id
    }

    #[cfg(test)]
    fn len(&self) -> usize {
        self.terms.len()
    }

    /// The id of the term equal to `token`, if any.
    #[inline(always)]
    pub fn get(&self, token: &[u8]) -> Option<u32> {
        // The sketch turns away most tokens: that test is inlined into the tokenizer's loop,
        // the rest is a call.
        if token.len() > self.longest || token.is_empty() {
            return None;
        }
        let bit = sketch_bit(token);
        if self.sketch[bit / 64] & (1 << (bit % 64)) == 0 {
            return None;
        }
        self.get_past_sketch(token)
    }

    #[inline(never)]
    fn get_past_sketch(&self, token: &[u8]) -> Option<u32> {
        let hash = hash(token);
        let bit = (hash >> (64 - FILTER_BITS)) as usize;
        if self.filter[bit / 64] & (1 << (bit % 64)) == 0 {
            return None;
        }
        let mask = self.slots.len() - 1;
        let mut i = hash as usize & mask;
        loop {
            let (h, id) = self.slots[i];
            if id == EMPTY {
                return None;
            }
            if h == hash && self.terms[id as usize].as_bytes() == token {
                return Some(id);
            }
            i = (i + 1) & mask;
        }
    }

    fn rebuild(&mut self, size: usize) {
        self.slots = vec![(0, EMPTY); size].into_boxed_slice();
        self.filter.fill(0);
        self.sketch.fill(0);
        for id in 0..self.terms.len() {
            let term = self.terms[id].clone();
            self.place(term.as_bytes(), id as u32);
        }
    }

    fn place(&mut self, term: &[u8], id: u32) {
        let bit = sketch_bit(term);
        self.sketch[bit / 64] |= 1 << (bit % 64);
        let hash = hash(term);
        let bit = (hash >> (64 - FILTER_BITS)) as usize;
        self.filter[bit / 64] |= 1 << (bit % 64);
        let mask = self.slots.len() - 1;
        let mut i = hash as usize & mask;
        while self.slots[i].1 != EMPTY {
            i = (i + 1) & mask;
        }
        self.slots[i] = (hash, id);
    }
}

/// The sketch bit of a non-empty token: its length, first and last bytes, five bits each (the
/// five low bits tell apart the lowercase letters, which most tokens start and end with).
#[inline]
fn sketch_bit(token: &[u8]) -> usize {
    let low5 = |b: u8| usize::from(b & 31);
    (token.len() & 31) << 10 | low5(token[0]) << 5 | low5(token[token.len() - 1])
}

/// A hash of every byte of `bytes`, eight at a time (the last eight overlapping when needed).
/// Tokens shorter than eight bytes are read with overlapping loads rather than copied into a
/// zeroed word: the copy's store, reloaded at once as a wider word, stalled every lookup.
#[inline]
fn hash(bytes: &[u8]) -> u64 {
    let len = bytes.len();
    let mut h = len as u64;
    let mut add = |word: u64| h = (h.rotate_left(5) ^ word).wrapping_mul(K);
    let u32_at = |i: usize| u32::from_le_bytes(bytes[i..i + 4].try_into().expect("four bytes"));
    match len {
        0 => add(0),
        // With the length mixed in, these words tell apart every token of the same length.
        1..=3 => add(u64::from(bytes[0])
            | u64::from(bytes[len / 2]) << 8
            | u64::from(bytes[len - 1]) << 16),
        4..=7 => add(u64::from(u32_at(0)) | u64::from(u32_at(len - 4)) << 32),
        _ => {
            let mut chunks = bytes.chunks_exact(8);
            for chunk in &mut chunks {
                add(u64::from_le_bytes(chunk.try_into().expect("eight bytes")));
            }
            if !chunks.remainder().is_empty() {
                let last: [u8; 8] = bytes[len - 8..].try_into().expect("eight bytes");
                add(u64::from_le_bytes(last));
            }
        }
    }
    // Spread the low bits' entropy to the top bits the filter uses.
    h ^ (h >> 29)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_exactly_the_inserted_terms() {
        let mut table = TermTable::default();
        let words: Vec<String> = (0..2_000).map(|i| format!("term{i}")).collect();
        for (i, w) in words.iter().enumerate() {
            assert_eq!(table.insert(w), i as u32);
        }
        assert_eq!(table.insert("term7"), 7, "a repeated term keeps its id");
        assert_eq!(table.len(), 2_000);
        for (i, w) in words.iter().enumerate() {
            assert_eq!(table.get(w.as_bytes()), Some(i as u32), "{w}");
        }
        for miss in [
            "",
            "term",
            "term2000",
            "Term1",
            "a-much-longer-token-than-any-term",
        ] {
            assert_eq!(table.get(miss.as_bytes()), None, "{miss}");
        }
    }

    #[test]
    fn short_terms_of_every_length_are_found_and_only_they() {
        let mut table = TermTable::default();
        let terms = [
            "a", "ab", "abc", "abcd", "abcde", "abcdef", "abcdefg", "abcdefgh", "é", "東",
        ];
        for t in terms {
            table.insert(t);
        }
        for (i, t) in terms.iter().enumerate() {
            assert_eq!(table.get(t.as_bytes()), Some(i as u32), "{t}");
        }
        for miss in [
            "b", "ba", "acb", "abdc", "abcdf", "bbcdef", "abcdeff", "abcdefgi", "è",
        ] {
            assert_eq!(table.get(miss.as_bytes()), None, "{miss}");
        }
    }

    #[test]
    fn long_terms_differing_only_inside_are_told_apart() {
        let mut table = TermTable::default();
        let a = "example.com/aaaaaaaaaaaaaaaa/path";
        let b = "example.com/aaaaaaaabaaaaaaa/path";
        table.insert(a);
        assert_eq!(table.get(a.as_bytes()), Some(0));
        assert_eq!(table.get(b.as_bytes()), None);
        table.insert(b);
        assert_eq!(table.get(b.as_bytes()), Some(1));
    }
}
