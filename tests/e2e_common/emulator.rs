//! The in-process emulator as the end-to-end tests use it: API keys it accepts, the config
//! text that hands them to the supervisor, and views of its ground truth (`/stats`).

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use traptor_core::oauth::Credentials;
use traptor_firehose::{Firehose, FirehoseConfig, FirehoseHandle, Stats};

use super::Supervisor;

/// `count` named keys (`key0`, `key1`, …) with credentials unique to `prefix`, so that two test
/// files never share a key and its connection limit.
pub fn test_keys(prefix: &str, count: usize) -> Vec<(String, Credentials)> {
    (0..count)
        .map(|i| (format!("key{i}"), test_credentials(prefix, i)))
        .collect()
}

/// The credentials of `test_keys(prefix, _)[i]`.
pub fn test_credentials(prefix: &str, i: usize) -> Credentials {
    Credentials {
        consumer_key: format!("{prefix}-consumer-key-{i}"),
        consumer_secret: format!("{prefix}-consumer-secret-{i}"),
        access_token: format!("{prefix}-access-token-{i}"),
        access_token_secret: format!("{prefix}-access-token-secret-{i}"),
    }
}

/// An emulator config for `keys` at `rate` tweets/s per connection: every tweet carries a
/// connected filter's target, keep-alives every second, no connect-rate refusals. Tests
/// change the fields they care about before [`start_emulator`].
pub fn emulator_config(keys: &[(String, Credentials)], rate: f64) -> FirehoseConfig {
    FirehoseConfig {
        keys: keys.iter().map(|(_, c)| c.clone()).collect(),
        rate,
        seed: 7,
        keepalive: Duration::from_secs(1),
        hit_ratio: 1.0,
        connect_limit: 1000,
        ..FirehoseConfig::default()
    }
}

/// Starts the emulator on a free loopback port; it runs on threads of its own.
pub fn start_emulator(config: FirehoseConfig) -> FirehoseHandle {
    runtime()
        .block_on(Firehose::start(config))
        .expect("starting the emulator")
}

/// A current-thread runtime for the async helpers of a synchronous test.
pub fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}

/// The `[[keys]]` tables of a cluster config for `keys`.
pub fn keys_toml(keys: &[(String, Credentials)]) -> String {
    keys.iter()
        .map(|(name, c)| {
            format!(
                "\n[[keys]]\nname = \"{name}\"\nconsumer_key = \"{}\"\nconsumer_secret = \"{}\"\naccess_token = \"{}\"\naccess_token_secret = \"{}\"\n",
                c.consumer_key, c.consumer_secret, c.access_token, c.access_token_secret
            )
        })
        .collect()
}

/// Open connections' track phrases, sorted, one list per connection.
pub fn open_tracks(stats: &Stats) -> Vec<Vec<String>> {
    let mut tracks: Vec<Vec<String>> = stats
        .open_connections()
        .map(|c| {
            let mut t = c.track.clone();
            t.sort();
            t
        })
        .collect();
    tracks.sort();
    tracks
}

/// Accepted connections per key label.
pub fn connects_per_key(stats: &Stats) -> BTreeMap<String, u64> {
    stats
        .credentials
        .iter()
        .map(|c| (c.credential.clone(), c.connects))
        .collect()
}

/// Tweets handed to the sockets per key label.
pub fn tweets_sent_per_key(stats: &Stats) -> BTreeMap<String, usize> {
    let mut sent = BTreeMap::new();
    for connection in &stats.connections {
        *sent.entry(connection.credential.clone()).or_default() += connection.tweet_ids.len();
    }
    sent
}

/// Tweets handed to the sockets over all connections.
pub fn tweets_sent(stats: &Stats) -> usize {
    stats.connections.iter().map(|c| c.tweet_ids.len()).sum()
}

/// Polls the emulator's stats until `check` holds; after `limit`, fails with the open
/// connections, the end of the emulator's connection log and the supervisor's logs.
#[track_caller]
pub fn wait_for_stats(
    emulator: &FirehoseHandle,
    limit: Duration,
    what: &str,
    supervisor: &Supervisor,
    check: impl Fn(&Stats) -> bool,
) {
    let deadline = Instant::now() + limit;
    loop {
        let stats = emulator.stats();
        if check(&stats) {
            return;
        }
        if Instant::now() >= deadline {
            let log_tail = &stats.log[stats.log.len().saturating_sub(20)..];
            panic!(
                "timed out waiting for {what}; open: {:?}\nemulator log (last 20): {log_tail:#?}\nsupervisor stderr:\n{}",
                open_tracks(&stats),
                supervisor.stderr()
            );
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}
