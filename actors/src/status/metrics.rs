//! `/metrics`: the status report in Prometheus' text exposition format (version 0.0.4).
//!
//! Every family gets `# HELP` and `# TYPE` lines and then its samples, grouped. Names follow
//! Prometheus conventions: the `traptor_` prefix, `_total` on counters, base units (`_seconds`,
//! `_bytes`). Connections are labelled `slot`, `part` and `key` (the key's NAME only).
//! Counters live as long as their stream actor: a restarted stream starts again from zero,
//! which `rate()` and `increase()` treat as a counter reset.

use std::collections::BTreeMap;
use std::fmt::Write;

use traptor_core::MessageKind;

use super::report::{ConnectionReport, StatusReport, WriterReport};
use crate::stream::DropKind;

/// Every state a connection can be reported in, so each state series exists (at 0 or 1).
pub const CONNECTION_STATES: [&str; 8] = [
    "not_started",
    "connecting",
    "streaming",
    "backing_off",
    "auth_failed",
    "rejected",
    "stopped",
    "restarting",
];

/// The content type of the exposition format.
pub const CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

/// What `/metrics` includes beyond the families every report has.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MetricsOptions {
    /// Per-rule match counters (`[status] rule_metrics`): one series per matched rule.
    pub rule_matches: bool,
}

impl Default for MetricsOptions {
    fn default() -> Self {
        MetricsOptions { rule_matches: true }
    }
}

/// Renders the report as Prometheus text.
pub fn render(report: &StatusReport, options: MetricsOptions) -> String {
    let mut families = Families::default();
    process(&mut families, report);
    for connection in &report.connections {
        stream(&mut families, connection);
    }
    if options.rule_matches {
        rule_matches(&mut families, &report.connections);
    }
    if let Some(writer) = &report.writer {
        self::writer(&mut families, writer);
    }
    watcher(&mut families, report);
    families.render()
}

fn process(f: &mut Families, report: &StatusReport) {
    let none: &[(&str, &str)] = &[];
    f.gauge(
        "traptor_build_info",
        "traptor's version, as a label; always 1.",
    )
    .sample(&[("version", &report.version)], 1u64);
    f.gauge(
        "traptor_start_time_seconds",
        "When the process started, in Unix seconds.",
    )
    .sample(none, report.started_at);
    f.gauge("traptor_ready", "1 when /readyz answers 200, else 0.")
        .sample(none, u64::from(report.ready.ready));
    f.gauge(
        "traptor_connections_planned",
        "Connections in the current plan.",
    )
    .sample(none, report.connections.len());
    f.gauge(
        "traptor_rules_left_out",
        "Rules not on any connection (over a connection's limits or without a key).",
    )
    .sample(none, report.cluster.rules_left_out_count);
    f.gauge(
        "traptor_slots_without_key",
        "Slots that have rules but no API key to run them.",
    )
    .sample(none, report.cluster.slots_without_key.len());
    f.gauge(
        "traptor_unused_keys",
        "Configured API keys that no connection uses.",
    )
    .sample(none, report.cluster.unused_keys.len());
    f.gauge(
        "traptor_rule_errors",
        "Rules that could not be loaded at all.",
    )
    .sample(none, report.cluster.rule_errors.len());
}

fn stream(f: &mut Families, c: &ConnectionReport) {
    let part = c.status.part.to_string();
    let labels: [(&'static str, &str); 3] = [
        ("slot", &c.status.slot),
        ("part", &part),
        ("key", &c.status.key),
    ];
    // The connection's labels plus one more (`state`, `reason`, `code` or `type`).
    let with = |name: &'static str, value: &str| -> Vec<(&'static str, String)> {
        let own = labels.iter().map(|(k, v)| (*k, v.to_string()));
        own.chain([(name, value.to_owned())]).collect()
    };

    let states = f.gauge(
        "traptor_stream_state",
        "1 for the connection's current state, 0 for the others.",
    );
    for state in CONNECTION_STATES {
        states.sample(&with("state", state), u64::from(c.status.state == state));
    }
    if !CONNECTION_STATES.contains(&c.status.state.as_str()) {
        states.sample(&with("state", &c.status.state), 1u64);
    }
    if let Some(since) = c.status.state_since {
        f.gauge(
            "traptor_stream_state_change_timestamp_seconds",
            "When the connection entered its current state, in Unix seconds.",
        )
        .sample(&labels, since);
    }
    f.gauge("traptor_stream_rules", "Rules on the connection.")
        .sample(&labels, c.status.rules);
    f.gauge(
        "traptor_stream_filter_terms",
        "Filter terms (phrases, ids or boxes) sent for the connection.",
    )
    .sample(&labels, c.status.terms);
    f.counter(
        "traptor_stream_restarts_total",
        "Restarts of the connection's stream after it died unexpectedly.",
    )
    .sample(&labels, c.status.restarts);

    let Some(counters) = &c.counters else {
        return;
    };
    f.counter(
        "traptor_stream_connect_attempts_total",
        "Connection attempts.",
    )
    .sample(&labels, counters.stats.connect_attempts);
    f.counter(
        "traptor_stream_connects_total",
        "Connections that were accepted (HTTP 200) and started streaming.",
    )
    .sample(&labels, counters.stats.connected);
    f.counter(
        "traptor_stream_network_errors_total",
        "Connection attempts that failed before an HTTP response.",
    )
    .sample(&labels, counters.stats.network_errors);
    let disconnects = f.counter(
        "traptor_stream_disconnects_total",
        "Open streams that ended, by reason.",
    );
    for reason in with_zeroes(&counters.stats.drops, DropKind::ALL.map(DropKind::as_str)) {
        disconnects.sample(&with("reason", reason.0), reason.1);
    }
    let responses = f.counter(
        "traptor_stream_http_responses_total",
        "Non-200 HTTP responses to connection attempts, by status code.",
    );
    for (code, count) in &counters.stats.http_statuses {
        responses.sample(&with("code", &code.to_string()), *count);
    }
    let messages = f.counter(
        "traptor_stream_messages_total",
        "Messages received, by type.",
    );
    for (kind, count) in with_zeroes(
        &counters.stats.messages,
        MessageKind::ALL.map(MessageKind::as_str),
    ) {
        messages.sample(&with("type", kind), count);
    }
    f.counter(
        "traptor_stream_tweets_matched_total",
        "Tweets that matched at least one rule.",
    )
    .sample(&labels, counters.stats.tweets_matched);
    f.counter(
        "traptor_stream_tweets_unmatched_total",
        "Tweets that matched no rule (written as Not Found).",
    )
    .sample(&labels, counters.stats.tweets_unmatched);
    f.counter(
        "traptor_stream_received_bytes_total",
        "Bytes of stream body received.",
    )
    .sample(&labels, counters.stats.bytes);
    f.counter(
        "traptor_stream_keep_alives_total",
        "Keep-alive newlines received.",
    )
    .sample(&labels, counters.stats.keep_alives);
    f.counter(
        "traptor_stream_frame_errors_total",
        "Malformed or oversized messages on the stream.",
    )
    .sample(&labels, counters.stats.frame_errors);
    f.gauge("traptor_stream_limit_undelivered_tweets", "Tweets the server could not deliver on the current connection, from its latest limit notice.")
        .sample(&labels, counters.stats.limit_undelivered);
    if let Some(lag) = counters.lag_seconds {
        f.gauge(
            "traptor_stream_lag_seconds",
            "Now minus the timestamp_ms of the newest tweet received.",
        )
        .sample(&labels, lag);
    }
}

/// Matches per `(slot, rule_id)`, summed over the slot's connections.
fn rule_matches(f: &mut Families, connections: &[ConnectionReport]) {
    let mut totals: BTreeMap<(&str, &str), u64> = BTreeMap::new();
    for c in connections {
        let Some(counters) = &c.counters else {
            continue;
        };
        for (rule_id, count) in &counters.stats.rule_matches {
            *totals
                .entry((c.status.slot.as_str(), rule_id.as_str()))
                .or_insert(0) += count;
        }
    }
    let family = f.counter(
        "traptor_rule_matches_total",
        "Tweets that matched the rule.",
    );
    for ((slot, rule_id), count) in totals {
        family.sample(&[("slot", slot), ("rule_id", rule_id)], count);
    }
}

fn writer(f: &mut Families, w: &WriterReport) {
    let labels = [("sink", w.sink.as_str())];
    f.counter(
        "traptor_writer_records_queued_total",
        "Records the writer accepted from the streams.",
    )
    .sample(&labels, w.stats.queued);
    f.counter(
        "traptor_writer_records_delivered_total",
        "Records the destination confirmed.",
    )
    .sample(&labels, w.stats.delivered);
    f.counter(
        "traptor_writer_delivery_failures_total",
        "Failed delivery attempts (each retried or given up).",
    )
    .sample(&labels, w.stats.failed);
    f.counter(
        "traptor_writer_records_retried_total",
        "Records sent again after a failed attempt.",
    )
    .sample(&labels, w.stats.retried);
    f.counter(
        "traptor_writer_records_given_up_total",
        "Records that will never be delivered.",
    )
    .sample(&labels, w.stats.given_up);
    f.gauge(
        "traptor_writer_records_in_flight",
        "Records accepted but not yet delivered nor given up.",
    )
    .sample(&labels, w.stats.in_flight);
    f.counter(
        "traptor_writer_records_spooled_total",
        "Records written to the disk spool while the destination was down.",
    )
    .sample(&labels, w.stats.spooled);
    f.counter(
        "traptor_writer_records_replayed_total",
        "Records read back from the disk spool and sent again.",
    )
    .sample(&labels, w.stats.replayed);
    f.gauge(
        "traptor_writer_spool_records",
        "Records in the disk spool not yet delivered.",
    )
    .sample(&labels, w.stats.spool_records);
    f.gauge(
        "traptor_writer_spool_bytes",
        "Size of the disk spool's files.",
    )
    .sample(&labels, w.stats.spool_bytes);
    f.gauge(
        "traptor_writer_closed",
        "1 when the destination went away for good.",
    )
    .sample(&labels, u64::from(w.closed.is_some()));
    if let Some(kafka) = &w.kafka {
        let none: &[(&str, &str)] = &[];
        f.gauge(
            "traptor_kafka_brokers_up",
            "Kafka brokers the producer is connected to, at its last report.",
        )
        .sample(none, kafka.brokers_up);
        f.gauge(
            "traptor_kafka_brokers_known",
            "Kafka brokers the producer knows (configured or learned).",
        )
        .sample(none, kafka.brokers_known);
        f.counter(
            "traptor_kafka_brokers_readded_total",
            "Times the bootstrap servers were added again to a producer that had lost every broker.",
        )
        .sample(none, kafka.brokers_readded);
        f.gauge(
            "traptor_kafka_stalled_seconds",
            "Seconds records have waited, with a broker up, without any delivery report.",
        )
        .sample(none, kafka.stalled_seconds);
        f.gauge(
            "traptor_kafka_fatal_error",
            "1 once the producer hit a fatal error (restart needed).",
        )
        .sample(none, u64::from(kafka.fatal.is_some()));
    }
}

fn watcher(f: &mut Families, report: &StatusReport) {
    let Some(w) = &report.rules_source.watcher else {
        return;
    };
    let none: &[(&str, &str)] = &[];
    f.gauge(
        "traptor_watcher_connected",
        "1 while the rule watcher is subscribed to Redis and synced.",
    )
    .sample(none, u64::from(w.stats.connected));
    f.counter(
        "traptor_watcher_syncs_total",
        "Full rule syncs from Redis that succeeded.",
    )
    .sample(none, w.stats.syncs);
    f.counter(
        "traptor_watcher_failures_total",
        "Rule-watcher sessions that ended on a Redis error.",
    )
    .sample(none, w.stats.failures);
    f.counter(
        "traptor_watcher_notices_total",
        "Rule-change notices received on the notify channel.",
    )
    .sample(none, w.stats.notices);
    if let Some(at) = w.last_sync_at {
        f.gauge(
            "traptor_watcher_last_sync_timestamp_seconds",
            "When the rules were last synced from Redis, in Unix seconds.",
        )
        .sample(none, at);
    }
    f.gauge(
        "traptor_watcher_slots",
        "Slots with rules at the last sync.",
    )
    .sample(none, w.stats.slots);
    f.gauge(
        "traptor_watcher_rules_loaded",
        "Rules loaded at the last sync.",
    )
    .sample(none, w.stats.rules);
    f.gauge(
        "traptor_watcher_rule_errors",
        "Rules that could not be loaded at the last sync.",
    )
    .sample(none, w.stats.rule_errors);
}

/// The counts of `seen` plus a zero for every name of `all` not seen, so counters exist from
/// the start (a series that appears late hides its first increase from `rate()`).
fn with_zeroes<'a, const N: usize>(
    seen: &'a BTreeMap<String, u64>,
    all: [&'a str; N],
) -> BTreeMap<&'a str, u64> {
    let mut counts: BTreeMap<&str, u64> = all.into_iter().map(|name| (name, 0)).collect();
    for (name, count) in seen {
        counts.insert(name.as_str(), *count);
    }
    counts
}

/// The metric families in the order first declared, each with its samples.
#[derive(Default)]
struct Families {
    families: Vec<Family>,
}

struct Family {
    name: &'static str,
    kind: &'static str,
    help: &'static str,
    /// Rendered `name{labels} value` lines.
    samples: String,
}

impl Families {
    fn counter(&mut self, name: &'static str, help: &'static str) -> &mut Family {
        self.family(name, "counter", help)
    }

    fn gauge(&mut self, name: &'static str, help: &'static str) -> &mut Family {
        self.family(name, "gauge", help)
    }

    fn family(
        &mut self,
        name: &'static str,
        kind: &'static str,
        help: &'static str,
    ) -> &mut Family {
        match self.families.iter().position(|f| f.name == name) {
            Some(at) => &mut self.families[at],
            None => {
                self.families.push(Family {
                    name,
                    kind,
                    help,
                    samples: String::new(),
                });
                self.families.last_mut().expect("just pushed")
            }
        }
    }

    fn render(&self) -> String {
        let mut out = String::new();
        for family in self.families.iter().filter(|f| !f.samples.is_empty()) {
            let _ = writeln!(out, "# HELP {} {}", family.name, escape_help(family.help));
            let _ = writeln!(out, "# TYPE {} {}", family.name, family.kind);
            out.push_str(&family.samples);
        }
        out
    }
}

impl Family {
    fn sample<K: AsRef<str>, V: AsRef<str>>(&mut self, labels: &[(K, V)], value: impl Into<Value>) {
        self.samples.push_str(self.name);
        if !labels.is_empty() {
            self.samples.push('{');
            for (i, (key, value)) in labels.iter().enumerate() {
                if i > 0 {
                    self.samples.push(',');
                }
                let _ = write!(
                    self.samples,
                    "{}=\"{}\"",
                    key.as_ref(),
                    escape_label(value.as_ref())
                );
            }
            self.samples.push('}');
        }
        let _ = writeln!(self.samples, " {}", value.into());
    }
}

/// A sample value: counts stay exact integers, measurements are floats.
enum Value {
    Int(u64),
    Float(f64),
}

impl From<u64> for Value {
    fn from(v: u64) -> Value {
        Value::Int(v)
    }
}

impl From<u32> for Value {
    fn from(v: u32) -> Value {
        Value::Int(v.into())
    }
}

impl From<usize> for Value {
    fn from(v: usize) -> Value {
        Value::Int(v as u64)
    }
}

impl From<f64> for Value {
    fn from(v: f64) -> Value {
        Value::Float(v)
    }
}

impl std::fmt::Display for Value {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match *self {
            Value::Int(v) => write!(f, "{v}"),
            Value::Float(v) if v.is_nan() => f.write_str("NaN"),
            Value::Float(v) if v.is_infinite() => {
                f.write_str(if v > 0.0 { "+Inf" } else { "-Inf" })
            }
            Value::Float(v) => write!(f, "{v}"),
        }
    }
}

fn escape_label(value: &str) -> String {
    value
        .replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

fn escape_help(help: &str) -> String {
    help.replace('\\', "\\\\").replace('\n', "\\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn samples_are_grouped_under_one_help_and_type() {
        let mut f = Families::default();
        f.counter("x_total", "An x.").sample(&[("a", "1")], 1u64);
        f.gauge("y", "A y.").sample(&[("a", "1")], 0.5);
        f.counter("x_total", "An x.").sample(&[("a", "2")], 2u64);
        assert_eq!(
            f.render(),
            "# HELP x_total An x.\n# TYPE x_total counter\nx_total{a=\"1\"} 1\nx_total{a=\"2\"} 2\n\
             # HELP y A y.\n# TYPE y gauge\ny{a=\"1\"} 0.5\n"
        );
    }

    #[test]
    fn label_values_are_escaped_and_families_without_samples_left_out() {
        let mut f = Families::default();
        f.gauge("empty", "Nothing.");
        f.gauge("g", "G.")
            .sample(&[("k", "a\"b\\c\nd")], f64::INFINITY);
        assert_eq!(
            f.render(),
            "# HELP g G.\n# TYPE g gauge\ng{k=\"a\\\"b\\\\c\\nd\"} +Inf\n"
        );
    }

    #[test]
    fn every_known_name_gets_a_zero() {
        let mut seen = BTreeMap::new();
        seen.insert("stall".to_owned(), 3);
        let counts = with_zeroes(&seen, DropKind::ALL.map(DropKind::as_str));
        assert_eq!(counts.len(), DropKind::ALL.len());
        assert_eq!(counts["stall"], 3);
        assert_eq!(counts["closed"], 0);
    }
}
