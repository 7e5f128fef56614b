//! `--auto-slot`: spreads rules over the slots of their type as the original's `RulesToRedis`
//! did (rule n of a type goes to traptor id `n / limit`, limits 400 track, 5,000 follow,
//! 25 locations), but numbering the rules in rule-id order instead of file order, so the same
//! rules always land in the same slots.

use std::collections::BTreeMap;

use traptor_core::rules::compare_rule_ids;
use traptor_core::{SlotId, StreamType};

/// One rule to place: its stream type, its rule id, and whatever the caller carries along.
pub struct Unplaced<T> {
    pub stream_type: StreamType,
    pub rule_id: String,
    pub item: T,
}

/// Assigns each rule its slot. Output is in slot order, rule-id order within a slot.
pub fn shard<T>(rules: Vec<Unplaced<T>>) -> Vec<(SlotId, T)> {
    let mut by_type: BTreeMap<StreamType, Vec<Unplaced<T>>> = BTreeMap::new();
    for rule in rules {
        by_type.entry(rule.stream_type).or_default().push(rule);
    }
    let mut placed = Vec::new();
    for (stream_type, mut rules) in by_type {
        // Stable: rules with equal ids keep their input order.
        rules.sort_by(|a, b| compare_rule_ids(&a.rule_id, &b.rule_id));
        let limit = stream_type.connection_limit();
        for (n, rule) in rules.into_iter().enumerate() {
            placed.push((SlotId::new(stream_type, (n / limit).to_string()), rule.item));
        }
    }
    placed
}

#[cfg(test)]
mod tests {
    use super::*;

    fn unplaced(stream_type: StreamType, ids: impl IntoIterator<Item = u32>) -> Vec<Unplaced<u32>> {
        ids.into_iter()
            .map(|id| Unplaced {
                stream_type,
                rule_id: id.to_string(),
                item: id,
            })
            .collect()
    }

    fn slots_of(placed: &[(SlotId, u32)], id: u32) -> String {
        placed
            .iter()
            .find(|(_, item)| *item == id)
            .unwrap()
            .0
            .to_string()
    }

    #[test]
    fn each_type_fills_slots_up_to_its_connection_limit_in_rule_id_order() {
        // Reversed input: placement must follow rule ids, not input order.
        let mut rules = unplaced(StreamType::Track, (1..=801).rev());
        rules.extend(unplaced(StreamType::Locations, 1..=26));
        rules.extend(unplaced(StreamType::Follow, [5]));
        let placed = shard(rules);
        assert_eq!(placed.len(), 801 + 26 + 1);
        assert_eq!(slots_of(&placed, 1), "track:0");
        for (id, slot) in [
            (400, "track:0"),
            (401, "track:1"),
            (800, "track:1"),
            (801, "track:2"),
        ] {
            let track: Vec<_> = placed
                .iter()
                .filter(|(s, i)| s.stream_type == StreamType::Track && *i == id)
                .collect();
            assert_eq!(track[0].0.to_string(), slot, "rule {id}");
        }
        let boxes: Vec<String> = placed
            .iter()
            .filter(|(s, _)| s.stream_type == StreamType::Locations)
            .map(|(s, _)| s.to_string())
            .collect();
        assert_eq!(boxes.iter().filter(|s| *s == "locations:0").count(), 25);
        assert_eq!(boxes.iter().filter(|s| *s == "locations:1").count(), 1);
        assert!(placed
            .iter()
            .any(|(s, i)| s.to_string() == "follow:0" && *i == 5));
    }

    #[test]
    fn numeric_ids_sort_as_numbers() {
        let rules: Vec<Unplaced<&str>> = ["10", "9", "abc"]
            .into_iter()
            .map(|id| Unplaced {
                stream_type: StreamType::Track,
                rule_id: id.to_owned(),
                item: id,
            })
            .collect();
        let order: Vec<&str> = shard(rules).into_iter().map(|(_, id)| id).collect();
        assert_eq!(order, ["9", "10", "abc"]);
    }
}
