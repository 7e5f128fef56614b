//! Readiness follows the Kafka producer's view of its brokers (rdkafka's in-process mock
//! cluster stands in for Kafka).

mod status_support;

use std::collections::BTreeMap;
use std::time::{Duration, Instant, SystemTime};

use actix::prelude::*;
use rdkafka::mocking::MockCluster;
use status_support::FixedSupervisor;
use traptor_actors::config::{KafkaConfig, ProducerOptions, SinkConfig};
use traptor_actors::sinks::start_writer;
use traptor_actors::status::{
    report, RulesSourceView, StatusReport, StatusSources, StreamRegistry,
};
use traptor_actors::supervisor::status::{ClusterStatus, StatusSnapshot};

async fn wait_for_report(
    sources: &StatusSources,
    what: &str,
    mut condition: impl FnMut(&StatusReport) -> bool,
) {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let report = report::collect(sources).await.unwrap();
        if condition(&report) {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "timed out waiting for {what}: {:?}",
            report.writer
        );
        actix_rt::time::sleep(Duration::from_millis(50)).await;
    }
}

#[actix_rt::test]
async fn kafka_readiness_follows_the_brokers() {
    let cluster = MockCluster::new(1).unwrap();
    cluster.create_topic("traptor", 1, 1).unwrap();
    let mut producer = BTreeMap::new();
    // The operator's setting wins over traptor's default report interval.
    producer.insert("statistics.interval.ms".to_owned(), "100".to_owned());
    let kafka = KafkaConfig {
        bootstrap_servers: Some(cluster.bootstrap_servers()),
        producer: ProducerOptions(producer),
        ..KafkaConfig::default()
    };
    let writer = start_writer(&SinkConfig::Kafka, &kafka).unwrap();
    let nothing_planned = StatusSnapshot {
        connections: vec![],
        cluster: ClusterStatus::default(),
    };
    let sources = StatusSources {
        supervisor: FixedSupervisor(nothing_planned).start().recipient(),
        streams: StreamRegistry::default(),
        writer: Some(writer.clone()),
        rules: RulesSourceView::None,
        started_at: SystemTime::now(),
    };

    wait_for_report(&sources, "a broker up", |r| r.ready.ready).await;
    let report = report::collect(&sources).await.unwrap();
    let health = report.writer.unwrap().kafka.unwrap();
    assert!(health.brokers_up >= 1 && health.reports >= 1, "{health:?}");

    cluster.broker_down(1).unwrap();
    wait_for_report(&sources, "no broker up", |r| {
        r.ready
            .not_ready
            .iter()
            .any(|reason| reason.starts_with("kafka: no broker reachable"))
    })
    .await;

    cluster.broker_up(1).unwrap();
    wait_for_report(&sources, "the broker back", |r| r.ready.ready).await;
    assert_eq!(writer.shutdown(Duration::from_secs(2)).await, 0);
}
