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

use crate::kafka::OwnedRecord;

/// The producer settings traptor's Kafka sink uses (`producer_config` in
/// actors/src/sinks/kafka/mod.rs), then `extra` (the benchmark's `[kafka.producer]`).
pub fn traptor_producer_config(brokers: &str, extra: &[(String, String)]) -> ClientConfig {
    let mut config = ClientConfig::new();
    config
        .set("bootstrap.servers", brokers)
        .set("client.id", "traptor-perf-baseline")
        .set("enable.idempotence", "true")
        .set("acks", "all")
        .set("message.timeout.ms", "0")
        .set("compression.type", "lz4")
        .set("statistics.interval.ms", "5000");
    for (name, value) in extra {
        config.set(name, value);
    }
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

/// A bare producer that sends a pool of records round and round, in slices of time.
pub struct BareProducer {
    producer: BaseProducer<Counting>,
    topic: String,
    delivered: Arc<AtomicU64>,
    failed: Arc<AtomicU64>,
    next: usize,
}

impl BareProducer {
    pub fn new(
        brokers: &str,
        topic: &str,
        extra: &[(String, String)],
    ) -> anyhow::Result<BareProducer> {
        let context = Counting::default();
        let (delivered, failed) = (context.delivered.clone(), context.failed.clone());
        let producer = traptor_producer_config(brokers, extra)
            .create_with_context(context)
            .context("creating the baseline producer")?;
        Ok(BareProducer {
            producer,
            topic: topic.to_owned(),
            delivered,
            failed,
            next: 0,
        })
    }

    /// Sends records of `pool` (continuing where the last slice stopped) for `duration`,
    /// serving delivery reports as it goes; returns how many were handed to the producer.
    pub fn produce_for(&mut self, pool: &[OwnedRecord], duration: Duration) -> anyhow::Result<u64> {
        if pool.is_empty() {
            bail!("the baseline has no records to produce (the supervisor's topic was empty)");
        }
        let until = Instant::now() + duration;
        let mut sent = 0u64;
        while Instant::now() < until {
            // Check the clock every 64 records: a clock read per record would be measurable.
            for _ in 0..64 {
                let record = &pool[self.next % pool.len()];
                self.next = self.next.wrapping_add(1);
                self.send(record)?;
                sent += 1;
            }
            self.producer.poll(Duration::ZERO);
        }
        Ok(sent)
    }

    fn send(&self, record: &OwnedRecord) -> anyhow::Result<()> {
        // Headers are rebuilt per record, as the sink does.
        let mut headers = OwnedHeaders::new_with_capacity(record.headers.len());
        for (key, value) in &record.headers {
            headers = headers.insert(Header {
                key: key.as_str(),
                value: Some(value.as_slice()),
            });
        }
        let mut base: BaseRecord<'_, [u8], [u8]> = BaseRecord::to(&self.topic)
            .payload(record.payload.as_slice())
            .headers(headers);
        if let Some(key) = &record.key {
            base = base.key(key.as_slice());
        }
        loop {
            match self.producer.send(base) {
                Ok(()) => return Ok(()),
                Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), back)) => {
                    base = back;
                    // Serve what is ready, then sleep: `poll` with a timeout below rdkafka's
                    // millisecond resolution spins until it ends, which would take CPU from
                    // librdkafka's broker thread and the broker while the queue drains. A full
                    // queue holds far more than a millisecond of sending.
                    self.producer.poll(Duration::ZERO);
                    std::thread::sleep(Duration::from_millis(1));
                }
                Err((e, _)) => bail!("the baseline producer refused a record: {e}"),
            }
        }
    }

    /// Waits until everything sent is acknowledged; returns (delivered, failed) so far.
    pub fn flush(&self, limit: Duration) -> anyhow::Result<(u64, u64)> {
        self.producer
            .flush(limit)
            .context("flushing the baseline producer")?;
        Ok((
            self.delivered.load(Ordering::Relaxed),
            self.failed.load(Ordering::Relaxed),
        ))
    }
}
