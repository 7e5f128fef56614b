//! Helpers for tests that talk to the real Redis and Kafka started by
//! `scripts/services.sh` (and so by `scripts/test.sh`).
//!
//! Use with `mod support;` from a file in `tests/`. Tests using them are marked
//! `#[ignore = "needs Redis and Kafka: run scripts/test.sh"]` so that a bare
//! `cargo test` passes without the services.
//!
//! The broker-control helpers (`stop_kafka`, `start_kafka`, `pause_kafka`,
//! `resume_kafka`) affect every test using Kafka at that moment: put outage tests
//! in their own test file and hold [`kafka_outage_lock`] for their duration.

// Each test binary uses only some of these helpers.
#![allow(dead_code)]

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::Command;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Mutex, MutexGuard};
use std::thread;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer, StreamConsumer};
use rdkafka::error::RDKafkaErrorCode;
use rdkafka::message::Message;
use rdkafka::{Offset, TopicPartitionList};

const HOW_TO_START: &str =
    "start the services with `bash scripts/services.sh start && eval \"$(bash scripts/services.sh env)\"`, \
     or run everything with `bash scripts/test.sh`";

/// Shows what the code under test logs (`traptor_actors` at info and librdkafka's warnings, or
/// `RUST_LOG`) in the output of a test that fails, so that a failure in CI says what the writer
/// and its producer saw. Call it first in
/// each test that wants it; the first call in a test binary wins.
pub fn show_logs() {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| {
        tracing_subscriber::EnvFilter::new("traptor_actors=info,librdkafka=warn")
    });
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(false)
        .with_test_writer()
        .try_init();
}

/// Redis URL of the test instance, so tests never touch a developer's own Redis.
#[track_caller]
pub fn redis_url() -> String {
    required_env("TRAPTOR_TEST_REDIS_URL")
}

/// The test Redis with database `db` selected: each test file keeps to a database of its own
/// so that a FLUSHDB in one never removes another's keys.
#[track_caller]
pub fn redis_url_with_db(db: u32) -> String {
    let base = redis_url();
    let (scheme, rest) = base.split_once("://").unwrap_or(("redis", base.as_str()));
    let authority = rest.split('/').next().unwrap_or_default();
    format!("{scheme}://{authority}/{db}")
}

/// Kafka bootstrap servers of the test broker, so tests never touch a real cluster.
#[track_caller]
pub fn kafka_brokers() -> String {
    required_env("TRAPTOR_TEST_KAFKA_BROKERS")
}

#[track_caller]
fn required_env(name: &str) -> String {
    match std::env::var(name) {
        Ok(value) if !value.is_empty() => value,
        _ => panic!("{name} is not set: {HOW_TO_START}"),
    }
}

/// A topic name no other test (or earlier run against the same broker) has used,
/// so tests never see each other's records. `prefix` must be a valid topic name.
pub fn unique_topic(prefix: &str) -> String {
    static COUNTER: AtomicU32 = AtomicU32::new(0);
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("clock before 1970")
        .as_nanos();
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    format!("{prefix}-{}-{nanos}-{n}", std::process::id())
}

/// Creates `name` with `partitions` partitions and waits until every partition has
/// a leader, so the test does not race the broker's topic auto-creation.
pub async fn create_topic(brokers: &str, name: &str, partitions: i32) {
    let admin: AdminClient<DefaultClientContext> = ClientConfig::new()
        .set("bootstrap.servers", brokers)
        .create()
        .expect("creating the Kafka admin client");
    let topic = NewTopic::new(name, partitions, TopicReplication::Fixed(1));
    let options = AdminOptions::new().operation_timeout(Some(Duration::from_secs(30)));
    let results = admin
        .create_topics([&topic], &options)
        .await
        .unwrap_or_else(|e| panic!("creating topic {name} on {brokers}: {e}"));
    for result in results {
        match result {
            Ok(_) | Err((_, RDKafkaErrorCode::TopicAlreadyExists)) => {}
            Err((topic, code)) => panic!("creating topic {topic}: {code}"),
        }
    }
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        if leader_partitions(brokers, name).await.len() == partitions as usize {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "topic {name} has no leaders after 30s"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// How many times each tweet (by its record key, the tweet id) is in `records` as returned by
/// [`consume_all`]; records that are not tweets (limit notices, deletes, …) are not counted.
/// A count above 1 is a duplicate.
pub fn tweets_by_key(records: &[(Option<String>, Vec<u8>)]) -> BTreeMap<String, usize> {
    let mut counts = BTreeMap::new();
    for (key, payload) in records {
        let doc: serde_json::Value =
            serde_json::from_slice(payload).expect("Kafka payloads are JSON");
        if doc.get("id_str").is_some() {
            let key = key.clone().expect("tweets are keyed by their id");
            *counts.entry(key).or_default() += 1;
        }
    }
    counts
}

/// Reads `topic` from the beginning of every partition until `expected_count`
/// records arrived or `timeout` passed, then returns what it got as
/// `(key, payload)`, so a test can assert on exactly what reached Kafka.
pub async fn consume_all(
    brokers: &str,
    topic: &str,
    expected_count: usize,
    timeout: Duration,
) -> Vec<(Option<String>, Vec<u8>)> {
    let deadline = tokio::time::Instant::now() + timeout;
    // Partitions are assigned by hand: no consumer-group rebalance to wait for.
    let partitions = loop {
        let found = leader_partitions(brokers, topic).await;
        if !found.is_empty() || tokio::time::Instant::now() >= deadline {
            break found;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    let mut assignment = TopicPartitionList::new();
    for partition in partitions {
        assignment
            .add_partition_offset(topic, partition, Offset::Beginning)
            .expect("building the partition assignment");
    }

    let consumer: StreamConsumer = ClientConfig::new()
        .set("bootstrap.servers", brokers)
        .set("group.id", unique_topic("traptor-test-reader"))
        .set("enable.auto.commit", "false")
        .set("enable.partition.eof", "false")
        .create()
        .expect("creating the Kafka consumer");
    consumer
        .assign(&assignment)
        .expect("assigning the topic's partitions");

    let mut records = Vec::new();
    while records.len() < expected_count {
        match tokio::time::timeout_at(deadline, consumer.recv()).await {
            Err(_elapsed) => break,
            Ok(Err(e)) => panic!("consuming {topic} from {brokers}: {e}"),
            Ok(Ok(message)) => records.push((
                message
                    .key()
                    .map(|key| String::from_utf8_lossy(key).into_owned()),
                message.payload().unwrap_or_default().to_vec(),
            )),
        }
    }
    records
}

/// Serialises outage tests within one test binary: a stopped broker breaks every
/// other Kafka test that runs at the same time.
pub fn kafka_outage_lock() -> MutexGuard<'static, ()> {
    static LOCK: Mutex<()> = Mutex::new(());
    // A test that panicked while holding it leaves nothing to clean up here.
    LOCK.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// Restarts (or resumes) the broker when dropped, so a failing outage test does
/// not leave Kafka down for the tests after it: `let _up = KafkaRestart;`.
pub struct KafkaRestart;

impl Drop for KafkaRestart {
    fn drop(&mut self) {
        start_kafka();
    }
}

/// Stops the test broker (SIGTERM, then SIGKILL after 30s) to test how the
/// collector behaves when Kafka goes away. Blocking; its data is kept.
pub fn stop_kafka() {
    let Some(pid) = kafka_pid() else { return };
    signal_group(pid, "TERM");
    // A paused broker handles the TERM only once it runs again.
    signal_group(pid, "CONT");
    let deadline = Instant::now() + Duration::from_secs(30);
    while pid_alive(pid) {
        if Instant::now() >= deadline {
            signal_group(pid, "KILL");
            thread::sleep(Duration::from_millis(500));
            break;
        }
        thread::sleep(Duration::from_millis(100));
    }
    let _ = std::fs::remove_file(services_dir().join("kafka.pid"));
}

/// Starts the test broker again after [`stop_kafka`] (or resumes it after
/// [`pause_kafka`]) on the same port and waits until it serves metadata. Blocking.
pub fn start_kafka() {
    match kafka_pid() {
        Some(pid) if pid_alive(pid) => {
            signal_group(pid, "CONT");
        }
        _ => {
            let run = services_dir().join("kafka").join("run.sh");
            assert!(run.exists(), "{} is missing: {HOW_TO_START}", run.display());
            let status = Command::new("bash")
                .arg(&run)
                .status()
                .expect("running the broker start script");
            assert!(status.success(), "{} failed: {status}", run.display());
        }
    }
    wait_for_kafka(Duration::from_secs(90));
}

/// Freezes the broker with SIGSTOP: connections stay open but nothing answers,
/// which is how a hung (rather than dead) Kafka looks to the collector.
pub fn pause_kafka() {
    let pid = kafka_pid().expect("the Kafka broker is not running");
    assert!(
        signal_group(pid, "STOP"),
        "could not pause the Kafka broker (pid {pid})"
    );
}

/// Lets a broker frozen by [`pause_kafka`] run again (SIGCONT).
pub fn resume_kafka() {
    let pid = kafka_pid().expect("the Kafka broker is not running");
    assert!(
        signal_group(pid, "CONT"),
        "could not resume the Kafka broker (pid {pid})"
    );
}

/// Blocks until the broker answers a metadata request, panicking after `timeout`.
pub fn wait_for_kafka(timeout: Duration) {
    let brokers = kafka_brokers();
    let client = metadata_client(&brokers);
    let deadline = Instant::now() + timeout;
    loop {
        match client.fetch_metadata(None, Duration::from_secs(2)) {
            Ok(metadata) if !metadata.brokers().is_empty() => return,
            result => {
                if Instant::now() >= deadline {
                    let why = result
                        .err()
                        .map_or("no brokers".to_string(), |e| e.to_string());
                    panic!("Kafka at {brokers} not ready after {timeout:?}: {why}");
                }
            }
        }
        thread::sleep(Duration::from_millis(200));
    }
}

/// State dir of scripts/services.sh: pids, ports, logs and the broker start script.
fn services_dir() -> PathBuf {
    std::env::var_os("TRAPTOR_TEST_SERVICES_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join(".services"))
}

fn kafka_pid() -> Option<u32> {
    let text = std::fs::read_to_string(services_dir().join("kafka.pid")).ok()?;
    text.trim().parse().ok()
}

/// Signals the broker's whole process group (it runs in its own session);
/// false when there is no such group any more.
fn signal_group(pid: u32, signal: &str) -> bool {
    Command::new("kill")
        .arg(format!("-{signal}"))
        .arg("--")
        .arg(format!("-{pid}"))
        .status()
        .expect("running kill")
        .success()
}

/// True while `pid` runs; a zombie counts as gone (nothing may reap it soon).
fn pid_alive(pid: u32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Ok(stat) => !stat
            .rsplit_once(") ")
            .is_some_and(|(_, rest)| rest.starts_with('Z')),
        Err(_) => false,
    }
}

fn metadata_client(brokers: &str) -> BaseConsumer {
    ClientConfig::new()
        .set("bootstrap.servers", brokers)
        .create()
        .expect("creating a Kafka metadata client")
}

/// The partitions of `topic` that have a leader (none if it does not exist yet).
async fn leader_partitions(brokers: &str, topic: &str) -> Vec<i32> {
    // librdkafka's metadata call blocks: keep it off the test's runtime thread.
    let (brokers, topic) = (brokers.to_owned(), topic.to_owned());
    tokio::task::spawn_blocking(move || partitions_with_leader(&metadata_client(&brokers), &topic))
        .await
        .expect("metadata lookup panicked")
}

fn partitions_with_leader(client: &BaseConsumer, topic: &str) -> Vec<i32> {
    let Ok(metadata) = client.fetch_metadata(Some(topic), Duration::from_secs(5)) else {
        return Vec::new();
    };
    metadata
        .topics()
        .iter()
        .filter(|t| t.name() == topic && t.error().is_none())
        .flat_map(|t| t.partitions())
        .filter(|p| p.leader() >= 0 && p.error().is_none())
        .map(|p| p.id())
        .collect()
}
