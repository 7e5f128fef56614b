//! The scenarios, one module each. Every scenario builds its own world (emulator, Redis
//! database, topic), starts the release `traptor-supervisor` on it, measures, and returns a
//! [`Report`](crate::report::Report) whose figures are computed, never eyeballed.

pub mod connections;
pub mod rule_change;
pub mod slow_kafka;
pub mod throughput;

use std::path::PathBuf;
use std::time::Duration;

use traptor_firehose::{ControlMessageRates, FirehoseConfig};

use crate::cluster::{self, ClusterSpec, RuleWriter};
use crate::services::Services;

/// What every scenario needs.
#[derive(Debug, Clone)]
pub struct Common {
    pub services: Services,
    /// The `traptor-supervisor` binary under test (the release build).
    pub supervisor: PathBuf,
    /// Where configs and supervisor logs go.
    pub run_dir: PathBuf,
    /// The Redis database the scenarios flush and fill (it must be theirs alone).
    pub redis_db: u32,
    /// Partitions of each topic created.
    pub partitions: i32,
}

impl Common {
    /// A config for `keys` keys talking to `endpoint`, writing to `topic`, with traptor's
    /// defaults for everything a scenario does not say.
    pub fn cluster(&self, keys: usize, endpoint: String, topic: &str) -> ClusterSpec {
        ClusterSpec {
            redis_url: self.services.redis_db_url(self.redis_db),
            notify_channel: cluster::unique("perf-notify"),
            brokers: self.services.kafka_brokers.clone(),
            topic: topic.to_owned(),
            endpoint,
            keys: cluster::keys(keys),
            connects_per_key_per_minute: 6,
            max_in_flight_records: 100_000,
            log_level: "info".into(),
            producer: Vec::new(),
            produce_from_streams: true,
        }
    }

    /// Empties the database and writes `slots` track slots of `rules_per_slot` rules each.
    pub fn write_rules(
        &self,
        spec: &ClusterSpec,
        slots: usize,
        rules_per_slot: u32,
    ) -> anyhow::Result<RuleWriter> {
        let mut writer = RuleWriter::connect_and_flush(&spec.redis_url, &spec.notify_channel)?;
        for slot in 0..slots as u32 {
            for rule in 0..rules_per_slot {
                writer.put_track_rule(
                    slot,
                    &(slot * 1000 + rule + 1).to_string(),
                    &cluster::phrase(slot, rule),
                )?;
            }
        }
        Ok(writer)
    }
}

/// An emulator config accepting `spec`'s keys, with `rate` tweets/s (infinite: load mode).
/// Every connect is allowed (the supervisor's pacing is under test, not the emulator's).
pub fn emulator_config(spec: &ClusterSpec, rate: f64) -> FirehoseConfig {
    FirehoseConfig {
        keys: spec.keys.iter().map(|(_, c)| c.clone()).collect(),
        rate,
        seed: 7,
        hit_ratio: 1.0,
        connect_limit: 1000,
        // In load mode queues fill up to this; 500 tweets of ~4 KB per connection keeps
        // the emulator's own memory small.
        max_queue: 500,
        control_message_rates: ControlMessageRates::default(),
        keepalive: Duration::from_secs(30),
        ..FirehoseConfig::default()
    }
}

/// `n` with one decimal and a unit.
pub fn rate(n: f64) -> String {
    format!("{} /s", crate::report::thousands(n.round() as u64))
}
