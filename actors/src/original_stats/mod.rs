//! The original traptor's counters in Redis, for dashboards and tools built on them:
//! `stats:<type>:<id>:<rule_id>` (one sorted-set member per tweet the rule matched in the last
//! `window_secs`) and `limit:<type>:<id>` (the counts of the `limit` notices received).
//!
//! The streams already count matches per rule and keep the latest limit count (`StreamStats`,
//! also behind `/metrics`); this actor reads those counters every `interval_secs` from the
//! stream registry and writes what changed in one pipeline. So the hot path never waits on
//! Redis, unlike the original's ZADD per match in the stream loop; the price is that a count
//! reaches Redis up to one interval late (at shutdown, [`WriteStatsNow`] writes the last one).
//! When Redis is away, counts wait (up to one window) and are written when it is back.
//!
//! - [`counts`]: readings of the counters → what happened since the last reading;
//! - [`writes`]: what happened → the Redis commands, in the original's key and member layout.

pub mod counts;
pub mod writes;

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use actix::prelude::*;

use crate::redis_target::RedisTarget;
use crate::redis_writer::RedisWriter;
use crate::status::StreamRegistry;
use counts::{CountTracker, Counted};
use writes::KnownKeys;

/// What the actor needs: where to write, how often, how far back.
#[derive(Clone)]
pub struct OriginalStatsSettings {
    /// Where to write; only its address is logged.
    pub redis: RedisTarget,
    pub interval: Duration,
    pub window: Duration,
    pub timeout: Duration,
}

/// The actor: reads the registry on a timer and writes the counters.
pub struct OriginalStats {
    settings: OriginalStatsSettings,
    registry: StreamRegistry,
    redis: RedisWriter,
    tracker: CountTracker,
    known: KnownKeys,
    /// Counted but not yet written (Redis was away); dropped once older than the window.
    pending: Vec<Counted>,
    writing: bool,
}

impl OriginalStats {
    pub fn new(settings: OriginalStatsSettings, registry: StreamRegistry) -> Self {
        let redis = RedisWriter::new(
            &settings.redis,
            "the original's stats keys",
            settings.timeout,
        );
        OriginalStats {
            settings,
            registry,
            redis,
            tracker: CountTracker::default(),
            known: KnownKeys::default(),
            pending: Vec::new(),
            writing: false,
        }
    }

    /// One cycle: read the counters, plan the commands and start sending them. `None` when
    /// there is nothing to write, or while the last cycle's commands are still on their way
    /// (the next reading then covers both).
    fn start_cycle(&mut self) -> Option<impl ActorFuture<Self, Output = ()> + 'static> {
        if self.writing {
            return None;
        }
        if !self.redis.usable() {
            return None;
        }
        let now = unix_now();
        let window = self.settings.window.as_secs();
        let counted = self.tracker.update(self.registry.take_readings(), now);
        self.pending.extend(counted);
        self.pending.retain(|c| now - c.at() <= window as f64);
        let writes = writes::plan(
            &self.pending,
            &mut self.known,
            now,
            window,
            self.settings.interval.as_secs(),
        );
        if writes.is_empty() {
            return None;
        }
        let write = self.redis.send(writes::pipeline(&writes))?;
        self.writing = true;
        Some(write.into_actor(self).map(|result, act, _| {
            act.writing = false;
            let (window, interval) = (act.settings.window, act.settings.interval);
            if act.redis.finished(result, || {
                format!("counts are kept for up to {window:?} and retried every {interval:?}")
            }) {
                act.pending.clear();
            }
        }))
    }
}

/// Write what the counters hold now, without waiting for the timer: sent at shutdown, once
/// the streams have stopped, so that the last interval's counts are not lost.
#[derive(Debug, Message)]
#[rtype(result = "()")]
pub struct WriteStatsNow;

impl Handler<WriteStatsNow> for OriginalStats {
    type Result = ResponseActFuture<Self, ()>;

    fn handle(&mut self, _: WriteStatsNow, ctx: &mut Self::Context) -> Self::Result {
        if self.writing {
            // The timer's write started before the last counts: write again once it is done.
            let me = ctx.address();
            let again = async move {
                actix_rt::time::sleep(Duration::from_millis(20)).await;
                let _ = me.send(WriteStatsNow).await;
            };
            return Box::pin(again.into_actor(self));
        }
        match self.start_cycle() {
            Some(write) => Box::pin(write),
            None => Box::pin(actix::fut::ready(())),
        }
    }
}

impl Actor for OriginalStats {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Self::Context) {
        ctx.run_interval(self.settings.interval, |act, ctx| {
            if let Some(write) = act.start_cycle() {
                ctx.spawn(write);
            }
        });
    }
}

fn unix_now() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0.0, |d| d.as_secs_f64())
}

/// How many matches wait to be written (tests only).
#[cfg(test)]
#[derive(Debug, Message)]
#[rtype(result = "u64")]
struct PendingCounts;

#[cfg(test)]
impl Handler<PendingCounts> for OriginalStats {
    type Result = u64;

    fn handle(&mut self, _: PendingCounts, _: &mut Self::Context) -> u64 {
        self.pending
            .iter()
            .map(|c| match c {
                Counted::Matches { count, .. } => *count,
                Counted::Limit { .. } => 0,
            })
            .sum()
    }
}

#[cfg(test)]
mod tests;
