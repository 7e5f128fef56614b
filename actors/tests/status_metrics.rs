//! `/metrics` and `/status` rendered from counters built by hand: names, labels and values,
//! and the output checked against the exposition format.

mod status_support;

use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use actix::prelude::*;
use status_support::{parse_exposition, FixedSupervisor};
use traptor_actors::status::{
    metrics, report, MetricsOptions, RulesSourceView, StatusSources, StreamRegistry,
};
use traptor_actors::stream::{DropKind, StreamStats};
use traptor_actors::supervisor::status::{ClusterStatus, ConnectionStatus, StatusSnapshot};
use traptor_actors::watcher::{WatcherSettings, WatcherStats};
use traptor_core::plan::ConnectionId;
use traptor_core::{MessageKind, SlotId, StreamType};

fn connection(part: u32, key: &str, state: &str) -> ConnectionStatus {
    let id = ConnectionId::new(SlotId::new(StreamType::Track, "0"), part);
    ConnectionStatus {
        connection: id.to_string(),
        slot: "track:0".into(),
        part,
        key: key.into(),
        rules: 3,
        terms: 4,
        state: state.into(),
        state_since: Some(1_700_000_000),
        last_error: None,
        tweets_per_second: Some(2.5),
        restarts: 1,
    }
}

fn snapshot() -> StatusSnapshot {
    StatusSnapshot {
        connections: vec![
            connection(0, "k1", "streaming"),
            connection(1, "k2", "backing_off"),
        ],
        cluster: ClusterStatus {
            // One line stands for three rules: the gauge counts rules.
            rules_left_out: vec!["track:9: 3 rule(s) (ids 7, 8, 9): no key".into()],
            rules_left_out_count: 3,
            rule_errors: vec![],
            slots_without_key: vec!["track:9".into()],
            unused_keys: vec!["k3".into()],
            shutting_down: false,
        },
    }
}

/// Counters of the first connection: 2 connects after a 420, tweets, a limit notice, matches.
fn first_stream_stats(now_ms: i64) -> Arc<StreamStats> {
    let stats = Arc::new(StreamStats::default());
    stats.connect_attempt();
    stats.http_status(420, "HTTP 420: Enhance Your Calm");
    stats.connect_attempt();
    stats.connected();
    for _ in 0..5 {
        stats.message(MessageKind::Tweet);
    }
    stats.message(MessageKind::Limit);
    stats.tweet_matched(true);
    stats.tweet_matched(true);
    stats.tweet_matched(false);
    stats.rules_matched(["r1", "r2"]);
    stats.rules_matched(["r1"]);
    stats.bytes(12_345);
    stats.keep_alive();
    stats.limit_undelivered(17);
    stats.dropped(DropKind::Stall);
    stats.tweet_timestamp(now_ms - 1_500);
    stats
}

#[actix_rt::test]
async fn metrics_name_every_counter_with_its_labels_and_value() {
    let now = SystemTime::now();
    let now_ms = now.duration_since(UNIX_EPOCH).unwrap().as_millis() as i64;
    let streams = StreamRegistry::default();
    let first = first_stream_stats(now_ms);
    streams.register(
        &ConnectionId::new(SlotId::new(StreamType::Track, "0"), 0),
        "k1",
        first.clone(),
    );
    let second = Arc::new(StreamStats::default());
    second.rules_matched(["r9"]);
    streams.register(
        &ConnectionId::new(SlotId::new(StreamType::Track, "0"), 1),
        "k2",
        second.clone(),
    );

    let mut watcher = WatcherSettings::new("redis://127.0.0.1:6379/0", "traptor-notify");
    watcher.stats = Arc::new(WatcherStats::default());
    watcher.stats.record_sync(2, 40, 1);
    let sources = StatusSources {
        supervisor: FixedSupervisor(snapshot()).start().recipient(),
        streams,
        writer: None,
        rules: RulesSourceView::redis(&watcher),
        started_at: now - Duration::from_secs(60),
    };
    let report = report::build(&sources, snapshot(), now);
    let text = metrics::render(&report, MetricsOptions::default());
    let samples = parse_exposition(&text).unwrap_or_else(|e| panic!("{e}\n{text}"));
    let value = |series: &str| {
        *samples
            .get(series)
            .unwrap_or_else(|| panic!("no series {series} in\n{text}"))
    };
    let k1 = r#"slot="track:0",part="0",key="k1""#;
    let k2 = r#"slot="track:0",part="1",key="k2""#;

    assert_eq!(
        value(&format!("traptor_stream_state{{{k1},state=\"streaming\"}}")),
        1.0
    );
    assert_eq!(
        value(&format!(
            "traptor_stream_state{{{k1},state=\"backing_off\"}}"
        )),
        0.0
    );
    assert_eq!(
        value(&format!(
            "traptor_stream_state{{{k2},state=\"backing_off\"}}"
        )),
        1.0
    );
    assert_eq!(
        value(&format!("traptor_stream_connect_attempts_total{{{k1}}}")),
        2.0
    );
    assert_eq!(
        value(&format!("traptor_stream_connects_total{{{k1}}}")),
        1.0
    );
    assert_eq!(
        value(&format!(
            "traptor_stream_http_responses_total{{{k1},code=\"420\"}}"
        )),
        1.0
    );
    assert_eq!(
        value(&format!(
            "traptor_stream_disconnects_total{{{k1},reason=\"stall\"}}"
        )),
        1.0
    );
    assert_eq!(
        value(&format!(
            "traptor_stream_disconnects_total{{{k1},reason=\"closed\"}}"
        )),
        0.0
    );
    assert_eq!(
        value(&format!(
            "traptor_stream_messages_total{{{k1},type=\"tweet\"}}"
        )),
        5.0
    );
    assert_eq!(
        value(&format!(
            "traptor_stream_messages_total{{{k1},type=\"limit\"}}"
        )),
        1.0
    );
    assert_eq!(
        value(&format!(
            "traptor_stream_messages_total{{{k2},type=\"delete\"}}"
        )),
        0.0
    );
    assert_eq!(
        value(&format!("traptor_stream_tweets_matched_total{{{k1}}}")),
        2.0
    );
    assert_eq!(
        value(&format!("traptor_stream_tweets_unmatched_total{{{k1}}}")),
        1.0
    );
    assert_eq!(
        value(&format!("traptor_stream_received_bytes_total{{{k1}}}")),
        12_345.0
    );
    assert_eq!(
        value(&format!("traptor_stream_keep_alives_total{{{k1}}}")),
        1.0
    );
    assert_eq!(
        value(&format!("traptor_stream_limit_undelivered_tweets{{{k1}}}")),
        17.0
    );
    assert_eq!(value(&format!("traptor_stream_rules{{{k1}}}")), 3.0);
    assert_eq!(value(&format!("traptor_stream_filter_terms{{{k1}}}")), 4.0);
    assert_eq!(
        value(&format!("traptor_stream_restarts_total{{{k2}}}")),
        1.0
    );
    assert_eq!(
        value(&format!(
            "traptor_stream_state_change_timestamp_seconds{{{k1}}}"
        )),
        1_700_000_000.0
    );
    let lag = value(&format!("traptor_stream_lag_seconds{{{k1}}}"));
    assert!((lag - 1.5).abs() < 0.01, "lag {lag}");
    assert!(
        !samples.contains_key(&format!("traptor_stream_lag_seconds{{{k2}}}")),
        "no tweet, no lag"
    );

    assert_eq!(
        value(r#"traptor_rule_matches_total{slot="track:0",rule_id="r1"}"#),
        2.0
    );
    assert_eq!(
        value(r#"traptor_rule_matches_total{slot="track:0",rule_id="r2"}"#),
        1.0
    );
    assert_eq!(
        value(r#"traptor_rule_matches_total{slot="track:0",rule_id="r9"}"#),
        1.0
    );

    assert_eq!(value("traptor_connections_planned"), 2.0);
    assert_eq!(value("traptor_rules_left_out"), 3.0);
    assert_eq!(value("traptor_slots_without_key"), 1.0);
    assert_eq!(value("traptor_unused_keys"), 1.0);
    assert_eq!(value("traptor_ready"), 1.0);
    assert_eq!(value("traptor_watcher_connected"), 1.0);
    assert_eq!(value("traptor_watcher_syncs_total"), 1.0);
    assert_eq!(value("traptor_watcher_rules_loaded"), 40.0);
    assert_eq!(value("traptor_watcher_rule_errors"), 1.0);
    assert_eq!(
        value(&format!(
            "traptor_build_info{{version=\"{}\"}}",
            report.version
        )),
        1.0
    );

    // Counters move with the streams.
    first.message(MessageKind::Tweet);
    let again = metrics::render(
        &report::build(&sources, snapshot(), now),
        MetricsOptions::default(),
    );
    let samples = parse_exposition(&again).unwrap();
    assert_eq!(
        samples[&format!("traptor_stream_messages_total{{{k1},type=\"tweet\"}}")],
        6.0
    );

    // `[status] rule_metrics = false`: no per-rule series, everything else as before.
    let without_rules = metrics::render(
        &report::build(&sources, snapshot(), now),
        MetricsOptions {
            rule_matches: false,
        },
    );
    let trimmed = parse_exposition(&without_rules).unwrap();
    assert!(
        !without_rules.contains("traptor_rule_matches_total"),
        "{without_rules}"
    );
    assert_eq!(
        trimmed.len() + 3,
        samples.len(),
        "only the 3 rule series go"
    );
    assert_eq!(
        trimmed[&format!("traptor_stream_messages_total{{{k1},type=\"tweet\"}}")],
        6.0
    );
}

#[actix_rt::test]
async fn the_status_report_joins_plan_state_and_counters() {
    let now = SystemTime::now();
    let streams = StreamRegistry::default();
    let stats = Arc::new(StreamStats::default());
    stats.message(MessageKind::Tweet);
    stats.network_error("connection refused");
    streams.register(
        &ConnectionId::new(SlotId::new(StreamType::Track, "0"), 0),
        "k1",
        stats.clone(),
    );
    let sources = StatusSources {
        supervisor: FixedSupervisor(snapshot()).start().recipient(),
        streams,
        writer: None,
        rules: RulesSourceView::None,
        started_at: now,
    };
    let report = report::collect(&sources).await.unwrap();
    let first = &report.connections[0];
    assert_eq!(
        (
            first.status.key.as_str(),
            first.status.part,
            first.status.rules,
            first.status.terms
        ),
        ("k1", 0, 3, 4)
    );
    assert_eq!(
        first.status.last_error.as_deref(),
        Some("connection refused")
    );
    assert_eq!(first.counters.as_ref().unwrap().stats.messages["tweet"], 1);
    assert!(
        report.connections[1].counters.is_none(),
        "k2's stream never registered"
    );
    assert!(report.ready.ready, "{:?}", report.ready);

    // The JSON reads back into the same report (what `traptor status` does).
    let json = serde_json::to_string(&report).unwrap();
    let back: traptor_actors::status::StatusReport = serde_json::from_str(&json).unwrap();
    assert_eq!(
        back.connections[0]
            .counters
            .as_ref()
            .unwrap()
            .stats
            .messages["tweet"],
        1
    );
    assert_eq!(back.cluster.unused_keys, ["k3"]);
}
