//! Fuzzing the rule parser and what is built from parsed rules (filter, plan, matcher, the
//! `collection_rules` JSON): arbitrary field maps with huge values, odd unicode and NUL bytes.
//!
//! Invariants: no panic, no hang; a rule that parses is consistent with its fields (id trimmed
//! and non-empty, fields kept verbatim, the term within the API's limits); a rule that fails
//! says why, in a message of bounded size naming the rule; every rule serializes to valid JSON
//! that round-trips its fields; planning any set of parsed rules stays within the per-connection
//! limits. `TRAPTOR_FUZZ_CASES` scales the case count (see `fuzz_support`).

mod fuzz_support;

use std::collections::BTreeMap;

use fuzz_support::{config, Watchdog};
use proptest::prelude::*;
use traptor_core::enrich::output::collection_rule_json;
use traptor_core::filter::Filter;
use traptor_core::matching::Matcher;
use traptor_core::plan::plan;
use traptor_core::rules::{
    fields_from_json, parse_rule, FilterTerm, RuleSet, SlotId, StreamType, MAX_TRACK_PHRASE_BYTES,
};

/// Field names a rule hash has, plus junk and near-misses.
fn field_name() -> impl Strategy<Value = String> {
    prop_oneof![
        4 => prop::sample::select(vec![
            "rule_id", "value", "rule_type", "orig_type", "tag", "status", "description",
            "appid", "date_added", "rule_tag", "rule_value",
        ]).prop_map(str::to_owned),
        1 => Just("rule_id ".to_owned()),
        1 => Just("RULE_ID".to_owned()),
        1 => Just(String::new()),
        1 => "\\PC{0,12}",
        1 => Just("\u{0}".to_owned()),
    ]
}

/// Values of every awkward kind: the valid ones, whitespace, unicode that changes length when
/// lowercased, control characters, NUL, numbers on the edge of u64, boxes, and huge strings.
fn field_value() -> impl Strategy<Value = String> {
    prop_oneof![
        3 => prop::sample::select(vec![
            "track", "follow", "locations", "keyword", "hashtag", "userid", "username", "geo",
            "active", "ACTIVE", "inactive", "", " ", "happy", "#happy", "happy birthday",
            "a,b", "12345", "18446744073709551615", "18446744073709551616", "-1", "+5", "0",
            "-74,40,-73,41", "-180,-90,180,90", "1,1,1,1", "NaN,0,1,1", "inf,0,1,1", "1e308,0,1,1",
            "İSTANBUL", "ǅ", "ß", "\u{0}", "a\u{0}b", "\u{200b}", "\u{feff}x", "\u{202e}gnp.exe",
            "😀", "#", "##", " # ", "\t\n\r",
        ]).prop_map(str::to_owned),
        2 => "\\PC{0,80}",
        1 => "[ #a-zA-Z0-9,]{0,90}",
        1 => "[0-9 ]{1,25}",
        1 => "[-0-9., ]{1,40}",
        1 => (1usize..2_000, prop::sample::select(vec!['a', ' ', '#', 'é', '\u{0}', ',', '9'])).prop_map(|(n, c)| c.to_string().repeat(n)),
    ]
}

fn field_map() -> impl Strategy<Value = Vec<(String, String)>> {
    prop::collection::vec((field_name(), field_value()), 0..10)
}

fn slot_type() -> impl Strategy<Value = Option<StreamType>> {
    prop_oneof![
        Just(None),
        Just(Some(StreamType::Track)),
        Just(Some(StreamType::Follow)),
        Just(Some(StreamType::Locations)),
    ]
}

/// Longest error message allowed for inputs whose values are at most `longest_value` bytes.
/// Messages quote the offending value, so they grow with it, but never beyond a few copies.
fn error_bound(fields: &[(String, String)]) -> usize {
    let longest = fields
        .iter()
        .map(|(k, v)| k.len().max(v.len()))
        .max()
        .unwrap_or(0);
    // `{:?}` may escape every byte of a value (e.g. `\0`, `\u{200b}`): up to 10 bytes each.
    512 + 3 * 10 * longest
}

/// Checks one parse: the rule agrees with its fields, or the error is clear.
fn check_parse(
    fields: Vec<(String, String)>,
    slot: Option<StreamType>,
) -> Result<(), TestCaseError> {
    match parse_rule(fields.clone(), slot) {
        Ok(rule) => {
            prop_assert!(!rule.rule_id.is_empty());
            prop_assert_eq!(rule.rule_id.trim(), rule.rule_id.as_str());
            prop_assert_eq!(&rule.fields, &fields, "fields are kept verbatim, in order");
            prop_assert_eq!(
                Some(rule.value.as_str()),
                fields
                    .iter()
                    .find(|(k, _)| k == "value")
                    .map(|(_, v)| v.as_str())
            );
            if let Some(slot) = slot {
                prop_assert_eq!(rule.stream_type, slot);
            }
            prop_assert_eq!(rule.term.stream_type(), rule.stream_type);
            match &rule.term {
                FilterTerm::Phrase(phrase) => {
                    prop_assert!(
                        !phrase.is_empty() && phrase.len() <= MAX_TRACK_PHRASE_BYTES,
                        "{:?}",
                        phrase
                    );
                    prop_assert!(!phrase.contains(','));
                    prop_assert_eq!(phrase.trim(), phrase.as_str());
                    prop_assert!(!phrase.contains("  "));
                    prop_assert!(!phrase.chars().all(|c| c == '#'));
                }
                FilterTerm::UserId(id) => {
                    prop_assert_eq!(rule.value.trim().parse::<u64>().ok(), Some(*id));
                }
                FilterTerm::Box(area) => {
                    prop_assert!(area.sw_lon < area.ne_lon && area.sw_lat < area.ne_lat);
                    prop_assert!(
                        (-180.0..=180.0).contains(&area.sw_lon)
                            && (-180.0..=180.0).contains(&area.ne_lon)
                    );
                    prop_assert!(
                        (-90.0..=90.0).contains(&area.sw_lat)
                            && (-90.0..=90.0).contains(&area.ne_lat)
                    );
                }
            }
            // The output fragment is valid JSON holding every field as stored.
            let json = collection_rule_json(&rule);
            let value: serde_json::Value = serde_json::from_slice(&json).map_err(|e| {
                TestCaseError::fail(format!(
                    "collection rule JSON is invalid ({e}): {}",
                    String::from_utf8_lossy(&json)
                ))
            })?;
            let object = value.as_object().unwrap();
            for (name, stored) in &fields {
                if name != "rule_tag" && name != "rule_value" {
                    // With duplicate names the last one wins in the parsed object.
                    let last = fields
                        .iter()
                        .rev()
                        .find(|(k, _)| k == name)
                        .map(|(_, v)| v)
                        .unwrap();
                    prop_assert_eq!(
                        object[name].as_str(),
                        Some(last.as_str()),
                        "field {:?} (stored {:?})",
                        name,
                        stored
                    );
                }
            }
            prop_assert_eq!(object["rule_value"].as_str(), Some(rule.value.as_str()));
            // A single rule always fits one connection's filter.
            let filter = Filter::from_rules(rule.stream_type, std::slice::from_ref(&rule));
            prop_assert_eq!(filter.len(), 1);
            let _ = filter.form_params();
            let _ = Matcher::new(std::slice::from_ref(&rule));
        }
        Err(error) => {
            let message = error.to_string();
            prop_assert!(!message.is_empty());
            if let Some(id) = &error.rule_id {
                prop_assert!(message.contains(id.as_str()), "{}", message);
            }
            prop_assert!(
                message.len() <= error_bound(&fields),
                "an error message of {} bytes for values of at most {} bytes",
                message.len(),
                fields.iter().map(|(_, v)| v.len()).max().unwrap_or(0)
            );
        }
    }
    Ok(())
}

proptest! {
    #![proptest_config(config(512))]

    #[test]
    fn arbitrary_field_maps(fields in field_map(), slot in slot_type()) {
        let dog = Watchdog::new();
        let shown = format!("{fields:?}");
        dog.run("parse_rule", shown.as_bytes(), || check_parse(fields, slot))?;
    }

    /// Nearly valid rules: the required fields present, one of them replaced by an awkward value.
    #[test]
    fn nearly_valid_rules(
        kind in 0usize..3,
        replace in prop::option::of((0usize..5, field_value())),
        extra in prop::collection::vec((field_name(), field_value()), 0..3),
        slotted in any::<bool>(),
    ) {
        let (stream_type, value) = [
            (StreamType::Track, "Happy Birthday"),
            (StreamType::Follow, "12345"),
            (StreamType::Locations, "-74,40,-73,41"),
        ][kind];
        let mut fields: Vec<(String, String)> = vec![
            ("rule_id".into(), "42".into()),
            ("value".into(), value.into()),
            ("rule_type".into(), stream_type.as_str().into()),
            ("tag".into(), "t".into()),
            ("status".into(), "active".into()),
        ];
        if let Some((at, text)) = replace {
            fields[at].1 = text;
        }
        fields.extend(extra);
        let dog = Watchdog::new();
        let shown = format!("{fields:?}");
        dog.run("parse_rule (nearly valid)", shown.as_bytes(), || check_parse(fields, slotted.then_some(stream_type)))?;
    }

    /// Any JSON value as a rule (the rules file and `traptor rules put` read JSON).
    #[test]
    fn arbitrary_json_rules(text in prop_oneof![
        "\\PC{0,200}",
        Just(r#"{"rule_id": 12, "value": ["a"], "rule_type": {"x": null}}"#.to_owned()),
        Just(r#"{"rule_id": 1e400, "value": "x", "rule_type": "track"}"#.to_owned()),
        Just(r#"{"rule_id": null, "value": null}"#.to_owned()),
        Just(r#"{"rule_id": "1", "value": "a", "value": "b", "rule_type": "track"}"#.to_owned()),
        Just(r#"[{"rule_id": "1"}]"#.to_owned()),
        Just("\"rule\"".to_owned()),
    ]) {
        let dog = Watchdog::new();
        dog.run("fields_from_json", text.as_bytes(), || -> Result<(), TestCaseError> {
            if let Ok(value) = serde_json::from_str::<serde_json::Value>(&text) {
                match fields_from_json(&value) {
                    Ok(fields) => check_parse(fields, None)?,
                    Err(problem) => prop_assert!(!value.is_object(), "{problem}"),
                }
            }
            Ok(())
        })?;
    }

    /// Many parsed rules in a few slots, planned over a few keys: every connection stays within
    /// its stream type's limit, and every valid rule is either on a connection or left out with
    /// a reason.
    #[test]
    fn planning_any_rules(
        hashes in prop::collection::vec((0usize..3, 0u8..3, "[a-z]{1,8}( [a-z]{1,8})?", 0u64..2_000), 0..300),
        key_count in 0usize..4,
    ) {
        let mut slots: BTreeMap<SlotId, Vec<traptor_core::Rule>> = BTreeMap::new();
        for (n, (kind, slot_id, phrase, user)) in hashes.iter().enumerate() {
            let stream_type = StreamType::ALL[*kind];
            let value = match stream_type {
                StreamType::Track => phrase.clone(),
                StreamType::Follow => user.to_string(),
                StreamType::Locations => format!("{},{},{},{}", -(*user as f64 % 170.0) - 1.0, 10.0, -(*user as f64 % 170.0), 11.0),
            };
            let fields = vec![("rule_id".to_owned(), n.to_string()), ("value".to_owned(), value), ("rule_type".to_owned(), stream_type.as_str().to_owned())];
            let slot = SlotId::new(stream_type, slot_id.to_string());
            let set = RuleSet::from_hashes([(None, fields)], Some(stream_type));
            slots.entry(slot).or_default().extend(set.rules);
        }
        let keys: Vec<String> = (0..key_count).map(|k| format!("key-{k}")).collect();
        let dog = Watchdog::new();
        dog.run("plan", &[], || -> Result<(), TestCaseError> {
            let planned = plan(&slots, &keys, None);
            let again = plan(&slots, &keys, Some(&planned));
            prop_assert_eq!(&planned.connections.len(), &again.connections.len());
            let total: usize = slots.values().map(Vec::len).sum();
            let placed: usize = planned.connections.iter().map(|c| c.rules.len()).sum();
            prop_assert_eq!(placed + planned.left_out.len(), total);
            for connection in &planned.connections {
                prop_assert!(connection.filter.len() <= connection.id.slot.stream_type.connection_limit());
                prop_assert!(keys.contains(&connection.key));
            }
            let _ = planned.summary();
            Ok(())
        })?;
    }
}

/// One-megabyte values in every field, and a million-character rule id: parsed or refused in
/// bounded time, with bounded messages.
#[test]
fn megabyte_values_are_handled() {
    let huge = |c: char| c.to_string().repeat(1 << 20);
    let dog = Watchdog::new();
    for (name, value) in [
        ("value", huge('a')),
        ("value", huge(' ')),
        ("value", huge('#')),
        ("value", huge('9')),
        ("value", huge('é')),
        ("value", huge('\u{0}')),
        ("rule_type", huge('x')),
        ("orig_type", huge('x')),
        ("status", huge('x')),
        ("rule_id", huge('7')),
        ("tag", huge('t')),
    ] {
        for slot in [
            None,
            Some(StreamType::Track),
            Some(StreamType::Follow),
            Some(StreamType::Locations),
        ] {
            let mut fields = vec![
                ("rule_id".to_owned(), "1".to_owned()),
                ("value".to_owned(), "x".to_owned()),
                ("rule_type".to_owned(), "track".to_owned()),
            ];
            match fields.iter_mut().find(|(k, _)| k == name) {
                Some(field) => field.1 = value.clone(),
                None => fields.push((name.to_owned(), value.clone())),
            }
            let shown = format!("{name} of {} bytes, slot {slot:?}", value.len());
            dog.run("parse_rule (1 MB)", shown.as_bytes(), || {
                check_parse(fields, slot)
            })
            .unwrap_or_else(|e| panic!("{shown}: {e}"));
        }
    }
}
