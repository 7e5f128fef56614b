//! traptor's performance benchmarks: a whole cluster's worth of streams in one
//! `traptor-supervisor` process, driven end to end with the streaming-API emulator, real
//! Redis and a real Kafka broker, and judged by the emulator's ground truth and `/proc`.
//!
//! - [`scenarios`]: throughput, connection scale, rule-change reaction, slow Kafka;
//! - [`cluster`]: keys, rules in Redis, the supervisor's `cluster.toml`;
//! - [`emulator`], [`supervisor`], [`kafka`], [`baseline`]: the parts of the world;
//! - [`procfs`], [`figures`], [`report`]: measuring and reporting.
//!
//! Run everything with `scripts/bench.sh`; one scenario with `traptor-perf <scenario>`.

pub mod baseline;
pub mod cluster;
pub mod emulator;
pub mod figures;
pub mod kafka;
pub mod procfs;
pub mod report;
pub mod scenarios;
pub mod services;
pub mod supervisor;
