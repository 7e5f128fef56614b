//! Tests of message classification against the original's fixtures and random objects.

use proptest::prelude::*;

use super::*;

fn fixture(name: &str) -> Vec<u8> {
    let path = format!(
        "{}/../tests/fixtures/traptor-v4/{name}",
        env!("CARGO_MANIFEST_DIR")
    );
    std::fs::read(&path).expect(&path)
}

/// The fixture as one stream line, as the server would send it.
fn compact(bytes: &[u8]) -> Vec<u8> {
    let value: Value = serde_json::from_slice(bytes).unwrap();
    serde_json::to_vec(&value).unwrap()
}

#[test]
fn every_control_message_fixture_gets_its_kind_and_details() {
    let cases = [
        (
            "limit_message.json",
            MessageKind::Limit,
            ControlDetail::Limit { undelivered: Some(1234), timestamp_ms: None },
        ),
        (
            "delete_message.json",
            MessageKind::Delete,
            ControlDetail::Delete { status_id: Some(1234), user_id: Some(3) },
        ),
        (
            "scrub_geo_message.json",
            MessageKind::ScrubGeo,
            ControlDetail::ScrubGeo { user_id: Some(14090452), up_to_status_id: Some(23260136625) },
        ),
        ("status_withheld_message.json", MessageKind::StatusWithheld, ControlDetail::None),
        ("user_withheld_message.json", MessageKind::UserWithheld, ControlDetail::None),
        (
            "disconnect_message.json",
            MessageKind::Disconnect,
            ControlDetail::Disconnect { code: Some(4), reason: Some(String::new()), stream_name: Some(String::new()) },
        ),
        (
            "warning_message.json",
            MessageKind::Warning,
            ControlDetail::Warning {
                code: Some("FALLING_BEHIND".into()),
                message: Some(
                    "Your connection is falling behind and messages are being queued for delivery to you. \
                     Your queue is now over 60% full. You will be disconnected when the queue is full."
                        .into(),
                ),
                percent_full: Some(60),
            },
        ),
    ];
    for (file, kind, detail) in cases {
        let raw = fixture(file);
        let expected = Classified { kind, detail };
        assert_eq!(
            classify(&raw),
            expected,
            "{file} as stored (pretty-printed)"
        );
        assert_eq!(classify(&compact(&raw)), expected, "{file} as one line");
    }
}

#[test]
fn every_tweet_fixture_is_a_tweet() {
    for file in [
        "track_tweet.json",
        "follow_tweet.json",
        "locations_tweet.json",
        "no_match_tweet.json",
    ] {
        let classified = classify(&compact(&fixture(file)));
        assert_eq!(
            classified,
            Classified {
                kind: MessageKind::Tweet,
                detail: ControlDetail::None
            },
            "{file}"
        );
    }
}

#[test]
fn a_message_with_every_control_key_is_a_limit_first() {
    // other_tweet_messages.json repeats "warning" and mixes in an event's keys
    let classified = classify(&fixture("other_tweet_messages.json"));
    assert_eq!(classified.kind, MessageKind::Limit);
    assert_eq!(
        classified.detail,
        ControlDetail::Limit {
            undelivered: Some(1234),
            timestamp_ms: None
        }
    );
}

#[test]
fn anything_that_is_not_a_json_object_is_invalid() {
    for frame in [
        &b""[..],
        b"not json",
        b"[1,2]",
        b"12345",
        b"\"text\"",
        b"null",
        b"{\"a\":1",
        b"{\"a\":1}trailing",
        b"{\"a\":1}{\"b\":2}",
        b"{\"id_str\":\"1\",\"text\":\"\xff\xfe\"}",
    ] {
        assert_eq!(
            classify(frame).kind,
            MessageKind::Invalid,
            "{}",
            String::from_utf8_lossy(frame)
        );
    }
}

#[test]
fn other_objects_are_unknown_not_dropped() {
    for frame in [
        &b"{}"[..],
        br#"{"event":"favorite","source":{},"target":{}}"#,
        br#"{"id_str":"1"}"#,
        br#"{"friends":[1,2,3]}"#,
        br#"{"text":"no id"}"#,
    ] {
        assert_eq!(
            classify(frame).kind,
            MessageKind::Unknown,
            "{}",
            String::from_utf8_lossy(frame)
        );
    }
}

#[test]
fn a_tweet_needs_id_str_and_a_body() {
    for body in ["text", "full_text", "user"] {
        let frame = format!(r#"{{"id_str":"9","{body}":{{}}}}"#);
        assert_eq!(
            classify(frame.as_bytes()).kind,
            MessageKind::Tweet,
            "{frame}"
        );
    }
}

#[test]
fn escaped_keys_classify_like_plain_ones() {
    assert_eq!(
        classify(br#"{"\u006cimit":{"track":5}}"#).kind,
        MessageKind::Limit
    );
    assert_eq!(
        classify(br#"{"\u006cimit":{"track":5}}"#).detail,
        ControlDetail::Limit {
            undelivered: Some(5),
            timestamp_ms: None
        }
    );
}

#[test]
fn limit_details_read_any_stream_key_and_string_numbers() {
    let classified = classify(br#"{"limit":{"follow":"77","timestamp_ms":"1456104893660"}}"#);
    assert_eq!(
        classified.detail,
        ControlDetail::Limit {
            undelivered: Some(77),
            timestamp_ms: Some(1456104893660)
        }
    );
    let classified = classify(br#"{"limit":{"locations":3,"timestamp_ms":1456104893660}}"#);
    assert_eq!(
        classified.detail,
        ControlDetail::Limit {
            undelivered: Some(3),
            timestamp_ms: Some(1456104893660)
        }
    );
}

#[test]
fn odd_control_bodies_keep_the_kind_without_details() {
    assert_eq!(
        classify(br#"{"limit":5}"#),
        Classified {
            kind: MessageKind::Limit,
            detail: ControlDetail::Limit {
                undelivered: None,
                timestamp_ms: None
            }
        }
    );
    assert_eq!(
        classify(br#"{"disconnect":{"code":"12","reason":7}}"#).detail,
        ControlDetail::Disconnect {
            code: Some(12),
            reason: Some("7".into()),
            stream_name: None
        }
    );
    assert_eq!(
        classify(br#"{"delete":{"status":{"id":18014398509481985,"id_str":"18014398509481985"}}}"#)
            .detail,
        ControlDetail::Delete {
            status_id: Some(18014398509481985),
            user_id: None
        }
    );
}

#[test]
fn keys_alone_give_the_same_kind() {
    assert_eq!(
        kind_from_top_level_keys(["id_str", "text", "user"]),
        MessageKind::Tweet
    );
    assert_eq!(
        kind_from_top_level_keys(["warning", "limit"]),
        MessageKind::Limit
    );
    assert_eq!(kind_from_top_level_keys(["id_str"]), MessageKind::Unknown);
    assert_eq!(
        kind_from_top_level_keys(Vec::<&str>::new()),
        MessageKind::Unknown
    );
}

const KEY_POOL: [&str; 14] = [
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
    "event",
    "id",
    "entities",
];

proptest! {
    #[test]
    fn classify_agrees_with_kind_from_keys(
        picks in prop::collection::vec((0..KEY_POOL.len(), 0..4u8), 0..8),
    ) {
        let mut object = serde_json::Map::new();
        for (key, shape) in &picks {
            let value = match shape {
                0 => Value::Null,
                1 => Value::from(42),
                2 => Value::from("x"),
                _ => serde_json::json!({"track": 1, "code": 2, "status": {"id": 3}}),
            };
            object.insert(KEY_POOL[*key].to_owned(), value);
        }
        let keys: Vec<&str> = object.keys().map(String::as_str).collect();
        let expected = kind_from_top_level_keys(keys.iter().copied());
        let frame = serde_json::to_vec(&Value::Object(object.clone())).unwrap();
        prop_assert_eq!(classify(&frame).kind, expected);
    }

    #[test]
    fn arbitrary_bytes_never_panic(bytes in prop::collection::vec(any::<u8>(), 0..200)) {
        let classified = classify(&bytes);
        if serde_json::from_slice::<Value>(&bytes).map(|v| v.is_object()).unwrap_or(false) {
            prop_assert_ne!(classified.kind, MessageKind::Invalid);
        } else {
            prop_assert_eq!(classified.kind, MessageKind::Invalid);
        }
    }
}
