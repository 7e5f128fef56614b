//! Faults a test can inject: into live connections, or into the next connect attempts.

use std::time::Duration;

/// Which credentials a fault applies to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Target {
    All,
    /// The connections (or connect attempts) of the key with this consumer key.
    ConsumerKey(String),
}

impl Target {
    pub fn matches(&self, consumer_key: Option<&str>) -> bool {
        match self {
            Target::All => true,
            Target::ConsumerKey(key) => consumer_key == Some(key.as_str()),
        }
    }
}

/// What goes wrong.
#[derive(Debug, Clone, PartialEq)]
pub enum FaultKind {
    /// Close the TCP connection at once, without a disconnect message.
    Drop,
    /// Keep the socket but send nothing, not even keep-alives, for `duration` (or until `Resume`).
    Stall { duration: Option<Duration> },
    /// End a stall.
    Resume,
    /// Bytes that are no valid frame (with `delimited=length`: a length line that is not a number).
    MalformedFrame,
    /// A well-framed message that is not valid JSON.
    InvalidJson,
    /// One valid tweet-like JSON message of about `bytes` bytes.
    OversizedFrame { bytes: usize },
    /// Send the first half of a tweet frame, then close.
    CloseMidFrame,
    /// Send a `disconnect` message with this code, then close.
    Disconnect { code: u32 },
    /// Answer the next `count` connect attempts with this HTTP status (401, 420, 500, 503, ...).
    RespondWith { status: u16, count: u32 },
    /// Hold the response head of the next `count` connect attempts for `delay`.
    DelayHead { delay: Duration, count: u32 },
}

impl FaultKind {
    /// Whether the fault waits for connect attempts rather than acting on live connections.
    pub fn is_connect_fault(&self) -> bool {
        matches!(
            self,
            FaultKind::RespondWith { .. } | FaultKind::DelayHead { .. }
        )
    }
}

/// A fault and whom it hits.
#[derive(Debug, Clone, PartialEq)]
pub struct Fault {
    pub target: Target,
    pub kind: FaultKind,
}

impl Fault {
    pub fn all(kind: FaultKind) -> Fault {
        Fault {
            target: Target::All,
            kind,
        }
    }

    pub fn for_key(consumer_key: impl Into<String>, kind: FaultKind) -> Fault {
        Fault {
            target: Target::ConsumerKey(consumer_key.into()),
            kind,
        }
    }
}

/// The JSON body of `POST /control/<fault>`; every field is optional and only some apply.
#[derive(Debug, Default, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ControlRequest {
    pub consumer_key: Option<String>,
    pub duration_ms: Option<u64>,
    pub bytes: Option<usize>,
    pub code: Option<u32>,
    pub status: Option<u16>,
    pub count: Option<u32>,
    pub delay_ms: Option<u64>,
}

/// Default size of an injected oversized frame: twice the 1 MiB a sane client caps frames at.
pub const DEFAULT_OVERSIZED_BYTES: usize = 2 * 1024 * 1024;

impl ControlRequest {
    /// The fault named by the URL (`drop`, `stall`, `resume`, `malformed_frame`, `invalid_json`,
    /// `oversized_frame`, `close_mid_frame`, `disconnect`, `respond_with`, `delay_head`).
    /// `Err((404, why))` for an unknown fault, `Err((400, why))` for a missing field.
    pub fn into_fault(self, name: &str) -> Result<Fault, (u16, String)> {
        let missing = |why: &str| (400, why.to_owned());
        let kind = match name {
            "drop" => FaultKind::Drop,
            "stall" => FaultKind::Stall { duration: self.duration_ms.map(Duration::from_millis) },
            "resume" => FaultKind::Resume,
            "malformed_frame" => FaultKind::MalformedFrame,
            "invalid_json" => FaultKind::InvalidJson,
            "oversized_frame" => FaultKind::OversizedFrame { bytes: self.bytes.unwrap_or(DEFAULT_OVERSIZED_BYTES) },
            "close_mid_frame" => FaultKind::CloseMidFrame,
            "disconnect" => FaultKind::Disconnect { code: self.code.unwrap_or(crate::messages::disconnect_code::SHUTDOWN) },
            "respond_with" => FaultKind::RespondWith {
                status: self.status.ok_or_else(|| missing("respond_with needs \"status\" (e.g. 503)"))?,
                count: self.count.unwrap_or(1),
            },
            "delay_head" => FaultKind::DelayHead {
                delay: Duration::from_millis(self.delay_ms.ok_or_else(|| missing("delay_head needs \"delay_ms\""))?),
                count: self.count.unwrap_or(1),
            },
            other => {
                return Err((
                    404,
                    format!(
                        "unknown fault {other:?}; expected one of drop, stall, resume, malformed_frame, invalid_json, \
                         oversized_frame, close_mid_frame, disconnect, respond_with, delay_head"
                    ),
                ))
            }
        };
        let target = self
            .consumer_key
            .map(Target::ConsumerKey)
            .unwrap_or(Target::All);
        Ok(Fault { target, kind })
    }
}
