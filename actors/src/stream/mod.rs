//! One streaming connection's whole life.
//!
//! - [`actor`]: the `StreamActor`, thin glue around the lifecycle;
//! - [`lifecycle`]: the pure state machine (connect, back off, stall, auth failure, rule change);
//! - [`backoff`]: the waits of the reconnect policy;
//! - [`pacing`]: the per-API-key connect allowance shared by all streams;
//! - [`client`]: the HTTP client and the signed filter request;
//! - [`reader`]: an open stream's body turned into records for the writer;
//! - [`stats`]: the counters of one stream, for status and metrics.

pub mod actor;
pub mod backoff;
pub mod client;
pub mod lifecycle;
pub mod pacing;
pub mod reader;
pub mod stats;

pub use actor::{StreamActor, StreamHandle, StreamSpec};
pub use backoff::BackoffConfig;
pub use client::{ClientError, ClientSettings, TlsConfig};
pub use lifecycle::{Action, Event, Failure, Lifecycle, Ticket};
pub use pacing::{Pacer, PacingConfig};
pub use stats::{DropKind, StreamStats, StreamStatsSnapshot};
