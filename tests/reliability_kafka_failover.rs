//! Kafka leader failover, end to end: a three-node Kafka cluster of the test's own (KRaft,
//! every node broker and controller, replication factor 3, `min.insync.replicas=2`), the
//! supervisor as a process writing the emulator's tweets to it, and `kill -9` of the broker
//! that leads a partition while traptor writes. Afterwards every tweet the emulator sent must
//! be in the topic exactly once, the supervisor must stop cleanly, and `/readyz` must have
//! stayed ready throughout (two of three brokers are enough). The killed broker is then
//! restarted and, once back in sync, given its partitions back: a second, graceful leader
//! change while traptor writes.
//!
//! The single broker of `scripts/services.sh` cannot show this: with one replica there is no
//! leader to fail over to. Only its jars are used (`TRAPTOR_TEST_KAFKA_HOME`).
//!
//! The topic stores the broker's append time (`message.timestamp.type=LogAppendTime`), so the
//! records read back tell when each partition took writes again after the kill. Expect every
//! partition to pause, not only the dead leader's: with `acks=all` a leader answers once every
//! replica in sync has the records, and the dead broker counts as in sync until the controller
//! fences it (`broker.session.timeout.ms`).

mod e2e_common;
mod support;

use std::collections::{BTreeMap, BTreeSet};
use std::fs::File;
use std::net::TcpListener;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use e2e_common::emulator::{
    emulator_config, keys_toml, runtime, start_emulator, test_keys, tweets_sent, wait_for_stats,
};
use e2e_common::http::{free_port, http_get, metric};
use e2e_common::{received_per_key, unique, write_three_slot_rules, Supervisor};
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::message::Message;
use rdkafka::{Offset, TopicPartitionList};
use traptor_firehose::{Fault, FaultKind, FirehoseConfig};

/// Tweets per second over all three connections: enough that records are always in flight
/// when the leader dies, little enough for a 2-core machine running three brokers.
const RATE: f64 = 300.0;
const PARTITIONS: i32 = 3;
/// How long traptor streams before the kill, and after the failover is visible.
const STREAM_BEFORE_KILL: Duration = Duration::from_secs(4);
const STREAM_AFTER_FAILOVER: Duration = Duration::from_secs(5);
/// A partition led by the dead broker must take writes again within this long (the
/// controller fences a silent broker after `broker.session.timeout.ms`, 6 s here).
const FAILOVER_LIMIT: Duration = Duration::from_secs(45);

#[test]
#[ignore = "needs Redis and Kafka: run scripts/test.sh"]
fn killing_a_partition_leader_loses_and_duplicates_nothing() {
    let started = Instant::now();
    let mut cluster = KafkaCluster::start(&kafka_lib_dir());
    let brokers = cluster.bootstrap_servers();
    let topic = support::unique_topic("traptor-failover");
    cluster.create_replicated_topic(&topic, PARTITIONS, Duration::from_secs(120));
    eprintln!(
        "cluster of 3 ready with topic {topic} after {:.1}s: {}",
        started.elapsed().as_secs_f64(),
        describe(&cluster.partitions(&topic))
    );

    let world = World::new(&brokers, &topic);
    let mut supervisor = Supervisor::start(&world.config, &world.dir);
    wait_for_stats(
        &world.emulator,
        Duration::from_secs(30),
        "three streams",
        &supervisor,
        |s| s.open_connections().count() == 3,
    );
    wait_until_ready(&supervisor, world.status_port, Duration::from_secs(30));
    thread::sleep(STREAM_BEFORE_KILL);

    let before = cluster.partitions(&topic);
    let victim = before
        .iter()
        .find(|p| p.id == 0)
        .map(|p| p.leader)
        .filter(|leader| *leader > 0)
        .unwrap_or_else(|| panic!("partition 0 has no leader: {}", describe(&before)));
    let led_by_victim: Vec<i32> = before
        .iter()
        .filter(|p| p.leader == victim)
        .map(|p| p.id)
        .collect();
    eprintln!(
        "killing broker {victim}, leader of partitions {led_by_victim:?}; traptor had {} records delivered",
        metric(world.status_port, "traptor_writer_records_delivered_total").unwrap_or(f64::NAN)
    );
    let readyz = ReadyzProbe::start(world.status_port);
    let killed_at_ms = fail_over_and_back(&mut cluster, &topic, victim);
    let readiness = readyz.stop();

    // Stop the emulator's output and let traptor read everything sent, so that what the
    // emulator sent is exactly what traptor must have written.
    world
        .emulator
        .inject(Fault::all(FaultKind::Stall { duration: None }));
    let sent = drain(&world, &supervisor);
    let status = supervisor.terminate(Duration::from_secs(60));
    let stderr = supervisor.stderr();
    assert!(status.success(), "{status}; stderr:\n{stderr}");
    assert!(
        stderr.contains("all records delivered; stopped cleanly"),
        "stderr:\n{stderr}"
    );

    let warnings: Vec<&str> = stderr
        .lines()
        .filter(|l| l.contains("librdkafka") && (l.contains("WARN") || l.contains("ERROR")))
        .collect();
    eprintln!(
        "the supervisor logged {} Kafka warnings and errors{}",
        warnings.len(),
        warnings
            .iter()
            .take(12)
            .map(|l| format!("\n  {l}"))
            .collect::<String>()
    );

    let stats = world.emulator.stats();
    assert_eq!(
        tweets_sent(&stats),
        sent,
        "the emulator sent tweets during the stall"
    );
    let sent_ids: BTreeSet<String> = stats
        .connections
        .iter()
        .inspect(|c| assert_eq!(c.tweet_ids_not_recorded, 0, "every id is recorded"))
        .flat_map(|c| c.tweet_ids.iter().map(u64::to_string))
        .collect();
    assert_eq!(sent_ids.len(), sent, "the emulator sent an id twice");

    let records = read_topic(&brokers, &topic, Duration::from_secs(60));
    let keyed: Vec<(Option<String>, Vec<u8>)> = records
        .iter()
        .map(|r| (r.key.clone(), r.payload.clone()))
        .collect();
    let in_kafka = support::tweets_by_key(&keyed);
    let lost: Vec<&String> = sent_ids
        .iter()
        .filter(|id| !in_kafka.contains_key(*id))
        .collect();
    let duplicated: Vec<(&String, &usize)> = in_kafka.iter().filter(|(_, n)| **n > 1).collect();
    let unknown: Vec<&String> = in_kafka
        .keys()
        .filter(|id| !sent_ids.contains(*id))
        .collect();

    let received: u64 = received_per_key(&stderr).values().map(|r| r.tweets).sum();
    let appended_before = records
        .iter()
        .filter(|r| r.appended_ms < killed_at_ms)
        .count();
    eprintln!(
        "emulator sent {sent} tweets, traptor received {received}; the topic holds {} records ({} tweets): \
         {appended_before} appended before the kill, {} after; {} lost, {} duplicated, {} unknown",
        records.len(),
        in_kafka.len(),
        records.len() - appended_before,
        lost.len(),
        duplicated.len(),
        unknown.len()
    );
    let resumed = first_appends_after(&records, killed_at_ms);
    for partition in 0..PARTITIONS {
        let led = if led_by_victim.contains(&partition) {
            " (led by the killed broker)"
        } else {
            ""
        };
        match resumed.get(&partition) {
            Some(ms) => eprintln!(
                "partition {partition}{led}: first record appended {ms} ms after the broker died"
            ),
            None => eprintln!("partition {partition}{led}: nothing appended after the kill"),
        }
    }
    eprintln!(
        "/readyz during the outage and the restart: {} probes, {} not ready",
        readiness.probes,
        readiness.not_ready.len()
    );

    assert!(
        lost.is_empty(),
        "{} of {sent} tweets sent are not in Kafka (first: {:?})",
        lost.len(),
        &lost[..lost.len().min(10)]
    );
    assert!(
        duplicated.is_empty(),
        "tweets written more than once: {:?}",
        &duplicated[..duplicated.len().min(10)]
    );
    assert!(unknown.is_empty(), "tweets never sent: {unknown:?}");
    assert!(
        appended_before >= 300,
        "too little traffic before the kill to mean anything: {appended_before} records"
    );
    for partition in &led_by_victim {
        let after = resumed.get(partition).copied();
        assert!(
            after.is_some_and(|ms| ms < FAILOVER_LIMIT.as_millis() as i64),
            "partition {partition}, led by the killed broker, took no write within {FAILOVER_LIMIT:?} \
             of the kill (first after: {after:?} ms)"
        );
    }
    assert!(
        readiness.probes > 0 && readiness.not_ready.is_empty(),
        "/readyz with two of three brokers up: {} probes, not ready: {:?}",
        readiness.probes,
        readiness.not_ready
    );
    eprintln!("done in {:.1}s", started.elapsed().as_secs_f64());
}

/// The broker `victim` dies (`kill -9`) while traptor writes; traptor goes on with the other
/// two; the broker comes back, catches up and leads its partitions again. Returns when the
/// broker was gone (milliseconds since the epoch).
fn fail_over_and_back(cluster: &mut KafkaCluster, topic: &str, victim: i32) -> i64 {
    cluster.kill(victim);
    // Taken once the process is gone: it may append for a few milliseconds after the signal.
    let killed_at = Instant::now();
    let killed_at_ms = now_ms();
    let since_kill = || killed_at.elapsed().as_secs_f64();
    let failover = cluster.wait_for_partitions(
        topic,
        FAILOVER_LIMIT,
        "partitions led by live brokers",
        |p| p.leader > 0 && p.leader != victim,
    );
    eprintln!(
        "metadata shows new leaders {:.1}s after the kill: {}",
        since_kill(),
        describe(&failover)
    );
    thread::sleep(STREAM_AFTER_FAILOVER);

    cluster.restart(victim);
    let rejoined = cluster.wait_for_partitions(
        topic,
        Duration::from_secs(90),
        "the restarted broker back in every ISR",
        |p| p.isr.contains(&victim),
    );
    eprintln!(
        "broker {victim} back in every ISR {:.1}s after the kill: {}",
        since_kill(),
        describe(&rejoined)
    );
    // The controller gives the restarted broker its partitions back: a graceful leader change.
    let returned = cluster.wait_for_partitions(
        topic,
        Duration::from_secs(45),
        "leadership back with the restarted broker",
        PartitionState::led_by_preferred_replica,
    );
    eprintln!(
        "broker {victim} leads its partitions again {:.1}s after the kill: {}",
        since_kill(),
        describe(&returned)
    );
    thread::sleep(Duration::from_secs(2));
    killed_at_ms
}

/// The emulator with three keys, their rules in a file, and the supervisor's config writing to
/// the cluster.
struct World {
    emulator: traptor_firehose::FirehoseHandle,
    dir: PathBuf,
    status_port: u16,
    config: String,
}

impl World {
    fn new(brokers: &str, topic: &str) -> World {
        let keys = test_keys("failover", 3);
        let emulator = start_emulator(FirehoseConfig {
            seed: 23,
            ..emulator_config(&keys, RATE)
        });
        let dir = std::env::temp_dir().join(unique("traptor-failover"));
        std::fs::create_dir_all(&dir).unwrap();
        write_three_slot_rules(&dir, "failover");
        let status_port = free_port();
        // A long stall timeout: the streams must not reconnect when the emulator is stalled
        // at the end, which would lose the unread tail of a connection.
        let config = format!(
            r#"
[rules]
source = "file"
path = "rules.json"

[sink]
kind = "kafka"

[kafka]
bootstrap_servers = "{brokers}"
topic = "{topic}"

[status]
listen = "127.0.0.1:{status_port}"

[log]
level = "info"
status_interval_secs = 0

[stream]
endpoint = "{endpoint}"
stall_timeout_secs = 120
connects_per_key_per_minute = 60
{keys}"#,
            endpoint = emulator.url(),
            keys = keys_toml(&keys),
        );
        World {
            emulator,
            dir,
            status_port,
            config,
        }
    }
}

impl Drop for World {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// `$TRAPTOR_TEST_KAFKA_HOME`: the directory of the Kafka jars `scripts/services.sh` fetched.
fn kafka_lib_dir() -> PathBuf {
    let dir = std::env::var_os("TRAPTOR_TEST_KAFKA_HOME")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            panic!(
                "TRAPTOR_TEST_KAFKA_HOME is not set: start the services with `bash scripts/services.sh start && \
                 eval \"$(bash scripts/services.sh env)\"`, or run `bash scripts/test.sh`"
            )
        });
    let has_kafka = std::fs::read_dir(&dir).is_ok_and(|entries| {
        entries
            .flatten()
            .any(|e| e.file_name().to_string_lossy().starts_with("kafka_"))
    });
    assert!(
        has_kafka,
        "{} holds no Kafka jars: run `bash scripts/services.sh start` once",
        dir.display()
    );
    dir
}

fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("clock before 1970")
        .as_millis() as i64
}

#[track_caller]
fn wait_until_ready(supervisor: &Supervisor, port: u16, limit: Duration) {
    let deadline = Instant::now() + limit;
    while http_get(port, "/readyz").map(|(status, _)| status) != Some(200) {
        assert!(
            Instant::now() < deadline,
            "never ready: {:?}\nstderr:\n{}",
            http_get(port, "/readyz"),
            supervisor.stderr()
        );
        thread::sleep(Duration::from_millis(200));
    }
}

/// Waits until traptor has counted every tweet the (stalled) emulator sent, twice in a row,
/// and returns that number. Gives up after a bound: the assertions then show what is missing.
fn drain(world: &World, supervisor: &Supervisor) -> usize {
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut agreed_once = false;
    loop {
        thread::sleep(Duration::from_millis(500));
        let sent = tweets_sent(&world.emulator.stats());
        let read = [
            "traptor_stream_tweets_matched_total",
            "traptor_stream_tweets_unmatched_total",
        ]
        .iter()
        .map(|name| metric(world.status_port, name).unwrap_or(0.0))
        .sum::<f64>() as usize;
        if read == sent && agreed_once {
            return sent;
        }
        agreed_once = read == sent;
        if Instant::now() >= deadline {
            eprintln!(
                "traptor counted {read} of the {sent} tweets sent within 30s; stderr:\n{}",
                supervisor.stderr()
            );
            return sent;
        }
    }
}

/// Polls `/readyz` on a thread until stopped, keeping the answers that were not 200.
struct ReadyzProbe {
    stop: Arc<AtomicBool>,
    seen: Arc<Mutex<Readiness>>,
    thread: Option<JoinHandle<()>>,
}

/// What [`ReadyzProbe`] saw.
#[derive(Debug, Default, Clone)]
struct Readiness {
    probes: usize,
    /// (milliseconds since the probe started, status or none, body).
    not_ready: Vec<(u128, Option<u16>, String)>,
}

impl ReadyzProbe {
    fn start(port: u16) -> ReadyzProbe {
        let stop = Arc::new(AtomicBool::new(false));
        let seen = Arc::new(Mutex::new(Readiness::default()));
        let thread = {
            let (stop, seen) = (Arc::clone(&stop), Arc::clone(&seen));
            thread::spawn(move || {
                let started = Instant::now();
                while !stop.load(Ordering::Relaxed) {
                    let answer = http_get(port, "/readyz");
                    let mut seen = seen.lock().unwrap();
                    seen.probes += 1;
                    match answer {
                        Some((200, _)) => {}
                        Some((status, body)) => {
                            seen.not_ready
                                .push((started.elapsed().as_millis(), Some(status), body))
                        }
                        None => seen.not_ready.push((
                            started.elapsed().as_millis(),
                            None,
                            String::new(),
                        )),
                    }
                    drop(seen);
                    thread::sleep(Duration::from_millis(250));
                }
            })
        };
        ReadyzProbe {
            stop,
            seen,
            thread: Some(thread),
        }
    }

    fn stop(mut self) -> Readiness {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(thread) = self.thread.take() {
            thread.join().expect("the readyz probe panicked");
        }
        self.seen.lock().unwrap().clone()
    }
}

impl Drop for ReadyzProbe {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}

/// One record read back: where it is, when the leader appended it, what it holds.
struct TopicRecord {
    partition: i32,
    key: Option<String>,
    appended_ms: i64,
    payload: Vec<u8>,
}

/// Every record of `topic`, read from the beginning of each partition to its end (the writer
/// has stopped, so the end is final).
fn read_topic(brokers: &str, topic: &str, limit: Duration) -> Vec<TopicRecord> {
    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", brokers)
        .set("group.id", unique("traptor-failover-reader"))
        .set("enable.auto.commit", "false")
        .set("enable.partition.eof", "true")
        .create()
        .expect("creating the Kafka consumer");
    let mut assignment = TopicPartitionList::new();
    for partition in 0..PARTITIONS {
        assignment
            .add_partition_offset(topic, partition, Offset::Beginning)
            .expect("building the partition assignment");
    }
    consumer
        .assign(&assignment)
        .expect("assigning the topic's partitions");
    let deadline = Instant::now() + limit;
    let mut at_end = BTreeSet::new();
    let mut records = Vec::new();
    while at_end.len() < PARTITIONS as usize {
        assert!(
            Instant::now() < deadline,
            "reading {topic} back: only partitions {at_end:?} reached their end within {limit:?} \
             ({} records read)",
            records.len()
        );
        match consumer.poll(Duration::from_millis(500)) {
            None => {}
            Some(Err(KafkaError::PartitionEOF(partition))) => {
                at_end.insert(partition);
            }
            Some(Err(e)) => panic!("consuming {topic}: {e}"),
            Some(Ok(message)) => {
                at_end.remove(&message.partition());
                records.push(TopicRecord {
                    partition: message.partition(),
                    key: message
                        .key()
                        .map(|key| String::from_utf8_lossy(key).into_owned()),
                    appended_ms: match message.timestamp() {
                        rdkafka::Timestamp::LogAppendTime(ms) => ms,
                        other => panic!("the topic stores append times, got {other:?}"),
                    },
                    payload: message.payload().unwrap_or_default().to_vec(),
                });
            }
        }
    }
    records
}

/// Per partition, how long after `killed_at_ms` its first record appended after it was.
fn first_appends_after(records: &[TopicRecord], killed_at_ms: i64) -> BTreeMap<i32, i64> {
    let mut first = BTreeMap::new();
    for record in records.iter().filter(|r| r.appended_ms >= killed_at_ms) {
        let after = record.appended_ms - killed_at_ms;
        first
            .entry(record.partition)
            .and_modify(|ms: &mut i64| *ms = (*ms).min(after))
            .or_insert(after);
    }
    first
}

// ---------------------------------------------------------------------------------------------
// The cluster
// ---------------------------------------------------------------------------------------------

/// Three Kafka nodes (broker and controller each) on loopback ports, each in its own process
/// group and temporary directory. Dropping it kills them all, so that a failing test leaves
/// no JVM behind; a watcher process kills them if the test process itself is killed.
struct KafkaCluster {
    dir: PathBuf,
    lib: PathBuf,
    nodes: Vec<KafkaNode>,
    metadata: BaseConsumer,
    reaper: Child,
}

/// One node of [`KafkaCluster`]; `process` is `None` while it is down.
struct KafkaNode {
    id: i32,
    port: u16,
    dir: PathBuf,
    process: Option<Child>,
}

/// A partition as the metadata shows it.
#[derive(Debug, Clone)]
struct PartitionState {
    id: i32,
    leader: i32,
    /// The first is the preferred leader, whom the controller gives leadership back to.
    replicas: Vec<i32>,
    isr: Vec<i32>,
}

impl PartitionState {
    fn led_by_preferred_replica(&self) -> bool {
        self.leader > 0 && self.replicas.first() == Some(&self.leader)
    }
}

fn describe(partitions: &[PartitionState]) -> String {
    partitions
        .iter()
        .map(|p| format!("p{} leader {} isr {:?}", p.id, p.leader, p.isr))
        .collect::<Vec<_>>()
        .join(", ")
}

/// Log4j2 for the brokers and the storage tool: to the node's log file, INFO and up (the tool
/// runs at WARN).
const LOG4J2: &str = "status = warn
appender.out.type = Console
appender.out.name = out
appender.out.layout.type = PatternLayout
appender.out.layout.pattern = [%d] %p %m (%c)%n
rootLogger.level = ${sys:traptor.log.level:-info}
rootLogger.appenderRef.out.ref = out
logger.state.name = state.change.logger
logger.state.level = warn
";

impl KafkaCluster {
    /// Formats three log dirs with one cluster id and starts the nodes; they are ready once
    /// [`KafkaCluster::create_replicated_topic`] succeeds.
    fn start(lib: &Path) -> KafkaCluster {
        let dir = std::env::temp_dir().join(unique("traptor-kafka-cluster"));
        std::fs::create_dir_all(&dir).expect("creating the cluster's directory");
        std::fs::write(dir.join("log4j2.properties"), LOG4J2).unwrap();
        let ports = distinct_free_ports(6);
        let (broker_ports, controller_ports) = ports.split_at(3);
        let voters = (0..3)
            .map(|i| format!("{}@127.0.0.1:{}", i + 1, controller_ports[i]))
            .collect::<Vec<_>>()
            .join(",");
        let nodes: Vec<KafkaNode> = (0..3)
            .map(|i| {
                let id = i as i32 + 1;
                let node_dir = dir.join(format!("node{id}"));
                std::fs::create_dir_all(&node_dir).unwrap();
                std::fs::write(
                    node_dir.join("server.properties"),
                    server_properties(id, broker_ports[i], controller_ports[i], &voters, &node_dir),
                )
                .unwrap();
                KafkaNode {
                    id,
                    port: broker_ports[i],
                    dir: node_dir,
                    process: None,
                }
            })
            .collect();
        let bootstrap = nodes
            .iter()
            .map(|n| format!("127.0.0.1:{}", n.port))
            .collect::<Vec<_>>()
            .join(",");
        let metadata = ClientConfig::new()
            .set("bootstrap.servers", &bootstrap)
            .create()
            .expect("creating a Kafka metadata client");
        let reaper = start_reaper(&dir);
        let mut cluster = KafkaCluster {
            dir,
            lib: lib.to_owned(),
            nodes,
            metadata,
            reaper,
        };

        let cluster_id = cluster_id();
        let formats: Vec<(i32, Child)> = cluster
            .nodes
            .iter()
            .map(|node| {
                let child = cluster
                    .java(&node.dir.join("format.log"), "warn")
                    .args(["kafka.tools.StorageTool", "format", "-t", &cluster_id, "-c"])
                    .arg(node.dir.join("server.properties"))
                    .spawn()
                    .expect("running java (Java 17 is needed for the Kafka cluster)");
                (node.id, child)
            })
            .collect();
        for (id, mut child) in formats {
            let status = child.wait().expect("waiting for the storage tool");
            assert!(
                status.success(),
                "formatting node {id}'s log dir failed ({status}):\n{}",
                cluster.log_tail(id, "format.log")
            );
        }
        for id in 1..=3 {
            cluster.restart(id);
        }
        cluster
    }

    fn bootstrap_servers(&self) -> String {
        self.nodes
            .iter()
            .map(|n| format!("127.0.0.1:{}", n.port))
            .collect::<Vec<_>>()
            .join(",")
    }

    /// `java` with a small heap, the shared log config, the jars, and output to `log`.
    fn java(&self, log: &Path, level: &str) -> Command {
        let out = File::options()
            .create(true)
            .append(true)
            .open(log)
            .expect("opening a broker log file");
        let mut command = Command::new("java");
        command
            .args([
                "-Xms128m",
                "-Xmx256m",
                "-XX:+UseG1GC",
                "-XX:TieredStopAtLevel=1",
            ])
            .arg("-Djava.awt.headless=true")
            .arg(format!("-Dtraptor.log.level={level}"))
            .arg(format!(
                "-Dlog4j2.configurationFile={}",
                self.dir.join("log4j2.properties").display()
            ))
            .arg("-cp")
            .arg(format!("{}/*", self.lib.display()))
            .stdin(Stdio::null())
            .stdout(out.try_clone().expect("duplicating a log file handle"))
            .stderr(out);
        command
    }

    fn node(&mut self, id: i32) -> &mut KafkaNode {
        self.nodes
            .iter_mut()
            .find(|n| n.id == id)
            .unwrap_or_else(|| panic!("no Kafka node {id}"))
    }

    /// Starts node `id` (again) in a process group of its own, on its old ports and data.
    fn restart(&mut self, id: i32) {
        let dir = self.node(id).dir.clone();
        let mut command = self.java(&dir.join("kafka.log"), "info");
        command
            .arg("kafka.Kafka")
            .arg(dir.join("server.properties"))
            .process_group(0);
        let child = command
            .spawn()
            .expect("running java (Java 17 is needed for the Kafka cluster)");
        // The process group's id, for the reaper.
        std::fs::write(dir.join("pgid"), child.id().to_string()).expect("writing a pgid file");
        self.node(id).process = Some(child);
    }

    /// `kill -9` of node `id`'s whole process group; returns once it is gone.
    fn kill(&mut self, id: i32) {
        let node = self.node(id);
        if let Some(mut child) = node.process.take() {
            kill_group(&mut child);
            let _ = std::fs::remove_file(node.dir.join("pgid"));
        }
    }

    /// Creates `name` with replication factor 3 (retrying while the cluster forms) and waits
    /// until every partition has all three replicas in sync and its preferred leader, so that
    /// leadership is spread as it will be again after the restart.
    fn create_replicated_topic(&self, name: &str, partitions: i32, limit: Duration) {
        let deadline = Instant::now() + limit;
        let admin: AdminClient<DefaultClientContext> = ClientConfig::new()
            .set("bootstrap.servers", self.bootstrap_servers())
            .create()
            .expect("creating the Kafka admin client");
        let topic = NewTopic::new(name, partitions, TopicReplication::Fixed(3))
            .set("message.timestamp.type", "LogAppendTime");
        let options = AdminOptions::new()
            .operation_timeout(Some(Duration::from_secs(10)))
            .request_timeout(Some(Duration::from_secs(10)));
        let rt = runtime();
        loop {
            self.assert_all_running();
            let outcome = match rt.block_on(admin.create_topics([&topic], &options)) {
                Ok(results) => match results.into_iter().next() {
                    Some(Ok(_)) | Some(Err((_, RDKafkaErrorCode::TopicAlreadyExists))) => Ok(()),
                    Some(Err((_, code))) => Err(code.to_string()),
                    None => Err("no result".to_owned()),
                },
                Err(e) => Err(e.to_string()),
            };
            match outcome {
                Ok(()) => break,
                Err(why) => assert!(
                    Instant::now() < deadline,
                    "the Kafka cluster did not create {name} within {limit:?}: {why}\n{}",
                    self.log_tails()
                ),
            }
            thread::sleep(Duration::from_millis(500));
        }
        let left = deadline.saturating_duration_since(Instant::now());
        self.wait_for_partitions(name, left, "three in-sync replicas", |p| {
            p.led_by_preferred_replica() && p.isr.len() == 3
        });
    }

    /// The partitions of `topic`, or none while the metadata cannot be read.
    fn partitions(&self, topic: &str) -> Vec<PartitionState> {
        let Ok(metadata) = self
            .metadata
            .fetch_metadata(Some(topic), Duration::from_secs(5))
        else {
            return Vec::new();
        };
        let mut partitions: Vec<PartitionState> = metadata
            .topics()
            .iter()
            .filter(|t| t.name() == topic && t.error().is_none())
            .flat_map(|t| t.partitions())
            .map(|p| PartitionState {
                id: p.id(),
                leader: p.leader(),
                replicas: p.replicas().to_vec(),
                isr: p.isr().to_vec(),
            })
            .collect();
        partitions.sort_by_key(|p| p.id);
        partitions
    }

    /// Waits until every partition of `topic` satisfies `check`; returns them then.
    #[track_caller]
    fn wait_for_partitions(
        &self,
        topic: &str,
        limit: Duration,
        what: &str,
        check: impl Fn(&PartitionState) -> bool,
    ) -> Vec<PartitionState> {
        let deadline = Instant::now() + limit;
        loop {
            self.assert_all_running();
            let partitions = self.partitions(topic);
            if partitions.len() == PARTITIONS as usize && partitions.iter().all(&check) {
                return partitions;
            }
            assert!(
                Instant::now() < deadline,
                "{topic}: no {what} within {limit:?}: {}\n{}",
                describe(&partitions),
                self.log_tails()
            );
            thread::sleep(Duration::from_millis(200));
        }
    }

    /// Panics with the logs when a node that should run has exited.
    fn assert_all_running(&self) {
        for node in &self.nodes {
            let Some(process) = &node.process else {
                continue;
            };
            if !pid_alive(process.id()) {
                panic!(
                    "Kafka node {} exited:\n{}",
                    node.id,
                    self.log_tail(node.id, "kafka.log")
                );
            }
        }
    }

    fn log_tail(&self, id: i32, file: &str) -> String {
        let path = self.dir.join(format!("node{id}")).join(file);
        let text = std::fs::read_to_string(&path).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        format!(
            "--- {} (last 30 lines)\n{}",
            path.display(),
            lines[lines.len().saturating_sub(30)..].join("\n")
        )
    }

    fn log_tails(&self) -> String {
        (1..=3)
            .map(|id| self.log_tail(id, "kafka.log"))
            .collect::<Vec<_>>()
            .join("\n")
    }
}

impl Drop for KafkaCluster {
    fn drop(&mut self) {
        for id in 1..=3 {
            self.kill(id);
        }
        let _ = self.reaper.kill();
        let _ = self.reaper.wait();
        if thread::panicking() {
            eprintln!(
                "the Kafka cluster's logs are kept in {}",
                self.dir.display()
            );
        } else {
            let _ = std::fs::remove_dir_all(&self.dir);
        }
    }
}

/// A process of its own group that outlives a killed test (SIGKILL, a CI timeout) and then
/// kills the brokers' groups named in `<dir>/node*/pgid`. It ends when `dir` is gone.
fn start_reaper(dir: &Path) -> Child {
    const SCRIPT: &str = r#"while kill -0 "$1" 2>/dev/null && [ -d "$2" ]; do sleep 1; done
for f in "$2"/node*/pgid; do [ -s "$f" ] && kill -KILL -- "-$(cat "$f")" 2>/dev/null; done
exit 0"#;
    Command::new("bash")
        .args(["-c", SCRIPT, "traptor-kafka-reaper"])
        .arg(std::process::id().to_string())
        .arg(dir)
        .process_group(0)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("starting bash to watch over the Kafka cluster")
}

/// SIGKILL to the process group `child` leads, then reaps it.
fn kill_group(child: &mut Child) {
    let _ = Command::new("kill")
        .args(["-KILL", "--", &format!("-{}", child.id())])
        .stderr(Stdio::null())
        .status();
    let _ = child.kill();
    let _ = child.wait();
}

/// True while `pid` runs (a zombie counts as gone).
fn pid_alive(pid: u32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Ok(stat) => !stat
            .rsplit_once(") ")
            .is_some_and(|(_, rest)| rest.starts_with('Z')),
        Err(_) => false,
    }
}

/// One node's config: a combined broker and controller of a static three-voter quorum, every
/// topic replicated three times and writable with two replicas in sync.
fn server_properties(id: i32, port: u16, controller_port: u16, voters: &str, dir: &Path) -> String {
    format!(
        "process.roles=broker,controller
node.id={id}
listeners=PLAINTEXT://127.0.0.1:{port},CONTROLLER://127.0.0.1:{controller_port}
advertised.listeners=PLAINTEXT://127.0.0.1:{port}
listener.security.protocol.map=PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT
inter.broker.listener.name=PLAINTEXT
controller.listener.names=CONTROLLER
controller.quorum.voters={voters}
log.dirs={data}
offsets.topic.replication.factor=3
transaction.state.log.replication.factor=3
transaction.state.log.min.isr=2
share.coordinator.state.topic.replication.factor=3
share.coordinator.state.topic.min.isr=2
default.replication.factor=3
min.insync.replicas=2
auto.create.topics.enable=false
num.partitions={PARTITIONS}
group.initial.rebalance.delay.ms=0
# The log cleaner's default 128 MiB buffer does not fit the small heap.
log.cleaner.dedupe.buffer.size=16777216
# Leadership goes back to a restarted broker soon: a second leader change while traptor writes.
leader.imbalance.check.interval.seconds=5
# A dead broker is fenced (and its partitions get new leaders) after 6 s without heartbeat.
broker.heartbeat.interval.ms=1000
broker.session.timeout.ms=6000
",
        data = dir.join("data").display()
    )
}

/// `count` distinct loopback ports nothing listens on now.
fn distinct_free_ports(count: usize) -> Vec<u16> {
    // Holding the listeners until all are picked keeps the ports distinct.
    let listeners: Vec<TcpListener> = (0..count)
        .map(|_| TcpListener::bind("127.0.0.1:0").expect("binding a free port"))
        .collect();
    listeners
        .iter()
        .map(|l| l.local_addr().unwrap().port())
        .collect()
}

/// A cluster id as Kafka wants it: 16 bytes, base64url without padding (22 characters).
fn cluster_id() -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_nanos();
    let bits = nanos ^ (u128::from(std::process::id()) << 96);
    let bytes = bits.to_be_bytes();
    let mut out = String::new();
    for chunk in bytes.chunks(3) {
        let mut n = 0u32;
        for (i, b) in chunk.iter().enumerate() {
            n |= u32::from(*b) << (16 - 8 * i);
        }
        for i in 0..=chunk.len() {
            out.push(ALPHABET[(n >> (18 - 6 * i) & 63) as usize] as char);
        }
    }
    out
}
