//! Fuzzing the matcher and the enricher: arbitrary bytes, mutated real tweets (the traptor-v4
//! fixtures and the emulator's generator), duplicate keys, a pre-existing `traptor` key (plain
//! and escaped), huge strings and deep nesting.
//!
//! Invariants: no panic, no hang; the kind agrees with the classifier's; for an input that is a
//! JSON object the output is a JSON object, and for a tweet it keeps every original member
//! value and has exactly one top-level `traptor` key holding the traptor object; anything that
//! is not a tweet is written byte for byte; matched rules are valid, ascending, unique indexes.
//! `TRAPTOR_FUZZ_CASES` scales the case count (see `fuzz_support`).

mod fuzz_support;

use std::fmt;
use std::sync::OnceLock;

use fuzz_support::{
    config, fixture_messages, fixture_tweets, fixtures_dir, generated_tweets, mutate, mutation,
    Watchdog,
};
use proptest::prelude::*;
use serde::de::{Deserializer, IgnoredAny, MapAccess, Visitor};
use serde_json::Value;
use traptor_core::enrich::Enricher;
use traptor_core::matching::{Matcher, TweetView};
use traptor_core::protocol::classify;
use traptor_core::rules::{fields_from_json, RuleSet, SlotId, StreamType};
use traptor_core::MessageKind;

/// A rule hash and where it came from, as `RuleSet::from_hashes` takes it.
type SourcedHash = (Option<String>, Vec<(String, String)>);

/// One enricher per slot type with the fixture rules, and one offline enricher with all.
fn enrichers() -> &'static [Enricher] {
    static ENRICHERS: OnceLock<Vec<Enricher>> = OnceLock::new();
    ENRICHERS.get_or_init(|| {
        let mut all = Vec::new();
        let mut out = Vec::new();
        for stream_type in StreamType::ALL {
            let path = fixtures_dir().join(format!("{}_rules.json", stream_type.as_str()));
            let mut hashes: Vec<SourcedHash> = std::fs::read_to_string(path)
                .unwrap()
                .lines()
                .filter(|l| !l.trim().is_empty())
                .map(|l| {
                    (
                        None,
                        fields_from_json(&serde_json::from_str(l).unwrap()).unwrap(),
                    )
                })
                .collect();
            if stream_type == StreamType::Track {
                for (n, phrase) in ["#fuzz", "birthday", "new romantics", "é", "t.co"]
                    .iter()
                    .enumerate()
                {
                    hashes.push((
                        None,
                        vec![
                            ("rule_id".into(), format!("9{n}")),
                            ("value".into(), (*phrase).into()),
                            ("tag".into(), "fuzz \u{0} \"tag\"".into()),
                        ],
                    ));
                }
            }
            let set = RuleSet::from_hashes(hashes, Some(stream_type));
            assert!(set.errors.is_empty(), "{:?}", set.errors);
            all.extend(set.rules.clone());
            out.push(Enricher::new(
                Some(SlotId::new(stream_type, "0")),
                set.rules,
            ));
        }
        out.push(Enricher::new(None, all.clone()));
        out.push(Enricher::new(
            Some(SlotId::new(StreamType::Track, "eu-\"1\"")),
            all,
        ));
        out
    })
}

/// Real tweets and control messages, compact, to mutate.
fn seeds() -> &'static [Vec<u8>] {
    static SEEDS: OnceLock<Vec<Vec<u8>>> = OnceLock::new();
    SEEDS.get_or_init(|| {
        let mut seeds = fixture_tweets();
        seeds.extend(fixture_messages());
        seeds.extend(generated_tweets(40));
        seeds
    })
}

/// The top-level keys of an object as written (duplicates kept), decoded.
struct RawKeys(Vec<String>);

impl<'de> serde::Deserialize<'de> for RawKeys {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct KeysVisitor;
        impl<'de> Visitor<'de> for KeysVisitor {
            type Value = RawKeys;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("an object")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<RawKeys, A::Error> {
                let mut keys = Vec::new();
                while let Some((key, _)) = map.next_entry::<String, IgnoredAny>()? {
                    keys.push(key);
                }
                Ok(RawKeys(keys))
            }
        }
        deserializer.deserialize_map(KeysVisitor)
    }
}

/// See `fuzz_frame`: inputs that JSON's grammar admits but serde_json's `Value` refuses.
fn is_value_only_error(error: &serde_json::Error) -> bool {
    let text = error.to_string();
    text.contains("surrogate")
        || text.contains("end of hex escape")
        || text.contains("number out of range")
        || text.contains("recursion limit exceeded")
}

/// Enriches `frame` with every enricher and checks the invariants.
fn check_enrich(frame: &[u8]) -> Result<(), TestCaseError> {
    let classified = classify(frame).kind;
    let input: Result<Value, _> = serde_json::from_slice(frame);
    let strict_object = matches!(&input, Ok(Value::Object(_)));
    for enricher in enrichers() {
        let enriched = enricher.enrich(frame, 1_700_000_000_123);
        let record = &enriched.record;
        // Inputs JSON's grammar admits but serde_json's Value refuses (lone surrogates, `1e999`,
        // nesting past 128) are read more or less strictly by each reader: no agreement asked.
        if !input.as_ref().err().is_some_and(is_value_only_error) {
            prop_assert_eq!(
                record.kind,
                classified,
                "enricher and classifier disagree on {}",
                String::from_utf8_lossy(frame)
            );
        }
        prop_assert_eq!(record.received_at_ms, 1_700_000_000_123);
        prop_assert!(
            enriched.matched.windows(2).all(|w| w[0] < w[1]),
            "{:?}",
            enriched.matched
        );
        prop_assert!(enriched.matched.iter().all(|&i| i < enricher.rules().len()));
        if record.kind != MessageKind::Tweet {
            prop_assert!(enriched.matched.is_empty());
            prop_assert_eq!(
                &record.payload,
                &frame.to_vec(),
                "a non-tweet is written unchanged"
            );
            continue;
        }
        if !strict_object {
            // Only inputs JSON admits but serde_json's Value refuses can be tweets here.
            prop_assert!(
                input.as_ref().err().is_some_and(is_value_only_error),
                "{:?}",
                input.err()
            );
            continue;
        }
        let output: Value = serde_json::from_slice(&record.payload).map_err(|e| {
            TestCaseError::fail(format!(
                "enriched output is not JSON ({e}):\n input {}\noutput {}",
                String::from_utf8_lossy(frame),
                String::from_utf8_lossy(&record.payload)
            ))
        })?;
        let out_object = output
            .as_object()
            .ok_or_else(|| TestCaseError::fail("output is not an object"))?;
        let RawKeys(out_keys) = serde_json::from_slice(&record.payload).unwrap();
        let traptors = out_keys.iter().filter(|k| *k == "traptor").count();
        prop_assert_eq!(traptors, 1, "top-level keys {:?}", out_keys);
        let traptor = out_object["traptor"]
            .as_object()
            .ok_or_else(|| TestCaseError::fail("traptor is not an object"))?;
        for field in [
            "id_str",
            "collection_rules",
            "stream",
            "received_at",
            "traptor_version",
        ] {
            prop_assert!(
                traptor.contains_key(field),
                "traptor lacks {}: {:?}",
                field,
                traptor
            );
        }
        let rules = traptor["collection_rules"].as_array().unwrap();
        prop_assert_eq!(rules.len(), enriched.matched.len());
        let in_object = input.as_ref().unwrap().as_object().unwrap();
        for (key, value) in in_object {
            if key == "traptor" {
                if !in_object.contains_key("traptor_original") {
                    prop_assert!(out_object.contains_key("traptor_original"));
                }
            } else {
                prop_assert_eq!(out_object.get(key), Some(value), "member {:?} changed", key);
            }
        }
    }
    Ok(())
}

/// The matcher on its own, on whatever the tweet view reads.
fn check_matcher(frame: &[u8]) -> Result<(), TestCaseError> {
    if let Ok(view) = serde_json::from_slice::<TweetView>(frame) {
        for enricher in enrichers() {
            let matched = enricher.matcher().matches(&view);
            prop_assert!(matched.windows(2).all(|w| w[0] < w[1]));
            prop_assert!(matched.iter().all(|&i| i < enricher.rules().len()));
        }
        let _ = Matcher::new(&[]).matches(&view);
    }
    Ok(())
}

fn check_all(target: &str, frame: &[u8]) -> Result<(), TestCaseError> {
    let dog = Watchdog::new();
    dog.run(target, frame, || {
        check_enrich(frame)?;
        check_matcher(frame)
    })
}

/// Structural edits of a tweet object that a byte mutator rarely finds.
#[derive(Debug, Clone)]
enum Edit {
    /// Add a member at the start (so it duplicates a later one) or at the end.
    AddMember {
        at_start: bool,
        key: String,
        value: String,
    },
    /// Wrap a value of the given depth in `[`…`]` under a key.
    Nest {
        key: String,
        depth: usize,
        open: char,
    },
    /// A huge string value.
    Huge { key: String, len: usize },
}

fn edit() -> impl Strategy<Value = Edit> {
    let key = prop::sample::select(vec![
        "traptor",
        "tr\\u0061ptor",
        "traptor_original",
        "text",
        "id_str",
        "user",
        "entities",
        "retweeted_status",
        "quoted_status",
        "extended_tweet",
        "coordinates",
        "place",
        "created_at",
        "limit",
        "delete",
        "full_text",
        "lang",
        "x",
    ])
    .prop_map(str::to_owned);
    let value = prop::sample::select(vec![
        "{}",
        "[]",
        "null",
        "1",
        "-0",
        "1e308",
        "\"\"",
        "\"happy birthday\"",
        "{\"id_str\":\"17919972\"}",
        "{\"coordinates\":[-122.0,37.0]}",
        "{\"type\":\"Point\",\"coordinates\":[-122.0,37.0]}",
        "{\"bounding_box\":{\"coordinates\":[[[-122.5,37.0],[-122.0,37.5]]]}}",
        "\"\\u0000\"",
        "\"\\ud83d\\ude00\"",
        "[{\"text\":\"#fuzz\"}]",
        "{\"hashtags\":[{\"text\":\"fuzz\"}]}",
        "true",
        "\"Mon Feb 22 01:34:53 +0000 2016\"",
        "\"Xxx Feb 99 99:99:99 +9999 99999\"",
        "{\"traptor\":1}",
        "18446744073709551616",
    ])
    .prop_map(str::to_owned);
    prop_oneof![
        4 => (any::<bool>(), key.clone(), value).prop_map(|(at_start, key, value)| Edit::AddMember { at_start, key, value }),
        1 => (key.clone(), 1usize..140, prop::sample::select(vec!['[', '{'])).prop_map(|(key, depth, open)| Edit::Nest { key, depth, open }),
        1 => (key, 1usize..200_000).prop_map(|(key, len)| Edit::Huge { key, len }),
    ]
}

/// Applies structural edits to a compact JSON object.
fn apply_edits(object: &[u8], edits: &[Edit]) -> Vec<u8> {
    let mut out = object.to_vec();
    for edit in edits {
        let (at_start, key, value) = match edit {
            Edit::AddMember {
                at_start,
                key,
                value,
            } => (*at_start, key.clone(), value.clone()),
            Edit::Nest { key, depth, open } => {
                let (o, c, inner) = if *open == '[' {
                    ("[", "]", "")
                } else {
                    ("{\"k\":", "}", "")
                };
                (
                    false,
                    key.clone(),
                    format!("{}1{inner}{}", o.repeat(*depth), c.repeat(*depth)),
                )
            }
            Edit::Huge { key, len } => (
                true,
                key.clone(),
                format!("\"{}\"", "happy é ".repeat(len / 8 + 1)),
            ),
        };
        let member = format!("\"{key}\":{value}");
        if out.len() < 2 || out[0] != b'{' {
            continue;
        }
        let empty = out.len() == 2;
        if at_start {
            let text = if empty { member } else { format!("{member},") };
            out.splice(1..1, text.into_bytes());
        } else {
            let end = out.len() - 1;
            let text = if empty { member } else { format!(",{member}") };
            out.splice(end..end, text.into_bytes());
        }
    }
    out
}

proptest! {
    #![proptest_config(config(200))]

    #[test]
    fn arbitrary_bytes(bytes in prop::collection::vec(any::<u8>(), 0..600)) {
        check_all("enrich (arbitrary bytes)", &bytes)?;
    }

    #[test]
    fn mutated_real_messages(seed in any::<prop::sample::Index>(), mutations in prop::collection::vec(mutation(), 1..6)) {
        let seeds = seeds();
        let frame = mutate(&seeds[seed.index(seeds.len())], &mutations);
        check_all("enrich (mutated real message)", &frame)?;
    }

    #[test]
    fn structurally_edited_tweets(seed in any::<prop::sample::Index>(), edits in prop::collection::vec(edit(), 1..5)) {
        let seeds = seeds();
        let frame = apply_edits(&seeds[seed.index(seeds.len())], &edits);
        check_all("enrich (edited tweet)", &frame)?;
    }

    /// Tweets built from scratch with only the fields matching reads, in odd types and shapes.
    #[test]
    fn synthetic_minimal_tweets(edits in prop::collection::vec(edit(), 0..6), id in "[0-9]{1,20}") {
        let base = format!("{{\"id_str\":\"{id}\",\"text\":\"happy #fuzz\"}}");
        let frame = apply_edits(base.as_bytes(), &edits);
        check_all("enrich (synthetic tweet)", &frame)?;
    }
}

/// Nesting right up to and past serde_json's recursion limit, in the fields the tweet view
/// descends into (a stack overflow here would abort the stream's thread).
#[test]
fn deep_nesting_neither_overflows_nor_is_lost() {
    for depth in [1usize, 10, 60, 126, 127, 128, 129, 200, 10_000, 100_000] {
        // retweeted_status inside retweeted_status ...
        let mut tweet = "{\"id_str\":\"1\",\"text\":\"happy\"}".to_owned();
        for _ in 0..depth.min(2_000) {
            tweet = format!("{{\"id_str\":\"1\",\"text\":\"x\",\"retweeted_status\":{tweet}}}");
        }
        check_all("enrich (nested retweets)", tweet.as_bytes())
            .unwrap_or_else(|e| panic!("depth {depth}: {e}"));
        // arrays in an ignored field, in a read field, and in a pre-existing traptor key
        for key in ["x", "entities", "coordinates", "traptor", "user"] {
            let frame = format!(
                "{{\"id_str\":\"1\",\"text\":\"happy\",\"{key}\":{}{}}}",
                "[".repeat(depth),
                "]".repeat(depth)
            );
            check_all("enrich (deep arrays)", frame.as_bytes())
                .unwrap_or_else(|e| panic!("depth {depth} under {key}: {e}"));
        }
    }
}

/// Megabyte strings in the fields matching reads, and a megabyte of members.
#[test]
fn huge_tweets_are_enriched() {
    let big = "happy birthday é #fuzz ".repeat(50_000);
    let many_members: String = (0..50_000).map(|n| format!("\"k{n}\":{n},")).collect();
    for frame in [
        format!("{{\"id_str\":\"1\",\"text\":\"{big}\"}}"),
        format!("{{\"id_str\":\"1\",\"text\":\"x\",\"extended_tweet\":{{\"full_text\":\"{big}\"}}}}"),
        format!("{{\"id_str\":\"1\",\"text\":\"x\",\"user\":{{\"screen_name\":\"{big}\",\"id_str\":\"17919972\"}}}}"),
        format!("{{{many_members}\"id_str\":\"1\",\"text\":\"happy\",\"traptor\":{{\"old\":true}}}}"),
        format!("{{\"id_str\":\"1\",\"text\":\"x\",\"entities\":{{\"hashtags\":[{}{{\"text\":\"fuzz\"}}]}}}}", "{\"text\":\"a\"},".repeat(50_000)),
    ] {
        check_all("enrich (huge)", frame.as_bytes()).unwrap();
    }
}

/// Known bug, kept failing until fixed: a raw (unescaped) control character in an object key is
/// invalid JSON, and the classifier says so, but the enricher reads keys as raw bytes (serde_json
/// does not check control characters there), tags the message as a tweet and writes invalid
/// JSON to the tweets topic instead of the dead-letter path.
#[test]
fn raw_control_characters_in_keys_make_a_message_invalid() {
    for frame in [
        &b"{\"id_str\":\"1\",\"text\":\"happy\",\"\x00key\":1}"[..],
        b"{\"id_str\":\"1\",\"text\":\"happy\",\"user\":{\"a\x1f\":1}}",
    ] {
        assert_eq!(classify(frame).kind, MessageKind::Invalid);
        for enricher in enrichers() {
            let enriched = enricher.enrich(frame, 0);
            assert_eq!(
                enriched.record.kind,
                MessageKind::Invalid,
                "{:?} was written as {:?}: {}",
                String::from_utf8_lossy(frame),
                enriched.record.kind,
                String::from_utf8_lossy(&enriched.record.payload)
            );
            assert_eq!(enriched.record.payload, frame);
        }
    }
}
