//! One serde pass over a streaming message: its top-level keys, which say what it is, and the
//! tweet view that matching and enrichment read.

use std::borrow::Cow;
use std::fmt;

use serde::de::{Deserializer, IgnoredAny, MapAccess, Visitor};
use serde::Deserialize;

use crate::matching::json_skim::{Scan, Stop};
use crate::matching::tweet::{Key, Text, TweetView};
use crate::matching::tweet_skim::Skim;
use crate::record::MessageKind;

/// What a message's single parse yields.
#[derive(Debug, Default)]
pub struct Message<'a> {
    /// The top-level keys, in document order: every key when serde read the message; when it
    /// was skimmed, only `traptor` (all that enrichment asks of them: the kind is worked out
    /// while skimming).
    pub keys: Vec<Key<'a>>,
    /// The tweet fields (empty for control messages).
    pub tweet: TweetView<'a>,
    /// `delete.status.id_str`: the deleted tweet, used as the record key.
    pub deleted_status: Option<Text<'a>>,
    /// `status_withheld.id`: the withheld tweet, used as the record key.
    pub withheld_status: Option<u64>,
    /// The kind, when the reading already worked it out.
    known_kind: Option<MessageKind>,
}

impl<'a> Message<'a> {
    /// Reads a frame with the [`Skim`] scanner: the message serde would give (but for the
    /// keys that matter to nothing, see [`Message::keys`]), or a
    /// [`Stop`] that sends the frame down the serde path. Control messages that carry a record
    /// key (`delete`, `status_withheld`) are left to serde.
    pub fn skim(frame: &'a [u8]) -> Scan<Message<'a>> {
        let mut message = Message::default();
        message.skim_from(frame)?;
        Ok(message)
    }

    /// [`Message::skim`] into a message just made with `Message::default()`: filled in place,
    /// where a returned message (hundreds of bytes) would be copied on every frame.
    #[inline]
    pub fn skim_from(&mut self, frame: &'a [u8]) -> Scan<()> {
        let message = self;
        let mut skim = Skim::new(frame);
        skim.scanner.begin_object()?;
        // The deciding keys in document order, kept on the stack (a tweet has four or five);
        // a frame with more is left to serde.
        let mut names = [""; 16];
        let mut name_count = 0;
        let mut first = true;
        while let Some(key) = skim.scanner.next_key(first)? {
            first = false;
            if !skim.tweet_field(&mut message.tweet, key, 0)? {
                if key == b"delete" || key == b"status_withheld" {
                    return Err(Stop::Unsure);
                }
                skim.scanner.skip_value()?;
            }
            if let Some(name) = deciding_name(key) {
                *names.get_mut(name_count).ok_or(Stop::Unsure)? = name;
                name_count += 1;
            } else if key == b"traptor" {
                message.keys.push(Key(Cow::Borrowed(key)));
            }
        }
        skim.scanner.finish()?;
        message.known_kind = Some(kind_of_keys(names[..name_count].iter().copied()));
        Ok(())
    }

    /// The kind the top-level keys give.
    pub fn kind(&self) -> MessageKind {
        if let Some(kind) = self.known_kind {
            return kind;
        }
        kind_of_keys(
            self.keys
                .iter()
                .filter_map(|k| std::str::from_utf8(k.as_bytes()).ok()),
        )
    }

    pub fn has_key(&self, name: &str) -> bool {
        self.keys.iter().any(|k| k.as_bytes() == name.as_bytes())
    }
}

/// The top-level keys that decide a message's kind in `kind_of_keys`; any other key counts as
/// "other", which decides nothing. Classifying only these keeps a tweet's seventy-odd keys out
/// of the classifier. (A test checks that this list and the classifier agree.)
const DECIDING_KEYS: [&str; 11] = [
    "limit",
    "delete",
    "scrub_geo",
    "status_withheld",
    "user_withheld",
    "disconnect",
    "warning",
    "id_str",
    "text",
    "full_text",
    "user",
];

/// The name in [`DECIDING_KEYS`] equal to a skimmed key, if any.
#[inline]
fn deciding_name(key: &[u8]) -> Option<&'static str> {
    // Most keys are ruled out by their length alone.
    if !matches!(key.len(), 4..=6 | 7 | 9 | 10 | 13 | 15) {
        return None;
    }
    DECIDING_KEYS
        .iter()
        .copied()
        .find(|name| name.as_bytes() == key)
}

/// The single place where top-level keys become a message kind.
pub fn kind_of_keys<'k>(keys: impl IntoIterator<Item = &'k str>) -> MessageKind {
    crate::protocol::kind_from_top_level_keys(keys)
}

#[derive(Deserialize)]
struct DeleteView<'a> {
    #[serde(borrow, default)]
    status: Option<StatusRef<'a>>,
}

#[derive(Deserialize)]
struct StatusRef<'a> {
    #[serde(borrow, default)]
    id_str: Option<Text<'a>>,
}

#[derive(Deserialize)]
struct WithheldView {
    #[serde(default)]
    id: Option<u64>,
}

impl<'de: 'a, 'a> Deserialize<'de> for Message<'a> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct MessageVisitor;
        impl<'de> Visitor<'de> for MessageVisitor {
            type Value = Message<'de>;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a JSON object")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Message<'de>, A::Error> {
                let mut message = Message {
                    keys: Vec::with_capacity(32),
                    ..Message::default()
                };
                while let Some(key) = map.next_key::<Key<'de>>()? {
                    if !message.tweet.read_field(key.as_bytes(), &mut map)? {
                        match key.as_bytes() {
                            b"delete" => {
                                message.deleted_status = map
                                    .next_value::<Option<DeleteView>>()?
                                    .and_then(|d| d.status)
                                    .and_then(|s| s.id_str)
                            }
                            b"status_withheld" => {
                                message.withheld_status =
                                    map.next_value::<Option<WithheldView>>()?.and_then(|w| w.id)
                            }
                            _ => {
                                map.next_value::<IgnoredAny>()?;
                            }
                        }
                    }
                    message.keys.push(key);
                }
                Ok(message)
            }
        }
        deserializer.deserialize_map(MessageVisitor)
    }
}

/// Only the top-level keys, every value skipped: the fallback when a message's fields have
/// types the tweet view does not accept, so that it can still be classified.
#[derive(Debug, Default)]
pub struct TopLevelKeys<'a>(pub Vec<Text<'a>>);

impl<'de: 'a, 'a> Deserialize<'de> for TopLevelKeys<'a> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct KeysVisitor;
        impl<'de> Visitor<'de> for KeysVisitor {
            type Value = TopLevelKeys<'de>;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a JSON object")
            }
            fn visit_map<A: MapAccess<'de>>(
                self,
                mut map: A,
            ) -> Result<TopLevelKeys<'de>, A::Error> {
                let mut keys = Vec::new();
                while let Some(key) = map.next_key::<Text<'de>>()? {
                    map.next_value::<IgnoredAny>()?;
                    keys.push(key);
                }
                Ok(TopLevelKeys(keys))
            }
        }
        deserializer.deserialize_map(KeysVisitor)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_tweet_keeps_its_keys_in_order_and_its_view() {
        let m: Message =
            serde_json::from_str(r#"{"created_at":"x","id_str":"5","text":"hi","lang":"en"}"#)
                .unwrap();
        let keys: Vec<&[u8]> = m.keys.iter().map(|k| k.as_bytes()).collect();
        assert_eq!(keys, [&b"created_at"[..], b"id_str", b"text", b"lang"]);
        assert_eq!(m.tweet.id_str.as_deref(), Some("5"));
        assert_eq!(m.kind(), MessageKind::Tweet);
    }

    #[test]
    fn control_messages_yield_the_status_they_are_about() {
        let m: Message = serde_json::from_str(
            r#"{"delete":{"status":{"id":1234,"id_str":"1234","user_id":3,"user_id_str":"3"}}}"#,
        )
        .unwrap();
        assert_eq!(
            (m.kind(), m.deleted_status.as_deref()),
            (MessageKind::Delete, Some("1234"))
        );
        let m: Message =
            serde_json::from_str(r#"{"status_withheld":{"id":1234567890,"user_id":123456,"withheld_in_countries":["DE"]}}"#)
                .unwrap();
        assert_eq!(
            (m.kind(), m.withheld_status),
            (MessageKind::StatusWithheld, Some(1234567890))
        );
    }

    #[test]
    fn every_deciding_key_is_recognized() {
        for name in DECIDING_KEYS {
            assert_eq!(deciding_name(name.as_bytes()), Some(name));
        }
        assert_eq!(deciding_name(b"retweet_count"), None);
    }

    #[test]
    fn skimming_gives_the_kind_serde_reading_gives() {
        let fixtures = format!(
            "{}/../tests/fixtures/traptor-v4",
            env!("CARGO_MANIFEST_DIR")
        );
        let mut checked = 0;
        for entry in std::fs::read_dir(&fixtures).unwrap() {
            let frame = std::fs::read(entry.unwrap().path()).unwrap();
            let Ok(serde) = serde_json::from_slice::<Message>(&frame) else {
                continue;
            };
            let Ok(skimmed) = Message::skim(&frame) else {
                continue; // left to serde
            };
            assert_eq!(skimmed.kind(), serde.kind());
            checked += 1;
        }
        assert!(checked >= 4, "only {checked} fixtures were skimmed");
        // Each deciding key, alone and beside the keys of a tweet, decides as the classifier does.
        for key in DECIDING_KEYS {
            for others in [&[][..], &["id_str", "text"], &["text"], &["id_str"]] {
                let json = std::iter::once(key)
                    .chain(others.iter().copied())
                    .map(|k| match k {
                        "id_str" | "text" | "full_text" => format!("\"{k}\":\"v\""),
                        _ => format!("\"{k}\":{{}}"),
                    })
                    .collect::<Vec<_>>()
                    .join(",");
                let frame = format!("{{\"other\":1,{json}}}");
                let names = std::iter::once("other")
                    .chain(std::iter::once(key))
                    .chain(others.iter().copied());
                match Message::skim(frame.as_bytes()) {
                    Ok(skimmed) => assert_eq!(skimmed.kind(), kind_of_keys(names), "{frame}"),
                    Err(_) => assert!(matches!(key, "delete" | "status_withheld"), "{frame}"),
                }
            }
        }
    }

    #[test]
    fn top_level_keys_survive_fields_of_unexpected_types() {
        let json = r#"{"id_str":5,"text":["not","text"]}"#;
        assert!(serde_json::from_str::<Message>(json).is_err());
        let keys = serde_json::from_str::<TopLevelKeys>(json).unwrap();
        assert_eq!(
            kind_of_keys(keys.0.iter().map(|k| &**k)),
            MessageKind::Tweet
        );
    }
}
