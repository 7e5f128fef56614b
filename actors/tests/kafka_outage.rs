//! Kafka outages against the real broker of `scripts/services.sh`: while a writer streams
//! records, the broker is stopped, killed, or frozen; afterwards every record must be in the
//! topic exactly once. These tests stop the shared test broker, so they live in their own
//! binary and hold `kafka_outage_lock` throughout.
//!
//! `TRAPTOR_OUTAGE_SECS` sets how long the broker stays stopped in
//! `a_stopped_broker_loses_and_duplicates_nothing` (default 20); the soak figure in
//! RELIABILITY.md is `TRAPTOR_OUTAGE_SECS=60`. `TRAPTOR_PAUSE_SECS` does the same for the frozen
//! broker (default 30). `TRAPTOR_OUTAGE_PRODUCER` adds librdkafka options to the writer's
//! (`name=value;name=value`). Each test prints its figures on standard error (`--nocapture`).
//!
//! A frozen broker is fenced by its controller when it comes back, and its metadata answers
//! leave it out for a moment. A producer that asks then forgets the broker, and librdkafka may
//! fail to bootstrap again: the writer must bring the brokers back (`sinks/kafka/rebootstrap.rs`).
//! To make that happen in most runs rather than now and then, widen the moment with a topic of
//! 2,000 partitions on the test broker and take librdkafka's own re-bootstrap away with
//! `TRAPTOR_OUTAGE_PRODUCER=metadata.recovery.strategy=none` (RELIABILITY.md has the runs).

// Each test holds `kafka_outage_lock` across its awaits on purpose: tests run on threads of
// their own, each with its own runtime, and the lock must span the whole outage.
#![allow(clippy::await_holding_lock)]

#[path = "../../tests/support/mod.rs"]
mod support;

use std::collections::HashMap;
use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use rdkafka::config::ClientConfig;
use rdkafka::consumer::{Consumer, StreamConsumer};
use rdkafka::message::Message;
use rdkafka::{Offset, TopicPartitionList};
use traptor_actors::config::{KafkaConfig, ProducerOptions, SinkConfig, SpoolConfig};
use traptor_actors::messages::WriteBatch;
use traptor_actors::sinks::{start_writer, KafkaHealth, WriterHandle, WriterStatsSnapshot};
use traptor_core::{MessageKind, Record, SlotId, StreamType};

const PARTITIONS: i32 = 3;

fn tweet(id: u64) -> Record {
    Record {
        kind: MessageKind::Tweet,
        key: Some(id.to_string()),
        payload: format!("{{\"id_str\":\"{id}\",\"text\":\"{}\"}}", "t".repeat(400)).into_bytes(),
        slot: Some(SlotId::new(StreamType::Track, "0")),
        received_at_ms: 1,
    }
}

fn secs_from_env(name: &str, default: u64) -> Duration {
    let secs = std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default);
    Duration::from_secs(secs)
}

/// A writer's settings for these tests: a spool in `spool_dir`, and an in-flight bound small
/// enough that an outage of a few seconds fills it.
fn config(brokers: &str, topic: &str, spool_dir: &Path, max_in_flight: usize) -> KafkaConfig {
    KafkaConfig {
        bootstrap_servers: Some(brokers.to_owned()),
        topic: topic.to_owned(),
        max_in_flight_records: max_in_flight,
        spool: SpoolConfig {
            dir: Some(spool_dir.to_owned()),
            spill_after_ms: 1_000,
            ..SpoolConfig::default()
        },
        producer: producer_options_from_env(),
        ..KafkaConfig::default()
    }
}

/// librdkafka options from `TRAPTOR_OUTAGE_PRODUCER` (`name=value;name=value`), for the
/// writer's `[kafka.producer]`: e.g. `metadata.recovery.strategy=none` or
/// `debug=metadata,broker` (see the module doc).
fn producer_options_from_env() -> ProducerOptions {
    let options = std::env::var("TRAPTOR_OUTAGE_PRODUCER").unwrap_or_default();
    ProducerOptions(
        options
            .split(';')
            .filter(|option| !option.trim().is_empty())
            .map(|option| {
                let (name, value) = option
                    .split_once('=')
                    .expect("TRAPTOR_OUTAGE_PRODUCER holds name=value pairs separated by ';'");
                (name.trim().to_owned(), value.trim().to_owned())
            })
            .collect(),
    )
}

/// The same, with records timing out after `timeout_ms` and going to the spool after one
/// attempt: forces the spool's failure path.
fn impatient(mut config: KafkaConfig, timeout_ms: u64) -> KafkaConfig {
    config
        .producer
        .0
        .insert("message.timeout.ms".to_owned(), timeout_ms.to_string());
    config.max_delivery_attempts = 1;
    config.spool.spill_after_ms = 200;
    config
}

/// The largest values seen while watching a writer (and this process).
#[derive(Debug, Default)]
struct Peaks {
    in_flight: AtomicU64,
    spool_bytes: AtomicU64,
    spool_records: AtomicU64,
}

impl Peaks {
    fn see(&self, stats: &WriterStatsSnapshot) {
        self.in_flight.fetch_max(stats.in_flight, Ordering::Relaxed);
        self.spool_bytes
            .fetch_max(stats.spool_bytes, Ordering::Relaxed);
        self.spool_records
            .fetch_max(stats.spool_records, Ordering::Relaxed);
    }
}

/// Samples the writer's counters every 20 ms until `done` is set.
fn watch(writer: &WriterHandle, peaks: Arc<Peaks>, done: Arc<AtomicBool>) {
    let stats = writer.stats.clone();
    std::thread::spawn(move || {
        while !done.load(Ordering::Acquire) {
            peaks.see(&stats.snapshot());
            std::thread::sleep(Duration::from_millis(20));
        }
    });
}

/// Sends `count` tweets with ids from `first`, `batch` at a time with `pause` between
/// batches, awaiting each reply (the writer's backpressure). Returns how many were accepted.
async fn stream(writer: WriterHandle, first: u64, count: u64, batch: u64, pause: Duration) -> u64 {
    let mut sent = 0;
    while sent < count {
        let n = batch.min(count - sent);
        let records: Vec<Record> = (first + sent..first + sent + n).map(tweet).collect();
        writer
            .batches
            .send(WriteBatch(records))
            .await
            .expect("the writer is running")
            .expect("the writer accepts every batch during an outage");
        sent += n;
        tokio::time::sleep(pause).await;
    }
    sent
}

/// Waits until the writer holds nothing: no record in flight, none in the spool.
async fn drained(writer: &WriterHandle, timeout: Duration) -> WriterStatsSnapshot {
    let deadline = Instant::now() + timeout;
    loop {
        let stats = writer.stats();
        if stats.in_flight == 0 && stats.spool_records == 0 {
            return stats;
        }
        assert!(
            Instant::now() < deadline,
            "the writer did not drain in {timeout:?}: {stats:?}; its producer: {:?}",
            writer.stats.kafka().snapshot()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Reads the whole topic and counts each key; keeps reading for `linger` after `expected`
/// records came, so a duplicate has the time to show.
async fn count_by_key(brokers: &str, topic: &str, expected: usize) -> HashMap<String, u32> {
    let consumer: StreamConsumer = ClientConfig::new()
        .set("bootstrap.servers", brokers)
        .set("group.id", support::unique_topic("outage-test-reader"))
        .set("enable.auto.commit", "false")
        .create()
        .expect("creating the test consumer");
    let mut assignment = TopicPartitionList::new();
    for partition in 0..PARTITIONS {
        assignment
            .add_partition_offset(topic, partition, Offset::Beginning)
            .unwrap();
    }
    consumer.assign(&assignment).unwrap();
    let mut counts: HashMap<String, u32> = HashMap::new();
    let mut total = 0;
    let mut deadline = tokio::time::Instant::now() + Duration::from_secs(120);
    loop {
        match tokio::time::timeout_at(deadline, consumer.recv()).await {
            Err(_) => break,
            Ok(Err(e)) => panic!("consuming {topic}: {e}"),
            Ok(Ok(message)) => {
                let key = String::from_utf8_lossy(message.key().expect("tweets have keys"));
                *counts.entry(key.into_owned()).or_default() += 1;
                total += 1;
                if total == expected {
                    deadline = tokio::time::Instant::now() + Duration::from_secs(3);
                }
            }
        }
    }
    counts
}

/// Asserts that keys `0..count` are each in the topic exactly once, and nothing else is.
async fn assert_exactly_once(brokers: &str, topic: &str, count: u64) -> (usize, usize) {
    let counts = count_by_key(brokers, topic, count as usize).await;
    let lost: Vec<u64> = (0..count)
        .filter(|id| !counts.contains_key(&id.to_string()))
        .collect();
    let duplicated: Vec<(&String, &u32)> = counts.iter().filter(|(_, n)| **n > 1).collect();
    assert!(
        lost.is_empty(),
        "{} of {count} records lost, e.g. {:?}",
        lost.len(),
        &lost[..lost.len().min(10)]
    );
    assert!(
        duplicated.is_empty(),
        "{} records duplicated, e.g. {:?}",
        duplicated.len(),
        &duplicated[..duplicated.len().min(10)]
    );
    assert_eq!(counts.len() as u64, count, "no record that was not sent");
    (lost.len(), duplicated.len())
}

/// This process's peak resident memory, in MiB (VmHWM).
fn peak_rss_mib() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find_map(|line| line.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
        .map_or(0, |kb| kb / 1024)
}

/// Kills the broker with SIGKILL (no shutdown at all), as a crash would.
fn kill_kafka() {
    let dir = std::env::var("TRAPTOR_TEST_SERVICES_DIR").expect("TRAPTOR_TEST_SERVICES_DIR is set");
    let pid = std::fs::read_to_string(Path::new(&dir).join("kafka.pid"))
        .expect("the broker's pid file")
        .trim()
        .to_owned();
    let status = Command::new("kill")
        .args(["-KILL", "--", &format!("-{pid}")])
        .status()
        .unwrap();
    assert!(status.success(), "kill -9 of the broker group {pid} failed");
    let proc = format!("/proc/{pid}/stat");
    let deadline = Instant::now() + Duration::from_secs(10);
    while std::fs::read_to_string(&proc).is_ok_and(|s| !s.contains(") Z")) {
        assert!(Instant::now() < deadline, "the broker survived kill -9");
        std::thread::sleep(Duration::from_millis(50));
    }
}

async fn blocking(f: fn()) {
    tokio::task::spawn_blocking(f)
        .await
        .expect("broker control panicked");
}

/// Streams records through an outage made by `outage` (which must end with the broker up),
/// then checks that every record is in the topic exactly once.
async fn outage_test(name: &str, records_per_second: u64, outage: impl FnOnce() + Send + 'static) {
    let brokers = support::kafka_brokers();
    let topic = support::unique_topic(name);
    support::create_topic(&brokers, &topic, PARTITIONS).await;
    let spool = tempfile::tempdir().unwrap();
    const MAX_IN_FLIGHT: usize = 2_000;
    let writer = start_writer(
        &SinkConfig::Kafka,
        &config(&brokers, &topic, spool.path(), MAX_IN_FLIGHT),
    )
    .unwrap();
    let peaks = Arc::new(Peaks::default());
    let done = Arc::new(AtomicBool::new(false));
    watch(&writer, peaks.clone(), done.clone());

    // About `records_per_second`, in batches of 20, for as long as the outage lasts.
    let stop_streaming = Arc::new(AtomicBool::new(false));
    let pause = Duration::from_millis(1000 * 20 / records_per_second);
    let streamer = {
        let (writer, stop) = (writer.clone(), stop_streaming.clone());
        actix_rt::spawn(async move {
            let mut sent = 0;
            while !stop.load(Ordering::Acquire) {
                sent += stream(writer.clone(), sent, 20, 20, pause).await;
            }
            sent
        })
    };
    tokio::time::sleep(Duration::from_secs(3)).await;
    let started = Instant::now();
    tokio::task::spawn_blocking(outage)
        .await
        .expect("the outage panicked");
    let outage_took = started.elapsed();
    // Keep streaming a little while Kafka is back, then stop.
    tokio::time::sleep(Duration::from_secs(3)).await;
    stop_streaming.store(true, Ordering::Release);
    let sent = streamer.await.unwrap();

    let stats = drained(&writer, Duration::from_secs(180)).await;
    assert_eq!(writer.shutdown(Duration::from_secs(30)).await, 0);
    done.store(true, Ordering::Release);
    assert_eq!(stats.given_up, 0, "{stats:?}");
    assert_eq!(stats.queued, sent, "{stats:?}");
    let (lost, duplicated) = assert_exactly_once(&brokers, &topic, sent).await;
    // The writer checks the bound after each batch (20 records) and the replayer before each
    // record, so the two together may pass it by about a batch while replay ends.
    assert!(
        peaks.in_flight.load(Ordering::Relaxed) <= MAX_IN_FLIGHT as u64 + 2 * 20,
        "the in-flight bound held: {peaks:?}"
    );
    assert_eq!(
        std::fs::read_dir(spool.path())
            .unwrap()
            .filter(|e| e
                .as_ref()
                .unwrap()
                .path()
                .extension()
                .is_some_and(|x| x == "seg"))
            .count(),
        0,
        "every segment deleted once delivered"
    );
    eprintln!(
        "FIGURES {name}: outage {:.0}s, records {sent}, spooled {}, replayed {}, \
         peak in flight {} (bound {MAX_IN_FLIGHT}), peak spool {} records / {} KiB, \
         peak RSS {} MiB, lost {lost}, duplicated {duplicated}",
        outage_took.as_secs_f64(),
        stats.spooled,
        stats.replayed,
        peaks.in_flight.load(Ordering::Relaxed),
        peaks.spool_records.load(Ordering::Relaxed),
        peaks.spool_bytes.load(Ordering::Relaxed) / 1024,
        peak_rss_mib(),
    );
}

#[actix::test]
#[ignore = "needs Redis and Kafka: run scripts/test.sh"]
async fn a_stopped_broker_loses_and_duplicates_nothing() {
    support::show_logs();
    let _serial = support::kafka_outage_lock();
    let _up = support::KafkaRestart;
    let down_for = secs_from_env("TRAPTOR_OUTAGE_SECS", 20);
    outage_test("outage-stopped", 400, move || {
        support::stop_kafka();
        std::thread::sleep(down_for);
        support::start_kafka();
    })
    .await;
}

#[actix::test]
#[ignore = "needs Redis and Kafka: run scripts/test.sh"]
async fn a_killed_broker_loses_and_duplicates_nothing() {
    support::show_logs();
    let _serial = support::kafka_outage_lock();
    let _up = support::KafkaRestart;
    outage_test("outage-killed", 400, || {
        kill_kafka();
        std::thread::sleep(Duration::from_secs(5));
        support::start_kafka();
    })
    .await;
}

#[actix::test]
#[ignore = "needs Redis and Kafka: run scripts/test.sh"]
async fn a_frozen_broker_keeps_memory_bounded_and_drains_afterwards() {
    support::show_logs();
    let _serial = support::kafka_outage_lock();
    let _up = support::KafkaRestart;
    let frozen_for = secs_from_env("TRAPTOR_PAUSE_SECS", 30);
    outage_test("outage-frozen", 400, move || {
        support::pause_kafka();
        std::thread::sleep(frozen_for);
        support::resume_kafka();
    })
    .await;
}

#[actix::test]
#[ignore = "needs Redis and Kafka: run scripts/test.sh"]
async fn records_that_time_out_are_spooled_and_delivered_once_kafka_is_back() {
    support::show_logs();
    let _serial = support::kafka_outage_lock();
    let _up = support::KafkaRestart;
    let brokers = support::kafka_brokers();
    let topic = support::unique_topic("outage-spooled");
    support::create_topic(&brokers, &topic, PARTITIONS).await;
    let spool = tempfile::tempdir().unwrap();
    let config = impatient(config(&brokers, &topic, spool.path(), 500), 1_000);
    let writer = start_writer(&SinkConfig::Kafka, &config).unwrap();
    // A first record, so the producer knows the topic's partitions before the outage.
    stream(writer.clone(), 0, 1, 1, Duration::ZERO).await;
    drained(&writer, Duration::from_secs(30)).await;

    blocking(support::stop_kafka).await;
    const COUNT: u64 = 3_000;
    stream(writer.clone(), 1, COUNT - 1, 50, Duration::from_millis(5)).await;
    let deadline = Instant::now() + Duration::from_secs(60);
    while writer.stats().in_flight > 0 {
        assert!(
            Instant::now() < deadline,
            "records never reached the spool: {:?}",
            writer.stats()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let during = writer.stats();
    assert_eq!(during.spool_records, COUNT - 1, "{during:?}");
    assert!(during.spool_bytes > (COUNT - 1) * 400, "{during:?}");
    assert!(
        during.failed > 0,
        "some records failed and were spooled, not given up: {during:?}"
    );
    assert_eq!(during.given_up, 0, "{during:?}");

    blocking(support::start_kafka).await;
    let after = drained(&writer, Duration::from_secs(120)).await;
    assert_eq!(writer.shutdown(Duration::from_secs(30)).await, 0);
    assert_exactly_once(&brokers, &topic, COUNT).await;
    assert_eq!(
        (after.spool_records, after.spool_bytes),
        (0, 0),
        "{after:?}"
    );
    // The first record may have gone through the spool too, on a slow start.
    assert!(after.spooled >= COUNT - 1, "{after:?}");
    assert_eq!(after.replayed, after.spooled, "{after:?}");
    assert_eq!((after.delivered, after.given_up), (COUNT, 0), "{after:?}");
    eprintln!("FIGURES spool: {during:?} then {after:?}");
}

/// A broker that hangs with its connections open (frozen, with librdkafka told to wait 5
/// minutes before it gives up on a request) looks up to the producer, yet acknowledges
/// nothing: after `KafkaHealth::STALLED_AFTER` the writer reports a stall (what `/readyz` and
/// the log show), and once the broker is back every record is delivered once and the stall
/// report is gone.
#[actix::test]
#[ignore = "needs Redis and Kafka: run scripts/test.sh"]
async fn a_hung_broker_is_reported_as_a_stall_and_drains_afterwards() {
    support::show_logs();
    let _serial = support::kafka_outage_lock();
    let _up = support::KafkaRestart;
    let brokers = support::kafka_brokers();
    let topic = support::unique_topic("outage-hung");
    support::create_topic(&brokers, &topic, PARTITIONS).await;
    let spool = tempfile::tempdir().unwrap();
    let mut config = config(&brokers, &topic, spool.path(), 2_000);
    config
        .producer
        .0
        .insert("socket.timeout.ms".to_owned(), "300000".to_owned());
    let writer = start_writer(&SinkConfig::Kafka, &config).unwrap();
    stream(writer.clone(), 0, 100, 20, Duration::ZERO).await;
    drained(&writer, Duration::from_secs(30)).await;

    blocking(support::pause_kafka).await;
    const COUNT: u64 = 200;
    stream(writer.clone(), 100, COUNT - 100, 20, Duration::ZERO).await;
    let limit = KafkaHealth::STALLED_AFTER + Duration::from_secs(30);
    let deadline = Instant::now() + limit;
    let stalled = loop {
        let kafka = writer.stats.kafka().snapshot();
        if kafka.stalled_seconds >= KafkaHealth::STALLED_AFTER.as_secs() {
            break kafka;
        }
        if Instant::now() >= deadline {
            support::resume_kafka();
            panic!(
                "no stall reported in {limit:?}: {kafka:?}, {:?}",
                writer.stats()
            );
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    };
    blocking(support::resume_kafka).await;
    assert!(
        stalled.brokers_up >= 1,
        "the hung broker still looked up: {stalled:?}"
    );

    let after = drained(&writer, Duration::from_secs(120)).await;
    assert_eq!(writer.stats.kafka().snapshot().stalled_seconds, 0);
    assert_eq!(writer.shutdown(Duration::from_secs(30)).await, 0);
    assert_eq!((after.queued, after.given_up), (COUNT, 0), "{after:?}");
    assert_exactly_once(&brokers, &topic, COUNT).await;
    eprintln!("FIGURES hung broker: stall reported as {stalled:?}; then {after:?}");
}

/// Environment of the writer child process of the restart test.
const CHILD_DIR: &str = "TRAPTOR_OUTAGE_CHILD_SPOOL";
const CHILD_TOPIC: &str = "TRAPTOR_OUTAGE_CHILD_TOPIC";
const CHILD_RECORDS: u64 = 2_000;

/// Not a test by itself: the writer that `a_spool_left_by_a_killed_writer_is_replayed_by_the_next`
/// runs in a child process and kills. Does nothing unless that test started it.
#[actix::test]
#[ignore = "needs Redis and Kafka: run scripts/test.sh"]
async fn killed_writer_child() {
    let (Ok(dir), Ok(topic)) = (std::env::var(CHILD_DIR), std::env::var(CHILD_TOPIC)) else {
        return;
    };
    let brokers = support::kafka_brokers();
    let config = impatient(config(&brokers, &topic, Path::new(&dir), 200), 500);
    let writer = start_writer(&SinkConfig::Kafka, &config).unwrap();
    stream(writer.clone(), 0, CHILD_RECORDS, 50, Duration::ZERO).await;
    while writer.stats().in_flight > 0 || writer.stats().spooled < CHILD_RECORDS {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    println!("SPOOLED {}", writer.stats().spooled);
    // Wait to be killed: no flush, no shutdown.
    tokio::time::sleep(Duration::from_secs(600)).await;
}

#[actix::test]
#[ignore = "needs Redis and Kafka: run scripts/test.sh"]
async fn a_spool_left_by_a_killed_writer_is_replayed_by_the_next() {
    support::show_logs();
    let _serial = support::kafka_outage_lock();
    let _up = support::KafkaRestart;
    let brokers = support::kafka_brokers();
    let topic = support::unique_topic("outage-restart");
    support::create_topic(&brokers, &topic, PARTITIONS).await;
    let spool = tempfile::tempdir().unwrap();

    blocking(support::stop_kafka).await;
    let mut child = Command::new(std::env::current_exe().unwrap())
        .args([
            "--ignored",
            "--exact",
            "killed_writer_child",
            "--nocapture",
            "--test-threads=1",
        ])
        .env(CHILD_DIR, spool.path())
        .env(CHILD_TOPIC, &topic)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("starting the writer child process");
    let stdout = BufReader::new(child.stdout.take().unwrap());
    let spooled = tokio::task::spawn_blocking(move || {
        stdout
            .lines()
            .map_while(Result::ok)
            // The test harness may print its own text before ours on the same line.
            .find_map(|line| {
                let (_, n) = line.split_once("SPOOLED ")?;
                n.trim().parse::<u64>().ok()
            })
    })
    .await
    .unwrap();
    child.kill().expect("SIGKILL to the writer child");
    child.wait().unwrap();
    assert_eq!(
        spooled,
        Some(CHILD_RECORDS),
        "the child spooled every record"
    );

    blocking(support::start_kafka).await;
    let config = config(&brokers, &topic, spool.path(), 500);
    let writer = start_writer(&SinkConfig::Kafka, &config).unwrap();
    let at_start = writer.stats();
    // Reported at start. Replay may already have begun: what left the spool was delivered.
    assert!(at_start.spool_records > 0, "{at_start:?}");
    assert!(
        at_start.spool_records + at_start.delivered >= CHILD_RECORDS,
        "{at_start:?}"
    );
    assert!(at_start.spool_bytes > 0, "{at_start:?}");
    let after = drained(&writer, Duration::from_secs(120)).await;
    assert_eq!(writer.shutdown(Duration::from_secs(30)).await, 0);
    assert_eq!(
        (after.replayed, after.delivered),
        (CHILD_RECORDS, CHILD_RECORDS),
        "{after:?}"
    );
    assert_exactly_once(&brokers, &topic, CHILD_RECORDS).await;
    eprintln!("FIGURES restart: at start {at_start:?}, after {after:?}");
}
