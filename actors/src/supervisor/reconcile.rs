//! What must happen to the running streams when the plan changes. Pure, so the rule "touch
//! only the connections whose rules changed" is tested without actors.

use std::collections::BTreeMap;

use traptor_core::plan::{ConnectionId, Plan};
use traptor_core::Rule;

use crate::watcher::tracker::same_rules;

/// What a running child is doing now, as the reconciler needs to know it.
#[derive(Debug, Clone, PartialEq)]
pub struct Running {
    pub key: String,
    pub rules: Vec<Rule>,
}

/// The steps that take the running children to the new plan, each list in connection order.
#[derive(Debug, Default, PartialEq)]
pub struct Changes {
    /// Connections to start (new, or moved to another key after their old child stopped).
    pub start: Vec<ConnectionId>,
    /// Running connections whose rules changed: they get `UpdateRules` and nothing else.
    pub update: Vec<ConnectionId>,
    /// Running connections to stop: not planned any more, or planned on another key.
    pub stop: Vec<ConnectionId>,
}

impl Changes {
    pub fn is_empty(&self) -> bool {
        self.start.is_empty() && self.update.is_empty() && self.stop.is_empty()
    }
}

/// Compares the running children with the plan. A connection that keeps its key and rules
/// appears in no list: its stream is left alone.
pub fn reconcile(running: &BTreeMap<ConnectionId, Running>, plan: &Plan) -> Changes {
    let mut changes = Changes::default();
    for planned in &plan.connections {
        match running.get(&planned.id) {
            None => changes.start.push(planned.id.clone()),
            Some(child) if child.key != planned.key => {
                changes.stop.push(planned.id.clone());
                changes.start.push(planned.id.clone());
            }
            Some(child) if !same_rules(&child.rules, &planned.rules) => {
                changes.update.push(planned.id.clone())
            }
            Some(_) => {}
        }
    }
    for id in running.keys() {
        if plan.connection(id).is_none() {
            changes.stop.push(id.clone());
        }
    }
    changes.stop.sort();
    changes
}

#[cfg(test)]
mod tests {
    use super::*;
    use traptor_core::plan::plan;
    use traptor_core::{RuleSet, SlotId, StreamType};

    fn rules(slot: &SlotId, values: &[&str]) -> Vec<Rule> {
        let hashes = values.iter().enumerate().map(|(i, v)| {
            (
                None,
                vec![
                    ("rule_id".to_string(), (i + 1).to_string()),
                    ("value".to_string(), v.to_string()),
                ],
            )
        });
        RuleSet::from_hashes(hashes, Some(slot.stream_type)).rules
    }

    fn track(id: &str) -> SlotId {
        SlotId::new(StreamType::Track, id)
    }

    fn running_from(plan: &Plan) -> BTreeMap<ConnectionId, Running> {
        plan.connections
            .iter()
            .map(|c| {
                (
                    c.id.clone(),
                    Running {
                        key: c.key.clone(),
                        rules: c.rules.clone(),
                    },
                )
            })
            .collect()
    }

    fn keys(names: &[&str]) -> Vec<String> {
        names.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn nothing_runs_yet_so_every_planned_connection_starts() {
        let slots = BTreeMap::from([
            (track("0"), rules(&track("0"), &["a"])),
            (track("1"), rules(&track("1"), &["b"])),
        ]);
        let planned = plan(&slots, &keys(&["k1", "k2"]), None);
        let changes = reconcile(&BTreeMap::new(), &planned);
        assert_eq!(changes.start.len(), 2);
        assert!(changes.update.is_empty() && changes.stop.is_empty());
    }

    #[test]
    fn a_rule_change_updates_only_its_own_connection() {
        let mut slots = BTreeMap::from([
            (track("0"), rules(&track("0"), &["a"])),
            (track("1"), rules(&track("1"), &["b"])),
        ]);
        let before = plan(&slots, &keys(&["k1", "k2"]), None);
        slots.insert(track("1"), rules(&track("1"), &["b", "c"]));
        let after = plan(&slots, &keys(&["k1", "k2"]), Some(&before));
        let changes = reconcile(&running_from(&before), &after);
        assert_eq!(
            changes,
            Changes {
                update: vec![ConnectionId::new(track("1"), 0)],
                ..Changes::default()
            }
        );
    }

    #[test]
    fn an_unchanged_plan_changes_nothing() {
        let slots = BTreeMap::from([(track("0"), rules(&track("0"), &["a"]))]);
        let before = plan(&slots, &keys(&["k1"]), None);
        let after = plan(&slots, &keys(&["k1"]), Some(&before));
        assert!(reconcile(&running_from(&before), &after).is_empty());
    }

    #[test]
    fn a_removed_slot_stops_and_a_moved_key_restarts() {
        let running = BTreeMap::from([
            (
                ConnectionId::new(track("0"), 0),
                Running {
                    key: "k1".into(),
                    rules: rules(&track("0"), &["a"]),
                },
            ),
            (
                ConnectionId::new(track("9"), 0),
                Running {
                    key: "k2".into(),
                    rules: rules(&track("9"), &["z"]),
                },
            ),
        ]);
        // Only k2 is configured now: track:0 moves to it, track:9 is gone.
        let slots = BTreeMap::from([(track("0"), rules(&track("0"), &["a"]))]);
        let after = plan(&slots, &keys(&["k2"]), None);
        let changes = reconcile(&running, &after);
        assert_eq!(
            changes.stop,
            vec![
                ConnectionId::new(track("0"), 0),
                ConnectionId::new(track("9"), 0)
            ]
        );
        assert_eq!(changes.start, vec![ConnectionId::new(track("0"), 0)]);
        assert!(changes.update.is_empty());
    }
}
