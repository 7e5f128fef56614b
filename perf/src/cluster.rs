//! The benchmark's cluster: API keys the emulator and the supervisor share, the rules in
//! Redis in the original's hash shape, and the `cluster.toml` text of the supervisor.

use std::fmt::Write;

use anyhow::Context;
use redis::Commands;
use traptor_core::oauth::Credentials;

/// The `i`-th benchmark API key (made up: the emulator accepts whatever it is given).
pub fn credentials(i: usize) -> Credentials {
    Credentials {
        consumer_key: format!("perf-consumer-key-{i}"),
        consumer_secret: format!("perf-consumer-secret-{i}"),
        access_token: format!("perf-access-token-{i}"),
        access_token_secret: format!("perf-access-token-secret-{i}"),
    }
}

/// `count` keys named `perf0`, `perf1`, ...
pub fn keys(count: usize) -> Vec<(String, Credentials)> {
    (0..count)
        .map(|i| (format!("perf{i}"), credentials(i)))
        .collect()
}

/// What varies between the scenarios' `cluster.toml`.
#[derive(Debug, Clone)]
pub struct ClusterSpec {
    pub redis_url: String,
    pub notify_channel: String,
    pub brokers: String,
    pub topic: String,
    pub endpoint: String,
    pub keys: Vec<(String, Credentials)>,
    /// `[stream] connects_per_key_per_minute` (the per-key pacer: burst min(n, 5), then 60/n s).
    pub connects_per_key_per_minute: u32,
    /// `[kafka] max_in_flight_records`.
    pub max_in_flight_records: usize,
    pub log_level: String,
    /// `[kafka.producer]`: librdkafka options on top of traptor's own settings.
    pub producer: Vec<(String, String)>,
    /// `[kafka] produce_from_streams`.
    pub produce_from_streams: bool,
}

impl ClusterSpec {
    /// The config text: Redis rules, the Kafka sink with traptor's default producer settings
    /// (idempotence, acks=all, lz4), the emulator as the endpoint, and the keys.
    pub fn to_toml(&self) -> String {
        let mut text = format!(
            r#"[redis]
url = "{redis}"
notify_channel = "{channel}"

[kafka]
bootstrap_servers = "{brokers}"
topic = "{topic}"
compression = "lz4"
max_in_flight_records = {in_flight}
produce_from_streams = {direct}

[sink]
kind = "kafka"

[log]
format = "json"
level = "{level}"

[stream]
endpoint = "{endpoint}"
connects_per_key_per_minute = {per_minute}
"#,
            redis = self.redis_url,
            channel = self.notify_channel,
            brokers = self.brokers,
            topic = self.topic,
            in_flight = self.max_in_flight_records,
            direct = self.produce_from_streams,
            level = self.log_level,
            endpoint = self.endpoint,
            per_minute = self.connects_per_key_per_minute,
        );
        if !self.producer.is_empty() {
            text.push_str("\n[kafka.producer]\n");
            // Rust's quoting of plain ASCII text is a valid TOML basic string; the names and
            // values here are librdkafka option names and numbers.
            for (name, value) in &self.producer {
                let _ = writeln!(text, "{name:?} = {value:?}");
            }
        }
        for (name, c) in &self.keys {
            let _ = write!(
                text,
                "\n[[keys]]\nname = \"{name}\"\nconsumer_key = \"{}\"\nconsumer_secret = \"{}\"\n\
                 access_token = \"{}\"\naccess_token_secret = \"{}\"\n",
                c.consumer_key, c.consumer_secret, c.access_token, c.access_token_secret
            );
        }
        text
    }
}

/// Writes rules to Redis as the original's rule manager did, and announces changes.
pub struct RuleWriter {
    redis: redis::Connection,
    channel: String,
}

impl RuleWriter {
    /// Connects to `redis_url` (a database of the benchmark's own) and empties it.
    pub fn connect_and_flush(redis_url: &str, channel: &str) -> anyhow::Result<RuleWriter> {
        let mut redis = redis::Client::open(redis_url)
            .and_then(|client| client.get_connection())
            .with_context(|| format!("connecting to Redis at {redis_url}"))?;
        redis::cmd("FLUSHDB")
            .query::<()>(&mut redis)
            .context("FLUSHDB of the benchmark's Redis database")?;
        Ok(RuleWriter {
            redis,
            channel: channel.to_owned(),
        })
    }

    /// HSET `traptor-track:<slot>:<rule_id>` with the original's fields.
    pub fn put_track_rule(&mut self, slot: u32, rule_id: &str, value: &str) -> anyhow::Result<()> {
        let key = format!("traptor-track:{slot}:{rule_id}");
        let fields = [
            ("tag", "perf"),
            ("value", value),
            ("status", "active"),
            ("description", "a benchmark rule"),
            ("appid", "perf-appid"),
            ("date_added", "2016-05-10 16:58:34"),
            ("rule_type", "track"),
            ("orig_type", "keyword"),
            ("rule_id", rule_id),
        ];
        self.redis
            .hset_multiple::<_, _, _, ()>(&key, &fields)
            .with_context(|| format!("HSET {key}"))
    }

    /// Stores `count` follow rules in slots `follow:0`, `follow:1`, ... (5,000 each, the limit of
    /// one connection), pipelined. For scenarios that need a large keyspace beside their own
    /// rules: a slot without an API key is loaded but never streamed.
    pub fn put_follow_rules(&mut self, count: usize) -> anyhow::Result<()> {
        const PER_SLOT: usize = 5_000;
        let ids: Vec<usize> = (0..count).collect();
        for chunk in ids.chunks(1_000) {
            let mut pipe = redis::pipe();
            for &n in chunk {
                let (slot, rule_id) = (n / PER_SLOT, n.to_string());
                let user_id = (1_000_000_000 + n).to_string();
                pipe.hset_multiple(
                    format!("traptor-follow:{slot}:{rule_id}"),
                    &[
                        ("tag", "perf"),
                        ("value", user_id.as_str()),
                        ("status", "active"),
                        ("rule_type", "follow"),
                        ("orig_type", "userid"),
                        ("rule_id", rule_id.as_str()),
                    ],
                )
                .ignore();
            }
            pipe.query::<()>(&mut self.redis)
                .context("HSET of stored follow rules")?;
        }
        Ok(())
    }

    /// PUBLISH `track:<slot>` on the notify channel.
    pub fn notify_track(&mut self, slot: u32) -> anyhow::Result<()> {
        self.redis
            .publish::<_, _, ()>(&self.channel, format!("track:{slot}"))
            .with_context(|| format!("PUBLISH {} track:{slot}", self.channel))
    }
}

/// The track phrase of rule `rule` of slot `slot`: a word no other slot uses, so every tweet
/// the emulator plants for it belongs to exactly one connection.
pub fn phrase(slot: u32, rule: u32) -> String {
    format!("perfs{slot}r{rule}")
}

/// A name unique to this run (topics, channels).
pub fn unique(prefix: &str) -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or_default();
    format!("{prefix}-{}-{nanos}", std::process::id())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_config_names_every_key_and_the_pacing() {
        let spec = ClusterSpec {
            redis_url: "redis://127.0.0.1:1/15".into(),
            notify_channel: "chan".into(),
            brokers: "127.0.0.1:2".into(),
            topic: "t".into(),
            endpoint: "http://127.0.0.1:3/1.1/statuses/filter.json".into(),
            keys: keys(3),
            connects_per_key_per_minute: 6,
            max_in_flight_records: 5000,
            log_level: "info".into(),
            producer: Vec::new(),
            produce_from_streams: false,
        };
        let text = spec.to_toml();
        let parsed: toml::Table = toml::from_str(&text).unwrap();
        assert_eq!(parsed["keys"].as_array().unwrap().len(), 3);
        assert_eq!(parsed["keys"][2]["name"].as_str(), Some("perf2"));
        assert_eq!(
            parsed["stream"]["connects_per_key_per_minute"].as_integer(),
            Some(6)
        );
        assert_eq!(
            parsed["kafka"]["max_in_flight_records"].as_integer(),
            Some(5000)
        );
        assert_eq!(
            parsed["kafka"]["produce_from_streams"].as_bool(),
            Some(false)
        );
    }

    #[test]
    fn producer_options_go_to_the_kafka_producer_table() {
        let mut spec = ClusterSpec {
            redis_url: "redis://127.0.0.1:1/15".into(),
            notify_channel: "chan".into(),
            brokers: "127.0.0.1:2".into(),
            topic: "t".into(),
            endpoint: "http://127.0.0.1:3/1.1/statuses/filter.json".into(),
            keys: keys(2),
            connects_per_key_per_minute: 6,
            max_in_flight_records: 5000,
            log_level: "info".into(),
            producer: Vec::new(),
            produce_from_streams: true,
        };
        let plain: toml::Table = toml::from_str(&spec.to_toml()).unwrap();
        assert!(plain["kafka"].get("producer").is_none());

        spec.producer = vec![
            ("linger.ms".into(), "20".into()),
            ("batch.size".into(), "2000000".into()),
        ];
        let parsed: toml::Table = toml::from_str(&spec.to_toml()).unwrap();
        let producer = &parsed["kafka"]["producer"];
        assert_eq!(producer["linger.ms"].as_str(), Some("20"));
        assert_eq!(producer["batch.size"].as_str(), Some("2000000"));
        assert_eq!(parsed["kafka"]["topic"].as_str(), Some("t"));
        assert_eq!(parsed["keys"].as_array().unwrap().len(), 2);
    }

    #[test]
    fn phrases_of_different_slots_differ() {
        assert_ne!(phrase(1, 12), phrase(11, 2));
        assert_ne!(phrase(1, 0), phrase(1, 1));
    }
}
