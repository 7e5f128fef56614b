//! The replayer: a thread that sends spooled records back to Kafka, oldest first, once Kafka
//! answers, without exceeding the in-flight bound.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use rdkafka::message::{Header, OwnedHeaders};
use rdkafka::producer::{BaseRecord, Producer, ThreadedProducer};

use super::delivery::{Attempt, DeliveryContext};
use super::Refusal;
use crate::sinks::spool::{ReplayCursor, Spool, SpooledRecord, Ticket};
use crate::sinks::WriterStats;

/// How often Kafka is asked whether it answers, while it does not.
const PROBE_INTERVAL: Duration = Duration::from_secs(1);
/// How long one probe (a metadata request) may take.
const PROBE_TIMEOUT: Duration = Duration::from_secs(3);
/// How long replay waits before offering a record again that Kafka could not take now (its
/// topic not known at the moment, as just after a broker restart).
const NOT_NOW_PAUSE: Duration = Duration::from_millis(100);
/// How often replay progress is saved to disk.
const SAVE_INTERVAL: Duration = Duration::from_secs(1);

pub(crate) struct Replayer {
    pub producer: ThreadedProducer<DeliveryContext>,
    pub spool: Arc<Spool>,
    pub stats: Arc<WriterStats>,
    pub max_in_flight: u64,
    /// Set at shutdown: replay pauses (the spool keeps the records for the next run).
    pub closing: Arc<AtomicBool>,
    pub stop: Arc<AtomicBool>,
}

impl Replayer {
    pub fn spawn(self) -> std::io::Result<JoinHandle<()>> {
        std::thread::Builder::new()
            .name("kafka-replayer".to_owned())
            .spawn(move || self.run())
    }

    fn run(self) {
        let mut cursor = ReplayCursor::default();
        let mut healthy = false;
        let mut failures_seen = self.stats.snapshot().failed;
        let mut last_probe: Option<Instant> = None;
        let mut last_save = Instant::now();
        let mut replaying = false;
        while !self.stop.load(Ordering::Acquire) {
            if last_save.elapsed() >= SAVE_INTERVAL {
                self.spool.save_progress();
                if let Err(error) = self.spool.sync_appended() {
                    tracing::warn!(spool = %self.spool.dir().display(), %error,
                        "cannot sync the spool to disk (records are kept; a power loss now could lose the newest)");
                }
                last_save = Instant::now();
            }
            if self.closing.load(Ordering::Acquire) || !self.spool.is_spooling() {
                if replaying && !self.spool.is_spooling() {
                    replaying = false;
                    tracing::info!(spool = %self.spool.dir().display(),
                        "every spooled record is back in the producer; new records go to Kafka directly");
                }
                std::thread::sleep(Duration::from_millis(20));
                continue;
            }
            // A failed delivery since the last look: make sure Kafka answers before going on.
            let failures = self.stats.snapshot().failed;
            if failures != failures_seen {
                failures_seen = failures;
                healthy = false;
            }
            if !healthy {
                if last_probe.is_some_and(|at| at.elapsed() < PROBE_INTERVAL) {
                    std::thread::sleep(Duration::from_millis(50));
                    continue;
                }
                last_probe = Some(Instant::now());
                healthy = self.kafka_answers();
                if !healthy {
                    continue;
                }
                let (records, bytes) = self.spool.pending();
                tracing::info!(spool = %self.spool.dir().display(), records, bytes,
                    "Kafka answers: sending the spooled records");
                replaying = true;
            }
            if self.stats.in_flight() >= self.max_in_flight {
                std::thread::sleep(Duration::from_millis(2));
                continue;
            }
            match self.spool.next(&mut cursor) {
                Ok(Some((ticket, record))) => self.send(ticket, &record),
                Ok(None) => std::thread::sleep(Duration::from_millis(5)),
                Err(error) => {
                    tracing::error!(spool = %self.spool.dir().display(), %error,
                        "cannot read the spool; trying again in a second");
                    cursor = ReplayCursor::default();
                    std::thread::sleep(Duration::from_secs(1));
                }
            }
        }
        self.spool.save_progress();
    }

    /// Whether a broker answers a metadata request.
    fn kafka_answers(&self) -> bool {
        match self.producer.client().fetch_metadata(None, PROBE_TIMEOUT) {
            Ok(metadata) => !metadata.brokers().is_empty(),
            Err(error) => {
                tracing::debug!(%error, "Kafka does not answer yet; the spool waits");
                false
            }
        }
    }

    /// Hands one spooled record to the producer, waiting while its queue is full.
    fn send(&self, ticket: Ticket, record: &SpooledRecord) {
        let attempt = Box::new(Attempt {
            number: 1,
            replayed_from: Some(ticket),
        });
        let mut base: BaseRecord<'_, [u8], [u8], Box<Attempt>> =
            BaseRecord::with_opaque_to(&record.topic, attempt)
                .payload(record.payload.as_slice())
                .headers(headers_of(record));
        if let Some(key) = &record.key {
            base = base.key(key.as_slice());
        }
        let mut told = false;
        loop {
            let (error, returned) = match self.producer.send(base) {
                Ok(()) => {
                    self.stats.record_replayed(1);
                    break;
                }
                Err(refused) => refused,
            };
            let pause = match super::refusal(&error) {
                Refusal::Permanent => {
                    // Too large or invalid: sending it again cannot help.
                    tracing::error!(topic = record.topic, %error,
                        "Kafka refused a spooled record: it will not be delivered");
                    self.stats.record_replayed(1);
                    self.stats.record_given_up(1);
                    self.spool.settle(ticket);
                    break;
                }
                Refusal::QueueFull => Duration::from_millis(5),
                Refusal::NotNow => {
                    if !told {
                        told = true;
                        tracing::warn!(topic = record.topic, %error,
                            "Kafka cannot take spooled records right now; replay waits until it can");
                    }
                    NOT_NOW_PAUSE
                }
            };
            if self.stop.load(Ordering::Acquire) {
                // Left unsettled in the spool: the next run sends it.
                break;
            }
            base = returned;
            std::thread::sleep(pause);
        }
        self.spool.handed_over();
    }
}

fn headers_of(record: &SpooledRecord) -> OwnedHeaders {
    record.headers.iter().fold(
        OwnedHeaders::new_with_capacity(record.headers.len()),
        |headers, (key, value)| {
            headers.insert(Header {
                key,
                value: value.as_deref(),
            })
        },
    )
}
