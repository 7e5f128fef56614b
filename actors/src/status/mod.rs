//! What an operator sees of a running `traptor-supervisor`: an HTTP endpoint (`[status]
//! listen`, loopback by default) with `/healthz`, `/readyz`, `/status` and `/metrics`.
//!
//! - [`registry`]: where each started stream's counters are found;
//! - [`report`]: the `/status` document, built from the supervisor's snapshot and the counters;
//! - [`health`]: readiness, with a sentence for everything not ready;
//! - [`metrics`]: the report in Prometheus text format;
//! - [`server`]: the actix-web server;
//! - [`client`]: a small blocking GET, for `traptor status` and tests.
//!
//! Everything shown is names, counts, addresses without credentials and error texts: API key
//! secrets, Redis passwords and Kafka option values never reach this module.

pub mod client;
pub mod health;
pub mod metrics;
pub mod registry;
pub mod report;
pub mod server;

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use actix::Recipient;

use crate::sinks::WriterHandle;
use crate::supervisor::GetStatus;
use crate::watcher::{WatcherSettings, WatcherStats};

/// The fields of each `/status` connection entry (a [`ConnectionReport`] embeds it), and of
/// the document's cluster-wide part (a [`StatusReport`] embeds it).
pub use crate::supervisor::status::{ClusterStatus, ConnectionStatus};
pub use health::{readiness, Readiness};
pub use metrics::MetricsOptions;
pub use registry::{StreamReading, StreamRegistry};
pub use report::{
    collect, ConnectionReport, RulesReport, StatusError, StatusReport, StreamCounters,
    WatcherReport, WriterReport,
};
pub use server::{StatusServer, StatusServerError};

/// Everything the status endpoint reads. Cheap to clone.
#[derive(Clone)]
pub struct StatusSources {
    /// Answers `GetStatus` (the plan and each connection's state).
    pub supervisor: Recipient<GetStatus>,
    /// The counters of the streams the spawner started.
    pub streams: StreamRegistry,
    /// The writer's counters and health (`None` when there is no writer).
    pub writer: Option<WriterHandle>,
    pub rules: RulesSourceView,
    /// When the process started.
    pub started_at: SystemTime,
}

/// Where the rules come from, as the status endpoint sees it.
#[derive(Debug, Clone)]
pub enum RulesSourceView {
    /// The rule watcher: `address` is `host:port/db` (see `watcher::redis_address`, never the
    /// URL, which may carry a password). A sync older than `stale_after` makes the process
    /// not ready.
    Redis {
        address: String,
        stats: Arc<WatcherStats>,
        stale_after: Duration,
    },
    /// A rules file (no readiness condition: it was loaded at start).
    File { path: String },
    /// Nothing feeds rules (tests).
    None,
}

impl RulesSourceView {
    /// The view of the rule watcher started with `settings`.
    pub fn redis(settings: &WatcherSettings) -> RulesSourceView {
        RulesSourceView::Redis {
            address: settings.redis.address(),
            stats: Arc::clone(&settings.stats),
            stale_after: Self::stale_after(settings.resync_interval, settings.timeout),
        }
    }

    /// The view of rules read from the file at `path`.
    pub fn file(path: &Path) -> RulesSourceView {
        RulesSourceView::File {
            path: path.display().to_string(),
        }
    }

    /// The staleness bound for a watcher resyncing every `resync_interval` and waiting up to
    /// `timeout` on Redis: two missed resyncs (plus the time they may take) are stale.
    pub fn stale_after(resync_interval: Duration, timeout: Duration) -> Duration {
        resync_interval * 2 + timeout * 2
    }
}
