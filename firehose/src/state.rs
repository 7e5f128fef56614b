//! State shared by the HTTP handlers, the response bodies and the traffic pump: live
//! connections, credentials, pending faults and the ground-truth counters.

use std::collections::{BTreeMap, VecDeque};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use bytes::Bytes;
use tokio::sync::mpsc;
use traptor_core::oauth::redact;

use crate::auth::Verifier;
use crate::batch::BATCH_MESSAGES;
use crate::body::{ConnectionBody, Control, Data, Outgoing};
use crate::config::FirehoseConfig;
use crate::fault::{Fault, FaultKind};
use crate::messages::{self, disconnect_code, MessageKind};
use crate::params::StreamFilter;
use crate::ratelimit::ConnectLimiter;
use crate::stats::{ConnectLogEntry, ConnectionStats, CredentialStats, Stats, MAX_LOG_ENTRIES};

/// A connection the pump may route to.
#[derive(Clone)]
pub struct LiveConnection {
    pub id: u64,
    pub credential: usize,
    pub consumer_key: String,
    pub filter: Arc<StreamFilter>,
    pub data: mpsc::Sender<Data>,
    pub control: mpsc::UnboundedSender<Control>,
    pub stats: Arc<Mutex<ConnectionStats>>,
}

struct CredentialState {
    consumer_key: String,
    limiter: ConnectLimiter,
    active: Option<u64>,
    counters: CredentialStats,
}

#[derive(Default)]
struct Registry {
    live: BTreeMap<u64, LiveConnection>,
    all: Vec<Arc<Mutex<ConnectionStats>>>,
    credentials: Vec<CredentialState>,
    unknown: CredentialStats,
    log: VecDeque<ConnectLogEntry>,
    pending: Vec<Fault>,
}

/// The one shared state of an emulator instance.
pub struct Shared {
    pub config: FirehoseConfig,
    pub verifier: Verifier,
    started: Instant,
    registry: Mutex<Registry>,
    /// Bumped whenever the set of live connections changes, so the pump re-reads it.
    pub version: AtomicU64,
    next_id: AtomicU64,
    pub produced: AtomicU64,
    pub unplanted: AtomicU64,
    pub stopping: AtomicBool,
}

/// Label of a credential in stats and logs: its position in the configured keys.
pub fn credential_label(index: Option<usize>) -> String {
    index
        .map(|i| format!("key{i}"))
        .unwrap_or_else(|| "unknown".to_owned())
}

impl Shared {
    pub fn new(config: FirehoseConfig) -> Shared {
        let credentials = config
            .keys
            .iter()
            .enumerate()
            .map(|(i, key)| CredentialState {
                consumer_key: key.consumer_key.clone(),
                limiter: ConnectLimiter::default(),
                active: None,
                counters: CredentialStats {
                    credential: credential_label(Some(i)),
                    consumer_key: redact(&key.consumer_key),
                    ..CredentialStats::default()
                },
            })
            .collect();
        let pending = config
            .faults
            .iter()
            .filter(|f| f.kind.is_connect_fault())
            .cloned()
            .collect();
        let registry = Registry {
            credentials,
            unknown: CredentialStats {
                credential: credential_label(None),
                ..CredentialStats::default()
            },
            pending,
            ..Registry::default()
        };
        Shared {
            verifier: Verifier::new(config.keys.clone(), config.timestamp_skew),
            config,
            started: Instant::now(),
            registry: Mutex::new(registry),
            version: AtomicU64::new(0),
            next_id: AtomicU64::new(1),
            produced: AtomicU64::new(0),
            unplanted: AtomicU64::new(0),
            stopping: AtomicBool::new(false),
        }
    }

    fn registry(&self) -> MutexGuard<'_, Registry> {
        self.registry.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub fn elapsed_ms(&self) -> u64 {
        self.started.elapsed().as_millis() as u64
    }

    pub fn credential_index(&self, consumer_key: Option<&str>) -> Option<usize> {
        let key = consumer_key?;
        self.config.keys.iter().position(|k| k.consumer_key == key)
    }

    /// Consumes the connect faults that apply to this attempt: a delay for the response head
    /// and/or a status to answer instead of streaming.
    pub fn take_connect_faults(
        &self,
        consumer_key: Option<&str>,
    ) -> (Option<Duration>, Option<u16>) {
        let mut registry = self.registry();
        let (mut delay, mut status) = (None, None);
        for fault in registry
            .pending
            .iter_mut()
            .filter(|f| f.target.matches(consumer_key))
        {
            match &mut fault.kind {
                FaultKind::DelayHead { delay: d, count } if *count > 0 && delay.is_none() => {
                    delay = Some(*d);
                    *count -= 1;
                }
                FaultKind::RespondWith { status: s, count } if *count > 0 && status.is_none() => {
                    status = Some(*s);
                    *count -= 1;
                }
                _ => {}
            }
        }
        registry.pending.retain(|f| match f.kind {
            FaultKind::DelayHead { count, .. } | FaultKind::RespondWith { count, .. } => count > 0,
            _ => false,
        });
        (delay, status)
    }

    /// Logs a connect attempt and counts it for its credential.
    pub fn record_attempt(
        &self,
        credential: Option<usize>,
        status: u16,
        outcome: &str,
        connection: Option<u64>,
    ) {
        let entry = ConnectLogEntry {
            at_ms: self.elapsed_ms(),
            unix_ms: messages::now_ms(),
            credential: credential_label(credential),
            status,
            outcome: outcome.to_owned(),
            connection_id: connection,
        };
        let mut registry = self.registry();
        let counters = match credential {
            Some(i) => &mut registry.credentials[i].counters,
            None => &mut registry.unknown,
        };
        counters.attempts += 1;
        match status {
            200 => counters.connects += 1,
            401 => counters.rejected_401 += 1,
            406 => counters.rejected_406 += 1,
            413 => counters.rejected_413 += 1,
            420 => counters.rejected_420 += 1,
            _ => counters.rejected_other += 1,
        }
        if registry.log.len() >= MAX_LOG_ENTRIES {
            registry.log.pop_front();
        }
        registry.log.push_back(entry);
    }

    /// Applies the connect-rate limit to an authenticated attempt.
    pub fn check_connect_rate(&self, credential: usize) -> Result<(), Duration> {
        let config = &self.config;
        self.registry().credentials[credential].limiter.attempt(
            Instant::now(),
            config.connect_window,
            config.connect_limit,
            config.rate_limit_penalty,
        )
    }

    /// Room of a connection's data queue. In load mode it holds batches of up to
    /// [`BATCH_MESSAGES`] messages, so it has room for about `max_queue` messages either way.
    fn queue_slots(&self) -> usize {
        let max_queue = self.config.max_queue.max(1);
        if self.config.rate.is_infinite() {
            max_queue.div_ceil(BATCH_MESSAGES).max(2)
        } else {
            max_queue
        }
    }

    /// Registers an accepted connection and returns its response body. An older connection of
    /// the same credential is ended with `disconnect` code 7, as the real service does.
    pub fn open(
        self: &Arc<Self>,
        credential: usize,
        filter: StreamFilter,
    ) -> (u64, ConnectionBody) {
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let (data_tx, data_rx) = mpsc::channel(self.queue_slots());
        let (control_tx, control_rx) = mpsc::unbounded_channel();
        let stats = Arc::new(Mutex::new(ConnectionStats {
            id,
            credential: credential_label(Some(credential)),
            open: true,
            opened_at_ms: self.elapsed_ms(),
            track: filter.track.clone(),
            follow: filter.follow.len(),
            locations: filter.locations.len(),
            delimited: filter.delimited,
            stall_warnings: filter.stall_warnings,
            ..ConnectionStats::default()
        }));
        let body = ConnectionBody::new(
            id,
            self.clone(),
            stats.clone(),
            data_rx,
            control_rx,
            filter.delimited,
            self.config.keepalive,
            self.config.max_recorded_ids,
        );
        let previous = {
            let mut registry = self.registry();
            let state = &mut registry.credentials[credential];
            state.limiter.connected();
            let previous = state.active.replace(id);
            let consumer_key = state.consumer_key.clone();
            registry.all.push(stats.clone());
            registry.live.insert(
                id,
                LiveConnection {
                    id,
                    credential,
                    consumer_key,
                    filter: Arc::new(filter),
                    data: data_tx,
                    control: control_tx,
                    stats,
                },
            );
            previous
        };
        if let Some(old) = previous {
            self.disconnect(old, disconnect_code::ADMIN_LOGOUT, "duplicate_credentials");
        }
        self.version.fetch_add(1, Ordering::Release);
        (id, body)
    }

    /// Ends a live connection: a `disconnect` message with `code`, then a clean close.
    pub fn disconnect(&self, id: u64, code: u32, reason: &str) {
        let text = match code {
            disconnect_code::ADMIN_LOGOUT => "same credentials were used to connect a new stream",
            disconnect_code::STALL => "client was reading too slowly: queue full",
            disconnect_code::SHUTDOWN => "server shutdown",
            _ => reason,
        };
        self.end(
            id,
            reason,
            [
                Control::Message(Outgoing::new(
                    MessageKind::Disconnect,
                    messages::disconnect(code, text),
                )),
                Control::Close,
            ],
        );
    }

    /// Takes a connection out of routing and sends it its last orders.
    pub fn end<const N: usize>(&self, id: u64, reason: &str, orders: [Control; N]) {
        let live = {
            let mut registry = self.registry();
            let live = registry.live.remove(&id);
            if let Some(live) = &live {
                let state = &mut registry.credentials[live.credential];
                if state.active == Some(id) {
                    state.active = None;
                }
            }
            live
        };
        if let Some(live) = live {
            mark_closed(&live.stats, self.elapsed_ms(), reason);
            for order in orders {
                let _ = live.control.send(order);
            }
            self.version.fetch_add(1, Ordering::Release);
        }
    }

    /// Called when a response body goes away (client gone, or the end ordered above).
    pub fn connection_ended(&self, id: u64, reason: &str) {
        self.end(id, reason, []);
    }

    /// The live connections, for the pump.
    pub fn live(&self) -> Vec<LiveConnection> {
        self.registry().live.values().cloned().collect()
    }

    /// Applies a fault; returns how many live connections it reached (connect faults: 0).
    pub fn inject(&self, fault: Fault) -> usize {
        if fault.kind.is_connect_fault() {
            self.registry().pending.push(fault);
            return 0;
        }
        let targets: Vec<LiveConnection> = self
            .live()
            .into_iter()
            .filter(|c| fault.target.matches(Some(&c.consumer_key)))
            .collect();
        for conn in &targets {
            match &fault.kind {
                FaultKind::Drop => self.end(conn.id, "fault_drop", [Control::Abort]),
                FaultKind::CloseMidFrame => self.end(
                    conn.id,
                    "fault_close_mid_frame",
                    [Control::CloseMidFrame(sample_tweet(2_000))],
                ),
                FaultKind::Disconnect { code } => {
                    self.disconnect(conn.id, *code, "fault_disconnect")
                }
                FaultKind::Stall { duration } => {
                    let _ = conn.control.send(Control::Stall(*duration));
                }
                FaultKind::Resume => {
                    let _ = conn.control.send(Control::Resume);
                }
                FaultKind::MalformedFrame => {
                    let bytes: &'static [u8] = if conn.filter.delimited {
                        b"12ab\r\n{\"id\":\r\n"
                    } else {
                        b"\xff\xfe{\"created_at\":\x00garbage\r\n"
                    };
                    let _ = conn.control.send(Control::Raw {
                        kind: MessageKind::MalformedFrame,
                        bytes: Bytes::from_static(bytes),
                    });
                }
                FaultKind::InvalidJson => {
                    let json = Bytes::from_static(b"{\"created_at\":\"Mon Feb 22 01:34:53 +0000 2016\",\"id\":1,\"text\":\"unterminated");
                    let _ = conn.control.send(Control::Message(Outgoing::new(
                        MessageKind::InvalidJson,
                        json,
                    )));
                }
                FaultKind::OversizedFrame { bytes } => {
                    let _ = conn.control.send(Control::Message(Outgoing::new(
                        MessageKind::OversizedFrame,
                        sample_tweet(*bytes),
                    )));
                }
                FaultKind::RespondWith { .. } | FaultKind::DelayHead { .. } => {
                    unreachable!("connect faults return early")
                }
            }
        }
        targets.len()
    }

    /// Ends every connection with `disconnect` code 1 (server shutdown).
    pub fn shutdown(&self) {
        self.stopping.store(true, Ordering::Release);
        for conn in self.live() {
            self.disconnect(conn.id, disconnect_code::SHUTDOWN, "shutdown");
        }
    }

    pub fn snapshot(&self) -> Stats {
        let registry = self.registry();
        let connections: Vec<ConnectionStats> = registry
            .all
            .iter()
            .map(|s| s.lock().unwrap_or_else(|e| e.into_inner()).clone())
            .collect();
        let mut credentials: Vec<CredentialStats> = registry
            .credentials
            .iter()
            .map(|c| c.counters.clone())
            .collect();
        credentials.push(registry.unknown.clone());
        for conn in &connections {
            if let Some(cred) = credentials
                .iter_mut()
                .find(|c| c.credential == conn.credential)
            {
                for (kind, n) in &conn.messages {
                    *cred.messages.entry(kind.clone()).or_default() += n;
                }
                cred.bytes += conn.bytes;
            }
        }
        Stats {
            uptime_ms: self.elapsed_ms(),
            produced: self.produced.load(Ordering::Relaxed),
            unplanted: self.unplanted.load(Ordering::Relaxed),
            connections,
            credentials,
            log: registry.log.iter().cloned().collect(),
        }
    }
}

fn mark_closed(stats: &Mutex<ConnectionStats>, now_ms: u64, reason: &str) {
    let mut stats = stats.lock().unwrap_or_else(|e| e.into_inner());
    if stats.open {
        stats.open = false;
        stats.closed_at_ms = Some(now_ms);
        stats.close_reason = Some(reason.to_owned());
    }
}

/// A valid tweet-shaped JSON object of about `bytes` bytes (for oversized and cut frames).
fn sample_tweet(bytes: usize) -> Bytes {
    let filler = "x".repeat(bytes.saturating_sub(120).max(10));
    Bytes::from(
        serde_json::json!({
            "created_at": "Mon Feb 22 01:34:53 +0000 2016",
            "id": 1u64, "id_str": "1",
            "text": filler,
            "user": {"id": 1u64, "id_str": "1", "screen_name": "oversized"}
        })
        .to_string(),
    )
}
