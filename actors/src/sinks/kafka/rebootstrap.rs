//! Brings back the brokers of a producer that has lost every one of them.
//!
//! librdkafka (2.12) forgets a broker that a metadata answer does not list. A KRaft broker that
//! was paused (a long GC pause, a frozen VM) is fenced when it comes back and, for a moment,
//! answers metadata without itself, so the producer forgets it. When that leaves no broker (a
//! single broker, or a controller pause that fenced them all) the producer should bootstrap
//! again, but the handler of that same answer can cancel the re-bootstrap the
//! forgetting just scheduled (a race between librdkafka's broker thread and its main thread),
//! and later attempts see one "in progress" and do nothing. The producer is then left with no
//! broker at all and never sends again: with `message.timeout.ms = 0` its records wait forever
//! and the spool fills. It happened in 2 of 10 runs of the frozen-broker test (RELIABILITY.md).
//!
//! The producer's statistics (every `statistics.interval.ms`, 5 s by default) show that state
//! as "no broker known", which never happens otherwise: a producer always knows its bootstrap
//! servers or the brokers it learned, even while all of them are down. After
//! [`REPORTS_BEFORE_READDING`] such reports in a row, the bootstrap servers are added again
//! (`rd_kafka_brokers_add`); the producer connects, learns the cluster, and its records go out
//! under their original sequence numbers, so none is written twice.

use std::ffi::CString;
use std::time::{Duration, Instant};

use rdkafka::producer::{Producer, ThreadedProducer};

use super::delivery::DeliveryContext;
use crate::sinks::WriterStats;

/// Statistics reports without any broker before the bootstrap servers are added again: one
/// report could fall in the instant between forgetting a broker and bootstrapping again.
pub(crate) const REPORTS_BEFORE_READDING: u64 = 2;
/// The least time between two additions, should the first not bring a broker back.
const READD_SPACING: Duration = Duration::from_secs(30);

/// Watches the producer's statistics for "no broker known" and adds the bootstrap servers
/// again when it lasts.
pub(crate) struct BrokerRecovery {
    bootstrap_servers: CString,
    last_readded: Option<Instant>,
}

impl BrokerRecovery {
    /// `None` when there is no bootstrap list to add again (none configured, or one librdkafka
    /// could not be given).
    pub fn new(bootstrap_servers: Option<&str>) -> Option<Self> {
        let servers = bootstrap_servers.map(str::trim).filter(|s| !s.is_empty())?;
        Some(BrokerRecovery {
            bootstrap_servers: CString::new(servers).ok()?,
            last_readded: None,
        })
    }

    /// Adds the bootstrap servers to `producer` if its statistics have shown no broker for
    /// long enough. Cheap when there is nothing to do: one atomic load.
    pub fn check(&mut self, producer: &ThreadedProducer<DeliveryContext>, stats: &WriterStats) {
        let reports = stats.kafka().reports_without_brokers();
        if reports < REPORTS_BEFORE_READDING || !self.due(reports, Instant::now()) {
            return;
        }
        // SAFETY: the pointer is the live client `producer` holds for this whole call, and
        // `rd_kafka_brokers_add` may be called from any thread; it copies the list.
        let added = unsafe {
            rdkafka::bindings::rd_kafka_brokers_add(
                producer.client().native_ptr(),
                self.bootstrap_servers.as_ptr(),
            )
        };
        stats.kafka().record_brokers_readded();
        tracing::warn!(
            brokers_added = added,
            "the Kafka producer had lost every broker (librdkafka drops a broker a metadata \
             answer leaves out, as a fenced KRaft broker's does, and did not bootstrap again): \
             adding the bootstrap servers again"
        );
    }

    fn due(&mut self, reports_without_brokers: u64, now: Instant) -> bool {
        if reports_without_brokers < REPORTS_BEFORE_READDING {
            return false;
        }
        if self
            .last_readded
            .is_some_and(|at| now.duration_since(at) < READD_SPACING)
        {
            return false;
        }
        self.last_readded = Some(now);
        true
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use rdkafka::config::ClientConfig;
    use rdkafka::mocking::MockCluster;
    use rdkafka::producer::BaseRecord;

    use super::*;
    use crate::sinks::kafka::delivery::Attempt;

    /// A producer in the state the librdkafka race leaves behind, no broker known, holding a
    /// record: once its statistics have shown that long enough, the check gives it the
    /// bootstrap servers and the record is delivered. The broker is librdkafka's in-process
    /// mock: the real broker cannot produce the race on demand (`kafka_outage` meets it by
    /// chance, with a frozen broker).
    #[test]
    fn a_producer_that_knows_no_broker_gets_the_bootstrap_servers_back_and_delivers() {
        let cluster = MockCluster::new(1).unwrap();
        let stats = Arc::new(WriterStats::default());
        let (retries, _queue) = std::sync::mpsc::channel();
        let context = DeliveryContext {
            stats: stats.clone(),
            failures: Arc::default(),
            max_attempts: 0,
            retries,
            spool: None,
        };
        let producer: ThreadedProducer<DeliveryContext> = ClientConfig::new()
            .set("statistics.interval.ms", "100")
            .set("message.timeout.ms", "0")
            .create_with_context(context)
            .unwrap();
        stats.record_queued(1);
        producer
            .send(
                BaseRecord::with_opaque_to("tweets", Attempt::first())
                    .key("1")
                    .payload("{}"),
            )
            .map_err(|(error, _)| error)
            .unwrap();
        let mut recovery = BrokerRecovery::new(Some(&cluster.bootstrap_servers())).unwrap();

        let deadline = Instant::now() + Duration::from_secs(20);
        while stats.kafka().reports_without_brokers() < REPORTS_BEFORE_READDING {
            assert!(Instant::now() < deadline, "no statistics report came");
            recovery.check(&producer, &stats);
            std::thread::sleep(Duration::from_millis(20));
        }
        assert_eq!(
            stats.snapshot().delivered,
            0,
            "nothing goes out without a broker"
        );
        assert_eq!(stats.kafka().snapshot().brokers_known, 0);
        assert_eq!(stats.kafka().snapshot().brokers_readded, 0, "not yet due");

        while stats.snapshot().delivered == 0 {
            assert!(
                Instant::now() < deadline,
                "the record was not delivered: {:?}",
                stats.snapshot()
            );
            recovery.check(&producer, &stats);
            std::thread::sleep(Duration::from_millis(20));
        }
        assert_eq!(stats.kafka().snapshot().brokers_readded, 1);
        assert_eq!(stats.snapshot().in_flight, 0);
    }

    #[test]
    fn nothing_to_add_without_a_bootstrap_list() {
        assert!(BrokerRecovery::new(None).is_none());
        assert!(BrokerRecovery::new(Some("  ")).is_none());
        assert!(BrokerRecovery::new(Some("a:9092\0b:9092")).is_none());
        assert!(BrokerRecovery::new(Some("a:9092,b:9092")).is_some());
    }

    #[test]
    fn readds_after_reports_in_a_row_without_brokers_and_not_more_often_than_the_spacing() {
        let mut recovery = BrokerRecovery::new(Some("a:9092")).unwrap();
        let start = Instant::now();
        assert!(!recovery.due(0, start));
        assert!(
            !recovery.due(REPORTS_BEFORE_READDING - 1, start),
            "a single report may fall between forgetting a broker and bootstrapping again"
        );
        assert!(recovery.due(REPORTS_BEFORE_READDING, start));
        assert!(!recovery.due(REPORTS_BEFORE_READDING, start + READD_SPACING / 2));
        assert!(recovery.due(REPORTS_BEFORE_READDING, start + READD_SPACING));
    }
}
