//! Enrichment of arbitrary frames with the original project's fixture rules of every type: no
//! panic; a frame that is not a tweet is written byte for byte; a tweet that is a JSON object
//! comes out as a JSON object with every original member and one `traptor` object.
#![no_main]

use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;
use serde_json::Value;
use traptor_core::enrich::Enricher;
use traptor_core::rules::{fields_from_json, RuleSet, StreamType};
use traptor_core::MessageKind;

fn enricher() -> &'static Enricher {
    static ENRICHER: OnceLock<Enricher> = OnceLock::new();
    ENRICHER.get_or_init(|| {
        let fixtures = concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../../tests/fixtures/traptor-v4"
        );
        let mut rules = Vec::new();
        for stream_type in StreamType::ALL {
            let path = format!("{fixtures}/{}_rules.json", stream_type.as_str());
            let text = std::fs::read_to_string(&path).expect("the fixture rules");
            let hashes: Vec<_> = text
                .lines()
                .filter(|line| !line.trim().is_empty())
                .map(|line| {
                    let value: Value = serde_json::from_str(line).unwrap();
                    (None::<String>, fields_from_json(&value).unwrap())
                })
                .collect();
            rules.extend(RuleSet::from_hashes(hashes, Some(stream_type)).rules);
        }
        Enricher::new(None, rules)
    })
}

fuzz_target!(|data: &[u8]| {
    let enriched = enricher().enrich(data, 1_456_104_900_250);
    let output = &enriched.record.payload;
    if enriched.record.kind != MessageKind::Tweet {
        assert_eq!(output.as_slice(), data, "a non-tweet is written unchanged");
        return;
    }
    let Ok(Value::Object(input)) = serde_json::from_slice::<Value>(data) else {
        return;
    };
    let Ok(Value::Object(mut out)) = serde_json::from_slice::<Value>(output) else {
        panic!(
            "an enriched tweet is not a JSON object: {:?}",
            String::from_utf8_lossy(output)
        );
    };
    assert!(
        out.get("traptor").is_some_and(Value::is_object),
        "no traptor object"
    );
    out.remove("traptor");
    for (key, value) in &input {
        if key != "traptor" {
            assert_eq!(out.get(key), Some(value), "member {key:?} changed");
        }
    }
});
