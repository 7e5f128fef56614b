//! Helpers for the stream tests: an in-process emulator, a collecting writer, a collecting
//! supervisor stand-in, and a stream spec with every wait shrunk so tests run in seconds.

#![allow(dead_code)]

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use actix::prelude::*;
use traptor_actors::messages::{StreamState, StreamStateChanged, WriteBatch, WriteError};
use traptor_actors::stream::{
    BackoffConfig, Pacer, PacingConfig, StreamActor, StreamHandle, StreamSpec,
};
use traptor_core::oauth::Credentials;
use traptor_core::plan::ConnectionId;
use traptor_core::rules::parse_rule;
use traptor_core::{Record, Rule, SlotId, StreamType};
use traptor_firehose::{Firehose, FirehoseConfig, FirehoseHandle};

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
        let stream = StreamActor::start_here(spec, writer.recipient(), log.recipient(), pacer)
            .expect("a valid spec");
        Harness {
            stream,
            records,
            states,
        }
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
