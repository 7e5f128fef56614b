//! The rule watcher: keeps the supervisor's picture of the Redis rules current.
//!
//! It loads every `traptor-<type>:<id>:*` hash, listens on the notify channel for `<type>:<id>`
//! notices, and resyncs fully every `resync_interval` and after every (re)subscribe, because
//! pub/sub drops messages while disconnected. It tells the supervisor only about slots whose
//! rules really changed ([`RulesChanged`]) and sends a [`RulesSnapshot`] after each full sync.
//! While Redis is unreachable it reconnects with backoff and keeps the last known rules: an
//! outage never looks like "all rules deleted".

pub mod stats;
pub mod tracker;

use std::sync::Arc;
use std::time::Duration;

use actix::prelude::*;
use futures_util::StreamExt;
use redis::aio::MultiplexedConnection;
use traptor_core::SlotId;

use crate::messages::{RulesChanged, RulesSnapshot};
use crate::redis_target::RedisTarget;
pub use crate::rule_store::{load_all, load_slot, load_slot_keys, scan_wanted_keys};
pub use stats::{WatcherStats, WatcherStatsSnapshot};
pub use tracker::RuleTracker;

/// Which slots this process serves (the config's slot selection), as a predicate so the
/// watcher does not depend on how the selection is written down.
pub type SlotFilter = Arc<dyn Fn(&SlotId) -> bool + Send + Sync>;

/// A filter that accepts every slot.
pub fn all_slots() -> SlotFilter {
    Arc::new(|_| true)
}

/// Everything the watcher needs to know; built from the cluster config by `app`.
#[derive(Clone)]
pub struct WatcherSettings {
    /// Where the rules are; its URL may carry a password, so only its address is logged.
    pub redis: RedisTarget,
    pub notify_channel: String,
    pub resync_interval: Duration,
    /// Bound on connecting and on every command (redis-rs' own default is 500 ms, too short
    /// for a SCAN of a large keyspace on a busy server).
    pub timeout: Duration,
    pub wanted: SlotFilter,
    /// First and longest wait between reconnection attempts.
    pub min_backoff: Duration,
    pub max_backoff: Duration,
    /// Where the watcher counts its syncs and failures, for status and readiness.
    pub stats: Arc<WatcherStats>,
}

impl WatcherSettings {
    pub fn new(redis: impl Into<RedisTarget>, notify_channel: impl Into<String>) -> Self {
        WatcherSettings {
            redis: redis.into(),
            notify_channel: notify_channel.into(),
            resync_interval: Duration::from_secs(60),
            timeout: Duration::from_secs(10),
            wanted: all_slots(),
            min_backoff: Duration::from_secs(1),
            max_backoff: Duration::from_secs(30),
            stats: Arc::default(),
        }
    }
}

impl std::fmt::Debug for WatcherSettings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WatcherSettings")
            .field("redis", &self.redis)
            .field("notify_channel", &self.notify_channel)
            .field("resync_interval", &self.resync_interval)
            .field("timeout", &self.timeout)
            .finish_non_exhaustive()
    }
}

/// Where the watcher's messages go (the supervisor, or a test's collector).
#[derive(Clone)]
pub struct RuleTargets {
    pub changed: Recipient<RulesChanged>,
    pub snapshot: Recipient<RulesSnapshot>,
}

/// The actor: owns the watch loop; stopping the actor ends it.
pub struct RuleWatcher {
    settings: WatcherSettings,
    targets: RuleTargets,
}

impl RuleWatcher {
    pub fn new(settings: WatcherSettings, targets: RuleTargets) -> Self {
        RuleWatcher { settings, targets }
    }
}

impl Actor for RuleWatcher {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Self::Context) {
        let watch = WatchLoop::new(self.settings.clone(), self.targets.clone());
        ctx.spawn(watch.run().into_actor(self).map(|_, _, ctx| ctx.stop()));
    }
}

/// Why one connected session of the loop ended.
#[derive(Debug, thiserror::Error)]
enum SessionEnd {
    #[error("Redis error: {0}")]
    Redis(#[from] redis::RedisError),
    #[error("Redis did not answer within {0:?} while {1}")]
    Timeout(Duration, &'static str),
    #[error("the subscription connection closed")]
    SubscriptionClosed,
    #[error("the supervisor is gone")]
    SupervisorGone,
}

/// The watch loop's state across reconnections: the last-seen rules survive outages.
struct WatchLoop {
    settings: WatcherSettings,
    targets: RuleTargets,
    tracker: RuleTracker,
    /// Set after an outage: a Redis that restarts without persistence comes back empty, which
    /// must not read as "every rule deleted" and stop every stream. Full syncs that find no
    /// rule at all are held back until one finds rules or a notice arrives.
    hold_empty_syncs: bool,
}

impl WatchLoop {
    fn new(settings: WatcherSettings, targets: RuleTargets) -> Self {
        WatchLoop {
            settings,
            targets,
            tracker: RuleTracker::new(),
            hold_empty_syncs: false,
        }
    }

    /// Connects, syncs and listens; on failure waits with exponential backoff and starts again.
    /// Returns only when the supervisor is gone.
    async fn run(mut self) {
        let address = self.settings.redis.address();
        let client = match self.settings.redis.client() {
            Ok(client) => client,
            Err(e) => {
                tracing::error!(redis = %address, "the Redis URL is invalid, rules cannot be watched: {e}");
                return;
            }
        };
        let mut backoff = self.settings.min_backoff;
        loop {
            let mut synced = false;
            let end = self.session(&client, &mut synced).await;
            if let SessionEnd::SupervisorGone = end {
                tracing::debug!("rule watcher stopping: nobody listens any more");
                return;
            }
            let end = self.explain(&end);
            self.settings.stats.record_failure(&end);
            self.hold_empty_syncs = true;
            if synced {
                backoff = self.settings.min_backoff;
            }
            let (slots, rules) = self.tracker.counts();
            tracing::warn!(
                redis = %address,
                retry_in = ?backoff,
                "rule watcher lost Redis ({end}); keeping the last known rules ({slots} slots, {rules} rules)"
            );
            actix_rt::time::sleep(backoff).await;
            backoff = (backoff * 2).min(self.settings.max_backoff);
        }
    }

    /// Why a session ended, with what to change when the server's certificate was refused.
    fn explain(&self, end: &SessionEnd) -> String {
        match end {
            SessionEnd::Redis(error) => {
                format!("Redis error: {}", self.settings.redis.explain(error))
            }
            other => other.to_string(),
        }
    }

    /// One connected session: subscribe, full sync, then notices and periodic resyncs.
    async fn session(&mut self, client: &redis::Client, synced: &mut bool) -> SessionEnd {
        let timeout = self.settings.timeout;
        let config = redis::AsyncConnectionConfig::new()
            .set_connection_timeout(Some(timeout))
            .set_response_timeout(Some(timeout));
        let mut con = match bounded(
            timeout,
            "connecting",
            client.get_multiplexed_async_connection_with_config(&config),
        )
        .await
        {
            Ok(con) => con,
            Err(end) => return end,
        };
        let pubsub = match bounded(
            timeout,
            "opening the subscription",
            client.get_async_pubsub(),
        )
        .await
        {
            Ok(pubsub) => pubsub,
            Err(end) => return end,
        };
        let (mut sink, mut notices) = pubsub.split();
        if let Err(end) = bounded(
            timeout,
            "subscribing",
            sink.subscribe(&self.settings.notify_channel),
        )
        .await
        {
            return end;
        }
        // Subscribed first, then synced: a change made meanwhile is either in the sync or noticed.
        if let Err(end) = self.full_sync(&mut con).await {
            return end;
        }
        *synced = true;
        tracing::info!(
            redis = %self.settings.redis.address(),
            channel = %self.settings.notify_channel,
            "rule watcher subscribed and synced"
        );

        let mut resync = actix_rt::time::interval(self.settings.resync_interval);
        resync.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        resync.tick().await; // the first tick is immediate: the sync just happened
        loop {
            tokio::select! {
                notice = notices.next() => {
                    let Some(notice) = notice else { return SessionEnd::SubscriptionClosed };
                    if let Err(end) = self.on_notice(&mut con, notice.get_payload_bytes()).await {
                        return end;
                    }
                }
                _ = resync.tick() => {
                    // A silent subscription connection would never end on its own: probe it.
                    if let Err(end) = bounded(timeout, "pinging the subscription", sink.ping::<redis::Value>()).await {
                        return end;
                    }
                    if let Err(end) = self.full_sync(&mut con).await {
                        return end;
                    }
                }
            }
        }
    }

    /// Reads every wanted slot again, one slot at a time: with hundreds of thousands of rules,
    /// holding all of them twice (the known and the freshly read) would double the memory
    /// at every resync. If Redis fails halfway, the slots already read are not lost: the
    /// snapshot of the next full sync carries every slot, and the supervisor takes it whole.
    async fn full_sync(&mut self, con: &mut MultiplexedConnection) -> Result<(), SessionEnd> {
        let wanted = self.settings.wanted.clone();
        let keys_by_slot = scan_wanted_keys(con, &*wanted).await?;
        if self.hold_empty_syncs && keys_by_slot.is_empty() && self.tracker.counts().1 > 0 {
            let (slots, rules) = self.tracker.counts();
            tracing::warn!(
                slots,
                rules,
                "Redis came back without any rule (restarted without persistence?); keeping the last known rules until rules reappear or a notice names a slot"
            );
            return Ok(());
        }
        self.hold_empty_syncs = false;
        let mut changed = self
            .tracker
            .empty_slots_not_in(&|slot| keys_by_slot.contains_key(slot));
        for (slot, keys) in keys_by_slot {
            let loaded = load_slot_keys(con, &slot, keys).await?;
            if self.tracker.update_slot(slot.clone(), loaded).is_some() {
                changed.push(slot);
            }
        }
        let snapshot = self.tracker.snapshot();
        let (slots, rules) = self.tracker.counts();
        let rule_errors: usize = snapshot.slots.iter().map(|slot| slot.errors.len()).sum();
        if changed.is_empty() {
            tracing::debug!(slots, rules, "rules resynced, nothing changed");
        } else {
            let changed: Vec<String> = changed.iter().map(ToString::to_string).collect();
            tracing::info!(slots, rules, changed = %changed.join(","), "rules loaded from Redis");
        }
        self.targets
            .snapshot
            .send(snapshot)
            .await
            .map_err(|_| SessionEnd::SupervisorGone)?;
        self.settings
            .stats
            .record_sync(slots as u64, rules as u64, rule_errors as u64);
        Ok(())
    }

    async fn on_notice(
        &mut self,
        con: &mut MultiplexedConnection,
        payload: &[u8],
    ) -> Result<(), SessionEnd> {
        self.settings.stats.record_notice();
        let text = String::from_utf8_lossy(payload);
        let Some(slot) = SlotId::from_notice(&text) else {
            tracing::warn!(notice = %text, "ignoring a notice that is not <type>:<id> (e.g. track:0)");
            return Ok(());
        };
        if !(self.settings.wanted)(&slot) {
            tracing::debug!(slot = %slot, "ignoring a notice for a slot this process does not serve");
            return Ok(());
        }
        let loaded = load_slot(con, &slot).await?;
        // An operator's notice is an explicit statement about the slot: act on it.
        self.hold_empty_syncs = false;
        match self.tracker.update_slot(slot.clone(), loaded) {
            Some(changed) => {
                tracing::info!(slot = %slot, rules = changed.rules.len(), errors = changed.errors.len(), "rules changed");
                self.targets
                    .changed
                    .send(changed)
                    .await
                    .map_err(|_| SessionEnd::SupervisorGone)
            }
            None => {
                tracing::debug!(slot = %slot, "notice received, rules unchanged");
                Ok(())
            }
        }
    }
}

/// Runs a Redis future with a deadline, naming what timed out.
async fn bounded<T>(
    limit: Duration,
    doing: &'static str,
    future: impl std::future::Future<Output = redis::RedisResult<T>>,
) -> Result<T, SessionEnd> {
    match actix_rt::time::timeout(limit, future).await {
        Ok(result) => result.map_err(SessionEnd::from),
        Err(_) => Err(SessionEnd::Timeout(limit, doing)),
    }
}

/// host:port (or socket path) and database of a Redis URL, never its password.
pub fn redis_address(url: &str) -> String {
    use redis::IntoConnectionInfo;
    match url.into_connection_info() {
        Ok(info) => format!("{}/{}", info.addr(), info.redis_settings().db()),
        Err(_) => "<invalid Redis URL>".to_string(),
    }
}

#[cfg(test)]
pub(crate) mod tests;
