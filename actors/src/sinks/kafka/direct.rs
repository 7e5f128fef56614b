//! Records produced on the streams' own threads while Kafka keeps up.
//!
//! Through the writer, a record is built on a stream's thread, copied into librdkafka on the
//! writer's and freed there: its memory changes cores twice, and each batch costs a round trip
//! between threads. While the producer has room, none of that buys anything, so a stream hands
//! its records to the producer itself. The first record that would have to wait (the in-flight
//! bound reached, librdkafka's queue full or its topic not known right now), be spooled
//! (something already is) or be refused (shutting down) ends the direct part: it and the rest
//! of the batch go to the writer, which keeps every guarantee of the module above. Records of
//! one stream keep their order: the stream hands its next batch over only once the writer
//! accepted the previous one.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use rdkafka::producer::ThreadedProducer;
use traptor_core::Record;

use super::delivery::DeliveryContext;
use super::{first_attempt, give_up_refused, refusal, Refusal, SlotLabel};
use crate::config::KafkaConfig;
use crate::sinks::spool::Spool;
use crate::sinks::{DirectWrite, WriterStats};

/// The producer as the streams use it directly (see the module doc).
pub(super) struct DirectProducer {
    pub producer: ThreadedProducer<DeliveryContext>,
    pub config: KafkaConfig,
    pub stats: Arc<WriterStats>,
    pub spool: Option<Arc<Spool>>,
    /// The writer's shutdown flag: once set, records go to the writer, which refuses them.
    pub closing: Arc<AtomicBool>,
}

impl DirectProducer {
    /// Whether the producer can take a record now without the writer's waiting or spooling.
    fn has_room(&self) -> bool {
        self.stats.in_flight() < self.config.max_in_flight_records.max(1) as u64
            && !self.spool.as_ref().is_some_and(|spool| spool.is_spooling())
    }
}

impl DirectWrite for DirectProducer {
    fn try_write(&self, records: &[Record]) -> usize {
        let mut slot_label = SlotLabel::default();
        for (taken, record) in records.iter().enumerate() {
            if !self.has_room() {
                return taken;
            }
            // Counted in flight before the shutdown check: a flush that starts meanwhile then
            // waits for this record (the writer sets the flag, then reads the count).
            self.stats.record_queued(1);
            if self.closing.load(Ordering::SeqCst) {
                self.stats.record_not_queued(1);
                return taken;
            }
            let topic = self.config.topic_for(record.kind);
            match self
                .producer
                .send(first_attempt(topic, record, &mut slot_label))
            {
                Ok(()) => {}
                Err((error, _)) if refusal(&error) == Refusal::Permanent => {
                    give_up_refused(&self.stats, topic, record, &error)
                }
                // The writer waits for Kafka (or spools) with this record and the rest.
                Err(_) => {
                    self.stats.record_not_queued(1);
                    return taken;
                }
            }
        }
        records.len()
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use rdkafka::mocking::MockCluster;

    use super::super::tests::{count_messages, sink_on, tweet, TOPIC};
    use super::super::KafkaSink;
    use super::*;
    use crate::config::SpoolConfig;
    use crate::sinks::spool::SpooledRecord;
    use crate::sinks::Sink;

    fn tweets(ids: std::ops::RangeInclusive<u64>) -> Vec<Record> {
        ids.map(tweet).collect()
    }

    /// A sink whose broker never answers (records stay in flight), with `max_in_flight`.
    fn sink_without_broker(max_in_flight: usize, spool: SpoolConfig) -> KafkaSink {
        let config = KafkaConfig {
            bootstrap_servers: Some("127.0.0.1:9".to_owned()),
            topic: TOPIC.to_owned(),
            max_in_flight_records: max_in_flight,
            spool,
            ..KafkaConfig::default()
        };
        KafkaSink::new(&config, Arc::default(), Arc::default()).unwrap()
    }

    #[test]
    fn records_reach_kafka_from_the_calling_thread_and_are_accounted() {
        let cluster = MockCluster::new(1).unwrap();
        cluster.create_topic(TOPIC, 1, 1).unwrap();
        let mut sink = sink_on(&cluster, 0);
        let direct = sink
            .direct()
            .expect("the Kafka sink offers a direct path by default");
        assert_eq!(direct.try_write(&tweets(1..=5)), 5);
        assert_eq!(sink.flush(Duration::from_secs(10)), 0);
        let stats = sink.stats.snapshot();
        assert_eq!(
            (stats.queued, stats.delivered, stats.in_flight),
            (5, 5, 0),
            "{stats:?}"
        );
        assert_eq!(count_messages(&cluster.bootstrap_servers()), 5);
    }

    #[test]
    fn the_in_flight_bound_ends_the_direct_part_of_a_batch() {
        let sink = sink_without_broker(3, SpoolConfig::default());
        let direct = sink.direct().unwrap();
        assert_eq!(direct.try_write(&tweets(1..=5)), 3);
        assert_eq!(direct.try_write(&tweets(6..=6)), 0);
        let stats = sink.stats.snapshot();
        assert_eq!((stats.queued, stats.in_flight), (3, 3), "{stats:?}");
    }

    #[test]
    fn nothing_is_taken_directly_once_shutting_down() {
        let sink = sink_without_broker(100, SpoolConfig::default());
        let direct = sink.direct().unwrap();
        sink.closing.store(true, Ordering::SeqCst);
        assert_eq!(direct.try_write(&tweets(1..=2)), 0);
        let stats = sink.stats.snapshot();
        assert_eq!((stats.queued, stats.in_flight), (0, 0), "{stats:?}");
    }

    #[test]
    fn nothing_is_taken_directly_while_records_wait_in_the_spool() {
        let dir = tempfile::tempdir().unwrap();
        let spool = SpoolConfig {
            dir: Some(dir.path().to_path_buf()),
            ..SpoolConfig::default()
        };
        let sink = sink_without_broker(100, spool);
        let direct = sink.direct().unwrap();
        assert_eq!(direct.try_write(&tweets(1..=1)), 1);
        let waiting = SpooledRecord {
            kind: None,
            topic: TOPIC.to_owned(),
            key: None,
            headers: Vec::new(),
            payload: b"{}".to_vec(),
        };
        let appended = sink.spool.as_ref().unwrap().try_append(&[waiting]).unwrap();
        assert_eq!(appended, 1);
        // Newer records must queue behind the spooled one: they go to the writer.
        assert_eq!(direct.try_write(&tweets(2..=3)), 0);
        assert_eq!(sink.stats.snapshot().queued, 1);
    }

    #[test]
    fn the_direct_path_can_be_turned_off() {
        let config = KafkaConfig {
            bootstrap_servers: Some("127.0.0.1:9".to_owned()),
            produce_from_streams: false,
            ..KafkaConfig::default()
        };
        let sink = KafkaSink::new(&config, Arc::default(), Arc::default()).unwrap();
        assert!(sink.direct().is_none());
    }
}
