//! Where the status server finds each running stream's counters.
//!
//! The supervisor knows connections and states but not their counters; the stream spawner
//! registers every stream it starts here, so `/status` and `/metrics` read live counters
//! without asking any stream actor.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use traptor_core::plan::ConnectionId;

use crate::stream::{StreamStats, StreamStatsSnapshot};

/// Connection id (`track:0`, `track:0/1`) → the counters of the stream last started for it.
/// Cheap to clone; every clone is the same registry.
#[derive(Debug, Clone, Default)]
pub struct StreamRegistry {
    streams: Arc<Mutex<BTreeMap<String, Registered>>>,
}

#[derive(Debug)]
struct Registered {
    key: String,
    stats: Arc<StreamStats>,
}

impl StreamRegistry {
    /// Records the stream just started for `connection` on API key `key` (replacing the
    /// counters of an earlier stream of the same connection).
    pub fn register(&self, connection: &ConnectionId, key: &str, stats: Arc<StreamStats>) {
        let registered = Registered {
            key: key.to_owned(),
            stats,
        };
        self.lock().insert(connection.to_string(), registered);
    }

    /// The counters of `connection`'s stream, if one was started for it on `key`.
    pub fn snapshot(&self, connection: &str, key: &str) -> Option<StreamStatsSnapshot> {
        let streams = self.lock();
        let registered = streams.get(connection).filter(|r| r.key == key)?;
        Some(registered.stats.snapshot())
    }

    /// Forgets streams that have ended (nothing but the registry holds their counters) and
    /// whose connection is no longer planned, so the registry does not grow with re-plans.
    pub fn forget_ended(&self, planned: impl Fn(&str) -> bool) {
        self.lock()
            .retain(|id, r| Arc::strong_count(&r.stats) > 1 || planned(id));
    }

    pub fn len(&self) -> usize {
        self.lock().len()
    }

    pub fn is_empty(&self) -> bool {
        self.lock().is_empty()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, BTreeMap<String, Registered>> {
        self.streams
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
}
