//! A Redis outage and restart under a running `traptor-supervisor`: the streams keep running
//! on the last known rules and tweets keep reaching Kafka; the rule watcher reconnects and
//! resyncs, applying a rule change that was never announced; heartbeats resume.
//!
//! It stops and restarts the Redis of the test services (`scripts/services.sh`), so it is the
//! only test in this file: cargo runs test binaries one after the other, so no other test is
//! using Redis meanwhile. The outage lasts `TRAPTOR_REDIS_OUTAGE_SECS` seconds (default 5; a
//! soak: `TRAPTOR_REDIS_OUTAGE_SECS=120 cargo test --test reliability_redis -- --include-ignored`).

mod e2e_common;
mod support;

use std::path::PathBuf;
use std::process::Command;
use std::time::{Duration, Instant};

use e2e_common::emulator::{
    connects_per_key, emulator_config, keys_toml, open_tracks, runtime, start_emulator, test_keys,
    tweets_sent, wait_for_stats,
};
use e2e_common::{unique, Supervisor};
use redis::Commands;
use traptor_firehose::FirehoseConfig;

/// The Redis of the test services, which this test stops and starts again.
struct TestRedis {
    url: String,
    port: u16,
    dir: PathBuf,
}

impl TestRedis {
    fn from_env() -> TestRedis {
        let url = support::redis_url();
        let info = redis::Client::open(url.as_str())
            .unwrap()
            .get_connection_info()
            .clone();
        let port = match info.addr() {
            redis::ConnectionAddr::Tcp(_, port) => *port,
            other => panic!("the test Redis must be TCP, not {other:?}"),
        };
        let dir = std::env::var_os("TRAPTOR_TEST_SERVICES_DIR")
            .map(PathBuf::from)
            .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join(".services"));
        TestRedis { url, port, dir }
    }

    fn connection(&self) -> redis::Connection {
        redis::Client::open(self.url.as_str())
            .unwrap()
            .get_connection()
            .unwrap()
    }

    fn up(&self) -> bool {
        redis::Client::open(self.url.as_str())
            .unwrap()
            .get_connection_with_timeout(Duration::from_millis(300))
            .and_then(|mut c| redis::cmd("PING").query::<String>(&mut c))
            .is_ok()
    }

    /// `SHUTDOWN NOSAVE`, then waits until the port refuses connections.
    fn stop(&self) {
        let _ = redis::cmd("SHUTDOWN")
            .arg("NOSAVE")
            .query::<()>(&mut self.connection());
        let deadline = Instant::now() + Duration::from_secs(10);
        while self.up() {
            assert!(Instant::now() < deadline, "Redis did not shut down");
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Starts Redis on `port` with the services script's command and `dir`, detached, and
    /// waits for PING. Returns nothing: the pid goes to `pidfile` (as the script does).
    fn spawn(&self, port: u16, pidfile: &str) {
        let redis_dir = self.dir.join("redis");
        let status = Command::new("bash")
            .arg("-c")
            .arg(format!(
                "setsid bash -c 'echo $$ >\"$0\"; exec \"$@\"' {pid} redis-server --port {port} --bind 127.0.0.1 \
                 --save '' --appendonly no --dir {dir} --daemonize no >>{log} 2>&1 </dev/null &",
                pid = self.dir.join(pidfile).display(),
                dir = redis_dir.display(),
                log = self.dir.join("redis.log").display(),
            ))
            .status()
            .expect("starting redis-server");
        assert!(status.success());
        let url = format!("redis://127.0.0.1:{port}/");
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let ping = redis::Client::open(url.as_str())
                .unwrap()
                .get_connection_with_timeout(Duration::from_millis(300))
                .and_then(|mut c| redis::cmd("PING").query::<String>(&mut c));
            if ping.is_ok() {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "Redis on {port} did not answer PING"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Starts the test Redis again on its port, as `scripts/services.sh` started it.
    fn start(&self) {
        self.spawn(self.port, "redis.pid");
    }

    /// Leaves `dump.rdb` in the test Redis' directory holding what `fill` writes, by way of a
    /// scratch Redis on another port: the test Redis then starts with it already loaded.
    fn prepare_dump(&self, fill: impl FnOnce(&mut redis::Connection)) {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        self.spawn(port, "redis-scratch.pid");
        let mut scratch = redis::Client::open(format!("redis://127.0.0.1:{port}/"))
            .unwrap()
            .get_connection()
            .unwrap();
        let _: () = redis::cmd("FLUSHALL").query(&mut scratch).unwrap();
        fill(&mut scratch);
        let _: () = redis::cmd("SAVE").query(&mut scratch).unwrap();
        let _ = redis::cmd("SHUTDOWN")
            .arg("NOSAVE")
            .query::<()>(&mut scratch);
        let _ = std::fs::remove_file(self.dir.join("redis-scratch.pid"));
    }
}

/// Starts the test Redis again if the test failed while it was down, and removes the dump.
struct RedisBackUp<'a>(&'a TestRedis);

impl Drop for RedisBackUp<'_> {
    fn drop(&mut self) {
        if !self.0.up() {
            self.0.start();
        }
        let _ = std::fs::remove_file(self.0.dir.join("redis").join("dump.rdb"));
    }
}

/// HSETs a rule as the original's `add_rules.py` wrote it (no notice is published).
fn add_rule(redis: &mut redis::Connection, slot: &str, rule_id: &str, value: &str) {
    let key = format!("traptor-{slot}:{rule_id}");
    let fields = [
        ("tag", "outage"),
        ("value", value),
        ("status", "active"),
        ("rule_type", "track"),
        ("orig_type", "keyword"),
        ("rule_id", rule_id),
    ];
    let _: () = redis.hset_multiple(key, &fields).unwrap();
}

/// Polls `check` every 100 ms until it holds; fails with the supervisor's logs after `limit`.
fn poll_until(
    limit: Duration,
    what: &str,
    supervisor: &Supervisor,
    mut check: impl FnMut() -> bool,
) {
    let deadline = Instant::now() + limit;
    while !check() {
        assert!(
            Instant::now() < deadline,
            "timed out waiting for {what}; supervisor stderr:\n{}",
            supervisor.stderr()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
#[ignore = "needs Redis and Kafka: run scripts/test.sh"]
fn a_redis_outage_keeps_the_streams_running_and_the_rules_resync_after_it() {
    let outage = Duration::from_secs(
        std::env::var("TRAPTOR_REDIS_OUTAGE_SECS")
            .ok()
            .and_then(|s| s.parse().ok())
            .unwrap_or(5),
    );
    let redis = TestRedis::from_env();
    let _back_up = RedisBackUp(&redis);
    let mut con = redis.connection();
    let _: () = redis::cmd("FLUSHALL").query(&mut con).unwrap();
    add_rule(&mut con, "track:0", "1", "alpha");
    add_rule(&mut con, "track:1", "2", "beta");

    let keys = test_keys("redis", 2);
    let emulator = start_emulator(FirehoseConfig {
        seed: 5,
        ..emulator_config(&keys, 20.0)
    });
    let brokers = support::kafka_brokers();
    let topic = support::unique_topic("traptor-redis-outage");
    runtime().block_on(support::create_topic(&brokers, &topic, 3));
    // The periodic resync is far away: only the resync after reconnecting can find the change.
    let mut config = format!(
        r#"
[redis]
url = "{url}"
notify_channel = "{channel}"
resync_interval_secs = 600

[kafka]
bootstrap_servers = "{brokers}"
topic = "{topic}"

[sink]
kind = "kafka"

[heartbeat]
interval_secs = 1

[log]
level = "info"
status_interval_secs = 0

[stream]
endpoint = "{endpoint}"
stall_timeout_secs = 10
connects_per_key_per_minute = 60
"#,
        url = redis.url,
        channel = unique("traptor-notify"),
        endpoint = emulator.url(),
    );
    config.push_str(&keys_toml(&keys));
    let mut supervisor = Supervisor::start(&config, &std::env::temp_dir());
    wait_for_stats(
        &emulator,
        Duration::from_secs(20),
        "both streams",
        &supervisor,
        |s| open_tracks(s) == [vec!["alpha"], vec!["beta"]],
    );
    poll_until(Duration::from_secs(10), "a heartbeat", &supervisor, || {
        con.exists::<_, bool>("track:0:heartbeat").unwrap_or(false)
    });
    let before = emulator.stats();

    // The outage.
    redis.stop();
    let down_at = Instant::now();
    supervisor.wait_for(Duration::from_secs(15), "the watcher to notice", |s| {
        s.stderr().contains("rule watcher lost Redis")
    });
    let sent_at_stop = tweets_sent(&emulator.stats());
    std::thread::sleep(outage.saturating_sub(down_at.elapsed()));
    let during = emulator.stats();
    assert_eq!(
        connects_per_key(&during),
        connects_per_key(&before),
        "no stream reconnected"
    );
    assert_eq!(
        open_tracks(&during),
        [vec!["alpha"], vec!["beta"]],
        "no stream stopped"
    );
    let sent_during_outage = tweets_sent(&during) - sent_at_stop;
    assert!(
        sent_during_outage as f64 >= 20.0 * outage.as_secs_f64() * 0.5,
        "tweets kept flowing: {sent_during_outage} in {outage:?}"
    );
    assert!(supervisor.running());

    // Redis comes back with a rule changed and no notice published: only the watcher's
    // resync after reconnecting can find it.
    redis.prepare_dump(|scratch| {
        add_rule(scratch, "track:0", "1", "alpha");
        add_rule(scratch, "track:0", "3", "gamma");
        add_rule(scratch, "track:1", "2", "beta");
    });
    redis.start();
    let back_at = Instant::now();
    wait_for_stats(
        &emulator,
        Duration::from_secs(40),
        "the changed rules applied after the resync",
        &supervisor,
        |s| open_tracks(s) == [vec!["alpha", "gamma"], vec!["beta"]],
    );
    let resynced_after = back_at.elapsed();
    let after = emulator.stats();
    let (connects_before, connects_after) = (connects_per_key(&before), connects_per_key(&after));
    let changed: Vec<&String> = connects_after
        .keys()
        .filter(|label| connects_before.get(*label) != connects_after.get(*label))
        .collect();
    assert_eq!(
        changed.len(),
        1,
        "only the changed slot's stream reconnected: {connects_before:?} → {connects_after:?}"
    );
    let mut con = redis.connection();
    poll_until(
        Duration::from_secs(10),
        "heartbeats again",
        &supervisor,
        || {
            con.exists::<_, bool>("track:0:heartbeat").unwrap_or(false)
                && con.exists::<_, bool>("track:1:heartbeat").unwrap_or(false)
        },
    );
    let heartbeat_after = back_at.elapsed();
    eprintln!(
        "outage {outage:?}: {sent_during_outage} tweets sent meanwhile; changed rules applied {resynced_after:?} \
         after Redis came back; heartbeats {heartbeat_after:?} after"
    );

    let status = supervisor.terminate(Duration::from_secs(15));
    assert!(
        status.success(),
        "{status}; stderr:\n{}",
        supervisor.stderr()
    );

    // Nothing was lost across the outage: per key, Kafka holds exactly the tweets traptor
    // received (see e2e_cluster for why that is the ground truth).
    let received = e2e_common::received_per_key(&supervisor.stderr());
    let messages: u64 = received.values().map(|r| r.messages).sum();
    let records = runtime().block_on(support::consume_all(
        &brokers,
        &topic,
        messages as usize,
        Duration::from_secs(30),
    ));
    let in_kafka = support::tweets_by_key(&records);
    assert!(in_kafka.values().all(|n| *n == 1), "a tweet written twice");
    let stats = emulator.stats();
    for (label, got) in &received {
        let in_kafka_of_key = stats
            .connections
            .iter()
            .filter(|c| &c.credential == label)
            .flat_map(|c| &c.tweet_ids)
            .filter(|id| in_kafka.contains_key(&id.to_string()))
            .count() as u64;
        assert_eq!(
            in_kafka_of_key, got.tweets,
            "{label}: traptor received {} tweets, Kafka holds {in_kafka_of_key}",
            got.tweets
        );
    }
    let during_ids: usize = during
        .connections
        .iter()
        .flat_map(|c| &c.tweet_ids)
        .filter(|id| in_kafka.contains_key(&id.to_string()))
        .count();
    assert!(
        during_ids >= sent_at_stop + sent_during_outage * 9 / 10,
        "the tweets of the outage are in Kafka"
    );
}
