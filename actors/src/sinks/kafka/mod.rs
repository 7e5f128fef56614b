//! The Kafka sink: idempotent, acknowledged by all replicas, never dropping a record on a
//! full queue or a failed delivery, bounded in memory by `max_in_flight_records`, and with
//! `[kafka.spool]` holding on disk what an outage keeps from Kafka.
//!
//! # Exactly once per received record, as far as the producer allows
//! - `enable.idempotence=true` and `acks=all`: the producer numbers each record per partition,
//!   and librdkafka's own retries (of a request whose answer was lost, across broker restarts
//!   and reconnects) reuse that number, so the broker writes a record once however often it
//!   is sent. Ordering per partition is kept through those retries.
//! - A duplicate can only come from traptor sending a record *again as a new record* after
//!   librdkafka reported it failed while it may have been written: a delivery timeout
//!   (`message.timeout.ms`, alias `delivery.timeout.ms`) of a record that was in flight, or a
//!   purge of in-flight records at shutdown. So traptor sets `message.timeout.ms = 0`
//!   (never time out): through an outage of any length librdkafka holds the records and keeps
//!   retrying them under their original sequence numbers, and nothing is ever re-sent as new.
//!   An operator who sets a finite `message.timeout.ms` in `[kafka.producer]` trades that for
//!   records that fail (and are retried, then spooled) after the timeout, which may duplicate.
//! - Memory stays bounded meanwhile: the writer stops taking records once
//!   `max_in_flight_records` await acknowledgement (and the streams stop producing directly,
//!   see `direct`). If that lasts longer than
//!   `spool.spill_after_ms`, new records go to the spool on disk instead, so the streams go on;
//!   with no spool, the streams wait.
//! - Records that still fail for good (a finite timeout, `max_delivery_attempts` reached) go
//!   to the spool rather than being given up. Only errors that sending again cannot fix
//!   (record too large, invalid) give a record up.
//! - At shutdown, records Kafka did not take within the flush timeout are taken back from the
//!   producer and spooled (a record taken back while in flight may have been written: it is
//!   then delivered twice). A SIGKILL loses what is only in the producer's memory; what is in
//!   the spool survives.
//!
//! # Ordering
//! Kafka keeps order per partition, and records with one key go to one partition. traptor
//! guarantees, for records of the same key:
//! - records sent directly keep the order they were handed over in (idempotent producer),
//!   whether a stream produced them itself (`direct`) or the writer did: a stream produces
//!   directly only while none of its records wait at the writer;
//! - once anything is in the spool, every new record is appended to the spool behind it,
//!   and the spool is replayed oldest first, with direct sending resuming only after the last
//!   spooled record is in the producer: so spilled records keep their order, before and after;
//! - records still in the producer when spilling began are ahead of the spooled ones, which
//!   is also their arrival order.
//!
//! Not guaranteed: a record that failed (finite timeout, retry after a transient error)
//! and was sent again or spooled lands after records received later; and after a crash, the
//! records delivered since the last saved replay progress (about a second) are sent again.

mod delivery;
mod direct;
mod probe;
mod rebootstrap;
mod replay;
mod retry;
mod stall;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc;
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use rdkafka::config::ClientConfig;
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::message::{Header, OwnedHeaders};
use rdkafka::producer::{BaseRecord, Producer, PurgeConfig, ThreadedProducer};
use traptor_core::{Record, SlotId};

use self::delivery::{Attempt, DeliveryContext, FailureLog};
use self::direct::DirectProducer;
pub use self::probe::{probe_kafka, KafkaProbe, TopicProbe};
use self::rebootstrap::BrokerRecovery;
use self::retry::RetryControl;
use super::spool::{Spool, SpoolSettings, SpooledRecord};
use super::{DirectWrite, Sink, SinkError, WriterStats};
use crate::config::{KafkaConfig, ProducerOptions};

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
    spool: Option<Arc<Spool>>,
    replayer: Option<JoinHandle<()>>,
    stop_replayer: Arc<AtomicBool>,
    /// Since when the in-flight bound (or the producer's queue) has been full.
    full_since: Option<Instant>,
    /// Whether the current spill was logged.
    spill_told: bool,
    slot_label: SlotLabel,
}

impl KafkaSink {
    pub fn new(
        config: &KafkaConfig,
        stats: Arc<WriterStats>,
        closing: Arc<AtomicBool>,
    ) -> Result<Self, SinkError> {
        let spool = match &config.spool.dir {
            Some(dir) => {
                let settings = SpoolSettings {
                    dir: dir.clone(),
                    max_bytes: config.spool.max_bytes,
                    segment_bytes: config.spool.segment_bytes,
                };
                let spool = Spool::open(settings, stats.clone()).map_err(|e| {
                    SinkError::Setup(format!("cannot open the spool at {}: {e}", dir.display()))
                })?;
                Some(Arc::new(spool))
            }
            None => None,
        };
        let (retries, queue) = mpsc::channel();
        let failures = Arc::new(FailureLog::default());
        let context = DeliveryContext {
            stats: stats.clone(),
            failures: failures.clone(),
            max_attempts: config.max_delivery_attempts,
            retries,
            spool: spool.clone(),
        };
        let client_config = producer_config(config);
        let recovery = BrokerRecovery::new(
            client_config
                .get("bootstrap.servers")
                .or_else(|| client_config.get("metadata.broker.list")),
        );
        let producer: ThreadedProducer<DeliveryContext> = client_config
            .create_with_context(context)
            .map_err(|e| SinkError::Setup(creation_error_text(&e)))?;
        let retry_control = Arc::new(RetryControl::default());
        let retrier = retry::spawn(
            producer.clone(),
            queue,
            retry_control.clone(),
            stats.clone(),
            failures,
            spool.clone(),
            recovery,
        )
        .map_err(|e| SinkError::Setup(format!("cannot start the Kafka retry thread: {e}")))?;
        let stop_replayer = Arc::new(AtomicBool::new(false));
        let replayer = match &spool {
            Some(spool) => Some(
                replay::Replayer {
                    producer: producer.clone(),
                    spool: spool.clone(),
                    stats: stats.clone(),
                    max_in_flight: config.max_in_flight_records.max(1) as u64,
                    closing: closing.clone(),
                    stop: stop_replayer.clone(),
                }
                .spawn()
                .map_err(|e| {
                    SinkError::Setup(format!("cannot start the spool replay thread: {e}"))
                })?,
            ),
            None => None,
        };
        Ok(KafkaSink {
            producer,
            config: config.clone(),
            stats,
            closing,
            retry_control,
            retrier: Some(retrier),
            spool,
            replayer,
            stop_replayer,
            full_since: None,
            spill_told: false,
            slot_label: SlotLabel::default(),
        })
    }

    fn closing(&self) -> bool {
        self.closing.load(Ordering::Acquire)
    }

    fn max_in_flight(&self) -> u64 {
        self.config.max_in_flight_records.max(1) as u64
    }

    /// Whether Kafka has kept the in-flight bound (or its queue) full for longer than the
    /// spool's `spill_after_ms`: new records then go to the spool.
    fn stuck(&mut self) -> bool {
        if self.spool.is_none() {
            return false;
        }
        if self.stats.in_flight() < self.max_in_flight() {
            self.full_since = None;
            return false;
        }
        let since = *self.full_since.get_or_insert_with(Instant::now);
        since.elapsed() >= self.config.spool.spill_after()
    }

    /// Whether the next record goes to the spool: something is already spooled (it must be
    /// sent first), or Kafka has not taken records for too long.
    fn must_spool(&mut self) -> bool {
        let spooling = self.spool.as_ref().map(|spool| spool.is_spooling());
        match spooling {
            Some(spooling) => spooling || self.stuck(),
            None => false,
        }
    }

    /// Hands one record to librdkafka, waiting while it cannot take it (queue full, topic not
    /// known right now). Returns false, without enqueueing, when that lasted longer than the
    /// spool allows or shutdown began (`may_spill`, with a spool): the record is then for the
    /// spool.
    fn enqueue(&mut self, record: &Record, may_spill: bool) -> bool {
        let topic = self.config.topic_for(record.kind);
        let mut base = first_attempt(topic, record, &mut self.slot_label);
        let mut full_since: Option<Instant> = None;
        let mut told = false;
        loop {
            let (error, returned) = match self.producer.send(base) {
                Ok(()) => return true,
                Err(refused) => refused,
            };
            match refusal(&error) {
                Refusal::Permanent => {
                    give_up_refused(&self.stats, topic, record, &error);
                    return true;
                }
                wait => {
                    if wait == Refusal::NotNow && !told {
                        told = true;
                        tracing::warn!(topic, key = record.key.as_deref(), %error,
                            "Kafka cannot take the record right now; it waits (or goes to the spool) until Kafka can");
                    }
                    if self.closing() {
                        if may_spill && self.spool.is_some() {
                            return false;
                        }
                        self.stats.record_given_up(1);
                        tracing::error!(
                            topic,
                            key = record.key.as_deref(),
                            %error,
                            "shutting down while Kafka cannot take the record: record not delivered"
                        );
                        return true;
                    }
                    let since = *full_since.get_or_insert_with(Instant::now);
                    if may_spill
                        && self.spool.is_some()
                        && since.elapsed() >= self.config.spool.spill_after()
                    {
                        return false;
                    }
                    base = returned;
                    // The producer's polling thread serves deliveries meanwhile.
                    std::thread::sleep(Duration::from_millis(5));
                }
            }
        }
    }

    /// Writes `records` (already counted as queued) to the spool, waiting while it is full.
    /// If the spool cannot be written, they are handed to the producer instead: the streams
    /// then wait, as without a spool, but nothing is lost.
    fn spool_records(&mut self, records: &[Record]) {
        let Some(spool) = self.spool.clone() else {
            return;
        };
        if !self.spill_told {
            self.spill_told = true;
            tracing::warn!(spool = %spool.dir().display(), in_flight = self.stats.in_flight(),
                "Kafka is not taking records: new records go to the spool until it does");
        }
        let spooled: Vec<SpooledRecord> = records.iter().map(|r| self.spooled(r)).collect();
        let (appended, failure) = match spool.append_waiting(&spooled, &self.closing) {
            Ok(()) => (records.len(), None),
            Err(error) => (error.appended(), Some(error)),
        };
        self.stats.record_spooled(appended as u64);
        let rest = &records[appended..];
        match failure {
            None => {}
            Some(error @ super::spool::AppendError::Full { .. }) => {
                self.stats.record_given_up(rest.len() as u64);
                tracing::error!(records = rest.len(), %error, "records not delivered");
            }
            Some(error) => {
                tracing::error!(spool = %spool.dir().display(), %error, records = rest.len(),
                    "cannot write to the spool: holding records in memory instead (streams wait)");
                for record in rest {
                    self.enqueue(record, false);
                }
                self.wait_for_room(false);
            }
        }
    }

    /// A record as the spool keeps it: with the topic and headers it will be sent with.
    fn spooled(&self, record: &Record) -> SpooledRecord {
        let mut headers = vec![(
            MESSAGE_TYPE_HEADER.to_owned(),
            Some(record.kind.as_str().as_bytes().to_vec()),
        )];
        if let Some(slot) = &record.slot {
            headers.push((SLOT_HEADER.to_owned(), Some(slot.to_string().into_bytes())));
        }
        SpooledRecord {
            kind: Some(record.kind),
            topic: self.config.topic_for(record.kind).to_owned(),
            key: record.key.as_ref().map(|k| k.as_bytes().to_vec()),
            headers,
            payload: record.payload.clone(),
        }
    }

    /// Returns once fewer than `max_in_flight_records` records await acknowledgement, or (with
    /// a spool and `may_spill`) once the bound has been reached for longer than
    /// `spill_after_ms`, so that the next records go to the spool.
    fn wait_for_room(&mut self, may_spill: bool) {
        let max = self.max_in_flight();
        loop {
            if self.stats.in_flight() < max {
                self.full_since = None;
                return;
            }
            if self.closing() || (may_spill && self.stuck()) {
                return;
            }
            self.full_since.get_or_insert_with(Instant::now);
            std::thread::sleep(Duration::from_millis(2));
        }
    }

    /// At shutdown, takes back from the producer what Kafka did not take and spools it.
    fn spool_what_is_left(&mut self, deadline: Instant) {
        let Some(spool) = self.spool.clone() else {
            return;
        };
        let left = self.stats.in_flight();
        tracing::warn!(records = left, spool = %spool.dir().display(),
            "Kafka did not take every record in time: moving them to the spool for the next run");
        self.retry_control.spool_all.store(true, Ordering::Release);
        self.producer
            .purge(PurgeConfig::default().queue().inflight());
        while self.stats.in_flight() > 0 && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(10));
        }
    }
}

impl Sink for KafkaSink {
    fn name(&self) -> &'static str {
        "kafka"
    }

    fn write(&mut self, records: &[Record]) -> Result<(), SinkError> {
        let mut next = 0;
        while next < records.len() {
            if self.must_spool() {
                self.stats.record_queued((records.len() - next) as u64);
                self.spool_records(&records[next..]);
                return Ok(());
            }
            self.stats.record_queued(1);
            if !self.enqueue(&records[next], true) {
                self.stats.record_queued((records.len() - next - 1) as u64);
                self.spool_records(&records[next..]);
                return Ok(());
            }
            next += 1;
        }
        if self.spool.as_ref().is_some_and(|s| !s.is_spooling()) {
            self.spill_told = false;
        }
        self.wait_for_room(true);
        Ok(())
    }

    fn flush(&mut self, timeout: Duration) -> usize {
        let deadline = Instant::now() + timeout;
        // With a spool, keep some of the time to move what Kafka did not take to disk.
        let deliver_until = match (&self.spool, self.closing()) {
            (Some(_), true) => deadline - (timeout / 4).min(Duration::from_secs(5)),
            _ => deadline,
        };
        self.retry_control.hurry.store(true, Ordering::Release);
        loop {
            let now = Instant::now();
            if self.stats.in_flight() == 0 || now >= deliver_until {
                break;
            }
            let slice = (deliver_until - now).min(Duration::from_millis(100));
            // A timeout here only means some records are still in flight; the loop re-checks.
            let _ = self.producer.flush(slice);
        }
        self.retry_control.hurry.store(false, Ordering::Release);
        if self.stats.in_flight() > 0 && self.closing() {
            self.spool_what_is_left(deadline);
        }
        if let Some(spool) = &self.spool {
            spool.save_progress();
            if let Err(error) = spool.sync() {
                tracing::error!(spool = %spool.dir().display(), %error, "cannot sync the spool to disk");
            }
            let (records, bytes) = spool.pending();
            if records > 0 {
                tracing::info!(spool = %spool.dir().display(), records, bytes,
                    "records wait in the spool");
            }
        }
        self.stats.in_flight() as usize
    }

    fn direct(&self) -> Option<Arc<dyn DirectWrite>> {
        if !self.config.produce_from_streams {
            return None;
        }
        Some(Arc::new(DirectProducer {
            producer: self.producer.clone(),
            config: self.config.clone(),
            stats: self.stats.clone(),
            spool: self.spool.clone(),
            closing: self.closing.clone(),
        }))
    }
}

impl Drop for KafkaSink {
    fn drop(&mut self) {
        self.stop_replayer.store(true, Ordering::Release);
        if let Some(replayer) = self.replayer.take() {
            let _ = replayer.join();
        }
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

/// Whether librdkafka accepts the producer settings of `config`: every option name known, every
/// value valid, every feature asked for built in. Connects to nothing: for
/// `traptor-supervisor check`, so that a misspelled option fails there rather than at start.
pub fn check_producer_settings(config: &KafkaConfig) -> Result<(), SinkError> {
    producer_config(config)
        .create_native_config()
        .map(drop)
        .map_err(|e| {
            SinkError::Setup(format!(
                "librdkafka refuses the [kafka] settings: {}",
                settings_error_text(&e)
            ))
        })
}

/// Why librdkafka could not create the producer, and what to look at.
fn creation_error_text(error: &KafkaError) -> String {
    format!(
        "cannot create the Kafka producer: {}{}",
        settings_error_text(error),
        creation_hint(error)
    )
}

/// What to look at when librdkafka cannot create the producer for a reason its own text does
/// not name: it loads TLS keys and certificates then, not when the option is set.
fn creation_hint(error: &KafkaError) -> &'static str {
    let text = error.to_string();
    if text.contains("mac verify failure") {
        " (the PKCS#12 keystore could not be opened with the ssl.keystore.password given: is it \
         the right password?)"
    } else {
        ""
    }
}

/// librdkafka's reason for refusing a setting, naming the option. rdkafka's own text of the
/// error ends with the option's value, which may be a password under a misspelled name: the
/// value is shown only for options [`ProducerOptions::is_shown`] allows.
fn settings_error_text(error: &KafkaError) -> String {
    match error {
        KafkaError::ClientConfig(_, description, name, value) => {
            if ProducerOptions::is_shown(name) || value.is_empty() {
                description.clone()
            } else {
                description.replace(value.as_str(), "<redacted>")
            }
        }
        other => other.to_string(),
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
        // Never time a record out: librdkafka holds it through an outage and retries it under
        // its original sequence number, so it cannot be written twice (see the module doc).
        .set("message.timeout.ms", "0")
        .set("compression.type", config.compression.as_str())
        // Broker states for readiness (`/readyz`); an operator's own setting wins.
        .set("statistics.interval.ms", "5000");
    for (name, value) in &config.producer.0 {
        client.set(name, value);
    }
    client
}

/// The last slot's header value (`<type>:<id>`), kept because a batch's records all come
/// from one stream: formatting it anew for each record was a measurable share of the writer.
#[derive(Debug, Default)]
struct SlotLabel {
    last: Option<(SlotId, String)>,
}

impl SlotLabel {
    fn of(&mut self, slot: &SlotId) -> &str {
        let fresh = match &self.last {
            Some((cached, _)) => cached != slot,
            None => true,
        };
        if fresh {
            self.last = Some((slot.clone(), slot.to_string()));
        }
        self.last.as_ref().map_or("", |(_, label)| label.as_str())
    }
}

/// A record's first attempt as librdkafka takes it: key = the tweet id, headers = its kind
/// and, if it came from a stream, its slot.
fn first_attempt<'a>(
    topic: &'a str,
    record: &'a Record,
    slot_label: &mut SlotLabel,
) -> BaseRecord<'a, [u8], [u8], Box<Attempt>> {
    let mut headers = OwnedHeaders::new_with_capacity(2).insert(Header {
        key: MESSAGE_TYPE_HEADER,
        value: Some(record.kind.as_str()),
    });
    if let Some(slot) = &record.slot {
        headers = headers.insert(Header {
            key: SLOT_HEADER,
            value: Some(slot_label.of(slot)),
        });
    }
    let mut base = BaseRecord::with_opaque_to(topic, Attempt::first())
        .payload(record.payload.as_slice())
        .headers(headers);
    if let Some(key) = &record.key {
        base = base.key(key.as_bytes());
    }
    base
}

/// Accounts for a record librdkafka refused for a reason sending again cannot fix (too large,
/// invalid): it is logged and given up.
fn give_up_refused(stats: &WriterStats, topic: &str, record: &Record, error: &KafkaError) {
    stats.record_given_up(1);
    tracing::error!(topic, key = record.key.as_deref(), %error,
        bytes = record.payload.len(), "Kafka refused the record: it will not be delivered");
}

/// What a refusal by `producer.send` means for the record it refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Refusal {
    /// librdkafka's queue is full: wait for deliveries to make room (ordinary backpressure).
    QueueFull,
    /// Kafka cannot take the record right now, but may later: its topic or partition is not
    /// known at the moment (a broker that restarts can answer before it has loaded its topics,
    /// and librdkafka then takes the topic for gone), or the producer is unusable until a
    /// restart. Wait and send it again, or spool it; never give it up.
    NotNow,
    /// Sending the same bytes again cannot help (too large, invalid): give the record up.
    Permanent,
}

fn refusal(error: &KafkaError) -> Refusal {
    match error.rdkafka_error_code() {
        Some(RDKafkaErrorCode::QueueFull) => Refusal::QueueFull,
        Some(RDKafkaErrorCode::InvalidArgument) => Refusal::Permanent,
        _ if delivery::is_permanent(error) => Refusal::Permanent,
        _ => Refusal::NotNow,
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use rdkafka::consumer::{BaseConsumer, Consumer};
    use rdkafka::mocking::MockCluster;
    use rdkafka::{Message, Offset, TopicPartitionList};
    use traptor_core::MessageKind;

    use super::*;

    pub(super) const TOPIC: &str = "tweets";

    pub(super) fn tweet(id: u64) -> Record {
        Record {
            kind: MessageKind::Tweet,
            key: Some(id.to_string()),
            payload: format!("{{\"id\":{id}}}").into_bytes(),
            slot: None,
            received_at_ms: 0,
        }
    }

    /// A sink on the in-process mock cluster whose records time out quickly while it is down.
    pub(super) fn sink_on(
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

    pub(super) fn count_messages(bootstrap: &str) -> usize {
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

    /// Every codec the config offers, and TLS with SCRAM, are built into librdkafka: it
    /// refuses a setting it was built without when the producer is created, so traptor would
    /// not start with it.
    #[test]
    fn every_offered_codec_and_tls_with_scram_are_built_in() {
        use crate::config::Compression;
        use rdkafka::producer::BaseProducer;
        let base = KafkaConfig {
            bootstrap_servers: Some("127.0.0.1:9".to_owned()),
            ..KafkaConfig::default()
        };
        for compression in Compression::ALL {
            let config = KafkaConfig {
                compression,
                ..base.clone()
            };
            if let Err(error) = producer_config(&config).create::<BaseProducer>() {
                panic!("compression {compression:?}: {error}");
            }
        }
        let secured = [
            ("security.protocol", "sasl_ssl"),
            ("sasl.mechanisms", "SCRAM-SHA-512"),
            ("sasl.username", "traptor"),
            ("sasl.password", "not-a-real-password"),
            ("ssl.endpoint.identification.algorithm", "https"),
        ];
        let config = KafkaConfig {
            producer: ProducerOptions(
                secured
                    .iter()
                    .map(|(name, value)| (name.to_string(), value.to_string()))
                    .collect(),
            ),
            ..base
        };
        if let Err(error) = producer_config(&config).create::<BaseProducer>() {
            panic!("SASL_SSL with SCRAM-SHA-512: {error}");
        }
    }

    #[test]
    fn a_misspelled_option_is_refused_by_name_and_its_value_never_shown() {
        let options = |pairs: &[(&str, &str)]| {
            ProducerOptions(
                pairs
                    .iter()
                    .map(|(name, value)| (name.to_string(), value.to_string()))
                    .collect(),
            )
        };
        let config = KafkaConfig {
            producer: options(&[("sasl.pasword", "hunter2-secret")]),
            ..KafkaConfig::default()
        };
        let error = check_producer_settings(&config).unwrap_err().to_string();
        assert!(error.contains("sasl.pasword"), "{error}");
        assert!(!error.contains("hunter2"), "{error}");

        let config = KafkaConfig {
            producer: options(&[("sasl.password", "hunter2-secret"), ("linger.ms", "20")]),
            ..KafkaConfig::default()
        };
        check_producer_settings(&config).unwrap();
        let config = KafkaConfig {
            producer: options(&[("message.max.bytes", "lots")]),
            ..KafkaConfig::default()
        };
        let error = check_producer_settings(&config).unwrap_err().to_string();
        assert!(error.contains("message.max.bytes"), "{error}");
    }

    #[test]
    fn the_slot_label_follows_the_record_slot() {
        use traptor_core::StreamType;
        let mut label = SlotLabel::default();
        let track = SlotId::new(StreamType::Track, "7");
        let follow = SlotId::new(StreamType::Follow, "7");
        assert_eq!(label.of(&track), "track:7");
        assert_eq!(label.of(&track), "track:7");
        assert_eq!(label.of(&follow), "follow:7");
        assert_eq!(label.of(&SlotId::new(StreamType::Track, "12")), "track:12");
        assert_eq!(label.of(&track), "track:7");
    }

    #[test]
    fn a_refusal_is_final_only_when_sending_again_cannot_help() {
        use rdkafka::error::RDKafkaErrorCode as Code;
        let of = |code| refusal(&KafkaError::MessageProduction(code));
        assert_eq!(of(Code::QueueFull), Refusal::QueueFull);
        assert_eq!(of(Code::UnknownTopic), Refusal::NotNow);
        assert_eq!(of(Code::UnknownPartition), Refusal::NotNow);
        assert_eq!(of(Code::Fatal), Refusal::NotNow);
        assert_eq!(of(Code::MessageSizeTooLarge), Refusal::Permanent);
        assert_eq!(of(Code::InvalidArgument), Refusal::Permanent);
    }

    #[test]
    fn at_shutdown_a_record_the_full_queue_refuses_goes_to_the_spool() {
        let dir = tempfile::tempdir().unwrap();
        let mut producer = BTreeMap::new();
        producer.insert("queue.buffering.max.messages".to_owned(), "1".to_owned());
        let config = KafkaConfig {
            bootstrap_servers: Some("127.0.0.1:9".to_owned()),
            topic: TOPIC.to_owned(),
            producer: ProducerOptions(producer),
            spool: crate::config::SpoolConfig {
                dir: Some(dir.path().to_owned()),
                ..crate::config::SpoolConfig::default()
            },
            ..KafkaConfig::default()
        };
        let closing = Arc::new(AtomicBool::new(false));
        let mut sink = KafkaSink::new(&config, Arc::default(), closing.clone()).unwrap();
        closing.store(true, Ordering::SeqCst);
        sink.write(&[tweet(1), tweet(2), tweet(3)]).unwrap();
        let stats = sink.stats.snapshot();
        assert_eq!(
            (stats.queued, stats.in_flight, stats.spooled, stats.given_up),
            (3, 1, 2, 0),
            "{stats:?}"
        );
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
        // A record fails once its 300 ms message timeout is noticed, which librdkafka checks
        // about once a second, and later still on a busy machine: wait for it, bounded.
        let deadline = Instant::now() + Duration::from_secs(10);
        while sink.stats.snapshot().retried == 0 && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(50));
        }
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
        // Let the producer learn the topic's leader. On a busy machine that can take longer
        // than the 300 ms message timeout, so a warm-up record may itself be given up; the
        // counts below are taken relative to what the warm-up left.
        let mut warm_up_id = 0;
        while sink.stats.snapshot().delivered == 0 {
            assert!(warm_up_id < 20, "{:?}", sink.stats.snapshot());
            sink.write(&[tweet(warm_up_id)]).unwrap();
            assert_eq!(sink.flush(Duration::from_secs(10)), 0);
            warm_up_id += 1;
        }
        let before = sink.stats.snapshot();
        cluster.broker_down(1).unwrap();
        sink.write(&(100..105).map(tweet).collect::<Vec<_>>())
            .unwrap();
        let deadline = Instant::now() + Duration::from_secs(10);
        while sink.stats.in_flight() > 0 && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(50));
        }
        let stats = sink.stats.snapshot();
        assert_eq!(
            (stats.given_up - before.given_up, stats.in_flight),
            (5, 0),
            "{stats:?}"
        );
        // Each of the five failed twice: once retried, once given up.
        assert!(stats.retried - before.retried >= 5, "{stats:?}");
        assert_eq!(stats.failed, stats.retried + stats.given_up, "{stats:?}");
    }
}
