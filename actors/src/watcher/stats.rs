//! What the rule watcher has done, shared with status, readiness and metrics without asking
//! the actor (which may be busy waiting on Redis).

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::Relaxed};
use std::sync::Mutex;
use std::time::{SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};

/// Live counters of the watcher. Share it as `Arc<WatcherStats>`; read it with [`snapshot`].
///
/// [`snapshot`]: WatcherStats::snapshot
#[derive(Debug, Default)]
pub struct WatcherStats {
    /// Full syncs that succeeded (the first one included).
    syncs: AtomicU64,
    /// Connected sessions that ended on an error (Redis lost, timeout, ...).
    failures: AtomicU64,
    /// Notices received on the notify channel.
    notices: AtomicU64,
    /// Unix time in milliseconds of the last successful full sync (0: never).
    last_sync_ms: AtomicU64,
    /// Subscribed and synced, and the session has not ended since.
    connected: AtomicBool,
    slots: AtomicU64,
    rules: AtomicU64,
    rule_errors: AtomicU64,
    last_error: Mutex<Option<String>>,
}

/// A copy of [`WatcherStats`] at one moment.
///
/// Also the counters of `/status`'s `watcher` section (`status::WatcherReport`), inline and
/// under the names given here; the report shows the sync time as seconds and an age instead.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct WatcherStatsSnapshot {
    pub syncs: u64,
    pub failures: u64,
    pub notices: u64,
    /// Unix time in milliseconds of the last successful full sync.
    #[serde(skip)]
    pub last_sync_ms: Option<u64>,
    pub connected: bool,
    /// Slots, loadable rules and unloadable rules as of the last sync.
    pub slots: u64,
    pub rules: u64,
    pub rule_errors: u64,
    pub last_error: Option<String>,
}

impl WatcherStats {
    /// A full sync succeeded with these counts.
    pub fn record_sync(&self, slots: u64, rules: u64, rule_errors: u64) {
        self.slots.store(slots, Relaxed);
        self.rules.store(rules, Relaxed);
        self.rule_errors.store(rule_errors, Relaxed);
        self.last_sync_ms.store(unix_millis(), Relaxed);
        self.connected.store(true, Relaxed);
        self.syncs.fetch_add(1, Relaxed);
    }

    pub fn record_notice(&self) {
        self.notices.fetch_add(1, Relaxed);
    }

    /// The session ended (or could not start) because of `error`; it must never carry the
    /// Redis URL's password.
    pub fn record_failure(&self, error: &str) {
        self.connected.store(false, Relaxed);
        self.failures.fetch_add(1, Relaxed);
        *self.last_error.lock().unwrap_or_else(|p| p.into_inner()) = Some(error.to_owned());
    }

    pub fn snapshot(&self) -> WatcherStatsSnapshot {
        WatcherStatsSnapshot {
            syncs: self.syncs.load(Relaxed),
            failures: self.failures.load(Relaxed),
            notices: self.notices.load(Relaxed),
            last_sync_ms: Some(self.last_sync_ms.load(Relaxed)).filter(|ms| *ms > 0),
            connected: self.connected.load(Relaxed),
            slots: self.slots.load(Relaxed),
            rules: self.rules.load(Relaxed),
            rule_errors: self.rule_errors.load(Relaxed),
            last_error: self
                .last_error
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .clone(),
        }
    }
}

fn unix_millis() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_failure_disconnects_and_a_sync_reconnects() {
        let stats = WatcherStats::default();
        assert_eq!(stats.snapshot().last_sync_ms, None);
        stats.record_sync(2, 10, 1);
        stats.record_failure("Redis error: connection refused");
        let snap = stats.snapshot();
        assert!(!snap.connected);
        assert_eq!(
            (snap.syncs, snap.failures, snap.rules, snap.rule_errors),
            (1, 1, 10, 1)
        );
        assert!(snap.last_sync_ms.is_some());
        stats.record_sync(2, 11, 0);
        assert!(stats.snapshot().connected);
    }
}
