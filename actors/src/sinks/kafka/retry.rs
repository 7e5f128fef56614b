//! The retrier: a thread that sends failed records again once their backoff has passed,
//! writes to the spool the records that are not to be sent again now (attempts exhausted, or
//! taken back at shutdown), and sums up delivery failures in the log. It also gives the
//! producer its brokers back should it lose them all (`rebootstrap`), and tells when it
//! stalls (`stall`).

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{Receiver, RecvTimeoutError};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use rdkafka::message::{Headers, Message, OwnedMessage};
use rdkafka::producer::{BaseRecord, ThreadedProducer};
use traptor_core::MessageKind;

use super::delivery::{backoff, Attempt, DeliveryContext, FailureLog};
use super::rebootstrap::BrokerRecovery;
use super::stall::StallWatch;
use super::Refusal;
use super::MESSAGE_TYPE_HEADER;
use crate::sinks::spool::{Spool, SpooledRecord, Ticket};
use crate::sinks::WriterStats;

/// A record whose last delivery attempt failed, waiting to be sent again.
pub(crate) struct Retry {
    pub message: OwnedMessage,
    /// Attempts made so far.
    pub attempts: u32,
    pub due: Instant,
    /// The spool entry the record was replayed from, settled once the record is safe.
    pub replayed_from: Option<Ticket>,
    /// Write it to the spool rather than send it again.
    pub to_spool: bool,
}

/// How often failures are summed up in the log while they last.
const SUMMARY_INTERVAL: Duration = Duration::from_secs(10);

/// Flags shared between the sink and its retrier thread.
#[derive(Default)]
pub(crate) struct RetryControl {
    pub stop: AtomicBool,
    /// Send everything now, ignoring backoff (while flushing).
    pub hurry: AtomicBool,
    /// Spool every record awaiting a retry instead of sending it (at shutdown, when Kafka
    /// did not take them in time).
    pub spool_all: AtomicBool,
}

pub(crate) fn spawn(
    producer: ThreadedProducer<DeliveryContext>,
    queue: Receiver<Retry>,
    control: Arc<RetryControl>,
    stats: Arc<WriterStats>,
    failures: Arc<FailureLog>,
    spool: Option<Arc<Spool>>,
    recovery: Option<BrokerRecovery>,
) -> std::io::Result<JoinHandle<()>> {
    std::thread::Builder::new()
        .name("kafka-retrier".to_owned())
        .spawn(move || {
            Retrier {
                producer,
                queue,
                control,
                stats,
                failures,
                spool,
                recovery,
                stall: StallWatch::new(Instant::now()),
                pending: Vec::new(),
            }
            .run()
        })
}

struct Retrier {
    producer: ThreadedProducer<DeliveryContext>,
    queue: Receiver<Retry>,
    control: Arc<RetryControl>,
    stats: Arc<WriterStats>,
    failures: Arc<FailureLog>,
    spool: Option<Arc<Spool>>,
    recovery: Option<BrokerRecovery>,
    stall: StallWatch,
    pending: Vec<Retry>,
}

impl Retrier {
    fn run(mut self) {
        let mut next_summary = Instant::now() + SUMMARY_INTERVAL;
        while !self.control.stop.load(Ordering::Acquire) {
            match self.queue.recv_timeout(Duration::from_millis(20)) {
                Ok(retry) => self.pending.push(retry),
                Err(RecvTimeoutError::Timeout) => {}
                Err(RecvTimeoutError::Disconnected) => break,
            }
            self.pending.extend(self.queue.try_iter());
            self.send_due();
            if let Some(recovery) = &mut self.recovery {
                recovery.check(&self.producer, &self.stats);
            }
            self.stall.check(&self.stats);
            if Instant::now() >= next_summary {
                self.summarize();
                next_summary = Instant::now() + SUMMARY_INTERVAL;
            }
        }
        self.pending.extend(self.queue.try_iter());
        if self.spool.is_some() {
            // Last chance: whatever awaits a retry goes to the spool rather than be lost.
            self.control.spool_all.store(true, Ordering::Release);
            self.send_due();
        }
        if !self.pending.is_empty() {
            let count = self.pending.len() as u64;
            self.stats.record_given_up(count);
            tracing::error!(
                records = count,
                "Kafka sink stopped with records still awaiting a retry: they are lost"
            );
        }
        self.summarize();
    }

    /// Spools what is bound for the spool, and sends every record whose backoff has passed
    /// (all of them when hurried).
    fn send_due(&mut self) {
        let now = Instant::now();
        let hurry = self.control.hurry.load(Ordering::Acquire);
        let spool_all = self.spool.is_some() && self.control.spool_all.load(Ordering::Acquire);
        let mut waiting = Vec::with_capacity(self.pending.len());
        for retry in std::mem::take(&mut self.pending) {
            if retry.to_spool || spool_all {
                if let Some(retry) = self.spool(retry) {
                    waiting.push(retry);
                }
                continue;
            }
            if !hurry && retry.due > now {
                waiting.push(retry);
                continue;
            }
            if let Some(retry) = self.resend(retry) {
                waiting.push(retry);
            }
        }
        self.pending = waiting;
    }

    /// Writes the record to the spool; gives it back when the spool is full. A spool that
    /// cannot be written sends the record again instead: late, but not lost.
    fn spool(&self, retry: Retry) -> Option<Retry> {
        let spool = self.spool.as_ref()?;
        match spool.try_append(std::slice::from_ref(&spooled_record(&retry.message))) {
            Ok(1) => {
                self.stats.record_spooled(1);
                if let Some(ticket) = retry.replayed_from {
                    spool.settle(ticket);
                }
                None
            }
            Ok(_) => Some(Retry {
                due: Instant::now() + Duration::from_millis(100),
                ..retry
            }),
            Err(error) => {
                tracing::error!(spool = %spool.dir().display(), %error,
                    "cannot write a failed record to the spool; sending it to Kafka again instead");
                self.resend(Retry {
                    to_spool: false,
                    ..retry
                })
            }
        }
    }

    /// Enqueues the record again; gives it back when the producer cannot take it now (queue
    /// full, or its topic not known right now: it is then tried again after a backoff).
    fn resend(&self, retry: Retry) -> Option<Retry> {
        let message = &retry.message;
        let attempt = Box::new(Attempt {
            number: retry.attempts + 1,
            replayed_from: retry.replayed_from,
        });
        let mut record: BaseRecord<'_, [u8], [u8], Box<Attempt>> =
            BaseRecord::with_opaque_to(message.topic(), attempt);
        if let Some(payload) = message.payload() {
            record = record.payload(payload);
        }
        if let Some(key) = message.key() {
            record = record.key(key);
        }
        if let Some(headers) = message.headers() {
            record = record.headers(headers.clone());
        }
        match self.producer.send(record) {
            Ok(()) => None,
            Err((error, _)) => match super::refusal(&error) {
                Refusal::QueueFull => Some(Retry {
                    due: Instant::now(),
                    ..retry
                }),
                Refusal::NotNow => {
                    // Summed up with the failures in the next log line.
                    self.failures.failed.fetch_add(1, Ordering::Relaxed);
                    self.failures.note(&error);
                    Some(Retry {
                        due: Instant::now() + backoff(retry.attempts),
                        ..retry
                    })
                }
                Refusal::Permanent => {
                    self.stats.record_given_up(1);
                    if let (Some(spool), Some(ticket)) = (&self.spool, retry.replayed_from) {
                        spool.settle(ticket);
                    }
                    let key = message
                        .key()
                        .map(String::from_utf8_lossy)
                        .unwrap_or_default();
                    tracing::error!(topic = message.topic(), key = %key, %error, "Kafka refused a retried record: it will not be delivered");
                    None
                }
            },
        }
    }

    /// One log line for the failures since the last one, if any.
    fn summarize(&self) {
        let failed = self.failures.failed.swap(0, Ordering::Relaxed);
        let given_up = self.failures.given_up.swap(0, Ordering::Relaxed);
        if failed == 0 && given_up == 0 {
            return;
        }
        let last_error = self
            .failures
            .last_error
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .take();
        let example = self
            .failures
            .example_given_up
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .take();
        let totals = self.stats.snapshot();
        if given_up > 0 {
            tracing::error!(
                failed,
                given_up,
                example = example.as_deref(),
                last_error = last_error.as_deref(),
                awaiting_retry = self.pending.len(),
                in_flight = totals.in_flight,
                total_given_up = totals.given_up,
                "Kafka deliveries failed and some records were given up"
            );
        } else {
            tracing::warn!(
                failed,
                last_error = last_error.as_deref(),
                awaiting_retry = self.pending.len(),
                in_flight = totals.in_flight,
                "Kafka deliveries failed; retrying"
            );
        }
    }
}

/// A message the producer gave back, as the spool keeps it.
fn spooled_record(message: &OwnedMessage) -> SpooledRecord {
    let headers: Vec<(String, Option<Vec<u8>>)> = message
        .headers()
        .map(|headers| {
            headers
                .iter()
                .map(|h| (h.key.to_owned(), h.value.map(<[u8]>::to_vec)))
                .collect()
        })
        .unwrap_or_default();
    let kind = headers
        .iter()
        .find(|(name, _)| name == MESSAGE_TYPE_HEADER)
        .and_then(|(_, value)| value.as_deref())
        .and_then(|value| {
            MessageKind::ALL
                .into_iter()
                .find(|k| k.as_str().as_bytes() == value)
        });
    SpooledRecord {
        kind,
        topic: message.topic().to_owned(),
        key: message.key().map(<[u8]>::to_vec),
        headers,
        payload: message.payload().unwrap_or_default().to_vec(),
    }
}
