//! The supervisor with stand-in streams that record what they are told.

use std::sync::{Arc, Mutex};

use traptor_core::{RuleSet, StreamType};

use super::*;

/// What the stand-in streams saw, in order.
#[derive(Debug, Clone, PartialEq)]
enum Event {
    Started(String, String),
    Updated(String, Vec<String>),
    Stopped(String),
}

type Log = Arc<Mutex<Vec<Event>>>;

/// The stand-in streams started so far, by connection name.
type Started = Arc<Mutex<Vec<(String, Addr<FakeStream>)>>>;

/// A stream that reports `Streaming` at once and records everything.
struct FakeStream {
    spec: ChildSpec,
    log: Log,
}

#[derive(Message)]
#[rtype(result = "()")]
struct Crash;

impl Actor for FakeStream {
    type Context = Context<Self>;
    fn started(&mut self, _: &mut Self::Context) {
        self.report(StreamState::Streaming);
    }
}

impl FakeStream {
    fn report(&self, state: StreamState) {
        self.spec.report_to.do_send(StreamStateChanged {
            connection: self.spec.id.clone(),
            key_name: self.spec.key_name.clone(),
            state,
            at: SystemTime::now(),
        });
    }
}

impl Handler<UpdateRules> for FakeStream {
    type Result = ();
    fn handle(&mut self, msg: UpdateRules, _: &mut Self::Context) {
        let values = msg.rules.iter().map(|r| r.value.clone()).collect();
        self.log
            .lock()
            .unwrap()
            .push(Event::Updated(self.spec.id.to_string(), values));
    }
}

impl Handler<StopStream> for FakeStream {
    type Result = ();
    fn handle(&mut self, _: StopStream, ctx: &mut Self::Context) {
        self.log
            .lock()
            .unwrap()
            .push(Event::Stopped(self.spec.id.to_string()));
        self.report(StreamState::Stopped);
        ctx.stop();
    }
}

impl Handler<Crash> for FakeStream {
    type Result = ();
    fn handle(&mut self, _: Crash, ctx: &mut Self::Context) {
        ctx.stop();
    }
}

/// Spawns fake streams and keeps their addresses so a test can crash one.
struct FakeSpawner {
    log: Log,
    addresses: Started,
    /// Each key's credentials, to tell a reload which keys changed.
    credentials: std::collections::HashMap<String, traptor_core::oauth::Credentials>,
}

impl SpawnStream for FakeSpawner {
    fn spawn(&mut self, spec: ChildSpec) -> Result<ChildHandle, String> {
        self.log
            .lock()
            .unwrap()
            .push(Event::Started(spec.id.to_string(), spec.key_name.clone()));
        let id = spec.id.to_string();
        let addr = FakeStream {
            spec,
            log: self.log.clone(),
        }
        .start();
        self.addresses.lock().unwrap().push((id, addr.clone()));
        Ok(ChildHandle {
            update: addr.clone().recipient(),
            stop: addr.recipient(),
            tweets: None,
        })
    }

    fn replace_keys(&mut self, keys: &[ApiKey]) -> Vec<String> {
        let changed = children::keys_with_new_credentials(&self.credentials, keys);
        self.credentials = keys
            .iter()
            .map(|k| (k.name.clone(), k.credentials.clone()))
            .collect();
        changed
    }
}

/// A key named `name` whose consumer secret is `secret`.
fn api_key(name: &str, secret: &str) -> ApiKey {
    ApiKey {
        name: name.to_owned(),
        credentials: traptor_core::oauth::Credentials {
            consumer_key: format!("{name}-consumer"),
            consumer_secret: secret.to_owned(),
            access_token: format!("{name}-token"),
            access_token_secret: format!("{name}-token-secret"),
        },
    }
}

/// Records what the heartbeat is told.
struct FakeHeartbeat(Arc<Mutex<Vec<BTreeSet<SlotId>>>>);

impl Actor for FakeHeartbeat {
    type Context = Context<Self>;
}

impl Handler<StreamingSlots> for FakeHeartbeat {
    type Result = ();
    fn handle(&mut self, msg: StreamingSlots, _: &mut Self::Context) {
        self.0.lock().unwrap().push(msg.0);
    }
}

struct Harness {
    supervisor: Addr<Supervisor>,
    log: Log,
    addresses: Started,
    beats: Arc<Mutex<Vec<BTreeSet<SlotId>>>>,
}

impl Harness {
    fn start(keys: &[&str]) -> Harness {
        let log = Log::default();
        let addresses = Arc::default();
        let beats = Arc::default();
        let spawner = FakeSpawner {
            log: Arc::clone(&log),
            addresses: Arc::clone(&addresses),
            credentials: keys
                .iter()
                .map(|k| (k.to_string(), api_key(k, "secret").credentials))
                .collect(),
        };
        let heartbeat = FakeHeartbeat(Arc::clone(&beats)).start();
        let mut settings = SupervisorSettings::new(keys.iter().map(|k| k.to_string()).collect());
        settings.max_restart_delay = Duration::from_millis(100);
        settings.liveness_interval = Duration::from_millis(20);
        settings.status_interval = None;
        let supervisor =
            Supervisor::new(settings, Box::new(spawner), Some(heartbeat.recipient())).start();
        Harness {
            supervisor,
            log,
            addresses,
            beats,
        }
    }

    fn events(&self) -> Vec<Event> {
        self.log.lock().unwrap().clone()
    }

    fn clear(&self) {
        self.log.lock().unwrap().clear();
    }

    /// Rules for track:0 ("a") and track:1 ("b"), then time for the streams to start.
    async fn send_two_slots(&self) {
        self.supervisor
            .send(RulesSnapshot {
                slots: vec![
                    slot_rules(&track("0"), &["a"]),
                    slot_rules(&track("1"), &["b"]),
                ],
            })
            .await
            .unwrap();
        settle().await;
    }

    /// Reloads the keys, then leaves time for the streams to react.
    async fn reload(&self, keys: Vec<ApiKey>) -> KeysReloaded {
        let reloaded = self.supervisor.send(ReloadKeys { keys }).await.unwrap();
        settle().await;
        reloaded
    }

    async fn status(&self) -> StatusSnapshot {
        self.supervisor.send(GetStatus).await.unwrap()
    }
}

fn track(id: &str) -> SlotId {
    SlotId::new(StreamType::Track, id)
}

fn slot_rules(slot: &SlotId, values: &[&str]) -> RulesChanged {
    let hashes = values.iter().enumerate().map(|(i, v)| {
        (
            None,
            vec![
                ("rule_id".to_string(), (i + 1).to_string()),
                ("value".to_string(), v.to_string()),
            ],
        )
    });
    RulesChanged {
        slot: slot.clone(),
        rules: RuleSet::from_hashes(hashes, Some(slot.stream_type)).rules,
        errors: vec![],
    }
}

async fn settle() {
    actix_rt::time::sleep(Duration::from_millis(60)).await;
}

#[actix_rt::test]
async fn a_snapshot_starts_one_stream_per_planned_connection() {
    let h = Harness::start(&["k1", "k2"]);
    h.send_two_slots().await;
    assert_eq!(
        h.events(),
        vec![
            Event::Started("track:0".into(), "k1".into()),
            Event::Started("track:1".into(), "k2".into())
        ]
    );
    let status = h.status().await;
    let states: Vec<_> = status
        .connections
        .iter()
        .map(|c| (c.connection.as_str(), c.state.as_str()))
        .collect();
    assert_eq!(states, [("track:0", "streaming"), ("track:1", "streaming")]);
    assert_eq!(
        h.beats.lock().unwrap().last().unwrap(),
        &BTreeSet::from([track("0"), track("1")])
    );
}

#[actix_rt::test]
async fn a_rule_change_updates_only_the_affected_stream() {
    let h = Harness::start(&["k1", "k2"]);
    h.send_two_slots().await;
    h.clear();
    h.supervisor
        .send(slot_rules(&track("1"), &["b", "c"]))
        .await
        .unwrap();
    // The same snapshot again (a periodic resync) changes nothing.
    h.supervisor
        .send(RulesSnapshot {
            slots: vec![
                slot_rules(&track("0"), &["a"]),
                slot_rules(&track("1"), &["b", "c"]),
            ],
        })
        .await
        .unwrap();
    settle().await;
    assert_eq!(
        h.events(),
        vec![Event::Updated(
            "track:1".into(),
            vec!["b".into(), "c".into()]
        )]
    );
}

#[actix_rt::test]
async fn a_slot_without_rules_stops_its_stream_and_frees_its_key() {
    let h = Harness::start(&["k1"]);
    h.supervisor
        .send(slot_rules(&track("0"), &["a"]))
        .await
        .unwrap();
    settle().await;
    h.supervisor
        .send(slot_rules(&track("0"), &[]))
        .await
        .unwrap();
    h.supervisor
        .send(slot_rules(&track("1"), &["b"]))
        .await
        .unwrap();
    settle().await;
    assert_eq!(
        h.events(),
        vec![
            Event::Started("track:0".into(), "k1".into()),
            Event::Stopped("track:0".into()),
            Event::Started("track:1".into(), "k1".into()),
        ]
    );
    assert_eq!(
        h.beats.lock().unwrap().last().unwrap(),
        &BTreeSet::from([track("1")])
    );
}

#[actix_rt::test]
async fn a_slot_without_a_key_is_reported_not_started() {
    let h = Harness::start(&["k1"]);
    h.send_two_slots().await;
    assert_eq!(
        h.events(),
        vec![Event::Started("track:0".into(), "k1".into())]
    );
    let status = h.status().await;
    assert_eq!(status.cluster.slots_without_key, ["track:1"]);
    assert_eq!(
        status.cluster.rules_left_out.len(),
        1,
        "{:?}",
        status.cluster.rules_left_out
    );
}

#[actix_rt::test]
async fn a_crashed_stream_is_restarted_after_a_backoff() {
    let h = Harness::start(&["k1"]);
    h.supervisor
        .send(slot_rules(&track("0"), &["a"]))
        .await
        .unwrap();
    settle().await;
    let (_, first) = h.addresses.lock().unwrap()[0].clone();
    h.clear();
    first.send(Crash).await.unwrap();
    settle().await;
    assert_eq!(
        h.status().await.connections[0].state,
        "restarting",
        "waits out the backoff"
    );
    actix_rt::time::sleep(Duration::from_millis(150)).await;
    assert_eq!(
        h.events(),
        vec![Event::Started("track:0".into(), "k1".into())]
    );
    let status = h.status().await;
    assert_eq!(
        (
            status.connections[0].state.as_str(),
            status.connections[0].restarts
        ),
        ("streaming", 1)
    );
}

#[actix_rt::test]
async fn shutdown_stops_every_stream_and_waits_for_them() {
    let h = Harness::start(&["k1", "k2"]);
    h.send_two_slots().await;
    h.clear();
    let still_running = h
        .supervisor
        .send(Shutdown {
            timeout: Duration::from_secs(2),
        })
        .await
        .unwrap();
    assert_eq!(still_running, 0);
    assert_eq!(
        h.events(),
        vec![
            Event::Stopped("track:0".into()),
            Event::Stopped("track:1".into())
        ]
    );
    // Stopping on request is no crash: nothing restarts, and rules are ignored from now on.
    h.supervisor
        .send(slot_rules(&track("2"), &["c"]))
        .await
        .unwrap();
    actix_rt::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(h.events().len(), 2, "{:?}", h.events());
    assert!(h.beats.lock().unwrap().last().unwrap().is_empty());
}

#[actix_rt::test]
async fn a_reloaded_key_takes_a_slot_that_had_none_and_leaves_the_other_streams_alone() {
    let h = Harness::start(&["k1"]);
    h.send_two_slots().await;
    assert_eq!(
        h.events(),
        vec![Event::Started("track:0".into(), "k1".into())],
        "one key: one slot streams, the other waits for a key"
    );
    h.clear();

    let reloaded = h
        .reload(vec![api_key("k1", "secret"), api_key("k2", "secret")])
        .await;
    assert_eq!(
        reloaded,
        KeysReloaded {
            added: vec!["k2".into()],
            ..KeysReloaded::default()
        }
    );
    assert_eq!(
        h.events(),
        vec![Event::Started("track:1".into(), "k2".into())],
        "only the slot without a key is touched"
    );
    assert!(h.status().await.cluster.slots_without_key.is_empty());

    // The same keys again change nothing.
    h.clear();
    let reloaded = h
        .reload(vec![api_key("k1", "secret"), api_key("k2", "secret")])
        .await;
    assert!(reloaded.is_empty(), "{reloaded:?}");
    assert_eq!(h.events(), vec![]);
}

#[actix_rt::test]
async fn a_removed_key_stops_its_stream_and_new_credentials_restart_their_streams() {
    let h = Harness::start(&["k1", "k2"]);
    h.send_two_slots().await;
    h.clear();

    let reloaded = h.reload(vec![api_key("k1", "rotated")]).await;
    assert_eq!(
        reloaded,
        KeysReloaded {
            added: vec![],
            removed: vec!["k2".into()],
            changed: vec!["k1".into()],
        }
    );
    let events = h.events();
    let at = |event: Event| events.iter().position(|e| *e == event);
    let stopped = at(Event::Stopped("track:0".into())).expect("k1's stream stops");
    let started = at(Event::Started("track:0".into(), "k1".into())).expect("and starts again");
    assert!(stopped < started, "{events:?}");
    assert!(
        events.contains(&Event::Stopped("track:1".into())),
        "k2's stream stops: {events:?}"
    );
    assert_eq!(events.len(), 3, "nothing else: {events:?}");
    let status = h.status().await;
    assert_eq!(status.cluster.slots_without_key, ["track:1"]);
    let states: Vec<_> = status
        .connections
        .iter()
        .map(|c| (c.connection.as_str(), c.state.as_str(), c.restarts))
        .collect();
    assert_eq!(
        states,
        [("track:0", "streaming", 0)],
        "a planned restart is no crash"
    );
}
