//! The supervisor's view of the cluster as plain data: logged periodically and, joined with
//! the streams' counters, served as the `/status` document (`crate::status::report`).

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};

use crate::messages::StreamState;

/// Everything an operator asks first: what runs, how it is doing, and what is not collected.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct StatusSnapshot {
    pub connections: Vec<ConnectionStatus>,
    /// Inline, not nested.
    #[serde(flatten)]
    pub cluster: ClusterStatus,
}

/// The supervisor's status beyond its connections: what it cannot collect, and whether it is
/// stopping.
///
/// The single definition of these fields: `/status` serializes them inline at the top of its
/// document (`StatusReport`), so a field added here shows up there (and in `traptor status`)
/// without a second list to keep in step.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct ClusterStatus {
    /// Rules not on any connection: one line per slot and reason, with the count, a few rule
    /// ids and the reason (`Plan::left_out_groups`).
    pub rules_left_out: Vec<String>,
    /// How many rules those lines stand for.
    pub rules_left_out_count: usize,
    /// Rules that could not be loaded at all, one line each with the reason.
    pub rule_errors: Vec<String>,
    /// Slots with rules but no API key to run them on.
    pub slots_without_key: Vec<String>,
    /// API keys from the config that no connection uses.
    pub unused_keys: Vec<String>,
    pub shutting_down: bool,
}

/// One planned connection: its place in the plan and how it is doing.
///
/// The single definition of these fields: `/status` serializes them inline in each
/// `ConnectionReport` entry, so a field added here shows up there (and in `traptor status`)
/// without a second list to keep in step.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct ConnectionStatus {
    /// `track:0`, or `track:0/1` for a slot's second connection.
    pub connection: String,
    pub slot: String,
    pub part: u32,
    /// The API key's name from the config (never its secrets).
    pub key: String,
    pub rules: usize,
    /// Filter terms sent to the server (phrases, ids or boxes).
    pub terms: usize,
    /// `not_started`, `connecting`, `streaming`, `backing_off`, `auth_failed`, `rejected`,
    /// `stopped`, or `restarting` while a crashed child waits for its restart.
    pub state: String,
    /// Seconds since the Unix epoch when the state was entered.
    pub state_since: Option<u64>,
    pub last_error: Option<String>,
    /// Tweets per second over the last status interval, when the stream reports counts.
    pub tweets_per_second: Option<f64>,
    pub restarts: u32,
}

impl ConnectionStatus {
    /// The status line logged every status interval.
    pub fn log_line(&self) -> String {
        let mut line = format!(
            "{} key={} state={} rules={}",
            self.connection, self.key, self.state, self.rules
        );
        if let Some(rate) = self.tweets_per_second {
            line.push_str(&format!(" tweets/s={rate:.1}"));
        }
        if self.restarts > 0 {
            line.push_str(&format!(" restarts={}", self.restarts));
        }
        if let Some(error) = &self.last_error {
            line.push_str(&format!(" last_error={error:?}"));
        }
        line
    }
}

/// The error a state carries, if any: kept as the connection's last error.
pub fn state_error(state: &StreamState) -> Option<String> {
    match state {
        StreamState::BackingOff { reason, .. }
        | StreamState::AuthFailed { reason }
        | StreamState::Rejected { reason } => Some(reason.clone()),
        _ => None,
    }
}

/// Seconds since the Unix epoch.
pub fn epoch_seconds(at: SystemTime) -> u64 {
    at.duration_since(UNIX_EPOCH)
        .unwrap_or(Duration::ZERO)
        .as_secs()
}

/// A rate from two counter readings `elapsed` apart (a counter that went backwards, as after a
/// restart of its stream, counts from zero).
pub fn rate(previous: u64, now: u64, elapsed: Duration) -> f64 {
    let secs = elapsed.as_secs_f64();
    if secs <= 0.0 {
        return 0.0;
    }
    let delta = if now >= previous { now - previous } else { now };
    delta as f64 / secs
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rates_survive_counter_resets() {
        assert_eq!(rate(100, 150, Duration::from_secs(10)), 5.0);
        assert_eq!(rate(100, 20, Duration::from_secs(10)), 2.0);
        assert_eq!(rate(0, 5, Duration::ZERO), 0.0);
    }

    #[test]
    fn only_failing_states_carry_an_error() {
        assert_eq!(
            state_error(&StreamState::AuthFailed {
                reason: "401".into()
            })
            .as_deref(),
            Some("401")
        );
        assert_eq!(state_error(&StreamState::Streaming), None);
    }

    #[test]
    fn the_status_line_names_state_rate_and_error() {
        let status = ConnectionStatus {
            connection: "track:0".into(),
            slot: "track:0".into(),
            part: 0,
            key: "k1".into(),
            rules: 3,
            terms: 3,
            state: "backing_off".into(),
            state_since: Some(1),
            last_error: Some("HTTP 420".into()),
            tweets_per_second: Some(2.26),
            restarts: 1,
        };
        assert_eq!(
            status.log_line(),
            "track:0 key=k1 state=backing_off rules=3 tweets/s=2.3 restarts=1 last_error=\"HTTP 420\""
        );
        let json = serde_json::to_value(&status).unwrap();
        assert_eq!(json["state"], "backing_off");
    }
}
