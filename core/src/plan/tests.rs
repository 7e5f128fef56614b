//! Tests of the planner: splitting, key shortage, stickiness, and properties over random slots,
//! keys and previous plans.

use std::collections::BTreeMap;

use proptest::prelude::*;

use super::*;
use crate::rules::{parse_rule, FilterTerm};

fn rule(stream_type: StreamType, id: impl ToString, value: &str) -> Rule {
    let fields = vec![
        ("rule_id".to_owned(), id.to_string()),
        ("value".to_owned(), value.to_owned()),
    ];
    parse_rule(fields, Some(stream_type)).unwrap()
}

fn track_slot(id: &str) -> SlotId {
    SlotId::new(StreamType::Track, id)
}

fn keys(names: &[&str]) -> Vec<String> {
    names.iter().map(|k| k.to_string()).collect()
}

fn phrases(count: usize) -> Vec<Rule> {
    (0..count)
        .map(|i| rule(StreamType::Track, i, &format!("phrase{i}")))
        .collect()
}

#[test]
fn connection_ids_display_the_part_only_when_split() {
    assert_eq!(ConnectionId::new(track_slot("0"), 0).to_string(), "track:0");
    assert_eq!(
        ConnectionId::new(track_slot("0"), 2).to_string(),
        "track:0/2"
    );
}

#[test]
fn nine_hundred_phrases_split_into_400_400_100() {
    let slots = BTreeMap::from([(track_slot("0"), phrases(900))]);
    let plan = plan(&slots, &keys(&["a", "b", "c", "d"]), None);
    let sizes: Vec<usize> = plan.connections.iter().map(|c| c.filter.len()).collect();
    assert_eq!(sizes, [400, 400, 100]);
    let ids: Vec<String> = plan.connections.iter().map(|c| c.id.to_string()).collect();
    assert_eq!(ids, ["track:0", "track:0/1", "track:0/2"]);
    let used: Vec<&str> = plan.connections.iter().map(|c| c.key.as_str()).collect();
    assert_eq!(used, ["a", "b", "c"]);
    assert_eq!(plan.unused_keys, ["d"]);
    assert!(plan.left_out.is_empty());
    // rule-id order, numerically: the first part holds rules 0..400
    assert_eq!(plan.connections[0].rules.last().unwrap().rule_id, "399");
    assert_eq!(plan.connections[2].rules.first().unwrap().rule_id, "800");
}

#[test]
fn with_two_keys_the_third_part_is_left_out_with_its_reason() {
    let slots = BTreeMap::from([(track_slot("0"), phrases(900))]);
    let plan = plan(&slots, &keys(&["a", "b"]), None);
    let planned: usize = plan.connections.iter().map(|c| c.rules.len()).sum();
    assert_eq!(planned, 800);
    assert_eq!(plan.left_out.len(), 100);
    assert!(plan
        .left_out
        .iter()
        .all(|l| l.reason == LeftOutReason::NoKeyForExtraConnection { part: 2 }));
    assert_eq!(plan.left_out[0].rule_id, "800");
    assert!(plan.slots_without_key.is_empty());
    assert!(plan.unused_keys.is_empty());
    let message = plan.left_out[0].to_string();
    assert!(
        message.contains("rule 800") && message.contains("track:0") && message.contains("part 2"),
        "{message}"
    );
}

#[test]
fn rules_sharing_a_term_stay_in_one_part() {
    // 401 unique terms; the 400th term is shared by a rule with a much higher id.
    let mut rules = phrases(401);
    rules.push(rule(StreamType::Track, 5000, "phrase399"));
    let slots = BTreeMap::from([(track_slot("0"), rules)]);
    let plan = plan(&slots, &keys(&["a", "b"]), None);
    assert_eq!(plan.connections[0].filter.len(), 400);
    assert_eq!(plan.connections[0].rules.len(), 401);
    assert_eq!(
        plan.connections[0].filter.entries[399].rule_ids,
        ["399", "5000"]
    );
    assert_eq!(plan.connections[1].rules.len(), 1);
}

#[test]
fn key_shortage_serves_first_parts_in_slot_order_first() {
    let slots = BTreeMap::from([
        (track_slot("0"), phrases(500)),
        (track_slot("1"), phrases(3)),
        (
            SlotId::new(StreamType::Follow, "0"),
            vec![rule(StreamType::Follow, 1, "12")],
        ),
        (track_slot("2"), phrases(1)),
    ]);
    let plan = plan(&slots, &keys(&["a", "b", "c"]), None);
    let got: Vec<(String, &str)> = plan
        .connections
        .iter()
        .map(|c| (c.id.to_string(), c.key.as_str()))
        .collect();
    // slot order: track:0 < track:1 < track:2 < follow:0 (StreamType order, then id)
    assert_eq!(
        got,
        [
            ("track:0".to_owned(), "a"),
            ("track:1".to_owned(), "b"),
            ("track:2".to_owned(), "c")
        ]
    );
    assert_eq!(
        plan.slots_without_key,
        [SlotId::new(StreamType::Follow, "0")]
    );
    // 100 rules of the extra part plus the follow slot's rule
    assert_eq!(plan.left_out.len(), 101);
    assert!(plan
        .left_out
        .iter()
        .any(|l| l.reason == LeftOutReason::NoKeyForSlot && l.value == "12"));
    let summary = plan.summary();
    assert!(
        summary.contains("track:0") && summary.contains("slots without an API key: follow:0"),
        "{summary}"
    );
    assert!(summary.contains("100 rule(s)"), "{summary}");
}

#[test]
fn a_slot_without_rules_gets_no_connection() {
    let slots = BTreeMap::from([(track_slot("0"), vec![]), (track_slot("1"), phrases(1))]);
    let plan = plan(&slots, &keys(&["a", "b"]), None);
    assert_eq!(plan.connections.len(), 1);
    assert_eq!(plan.connections[0].id.slot, track_slot("1"));
    assert_eq!(plan.unused_keys, ["b"]);
    assert!(plan.slots_without_key.is_empty());
}

#[test]
fn rules_of_the_wrong_type_are_left_out_not_sent() {
    let slots = BTreeMap::from([(
        track_slot("0"),
        vec![
            rule(StreamType::Follow, 1, "12"),
            rule(StreamType::Track, 2, "x"),
        ],
    )]);
    let plan = plan(&slots, &keys(&["a"]), None);
    assert_eq!(plan.connections[0].filter.value(), "x");
    assert_eq!(plan.left_out.len(), 1);
    assert_eq!(
        plan.left_out[0].reason,
        LeftOutReason::WrongStreamType {
            rule_type: StreamType::Follow
        }
    );
    assert!(plan.left_out[0].to_string().contains("traptor-follow:<id>"));
}

#[test]
fn keys_are_sticky_across_rule_changes_elsewhere() {
    let mut slots = BTreeMap::from([(track_slot("5"), phrases(2)), (track_slot("7"), phrases(2))]);
    let first = plan(&slots, &keys(&["a", "b", "c"]), None);
    assert_eq!(
        first
            .connection(&ConnectionId::new(track_slot("7"), 0))
            .unwrap()
            .key,
        "b"
    );

    // A new slot that sorts first would take key "a" on a fresh plan; with the previous plan
    // the running streams keep their keys and the new slot gets the free one.
    slots.insert(track_slot("1"), phrases(1));
    let fresh = plan(&slots, &keys(&["a", "b", "c"]), None);
    assert_eq!(
        fresh
            .connection(&ConnectionId::new(track_slot("1"), 0))
            .unwrap()
            .key,
        "a"
    );
    let second = plan(&slots, &keys(&["a", "b", "c"]), Some(&first));
    let key_of = |p: &Plan, slot: &str| {
        p.connection(&ConnectionId::new(track_slot(slot), 0))
            .unwrap()
            .key
            .clone()
    };
    assert_eq!(key_of(&second, "5"), "a");
    assert_eq!(key_of(&second, "7"), "b");
    assert_eq!(key_of(&second, "1"), "c");

    // A removed key frees its connection to take the next free key; the others stay.
    let third = plan(&slots, &keys(&["b", "c", "d"]), Some(&second));
    assert_eq!(key_of(&third, "7"), "b");
    assert_eq!(key_of(&third, "1"), "c");
    assert_eq!(key_of(&third, "5"), "d");
}

#[test]
fn left_out_rules_are_grouped_by_slot_and_reason_in_the_summary() {
    let mut rules = phrases(402);
    rules.push(rule(StreamType::Follow, 3, "12"));
    rules.push(rule(StreamType::Follow, 401, "13"));
    let slots = BTreeMap::from([(track_slot("0"), rules)]);
    let plan = plan(&slots, &keys(&["a"]), None);
    let reasons: Vec<u64> = plan.left_out.iter().map(|l| l.reason.rank()).collect();
    assert_eq!(reasons, [0, 0, 2, 2]);
    let summary = plan.summary();
    let lines: Vec<&str> = summary
        .lines()
        .filter(|l| l.starts_with("  track:0"))
        .collect();
    assert_eq!(lines.len(), 2, "{summary}");
    assert!(
        lines[0].contains("2 rule(s) (ids 3, 401)") && lines[0].contains("follow rule"),
        "{summary}"
    );
    assert!(
        lines[1].contains("2 rule(s) (ids 400, 401)") && lines[1].contains("part 1"),
        "{summary}"
    );
    let groups = plan.left_out_groups();
    assert_eq!(groups.len(), 2);
    assert_eq!(groups[0].to_string(), lines[0].trim());
    assert_eq!(groups[1].to_string(), lines[1].trim());
}

#[test]
fn thousands_of_rules_of_a_slot_without_key_are_one_group_of_one_line() {
    let follows: Vec<Rule> = (0..5_000)
        .map(|i| rule(StreamType::Follow, i, &(1_000 + i).to_string()))
        .collect();
    let slots = BTreeMap::from([
        (track_slot("0"), phrases(3)),
        (SlotId::new(StreamType::Follow, "0"), follows),
    ]);
    let plan = plan(&slots, &keys(&["a"]), None);
    assert_eq!(plan.left_out.len(), 5_000);
    let groups = plan.left_out_groups();
    assert_eq!(groups.len(), 1);
    assert_eq!(groups[0].rules.len(), 5_000);
    assert_eq!(groups[0].reason(), &LeftOutReason::NoKeyForSlot);
    let line = groups[0].to_string();
    assert!(
        line.starts_with("follow:0: 5000 rule(s) (ids 0, 1, 2, 3, 4, ...): no API key"),
        "{line}"
    );
}

#[test]
fn a_key_listed_twice_serves_one_connection() {
    let slots = BTreeMap::from([(track_slot("0"), phrases(1)), (track_slot("1"), phrases(1))]);
    let plan = plan(&slots, &keys(&["a", "a"]), None);
    assert_eq!(plan.connections.len(), 1);
    assert_eq!(plan.slots_without_key, [track_slot("1")]);
    assert!(plan.unused_keys.is_empty());
}

#[test]
fn summary_lists_connections_keys_and_sizes() {
    let slots = BTreeMap::from([(track_slot("0"), phrases(3))]);
    let plan = plan(&slots, &keys(&["key-one", "spare"]), None);
    let summary = plan.summary();
    let row = summary.lines().find(|l| l.starts_with("track:0")).unwrap();
    let cells: Vec<&str> = row.split_whitespace().collect();
    assert_eq!(cells, ["track:0", "key-one", "3", "3"]);
    assert!(summary.contains("unused API keys: spare"), "{summary}");
}

// ---- properties ----

/// Values drawn from a small pool so that equal terms (and equal rule ids) happen often.
fn arb_rule(stream_type: StreamType, pool: u32) -> impl Strategy<Value = Rule> {
    (0..3000u32, 0..pool, any::<bool>()).prop_map(move |(id, v, text_id)| {
        let id = if text_id {
            format!("r{id}")
        } else {
            id.to_string()
        };
        let value = match stream_type {
            StreamType::Track => format!("term{v}"),
            StreamType::Follow => format!("{}", 1000 + v),
            StreamType::Locations => format!("{},{},{},{}", v % 90, v / 90, v % 90 + 1, v / 90 + 1),
        };
        rule(stream_type, id, &value)
    })
}

fn arb_slots() -> impl Strategy<Value = BTreeMap<SlotId, Vec<Rule>>> {
    // Locations (limit 25) and track with a pool above 400 exercise splitting; follow stays small.
    let slot = prop_oneof![
        (0..3u8).prop_map(|i| (
            SlotId::new(StreamType::Locations, i.to_string()),
            60u32,
            80usize
        )),
        (0..3u8).prop_map(|i| (
            SlotId::new(StreamType::Track, i.to_string()),
            700u32,
            600usize
        )),
        (0..2u8).prop_map(|i| (
            SlotId::new(StreamType::Follow, i.to_string()),
            40u32,
            30usize
        )),
    ];
    prop::collection::vec(slot, 0..5)
        .prop_flat_map(|slots| {
            let per_slot: Vec<_> = slots
                .into_iter()
                .map(|(slot, pool, max)| {
                    let stream_type = slot.stream_type;
                    (
                        Just(slot),
                        prop::collection::vec(arb_rule(stream_type, pool), 0..max),
                    )
                })
                .collect();
            per_slot
        })
        .prop_map(|pairs| pairs.into_iter().collect())
}

fn arb_keys() -> impl Strategy<Value = Vec<String>> {
    prop::collection::vec(0..10u8, 0..10)
        .prop_map(|ks| ks.into_iter().map(|k| format!("key{k}")).collect())
}

/// (slot, rule id, value) of every rule, sorted: what "each rule exactly once" compares.
fn rule_identities(slots: &BTreeMap<SlotId, Vec<Rule>>) -> Vec<(SlotId, String, String)> {
    let mut all: Vec<_> = slots
        .iter()
        .flat_map(|(s, rules)| {
            rules
                .iter()
                .map(move |r| (s.clone(), r.rule_id.clone(), r.value.clone()))
        })
        .collect();
    all.sort();
    all
}

fn check_invariants(
    slots: &BTreeMap<SlotId, Vec<Rule>>,
    keys: &[String],
    plan: &Plan,
) -> Result<(), TestCaseError> {
    let mut accounted: Vec<_> = plan
        .connections
        .iter()
        .flat_map(|c| {
            c.rules
                .iter()
                .map(move |r| (c.id.slot.clone(), r.rule_id.clone(), r.value.clone()))
        })
        .chain(
            plan.left_out
                .iter()
                .map(|l| (l.slot.clone(), l.rule_id.clone(), l.value.clone())),
        )
        .collect();
    accounted.sort();
    prop_assert_eq!(accounted, rule_identities(slots), "every rule exactly once");

    let mut used_keys = HashSet::new();
    for c in &plan.connections {
        prop_assert!(
            c.filter.len() <= c.id.slot.stream_type.connection_limit(),
            "{} over its limit",
            c.id
        );
        prop_assert!(!c.rules.is_empty());
        prop_assert_eq!(
            &c.filter,
            &Filter::from_rules(c.id.slot.stream_type, &c.rules)
        );
        prop_assert!(
            keys.contains(&c.key),
            "{} uses unconfigured key {}",
            c.id,
            c.key
        );
        prop_assert!(used_keys.insert(c.key.clone()), "key {} used twice", c.key);
    }
    prop_assert!(
        plan.connections.windows(2).all(|w| w[0].id < w[1].id),
        "connections sorted by id"
    );

    // rules sharing a term are never split across parts of a slot
    for slot in slots.keys() {
        let mut seen = HashMap::new();
        for c in plan.connections_of(slot) {
            for term in c.filter.terms() {
                prop_assert_eq!(
                    seen.insert(term.to_filter_value(), c.id.part),
                    None,
                    "term in two parts"
                );
            }
        }
        let has_rules = slots[slot]
            .iter()
            .any(|r| r.term.stream_type() == slot.stream_type);
        let has_first = plan
            .connection(&ConnectionId::new(slot.clone(), 0))
            .is_some();
        prop_assert_eq!(
            plan.slots_without_key.contains(slot),
            has_rules && !has_first
        );
    }

    let expected_unused: Vec<String> = unique_keys(keys)
        .into_iter()
        .filter(|k| !used_keys.contains(k))
        .collect();
    prop_assert_eq!(&plan.unused_keys, &expected_unused);
    let keyless = plan
        .left_out
        .iter()
        .any(|l| !matches!(l.reason, LeftOutReason::WrongStreamType { .. }));
    prop_assert!(
        !keyless || plan.unused_keys.is_empty(),
        "a key was free while a part went without one"
    );
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(48))]

    #[test]
    fn plans_respect_limits_and_account_for_every_rule(slots in arb_slots(), keys in arb_keys()) {
        let plan = plan(&slots, &keys, None);
        check_invariants(&slots, &keys, &plan)?;
        prop_assert_eq!(&plan, &super::plan(&slots, &keys, None), "same input, same plan");
    }

    #[test]
    fn input_order_of_rules_does_not_change_the_plan(
        slots in arb_slots(),
        keys in arb_keys(),
        seed in any::<u64>(),
    ) {
        let mut shuffled = slots.clone();
        let mut state = seed | 1;
        for rules in shuffled.values_mut() {
            // Fisher-Yates driven by a xorshift generator seeded by proptest
            for i in (1..rules.len()).rev() {
                state ^= state << 13;
                state ^= state >> 7;
                state ^= state << 17;
                rules.swap(i, (state % (i as u64 + 1)) as usize);
            }
        }
        prop_assert_eq!(plan(&slots, &keys, None), plan(&shuffled, &keys, None));
    }

    #[test]
    fn sticky_keys_are_kept(
        before in arb_slots(),
        before_keys in arb_keys(),
        after in arb_slots(),
        after_keys in arb_keys(),
    ) {
        let previous = plan(&before, &before_keys, None);
        let next = plan(&after, &after_keys, Some(&previous));
        check_invariants(&after, &after_keys, &next)?;
        for old in &previous.connections {
            let still_exists = after
                .get(&old.id.slot)
                .map(|rules| split_slot(&old.id.slot, rules).0.iter().any(|p| p.id == old.id))
                .unwrap_or(false);
            if still_exists && after_keys.contains(&old.key) {
                let kept = next.connection(&old.id).map(|c| c.key.as_str());
                prop_assert_eq!(kept, Some(old.key.as_str()), "{} lost its key", old.id);
            }
        }
        prop_assert_eq!(&next, &plan(&after, &after_keys, Some(&previous)), "same input, same plan");
    }
}

#[test]
fn a_malformed_previous_plan_cannot_give_one_key_twice() {
    let slots = BTreeMap::from([(track_slot("0"), phrases(1)), (track_slot("1"), phrases(1))]);
    let mut previous = plan(&slots, &keys(&["a", "b"]), None);
    previous.connections[1].key = "a".into();
    let next = plan(&slots, &keys(&["a", "b"]), Some(&previous));
    let got: Vec<&str> = next.connections.iter().map(|c| c.key.as_str()).collect();
    assert_eq!(got, ["a", "b"]);
    assert!(matches!(
        next.connections[0].rules[0].term,
        FilterTerm::Phrase(_)
    ));
}
