//! The original traptor's enrichment tests, on its fixtures, plus the cases it did not cover.

use serde_json::{json, Value};

use super::*;
use crate::rules::{fields_from_json, parse_rule, StreamType};

fn fixture(name: &str) -> Vec<u8> {
    let path = format!(
        "{}/../tests/fixtures/traptor-v4/{name}",
        env!("CARGO_MANIFEST_DIR")
    );
    std::fs::read(&path).expect(&path)
}

fn rule_from(json: &Value, slot: Option<StreamType>) -> Rule {
    parse_rule(fields_from_json(json).unwrap(), slot).unwrap()
}

fn fixture_rule(stream_type: StreamType) -> Rule {
    let json: Value =
        serde_json::from_slice(&fixture(&format!("{stream_type}_rules.json"))).unwrap();
    rule_from(&json, Some(stream_type))
}

fn slot_enricher(stream_type: StreamType) -> Enricher {
    Enricher::new(
        Some(SlotId::new(stream_type, "0")),
        vec![fixture_rule(stream_type)],
    )
}

const RECEIVED: i64 = 1_456_104_900_250;

fn output(enriched: &Enriched) -> Value {
    serde_json::from_slice(&enriched.record.payload).expect("the output is JSON")
}

/// Every field of the input is in the output with the same value (the `traptor` key aside).
fn assert_original_fields_kept(input: &[u8], out: &Value) {
    let input: Value = serde_json::from_slice(input).unwrap();
    for (key, value) in input.as_object().unwrap() {
        if key == "traptor" {
            assert_eq!(&out["traptor_original"], value);
        } else {
            assert_eq!(&out[key], value, "field {key}");
        }
    }
}

#[test]
fn each_fixture_tweet_gets_created_at_iso_and_its_rule() {
    // test_main_loop: per traptor type, its tweet, its created_at_iso and its rule.
    for (stream_type, file, iso) in [
        (
            StreamType::Track,
            "track_tweet.json",
            "2016-02-22T01:34:53+00:00",
        ),
        (
            StreamType::Follow,
            "follow_tweet.json",
            "2016-02-20T03:52:59+00:00",
        ),
        (
            StreamType::Locations,
            "locations_tweet.json",
            "2016-02-23T02:02:54+00:00",
        ),
    ] {
        let input = fixture(file);
        let enriched = slot_enricher(stream_type).enrich(&input, RECEIVED);
        assert_eq!(enriched.error, None, "{file}");
        assert_eq!(enriched.record.kind, MessageKind::Tweet);
        assert_eq!(enriched.matched, [0], "{file}");
        let out = output(&enriched);
        let traptor = &out["traptor"];
        assert_eq!(traptor["created_at_iso"], iso, "{file}");
        assert_eq!(traptor["id_str"], 0);
        let rule = &traptor["collection_rules"][0];
        for field in [
            "rule_tag",
            "rule_value",
            "rule_type",
            "tag",
            "value",
            "status",
            "description",
            "appid",
        ] {
            assert!(
                rule.get(field).is_some(),
                "{file}: collection_rules[0] lacks {field}"
            );
        }
        assert_eq!(rule["rule_type"], stream_type.as_str());
        assert_eq!(rule["rule_tag"], rule["tag"]);
        assert_eq!(rule["rule_value"], rule["value"]);
        assert_eq!(traptor["collection_rules"].as_array().unwrap().len(), 1);
        assert!(
            traptor.get("rule_tag").is_none(),
            "no Not Found marker on a match"
        );
        assert_eq!(enriched.record.key.as_deref(), out["id_str"].as_str());
        assert_original_fields_kept(&input, &out);
    }
}

#[test]
fn the_matched_rule_is_the_whole_hash_in_stored_order() {
    let fields = vec![
        ("tag", "test"),
        ("value", "happy"),
        ("status", "active"),
        ("description", "Tweets for a hashtag"),
        ("appid", "test-appid"),
        ("date_added", "2016-05-10 16:58:34"),
        ("orig_type", "keyword"),
        ("rule_type", "track"),
        ("rule_id", "12347"),
    ];
    let rule = parse_rule(
        fields
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect(),
        None,
    )
    .unwrap();
    let enricher = Enricher::new(Some(SlotId::new(StreamType::Track, "0")), vec![rule]);
    let enriched = enricher.enrich(&fixture("track_tweet.json"), RECEIVED);
    let text = String::from_utf8(enriched.record.payload).unwrap();
    let expected = r#""collection_rules":[{"tag":"test","value":"happy","status":"active","description":"Tweets for a hashtag","appid":"test-appid","date_added":"2016-05-10 16:58:34","orig_type":"keyword","rule_type":"track","rule_id":"12347","rule_tag":"test","rule_value":"happy"}]"#;
    assert!(text.contains(expected), "{text}");
    assert!(text.contains(
        r#""traptor":{"id_str":0,"created_at_iso":"2016-02-22T01:34:53+00:00","collection_rules""#
    ));
}

#[test]
fn an_unmatched_tweet_is_written_as_not_found() {
    // test_ensure_traptor_is_in_tweet_on_no_match
    for stream_type in [StreamType::Track, StreamType::Follow] {
        let input = fixture("no_match_tweet.json");
        let enriched = slot_enricher(stream_type).enrich(&input, RECEIVED);
        assert!(enriched.matched.is_empty());
        let out = output(&enriched);
        let traptor = &out["traptor"];
        assert_eq!(traptor["created_at_iso"], "2016-02-22T01:34:53+00:00");
        assert_eq!(traptor["rule_tag"], "Not Found");
        assert_eq!(traptor["rule_value"], "Not Found");
        assert_eq!(traptor["rule_type"], stream_type.as_str());
        assert_eq!(traptor["id"], 0);
        assert_eq!(traptor["collection_rules"], json!([]));
        assert_original_fields_kept(&input, &out);
    }
}

#[test]
fn control_messages_are_returned_unchanged() {
    // test_ensure_traptor_only_enriches_tweets
    let enricher = slot_enricher(StreamType::Track);
    for (file, kind, key) in [
        ("limit_message.json", MessageKind::Limit, None),
        ("delete_message.json", MessageKind::Delete, Some("1234")),
        ("scrub_geo_message.json", MessageKind::ScrubGeo, None),
        (
            "status_withheld_message.json",
            MessageKind::StatusWithheld,
            Some("1234567890"),
        ),
        (
            "user_withheld_message.json",
            MessageKind::UserWithheld,
            None,
        ),
        ("disconnect_message.json", MessageKind::Disconnect, None),
        ("warning_message.json", MessageKind::Warning, None),
        ("other_tweet_messages.json", MessageKind::Limit, None),
    ] {
        let input = fixture(file);
        let enriched = enricher.enrich(&input, RECEIVED);
        assert_eq!(enriched.record.payload, input, "{file}");
        assert_eq!(enriched.record.kind, kind, "{file}");
        assert_eq!(enriched.record.key.as_deref(), key, "{file}");
        assert_eq!(
            (enriched.error, enriched.matched.len()),
            (None, 0),
            "{file}"
        );
    }
    let unknown = br#"{"event":"user_update","created_at":"Tue Aug 06 02:23:21 +0000 2013"}"#;
    let enriched = enricher.enrich(unknown, RECEIVED);
    assert_eq!(
        (enriched.record.kind, enriched.record.payload.as_slice()),
        (MessageKind::Unknown, &unknown[..])
    );
}

#[test]
fn every_rule_that_matches_is_listed() {
    let happy = |id: &str, tag: &str| json!({"rule_id": id, "value": "happy", "tag": tag, "rule_type": "track"});
    let rules = vec![
        rule_from(&happy("2", "second"), None),
        rule_from(&happy("1", "first"), None),
        rule_from(
            &json!({"rule_id": "3", "value": "birthday", "tag": "b", "rule_type": "track"}),
            None,
        ),
        rule_from(
            &json!({"rule_id": "4", "value": "absent", "tag": "x", "rule_type": "track"}),
            None,
        ),
        rule_from(
            &json!({"rule_id": "5", "value": "101886075", "tag": "f", "rule_type": "follow"}),
            None,
        ),
    ];
    let enriched = Enricher::new(None, rules).enrich(&fixture("track_tweet.json"), RECEIVED);
    // The fixture is a reply to user 101886075, which the follow rule matches.
    assert_eq!(enriched.matched, [0, 1, 2, 4]);
    let out = output(&enriched);
    let ids: Vec<&str> = out["traptor"]["collection_rules"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["rule_id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, ["2", "1", "3", "5"]);
}

#[test]
fn a_tweet_with_a_traptor_key_keeps_it_as_traptor_original() {
    let input = fixture("locations_tweet.json");
    let enriched = slot_enricher(StreamType::Locations).enrich(&input, RECEIVED);
    let text = String::from_utf8(enriched.record.payload.clone()).unwrap();
    assert_eq!(text.matches("\"traptor\"").count(), 1, "{text}");
    let out = output(&enriched);
    assert_eq!(
        out["traptor_original"],
        json!({"created_at_iso": "2016-02-23T02:02:54+00:00"})
    );
    assert_eq!(out["traptor"]["collection_rules"][0]["rule_id"], "12346");
    assert_original_fields_kept(&input, &out);
}

#[test]
fn the_additions_name_the_stream_the_time_and_the_version() {
    let enricher = Enricher::new(
        Some(SlotId::new(StreamType::Track, "eu-1")),
        vec![fixture_rule(StreamType::Track)],
    );
    let out = output(&enricher.enrich(&fixture("track_tweet.json"), RECEIVED));
    let traptor = &out["traptor"];
    assert_eq!(traptor["id_str"], "eu-1");
    assert_eq!(traptor["stream"], json!({"type": "track", "id": "eu-1"}));
    assert_eq!(traptor["received_at"], "2016-02-22T01:35:00.250Z");
    assert_eq!(traptor["traptor_version"], env!("CARGO_PKG_VERSION"));

    let offline = Enricher::new(None, vec![]).enrich(&fixture("track_tweet.json"), RECEIVED);
    let traptor = output(&offline)["traptor"].clone();
    assert_eq!(
        (traptor["id_str"].clone(), traptor["stream"].clone()),
        (Value::Null, Value::Null)
    );
    assert_eq!(traptor["rule_type"], "unknown");
}

#[test]
fn a_bad_created_at_is_reported_and_the_tweet_still_written() {
    let input = br#"{"id_str":"9","text":"happy","created_at":"yesterday"}"#;
    let enriched = slot_enricher(StreamType::Track).enrich(input, RECEIVED);
    assert!(matches!(
        enriched.error,
        Some(EnrichError::BadCreatedAt { .. })
    ));
    assert_eq!(enriched.matched, [0]);
    let out = output(&enriched);
    assert!(out["traptor"].get("created_at_iso").is_none());
    assert_eq!(out["created_at"], "yesterday");
}

#[test]
fn invalid_input_is_kept_byte_for_byte() {
    let enricher = slot_enricher(StreamType::Track);
    for (input, expected) in [
        (&b"{\"id_str\":\"1\",\"text\":\"\xff\"}"[..], "UTF-8"),
        (b"{\"id_str\":\"1\",", "not valid JSON"),
        (b"not json", "not valid JSON"),
        (b"[1,2,3]", "not an object"),
        (b"\"text\"", "not an object"),
        (b"", "not valid JSON"),
    ] {
        let enriched = enricher.enrich(input, RECEIVED);
        assert_eq!(enriched.record.kind, MessageKind::Invalid, "{input:?}");
        assert_eq!(enriched.record.payload, input);
        let error = enriched.error.expect("an error").to_string();
        assert!(error.contains(expected), "{error}");
    }
}

#[test]
fn a_tweet_with_odd_field_types_is_still_tagged() {
    let input = br#"{"id_str":"1","text":"happy","user":"not an object"}"#;
    let enriched = slot_enricher(StreamType::Track).enrich(input, RECEIVED);
    assert_eq!(enriched.record.kind, MessageKind::Tweet);
    assert!(matches!(
        enriched.error,
        Some(EnrichError::UnreadableTweet { .. })
    ));
    let out = output(&enriched);
    assert_eq!(out["traptor"]["rule_tag"], "Not Found");
    assert_eq!(out["user"], "not an object");
}

#[test]
fn escaped_and_unicode_content_survives_and_matches() {
    let input = "{\"id_str\":\"7\",\"text\":\"Caf\\u00e9 \\\"HAPPY\\\" \u{1F600}\\n\",\"created_at\":\"Mon Feb 22 01:34:53 +0000 2016\"}";
    let enriched = slot_enricher(StreamType::Track).enrich(input.as_bytes(), RECEIVED);
    assert_eq!(enriched.matched, [0]);
    assert!(enriched
        .record
        .payload
        .starts_with(&input.as_bytes()[..input.len() - 1]));
    assert_original_fields_kept(input.as_bytes(), &output(&enriched));
}
