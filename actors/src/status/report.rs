//! The `/status` document: the supervisor's snapshot joined with the live counters of the
//! streams, the writer and the rule watcher. Plain data, serializable both ways so that
//! `traptor status` reads what the server wrote.
//!
//! Only names, counts, addresses without credentials and error texts appear here: never an
//! API key's secrets, a Redis password or a Kafka option value.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};

use super::health::{readiness, Readiness};
use super::{RulesSourceView, StatusSources};
use crate::sinks::{KafkaHealthSnapshot, WriterStats, WriterStatsSnapshot};
use crate::stream::StreamStatsSnapshot;
use crate::supervisor::status::{ClusterStatus, ConnectionStatus, StatusSnapshot};
use crate::supervisor::GetStatus;
use crate::watcher::WatcherStatsSnapshot;

/// How long the supervisor gets to answer before the process counts as unresponsive.
pub const SUPERVISOR_TIMEOUT: Duration = Duration::from_secs(2);

/// Everything `/status` shows: the supervisor's [`StatusSnapshot`] joined with the counters.
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
    /// `rules_left_out`, `unused_keys`, ... inline, not nested.
    #[serde(flatten)]
    pub cluster: ClusterStatus,
    /// `None` when no writer is wired (tests, `check`).
    pub writer: Option<WriterReport>,
    pub rules_source: RulesReport,
}

/// One planned connection as `/status` shows it: the supervisor's [`ConnectionStatus`] (its
/// fields inline in the JSON, not nested) plus the stream's counters.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct ConnectionReport {
    /// Its `last_error` is the failing state's reason, else the stream's latest error.
    #[serde(flatten)]
    pub status: ConnectionStatus,
    /// `None` until the connection's stream has started.
    pub counters: Option<StreamCounters>,
}

/// A stream's counters since its stream actor started, and how far behind it is: the
/// stream's snapshot with the lag, which depends on when it is read, added.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct StreamCounters {
    /// `connect_attempts`, `connects`, `disconnects`, ... inline, not nested. Its
    /// `last_error` is moved to the connection's entry.
    #[serde(flatten)]
    pub stats: StreamStatsSnapshot,
    /// Now minus the newest tweet's `timestamp_ms` (`last_tweet_at_ms`), in seconds.
    pub lag_seconds: Option<f64>,
}

/// What the writer did with the records: the writer's snapshot with the sink's name and
/// health added.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct WriterReport {
    /// `kafka`, `stdout` or `file`.
    pub sink: String,
    /// `queued`, `delivered`, `failed`, ... inline, not nested.
    #[serde(flatten)]
    pub stats: WriterStatsSnapshot,
    /// Why the destination went away for good, if it did.
    pub closed: Option<String>,
    /// The producer's broker view (Kafka sink only).
    pub kafka: Option<KafkaHealthSnapshot>,
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

/// The rule watcher's counters, and how old its last sync is (which depends on when it is
/// read).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct WatcherReport {
    /// `connected`, `syncs`, `failures`, ... inline, not nested. Its `last_sync_ms` is shown
    /// as `last_sync_at` instead.
    #[serde(flatten)]
    pub stats: WatcherStatsSnapshot,
    /// Unix seconds of the last successful full sync.
    pub last_sync_at: Option<u64>,
    pub last_sync_age_seconds: Option<f64>,
    /// A sync older than this makes the process not ready.
    pub stale_after_seconds: f64,
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
        .forget_ended(|id| connections.iter().any(|c| c.status.connection == id));
    let writer = sources
        .writer
        .as_ref()
        .map(|writer| writer_report(writer.sink, &writer.stats, writer.closed_reason()));
    let rules_source = rules_report(&sources.rules, now_ms);
    let mut report = StatusReport {
        version: env!("CARGO_PKG_VERSION").to_owned(),
        generated_at: now_ms / 1000,
        started_at: unix_millis(sources.started_at) / 1000,
        ready: Readiness::default(),
        connections,
        cluster: snapshot.cluster,
        writer,
        rules_source,
    };
    report.ready = readiness(&report);
    report
}

/// The writer's section: its counters, and the brokers' health for the Kafka sink.
fn writer_report(sink: &str, stats: &WriterStats, closed: Option<String>) -> WriterReport {
    let kafka = (sink == "kafka").then(|| stats.kafka().snapshot());
    WriterReport {
        sink: sink.to_owned(),
        stats: stats.snapshot(),
        closed,
        kafka,
    }
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
    StreamCounters { stats, lag_seconds }
}

fn rules_report(rules: &RulesSourceView, now_ms: u64) -> RulesReport {
    match rules {
        RulesSourceView::Redis {
            address,
            stats,
            stale_after,
        } => {
            let mut stats = stats.snapshot();
            let last_sync_ms = stats.last_sync_ms.take();
            WatcherReport {
                stats,
                last_sync_at: last_sync_ms.map(|ms| ms / 1000),
                last_sync_age_seconds: last_sync_ms
                    .map(|ms| now_ms.saturating_sub(ms) as f64 / 1000.0),
                stale_after_seconds: stale_after.as_secs_f64(),
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

fn unix_millis(at: SystemTime) -> u64 {
    at.duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use actix::Actor;
    use serde_json::json;
    use traptor_core::plan::ConnectionId;
    use traptor_core::{MessageKind, SlotId, StreamType};

    use super::*;
    use crate::config::{KafkaConfig, SinkConfig};
    use crate::sinks::start_writer;
    use crate::status::StreamRegistry;
    use crate::stream::{DropKind, StreamStats};
    use crate::supervisor::children::{ChildHandle, ChildSpec, SpawnStream};
    use crate::supervisor::{Supervisor, SupervisorSettings};

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
    fn live_stream_stats() -> Arc<StreamStats> {
        let stats = Arc::new(StreamStats::default());
        stats.http_status(420, "HTTP 420: Enhance Your Calm");
        stats.connected();
        stats.message(MessageKind::Tweet);
        stats.rules_matched(["r1"]);
        stats.tweet_timestamp(NOW_MS as i64 - 1_500);
        stats.dropped(DropKind::Stall);
        stats.frame_error("a message over 1 MiB");
        stats
    }

    fn stream_stats() -> StreamStatsSnapshot {
        live_stream_stats().snapshot()
    }

    /// The `/status` entry of [`second_part`] with the counters of [`stream_stats`].
    fn second_part_entry() -> serde_json::Value {
        json!({
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
        })
    }

    #[test]
    fn a_connection_entry_keeps_its_json_shape() {
        let entry = connection_report(second_part(), Some(stream_stats()), NOW_MS);
        assert_eq!(serde_json::to_value(&entry).unwrap(), second_part_entry());
    }

    #[test]
    fn every_stream_counter_keeps_its_name_and_value() {
        let stats = StreamStats::default();
        let times = |n: usize, count: &dyn Fn()| (0..n).for_each(|_| count());
        times(3, &|| stats.connect_attempt());
        times(2, &|| stats.connected());
        times(4, &|| stats.network_error("connection refused"));
        times(1, &|| stats.dropped(DropKind::Stall));
        times(2, &|| stats.dropped(DropKind::Closed));
        times(1, &|| stats.http_status(420, "HTTP 420"));
        times(2, &|| stats.http_status(503, "HTTP 503"));
        times(5, &|| stats.message(MessageKind::Tweet));
        times(1, &|| stats.message(MessageKind::Limit));
        times(6, &|| stats.tweet_matched(true));
        times(7, &|| stats.tweet_matched(false));
        stats.bytes(8_000);
        times(9, &|| stats.keep_alive());
        times(10, &|| stats.frame_error("a message over 1 MiB"));
        stats.limit_undelivered(11);
        stats.tweet_timestamp(NOW_MS as i64 - 2_500);
        stats.rules_matched(["r1"]);

        let counters = counters(stats.snapshot(), NOW_MS);
        assert_eq!(
            serde_json::to_value(&counters).unwrap(),
            json!({
                "connect_attempts": 3,
                "connects": 2,
                "network_errors": 4,
                "disconnects": { "closed": 2, "stall": 1 },
                "http_statuses": { "420": 1, "503": 2 },
                "messages": { "tweet": 5, "limit": 1 },
                "tweets_matched": 6,
                "tweets_unmatched": 7,
                "bytes": 8_000,
                "keep_alives": 9,
                "frame_errors": 10,
                "limit_undelivered": 11,
                "last_tweet_at_ms": NOW_MS - 2_500,
                "lag_seconds": 2.5,
            })
        );
        assert_eq!(counters.stats.rule_matches["r1"], 1, "kept for /metrics");
    }

    #[test]
    fn every_writer_counter_keeps_its_name_and_value() {
        let stats = WriterStats::default();
        stats.record_queued(20);
        stats.record_delivered(9);
        stats.record_retry();
        (0..3).for_each(|_| stats.record_failed_attempt());
        stats.record_failed_for_good();
        stats.record_given_up(2);
        stats.record_spooled(6);
        stats.record_replayed(2);
        stats.set_spool(7, 4_096);
        stats.kafka().record_brokers(1, 3);
        stats.kafka().record_brokers(1, 3);
        stats.kafka().record_brokers_readded();
        stats.kafka().record_fatal("the producer was fenced");
        stats
            .kafka()
            .record_error("Connect to ipv4#127.0.0.1:9092 failed");

        let report = writer_report("kafka", &stats, Some("broker gone".into()));
        assert_eq!(
            serde_json::to_value(&report).unwrap(),
            json!({
                "sink": "kafka",
                "queued": 20,
                "delivered": 9,
                "failed": 5,
                "retried": 1,
                "given_up": 3,
                "in_flight": 4,
                "spooled": 6,
                "replayed": 2,
                "spool_records": 7,
                "spool_bytes": 4_096,
                "closed": "broker gone",
                "kafka": {
                    "reports": 2,
                    "brokers_up": 1,
                    "brokers_known": 3,
                    "brokers_readded": 1,
                    "stalled_seconds": 0,
                    "fatal_error": "the producer was fenced",
                    "last_error": "Connect to ipv4#127.0.0.1:9092 failed",
                },
            })
        );
        let line_sink = writer_report("stdout", &stats, None);
        assert_eq!(line_sink.kafka, None, "brokers are a Kafka sink's only");
    }

    #[test]
    fn every_watcher_counter_keeps_its_name_and_value() {
        let stats = Arc::new(crate::watcher::WatcherStats::default());
        stats.record_failure("Redis error: connection refused");
        stats.record_sync(2, 15, 1);
        (0..4).for_each(|_| stats.record_notice());
        stats.record_failure("Redis error: timed out");
        let synced_at_ms = stats.snapshot().last_sync_ms.unwrap();
        let now_ms = synced_at_ms + 2_500;
        let view = RulesSourceView::Redis {
            address: "127.0.0.1:6379/0".into(),
            stats,
            stale_after: Duration::from_secs(130),
        };
        let report = rules_report(&view, now_ms);
        assert_eq!(
            serde_json::to_value(&report).unwrap(),
            json!({
                "source": "redis",
                "location": "127.0.0.1:6379/0",
                "watcher": {
                    "connected": false,
                    "last_sync_at": synced_at_ms / 1000,
                    "last_sync_age_seconds": 2.5,
                    "stale_after_seconds": 130.0,
                    "syncs": 1,
                    "failures": 2,
                    "notices": 4,
                    "slots": 2,
                    "rules": 15,
                    "rule_errors": 1,
                    "last_error": "Redis error: timed out",
                },
            })
        );
        let json = serde_json::to_string(&report).unwrap();
        assert_eq!(serde_json::from_str::<RulesReport>(&json).unwrap(), report);
    }

    /// Starts nothing: the supervisor in these tests has no rules, so it never asks.
    struct NoStreams;

    impl SpawnStream for NoStreams {
        fn spawn(&mut self, _: ChildSpec) -> Result<ChildHandle, String> {
            Err("no streams in this test".into())
        }
    }

    /// A report from every source: the supervisor's plan, a running stream, a writer.
    async fn full_report() -> StatusReport {
        let snapshot = StatusSnapshot {
            connections: vec![second_part()],
            cluster: ClusterStatus {
                rules_left_out: vec!["track:9: 1 rule(s) (ids 7): no key".into()],
                rules_left_out_count: 1,
                rule_errors: vec!["track:2 rule 8: no value".into()],
                slots_without_key: vec!["track:9".into()],
                unused_keys: vec!["k3".into()],
                shutting_down: false,
            },
        };
        let streams = StreamRegistry::default();
        let connection = ConnectionId::new(SlotId::new(StreamType::Track, "0"), 1);
        streams.register(&connection, "k1", live_stream_stats());
        let writer = start_writer(&SinkConfig::Stdout, &KafkaConfig::default()).unwrap();
        writer.stats.record_queued(3);
        writer.stats.record_delivered(2);
        let supervisor =
            Supervisor::new(SupervisorSettings::new(vec![]), Box::new(NoStreams), None);
        let sources = StatusSources {
            // Asked by `collect` only: `build` is given the snapshot.
            supervisor: supervisor.start().recipient(),
            streams,
            writer: Some(writer),
            rules: RulesSourceView::File {
                path: "rules.json".into(),
            },
            started_at: UNIX_EPOCH + Duration::from_secs(1_700_000_000),
        };
        build(
            &sources,
            snapshot,
            UNIX_EPOCH + Duration::from_millis(NOW_MS),
        )
    }

    #[actix_rt::test]
    async fn the_status_document_keeps_its_top_level_shape() {
        let report = full_report().await;
        assert_eq!(
            serde_json::to_value(&report).unwrap(),
            json!({
                "version": env!("CARGO_PKG_VERSION"),
                "generated_at": NOW_MS / 1000,
                "started_at": 1_700_000_000u64,
                "ready": { "ready": true, "not_ready": [] },
                "connections": [second_part_entry()],
                "rules_left_out": ["track:9: 1 rule(s) (ids 7): no key"],
                "rules_left_out_count": 1,
                "rule_errors": ["track:2 rule 8: no value"],
                "slots_without_key": ["track:9"],
                "unused_keys": ["k3"],
                "shutting_down": false,
                "writer": {
                    "sink": "stdout",
                    "queued": 3,
                    "delivered": 2,
                    "failed": 0,
                    "retried": 0,
                    "given_up": 0,
                    "in_flight": 1,
                    "spooled": 0,
                    "replayed": 0,
                    "spool_records": 0,
                    "spool_bytes": 0,
                    "closed": null,
                    "kafka": null,
                },
                "rules_source": {
                    "source": "file",
                    "location": "rules.json",
                    "watcher": null,
                },
            })
        );
    }

    #[actix_rt::test]
    async fn the_status_document_reads_back_as_written() {
        let mut report = full_report().await;
        // Per-rule matches are for /metrics only and do not travel in the JSON.
        for entry in &mut report.connections {
            if let Some(counters) = entry.counters.as_mut() {
                counters.stats.rule_matches.clear();
            }
        }
        assert!(report.connections[0].counters.is_some());
        let json = serde_json::to_string(&report).unwrap();
        assert_eq!(serde_json::from_str::<StatusReport>(&json).unwrap(), report);
    }

    #[test]
    fn a_connection_entry_reads_back_as_written() {
        let mut entry = connection_report(second_part(), Some(stream_stats()), NOW_MS);
        // Per-rule matches are for /metrics only and do not travel in the JSON.
        entry.counters.as_mut().unwrap().stats.rule_matches.clear();
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
        assert_eq!(entry.status.state, "auth_failed");
    }
}
