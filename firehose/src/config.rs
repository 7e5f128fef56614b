//! How an emulator instance behaves: address, keys, traffic, limits and faults.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use traptor_core::oauth::Credentials;

use crate::fault::Fault;
use crate::generate::GeneratorOptions;

/// Probabilities, per tweet delivered to a connection, of the compliance messages that follow it.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ControlMessageRates {
    /// `delete` of the tweet just delivered.
    pub delete: f64,
    /// `scrub_geo` of its author, up to that tweet.
    pub scrub_geo: f64,
    /// `status_withheld` of that tweet.
    pub status_withheld: f64,
    /// `user_withheld` of its author.
    pub user_withheld: f64,
}

impl ControlMessageRates {
    /// No compliance messages at all: streams carry only tweets (and what faults add).
    pub fn none() -> Self {
        ControlMessageRates {
            delete: 0.0,
            scrub_geo: 0.0,
            status_withheld: 0.0,
            user_withheld: 0.0,
        }
    }
}

impl Default for ControlMessageRates {
    /// Low rates in the proportions of a real stream: deletes are by far the most common.
    fn default() -> Self {
        ControlMessageRates {
            delete: 0.005,
            scrub_geo: 0.0005,
            status_withheld: 0.0005,
            user_withheld: 0.0002,
        }
    }
}

/// Everything an emulator instance needs. `Default` gives a quiet instance on a free loopback
/// port with no keys: add keys, then start it.
#[derive(Debug, Clone)]
pub struct FirehoseConfig {
    /// Where to listen; port 0 picks a free port (read it back from the handle).
    pub listen: SocketAddr,
    /// The API keys the emulator accepts.
    pub keys: Vec<Credentials>,
    /// Tweets per second generated for all connections together. `f64::INFINITY` generates as
    /// fast as the slowest reader drains, waiting on full queues instead of disconnecting
    /// (load-generation mode).
    pub rate: f64,
    pub seed: u64,
    /// Idle time after which a `\r\n` keep-alive is sent (30 s on the real service).
    pub keepalive: Duration,
    /// Share of generated tweets that carry a target of a connected filter. The others stand for
    /// the part of the firehose no filter selects: they are counted, not sent.
    pub hit_ratio: f64,
    /// Most tweets per second one connection receives; beyond it tweets are withheld and
    /// `limit` notices report how many.
    pub limit_cap_per_sec: Option<f64>,
    /// Least time between two `limit` notices on one connection.
    pub limit_notice_interval: Duration,
    pub control_message_rates: ControlMessageRates,
    /// Serve the lines of this JSONL archive instead of generated tweets.
    pub replay: Option<PathBuf>,
    /// Start the archive again when it ends (otherwise the streams only keep alive).
    pub replay_loop: bool,
    /// Connect-rate limiting per credential: more than `connect_limit` authenticated attempts
    /// within `connect_window` get HTTP 420.
    pub connect_window: Duration,
    pub connect_limit: usize,
    /// How long a credential stays limited after its first 420; each further 420 doubles it.
    pub rate_limit_penalty: Duration,
    /// Messages queued per connection before it is disconnected (code 4) as too slow. In load
    /// mode the queue holds batches of up to 16 messages: `max_queue / 16` of them.
    pub max_queue: usize,
    /// Queue fill (percent) at which `stall_warnings=true` connections get a `warning`.
    pub stall_warning_percent: u32,
    /// Least time between two stall warnings on one connection (about 5 minutes on the real service).
    pub stall_warning_interval: Duration,
    /// Accepted difference between `oauth_timestamp` and the emulator's clock.
    pub timestamp_skew: Duration,
    /// Tweet ids remembered per connection in the stats (the rest are only counted).
    pub max_recorded_ids: usize,
    pub generator: GeneratorOptions,
    /// Load generation without the cost of generating: when above 0, each distinct plant (the
    /// phrase, account or box a tweet is made for) gets this many tweets generated as usual,
    /// and later tweets for it are copies of one of them under a new id and timestamp (see
    /// `pool`). Sizes, mix and routing stay those of the generator. 0 (the default) generates
    /// every tweet. In load mode each copy is patched in place into the connection's batch.
    pub pooled_variants: usize,
    /// Faults in force from the start (e.g. answer the first N connects with 503).
    pub faults: Vec<Fault>,
}

impl Default for FirehoseConfig {
    fn default() -> Self {
        FirehoseConfig {
            listen: SocketAddr::from(([127, 0, 0, 1], 0)),
            keys: Vec::new(),
            rate: 50.0,
            seed: 1,
            keepalive: Duration::from_secs(30),
            hit_ratio: 1.0,
            limit_cap_per_sec: None,
            limit_notice_interval: Duration::from_secs(1),
            control_message_rates: ControlMessageRates::default(),
            replay: None,
            replay_loop: false,
            connect_window: Duration::from_secs(60),
            connect_limit: 10,
            rate_limit_penalty: Duration::from_secs(60),
            max_queue: 10_000,
            stall_warning_percent: 60,
            stall_warning_interval: Duration::from_secs(300),
            timestamp_skew: Duration::from_secs(300),
            max_recorded_ids: 1_000_000,
            generator: GeneratorOptions::default(),
            pooled_variants: 0,
            faults: Vec::new(),
        }
    }
}

/// Reads a keys file: a JSON array of objects with `consumer_key`, `consumer_secret`,
/// `access_token` and `access_token_secret`.
pub fn load_keys(path: &Path) -> std::io::Result<Vec<Credentials>> {
    let text = std::fs::read_to_string(path).map_err(|e| {
        std::io::Error::new(
            e.kind(),
            format!("cannot read the keys file {}: {e}", path.display()),
        )
    })?;
    serde_json::from_str(&text).map_err(|e| {
        std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            format!(
                "the keys file {} is not a JSON array of {{consumer_key, consumer_secret, access_token, \
                 access_token_secret}} objects: {e}",
                path.display()
            ),
        )
    })
}
