//! From successive readings of the streams' counters to what happened since the last one: how
//! many tweets each rule matched, and which `limit` notices arrived. Pure, so that counter
//! resets (a restarted stream, a rule taken off and put back) are tested without Redis.

use std::collections::{BTreeMap, HashMap};

use traptor_core::SlotId;

use crate::status::StreamReading;

/// Something to add to the original's counters.
#[derive(Debug, Clone, PartialEq)]
pub enum Counted {
    /// `count` tweets of `slot` matched rule `rule_id` since the last reading.
    Matches {
        slot: SlotId,
        rule_id: String,
        count: u64,
        /// Unix time of the reading, in seconds.
        at: f64,
    },
    /// A connection of `slot` received a `limit` notice that now says `undelivered`.
    Limit {
        slot: SlotId,
        undelivered: u64,
        at: f64,
    },
}

impl Counted {
    pub fn at(&self) -> f64 {
        match self {
            Counted::Matches { at, .. } | Counted::Limit { at, .. } => *at,
        }
    }
}

/// What was last read of one connection's stream.
#[derive(Debug)]
struct LastReading {
    rule_matches: BTreeMap<String, u64>,
    limit_undelivered: u64,
}

/// Remembers the last reading of every stream and turns the next one into [`Counted`].
#[derive(Debug, Default)]
pub struct CountTracker {
    /// By connection and generation: a replaced stream may still be read beside its successor.
    last: HashMap<(String, u64), LastReading>,
}

impl CountTracker {
    /// What the counters say happened since the previous call. A stream seen for the first
    /// time, or restarted (a new generation), counts from zero; a rule counter that went down
    /// was reset (the rule left the connection and came back) and counts from zero too.
    pub fn update(&mut self, readings: Vec<StreamReading>, at: f64) -> Vec<Counted> {
        let mut counted = Vec::new();
        let mut seen = HashMap::with_capacity(readings.len());
        for reading in readings {
            let id = (reading.connection, reading.generation);
            let previous = self.last.remove(&id);
            for (rule_id, &now) in &reading.stats.rule_matches {
                let before = previous
                    .as_ref()
                    .and_then(|last| last.rule_matches.get(rule_id).copied())
                    .filter(|before| *before <= now)
                    .unwrap_or(0);
                if now > before {
                    counted.push(Counted::Matches {
                        slot: reading.slot.clone(),
                        rule_id: rule_id.clone(),
                        count: now - before,
                        at,
                    });
                }
            }
            let undelivered = reading.stats.limit_undelivered;
            let previous_limit = previous.as_ref().map_or(0, |last| last.limit_undelivered);
            if undelivered != previous_limit && undelivered > 0 {
                counted.push(Counted::Limit {
                    slot: reading.slot.clone(),
                    undelivered,
                    at,
                });
            }
            seen.insert(
                id,
                LastReading {
                    rule_matches: reading.stats.rule_matches,
                    limit_undelivered: undelivered,
                },
            );
        }
        // Streams no longer read are forgotten with the rest of `self.last`.
        self.last = seen;
        counted
    }
}

#[cfg(test)]
mod tests {
    use traptor_core::StreamType;

    use super::*;
    use crate::stream::StreamStatsSnapshot;

    fn reading(
        connection: &str,
        generation: u64,
        matches: &[(&str, u64)],
        limit: u64,
    ) -> StreamReading {
        StreamReading {
            connection: connection.into(),
            slot: SlotId::new(StreamType::Track, "0"),
            generation,
            stats: StreamStatsSnapshot {
                rule_matches: matches.iter().map(|(id, n)| (id.to_string(), *n)).collect(),
                limit_undelivered: limit,
                ..StreamStatsSnapshot::default()
            },
        }
    }

    fn matches(counted: &[Counted]) -> Vec<(String, u64)> {
        counted
            .iter()
            .filter_map(|c| match c {
                Counted::Matches { rule_id, count, .. } => Some((rule_id.clone(), *count)),
                Counted::Limit { .. } => None,
            })
            .collect()
    }

    #[test]
    fn only_what_was_added_since_the_last_reading_is_counted() {
        let mut tracker = CountTracker::default();
        let first = tracker.update(vec![reading("track:0", 1, &[("1", 3), ("2", 1)], 0)], 10.0);
        assert_eq!(matches(&first), [("1".into(), 3), ("2".into(), 1)]);
        assert!(matches!(first[0], Counted::Matches { at, .. } if at == 10.0));
        let second = tracker.update(vec![reading("track:0", 1, &[("1", 5), ("2", 1)], 0)], 15.0);
        assert_eq!(matches(&second), [("1".into(), 2)]);
        assert!(tracker
            .update(vec![reading("track:0", 1, &[("1", 5), ("2", 1)], 0)], 20.0)
            .is_empty());
    }

    #[test]
    fn a_restarted_stream_or_a_reset_rule_counts_from_zero() {
        let mut tracker = CountTracker::default();
        tracker.update(vec![reading("track:0", 1, &[("1", 9), ("2", 4)], 0)], 1.0);
        // Same connection, new stream: its 2 matches are new even though 2 < 9.
        let restarted = tracker.update(vec![reading("track:0", 2, &[("1", 2)], 0)], 2.0);
        assert_eq!(matches(&restarted), [("1".into(), 2)]);
        // Rule 1 taken off the connection and put back: its counter went down.
        let reset = tracker.update(vec![reading("track:0", 2, &[("1", 1)], 0)], 3.0);
        assert_eq!(matches(&reset), [("1".into(), 1)]);
    }

    #[test]
    fn connections_are_counted_apart_and_forgotten_when_gone() {
        let mut tracker = CountTracker::default();
        let both = tracker.update(
            vec![
                reading("track:0", 1, &[("1", 2)], 0),
                reading("track:0/1", 2, &[("1", 3)], 0),
            ],
            1.0,
        );
        assert_eq!(matches(&both), [("1".into(), 2), ("1".into(), 3)]);
        tracker.update(vec![reading("track:0", 1, &[("1", 2)], 0)], 2.0);
        // track:0/1 was forgotten: when it comes back, everything it has counts.
        let back = tracker.update(
            vec![
                reading("track:0", 1, &[("1", 2)], 0),
                reading("track:0/1", 2, &[("1", 3)], 0),
            ],
            3.0,
        );
        assert_eq!(matches(&back), [("1".into(), 3)]);
    }

    #[test]
    fn a_limit_notice_is_counted_when_its_count_changes() {
        let mut tracker = CountTracker::default();
        assert!(tracker
            .update(vec![reading("track:0", 1, &[], 0)], 1.0)
            .is_empty());
        let first = tracker.update(vec![reading("track:0", 1, &[], 42)], 2.0);
        assert_eq!(
            first,
            [Counted::Limit {
                slot: SlotId::new(StreamType::Track, "0"),
                undelivered: 42,
                at: 2.0
            }]
        );
        assert!(tracker
            .update(vec![reading("track:0", 1, &[], 42)], 3.0)
            .is_empty());
        assert_eq!(
            tracker
                .update(vec![reading("track:0", 1, &[], 57)], 4.0)
                .len(),
            1
        );
    }
}
