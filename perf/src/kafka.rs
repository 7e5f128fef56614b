//! The Kafka side of the benchmarks: topics, how many records a topic holds (the sum of its
//! partitions' high watermarks, the broker's own count of acknowledged records), and a full
//! read-back of a topic for the ground-truth comparison.

use std::cell::RefCell;
use std::collections::HashMap;
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::error::RDKafkaErrorCode;
use rdkafka::message::{Headers, Message};
use rdkafka::{Offset, TopicPartitionList};

/// The header naming a record's kind, written by traptor's Kafka sink.
pub const MESSAGE_TYPE_HEADER: &str = "traptor.message_type";

/// Creates `topic` with `partitions` partitions and waits until each has a leader.
pub fn create_topic(brokers: &str, topic: &str, partitions: i32) -> anyhow::Result<()> {
    let admin: AdminClient<DefaultClientContext> = ClientConfig::new()
        .set("bootstrap.servers", brokers)
        .create()
        .context("creating the Kafka admin client")?;
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let new = NewTopic::new(topic, partitions, TopicReplication::Fixed(1));
    let options = AdminOptions::new().operation_timeout(Some(Duration::from_secs(30)));
    let results = runtime
        .block_on(admin.create_topics([&new], &options))
        .with_context(|| format!("creating topic {topic} on {brokers}"))?;
    for result in results {
        match result {
            Ok(_) | Err((_, RDKafkaErrorCode::TopicAlreadyExists)) => {}
            Err((name, code)) => bail!("creating topic {name}: {code}"),
        }
    }
    let client = metadata_client(brokers)?;
    let deadline = Instant::now() + Duration::from_secs(30);
    while partitions_with_leader(&client, topic).len() < partitions as usize {
        if Instant::now() >= deadline {
            bail!("topic {topic} has no leader for every partition after 30 s");
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    Ok(())
}

/// Counts the records in a topic from its partitions' high watermarks.
pub struct TopicCounter {
    /// Replaced when it keeps failing (see [`TopicCounter::count`]).
    client: RefCell<BaseConsumer>,
    brokers: String,
    topic: String,
    partitions: Vec<i32>,
}

impl TopicCounter {
    pub fn new(brokers: &str, topic: &str) -> anyhow::Result<TopicCounter> {
        let client = metadata_client(brokers)?;
        let partitions = partitions_with_leader(&client, topic);
        if partitions.is_empty() {
            bail!("topic {topic} has no partition with a leader");
        }
        Ok(TopicCounter {
            client: RefCell::new(client),
            brokers: brokers.to_owned(),
            topic: topic.to_owned(),
            partitions,
        })
    }

    /// Records acknowledged so far, all partitions together. A broker that was just resumed
    /// may answer "not leader" for a while: retried for up to 30 s. A client that still fails
    /// after 5 s is replaced: once, after a paused broker, librdkafka's client kept reporting
    /// "unknown partition" for 30 s.
    pub fn count(&self) -> anyhow::Result<u64> {
        let started = Instant::now();
        let mut fresh_client_at = started + Duration::from_secs(5);
        loop {
            match self.count_once() {
                Ok(total) => return Ok(total),
                Err(e) if started.elapsed() >= Duration::from_secs(30) => return Err(e),
                Err(_) => {
                    if Instant::now() >= fresh_client_at {
                        if let Ok(client) = metadata_client(&self.brokers) {
                            *self.client.borrow_mut() = client;
                        }
                        fresh_client_at = Instant::now() + Duration::from_secs(5);
                    }
                    std::thread::sleep(Duration::from_millis(200));
                }
            }
        }
    }

    fn count_once(&self) -> anyhow::Result<u64> {
        let mut total = 0u64;
        for &partition in &self.partitions {
            let (low, high) = self
                .client
                .borrow()
                .fetch_watermarks(&self.topic, partition, Duration::from_secs(10))
                .with_context(|| format!("watermarks of {}/{partition}", self.topic))?;
            total += (high - low).max(0) as u64;
        }
        Ok(total)
    }

    /// Waits until the count stops growing for `quiet` (the writer has drained), at most
    /// `limit`; returns the last count.
    pub fn wait_until_stable(&self, quiet: Duration, limit: Duration) -> anyhow::Result<u64> {
        let deadline = Instant::now() + limit;
        let mut last = self.count()?;
        let mut since = Instant::now();
        loop {
            std::thread::sleep(Duration::from_millis(250));
            let now = self.count()?;
            if now != last {
                last = now;
                since = Instant::now();
            } else if since.elapsed() >= quiet {
                return Ok(now);
            }
            if Instant::now() >= deadline {
                return Ok(now);
            }
        }
    }
}

/// A record as read back, kept to be produced again by the bare-producer baseline.
#[derive(Debug, Clone)]
pub struct OwnedRecord {
    pub key: Option<Vec<u8>>,
    pub payload: Vec<u8>,
    pub headers: Vec<(String, Vec<u8>)>,
}

/// What a topic holds, read from the beginning.
#[derive(Debug, Default)]
pub struct Readout {
    pub records: u64,
    pub payload_bytes: u64,
    /// Tweet id (the record key) → copies, for records whose kind header says `tweet`.
    pub tweet_keys: HashMap<u64, u32>,
    /// Tweet records whose key is no tweet id.
    pub tweets_without_id_key: u64,
    /// The first records, byte for byte (up to the pool size asked for).
    pub pool: Vec<OwnedRecord>,
}

/// Reads `topic` from the beginning until `expected` records were read or nothing arrived
/// for `idle`; keeps the first `pool_size` records whole.
pub fn read_topic(
    brokers: &str,
    topic: &str,
    expected: u64,
    pool_size: usize,
    idle: Duration,
) -> anyhow::Result<Readout> {
    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", brokers)
        .set("group.id", crate::cluster::unique("traptor-perf-reader"))
        .set("enable.auto.commit", "false")
        .set("enable.partition.eof", "false")
        .create()
        .context("creating the Kafka consumer")?;
    let mut assignment = TopicPartitionList::new();
    for partition in partitions_with_leader(&consumer, topic) {
        assignment.add_partition_offset(topic, partition, Offset::Beginning)?;
    }
    consumer.assign(&assignment)?;
    let mut readout = Readout::default();
    let mut last_record = Instant::now();
    while readout.records < expected && last_record.elapsed() < idle {
        let Some(result) = consumer.poll(Duration::from_millis(200)) else {
            continue;
        };
        let message = result.with_context(|| format!("reading {topic}"))?;
        last_record = Instant::now();
        readout.records += 1;
        let payload = message.payload().unwrap_or_default();
        readout.payload_bytes += payload.len() as u64;
        let mut is_tweet = false;
        let mut headers = Vec::new();
        if let Some(found) = message.headers() {
            for header in found.iter() {
                let value = header.value.unwrap_or_default();
                if header.key == MESSAGE_TYPE_HEADER && value == b"tweet" {
                    is_tweet = true;
                }
                if readout.pool.len() < pool_size {
                    headers.push((header.key.to_owned(), value.to_vec()));
                }
            }
        }
        if is_tweet {
            match message
                .key()
                .and_then(|k| std::str::from_utf8(k).ok())
                .and_then(|k| k.parse::<u64>().ok())
            {
                Some(id) => *readout.tweet_keys.entry(id).or_default() += 1,
                None => readout.tweets_without_id_key += 1,
            }
        }
        if readout.pool.len() < pool_size {
            readout.pool.push(OwnedRecord {
                key: message.key().map(<[u8]>::to_vec),
                payload: payload.to_vec(),
                headers,
            });
        }
    }
    Ok(readout)
}

fn metadata_client(brokers: &str) -> anyhow::Result<BaseConsumer> {
    ClientConfig::new()
        .set("bootstrap.servers", brokers)
        .create()
        .context("creating a Kafka metadata client")
}

fn partitions_with_leader(client: &BaseConsumer, topic: &str) -> Vec<i32> {
    let Ok(metadata) = client.fetch_metadata(Some(topic), Duration::from_secs(5)) else {
        return Vec::new();
    };
    metadata
        .topics()
        .iter()
        .filter(|t| t.name() == topic && t.error().is_none())
        .flat_map(|t| t.partitions())
        .filter(|p| p.leader() >= 0 && p.error().is_none())
        .map(|p| p.id())
        .collect()
}
