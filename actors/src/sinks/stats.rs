//! Counters of a writer, shared with status and metrics without asking the actor.

use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::Duration;

use serde::{Deserialize, Serialize};

/// What a writer did with the records it was given. Updated by the writer (and, for Kafka, by
/// the producer's delivery callbacks on librdkafka's thread), read by anyone holding the `Arc`.
#[derive(Debug, Default)]
pub struct WriterStats {
    /// Records accepted from the streams.
    queued: AtomicU64,
    /// Records the destination confirmed (Kafka acknowledged, or written and flushed).
    delivered: AtomicU64,
    /// Delivery attempts that failed (each retried or, in the end, given up).
    failed: AtomicU64,
    /// Records sent again after a failed attempt.
    retried: AtomicU64,
    /// Records that will never be delivered (attempts exhausted, refused as too large, or
    /// abandoned at shutdown); each is logged at error level.
    given_up: AtomicU64,
    /// Accepted but not yet delivered nor given up (held by the producer or awaiting a retry).
    /// Records in the spool are not in flight: they are on disk, not in memory.
    in_flight: AtomicI64,
    /// Records written to the spool (new records while Kafka was down, or records the
    /// producer failed to deliver).
    spooled: AtomicU64,
    /// Records read back from the spool and handed to the producer (including records an
    /// earlier run spooled).
    replayed: AtomicU64,
    /// Records in the spool not yet delivered (including an earlier run's).
    spool_records: AtomicU64,
    /// Bytes of the spool's files on disk.
    spool_bytes: AtomicU64,
    /// What the Kafka producer last said about its brokers (unused by other sinks).
    kafka: KafkaHealth,
}

/// The Kafka producer's view of its brokers, from librdkafka's periodic statistics and its
/// error callback, so readiness can tell "Kafka unreachable" without asking the producer.
#[derive(Debug, Default)]
pub struct KafkaHealth {
    /// Statistics reports received so far (0: nothing known yet).
    reports: AtomicU64,
    /// Brokers in state `UP` at the last report.
    brokers_up: AtomicU64,
    /// Brokers known (configured or learned) at the last report.
    brokers_known: AtomicU64,
    /// Reports in a row, up to the last, in which the producer knew no broker at all.
    reports_without_brokers: AtomicU64,
    /// Times the bootstrap servers were added again to a producer that had lost every broker
    /// (see `sinks::kafka::rebootstrap`).
    brokers_readded: AtomicU64,
    /// Seconds records have waited in flight, with a broker up, without any delivery report
    /// (see `sinks::kafka::stall`); 0 while reports come.
    stalled_seconds: AtomicU64,
    /// A fatal producer error: the producer cannot go on and the process must restart.
    fatal: Mutex<Option<String>>,
    /// librdkafka's last reason for a failed broker connection (refused, authentication
    /// failed, certificate not trusted): "no broker up" alone does not say what to fix.
    last_error: Mutex<Option<String>>,
}

/// A copy of [`KafkaHealth`] at one moment.
///
/// Also the `kafka` part of `/status`'s `writer` section (`status::WriterReport`), under the
/// names given here.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct KafkaHealthSnapshot {
    /// Statistics reports received (0: nothing known yet).
    pub reports: u64,
    pub brokers_up: u64,
    pub brokers_known: u64,
    pub brokers_readded: u64,
    /// Seconds records have waited in flight, with a broker up, without any delivery report.
    pub stalled_seconds: u64,
    #[serde(rename = "fatal_error")]
    pub fatal: Option<String>,
    pub last_error: Option<String>,
}

impl KafkaHealth {
    /// How long records may wait, with a broker up, without any delivery report before the
    /// producer counts as stalled (logged, and `/readyz` says so). Longer than any pause of a
    /// working cluster: a dead broker holds acknowledgements for `broker.session.timeout.ms`
    /// (9 s by default), a leader election for seconds.
    pub const STALLED_AFTER: Duration = Duration::from_secs(120);

    /// A statistics report: `up` of `known` brokers are connected.
    pub fn record_brokers(&self, up: u64, known: u64) {
        self.brokers_up.store(up, Ordering::Relaxed);
        self.brokers_known.store(known, Ordering::Relaxed);
        if known == 0 {
            self.reports_without_brokers.fetch_add(1, Ordering::Relaxed);
        } else {
            self.reports_without_brokers.store(0, Ordering::Relaxed);
        }
        self.reports.fetch_add(1, Ordering::Release);
    }

    /// Brokers in state `UP` at the last statistics report.
    pub fn brokers_up(&self) -> u64 {
        self.brokers_up.load(Ordering::Relaxed)
    }

    /// For how long records have waited without a delivery report, with a broker up.
    pub fn record_stalled(&self, waited: Duration) {
        self.stalled_seconds
            .store(waited.as_secs(), Ordering::Relaxed);
    }

    /// Statistics reports in a row, up to the last, in which the producer knew no broker.
    pub fn reports_without_brokers(&self) -> u64 {
        self.reports_without_brokers.load(Ordering::Relaxed)
    }

    /// The bootstrap servers were added again; the count of reports without brokers starts
    /// over, so the next attempt waits for fresh reports.
    pub fn record_brokers_readded(&self) {
        self.brokers_readded.fetch_add(1, Ordering::Relaxed);
        self.reports_without_brokers.store(0, Ordering::Relaxed);
    }

    pub fn record_fatal(&self, error: &str) {
        *self.fatal.lock().unwrap_or_else(|p| p.into_inner()) = Some(error.to_owned());
    }

    pub fn record_error(&self, error: &str) {
        *self.last_error.lock().unwrap_or_else(|p| p.into_inner()) = Some(error.to_owned());
    }

    pub fn snapshot(&self) -> KafkaHealthSnapshot {
        KafkaHealthSnapshot {
            reports: self.reports.load(Ordering::Acquire),
            brokers_up: self.brokers_up.load(Ordering::Relaxed),
            brokers_known: self.brokers_known.load(Ordering::Relaxed),
            brokers_readded: self.brokers_readded.load(Ordering::Relaxed),
            stalled_seconds: self.stalled_seconds.load(Ordering::Relaxed),
            fatal: self.fatal.lock().unwrap_or_else(|p| p.into_inner()).clone(),
            last_error: self
                .last_error
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .clone(),
        }
    }
}

/// A copy of the counters at one moment, for status lines and metrics. Each field means what
/// the [`WriterStats`] field of the same name counts.
///
/// The single definition of these counters: `/status` serializes them inline in its `writer`
/// section (`status::WriterReport`), so a counter added here shows up there without a second
/// list to keep in step.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct WriterStatsSnapshot {
    pub queued: u64,
    pub delivered: u64,
    pub failed: u64,
    pub retried: u64,
    pub given_up: u64,
    pub in_flight: u64,
    pub spooled: u64,
    pub replayed: u64,
    pub spool_records: u64,
    pub spool_bytes: u64,
}

impl WriterStats {
    pub fn snapshot(&self) -> WriterStatsSnapshot {
        WriterStatsSnapshot {
            queued: self.queued.load(Ordering::Relaxed),
            delivered: self.delivered.load(Ordering::Relaxed),
            failed: self.failed.load(Ordering::Relaxed),
            retried: self.retried.load(Ordering::Relaxed),
            given_up: self.given_up.load(Ordering::Relaxed),
            in_flight: self.in_flight(),
            spooled: self.spooled.load(Ordering::Relaxed),
            replayed: self.replayed.load(Ordering::Relaxed),
            spool_records: self.spool_records.load(Ordering::Relaxed),
            spool_bytes: self.spool_bytes.load(Ordering::Relaxed),
        }
    }

    /// The Kafka producer's broker health (never reported by other sinks).
    pub fn kafka(&self) -> &KafkaHealth {
        &self.kafka
    }

    pub fn in_flight(&self) -> u64 {
        self.in_flight.load(Ordering::Acquire).max(0) as u64
    }

    /// `n` records accepted and now in flight.
    pub(crate) fn record_queued(&self, n: u64) {
        self.queued.fetch_add(n, Ordering::Relaxed);
        self.in_flight.fetch_add(n as i64, Ordering::AcqRel);
    }

    /// Takes back `n` records counted by [`record_queued`](Self::record_queued) that were
    /// not handed over after all (a stream's direct attempt that must go to the writer).
    pub(crate) fn record_not_queued(&self, n: u64) {
        self.queued.fetch_sub(n, Ordering::Relaxed);
        self.in_flight.fetch_sub(n as i64, Ordering::AcqRel);
    }

    pub(crate) fn record_delivered(&self, n: u64) {
        self.delivered.fetch_add(n, Ordering::Relaxed);
        self.in_flight.fetch_sub(n as i64, Ordering::AcqRel);
    }

    /// A failed attempt whose record will be sent again.
    pub(crate) fn record_retry(&self) {
        self.failed.fetch_add(1, Ordering::Relaxed);
        self.retried.fetch_add(1, Ordering::Relaxed);
    }

    /// A failed attempt after which the record goes to the spool (counted there).
    pub(crate) fn record_failed_attempt(&self) {
        self.failed.fetch_add(1, Ordering::Relaxed);
    }

    /// A failed attempt after which the record is given up.
    pub(crate) fn record_failed_for_good(&self) {
        self.failed.fetch_add(1, Ordering::Relaxed);
        self.record_given_up(1);
    }

    /// `n` records left memory for the spool.
    pub(crate) fn record_spooled(&self, n: u64) {
        self.spooled.fetch_add(n, Ordering::Relaxed);
        self.in_flight.fetch_sub(n as i64, Ordering::AcqRel);
    }

    /// `n` records came back from the spool into the producer.
    pub(crate) fn record_replayed(&self, n: u64) {
        self.replayed.fetch_add(n, Ordering::Relaxed);
        self.in_flight.fetch_add(n as i64, Ordering::AcqRel);
    }

    /// The spool now holds `records` undelivered records in `bytes` bytes of files.
    pub(crate) fn set_spool(&self, records: u64, bytes: u64) {
        self.spool_records.store(records, Ordering::Relaxed);
        self.spool_bytes.store(bytes, Ordering::Relaxed);
    }

    /// Records given up without a delivery attempt failing (e.g. refused at enqueue, or
    /// abandoned at shutdown).
    pub(crate) fn record_given_up(&self, n: u64) {
        self.given_up.fetch_add(n, Ordering::Relaxed);
        self.in_flight.fetch_sub(n as i64, Ordering::AcqRel);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn in_flight_follows_queued_minus_settled() {
        let stats = WriterStats::default();
        stats.record_queued(5);
        stats.record_delivered(2);
        stats.record_retry();
        stats.record_failed_for_good();
        stats.record_given_up(1);
        stats.record_spooled(1);
        stats.record_replayed(1);
        stats.set_spool(1, 100);
        let snapshot = stats.snapshot();
        assert_eq!(
            snapshot,
            WriterStatsSnapshot {
                queued: 5,
                delivered: 2,
                failed: 2,
                retried: 1,
                given_up: 2,
                in_flight: 1,
                spooled: 1,
                replayed: 1,
                spool_records: 1,
                spool_bytes: 100,
            }
        );
    }
}
