//! The fast path (the skimming scanner) against the reference (serde reading the frame): on real
//! tweets, on random byte mutations of them and on tweets whose read fields have odd types or
//! repeats, both must give the same [`Enriched`] (record bytes, key, kind, matches, error), and
//! the scanner must accept exactly what `serde_json::from_slice::<IgnoredAny>` accepts.

use proptest::prelude::*;
use serde_json::{json, Value};

use super::*;
use crate::matching::json_skim::is_valid_json;
use crate::rules::{fields_from_json, parse_rule, StreamType};

const RECEIVED: i64 = 1_456_104_900_250;

fn fixture(name: &str) -> Vec<u8> {
    let path = format!(
        "{}/../tests/fixtures/traptor-v4/{name}",
        env!("CARGO_MANIFEST_DIR")
    );
    std::fs::read(&path).expect(&path)
}

/// Every fixture frame, as stored (pretty-printed) and compacted.
fn frames() -> Vec<Vec<u8>> {
    let dir = format!(
        "{}/../tests/fixtures/traptor-v4",
        env!("CARGO_MANIFEST_DIR")
    );
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .filter(|n| !n.ends_with("_rules.json"))
        .collect();
    names.sort();
    let mut frames = Vec::new();
    for name in names {
        let frame = fixture(&name);
        if let Ok(value) = serde_json::from_slice::<Value>(&frame) {
            frames.push(serde_json::to_vec(&value).unwrap());
        }
        frames.push(frame);
    }
    frames
}

fn tweets() -> Vec<Value> {
    [
        "track_tweet.json",
        "follow_tweet.json",
        "locations_tweet.json",
        "no_match_tweet.json",
    ]
    .iter()
    .map(|n| serde_json::from_slice(&fixture(n)).unwrap())
    .collect()
}

/// The fixtures' rules plus a few that the fixture tweets half match.
fn enricher() -> Enricher {
    let mut rules: Vec<Rule> = [
        "track_rules.json",
        "follow_rules.json",
        "locations_rules.json",
    ]
    .iter()
    .map(|n| {
        let json: Value = serde_json::from_slice(&fixture(n)).unwrap();
        parse_rule(fields_from_json(&json).unwrap(), None).unwrap()
    })
    .collect();
    for (i, value) in ["birthday", "#fun", "café", "happy birthday", "x"]
        .iter()
        .enumerate()
    {
        let json =
            json!({"rule_id": format!("x{i}"), "value": value, "rule_type": "track", "tag": "t"});
        rules.push(parse_rule(fields_from_json(&json).unwrap(), None).unwrap());
    }
    Enricher::new(Some(SlotId::new(StreamType::Track, "3")), rules)
}

fn serde_accepts(frame: &[u8]) -> bool {
    std::str::from_utf8(frame).is_ok()
        && serde_json::from_slice::<serde::de::IgnoredAny>(frame).is_ok()
}

fn assert_paths_agree(enricher: &Enricher, frame: &[u8]) {
    let fast = enricher.enrich(frame, RECEIVED);
    let reference = enricher.enrich_with_serde(frame, RECEIVED);
    let text = String::from_utf8_lossy(frame);
    assert_eq!(
        String::from_utf8_lossy(&fast.record.payload),
        String::from_utf8_lossy(&reference.record.payload),
        "payload of {text}"
    );
    assert_eq!(fast, reference, "{text}");
    assert_eq!(
        is_valid_json(frame),
        serde_accepts(frame),
        "{}",
        String::from_utf8_lossy(frame)
    );
    if message::Message::skim(frame).is_ok() {
        assert!(serde_accepts(frame), "skimmed an invalid frame");
    }
}

#[test]
fn every_fixture_frame_is_enriched_alike_by_both_paths() {
    let enricher = enricher();
    let mut skimmed = 0;
    for frame in frames() {
        assert_paths_agree(&enricher, &frame);
        skimmed += usize::from(message::Message::skim(&frame).is_ok());
    }
    // The tweets and the plain control messages take the fast path.
    assert!(skimmed >= 16, "only {skimmed} frames were skimmed");
}

#[test]
fn tricky_frames_are_enriched_alike_by_both_paths() {
    let enricher = enricher();
    let point = r#"{"type":"Point","coordinates":[-122.4,37.7]}"#;
    let deep = format!("{}{}", "[".repeat(300), "]".repeat(300));
    let cases = [
        format!(r#"{{"id_str":"1","text":"happy","coordinates":{point}}}"#),
        r#"{"id_str":"1","text":"happy","coordinates":{"coordinates":null,"coordinates":[1,2]}}"#
            .into(),
        r#"{"id_str":"1","text":"x","place":{"bounding_box":null,"bounding_box":{}}}"#.into(),
        r#"{"id_str":"1","text":"x","place":{"bounding_box":{"coordinates":[[["a",1]]]}}}"#.into(),
        r#"{"id_str":"1","text":"x","place":{"bounding_box":{"coordinates":[[[1,"b"]]]}}}"#.into(),
        r#"{"id_str":"1","text":"x","place":{"bounding_box":{"coordinates":[[[1,2]],[[3,4,5]],[]]}}}"#
            .into(),
        r#"{"id_str":"1","text":"x","coordinates":{"coordinates":[1e400,2]}}"#.into(),
        r#"{"id_str":"1","text":"x","coordinates":[[1,2]]}"#.into(),
        r#"{"id_str":"1","text":"caf\u00e9 \ud83d\ude00","user":{"id_str":"17919972","id_str":"2"}}"#
            .into(),
        r#"{"id_str":"1","text":"lone \ud800 surrogate"}"#.into(),
        r#"{"id_str":"1","te\u0078t":"happy"}"#.into(),
        r#"{"id_str":"1","text":"happy","traptor":{"a":1}}"#.into(),
        r#"{"id_str":"1","text":"happy","entities":{"hashtags":[null]}}"#.into(),
        r#"{"id_str":"1","text":"happy","retweeted_status":{"text":"fun","retweeted_status":null}}"#
            .into(),
        "{\"id_str\":\"1\",\"te\u{1}xt\":\"happy\"}".into(),
        format!(r#"{{"id_str":"1","text":"x","x":{deep}}}"#),
    ];
    for frame in &cases {
        assert_paths_agree(&enricher, frame.as_bytes());
    }
}

/// Bytes that change JSON's structure or meaning when dropped in.
const INTERESTING: &[u8] = b"{}[],:\"\\ \t\n0123456789.eE+-ntfalsru\x01\x1f\x7f\xc3\xa9\xff";

fn mutation() -> impl Strategy<Value = (usize, u8, u8)> {
    (any::<usize>(), 0u8..4, prop::sample::select(INTERESTING))
}

/// Applies `(position, kind, byte)`: replace, insert, delete, or truncate at the position.
fn mutate(frame: &mut Vec<u8>, (at, kind, byte): (usize, u8, u8)) {
    if frame.is_empty() {
        frame.push(byte);
        return;
    }
    let at = at % frame.len();
    match kind {
        0 => frame[at] = byte,
        1 => frame.insert(at, byte),
        2 => {
            frame.remove(at);
        }
        _ => frame.truncate(at),
    }
}

/// Odd values for the fields the fast path reads: each leaves it unsure or is read as serde does.
fn odd_value() -> impl Strategy<Value = Value> {
    prop::sample::select(vec![
        json!(null),
        json!(1),
        json!(-0.0),
        json!(1.5e300),
        json!(true),
        json!("s"),
        json!("caf\u{e9} \"q\" \\ \u{1F600} \n"),
        json!([]),
        json!({}),
        json!([1, 2]),
        json!([1, 2, 3]),
        json!([[1, 2]]),
        json!([[[1, 2], [3, 4]]]),
        json!([[1, 2], 3]),
        json!(["a", 1]),
        json!([1, "b"]),
        json!([["a"]]),
        json!([[[1, "b"]], [[1, 2]]]),
        json!([[[1, 2]], [[3, 4, 5]], []]),
        json!([null]),
        json!([{"text": "Happy"}]),
        json!([{"screen_name": "x"}, null]),
        json!({"coordinates": [-122.4, 37.7]}),
        json!({"coordinates": null, "type": "Point"}),
        json!({"bounding_box": {"coordinates": [[[-122.5, 37.7], [-122.3, 37.8]]]}}),
        json!({"id_str": "17919972", "screen_name": "Happy"}),
        json!({"full_text": "happy birthday", "entities": {"hashtags": [{"text": "fun"}]}}),
        json!({"hashtags": [{"text": "fun"}], "urls": [{"expanded_url": "http://x.com/a"}]}),
    ])
}

/// Fields the fast path reads, at the top level or one level down.
const READ_PATHS: &[&[&str]] = &[
    &["id_str"],
    &["created_at"],
    &["text"],
    &["full_text"],
    &["user"],
    &["user", "id_str"],
    &["user", "screen_name"],
    &["in_reply_to_user_id_str"],
    &["entities"],
    &["entities", "hashtags"],
    &["entities", "user_mentions"],
    &["entities", "urls"],
    &["extended_entities"],
    &["extended_tweet"],
    &["retweeted_status"],
    &["quoted_status"],
    &["coordinates"],
    &["coordinates", "coordinates"],
    &["place"],
    &["place", "bounding_box"],
    &["place", "bounding_box", "coordinates"],
    &["traptor"],
    &["delete"],
    &["limit"],
];

fn set_path(value: &mut Value, path: &[&str], new: Value) {
    let mut target = value;
    for (i, key) in path.iter().enumerate() {
        let Some(object) = target.as_object_mut() else {
            return;
        };
        if i + 1 == path.len() {
            object.insert(key.to_string(), new);
            return;
        }
        target = object.entry(key.to_string()).or_insert_with(|| json!({}));
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 1500, ..ProptestConfig::default() })]

    #[test]
    fn byte_mutations_of_real_frames_are_judged_alike(
        which in 0usize..64,
        mutations in prop::collection::vec(mutation(), 1..4),
    ) {
        let enricher = enricher();
        let frames = frames();
        let mut frame = frames[which % frames.len()].clone();
        for m in mutations {
            mutate(&mut frame, m);
        }
        assert_paths_agree(&enricher, &frame);
    }

    #[test]
    fn odd_and_repeated_fields_are_read_alike(
        which in 0usize..4,
        edits in prop::collection::vec((prop::sample::select(READ_PATHS), odd_value()), 1..4),
        repeat in prop::option::of((prop::sample::select(READ_PATHS), odd_value())),
        repeat_inner in prop::option::of(prop::sample::select(vec![
            ("\"coordinates\":{", "coordinates"),
            ("\"place\":{", "bounding_box"),
            ("\"bounding_box\":{", "coordinates"),
            ("\"user\":{", "id_str"),
        ])),
        pretty in any::<bool>(),
    ) {
        let enricher = enricher();
        let mut tweet = tweets()[which].clone();
        for (path, value) in edits {
            set_path(&mut tweet, path, value);
        }
        let mut frame = if pretty {
            serde_json::to_vec_pretty(&tweet).unwrap()
        } else {
            serde_json::to_vec(&tweet).unwrap()
        };
        if let Some((path, value)) = repeat {
            // A repeated top-level key: the last one wins for serde's reading.
            let end = frame.iter().rposition(|&b| b == b'}').unwrap();
            let member = format!(",\"{}\":{}", path[0], value);
            frame.splice(end..end, member.bytes());
        }
        if let Some((object, field)) = repeat_inner {
            // A field repeated inside a read object (serde's derived structs refuse those).
            let text = String::from_utf8(frame.clone()).unwrap();
            if let Some(at) = text.find(object) {
                let at = at + object.len();
                let member = format!("\"{field}\":null,");
                frame.splice(at..at, member.bytes());
            }
        }
        assert_paths_agree(&enricher, &frame);
    }
}
