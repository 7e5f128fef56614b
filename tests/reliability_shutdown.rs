//! SIGTERM while Kafka is down: what the broker never took is handed from the producer to the
//! disk spool at shutdown, and the next start on the same spool delivers it — every tweet
//! traptor received ends up in Kafka exactly once.
//!
//! It stops and restarts the broker of the test services, so it is the only test in this file
//! (cargo runs test binaries one after the other).

mod e2e_common;
mod support;

use std::collections::BTreeMap;
use std::path::Path;
use std::time::{Duration, Instant};

use e2e_common::emulator::{
    emulator_config, keys_toml, start_emulator, test_keys, tweets_sent, wait_for_stats,
};
use e2e_common::http::{free_port, metric};
use e2e_common::{received_per_key, unique, Received, Supervisor};
use traptor_firehose::{Fault, FaultKind, FirehoseConfig};

/// Polls the metric until `check` holds; fails with the supervisor's logs after `limit`.
#[track_caller]
fn wait_for_metric(
    supervisor: &Supervisor,
    status_port: u16,
    name: &str,
    limit: Duration,
    check: impl Fn(f64) -> bool,
) {
    let deadline = Instant::now() + limit;
    loop {
        let value = metric(status_port, name);
        if value.is_some_and(&check) {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "timed out waiting on {name} (last value {value:?}); supervisor stderr:\n{}",
            supervisor.stderr()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn write_rules(dir: &Path) {
    let rule = |id: &str, value: &str| {
        format!(
            r#"{{"rule_id": "{id}", "tag": "shutdown", "value": "{value}", "rule_type": "track", "orig_type": "keyword", "status": "active"}}"#
        )
    };
    let rules = format!(
        r#"{{"track:0": [{}], "track:1": [{}]}}"#,
        rule("1", "alpha"),
        rule("2", "beta")
    );
    std::fs::write(dir.join("rules.json"), rules).unwrap();
}

fn add(total: &mut BTreeMap<String, Received>, run: BTreeMap<String, Received>) {
    for (key, r) in run {
        let sum = total.entry(key).or_default();
        sum.connections += r.connections;
        sum.bytes += r.bytes;
        sum.messages += r.messages;
        sum.tweets += r.tweets;
    }
}

#[test]
#[ignore = "needs Redis and Kafka: run scripts/test.sh"]
fn sigterm_during_a_kafka_outage_spools_the_rest_and_the_next_start_delivers_it() {
    let _only_outage = support::kafka_outage_lock();
    let keys = test_keys("shutdown", 2);
    let emulator = start_emulator(FirehoseConfig {
        seed: 13,
        ..emulator_config(&keys, 40.0)
    });
    let dir = std::env::temp_dir().join(unique("traptor-shutdown"));
    std::fs::create_dir_all(&dir).unwrap();
    write_rules(&dir);
    let brokers = support::kafka_brokers();
    let topic = support::unique_topic("traptor-shutdown");
    e2e_common::emulator::runtime().block_on(support::create_topic(&brokers, &topic, 3));
    let status_port = free_port();
    let config = format!(
        r#"
[rules]
source = "file"
path = "rules.json"

[sink]
kind = "kafka"

[kafka]
bootstrap_servers = "{brokers}"
topic = "{topic}"

[kafka.spool]
dir = "spool"

[status]
listen = "127.0.0.1:{status_port}"

[log]
level = "info"
status_interval_secs = 0

[stream]
endpoint = "{endpoint}"
stall_timeout_secs = 60
connects_per_key_per_minute = 60
{keys}"#,
        endpoint = emulator.url(),
        keys = keys_toml(&keys),
    );
    let config_path = dir.join("cluster.toml");
    std::fs::write(&config_path, config).unwrap();

    let mut first = Supervisor::start_with_file(&config_path, false);
    wait_for_stats(
        &emulator,
        Duration::from_secs(20),
        "tweets on both streams",
        &first,
        |s| s.open_connections().count() == 2 && tweets_sent(s) >= 40,
    );
    // No tweets while the broker goes away, and none left unacknowledged: a record on the wire
    // to a stopping broker may be written yet reported failed, and so sent again from the spool.
    emulator.inject(Fault::all(FaultKind::Stall { duration: None }));
    std::thread::sleep(Duration::from_millis(500));
    wait_for_metric(
        &first,
        status_port,
        "traptor_writer_records_in_flight",
        Duration::from_secs(20),
        |n| n == 0.0,
    );
    let _restart_kafka_if_the_test_fails = support::KafkaRestart;
    support::stop_kafka();
    let before_outage = tweets_sent(&emulator.stats());
    emulator.inject(Fault::all(FaultKind::Resume));
    wait_for_stats(
        &emulator,
        Duration::from_secs(20),
        "tweets during the outage",
        &first,
        |s| tweets_sent(s) >= before_outage + 100,
    );
    wait_for_metric(
        &first,
        status_port,
        "traptor_writer_records_in_flight",
        Duration::from_secs(10),
        |n| n >= 100.0,
    );

    let status = first.terminate(Duration::from_secs(60));
    assert!(status.success(), "{status}; stderr:\n{}", first.stderr());
    let first_log = first.stderr();
    assert!(
        first_log.contains("records wait in the spool and are replayed at the next start"),
        "the shutdown reports the spooled records; stderr:\n{first_log}"
    );
    assert!(
        !first_log.contains("are lost"),
        "nothing is reported lost; stderr:\n{first_log}"
    );

    support::start_kafka();
    let mut second = Supervisor::start_with_file(&config_path, false);
    wait_for_metric(
        &second,
        status_port,
        "traptor_writer_records_replayed_total",
        Duration::from_secs(60),
        |n| n >= 100.0,
    );
    wait_for_metric(
        &second,
        status_port,
        "traptor_writer_spool_records",
        Duration::from_secs(60),
        |n| n == 0.0,
    );
    wait_for_metric(
        &second,
        status_port,
        "traptor_writer_records_in_flight",
        Duration::from_secs(60),
        |n| n == 0.0,
    );
    let status = second.terminate(Duration::from_secs(30));
    assert!(status.success(), "{status}; stderr:\n{}", second.stderr());
    assert!(
        second
            .stderr()
            .contains("all records delivered; stopped cleanly"),
        "stderr:\n{}",
        second.stderr()
    );

    // Ground truth: per key, what both runs logged as received; Kafka must hold exactly that.
    let mut received = BTreeMap::new();
    add(&mut received, received_per_key(&first_log));
    add(&mut received, received_per_key(&second.stderr()));
    let messages: u64 = received.values().map(|r| r.messages).sum();
    let records = e2e_common::emulator::runtime().block_on(support::consume_all(
        &brokers,
        &topic,
        messages as usize,
        Duration::from_secs(30),
    ));
    assert_eq!(
        records.len() as u64,
        messages,
        "every message traptor received is in Kafka once"
    );
    let in_kafka = support::tweets_by_key(&records);
    let duplicates: Vec<_> = in_kafka.iter().filter(|(_, n)| **n > 1).collect();
    assert!(
        duplicates.is_empty(),
        "tweets written twice: {duplicates:?}"
    );
    let stats = emulator.stats();
    let mut in_kafka_per_key: BTreeMap<String, u64> = BTreeMap::new();
    for connection in &stats.connections {
        let delivered = connection
            .tweet_ids
            .iter()
            .filter(|id| in_kafka.contains_key(&id.to_string()))
            .count();
        *in_kafka_per_key
            .entry(connection.credential.clone())
            .or_default() += delivered as u64;
    }
    let received_tweets: BTreeMap<String, u64> = received
        .iter()
        .map(|(key, r)| (key.clone(), r.tweets))
        .collect();
    assert_eq!(
        in_kafka_per_key, received_tweets,
        "per key, Kafka holds exactly the tweets traptor received"
    );
    let spooled = metric_from_log(&first_log);
    eprintln!(
        "received {} tweets over both runs; {spooled} records spooled at the first run's SIGTERM; all in Kafka once",
        received_tweets.values().sum::<u64>()
    );
    let _ = std::fs::remove_dir_all(&dir);
}

/// The `spool_records=N` of the first run's shutdown line.
fn metric_from_log(log: &str) -> u64 {
    log.lines()
        .filter(|line| line.contains("records wait in the spool"))
        .find_map(|line| {
            line.split_whitespace()
                .find_map(|token| token.strip_prefix("spool_records=")?.parse().ok())
        })
        .unwrap_or(0)
}
