//! The watcher against a real Redis: initial load, notices, lossy pub/sub, and outages.
//! Each test uses its own Redis database and notify channel, so they may run in parallel.

use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use redis::AsyncCommands;
use traptor_core::StreamType;

use super::*;

/// Everything the watcher sent, in order.
#[derive(Debug, Clone)]
enum Seen {
    Changed(RulesChanged),
    Snapshot(RulesSnapshot),
}

#[derive(Default, Clone)]
struct Collector(Arc<Mutex<Vec<Seen>>>);

impl Actor for Collector {
    type Context = Context<Self>;
}

impl Handler<RulesChanged> for Collector {
    type Result = ();
    fn handle(&mut self, msg: RulesChanged, _: &mut Self::Context) {
        self.0.lock().unwrap().push(Seen::Changed(msg));
    }
}

impl Handler<RulesSnapshot> for Collector {
    type Result = ();
    fn handle(&mut self, msg: RulesSnapshot, _: &mut Self::Context) {
        self.0.lock().unwrap().push(Seen::Snapshot(msg));
    }
}

impl Collector {
    fn seen(&self) -> Vec<Seen> {
        self.0.lock().unwrap().clone()
    }

    /// Waits until `check` accepts what was seen, or fails after `limit`.
    async fn wait_for(&self, limit: Duration, what: &str, check: impl Fn(&[Seen]) -> bool) {
        let deadline = Instant::now() + limit;
        while !check(&self.seen()) {
            assert!(
                Instant::now() < deadline,
                "timed out waiting for {what}; seen: {:#?}",
                self.seen()
            );
            actix_rt::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

/// The same server, another database: `redis://host:port/<db>`.
pub(crate) fn db_url(base: &str, db: u32) -> String {
    let authority_start = base.find("://").map_or(0, |i| i + 3);
    let authority_end = base[authority_start..]
        .find('/')
        .map_or(base.len(), |i| authority_start + i);
    format!("{}/{db}", &base[..authority_end])
}

/// The test Redis (scripts/services.sh), database `db`: one database per test.
pub(crate) fn test_redis(db: u32) -> String {
    let base = std::env::var("TRAPTOR_TEST_REDIS_URL")
        .expect("TRAPTOR_TEST_REDIS_URL is not set: run scripts/test.sh");
    db_url(&base, db)
}

async fn connection(url: &str) -> MultiplexedConnection {
    redis::Client::open(url)
        .unwrap()
        .get_multiplexed_async_connection()
        .await
        .unwrap()
}

/// Writes a rule hash the way the original's `add_rules.py` did.
async fn add_rule(con: &mut MultiplexedConnection, slot: &str, rule_id: &str, value: &str) {
    let key = format!("traptor-{slot}:{rule_id}");
    let fields = [
        ("tag", "test"),
        ("value", value),
        ("status", "active"),
        ("description", "a test rule"),
        ("appid", "test-appid"),
        ("date_added", "2016-05-10 16:58:34"),
        ("rule_type", "track"),
        ("orig_type", "keyword"),
        ("rule_id", rule_id),
    ];
    let _: () = con.hset_multiple(key, &fields).await.unwrap();
}

fn start_watcher(url: &str, channel: &str, resync: Duration) -> (Collector, Addr<RuleWatcher>) {
    let collector = Collector::default();
    let addr = collector.clone().start();
    let mut settings = WatcherSettings::new(url, channel);
    settings.resync_interval = resync;
    settings.timeout = Duration::from_secs(2);
    settings.min_backoff = Duration::from_millis(200);
    settings.max_backoff = Duration::from_millis(400);
    settings.wanted = Arc::new(|slot: &SlotId| slot.id != "ignored");
    let targets = RuleTargets {
        changed: addr.clone().recipient(),
        snapshot: addr.recipient(),
    };
    (collector, RuleWatcher::new(settings, targets).start())
}

fn values(rules: &[traptor_core::Rule]) -> Vec<&str> {
    rules.iter().map(|r| r.value.as_str()).collect()
}

#[actix_rt::test]
#[ignore = "needs Redis and Kafka: run scripts/test.sh"]
async fn loads_rules_then_follows_notices_and_resyncs() {
    let url = test_redis(11);
    let channel = format!("traptor-notify-test-{}", std::process::id());
    let mut con = connection(&url).await;
    let _: () = redis::cmd("FLUSHDB").query_async(&mut con).await.unwrap();
    add_rule(&mut con, "track:0", "2", "happy").await;
    add_rule(&mut con, "track:0", "1", "sad").await;
    add_rule(&mut con, "track:ignored", "3", "other").await;
    let _: () = con
        .set("traptor-track:0", "not a hash, not a rule key")
        .await
        .unwrap();

    let (seen, _watcher) = start_watcher(&url, &channel, Duration::from_secs(1));
    seen.wait_for(Duration::from_secs(5), "the first snapshot", |s| {
        !s.is_empty()
    })
    .await;
    let Seen::Snapshot(first) = &seen.seen()[0] else {
        panic!("the first message must be a snapshot")
    };
    assert_eq!(
        first.slots.len(),
        1,
        "the ignored slot is not served: {first:?}"
    );
    assert_eq!(first.slots[0].slot, SlotId::new(StreamType::Track, "0"));
    assert_eq!(
        values(&first.slots[0].rules),
        ["sad", "happy"],
        "rules in rule-id order"
    );
    assert_eq!(first.slots[0].rules[0].field("appid"), Some("test-appid"));

    // A change announced on the channel arrives as RulesChanged for that slot only.
    add_rule(&mut con, "track:0", "4", "glad").await;
    let _: () = con.publish(&channel, "track:0").await.unwrap();
    seen.wait_for(Duration::from_secs(5), "the noticed change", |s| {
        s.iter()
            .any(|m| matches!(m, Seen::Changed(c) if values(&c.rules) == ["sad", "happy", "glad"]))
    })
    .await;

    // A change whose notice was lost is picked up by the periodic resync.
    let _: () = con.del("traptor-track:0:2").await.unwrap();
    seen.wait_for(Duration::from_secs(5), "the resync", |s| {
        s.iter().any(|m| matches!(m, Seen::Snapshot(snap) if snap.slots.len() == 1 && values(&snap.slots[0].rules) == ["sad", "glad"]))
    })
    .await;

    // A notice without a change sends nothing.
    let changes_before = seen
        .seen()
        .iter()
        .filter(|m| matches!(m, Seen::Changed(_)))
        .count();
    let _: () = con.publish(&channel, "track:0").await.unwrap();
    let _: () = con.publish(&channel, "nonsense").await.unwrap();
    actix_rt::time::sleep(Duration::from_millis(300)).await;
    let changes_after = seen
        .seen()
        .iter()
        .filter(|m| matches!(m, Seen::Changed(_)))
        .count();
    assert_eq!(changes_before, changes_after);
}

/// A private redis-server on a free port, killed on drop.
struct OwnRedis {
    child: Child,
    port: u16,
}

impl OwnRedis {
    fn start(port: u16) -> OwnRedis {
        OwnRedis::spawn(port, &[])
    }

    /// Starts with `dir/dump.rdb` (see [`save_dump`]) already loaded, so no client can
    /// see this Redis before it holds that data.
    fn start_with_dump(port: u16, dir: &std::path::Path) -> OwnRedis {
        let dir = dir.to_str().expect("a UTF-8 temporary directory");
        OwnRedis::spawn(port, &["--dir", dir, "--dbfilename", "dump.rdb"])
    }

    fn spawn(port: u16, extra: &[&str]) -> OwnRedis {
        let child = Command::new("redis-server")
            .args([
                "--port",
                &port.to_string(),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
            ])
            .args(extra)
            .stdout(Stdio::null())
            .spawn()
            .expect("redis-server must be installed (scripts/services.sh installs it)");
        let redis = OwnRedis { child, port };
        let deadline = Instant::now() + Duration::from_secs(10);
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(
                Instant::now() < deadline,
                "redis-server did not start on port {port}"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        redis
    }

    fn url(&self) -> String {
        format!("redis://127.0.0.1:{}/0", self.port)
    }
}

impl Drop for OwnRedis {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Leaves `dir/dump.rdb` holding what `fill` writes, by way of a scratch Redis on another
/// port.
async fn save_dump(dir: &std::path::Path, fill: impl AsyncFnOnce(&mut MultiplexedConnection)) {
    let scratch = OwnRedis::start_with_dump(free_port(), dir);
    let mut con = connection(&scratch.url()).await;
    fill(&mut con).await;
    let _: () = redis::cmd("SAVE").query_async(&mut con).await.unwrap();
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

#[actix_rt::test]
#[ignore = "needs Redis and Kafka: run scripts/test.sh"]
async fn keeps_the_last_rules_through_an_outage_and_resyncs_after() {
    let port = free_port();
    let redis = OwnRedis::start(port);
    let url = redis.url();
    let mut con = connection(&url).await;
    add_rule(&mut con, "track:0", "1", "happy").await;
    drop(con);

    let (seen, _watcher) = start_watcher(&url, "traptor-notify", Duration::from_secs(30));
    seen.wait_for(Duration::from_secs(5), "the first snapshot", |s| {
        s.len() == 1
    })
    .await;

    drop(redis);
    actix_rt::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(
        seen.seen().len(),
        1,
        "nothing is sent while Redis is down: {:#?}",
        seen.seen()
    );

    // Redis comes back empty but for a changed rule, and no notice is published: only the
    // full sync after resubscribing can find it. The rule is in Redis from its first moment
    // on; written after the restart, the watcher could resync before it and then wait 30 s.
    let dump = tempfile::tempdir().unwrap();
    save_dump(dump.path(), async |con| {
        add_rule(con, "track:0", "1", "sad").await
    })
    .await;
    let _redis = OwnRedis::start_with_dump(port, dump.path());
    seen.wait_for(Duration::from_secs(5), "the resync after reconnecting", |s| {
        s.iter().any(|m| matches!(m, Seen::Snapshot(snap) if snap.slots.len() == 1 && values(&snap.slots[0].rules) == ["sad"]))
    })
    .await;
}

#[actix_rt::test]
#[ignore = "needs Redis and Kafka: run scripts/test.sh"]
async fn a_redis_that_comes_back_empty_does_not_delete_every_rule() {
    let port = free_port();
    let redis = OwnRedis::start(port);
    let url = redis.url();
    let mut con = connection(&url).await;
    add_rule(&mut con, "track:0", "1", "happy").await;
    drop(con);

    let (seen, _watcher) = start_watcher(&url, "traptor-notify", Duration::from_millis(300));
    seen.wait_for(Duration::from_secs(5), "the first snapshot", |s| {
        s.len() == 1
    })
    .await;

    // Restarted without persistence: empty. Several resyncs pass and must send nothing.
    drop(redis);
    actix_rt::time::sleep(Duration::from_secs(1)).await;
    let redis = OwnRedis::start(port);
    actix_rt::time::sleep(Duration::from_secs(3)).await;
    let empty_snapshots = seen
        .seen()
        .iter()
        .filter(|m| matches!(m, Seen::Snapshot(snap) if snap.slots.is_empty()))
        .count();
    assert_eq!(
        empty_snapshots,
        0,
        "an empty Redis after an outage deleted the rules: {:#?}",
        seen.seen()
    );

    // Once the rule manager writes rules again, they are applied.
    let mut con = connection(&redis.url()).await;
    add_rule(&mut con, "track:0", "1", "sad").await;
    seen.wait_for(Duration::from_secs(5), "the rules written after the restart", |s| {
        s.iter().any(|m| matches!(m, Seen::Snapshot(snap) if snap.slots.len() == 1 && values(&snap.slots[0].rules) == ["sad"]))
    })
    .await;
}

#[test]
fn database_urls_replace_the_database() {
    assert_eq!(
        db_url("redis://127.0.0.1:6379/", 3),
        "redis://127.0.0.1:6379/3"
    );
    assert_eq!(
        db_url("redis://127.0.0.1:6379/0", 3),
        "redis://127.0.0.1:6379/3"
    );
    assert_eq!(
        db_url("redis://127.0.0.1:6379", 3),
        "redis://127.0.0.1:6379/3"
    );
}

#[test]
fn the_address_in_logs_never_carries_the_password() {
    let shown = redis_address("redis://user:hunter2@10.0.0.1:6380/4");
    assert_eq!(shown, "10.0.0.1:6380/4");
}
