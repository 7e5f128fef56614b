//! `traptor status [--url http://127.0.0.1:9099]`: how a running `traptor-supervisor` is doing,
//! for a person — readiness, a table of connections, what is not collected, the writer and
//! the rule source — read from its `/status` endpoint. `--json` prints the document as served.

use std::fmt::Write;
use std::process::ExitCode;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use anyhow::{bail, Context};
use traptor_actors::sinks::KafkaHealth;
use traptor_actors::status::client::{self, GetError};
use traptor_actors::status::{ConnectionReport, RulesReport, StatusReport, WriterReport};

use super::rules::write_stdout;

const DEFAULT_URL: &str = "http://127.0.0.1:9099";

#[derive(Debug, clap::Args)]
pub struct Args {
    /// The supervisor's status endpoint (`[status] listen` in its config).
    #[arg(long, value_name = "URL", default_value = DEFAULT_URL)]
    pub url: String,

    /// Print the raw JSON of /status.
    #[arg(long)]
    pub json: bool,
}

pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    let base = args.url.trim_end_matches('/');
    let response = match client::get(base, "/status", Duration::from_secs(10)) {
        Ok(response) => response,
        Err(error @ GetError::BadUrl(_)) => bail!(error),
        Err(error) => bail!(
            "{error}\nis traptor-supervisor running with [status] listen = \"{}\"?",
            listen_of(base)
        ),
    };
    if response.status != 200 {
        bail!(
            "{base}/status answered HTTP {}: {}",
            response.status,
            response.body.trim()
        );
    }
    if args.json {
        write_stdout(&response.body)?;
        return Ok(ExitCode::SUCCESS);
    }
    let report: StatusReport = serde_json::from_str(&response.body)
        .with_context(|| format!("{base}/status did not answer with a traptor status document"))?;
    write_stdout(&render(&report, unix_seconds()))?;
    Ok(ExitCode::SUCCESS)
}

/// `host:port` of the URL, as it would be written in `[status] listen`.
fn listen_of(base: &str) -> &str {
    let rest = base.strip_prefix("http://").unwrap_or(base);
    rest.split('/').next().unwrap_or(rest)
}

/// The report as text, with ages relative to `now` (Unix seconds).
pub fn render(report: &StatusReport, now: u64) -> String {
    let mut out = String::new();
    let up = now.saturating_sub(report.started_at);
    let _ = writeln!(
        out,
        "traptor {} — up {}{}",
        report.version,
        age(up),
        if report.cluster.shutting_down {
            ", SHUTTING DOWN"
        } else {
            ""
        }
    );
    if report.ready.ready {
        out.push_str("ready\n");
    } else {
        out.push_str("NOT READY:\n");
        for reason in &report.ready.not_ready {
            let _ = writeln!(out, "  - {reason}");
        }
    }
    out.push('\n');
    connections(&mut out, &report.connections, now);
    // Each line stands for a slot's rules left out for one reason: the title counts rules.
    let left_out = (report.cluster.rules_left_out_count).max(report.cluster.rules_left_out.len());
    list_counted(
        &mut out,
        "rules left out",
        left_out,
        &report.cluster.rules_left_out,
    );
    list(
        &mut out,
        "rules that could not be loaded",
        &report.cluster.rule_errors,
    );
    list(
        &mut out,
        "slots without an API key (not collected)",
        &report.cluster.slots_without_key,
    );
    list(&mut out, "API keys not used", &report.cluster.unused_keys);
    out.push('\n');
    if let Some(writer) = &report.writer {
        out.push_str(&writer_line(writer));
    }
    out.push_str(&rules_line(&report.rules_source, now));
    out
}

fn connections(out: &mut String, connections: &[ConnectionReport], now: u64) {
    if connections.is_empty() {
        out.push_str("no connections planned (no rules yet, or no API key)\n");
        return;
    }
    let rows: Vec<[String; 6]> = connections
        .iter()
        .map(|c| {
            let state = match c.status.state_since {
                Some(since) => format!("{} {}", c.status.state, age(now.saturating_sub(since))),
                None => c.status.state.clone(),
            };
            let rate = c
                .status.tweets_per_second
                .map(|r| format!("{r:.1}"))
                .unwrap_or_else(|| "-".to_owned());
            [
                c.status.connection.clone(),
                c.status.key.clone(),
                state,
                c.status.rules.to_string(),
                rate,
                c.status.last_error.clone().unwrap_or_default(),
            ]
        })
        .collect();
    let header = [
        "CONNECTION",
        "KEY",
        "STATE",
        "RULES",
        "TWEETS/S",
        "LAST ERROR",
    ];
    let mut widths = header.map(str::len);
    for row in &rows {
        for (width, cell) in widths.iter_mut().zip(row) {
            *width = (*width).max(cell.chars().count());
        }
    }
    let mut line = |cells: [&str; 6]| {
        let mut text = String::new();
        for (i, cell) in cells.iter().enumerate() {
            if i == cells.len() - 1 {
                text.push_str(cell);
            } else {
                let _ = write!(text, "{cell:<width$}  ", width = widths[i]);
            }
        }
        out.push_str(text.trim_end());
        out.push('\n');
    };
    line(header);
    for row in &rows {
        line([&row[0], &row[1], &row[2], &row[3], &row[4], &row[5]]);
    }
}

fn list(out: &mut String, title: &str, items: &[String]) {
    list_counted(out, title, items.len(), items);
}

/// A titled list whose title shows `count` (more than the lines when a line stands for many).
fn list_counted(out: &mut String, title: &str, count: usize, items: &[String]) {
    if items.is_empty() {
        return;
    }
    let _ = writeln!(out, "\n{title} ({count}):");
    for item in items {
        let _ = writeln!(out, "  {item}");
    }
}

fn writer_line(w: &WriterReport) -> String {
    let mut line = format!(
        "writer ({}): queued {}, delivered {}, failed {}, retried {}, given up {}, in flight {}",
        w.sink, w.stats.queued, w.stats.delivered, w.stats.failed, w.stats.retried, w.stats.given_up, w.stats.in_flight
    );
    if w.stats.spooled > 0 || w.stats.spool_records > 0 {
        let _ = write!(
            line,
            "; spooled {}, replayed {}, in spool {} ({} bytes)",
            w.stats.spooled, w.stats.replayed, w.stats.spool_records, w.stats.spool_bytes
        );
    }
    if let Some(kafka) = &w.kafka {
        if kafka.reports == 0 {
            line.push_str("; brokers: no report yet");
        } else {
            let _ = write!(
                line,
                "; brokers up {}/{}",
                kafka.brokers_up, kafka.brokers_known
            );
        }
        if kafka.brokers_readded > 0 {
            let _ = write!(
                line,
                "; bootstrap servers added again after every broker was lost: {}",
                kafka.brokers_readded
            );
        }
        if kafka.stalled_seconds >= KafkaHealth::STALLED_AFTER.as_secs() {
            let _ = write!(
                line,
                "; nothing acknowledged for {} s with a broker up",
                kafka.stalled_seconds
            );
        }
        if let Some(fatal) = &kafka.fatal {
            let _ = write!(line, "; FATAL: {fatal}");
        }
        // Why no broker is up; once one is, an old error would only mislead.
        if let (0, Some(error)) = (kafka.brokers_up, &kafka.last_error) {
            let _ = write!(line, "; last error: {error}");
        }
    }
    if let Some(closed) = &w.closed {
        let _ = write!(line, "; CLOSED: {closed}");
    }
    line + "\n"
}

fn rules_line(rules: &RulesReport, now: u64) -> String {
    let Some(w) = &rules.watcher else {
        return match rules.source.as_str() {
            "file" => format!("rules: file {}\n", rules.location),
            other => format!("rules: {other}\n"),
        };
    };
    let synced = match w.last_sync_at {
        Some(at) => format!("last sync {} ago", age(now.saturating_sub(at))),
        None => "never synced".to_owned(),
    };
    let mut line = format!(
        "rules: redis {} {}, {synced}: {} slot(s), {} rule(s), {} rule error(s); {} sync(s), {} failure(s), {} notice(s)",
        rules.location,
        if w.stats.connected { "connected" } else { "DISCONNECTED" },
        w.stats.slots,
        w.stats.rules,
        w.stats.rule_errors,
        w.stats.syncs,
        w.stats.failures,
        w.stats.notices
    );
    if let Some(error) = &w.stats.last_error {
        let _ = write!(line, "; last error: {error}");
    }
    line + "\n"
}

/// `45s`, `12m`, `3h`, `2d`: the largest unit, rounded down.
fn age(seconds: u64) -> String {
    match seconds {
        s if s < 120 => format!("{s}s"),
        s if s < 7_200 => format!("{}m", s / 60),
        s if s < 172_800 => format!("{}h", s / 3_600),
        s => format!("{}d", s / 86_400),
    }
}

fn unix_seconds() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use traptor_actors::sinks::{KafkaHealthSnapshot, WriterStatsSnapshot};
    use traptor_actors::status::{ClusterStatus, ConnectionStatus, Readiness, WatcherReport};
    use traptor_actors::watcher::WatcherStatsSnapshot;

    use super::*;

    fn report() -> StatusReport {
        StatusReport {
            version: "0.1.0".into(),
            started_at: 1_000,
            ready: Readiness {
                ready: false,
                not_ready: vec!["kafka: no broker reachable (0 of 1 up)".into()],
            },
            connections: vec![
                ConnectionReport {
                    status: ConnectionStatus {
                        connection: "track:0".into(),
                        key: "k1".into(),
                        state: "streaming".into(),
                        state_since: Some(1_100),
                        rules: 12,
                        tweets_per_second: Some(3.25),
                        ..ConnectionStatus::default()
                    },
                    counters: None,
                },
                ConnectionReport {
                    status: ConnectionStatus {
                        connection: "follow:1/1".into(),
                        key: "key-two".into(),
                        state: "auth_failed".into(),
                        rules: 3,
                        last_error: Some("HTTP 401".into()),
                        ..ConnectionStatus::default()
                    },
                    counters: None,
                },
            ],
            cluster: ClusterStatus {
                rules_left_out: vec![
                    "track:9: 3 rule(s) (ids 4, 5, 6): over the 400-phrase limit".into(),
                ],
                rules_left_out_count: 3,
                unused_keys: vec!["k3".into()],
                ..ClusterStatus::default()
            },
            writer: Some(WriterReport {
                sink: "kafka".into(),
                stats: WriterStatsSnapshot {
                    queued: 10,
                    delivered: 9,
                    in_flight: 1,
                    spooled: 4,
                    replayed: 3,
                    spool_records: 1,
                    spool_bytes: 900,
                    ..WriterStatsSnapshot::default()
                },
                kafka: Some(KafkaHealthSnapshot {
                    reports: 2,
                    brokers_up: 0,
                    brokers_known: 1,
                    brokers_readded: 0,
                    stalled_seconds: 0,
                    fatal: None,
                    last_error: Some("Connect to ipv4#127.0.0.1:9092 failed".into()),
                }),
                ..WriterReport::default()
            }),
            rules_source: RulesReport {
                source: "redis".into(),
                location: "127.0.0.1:6379/0".into(),
                watcher: Some(WatcherReport {
                    stats: WatcherStatsSnapshot {
                        connected: true,
                        slots: 2,
                        rules: 15,
                        syncs: 4,
                        ..WatcherStatsSnapshot::default()
                    },
                    last_sync_at: Some(1_190),
                    ..WatcherReport::default()
                }),
            },
            ..StatusReport::default()
        }
    }

    #[test]
    fn the_table_lines_up_and_every_section_is_shown() {
        let text = render(&report(), 1_200);
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines[0], "traptor 0.1.0 — up 3m");
        assert_eq!(lines[1], "NOT READY:");
        assert_eq!(lines[2], "  - kafka: no broker reachable (0 of 1 up)");
        assert_eq!(
            lines[4],
            "CONNECTION  KEY      STATE           RULES  TWEETS/S  LAST ERROR"
        );
        assert_eq!(lines[5], "track:0     k1       streaming 100s  12     3.2");
        assert_eq!(
            lines[6],
            "follow:1/1  key-two  auth_failed     3      -         HTTP 401"
        );
        assert!(
            text.contains(
                "\nrules left out (3):\n  track:9: 3 rule(s) (ids 4, 5, 6): over the 400-phrase limit\n"
            ),
            "{text}"
        );
        assert!(text.contains("\nAPI keys not used (1):\n  k3\n"), "{text}");
        assert!(text.contains(
            "writer (kafka): queued 10, delivered 9, failed 0, retried 0, given up 0, in flight 1; \
             spooled 4, replayed 3, in spool 1 (900 bytes); brokers up 0/1; last error: \
             Connect to ipv4#127.0.0.1:9092 failed\n"
        ), "{text}");
        assert!(
            text.contains(
                "rules: redis 127.0.0.1:6379/0 connected, last sync 10s ago: 2 slot(s), 15 rule(s)"
            ),
            "{text}"
        );
        assert!(
            !text.contains("slots without"),
            "empty sections are left out"
        );
    }

    #[test]
    fn nothing_planned_and_file_rules_read_plainly() {
        let mut report = report();
        report.connections.clear();
        report.ready = Readiness {
            ready: true,
            not_ready: vec![],
        };
        report.rules_source = RulesReport {
            source: "file".into(),
            location: "rules.json".into(),
            watcher: None,
        };
        let text = render(&report, 90_000);
        assert!(text.contains("up 24h\nready\n"), "{text}");
        assert!(text.contains("no connections planned"), "{text}");
        assert!(text.ends_with("rules: file rules.json\n"), "{text}");
    }

    #[test]
    fn ages_use_the_largest_sensible_unit() {
        assert_eq!(age(5), "5s");
        assert_eq!(age(600), "10m");
        assert_eq!(age(10_800), "3h");
        assert_eq!(age(259_200), "3d");
    }

    #[test]
    fn an_unreachable_supervisor_says_what_to_check() {
        // A port nothing listens on: bind one, learn it, close it.
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let args = Args {
            url: format!("http://127.0.0.1:{port}"),
            json: false,
        };
        let error = run(args).unwrap_err().to_string();
        assert!(
            error.contains(&format!("cannot connect to 127.0.0.1:{port}")),
            "{error}"
        );
        assert!(
            error.contains(&format!(
                "is traptor-supervisor running with [status] listen = \"127.0.0.1:{port}\"?"
            )),
            "{error}"
        );
    }
}
