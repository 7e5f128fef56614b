//! The yardstick of the throughput scenario: the same records produced to the same broker by
//! a bare rdkafka `BaseProducer` in a tight loop, with traptor's producer settings
//! (idempotence, acks=all, lz4) and nothing else: no streams, no matching, no actors.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use rdkafka::config::ClientConfig;
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::message::{Header, OwnedHeaders};
use rdkafka::producer::{BaseProducer, BaseRecord, DeliveryResult, Producer, ProducerContext};
use rdkafka::ClientContext;

use crate::kafka::{OwnedRecord, TopicCounter};

/// The producer settings traptor's Kafka sink uses (actors/src/sinks/kafka/mod.rs).
pub fn traptor_producer_config(brokers: &str) -> ClientConfig {
    let mut config = ClientConfig::new();
    config
        .set("bootstrap.servers", brokers)
        .set("client.id", "traptor-perf-baseline")
        .set("enable.idempotence", "true")
        .set("acks", "all")
        .set("compression.type", "lz4")
        .set("statistics.interval.ms", "5000");
    config
}

/// Counts acknowledged and failed deliveries.
#[derive(Default)]
struct Counting {
    delivered: Arc<AtomicU64>,
    failed: Arc<AtomicU64>,
}

impl ClientContext for Counting {}

impl ProducerContext for Counting {
    type DeliveryOpaque = ();

    fn delivery(&self, result: &DeliveryResult<'_>, _: ()) {
        match result {
            Ok(_) => self.delivered.fetch_add(1, Ordering::Relaxed),
            Err(_) => self.failed.fetch_add(1, Ordering::Relaxed),
        };
    }
}

/// What the bare producer achieved.
#[derive(Debug, Clone, Copy)]
pub struct BaselineResult {
    /// Records the broker acknowledged within the measured window (high watermarks).
    pub records_in_window: u64,
    pub window: Duration,
    pub delivered: u64,
    pub failed: u64,
}

impl BaselineResult {
    pub fn rate(&self) -> f64 {
        crate::figures::per_second(self.records_in_window, self.window)
    }
}

/// Produces `pool` round and round to `topic` for `warmup + window`, counting what the broker
/// acknowledged during `window`; then flushes.
pub fn run(
    brokers: &str,
    topic: &str,
    pool: &[OwnedRecord],
    warmup: Duration,
    window: Duration,
) -> anyhow::Result<BaselineResult> {
    if pool.is_empty() {
        bail!("the baseline has no records to produce (the supervisor's topic was empty)");
    }
    let context = Counting::default();
    let (delivered, failed) = (context.delivered.clone(), context.failed.clone());
    let producer: BaseProducer<Counting> = traptor_producer_config(brokers)
        .create_with_context(context)
        .context("creating the baseline producer")?;
    let counter = TopicCounter::new(brokers, topic)?;
    // Headers are rebuilt per send, as the sink does.
    let started = Instant::now();
    let mut measured_from: Option<(Instant, u64)> = None;
    let mut next = 0usize;
    let mut sent = 0u64;
    loop {
        let elapsed = started.elapsed();
        if measured_from.is_none() && elapsed >= warmup {
            measured_from = Some((Instant::now(), counter.count()?));
        }
        if elapsed >= warmup + window {
            break;
        }
        let record = &pool[next];
        next = (next + 1) % pool.len();
        let mut headers = OwnedHeaders::new_with_capacity(record.headers.len());
        for (key, value) in &record.headers {
            headers = headers.insert(Header {
                key: key.as_str(),
                value: Some(value.as_slice()),
            });
        }
        let mut base: BaseRecord<'_, [u8], [u8]> = BaseRecord::to(topic)
            .payload(record.payload.as_slice())
            .headers(headers);
        if let Some(key) = &record.key {
            base = base.key(key.as_slice());
        }
        loop {
            match producer.send(base) {
                Ok(()) => break,
                Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), back)) => {
                    base = back;
                    producer.poll(Duration::from_millis(1));
                }
                Err((e, _)) => bail!("the baseline producer refused a record: {e}"),
            }
        }
        sent += 1;
        if sent.is_multiple_of(64) {
            producer.poll(Duration::ZERO);
        }
    }
    let (from, count_at_start) = measured_from.expect("the window starts after the warm-up");
    let count_at_end = counter.count()?;
    let window = from.elapsed();
    producer
        .flush(Duration::from_secs(60))
        .context("flushing the baseline producer")?;
    Ok(BaselineResult {
        records_in_window: count_at_end - count_at_start,
        window,
        delivered: delivered.load(Ordering::Relaxed),
        failed: failed.load(Ordering::Relaxed),
    })
}
