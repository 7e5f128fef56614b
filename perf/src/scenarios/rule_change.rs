//! Scenario 3, rule-change reaction: from `PUBLISH traptor-notify track:N` (after the HSET of
//! a changed rule) to the emulator accepting the new connection with the new track terms,
//! over many changes; and no reconnect of any stream whose rules did not change.

use std::collections::BTreeMap;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use anyhow::Context;
use traptor_firehose::Stats;

use super::{emulator_config, Common};
use crate::cluster::{self, phrase};
use crate::emulator::Emulator;
use crate::figures::percentile;
use crate::kafka;
use crate::report::Report;
use crate::supervisor::SupervisorProcess;

#[derive(Debug, Clone)]
pub struct Options {
    /// Slots (and keys); changes rotate over them so no key exceeds its pacing burst.
    pub slots: usize,
    pub changes: usize,
    /// Pause after a change is live (and the old stream closed) before the next one.
    pub gap: Duration,
    /// A change not live within this counts as this long (and as missed).
    pub timeout: Duration,
    /// Follow rules stored besides the scenario's own, in slots without a key: the keyspace a
    /// notice's slot lookup has to walk (0: only the scenario's rules).
    pub stored_rules: usize,
}

const TARGET_P99: Duration = Duration::from_millis(500);

/// The rule that changes in slot `slot`, at version `version`.
fn rotating_phrase(slot: u32, version: usize) -> String {
    format!("perfs{slot}v{version}")
}

fn rotating_rule_id(slot: u32) -> String {
    (slot * 1000 + 999).to_string()
}

pub fn run(common: &Common, options: &Options) -> anyhow::Result<Report> {
    let slots = options.slots;
    let topic = cluster::unique("perf-rule-change");
    kafka::create_topic(&common.services.kafka_brokers, &topic, common.partitions)?;
    let mut spec = common.cluster(slots, String::new(), &topic);
    // A trickle of tweets, so the streams carry traffic while they are changed.
    let emulator = Emulator::start(emulator_config(&spec, 20.0))?;
    spec.endpoint = emulator.url();
    let mut rules = common.write_rules(&spec, slots, 1)?;
    for slot in 0..slots as u32 {
        rules.put_track_rule(slot, &rotating_rule_id(slot), &rotating_phrase(slot, 0))?;
    }
    rules.put_follow_rules(options.stored_rules)?;
    let mut supervisor = SupervisorProcess::start(
        &common.supervisor,
        &common.run_dir,
        "rule-change",
        &spec.to_toml(),
    )?;
    emulator
        .wait_for(
            &format!("{slots} open streams"),
            Duration::from_secs(120),
            Duration::from_millis(50),
            |s| s.open_connections().count() == slots,
        )
        .with_context(|| format!("supervisor log: {}", supervisor.log_path().display()))?;
    std::thread::sleep(Duration::from_secs(2));

    let mut latencies = Vec::with_capacity(options.changes);
    let mut missed = 0usize;
    let mut changes_of: BTreeMap<u32, usize> = BTreeMap::new();
    for change in 0..options.changes {
        let slot = (change % slots) as u32;
        let version = change / slots + 1;
        let term = rotating_phrase(slot, version);
        rules.put_track_rule(slot, &rotating_rule_id(slot), &term)?;
        let published_ms = unix_ms();
        rules.notify_track(slot)?;
        *changes_of.entry(slot).or_default() += 1;
        let live = emulator.wait_for(
            &format!("track:{slot} with {term}"),
            options.timeout,
            Duration::from_millis(2),
            |s| connected_with(s, &term).is_some(),
        );
        match live {
            Ok(stats) => {
                let at_ms = connected_with(&stats, &term).expect("checked by wait_for");
                latencies.push(Duration::from_secs_f64(
                    (at_ms - published_ms).max(0.0) / 1000.0,
                ));
                // The old stream of the slot closes before the next change.
                let _ = emulator.wait_for(
                    "the old stream to close",
                    Duration::from_secs(5),
                    Duration::from_millis(5),
                    |s| open_of_slot(s, slot) == 1,
                );
            }
            Err(_) => {
                missed += 1;
                latencies.push(options.timeout);
            }
        }
        supervisor.ensure_running()?;
        std::thread::sleep(options.gap);
    }
    std::thread::sleep(Duration::from_secs(2));
    let truth = emulator.stats();
    supervisor.terminate(Duration::from_secs(30))?;
    emulator.stop();

    // Every slot's connections, by the term only it has: 1 + its changes is the expectation.
    let mut unexpected = 0usize;
    let mut expected_total = 0usize;
    for slot in 0..slots as u32 {
        let fixed = phrase(slot, 0);
        let connects = truth
            .connections
            .iter()
            .filter(|c| c.track.contains(&fixed))
            .count();
        let expected = 1 + changes_of.get(&slot).copied().unwrap_or(0);
        expected_total += expected;
        unexpected += connects.saturating_sub(expected);
    }
    let key_connects: u64 = truth.credentials.iter().map(|c| c.connects).sum();
    let max_key_connects = truth
        .credentials
        .iter()
        .map(|c| c.connects)
        .max()
        .unwrap_or(0);
    let refused: u64 = truth
        .credentials
        .iter()
        .map(|c| c.rejected_420 + c.rejected_other)
        .sum();

    let p50 = percentile(&latencies, 50.0).unwrap_or_default();
    let p99 = percentile(&latencies, 99.0).unwrap_or_default();
    let max = latencies.iter().max().copied().unwrap_or_default();
    let mut report = Report::new("Rule-change reaction");
    report.setup(format!(
        "{slots} API keys, {slots} track slots (a fixed rule plus one that changes); {} changes \
         rotating over the slots, one at a time, {} ms apart once live; {} more follow rules \
         stored in slots without a key (the keyspace a notice's lookup walks)",
        options.changes,
        options.gap.as_millis(),
        options.stored_rules
    ));
    report.setup(format!(
        "each change: HSET of the changed rule, then PUBLISH <channel> track:N; latency = the \
         emulator's accept time (connect log, unix ms) of the first connection carrying the new \
         term − the time of the PUBLISH. Pacing left at its default (connects_per_key_per_minute \
         = 6: a burst of 5 per key): each key makes 1 + {} connects, so no backoff or pacing \
         delay is in play",
        options.changes.div_ceil(slots)
    ));
    report.info("changes", options.changes.to_string());
    report.info("p50", format!("{:.0} ms", p50.as_secs_f64() * 1000.0));
    report.check(
        "p99",
        format!("{:.0} ms", p99.as_secs_f64() * 1000.0),
        "≤ 500 ms",
        p99 <= TARGET_P99,
    );
    report.info("max", format!("{:.0} ms", max.as_secs_f64() * 1000.0));
    report.check(
        "changes not live within the timeout",
        missed.to_string(),
        "0",
        missed == 0,
    );
    report.check(
        "reconnects of streams whose rules did not change",
        unexpected.to_string(),
        "0",
        unexpected == 0,
    );
    report.info(
        "connects (all keys) / expected; most by one key",
        format!("{key_connects} / {expected_total}; {max_key_connects}"),
    );
    report.info(
        "connects refused by the emulator (420/5xx)",
        refused.to_string(),
    );
    Ok(report)
}

/// The unix-ms accept time of the first connection whose track holds `term`.
fn connected_with(stats: &Stats, term: &str) -> Option<f64> {
    let id = stats
        .connections
        .iter()
        .find(|c| c.track.iter().any(|t| t == term))?
        .id;
    stats
        .log
        .iter()
        .find(|e| e.connection_id == Some(id))
        .map(|e| e.unix_ms as f64)
}

fn open_of_slot(stats: &Stats, slot: u32) -> usize {
    let fixed = phrase(slot, 0);
    stats
        .open_connections()
        .filter(|c| c.track.contains(&fixed))
        .count()
}

fn unix_ms() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs_f64() * 1000.0)
        .unwrap_or_default()
}
