//! `traptor-supervisor check`'s look at Kafka: with the sink's own settings, can traptor reach
//! the brokers and be let in, and do its topics exist? A wrong password, a certificate the
//! broker refuses or one traptor cannot verify, or a misspelled topic then shows before a
//! deploy, with librdkafka's reason, rather than as a supervisor that never gets ready.

use std::sync::Mutex;
use std::time::{Duration, Instant};

use rdkafka::client::ClientContext;
use rdkafka::config::RDKafkaLogLevel;
use rdkafka::error::KafkaError;
use rdkafka::message::DeliveryResult;
use rdkafka::metadata::Metadata;
use rdkafka::producer::{BaseProducer, Producer, ProducerContext};

use super::{creation_error_text, producer_config};
use crate::config::KafkaConfig;
use crate::sinks::SinkError;

/// What the probe found: the brokers answered, and each of traptor's topics as they see it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KafkaProbe {
    /// `[kafka] bootstrap_servers` as configured.
    pub bootstrap: String,
    /// How many brokers the cluster's metadata lists.
    pub brokers: usize,
    pub topics: Vec<TopicProbe>,
}

/// One topic traptor writes to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TopicProbe {
    pub name: String,
    /// `None` when the cluster does not know the topic.
    pub partitions: Option<usize>,
    /// Partitions without a leader: writes to them wait.
    pub leaderless: usize,
}

impl KafkaProbe {
    /// The lines `check` prints; a missing topic says what happens when traptor writes to it.
    pub fn render(&self) -> String {
        let mut out = format!(
            "kafka at {}: reached, {} broker(s)\n",
            self.bootstrap, self.brokers
        );
        for topic in &self.topics {
            let line = match topic.partitions {
                None => format!(
                    "  topic {}: does not exist (created on the first write only if the \
                     brokers have auto.create.topics.enable; otherwise records wait until it \
                     exists)",
                    topic.name
                ),
                Some(n) if topic.leaderless > 0 => format!(
                    "  topic {}: {n} partition(s), {} without a leader",
                    topic.name, topic.leaderless
                ),
                Some(n) => format!("  topic {}: {n} partition(s)", topic.name),
            };
            out.push_str(&line);
            out.push('\n');
        }
        out
    }
}

/// Keeps librdkafka's last reason for a failed connection: the metadata request itself only
/// ends with "timed out" or "transport failure", the reason (authentication failed,
/// certificate verify failed, connection refused) comes through this callback.
#[derive(Default)]
struct ProbeContext {
    last_error: Mutex<Option<String>>,
}

impl ClientContext for ProbeContext {
    /// Quiet: `check` prints one report, not librdkafka's retries.
    fn log(&self, _level: RDKafkaLogLevel, _facility: &str, _message: &str) {}

    fn error(&self, error: KafkaError, reason: &str) {
        let text = if reason.is_empty() {
            error.to_string()
        } else {
            reason.to_owned()
        };
        *self.last_error.lock().unwrap_or_else(|e| e.into_inner()) = Some(text);
    }
}

/// The probe sends nothing, so there are no deliveries to hear about.
impl ProducerContext for ProbeContext {
    type DeliveryOpaque = ();

    fn delivery(&self, _: &DeliveryResult<'_>, _: Self::DeliveryOpaque) {}
}

impl ProbeContext {
    fn last_error(&self) -> Option<String> {
        self.last_error
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }
}

/// A connection failure with a reason is reported after this long; without a reason (nothing
/// answered yet) the probe waits for the whole limit.
const REASON_GRACE: Duration = Duration::from_secs(3);

/// Asks the brokers for the cluster's metadata with the sink's producer settings, for up to
/// `limit`. Blocking. Every topic is listed (a request naming traptor's topics could create
/// them on brokers that auto-create).
pub fn probe_kafka(config: &KafkaConfig, limit: Duration) -> Result<KafkaProbe, SinkError> {
    let producer: BaseProducer<ProbeContext> = producer_config(config)
        .create_with_context(ProbeContext::default())
        .map_err(|e| SinkError::Setup(creation_error_text(&e)))?;
    let started = Instant::now();
    let metadata = loop {
        match producer
            .client()
            .fetch_metadata(None, Duration::from_secs(1))
        {
            Ok(metadata) => break metadata,
            Err(error) => {
                // Serves the error events queued meanwhile (the context's callback).
                producer.poll(Duration::ZERO);
                let reason = producer.context().last_error();
                let waited = started.elapsed();
                if waited >= limit || (reason.is_some() && waited >= REASON_GRACE) {
                    let servers = bootstrap_of(config);
                    let reason = reason.unwrap_or_else(|| error.to_string());
                    return Err(SinkError::Io(format!(
                        "the brokers at {servers} (tried for {} s): {reason}{}",
                        waited.as_secs(),
                        connection_hint(&reason)
                    )));
                }
            }
        }
    };
    Ok(from_metadata(config, &metadata))
}

/// What to change for a refusal whose text does not name a setting (librdkafka's own text
/// already points at `ssl.ca.location` for a broker certificate it cannot verify).
fn connection_hint(reason: &str) -> &'static str {
    if reason.contains("alert bad certificate") || reason.contains("alert certificate required") {
        " (the broker wants a client certificate it trusts: set ssl.keystore.location, or \
         ssl.certificate.location and ssl.key.location)"
    } else {
        ""
    }
}

/// The brokers asked first, as librdkafka gets them: a `bootstrap.servers` in
/// `[kafka.producer]` overrides `[kafka] bootstrap_servers`.
fn bootstrap_of(config: &KafkaConfig) -> &str {
    config
        .producer
        .0
        .get("bootstrap.servers")
        .or(config.bootstrap_servers.as_ref())
        .map_or("(no bootstrap servers)", String::as_str)
}

fn from_metadata(config: &KafkaConfig, metadata: &Metadata) -> KafkaProbe {
    let mut names = vec![config.topic.as_str()];
    for extra in [&config.control_topic, &config.dead_letter_topic]
        .into_iter()
        .flatten()
    {
        if !names.contains(&extra.as_str()) {
            names.push(extra);
        }
    }
    let topics = names
        .into_iter()
        .map(|name| {
            let found = metadata
                .topics()
                .iter()
                .find(|t| t.name() == name && t.error().is_none());
            TopicProbe {
                name: name.to_owned(),
                partitions: found.map(|t| t.partitions().len()),
                leaderless: found.map_or(0, |t| {
                    t.partitions().iter().filter(|p| p.leader() < 0).count()
                }),
            }
        })
        .collect();
    KafkaProbe {
        bootstrap: bootstrap_of(config).to_owned(),
        brokers: metadata.brokers().len(),
        topics,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_missing_topic_says_what_a_write_to_it_does() {
        let probe = KafkaProbe {
            bootstrap: "k1:9092".into(),
            brokers: 1,
            topics: vec![
                TopicProbe {
                    name: "tweets".into(),
                    partitions: Some(3),
                    leaderless: 0,
                },
                TopicProbe {
                    name: "control".into(),
                    partitions: None,
                    leaderless: 0,
                },
                TopicProbe {
                    name: "dead".into(),
                    partitions: Some(2),
                    leaderless: 1,
                },
            ],
        };
        assert_eq!(
            probe.render(),
            "kafka at k1:9092: reached, 1 broker(s)\n  topic tweets: 3 partition(s)\n  topic control: does \
             not exist (created on the first write only if the brokers have \
             auto.create.topics.enable; otherwise records wait until it exists)\n  topic dead: 2 partition(s), 1 without a leader\n"
        );
    }

    #[test]
    fn a_broker_that_is_not_there_is_reported_with_librdkafkas_reason() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        drop(listener);
        let config = KafkaConfig {
            bootstrap_servers: Some(format!("127.0.0.1:{port}")),
            ..KafkaConfig::default()
        };
        let started = Instant::now();
        let error = probe_kafka(&config, Duration::from_secs(10))
            .unwrap_err()
            .to_string();
        assert!(
            error.contains(&format!("the brokers at 127.0.0.1:{port} (tried for"))
                && error.contains("Connection refused"),
            "{error}"
        );
        assert!(
            started.elapsed() < Duration::from_secs(8),
            "a refused connection is reported without waiting for the whole limit"
        );
    }
}
