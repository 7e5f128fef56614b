//! How long to wait before the next connection attempt, per the streaming API's reconnect
//! guidance (contract §2.7). Pure arithmetic over attempt counters: no clock, no I/O.

use std::time::Duration;

/// The waits of the reconnect policy. The defaults are the streaming API's documented values;
/// tests shrink them (see [`BackoffConfig::scaled`]) to exercise the same policy in seconds.
#[derive(Debug, Clone, PartialEq)]
pub struct BackoffConfig {
    /// Network errors (TCP, TLS, timeouts): the wait grows by this much per attempt (250 ms).
    pub network_step: Duration,
    /// ... up to this cap (16 s).
    pub network_max: Duration,
    /// HTTP errors worth retrying (5xx and other unexpected statuses): first wait (5 s),
    /// doubled per attempt ...
    pub http_initial: Duration,
    /// ... up to this cap (320 s).
    pub http_max: Duration,
    /// HTTP 420 / 429 (rate limited): first wait (60 s), doubled per attempt ...
    pub rate_limited_initial: Duration,
    /// ... up to this cap. The contract states none; 960 s (16 min, four doublings) keeps a
    /// rate-limited key trying a few times an hour instead of disappearing for days.
    pub rate_limited_max: Duration,
    /// 401 / 403: the credentials were refused. Retried on this slow, fixed schedule only,
    /// since hammering with bad credentials is what earns a 420.
    pub auth_failed_retry: Duration,
    /// 406 / 413 / 416: the filter itself was refused. Retried this slowly, or at once when
    /// the rules change.
    pub rejected_retry: Duration,
    /// A connection that streamed at least this long counts as *established*: its drop earns
    /// an immediate reconnect and clears every backoff counter. A shorter-lived connection's
    /// drop is treated as a network failure, so a server that accepts and drops at once
    /// cannot pull traptor into a reconnect storm.
    pub established_after: Duration,
}

impl Default for BackoffConfig {
    fn default() -> Self {
        BackoffConfig {
            network_step: Duration::from_millis(250),
            network_max: Duration::from_secs(16),
            http_initial: Duration::from_secs(5),
            http_max: Duration::from_secs(320),
            rate_limited_initial: Duration::from_secs(60),
            rate_limited_max: Duration::from_secs(960),
            auth_failed_retry: Duration::from_secs(10 * 60),
            rejected_retry: Duration::from_secs(15 * 60),
            established_after: Duration::from_secs(10),
        }
    }
}

impl BackoffConfig {
    /// The same policy with every duration multiplied by `factor` (e.g. `0.01` turns 5 s into
    /// 50 ms), for tests against the emulator that must run in seconds.
    ///
    /// # Panics
    /// If `factor` is negative, not finite, or makes a duration overflow.
    pub fn scaled(&self, factor: f64) -> BackoffConfig {
        let s = |d: Duration| d.mul_f64(factor);
        BackoffConfig {
            network_step: s(self.network_step),
            network_max: s(self.network_max),
            http_initial: s(self.http_initial),
            http_max: s(self.http_max),
            rate_limited_initial: s(self.rate_limited_initial),
            rate_limited_max: s(self.rate_limited_max),
            auth_failed_retry: s(self.auth_failed_retry),
            rejected_retry: s(self.rejected_retry),
            established_after: s(self.established_after),
        }
    }
}

/// The classes of failure that each have their own backoff curve.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FailureClass {
    /// TCP/TLS errors, connect or head timeouts, and connections that died young.
    Network,
    /// HTTP statuses worth retrying: 5xx and anything unexpected.
    Http,
    /// HTTP 420 / 429.
    RateLimited,
}

/// Counts consecutive failures per class and turns them into waits. Each class keeps its own
/// count, so a 503 after a run of network errors still starts at 5 s; all counts are cleared
/// when a connection becomes established.
#[derive(Debug, Clone)]
pub struct Backoff {
    config: BackoffConfig,
    network: u32,
    http: u32,
    rate_limited: u32,
}

/// One computed wait, with whether it has reached its class's cap (worth an alert).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Delay {
    pub wait: Duration,
    pub at_cap: bool,
}

impl Backoff {
    pub fn new(config: BackoffConfig) -> Self {
        Backoff {
            config,
            network: 0,
            http: 0,
            rate_limited: 0,
        }
    }

    pub fn config(&self) -> &BackoffConfig {
        &self.config
    }

    /// Records one more failure of `class` and returns the wait before the next attempt.
    pub fn next_delay(&mut self, class: FailureClass) -> Delay {
        let c = &self.config;
        match class {
            FailureClass::Network => {
                self.network = self.network.saturating_add(1);
                linear(c.network_step, self.network, c.network_max)
            }
            FailureClass::Http => {
                self.http = self.http.saturating_add(1);
                doubling(c.http_initial, self.http, c.http_max)
            }
            FailureClass::RateLimited => {
                self.rate_limited = self.rate_limited.saturating_add(1);
                doubling(
                    c.rate_limited_initial,
                    self.rate_limited,
                    c.rate_limited_max,
                )
            }
        }
    }

    /// Forgets every failure: called once a connection is established.
    pub fn reset(&mut self) {
        self.network = 0;
        self.http = 0;
        self.rate_limited = 0;
    }

    /// Consecutive failures so far, per class `(network, http, rate_limited)`.
    pub fn failures(&self) -> (u32, u32, u32) {
        (self.network, self.http, self.rate_limited)
    }
}

/// `step × attempt`, capped.
fn linear(step: Duration, attempt: u32, max: Duration) -> Delay {
    let wait = step.saturating_mul(attempt);
    cap(wait, max)
}

/// `initial × 2^(attempt-1)`, capped.
fn doubling(initial: Duration, attempt: u32, max: Duration) -> Delay {
    let exponent = attempt.saturating_sub(1).min(31);
    let wait = initial.saturating_mul(1u32 << exponent);
    cap(wait, max)
}

fn cap(wait: Duration, max: Duration) -> Delay {
    if wait >= max {
        Delay {
            wait: max,
            at_cap: true,
        }
    } else {
        Delay {
            wait,
            at_cap: false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn waits(class: FailureClass, n: usize) -> Vec<Duration> {
        let mut backoff = Backoff::new(BackoffConfig::default());
        (0..n).map(|_| backoff.next_delay(class).wait).collect()
    }

    #[test]
    fn network_errors_back_off_linearly_by_250ms_up_to_16s() {
        let got = waits(FailureClass::Network, 70);
        let expected: Vec<Duration> = (1..=70u64)
            .map(|n| Duration::from_millis((250 * n).min(16_000)))
            .collect();
        assert_eq!(got, expected);
        assert_eq!(&got[..4], &[250, 500, 750, 1000].map(Duration::from_millis));
        assert_eq!(
            got[63],
            Duration::from_secs(16),
            "the 64th attempt reaches the cap"
        );
    }

    #[test]
    fn http_errors_back_off_exponentially_from_5s_up_to_320s() {
        let got = waits(FailureClass::Http, 9);
        let expected = [5, 10, 20, 40, 80, 160, 320, 320, 320].map(Duration::from_secs);
        assert_eq!(got, expected);
    }

    #[test]
    fn rate_limits_back_off_exponentially_from_60s_up_to_960s() {
        let got = waits(FailureClass::RateLimited, 7);
        let expected = [60, 120, 240, 480, 960, 960, 960].map(Duration::from_secs);
        assert_eq!(got, expected);
    }

    #[test]
    fn the_cap_is_flagged_once_reached() {
        let mut backoff = Backoff::new(BackoffConfig::default());
        let flags: Vec<bool> = (0..8)
            .map(|_| backoff.next_delay(FailureClass::Http).at_cap)
            .collect();
        assert_eq!(
            flags,
            [false, false, false, false, false, false, true, true]
        );
    }

    #[test]
    fn classes_count_independently_and_reset_clears_all() {
        let mut backoff = Backoff::new(BackoffConfig::default());
        backoff.next_delay(FailureClass::Network);
        backoff.next_delay(FailureClass::Network);
        assert_eq!(
            backoff.next_delay(FailureClass::Http).wait,
            Duration::from_secs(5)
        );
        assert_eq!(
            backoff.next_delay(FailureClass::Network).wait,
            Duration::from_millis(750)
        );
        assert_eq!(backoff.failures(), (3, 1, 0));
        backoff.reset();
        assert_eq!(backoff.failures(), (0, 0, 0));
        assert_eq!(
            backoff.next_delay(FailureClass::Network).wait,
            Duration::from_millis(250)
        );
    }

    #[test]
    fn a_very_long_run_of_failures_never_overflows() {
        let mut backoff = Backoff::new(BackoffConfig::default());
        for _ in 0..100_000 {
            backoff.next_delay(FailureClass::RateLimited);
        }
        assert_eq!(
            backoff.next_delay(FailureClass::RateLimited).wait,
            Duration::from_secs(960)
        );
    }

    #[test]
    fn scaling_shrinks_every_wait_by_the_same_factor() {
        let config = BackoffConfig::default().scaled(0.01);
        assert_eq!(config.http_initial, Duration::from_millis(50));
        assert_eq!(config.network_step, Duration::from_micros(2500));
        let mut backoff = Backoff::new(config);
        let got: Vec<Duration> = (0..3)
            .map(|_| backoff.next_delay(FailureClass::RateLimited).wait)
            .collect();
        assert_eq!(got, [600, 1200, 2400].map(Duration::from_millis));
    }
}
