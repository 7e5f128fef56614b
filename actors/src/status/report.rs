//! The `/status` document: the supervisor's snapshot joined with the live counters of the
//! streams, the writer and the rule watcher. Plain data, serializable both ways so that
//! `traptor status` reads what the server wrote.
//!
//! Only names, counts, addresses without credentials and error texts appear here: never an
//! API key's secrets, a Redis password or a Kafka option value.

use std::collections::BTreeMap;
use std::ops::Deref;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};

use super::health::{readiness, Readiness};
use super::{RulesSourceView, StatusSources};
use crate::stream::StreamStatsSnapshot;
use crate::supervisor::status::{ConnectionStatus, StatusSnapshot};
use crate::supervisor::GetStatus;

/// How long the supervisor gets to answer before the process counts as unresponsive.
pub const SUPERVISOR_TIMEOUT: Duration = Duration::from_secs(2);

/// Everything `/status` shows.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct StatusReport {
    /// traptor's version.
    pub version: String,
    /// Unix seconds when this report was made, and when the process started.
    pub generated_at: u64,
    pub started_at: u64,
    pub ready: Readiness,
    /// The plan, one entry per planned connection, with how each is doing.
    pub connections: Vec<ConnectionReport>,
    /// Rules not on any connection, with the reason.
    pub rules_left_out: Vec<String>,
    /// Rules that could not be loaded at all, with the reason.
    pub rule_errors: Vec<String>,
    pub slots_without_key: Vec<String>,
    pub unused_keys: Vec<String>,
    pub shutting_down: bool,
    /// `None` when no writer is wired (tests, `check`).
    pub writer: Option<WriterReport>,
    pub rules_source: RulesReport,
}

/// One planned connection as `/status` shows it: the supervisor's [`ConnectionStatus`] (its
/// fields inline, not nested) plus the stream's counters.
///
/// The status fields are read through the report (`report.state`, via `Deref`) because the
/// report is that status with counters added, not a separate thing that happens to hold one.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct ConnectionReport {
    /// Its `last_error` is the failing state's reason, else the stream's latest error.
    #[serde(flatten)]
    pub status: ConnectionStatus,
    /// `None` until the connection's stream has started.
    pub counters: Option<StreamCounters>,
}

impl Deref for ConnectionReport {
    type Target = ConnectionStatus;

    fn deref(&self) -> &ConnectionStatus {
        &self.status
    }
}

/// A stream's counters since its stream actor started.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct StreamCounters {
    pub connect_attempts: u64,
    /// Connections that got a 200 and started streaming.
    pub connects: u64,
    pub network_errors: u64,
    /// Ended streams by reason.
    pub disconnects: BTreeMap<String, u64>,
    /// Non-200 responses by status code.
    pub http_statuses: BTreeMap<u16, u64>,
    /// Messages by type (`tweet`, `limit`, `delete`, ...).
    pub messages: BTreeMap<String, u64>,
    pub tweets_matched: u64,
    pub tweets_unmatched: u64,
    pub bytes: u64,
    pub keep_alives: u64,
    pub frame_errors: u64,
    /// The latest `limit` notice's count of tweets the server could not deliver.
    pub limit_undelivered: u64,
    /// Unix milliseconds of the newest tweet's `timestamp_ms`.
    pub last_tweet_at_ms: Option<i64>,
    /// Now minus [`last_tweet_at_ms`](Self::last_tweet_at_ms), in seconds.
    pub lag_seconds: Option<f64>,
    /// Tweets matched per rule id: for `/metrics` only (too long for a status page).
    #[serde(skip)]
    pub rule_matches: BTreeMap<String, u64>,
}

/// What the writer did with the records.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct WriterReport {
    /// `kafka`, `stdout` or `file`.
    pub sink: String,
    pub queued: u64,
    pub delivered: u64,
    /// Failed delivery attempts (each retried or, in the end, given up).
    pub failed: u64,
    pub retried: u64,
    pub given_up: u64,
    pub in_flight: u64,
    /// Records written to the disk spool while Kafka was down, and read back from it.
    pub spooled: u64,
    pub replayed: u64,
    /// What the spool holds now (records not yet delivered, and its files' size).
    pub spool_records: u64,
    pub spool_bytes: u64,
    /// Why the destination went away for good, if it did.
    pub closed: Option<String>,
    /// The producer's broker view (Kafka sink only).
    pub kafka: Option<KafkaReport>,
}

/// The Kafka producer's view of its brokers.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct KafkaReport {
    /// Statistics reports received (0: nothing known yet).
    pub reports: u64,
    pub brokers_up: u64,
    pub brokers_known: u64,
    pub fatal_error: Option<String>,
}

/// Where the rules come from and, for Redis, how the watcher is doing.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct RulesReport {
    /// `redis`, `file` or `none`.
    pub source: String,
    /// `host:port/db` of Redis (no password), or the rules file's path.
    pub location: String,
    pub watcher: Option<WatcherReport>,
}

/// The rule watcher's counters.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct WatcherReport {
    pub connected: bool,
    /// Unix seconds of the last successful full sync.
    pub last_sync_at: Option<u64>,
    pub last_sync_age_seconds: Option<f64>,
    /// A sync older than this makes the process not ready.
    pub stale_after_seconds: f64,
    pub syncs: u64,
    pub failures: u64,
    pub notices: u64,
    pub slots: u64,
    pub rules: u64,
    pub rule_errors: u64,
    pub last_error: Option<String>,
}

/// Why no report could be made.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum StatusError {
    #[error("the supervisor did not answer within {0:?}")]
    SupervisorTimeout(Duration),
    #[error("the supervisor is gone")]
    SupervisorGone,
}

/// Asks the supervisor for its snapshot and joins it with the live counters.
pub async fn collect(sources: &StatusSources) -> Result<StatusReport, StatusError> {
    let snapshot = ask_supervisor(sources).await?;
    Ok(build(sources, snapshot, SystemTime::now()))
}

/// The supervisor's snapshot, within [`SUPERVISOR_TIMEOUT`].
pub async fn ask_supervisor(sources: &StatusSources) -> Result<StatusSnapshot, StatusError> {
    match actix_rt::time::timeout(SUPERVISOR_TIMEOUT, sources.supervisor.send(GetStatus)).await {
        Ok(Ok(snapshot)) => Ok(snapshot),
        Ok(Err(_)) => Err(StatusError::SupervisorGone),
        Err(_) => Err(StatusError::SupervisorTimeout(SUPERVISOR_TIMEOUT)),
    }
}

/// The report for `snapshot`, reading the counters at `now`.
pub fn build(sources: &StatusSources, snapshot: StatusSnapshot, now: SystemTime) -> StatusReport {
    let now_ms = unix_millis(now);
    let connections: Vec<ConnectionReport> = snapshot
        .connections
        .into_iter()
        .map(|status| {
            let stats = sources.streams.snapshot(&status.connection, &status.key);
            connection_report(status, stats, now_ms)
        })
        .collect();
    sources
        .streams
        .forget_ended(|id| connections.iter().any(|c| c.connection == id));
    let writer = sources.writer.as_ref().map(|writer| {
        let stats = writer.stats();
        let kafka = (writer.sink == "kafka").then(|| {
            let health = writer.stats.kafka().snapshot();
            KafkaReport {
                reports: health.reports,
                brokers_up: health.brokers_up,
                brokers_known: health.brokers_known,
                fatal_error: health.fatal,
            }
        });
        WriterReport {
            sink: writer.sink.to_owned(),
            queued: stats.queued,
            delivered: stats.delivered,
            failed: stats.failed,
            retried: stats.retried,
            given_up: stats.given_up,
            in_flight: stats.in_flight,
            spooled: stats.spooled,
            replayed: stats.replayed,
            spool_records: stats.spool_records,
            spool_bytes: stats.spool_bytes,
            closed: writer.closed_reason(),
            kafka,
        }
    });
    let rules_source = rules_report(&sources.rules, now_ms);
    let mut report = StatusReport {
        version: env!("CARGO_PKG_VERSION").to_owned(),
        generated_at: now_ms / 1000,
        started_at: unix_millis(sources.started_at) / 1000,
        ready: Readiness::default(),
        connections,
        rules_left_out: snapshot.rules_left_out,
        rule_errors: snapshot.rule_errors,
        slots_without_key: snapshot.slots_without_key,
        unused_keys: snapshot.unused_keys,
        shutting_down: snapshot.shutting_down,
        writer,
        rules_source,
    };
    report.ready = readiness(&report);
    report
}

fn connection_report(
    mut status: ConnectionStatus,
    stats: Option<StreamStatsSnapshot>,
    now_ms: u64,
) -> ConnectionReport {
    let mut stats = stats;
    let stream_error = stats.as_mut().and_then(|s| s.last_error.take());
    // A failing state is explained by its own reason; otherwise the stream's last error is
    // the most recent (it also sees malformed messages while streaming).
    let failing = matches!(
        status.state.as_str(),
        "backing_off" | "auth_failed" | "rejected"
    );
    status.last_error = match (failing, status.last_error.take()) {
        (true, Some(reason)) => Some(reason),
        (_, reason) => stream_error.or(reason),
    };
    ConnectionReport {
        status,
        counters: stats.map(|stats| counters(stats, now_ms)),
    }
}

fn counters(stats: StreamStatsSnapshot, now_ms: u64) -> StreamCounters {
    let lag_seconds = stats
        .last_tweet_ms
        .map(|at| (now_ms as i64 - at).max(0) as f64 / 1000.0);
    StreamCounters {
        connect_attempts: stats.connect_attempts,
        connects: stats.connected,
        network_errors: stats.network_errors,
        disconnects: owned_keys(stats.drops),
        http_statuses: stats.http_statuses,
        messages: owned_keys(stats.messages),
        tweets_matched: stats.tweets_matched,
        tweets_unmatched: stats.tweets_unmatched,
        bytes: stats.bytes,
        keep_alives: stats.keep_alives,
        frame_errors: stats.frame_errors,
        limit_undelivered: stats.limit_undelivered,
        last_tweet_at_ms: stats.last_tweet_ms,
        lag_seconds,
        rule_matches: stats.rule_matches,
    }
}

fn rules_report(rules: &RulesSourceView, now_ms: u64) -> RulesReport {
    match rules {
        RulesSourceView::Redis {
            address,
            stats,
            stale_after,
        } => {
            let stats = stats.snapshot();
            WatcherReport {
                connected: stats.connected,
                last_sync_at: stats.last_sync_ms.map(|ms| ms / 1000),
                last_sync_age_seconds: stats
                    .last_sync_ms
                    .map(|ms| now_ms.saturating_sub(ms) as f64 / 1000.0),
                stale_after_seconds: stale_after.as_secs_f64(),
                syncs: stats.syncs,
                failures: stats.failures,
                notices: stats.notices,
                slots: stats.slots,
                rules: stats.rules,
                rule_errors: stats.rule_errors,
                last_error: stats.last_error,
            }
            .into_rules_report(address)
        }
        RulesSourceView::File { path } => RulesReport {
            source: "file".to_owned(),
            location: path.clone(),
            watcher: None,
        },
        RulesSourceView::None => RulesReport {
            source: "none".to_owned(),
            location: String::new(),
            watcher: None,
        },
    }
}

impl WatcherReport {
    fn into_rules_report(self, address: &str) -> RulesReport {
        RulesReport {
            source: "redis".to_owned(),
            location: address.to_owned(),
            watcher: Some(self),
        }
    }
}

fn owned_keys(map: BTreeMap<&'static str, u64>) -> BTreeMap<String, u64> {
    map.into_iter().map(|(k, v)| (k.to_owned(), v)).collect()
}

fn unix_millis(at: SystemTime) -> u64 {
    at.duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use serde_json::json;
    use traptor_core::MessageKind;

    use super::*;
    use crate::stream::{DropKind, StreamStats};

    const NOW_MS: u64 = 1_700_000_100_000;

    fn second_part() -> ConnectionStatus {
        ConnectionStatus {
            connection: "track:0/1".into(),
            slot: "track:0".into(),
            part: 1,
            key: "k1".into(),
            rules: 3,
            terms: 4,
            state: "streaming".into(),
            state_since: Some(1_700_000_000),
            last_error: Some("HTTP 420: Enhance Your Calm".into()),
            tweets_per_second: Some(2.5),
            restarts: 1,
        }
    }

    /// A stream refused once, then connected, with the counters the report converts (by-kind
    /// maps, the tweet timestamp, the last error) set; the plain counts stay 0.
    fn stream_stats() -> StreamStatsSnapshot {
        let stats = StreamStats::default();
        stats.http_status(420, "HTTP 420: Enhance Your Calm");
        stats.connected();
        stats.message(MessageKind::Tweet);
        stats.rules_matched(["r1"]);
        stats.tweet_timestamp(NOW_MS as i64 - 1_500);
        stats.dropped(DropKind::Stall);
        stats.frame_error("a message over 1 MiB");
        stats.snapshot()
    }

    #[test]
    fn a_connection_entry_keeps_its_json_shape() {
        let entry = connection_report(second_part(), Some(stream_stats()), NOW_MS);
        let expected = json!({
            "connection": "track:0/1",
            "slot": "track:0",
            "part": 1,
            "key": "k1",
            "rules": 3,
            "terms": 4,
            "state": "streaming",
            "state_since": 1_700_000_000u64,
            // Streaming again: the stream's newer error wins over the supervisor's old one.
            "last_error": "a message over 1 MiB",
            "tweets_per_second": 2.5,
            "restarts": 1,
            "counters": {
                "connect_attempts": 0,
                "connects": 1,
                "network_errors": 0,
                "disconnects": { "stall": 1 },
                "http_statuses": { "420": 1 },
                "messages": { "tweet": 1 },
                "tweets_matched": 0,
                "tweets_unmatched": 0,
                "bytes": 0,
                "keep_alives": 0,
                "frame_errors": 1,
                "limit_undelivered": 0,
                "last_tweet_at_ms": NOW_MS - 1_500,
                "lag_seconds": 1.5,
            },
        });
        assert_eq!(serde_json::to_value(&entry).unwrap(), expected);
    }

    #[test]
    fn a_connection_entry_reads_back_as_written() {
        let mut entry = connection_report(second_part(), Some(stream_stats()), NOW_MS);
        // Per-rule matches are for /metrics only and do not travel in the JSON.
        entry.counters.as_mut().unwrap().rule_matches.clear();
        let json = serde_json::to_string(&entry).unwrap();
        assert_eq!(
            serde_json::from_str::<ConnectionReport>(&json).unwrap(),
            entry
        );
    }

    #[test]
    fn a_failing_connection_without_a_stream_keeps_its_own_reason() {
        let mut status = second_part();
        status.state = "auth_failed".into();
        status.last_error = Some("HTTP 401".into());
        let entry = connection_report(status, None, NOW_MS);
        let json = serde_json::to_value(&entry).unwrap();
        assert_eq!(json["last_error"], "HTTP 401");
        assert_eq!(json["counters"], serde_json::Value::Null);
        assert_eq!(entry.state, "auth_failed", "status fields read through");
    }
}
