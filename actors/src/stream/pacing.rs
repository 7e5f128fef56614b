//! Per-API-key pacing of connection attempts, shared by every stream of the process.
//!
//! The streaming API rate-limits (HTTP 420) credentials that connect too often, and rule
//! changes, restarts and failovers can make many streams reconnect at once. Backoff alone
//! paces one stream; the [`Pacer`] paces all attempts made with one key, whatever stream
//! makes them.

use std::num::NonZeroU32;
use std::time::Duration;

use governor::clock::{Clock, MonotonicClock};
use governor::middleware::NoOpMiddleware;
use governor::state::keyed::DashMapStateStore;
use governor::{Quota, RateLimiter};

/// How many connection attempts one API key may make: a burst, then one per `interval`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PacingConfig {
    /// Attempts allowed back to back after a quiet period.
    pub burst: u32,
    /// Then one more attempt per this interval.
    pub interval: Duration,
}

impl Default for PacingConfig {
    /// 5 quick attempts, then one per 20 s (at most 45 in 15 min per key) — well within "a few
    /// dozen connection attempts from time to time will not trigger a limit" (contract §2.7).
    fn default() -> Self {
        PacingConfig {
            burst: 5,
            interval: Duration::from_secs(20),
        }
    }
}

type KeyedLimiter = RateLimiter<
    String,
    DashMapStateStore<String>,
    MonotonicClock,
    NoOpMiddleware<<MonotonicClock as Clock>::Instant>,
>;

/// The shared per-key connect allowance. Cheap to query; wrap it in an `Arc` and hand the
/// same one to every stream.
pub struct Pacer {
    limiter: KeyedLimiter,
    clock: MonotonicClock,
}

impl std::fmt::Debug for Pacer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Pacer")
            .field("keys", &self.limiter.len())
            .finish()
    }
}

impl Pacer {
    pub fn new(config: PacingConfig) -> Self {
        let burst = NonZeroU32::new(config.burst.max(1)).unwrap_or(NonZeroU32::MIN);
        let interval = config.interval.max(Duration::from_nanos(1));
        let quota = Quota::with_period(interval)
            .expect("a non-zero interval")
            .allow_burst(burst);
        Pacer {
            limiter: RateLimiter::dashmap_with_clock(quota, MonotonicClock),
            clock: MonotonicClock,
        }
    }

    /// Takes one attempt from `key_name`'s allowance if there is one; otherwise says how long
    /// to wait before asking again.
    pub fn try_acquire(&self, key_name: &str) -> Result<(), Duration> {
        let outcome = self.limiter.check_key(&key_name.to_owned());
        // Forget keys whose allowance is full again, so the map only holds busy keys.
        self.limiter.retain_recent();
        outcome.map_err(|not_until| not_until.wait_time_from(self.clock.now()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_key_gets_its_burst_then_must_wait_about_one_interval() {
        let pacer = Pacer::new(PacingConfig {
            burst: 3,
            interval: Duration::from_secs(60),
        });
        for _ in 0..3 {
            assert_eq!(pacer.try_acquire("key-a"), Ok(()));
        }
        let wait = pacer.try_acquire("key-a").unwrap_err();
        assert!(
            wait > Duration::from_secs(59) && wait <= Duration::from_secs(60),
            "{wait:?}"
        );
    }

    #[test]
    fn keys_are_paced_independently() {
        let pacer = Pacer::new(PacingConfig {
            burst: 1,
            interval: Duration::from_secs(60),
        });
        assert_eq!(pacer.try_acquire("key-a"), Ok(()));
        assert!(pacer.try_acquire("key-a").is_err());
        assert_eq!(pacer.try_acquire("key-b"), Ok(()));
    }

    #[test]
    fn the_allowance_refills_with_time() {
        let pacer = Pacer::new(PacingConfig {
            burst: 1,
            interval: Duration::from_millis(20),
        });
        assert_eq!(pacer.try_acquire("key-a"), Ok(()));
        let wait = pacer.try_acquire("key-a").unwrap_err();
        std::thread::sleep(wait + Duration::from_millis(2));
        assert_eq!(pacer.try_acquire("key-a"), Ok(()));
    }
}
