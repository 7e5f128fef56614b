//! Wiring: everything one `traptor-supervisor` process runs, built from a [`ClusterConfig`].
//!
//! Start order: writer, heartbeat (Redis rules only), supervisor with its stream spawner, then
//! the rule source, whose first snapshot makes the supervisor start the streams, then the status
//! endpoint. Stop order on SIGTERM/SIGINT: streams (bounded), then a bounded flush of the
//! writer, then the status endpoint. A second signal exits at once with a non-zero status.

use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use actix::prelude::*;
use traptor_core::oauth::Credentials;
use traptor_core::plan::{plan, Plan};
use traptor_core::{MessageKind, RuleSet, SlotId};

use crate::config::{ApiKey, ClusterConfig, RulesConfig, SinkConfig, SlotSelection, StreamConfig};
use crate::heartbeat::{Heartbeat, HeartbeatSettings, StreamingSlots};
use crate::original_stats::{OriginalStats, OriginalStatsSettings, WriteStatsNow};
use crate::redis_target::{RedisTarget, RedisTargetError};
use crate::rules_file::{load_rules_file, RulesFile, RulesFileError};
use crate::sinks::RecordOutlet;
use crate::sinks::{check_producer_settings, probe_kafka, start_writer, KafkaProbe};
use crate::status::{RulesSourceView, StatusServer, StatusSources, StreamRegistry};
use crate::stream::{ClientSettings, Pacer, PacingConfig, StreamActor, StreamSpec, TlsConfig};
use crate::supervisor::children::{keys_with_new_credentials, ChildHandle, ChildSpec, SpawnStream};
use crate::supervisor::{ArbiterPool, ReloadKeys, Shutdown, Supervisor, SupervisorSettings};
use crate::watcher::{load_all, RuleTargets, RuleWatcher, SlotFilter, WatcherSettings};

/// How long the streams get to close, then how long the writer gets to deliver what it holds.
/// Together they bound a clean shutdown at about 10 s.
const STOP_STREAMS_TIMEOUT: Duration = Duration::from_secs(3);
const FLUSH_TIMEOUT: Duration = Duration::from_secs(6);
/// A signal this soon after the one that started the shutdown is the same request delivered
/// twice (see `run`), not a second one that forces the exit.
const REPEATED_SIGNAL_WINDOW: Duration = Duration::from_millis(500);

/// Why `run` returned.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ExitReason {
    /// A SIGTERM or SIGINT; `undelivered` records could not be flushed in time (0 is clean).
    /// `signal` is `SIGTERM`, `SIGINT`, or `sink closed` when the sink went away for good.
    Signal {
        signal: &'static str,
        undelivered: usize,
    },
}

impl ExitReason {
    /// The process exit status: 0 for a clean stop, 1 when records were left undelivered.
    pub fn exit_code(&self) -> u8 {
        match self {
            ExitReason::Signal { undelivered: 0, .. } => 0,
            ExitReason::Signal { .. } => 1,
        }
    }
}

/// What keeps the process from starting. The message names what to fix.
#[derive(Debug, thiserror::Error)]
pub enum AppError {
    #[error(transparent)]
    RulesFile(#[from] RulesFileError),
    /// `reason` is the Redis error, with what to change when the server's certificate was
    /// refused.
    #[error("cannot read the rules from Redis at {address}: {reason}")]
    Redis { address: String, reason: String },
    #[error(transparent)]
    RedisTarget(#[from] RedisTargetError),
    #[error("Redis at {address} did not answer within {timeout:?}; is it running and reachable?")]
    RedisTimeout { address: String, timeout: Duration },
    #[error("cannot set up the stream client: {0}")]
    Client(String),
    #[error("cannot start the writer: {0}")]
    Writer(String),
    #[error("cannot use Kafka: {0}")]
    Kafka(String),
    #[error("cannot listen for signals: {0}")]
    Signals(std::io::Error),
}

/// Where this run's rules come from, with what reaching them needs.
enum RulesOrigin {
    Redis(RedisTarget),
    File(PathBuf),
}

impl RulesOrigin {
    /// The Redis of the rules, which the heartbeat and the original's stats also write to.
    fn redis(&self) -> Option<&RedisTarget> {
        match self {
            RulesOrigin::Redis(redis) => Some(redis),
            RulesOrigin::File(_) => None,
        }
    }
}

/// Runs the cluster until SIGTERM or SIGINT (or until the sink goes away for good, e.g. the
/// reader of standard output exited). Must be called inside an actix `System`.
pub async fn run(config: ClusterConfig) -> Result<ExitReason, AppError> {
    for warning in &config.warnings {
        tracing::warn!("{warning}");
    }
    crate::stream::client::install_crypto_provider();
    // Signals are taken over first: a SIGTERM during start-up is then a clean stop too.
    let mut signals = Signals::listen().map_err(AppError::Signals)?;
    // SIGHUP re-reads the API keys (its default action would end the process).
    let hangups = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup())
        .map_err(AppError::Signals)?;

    let writer =
        start_writer(&config.sink, &config.kafka).map_err(|e| AppError::Writer(e.to_string()))?;
    tracing::info!(sink = writer.sink, "writer started");
    let wanted = slot_filter(&config.slots);
    let origin = match &config.rules {
        RulesConfig::Redis => RulesOrigin::Redis(RedisTarget::from_config(&config.redis)?),
        RulesConfig::File { path } => {
            // Fail at start, loudly, rather than run with no rules.
            load_rules_file(path)?;
            RulesOrigin::File(path.clone())
        }
    };
    let redis = origin.redis();
    let heartbeat = match redis {
        Some(redis) => Some(
            Heartbeat::new(HeartbeatSettings {
                redis: redis.clone(),
                interval: config.heartbeat.interval(),
                timeout: Duration::from_secs(5),
            })
            .start(),
        ),
        None => None,
    };

    let pool = Arc::new(ArbiterPool::new(0));
    let spawner = StreamSpawner::new(&config, writer.outlet(), Arc::clone(&pool))?;
    let streams = spawner.registry.clone();
    let original_stats = match redis {
        Some(redis) if config.original_stats.enabled => Some(
            OriginalStats::new(
                OriginalStatsSettings {
                    redis: redis.clone(),
                    interval: config.original_stats.interval(),
                    window: config.original_stats.window(),
                    timeout: Duration::from_secs(5),
                },
                streams.clone(),
            )
            .start(),
        ),
        _ => None,
    };
    let mut settings =
        SupervisorSettings::new(config.keys.iter().map(|k| k.name.clone()).collect());
    settings.status_interval = match config.log.status_interval_secs {
        0 => None,
        secs => Some(Duration::from_secs(secs)),
    };
    let heartbeat_recipient: Option<Recipient<StreamingSlots>> =
        heartbeat.as_ref().map(|h| h.clone().recipient());
    let supervisor = Supervisor::new(settings, Box::new(spawner), heartbeat_recipient).start();
    reload_keys_on_hangup(hangups, config.path.clone(), supervisor.clone());
    tracing::info!(
        keys = config.keys.len(),
        arbiters = pool.len(),
        slots = %config.slots,
        endpoint = %config.stream.endpoint,
        "supervisor started"
    );

    let targets = RuleTargets {
        changed: supervisor.clone().recipient(),
        snapshot: supervisor.clone().recipient(),
    };
    let (source, rules_view) = match origin {
        RulesOrigin::Redis(redis) => {
            let mut settings = WatcherSettings::new(redis, config.redis.notify_channel.clone());
            settings.resync_interval = config.redis.resync_interval();
            settings.wanted = wanted;
            let view = RulesSourceView::redis(&settings);
            (
                RuleSource::Redis(RuleWatcher::new(settings, targets).start()),
                view,
            )
        }
        RulesOrigin::File(path) => {
            let view = RulesSourceView::file(&path);
            (
                RuleSource::File(RulesFile::new(path, wanted, targets).start()),
                view,
            )
        }
    };
    let status_sources = StatusSources {
        supervisor: supervisor.clone().recipient(),
        streams,
        writer: Some(writer.clone()),
        rules: rules_view,
        started_at: SystemTime::now(),
    };
    // Collecting matters more than being watched: a busy port is logged, not fatal.
    let status_server = StatusServer::start(
        &config.status.listen,
        status_sources,
        config.status.metrics_options(),
    )
    .map_err(|e| tracing::error!("{e}; running without the status endpoint"))
    .ok();

    let signal = tokio::select! {
        signal = signals.next() => signal,
        reason = writer.closed() => {
            tracing::error!("the sink is gone ({reason}): shutting down");
            "sink closed"
        }
    };
    tracing::info!("{signal}: shutting down (a second signal exits at once)");
    let shutdown_began = Instant::now();
    actix_rt::spawn(async move {
        let again = forcing_signal(&mut signals, shutdown_began).await;
        tracing::error!("{again} during shutdown: exiting now, records still held are lost");
        std::process::exit(130);
    });

    drop(source);
    let not_stopped = supervisor
        .send(Shutdown {
            timeout: STOP_STREAMS_TIMEOUT,
        })
        .await
        .unwrap_or(0);
    if not_stopped > 0 {
        tracing::warn!(
            streams = not_stopped,
            "streams did not stop within {STOP_STREAMS_TIMEOUT:?}"
        );
    }
    if let Some(stats) = &original_stats {
        // The streams have stopped: their last counts go to Redis now or not at all.
        let written = tokio::time::timeout(Duration::from_secs(5), stats.send(WriteStatsNow)).await;
        if written.is_err() {
            tracing::warn!(
                "the original's stats keys: the last counts could not be written within 5 s"
            );
        }
    }
    let undelivered = writer.shutdown(FLUSH_TIMEOUT).await;
    if undelivered > 0 {
        tracing::error!(
            undelivered,
            "records could not be delivered within {FLUSH_TIMEOUT:?} and are lost"
        );
    } else {
        let spooled = writer.stats().spool_records;
        if spooled > 0 {
            tracing::warn!(
                spool_records = spooled,
                "Kafka did not take every record: {spooled} records wait in the spool and are replayed at the next start"
            );
        } else {
            tracing::info!("all records delivered; stopped cleanly");
        }
    }
    if let Some(server) = status_server {
        server.stop().await;
    }
    pool.stop();
    Ok(ExitReason::Signal {
        signal,
        undelivered,
    })
}

/// On every SIGHUP, reads the config file again and hands its API keys to the supervisor, which
/// re-plans over them: a key can be added, removed or given new credentials without
/// restarting the other streams. Only the keys are taken; other settings apply at the next
/// start. A config that no longer loads leaves the keys as they were.
fn reload_keys_on_hangup(
    mut hangups: tokio::signal::unix::Signal,
    path: Option<PathBuf>,
    supervisor: Addr<Supervisor>,
) {
    actix_rt::spawn(async move {
        while hangups.recv().await.is_some() {
            let Some(path) = &path else {
                tracing::warn!("SIGHUP: this config was not read from a file; nothing to reload");
                continue;
            };
            let config = match ClusterConfig::load(path) {
                Ok(config) => config,
                Err(error) => {
                    tracing::error!("SIGHUP: the API keys stay as they were: {error}");
                    continue;
                }
            };
            for warning in &config.warnings {
                tracing::warn!("{warning}");
            }
            let count = config.keys.len();
            let Ok(reloaded) = supervisor.send(ReloadKeys { keys: config.keys }).await else {
                return;
            };
            if reloaded.is_empty() {
                tracing::info!(keys = count, "SIGHUP: API keys read again, none changed");
            } else {
                tracing::info!(
                    keys = count,
                    added = ?reloaded.added,
                    removed = ?reloaded.removed,
                    changed = ?reloaded.changed,
                    "SIGHUP: API keys reloaded (other settings apply at the next start)"
                );
            }
        }
    });
}

/// Holds the rule source alive; dropping it stops it.
enum RuleSource {
    Redis(#[allow(dead_code)] Addr<RuleWatcher>),
    File(#[allow(dead_code)] Addr<RulesFile>),
}

/// The config's slot selection as the watcher's predicate.
pub fn slot_filter(selection: &SlotSelection) -> SlotFilter {
    let selection = selection.clone();
    Arc::new(move |slot: &SlotId| selection.includes(slot))
}

/// Starts `StreamActor`s on the arbiter pool with the config's endpoint and credentials.
struct StreamSpawner {
    credentials: HashMap<String, Credentials>,
    stream: StreamConfig,
    http: ClientSettings,
    outlet: RecordOutlet,
    pacer: Arc<Pacer>,
    pool: Arc<ArbiterPool>,
    /// Every started stream's counters, for the status endpoint.
    registry: StreamRegistry,
}

impl StreamSpawner {
    fn new(
        config: &ClusterConfig,
        outlet: RecordOutlet,
        pool: Arc<ArbiterPool>,
    ) -> Result<Self, AppError> {
        let stream = config.stream.clone();
        crate::stream::client::check_endpoint(&stream.endpoint)
            .map_err(|e| AppError::Client(e.to_string()))?;
        let tls = TlsConfig::load(stream.ca_file.as_deref())
            .map_err(|e| AppError::Client(e.to_string()))?;
        let http = ClientSettings {
            connect_timeout: stream.connect_timeout(),
            head_timeout: stream.connect_timeout(),
            tls,
        };
        let per_minute = stream.connects_per_key_per_minute.max(1);
        let pacer = Arc::new(Pacer::new(PacingConfig {
            burst: per_minute.min(5),
            interval: Duration::from_secs(60) / per_minute,
        }));
        let credentials = config
            .keys
            .iter()
            .map(|k| (k.name.clone(), k.credentials.clone()))
            .collect();
        Ok(StreamSpawner {
            credentials,
            stream,
            http,
            outlet,
            pacer,
            pool,
            registry: StreamRegistry::default(),
        })
    }
}

impl SpawnStream for StreamSpawner {
    fn spawn(&mut self, spec: ChildSpec) -> Result<ChildHandle, String> {
        let credentials = self
            .credentials
            .get(&spec.key_name)
            .cloned()
            .ok_or_else(|| format!("no API key named {:?} in the config", spec.key_name))?;
        let (connection, key_name) = (spec.id.clone(), spec.key_name.clone());
        let mut stream = StreamSpec::new(
            spec.id,
            spec.key_name,
            credentials,
            spec.rules,
            self.stream.endpoint.clone(),
        );
        stream.user_agent = self.stream.user_agent.clone();
        stream.stall_timeout = self.stream.stall_timeout();
        stream.max_frame_bytes = self.stream.max_frame_bytes;
        stream.http = self.http.clone();
        let handle = StreamActor::start_in(
            &self.pool.next_handle(),
            stream,
            self.outlet.clone(),
            spec.report_to,
            Arc::clone(&self.pacer),
        )
        .map_err(|e| e.to_string())?;
        self.registry
            .register(&connection, &key_name, Arc::clone(&handle.stats));
        let stats = handle.stats;
        Ok(ChildHandle {
            update: handle.addr.clone().recipient(),
            stop: handle.addr.recipient(),
            tweets: Some(Arc::new(move || {
                stats.snapshot().messages_of(MessageKind::Tweet)
            })),
        })
    }

    fn replace_keys(&mut self, keys: &[ApiKey]) -> Vec<String> {
        let changed = keys_with_new_credentials(&self.credentials, keys);
        self.credentials = keys
            .iter()
            .map(|k| (k.name.clone(), k.credentials.clone()))
            .collect();
        changed
    }
}

/// SIGTERM and SIGINT as one stream of signal names.
struct Signals {
    term: tokio::signal::unix::Signal,
    int: tokio::signal::unix::Signal,
}

impl Signals {
    fn listen() -> std::io::Result<Signals> {
        use tokio::signal::unix::{signal, SignalKind};
        Ok(Signals {
            term: signal(SignalKind::terminate())?,
            int: signal(SignalKind::interrupt())?,
        })
    }
}

/// Where stop signals come from: the process's own, or a test's.
trait StopSignals {
    /// The next stop signal's name.
    async fn next(&mut self) -> &'static str;
}

impl StopSignals for Signals {
    async fn next(&mut self) -> &'static str {
        tokio::select! {
            _ = self.term.recv() => "SIGTERM",
            _ = self.int.recv() => "SIGINT",
        }
    }
}

/// The signal that forces the exit during a shutdown that began at `shutdown_began`: the
/// first one to come at least [`REPEATED_SIGNAL_WINDOW`] after it. `timeout`, and tools that
/// signal a process and then its process group, deliver one stop twice at the same moment;
/// that is not an operator insisting.
async fn forcing_signal(signals: &mut impl StopSignals, shutdown_began: Instant) -> &'static str {
    loop {
        let again = signals.next().await;
        if shutdown_began.elapsed() >= REPEATED_SIGNAL_WINDOW {
            return again;
        }
        tracing::debug!("{again} right after the first: taken as the same stop request");
    }
}

/// What `traptor-supervisor check` found: the rules per slot and the plan they give.
#[derive(Debug)]
pub struct CheckReport {
    pub rules: BTreeMap<SlotId, RuleSet>,
    pub plan: Plan,
    /// Where the rules came from, for the report's first line.
    pub source: String,
    /// What Kafka answered, when the sink is Kafka and `check` was asked to reach it.
    pub kafka: Option<KafkaProbe>,
}

impl CheckReport {
    /// The report printed by `check`: slots with rule counts, rule errors, then the plan.
    pub fn render(&self) -> String {
        use std::fmt::Write;
        let mut out = String::new();
        let _ = writeln!(out, "rules from {}", self.source);
        if self.rules.is_empty() {
            out.push_str("no rules found\n");
        }
        for (slot, set) in &self.rules {
            let _ = writeln!(
                out,
                "  {slot}: {} rule(s), {} not loadable",
                set.rules.len(),
                set.errors.len()
            );
            for error in &set.errors {
                let _ = writeln!(out, "    {error}");
            }
        }
        if let Some(kafka) = &self.kafka {
            out.push('\n');
            out.push_str(&kafka.render());
        }
        out.push_str("\nplan:\n");
        out.push_str(&self.plan.summary());
        out
    }
}

/// How long `check` waits for a Kafka broker to answer.
const CHECK_KAFKA_LIMIT: Duration = Duration::from_secs(15);

/// Loads the rules once (Redis or file) and plans them, without starting anything; with
/// `reach_kafka`, also asks the Kafka sink's brokers for their metadata (so credentials,
/// certificates and topics are checked too).
pub async fn check(config: &ClusterConfig, reach_kafka: bool) -> Result<CheckReport, AppError> {
    if matches!(config.sink, SinkConfig::Kafka) {
        check_producer_settings(&config.kafka).map_err(|e| AppError::Writer(e.to_string()))?;
    }
    let wanted = slot_filter(&config.slots);
    let (rules, source) = match &config.rules {
        RulesConfig::File { path } => (load_rules_file(path)?, format!("file {}", path.display())),
        RulesConfig::Redis => {
            let redis = RedisTarget::from_config(&config.redis)?;
            let address = redis.address();
            let timeout = Duration::from_secs(10);
            let load = async {
                let client = redis.client()?;
                let settings = redis::AsyncConnectionConfig::new()
                    .set_connection_timeout(Some(timeout))
                    .set_response_timeout(Some(timeout));
                let mut con = client
                    .get_multiplexed_async_connection_with_config(&settings)
                    .await?;
                load_all(&mut con, &*wanted).await
            };
            let rules = match actix_rt::time::timeout(timeout * 3, load).await {
                Ok(Ok(rules)) => rules,
                Ok(Err(error)) => {
                    return Err(AppError::Redis {
                        address,
                        reason: redis.explain(&error),
                    })
                }
                Err(_) => {
                    return Err(AppError::RedisTimeout {
                        address,
                        timeout: timeout * 3,
                    })
                }
            };
            (rules, format!("Redis {address}"))
        }
    };
    let rules: BTreeMap<SlotId, RuleSet> =
        rules.into_iter().filter(|(slot, _)| wanted(slot)).collect();
    let by_slot = rules
        .iter()
        .map(|(slot, set)| (slot.clone(), set.rules.clone()))
        .collect();
    let keys: Vec<String> = config.keys.iter().map(|k| k.name.clone()).collect();
    let plan = plan(&by_slot, &keys, None);
    let kafka = if reach_kafka && matches!(config.sink, SinkConfig::Kafka) {
        let settings = config.kafka.clone();
        let probe =
            actix_rt::task::spawn_blocking(move || probe_kafka(&settings, CHECK_KAFKA_LIMIT))
                .await
                .map_err(|e| AppError::Kafka(format!("the probe thread failed: {e}")))?;
        Some(probe.map_err(|e| AppError::Kafka(e.to_string()))?)
    } else {
        None
    };
    Ok(CheckReport {
        rules,
        plan,
        source,
        kafka,
    })
}

#[cfg(test)]
mod tests {
    use std::collections::VecDeque;

    use super::*;

    /// Signals that arrive after the given delays, one after the other.
    struct ScriptedSignals(VecDeque<(Duration, &'static str)>);

    impl StopSignals for ScriptedSignals {
        async fn next(&mut self) -> &'static str {
            let (delay, name) = self.0.pop_front().expect("no signal left in the script");
            tokio::time::sleep(delay).await;
            name
        }
    }

    #[actix_rt::test]
    async fn a_repeat_at_the_same_moment_is_the_same_request_and_a_later_one_forces_the_exit() {
        let began = Instant::now();
        let mut signals = ScriptedSignals(VecDeque::from([
            (Duration::from_millis(1), "SIGTERM"),
            (
                REPEATED_SIGNAL_WINDOW + Duration::from_millis(100),
                "SIGINT",
            ),
        ]));
        assert_eq!(forcing_signal(&mut signals, began).await, "SIGINT");
        assert!(began.elapsed() >= REPEATED_SIGNAL_WINDOW);
    }

    #[actix_rt::test]
    async fn a_signal_after_the_window_forces_the_exit_at_once() {
        let began = Instant::now() - REPEATED_SIGNAL_WINDOW;
        let mut signals = ScriptedSignals(VecDeque::from([(Duration::ZERO, "SIGTERM")]));
        assert_eq!(forcing_signal(&mut signals, began).await, "SIGTERM");
    }
}
