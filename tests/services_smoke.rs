//! Proves the test services from `scripts/services.sh` work: Redis answers and a
//! record makes a round trip through the real Kafka broker.

mod support;

use std::time::Duration;

use rdkafka::config::ClientConfig;
use rdkafka::producer::{FutureProducer, FutureRecord};

#[test]
#[ignore = "needs Redis and Kafka: run scripts/test.sh"]
fn redis_answers_ping() {
    let url = support::redis_url();
    let client = redis::Client::open(url.as_str()).expect("parsing TRAPTOR_TEST_REDIS_URL");
    let mut connection = client
        .get_connection()
        .unwrap_or_else(|e| panic!("connecting to Redis at {url}: {e}"));
    let reply: String = redis::cmd("PING")
        .query(&mut connection)
        .expect("PING failed");
    assert_eq!(reply, "PONG");
}

#[tokio::test]
#[ignore = "needs Redis and Kafka: run scripts/test.sh"]
async fn kafka_record_round_trips() {
    let brokers = support::kafka_brokers();
    let topic = support::unique_topic("smoke");
    support::create_topic(&brokers, &topic, 3).await;

    let producer: FutureProducer = ClientConfig::new()
        .set("bootstrap.servers", &brokers)
        .set("message.timeout.ms", "30000")
        .create()
        .expect("creating the Kafka producer");
    let payload = br#"{"id_str":"1","text":"hello from traptor"}"#;
    producer
        .send(
            FutureRecord::to(&topic)
                .key("rule-42")
                .payload(&payload[..]),
            Duration::from_secs(10),
        )
        .await
        .unwrap_or_else(|(e, _)| panic!("producing to {topic}: {e}"));

    let records = support::consume_all(&brokers, &topic, 1, Duration::from_secs(30)).await;
    assert_eq!(
        records,
        vec![(Some("rule-42".to_string()), payload.to_vec())],
        "expected exactly the produced record back from {topic}"
    );
}
