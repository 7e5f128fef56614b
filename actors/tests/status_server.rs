//! The status endpoint in-process: the four endpoints over real HTTP, readiness following the
//! streams, and no secret in any body even with real streams that fail authentication.

mod status_support;
mod stream_support;

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use actix::prelude::*;
use status_support::{get, parse_exposition};
use stream_support::{fast_pacer, firehose, test_backoff, track_rule, wait_until};
use traptor_actors::config::ClusterConfig;
use traptor_actors::messages::{
    RulesChanged, StopStream, StreamState, StreamStateChanged, UpdateRules, WriteBatch,
};
use traptor_actors::sinks::{start_writer, RecordOutlet};
use traptor_actors::status::{
    MetricsOptions, RulesSourceView, StatusReport, StatusServer, StatusSources, StreamRegistry,
};
use traptor_actors::stream::{StreamActor, StreamSpec};
use traptor_actors::supervisor::children::{ChildHandle, ChildSpec, SpawnStream};
use traptor_actors::supervisor::{Supervisor, SupervisorSettings};
use traptor_actors::watcher::{WatcherSettings, WatcherStats};
use traptor_core::oauth::Credentials;
use traptor_core::plan::ConnectionId;
use traptor_core::{SlotId, StreamType};

const PATIENCE: Duration = Duration::from_secs(15);

/// A child that only takes messages: the supervisor sees it running, nothing streams.
struct Idle;

impl Actor for Idle {
    type Context = Context<Self>;
}

impl Handler<UpdateRules> for Idle {
    type Result = ();
    fn handle(&mut self, _: UpdateRules, _: &mut Self::Context) {}
}

impl Handler<StopStream> for Idle {
    type Result = ();
    fn handle(&mut self, _: StopStream, ctx: &mut Self::Context) {
        ctx.stop();
    }
}

struct IdleSpawner;

impl SpawnStream for IdleSpawner {
    fn spawn(&mut self, _: ChildSpec) -> Result<ChildHandle, String> {
        let idle = Idle.start();
        Ok(ChildHandle {
            update: idle.clone().recipient(),
            stop: idle.recipient(),
            tweets: None,
        })
    }
}

fn rules_for(id: &str, value: &str) -> RulesChanged {
    RulesChanged {
        slot: SlotId::new(StreamType::Track, id),
        rules: vec![track_rule("1", value)],
        errors: vec![],
    }
}

#[actix_rt::test]
async fn readyz_waits_for_a_streaming_connection_and_the_endpoints_answer() {
    let supervisor = Supervisor::new(
        SupervisorSettings::new(vec!["k1".into()]),
        Box::new(IdleSpawner),
        None,
    )
    .start();
    let watcher = WatcherSettings::new("redis://127.0.0.1:6379/0", "traptor-notify");
    let sources = StatusSources {
        supervisor: supervisor.clone().recipient(),
        streams: StreamRegistry::default(),
        writer: None,
        rules: RulesSourceView::redis(&watcher),
        started_at: SystemTime::now(),
    };
    let server = StatusServer::start("127.0.0.1:0", sources, MetricsOptions::default())
        .expect("the server starts");
    let addr = server.local_addr();

    let health = get(addr, "/healthz").await;
    assert_eq!((health.status, health.body.as_str()), (200, "ok\n"));

    // Rules not synced yet: not ready, and the body says why.
    let ready = get(addr, "/readyz").await;
    assert_eq!(ready.status, 503, "{}", ready.body);
    assert!(
        ready
            .body
            .contains("redis: rules not loaded yet from 127.0.0.1:6379/0"),
        "{}",
        ready.body
    );

    // Synced, nothing planned: ready.
    watcher.stats.record_sync(0, 0, 0);
    let ready = get(addr, "/readyz").await;
    assert_eq!(ready.status, 200, "{}", ready.body);

    // A planned connection that does not stream: not ready.
    supervisor.send(rules_for("0", "rust")).await.unwrap();
    let ready = get(addr, "/readyz").await;
    assert_eq!(ready.status, 503, "{}", ready.body);
    let verdict: serde_json::Value = serde_json::from_str(&ready.body).unwrap();
    assert_eq!(verdict["ready"], false);
    assert_eq!(
        verdict["not_ready"][0],
        "streams: none of the 1 planned connection(s) is streaming"
    );

    // It streams: ready.
    supervisor
        .send(StreamStateChanged {
            connection: ConnectionId::new(SlotId::new(StreamType::Track, "0"), 0),
            key_name: "k1".into(),
            state: StreamState::Streaming,
            at: SystemTime::now(),
        })
        .await
        .unwrap();
    let ready = get(addr, "/readyz").await;
    assert_eq!(ready.status, 200, "{}", ready.body);

    let status = get(addr, "/status").await;
    assert_eq!(status.status, 200);
    let report: StatusReport = serde_json::from_str(&status.body).unwrap();
    assert_eq!(report.connections.len(), 1);
    let connection = &report.connections[0];
    assert_eq!(
        (
            connection.status.connection.as_str(),
            connection.status.key.as_str(),
            connection.status.state.as_str(),
            connection.status.rules
        ),
        ("track:0", "k1", "streaming", 1)
    );
    assert!(report.ready.ready);
    assert_eq!(report.rules_source.source, "redis");

    let metrics = get(addr, "/metrics").await;
    assert_eq!(metrics.status, 200);
    let samples =
        parse_exposition(&metrics.body).unwrap_or_else(|e| panic!("{e}\n{}", metrics.body));
    assert_eq!(
        samples[r#"traptor_stream_state{slot="track:0",part="0",key="k1",state="streaming"}"#],
        1.0
    );
    assert_eq!(samples["traptor_ready"], 1.0);

    let missing = get(addr, "/nothing-here").await;
    assert_eq!(missing.status, 404);
    server.stop().await;
}

/// Starts real streams with the config's credentials and registers their counters, as the
/// application's spawner does.
struct RealSpawner {
    endpoint: String,
    credentials: HashMap<String, Credentials>,
    writer: Recipient<WriteBatch>,
    registry: StreamRegistry,
}

impl SpawnStream for RealSpawner {
    fn spawn(&mut self, spec: ChildSpec) -> Result<ChildHandle, String> {
        let credentials = self.credentials[&spec.key_name].clone();
        let mut stream = StreamSpec::new(
            spec.id.clone(),
            spec.key_name.clone(),
            credentials,
            spec.rules,
            self.endpoint.clone(),
        );
        stream.backoff = test_backoff();
        stream.backoff.auth_failed_retry = Duration::from_millis(300);
        let handle = StreamActor::start_here(
            stream,
            RecordOutlet::through_writer(self.writer.clone()),
            spec.report_to,
            fast_pacer(),
        )
        .map_err(|e| e.to_string())?;
        self.registry
            .register(&spec.id, &spec.key_name, handle.stats.clone());
        Ok(ChildHandle {
            update: handle.addr.clone().recipient(),
            stop: handle.addr.recipient(),
            tweets: None,
        })
    }
}

const SECRETS: [&str; 6] = [
    "SECRET-good-consumer-5b1e",
    "SECRET-good-token-5b1e",
    "SECRET-bad-consumer-77aa",
    "SECRET-bad-token-77aa",
    "SECRET-redis-password-3c9d",
    "SECRET-sasl-password-e04f",
];

fn cluster_config(dir: &std::path::Path) -> ClusterConfig {
    let text = format!(
        r#"
[redis]
url = "redis://:{redis}@127.0.0.1:1/0"

[kafka]
bootstrap_servers = "127.0.0.1:1"
[kafka.producer]
"sasl.password" = "{sasl}"

[sink]
kind = "file"
path = "{out}"

[[keys]]
name = "good"
consumer_key = "ck-good"
consumer_secret = "{good_consumer}"
access_token = "at-good"
access_token_secret = "{good_token}"

[[keys]]
name = "bad"
consumer_key = "ck-bad"
consumer_secret = "{bad_consumer}"
access_token = "at-bad"
access_token_secret = "{bad_token}"
"#,
        redis = SECRETS[4],
        sasl = SECRETS[5],
        out = dir.join("out.jsonl").display(),
        good_consumer = SECRETS[0],
        good_token = SECRETS[1],
        bad_consumer = SECRETS[2],
        bad_token = SECRETS[3],
    );
    ClusterConfig::from_str_with_env(&text, &|_| None).expect("a valid config")
}

#[actix_rt::test]
async fn no_endpoint_shows_a_secret_even_when_streams_fail() {
    let dir = tempfile::tempdir().unwrap();
    let config = cluster_config(dir.path());
    let good = config.credentials("good").unwrap().clone();
    // The emulator knows only the good key: the bad one gets 401s.
    let emulator = firehose(|c| {
        c.keys = vec![good.clone()];
        c.rate = 200.0;
    })
    .await;
    let writer = start_writer(&config.sink, &config.kafka).unwrap();
    let registry = StreamRegistry::default();
    let spawner = RealSpawner {
        endpoint: emulator.url(),
        credentials: config
            .keys
            .iter()
            .map(|k| (k.name.clone(), k.credentials.clone()))
            .collect(),
        writer: writer.batches.clone(),
        registry: registry.clone(),
    };
    let keys = config.key_names().iter().map(|k| k.to_string()).collect();
    let supervisor =
        Supervisor::new(SupervisorSettings::new(keys), Box::new(spawner), None).start();
    let mut watcher = WatcherSettings::new(
        config.redis.url.clone(),
        config.redis.notify_channel.clone(),
    );
    watcher.stats = Arc::new(WatcherStats::default());
    watcher
        .stats
        .record_failure("Redis error: connection refused");
    let sources = StatusSources {
        supervisor: supervisor.clone().recipient(),
        streams: registry.clone(),
        writer: Some(writer.clone()),
        rules: RulesSourceView::redis(&watcher),
        started_at: SystemTime::now(),
    };
    let server = StatusServer::start("127.0.0.1:0", sources, MetricsOptions::default()).unwrap();
    let addr = server.local_addr();

    supervisor.send(rules_for("0", "rust")).await.unwrap();
    supervisor.send(rules_for("1", "python")).await.unwrap();
    let status_of = || async {
        serde_json::from_str::<StatusReport>(&get(addr, "/status").await.body).unwrap()
    };
    let deadline = std::time::Instant::now() + PATIENCE;
    loop {
        let report = status_of().await;
        let states: Vec<&str> = report
            .connections
            .iter()
            .map(|c| c.status.state.as_str())
            .collect();
        let tweets = report
            .connections
            .iter()
            .filter_map(|c| c.counters.as_ref())
            .map(|c| c.stats.messages.get("tweet").copied().unwrap_or(0))
            .sum::<u64>();
        if states.contains(&"streaming") && states.contains(&"auth_failed") && tweets >= 5 {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "never one streaming and one refused: {report:?}"
        );
        stream_support::sleep(Duration::from_millis(50)).await;
    }
    wait_until("records written", PATIENCE, || writer.stats().delivered > 0).await;

    let report = status_of().await;
    let refused = report
        .connections
        .iter()
        .find(|c| c.status.state == "auth_failed")
        .unwrap();
    assert_eq!(refused.status.key, "bad");
    assert!(
        refused
            .status
            .last_error
            .as_deref()
            .unwrap_or_default()
            .contains("401"),
        "{refused:?}"
    );
    assert_eq!(report.rules_source.location, "127.0.0.1:1/0");
    assert_eq!(report.writer.as_ref().unwrap().sink, "file");

    for path in ["/healthz", "/readyz", "/status", "/metrics"] {
        let response = get(addr, path).await;
        for secret in SECRETS {
            assert!(
                !response.body.contains(secret),
                "{path} shows {secret}:\n{}",
                response.body
            );
        }
        assert!(
            !response.body.contains("SECRET"),
            "{path}:\n{}",
            response.body
        );
    }
    let metrics = get(addr, "/metrics").await.body;
    let samples = parse_exposition(&metrics).unwrap_or_else(|e| panic!("{e}\n{metrics}"));
    let good_part = report
        .connections
        .iter()
        .find(|c| c.status.key == "good")
        .unwrap();
    let labels = format!(r#"slot="{}",part="0",key="good""#, good_part.status.slot);
    assert!(samples[&format!("traptor_stream_messages_total{{{labels},type=\"tweet\"}}")] >= 5.0);
    assert!(
        samples
            .keys()
            .any(|k| k.starts_with("traptor_rule_matches_total{")),
        "{metrics}"
    );
    assert!(samples[r#"traptor_writer_records_delivered_total{sink="file"}"#] >= 1.0);
    assert_eq!(
        samples[r#"traptor_writer_records_given_up_total{sink="file"}"#],
        0.0
    );
    let bad_labels = format!(r#"slot="{}",part="0",key="bad""#, refused.status.slot);
    assert_eq!(
        samples[&format!("traptor_stream_state{{{bad_labels},state=\"auth_failed\"}}")],
        1.0
    );
    assert!(
        samples[&format!("traptor_stream_http_responses_total{{{bad_labels},code=\"401\"}}")]
            >= 1.0
    );
    // The watcher lost Redis: not ready, and it says so without the URL's password.
    let ready = get(addr, "/readyz").await;
    assert_eq!(ready.status, 503);
    assert!(
        ready
            .body
            .contains("redis: rules not loaded yet from 127.0.0.1:1/0"),
        "{}",
        ready.body
    );

    server.stop().await;
    supervisor
        .send(traptor_actors::supervisor::Shutdown {
            timeout: Duration::from_secs(2),
        })
        .await
        .unwrap();
    emulator.stop().await;
}
