//! The non-tweet messages of a stream, and the kinds every sent message is counted under.

use serde::Serialize;
use serde_json::json;

/// What one message on a stream was, for the per-connection counters.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum MessageKind {
    Tweet,
    Keepalive,
    Limit,
    Delete,
    ScrubGeo,
    StatusWithheld,
    UserWithheld,
    Warning,
    Disconnect,
    /// Injected: bytes that are not a valid frame.
    MalformedFrame,
    /// Injected: a well-framed message that is not valid JSON.
    InvalidJson,
    /// Injected: one very large (valid) message.
    OversizedFrame,
    /// Injected: the first half of a tweet frame, then the connection closes.
    PartialFrame,
}

impl MessageKind {
    pub fn as_str(self) -> &'static str {
        match self {
            MessageKind::Tweet => "tweet",
            MessageKind::Keepalive => "keepalive",
            MessageKind::Limit => "limit",
            MessageKind::Delete => "delete",
            MessageKind::ScrubGeo => "scrub_geo",
            MessageKind::StatusWithheld => "status_withheld",
            MessageKind::UserWithheld => "user_withheld",
            MessageKind::Warning => "warning",
            MessageKind::Disconnect => "disconnect",
            MessageKind::MalformedFrame => "malformed_frame",
            MessageKind::InvalidJson => "invalid_json",
            MessageKind::OversizedFrame => "oversized_frame",
            MessageKind::PartialFrame => "partial_frame",
        }
    }
}

/// Disconnect codes of the v1.1 documentation that the emulator uses.
pub mod disconnect_code {
    pub const SHUTDOWN: u32 = 1;
    pub const STALL: u32 = 4;
    pub const ADMIN_LOGOUT: u32 = 7;
}

fn text(value: serde_json::Value) -> String {
    value.to_string()
}

pub fn limit(undelivered: u64, now_ms: u64) -> String {
    text(json!({"limit": {"track": undelivered, "timestamp_ms": now_ms.to_string()}}))
}

pub fn delete(id: u64, user_id: u64, now_ms: u64) -> String {
    text(json!({"delete": {
        "status": {"id": id, "id_str": id.to_string(), "user_id": user_id, "user_id_str": user_id.to_string()},
        "timestamp_ms": now_ms.to_string()
    }}))
}

pub fn scrub_geo(user_id: u64, up_to: u64, now_ms: u64) -> String {
    text(json!({"scrub_geo": {
        "user_id": user_id, "user_id_str": user_id.to_string(),
        "up_to_status_id": up_to, "up_to_status_id_str": up_to.to_string(),
        "timestamp_ms": now_ms.to_string()
    }}))
}

pub fn status_withheld(id: u64, user_id: u64, now_ms: u64) -> String {
    text(json!({"status_withheld": {
        "id": id, "user_id": user_id, "withheld_in_countries": ["DE", "FR"], "timestamp_ms": now_ms.to_string()
    }}))
}

pub fn user_withheld(user_id: u64, now_ms: u64) -> String {
    text(
        json!({"user_withheld": {"id": user_id, "withheld_in_countries": ["TR"], "timestamp_ms": now_ms.to_string()}}),
    )
}

pub fn warning(percent_full: u32) -> String {
    text(json!({"warning": {
        "code": "FALLING_BEHIND",
        "message": format!(
            "Your connection is falling behind and messages are being queued for delivery to you. \
             Your queue is now over {percent_full}% full. You will be disconnected when the queue is full."
        ),
        "percent_full": percent_full
    }}))
}

pub fn disconnect(code: u32, reason: &str) -> String {
    text(json!({"disconnect": {"code": code, "stream_name": "", "reason": reason}}))
}

pub fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}
