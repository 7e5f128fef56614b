//! End to end with real Redis and Kafka: rules written in the original's hash shape, the
//! emulator in-process, and `traptor-supervisor` as a process.
//!
//! Every test has its own Redis database, notify channel, Kafka topic and emulator, so the
//! tests may run in parallel.

mod e2e_common;
mod support;

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

use e2e_common::emulator::{
    emulator_config, keys_toml, open_tracks, runtime, start_emulator, test_credentials, test_keys,
    tweets_sent, wait_for_stats,
};
use e2e_common::{unique, Supervisor};
use redis::Commands;
use traptor_core::oauth::Credentials;
use traptor_firehose::{FirehoseHandle, Stats};

/// Credentials of this file's emulator keys.
const KEY_PREFIX: &str = "e2e";

/// One test's world: emulator, Redis database, topic, keys.
struct World {
    emulator: FirehoseHandle,
    redis: redis::Connection,
    redis_url: String,
    channel: String,
    topic: String,
    brokers: String,
    keys: Vec<(String, Credentials)>,
}

impl World {
    /// `keys` API keys the emulator accepts; Redis database `db` (flushed first).
    fn new(db: u32, keys: usize, rate: f64) -> World {
        let keys = test_keys(KEY_PREFIX, keys);
        let emulator = start_emulator(emulator_config(&keys, rate));
        let redis_url = support::redis_url_with_db(db);
        let mut redis = redis::Client::open(redis_url.as_str())
            .unwrap()
            .get_connection()
            .unwrap();
        let _: () = redis::cmd("FLUSHDB").query(&mut redis).unwrap();
        let brokers = support::kafka_brokers();
        let topic = support::unique_topic("traptor-e2e");
        runtime().block_on(support::create_topic(&brokers, &topic, 3));
        World {
            emulator,
            redis,
            redis_url,
            channel: unique("traptor-notify"),
            topic,
            brokers,
            keys,
        }
    }

    /// The cluster config: Redis rules, Kafka sink, this world's emulator and keys.
    fn config(&self, keys: &[(String, Credentials)]) -> String {
        let mut text = format!(
            r#"
[redis]
url = "{redis}"
notify_channel = "{channel}"
resync_interval_secs = 2

[kafka]
bootstrap_servers = "{brokers}"
topic = "{topic}"

[sink]
kind = "kafka"

[heartbeat]
interval_secs = 1

[original_stats]
enabled = true
interval_secs = 1

[log]
level = "info"
status_interval_secs = 2

[stream]
endpoint = "{endpoint}"
stall_timeout_secs = 10
connects_per_key_per_minute = 60
"#,
            redis = self.redis_url,
            channel = self.channel,
            brokers = self.brokers,
            topic = self.topic,
            endpoint = self.emulator.url(),
        );
        text.push_str(&keys_toml(keys));
        text
    }

    fn start(&self) -> Supervisor {
        self.start_with_keys(&self.keys)
    }

    fn start_with_keys(&self, keys: &[(String, Credentials)]) -> Supervisor {
        Supervisor::start(&self.config(keys), &std::env::temp_dir())
    }

    /// HSET the rule as the original's `add_rules.py` wrote it.
    fn add_rule(&mut self, slot: &str, rule_id: &str, value: &str) {
        let (rule_type, orig_type) = match slot.split(':').next().unwrap() {
            "track" => ("track", "keyword"),
            "follow" => ("follow", "userid"),
            _ => ("locations", "geo"),
        };
        let key = format!("traptor-{slot}:{rule_id}");
        let fields = [
            ("tag", "e2e"),
            ("value", value),
            ("status", "active"),
            ("description", "an end-to-end rule"),
            ("appid", "e2e-appid"),
            ("date_added", "2016-05-10 16:58:34"),
            ("rule_type", rule_type),
            ("orig_type", orig_type),
            ("rule_id", rule_id),
        ];
        let _: () = self.redis.hset_multiple(key, &fields).unwrap();
    }

    fn notify(&mut self, slot: &str) {
        let _: () = self.redis.publish(&self.channel, slot).unwrap();
    }

    fn stats(&self) -> Stats {
        self.emulator.stats()
    }

    /// Waits until the emulator's stats satisfy `check`.
    #[track_caller]
    fn wait_for(
        &self,
        limit: Duration,
        what: &str,
        supervisor: &Supervisor,
        check: impl Fn(&Stats) -> bool,
    ) {
        wait_for_stats(&self.emulator, limit, what, supervisor, check);
    }

    /// The topic's records, read until at least `at_least` arrived (or 30 s passed).
    fn kafka(&self, at_least: usize) -> Vec<(Option<String>, serde_json::Value)> {
        self.kafka_within(at_least, Duration::from_secs(30))
    }

    /// Waits until the topic holds at least `at_least` tweets. What the emulator handed to
    /// the sockets is not yet what traptor received: tweets may still be in socket buffers
    /// or the reader's hands (more of them on a busy machine), and those on a connection
    /// replaced by a rule change go with it.
    #[track_caller]
    fn wait_for_tweets_in_kafka(&self, at_least: usize, limit: Duration) {
        let deadline = Instant::now() + limit;
        loop {
            let tweets = self
                .kafka_within(usize::MAX, Duration::from_secs(1))
                .iter()
                .filter(|(_, doc)| doc.get("id_str").is_some())
                .count();
            if tweets >= at_least {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "only {tweets} tweets reached Kafka within {limit:?}, {at_least} expected"
            );
        }
    }

    fn kafka_within(
        &self,
        at_least: usize,
        limit: Duration,
    ) -> Vec<(Option<String>, serde_json::Value)> {
        runtime()
            .block_on(support::consume_all(
                &self.brokers,
                &self.topic,
                at_least,
                limit,
            ))
            .into_iter()
            .map(|(key, payload)| {
                (
                    key,
                    serde_json::from_slice(&payload).expect("Kafka payloads are JSON"),
                )
            })
            .collect()
    }
}

fn rule_ids(doc: &serde_json::Value) -> BTreeSet<String> {
    doc["traptor"]["collection_rules"]
        .as_array()
        .map(|rules| {
            rules
                .iter()
                .filter_map(|r| r["rule_id"].as_str().map(str::to_owned))
                .collect()
        })
        .unwrap_or_default()
}

#[test]
#[ignore = "needs Redis and Kafka: run scripts/test.sh"]
fn rules_from_redis_reach_kafka_with_their_collection_rules() {
    let mut world = World::new(1, 2, 20.0);
    world.add_rule("track:0", "12347", "happy");
    world.add_rule("follow:0", "12345", "17919972");
    let mut supervisor = world.start();
    world.wait_for(Duration::from_secs(20), "both streams", &supervisor, |s| {
        open_tracks(s).iter().any(|t| t == &["happy"])
            && s.open_connections().any(|c| c.follow == 1)
    });

    // A rule added and announced as the rule manager does reaches the stream.
    world.add_rule("track:0", "12348", "birthday");
    world.notify("track:0");
    world.wait_for(
        Duration::from_secs(10),
        "the new filter",
        &supervisor,
        |s| open_tracks(s).iter().any(|t| t == &["birthday", "happy"]),
    );
    world.wait_for(Duration::from_secs(20), "tweets", &supervisor, |s| {
        tweets_sent(s) >= 40
    });
    world.wait_for_tweets_in_kafka(40, Duration::from_secs(30));

    let status = supervisor.terminate(Duration::from_secs(15));
    assert!(
        status.success(),
        "{status}; stderr:\n{}",
        supervisor.stderr()
    );

    // Everything traptor received, so that the counts below compare like with like.
    let received: u64 = e2e_common::received_per_key(&supervisor.stderr())
        .values()
        .map(|r| r.messages)
        .sum();
    let records = world.kafka(received.max(40) as usize);
    assert_eq!(
        records.len() as u64,
        received,
        "every message received is in Kafka"
    );
    let tweets: Vec<_> = records
        .iter()
        .filter(|(_, doc)| doc.get("id_str").is_some())
        .collect();
    assert!(tweets.len() >= 40, "{} tweets in Kafka", tweets.len());
    let mut seen_rules = BTreeSet::new();
    for (key, doc) in &tweets {
        assert_eq!(
            key.as_deref(),
            doc["id_str"].as_str(),
            "the record key is the tweet id"
        );
        let rules = rule_ids(doc);
        assert!(
            !rules.is_empty(),
            "every emulated tweet matches a rule: {doc}"
        );
        for rule in doc["traptor"]["collection_rules"].as_array().unwrap() {
            // Every field of the Redis hash, plus rule_tag and rule_value.
            assert_eq!(rule["appid"], "e2e-appid");
            assert_eq!(rule["date_added"], "2016-05-10 16:58:34");
            assert_eq!(rule["rule_tag"], "e2e");
            assert_eq!(rule["rule_value"], rule["value"]);
        }
        seen_rules.extend(rules);
    }
    let expected: BTreeSet<String> = ["12345", "12347", "12348"]
        .iter()
        .map(|s| s.to_string())
        .collect();
    assert_eq!(
        seen_rules, expected,
        "tweets of every rule, the new one included"
    );

    // The original's per-rule counters: one member per tweet the rule matched.
    for (slot, rule) in [
        ("track:0", "12347"),
        ("track:0", "12348"),
        ("follow:0", "12345"),
    ] {
        let in_kafka = tweets
            .iter()
            .filter(|(_, doc)| rule_ids(doc).contains(rule))
            .count();
        let counted: usize = world.redis.zcard(format!("stats:{slot}:{rule}")).unwrap();
        assert_eq!(
            counted, in_kafka,
            "stats:{slot}:{rule} counts the tweets in Kafka that matched it"
        );
    }
}

#[test]
#[ignore = "needs Redis and Kafka: run scripts/test.sh"]
fn a_rule_change_restarts_only_its_stream_and_nothing_is_lost_or_duplicated() {
    let mut world = World::new(2, 3, 30.0);
    world.add_rule("track:0", "1", "alpha");
    world.add_rule("track:1", "2", "beta");
    world.add_rule("follow:0", "3", "783214");
    let mut supervisor = world.start();
    world.wait_for(Duration::from_secs(20), "three streams", &supervisor, |s| {
        s.open_connections().count() == 3
    });
    std::thread::sleep(Duration::from_secs(2));
    let before: BTreeMap<String, u64> = world
        .stats()
        .credentials
        .iter()
        .map(|c| (c.credential.clone(), c.connects))
        .collect();

    world.add_rule("track:1", "4", "gamma");
    world.notify("track:1");
    world.wait_for(
        Duration::from_secs(10),
        "track:1's new filter",
        &supervisor,
        |s| open_tracks(s).iter().any(|t| t == &["beta", "gamma"]),
    );
    // A notice for an unchanged slot restarts nothing.
    world.notify("track:0");
    std::thread::sleep(Duration::from_secs(3));
    let after: BTreeMap<String, u64> = world
        .stats()
        .credentials
        .iter()
        .map(|c| (c.credential.clone(), c.connects))
        .collect();
    let changed: Vec<&String> = after
        .keys()
        .filter(|k| after.get(*k) != before.get(*k))
        .collect();
    assert_eq!(
        changed.len(),
        1,
        "exactly one stream reconnected: before {before:?}, after {after:?}"
    );
    assert_eq!(world.stats().open_connections().count(), 3);

    let status = supervisor.terminate(Duration::from_secs(15));
    assert!(
        status.success(),
        "{status}; stderr:\n{}",
        supervisor.stderr()
    );

    // Zero loss, checked against what traptor received. The emulator counts what it handed to
    // its socket; what was still in the socket buffers when traptor closed a connection (for
    // the rule change, or at SIGTERM) never reached traptor. Traptor logs, for every connection
    // it had, the bytes it read and the tweets it decoded and the writer accepted. So, per
    // emulator connection, Kafka must hold a gap-free prefix of the tweets sent (the unread
    // tail only), and per key the tweets in Kafka must be exactly the tweets traptor says it
    // received: nothing decoded is lost, at the rule change or at SIGTERM.
    let stats = world.stats();
    let received = e2e_common::received_per_key(&supervisor.stderr());
    let traptor_messages: u64 = received.values().map(|r| r.messages).sum();
    let records = world.kafka_within(traptor_messages as usize, Duration::from_secs(30));
    let mut in_kafka: BTreeMap<String, usize> = BTreeMap::new();
    for (key, doc) in &records {
        if doc.get("id_str").is_some() {
            *in_kafka
                .entry(key.clone().expect("tweets are keyed"))
                .or_default() += 1;
        }
    }
    let duplicates: Vec<_> = in_kafka.iter().filter(|(_, n)| **n > 1).collect();
    assert!(
        duplicates.is_empty(),
        "tweets written twice: {duplicates:?}"
    );
    let mut delivered = 0;
    let mut delivered_per_key: BTreeMap<String, u64> = BTreeMap::new();
    let mut unread_tail_per_key: BTreeMap<String, usize> = BTreeMap::new();
    for connection in &stats.connections {
        let ids: Vec<String> = connection.tweet_ids.iter().map(u64::to_string).collect();
        assert_eq!(connection.tweet_ids_not_recorded, 0, "every id is recorded");
        let prefix = ids
            .iter()
            .take_while(|id| in_kafka.contains_key(*id))
            .count();
        let tail = &ids[prefix..];
        assert!(
            tail.iter().all(|id| !in_kafka.contains_key(id)),
            "connection {}: a tweet in the middle is missing from Kafka",
            connection.id
        );
        eprintln!(
            "connection {} ({}): {} tweets sent, {} in Kafka, {} never read by traptor",
            connection.id,
            connection.credential,
            ids.len(),
            prefix,
            tail.len()
        );
        if !tail.is_empty() {
            *unread_tail_per_key
                .entry(connection.credential.clone())
                .or_default() += tail.len();
        }
        delivered += prefix;
        *delivered_per_key
            .entry(connection.credential.clone())
            .or_default() += prefix as u64;
    }
    assert_eq!(
        delivered,
        in_kafka.len(),
        "Kafka holds only tweets the emulator sent"
    );
    for (key, got) in &received {
        let sent_bytes = stats.credential(key).map_or(0, |c| c.bytes);
        assert!(
            got.bytes <= sent_bytes,
            "{key}: traptor read {} bytes of the {sent_bytes} sent",
            got.bytes
        );
        if unread_tail_per_key.contains_key(key) {
            assert!(
                got.bytes < sent_bytes,
                "{key}: tweets missing from Kafka although traptor read every byte sent"
            );
        }
        eprintln!(
            "{key}: traptor received {} tweets ({} of {sent_bytes} bytes); {} in Kafka",
            got.tweets,
            got.bytes,
            delivered_per_key.get(key).copied().unwrap_or(0)
        );
    }
    let received_tweets: BTreeMap<String, u64> = received
        .iter()
        .filter(|(_, r)| r.tweets > 0)
        .map(|(key, r)| (key.clone(), r.tweets))
        .collect();
    delivered_per_key.retain(|_, n| *n > 0);
    assert_eq!(
        delivered_per_key, received_tweets,
        "per key, Kafka holds exactly the tweets traptor received"
    );
    assert!(
        delivered > 50,
        "enough traffic to mean something: {delivered}"
    );
}

#[test]
#[ignore = "needs Redis and Kafka: run scripts/test.sh"]
fn a_slot_over_its_limit_is_split_when_keys_allow_and_reported_otherwise() {
    let mut world = World::new(3, 2, 10.0);
    for i in 0..410 {
        world.add_rule("track:0", &(i + 1).to_string(), &format!("term{i}"));
    }
    let mut supervisor = world.start();
    world.wait_for(
        Duration::from_secs(20),
        "two connections for the one slot",
        &supervisor,
        |s| {
            let mut sizes: Vec<usize> = s.open_connections().map(|c| c.track.len()).collect();
            sizes.sort();
            sizes == [10, 400]
        },
    );
    let status = supervisor.terminate(Duration::from_secs(15));
    assert!(status.success(), "{status}");

    // With one key, `check` reports the rules it cannot collect.
    let config = world.config(&world.keys[..1]);
    let path = std::env::temp_dir().join(format!("{}.toml", unique("check")));
    std::fs::write(&path, config).unwrap();
    let output = std::process::Command::new(env!("CARGO_BIN_EXE_traptor-supervisor"))
        .args(["check", "--config"])
        .arg(&path)
        .output()
        .unwrap();
    let _ = std::fs::remove_file(&path);
    let text = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(text.contains("track:0: 410 rule(s)"), "{text}");
    assert!(text.contains("rules left out: 10"), "{text}");
}

#[test]
#[ignore = "needs Redis and Kafka: run scripts/test.sh"]
fn heartbeats_only_for_streaming_slots_and_expire_after_stop() {
    let mut world = World::new(4, 1, 5.0);
    world.add_rule("track:0", "1", "alpha");
    world.add_rule("track:1", "2", "beta");
    // key0 is known to the emulator; "bad" is not: its stream gets 401.
    let bad = test_credentials("unknown-to-the-emulator", 0);
    let keys = vec![world.keys[0].clone(), ("bad".to_string(), bad)];
    let mut supervisor = world.start_with_keys(&keys);
    world.wait_for(
        Duration::from_secs(20),
        "the good stream",
        &supervisor,
        |s| s.open_connections().count() == 1,
    );
    supervisor.wait_for(Duration::from_secs(10), "the auth failure", |s| {
        s.stderr().contains("API key rejected")
    });
    std::thread::sleep(Duration::from_secs(3));

    let good: Option<String> = world.redis.get("track:0:heartbeat").unwrap();
    let good = good.expect("the streaming slot has a heartbeat");
    assert!(
        good.ends_with('Z') && good.len() == 20,
        "UTC ISO-8601 timestamp: {good}"
    );
    let ttl: i64 = world.redis.ttl("track:0:heartbeat").unwrap();
    assert!((1..=2).contains(&ttl), "ttl 1.5 × 1 s: {ttl}");
    let failed: bool = world.redis.exists("track:1:heartbeat").unwrap();
    assert!(!failed, "no heartbeat for a slot whose key is refused");

    let status = supervisor.terminate(Duration::from_secs(15));
    assert!(status.success(), "{status}");
    std::thread::sleep(Duration::from_secs(3));
    let after: bool = world.redis.exists("track:0:heartbeat").unwrap();
    assert!(!after, "the heartbeat expires once nothing streams");
}

/// SIGHUP after adding a key to the config file: the slot that had no key starts streaming on
/// it, and the stream already running is not touched (no reconnect).
#[test]
#[ignore = "needs Redis and Kafka: run scripts/test.sh"]
fn a_key_added_to_the_config_is_used_after_sighup_without_touching_running_streams() {
    let mut world = World::new(5, 2, 10.0);
    world.add_rule("track:0", "1", "alpha");
    world.add_rule("track:1", "2", "beta");
    let mut supervisor = world.start_with_keys(&world.keys[..1]);
    world.wait_for(Duration::from_secs(20), "one stream", &supervisor, |s| {
        s.open_connections().count() == 1
    });
    let connects_of_first_key = |stats: &Stats| {
        stats
            .credentials
            .iter()
            .find(|c| c.credential == "key0")
            .map_or(0, |c| c.connects)
    };
    let before = connects_of_first_key(&world.stats());

    std::fs::write(supervisor.config_path(), world.config(&world.keys)).unwrap();
    supervisor.signal("HUP");
    world.wait_for(
        Duration::from_secs(20),
        "the second slot streaming on the new key",
        &supervisor,
        |s| s.open_connections().count() == 2,
    );
    supervisor.wait_for(Duration::from_secs(5), "the reload log line", |s| {
        s.stderr().contains("SIGHUP: API keys reloaded")
    });
    assert_eq!(
        connects_of_first_key(&world.stats()),
        before,
        "the running stream was not reconnected"
    );

    // A config that no longer loads leaves the keys as they were.
    std::fs::write(supervisor.config_path(), "[[keys]]\nname = 1\n").unwrap();
    supervisor.signal("HUP");
    supervisor.wait_for(Duration::from_secs(5), "the reload error", |s| {
        s.stderr()
            .contains("SIGHUP: the API keys stay as they were")
    });
    std::thread::sleep(Duration::from_secs(1));
    assert_eq!(world.stats().open_connections().count(), 2);
    assert!(
        supervisor.running(),
        "a bad reload does not stop the process"
    );

    let status = supervisor.terminate(Duration::from_secs(15));
    assert!(status.success(), "{status}\n{}", supervisor.stderr());
}
