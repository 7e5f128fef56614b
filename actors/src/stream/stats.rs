//! Counters of one stream, shared between the stream (which bumps them) and whoever reports
//! status or metrics (which reads them). Lock-free except for the rare, small maps and strings.

use std::collections::{BTreeMap, HashSet};
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering::Relaxed};
use std::sync::Mutex;

use serde::de::Error as _;
use serde::{Deserialize, Deserializer, Serialize};
use traptor_core::{MessageKind, Rule};

/// Why an open stream ended; each reason has its own counter.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum DropKind {
    /// The server ended the body.
    Closed,
    /// Reading the body failed (reset, TLS error, decoding error).
    ReadError,
    /// The server sent a `disconnect` message.
    DisconnectMessage,
    /// No byte for the stall timeout.
    Stall,
    /// The writer stopped accepting records.
    WriterGone,
    /// Closed by traptor to apply a new filter.
    RuleChange,
}

impl DropKind {
    pub const ALL: [DropKind; 6] = [
        DropKind::Closed,
        DropKind::ReadError,
        DropKind::DisconnectMessage,
        DropKind::Stall,
        DropKind::WriterGone,
        DropKind::RuleChange,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            DropKind::Closed => "closed",
            DropKind::ReadError => "read_error",
            DropKind::DisconnectMessage => "disconnect_message",
            DropKind::Stall => "stall",
            DropKind::WriterGone => "writer_gone",
            DropKind::RuleChange => "rule_change",
        }
    }
}

/// Live counters of one stream. Share it as `Arc<StreamStats>`; read it with [`snapshot`].
///
/// [`snapshot`]: StreamStats::snapshot
#[derive(Debug, Default)]
pub struct StreamStats {
    connect_attempts: AtomicU64,
    connected: AtomicU64,
    network_errors: AtomicU64,
    drops: [AtomicU64; DropKind::ALL.len()],
    messages: [AtomicU64; MessageKind::ALL.len()],
    tweets_matched: AtomicU64,
    tweets_unmatched: AtomicU64,
    bytes: AtomicU64,
    keep_alives: AtomicU64,
    frame_errors: AtomicU64,
    limit_undelivered: AtomicU64,
    http_statuses: Mutex<BTreeMap<u16, u64>>,
    last_error: Mutex<Option<String>>,
    /// Tweets matched per rule id; rules no longer on the connection are forgotten.
    rule_matches: Mutex<BTreeMap<String, u64>>,
    /// `timestamp_ms` of the newest tweet (0: none yet), for the lag.
    last_tweet_ms: AtomicI64,
}

/// Matches per rule counted by the stream itself, by rule index, and added to the shared
/// [`StreamStats`] once per chunk: taking the shared map's lock for every matched tweet was a
/// measurable share of a busy stream's CPU.
#[derive(Debug, Default)]
pub struct RuleMatchTally {
    /// Tweets matched per rule index since the last flush.
    counts: Vec<u64>,
    /// The indexes whose count is not zero, in the order first matched.
    touched: Vec<usize>,
}

impl RuleMatchTally {
    /// A tweet matched the rule at `index` (of the rules the tally is flushed with).
    pub fn note(&mut self, index: usize) {
        if index >= self.counts.len() {
            self.counts.resize(index + 1, 0);
        }
        if self.counts[index] == 0 {
            self.touched.push(index);
        }
        self.counts[index] += 1;
    }

    /// Adds the counts to `stats` under the ids of `rules` (the rules the indexes refer to),
    /// and starts counting from zero.
    pub fn flush(&mut self, rules: &[Rule], stats: &StreamStats) {
        if self.touched.is_empty() {
            return;
        }
        let counts = &mut self.counts;
        stats.add_rule_matches(self.touched.drain(..).filter_map(|index| {
            let n = std::mem::take(&mut counts[index]);
            rules.get(index).map(|rule| (rule.rule_id.as_str(), n))
        }));
    }
}

/// A plain copy of [`StreamStats`] at one moment, for status pages and metrics.
///
/// The single definition of these counters: `/status` serializes them, under the names given
/// here, in each connection's `counters` (`status::StreamCounters`), so a counter added here
/// shows up there (and in `traptor status`) without a second list to keep in step.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct StreamStatsSnapshot {
    pub connect_attempts: u64,
    /// Connections that got a 200 and started streaming.
    #[serde(rename = "connects")]
    pub connected: u64,
    pub network_errors: u64,
    /// Ended streams by reason (see [`DropKind::as_str`]).
    #[serde(rename = "disconnects")]
    pub drops: BTreeMap<String, u64>,
    /// Non-200 responses by status.
    #[serde(deserialize_with = "status_code_keys")]
    pub http_statuses: BTreeMap<u16, u64>,
    /// Messages by kind (see [`MessageKind::as_str`]); kinds never seen are left out.
    pub messages: BTreeMap<String, u64>,
    pub tweets_matched: u64,
    pub tweets_unmatched: u64,
    pub bytes: u64,
    pub keep_alives: u64,
    pub frame_errors: u64,
    /// The latest `limit` count: tweets the server could not deliver on the current connection.
    pub limit_undelivered: u64,
    /// `/status` shows it as the connection's `last_error`, next to the state's reason.
    #[serde(skip)]
    pub last_error: Option<String>,
    /// Tweets matched per rule id: for `/metrics` only (too long for a status page).
    #[serde(skip)]
    pub rule_matches: BTreeMap<String, u64>,
    /// `timestamp_ms` of the newest tweet, if any tweet carried one.
    #[serde(rename = "last_tweet_at_ms")]
    pub last_tweet_ms: Option<i64>,
}

/// Reads status codes back from JSON object keys, which are strings. serde_json converts such
/// keys to numbers itself, but not when the map sits in a struct that another one flattens
/// (as `status::StreamCounters` flattens the snapshot): then the keys arrive as strings.
fn status_code_keys<'de, D: Deserializer<'de>>(
    deserializer: D,
) -> Result<BTreeMap<u16, u64>, D::Error> {
    BTreeMap::<String, u64>::deserialize(deserializer)?
        .into_iter()
        .map(|(code, count)| match code.parse() {
            Ok(code) => Ok((code, count)),
            Err(_) => Err(D::Error::custom(format!(
                "http_statuses: {code:?} is not an HTTP status code"
            ))),
        })
        .collect()
}

impl StreamStatsSnapshot {
    pub fn messages_of(&self, kind: MessageKind) -> u64 {
        self.messages.get(kind.as_str()).copied().unwrap_or(0)
    }

    pub fn drops_of(&self, kind: DropKind) -> u64 {
        self.drops.get(kind.as_str()).copied().unwrap_or(0)
    }

    pub fn http_status(&self, status: u16) -> u64 {
        self.http_statuses.get(&status).copied().unwrap_or(0)
    }
}

impl StreamStats {
    pub fn connect_attempt(&self) {
        self.connect_attempts.fetch_add(1, Relaxed);
    }

    pub fn connected(&self) {
        self.connected.fetch_add(1, Relaxed);
    }

    pub fn network_error(&self, error: &str) {
        self.network_errors.fetch_add(1, Relaxed);
        self.set_last_error(error);
    }

    pub fn http_status(&self, status: u16, error: &str) {
        *lock(&self.http_statuses).entry(status).or_insert(0) += 1;
        self.set_last_error(error);
    }

    pub fn dropped(&self, kind: DropKind) {
        self.drops[DropKind::ALL.iter().position(|k| *k == kind).unwrap_or(0)]
            .fetch_add(1, Relaxed);
    }

    pub fn message(&self, kind: MessageKind) {
        self.messages[MessageKind::ALL
            .iter()
            .position(|k| *k == kind)
            .unwrap_or(0)]
        .fetch_add(1, Relaxed);
    }

    pub fn tweet_matched(&self, matched: bool) {
        if matched {
            &self.tweets_matched
        } else {
            &self.tweets_unmatched
        }
        .fetch_add(1, Relaxed);
    }

    pub fn bytes(&self, n: usize) {
        self.bytes.fetch_add(n as u64, Relaxed);
    }

    pub fn keep_alive(&self) {
        self.keep_alives.fetch_add(1, Relaxed);
    }

    pub fn frame_error(&self, error: &str) {
        self.frame_errors.fetch_add(1, Relaxed);
        self.set_last_error(error);
    }

    pub fn limit_undelivered(&self, count: u64) {
        self.limit_undelivered.store(count, Relaxed);
    }

    pub fn set_last_error(&self, error: &str) {
        *lock(&self.last_error) = Some(error.to_owned());
    }

    /// Counts one tweet for each rule it matched.
    /// One tweet matched these rules.
    pub fn rules_matched<'a>(&self, rule_ids: impl IntoIterator<Item = &'a str>) {
        self.add_rule_matches(rule_ids.into_iter().map(|id| (id, 1)));
    }

    /// Adds `(rule id, tweets matched)` counts, under one lock.
    pub fn add_rule_matches<'a>(&self, counts: impl IntoIterator<Item = (&'a str, u64)>) {
        let mut totals = lock(&self.rule_matches);
        for (id, n) in counts {
            match totals.get_mut(id) {
                Some(total) => *total += n,
                None => {
                    totals.insert(id.to_owned(), n);
                }
            }
        }
    }

    /// Forgets the match counters of rules that are no longer on the connection.
    pub fn keep_rules(&self, rules: &[Rule]) {
        let current: HashSet<&str> = rules.iter().map(|r| r.rule_id.as_str()).collect();
        lock(&self.rule_matches).retain(|id, _| current.contains(id.as_str()));
    }

    /// The newest tweet's `timestamp_ms`.
    pub fn tweet_timestamp(&self, timestamp_ms: i64) {
        self.last_tweet_ms.store(timestamp_ms, Relaxed);
    }

    pub fn snapshot(&self) -> StreamStatsSnapshot {
        let load = |a: &AtomicU64| a.load(Relaxed);
        StreamStatsSnapshot {
            connect_attempts: load(&self.connect_attempts),
            connected: load(&self.connected),
            network_errors: load(&self.network_errors),
            drops: DropKind::ALL
                .iter()
                .zip(&self.drops)
                .filter(|(_, n)| load(n) > 0)
                .map(|(k, n)| (k.as_str().to_owned(), load(n)))
                .collect(),
            http_statuses: lock(&self.http_statuses).clone(),
            messages: MessageKind::ALL
                .iter()
                .zip(&self.messages)
                .filter(|(_, n)| load(n) > 0)
                .map(|(k, n)| (k.as_str().to_owned(), load(n)))
                .collect(),
            tweets_matched: load(&self.tweets_matched),
            tweets_unmatched: load(&self.tweets_unmatched),
            bytes: load(&self.bytes),
            keep_alives: load(&self.keep_alives),
            frame_errors: load(&self.frame_errors),
            limit_undelivered: load(&self.limit_undelivered),
            last_error: lock(&self.last_error).clone(),
            rule_matches: lock(&self.rule_matches).clone(),
            last_tweet_ms: Some(self.last_tweet_ms.load(Relaxed)).filter(|ms| *ms > 0),
        }
    }
}

/// Counters stay usable even if a thread panicked while holding the lock.
fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_snapshot_shows_what_was_counted() {
        let stats = StreamStats::default();
        stats.connect_attempt();
        stats.connect_attempt();
        stats.http_status(503, "HTTP 503");
        stats.connected();
        stats.message(MessageKind::Tweet);
        stats.message(MessageKind::Tweet);
        stats.message(MessageKind::Limit);
        stats.tweet_matched(true);
        stats.tweet_matched(false);
        stats.dropped(DropKind::Stall);
        stats.bytes(100);
        stats.limit_undelivered(7);
        stats.limit_undelivered(9);
        let snap = stats.snapshot();
        assert_eq!(snap.connect_attempts, 2);
        assert_eq!(snap.connected, 1);
        assert_eq!(snap.http_status(503), 1);
        assert_eq!(snap.messages_of(MessageKind::Tweet), 2);
        assert_eq!(snap.messages_of(MessageKind::Limit), 1);
        assert_eq!(snap.messages_of(MessageKind::Delete), 0);
        assert_eq!((snap.tweets_matched, snap.tweets_unmatched), (1, 1));
        assert_eq!(snap.drops_of(DropKind::Stall), 1);
        assert_eq!(snap.drops_of(DropKind::Closed), 0);
        assert_eq!(snap.bytes, 100);
        assert_eq!(snap.limit_undelivered, 9, "the latest count, not a sum");
        assert_eq!(snap.last_error.as_deref(), Some("HTTP 503"));
        assert_eq!(snap.last_tweet_ms, None);
    }

    #[test]
    fn rule_matches_are_counted_per_rule_and_forgotten_with_the_rule() {
        let stats = StreamStats::default();
        stats.rules_matched(["1", "2"]);
        stats.rules_matched(["2"]);
        stats.tweet_timestamp(1_456_105_293_000);
        let snap = stats.snapshot();
        assert_eq!(snap.rule_matches.get("1"), Some(&1));
        assert_eq!(snap.rule_matches.get("2"), Some(&2));
        assert_eq!(snap.last_tweet_ms, Some(1_456_105_293_000));

        let rule = traptor_core::rules::parse_rule(
            vec![
                ("rule_id".into(), "2".into()),
                ("value".into(), "rust".into()),
            ],
            Some(traptor_core::StreamType::Track),
        )
        .unwrap();
        stats.keep_rules(&[rule]);
        let kept: Vec<String> = stats.snapshot().rule_matches.into_keys().collect();
        assert_eq!(kept, ["2"]);
    }

    #[test]
    fn a_tally_adds_its_counts_under_the_rule_ids_once_and_starts_again() {
        let rule = |id: &str| {
            traptor_core::rules::parse_rule(
                vec![
                    ("rule_id".into(), id.into()),
                    ("value".into(), format!("term{id}")),
                ],
                Some(traptor_core::StreamType::Track),
            )
            .unwrap()
        };
        let rules = [rule("a"), rule("b"), rule("c")];
        let stats = StreamStats::default();
        stats.rules_matched(["c"]);
        let mut tally = RuleMatchTally::default();
        for index in [2, 0, 2, 2, 7] {
            tally.note(index);
        }
        tally.flush(&rules, &stats);
        let counts = stats.snapshot().rule_matches;
        assert_eq!(counts.get("a"), Some(&1));
        assert_eq!(counts.get("b"), None, "a rule never matched is not listed");
        assert_eq!(counts.get("c"), Some(&4), "added to what was there");
        assert_eq!(counts.len(), 2, "an index past the rules is ignored");

        tally.flush(&rules, &stats);
        assert_eq!(
            stats.snapshot().rule_matches,
            counts,
            "a flush empties the tally"
        );
        tally.note(1);
        tally.flush(&rules, &stats);
        assert_eq!(stats.snapshot().rule_matches.get("b"), Some(&1));
        assert_eq!(stats.snapshot().rule_matches.get("c"), Some(&4));
    }
}
