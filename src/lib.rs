//! The `traptor` package: the command-line tools around the collector.
//!
//! The domain lives in `traptor-core`, the runtime (actors, sinks, config) in `traptor-actors`,
//! the streaming-API emulator in `traptor-firehose`. This package holds the commands:
//! [`cli`] is the `traptor` command tree, used by the `traptor` binary.

pub mod cli;
