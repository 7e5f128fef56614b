//! traptor's runtime: actix actors around the domain of `traptor-core`.
//!
//! - [`messages`]: every message the actors exchange, in one place;
//! - `config`: the cluster configuration (`cluster.toml`);
//! - `sinks`: where records go (Kafka, stdout, file);
//! - `stream`: one streaming connection's life;
//! - `watcher`, `heartbeat`, `supervisor`: rules in, liveness out, and the owner of it all;
//! - `original_stats`: the original traptor's per-rule counters in Redis (optional).

pub mod app;
pub mod config;
pub mod heartbeat;
pub mod logging;
pub mod messages;
pub mod original_stats;
pub mod redis_target;
pub mod redis_writer;
pub mod rule_store;
pub mod rules_file;
pub mod sinks;
pub mod status;
pub mod stream;
pub mod supervisor;
pub mod watcher;
