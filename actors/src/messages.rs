//! The typed messages the actors exchange. Kept in one file so the whole conversation of the
//! system can be read at a glance:
//!
//! ```text
//! RuleWatcher ──RulesChanged──▶ Supervisor ──UpdateRules / StopStream──▶ StreamActor
//! StreamActor ──StreamStateChanged──▶ Supervisor ──(forwards)──▶ Heartbeat
//! StreamActor ──WriteBatch──▶ Writer (Kafka, stdout or file sink)      Supervisor ──Flush──▶ Writer
//! ```

use std::time::{Duration, SystemTime};

use actix::Message;
use traptor_core::plan::ConnectionId;
use traptor_core::{Record, Rule, RuleError, SlotId};

/// A slot's rules as the watcher now sees them in Redis. Sent only when they really changed;
/// an empty `rules` list means the slot has no rules left.
#[derive(Debug, Clone, Message)]
#[rtype(result = "()")]
pub struct RulesChanged {
    pub slot: SlotId,
    pub rules: Vec<Rule>,
    /// Rules of the slot that could not be loaded, with the reason, for status and logs.
    pub errors: Vec<RuleError>,
}

/// The full picture after a (re)sync: every slot found in Redis. Lets the supervisor stop the
/// streams of slots that disappeared while a notice was lost.
#[derive(Debug, Clone, Message)]
#[rtype(result = "()")]
pub struct RulesSnapshot {
    pub slots: Vec<RulesChanged>,
}

/// Tells a stream its rules changed: it reconnects with the new filter (and only then).
#[derive(Debug, Clone, Message)]
#[rtype(result = "()")]
pub struct UpdateRules {
    pub rules: Vec<Rule>,
}

/// Asks a stream to close its connection and stop.
#[derive(Debug, Clone, Copy, Message)]
#[rtype(result = "()")]
pub struct StopStream;

/// Where a stream is in its life. `Streaming` is the only state that earns a heartbeat.
#[derive(Debug, Clone, PartialEq)]
pub enum StreamState {
    Connecting,
    Streaming,
    /// Waiting before the next attempt, per the streaming API's backoff guidance.
    BackingOff {
        delay: Duration,
        reason: String,
    },
    /// 401: credentials rejected; retried only slowly.
    AuthFailed {
        reason: String,
    },
    /// 406/413: the filter itself was refused; retried only after a rule change (or slowly).
    Rejected {
        reason: String,
    },
    Stopped,
}

impl StreamState {
    pub fn name(&self) -> &'static str {
        match self {
            StreamState::Connecting => "connecting",
            StreamState::Streaming => "streaming",
            StreamState::BackingOff { .. } => "backing_off",
            StreamState::AuthFailed { .. } => "auth_failed",
            StreamState::Rejected { .. } => "rejected",
            StreamState::Stopped => "stopped",
        }
    }
}

/// A stream reports every state change to the supervisor, which keeps the status and tells
/// the heartbeat which slots are streaming.
#[derive(Debug, Clone, Message)]
#[rtype(result = "()")]
pub struct StreamStateChanged {
    pub connection: ConnectionId,
    pub key_name: String,
    pub state: StreamState,
    pub at: SystemTime,
}

/// Records from one stream, handed to the writer. The stream awaits the reply before reading
/// more, so a slow sink slows the streams instead of growing a queue without bound.
#[derive(Debug, Message)]
#[rtype(result = "Result<(), WriteError>")]
pub struct WriteBatch(pub Vec<Record>);

/// Why the writer refused a batch (it only does so while shutting down).
#[derive(Debug, Clone, thiserror::Error)]
pub enum WriteError {
    #[error("the writer is shutting down and accepts no more records")]
    ShuttingDown,
    #[error("sink failed: {0}")]
    Sink(String),
}

/// Asks the writer to deliver everything it holds, waiting at most `timeout`; replies with
/// how many records are still undelivered (0 when fully flushed).
#[derive(Debug, Clone, Copy, Message)]
#[rtype(result = "usize")]
pub struct Flush {
    pub timeout: Duration,
}
