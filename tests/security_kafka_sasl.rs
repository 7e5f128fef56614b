//! Kafka with SASL and TLS: the supervisor as a process, writing through the test broker's
//! secured listeners from `scripts/services.sh`: SASL_PLAINTEXT (a test-only PLAIN account,
//! and OAUTHBEARER with unsecured tokens), SASL_SSL (TLS with a self-signed certificate, a
//! test-only account for SCRAM-SHA-512 and SCRAM-SHA-256) and SSL with mutual TLS (a client
//! certificate in a PKCS#12 keystore, or as PEM files).
//! With the right secret every message traptor received is in Kafka; with a wrong one, no
//! client certificate, or a broker certificate it was not told to trust, the operator sees why
//! and an unready `/readyz` or a refused start, and the secret appears nowhere.

mod e2e_common;
mod support;

use std::path::PathBuf;
use std::time::{Duration, Instant};

use e2e_common::emulator::{
    emulator_config, keys_toml, runtime, start_emulator, test_keys, tweets_sent, wait_for_stats,
};
use e2e_common::http::{free_port, http_get};
use e2e_common::{received_per_key, unique, Supervisor};
use traptor_firehose::FirehoseHandle;

/// A secured listener and how to reach it, from `scripts/services.sh`.
struct SecuredBroker {
    brokers: String,
    /// `[kafka.producer]` lines other than the secret's.
    settings: String,
    /// The option that holds the secret, given through `${TEST_KAFKA_PASSWORD}`.
    secret_option: Option<&'static str>,
    /// The right secret: a SASL password or the client keystore's password.
    secret: String,
}

fn service_var(name: &str) -> String {
    std::env::var(name).unwrap_or_else(|_| {
        panic!("{name} is not set: restart the services with scripts/services.sh (it adds the secured listeners)")
    })
}

impl SecuredBroker {
    /// SASL/PLAIN without TLS.
    fn plain() -> SecuredBroker {
        SecuredBroker {
            brokers: service_var("TRAPTOR_TEST_KAFKA_SASL_BROKERS"),
            settings: format!(
                "\n\"security.protocol\" = \"sasl_plaintext\"\n\"sasl.mechanisms\" = \"PLAIN\"\n\"sasl.username\" = \"{}\"",
                service_var("TRAPTOR_TEST_KAFKA_SASL_USER")
            ),
            secret_option: Some("sasl.password"),
            secret: service_var("TRAPTOR_TEST_KAFKA_SASL_PASSWORD"),
        }
    }

    /// SASL/OAUTHBEARER on the same listener, with librdkafka's unsecured JWT (a token it signs
    /// with "none", which the test broker's default validator accepts): the mechanism's
    /// exchange with a real broker, not an identity provider (OIDC needs one).
    fn oauthbearer_unsecured() -> SecuredBroker {
        SecuredBroker {
            brokers: service_var("TRAPTOR_TEST_KAFKA_SASL_BROKERS"),
            settings: "\n\"security.protocol\" = \"sasl_plaintext\"\n\"sasl.mechanisms\" = \
                       \"OAUTHBEARER\"\n\"enable.sasl.oauthbearer.unsecure.jwt\" = \"true\"\n\
                       \"sasl.oauthbearer.config\" = \"principal=traptor-test\""
                .to_owned(),
            secret_option: None,
            secret: String::new(),
        }
    }

    /// SASL/SCRAM (`SCRAM-SHA-512` or `SCRAM-SHA-256`) over TLS, trusting the broker's
    /// certificate as `config/cluster.toml` shows (`ssl.ca.location`); the host name is checked
    /// against it (librdkafka's default).
    fn scram_over_tls(mechanism: &str) -> SecuredBroker {
        let mut broker = SecuredBroker::scram_over_tls_without_ca(mechanism);
        broker.settings.push_str(&trust_the_broker());
        broker
    }

    /// As [`SecuredBroker::scram_over_tls`] without the broker's CA: its self-signed
    /// certificate cannot be verified.
    fn scram_over_tls_without_ca(mechanism: &str) -> SecuredBroker {
        SecuredBroker {
            brokers: service_var("TRAPTOR_TEST_KAFKA_SCRAM_TLS_BROKERS"),
            settings: format!(
                "\n\"security.protocol\" = \"sasl_ssl\"\n\"sasl.mechanisms\" = \"{mechanism}\"\n\"sasl.username\" = \"{}\"",
                service_var("TRAPTOR_TEST_KAFKA_SCRAM_USER")
            ),
            secret_option: Some("sasl.password"),
            secret: service_var("TRAPTOR_TEST_KAFKA_SCRAM_PASSWORD"),
        }
    }

    /// Mutual TLS: the broker requires a client certificate, which traptor presents from a
    /// PKCS#12 keystore (`ssl.keystore.location`, its password through the environment).
    fn mutual_tls() -> SecuredBroker {
        let mut broker = SecuredBroker::mutual_tls_without_certificate();
        broker.settings.push_str(&format!(
            "\n\"ssl.keystore.location\" = \"{}\"",
            service_var("TRAPTOR_TEST_KAFKA_CLIENT_KEYSTORE")
        ));
        broker.secret_option = Some("ssl.keystore.password");
        broker.secret = service_var("TRAPTOR_TEST_KAFKA_CLIENT_KEYSTORE_PASSWORD");
        broker
    }

    /// Mutual TLS with the client certificate and its key as PEM files
    /// (`ssl.certificate.location`, `ssl.key.location`).
    fn mutual_tls_with_pem_files() -> SecuredBroker {
        let mut broker = SecuredBroker::mutual_tls_without_certificate();
        broker.settings.push_str(&format!(
            "\n\"ssl.certificate.location\" = \"{}\"\n\"ssl.key.location\" = \"{}\"",
            service_var("TRAPTOR_TEST_KAFKA_CLIENT_CERT_PEM"),
            service_var("TRAPTOR_TEST_KAFKA_CLIENT_KEY_PEM")
        ));
        broker
    }

    /// The mutual-TLS listener with the broker trusted but no client certificate.
    fn mutual_tls_without_certificate() -> SecuredBroker {
        SecuredBroker {
            brokers: service_var("TRAPTOR_TEST_KAFKA_MTLS_BROKERS"),
            settings: format!("\n\"security.protocol\" = \"ssl\"{}", trust_the_broker()),
            secret_option: None,
            secret: String::new(),
        }
    }
}

/// The `[kafka.producer]` line that trusts the test broker's self-signed certificate.
fn trust_the_broker() -> String {
    format!(
        "\n\"ssl.ca.location\" = \"{}\"",
        service_var("TRAPTOR_TEST_KAFKA_CA")
    )
}

/// One stream into Kafka through a secured listener; the secret reaches the config through
/// `${…}`.
struct World {
    emulator: FirehoseHandle,
    dir: PathBuf,
    topic: String,
    status_port: u16,
    config: String,
}

impl World {
    fn new(broker: &SecuredBroker) -> World {
        let keys = test_keys("sasl", 1);
        let emulator = start_emulator(emulator_config(&keys, 30.0));
        let dir = std::env::temp_dir().join(unique("traptor-sasl"));
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(
            dir.join("rules.json"),
            r#"{"track:0": [{"rule_id": "1", "value": "alpha", "rule_type": "track", "orig_type": "keyword"}]}"#,
        )
        .unwrap();
        let topic = support::unique_topic("traptor-sasl");
        runtime().block_on(support::create_topic(&support::kafka_brokers(), &topic, 1));
        let status_port = free_port();
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

[kafka.producer]{settings}{secret}

[status]
listen = "127.0.0.1:{status_port}"

[log]
level = "info"
status_interval_secs = 0

[stream]
endpoint = "{endpoint}"
{keys}"#,
            brokers = broker.brokers,
            settings = broker.settings,
            secret = broker
                .secret_option
                .map(|option| format!("\n\"{option}\" = \"${{TEST_KAFKA_PASSWORD}}\""))
                .unwrap_or_default(),
            endpoint = emulator.url(),
            keys = keys_toml(&keys),
        );
        World {
            emulator,
            dir,
            topic,
            status_port,
            config,
        }
    }

    fn start(&self, secret: &str) -> Supervisor {
        Supervisor::start_with_env(&self.config, &self.dir, &[("TEST_KAFKA_PASSWORD", secret)])
    }
}

impl World {
    /// Waits until `/readyz` answers 503 with librdkafka's `reason` for the refusal: an
    /// operator sees why Kafka is unusable, not only that it is.
    fn wait_until_unready_because(&self, reason: &str) {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let answer = http_get(self.status_port, "/readyz");
            if let Some((503, body)) = &answer {
                if body.contains(reason) {
                    return;
                }
            }
            assert!(
                Instant::now() < deadline,
                "/readyz never gave the reason {reason:?}: {answer:?}"
            );
            std::thread::sleep(Duration::from_millis(200));
        }
    }

    /// `traptor-supervisor check` on this world's config: exit success, stdout, stderr.
    fn check(&self, secret: &str) -> (bool, String, String) {
        let path = self.dir.join("check.toml");
        std::fs::write(&path, &self.config).unwrap();
        let output = std::process::Command::new(env!("CARGO_BIN_EXE_traptor-supervisor"))
            .arg("check")
            .arg("--config")
            .arg(&path)
            .env("TEST_KAFKA_PASSWORD", secret)
            .output()
            .expect("running traptor-supervisor check");
        (
            output.status.success(),
            String::from_utf8_lossy(&output.stdout).into_owned(),
            String::from_utf8_lossy(&output.stderr).into_owned(),
        )
    }
}

impl Drop for World {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

#[test]
#[ignore = "needs Redis and Kafka: run scripts/test.sh"]
fn records_reach_kafka_through_a_sasl_listener() {
    records_reach_kafka_through(&SecuredBroker::plain());
}

#[test]
#[ignore = "needs Redis and Kafka: run scripts/test.sh"]
fn records_reach_kafka_over_tls_with_scram() {
    records_reach_kafka_through(&SecuredBroker::scram_over_tls("SCRAM-SHA-512"));
}

#[test]
#[ignore = "needs Redis and Kafka: run scripts/test.sh"]
fn records_reach_kafka_over_tls_with_scram_sha_256() {
    records_reach_kafka_through(&SecuredBroker::scram_over_tls("SCRAM-SHA-256"));
}

#[test]
#[ignore = "needs Redis and Kafka: run scripts/test.sh"]
fn records_reach_kafka_over_mutual_tls() {
    records_reach_kafka_through(&SecuredBroker::mutual_tls());
}

#[test]
#[ignore = "needs Redis and Kafka: run scripts/test.sh"]
fn records_reach_kafka_over_mutual_tls_with_pem_files() {
    records_reach_kafka_through(&SecuredBroker::mutual_tls_with_pem_files());
}

#[test]
#[ignore = "needs Redis and Kafka: run scripts/test.sh"]
fn records_reach_kafka_with_oauthbearer() {
    records_reach_kafka_through(&SecuredBroker::oauthbearer_unsecured());
}

fn records_reach_kafka_through(broker: &SecuredBroker) {
    let world = World::new(broker);
    let mut supervisor = world.start(&broker.secret);
    wait_for_stats(
        &world.emulator,
        Duration::from_secs(20),
        "tweets",
        &supervisor,
        |s| tweets_sent(s) >= 60,
    );
    let deadline = Instant::now() + Duration::from_secs(20);
    while http_get(world.status_port, "/readyz").map(|(status, _)| status) != Some(200) {
        assert!(
            Instant::now() < deadline,
            "never ready: {:?}\nstderr:\n{}",
            http_get(world.status_port, "/readyz"),
            supervisor.stderr()
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    let status = supervisor.terminate(Duration::from_secs(20));
    let stderr = supervisor.stderr();
    assert!(status.success(), "{status}; stderr:\n{stderr}");
    assert!(
        stderr.contains("all records delivered; stopped cleanly"),
        "{stderr}"
    );

    let received: u64 = received_per_key(&stderr).values().map(|r| r.messages).sum();
    assert!(received >= 30, "{received} messages received");
    let records = runtime().block_on(support::consume_all(
        &support::kafka_brokers(),
        &world.topic,
        received as usize,
        Duration::from_secs(30),
    ));
    assert_eq!(
        records.len() as u64,
        received,
        "every message received is in Kafka"
    );
    let output = format!("{stderr}\n{}", supervisor.stdout().join("\n"));
    assert!(
        broker.secret.is_empty() || !output.contains(&broker.secret),
        "the secret was printed"
    );
}

#[test]
#[ignore = "needs Redis and Kafka: run scripts/test.sh"]
fn a_wrong_sasl_password_is_reported_and_never_printed() {
    a_wrong_password_is_reported_and_never_printed(&SecuredBroker::plain());
}

#[test]
#[ignore = "needs Redis and Kafka: run scripts/test.sh"]
fn a_wrong_scram_password_is_reported_and_never_printed() {
    a_wrong_password_is_reported_and_never_printed(&SecuredBroker::scram_over_tls("SCRAM-SHA-512"));
}

fn a_wrong_password_is_reported_and_never_printed(broker: &SecuredBroker) {
    let world = World::new(broker);
    let wrong = "wrong-sasl-password-5b1f";
    let mut supervisor = world.start(wrong);
    supervisor.wait_for(Duration::from_secs(30), "the authentication error", |s| {
        s.stderr().contains("Authentication failed")
    });
    world.wait_until_unready_because("SASL authentication error");
    let status = supervisor.terminate(Duration::from_secs(30));
    let output = format!(
        "{}\n{}",
        supervisor.stderr(),
        supervisor.stdout().join("\n")
    );
    assert!(
        !output.contains(wrong),
        "the SASL password was printed:\n{output}"
    );
    assert!(
        !output.contains(&broker.secret),
        "the broker's password was printed"
    );
    // Records that never reached Kafka are reported lost: the stop is not clean.
    assert!(!status.success(), "{status}");
    assert!(
        output.contains("SASL authentication error"),
        "librdkafka's reason reaches the log"
    );
}

#[test]
#[ignore = "needs Redis and Kafka: run scripts/test.sh"]
fn a_broker_certificate_not_trusted_is_reported() {
    let broker = SecuredBroker::scram_over_tls_without_ca("SCRAM-SHA-512");
    let world = World::new(&broker);
    let mut supervisor = world.start(&broker.secret);
    supervisor.wait_for(Duration::from_secs(30), "the TLS error", |s| {
        s.stderr().contains("certificate verify failed")
    });
    world.wait_until_unready_because("certificate verify failed");
    supervisor.terminate(Duration::from_secs(30));
    let output = format!(
        "{}\n{}",
        supervisor.stderr(),
        supervisor.stdout().join("\n")
    );
    assert!(
        output.contains("ssl.ca.location"),
        "librdkafka's hint at the setting reaches the log:\n{output}"
    );
    assert!(
        !output.contains(&broker.secret),
        "the SCRAM password was printed"
    );
}

#[test]
#[ignore = "needs Redis and Kafka: run scripts/test.sh"]
fn a_missing_client_certificate_is_reported() {
    let world = World::new(&SecuredBroker::mutual_tls_without_certificate());
    let mut supervisor = world.start("");
    // The broker ends the handshake with TLS alert 42 (bad_certificate).
    supervisor.wait_for(Duration::from_secs(30), "the TLS error", |s| {
        s.stderr().contains("alert bad certificate")
    });
    world.wait_until_unready_because("alert bad certificate");
    let status = supervisor.terminate(Duration::from_secs(30));
    assert!(
        !status.success(),
        "records never delivered make the stop unclean: {status}"
    );
}

#[test]
#[ignore = "needs Redis and Kafka: run scripts/test.sh"]
fn a_wrong_keystore_password_stops_the_start_and_is_never_printed() {
    let broker = SecuredBroker::mutual_tls();
    let world = World::new(&broker);
    let wrong = "wrong-keystore-password-7c2e";
    let mut supervisor = world.start(wrong);
    let status = supervisor.wait_for_exit(Duration::from_secs(30));
    let output = format!(
        "{}\n{}",
        supervisor.stderr(),
        supervisor.stdout().join("\n")
    );
    assert!(!status.success(), "{status}\n{output}");
    assert!(
        output.contains("cannot create the Kafka producer")
            && output.contains("ssl.keystore.location")
            && output.contains("is it the right password?"),
        "the reason and the option to look at:\n{output}"
    );
    assert!(
        !output.contains(wrong),
        "the keystore password was printed:\n{output}"
    );
    assert!(
        !output.contains(&broker.secret),
        "the right keystore password was printed"
    );
}

/// `check` reaches Kafka with the sink's own settings: through every secured listener with the
/// right secret it reports the brokers and the topic.
#[test]
#[ignore = "needs Redis and Kafka: run scripts/test.sh"]
fn check_reaches_kafka_through_every_secured_listener() {
    for broker in [
        SecuredBroker::plain(),
        SecuredBroker::scram_over_tls("SCRAM-SHA-256"),
        SecuredBroker::mutual_tls(),
    ] {
        let world = World::new(&broker);
        let (success, stdout, stderr) = world.check(&broker.secret);
        assert!(success, "{}: {stderr}", broker.brokers);
        assert!(
            stdout.contains(&format!(
                "kafka at {}: reached, 1 broker(s)",
                broker.brokers
            )) && stdout.contains(&format!("topic {}: 1 partition(s)", world.topic)),
            "{stdout}"
        );
        assert!(
            !format!("{stdout}{stderr}").contains(&broker.secret),
            "the secret was printed"
        );
    }
}

/// `check` fails, with librdkafka's reason and what to change, where a run would only never
/// get ready.
#[test]
#[ignore = "needs Redis and Kafka: run scripts/test.sh"]
fn check_says_why_kafka_refuses() {
    let wrong = "wrong-check-password-91d0";
    // The secret given: a wrong one, or `None` for the broker's own.
    for (broker, secret, reason) in [
        (
            SecuredBroker::plain(),
            Some(wrong),
            "SASL authentication error: Authentication failed",
        ),
        (
            SecuredBroker::scram_over_tls_without_ca("SCRAM-SHA-512"),
            None,
            "certificate verify failed",
        ),
        (
            SecuredBroker::mutual_tls_without_certificate(),
            None,
            "the broker wants a client certificate it trusts: set ssl.keystore.location",
        ),
    ] {
        let world = World::new(&broker);
        let started = Instant::now();
        let (success, stdout, stderr) = world.check(secret.unwrap_or(&broker.secret));
        assert!(!success, "{stdout}");
        assert!(
            stderr.contains("cannot use Kafka: the brokers at") && stderr.contains(reason),
            "{}: {stderr}",
            broker.brokers
        );
        assert!(
            started.elapsed() < Duration::from_secs(14),
            "a refusal is reported before the probe's 15 s limit"
        );
        let output = format!("{stdout}{stderr}");
        assert!(!output.contains(wrong), "the wrong password was printed");
        if !broker.secret.is_empty() {
            assert!(!output.contains(&broker.secret), "the secret was printed");
        }
    }
}
