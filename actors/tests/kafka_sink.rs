//! The Kafka sink against the real broker started by `scripts/services.sh`: every record
//! arrives once, with its key and headers, on the topic its kind is routed to.

#[path = "../../tests/support/mod.rs"]
mod support;

use std::collections::BTreeMap;
use std::time::Duration;

use rdkafka::config::ClientConfig;
use rdkafka::consumer::{Consumer, StreamConsumer};
use rdkafka::message::{Headers, Message};
use rdkafka::{Offset, TopicPartitionList};
use traptor_actors::config::{KafkaConfig, SinkConfig};
use traptor_actors::messages::WriteBatch;
use traptor_actors::sinks::{start_writer, WriterHandle, MESSAGE_TYPE_HEADER, SLOT_HEADER};
use traptor_core::{MessageKind, Record, SlotId, StreamType};

/// One consumed record: key, payload and headers by name.
#[derive(Debug)]
struct Consumed {
    key: Option<String>,
    payload: String,
    headers: BTreeMap<String, String>,
}

fn record(kind: MessageKind, key: Option<String>, payload: String) -> Record {
    Record {
        kind,
        key,
        payload: payload.into_bytes(),
        slot: Some(SlotId::new(StreamType::Track, "0")),
        received_at_ms: 1,
    }
}

fn tweet(id: usize) -> Record {
    record(
        MessageKind::Tweet,
        Some(format!("{}", 1_000_000 + id)),
        format!("{{\"id_str\":\"{}\"}}", 1_000_000 + id),
    )
}

fn kafka_config(brokers: &str, topic: &str) -> KafkaConfig {
    KafkaConfig {
        bootstrap_servers: Some(brokers.to_owned()),
        topic: topic.to_owned(),
        ..KafkaConfig::default()
    }
}

/// Reads `topic` from the start until `expected` records came, then keeps listening for
/// `linger` to catch any duplicate.
async fn consume(
    brokers: &str,
    topic: &str,
    partitions: i32,
    expected: usize,
    linger: Duration,
) -> Vec<Consumed> {
    let consumer: StreamConsumer = ClientConfig::new()
        .set("bootstrap.servers", brokers)
        .set("group.id", support::unique_topic("kafka-sink-test-reader"))
        .set("enable.auto.commit", "false")
        .create()
        .expect("creating the test consumer");
    let mut assignment = TopicPartitionList::new();
    for partition in 0..partitions {
        assignment
            .add_partition_offset(topic, partition, Offset::Beginning)
            .unwrap();
    }
    consumer.assign(&assignment).unwrap();
    let mut out = Vec::new();
    let mut deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    loop {
        match tokio::time::timeout_at(deadline, consumer.recv()).await {
            Err(_) => break,
            Ok(Err(e)) => panic!("consuming {topic}: {e}"),
            Ok(Ok(message)) => {
                let headers = message
                    .headers()
                    .map(|headers| {
                        headers
                            .iter()
                            .map(|h| {
                                (
                                    h.key.to_owned(),
                                    String::from_utf8_lossy(h.value.unwrap_or_default())
                                        .into_owned(),
                                )
                            })
                            .collect()
                    })
                    .unwrap_or_default();
                out.push(Consumed {
                    key: message
                        .key()
                        .map(|k| String::from_utf8_lossy(k).into_owned()),
                    payload: String::from_utf8_lossy(message.payload().unwrap_or_default())
                        .into_owned(),
                    headers,
                });
                if out.len() == expected {
                    deadline = tokio::time::Instant::now() + linger;
                }
            }
        }
    }
    out
}

#[actix::test]
#[ignore = "needs Redis and Kafka: run scripts/test.sh"]
async fn records_arrive_once_with_keys_and_headers_on_their_topics() {
    let brokers = support::kafka_brokers();
    let topic = support::unique_topic("sink-tweets");
    let control = support::unique_topic("sink-control");
    support::create_topic(&brokers, &topic, 3).await;
    support::create_topic(&brokers, &control, 1).await;
    let config = KafkaConfig {
        control_topic: Some(control.clone()),
        ..kafka_config(&brokers, &topic)
    };
    let writer = start_writer(&SinkConfig::Kafka, &config).unwrap();

    const TWEETS: usize = 500;
    let tweets: Vec<Record> = (0..TWEETS).map(tweet).collect();
    send_all(&writer, &tweets, 64).await;
    let limits: Vec<Record> = (0..3)
        .map(|n| {
            record(
                MessageKind::Limit,
                None,
                format!("{{\"limit\":{{\"track\":{n}}}}}"),
            )
        })
        .collect();
    writer
        .batches
        .send(WriteBatch(limits))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        writer.shutdown(Duration::from_secs(30)).await,
        0,
        "everything is acknowledged"
    );
    let stats = writer.stats();
    assert_eq!(
        (stats.queued, stats.delivered, stats.given_up),
        (TWEETS as u64 + 3, TWEETS as u64 + 3, 0)
    );

    let consumed = consume(&brokers, &topic, 3, TWEETS, Duration::from_secs(2)).await;
    assert_eq!(consumed.len(), TWEETS, "exactly one copy of each tweet");
    let mut keys: Vec<String> = consumed
        .iter()
        .map(|c| c.key.clone().expect("tweets carry their id as key"))
        .collect();
    keys.sort();
    keys.dedup();
    assert_eq!(keys.len(), TWEETS, "no duplicates");
    for c in &consumed {
        assert_eq!(
            c.payload,
            format!("{{\"id_str\":\"{}\"}}", c.key.as_deref().unwrap())
        );
        assert_eq!(
            c.headers.get(MESSAGE_TYPE_HEADER).map(String::as_str),
            Some("tweet")
        );
        assert_eq!(
            c.headers.get(SLOT_HEADER).map(String::as_str),
            Some("track:0")
        );
    }

    let controls = consume(&brokers, &control, 1, 3, Duration::from_secs(1)).await;
    assert_eq!(controls.len(), 3);
    for c in &controls {
        assert_eq!(c.key, None);
        assert_eq!(
            c.headers.get(MESSAGE_TYPE_HEADER).map(String::as_str),
            Some("limit")
        );
        assert!(c.payload.starts_with("{\"limit\""));
    }
}

#[actix::test]
#[ignore = "needs Redis and Kafka: run scripts/test.sh"]
async fn a_tiny_in_flight_bound_still_delivers_everything() {
    let brokers = support::kafka_brokers();
    let topic = support::unique_topic("sink-bounded");
    support::create_topic(&brokers, &topic, 2).await;
    const MAX_IN_FLIGHT: usize = 4;
    let config = KafkaConfig {
        max_in_flight_records: MAX_IN_FLIGHT,
        ..kafka_config(&brokers, &topic)
    };
    let writer = start_writer(&SinkConfig::Kafka, &config).unwrap();

    const TWEETS: usize = 300;
    let tweets: Vec<Record> = (0..TWEETS).map(tweet).collect();
    for batch in tweets.chunks(25) {
        writer
            .batches
            .send(WriteBatch(batch.to_vec()))
            .await
            .unwrap()
            .unwrap();
        // The reply waits until the producer is back under the bound.
        assert!(
            writer.stats().in_flight < MAX_IN_FLIGHT as u64,
            "{:?}",
            writer.stats()
        );
    }
    assert_eq!(writer.shutdown(Duration::from_secs(30)).await, 0);

    assert_each_once(&brokers, &topic, &tweets).await;
}

/// Producer settings under which librdkafka soon takes a topic the broker does not list for
/// gone, and looks again twice a second: as a producer sees a topic while its broker restarts
/// and answers before it has loaded its topics.
fn topic_not_known_yet(mut config: KafkaConfig) -> KafkaConfig {
    let options = [
        ("allow.auto.create.topics", "false"),
        ("topic.metadata.propagation.max.ms", "200"),
        ("topic.metadata.refresh.interval.ms", "500"),
    ];
    for (name, value) in options {
        config.producer.0.insert(name.to_owned(), value.to_owned());
    }
    config
}

/// Creates `topic` after `delay`, while the writer waits for it.
fn create_topic_later(brokers: &str, topic: &str, delay: Duration) -> tokio::task::JoinHandle<()> {
    let (brokers, topic) = (brokers.to_owned(), topic.to_owned());
    tokio::spawn(async move {
        tokio::time::sleep(delay).await;
        support::create_topic(&brokers, &topic, 2).await;
    })
}

/// Sends `records` in batches of `batch`, awaiting each reply.
async fn send_all(writer: &WriterHandle, records: &[Record], batch: usize) {
    for batch in records.chunks(batch) {
        writer
            .batches
            .send(WriteBatch(batch.to_vec()))
            .await
            .unwrap()
            .unwrap();
    }
}

/// Asserts that each of `tweets` is in `topic` exactly once.
async fn assert_each_once(brokers: &str, topic: &str, tweets: &[Record]) {
    let consumed = consume(brokers, topic, 2, tweets.len(), Duration::from_secs(2)).await;
    let mut keys: Vec<String> = consumed.iter().filter_map(|c| c.key.clone()).collect();
    keys.sort();
    keys.dedup();
    let mut sent: Vec<String> = tweets.iter().filter_map(|t| t.key.clone()).collect();
    sent.sort();
    assert_eq!(
        consumed.len(),
        tweets.len(),
        "exactly one copy of each tweet"
    );
    assert_eq!(keys, sent);
}

/// librdkafka refuses a record outright while it takes the topic for gone. That is not a reason
/// to give the record up: the writer (and its retries) wait until the topic is known again.
#[actix::test]
#[ignore = "needs Redis and Kafka: run scripts/test.sh"]
async fn records_wait_while_their_topic_is_not_known_and_none_is_given_up() {
    support::show_logs();
    let brokers = support::kafka_brokers();
    let topic = support::unique_topic("sink-topic-later");
    let config = topic_not_known_yet(kafka_config(&brokers, &topic));
    let writer = start_writer(&SinkConfig::Kafka, &config).unwrap();

    const TWEETS: usize = 100;
    let tweets: Vec<Record> = (0..TWEETS).map(tweet).collect();
    // Taken while the topic's state is still unknown to librdkafka; they fail once it decides
    // the topic does not exist, and their retries are refused.
    send_all(&writer, &tweets[..TWEETS / 2], 25).await;
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    while writer.stats().failed == 0 {
        assert!(
            std::time::Instant::now() < deadline,
            "librdkafka never failed a record of the missing topic: {:?}",
            writer.stats()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let created = create_topic_later(&brokers, &topic, Duration::from_secs(2));
    // Refused outright by librdkafka until the topic is known: the reply waits.
    send_all(&writer, &tweets[TWEETS / 2..], 25).await;
    created.await.unwrap();
    assert_eq!(writer.shutdown(Duration::from_secs(60)).await, 0);
    let stats = writer.stats();
    assert_eq!(
        (stats.delivered, stats.given_up),
        (TWEETS as u64, 0),
        "{stats:?}"
    );
    assert_each_once(&brokers, &topic, &tweets).await;
}

/// The same through the spool: records that failed go to the spool, and replay finds the topic
/// not known (as right after a broker restart). Replay waits; nothing is given up.
#[actix::test]
#[ignore = "needs Redis and Kafka: run scripts/test.sh"]
async fn replay_waits_while_the_topic_is_not_known_and_gives_nothing_up() {
    support::show_logs();
    let brokers = support::kafka_brokers();
    let topic = support::unique_topic("sink-replay-topic-later");
    let spool = tempfile::tempdir().unwrap();
    let mut config = topic_not_known_yet(kafka_config(&brokers, &topic));
    config.max_delivery_attempts = 1;
    config.spool.dir = Some(spool.path().to_owned());
    let writer = start_writer(&SinkConfig::Kafka, &config).unwrap();

    const TWEETS: usize = 100;
    let tweets: Vec<Record> = (0..TWEETS).map(tweet).collect();
    send_all(&writer, &tweets[..TWEETS / 2], 25).await;
    // The first failures reach the spool; replay then offers them to a producer that refuses
    // them, since it takes the topic for gone.
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    while writer.stats().replayed == 0 && writer.stats().spooled == 0 {
        assert!(
            std::time::Instant::now() < deadline,
            "no record reached the spool: {:?}",
            writer.stats()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    tokio::time::sleep(Duration::from_secs(2)).await;
    // Spooled behind the first half, in order.
    send_all(&writer, &tweets[TWEETS / 2..], 25).await;
    let waiting = writer.stats();
    assert_eq!(waiting.given_up, 0, "{waiting:?}");
    support::create_topic(&brokers, &topic, 2).await;
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    loop {
        let stats = writer.stats();
        if stats.delivered == TWEETS as u64 && stats.spool_records == 0 {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the spool was not replayed once the topic existed: {stats:?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(writer.shutdown(Duration::from_secs(30)).await, 0);
    let stats = writer.stats();
    assert_eq!(
        (stats.delivered, stats.given_up, stats.spool_records),
        (TWEETS as u64, 0, 0),
        "{stats:?}"
    );
    assert!(stats.spooled >= TWEETS as u64 / 2, "{stats:?}");
    assert_each_once(&brokers, &topic, &tweets).await;
}
