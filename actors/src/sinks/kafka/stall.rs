//! Notices a producer that makes no progress while Kafka looks fine: records in flight, a
//! broker up, and not one delivery report (success or failure) for a long time.
//!
//! With `message.timeout.ms = 0` librdkafka never gives a record back on its own, so a
//! producer stuck inside librdkafka (a partition left without a usable leader, a fault like
//! the one `rebootstrap` repairs but that it cannot see) would otherwise be silent: the writer
//! spools, the spool fills, and nothing says why. This watch only tells (log, `/status`,
//! `/readyz`); what to do is in docs/operations.md §5.1.

use std::time::{Duration, Instant};

use crate::sinks::{KafkaHealth, WriterStats};

/// Follows the delivery reports seen, from the retrier's loop.
#[derive(Debug)]
pub(crate) struct StallWatch {
    reports_seen: u64,
    progress_at: Instant,
    told: bool,
}

impl StallWatch {
    pub fn new(now: Instant) -> Self {
        StallWatch {
            // Never a real count: the first look counts as progress.
            reports_seen: u64::MAX,
            progress_at: now,
            told: false,
        }
    }

    /// Publishes for how long records have waited without a delivery report while a broker
    /// was up, and logs when that passes [`KafkaHealth::STALLED_AFTER`] and when it ends.
    pub fn check(&mut self, stats: &WriterStats) {
        let totals = stats.snapshot();
        let waited = self.observe(
            totals.delivered + totals.failed,
            totals.in_flight,
            stats.kafka().brokers_up(),
            Instant::now(),
        );
        stats.kafka().record_stalled(waited);
        if waited >= KafkaHealth::STALLED_AFTER && !self.told {
            self.told = true;
            tracing::warn!(
                in_flight = totals.in_flight,
                seconds = waited.as_secs(),
                "Kafka has acknowledged nothing for a long time although a broker is up and \
                 records wait: the producer may be stuck (see docs/operations.md, Kafka)"
            );
        } else if waited.is_zero() && self.told {
            self.told = false;
            tracing::info!("Kafka acknowledges records again");
        }
    }

    /// How long records have waited without a delivery report while a broker was up (zero
    /// while reports come, nothing waits, or no broker is up: an outage, told elsewhere).
    fn observe(&mut self, reports: u64, in_flight: u64, brokers_up: u64, now: Instant) -> Duration {
        if reports != self.reports_seen || in_flight == 0 || brokers_up == 0 {
            self.reports_seen = reports;
            self.progress_at = now;
            return Duration::ZERO;
        }
        now.duration_since(self.progress_at)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn waiting_counts_only_with_records_in_flight_a_broker_up_and_no_report() {
        let start = Instant::now();
        let mut watch = StallWatch::new(start);
        let later = |secs| start + Duration::from_secs(secs);
        assert_eq!(watch.observe(0, 5, 1, later(0)), Duration::ZERO);
        assert_eq!(watch.observe(0, 5, 1, later(30)), Duration::from_secs(30));
        assert_eq!(
            watch.observe(1, 5, 1, later(40)),
            Duration::ZERO,
            "a delivery report is progress"
        );
        assert_eq!(watch.observe(1, 5, 1, later(100)), Duration::from_secs(60));
        assert_eq!(
            watch.observe(1, 5, 0, later(110)),
            Duration::ZERO,
            "no broker up is an outage, not a stall"
        );
        assert_eq!(watch.observe(1, 5, 1, later(115)), Duration::from_secs(5));
        assert_eq!(
            watch.observe(1, 0, 1, later(300)),
            Duration::ZERO,
            "nothing waits"
        );
    }

    #[test]
    fn a_stall_is_published_for_readiness() {
        let stats = WriterStats::default();
        stats.kafka().record_brokers(1, 1);
        stats.record_queued(3);
        let mut watch = StallWatch::new(Instant::now() - Duration::from_secs(1_000));
        watch.check(&stats);
        assert_eq!(stats.kafka().snapshot().stalled_seconds, 0, "first look");
        watch.progress_at = Instant::now() - KafkaHealth::STALLED_AFTER;
        watch.check(&stats);
        assert!(stats.kafka().snapshot().stalled_seconds >= KafkaHealth::STALLED_AFTER.as_secs());
        assert!(watch.told);
        stats.record_delivered(3);
        watch.check(&stats);
        assert_eq!(stats.kafka().snapshot().stalled_seconds, 0);
        assert!(!watch.told);
    }
}
