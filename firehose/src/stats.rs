//! Ground truth of what the emulator did: per connection, per credential, and every connect
//! attempt. Tests compare it with what the client received.
//!
//! Credentials appear only as labels (`key0`, `key1`, ... in the order of the configured keys)
//! and redacted consumer keys, never in clear.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::messages::MessageKind;

/// A snapshot of everything, as `GET /stats` returns it.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Stats {
    pub uptime_ms: u64,
    /// Tweets produced for connections (generated or replayed).
    pub produced: u64,
    /// Generated tweets that targeted no filter (see `hit_ratio`): counted, not sent.
    pub unplanted: u64,
    /// Every connection ever accepted, oldest first.
    pub connections: Vec<ConnectionStats>,
    pub credentials: Vec<CredentialStats>,
    /// Every connect attempt, oldest first (capped at [`MAX_LOG_ENTRIES`]).
    pub log: Vec<ConnectLogEntry>,
}

/// Oldest log entries are dropped beyond this.
pub const MAX_LOG_ENTRIES: usize = 100_000;

impl Stats {
    pub fn connection(&self, id: u64) -> Option<&ConnectionStats> {
        self.connections.iter().find(|c| c.id == id)
    }

    pub fn credential(&self, label: &str) -> Option<&CredentialStats> {
        self.credentials.iter().find(|c| c.credential == label)
    }

    pub fn open_connections(&self) -> impl Iterator<Item = &ConnectionStats> {
        self.connections.iter().filter(|c| c.open)
    }

    /// The connect attempts of one credential label.
    pub fn attempts_of<'a>(
        &'a self,
        label: &'a str,
    ) -> impl Iterator<Item = &'a ConnectLogEntry> + 'a {
        self.log.iter().filter(move |e| e.credential == label)
    }
}

/// One connection's counters.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct ConnectionStats {
    pub id: u64,
    pub credential: String,
    pub open: bool,
    /// Milliseconds since the emulator started.
    pub opened_at_ms: u64,
    pub closed_at_ms: Option<u64>,
    /// Why it ended: `client_closed`, `duplicate_credentials`, `queue_full`, `fault_drop`, ...
    pub close_reason: Option<String>,
    pub track: Vec<String>,
    pub follow: usize,
    pub locations: usize,
    pub delimited: bool,
    pub stall_warnings: bool,
    /// Messages handed to the socket, by kind (`tweet`, `keepalive`, `limit`, ...).
    pub messages: BTreeMap<String, u64>,
    /// Bytes handed to the socket, framing included.
    pub bytes: u64,
    /// Ids of the tweets sent, in order (up to `max_recorded_ids`).
    pub tweet_ids: Vec<u64>,
    /// Tweets sent beyond `max_recorded_ids`, counted only.
    pub tweet_ids_not_recorded: u64,
    /// Tweets withheld by the `limit_cap_per_sec` (what `limit` notices report).
    pub undelivered: u64,
    /// Largest number of messages that waited in this connection's queue (in load mode, where
    /// the queue holds batches, 16 per batch: an upper bound).
    pub queue_peak: usize,
}

impl ConnectionStats {
    pub fn count(&self, kind: MessageKind) -> u64 {
        self.messages.get(kind.as_str()).copied().unwrap_or(0)
    }
}

/// One credential's counters, summed over its connections.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct CredentialStats {
    /// `key<index>` in the order of the configured keys, or `unknown`.
    pub credential: String,
    /// The consumer key, redacted.
    pub consumer_key: String,
    pub attempts: u64,
    /// Accepted connections.
    pub connects: u64,
    pub rejected_401: u64,
    pub rejected_406: u64,
    pub rejected_413: u64,
    pub rejected_420: u64,
    /// Other refusals (injected 500, 503, ...).
    pub rejected_other: u64,
    pub messages: BTreeMap<String, u64>,
    pub bytes: u64,
}

/// One connect attempt.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ConnectLogEntry {
    /// Milliseconds since the emulator started.
    pub at_ms: u64,
    pub unix_ms: u64,
    pub credential: String,
    /// HTTP status answered (200 for an accepted stream).
    pub status: u16,
    /// `connected`, or why not (`bad_signature`, `rate_limited`, `injected`, an error message...).
    pub outcome: String,
    pub connection_id: Option<u64>,
}
