//! The supervisor's children: how one is started (behind a trait, so the supervisor is tested
//! with stand-in streams), the arbiters they run on, and the backoff of restarts.

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use actix::prelude::*;
use actix_rt::ArbiterHandle;
use traptor_core::oauth::Credentials;
use traptor_core::plan::ConnectionId;
use traptor_core::Rule;

use crate::config::ApiKey;
use crate::messages::{StopStream, StreamStateChanged, UpdateRules};

/// What a new child stream needs from the supervisor; the rest (credentials, endpoint,
/// writer) the [`SpawnStream`] implementation holds itself.
#[derive(Debug, Clone)]
pub struct ChildSpec {
    pub id: ConnectionId,
    pub key_name: String,
    pub rules: Vec<Rule>,
    /// Where the child reports its state.
    pub report_to: Recipient<StreamStateChanged>,
}

/// Reads a child's running count of tweets delivered, for the tweets/s of the status line.
pub type TweetCounter = Arc<dyn Fn() -> u64 + Send + Sync>;

/// The supervisor's handle on a running child.
#[derive(Clone)]
pub struct ChildHandle {
    pub update: Recipient<UpdateRules>,
    pub stop: Recipient<StopStream>,
    pub tweets: Option<TweetCounter>,
}

impl ChildHandle {
    /// False once the child's mailbox closed: it stopped or panicked.
    pub fn alive(&self) -> bool {
        self.update.connected()
    }
}

/// Starts one stream child. The real one starts a `StreamActor` on the next arbiter.
pub trait SpawnStream: Send {
    /// Starts the child, or says why it could not (e.g. the key's credentials are missing).
    fn spawn(&mut self, spec: ChildSpec) -> Result<ChildHandle, String>;

    /// Takes the API keys of a reloaded config for the children started from now on; returns
    /// the names of keys that were there before with other credentials (their running
    /// children must start again to use them). Stand-ins that hold no credentials keep this.
    fn replace_keys(&mut self, _keys: &[ApiKey]) -> Vec<String> {
        Vec::new()
    }
}

/// The names of `keys` that `before` holds with other credentials: the keys whose streams must
/// start again after a reload.
pub fn keys_with_new_credentials(
    before: &HashMap<String, Credentials>,
    keys: &[ApiKey],
) -> Vec<String> {
    keys.iter()
        .filter(|key| {
            before
                .get(&key.name)
                .is_some_and(|old| *old != key.credentials)
        })
        .map(|key| key.name.clone())
        .collect()
}

/// One arbiter (thread with its own event loop) per core; children are placed round-robin so
/// the streams' parsing spreads over the cores.
pub struct ArbiterPool {
    arbiters: Vec<Arbiter>,
    next: AtomicUsize,
}

impl ArbiterPool {
    /// `threads` arbiters; 0 means one per available core.
    pub fn new(threads: usize) -> Self {
        let threads = if threads == 0 {
            std::thread::available_parallelism()
                .map(|n| n.get())
                .unwrap_or(1)
        } else {
            threads
        };
        ArbiterPool {
            arbiters: (0..threads).map(|_| Arbiter::new()).collect(),
            next: AtomicUsize::new(0),
        }
    }

    /// The arbiter for the next child.
    pub fn next_handle(&self) -> ArbiterHandle {
        let next = self.next.fetch_add(1, Ordering::Relaxed);
        self.arbiters[next % self.arbiters.len()].handle()
    }

    /// Stops every arbiter's event loop without waiting (for use on the System's own thread).
    pub fn stop(&self) {
        for arbiter in &self.arbiters {
            arbiter.stop();
        }
    }

    pub fn len(&self) -> usize {
        self.arbiters.len()
    }

    pub fn is_empty(&self) -> bool {
        self.arbiters.is_empty()
    }

    /// Stops every arbiter's event loop (after the streams stopped) and waits for the threads.
    pub fn stop_and_join(self) {
        for arbiter in &self.arbiters {
            arbiter.stop();
        }
        for arbiter in self.arbiters {
            let _ = arbiter.join();
        }
    }
}

/// The wait before restarting a child that died unexpectedly for the `attempt`-th time in a
/// row (1 s, 2 s, 4 s ... capped at `max`), so a crashing stream never loops tight.
pub fn restart_delay(attempt: u32, max: Duration) -> Duration {
    let exponent = attempt.saturating_sub(1).min(16);
    Duration::from_secs(1u64 << exponent).min(max)
}

/// Unexpected deaths in a row once one more happened. A child that had streamed for at least
/// `stable_after` in one go starts the count again; one that dies sooner (a crash loop, say a
/// message that panics the reader every time) keeps counting, so its restarts back off.
pub fn failures_after_death(
    previous: u32,
    longest_streak: Duration,
    stable_after: Duration,
) -> u32 {
    if longest_streak >= stable_after {
        1
    } else {
        previous.saturating_add(1)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_a_child_that_streamed_long_enough_starts_the_count_again() {
        let stable = Duration::from_secs(30);
        assert_eq!(failures_after_death(0, Duration::ZERO, stable), 1);
        assert_eq!(failures_after_death(3, Duration::from_secs(29), stable), 4);
        assert_eq!(failures_after_death(3, Duration::from_secs(30), stable), 1);
        assert_eq!(
            failures_after_death(u32::MAX, Duration::ZERO, stable),
            u32::MAX
        );
    }

    #[test]
    fn restart_delays_double_up_to_the_cap() {
        let max = Duration::from_secs(60);
        let delays: Vec<u64> = (1..=8).map(|n| restart_delay(n, max).as_secs()).collect();
        assert_eq!(delays, [1, 2, 4, 8, 16, 32, 60, 60]);
        assert_eq!(restart_delay(1000, max), max);
    }
}
