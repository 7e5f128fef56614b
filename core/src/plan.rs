//! Which connections carry which rules, and which API key each connection uses.
//!
//! The planner is a pure function of the slots' rules, the key list and the previous plan:
//! - a slot's rules are ordered by rule id, grouped by their normalized term, and cut into
//!   parts of at most [`StreamType::connection_limit`] terms (rules sharing a term stay together);
//! - one key serves at most one connection (the server drops the older of two connections with
//!   the same credentials);
//! - keys are sticky: a connection that had key K in the previous plan keeps K while K is still
//!   configured, so a rule change elsewhere never moves a running stream to another key;
//! - the remaining connections take the remaining keys in key-list order, first the first part
//!   of every slot (in slot order), then the extra parts (second parts of every slot, then third
//!   parts, ...).
//!
//! Nothing is silently cut: every rule that is not on a planned connection is listed in
//! [`Plan::left_out`] with the reason, including the rules of a slot that got no key at all
//! (that slot is also named in [`Plan::slots_without_key`]).
//!
//! Parts are independent connections: when keys are removed, a running extra part keeps its
//! sticky key even if the slot's first part is left without one.
//!
//! Parts are cut by term position in rule-id order, so adding a rule with a low id to a split
//! slot shifts later terms into the next part (those parts reconnect with their new filters,
//! on the same keys).

use std::collections::{BTreeMap, HashMap, HashSet};
use std::fmt;

use crate::filter::{canonical_rule_order, Filter};
use crate::rules::{Rule, SlotId, StreamType};

/// Identifies one planned connection: a slot and, when the slot is split over several
/// connections, its part (0 first).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ConnectionId {
    pub slot: SlotId,
    pub part: u32,
}

impl ConnectionId {
    pub fn new(slot: SlotId, part: u32) -> Self {
        ConnectionId { slot, part }
    }
}

/// `track:0` for a slot's first connection, `track:0/2` for its third.
impl fmt::Display for ConnectionId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.part == 0 {
            write!(f, "{}", self.slot)
        } else {
            write!(f, "{}/{}", self.slot, self.part)
        }
    }
}

/// One connection to open: its id, the name of its API key, its rules (in rule-id order) and
/// the filter built from them.
#[derive(Debug, Clone, PartialEq)]
pub struct PlannedConnection {
    pub id: ConnectionId,
    pub key: String,
    pub rules: Vec<Rule>,
    pub filter: Filter,
}

/// A rule the plan does not collect, with the reason, so the operator can act on it.
#[derive(Debug, Clone, PartialEq)]
pub struct LeftOut {
    pub slot: SlotId,
    pub rule_id: String,
    pub value: String,
    pub reason: LeftOutReason,
}

/// Why a rule is not on any connection.
#[derive(Debug, Clone, PartialEq)]
pub enum LeftOutReason {
    /// The slot got no API key for its first connection.
    NoKeyForSlot,
    /// The slot has more terms than one connection takes and no key was free for the part that
    /// would carry this rule.
    NoKeyForExtraConnection { part: u32 },
    /// The rule is of another stream type than its slot, so no connection of the slot can send it.
    WrongStreamType { rule_type: StreamType },
}

impl LeftOutReason {
    /// Sort position, so that a slot's rules left out for one reason are listed together.
    fn rank(&self) -> u64 {
        match self {
            LeftOutReason::WrongStreamType { .. } => 0,
            LeftOutReason::NoKeyForSlot => 1,
            LeftOutReason::NoKeyForExtraConnection { part } => 1 + u64::from(*part),
        }
    }
}

impl fmt::Display for LeftOutReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            LeftOutReason::NoKeyForSlot => {
                f.write_str("no API key is free for this slot; add a key to the config or free one")
            }
            LeftOutReason::NoKeyForExtraConnection { part } => write!(
                f,
                "the slot needs an extra connection (part {part}) beyond the per-connection term limit \
                 and no API key is free for it; add a key or move rules to another slot"
            ),
            LeftOutReason::WrongStreamType { rule_type } => write!(
                f,
                "it is a {rule_type} rule; store it under a traptor-{rule_type}:<id> key"
            ),
        }
    }
}

impl fmt::Display for LeftOut {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "rule {} ({:?}) of slot {} is not collected: {}",
            self.rule_id, self.value, self.slot, self.reason
        )
    }
}

/// The rules of one slot left out for one reason, in one line: with many thousands of rules
/// left out (a slot without a key), one line per rule would flood the log at every plan.
#[derive(Debug, Clone, PartialEq)]
pub struct LeftOutGroup<'a> {
    /// The group's rules, in rule-id order (never empty).
    pub rules: &'a [LeftOut],
}

impl LeftOutGroup<'_> {
    pub fn slot(&self) -> &SlotId {
        &self.rules[0].slot
    }

    pub fn reason(&self) -> &LeftOutReason {
        &self.rules[0].reason
    }
}

/// How many rule ids a [`LeftOutGroup`] line lists before "...".
const MAX_LISTED_IDS: usize = 5;

/// `track:0: 2 rule(s) (ids 3, 401): <reason>`, listing at most a few ids.
impl fmt::Display for LeftOutGroup<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let ids: Vec<&str> = self
            .rules
            .iter()
            .take(MAX_LISTED_IDS)
            .map(|l| l.rule_id.as_str())
            .collect();
        let more = if self.rules.len() > MAX_LISTED_IDS {
            ", ..."
        } else {
            ""
        };
        write!(
            f,
            "{}: {} rule(s) (ids {}{more}): {}",
            self.slot(),
            self.rules.len(),
            ids.join(", "),
            self.reason()
        )
    }
}

/// The planner's answer: connections in [`ConnectionId`] order, and everything that could not
/// be planned.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Plan {
    pub connections: Vec<PlannedConnection>,
    /// Rules on no connection, by slot, then reason (wrong type, no key, then by part), then
    /// rule id: one slot's rules left out for one reason are next to each other.
    pub left_out: Vec<LeftOut>,
    /// Slots with rules whose first connection got no key, in slot order.
    pub slots_without_key: Vec<SlotId>,
    /// Configured keys no connection uses, in key-list order.
    pub unused_keys: Vec<String>,
}

impl Plan {
    /// [`Plan::left_out`] as one group per slot and reason, in the same order.
    pub fn left_out_groups(&self) -> Vec<LeftOutGroup<'_>> {
        self.left_out
            .chunk_by(|a, b| a.slot == b.slot && a.reason == b.reason)
            .map(|rules| LeftOutGroup { rules })
            .collect()
    }

    pub fn connection(&self, id: &ConnectionId) -> Option<&PlannedConnection> {
        self.connections
            .binary_search_by(|c| c.id.cmp(id))
            .ok()
            .map(|i| &self.connections[i])
    }

    /// The planned connections of one slot, first part first.
    pub fn connections_of<'a>(
        &'a self,
        slot: &'a SlotId,
    ) -> impl Iterator<Item = &'a PlannedConnection> + 'a {
        self.connections.iter().filter(move |c| &c.id.slot == slot)
    }

    /// A table for operators: each connection with its key and sizes, then what was left out.
    pub fn summary(&self) -> String {
        use std::fmt::Write;

        let mut out = String::new();
        let id_width = self
            .connections
            .iter()
            .map(|c| c.id.to_string().len())
            .max()
            .unwrap_or(0)
            .max(10);
        let key_width = self
            .connections
            .iter()
            .map(|c| c.key.len())
            .max()
            .unwrap_or(0)
            .max(3);
        let _ = writeln!(
            out,
            "{:<id_width$}  {:<key_width$}  {:>6}  {:>6}",
            "connection", "key", "terms", "rules"
        );
        for c in &self.connections {
            let _ = writeln!(
                out,
                "{:<id_width$}  {:<key_width$}  {:>6}  {:>6}",
                c.id.to_string(),
                c.key,
                c.filter.len(),
                c.rules.len()
            );
        }
        if self.connections.is_empty() {
            out.push_str("(no connections)\n");
        }

        if !self.left_out.is_empty() {
            let _ = writeln!(out, "rules left out: {}", self.left_out.len());
            for group in self.left_out_groups() {
                let _ = writeln!(out, "  {group}");
            }
        }
        if !self.slots_without_key.is_empty() {
            let names: Vec<String> = self
                .slots_without_key
                .iter()
                .map(ToString::to_string)
                .collect();
            let _ = writeln!(out, "slots without an API key: {}", names.join(", "));
        }
        if !self.unused_keys.is_empty() {
            let _ = writeln!(out, "unused API keys: {}", self.unused_keys.join(", "));
        }
        out
    }
}

/// A connection whose rules are known but whose key is not decided yet.
struct Part {
    id: ConnectionId,
    rules: Vec<Rule>,
    filter: Filter,
}

/// Plans every slot's connections and gives them keys; see the module doc for the policy.
pub fn plan(slots: &BTreeMap<SlotId, Vec<Rule>>, keys: &[String], previous: Option<&Plan>) -> Plan {
    let mut result = Plan::default();
    let mut parts: Vec<Part> = Vec::new();
    for (slot, rules) in slots {
        let (slot_parts, wrong_type) = split_slot(slot, rules);
        result.left_out.extend(wrong_type);
        parts.extend(slot_parts);
    }

    let key_list = unique_keys(keys);
    let key_assignment = assign_keys(&parts, &key_list, previous);

    let mut planned_ids: HashSet<&ConnectionId> = HashSet::new();
    for (part, key) in parts.iter().zip(&key_assignment) {
        if key.is_some() {
            planned_ids.insert(&part.id);
        }
    }
    let mut unplanned: Vec<LeftOut> = Vec::new();
    for (part, key) in parts.iter().zip(&key_assignment) {
        if key.is_some() {
            continue;
        }
        let reason = if part.id.part == 0 {
            result.slots_without_key.push(part.id.slot.clone());
            LeftOutReason::NoKeyForSlot
        } else {
            LeftOutReason::NoKeyForExtraConnection { part: part.id.part }
        };
        unplanned.extend(part.rules.iter().map(|r| LeftOut {
            slot: part.id.slot.clone(),
            rule_id: r.rule_id.clone(),
            value: r.value.clone(),
            reason: reason.clone(),
        }));
    }
    result.left_out.extend(unplanned);
    result.left_out.sort_by(|a, b| {
        a.slot
            .cmp(&b.slot)
            .then_with(|| a.reason.rank().cmp(&b.reason.rank()))
            .then_with(|| crate::rules::compare_rule_ids(&a.rule_id, &b.rule_id))
            .then_with(|| a.value.cmp(&b.value))
    });

    let used: HashSet<&str> = key_assignment
        .iter()
        .flatten()
        .map(|k| k.as_str())
        .collect();
    result.unused_keys = key_list
        .iter()
        .filter(|k| !used.contains(k.as_str()))
        .cloned()
        .collect();

    for (part, key) in parts.into_iter().zip(key_assignment) {
        if let Some(key) = key {
            result.connections.push(PlannedConnection {
                id: part.id,
                key,
                rules: part.rules,
                filter: part.filter,
            });
        }
    }
    result
}

/// Cuts one slot's rules into connection-sized parts; rules of another stream type come back
/// as left out.
fn split_slot(slot: &SlotId, rules: &[Rule]) -> (Vec<Part>, Vec<LeftOut>) {
    let mut ordered: Vec<&Rule> = rules.iter().collect();
    ordered.sort_by(|a, b| canonical_rule_order(a, b));

    let mut wrong_type = Vec::new();
    let mut fitting: Vec<&Rule> = Vec::with_capacity(ordered.len());
    for rule in ordered {
        let rule_type = rule.term.stream_type();
        if rule_type == slot.stream_type {
            fitting.push(rule);
        } else {
            wrong_type.push(LeftOut {
                slot: slot.clone(),
                rule_id: rule.rule_id.clone(),
                value: rule.value.clone(),
                reason: LeftOutReason::WrongStreamType { rule_type },
            });
        }
    }

    // Terms in order of their first rule; every rule goes to the part of its term.
    let limit = slot.stream_type.connection_limit();
    let mut term_index: HashMap<String, usize> = HashMap::new();
    let mut rules_by_part: Vec<Vec<Rule>> = Vec::new();
    for rule in fitting {
        let next_index = term_index.len();
        let index = *term_index
            .entry(rule.term.to_filter_value())
            .or_insert(next_index);
        let part = index / limit;
        if part == rules_by_part.len() {
            rules_by_part.push(Vec::new());
        }
        rules_by_part[part].push(rule.clone());
    }

    let parts = rules_by_part
        .into_iter()
        .enumerate()
        .map(|(part, rules)| Part {
            id: ConnectionId::new(slot.clone(), part as u32),
            filter: Filter::from_rules(slot.stream_type, &rules),
            rules,
        })
        .collect();
    (parts, wrong_type)
}

/// The configured keys without repeats (a key listed twice is still one set of credentials).
fn unique_keys(keys: &[String]) -> Vec<String> {
    let mut seen = HashSet::new();
    keys.iter()
        .filter(|k| seen.insert(k.as_str()))
        .cloned()
        .collect()
}

/// The key of each part (same order as `parts`), or `None` when no key is left for it.
fn assign_keys(parts: &[Part], keys: &[String], previous: Option<&Plan>) -> Vec<Option<String>> {
    let mut assignment: Vec<Option<String>> = vec![None; parts.len()];
    let configured: HashSet<&str> = keys.iter().map(String::as_str).collect();
    let mut taken: HashSet<String> = HashSet::new();

    if let Some(previous) = previous {
        let previous_keys: HashMap<&ConnectionId, &str> = previous
            .connections
            .iter()
            .map(|c| (&c.id, c.key.as_str()))
            .collect();
        for (assigned, part) in assignment.iter_mut().zip(parts) {
            if let Some(&key) = previous_keys.get(&part.id) {
                // `taken` guards against a malformed previous plan that gave one key twice.
                if configured.contains(key) && taken.insert(key.to_owned()) {
                    *assigned = Some(key.to_owned());
                }
            }
        }
    }

    let mut free_keys = keys.iter().filter(|k| !taken.contains(k.as_str()));
    let mut waiting: Vec<usize> = (0..parts.len())
        .filter(|&i| assignment[i].is_none())
        .collect();
    // First parts before extra parts; then by part number, then slot: every slot gets its
    // second connection before any slot gets a third.
    waiting.sort_by(|&a, &b| {
        parts[a]
            .id
            .part
            .cmp(&parts[b].id.part)
            .then_with(|| parts[a].id.slot.cmp(&parts[b].id.slot))
    });
    for i in waiting {
        match free_keys.next() {
            Some(key) => assignment[i] = Some(key.clone()),
            None => break,
        }
    }
    assignment
}

#[cfg(test)]
mod tests;
