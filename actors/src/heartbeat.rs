//! The heartbeat: `SETEX <type>:<id>:heartbeat` for every slot that is really streaming.
//!
//! External rule managers read this key to know a slot is being collected; when it expires
//! they may reassign the slot's rules. So it beats only for slots with at least one connection
//! in `Streaming` state (the supervisor says which), never during backoff or after an auth
//! failure, which fixes the original's heartbeat that kept beating for a dead stream.

use std::collections::BTreeSet;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use actix::prelude::*;
use traptor_core::SlotId;

use crate::redis_target::RedisTarget;
use crate::redis_writer::RedisWriter;

/// The slots that have a streaming connection right now (sent on every change).
#[derive(Debug, Clone, PartialEq, Message)]
#[rtype(result = "()")]
pub struct StreamingSlots(pub BTreeSet<SlotId>);

/// What the heartbeat needs: where to beat and how often.
#[derive(Clone)]
pub struct HeartbeatSettings {
    /// Where to beat; only its address is logged.
    pub redis: RedisTarget,
    pub interval: Duration,
    pub timeout: Duration,
}

impl HeartbeatSettings {
    /// The key's time to live: 1.5 × the interval, rounded up, at least 1 s, so one late beat
    /// does not let the key expire but two missed beats do.
    pub fn ttl_seconds(&self) -> u64 {
        let ttl = (self.interval.as_secs_f64() * 1.5).ceil() as u64;
        ttl.max(1)
    }
}

/// The actor. Beats every `interval`, and at once for a slot that starts streaming.
pub struct Heartbeat {
    settings: HeartbeatSettings,
    redis: RedisWriter,
    streaming: BTreeSet<SlotId>,
    beating: bool,
}

impl Heartbeat {
    pub fn new(settings: HeartbeatSettings) -> Self {
        let redis = RedisWriter::new(&settings.redis, "heartbeat", settings.timeout);
        Heartbeat {
            settings,
            redis,
            streaming: BTreeSet::new(),
            beating: false,
        }
    }

    /// Writes one beat for `slots` (skipped while the previous beat is still running).
    fn beat(&mut self, slots: Vec<SlotId>, ctx: &mut Context<Self>) {
        if slots.is_empty() || self.beating {
            return;
        }
        let ttl = self.settings.ttl_seconds();
        let now = utc_timestamp(SystemTime::now());
        let mut pipe = redis::pipe();
        for slot in &slots {
            pipe.cmd("SETEX")
                .arg(slot.heartbeat_key())
                .arg(ttl)
                .arg(&now)
                .ignore();
        }
        let Some(write) = self.redis.send(pipe) else {
            return;
        };
        self.beating = true;
        ctx.spawn(write.into_actor(self).map(move |result, act, _| {
            act.beating = false;
            let interval = act.settings.interval;
            if act
                .redis
                .finished(result, || format!("retrying every {interval:?}"))
            {
                tracing::debug!(slots = slots.len(), "heartbeat written");
            }
        }));
    }
}

impl Actor for Heartbeat {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Self::Context) {
        ctx.run_interval(self.settings.interval, |act, ctx| {
            let slots = act.streaming.iter().cloned().collect();
            act.beat(slots, ctx);
        });
    }
}

impl Handler<StreamingSlots> for Heartbeat {
    type Result = ();

    fn handle(&mut self, msg: StreamingSlots, ctx: &mut Self::Context) {
        let started: Vec<SlotId> = msg.0.difference(&self.streaming).cloned().collect();
        for slot in &started {
            tracing::debug!(slot = %slot, "slot streaming: heartbeat on");
        }
        for slot in self.streaming.difference(&msg.0) {
            tracing::info!(slot = %slot, "slot no longer streaming: heartbeat withheld, its key will expire");
        }
        self.streaming = msg.0;
        self.beat(started, ctx);
    }
}

/// `2026-11-26T04:05:06Z`: UTC, second precision.
pub fn utc_timestamp(at: SystemTime) -> String {
    let secs = at
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    traptor_core::timestamps::utc_iso_seconds(secs as i64)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings(interval: Duration) -> HeartbeatSettings {
        HeartbeatSettings {
            redis: RedisTarget::new("redis://127.0.0.1/"),
            interval,
            timeout: Duration::from_secs(1),
        }
    }

    #[test]
    fn ttl_is_one_and_a_half_intervals_rounded_up_and_at_least_one_second() {
        assert_eq!(settings(Duration::from_secs(10)).ttl_seconds(), 15);
        assert_eq!(settings(Duration::from_secs(5)).ttl_seconds(), 8);
        assert_eq!(settings(Duration::from_millis(300)).ttl_seconds(), 1);
        assert_eq!(settings(Duration::from_millis(1500)).ttl_seconds(), 3);
    }

    #[test]
    fn timestamps_are_utc_iso_8601_with_a_z() {
        let at = |secs| UNIX_EPOCH + Duration::from_secs(secs);
        assert_eq!(utc_timestamp(at(0)), "1970-01-01T00:00:00Z");
        // 2016-02-22T01:34:53Z, the original's fixture tweet.
        assert_eq!(utc_timestamp(at(1_456_104_893)), "2016-02-22T01:34:53Z");
        // A leap day and the last second of a year.
        assert_eq!(utc_timestamp(at(951_782_400)), "2000-02-29T00:00:00Z");
        assert_eq!(utc_timestamp(at(1_798_761_599)), "2026-12-31T23:59:59Z");
    }

    /// The value of `track:0:heartbeat` once it is there, or `None` after `limit`.
    async fn heartbeat_within(
        con: &mut redis::aio::MultiplexedConnection,
        limit: Duration,
    ) -> Option<String> {
        let deadline = std::time::Instant::now() + limit;
        loop {
            let value: Option<String> = redis::cmd("GET")
                .arg("track:0:heartbeat")
                .query_async(con)
                .await
                .unwrap();
            if value.is_some() || std::time::Instant::now() >= deadline {
                return value;
            }
            actix_rt::time::sleep(Duration::from_millis(20)).await;
        }
    }

    #[actix_rt::test]
    #[ignore = "needs Redis and Kafka: run scripts/test.sh"]
    async fn beats_only_for_streaming_slots_and_lets_the_key_expire_after() {
        let url = crate::watcher::tests::test_redis(12);
        let mut con = redis::Client::open(url.as_str())
            .unwrap()
            .get_multiplexed_async_connection()
            .await
            .unwrap();
        let _: () = redis::cmd("FLUSHDB").query_async(&mut con).await.unwrap();

        let streaming = SlotId::new(traptor_core::StreamType::Track, "0");

        // A slot that starts streaming is beaten for at once, not at the next tick: with a
        // one-minute interval the key still appears within seconds.
        let slow = Heartbeat::new(HeartbeatSettings {
            redis: RedisTarget::new(url.clone()),
            interval: Duration::from_secs(60),
            timeout: Duration::from_secs(2),
        })
        .start();
        slow.send(StreamingSlots(BTreeSet::from([streaming.clone()])))
            .await
            .unwrap();
        assert!(
            heartbeat_within(&mut con, Duration::from_secs(10))
                .await
                .is_some(),
            "the key is written as soon as the slot streams"
        );
        slow.send(StreamingSlots(BTreeSet::new())).await.unwrap();
        drop(slow);
        let _: () = redis::cmd("FLUSHDB").query_async(&mut con).await.unwrap();

        let heartbeat = Heartbeat::new(HeartbeatSettings {
            redis: RedisTarget::new(url.clone()),
            interval: Duration::from_millis(500),
            timeout: Duration::from_secs(2),
        })
        .start();
        heartbeat
            .send(StreamingSlots(BTreeSet::from([streaming.clone()])))
            .await
            .unwrap();
        let value = heartbeat_within(&mut con, Duration::from_secs(10))
            .await
            .expect("the streaming slot's key is written");
        assert_eq!(value.len(), "2026-11-26T04:05:06Z".len(), "{value}");
        assert!(
            value.ends_with('Z') && value.as_bytes()[10] == b'T',
            "{value}"
        );
        let ttl: i64 = redis::cmd("TTL")
            .arg("track:0:heartbeat")
            .query_async(&mut con)
            .await
            .unwrap();
        assert!((0..=1).contains(&ttl), "ttl {ttl}");
        let others: Vec<String> = redis::cmd("KEYS")
            .arg("*")
            .query_async(&mut con)
            .await
            .unwrap();
        assert_eq!(others, ["track:0:heartbeat"]);

        heartbeat
            .send(StreamingSlots(BTreeSet::new()))
            .await
            .unwrap();
        // The 1 s TTL runs out unless something beats again (every 500 ms if it did). A beat
        // already on its way when the slot stopped may land late on a busy machine, but no
        // later than the writer's 2 s timeout: so the key is gone within 2 s + 1 s, plus slack.
        let deadline = std::time::Instant::now() + Duration::from_secs(4);
        let exists = loop {
            let exists: bool = redis::cmd("EXISTS")
                .arg("track:0:heartbeat")
                .query_async(&mut con)
                .await
                .unwrap();
            if !exists || std::time::Instant::now() >= deadline {
                break exists;
            }
            actix_rt::time::sleep(Duration::from_millis(100)).await;
        };
        assert!(!exists, "the key expires once the slot no longer streams");
    }
}
