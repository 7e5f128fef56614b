//! The streaming-API emulator, run inside the benchmark process (a process of its own,
//! separate from the supervisor, so its CPU is never charged to the supervisor), with
//! blocking helpers to wait on its ground truth.

use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use traptor_firehose::{Fault, Firehose, FirehoseConfig, FirehoseHandle, Stats};

/// A running emulator and the runtime that started it.
pub struct Emulator {
    runtime: tokio::runtime::Runtime,
    handle: Option<FirehoseHandle>,
}

impl Emulator {
    pub fn start(config: FirehoseConfig) -> anyhow::Result<Emulator> {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .context("building a runtime for the emulator")?;
        let handle = runtime
            .block_on(Firehose::start(config))
            .context("starting the emulator")?;
        Ok(Emulator {
            runtime,
            handle: Some(handle),
        })
    }

    fn handle(&self) -> &FirehoseHandle {
        self.handle.as_ref().expect("the emulator runs until stop")
    }

    /// The filter endpoint for `[stream] endpoint`.
    pub fn url(&self) -> String {
        self.handle().url()
    }

    /// A snapshot of the ground truth (clones every recorded tweet id: not free at high volume).
    pub fn stats(&self) -> Stats {
        self.handle().stats()
    }

    pub fn inject(&self, fault: Fault) -> usize {
        self.handle().inject(fault)
    }

    /// Polls the stats every `every` until `check` accepts them; an error after `limit`.
    pub fn wait_for(
        &self,
        what: &str,
        limit: Duration,
        every: Duration,
        mut check: impl FnMut(&Stats) -> bool,
    ) -> anyhow::Result<Stats> {
        let deadline = Instant::now() + limit;
        loop {
            let stats = self.stats();
            if check(&stats) {
                return Ok(stats);
            }
            if Instant::now() >= deadline {
                bail!(
                    "timed out after {limit:?} waiting for {what} ({} connection(s) open)",
                    stats.open_connections().count()
                );
            }
            std::thread::sleep(every);
        }
    }

    /// Ends every stream and stops serving.
    pub fn stop(mut self) {
        if let Some(handle) = self.handle.take() {
            self.runtime.block_on(handle.stop());
        }
    }
}

/// Tweets handed to the sockets so far, all connections together.
pub fn tweets_sent(stats: &Stats) -> u64 {
    stats
        .connections
        .iter()
        .map(|c| c.tweet_ids.len() as u64 + c.tweet_ids_not_recorded)
        .sum()
}
