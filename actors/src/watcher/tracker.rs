//! The watcher's memory of the rules it last reported, so it tells the supervisor only about
//! real changes, and logs each rule error once per change instead of on every resync.

use std::collections::BTreeMap;

use traptor_core::{Rule, RuleError, RuleSet, SlotId};

use crate::messages::{RulesChanged, RulesSnapshot};

/// Last-seen rules per slot. Pure: fed with what a source loaded, it answers what changed.
#[derive(Debug, Default)]
pub struct RuleTracker {
    last_seen: BTreeMap<SlotId, RuleSet>,
}

impl RuleTracker {
    pub fn new() -> Self {
        Self::default()
    }

    /// Records the freshly loaded rules of one slot (an empty set when the slot has no rule
    /// left) and returns the message to send, or `None` when nothing changed.
    pub fn update_slot(&mut self, slot: SlotId, loaded: RuleSet) -> Option<RulesChanged> {
        let unchanged = match self.last_seen.get(&slot) {
            Some(previous) => same_rule_set(previous, &loaded),
            None => loaded.rules.is_empty() && loaded.errors.is_empty(),
        };
        if unchanged {
            return None;
        }
        log_rule_errors(&slot, &loaded.errors);
        let message = RulesChanged {
            slot: slot.clone(),
            rules: loaded.rules.clone(),
            errors: loaded.errors.clone(),
        };
        if loaded.rules.is_empty() && loaded.errors.is_empty() {
            self.last_seen.remove(&slot);
        } else {
            self.last_seen.insert(slot, loaded);
        }
        Some(message)
    }

    /// Records a full sync: every slot found. Slots seen before but missing now are emptied.
    /// Returns the slots that changed (for logging) and the snapshot of everything.
    pub fn replace_all(
        &mut self,
        loaded: BTreeMap<SlotId, RuleSet>,
    ) -> (Vec<SlotId>, RulesSnapshot) {
        let mut changed = self.empty_slots_not_in(&|slot| loaded.contains_key(slot));
        for (slot, set) in loaded {
            if self.update_slot(slot.clone(), set).is_some() {
                changed.push(slot);
            }
        }
        (changed, self.snapshot())
    }

    /// The first half of a full sync: empties every known slot that `present` no longer
    /// lists, and returns those that changed. The caller then gives each present slot to
    /// [`RuleTracker::update_slot`], one at a time.
    pub fn empty_slots_not_in(&mut self, present: &dyn Fn(&SlotId) -> bool) -> Vec<SlotId> {
        let gone: Vec<SlotId> = self
            .last_seen
            .keys()
            .filter(|slot| !present(slot))
            .cloned()
            .collect();
        gone.into_iter()
            .filter(|slot| self.update_slot(slot.clone(), RuleSet::default()).is_some())
            .collect()
    }

    /// Everything currently known, one entry per slot with rules (or errors).
    pub fn snapshot(&self) -> RulesSnapshot {
        RulesSnapshot {
            slots: self
                .last_seen
                .iter()
                .map(|(slot, set)| RulesChanged {
                    slot: slot.clone(),
                    rules: set.rules.clone(),
                    errors: set.errors.clone(),
                })
                .collect(),
        }
    }

    /// How many slots and rules are known, for log lines.
    pub fn counts(&self) -> (usize, usize) {
        let rules = self.last_seen.values().map(|set| set.rules.len()).sum();
        (self.last_seen.len(), rules)
    }
}

/// Equal rules and errors; the order of a hash's fields does not matter (Redis may return
/// them in another order after the hash was rewritten, which is no change of the rule).
pub fn same_rule_set(a: &RuleSet, b: &RuleSet) -> bool {
    a.errors == b.errors
        && a.rules.len() == b.rules.len()
        && a.rules.iter().zip(&b.rules).all(|(x, y)| same_rule(x, y))
}

/// Same identity, term and fields, whatever the field order.
pub fn same_rule(a: &Rule, b: &Rule) -> bool {
    if a.rule_id != b.rule_id
        || a.value != b.value
        || a.term != b.term
        || a.orig_type != b.orig_type
    {
        return false;
    }
    let mut fa: Vec<_> = a.fields.iter().collect();
    let mut fb: Vec<_> = b.fields.iter().collect();
    fa.sort();
    fb.sort();
    fa == fb
}

/// Same rules, whatever the field order (for callers comparing rule lists, e.g. the supervisor).
pub fn same_rules(a: &[Rule], b: &[Rule]) -> bool {
    a.len() == b.len() && a.iter().zip(b).all(|(x, y)| same_rule(x, y))
}

fn log_rule_errors(slot: &SlotId, errors: &[RuleError]) {
    for error in errors {
        tracing::warn!(
            slot = %slot,
            rule_id = error.rule_id.as_deref().unwrap_or("?"),
            "rule not collected: {error}"
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use traptor_core::StreamType;

    type Hash = (Option<String>, Vec<(String, String)>);

    fn hash(id: &str, value: &str, extra: &[(&str, &str)]) -> Hash {
        let mut fields = vec![
            ("rule_id".to_string(), id.to_string()),
            ("value".to_string(), value.to_string()),
        ];
        fields.extend(extra.iter().map(|(k, v)| (k.to_string(), v.to_string())));
        (Some(format!("traptor-track:0:{id}")), fields)
    }

    fn track_set(hashes: Vec<Hash>) -> RuleSet {
        RuleSet::from_hashes(hashes, Some(StreamType::Track))
    }

    fn slot(id: &str) -> SlotId {
        SlotId::new(StreamType::Track, id)
    }

    #[test]
    fn reports_a_slot_once_then_only_when_it_changes() {
        let mut tracker = RuleTracker::new();
        let first = tracker.update_slot(slot("0"), track_set(vec![hash("1", "happy", &[])]));
        assert_eq!(
            first.expect("a new slot is a change").rules[0].value,
            "happy"
        );
        assert!(tracker
            .update_slot(slot("0"), track_set(vec![hash("1", "happy", &[])]))
            .is_none());
        let changed = tracker.update_slot(slot("0"), track_set(vec![hash("1", "sad", &[])]));
        assert_eq!(
            changed.expect("a new value is a change").rules[0].value,
            "sad"
        );
    }

    #[test]
    fn field_order_is_not_a_change_but_a_field_value_is() {
        let mut tracker = RuleTracker::new();
        tracker.update_slot(
            slot("0"),
            track_set(vec![hash("1", "happy", &[("tag", "a"), ("appid", "x")])]),
        );
        let reordered = track_set(vec![hash("1", "happy", &[("appid", "x"), ("tag", "a")])]);
        assert!(tracker.update_slot(slot("0"), reordered).is_none());
        let retagged = track_set(vec![hash("1", "happy", &[("appid", "x"), ("tag", "b")])]);
        assert!(tracker.update_slot(slot("0"), retagged).is_some());
    }

    #[test]
    fn an_emptied_slot_is_reported_once_as_empty() {
        let mut tracker = RuleTracker::new();
        tracker.update_slot(slot("0"), track_set(vec![hash("1", "happy", &[])]));
        let emptied = tracker
            .update_slot(slot("0"), RuleSet::default())
            .expect("emptied is a change");
        assert!(emptied.rules.is_empty());
        assert!(tracker.update_slot(slot("0"), RuleSet::default()).is_none());
        assert!(tracker.snapshot().slots.is_empty());
    }

    #[test]
    fn a_new_empty_slot_is_no_change() {
        let mut tracker = RuleTracker::new();
        assert!(tracker.update_slot(slot("9"), RuleSet::default()).is_none());
    }

    #[test]
    fn a_full_sync_empties_vanished_slots_and_reports_only_changes() {
        let mut tracker = RuleTracker::new();
        tracker.update_slot(slot("0"), track_set(vec![hash("1", "happy", &[])]));
        tracker.update_slot(slot("1"), track_set(vec![hash("2", "sad", &[])]));
        let mut loaded = BTreeMap::new();
        loaded.insert(slot("1"), track_set(vec![hash("2", "sad", &[])]));
        loaded.insert(slot("2"), track_set(vec![hash("3", "new", &[])]));
        let (changed, snapshot) = tracker.replace_all(loaded);
        assert_eq!(changed, vec![slot("0"), slot("2")]);
        let slots: Vec<_> = snapshot.slots.iter().map(|s| s.slot.clone()).collect();
        assert_eq!(slots, vec![slot("1"), slot("2")]);
        assert_eq!(tracker.counts(), (2, 2));
    }

    #[test]
    fn a_new_rule_error_is_a_change_so_it_gets_logged_and_reported() {
        let mut tracker = RuleTracker::new();
        tracker.update_slot(slot("0"), track_set(vec![hash("1", "happy", &[])]));
        let with_error = track_set(vec![hash("1", "happy", &[]), hash("2", "a,b", &[])]);
        let changed = tracker
            .update_slot(slot("0"), with_error)
            .expect("a new error is a change");
        assert_eq!(changed.errors.len(), 1);
        assert_eq!(changed.errors[0].rule_id.as_deref(), Some("2"));
    }
}
