//! From text to a [`ClusterConfig`]: parse strictly, interpolate `${VAR}`, resolve paths, and
//! check what serde cannot (values that parse but make no sense).

use std::collections::{BTreeSet, HashMap};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use traptor_core::{SlotId, StreamType};

use super::env::{interpolate, refers_to_env, EnvLookup};
use super::keys::{read_keys_file, RawKey};
use super::locate::{line_of, OptionPath};
use super::parse_error::parse_error;
use super::sections::{RulesSourceKind, SinkKind};
use super::{
    ApiKey, ClusterConfig, ConfigError, Origin, RawConfig, RulesConfig, SinkConfig, SlotSelection,
};

/// A config built from text, with what [`ClusterConfig::load`] needs for its file checks.
pub(crate) struct Built {
    pub config: ClusterConfig,
    /// Whether the text itself holds a secret (not a `${VAR}` reference).
    pub literal_secrets: bool,
    pub keys_file: Option<PathBuf>,
}

pub(crate) fn build(origin: &Origin<'_>, env: EnvLookup<'_>) -> Result<Built, ConfigError> {
    let mut raw: RawConfig = toml::from_str(origin.text).map_err(|e| parse_error(origin, &e))?;
    // With the in-process emulator the keys only open that emulator: they are not secrets.
    let literal_secrets = raw.emulator.is_none() && has_literal_secrets(&raw);
    let checker = Checker { origin };
    checker.interpolate_all(&mut raw, env)?;

    let keys_file = raw.keys_file.as_ref().map(|path| resolve(origin, path));
    let keys = checker.keys(std::mem::take(&mut raw.keys), keys_file.as_deref())?;
    let slots = checker.slots(raw.slots.take())?;
    let sink = checker.sink(&raw)?;
    let rules = checker.rules(&raw)?;
    checker.values(&raw, &sink)?;

    let mut kafka = raw.kafka;
    kafka.spool.dir = kafka.spool.dir.map(|path| resolve(origin, &path));
    let mut stream = raw.stream;
    stream.ca_file = stream.ca_file.map(|path| resolve(origin, &path));
    let mut redis = raw.redis;
    for path in [
        &mut redis.ca_file,
        &mut redis.client_cert_file,
        &mut redis.client_key_file,
    ] {
        *path = path.take().map(|path| resolve(origin, &path));
    }
    Ok(Built {
        config: ClusterConfig {
            redis,
            kafka,
            stream,
            keys,
            slots,
            heartbeat: raw.heartbeat,
            original_stats: raw.original_stats,
            sink,
            log: raw.log,
            rules,
            emulator: raw.emulator,
            status: raw.status,
            path: None,
            warnings: Vec::new(),
        },
        literal_secrets,
        keys_file,
    })
}

/// Warnings about who can read the files that hold secrets.
pub(crate) fn permission_warnings(config_path: &Path, built: &Built) -> Vec<String> {
    let mut warnings = Vec::new();
    if built.literal_secrets && readable_by_others(config_path) {
        warnings.push(format!(
            "{} holds literal secrets and is readable by other users: `chmod 600` it, or move \
             the secrets to environment variables referenced as ${{VAR}}",
            config_path.display()
        ));
    }
    if let Some(keys_file) = &built.keys_file {
        if readable_by_others(keys_file) {
            warnings.push(format!(
                "keys file {} is readable by other users: `chmod 600` it",
                keys_file.display()
            ));
        }
    }
    warnings
}

#[cfg(unix)]
fn readable_by_others(path: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(path)
        .map(|m| m.permissions().mode() & 0o044 != 0)
        .unwrap_or(false)
}

#[cfg(not(unix))]
fn readable_by_others(_path: &Path) -> bool {
    false
}

fn has_literal_secrets(raw: &RawConfig) -> bool {
    let literal = |value: &str| !value.is_empty() && !refers_to_env(value);
    let key_secrets = raw
        .keys
        .iter()
        .any(|key| literal(&key.consumer_secret) || literal(&key.access_token_secret));
    let producer_secrets = raw
        .kafka
        .producer
        .0
        .iter()
        .any(|(name, value)| super::ProducerOptions::is_secret(name) && literal(value));
    let redis_password = super::redact_url_password(&raw.redis.url) != raw.redis.url
        && !refers_to_env(&raw.redis.url);
    key_secrets || producer_secrets || redis_password
}

fn resolve(origin: &Origin<'_>, path: &Path) -> PathBuf {
    match origin.base_dir {
        Some(base) if path.is_relative() => base.join(path),
        _ => path.to_owned(),
    }
}

/// Builds errors that name the option and, when it is written in the file, its line.
struct Checker<'o, 'a> {
    origin: &'o Origin<'a>,
}

impl Checker<'_, '_> {
    fn invalid(
        &self,
        table: &str,
        index: Option<usize>,
        key: &str,
        message: impl Into<String>,
    ) -> ConfigError {
        let line = line_of(
            self.origin.text,
            &OptionPath {
                table,
                index,
                key: Some(key),
            },
        )
        .or_else(|| {
            line_of(
                self.origin.text,
                &OptionPath {
                    table,
                    index,
                    key: None,
                },
            )
        });
        let option = match (table, index) {
            ("", _) => key.to_owned(),
            (table, Some(i)) => format!("{table}[{i}].{key}"),
            (table, None) => format!("{table}.{key}"),
        };
        ConfigError::Invalid {
            origin: self.origin.name.clone(),
            line,
            option,
            message: message.into(),
        }
    }

    fn interp(
        &self,
        value: &mut String,
        env: EnvLookup<'_>,
        table: &str,
        index: Option<usize>,
        key: &str,
    ) -> Result<(), ConfigError> {
        *value = interpolate(value, env).map_err(|missing| {
            self.invalid(
                table,
                index,
                key,
                format!("environment variable {} is not set", missing.var),
            )
        })?;
        Ok(())
    }

    fn interp_opt(
        &self,
        value: &mut Option<String>,
        env: EnvLookup<'_>,
        table: &str,
        key: &str,
    ) -> Result<(), ConfigError> {
        match value {
            Some(value) => self.interp(value, env, table, None, key),
            None => Ok(()),
        }
    }

    fn interp_path(
        &self,
        value: &mut Option<PathBuf>,
        env: EnvLookup<'_>,
        table: &str,
        key: &str,
    ) -> Result<(), ConfigError> {
        if let Some(path) = value {
            if let Some(text) = path.to_str() {
                let mut text = text.to_owned();
                self.interp(&mut text, env, table, None, key)?;
                *path = PathBuf::from(text);
            }
        }
        Ok(())
    }

    /// `${VAR}` in every string option.
    fn interpolate_all(&self, raw: &mut RawConfig, env: EnvLookup<'_>) -> Result<(), ConfigError> {
        if let Some(slots) = &mut raw.slots {
            for slot in slots {
                self.interp(slot, env, "", None, "slots")?;
            }
        }
        self.interp_path(&mut raw.keys_file, env, "", "keys_file")?;
        self.interp(&mut raw.redis.url, env, "redis", None, "url")?;
        self.interp(
            &mut raw.redis.notify_channel,
            env,
            "redis",
            None,
            "notify_channel",
        )?;
        self.interp_path(&mut raw.redis.ca_file, env, "redis", "ca_file")?;
        self.interp_path(
            &mut raw.redis.client_cert_file,
            env,
            "redis",
            "client_cert_file",
        )?;
        self.interp_path(
            &mut raw.redis.client_key_file,
            env,
            "redis",
            "client_key_file",
        )?;
        let kafka = &mut raw.kafka;
        self.interp_opt(
            &mut kafka.bootstrap_servers,
            env,
            "kafka",
            "bootstrap_servers",
        )?;
        self.interp(&mut kafka.topic, env, "kafka", None, "topic")?;
        self.interp_opt(&mut kafka.control_topic, env, "kafka", "control_topic")?;
        self.interp_opt(
            &mut kafka.dead_letter_topic,
            env,
            "kafka",
            "dead_letter_topic",
        )?;
        self.interp_path(&mut kafka.spool.dir, env, "kafka.spool", "dir")?;
        for (name, value) in kafka.producer.0.iter_mut() {
            self.interp(value, env, "kafka.producer", None, name)?;
        }
        self.interp(&mut raw.stream.endpoint, env, "stream", None, "endpoint")?;
        self.interp(
            &mut raw.stream.user_agent,
            env,
            "stream",
            None,
            "user_agent",
        )?;
        self.interp_path(&mut raw.stream.ca_file, env, "stream", "ca_file")?;
        for (index, key) in raw.keys.iter_mut().enumerate() {
            for (field, value) in key.fields_mut() {
                self.interp(value, env, "keys", Some(index), field)?;
            }
        }
        self.interp_path(&mut raw.sink.path, env, "sink", "path")?;
        self.interp(&mut raw.log.level, env, "log", None, "level")?;
        self.interp_path(&mut raw.rules.path, env, "rules", "path")?;
        if let Some(emulator) = &mut raw.emulator {
            self.interp(&mut emulator.listen, env, "emulator", None, "listen")?;
        }
        self.interp(&mut raw.status.listen, env, "status", None, "listen")?;
        Ok(())
    }

    fn keys(
        &self,
        inline: Vec<RawKey>,
        keys_file: Option<&Path>,
    ) -> Result<Vec<ApiKey>, ConfigError> {
        let inline_count = inline.len();
        let mut all = inline;
        if let Some(path) = keys_file {
            let from_file = read_keys_file(path)
                .map_err(|message| self.invalid("", None, "keys_file", message))?;
            all.extend(from_file);
        }
        if all.is_empty() {
            return Err(self.invalid(
                "",
                None,
                "keys",
                "no API keys: add [[keys]] tables (name, consumer_key, consumer_secret, \
                 access_token, access_token_secret) or a keys_file",
            ));
        }
        let mut names = BTreeSet::new();
        let mut by_token: HashMap<String, String> = HashMap::new();
        let mut keys = Vec::with_capacity(all.len());
        for (index, mut key) in all.into_iter().enumerate() {
            // Keys from the file are reported by name; inline ones by their [[keys]] entry.
            let (table, at) = if index < inline_count {
                ("keys", Some(index))
            } else {
                ("", None)
            };
            let name = key.name.clone();
            for (field, value) in key.fields_mut() {
                if value.trim().is_empty() {
                    let where_ = if at.is_some() {
                        field.to_owned()
                    } else {
                        "keys_file".to_owned()
                    };
                    return Err(self.invalid(
                        table,
                        at,
                        &where_,
                        format!("API key {name:?}: `{field}` is empty"),
                    ));
                }
            }
            if !names.insert(name.clone()) {
                let key = if at.is_some() { "name" } else { "keys_file" };
                return Err(self.invalid(
                    table,
                    at,
                    key,
                    format!("API key name {name:?} is used twice; every key needs its own name"),
                ));
            }
            // The streaming API keeps one connection per account: two keys with one access
            // token would knock each other's stream off, forever.
            if let Some(first) = by_token.insert(key.access_token.clone(), name.clone()) {
                let field = if at.is_some() {
                    "access_token"
                } else {
                    "keys_file"
                };
                return Err(self.invalid(
                    table,
                    at,
                    field,
                    format!(
                        "API keys {first:?} and {name:?} have the same access token: the \
                         streaming API allows one connection per account and drops the older \
                         stream whenever the other connects; give each key its own credentials \
                         or remove one"
                    ),
                ));
            }
            keys.push(key.into_api_key());
        }
        Ok(keys)
    }

    fn slots(&self, slots: Option<Vec<String>>) -> Result<SlotSelection, ConfigError> {
        let Some(slots) = slots else {
            return Ok(SlotSelection::All);
        };
        let mut parsed: Vec<SlotId> = Vec::with_capacity(slots.len());
        for text in slots {
            let slot =
                parse_slot(&text).map_err(|message| self.invalid("", None, "slots", message))?;
            if parsed.contains(&slot) {
                return Err(self.invalid(
                    "",
                    None,
                    "slots",
                    format!("slot {slot} is listed twice"),
                ));
            }
            parsed.push(slot);
        }
        if parsed.is_empty() {
            return Err(self.invalid(
                "",
                None,
                "slots",
                "the list is empty, so nothing would run; remove `slots` to run every slot",
            ));
        }
        Ok(SlotSelection::Only(parsed))
    }

    /// `[kafka.spool]` limits that let every record the streams may produce fit on disk.
    fn spool(&self, spool: &super::SpoolConfig, max_frame_bytes: usize) -> Result<(), ConfigError> {
        if spool
            .dir
            .as_ref()
            .is_some_and(|dir| dir.as_os_str().is_empty())
        {
            return Err(self.invalid(
                "kafka.spool",
                None,
                "dir",
                "is empty: name a directory, or leave `dir` out to run without a spool",
            ));
        }
        if spool.segment_bytes < 4096 {
            return Err(self.invalid(
                "kafka.spool",
                None,
                "segment_bytes",
                "must be at least 4096",
            ));
        }
        if spool.max_bytes < spool.segment_bytes {
            return Err(self.invalid(
                "kafka.spool",
                None,
                "max_bytes",
                format!("must be at least segment_bytes ({})", spool.segment_bytes),
            ));
        }
        // A record, its key, topic and headers must fit, or it could never be spooled.
        let largest_record = max_frame_bytes as u64 + 64 * 1024;
        if spool.max_bytes < largest_record {
            return Err(self.invalid(
                "kafka.spool",
                None,
                "max_bytes",
                format!(
                    "must be at least {largest_record} so the largest record \
                     (stream.max_frame_bytes plus its key, topic and headers) fits"
                ),
            ));
        }
        Ok(())
    }

    fn sink(&self, raw: &RawConfig) -> Result<SinkConfig, ConfigError> {
        let section = &raw.sink;
        match (section.kind, &section.path) {
            (SinkKind::File, Some(path)) if !path.as_os_str().is_empty() => Ok(SinkConfig::File {
                path: resolve(self.origin, path),
            }),
            (SinkKind::File, _) => Err(self.invalid(
                "sink",
                None,
                "path",
                "kind = \"file\" needs a `path` to append records to",
            )),
            (_, Some(_)) => Err(self.invalid(
                "sink",
                None,
                "path",
                "`path` applies only to kind = \"file\"",
            )),
            (SinkKind::Stdout, None) => Ok(SinkConfig::Stdout),
            (SinkKind::Kafka, None) => {
                let kafka = &raw.kafka;
                let servers = kafka
                    .bootstrap_servers
                    .as_deref()
                    .or(kafka
                        .producer
                        .0
                        .get("bootstrap.servers")
                        .map(String::as_str))
                    .unwrap_or("");
                if servers.trim().is_empty() {
                    return Err(self.invalid(
                        "kafka",
                        None,
                        "bootstrap_servers",
                        "the sink is Kafka (the default) but no brokers are set: set \
                         bootstrap_servers = \"host:9092\", or choose [sink] kind = \"stdout\" or \"file\"",
                    ));
                }
                Ok(SinkConfig::Kafka)
            }
        }
    }

    fn rules(&self, raw: &RawConfig) -> Result<RulesConfig, ConfigError> {
        match (raw.rules.source, &raw.rules.path) {
            (RulesSourceKind::File, Some(path)) => Ok(RulesConfig::File {
                path: resolve(self.origin, path),
            }),
            (RulesSourceKind::File, None) => Err(self.invalid(
                "rules",
                None,
                "path",
                "source = \"file\" needs a `path` to the rules file",
            )),
            (RulesSourceKind::Redis, Some(_)) => Err(self.invalid(
                "rules",
                None,
                "path",
                "`path` applies only to source = \"file\"",
            )),
            (RulesSourceKind::Redis, None) => Ok(RulesConfig::Redis),
        }
    }

    /// Ranges and formats of single values.
    fn values(&self, raw: &RawConfig, sink: &SinkConfig) -> Result<(), ConfigError> {
        let positive = |value: u64, table: &str, key: &str| {
            if value == 0 {
                Err(self.invalid(table, None, key, "must be greater than 0"))
            } else {
                Ok(())
            }
        };

        let url = &raw.redis.url;
        if !["redis://", "rediss://", "redis+unix://", "unix://"]
            .iter()
            .any(|s| url.starts_with(s))
        {
            return Err(self.invalid(
                "redis",
                None,
                "url",
                format!(
                    "{:?} is not a Redis URL: use redis://host:port/db (rediss:// for TLS)",
                    super::redact_url_password(url)
                ),
            ));
        }
        if raw.redis.ca_file.is_some() && !url.starts_with("rediss://") {
            return Err(self.invalid(
                "redis",
                None,
                "ca_file",
                "is set but `redis.url` is not a rediss:// URL, so the connection would not use \
                 TLS and the CA would be ignored: use rediss:// to connect with TLS, or remove \
                 ca_file",
            ));
        }
        for (option, set, other) in [
            (
                "client_cert_file",
                raw.redis.client_cert_file.is_some(),
                raw.redis.client_key_file.is_some(),
            ),
            (
                "client_key_file",
                raw.redis.client_key_file.is_some(),
                raw.redis.client_cert_file.is_some(),
            ),
        ] {
            if set && !url.starts_with("rediss://") {
                return Err(self.invalid(
                    "redis",
                    None,
                    option,
                    "is set but `redis.url` is not a rediss:// URL, so the connection would not \
                     use TLS: use rediss:// to connect with TLS, or remove the client certificate",
                ));
            }
            if set && !other {
                return Err(self.invalid(
                    "redis",
                    None,
                    option,
                    "is set alone: a client certificate needs its key, so set both \
                     client_cert_file and client_key_file",
                ));
            }
        }
        if raw.redis.notify_channel.is_empty() {
            return Err(self.invalid("redis", None, "notify_channel", "must not be empty"));
        }
        positive(
            raw.redis.resync_interval_secs,
            "redis",
            "resync_interval_secs",
        )?;

        let kafka = &raw.kafka;
        let topics = [
            ("topic", Some(&kafka.topic)),
            ("control_topic", kafka.control_topic.as_ref()),
            ("dead_letter_topic", kafka.dead_letter_topic.as_ref()),
        ];
        for (key, topic) in topics {
            if let Some(topic) = topic {
                check_topic(topic).map_err(|message| self.invalid("kafka", None, key, message))?;
            }
        }
        if matches!(sink, SinkConfig::Kafka) {
            positive(
                kafka.max_in_flight_records as u64,
                "kafka",
                "max_in_flight_records",
            )?;
            self.spool(&raw.kafka.spool, raw.stream.max_frame_bytes)?;
        }

        let stream = &raw.stream;
        check_endpoint(&stream.endpoint)
            .map_err(|message| self.invalid("stream", None, "endpoint", message))?;
        if stream.user_agent.trim().is_empty() {
            return Err(self.invalid("stream", None, "user_agent", "must not be empty"));
        }
        positive(stream.stall_timeout_secs, "stream", "stall_timeout_secs")?;
        positive(
            stream.connect_timeout_secs,
            "stream",
            "connect_timeout_secs",
        )?;
        positive(
            stream.connects_per_key_per_minute.into(),
            "stream",
            "connects_per_key_per_minute",
        )?;
        if stream.max_frame_bytes < 1024 {
            return Err(self.invalid(
                "stream",
                None,
                "max_frame_bytes",
                "must be at least 1024: a single tweet is several kilobytes",
            ));
        }

        positive(raw.heartbeat.interval_secs, "heartbeat", "interval_secs")?;
        positive(
            raw.original_stats.window_secs,
            "original_stats",
            "window_secs",
        )?;
        positive(
            raw.original_stats.interval_secs,
            "original_stats",
            "interval_secs",
        )?;
        if raw.original_stats.enabled && raw.rules.source == RulesSourceKind::File {
            return Err(self.invalid(
                "original_stats",
                None,
                "enabled",
                "the original's counters live in the rules' Redis: they need [rules] source = \"redis\"",
            ));
        }

        if let Err(e) = tracing_subscriber::EnvFilter::builder().parse(&raw.log.level) {
            return Err(self.invalid(
                "log",
                None,
                "level",
                format!(
                    "{:?} is not a log filter ({e}); use error, warn, info, debug or trace",
                    raw.log.level
                ),
            ));
        }

        if let Some(emulator) = &raw.emulator {
            if !(emulator.rate.is_finite() && emulator.rate > 0.0) {
                return Err(self.invalid(
                    "emulator",
                    None,
                    "rate",
                    "must be a number of tweets per second above 0",
                ));
            }
            if !(0.0..=1.0).contains(&emulator.hit_ratio) {
                return Err(self.invalid(
                    "emulator",
                    None,
                    "hit_ratio",
                    "must be between 0.0 and 1.0",
                ));
            }
            positive(emulator.keepalive_ms, "emulator", "keepalive_ms")?;
            check_socket_addr(&emulator.listen)
                .map_err(|m| self.invalid("emulator", None, "listen", m))?;
        }
        check_socket_addr(&raw.status.listen)
            .map_err(|m| self.invalid("status", None, "listen", m))?;
        Ok(())
    }
}

/// `type:id`, strictly (the notify channel's parser tolerates more).
fn parse_slot(text: &str) -> Result<SlotId, String> {
    let format_hint = "slots are written \"<type>:<id>\", e.g. \"track:0\" or \"follow:1\"";
    let (stream_type, id) = text
        .split_once(':')
        .ok_or_else(|| format!("{text:?}: {format_hint}"))?;
    let stream_type: StreamType = stream_type.parse().map_err(|e| format!("{text:?}: {e}"))?;
    if id.is_empty() || id.contains(':') || id.trim() != id {
        return Err(format!("{text:?}: {format_hint}"));
    }
    Ok(SlotId::new(stream_type, id))
}

/// Kafka's own rule for topic names.
fn check_topic(topic: &str) -> Result<(), String> {
    let valid_chars = topic
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'));
    if topic.is_empty() || topic.len() > 249 || !valid_chars || topic == "." || topic == ".." {
        return Err(format!(
            "{topic:?} is not a Kafka topic name: use 1 to 249 of the characters a-z A-Z 0-9 . _ -"
        ));
    }
    Ok(())
}

fn check_endpoint(endpoint: &str) -> Result<(), String> {
    let rest = endpoint
        .strip_prefix("https://")
        .or_else(|| endpoint.strip_prefix("http://"))
        .ok_or_else(|| format!("{endpoint:?} is not an http:// or https:// URL"))?;
    let host = rest.split('/').next().unwrap_or("");
    if host.is_empty() {
        return Err(format!("{endpoint:?} has no host"));
    }
    if endpoint.contains('?') || endpoint.contains('#') {
        return Err(format!(
            "{endpoint:?} carries a query or fragment; the filter is sent as a form body, so give \
             only scheme, host and path"
        ));
    }
    Ok(())
}

fn check_socket_addr(text: &str) -> Result<(), String> {
    text.parse::<SocketAddr>()
        .map(|_| ())
        .map_err(|_| format!("{text:?} is not an address like 127.0.0.1:9099"))
}
