//! The producer's context: what happens when Kafka acknowledges (or fails) a record. Runs on
//! librdkafka's polling thread, so it only counts and hands failures to the retrier.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::Sender;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use rdkafka::client::ClientContext;
use rdkafka::config::RDKafkaLogLevel;
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::message::{DeliveryResult, Message};
use rdkafka::producer::ProducerContext;

use super::retry::Retry;
use crate::sinks::spool::{Spool, Ticket};
use crate::sinks::WriterStats;

/// Which attempt a record in flight is on (1 for the first send), and the spool entry it was
/// read from, if it was replayed. Travels with the record through librdkafka as its delivery
/// opaque.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Attempt {
    pub number: u32,
    pub replayed_from: Option<Ticket>,
}

impl Attempt {
    pub fn first() -> Box<Attempt> {
        Box::new(Attempt {
            number: 1,
            replayed_from: None,
        })
    }
}

/// Failures since the last summary, so an outage gives one log line per interval rather
/// than one per record.
#[derive(Debug, Default)]
pub(crate) struct FailureLog {
    pub failed: AtomicU64,
    pub given_up: AtomicU64,
    pub last_error: Mutex<Option<String>>,
    /// One record given up in this interval, as `topic/key`, so an operator can look for it.
    pub example_given_up: Mutex<Option<String>>,
}

impl FailureLog {
    pub fn note(&self, error: &KafkaError) {
        *self.last_error.lock().unwrap_or_else(|p| p.into_inner()) = Some(error.to_string());
    }
}

pub(crate) struct DeliveryContext {
    pub stats: Arc<WriterStats>,
    pub failures: Arc<FailureLog>,
    /// 0 = never give up on a record whose error may pass.
    pub max_attempts: u32,
    pub retries: Sender<Retry>,
    /// Where records go instead of being given up, if configured.
    pub spool: Option<Arc<Spool>>,
}

/// A pause that doubles with each failed attempt: 100 ms, 200 ms, ... up to 30 s.
pub(crate) fn backoff(failed_attempts: u32) -> Duration {
    let exponent = failed_attempts.saturating_sub(1).min(16);
    (Duration::from_millis(100) * 2u32.pow(exponent)).min(Duration::from_secs(30))
}

/// Errors that sending the same bytes again cannot fix.
pub(crate) fn is_permanent(error: &KafkaError) -> bool {
    matches!(
        error.rdkafka_error_code(),
        Some(
            RDKafkaErrorCode::MessageSizeTooLarge
                | RDKafkaErrorCode::InvalidMessageSize
                | RDKafkaErrorCode::InvalidMessage
                | RDKafkaErrorCode::InvalidRecord
        )
    )
}

/// Errors of records the sink itself took back from the producer (at shutdown).
pub(crate) fn is_purged(error: &KafkaError) -> bool {
    matches!(
        error.rdkafka_error_code(),
        Some(RDKafkaErrorCode::PurgeQueue | RDKafkaErrorCode::PurgeInflight)
    )
}

impl ClientContext for DeliveryContext {
    fn log(&self, level: RDKafkaLogLevel, facility: &str, message: &str) {
        match level {
            RDKafkaLogLevel::Emerg
            | RDKafkaLogLevel::Alert
            | RDKafkaLogLevel::Critical
            | RDKafkaLogLevel::Error => {
                tracing::error!(target: "librdkafka", facility, "{message}")
            }
            RDKafkaLogLevel::Warning => tracing::warn!(target: "librdkafka", facility, "{message}"),
            RDKafkaLogLevel::Notice | RDKafkaLogLevel::Info => {
                tracing::info!(target: "librdkafka", facility, "{message}")
            }
            RDKafkaLogLevel::Debug => tracing::debug!(target: "librdkafka", facility, "{message}"),
        }
    }

    fn stats_raw(&self, statistics: &[u8]) {
        match serde_json::from_slice::<BrokerStates>(statistics) {
            Ok(states) => {
                let (up, known) = states.counts();
                self.stats.kafka().record_brokers(up, known);
            }
            Err(error) => {
                tracing::debug!(target: "librdkafka", %error, "unreadable statistics report")
            }
        }
    }

    fn error(&self, error: KafkaError, reason: &str) {
        if error.rdkafka_error_code() == Some(RDKafkaErrorCode::Fatal) {
            self.stats
                .kafka()
                .record_fatal(&format!("{error}: {reason}"));
            tracing::error!(target: "librdkafka", %error, reason, "the Kafka producer hit a fatal error");
        } else {
            // Broker connection problems: librdkafka reconnects on its own. "All brokers are
            // down" follows each broker's own reason, which is the one worth keeping.
            if error.rdkafka_error_code() != Some(RDKafkaErrorCode::AllBrokersDown) {
                let text = if reason.is_empty() {
                    error.to_string()
                } else {
                    reason.to_owned()
                };
                self.stats.kafka().record_error(&text);
            }
            tracing::warn!(target: "librdkafka", %error, reason, "Kafka client error");
        }
    }
}

/// The part of librdkafka's statistics report that readiness needs: each broker's state.
#[derive(Debug, serde::Deserialize)]
struct BrokerStates {
    #[serde(default)]
    brokers: std::collections::HashMap<String, BrokerState>,
}

#[derive(Debug, serde::Deserialize)]
struct BrokerState {
    #[serde(default)]
    source: String,
    #[serde(default)]
    state: String,
}

impl BrokerStates {
    /// (brokers `UP`, brokers known), leaving out librdkafka's internal pseudo-brokers.
    fn counts(&self) -> (u64, u64) {
        let real = self
            .brokers
            .values()
            .filter(|b| b.source != "internal" && b.source != "logical");
        real.fold((0, 0), |(up, known), b| {
            (up + u64::from(b.state == "UP"), known + 1)
        })
    }
}

impl ProducerContext for DeliveryContext {
    type DeliveryOpaque = Box<Attempt>;

    fn delivery(&self, result: &DeliveryResult<'_>, attempt: Box<Attempt>) {
        let Attempt {
            number: attempts,
            replayed_from,
        } = *attempt;
        let (error, message) = match result {
            Ok(_) => {
                self.stats.record_delivered(1);
                if let (Some(spool), Some(ticket)) = (&self.spool, replayed_from) {
                    spool.settle(ticket);
                }
                return;
            }
            Err((error, message)) => (error, message),
        };
        if is_purged(error) {
            // Taken back at shutdown: spooled if possible, never counted as a broker failure.
            self.spool_or_give_up(message, error, attempts, replayed_from, false);
            return;
        }
        if self.failures.failed.fetch_add(1, Ordering::Relaxed) == 0 {
            // The first failure after a quiet spell is told at once; the rest in summaries.
            tracing::warn!(topic = message.topic(), %error, attempts, "Kafka delivery failed; the record will be retried");
        }
        self.failures.note(error);
        if is_permanent(error) {
            self.give_up(
                message.topic(),
                message.key(),
                error,
                attempts,
                replayed_from,
            );
            return;
        }
        if self.max_attempts > 0 && attempts >= self.max_attempts {
            self.spool_or_give_up(message, error, attempts, replayed_from, true);
            return;
        }
        let retry = Retry {
            message: message.detach(),
            attempts,
            due: Instant::now() + backoff(attempts),
            replayed_from,
            to_spool: false,
        };
        match self.retries.send(retry) {
            Ok(()) => self.stats.record_retry(),
            // The sink is being dropped: nothing will send it again.
            Err(_) => self.give_up(
                message.topic(),
                message.key(),
                error,
                attempts,
                replayed_from,
            ),
        }
    }
}

impl DeliveryContext {
    /// Hands a record the producer could not deliver to the retrier for spooling (the
    /// spool is not written here: this thread must never wait for disk room), or gives it up
    /// when there is no spool.
    fn spool_or_give_up(
        &self,
        message: &rdkafka::message::BorrowedMessage<'_>,
        error: &KafkaError,
        attempts: u32,
        replayed_from: Option<Ticket>,
        attempt_failed: bool,
    ) {
        if self.spool.is_some() {
            let retry = Retry {
                message: message.detach(),
                attempts,
                due: Instant::now(),
                replayed_from,
                to_spool: true,
            };
            if self.retries.send(retry).is_ok() {
                if attempt_failed {
                    self.stats.record_failed_attempt();
                }
                return;
            }
        }
        self.give_up(
            message.topic(),
            message.key(),
            error,
            attempts,
            replayed_from,
        );
    }

    fn give_up(
        &self,
        topic: &str,
        key: Option<&[u8]>,
        error: &KafkaError,
        attempts: u32,
        replayed_from: Option<Ticket>,
    ) {
        if let (Some(spool), Some(ticket)) = (&self.spool, replayed_from) {
            spool.settle(ticket);
        }
        self.stats.record_failed_for_good();
        self.failures.given_up.fetch_add(1, Ordering::Relaxed);
        let key = key.map(String::from_utf8_lossy).unwrap_or_default();
        let mut example = self
            .failures
            .example_given_up
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        if example.is_none() {
            tracing::error!(topic, key = %key, %error, attempts, "Kafka record given up: it will not be delivered");
            *example = Some(format!("{topic}/{key}"));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn broker_states_count_real_brokers_only() {
        let report = br#"{"name":"p","brokers":{
            ":0/internal":{"source":"internal","state":"UP"},
            "127.0.0.1:9092/bootstrap":{"source":"configured","state":"DOWN"},
            "127.0.0.1:9092/1":{"source":"learned","state":"UP"}}}"#;
        let states: BrokerStates = serde_json::from_slice(report).unwrap();
        assert_eq!(states.counts(), (1, 2));
    }

    #[test]
    fn backoff_doubles_up_to_a_cap() {
        assert_eq!(backoff(1), Duration::from_millis(100));
        assert_eq!(backoff(2), Duration::from_millis(200));
        assert_eq!(backoff(5), Duration::from_millis(1600));
        assert_eq!(backoff(30), Duration::from_secs(30));
    }

    #[test]
    fn only_unfixable_errors_are_permanent() {
        assert!(is_permanent(&KafkaError::MessageProduction(
            RDKafkaErrorCode::MessageSizeTooLarge
        )));
        assert!(!is_permanent(&KafkaError::MessageProduction(
            RDKafkaErrorCode::MessageTimedOut
        )));
        assert!(!is_permanent(&KafkaError::MessageProduction(
            RDKafkaErrorCode::UnknownTopicOrPartition
        )));
        assert!(!is_permanent(&KafkaError::MessageProduction(
            RDKafkaErrorCode::PurgeQueue
        )));
        assert!(is_purged(&KafkaError::MessageProduction(
            RDKafkaErrorCode::PurgeInflight
        )));
    }
}
