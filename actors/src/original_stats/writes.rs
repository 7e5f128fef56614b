//! What to send to Redis for what was counted: the original traptor's key shapes and member
//! layout, planned as plain values so that they are tested without Redis.

use std::collections::BTreeMap;

use super::counts::Counted;

/// One Redis command of a cycle.
#[derive(Debug, Clone, PartialEq)]
pub enum Write {
    /// `ZADD key score member [score member …]`.
    Add {
        key: String,
        members: Vec<(f64, String)>,
    },
    /// `ZREMRANGEBYSCORE key -inf (before`: members older than the window.
    Trim { key: String, before: f64 },
    /// `EXPIRE key seconds`: a key that gets no new member disappears once its window is over.
    Expire { key: String, seconds: u64 },
}

/// Members of one `ZADD`, so that a burst of matches does not become one huge command.
const MEMBERS_PER_ADD: usize = 1_000;

/// `stats:<type>:<id>:<rule_id>`.
pub fn rule_key(slot: &traptor_core::SlotId, rule_id: &str) -> String {
    format!("stats:{slot}:{rule_id}")
}

/// `limit:<type>:<id>`.
pub fn limit_key(slot: &traptor_core::SlotId) -> String {
    format!("limit:{slot}")
}

/// The keys written recently, and when last, so that they are trimmed until they are empty.
#[derive(Debug, Default)]
pub struct KnownKeys {
    last_written: BTreeMap<String, f64>,
}

impl KnownKeys {
    pub fn len(&self) -> usize {
        self.last_written.len()
    }

    pub fn is_empty(&self) -> bool {
        self.last_written.is_empty()
    }
}

/// The commands for `counted` at unix time `now`.
///
/// A rule's matches become one member each, as the original's `ZADD key {now: now}` per
/// match did, so `ZCARD` (or `ZCOUNT` over a time range) still gives the number of matches:
/// the members of one count are its time minus 0, 1, 2 … microseconds (written with six
/// decimals, as the original's `time.time()` members), and counts of the same
/// key and time (two connections of one slot) are added up first so that no member repeats.
/// A `limit` notice is one member, its count, scored by its time (the original's first
/// layout; its later one scored by the count and so was trimmed at once).
pub fn plan(
    counted: &[Counted],
    known: &mut KnownKeys,
    now: f64,
    window_secs: u64,
    interval_secs: u64,
) -> Vec<Write> {
    let mut matches: BTreeMap<(String, u64), u64> = BTreeMap::new();
    let mut limits: BTreeMap<String, Vec<(f64, String)>> = BTreeMap::new();
    for item in counted {
        match item {
            Counted::Matches {
                slot,
                rule_id,
                count,
                at,
            } => {
                *matches
                    .entry((rule_key(slot, rule_id), at.to_bits()))
                    .or_default() += count;
            }
            Counted::Limit {
                slot,
                undelivered,
                at,
            } => {
                limits
                    .entry(limit_key(slot))
                    .or_default()
                    .push((*at, undelivered.to_string()));
            }
        }
    }

    let mut writes = Vec::new();
    let mut written: BTreeMap<String, ()> = BTreeMap::new();
    for ((key, at_bits), count) in matches {
        // Whole microseconds, so that members are distinct whatever the float rounding.
        let micros = (f64::from_bits(at_bits) * 1e6).round() as i64;
        let members: Vec<(f64, String)> = (0..count as i64)
            .map(|i| {
                let at = micros - i;
                let member = format!(
                    "{}.{:06}",
                    at.div_euclid(1_000_000),
                    at.rem_euclid(1_000_000)
                );
                (at as f64 / 1e6, member)
            })
            .collect();
        for chunk in members.chunks(MEMBERS_PER_ADD) {
            writes.push(Write::Add {
                key: key.clone(),
                members: chunk.to_vec(),
            });
        }
        written.insert(key, ());
    }
    for (key, members) in limits {
        writes.push(Write::Add {
            key: key.clone(),
            members,
        });
        written.insert(key, ());
    }

    for key in written.keys() {
        known.last_written.insert(key.clone(), now);
        writes.push(Write::Expire {
            key: key.clone(),
            seconds: window_secs + interval_secs,
        });
    }
    let window = window_secs as f64;
    known.last_written.retain(|_, last| now - *last <= window);
    for key in known.last_written.keys() {
        writes.push(Write::Trim {
            key: key.clone(),
            before: now - window,
        });
    }
    writes
}

/// The commands as one Redis pipeline.
pub fn pipeline(writes: &[Write]) -> redis::Pipeline {
    let mut pipe = redis::pipe();
    for write in writes {
        match write {
            Write::Add { key, members } => {
                let mut cmd = redis::cmd("ZADD");
                cmd.arg(key);
                for (score, member) in members {
                    cmd.arg(format!("{score:.6}")).arg(member);
                }
                pipe.add_command(cmd).ignore();
            }
            Write::Trim { key, before } => {
                pipe.cmd("ZREMRANGEBYSCORE")
                    .arg(key)
                    .arg("-inf")
                    .arg(format!("({before:.6}"))
                    .ignore();
            }
            Write::Expire { key, seconds } => {
                pipe.cmd("EXPIRE").arg(key).arg(*seconds).ignore();
            }
        }
    }
    pipe
}

#[cfg(test)]
mod tests {
    use traptor_core::{SlotId, StreamType};

    use super::*;

    fn track0() -> SlotId {
        SlotId::new(StreamType::Track, "0")
    }

    fn adds(writes: &[Write]) -> Vec<(String, Vec<(f64, String)>)> {
        writes
            .iter()
            .filter_map(|w| match w {
                Write::Add { key, members } => Some((key.clone(), members.clone())),
                _ => None,
            })
            .collect()
    }

    #[test]
    fn each_match_is_one_distinct_member_scored_by_its_time() {
        let counted = [
            Counted::Matches {
                slot: track0(),
                rule_id: "12".into(),
                count: 2,
                at: 1000.5,
            },
            // Another connection of the same slot, same reading.
            Counted::Matches {
                slot: track0(),
                rule_id: "12".into(),
                count: 1,
                at: 1000.5,
            },
        ];
        let writes = plan(&counted, &mut KnownKeys::default(), 1000.5, 900, 5);
        let adds = adds(&writes);
        assert_eq!(adds.len(), 1);
        let (key, members) = &adds[0];
        assert_eq!(key, "stats:track:0:12");
        let names: Vec<&str> = members.iter().map(|(_, m)| m.as_str()).collect();
        assert_eq!(names, ["1000.500000", "1000.499999", "1000.499998"]);
        assert!(members
            .iter()
            .all(|(score, member)| format!("{score:.6}") == *member));
        assert!(writes.contains(&Write::Expire {
            key: "stats:track:0:12".into(),
            seconds: 905
        }));
        assert!(writes.contains(&Write::Trim {
            key: "stats:track:0:12".into(),
            before: 100.5
        }));
    }

    #[test]
    fn members_stay_distinct_at_todays_unix_times() {
        let at = 1_764_140_000.123_456_7;
        let counted = [Counted::Matches {
            slot: track0(),
            rule_id: "1".into(),
            count: 10_000,
            at,
        }];
        let adds = adds(&plan(&counted, &mut KnownKeys::default(), at, 900, 5));
        let mut all: Vec<&String> = adds
            .iter()
            .flat_map(|(_, m)| m.iter().map(|(_, n)| n))
            .collect();
        assert_eq!(all[0], "1764140000.123457");
        all.sort();
        all.dedup();
        assert_eq!(all.len(), 10_000);
    }

    #[test]
    fn a_burst_is_split_into_commands_of_bounded_size() {
        let counted = [Counted::Matches {
            slot: track0(),
            rule_id: "1".into(),
            count: 2_500,
            at: 50.0,
        }];
        let adds = adds(&plan(&counted, &mut KnownKeys::default(), 50.0, 900, 5));
        let sizes: Vec<usize> = adds.iter().map(|(_, m)| m.len()).collect();
        assert_eq!(sizes, [1_000, 1_000, 500]);
        let mut all: Vec<&String> = adds
            .iter()
            .flat_map(|(_, m)| m.iter().map(|(_, n)| n))
            .collect();
        all.sort();
        all.dedup();
        assert_eq!(all.len(), 2_500, "no member repeats");
    }

    #[test]
    fn a_limit_notice_is_its_count_scored_by_its_time() {
        let counted = [Counted::Limit {
            slot: track0(),
            undelivered: 1234,
            at: 77.25,
        }];
        let adds = adds(&plan(&counted, &mut KnownKeys::default(), 77.25, 900, 5));
        assert_eq!(
            adds,
            [(
                "limit:track:0".to_string(),
                vec![(77.25, "1234".to_string())]
            )]
        );
    }

    #[test]
    fn keys_are_trimmed_after_their_last_write_until_the_window_is_over() {
        let mut known = KnownKeys::default();
        let counted = [Counted::Matches {
            slot: track0(),
            rule_id: "1".into(),
            count: 1,
            at: 0.0,
        }];
        plan(&counted, &mut known, 0.0, 60, 5);
        let later = plan(&[], &mut known, 30.0, 60, 5);
        assert_eq!(
            later,
            [Write::Trim {
                key: "stats:track:0:1".into(),
                before: -30.0
            }]
        );
        assert!(plan(&[], &mut known, 61.0, 60, 5).is_empty());
        assert!(known.is_empty());
    }
}
