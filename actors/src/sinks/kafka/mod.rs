//! The Kafka sink: idempotent, acknowledged by all replicas, never dropping a record on a
//! full queue or a failed delivery, and bounded in memory by `max_in_flight_records`.

mod delivery;
mod retry;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc;
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use rdkafka::config::ClientConfig;
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::message::{Header, OwnedHeaders};
use rdkafka::producer::{BaseRecord, Producer, ThreadedProducer};
use traptor_core::Record;

use self::delivery::{Attempt, DeliveryContext, FailureLog};
use self::retry::RetryControl;
use super::{Sink, SinkError, WriterStats};
use crate::config::KafkaConfig;

/// Header naming the record's kind (`tweet`, `limit`, `delete`, ...).
pub const MESSAGE_TYPE_HEADER: &str = "traptor.message_type";
/// Header naming the slot (`<type>:<id>`) whose connection received the record.
pub const SLOT_HEADER: &str = "traptor.slot";

/// Writes records to Kafka: key = the tweet id, headers = kind and slot, topic by kind.
pub struct KafkaSink {
    producer: ThreadedProducer<DeliveryContext>,
    config: KafkaConfig,
    stats: Arc<WriterStats>,
    /// Set at shutdown: stop waiting for room (records that cannot be enqueued are given up).
    closing: Arc<AtomicBool>,
    retry_control: Arc<RetryControl>,
    retrier: Option<JoinHandle<()>>,
}

impl KafkaSink {
    pub fn new(
        config: &KafkaConfig,
        stats: Arc<WriterStats>,
        closing: Arc<AtomicBool>,
    ) -> Result<Self, SinkError> {
        let (retries, queue) = mpsc::channel();
        let failures = Arc::new(FailureLog::default());
        let context = DeliveryContext {
            stats: stats.clone(),
            failures: failures.clone(),
            max_attempts: config.max_delivery_attempts,
            retries,
        };
        let producer: ThreadedProducer<DeliveryContext> = producer_config(config)
            .create_with_context(context)
            .map_err(|e| SinkError::Setup(format!("cannot create the Kafka producer: {e}")))?;
        let retry_control = Arc::new(RetryControl::default());
        let retrier = retry::spawn(
            producer.clone(),
            queue,
            retry_control.clone(),
            stats.clone(),
            failures,
        )
        .map_err(|e| SinkError::Setup(format!("cannot start the Kafka retry thread: {e}")))?;
        Ok(KafkaSink {
            producer,
            config: config.clone(),
            stats,
            closing,
            retry_control,
            retrier: Some(retrier),
        })
    }

    fn closing(&self) -> bool {
        self.closing.load(Ordering::Acquire)
    }

    /// Hands one record to librdkafka, waiting for room while its queue is full.
    fn enqueue(&self, record: &Record) {
        let topic = self.config.topic_for(record.kind);
        let mut base: BaseRecord<'_, [u8], [u8], Box<Attempt>> =
            BaseRecord::with_opaque_to(topic, Box::new(Attempt(1)))
                .payload(record.payload.as_slice())
                .headers(headers_for(record));
        if let Some(key) = &record.key {
            base = base.key(key.as_bytes());
        }
        loop {
            match self.producer.send(base) {
                Ok(()) => return,
                Err((error, returned)) if is_queue_full(&error) => {
                    if self.closing() {
                        self.stats.record_given_up(1);
                        tracing::error!(
                            topic,
                            key = record.key.as_deref(),
                            "shutting down while Kafka's queue is full: record not delivered"
                        );
                        return;
                    }
                    base = returned;
                    // The producer's polling thread serves deliveries meanwhile.
                    std::thread::sleep(Duration::from_millis(5));
                }
                Err((error, _)) => {
                    self.stats.record_given_up(1);
                    tracing::error!(topic, key = record.key.as_deref(), %error,
                        bytes = record.payload.len(), "Kafka refused the record: it will not be delivered");
                    return;
                }
            }
        }
    }

    /// Returns once fewer than `max_in_flight_records` records await acknowledgement.
    fn wait_for_room(&self) {
        let max = self.config.max_in_flight_records.max(1) as u64;
        while self.stats.in_flight() >= max && !self.closing() {
            std::thread::sleep(Duration::from_millis(2));
        }
    }
}

impl Sink for KafkaSink {
    fn name(&self) -> &'static str {
        "kafka"
    }

    fn write(&mut self, records: &[Record]) -> Result<(), SinkError> {
        for record in records {
            self.stats.record_queued(1);
            self.enqueue(record);
        }
        self.wait_for_room();
        Ok(())
    }

    fn flush(&mut self, timeout: Duration) -> usize {
        let deadline = Instant::now() + timeout;
        self.retry_control.hurry.store(true, Ordering::Release);
        loop {
            let now = Instant::now();
            if self.stats.in_flight() == 0 || now >= deadline {
                break;
            }
            let slice = (deadline - now).min(Duration::from_millis(100));
            // A timeout here only means some records are still in flight; the loop re-checks.
            let _ = self.producer.flush(slice);
        }
        self.retry_control.hurry.store(false, Ordering::Release);
        self.stats.in_flight() as usize
    }
}

impl Drop for KafkaSink {
    fn drop(&mut self) {
        self.retry_control.stop.store(true, Ordering::Release);
        if let Some(retrier) = self.retrier.take() {
            let _ = retrier.join();
        }
        let undelivered = self.stats.in_flight();
        if undelivered > 0 {
            tracing::error!(
                records = undelivered,
                "Kafka sink dropped with records not yet delivered"
            );
        }
    }
}

/// traptor's producer settings, then the operator's `[kafka.producer]` options verbatim.
fn producer_config(config: &KafkaConfig) -> ClientConfig {
    let mut client = ClientConfig::new();
    if let Some(servers) = &config.bootstrap_servers {
        client.set("bootstrap.servers", servers);
    }
    client
        .set("client.id", "traptor")
        .set("enable.idempotence", "true")
        .set("acks", "all")
        .set("compression.type", config.compression.as_str())
        // Broker states for readiness (`/readyz`); an operator's own setting wins.
        .set("statistics.interval.ms", "5000");
    for (name, value) in &config.producer.0 {
        client.set(name, value);
    }
    client
}

fn headers_for(record: &Record) -> OwnedHeaders {
    let headers = OwnedHeaders::new_with_capacity(2).insert(Header {
        key: MESSAGE_TYPE_HEADER,
        value: Some(record.kind.as_str()),
    });
    match &record.slot {
        Some(slot) => headers.insert(Header {
            key: SLOT_HEADER,
            value: Some(slot.to_string().as_str()),
        }),
        None => headers,
    }
}

fn is_queue_full(error: &KafkaError) -> bool {
    error.rdkafka_error_code() == Some(RDKafkaErrorCode::QueueFull)
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use rdkafka::consumer::{BaseConsumer, Consumer};
    use rdkafka::mocking::MockCluster;
    use rdkafka::{Message, Offset, TopicPartitionList};
    use traptor_core::MessageKind;

    use super::*;
    use crate::config::ProducerOptions;

    const TOPIC: &str = "tweets";

    fn tweet(id: u64) -> Record {
        Record {
            kind: MessageKind::Tweet,
            key: Some(id.to_string()),
            payload: format!("{{\"id\":{id}}}").into_bytes(),
            slot: None,
            received_at_ms: 0,
        }
    }

    /// A sink on the in-process mock cluster whose records time out quickly while it is down.
    fn sink_on(
        cluster: &MockCluster<'_, rdkafka::producer::DefaultProducerContext>,
        max_attempts: u32,
    ) -> KafkaSink {
        let mut producer = BTreeMap::new();
        producer.insert("message.timeout.ms".to_owned(), "300".to_owned());
        let config = KafkaConfig {
            bootstrap_servers: Some(cluster.bootstrap_servers()),
            topic: TOPIC.to_owned(),
            producer: ProducerOptions(producer),
            max_delivery_attempts: max_attempts,
            ..KafkaConfig::default()
        };
        KafkaSink::new(&config, Arc::default(), Arc::default()).unwrap()
    }

    fn count_messages(bootstrap: &str) -> usize {
        let consumer: BaseConsumer = ClientConfig::new()
            .set("bootstrap.servers", bootstrap)
            .set("group.id", "test-reader")
            .create()
            .unwrap();
        let mut assignment = TopicPartitionList::new();
        assignment
            .add_partition_offset(TOPIC, 0, Offset::Beginning)
            .unwrap();
        consumer.assign(&assignment).unwrap();
        let mut count = 0;
        let deadline = Instant::now() + Duration::from_secs(5);
        while Instant::now() < deadline {
            if let Some(message) = consumer.poll(Duration::from_millis(100)) {
                assert!(message.unwrap().key().is_some());
                count += 1;
            }
        }
        count
    }

    #[test]
    fn failed_deliveries_are_retried_until_the_broker_is_back() {
        let cluster = MockCluster::new(1).unwrap();
        cluster.create_topic(TOPIC, 1, 1).unwrap();
        let mut sink = sink_on(&cluster, 0);
        // Let the producer learn the topic's leader, then take the broker away.
        assert_eq!(
            {
                sink.write(&[tweet(0)]).unwrap();
                sink.flush(Duration::from_secs(10))
            },
            0
        );
        cluster.broker_down(1).unwrap();
        let records: Vec<Record> = (1..=20).map(tweet).collect();
        sink.write(&records).unwrap();
        std::thread::sleep(Duration::from_millis(1500));
        assert!(
            sink.stats.snapshot().retried > 0,
            "{:?}",
            sink.stats.snapshot()
        );
        cluster.broker_up(1).unwrap();
        assert_eq!(
            sink.flush(Duration::from_secs(30)),
            0,
            "{:?}",
            sink.stats.snapshot()
        );
        let stats = sink.stats.snapshot();
        assert_eq!(
            (stats.delivered, stats.given_up, stats.in_flight),
            (21, 0, 0),
            "{stats:?}"
        );
        assert_eq!(count_messages(&cluster.bootstrap_servers()), 21);
    }

    #[test]
    fn records_are_given_up_and_counted_after_the_attempt_limit() {
        let cluster = MockCluster::new(1).unwrap();
        cluster.create_topic(TOPIC, 1, 1).unwrap();
        let mut sink = sink_on(&cluster, 2);
        assert_eq!(
            {
                sink.write(&[tweet(0)]).unwrap();
                sink.flush(Duration::from_secs(10))
            },
            0
        );
        cluster.broker_down(1).unwrap();
        sink.write(&(1..=5).map(tweet).collect::<Vec<_>>()).unwrap();
        let deadline = Instant::now() + Duration::from_secs(10);
        while sink.stats.in_flight() > 0 && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(50));
        }
        let stats = sink.stats.snapshot();
        assert_eq!((stats.given_up, stats.in_flight), (5, 0), "{stats:?}");
        // Each of the five failed twice: once retried, once given up.
        assert!(stats.retried >= 5, "{stats:?}");
        assert_eq!(stats.failed, stats.retried + stats.given_up, "{stats:?}");
    }
}
