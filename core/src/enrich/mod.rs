//! Enrichment: each streaming message becomes one output [`Record`]; tweets get a `traptor`
//! object naming the rules they matched.
//!
//! # Output of a tweet
//! The original tweet bytes, untouched, with one member added before the final `}`:
//!
//! ```json
//! "traptor": {
//!   "id_str": 0,
//!   "created_at_iso": "2016-02-22T01:34:53+00:00",
//!   "collection_rules": [ {"tag": "test", "value": "happy", ..., "rule_tag": "test", "rule_value": "happy"} ],
//!   "stream": {"type": "track", "id": "0"},
//!   "received_at": "2024-05-01T12:00:00.123Z",
//!   "traptor_version": "0.1.0"
//! }
//! ```
//!
//! - `id_str` is the slot id, as the original's `int(TRAPTOR_ID)`: a JSON number when the id is
//!   a plain decimal number, else a string, `null` without a slot (offline enrichment).
//! - `created_at_iso` is `created_at` in ISO-8601 with its offset; left out when `created_at` is
//!   missing or malformed (the error is reported in [`Enriched::error`]).
//! - `collection_rules` holds every matched rule, in rule order: every field of its hash as a
//!   string in stored order, `rule_type` when the hash has none, `rule_tag` (the `tag`) and
//!   `rule_value` (the value as stored).
//! - Nothing matched: `collection_rules` is empty and, as in the original, `rule_type` (the slot
//!   type, or `"unknown"`), `id` (the slot id), `rule_tag` and `rule_value` (both `"Not Found"`)
//!   are added.
//! - `stream`, `received_at` (UTC, milliseconds) and `traptor_version` are additions for
//!   downstream users; the original's fields keep their meaning.
//! - A tweet that already has a `traptor` key keeps it, renamed `traptor_original` (see
//!   [`output::rewrite_with_traptor`]), so the output always has exactly one `traptor` key.
//!
//! # Other messages
//! Control messages (limit, delete, ...) and unknown objects are written unchanged, byte for
//! byte, with their kind. Their key is `None`, except `delete` and `status_withheld`, keyed by
//! the tweet they are about so that they land in the same partition as that tweet. Invalid input
//! (not UTF-8, not JSON, not an object) is kept byte for byte as [`MessageKind::Invalid`] with
//! the reason in [`Enriched::error`]. Nothing panics and no message is dropped.

pub mod message;
pub mod output;
pub mod timestamps;

use serde_json::error::Category;

use crate::matching::Matcher;
use crate::record::{MessageKind, Record};
use crate::rules::{Rule, SlotId};

use message::{kind_of_keys, Message, TopLevelKeys};
use output::TraptorFields;

/// Room for the `traptor` object besides its rules (its fixed fields come to about 250 bytes).
const TRAPTOR_OBJECT_SIZE: usize = 320;

/// Why a message could not be enriched as a tweet. The message is still written.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum EnrichError {
    #[error("the message is not valid UTF-8 (bad byte at offset {offset}); it was kept as an invalid message")]
    InvalidUtf8 { offset: usize },
    #[error("the message is not valid JSON ({reason}); it was kept as an invalid message")]
    InvalidJson { reason: String },
    #[error("the message is JSON but not an object; it was kept as an invalid message")]
    NotAnObject,
    #[error(
        "created_at {created_at:?} is not of the form `Mon Feb 22 01:34:53 +0000 2016`; \
         the tweet was written without created_at_iso"
    )]
    BadCreatedAt { created_at: String },
    #[error(
        "a tweet field has an unexpected type ({reason}); the tweet was written tagged \"Not Found\" \
         because its rules could not be checked"
    )]
    UnreadableTweet { reason: String },
}

/// The outcome of enriching one message: the record to write, the matched rules (indexes into
/// [`Enricher::rules`]) and what went wrong, if anything.
#[derive(Debug, Clone, PartialEq)]
pub struct Enriched {
    pub record: Record,
    pub matched: Vec<usize>,
    pub error: Option<EnrichError>,
}

/// One slot's enrichment: its rules, their index, and their output fragments, built once per
/// rule change and applied to every message of the stream.
#[derive(Debug, Clone)]
pub struct Enricher {
    slot: Option<SlotId>,
    slot_id_json: Vec<u8>,
    rules: Vec<Rule>,
    rule_json: Vec<Vec<u8>>,
    matcher: Matcher,
}

impl Enricher {
    /// `slot` is the connection's slot (`None` when enriching offline against any rules).
    pub fn new(slot: Option<SlotId>, rules: Vec<Rule>) -> Enricher {
        let matcher = Matcher::new(&rules);
        let rule_json = rules.iter().map(output::collection_rule_json).collect();
        let slot_id_json = output::slot_id_json(slot.as_ref());
        Enricher {
            slot,
            slot_id_json,
            rules,
            rule_json,
            matcher,
        }
    }

    pub fn rules(&self) -> &[Rule] {
        &self.rules
    }

    pub fn slot(&self) -> Option<&SlotId> {
        self.slot.as_ref()
    }

    pub fn matcher(&self) -> &Matcher {
        &self.matcher
    }

    /// Turns one frame of the stream into its output record. Never panics, never drops it.
    pub fn enrich(&self, frame: &[u8], received_at_ms: i64) -> Enriched {
        let mut message = Message::default();
        match message.skim_from(frame) {
            Ok(()) => self.enrich_message(frame, &message, received_at_ms),
            // Invalid frames, odd field types and control messages with keys: serde's reading
            // decides, and its errors name what is wrong.
            Err(_) => self.enrich_with_serde(frame, received_at_ms),
        }
    }

    /// [`Enricher::enrich`] with serde reading the frame: the reference the fast path must
    /// agree with, and the path for every frame the fast path leaves alone.
    pub(crate) fn enrich_with_serde(&self, frame: &[u8], received_at_ms: i64) -> Enriched {
        if let Err(e) = utf8(frame) {
            return self.as_is(
                frame,
                received_at_ms,
                MessageKind::Invalid,
                None,
                Some(EnrichError::InvalidUtf8 {
                    offset: e.valid_up_to(),
                }),
            );
        }
        let message = match serde_json::from_slice::<Message>(frame) {
            Ok(message) => message,
            Err(error) => return self.enrich_unparsed(frame, received_at_ms, error),
        };
        // Keys are read as raw bytes, which lets control characters through; JSON forbids them.
        if let Err(error) = serde_json::from_slice::<serde::de::IgnoredAny>(frame) {
            return self.as_is(
                frame,
                received_at_ms,
                MessageKind::Invalid,
                None,
                Some(EnrichError::InvalidJson {
                    reason: error.to_string(),
                }),
            );
        }
        self.enrich_message(frame, &message, received_at_ms)
    }

    fn enrich_message(&self, frame: &[u8], message: &Message<'_>, received_at_ms: i64) -> Enriched {
        let as_is = |kind: MessageKind, key: Option<String>| {
            self.as_is(frame, received_at_ms, kind, key, None)
        };
        match message.kind() {
            MessageKind::Tweet => self.enrich_tweet(frame, message, received_at_ms),
            MessageKind::Delete => as_is(
                MessageKind::Delete,
                message.deleted_status.as_ref().map(|t| t.0.to_string()),
            ),
            MessageKind::StatusWithheld => as_is(
                MessageKind::StatusWithheld,
                message.withheld_status.map(|id| id.to_string()),
            ),
            kind => as_is(kind, None),
        }
    }

    /// The frame written unchanged.
    fn as_is(
        &self,
        frame: &[u8],
        received_at_ms: i64,
        kind: MessageKind,
        key: Option<String>,
        error: Option<EnrichError>,
    ) -> Enriched {
        Enriched {
            record: self.record(kind, key, frame.to_vec(), received_at_ms),
            matched: Vec::new(),
            error,
        }
    }

    fn enrich_tweet(&self, frame: &[u8], message: &Message<'_>, received_at_ms: i64) -> Enriched {
        let tweet = &message.tweet;
        let matched = self.matcher.matches(tweet);
        let created_at_iso = tweet
            .created_at
            .as_deref()
            .and_then(timestamps::created_at_iso);
        let error = match (&tweet.created_at, &created_at_iso) {
            (Some(raw), None) => Some(EnrichError::BadCreatedAt {
                created_at: raw.to_string(),
            }),
            _ => None,
        };
        let payload = self.tweet_payload(
            frame,
            message.has_key("traptor"),
            &matched,
            created_at_iso.as_deref(),
            received_at_ms,
        );
        let key = tweet.id_str.as_ref().map(|t| t.to_string());
        Enriched {
            record: self.record(MessageKind::Tweet, key, payload, received_at_ms),
            matched,
            error,
        }
    }

    /// A frame the tweet view could not read: invalid JSON, not an object, or a tweet whose
    /// fields have unexpected types (still tagged, as Not Found, so downstream sees a `traptor`).
    fn enrich_unparsed(
        &self,
        frame: &[u8],
        received_at_ms: i64,
        error: serde_json::Error,
    ) -> Enriched {
        let as_is = |kind: MessageKind, error: EnrichError| Enriched {
            record: self.record(kind, None, frame.to_vec(), received_at_ms),
            matched: Vec::new(),
            error: Some(error),
        };
        if error.classify() != Category::Data {
            return as_is(
                MessageKind::Invalid,
                EnrichError::InvalidJson {
                    reason: error.to_string(),
                },
            );
        }
        let keys = match serde_json::from_slice::<TopLevelKeys>(frame) {
            Ok(keys) => keys.0,
            Err(_) => return as_is(MessageKind::Invalid, EnrichError::NotAnObject),
        };
        let kind = kind_of_keys(keys.iter().map(|k| &**k));
        let reason = EnrichError::UnreadableTweet {
            reason: error.to_string(),
        };
        if kind != MessageKind::Tweet {
            return Enriched {
                error: None,
                ..as_is(kind, reason)
            };
        }
        let has_traptor = keys.iter().any(|k| &**k == "traptor");
        let payload = self.tweet_payload(frame, has_traptor, &[], None, received_at_ms);
        Enriched {
            record: self.record(MessageKind::Tweet, None, payload, received_at_ms),
            matched: Vec::new(),
            error: Some(reason),
        }
    }

    fn tweet_payload(
        &self,
        frame: &[u8],
        has_traptor: bool,
        matched: &[usize],
        created_at_iso: Option<&str>,
        received_at_ms: i64,
    ) -> Vec<u8> {
        let matched_rules: Vec<&[u8]> = matched
            .iter()
            .map(|&i| self.rule_json[i].as_slice())
            .collect();
        let received_at = timestamps::received_at_iso(received_at_ms);
        let fields = TraptorFields {
            slot: self.slot.as_ref(),
            slot_id_json: &self.slot_id_json,
            created_at_iso,
            received_at: received_at.as_deref(),
        };
        let rules_len: usize = matched_rules.iter().map(|r| r.len() + 1).sum();
        if !has_traptor {
            // The common case: one buffer, sized once, and the object written straight into it.
            let mut payload = Vec::with_capacity(frame.len() + TRAPTOR_OBJECT_SIZE + rules_len);
            output::splice_traptor_with(&mut payload, frame, |out| {
                output::write_traptor_object(out, &fields, &matched_rules)
            });
            return payload;
        }
        let mut traptor = Vec::with_capacity(TRAPTOR_OBJECT_SIZE + rules_len);
        output::write_traptor_object(&mut traptor, &fields, &matched_rules);
        let mut payload = Vec::with_capacity(frame.len() + traptor.len() + 32);
        if output::rewrite_with_traptor(&mut payload, frame, &traptor).is_err() {
            // Unreachable for a frame that already parsed as an object; keep it unchanged.
            payload = frame.to_vec();
        }
        payload
    }

    fn record(
        &self,
        kind: MessageKind,
        key: Option<String>,
        payload: Vec<u8>,
        received_at_ms: i64,
    ) -> Record {
        Record {
            kind,
            key,
            payload,
            slot: self.slot.clone(),
            received_at_ms,
        }
    }
}

/// `std::str::from_utf8`, with a SIMD check first: tweets are mostly ASCII with some non-ASCII
/// text, where std's check slows to a byte at a time.
fn utf8(frame: &[u8]) -> Result<&str, std::str::Utf8Error> {
    match simdutf8::basic::from_utf8(frame) {
        Ok(text) => Ok(text),
        Err(_) => std::str::from_utf8(frame),
    }
}

#[cfg(test)]
mod differential_tests;
#[cfg(test)]
mod tests;
