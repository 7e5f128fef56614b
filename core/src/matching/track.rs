//! Track matching: which phrases a tweet contains, the way the streaming API selects.
//!
//! # The rule side
//! A phrase is the rule's normalized filter term (lowercased, single spaces, hashtag rules carry
//! `#`). Its terms are ANDed in any order; phrases are ORed.
//!
//! # The tweet side: searched fields
//! Of the tweet and of every status it embeds (`retweeted_status`, `quoted_status`, and theirs):
//! `text`, `full_text`, `extended_tweet.full_text`; the author's `screen_name` (the original
//! traptor searched it, and recall comes first); and from `entities`, `extended_entities` and
//! `extended_tweet.{entities, extended_entities}`: hashtag texts, mentioned screen names, and
//! the `expanded_url` / `display_url` of links and media.
//!
//! # The tweet side: tokens
//! Everything is lowercased (Unicode lowercase, no accent folding: `touché` ≠ `touche`). A tweet
//! yields a set of *forms*; a term matches when it equals one of them.
//! - Text is split on whitespace into chunks. Each chunk yields:
//!   1. the chunk itself (so a term with punctuation, `hello.` or `twitter's`, matches when the
//!      tweet has exactly that);
//!   2. the chunk trimmed of leading and trailing punctuation, except that a leading `#` or `@`
//!      is kept (`"twitter."` → `twitter`, `(#twitter)` → `#twitter`, `@twitter's` stays
//!      `@twitter's`, which is why `twitter's` does not match "@Twitter's office");
//!   3. the runs of word characters in the chunk (letters, digits, `_`, combining accents):
//!      `#twitter` → `twitter`, `http://twitter.com` → `http`, `twitter`, `com`. This is what
//!      makes punctuation in the tweet ignored, and never splits a word (`TwitterTracker` and
//!      `#newtwitter` do not yield `twitter`).
//!
//!   A chunk that is a URL (it has a `scheme://` or starts with `www.`) has the scheme and `www.`
//!   removed in forms 1 and 2, as the API canonicalizes URLs.
//! - A URL of an entity yields the URL without scheme and `www.` (`example.com/foobarbaz`), the
//!   same without a trailing `/` and without its `?query` / `#fragment`, and its runs of word
//!   characters (so the two terms `example com` match any URL with those words). A term must
//!   give the whole domain and path: `example.com` does not match `example.com/foobarbaz`, and a
//!   term starting with `www.` matches no URL.
//! - A hashtag `x` yields `#x` and `x`; a mentioned (or authoring) screen name `x` yields `@x`
//!   and `x`. So `#x` matches only hashtags (or a literal `#x` in the text), `@x` only mentions
//!   (or a literal `@x`), and a term with punctuation never matches a hashtag or a mention.
//!
//! Not supported, as the API documents: phrases in non-space-separated scripts (CJK) match only
//! as whole whitespace- or punctuation-delimited runs.
//!
//! # Cost
//! Every term of every phrase gets a number in a `TermTable`, whose bit filter turns away
//! nearly every token of a tweet before any table probe. Each phrase is filed under one
//! *anchor* term (its longest), so only phrases whose anchor is present are checked. Text is
//! lowercased into one buffer per tweet and split in a single pass over its bytes. A retweet's
//! `RT @name: …` text, which repeats the start of the retweeted text, is searched only for what
//! it adds (see `retweet_additions`). The cost per tweet depends on the tweet, not on the number
//! of phrases.

use super::fast_hash::FxHashMap;
use super::term_table::TermTable;
use super::text_classes::{classify, push_lowercase_ascii_prefix, BLOCK};
use super::tweet::TweetView;

/// The track phrases of a rule set, indexed by term.
#[derive(Debug, Default, Clone)]
pub struct TrackIndex {
    terms: TermTable,
    phrases: Vec<Phrase>,
    phrase_ids: FxHashMap<Box<str>, u32>,
    /// For each term id, the phrases anchored on it.
    anchored: Vec<Vec<u32>>,
}

#[derive(Debug, Clone)]
struct Phrase {
    /// Sorted, without repeats.
    terms: Box<[u32]>,
    rules: Vec<usize>,
}

impl TrackIndex {
    /// Files `phrase` (already normalized: lowercase, single spaces) as matching rule `rule`.
    pub fn add(&mut self, phrase: &str, rule: usize) {
        if let Some(&id) = self.phrase_ids.get(phrase) {
            self.phrases[id as usize].rules.push(rule);
            return;
        }
        // The longest term is likely the rarest: filing the phrase under it keeps the
        // candidates checked per tweet few.
        let Some(anchor) = phrase
            .split_whitespace()
            .reduce(|a, b| if b.len() > a.len() { b } else { a })
        else {
            return;
        };
        let anchor = self.term_id(anchor);
        let mut terms: Vec<u32> = phrase.split_whitespace().map(|t| self.term_id(t)).collect();
        terms.sort_unstable();
        terms.dedup();
        let id = self.phrases.len() as u32;
        self.phrases.push(Phrase {
            terms: terms.into_boxed_slice(),
            rules: vec![rule],
        });
        self.phrase_ids.insert(phrase.into(), id);
        self.anchored[anchor as usize].push(id);
    }

    pub fn is_empty(&self) -> bool {
        self.phrases.is_empty()
    }

    /// Appends the rules of every phrase `tweet` contains to `out` (unsorted, may repeat).
    pub fn collect(&self, tweet: &TweetView<'_>, out: &mut Vec<usize>) {
        if self.phrases.is_empty() {
            return;
        }
        // The terms found, on the stack while they are few (a tweet holds few of the rules' terms).
        let mut few = [0u32; 16];
        let mut few_len = 0;
        let mut more: Vec<u32> = Vec::new();
        forms(tweet, &mut |form: &str| {
            if let Some(id) = self.terms.get(form.as_bytes()) {
                if !few[..few_len].contains(&id) && !more.contains(&id) {
                    match few.get_mut(few_len) {
                        Some(slot) => {
                            *slot = id;
                            few_len += 1;
                        }
                        None => more.push(id),
                    }
                }
            }
        });
        if !more.is_empty() {
            more.extend_from_slice(&few[..few_len]);
        }
        let present = if more.len() > few_len {
            &more[..]
        } else {
            &few[..few_len]
        };
        // A tweet holds few of the rules' terms: a linear scan beats sorting for a binary search.
        for &term in present {
            for &p in &self.anchored[term as usize] {
                let phrase = &self.phrases[p as usize];
                if phrase.terms.iter().all(|t| present.contains(t)) {
                    out.extend_from_slice(&phrase.rules);
                }
            }
        }
    }

    fn term_id(&mut self, term: &str) -> u32 {
        let id = self.terms.insert(term);
        if id as usize == self.anchored.len() {
            self.anchored.push(Vec::new());
        }
        id
    }
}

/// Calls `emit` with every lowercased form of `tweet` (see the module doc). Forms may repeat.
pub fn for_each_form(tweet: &TweetView<'_>, emit: &mut dyn FnMut(&str)) {
    forms(tweet, emit)
}

/// [`for_each_form`], inlined into its caller's loop.
#[inline]
fn forms<F: FnMut(&str) + ?Sized>(tweet: &TweetView<'_>, emit: &mut F) {
    let (mut lower, mut prefixed) = SCRATCH
        .take()
        .unwrap_or_else(|| (String::with_capacity(1024), String::with_capacity(64)));
    forms_with(tweet, emit, &mut lower, &mut prefixed);
    // Kept for the next tweet unless an outsized one made them grow.
    if lower.capacity() <= MAX_KEPT_SCRATCH && prefixed.capacity() <= MAX_KEPT_SCRATCH {
        SCRATCH.set(Some((lower, prefixed)));
    }
}

thread_local! {
    /// The lowercasing buffers of [`forms`], reused from tweet to tweet on each thread instead
    /// of being allocated per tweet.
    static SCRATCH: std::cell::Cell<Option<(String, String)>> = const { std::cell::Cell::new(None) };
}

/// Buffers that grew past this (for an outsized tweet) are freed rather than kept.
const MAX_KEPT_SCRATCH: usize = 64 * 1024;

#[inline]
fn forms_with<F: FnMut(&str) + ?Sized>(
    tweet: &TweetView<'_>,
    emit: &mut F,
    lower: &mut String,
    prefixed: &mut String,
) {
    for status in tweet.with_embedded() {
        let [short_text, full_text, extended_text] = searched_texts(status);
        // A retweet's text repeats the start of the retweeted text, which is searched in full
        // with the embedded status: only what the retweet adds is searched here.
        let retweet_parts =
            short_text
                .zip(status.retweeted_status.as_deref())
                .and_then(|(text, retweeted)| {
                    searched_texts(retweeted)
                        .into_iter()
                        .flatten()
                        .find_map(|base| retweet_additions(text, base))
                });
        let texts = match retweet_parts {
            Some((prefix, last_chunk)) => [Some(prefix), Some(last_chunk), full_text],
            None => [short_text, full_text, extended_text],
        };
        for text in texts.into_iter().flatten() {
            lower_into(lower, text);
            for_each_chunk(lower, |chunk, all_word| {
                if all_word {
                    emit(chunk);
                } else {
                    chunk_forms(chunk, emit);
                }
            });
        }
        if let Some(name) = status.user.as_ref().and_then(|u| u.screen_name.as_deref()) {
            marked_forms('@', name, lower, prefixed, emit);
        }
        for entities in status.entity_lists() {
            for tag in entities.hashtags() {
                marked_forms('#', tag, lower, prefixed, emit);
            }
            for name in entities.mentions() {
                marked_forms('@', name, lower, prefixed, emit);
            }
            for url in entities.urls() {
                lower_into(lower, url);
                url_forms(lower, emit);
            }
        }
    }
}

/// The texts of a status that are searched: `text` (unless there is an extended full text, of
/// which a truncated `text` is a prefix: reading both would be wasted work), `full_text`, and
/// `extended_tweet.full_text`.
fn searched_texts<'t>(status: &'t TweetView<'_>) -> [Option<&'t str>; 3] {
    let extended_text = status
        .extended_tweet
        .as_ref()
        .and_then(|e| e.full_text.as_deref());
    let short_text = if extended_text.is_some() {
        None
    } else {
        status.text.as_deref()
    };
    [short_text, status.full_text.as_deref(), extended_text]
}

/// What a retweet's `text` adds to a searched text of the retweeted status, `retweeted`: when
/// the text is `RT @name: ` and then a start of `retweeted` (whole, or cut and ended with `…`),
/// the `RT @name: ` prefix and the text's last chunk (a cut word, maybe); `None` when it is not.
///
/// Every other chunk of the text is a chunk of `retweeted`, so its forms are found there: it is
/// followed by whitespace inside the shared start (`…` is not whitespace) and preceded by
/// whitespace or the start of it. A chunk's forms depend on the chunk alone (lowercasing looks
/// no further than the word, and whitespace ends a word), so they are the same in both texts.
fn retweet_additions<'t>(text: &'t str, retweeted: &str) -> Option<(&'t str, &'t str)> {
    let name_and_body = text.strip_prefix("RT @")?;
    let body_start = "RT @".len() + name_and_body.find(": ")? + ": ".len();
    let (prefix, body) = text.split_at(body_start);
    let shared = body.strip_suffix('…').unwrap_or(body);
    if !retweeted.starts_with(shared) {
        return None;
    }
    let last_chunk_start = body
        .char_indices()
        .rev()
        .find(|(_, c)| c.is_whitespace())
        .map_or(0, |(i, c)| i + c.len_utf8());
    Some((prefix, &body[last_chunk_start..]))
}

/// Lowercases into a reused buffer, as `str::to_lowercase` does (the rules are lowercased with
/// it): per character, except around a capital sigma, whose lowercase depends on its context.
fn lower_into(buf: &mut String, text: &str) {
    buf.clear();
    let mut rest = text;
    loop {
        // ASCII runs are copied and lowercased in bulk, the rest a character at a time.
        // SAFETY: only ASCII bytes are appended, so the buffer stays UTF-8.
        let run = push_lowercase_ascii_prefix(unsafe { buf.as_mut_vec() }, rest.as_bytes());
        let Some(c) = rest[run..].chars().next() else {
            return;
        };
        if c == 'Σ' {
            buf.clear();
            buf.push_str(&text.to_lowercase());
            return;
        }
        match c {
            _ if has_no_case(c) => buf.push(c),
            // Latin-1 capitals (but `×`) are their small letter 0x20 further.
            'À'..='Þ' if c != '×' => buf.push(char::from_u32(c as u32 + 0x20).expect("Latin-1")),
            'ß'..='ÿ' => buf.push(c),
            _ => buf.extend(c.to_lowercase()),
        }
        rest = &rest[run + c.len_utf8()..];
    }
}

/// Characters of blocks without case (CJK, kana, Hangul, emoji and other symbols): their
/// lowercase is themselves, and checking that is cheaper than the case tables' search.
#[inline]
fn has_no_case(c: char) -> bool {
    matches!(c, '\u{2E80}'..='\u{A63F}' | '\u{AC00}'..='\u{D7FF}' | '\u{1F000}'..)
}

/// Calls `each(chunk, all_word)` for every run of `text` between whitespace (as
/// `str::split_whitespace` splits), saying whether the chunk is only ASCII word characters.
///
/// The text is read 64 bytes at a time as bit masks of its byte classes (see
/// [`text_classes`](super::text_classes)); chunk boundaries are found with bit operations, and
/// only characters whose first byte could start a non-ASCII whitespace are decoded.
#[inline]
fn for_each_chunk(text: &str, mut each: impl FnMut(&str, bool)) {
    let bytes = text.as_bytes();
    // The start of the chunk being read, and whether it is all word characters so far.
    let mut start = None;
    let mut all_word = true;
    // Whitespace bits of the next block: a multi-byte whitespace character that crosses into it.
    let mut carried_space = 0u64;
    let mut base = 0;
    while base < bytes.len() {
        let len = (bytes.len() - base).min(BLOCK);
        let classes = classify(&bytes[base..base + len]);
        let valid = if len == BLOCK {
            u64::MAX
        } else {
            (1u64 << len) - 1
        };
        let mut space = classes.space | carried_space;
        carried_space = 0;
        // Non-ASCII whitespace (U+0085, U+00A0, U+1680, U+2000.., U+3000) starts with one of
        // these bytes; every byte of such a character counts as whitespace.
        let mut leads = classes.lead;
        while leads != 0 {
            let i = leads.trailing_zeros() as usize;
            leads &= leads - 1;
            if matches!(bytes[base + i], 0xC2 | 0xE1 | 0xE2 | 0xE3) {
                let c = text[base + i..].chars().next().expect("a char starts here");
                if c.is_whitespace() {
                    let bits = (1u128 << c.len_utf8()) - 1;
                    let bits = bits << i;
                    space |= bits as u64;
                    carried_space |= (bits >> BLOCK) as u64;
                }
            }
        }
        let space = space & valid;
        let not_word = !classes.word & valid;
        let mut pos = 0;
        loop {
            let ahead = if pos < BLOCK { u64::MAX << pos } else { 0 };
            match start {
                Some(s) => {
                    let ends = space & ahead;
                    if ends == 0 {
                        all_word &= not_word & ahead == 0;
                        break;
                    }
                    let end = ends.trailing_zeros() as usize;
                    let inside = ahead & !(u64::MAX << end);
                    all_word &= not_word & inside == 0;
                    each(&text[s..base + end], all_word);
                    start = None;
                    pos = end;
                }
                None => {
                    let starts = !space & valid & ahead;
                    if starts == 0 {
                        break;
                    }
                    pos = starts.trailing_zeros() as usize;
                    start = Some(base + pos);
                    all_word = true;
                }
            }
        }
        base += len;
    }
    if let Some(s) = start {
        each(&text[s..], all_word);
    }
}

fn is_word(c: char) -> bool {
    if c.is_ascii() {
        c.is_ascii_alphanumeric() || c == '_'
    } else if is_frequent_non_word(c) {
        false
    } else if ('\u{C0}'..='\u{FF}').contains(&c) {
        // Latin-1 letters, without the tables' search.
        c != '×' && c != '÷'
    } else if ('\u{4E00}'..='\u{9FFF}').contains(&c) {
        // CJK ideographs, all letters.
        true
    } else {
        c.is_alphanumeric() || ('\u{300}'..='\u{36f}').contains(&c)
    }
}

/// The most frequent non-ASCII characters of tweets that are not word characters, so they skip
/// the Unicode tables' search: the emoji blocks (pictographs, emoticons, transport,
/// supplemental symbols), the regional indicators that make up flags and the variation
/// selectors that follow emoji, and general punctuation (`…`, `’`, `“`, dashes). No letter or
/// digit among them (a test checks every one).
#[inline]
fn is_frequent_non_word(c: char) -> bool {
    matches!(
        c,
        '\u{1F300}'..='\u{1FAFF}'
            | '\u{1F1E6}'..='\u{1F1FF}'
            | '\u{FE00}'..='\u{FE0F}'
            | '\u{2000}'..='\u{206F}'
    )
}

/// The forms of a chunk that is not only ASCII word characters (those are their own form).
fn chunk_forms<F: FnMut(&str) + ?Sized>(chunk: &str, emit: &mut F) {
    let bytes = chunk.as_bytes();
    let raw = without_scheme_and_www(chunk);
    emit(raw);
    if !chunk.is_ascii() {
        return unicode_chunk_forms(chunk, emit);
    }
    // The same as the Unicode path below, on bytes.
    let start = bytes
        .iter()
        .position(|&b| is_ascii_word(b) || b == b'#' || b == b'@')
        .unwrap_or(bytes.len());
    let end = bytes
        .iter()
        .rposition(|&b| is_ascii_word(b))
        .map_or(start, |i| (i + 1).max(start));
    let trimmed = &chunk[start..end];
    if !trimmed.is_empty() && trimmed != chunk {
        emit(without_scheme_and_www(trimmed));
    }
    for_each_ascii_word_run(chunk, |run| {
        if run != trimmed {
            emit(run);
        }
    });
}

/// Calls `each` with every maximal run of ASCII word characters of `text` (for ASCII text, the
/// non-empty pieces of `text.split(|c| !is_word(c))`), without decoding characters.
#[inline]
fn for_each_ascii_word_run(text: &str, each: impl FnMut(&str)) {
    // URLs (50 to 100 bytes, a dozen runs) go by block masks; short chunks byte by byte.
    if text.len() >= 32 {
        for_each_ascii_word_run_by_blocks(text, each)
    } else {
        for_each_ascii_word_run_by_bytes(text, each)
    }
}

/// [`for_each_ascii_word_run`] from the word masks of [`classify`]: run boundaries are found
/// with bit operations instead of a branch per byte.
fn for_each_ascii_word_run_by_blocks(text: &str, mut each: impl FnMut(&str)) {
    let bytes = text.as_bytes();
    // The start of the run being read, if any.
    let mut start = None;
    let mut base = 0;
    while base < bytes.len() {
        let len = (bytes.len() - base).min(BLOCK);
        // Bits past the end of a short block are clear, so a run ends there as at a non-word.
        let word = classify(&bytes[base..base + len]).word;
        let mut pos = 0;
        while pos < BLOCK {
            let ahead = u64::MAX << pos;
            match start {
                Some(s) => {
                    let ends = !word & ahead;
                    let end = ends.trailing_zeros() as usize;
                    if ends == 0 || end >= len {
                        break; // the run goes on into the next block, or to the end
                    }
                    each(&text[s..base + end]);
                    start = None;
                    pos = end;
                }
                None => {
                    let starts = word & ahead;
                    if starts == 0 {
                        break;
                    }
                    pos = starts.trailing_zeros() as usize;
                    start = Some(base + pos);
                }
            }
        }
        base += len;
    }
    if let Some(s) = start {
        each(&text[s..]);
    }
}

/// [`for_each_ascii_word_run`] a byte at a time.
#[inline]
fn for_each_ascii_word_run_by_bytes(text: &str, mut each: impl FnMut(&str)) {
    let bytes = text.as_bytes();
    let mut i = 0;
    while i < bytes.len() {
        if !is_ascii_word(bytes[i]) {
            i += 1;
            continue;
        }
        let start = i;
        while i < bytes.len() && is_ascii_word(bytes[i]) {
            i += 1;
        }
        each(&text[start..i]);
    }
}

#[inline]
fn is_ascii_word(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b == b'_'
}

fn unicode_chunk_forms<F: FnMut(&str) + ?Sized>(chunk: &str, emit: &mut F) {
    let trimmed = chunk
        .trim_start_matches(|c: char| !is_word(c) && c != '#' && c != '@')
        .trim_end_matches(|c: char| !is_word(c));
    if !trimmed.is_empty() && trimmed != chunk {
        emit(without_scheme_and_www(trimmed));
    }
    for run in chunk.split(|c: char| !is_word(c)) {
        if !run.is_empty() && run != trimmed {
            emit(run);
        }
    }
}

/// `#tag` and `tag`, or `@name` and `name`.
fn marked_forms<F: FnMut(&str) + ?Sized>(
    mark: char,
    name: &str,
    lower: &mut String,
    prefixed: &mut String,
    emit: &mut F,
) {
    lower_into(lower, name);
    prefixed.clear();
    prefixed.push(mark);
    prefixed.push_str(lower);
    emit(prefixed);
    emit(lower);
}

fn url_forms<F: FnMut(&str) + ?Sized>(url: &str, emit: &mut F) {
    let canonical = without_scheme_and_www(url);
    emit(canonical);
    let no_slash = canonical.trim_end_matches('/');
    if no_slash.len() != canonical.len() {
        emit(no_slash);
    }
    // Bytes, not characters: both marks are ASCII, and a search by characters decoded each.
    if let Some(cut) = memchr::memchr2(b'?', b'#', canonical.as_bytes()) {
        let base = &canonical[..cut];
        emit(base);
        emit(base.trim_end_matches('/'));
    }
    if url.is_ascii() {
        for_each_ascii_word_run(url, |run| emit(run));
        return;
    }
    for run in url.split(|c: char| !is_word(c)) {
        if !run.is_empty() {
            emit(run);
        }
    }
}

/// `https://www.example.com/a` → `example.com/a`; other text is returned as is.
///
/// A scheme is a non-empty run of ASCII letters ending in the first `://` of the text; that is,
/// the first byte that is not a letter starts `://`.
fn without_scheme_and_www(text: &str) -> &str {
    let bytes = text.as_bytes();
    let letters = bytes
        .iter()
        .position(|b| !b.is_ascii_alphabetic())
        .unwrap_or(bytes.len());
    let rest = if letters > 0 && bytes[letters..].starts_with(b"://") {
        &text[letters + 3..]
    } else {
        text
    };
    rest.strip_prefix("www.").unwrap_or(rest)
}

/// The tokenizer as first written, a byte at a time: the reference the fast one is tested against.
#[cfg(test)]
mod reference {
    use super::has_no_case;

    /// `https://www.example.com/a` → `example.com/a`; other text is returned as is.
    pub fn without_scheme_and_www(text: &str) -> &str {
        let rest = match scheme_separator(text.as_bytes()) {
            Some(i) if i > 0 && text[..i].bytes().all(|b| b.is_ascii_alphabetic()) => {
                &text[i + 3..]
            }
            _ => text,
        };
        rest.strip_prefix("www.").unwrap_or(rest)
    }

    /// The first `://` in `bytes`.
    fn scheme_separator(bytes: &[u8]) -> Option<usize> {
        memchr::memchr_iter(b':', bytes).find(|&i| bytes[i + 1..].starts_with(b"//"))
    }

    /// Lowercases into a reused buffer, as `str::to_lowercase` does (the rules are lowercased with
    /// it): per character, except around a capital sigma, whose lowercase depends on its context.
    pub fn lower_into(buf: &mut String, text: &str) {
        buf.clear();
        let mut rest = text;
        loop {
            // ASCII runs are copied and lowercased in bulk, the rest a character at a time.
            let run = rest
                .bytes()
                .position(|b| !b.is_ascii())
                .unwrap_or(rest.len());
            let start = buf.len();
            buf.push_str(&rest[..run]);
            buf[start..].make_ascii_lowercase();
            let Some(c) = rest[run..].chars().next() else {
                return;
            };
            if c == 'Σ' {
                buf.clear();
                buf.push_str(&text.to_lowercase());
                return;
            }
            if has_no_case(c) {
                buf.push(c);
            } else {
                buf.extend(c.to_lowercase());
            }
            rest = &rest[run + c.len_utf8()..];
        }
    }

    /// Calls `each(chunk, all_word)` for every run of `text` between whitespace (as
    /// `str::split_whitespace` splits), saying whether the chunk is only ASCII word characters.
    #[inline]
    pub fn for_each_chunk(text: &str, mut each: impl FnMut(&str, bool)) {
        let bytes = text.as_bytes();
        let mut start = None;
        let mut all_word = true;
        let mut i = 0;
        while i < bytes.len() {
            let b = bytes[i];
            let (space, len, word) = if b.is_ascii() {
                (
                    matches!(b, b' ' | b'\t' | b'\n' | b'\x0b' | b'\x0c' | b'\r'),
                    1,
                    super::is_ascii_word(b),
                )
            } else {
                let c = text[i..].chars().next().expect("a char starts here");
                (c.is_whitespace(), c.len_utf8(), false)
            };
            if space {
                if let Some(s) = start.take() {
                    each(&text[s..i], all_word);
                }
            } else if start.is_none() {
                start = Some(i);
                all_word = word;
            } else {
                all_word &= word;
            }
            i += len;
        }
        if let Some(s) = start {
            each(&text[s..], all_word);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rules::normalize_phrase;
    use proptest::prelude::{prop, prop_oneof, Strategy};

    fn index(phrases: &[&str]) -> TrackIndex {
        let mut index = TrackIndex::default();
        for (i, p) in phrases.iter().enumerate() {
            index.add(&normalize_phrase(p, None).unwrap(), i);
        }
        index
    }

    fn matched(phrases: &[&str], tweet_json: &str) -> Vec<usize> {
        let tweet: TweetView = serde_json::from_str(tweet_json).unwrap();
        let mut out = Vec::new();
        index(phrases).collect(&tweet, &mut out);
        out.sort_unstable();
        out.dedup();
        out
    }

    fn text_tweet(text: &str) -> String {
        serde_json::json!({ "text": text }).to_string()
    }

    fn matches_text(term: &str, text: &str) -> bool {
        !matched(&[term], &text_tweet(text)).is_empty()
    }

    #[test]
    fn chunks_split_as_split_whitespace_does() {
        for text in [
            "",
            "  a  b\tc\n",
            "x\x0by\x0cz\u{a0}w\u{3000}v\u{2028}u\u{85}t",
            "ok.\u{1F600} #tag, café\u{200B}x",
        ] {
            let mut chunks = Vec::new();
            for_each_chunk(text, |c, all_word| {
                assert_eq!(all_word, c.bytes().all(is_ascii_word), "{c:?}");
                chunks.push(c.to_string());
            });
            assert_eq!(
                chunks,
                text.split_whitespace().collect::<Vec<_>>(),
                "{text:?}"
            );
        }
    }

    /// Text that exercises the tokenizer: every kind of whitespace (ASCII and not), the bytes
    /// that lead a non-ASCII whitespace without being one, capitals of every script the fast
    /// paths know, a capital sigma, emoji, and runs long enough to cross 64-byte blocks.
    fn tricky_text() -> impl Strategy<Value = String> {
        let piece = prop_oneof![
            4 => "[a-zA-Z0-9_]{1,12}",
            2 => prop::sample::select(vec![
                " ", "  ", "\t", "\n", "\r", "\x0b", "\x0c", "\u{85}", "\u{a0}", "\u{1680}",
                "\u{2000}", "\u{200a}", "\u{200b}", "\u{2028}", "\u{2029}", "\u{202f}",
                "\u{205f}", "\u{3000}", "\u{3001}", "\u{1fff}", "\u{e2}", "\u{c2}",
            ]).prop_map(str::to_owned),
            2 => prop::sample::select(vec![
                ".", ",", "#", "@", "'", "://", "www.", "(", ")", "…", "·", "×", "÷",
            ]).prop_map(str::to_owned),
            2 => prop::sample::select(vec![
                "Émile", "ÀÞßÿ", "NIÑO", "ΟΔΟΣ", "Σ", "İstanbul", "\u{212a}elvin", "ǅ", "Straße",
                "東京", "ＡＢＣ", "😀", "👍🏽", "🇫🇷", "e\u{301}", "привет", "ПРИВЕТ",
            ]).prop_map(str::to_owned),
            1 => "\\PC{1,6}",
        ];
        prop::collection::vec(piece, 0..60).prop_map(|pieces| pieces.concat())
    }

    /// A chunk splitter: `for_each_chunk` or its reference.
    type Splitter = fn(&str, &mut dyn FnMut(&str, bool));

    fn chunks_of(split: Splitter, text: &str) -> Vec<(String, bool)> {
        let mut chunks = Vec::new();
        split(text, &mut |c, w| chunks.push((c.to_string(), w)));
        chunks
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(2_000))]

        #[test]
        fn the_block_tokenizer_splits_as_the_reference_does(text in tricky_text()) {
            let fast = chunks_of(|t, each| for_each_chunk(t, each), &text);
            let reference = chunks_of(|t, each| reference::for_each_chunk(t, each), &text);
            proptest::prop_assert_eq!(fast, reference);
        }

        #[test]
        fn lowercasing_agrees_with_the_reference(text in tricky_text()) {
            let (mut fast, mut reference) = (String::new(), String::new());
            lower_into(&mut fast, &text);
            reference::lower_into(&mut reference, &text);
            proptest::prop_assert_eq!(&fast, &reference);
            proptest::prop_assert_eq!(fast, text.to_lowercase());
        }
    }

    #[test]
    fn every_character_is_lowercased_and_split_as_the_reference_does() {
        let (mut fast, mut reference) = (String::new(), String::new());
        for c in '\u{0}'..=char::MAX {
            // At every offset around a block boundary, between words.
            for pad in [0, 60, 61, 62, 63] {
                if pad != 0 && !(c as u32).is_multiple_of(97) && !c.is_whitespace() {
                    continue;
                }
                let text = format!("{}A{c}b", "x".repeat(pad));
                lower_into(&mut fast, &text);
                reference::lower_into(&mut reference, &text);
                assert_eq!(fast, reference, "{c:?}");
                assert_eq!(
                    chunks_of(|t, each| for_each_chunk(t, each), &text),
                    chunks_of(|t, each| reference::for_each_chunk(t, each), &text),
                    "{c:?} after {pad}"
                );
            }
        }
    }

    #[test]
    fn word_characters_are_letters_digits_underscore_and_combining_accents() {
        for c in '\u{0}'..=char::MAX {
            let expected = c.is_alphanumeric() || c == '_' || ('\u{300}'..='\u{36f}').contains(&c);
            assert_eq!(is_word(c), expected, "{c:?}");
        }
    }

    #[test]
    fn schemes_and_www_are_stripped_only_at_the_start() {
        for (text, expected) in [
            ("https://www.example.com/a", "example.com/a"),
            ("http://x", "x"),
            ("www.x.org", "x.org"),
            ("://x", "://x"),
            ("h1://x", "h1://x"),
            ("a:b://x", "a:b://x"),
            ("ab:/x://y", "ab:/x://y"),
            ("ftp:://x", "ftp:://x"),
            ("http:", "http:"),
            ("é://x", "é://x"),
        ] {
            assert_eq!(without_scheme_and_www(text), expected, "{text}");
            assert_eq!(reference::without_scheme_and_www(text), expected, "{text}");
        }
    }

    #[test]
    fn ascii_word_runs_are_the_pieces_split_gives() {
        for text in [
            "",
            "a",
            "...",
            "http://www.ex-ample.com/a_b?c=1#d",
            "_x__y..z9",
            "a.b",
        ] {
            let mut runs = Vec::new();
            for_each_ascii_word_run(text, |r| runs.push(r.to_string()));
            let pieces: Vec<&str> = text
                .split(|c: char| !is_word(c))
                .filter(|r| !r.is_empty())
                .collect();
            assert_eq!(runs, pieces, "{text}");
        }
    }

    /// A way of splitting text into word runs, as the tests compare them.
    type RunSplitter = fn(&str, &mut dyn FnMut(&str));

    fn word_runs_by(split: RunSplitter, text: &str) -> Vec<String> {
        let mut runs = Vec::new();
        split(text, &mut |r| runs.push(r.to_string()));
        runs
    }

    #[test]
    fn word_runs_by_blocks_are_those_by_bytes_at_every_block_boundary() {
        let blocks = |t: &str, e: &mut dyn FnMut(&str)| for_each_ascii_word_run_by_blocks(t, e);
        let bytes = |t: &str, e: &mut dyn FnMut(&str)| for_each_ascii_word_run_by_bytes(t, e);
        let pattern = "ab_9.x/--yz?q=1#f";
        for len in 0..200 {
            let text: String = pattern.chars().cycle().skip(len % 7).take(len).collect();
            for text in [text.clone(), format!("{text}."), format!(".{text}")] {
                let expected = word_runs_by(bytes, &text);
                assert_eq!(word_runs_by(blocks, &text), expected, "{text}");
            }
            // One long run crossing block boundaries, and a run ending exactly at one.
            let long = "w".repeat(len);
            assert_eq!(
                word_runs_by(blocks, &long),
                word_runs_by(bytes, &long),
                "{len}"
            );
            let edge = format!("{}.{}", "w".repeat(63), "v".repeat(len));
            assert_eq!(
                word_runs_by(blocks, &edge),
                word_runs_by(bytes, &edge),
                "{len}"
            );
        }
    }

    proptest::proptest! {
        #[test]
        fn word_runs_by_blocks_agree_with_the_byte_scan(text in "[a-z0-9_./:?#=-]{0,300}") {
            let blocks = |t: &str, e: &mut dyn FnMut(&str)| for_each_ascii_word_run_by_blocks(t, e);
            let bytes = |t: &str, e: &mut dyn FnMut(&str)| for_each_ascii_word_run_by_bytes(t, e);
            proptest::prop_assert_eq!(word_runs_by(blocks, &text), word_runs_by(bytes, &text));
        }

        #[test]
        fn schemes_are_stripped_as_the_reference_does(text in tricky_text(), scheme in "[a-zA-Z:/.w]{0,9}") {
            let text = format!("{scheme}{text}");
            proptest::prop_assert_eq!(without_scheme_and_www(&text), reference::without_scheme_and_www(&text));
        }

        #[test]
        fn short_texts_lowercase_as_the_reference_does(text in tricky_text()) {
            let (mut fast, mut reference) = (String::new(), String::new());
            lower_into(&mut fast, &text);
            reference::lower_into(&mut reference, &text);
            proptest::prop_assert_eq!(fast, reference);
        }
    }

    #[test]
    fn frequent_non_words_are_neither_letters_nor_digits_nor_accents() {
        for c in ('\u{0}'..=char::MAX).filter(|&c| is_frequent_non_word(c)) {
            assert!(!c.is_alphanumeric(), "{c:?} is alphanumeric");
            assert!(!('\u{300}'..='\u{36f}').contains(&c), "{c:?} is an accent");
        }
        for c in ['…', '’', '“', '—', '\u{FE0F}', '🇫', '😭'] {
            assert!(is_frequent_non_word(c), "{c:?}");
        }
    }

    #[test]
    fn characters_taken_as_caseless_are() {
        for c in ('\u{0}'..=char::MAX).filter(|&c| has_no_case(c)) {
            assert!(c.to_lowercase().eq([c]), "{c:?} has a lowercase");
        }
    }

    // The contract's examples table, row by row.

    #[test]
    fn a_retweet_text_adds_its_prefix_and_last_chunk_only() {
        let base = "Hello brave new world of tweets";
        assert_eq!(
            retweet_additions("RT @ana_1: Hello brave new wor…", base),
            Some(("RT @ana_1: ", "wor…"))
        );
        assert_eq!(
            retweet_additions("RT @ana_1: Hello brave new world of tweets", base),
            Some(("RT @ana_1: ", "tweets"))
        );
        assert_eq!(
            retweet_additions(
                "RT @ana_1: Hello\u{3000}brave…",
                base.replace(' ', "\u{3000}").as_str()
            ),
            Some(("RT @ana_1: ", "brave…"))
        );
        assert_eq!(
            retweet_additions("RT @ana_1: Hello…", base),
            Some(("RT @ana_1: ", "Hello…"))
        );
        // Not a start of the retweeted text, or not a retweet's text: searched whole.
        assert_eq!(retweet_additions("RT @ana_1: Hello brave old…", base), None);
        assert_eq!(retweet_additions("Hello brave new world", base), None);
        assert_eq!(retweet_additions("RT @ana_1 Hello brave", base), None);
    }

    fn form_set(tweet_json: &serde_json::Value) -> std::collections::BTreeSet<String> {
        let json = tweet_json.to_string();
        let tweet: TweetView = serde_json::from_str(&json).unwrap();
        let mut forms = std::collections::BTreeSet::new();
        for_each_form(&tweet, &mut |form| {
            forms.insert(form.to_owned());
        });
        forms
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(2_000))]

        /// A retweet yields exactly the forms of its text and of the retweeted text searched
        /// separately, however the retweeted text is cut (mid-word, mid-whitespace, whole) and
        /// whatever it holds.
        #[test]
        fn a_retweet_yields_the_forms_of_both_texts(
            base in tricky_text(),
            cut in 0.0..=1.0f64,
            ellipsis in proptest::bool::ANY,
            extended in proptest::bool::ANY,
        ) {
            let boundaries: Vec<usize> = base
                .char_indices()
                .map(|(i, _)| i)
                .chain([base.len()])
                .collect();
            let at = boundaries[((boundaries.len() - 1) as f64 * cut) as usize];
            let marker = if ellipsis { "…" } else { "" };
            let text = format!("RT @Some_One: {}{marker}", &base[..at]);
            let retweeted = if extended {
                serde_json::json!({ "text": "short", "extended_tweet": { "full_text": base } })
            } else {
                serde_json::json!({ "text": base })
            };
            let retweet = serde_json::json!({ "text": text, "retweeted_status": retweeted });
            let mut separately = form_set(&serde_json::json!({ "text": text }));
            separately.extend(form_set(&retweeted));
            proptest::prop_assert_eq!(form_set(&retweet), separately);
        }
    }

    #[test]
    fn twitter_matches_case_variants_and_punctuation() {
        for text in [
            "TWITTER",
            "twitter",
            "\"Twitter\"",
            "twitter.",
            "#twitter",
            "@twitter",
            "http://twitter.com",
        ] {
            assert!(matches_text("Twitter", text), "{text}");
        }
    }

    #[test]
    fn twitter_matches_hashtag_mention_and_url_entities() {
        let tweet = r##"{"text":"x","entities":{"hashtags":[{"text":"Twitter"}]}}"##;
        assert_eq!(matched(&["Twitter"], tweet), [0]);
        let tweet = r#"{"text":"x","entities":{"user_mentions":[{"screen_name":"twitter"}]}}"#;
        assert_eq!(matched(&["Twitter"], tweet), [0]);
        let tweet = r#"{"text":"x","entities":{"urls":[{"expanded_url":"http://twitter.com","display_url":"twitter.com"}]}}"#;
        assert_eq!(matched(&["Twitter"], tweet), [0]);
    }

    #[test]
    fn twitter_does_not_match_inside_longer_words() {
        assert!(!matches_text("Twitter", "TwitterTracker"));
        assert!(!matches_text("Twitter", "#newtwitter"));
        let tweet = r#"{"text":"x","entities":{"hashtags":[{"text":"newtwitter"}]}}"#;
        assert!(matched(&["Twitter"], tweet).is_empty());
    }

    #[test]
    fn possessive_term_matches_text_but_not_a_mention() {
        assert!(matches_text("Twitter's", "I like Twitter's new design"));
        assert!(!matches_text("Twitter's", "@Twitter's office"));
        let tweet = r#"{"text":"@Twitter's office","entities":{"user_mentions":[{"screen_name":"Twitter"}]}}"#;
        assert!(matched(&["Twitter's"], tweet).is_empty());
    }

    #[test]
    fn a_url_term_needs_the_whole_domain_and_path() {
        let tweet = r#"{"text":"see https://t.co/abc","entities":{"urls":[{"expanded_url":"http://www.example.com/foobarbaz","display_url":"example.com/foobarbaz"}]}}"#;
        assert!(matched(&["example.com"], tweet).is_empty());
        assert_eq!(matched(&["example.com/foobarbaz"], tweet), [0]);
        assert_eq!(matched(&["example com"], tweet), [0]);
        assert!(matched(&["www.example.com/foobarbaz"], tweet).is_empty());
        assert!(!matches_text(
            "www.example.com/foobarbaz",
            "www.example.com/foobarbaz"
        ));
        assert!(!matches_text("example.com", "example.com/foobarbaz"));
    }

    #[test]
    fn a_homepage_url_matches_its_domain() {
        let tweet = r#"{"text":"x","entities":{"urls":[{"expanded_url":"https://www.example.com/?ref=tw","display_url":"example.com"}]}}"#;
        assert_eq!(matched(&["example.com"], tweet), [0]);
    }

    #[test]
    fn a_url_matches_without_its_query_or_fragment() {
        for (url, term) in [
            ("https://example.com/a/#top", "example.com/a"),
            ("https://example.com/a?x=1#top", "example.com/a"),
            ("https://例え.jp/パス#上", "例え.jp/パス"),
            ("https://例え.jp/パス?q=é", "例え.jp/パス"),
        ] {
            let tweet =
                format!(r#"{{"text":"x","entities":{{"urls":[{{"expanded_url":"{url}"}}]}}}}"#);
            assert_eq!(matched(&[term], &tweet), [0], "{url}");
        }
    }

    #[test]
    fn punctuation_in_the_tweet_is_ignored_but_not_in_the_term() {
        assert!(matches_text("hello", "hello world"));
        assert!(matches_text("hello", "my brother says hello."));
        assert!(matches_text("hello.", "my brother says hello."));
        assert!(!matches_text("hello.", "hello world"));
    }

    #[test]
    fn a_term_with_punctuation_does_not_match_hashtags_or_mentions() {
        let tweet = r#"{"text":"x","entities":{"hashtags":[{"text":"hello"}],"user_mentions":[{"screen_name":"hello"}]}}"#;
        assert!(matched(&["hello."], tweet).is_empty());
        assert!(matched(&["hello!"], tweet).is_empty());
        assert_eq!(matched(&["hello"], tweet), [0]);
    }

    #[test]
    fn marked_terms_match_only_their_kind_of_entity() {
        let hashtag = r#"{"text":"x","entities":{"hashtags":[{"text":"Rust"}]}}"#;
        let mention = r#"{"text":"x","entities":{"user_mentions":[{"screen_name":"Rust"}]}}"#;
        assert_eq!(matched(&["#rust"], hashtag), [0]);
        assert!(matched(&["@rust"], hashtag).is_empty());
        assert_eq!(matched(&["@rust"], mention), [0]);
        assert!(matched(&["#rust"], mention).is_empty());
        assert!(!matches_text("#rust", "I like rust"));
    }

    #[test]
    fn unicode_is_case_folded_but_not_accent_folded() {
        assert!(matches_text("touché", "TOUCHÉ!"));
        assert!(!matches_text("touche", "touché"));
        assert!(!matches_text("touché", "touche"));
        assert!(matches_text("今日中国", "今日中国 😀"));
        assert!(matches_text("οδος", "ΟΔΟΣ"));
    }

    #[test]
    fn terms_are_anded_in_any_order_and_phrases_ored() {
        assert!(matches_text("the twitter", "twitter is the best"));
        assert!(matches_text("the twitter", "twitter\x0bthe\tbest"));
        assert!(!matches_text("the twitter", "twitter is great"));
        assert_eq!(
            matched(
                &["apple pie", "banana", "cherry"],
                &text_tweet("Pie with APPLE and cherry")
            ),
            [0, 2]
        );
    }

    #[test]
    fn retweeted_quoted_and_extended_content_is_searched() {
        let tweet = r##"{"text":"RT @a: short…","retweeted_status":{"text":"short…",
            "extended_tweet":{"full_text":"short but then a needle appears","entities":{"hashtags":[{"text":"hay"}]}}},
            "quoted_status":{"text":"q","entities":{"urls":[{"expanded_url":"https://rust-lang.org/learn","display_url":"rust-lang.org/learn"}]}}}"##;
        assert_eq!(
            matched(&["needle", "#hay", "rust-lang.org/learn", "absent"], tweet),
            [0, 1, 2]
        );
    }

    #[test]
    fn the_author_screen_name_is_searched_like_a_mention() {
        let tweet = r#"{"text":"hi","user":{"screen_name":"NASA"}}"#;
        assert_eq!(matched(&["nasa"], tweet), [0]);
        assert_eq!(matched(&["@nasa"], tweet), [0]);
    }

    #[test]
    fn rules_with_the_same_phrase_all_match() {
        let mut index = TrackIndex::default();
        index.add("happy", 3);
        index.add("happy", 7);
        index.add("sad", 9);
        let json = text_tweet("so happy");
        let tweet: TweetView = serde_json::from_str(&json).unwrap();
        let mut out = Vec::new();
        index.collect(&tweet, &mut out);
        out.sort_unstable();
        assert_eq!(out, [3, 7]);
    }
}
