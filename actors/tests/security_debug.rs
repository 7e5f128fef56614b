//! Secrets in `Debug` output and config warnings: `ClusterConfig`, `ApiKey`, `Credentials`,
//! `KafkaConfig` with a `sasl.password`, `RedisConfig` with a password in the URL; and the
//! warning for a config file holding literal secrets that other users can read.

use std::os::unix::fs::PermissionsExt;

use traptor_actors::config::{ClusterConfig, KafkaConfig, ProducerOptions, RedisConfig};
use traptor_core::oauth::Credentials;

const SECRETS: [&str; 6] = [
    "Csecret-0b5e",
    "ATsecret-71c2",
    "RedisPw-9e0d",
    "SaslPw-44f1",
    "SslKeyPw-aa01",
    "Jaas-pw-5c5c",
];
const PUBLIC_IDS: [&str; 2] = ["ConsumerKey-public-1234", "AccessToken-public-5678"];

fn config_text() -> String {
    format!(
        r#"[redis]
url = "redis://traptor:{redis}@127.0.0.1:6379/0"
[kafka]
bootstrap_servers = "127.0.0.1:9092"
[kafka.producer]
"security.protocol" = "sasl_ssl"
"sasl.mechanisms" = "SCRAM-SHA-512"
"sasl.username" = "traptor"
"sasl.password" = "{sasl}"
"ssl.key.password" = "{ssl}"
"sasl.jaas.config" = "password={jaas}"
[[keys]]
name = "collector-1"
consumer_key = "{ck}"
consumer_secret = "{cs}"
access_token = "{at}"
access_token_secret = "{ats}"
"#,
        redis = SECRETS[2],
        sasl = SECRETS[3],
        ssl = SECRETS[4],
        jaas = SECRETS[5],
        ck = PUBLIC_IDS[0],
        cs = SECRETS[0],
        at = PUBLIC_IDS[1],
        ats = SECRETS[1],
    )
}

fn assert_hidden(what: &str, shown: &str) {
    for secret in SECRETS.iter().chain(PUBLIC_IDS.iter()) {
        assert!(!shown.contains(secret), "{what} shows {secret}: {shown}");
    }
}

#[test]
fn debug_output_hides_every_secret() {
    let config = ClusterConfig::from_str_with_env(&config_text(), &|_| None).unwrap();
    assert_hidden("ClusterConfig {:?}", &format!("{config:?}"));
    assert_hidden("ClusterConfig {:#?}", &format!("{config:#?}"));
    assert_hidden("ApiKey", &format!("{:?}", config.keys[0]));
    assert_hidden("Credentials", &format!("{:?}", config.keys[0].credentials));
    assert_hidden("KafkaConfig", &format!("{:?}", config.kafka));
    assert_hidden("RedisConfig", &format!("{:?}", config.redis));
    assert_hidden("redacted_url", &config.redis.redacted_url());
    // Still useful: the key's name, the user names and non-secret options are shown.
    let shown = format!("{config:?}");
    for visible in [
        "collector-1",
        "sasl.username",
        "traptor",
        "SCRAM-SHA-512",
        "127.0.0.1:6379",
    ] {
        assert!(
            shown.contains(visible),
            "{visible} should be visible: {shown}"
        );
    }
    // The public ids are shown redacted, enough to tell keys apart.
    assert!(shown.contains("Cons…<redacted>"), "{shown}");
    // The values are loaded as written (redaction is only in what is shown).
    assert_eq!(config.kafka.producer.0["sasl.password"], SECRETS[3]);
}

#[test]
fn each_type_on_its_own_hides_its_secrets() {
    let credentials = Credentials {
        consumer_key: PUBLIC_IDS[0].into(),
        consumer_secret: SECRETS[0].into(),
        access_token: PUBLIC_IDS[1].into(),
        access_token_secret: SECRETS[1].into(),
    };
    assert_hidden("Credentials", &format!("{credentials:?} {credentials:#?}"));
    let redis = RedisConfig {
        url: format!("rediss://user:{}@host:6380/2", SECRETS[2]),
        ..RedisConfig::default()
    };
    assert_hidden("RedisConfig", &format!("{redis:?}"));
    let mut producer = ProducerOptions::default();
    for (name, value) in [
        ("sasl.password", SECRETS[3]),
        ("ssl.key.password", SECRETS[4]),
        ("sasl.jaas.config", SECRETS[5]),
        ("sasl.oauthbearer.client.secret", SECRETS[0]),
    ] {
        producer.0.insert(name.into(), value.into());
    }
    let kafka = KafkaConfig {
        producer,
        ..ClusterConfig::from_str_with_env("[sink]\nkind=\"stdout\"\n[[keys]]\nname=\"k\"\nconsumer_key=\"a\"\nconsumer_secret=\"b\"\naccess_token=\"c\"\naccess_token_secret=\"d\"\n", &|_| None)
            .unwrap()
            .kafka
    };
    assert_hidden("KafkaConfig", &format!("{kafka:?}"));
}

#[test]
fn a_readable_config_with_literal_secrets_draws_a_warning() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("cluster.toml");
    std::fs::write(&path, config_text()).unwrap();

    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
    let readable = ClusterConfig::load(&path).unwrap();
    assert_eq!(readable.warnings.len(), 1, "{:?}", readable.warnings);
    assert!(
        readable.warnings[0].contains("chmod 600"),
        "{:?}",
        readable.warnings
    );
    assert_hidden("the warning", &readable.warnings[0]);

    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).unwrap();
    assert!(ClusterConfig::load(&path).unwrap().warnings.is_empty());

    // Secrets taken from the environment make a readable file harmless.
    let by_reference = config_text()
        .replace(SECRETS[0], "${CS}")
        .replace(SECRETS[1], "${ATS}")
        .replace(SECRETS[2], "${RPW}")
        .replace(SECRETS[3], "${SASL}")
        .replace(SECRETS[4], "${SSL}")
        .replace(&format!("password={}", SECRETS[5]), "${JAAS}");
    std::fs::write(&path, by_reference).unwrap();
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
    for var in ["CS", "ATS", "RPW", "SASL", "SSL", "JAAS"] {
        std::env::set_var(var, format!("from-env-{var}"));
    }
    let from_env = ClusterConfig::load(&path).unwrap();
    assert!(from_env.warnings.is_empty(), "{:?}", from_env.warnings);

    // A readable keys file is flagged too.
    let keys = dir.path().join("keys.json");
    std::fs::write(&keys, r#"[{"name":"f","consumer_key":"a","consumer_secret":"b","access_token":"c","access_token_secret":"d"}]"#).unwrap();
    std::fs::set_permissions(&keys, std::fs::Permissions::from_mode(0o604)).unwrap();
    std::fs::write(
        &path,
        "keys_file = \"keys.json\"\n[sink]\nkind = \"stdout\"\n",
    )
    .unwrap();
    let with_file = ClusterConfig::load(&path).unwrap();
    assert!(
        with_file.warnings.iter().any(|w| w.contains("keys.json")),
        "{:?}",
        with_file.warnings
    );
}
