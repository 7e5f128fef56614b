//! The actor against the test Redis (database 12): counts written in the original's layout,
//! only what changed, and the last interval written at shutdown.

use std::sync::Arc;
use std::time::Duration;

use actix::prelude::*;
use redis::AsyncCommands;
use traptor_core::plan::ConnectionId;
use traptor_core::{SlotId, StreamType};

use super::*;
use crate::stream::StreamStats;

const DB: u32 = 12;

fn test_redis() -> String {
    let base = std::env::var("TRAPTOR_TEST_REDIS_URL")
        .expect("TRAPTOR_TEST_REDIS_URL is not set: run scripts/test.sh");
    let (scheme, rest) = base.split_once("://").expect("a redis:// URL");
    let authority = rest.split('/').next().unwrap_or_default();
    format!("{scheme}://{authority}/{DB}")
}

/// A slot id of this run only, so that reruns never see an earlier run's keys.
fn unique_slot() -> SlotId {
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_nanos();
    SlotId::new(StreamType::Track, format!("stats{nanos}"))
}

#[actix_rt::test]
#[ignore = "needs Redis and Kafka: run scripts/test.sh"]
async fn matches_and_limits_reach_redis_in_the_original_layout() {
    let url = test_redis();
    let mut con = redis::Client::open(url.as_str())
        .unwrap()
        .get_multiplexed_async_connection()
        .await
        .unwrap();
    let slot = unique_slot();
    let registry = StreamRegistry::default();
    let first = Arc::new(StreamStats::default());
    let second = Arc::new(StreamStats::default());
    registry.register(&ConnectionId::new(slot.clone(), 0), "k0", first.clone());
    registry.register(&ConnectionId::new(slot.clone(), 1), "k1", second.clone());
    for _ in 0..3 {
        first.rules_matched(["1", "2"]);
    }
    second.rules_matched(["1"]);
    first.limit_undelivered(17);

    let stats = OriginalStats::new(
        OriginalStatsSettings {
            redis: RedisTarget::new(url.clone()),
            interval: Duration::from_secs(3_600),
            window: Duration::from_secs(600),
            timeout: Duration::from_secs(5),
        },
        registry.clone(),
    )
    .start();
    stats.send(WriteStatsNow).await.unwrap();

    let rule1 = format!("stats:{slot}:1");
    let rule2 = format!("stats:{slot}:2");
    let limit = format!("limit:{slot}");
    let card = |con: &mut redis::aio::MultiplexedConnection, key: String| {
        let mut con = con.clone();
        async move { con.zcard::<_, u64>(key).await.unwrap() }
    };
    assert_eq!(
        card(&mut con, rule1.clone()).await,
        4,
        "both connections' matches"
    );
    assert_eq!(card(&mut con, rule2.clone()).await, 3);
    let limits: Vec<(String, f64)> = con.zrange_withscores(&limit, 0, -1).await.unwrap();
    assert_eq!(limits.len(), 1);
    assert_eq!(limits[0].0, "17");
    let now = unix_now();
    assert!(
        (now - limits[0].1).abs() < 60.0,
        "scored by its time: {limits:?}"
    );
    let ttl: i64 = con.ttl(&rule1).await.unwrap();
    assert!(
        ttl > 590 && ttl <= 3_600 + 600,
        "expires after the window: {ttl}"
    );
    let members: Vec<(String, f64)> = con.zrange_withscores(&rule2, 0, -1).await.unwrap();
    for (member, score) in &members {
        let as_number: f64 = member.parse().expect("members are unix times");
        assert!((as_number - score).abs() < 1e-5, "{member} vs {score}");
    }

    // Only what changed is added; nothing changed, nothing added.
    first.rules_matched(["2"]);
    stats.send(WriteStatsNow).await.unwrap();
    stats.send(WriteStatsNow).await.unwrap();
    assert_eq!(card(&mut con, rule1.clone()).await, 4);
    assert_eq!(card(&mut con, rule2.clone()).await, 4);
    let limits: u64 = con.zcard(&limit).await.unwrap();
    assert_eq!(limits, 1, "the same limit count is not a new notice");

    let _: () = con.del(&[rule1, rule2, limit]).await.unwrap();
}

#[actix_rt::test]
async fn counts_wait_while_redis_is_away_and_are_kept_for_one_window() {
    let registry = StreamRegistry::default();
    let stream = Arc::new(StreamStats::default());
    registry.register(&ConnectionId::new(unique_slot(), 0), "k0", stream.clone());
    stream.rules_matched(["1"]);
    // Nothing listens on port 9 of the loopback: every write fails at once.
    let settings = OriginalStatsSettings {
        redis: RedisTarget::new("redis://127.0.0.1:9/0"),
        interval: Duration::from_secs(3_600),
        window: Duration::from_secs(600),
        timeout: Duration::from_millis(500),
    };
    let stats = OriginalStats::new(settings, registry).start();
    stats.send(WriteStatsNow).await.unwrap();
    stream.rules_matched(["1"]);
    stats.send(WriteStatsNow).await.unwrap();
    let pending = stats.send(PendingCounts).await.unwrap();
    assert_eq!(pending, 2, "both readings are kept for the next write");
}
