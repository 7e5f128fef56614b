//! Where the status server finds each running stream's counters.
//!
//! The supervisor knows connections and states but not their counters; the stream spawner
//! registers every stream it starts here, so `/status` and `/metrics` read live counters
//! without asking any stream actor.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use traptor_core::plan::ConnectionId;
use traptor_core::SlotId;

use crate::stream::{StreamStats, StreamStatsSnapshot};

/// Connection id (`track:0`, `track:0/1`) → the counters of the stream last started for it.
/// Cheap to clone; every clone is the same registry.
#[derive(Debug, Clone, Default)]
pub struct StreamRegistry {
    inner: Arc<Mutex<Inner>>,
}

#[derive(Debug, Default)]
struct Inner {
    streams: BTreeMap<String, Registered>,
    /// Replaced or forgotten streams whose counters a reader of [`StreamRegistry::take_readings`]
    /// has not seen final yet (`None` while nobody asked for readings).
    retired: Option<Vec<(String, Registered)>>,
}

/// Retired streams kept for the reader at most; beyond it the oldest are dropped.
const MAX_RETIRED: usize = 10_000;

impl Inner {
    fn retire(&mut self, connection: String, registered: Registered) {
        if let Some(retired) = &mut self.retired {
            if retired.len() >= MAX_RETIRED {
                retired.remove(0);
            }
            retired.push((connection, registered));
        }
    }
}

#[derive(Debug)]
struct Registered {
    key: String,
    slot: SlotId,
    generation: u64,
    stats: Arc<StreamStats>,
}

/// Numbers the registrations of the process, so no two streams share a generation.
static REGISTRATIONS: AtomicU64 = AtomicU64::new(0);

/// One registered stream's counters at one moment, for exporters that compare successive
/// readings (see `original_stats`).
#[derive(Debug, Clone)]
pub struct StreamReading {
    /// `track:0`, `track:0/1`.
    pub connection: String,
    pub slot: SlotId,
    /// Differs between two streams started one after the other for the same connection, so
    /// that a reader knows the counters started again from zero.
    pub generation: u64,
    pub stats: StreamStatsSnapshot,
}

impl StreamRegistry {
    /// Records the stream just started for `connection` on API key `key` (replacing the
    /// counters of an earlier stream of the same connection).
    pub fn register(&self, connection: &ConnectionId, key: &str, stats: Arc<StreamStats>) {
        let registered = Registered {
            key: key.to_owned(),
            slot: connection.slot.clone(),
            generation: REGISTRATIONS.fetch_add(1, Ordering::Relaxed),
            stats,
        };
        let mut inner = self.lock();
        let id = connection.to_string();
        if let Some(replaced) = inner.streams.insert(id.clone(), registered) {
            inner.retire(id, replaced);
        }
    }

    /// The counters of `connection`'s stream, if one was started for it on `key`.
    pub fn snapshot(&self, connection: &str, key: &str) -> Option<StreamStatsSnapshot> {
        let inner = self.lock();
        let registered = inner.streams.get(connection).filter(|r| r.key == key)?;
        Some(registered.stats.snapshot())
    }

    /// The counters of every stream, for one reader that compares successive readings: the
    /// registered streams, and also those replaced or forgotten since the last call, until a
    /// reading of theirs is final (the stream has ended), so that no count is missed. The first
    /// call starts keeping the retired streams.
    pub fn take_readings(&self) -> Vec<StreamReading> {
        let reading = |connection: &String, r: &Registered| StreamReading {
            connection: connection.clone(),
            slot: r.slot.clone(),
            generation: r.generation,
            stats: r.stats.snapshot(),
        };
        let mut inner = self.lock();
        let mut readings = Vec::new();
        let retired = inner.retired.get_or_insert_with(Vec::new);
        retired.retain(|(connection, r)| {
            // Counted after the snapshot: a stream that ended is read once more, then dropped.
            let ended = Arc::strong_count(&r.stats) == 1;
            readings.push(reading(connection, r));
            !ended
        });
        readings.extend(inner.streams.iter().map(|(c, r)| reading(c, r)));
        readings
    }

    /// Forgets streams that have ended (nothing but the registry holds their counters) and
    /// whose connection is no longer planned, so the registry does not grow with re-plans.
    pub fn forget_ended(&self, planned: impl Fn(&str) -> bool) {
        let mut inner = self.lock();
        let forgotten: Vec<String> = inner
            .streams
            .iter()
            .filter(|(id, r)| Arc::strong_count(&r.stats) == 1 && !planned(id))
            .map(|(id, _)| id.clone())
            .collect();
        for id in forgotten {
            if let Some(registered) = inner.streams.remove(&id) {
                inner.retire(id, registered);
            }
        }
    }

    pub fn len(&self) -> usize {
        self.lock().streams.len()
    }

    pub fn is_empty(&self) -> bool {
        self.lock().streams.is_empty()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

#[cfg(test)]
mod tests {
    use traptor_core::{SlotId, StreamType};

    use super::*;

    fn connection(part: u32) -> ConnectionId {
        ConnectionId::new(SlotId::new(StreamType::Track, "0"), part)
    }

    #[test]
    fn counters_are_found_by_connection_and_key() {
        let registry = StreamRegistry::default();
        let stats = Arc::new(StreamStats::default());
        stats.keep_alive();
        registry.register(&connection(1), "k1", stats.clone());
        assert_eq!(registry.snapshot("track:0/1", "k1").unwrap().keep_alives, 1);
        assert!(
            registry.snapshot("track:0/1", "k2").is_none(),
            "another key's stream"
        );
        assert!(registry.snapshot("track:0", "k1").is_none());
    }

    #[test]
    fn only_ended_streams_of_unplanned_connections_are_forgotten() {
        let registry = StreamRegistry::default();
        let running = Arc::new(StreamStats::default());
        registry.register(&connection(0), "k1", running.clone());
        registry.register(&connection(1), "k2", Arc::new(StreamStats::default()));
        registry.register(&connection(2), "k3", Arc::new(StreamStats::default()));
        registry.forget_ended(|id| id == "track:0/2");
        assert!(
            registry.snapshot("track:0", "k1").is_some(),
            "still running"
        );
        assert!(
            registry.snapshot("track:0/1", "k2").is_none(),
            "ended, not planned"
        );
        assert!(
            registry.snapshot("track:0/2", "k3").is_some(),
            "ended but planned"
        );
        assert_eq!(registry.len(), 2);
    }

    #[test]
    fn readings_name_the_slot_and_see_a_replaced_stream_until_it_has_ended() {
        let registry = StreamRegistry::default();
        let first = Arc::new(StreamStats::default());
        first.rules_matched(["7"]);
        registry.register(&connection(1), "k1", first.clone());
        let before = registry.take_readings();
        assert_eq!(before.len(), 1);
        assert_eq!(before[0].connection, "track:0/1");
        assert_eq!(before[0].slot, SlotId::new(StreamType::Track, "0"));
        assert_eq!(before[0].stats.rule_matches["7"], 1);

        // Replaced while the old stream still hands over its last tweets.
        registry.register(&connection(1), "k1", Arc::new(StreamStats::default()));
        first.rules_matched(["7"]);
        let during = registry.take_readings();
        assert_eq!(during.len(), 2, "{during:?}");
        assert_eq!(during[0].generation, before[0].generation);
        assert_eq!(during[0].stats.rule_matches["7"], 2);
        assert_ne!(during[1].generation, before[0].generation);
        assert!(during[1].stats.rule_matches.is_empty());

        // The old stream ends: read once more (final), then no more.
        first.rules_matched(["7"]);
        drop(first);
        let last = registry.take_readings();
        assert_eq!(last.len(), 2);
        assert_eq!(last[0].stats.rule_matches["7"], 3);
        assert_eq!(registry.take_readings().len(), 1);
    }

    #[test]
    fn a_forgotten_stream_is_read_once_more_by_the_reader() {
        let registry = StreamRegistry::default();
        let stats = Arc::new(StreamStats::default());
        registry.register(&connection(0), "k1", stats.clone());
        assert_eq!(registry.take_readings().len(), 1);
        stats.rules_matched(["1"]);
        drop(stats);
        registry.forget_ended(|_| false);
        assert!(registry.is_empty());
        let last = registry.take_readings();
        assert_eq!(last.len(), 1);
        assert_eq!(last[0].stats.rule_matches["1"], 1);
        assert!(registry.take_readings().is_empty());
    }

    #[test]
    fn nothing_is_kept_for_a_reader_that_never_asked() {
        let registry = StreamRegistry::default();
        for _ in 0..3 {
            registry.register(&connection(0), "k1", Arc::new(StreamStats::default()));
        }
        assert!(registry.lock().retired.is_none());
    }
}
