//! The one record type that flows from a stream to the sinks.

use std::fmt;

use crate::rules::SlotId;

/// What a streaming message is. Decided by its top-level key (see `protocol::classify`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum MessageKind {
    Tweet,
    Limit,
    Delete,
    ScrubGeo,
    StatusWithheld,
    UserWithheld,
    Disconnect,
    Warning,
    /// Valid JSON of a shape the contract does not name; kept, never dropped.
    Unknown,
    /// Not JSON (or not UTF-8): kept byte for byte so nothing is lost, routed as a dead letter.
    Invalid,
}

impl MessageKind {
    pub const ALL: [MessageKind; 10] = [
        MessageKind::Tweet,
        MessageKind::Limit,
        MessageKind::Delete,
        MessageKind::ScrubGeo,
        MessageKind::StatusWithheld,
        MessageKind::UserWithheld,
        MessageKind::Disconnect,
        MessageKind::Warning,
        MessageKind::Unknown,
        MessageKind::Invalid,
    ];

    /// The label used in Kafka headers, metrics and summaries (the message's JSON key).
    pub fn as_str(self) -> &'static str {
        match self {
            MessageKind::Tweet => "tweet",
            MessageKind::Limit => "limit",
            MessageKind::Delete => "delete",
            MessageKind::ScrubGeo => "scrub_geo",
            MessageKind::StatusWithheld => "status_withheld",
            MessageKind::UserWithheld => "user_withheld",
            MessageKind::Disconnect => "disconnect",
            MessageKind::Warning => "warning",
            MessageKind::Unknown => "unknown",
            MessageKind::Invalid => "invalid",
        }
    }

    pub fn is_tweet(self) -> bool {
        self == MessageKind::Tweet
    }
}

impl fmt::Display for MessageKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// An output document: the payload to write, its kind (for routing and headers) and its key.
#[derive(Debug, Clone, PartialEq)]
pub struct Record {
    pub kind: MessageKind,
    /// The partition key: the tweet's `id_str` for tweets; `None` for most control messages.
    pub key: Option<String>,
    /// The bytes to write: the enriched tweet, or a control message unchanged.
    pub payload: Vec<u8>,
    /// The slot whose connection received it (`None` for offline enrichment).
    pub slot: Option<SlotId>,
    /// When traptor received it, in milliseconds since the Unix epoch.
    pub received_at_ms: i64,
}
