//! The sections of `cluster.toml`, each with the defaults an operator gets when it is left out.
//! `config/cluster.toml` documents every option; keep the two in step.

use std::collections::BTreeMap;
use std::fmt;
use std::path::PathBuf;
use std::time::Duration;

use serde::Deserialize;
use traptor_core::MessageKind;

/// Where the rules live and how the watcher follows them.
#[derive(Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RedisConfig {
    /// `redis://[user:password@]host:port/db`, or `rediss://` for TLS.
    pub url: String,
    /// The pub/sub channel the rule manager announces changes on (`<type>:<id>`).
    pub notify_channel: String,
    /// How often every slot is re-read in full, since pub/sub may lose notices.
    pub resync_interval_secs: u64,
    /// A PEM bundle of the private CA that signed the server's certificate (`rediss://` only).
    /// It replaces the public roots for Redis: only its certificates are trusted.
    pub ca_file: Option<PathBuf>,
    /// traptor's certificate (PEM chain) for a server that requires clients' certificates
    /// (`tls-auth-clients yes`); with `client_key_file`, `rediss://` only.
    pub client_cert_file: Option<PathBuf>,
    /// The private key of `client_cert_file` (PEM, unencrypted).
    pub client_key_file: Option<PathBuf>,
}

impl Default for RedisConfig {
    fn default() -> Self {
        RedisConfig {
            url: "redis://127.0.0.1:6379/0".to_owned(),
            notify_channel: "traptor-notify".to_owned(),
            resync_interval_secs: 60,
            ca_file: None,
            client_cert_file: None,
            client_key_file: None,
        }
    }
}

impl RedisConfig {
    pub fn resync_interval(&self) -> Duration {
        Duration::from_secs(self.resync_interval_secs)
    }

    /// The URL with any password replaced, fit for logs.
    pub fn redacted_url(&self) -> String {
        redact_url_password(&self.url)
    }
}

impl fmt::Debug for RedisConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RedisConfig")
            .field("url", &self.redacted_url())
            .field("notify_channel", &self.notify_channel)
            .field("resync_interval_secs", &self.resync_interval_secs)
            .field("ca_file", &self.ca_file)
            .field("client_cert_file", &self.client_cert_file)
            .field("client_key_file", &self.client_key_file)
            .finish()
    }
}

/// Replaces the password of `scheme://user:password@host` so a URL can be logged. A URL
/// that is malformed (a typo lost its `://` or its `@`) is hidden more widely rather than
/// shown as is: everything up to the last `@`, or an authority that is not `host[:port]`.
pub fn redact_url_password(url: &str) -> String {
    let (scheme, rest) = match url.split_once("://") {
        Some((scheme, rest)) => (format!("{scheme}://"), rest),
        None => (String::new(), url),
    };
    if let Some(at) = rest.rfind('@') {
        let userinfo = &rest[..at];
        let redacted = match userinfo.split_once(':') {
            Some((user, _password)) if !user.contains('/') => format!("{user}:<redacted>"),
            _ => "<redacted>".to_owned(),
        };
        return format!("{scheme}{redacted}{}", &rest[at..]);
    }
    if scheme.is_empty() {
        // Not a URL at all: only a bare `host:port` is safe to show.
        return if is_host_and_port(url) {
            url.to_owned()
        } else {
            "<redacted>".to_owned()
        };
    }
    let authority_end = rest.find('/').unwrap_or(rest.len());
    if is_host_and_port(&rest[..authority_end]) {
        url.to_owned()
    } else {
        format!("{scheme}<redacted>{}", &rest[authority_end..])
    }
}

/// `host`, `host:port`, `[v6]` or `[v6]:port` with a numeric port; empty for sockets.
fn is_host_and_port(authority: &str) -> bool {
    let digits = |port: &str| !port.is_empty() && port.bytes().all(|b| b.is_ascii_digit());
    if let Some(v6) = authority.strip_prefix('[') {
        let Some((address, after)) = v6.split_once(']') else {
            return false;
        };
        let address_ok = address
            .bytes()
            .all(|b| b.is_ascii_hexdigit() || matches!(b, b':' | b'.'));
        return address_ok && (after.is_empty() || after.strip_prefix(':').is_some_and(digits));
    }
    let (host, port) = match authority.split_once(':') {
        Some((host, port)) => (host, Some(port)),
        None => (authority, None),
    };
    host.bytes()
        .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'-' | b'_'))
        && port.is_none_or(digits)
}

/// The Kafka producer's compression codec.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Compression {
    None,
    Gzip,
    Snappy,
    Lz4,
    Zstd,
}

impl Compression {
    pub const ALL: [Compression; 5] = [
        Compression::None,
        Compression::Gzip,
        Compression::Snappy,
        Compression::Lz4,
        Compression::Zstd,
    ];

    /// The value of librdkafka's `compression.type`.
    pub fn as_str(self) -> &'static str {
        match self {
            Compression::None => "none",
            Compression::Gzip => "gzip",
            Compression::Snappy => "snappy",
            Compression::Lz4 => "lz4",
            Compression::Zstd => "zstd",
        }
    }
}

/// librdkafka options passed verbatim (SASL, TLS, tuning). Its `Debug` shows the values of
/// known harmless tuning options only and hides every other value, so a secret stays hidden
/// even under a misspelled name (`sasl.pasword`) that librdkafka refuses only later.
#[derive(Clone, Default, PartialEq, Deserialize)]
#[serde(transparent)]
pub struct ProducerOptions(pub BTreeMap<String, String>);

impl ProducerOptions {
    /// Whether an option's value is a secret that must never be logged.
    pub fn is_secret(name: &str) -> bool {
        let name = name.to_ascii_lowercase();
        ["password", "secret", "key.pem", "token", "jaas"]
            .iter()
            .any(|word| name.contains(word))
    }

    /// Whether an option's value may be shown in `Debug` and logs: only librdkafka options
    /// known to hold no credentials. Everything else, known or not, is hidden.
    pub fn is_shown(name: &str) -> bool {
        const EXACT: &[&str] = &[
            "acks",
            "bootstrap.servers",
            "client.id",
            "delivery.timeout.ms",
            "enable.idempotence",
            "linger.ms",
            "message.max.bytes",
            "message.send.max.retries",
            "message.timeout.ms",
            "request.required.acks",
            "request.timeout.ms",
            "retries",
            "retry.backoff.max.ms",
            "retry.backoff.ms",
            "sasl.mechanism",
            "sasl.mechanisms",
            "security.protocol",
            "statistics.interval.ms",
        ];
        const PREFIXES: &[&str] = &[
            "batch.",
            "compression.",
            "max.in.flight",
            "queue.buffering.",
            "socket.",
        ];
        let name = name.to_ascii_lowercase();
        !Self::is_secret(&name)
            && (EXACT.contains(&name.as_str())
                || PREFIXES.iter().any(|prefix| name.starts_with(prefix)))
    }
}

impl fmt::Debug for ProducerOptions {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut map = f.debug_map();
        for (name, value) in &self.0 {
            if ProducerOptions::is_shown(name) {
                map.entry(name, value);
            } else {
                map.entry(name, &"<redacted>");
            }
        }
        map.finish()
    }
}

/// Where records go when the sink is Kafka, and how hard the producer tries.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct KafkaConfig {
    /// `host:port[,host:port...]`; required when `sink.kind = "kafka"`.
    pub bootstrap_servers: Option<String>,
    /// Tweets go here (and everything else unless the topics below are set).
    pub topic: String,
    /// Control messages (limit, delete, scrub_geo, withheld, disconnect, warning, unknown).
    pub control_topic: Option<String>,
    /// Frames that were not JSON; defaults to the control topic, else `topic`.
    pub dead_letter_topic: Option<String>,
    pub compression: Compression,
    /// Passed verbatim to librdkafka after traptor's own settings, so they can override them.
    pub producer: ProducerOptions,
    /// Records accepted but not yet acknowledged by Kafka before the writer stops accepting more.
    pub max_in_flight_records: usize,
    /// Whether a stream hands its records to the producer itself while Kafka keeps up (below
    /// the in-flight bound, nothing spooled), instead of through the writer's thread: each
    /// record is then built, copied by librdkafka and freed on one thread. The writer still
    /// takes whatever the producer cannot take at once (it waits or spools).
    pub produce_from_streams: bool,
    /// Delivery attempts per record before it is given up (logged at error); 0 = never give up.
    /// With a spool, a record is spooled instead of given up.
    pub max_delivery_attempts: u32,
    /// `[kafka.spool]`: where records wait on disk when Kafka is down for longer than the
    /// producer can hold them.
    pub spool: SpoolConfig,
}

/// `[kafka.spool]`: a bounded on-disk queue in front of the producer, so an outage longer than
/// the in-flight bound costs disk space instead of records (see `crate::sinks::spool`).
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SpoolConfig {
    /// Directory of the segment files; `None` = no spool (records wait in memory only).
    /// Relative paths are relative to the config file's directory.
    pub dir: Option<PathBuf>,
    /// Most bytes the spool may hold on disk; when full, the writer waits (never drops).
    pub max_bytes: u64,
    /// Size at which a segment file is closed and a new one started; a segment is deleted
    /// once every record in it has been delivered.
    pub segment_bytes: u64,
    /// How long the in-flight bound may stay reached before new records go to the spool
    /// instead of making the streams wait.
    pub spill_after_ms: u64,
}

impl Default for SpoolConfig {
    fn default() -> Self {
        SpoolConfig {
            dir: None,
            max_bytes: 1 << 30,
            segment_bytes: 16 << 20,
            spill_after_ms: 5_000,
        }
    }
}

impl SpoolConfig {
    pub fn spill_after(&self) -> Duration {
        Duration::from_millis(self.spill_after_ms)
    }
}

impl Default for KafkaConfig {
    fn default() -> Self {
        KafkaConfig {
            bootstrap_servers: None,
            topic: "traptor".to_owned(),
            control_topic: None,
            dead_letter_topic: None,
            compression: Compression::Lz4,
            producer: ProducerOptions::default(),
            max_in_flight_records: 100_000,
            produce_from_streams: true,
            max_delivery_attempts: 10,
            spool: SpoolConfig::default(),
        }
    }
}

impl KafkaConfig {
    /// The topic a record of `kind` is written to.
    pub fn topic_for(&self, kind: MessageKind) -> &str {
        match kind {
            MessageKind::Tweet => &self.topic,
            MessageKind::Invalid => self
                .dead_letter_topic
                .as_deref()
                .or(self.control_topic.as_deref())
                .unwrap_or(&self.topic),
            _ => self.control_topic.as_deref().unwrap_or(&self.topic),
        }
    }
}

/// How each streaming connection talks to the API.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct StreamConfig {
    /// The `statuses/filter` URL (the real API or an emulator).
    pub endpoint: String,
    pub user_agent: String,
    /// No byte (not even a keep-alive newline) for this long means the connection is dead.
    pub stall_timeout_secs: u64,
    /// Longest single message accepted; a longer frame is cut off and reported.
    pub max_frame_bytes: usize,
    /// Time allowed to get the response head.
    pub connect_timeout_secs: u64,
    /// A PEM bundle of extra trusted CAs (for an emulator or proxy with its own CA).
    pub ca_file: Option<PathBuf>,
    /// At most this many connection attempts per API key per minute, whatever the backoff says.
    pub connects_per_key_per_minute: u32,
}

impl Default for StreamConfig {
    fn default() -> Self {
        StreamConfig {
            endpoint: "https://stream.twitter.com/1.1/statuses/filter.json".to_owned(),
            user_agent: concat!("traptor/", env!("CARGO_PKG_VERSION")).to_owned(),
            stall_timeout_secs: 90,
            max_frame_bytes: 1024 * 1024,
            connect_timeout_secs: 10,
            ca_file: None,
            connects_per_key_per_minute: 6,
        }
    }
}

impl StreamConfig {
    pub fn stall_timeout(&self) -> Duration {
        Duration::from_secs(self.stall_timeout_secs)
    }

    pub fn connect_timeout(&self) -> Duration {
        Duration::from_secs(self.connect_timeout_secs)
    }
}

/// The liveness key `<type>:<id>:heartbeat` the original's monitoring reads.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct HeartbeatConfig {
    pub interval_secs: u64,
}

impl Default for HeartbeatConfig {
    fn default() -> Self {
        HeartbeatConfig { interval_secs: 10 }
    }
}

impl HeartbeatConfig {
    pub fn interval(&self) -> Duration {
        Duration::from_secs(self.interval_secs)
    }

    /// The key's time to live: 1.5 × the interval (rounded up), so one late beat is tolerated.
    pub fn ttl_secs(&self) -> u64 {
        (self.interval_secs * 3).div_ceil(2)
    }
}

/// The original traptor's Redis counters, for dashboards built on them: per rule
/// `stats:<type>:<id>:<rule_id>` (a sorted set with one member per match, member and score the
/// match's unix time, trimmed to the window) and per slot `limit:<type>:<id>` (member the
/// `limit` notice's count, score its unix time). Off by default: at high match rates the sets
/// grow to one member per match in the window.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct OriginalStatsConfig {
    pub enabled: bool,
    /// How far back the sets reach (the original's `STATS_COLLECTION_WINDOW`).
    pub window_secs: u64,
    /// How often counts are written and old members trimmed (the original trimmed every 5 s).
    pub interval_secs: u64,
}

impl Default for OriginalStatsConfig {
    fn default() -> Self {
        OriginalStatsConfig {
            enabled: false,
            window_secs: 900,
            interval_secs: 5,
        }
    }
}

impl OriginalStatsConfig {
    pub fn window(&self) -> Duration {
        Duration::from_secs(self.window_secs)
    }

    pub fn interval(&self) -> Duration {
        Duration::from_secs(self.interval_secs)
    }
}

/// Which sink the writer uses, as written in the file (`kind` plus its options).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SinkKind {
    Kafka,
    Stdout,
    File,
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct SinkSection {
    pub kind: SinkKind,
    pub path: Option<PathBuf>,
}

impl Default for SinkSection {
    fn default() -> Self {
        SinkSection {
            kind: SinkKind::Kafka,
            path: None,
        }
    }
}

/// Where the writer sends records; the Kafka options themselves are in [`KafkaConfig`].
#[derive(Debug, Clone, PartialEq)]
pub enum SinkConfig {
    Kafka,
    /// One JSON document per line on standard output.
    Stdout,
    /// One JSON document per line, appended to `path`.
    File {
        path: PathBuf,
    },
}

/// The log output: `json` for log shippers, `human` for a terminal.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    Json,
    Human,
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LogConfig {
    pub format: LogFormat,
    /// A `tracing` filter: `info`, `debug`, or directives like `info,traptor_actors=debug`.
    pub level: String,
    /// How often each slot logs a status line (state, rate, counts); 0 = never.
    pub status_interval_secs: u64,
}

impl Default for LogConfig {
    fn default() -> Self {
        LogConfig {
            format: LogFormat::Human,
            level: "info".to_owned(),
            status_interval_secs: 60,
        }
    }
}

/// Where the rules come from, as written in the file.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum RulesSourceKind {
    Redis,
    File,
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RulesSection {
    pub source: RulesSourceKind,
    pub path: Option<PathBuf>,
}

impl Default for RulesSection {
    fn default() -> Self {
        RulesSection {
            source: RulesSourceKind::Redis,
            path: None,
        }
    }
}

/// Where the rules come from: Redis (followed live) or a file read once at start
/// (its format: `crate::rules_file`).
#[derive(Debug, Clone, PartialEq)]
pub enum RulesConfig {
    Redis,
    File { path: PathBuf },
}

/// Options of the built-in emulator, started in-process when `[emulator]` is present (demo).
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct EmulatorConfig {
    /// Where it listens; port 0 picks a free port.
    pub listen: String,
    /// Generated tweets per second, per connection.
    pub rate: f64,
    /// Seed of the tweet generator, so a demo run can be repeated.
    pub seed: u64,
    /// Interval of keep-alive newlines.
    pub keepalive_ms: u64,
    /// Share of generated tweets that match the connection's filter (0.0–1.0).
    pub hit_ratio: f64,
}

impl Default for EmulatorConfig {
    fn default() -> Self {
        EmulatorConfig {
            listen: "127.0.0.1:0".to_owned(),
            rate: 5.0,
            seed: 1,
            keepalive_ms: 30_000,
            hit_ratio: 0.9,
        }
    }
}

/// The HTTP status and metrics endpoint.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct StatusConfig {
    pub listen: String,
    /// `traptor_rule_matches_total{slot,rule_id}` on `/metrics`: one series per rule that
    /// matched. Off for very large rule sets, where that many series would burden Prometheus.
    pub rule_metrics: bool,
}

impl Default for StatusConfig {
    fn default() -> Self {
        StatusConfig {
            listen: "127.0.0.1:9099".to_owned(),
            rule_metrics: true,
        }
    }
}

impl StatusConfig {
    /// What `/metrics` includes.
    pub fn metrics_options(&self) -> crate::status::MetricsOptions {
        crate::status::MetricsOptions {
            rule_matches: self.rule_metrics,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn redacts_url_passwords_only() {
        assert_eq!(
            redact_url_password("redis://u:pw@host:6379/0"),
            "redis://u:<redacted>@host:6379/0"
        );
        assert_eq!(
            redact_url_password("rediss://:pw@host/0"),
            "rediss://:<redacted>@host/0"
        );
        assert_eq!(
            redact_url_password("redis://host:6379/0"),
            "redis://host:6379/0"
        );
        assert_eq!(
            redact_url_password("redis://[::1]:6379/0"),
            "redis://[::1]:6379/0"
        );
        assert_eq!(
            redact_url_password("unix:///run/redis.sock"),
            "unix:///run/redis.sock"
        );
    }

    #[test]
    fn malformed_urls_never_show_their_password() {
        for url in [
            "//u:pw-secret@host:6379/0",
            "redis://u:pw-secret127.0.0.1:6379/0",
            "redis://u:pw-secret/127.0.0.1:6379/0",
            "redis://u:pw/secret@host/0",
            "redis:/u:pw-secret@host/0",
            "redis//u:pw-secret",
        ] {
            let shown = redact_url_password(url);
            assert!(!shown.contains("secret"), "{url} -> {shown}");
            assert!(shown.contains("<redacted>"), "{url} -> {shown}");
        }
        let config = RedisConfig {
            url: "redis://u:hunter2@h/0".into(),
            ..RedisConfig::default()
        };
        assert!(!format!("{config:?}").contains("hunter2"));
    }

    #[test]
    fn producer_debug_hides_secret_options() {
        let mut options = BTreeMap::new();
        options.insert("sasl.password".to_owned(), "hunter2".to_owned());
        options.insert("linger.ms".to_owned(), "5".to_owned());
        let text = format!("{:?}", ProducerOptions(options));
        assert!(!text.contains("hunter2"), "{text}");
        assert!(text.contains("\"linger.ms\": \"5\""), "{text}");
    }

    #[test]
    fn producer_debug_hides_misspelled_and_unknown_options() {
        let mut options = BTreeMap::new();
        for name in ["sasl.pasword", "ssl.key.passphrase", "sasl_password", "x.y"] {
            options.insert(name.to_owned(), format!("value-of-{name}"));
        }
        options.insert("compression.type".to_owned(), "lz4".to_owned());
        options.insert("Security.Protocol".to_owned(), "sasl_ssl".to_owned());
        let text = format!("{:?}", ProducerOptions(options));
        assert!(!text.contains("value-of-"), "{text}");
        assert!(text.contains("\"sasl.pasword\": \"<redacted>\""), "{text}");
        assert!(text.contains("\"compression.type\": \"lz4\""), "{text}");
        assert!(text.contains("\"sasl_ssl\""), "{text}");
        assert!(!ProducerOptions::is_shown("socket.sasl.password"));
    }

    #[test]
    fn routes_each_kind_to_its_topic() {
        let mut kafka = KafkaConfig::default();
        assert_eq!(kafka.topic_for(MessageKind::Limit), "traptor");
        assert_eq!(kafka.topic_for(MessageKind::Invalid), "traptor");
        kafka.control_topic = Some("control".into());
        assert_eq!(kafka.topic_for(MessageKind::Tweet), "traptor");
        assert_eq!(kafka.topic_for(MessageKind::Delete), "control");
        assert_eq!(kafka.topic_for(MessageKind::Invalid), "control");
        kafka.dead_letter_topic = Some("dead".into());
        assert_eq!(kafka.topic_for(MessageKind::Invalid), "dead");
        assert_eq!(kafka.topic_for(MessageKind::Unknown), "control");
    }

    #[test]
    fn heartbeat_ttl_is_one_and_a_half_intervals() {
        assert_eq!(HeartbeatConfig { interval_secs: 10 }.ttl_secs(), 15);
        assert_eq!(HeartbeatConfig { interval_secs: 3 }.ttl_secs(), 5);
    }
}
