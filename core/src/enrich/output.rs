//! Writing the output document: the original tweet bytes with a `traptor` object spliced in
//! before the final `}`. The tweet itself is never re-serialized.

use std::fmt;

use serde::de::{Deserializer, MapAccess, Visitor};
use serde::Deserialize;
use serde_json::value::RawValue;

use crate::matching::tweet::Text;
use crate::rules::{Rule, SlotId};

/// A rule as it appears in `collection_rules`, serialized once when the rules change:
/// every hash field as a string in stored order, then `rule_type` (when the hash lacks it),
/// `rule_tag` (the `tag`, or `null`) and `rule_value` (the value as stored).
pub fn collection_rule_json(rule: &Rule) -> Vec<u8> {
    let mut out = Vec::with_capacity(256);
    out.push(b'{');
    let mut first = true;
    let mut field = |out: &mut Vec<u8>, name: &str, value: Option<&str>| {
        if !first {
            out.push(b',');
        }
        first = false;
        write_json_str(out, name);
        out.push(b':');
        match value {
            Some(v) => write_json_str(out, v),
            None => out.extend_from_slice(b"null"),
        }
    };
    for (name, value) in &rule.fields {
        if name != "rule_tag" && name != "rule_value" {
            field(&mut out, name, Some(value));
        }
    }
    if rule.field("rule_type").is_none() {
        field(&mut out, "rule_type", Some(rule.stream_type.as_str()));
    }
    field(&mut out, "rule_tag", rule.tag());
    field(&mut out, "rule_value", Some(&rule.value));
    out.push(b'}');
    out
}

/// The slot id as the original wrote `traptor.id_str` and `traptor.id` (an int from
/// `TRAPTOR_ID`): a JSON number when it is a plain decimal number, else a string; `null`
/// without a slot (offline enrichment).
pub fn slot_id_json(slot: Option<&SlotId>) -> Vec<u8> {
    let mut out = Vec::new();
    match slot {
        None => out.extend_from_slice(b"null"),
        Some(slot) => {
            let id = slot.id.as_str();
            let plain_number = !id.is_empty()
                && id.len() <= 18
                && id.bytes().all(|b| b.is_ascii_digit())
                && (id == "0" || !id.starts_with('0'));
            if plain_number {
                out.extend_from_slice(id.as_bytes());
            } else {
                write_json_str(&mut out, id);
            }
        }
    }
    out
}

/// What goes into one `traptor` object besides the matched rules.
pub struct TraptorFields<'a> {
    pub slot: Option<&'a SlotId>,
    /// `slot_id_json(slot)`, computed once per enricher.
    pub slot_id_json: &'a [u8],
    pub created_at_iso: Option<&'a str>,
    pub received_at: Option<&'a str>,
}

/// Writes the `traptor` object (see the crate's `enrich` module doc for its fields).
pub fn write_traptor_object(
    out: &mut Vec<u8>,
    fields: &TraptorFields<'_>,
    matched_rules: &[&[u8]],
) {
    out.extend_from_slice(b"{\"id_str\":");
    out.extend_from_slice(fields.slot_id_json);
    if let Some(iso) = fields.created_at_iso {
        out.extend_from_slice(b",\"created_at_iso\":");
        write_plain_str(out, iso);
    }
    out.extend_from_slice(b",\"collection_rules\":[");
    for (i, rule) in matched_rules.iter().enumerate() {
        if i > 0 {
            out.push(b',');
        }
        out.extend_from_slice(rule);
    }
    out.push(b']');
    if matched_rules.is_empty() {
        out.extend_from_slice(b",\"rule_type\":");
        write_json_str(
            out,
            fields.slot.map_or("unknown", |s| s.stream_type.as_str()),
        );
        out.extend_from_slice(b",\"id\":");
        out.extend_from_slice(fields.slot_id_json);
        out.extend_from_slice(b",\"rule_tag\":\"Not Found\",\"rule_value\":\"Not Found\"");
    }
    out.extend_from_slice(b",\"stream\":");
    match fields.slot {
        Some(slot) => {
            out.extend_from_slice(b"{\"type\":");
            write_plain_str(out, slot.stream_type.as_str());
            out.extend_from_slice(b",\"id\":");
            write_json_str(out, &slot.id);
            out.push(b'}');
        }
        None => out.extend_from_slice(b"null"),
    }
    out.extend_from_slice(b",\"received_at\":");
    match fields.received_at {
        Some(at) => write_plain_str(out, at),
        None => out.extend_from_slice(b"null"),
    }
    out.extend_from_slice(b",\"traptor_version\":");
    write_plain_str(out, env!("CARGO_PKG_VERSION"));
    out.push(b'}');
}

/// Appends `object` (whitespace trimmed) with `"traptor":<traptor>` added as its last member.
/// `object` must be a JSON object without a top-level `traptor` key.
pub fn splice_traptor(out: &mut Vec<u8>, object: &[u8], traptor: &[u8]) {
    splice_traptor_with(out, object, |out| out.extend_from_slice(traptor));
}

/// [`splice_traptor`] with the `traptor` value written by `write_value` straight into `out`.
pub fn splice_traptor_with(
    out: &mut Vec<u8>,
    object: &[u8],
    write_value: impl FnOnce(&mut Vec<u8>),
) {
    let end = object
        .iter()
        .rposition(|&b| b == b'}')
        .expect("a parsed JSON object ends in `}`");
    let body_end = object[..end]
        .iter()
        .rposition(|b| !b.is_ascii_whitespace())
        .expect("it starts with `{`");
    let start = object
        .iter()
        .position(|b| !b.is_ascii_whitespace())
        .unwrap_or(0);
    out.extend_from_slice(&object[start..=body_end]);
    if object[body_end] != b'{' {
        out.push(b',');
    }
    out.extend_from_slice(b"\"traptor\":");
    write_value(out);
    out.push(b'}');
}

/// The slow path for a tweet that already has a `traptor` key (an archive of enriched output
/// replayed, or a producer that tags tweets itself): members are rewritten one by one with their
/// values byte for byte, the first old `traptor` is renamed `traptor_original` (unless that key
/// exists already, in which case it is dropped, as are repeated `traptor` keys), and the new
/// `traptor` object is added last. The output has exactly one `traptor` key.
pub fn rewrite_with_traptor(
    out: &mut Vec<u8>,
    object: &[u8],
    traptor: &[u8],
) -> Result<(), serde_json::Error> {
    let Members(members) = serde_json::from_slice(object)?;
    let mut keep_original = !members.iter().any(|(k, _)| &**k == "traptor_original");
    out.push(b'{');
    for (key, value) in &members {
        let name: &str = if &**key == "traptor" {
            if !keep_original {
                continue;
            }
            keep_original = false;
            "traptor_original"
        } else {
            key
        };
        write_json_str(out, name);
        out.push(b':');
        out.extend_from_slice(value.get().as_bytes());
        out.push(b',');
    }
    out.extend_from_slice(b"\"traptor\":");
    out.extend_from_slice(traptor);
    out.push(b'}');
    Ok(())
}

/// Top-level members of an object, values kept as their raw text.
struct Members<'a>(Vec<(Text<'a>, &'a RawValue)>);

impl<'de: 'a, 'a> Deserialize<'de> for Members<'a> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct MembersVisitor;
        impl<'de> Visitor<'de> for MembersVisitor {
            type Value = Members<'de>;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a JSON object")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Members<'de>, A::Error> {
                let mut members = Vec::new();
                while let Some(entry) = map.next_entry::<Text<'de>, &'de RawValue>()? {
                    members.push(entry);
                }
                Ok(Members(members))
            }
        }
        deserializer.deserialize_map(MembersVisitor)
    }
}

/// Appends `text` as a JSON string literal.
pub fn write_json_str(out: &mut Vec<u8>, text: &str) {
    // The strings written per tweet (timestamps, stream type, slot id, version) need no
    // escaping: they are copied as they are, serde_json's escaping writes the rest.
    if text.bytes().all(needs_no_escape) {
        out.reserve(text.len() + 2);
        out.push(b'"');
        out.extend_from_slice(text.as_bytes());
        out.push(b'"');
        return;
    }
    serde_json::to_writer(&mut *out, text).expect("writing to a Vec cannot fail");
}

/// Writes a string that needs no escaping (a timestamp, a stream type, the version: text made
/// of digits, letters and punctuation), without checking it byte by byte in release builds.
#[inline]
fn write_plain_str(out: &mut Vec<u8>, text: &str) {
    debug_assert!(text.bytes().all(needs_no_escape), "{text:?} needs escaping");
    out.reserve(text.len() + 2);
    out.push(b'"');
    out.extend_from_slice(text.as_bytes());
    out.push(b'"');
}

/// Bytes serde_json writes unescaped in a string: all but `"`, `\` and control characters
/// below 0x20 (non-ASCII bytes of a `&str` included).
#[inline]
fn needs_no_escape(b: u8) -> bool {
    b >= 0x20 && b != b'"' && b != b'\\'
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rules::StreamType;

    #[test]
    fn strings_are_written_as_serde_json_writes_them() {
        let mut texts: Vec<String> = (0..=0x80u32)
            .chain([0xe9, 0x2028, 0x1f600])
            .map(|c| format!("a{}b", char::from_u32(c).expect("a char")))
            .collect();
        texts.extend(["", "2016-02-22T01:34:53+00:00", "\"\\", "tab\there"].map(String::from));
        for text in texts {
            let mut out = b"x".to_vec();
            write_json_str(&mut out, &text);
            let expected = serde_json::to_string(&text).expect("a string serializes");
            assert_eq!(out, [b"x", expected.as_bytes()].concat(), "{text:?}");
        }
    }

    #[test]
    fn splicing_keeps_every_original_byte_and_adds_one_member() {
        for (object, expected) in [
            (r#"{"a":1}"#, r#"{"a":1,"traptor":{}}"#),
            (
                "  {\n \"a\" : [1, 2] \n}\r\n",
                "{\n \"a\" : [1, 2],\"traptor\":{}}",
            ),
            ("{}", r#"{"traptor":{}}"#),
            ("{ }", r#"{"traptor":{}}"#),
        ] {
            let mut out = Vec::new();
            splice_traptor(&mut out, object.as_bytes(), b"{}");
            assert_eq!(String::from_utf8(out).unwrap(), expected);
        }
    }

    #[test]
    fn an_existing_traptor_key_is_renamed_once() {
        let mut out = Vec::new();
        rewrite_with_traptor(
            &mut out,
            br#"{"a":"x\"y","traptor":{"old":1},"b":[1, 2]}"#,
            b"{}",
        )
        .unwrap();
        assert_eq!(
            String::from_utf8(out).unwrap(),
            r#"{"a":"x\"y","traptor_original":{"old":1},"b":[1, 2],"traptor":{}}"#
        );
        let mut out = Vec::new();
        rewrite_with_traptor(
            &mut out,
            br#"{"traptor_original":0,"traptor":1,"traptor":2}"#,
            b"{}",
        )
        .unwrap();
        assert_eq!(
            String::from_utf8(out).unwrap(),
            r#"{"traptor_original":0,"traptor":{}}"#
        );
    }

    #[test]
    fn slot_ids_are_numbers_only_when_plainly_numeric() {
        let json = |id: &str| {
            String::from_utf8(slot_id_json(Some(&SlotId::new(StreamType::Track, id)))).unwrap()
        };
        assert_eq!(json("0"), "0");
        assert_eq!(json("12"), "12");
        assert_eq!(json("007"), r#""007""#);
        assert_eq!(json("eu-1"), r#""eu-1""#);
        assert_eq!(String::from_utf8(slot_id_json(None)).unwrap(), "null");
    }
}
