//! The arithmetic of the reports: percentiles, rates, ratios and the ground-truth comparison
//! of what the emulator sent with what reached Kafka. Plain functions, tested on their own.

use std::collections::HashMap;
use std::time::Duration;

/// The nearest-rank percentile (`p` in 0..=100) of `values`; `None` when there are none.
/// Nearest rank keeps the answer one of the measured values (p99 of 100 is the 99th).
pub fn percentile(values: &[Duration], p: f64) -> Option<Duration> {
    if values.is_empty() {
        return None;
    }
    let mut sorted = values.to_vec();
    sorted.sort_unstable();
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    Some(sorted[rank.clamp(1, sorted.len()) - 1])
}

/// `count` per second over `elapsed` (0 for an empty window).
pub fn per_second(count: u64, elapsed: Duration) -> f64 {
    let secs = elapsed.as_secs_f64();
    if secs > 0.0 {
        count as f64 / secs
    } else {
        0.0
    }
}

/// What reached the destination compared with what was sent, id by id.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Reconciliation {
    /// Ids sent (counted with multiplicity: an id sent to two connections counts twice).
    pub sent: u64,
    /// Copies received of ids that were sent, up to the number sent.
    pub delivered: u64,
    /// Sent copies that never arrived.
    pub lost: u64,
    /// Copies received beyond the number sent.
    pub duplicated: u64,
    /// Copies of ids that were never sent.
    pub unexpected: u64,
}

impl Reconciliation {
    /// Nothing lost, nothing doubled, nothing invented.
    pub fn exact(&self) -> bool {
        self.lost == 0 && self.duplicated == 0 && self.unexpected == 0
    }
}

/// Compares the ids `sent` (each occurrence one copy) with `received` (id → copies).
pub fn reconcile(
    sent: impl IntoIterator<Item = u64>,
    received: &HashMap<u64, u32>,
) -> Reconciliation {
    let mut expected: HashMap<u64, u32> = HashMap::new();
    for id in sent {
        *expected.entry(id).or_default() += 1;
    }
    let mut result = Reconciliation::default();
    for (id, &want) in &expected {
        let got = received.get(id).copied().unwrap_or(0);
        result.sent += u64::from(want);
        result.delivered += u64::from(got.min(want));
        result.lost += u64::from(want.saturating_sub(got));
        result.duplicated += u64::from(got.saturating_sub(want));
    }
    result.unexpected = received
        .iter()
        .filter(|(id, _)| !expected.contains_key(id))
        .map(|(_, &n)| u64::from(n))
        .sum();
    result
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(values: &[u64]) -> Vec<Duration> {
        values.iter().map(|&v| Duration::from_millis(v)).collect()
    }

    #[test]
    fn percentiles_use_the_nearest_rank() {
        let values: Vec<Duration> = (1..=100).rev().map(Duration::from_millis).collect();
        assert_eq!(percentile(&values, 50.0), Some(Duration::from_millis(50)));
        assert_eq!(percentile(&values, 99.0), Some(Duration::from_millis(99)));
        assert_eq!(percentile(&values, 100.0), Some(Duration::from_millis(100)));
        assert_eq!(percentile(&values, 0.0), Some(Duration::from_millis(1)));
        assert_eq!(
            percentile(&ms(&[7, 3, 5]), 50.0),
            Some(Duration::from_millis(5))
        );
        assert_eq!(percentile(&[], 50.0), None);
    }

    #[test]
    fn rates_are_per_second_of_the_window() {
        assert_eq!(per_second(500, Duration::from_millis(250)), 2000.0);
        assert_eq!(per_second(5, Duration::ZERO), 0.0);
    }

    #[test]
    fn reconciliation_counts_losses_duplicates_and_strangers() {
        let received: HashMap<u64, u32> = [(1, 1), (2, 2), (4, 1), (9, 3)].into_iter().collect();
        // 3 is lost; 2 arrived twice; 9 was never sent; 4 was sent twice but arrived once.
        let result = reconcile([1, 2, 3, 4, 4], &received);
        assert_eq!(
            result,
            Reconciliation {
                sent: 5,
                delivered: 3,
                lost: 2,
                duplicated: 1,
                unexpected: 3,
            }
        );
        assert!(!result.exact());
        let clean: HashMap<u64, u32> = [(1, 1), (2, 1)].into_iter().collect();
        assert!(reconcile([2, 1], &clean).exact());
    }
}
