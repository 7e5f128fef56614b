//! Tells what one streaming message is, from its top-level keys, in a single borrowed parse.
//!
//! The rules, first match wins:
//! 1. not JSON, not UTF-8, or not an object → [`MessageKind::Invalid`];
//! 2. a top-level `limit` → Limit (first, as the original did); then `delete`, `scrub_geo`,
//!    `status_withheld`, `user_withheld`, `disconnect`, `warning` → that kind;
//! 3. a top-level `id_str` together with `text`, `full_text` or `user` → Tweet;
//! 4. any other object → Unknown (kept and written, never dropped).
//!
//! Tweet bodies are skipped with [`IgnoredAny`] (validated, not built), so classifying costs one
//! fast pass; only the small body of a control message is materialized, to read its details.

use std::fmt;

use serde::de::{self, Deserializer as _, IgnoredAny, MapAccess, Visitor};
use serde_json::Value;

use crate::record::MessageKind;

/// The kind of a message and, for control messages, the fields a stream acts on.
#[derive(Debug, Clone, PartialEq)]
pub struct Classified {
    pub kind: MessageKind,
    pub detail: ControlDetail,
}

/// The useful fields of a control message. Every field is optional: the contract warns that
/// shapes vary, and a missing field must not turn a message into an error.
#[derive(Debug, Clone, PartialEq, Default)]
pub enum ControlDetail {
    /// Tweets, unknown and invalid messages, withheld notices.
    #[default]
    None,
    Disconnect {
        code: Option<u32>,
        reason: Option<String>,
        stream_name: Option<String>,
    },
    /// `undelivered` is the count under `track`, `follow` or `locations` (the first present):
    /// the total of matching tweets not delivered since the connection opened.
    Limit {
        undelivered: Option<u64>,
        timestamp_ms: Option<i64>,
    },
    Warning {
        code: Option<String>,
        message: Option<String>,
        percent_full: Option<u32>,
    },
    Delete {
        status_id: Option<u64>,
        user_id: Option<u64>,
    },
    ScrubGeo {
        user_id: Option<u64>,
        up_to_status_id: Option<u64>,
    },
}

/// Classifies one frame (the message bytes without their line terminator).
pub fn classify(frame: &[u8]) -> Classified {
    match parse_top_level(frame) {
        Ok(top) => {
            let kind = top.keys.kind();
            let detail = top.control_bodies.detail(kind);
            Classified { kind, detail }
        }
        Err(_) => Classified {
            kind: MessageKind::Invalid,
            detail: ControlDetail::None,
        },
    }
}

/// The kind implied by an object's top-level keys, for a caller that parsed the message itself
/// (the enricher) and must not parse it twice. Same rules as [`classify`] for a valid object.
pub fn kind_from_top_level_keys<'a>(keys: impl IntoIterator<Item = &'a str>) -> MessageKind {
    let mut set = KeySet::default();
    for key in keys {
        set.insert(TopKey::from_name(key));
    }
    set.kind()
}

/// The top-level keys that decide a message's kind; all others are `Other`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum TopKey {
    Limit,
    Delete,
    ScrubGeo,
    StatusWithheld,
    UserWithheld,
    Disconnect,
    Warning,
    IdStr,
    Text,
    FullText,
    User,
    Other,
}

impl TopKey {
    fn from_name(name: &str) -> TopKey {
        match name {
            "limit" => TopKey::Limit,
            "delete" => TopKey::Delete,
            "scrub_geo" => TopKey::ScrubGeo,
            "status_withheld" => TopKey::StatusWithheld,
            "user_withheld" => TopKey::UserWithheld,
            "disconnect" => TopKey::Disconnect,
            "warning" => TopKey::Warning,
            "id_str" => TopKey::IdStr,
            "text" => TopKey::Text,
            "full_text" => TopKey::FullText,
            "user" => TopKey::User,
            _ => TopKey::Other,
        }
    }

    fn bit(self) -> u16 {
        1 << (self as u16)
    }
}

/// Reads a key without allocating, escaped or not.
impl<'de> de::Deserialize<'de> for TopKey {
    fn deserialize<D: de::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct KeyVisitor;
        impl Visitor<'_> for KeyVisitor {
            type Value = TopKey;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("an object key")
            }
            fn visit_str<E: de::Error>(self, name: &str) -> Result<TopKey, E> {
                Ok(TopKey::from_name(name))
            }
        }
        deserializer.deserialize_identifier(KeyVisitor)
    }
}

/// Which deciding keys an object has.
#[derive(Debug, Clone, Copy, Default)]
struct KeySet(u16);

impl KeySet {
    fn insert(&mut self, key: TopKey) {
        self.0 |= key.bit();
    }

    fn has(self, key: TopKey) -> bool {
        self.0 & key.bit() != 0
    }

    fn kind(self) -> MessageKind {
        const CONTROL: [(TopKey, MessageKind); 7] = [
            (TopKey::Limit, MessageKind::Limit),
            (TopKey::Delete, MessageKind::Delete),
            (TopKey::ScrubGeo, MessageKind::ScrubGeo),
            (TopKey::StatusWithheld, MessageKind::StatusWithheld),
            (TopKey::UserWithheld, MessageKind::UserWithheld),
            (TopKey::Disconnect, MessageKind::Disconnect),
            (TopKey::Warning, MessageKind::Warning),
        ];
        if let Some((_, kind)) = CONTROL.iter().find(|(key, _)| self.has(*key)) {
            return *kind;
        }
        let has_body =
            self.has(TopKey::Text) || self.has(TopKey::FullText) || self.has(TopKey::User);
        if self.has(TopKey::IdStr) && has_body {
            MessageKind::Tweet
        } else {
            MessageKind::Unknown
        }
    }
}

/// The bodies of the control keys whose details are read (the first occurrence of each).
#[derive(Debug, Default)]
struct ControlBodies {
    limit: Option<Value>,
    delete: Option<Value>,
    scrub_geo: Option<Value>,
    disconnect: Option<Value>,
    warning: Option<Value>,
}

impl ControlBodies {
    fn slot(&mut self, key: TopKey) -> Option<&mut Option<Value>> {
        match key {
            TopKey::Limit => Some(&mut self.limit),
            TopKey::Delete => Some(&mut self.delete),
            TopKey::ScrubGeo => Some(&mut self.scrub_geo),
            TopKey::Disconnect => Some(&mut self.disconnect),
            TopKey::Warning => Some(&mut self.warning),
            _ => None,
        }
    }

    fn detail(&self, kind: MessageKind) -> ControlDetail {
        match kind {
            MessageKind::Limit => {
                let body = self.limit.as_ref();
                ControlDetail::Limit {
                    undelivered: ["track", "follow", "locations"]
                        .iter()
                        .find_map(|k| body.and_then(|b| b.get(k)).and_then(as_u64)),
                    timestamp_ms: body.and_then(|b| b.get("timestamp_ms")).and_then(as_i64),
                }
            }
            MessageKind::Delete => {
                let status = self.delete.as_ref().and_then(|b| b.get("status"));
                ControlDetail::Delete {
                    status_id: id_field(status, "id"),
                    user_id: id_field(status, "user_id"),
                }
            }
            MessageKind::ScrubGeo => {
                let body = self.scrub_geo.as_ref();
                ControlDetail::ScrubGeo {
                    user_id: id_field(body, "user_id"),
                    up_to_status_id: id_field(body, "up_to_status_id"),
                }
            }
            MessageKind::Disconnect => {
                let body = self.disconnect.as_ref();
                ControlDetail::Disconnect {
                    code: body
                        .and_then(|b| b.get("code"))
                        .and_then(as_u64)
                        .and_then(|c| u32::try_from(c).ok()),
                    reason: body.and_then(|b| b.get("reason")).and_then(as_text),
                    stream_name: body.and_then(|b| b.get("stream_name")).and_then(as_text),
                }
            }
            MessageKind::Warning => {
                let body = self.warning.as_ref();
                ControlDetail::Warning {
                    code: body.and_then(|b| b.get("code")).and_then(as_text),
                    message: body.and_then(|b| b.get("message")).and_then(as_text),
                    percent_full: body
                        .and_then(|b| b.get("percent_full"))
                        .and_then(|v| v.as_f64().or_else(|| v.as_str()?.trim().parse().ok()))
                        .filter(|p| (0.0..=u32::MAX as f64).contains(p))
                        .map(|p| p as u32),
                }
            }
            _ => ControlDetail::None,
        }
    }
}

/// A number, or a string of digits (ids and timestamps come both ways).
fn as_u64(value: &Value) -> Option<u64> {
    value
        .as_u64()
        .or_else(|| value.as_str()?.trim().parse().ok())
}

fn as_i64(value: &Value) -> Option<i64> {
    value
        .as_i64()
        .or_else(|| value.as_str()?.trim().parse().ok())
}

fn as_text(value: &Value) -> Option<String> {
    match value {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        _ => None,
    }
}

/// `<name>_str` when present (exact for ids beyond 2^53), else `<name>`.
fn id_field(body: Option<&Value>, name: &str) -> Option<u64> {
    let body = body?;
    body.get(format!("{name}_str"))
        .and_then(as_u64)
        .or_else(|| body.get(name).and_then(as_u64))
}

struct TopLevel {
    keys: KeySet,
    control_bodies: ControlBodies,
}

fn parse_top_level(frame: &[u8]) -> Result<TopLevel, serde_json::Error> {
    struct TopLevelVisitor;
    impl<'de> Visitor<'de> for TopLevelVisitor {
        type Value = TopLevel;
        fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str("a JSON object")
        }
        fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<TopLevel, A::Error> {
            let mut top = TopLevel {
                keys: KeySet::default(),
                control_bodies: ControlBodies::default(),
            };
            while let Some(key) = map.next_key::<TopKey>()? {
                top.keys.insert(key);
                match top.control_bodies.slot(key) {
                    Some(slot) if slot.is_none() => *slot = Some(map.next_value()?),
                    _ => {
                        map.next_value::<IgnoredAny>()?;
                    }
                }
            }
            Ok(top)
        }
    }
    // Checked up front so that invalid UTF-8 inside a skipped string is caught too.
    let text =
        std::str::from_utf8(frame).map_err(|e| de::Error::custom(format!("not UTF-8: {e}")))?;
    let mut deserializer = serde_json::Deserializer::from_str(text);
    let top = deserializer.deserialize_map(TopLevelVisitor)?;
    deserializer.end()?;
    Ok(top)
}

#[cfg(test)]
mod tests;
