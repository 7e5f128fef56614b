//! Helpers for the stream tests: an in-process emulator, a collecting writer, a collecting
//! supervisor stand-in, and a stream spec with every wait shrunk so tests run in seconds.

#![allow(dead_code)]

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use actix::prelude::*;
use traptor_actors::messages::{
    StopStream, StreamState, StreamStateChanged, WriteBatch, WriteError,
};
use traptor_actors::sinks::RecordOutlet;
use traptor_actors::stream::{
    BackoffConfig, Pacer, PacingConfig, StreamActor, StreamHandle, StreamSpec,
};
use traptor_core::oauth::Credentials;
use traptor_core::plan::ConnectionId;
use traptor_core::rules::parse_rule;
use traptor_core::{MessageKind, Record, Rule, SlotId, StreamType};
use traptor_firehose::{
    ConnectLogEntry, Fault, FaultKind, Firehose, FirehoseConfig, FirehoseHandle,
};

/// How long a test waits for something the stream should reach within a second or two.
pub const PATIENCE: Duration = Duration::from_secs(10);

pub fn credentials() -> Credentials {
    Credentials {
        consumer_key: "test-consumer-key".into(),
        consumer_secret: "test-consumer-secret".into(),
        access_token: "test-access-token".into(),
        access_token_secret: "test-access-token-secret".into(),
    }
}

pub fn track_rule(id: &str, value: &str) -> Rule {
    let fields = [("rule_id", id), ("value", value), ("tag", "test")];
    parse_rule(
        fields
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect(),
        Some(StreamType::Track),
    )
    .unwrap()
}

/// An emulator that accepts [`credentials`], with `configure` applied to its config.
pub async fn firehose(configure: impl FnOnce(&mut FirehoseConfig)) -> FirehoseHandle {
    let mut config = FirehoseConfig {
        keys: vec![credentials()],
        rate: 100.0,
        ..FirehoseConfig::default()
    };
    configure(&mut config);
    Firehose::start(config).await.expect("the emulator starts")
}

/// An emulator that answers the first `count` connect attempts with HTTP `status`, then
/// streams: the set-up of every test of how the stream reacts to a refused connect.
pub async fn firehose_answering(status: u16, count: u32) -> FirehoseHandle {
    firehose(|c| c.faults = vec![Fault::all(FaultKind::RespondWith { status, count })]).await
}

/// Runs a [`rust_spec`] stream against an emulator that refuses the first three connects with
/// HTTP `status`, waits until it streams, and asserts what any HTTP error must lead to: three
/// refusals counted, then a connect, spaced by the HTTP backoff schedule. Returns both for the
/// caller's own checks.
pub async fn streaming_after_three_refusals(status: u16) -> (FirehoseHandle, Harness) {
    let emulator = firehose_answering(status, 3).await;
    let h = Harness::start_streaming(rust_spec(&emulator)).await;
    let log = emulator.stats().log;
    let statuses: Vec<u16> = log.iter().map(|e| e.status).collect();
    assert_eq!(statuses, [status, status, status, 200]);
    // 5 s, 10 s, 20 s scaled by 0.05.
    assert_http_backoff_schedule(&log);
    assert_eq!(h.stream.stats.snapshot().http_status(status), 3);
    (emulator, h)
}

/// Gaps between consecutive connect attempts of the emulator's log, in ms.
pub fn connect_gaps(log: &[ConnectLogEntry]) -> Vec<u64> {
    log.windows(2).map(|w| w[1].at_ms - w[0].at_ms).collect()
}

/// Asserts the connect attempts of `log` were spaced by [`test_backoff`]'s HTTP-error schedule:
/// about 250, 500 and 1000 ms (400 ms late at the most) between the first four.
pub fn assert_http_backoff_schedule(log: &[ConnectLogEntry]) {
    let gaps = connect_gaps(log);
    for (gap, expected) in gaps.iter().zip([250u64, 500, 1000]) {
        assert!(
            *gap >= expected && *gap < expected + 400,
            "gaps {gaps:?} ms, expected about 250, 500, 1000"
        );
    }
}

/// The ids of the tweets among `records`, in order (a tweet record is keyed by its id), to
/// compare with the ids the emulator says it sent.
pub fn tweet_ids<'a>(records: impl IntoIterator<Item = &'a Record>) -> Vec<u64> {
    records
        .into_iter()
        .filter(|r| r.kind == MessageKind::Tweet)
        .map(|r| r.key.as_deref().unwrap().parse().unwrap())
        .collect()
}

/// The streaming API's policy with every wait shrunk 20-fold: network errors step 12.5 ms,
/// HTTP errors wait 250 ms, 500 ms, 1 s, ...; rate limits 3 s; auth failures 30 s; a connection
/// counts as established after 300 ms.
pub fn test_backoff() -> BackoffConfig {
    let mut backoff = BackoffConfig::default().scaled(0.05);
    backoff.established_after = Duration::from_millis(300);
    backoff
}

pub fn spec(endpoint: String, rules: Vec<Rule>) -> StreamSpec {
    let connection = ConnectionId::new(SlotId::new(StreamType::Track, "0"), 0);
    let mut spec = StreamSpec::new(connection, "key0", credentials(), rules, endpoint);
    spec.backoff = test_backoff();
    spec.stall_timeout = Duration::from_secs(5);
    spec.user_agent = "traptor-test".into();
    spec
}

/// A [`spec`] against `emulator` with the single track rule "rust": the stream most tests run.
pub fn rust_spec(emulator: &FirehoseHandle) -> StreamSpec {
    spec(emulator.url(), vec![track_rule("1", "rust")])
}

pub fn fast_pacer() -> Arc<Pacer> {
    Arc::new(Pacer::new(PacingConfig {
        burst: 100,
        interval: Duration::from_millis(10),
    }))
}

/// Stands in for a sink: keeps every record it is given.
pub struct CollectingWriter {
    pub records: Arc<Mutex<Vec<Record>>>,
}

impl Actor for CollectingWriter {
    type Context = Context<Self>;
}

impl Handler<WriteBatch> for CollectingWriter {
    type Result = Result<(), WriteError>;

    fn handle(&mut self, batch: WriteBatch, _: &mut Self::Context) -> Self::Result {
        self.records.lock().unwrap().extend(batch.0);
        Ok(())
    }
}

/// Stands in for the supervisor: keeps every state report with the time it arrived.
pub struct StateLog {
    pub states: Arc<Mutex<Vec<(Instant, StreamState)>>>,
}

impl Actor for StateLog {
    type Context = Context<Self>;
}

impl Handler<StreamStateChanged> for StateLog {
    type Result = ();

    fn handle(&mut self, msg: StreamStateChanged, _: &mut Self::Context) {
        self.states
            .lock()
            .unwrap()
            .push((Instant::now(), msg.state));
    }
}

/// A running stream with its collected output.
pub struct Harness {
    pub stream: StreamHandle,
    pub records: Arc<Mutex<Vec<Record>>>,
    pub states: Arc<Mutex<Vec<(Instant, StreamState)>>>,
}

impl Harness {
    pub fn start(spec: StreamSpec) -> Harness {
        Harness::start_with_pacer(spec, fast_pacer())
    }

    pub fn start_with_pacer(spec: StreamSpec, pacer: Arc<Pacer>) -> Harness {
        let records = Arc::new(Mutex::new(Vec::new()));
        let states = Arc::new(Mutex::new(Vec::new()));
        let writer = CollectingWriter {
            records: records.clone(),
        }
        .start();
        let log = StateLog {
            states: states.clone(),
        }
        .start();
        let stream = StreamActor::start_here(
            spec,
            RecordOutlet::through_writer(writer.recipient()),
            log.recipient(),
            pacer,
        )
        .expect("a valid spec");
        Harness {
            stream,
            records,
            states,
        }
    }

    /// Starts the stream and waits until it reports "streaming", for the tests that begin from
    /// a live connection.
    pub async fn start_streaming(spec: StreamSpec) -> Harness {
        let harness = Harness::start(spec);
        harness.wait_for_state("streaming", 1).await;
        harness
    }

    pub fn records(&self) -> Vec<Record> {
        self.records.lock().unwrap().clone()
    }

    pub fn states(&self) -> Vec<StreamState> {
        self.states
            .lock()
            .unwrap()
            .iter()
            .map(|(_, s)| s.clone())
            .collect()
    }

    pub fn state_names(&self) -> Vec<&'static str> {
        self.states
            .lock()
            .unwrap()
            .iter()
            .map(|(_, s)| s.name())
            .collect()
    }

    pub fn count_state(&self, name: &str) -> usize {
        self.state_names().iter().filter(|n| **n == name).count()
    }

    /// Waits (at most [`PATIENCE`]) until the stream has reported state `name` `times` times,
    /// e.g. "streaming" twice after a reconnect.
    pub async fn wait_for_state(&self, name: &str, times: usize) {
        let what = format!("state {name} reported {times} time(s)");
        wait_until(&what, PATIENCE, || self.count_state(name) == times).await;
    }

    /// Waits (at most [`PATIENCE`]) until at least `count` records reached the writer.
    pub async fn wait_for_records(&self, count: usize) {
        let what = format!("{count} records");
        wait_until(&what, PATIENCE, || self.records().len() >= count).await;
    }

    /// Waits until `more` records beyond those already collected arrive: proof that the stream
    /// went on after a fault.
    pub async fn wait_for_more_records(&self, more: usize) {
        let after = self.records().len();
        let what = format!("{more} more records after the first {after}");
        wait_until(&what, PATIENCE, || self.records().len() >= after + more).await;
    }

    /// Stops the stream, then the emulator it was reading: the end of every single-stream test.
    pub async fn stop_with(&self, emulator: FirehoseHandle) {
        self.stream.addr.send(StopStream).await.unwrap();
        emulator.stop().await;
    }
}

/// Polls `condition` every 10 ms until it holds, or fails the test after `timeout`.
pub async fn wait_until(what: &str, timeout: Duration, mut condition: impl FnMut() -> bool) {
    let deadline = Instant::now() + timeout;
    while !condition() {
        assert!(
            Instant::now() < deadline,
            "timed out after {timeout:?} waiting for {what}"
        );
        actix_rt::time::sleep(Duration::from_millis(10)).await;
    }
}

pub async fn sleep(duration: Duration) {
    actix_rt::time::sleep(duration).await;
}
