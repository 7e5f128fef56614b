//! Process faults of `traptor-supervisor`, end to end against the in-process emulator:
//!
//! - a panic injected into one stream's processing restarts that stream only, with a growing
//!   wait, and the process and the other streams carry on (no services needed: rules from a
//!   file, records to standard output);
//! - SIGKILL, then a restart: streaming resumes, nothing already in Kafka is written twice, and
//!   what was lost is only what was in flight at the kill (needs Redis and Kafka).

mod e2e_common;
mod support;

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;
use std::time::Duration;

use e2e_common::emulator::{
    connects_per_key, emulator_config, keys_toml, runtime, start_emulator, test_keys,
    tweets_sent_per_key, wait_for_stats,
};
use e2e_common::{unique, write_three_slot_rules, Supervisor};
use traptor_core::oauth::Credentials;
use traptor_firehose::{Fault, FaultKind, FirehoseConfig, FirehoseHandle, Stats};

/// Three keys, three slots (one stream each), rules in a file.
struct World {
    emulator: FirehoseHandle,
    dir: PathBuf,
    keys: Vec<(String, Credentials)>,
}

impl World {
    fn new(rate: f64) -> World {
        let keys = test_keys("rel", 3);
        let emulator = start_emulator(FirehoseConfig {
            seed: 11,
            keepalive: Duration::from_millis(500),
            ..emulator_config(&keys, rate)
        });
        let dir = std::env::temp_dir().join(unique("traptor-reliability"));
        std::fs::create_dir_all(&dir).unwrap();
        write_three_slot_rules(&dir, "rel");
        World {
            emulator,
            dir,
            keys,
        }
    }

    /// The config: file rules, the given `[sink]`/`[kafka]` text, this world's keys.
    fn config(&self, sink: &str) -> String {
        let mut text = format!(
            r#"
[rules]
source = "file"
path = "rules.json"

{sink}

[log]
level = "info"
status_interval_secs = 0

[stream]
endpoint = "{endpoint}"
stall_timeout_secs = 10
connects_per_key_per_minute = 60
"#,
            endpoint = self.emulator.url(),
        );
        text.push_str(&keys_toml(&self.keys));
        text
    }

    fn start(&self, sink: &str, env: &[(&str, &str)]) -> Supervisor {
        Supervisor::start_with_env(&self.config(sink), &self.dir, env)
    }

    fn stats(&self) -> Stats {
        self.emulator.stats()
    }

    #[track_caller]
    fn wait_for(
        &self,
        limit: Duration,
        what: &str,
        supervisor: &Supervisor,
        check: impl Fn(&Stats) -> bool,
    ) {
        wait_for_stats(&self.emulator, limit, what, supervisor, check);
    }
}

impl Drop for World {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn open_of(stats: &Stats, label: &str) -> usize {
    stats
        .open_connections()
        .filter(|c| c.credential == label)
        .count()
}

/// The reader panics on a frame of this size or more (debug builds only); the emulator's
/// oversized-frame fault sends one, to one key's connection only.
const PANIC_FRAME_BYTES: usize = 200_000;

#[test]
fn a_panic_in_one_stream_restarts_that_stream_only_with_a_growing_wait() {
    let world = World::new(30.0);
    let threshold = PANIC_FRAME_BYTES.to_string();
    let mut supervisor = world.start(
        "[sink]\nkind = \"stdout\"",
        &[("TRAPTOR_TEST_PANIC_ON_FRAME_BYTES", threshold.as_str())],
    );
    world.wait_for(Duration::from_secs(20), "three streams", &supervisor, |s| {
        s.open_connections().count() == 3
    });
    let victim = "key1";
    let victim_key = world.keys[1].1.consumer_key.clone();
    // A few seconds of streaming first, so the others' progress can be measured.
    std::thread::sleep(Duration::from_secs(2));
    let before = world.stats();

    // Three panics in a row, each soon after the restart: the waits must grow (1 s, 2 s, 4 s
    // with the supervisor's restart schedule; its liveness check adds up to 1 s).
    let mut waits = Vec::new();
    for round in 1..=3u64 {
        let connects_before = connects_per_key(&world.stats())[victim];
        let injected_at = world.stats().uptime_ms;
        let reached = world.emulator.inject(Fault::for_key(
            victim_key.clone(),
            FaultKind::OversizedFrame {
                bytes: PANIC_FRAME_BYTES + 50_000,
            },
        ));
        assert_eq!(reached, 1, "the fault reaches only the victim's connection");
        world.wait_for(
            Duration::from_secs(20),
            "the victim restarted and streaming",
            &supervisor,
            |s| connects_per_key(s)[victim] == connects_before + 1 && open_of(s, victim) == 1,
        );
        let stats = world.stats();
        let reconnect = stats
            .attempts_of(victim)
            .filter(|e| e.status == 200)
            .last()
            .expect("the victim's reconnect");
        waits.push(reconnect.at_ms.saturating_sub(injected_at));
        assert!(
            supervisor.running(),
            "the process stays up after round {round}"
        );
    }
    eprintln!("waits from each panic to the restarted stream's connect: {waits:?} ms");
    for (wait, (min, max)) in waits
        .iter()
        .zip([(1_000, 3_500), (2_000, 4_500), (4_000, 6_500)])
    {
        assert!(
            (min..max).contains(wait),
            "waits {waits:?} ms; expected about 1 s, 2 s, 4 s (+ up to 1 s liveness check)"
        );
    }
    let stderr = supervisor.stderr();
    assert_eq!(
        stderr.matches("fault injection: a frame of").count(),
        3,
        "each round was one panic of the victim's reader"
    );
    let restarts: Vec<&str> = stderr
        .lines()
        .filter(|l| l.contains("restarting stream in"))
        .collect();
    assert_eq!(
        restarts.len(),
        3,
        "the supervisor saw each death:\n{stderr}"
    );
    for (line, wait) in restarts.iter().zip(["in 1s", "in 2s", "in 4s"]) {
        assert!(
            line.contains(wait) && line.contains("connection=track:1"),
            "{line}"
        );
    }

    // The other streams never reconnected and kept delivering.
    let after = world.stats();
    for other in ["key0", "key2"] {
        assert_eq!(
            connects_per_key(&after)[other],
            connects_per_key(&before)[other],
            "{other} reconnected"
        );
        let (sent_before, sent_after) = (
            tweets_sent_per_key(&before)[other],
            tweets_sent_per_key(&after)[other],
        );
        assert!(
            sent_after >= sent_before + 50,
            "{other} kept streaming: {sent_before} → {sent_after} tweets"
        );
    }
    // Their tweets reached the sink: every tweet of theirs the emulator sent before the last
    // round is on standard output.
    let out: BTreeSet<String> = e2e_common::enriched_tweets(&supervisor.stdout())
        .iter()
        .filter_map(|doc| doc["id_str"].as_str().map(str::to_owned))
        .collect();
    for connection in before.connections.iter().filter(|c| c.credential != victim) {
        let missing = connection
            .tweet_ids
            .iter()
            .filter(|id| !out.contains(&id.to_string()))
            .count();
        assert_eq!(missing, 0, "connection {} lost tweets", connection.id);
    }

    let status = supervisor.terminate(Duration::from_secs(15));
    assert!(
        status.success(),
        "{status}; stderr:\n{}",
        supervisor.stderr()
    );
}

/// Tweets a connection sends in this long may still be in flight (socket buffers, the
/// reader's hands, the producer's queue) at a SIGKILL.
const IN_FLIGHT_WINDOW: Duration = Duration::from_secs(2);

#[test]
#[ignore = "needs Redis and Kafka: run scripts/test.sh"]
fn sigkill_loses_at_most_what_was_in_flight_and_a_restart_resumes_without_duplicates() {
    let rate = 30.0;
    let world = World::new(rate);
    let brokers = support::kafka_brokers();
    let topic = support::unique_topic("traptor-sigkill");
    runtime().block_on(support::create_topic(&brokers, &topic, 3));
    let sink = format!(
        "[sink]\nkind = \"kafka\"\n\n[kafka]\nbootstrap_servers = \"{brokers}\"\ntopic = \"{topic}\"\n\n[kafka.spool]\ndir = \"spool\""
    );

    let mut first = world.start(&sink, &[]);
    world.wait_for(Duration::from_secs(20), "three streams", &first, |s| {
        s.open_connections().count() == 3
    });
    std::thread::sleep(Duration::from_secs(3));
    first.kill();
    // What the emulator had sent when the process died (its connections close right after).
    std::thread::sleep(Duration::from_millis(500));
    let killed = world.stats();
    let killed_ids: BTreeSet<u64> = killed
        .connections
        .iter()
        .flat_map(|c| c.tweet_ids.iter().copied())
        .collect();

    let mut second = world.start(&sink, &[]);
    world.wait_for(Duration::from_secs(30), "three new streams", &second, |s| {
        s.open_connections().count() == 3 && s.connections.len() == 6
    });
    std::thread::sleep(Duration::from_secs(3));
    let status = second.terminate(Duration::from_secs(20));
    assert!(status.success(), "{status}; stderr:\n{}", second.stderr());

    let received = e2e_common::received_per_key(&second.stderr());
    let expected = killed_ids.len() as u64 + received.values().map(|r| r.messages).sum::<u64>();
    let records = runtime().block_on(support::consume_all(
        &brokers,
        &topic,
        expected as usize,
        Duration::from_secs(20),
    ));
    let in_kafka: BTreeMap<u64, usize> = support::tweets_by_key(&records)
        .into_iter()
        .map(|(key, count)| (key.parse().expect("tweet ids are numbers"), count))
        .collect();
    let duplicates: Vec<_> = in_kafka.iter().filter(|(_, n)| **n > 1).collect();
    assert!(duplicates.is_empty(), "written twice: {duplicates:?}");

    // The killed run: what is missing is only the newest tweets of each connection.
    let per_connection = rate / 3.0;
    let window = (per_connection * IN_FLIGHT_WINDOW.as_secs_f64()).ceil() as usize;
    let mut lost = 0;
    for connection in &killed.connections {
        let ids = &connection.tweet_ids;
        let missing: Vec<usize> = (0..ids.len())
            .filter(|&i| !in_kafka.contains_key(&ids[i]))
            .collect();
        if let Some(&oldest) = missing.first() {
            assert!(
                ids.len() - oldest <= window,
                "connection {}: tweet #{oldest} of {} is missing, older than the last {IN_FLIGHT_WINDOW:?}",
                connection.id,
                ids.len()
            );
        }
        lost += missing.len();
        eprintln!(
            "killed run, connection {} ({}): {} tweets sent, {} missing from Kafka",
            connection.id,
            connection.credential,
            ids.len(),
            missing.len()
        );
    }
    eprintln!(
        "SIGKILL lost {lost} of {} tweets sent to the killed process",
        killed_ids.len()
    );

    // The second run lost nothing it received.
    for (label, got) in &received {
        let of_key = world
            .stats()
            .connections
            .iter()
            .filter(|c| &c.credential == label && c.id > killed.connections.len() as u64)
            .flat_map(|c| &c.tweet_ids)
            .filter(|id| in_kafka.contains_key(id))
            .count() as u64;
        assert_eq!(of_key, got.tweets, "{label}: the restarted run lost tweets");
    }
    assert_eq!(
        received.len(),
        3,
        "every stream of the restarted run delivered"
    );
}
