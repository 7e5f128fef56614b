//! Readiness: whether this process is doing its job, and if not, what is missing.
//!
//! Ready means: not shutting down; the sink can take records (Kafka: a broker is up and the
//! producer had no fatal error); the rules are current (Redis: the watcher is connected and
//! synced recently); and at least one connection streams, unless none is planned. Each
//! unmet condition is one sentence in [`Readiness::not_ready`], so `/readyz` says what to fix.

use serde::{Deserialize, Serialize};

use super::report::{RulesReport, StatusReport, WriterReport};
use crate::sinks::KafkaHealth;

/// The verdict of `/readyz`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct Readiness {
    pub ready: bool,
    /// What is not ready, one sentence each (empty when ready).
    pub not_ready: Vec<String>,
}

impl Default for Readiness {
    fn default() -> Self {
        Readiness {
            ready: false,
            not_ready: vec!["readiness not evaluated yet".to_owned()],
        }
    }
}

impl Readiness {
    /// Not ready for one reason (e.g. the supervisor does not answer).
    pub fn failing(reason: impl Into<String>) -> Readiness {
        Readiness {
            ready: false,
            not_ready: vec![reason.into()],
        }
    }
}

/// Judges a report (whose own `ready` field is ignored).
pub fn readiness(report: &StatusReport) -> Readiness {
    let mut not_ready = Vec::new();
    if report.cluster.shutting_down {
        not_ready.push("shutting down".to_owned());
    }
    if let Some(writer) = &report.writer {
        not_ready.extend(writer_problem(writer));
    }
    not_ready.extend(rules_problem(&report.rules_source));
    let planned = report.connections.len();
    let streaming = report
        .connections
        .iter()
        .filter(|c| c.status.state == "streaming")
        .count();
    if planned > 0 && streaming == 0 {
        not_ready.push(format!(
            "streams: none of the {planned} planned connection(s) is streaming"
        ));
    }
    Readiness {
        ready: not_ready.is_empty(),
        not_ready,
    }
}

fn writer_problem(writer: &WriterReport) -> Option<String> {
    if let Some(reason) = &writer.closed {
        return Some(format!("{} sink: closed for good: {reason}", writer.sink));
    }
    let kafka = writer.kafka.as_ref()?;
    if let Some(fatal) = &kafka.fatal {
        return Some(format!(
            "kafka: the producer hit a fatal error ({fatal}); restart the process"
        ));
    }
    let last_error = kafka
        .last_error
        .as_deref()
        .map(|e| format!("; last error: {e}"))
        .unwrap_or_default();
    if kafka.reports == 0 {
        return Some(format!(
            "kafka: no broker report yet (the producer reports every few seconds){last_error}"
        ));
    }
    if kafka.stalled_seconds >= KafkaHealth::STALLED_AFTER.as_secs() {
        return Some(format!(
            "kafka: no delivery acknowledged for {} s although a broker is up and records wait; \
             the producer may be stuck (docs/operations.md §5.1){last_error}",
            kafka.stalled_seconds
        ));
    }
    if kafka.brokers_known == 0 {
        return Some(format!(
            "kafka: the producer knows no broker at all (it forgot them, as after a fenced \
             broker); traptor adds the bootstrap servers again after two such reports{last_error}"
        ));
    }
    if kafka.brokers_up == 0 {
        return Some(format!(
            "kafka: no broker reachable (0 of {} up); check [kafka] bootstrap_servers, the \
             brokers and the security settings (`traptor-supervisor check` tries them){last_error}",
            kafka.brokers_known
        ));
    }
    None
}

fn rules_problem(rules: &RulesReport) -> Option<String> {
    let watcher = rules.watcher.as_ref()?;
    let Some(age) = watcher.last_sync_age_seconds else {
        let why = watcher
            .stats
            .last_error
            .as_deref()
            .map(|e| format!(": {e}"))
            .unwrap_or_default();
        return Some(format!(
            "redis: rules not loaded yet from {}{why}",
            rules.location
        ));
    };
    if !watcher.stats.connected {
        let why = watcher
            .stats
            .last_error
            .as_deref()
            .unwrap_or("connection lost");
        return Some(format!(
            "redis: the rule watcher lost {} ({why}); running on rules synced {age:.0} s ago",
            rules.location
        ));
    }
    if age > watcher.stale_after_seconds {
        return Some(format!(
            "redis: the last rule sync from {} was {age:.0} s ago (more than {:.0} s)",
            rules.location, watcher.stale_after_seconds
        ));
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sinks::KafkaHealthSnapshot;
    use crate::status::report::{ConnectionReport, WatcherReport};
    use crate::status::ConnectionStatus;
    use crate::watcher::WatcherStatsSnapshot;

    fn connection(state: &str) -> ConnectionReport {
        ConnectionReport {
            status: ConnectionStatus {
                connection: "track:0".into(),
                state: state.into(),
                ..ConnectionStatus::default()
            },
            counters: None,
        }
    }

    fn healthy() -> StatusReport {
        StatusReport {
            connections: vec![connection("streaming"), connection("backing_off")],
            writer: Some(WriterReport {
                sink: "kafka".into(),
                kafka: Some(KafkaHealthSnapshot {
                    reports: 3,
                    brokers_up: 1,
                    brokers_known: 1,
                    ..KafkaHealthSnapshot::default()
                }),
                ..WriterReport::default()
            }),
            rules_source: RulesReport {
                source: "redis".into(),
                location: "127.0.0.1:6379/0".into(),
                watcher: Some(WatcherReport {
                    stats: WatcherStatsSnapshot {
                        connected: true,
                        ..WatcherStatsSnapshot::default()
                    },
                    last_sync_age_seconds: Some(5.0),
                    stale_after_seconds: 130.0,
                    ..WatcherReport::default()
                }),
            },
            ..StatusReport::default()
        }
    }

    #[test]
    fn one_streaming_connection_a_broker_and_a_fresh_sync_make_ready() {
        assert_eq!(
            readiness(&healthy()),
            Readiness {
                ready: true,
                not_ready: vec![]
            }
        );
    }

    #[test]
    fn nothing_planned_is_ready_but_planned_and_not_streaming_is_not() {
        let mut report = healthy();
        report.connections.clear();
        assert!(readiness(&report).ready);
        report.connections = vec![connection("connecting"), connection("auth_failed")];
        let verdict = readiness(&report);
        assert!(!verdict.ready);
        assert_eq!(
            verdict.not_ready,
            ["streams: none of the 2 planned connection(s) is streaming"]
        );
    }

    #[test]
    fn kafka_without_brokers_or_with_a_fatal_error_is_not_ready() {
        let mut report = healthy();
        let kafka = report.writer.as_mut().unwrap().kafka.as_mut().unwrap();
        kafka.brokers_up = 0;
        assert!(readiness(&report).not_ready[0].contains("no broker reachable (0 of 1 up)"));
        let kafka = report.writer.as_mut().unwrap().kafka.as_mut().unwrap();
        kafka.last_error = Some("SASL authentication error: Authentication failed".into());
        assert!(readiness(&report).not_ready[0]
            .ends_with("; last error: SASL authentication error: Authentication failed"));
        let kafka = report.writer.as_mut().unwrap().kafka.as_mut().unwrap();
        kafka.stalled_seconds = KafkaHealth::STALLED_AFTER.as_secs();
        assert!(readiness(&report).not_ready[0].contains("no delivery acknowledged for 120 s"));
        let kafka = report.writer.as_mut().unwrap().kafka.as_mut().unwrap();
        kafka.stalled_seconds = KafkaHealth::STALLED_AFTER.as_secs() - 1;
        assert!(
            readiness(&report).not_ready[0].contains("no broker reachable"),
            "a shorter wait is an ordinary pause, not a stall"
        );
        let kafka = report.writer.as_mut().unwrap().kafka.as_mut().unwrap();
        kafka.brokers_known = 0;
        assert!(readiness(&report).not_ready[0].contains("knows no broker at all"));
        let kafka = report.writer.as_mut().unwrap().kafka.as_mut().unwrap();
        kafka.reports = 0;
        assert!(readiness(&report).not_ready[0].contains("no broker report yet"));
        let kafka = report.writer.as_mut().unwrap().kafka.as_mut().unwrap();
        kafka.fatal = Some("fenced".into());
        assert!(readiness(&report).not_ready[0].contains("fatal error (fenced)"));
    }

    #[test]
    fn a_lost_or_stale_rule_watcher_is_not_ready() {
        let mut report = healthy();
        let watcher = report.rules_source.watcher.as_mut().unwrap();
        watcher.last_sync_age_seconds = Some(500.0);
        assert!(readiness(&report).not_ready[0].contains("500 s ago (more than 130 s)"));
        let watcher = report.rules_source.watcher.as_mut().unwrap();
        watcher.stats.connected = false;
        watcher.stats.last_error = Some("Redis error: refused".into());
        let verdict = readiness(&report);
        assert_eq!(verdict.not_ready.len(), 1);
        assert!(
            verdict.not_ready[0].contains("lost 127.0.0.1:6379/0 (Redis error: refused)"),
            "{verdict:?}"
        );
        let watcher = report.rules_source.watcher.as_mut().unwrap();
        watcher.last_sync_age_seconds = None;
        assert!(readiness(&report).not_ready[0].starts_with("redis: rules not loaded yet"));
    }

    #[test]
    fn every_problem_is_listed() {
        let mut report = healthy();
        report.cluster.shutting_down = true;
        report.writer.as_mut().unwrap().closed = Some("stdout closed".into());
        report.connections = vec![connection("stopped")];
        let verdict = readiness(&report);
        assert_eq!(verdict.not_ready.len(), 3, "{verdict:?}");
    }

    #[test]
    fn file_rules_and_line_sinks_need_no_broker_or_watcher() {
        let mut report = healthy();
        report.rules_source = RulesReport {
            source: "file".into(),
            location: "rules.json".into(),
            watcher: None,
        };
        report.writer = Some(WriterReport {
            sink: "stdout".into(),
            ..WriterReport::default()
        });
        assert!(readiness(&report).ready);
    }
}
