//! A faithful emulator of the Twitter v1.1 streaming API (`POST /1.1/statuses/filter.json`).
//!
//! It is traptor's test double, the load generator of its benchmarks and the stream behind its
//! demo. It verifies OAuth 1.0a, validates filter parameters (406/413), allows one connection
//! per credential (code 7 for the older one), rate-limits connects (420), frames messages
//! (`delimited=length`), sends keep-alives, stall warnings and compliance messages, generates
//! realistic tweets that carry the connected filters' targets (or replays an archive), counts
//! everything it sends, and injects faults on demand.
//!
//! ```no_run
//! # async fn demo(keys: Vec<traptor_core::oauth::Credentials>) -> std::io::Result<()> {
//! use traptor_firehose::{Firehose, FirehoseConfig};
//! let handle = Firehose::start(FirehoseConfig { keys, rate: 200.0, ..FirehoseConfig::default() }).await?;
//! println!("stream at {}", handle.url());
//! let sent = handle.stats();
//! handle.stop().await;
//! # Ok(()) }
//! ```

pub mod auth;
mod batch;
mod body;
pub mod config;
pub mod fault;
pub mod generate;
pub mod messages;
pub mod params;
mod plant_choice;
mod pool;
mod pump;
pub mod ratelimit;
pub mod replay;
mod server;
mod state;
pub mod stats;

pub use config::{load_keys, ControlMessageRates, FirehoseConfig};
pub use fault::{Fault, FaultKind, Target};
pub use messages::MessageKind;
pub use server::{Firehose, FirehoseHandle, FILTER_PATH};
pub use stats::{ConnectLogEntry, ConnectionStats, CredentialStats, Stats};
