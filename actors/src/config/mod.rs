//! The cluster configuration, `cluster.toml`: everything one `traptor-supervisor` process needs
//! besides the rules themselves. `config/cluster.toml` is the commented reference of every
//! option; `config/demo.toml` runs without Redis, Kafka or network.
//!
//! Loading is strict so a typo never silently falls back to a default: unknown keys and invalid
//! values are errors naming the option and its line. Any string may take values from the
//! environment with `${VAR}`.

mod env;
mod keys;
mod locate;
mod parse_error;
mod sections;
mod validate;

use std::fmt;
use std::path::{Path, PathBuf};

use serde::Deserialize;
use traptor_core::oauth::Credentials;
use traptor_core::SlotId;

pub use env::{interpolate, process_env, EnvLookup, MissingVar};
pub use keys::ApiKey;
pub use sections::{
    redact_url_password, Compression, EmulatorConfig, HeartbeatConfig, KafkaConfig, LogConfig,
    LogFormat, OriginalStatsConfig, ProducerOptions, RedisConfig, RulesConfig, RulesSourceKind,
    SinkConfig, SinkKind, SpoolConfig, StatusConfig, StreamConfig,
};

/// A loaded, validated cluster configuration.
#[derive(Debug, Clone, PartialEq)]
pub struct ClusterConfig {
    pub redis: RedisConfig,
    pub kafka: KafkaConfig,
    pub stream: StreamConfig,
    /// The API keys, `[[keys]]` first and then those of `keys_file`, with unique names.
    pub keys: Vec<ApiKey>,
    pub slots: SlotSelection,
    pub heartbeat: HeartbeatConfig,
    pub original_stats: OriginalStatsConfig,
    pub sink: SinkConfig,
    pub log: LogConfig,
    pub rules: RulesConfig,
    /// Present only when the built-in emulator should run in-process (demo).
    pub emulator: Option<EmulatorConfig>,
    pub status: StatusConfig,
    /// Problems that do not stop the process but deserve an operator's eye (e.g. a config file
    /// with literal secrets that other users can read). Log them at warn after logging starts.
    pub warnings: Vec<String>,
    /// The file this config was read from, so SIGHUP can read its API keys again (`None` for
    /// a config parsed from text).
    pub path: Option<PathBuf>,
}

/// Which slots this process runs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SlotSelection {
    /// Every slot that has rules.
    All,
    /// Only these; other slots' rules are ignored (another process may run them).
    Only(Vec<SlotId>),
}

impl SlotSelection {
    pub fn includes(&self, slot: &SlotId) -> bool {
        match self {
            SlotSelection::All => true,
            SlotSelection::Only(slots) => slots.contains(slot),
        }
    }
}

/// Why the configuration could not be loaded. The message says where and what to change.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read config file {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    /// A syntax error, an unknown option or a value of the wrong type.
    #[error("{origin}: line {line}: {message}")]
    Parse {
        origin: String,
        line: usize,
        message: String,
    },
    /// A value that parsed but makes no sense (or a `${VAR}` that is not set).
    #[error("{origin}{}: `{option}`: {message}", line.map(|l| format!(": line {l}")).unwrap_or_default())]
    Invalid {
        origin: String,
        line: Option<usize>,
        option: String,
        message: String,
    },
}

/// The file as written, before interpolation and checks.
#[derive(Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
struct RawConfig {
    slots: Option<Vec<String>>,
    keys_file: Option<PathBuf>,
    redis: RedisConfig,
    kafka: KafkaConfig,
    stream: StreamConfig,
    keys: Vec<keys::RawKey>,
    heartbeat: HeartbeatConfig,
    original_stats: OriginalStatsConfig,
    sink: sections::SinkSection,
    log: LogConfig,
    rules: sections::RulesSection,
    emulator: Option<EmulatorConfig>,
    status: StatusConfig,
}

/// Where a text came from, for messages and for resolving relative paths.
pub(crate) struct Origin<'a> {
    /// The file name as the operator wrote it, or `<config>` for text given directly.
    pub name: String,
    /// Relative paths in the config (rules, keys, sink, CA) are relative to this directory.
    pub base_dir: Option<&'a Path>,
    pub text: &'a str,
}

impl ClusterConfig {
    /// Reads, interpolates (from the process environment) and validates a config file.
    /// Relative paths inside it are taken relative to the file's directory.
    pub fn load(path: impl AsRef<Path>) -> Result<ClusterConfig, ConfigError> {
        let path = path.as_ref();
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.to_owned(),
            source,
        })?;
        let origin = Origin {
            name: path.display().to_string(),
            base_dir: Some(path.parent().unwrap_or(Path::new("."))),
            text: &text,
        };
        let built = validate::build(&origin, &process_env)?;
        let warnings = validate::permission_warnings(path, &built);
        let mut config = built.config;
        config.warnings.extend(warnings);
        config.path = Some(path.to_owned());
        Ok(config)
    }

    /// Parses config text with an injected environment (tests, embedding). Relative paths stay
    /// relative to the working directory.
    pub fn from_str_with_env(
        text: &str,
        env: &dyn Fn(&str) -> Option<String>,
    ) -> Result<ClusterConfig, ConfigError> {
        let origin = Origin {
            name: "<config>".to_owned(),
            base_dir: None,
            text,
        };
        validate::build(&origin, env).map(|built| built.config)
    }

    /// The API keys' names, in config order.
    pub fn key_names(&self) -> Vec<&str> {
        self.keys.iter().map(|key| key.name.as_str()).collect()
    }

    /// The credentials of the key called `name`.
    pub fn credentials(&self, name: &str) -> Option<&Credentials> {
        self.keys
            .iter()
            .find(|key| key.name == name)
            .map(|key| &key.credentials)
    }
}

impl fmt::Display for SlotSelection {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SlotSelection::All => f.write_str("all"),
            SlotSelection::Only(slots) => {
                let names: Vec<String> = slots.iter().map(|s| s.to_string()).collect();
                f.write_str(&names.join(", "))
            }
        }
    }
}

#[cfg(test)]
mod tests;
