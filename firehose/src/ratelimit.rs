//! Connect-rate limiting per credential, answered with HTTP 420 like the real service.
//!
//! Policy: more than `limit` authenticated connect attempts within `window` start a penalty of
//! `penalty`; every attempt during a penalty is refused and doubles it (the real service says
//! "every HTTP 420 received increases the time you must wait"). A successful connect clears
//! the doubling.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

/// The connect history of one credential.
#[derive(Debug, Default)]
pub struct ConnectLimiter {
    attempts: VecDeque<Instant>,
    penalty_until: Option<Instant>,
    strikes: u32,
}

impl ConnectLimiter {
    /// Records an attempt at `now`; `Err` carries how long the credential stays limited.
    pub fn attempt(
        &mut self,
        now: Instant,
        window: Duration,
        limit: usize,
        penalty: Duration,
    ) -> Result<(), Duration> {
        while self
            .attempts
            .front()
            .is_some_and(|t| now.duration_since(*t) >= window)
        {
            self.attempts.pop_front();
        }
        let limited = self.penalty_until.is_some_and(|until| now < until);
        if !limited {
            self.attempts.push_back(now);
            if self.attempts.len() <= limit {
                return Ok(());
            }
        }
        self.strikes += 1;
        let wait = penalty.saturating_mul(1 << (self.strikes - 1).min(16));
        self.penalty_until = Some(now + wait);
        Err(wait)
    }

    /// A connection was established: the next limit starts from the base penalty again.
    pub fn connected(&mut self) {
        self.strikes = 0;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn limits_bursts_and_doubles_the_penalty_on_each_420() {
        let mut limiter = ConnectLimiter::default();
        let t0 = Instant::now();
        let (window, penalty) = (Duration::from_secs(10), Duration::from_secs(4));
        for i in 0..3 {
            assert!(limiter
                .attempt(t0 + Duration::from_millis(i), window, 3, penalty)
                .is_ok());
        }
        assert_eq!(
            limiter.attempt(t0 + Duration::from_secs(1), window, 3, penalty),
            Err(Duration::from_secs(4))
        );
        assert_eq!(
            limiter.attempt(t0 + Duration::from_secs(2), window, 3, penalty),
            Err(Duration::from_secs(8))
        );
        // Still inside the extended penalty (ends at t0+10s).
        assert!(limiter
            .attempt(t0 + Duration::from_secs(9), window, 3, penalty)
            .is_err());
        // After the penalty and with the window clear, connecting works again.
        let later = t0 + Duration::from_secs(9) + Duration::from_secs(16) + Duration::from_secs(1);
        assert!(limiter.attempt(later, window, 3, penalty).is_ok());
    }
}
