//! Loading whole configs: defaults, interpolation, errors with option and line, the examples.

use std::path::{Path, PathBuf};

use traptor_core::{MessageKind, SlotId, StreamType};

use super::*;

const KEY: &str = r#"
[[keys]]
name = "k1"
consumer_key = "ck1"
consumer_secret = "${K1_CONSUMER_SECRET}"
access_token = "at1"
access_token_secret = "${K1_TOKEN_SECRET}"
"#;

fn env(name: &str) -> Option<String> {
    match name {
        "K1_CONSUMER_SECRET" => Some("cs-from-env".into()),
        "K1_TOKEN_SECRET" => Some("ats-from-env".into()),
        "BROKERS" => Some("kafka-1:9092,kafka-2:9092".into()),
        _ => None,
    }
}

fn parse(text: &str) -> Result<ClusterConfig, ConfigError> {
    ClusterConfig::from_str_with_env(text, &env)
}

fn parse_err(text: &str) -> String {
    parse(text)
        .expect_err("the config should be refused")
        .to_string()
}

/// A minimal valid config: one key and a sink that needs nothing else.
fn minimal(extra: &str) -> String {
    format!("{extra}\n[sink]\nkind = \"stdout\"\n{KEY}")
}

#[test]
fn defaults_fill_every_section() {
    let config = parse(&minimal("")).unwrap();
    assert_eq!(config.redis.url, "redis://127.0.0.1:6379/0");
    assert_eq!(config.redis.notify_channel, "traptor-notify");
    assert_eq!(config.redis.resync_interval_secs, 60);
    assert_eq!(config.kafka.topic, "traptor");
    assert_eq!(config.kafka.compression, Compression::Lz4);
    assert_eq!(config.kafka.control_topic, None);
    assert_eq!(
        config.stream.endpoint,
        "https://stream.twitter.com/1.1/statuses/filter.json"
    );
    assert!(config.stream.user_agent.starts_with("traptor/"));
    assert_eq!(config.stream.stall_timeout_secs, 90);
    assert_eq!(config.heartbeat.interval_secs, 10);
    assert_eq!(config.heartbeat.ttl_secs(), 15);
    assert_eq!(config.slots, SlotSelection::All);
    assert_eq!(config.sink, SinkConfig::Stdout);
    assert_eq!(config.rules, RulesConfig::Redis);
    assert_eq!(config.log.format, LogFormat::Human);
    assert_eq!(config.log.level, "info");
    assert_eq!(config.emulator, None);
    assert_eq!(config.status.listen, "127.0.0.1:9099");
    assert!(config.warnings.is_empty());
}

#[test]
fn interpolates_secrets_and_exposes_keys_by_name() {
    let config = parse(&minimal("")).unwrap();
    assert_eq!(config.key_names(), ["k1"]);
    let credentials = config.credentials("k1").unwrap();
    assert_eq!(credentials.consumer_secret, "cs-from-env");
    assert_eq!(credentials.access_token_secret, "ats-from-env");
    assert!(config.credentials("k2").is_none());
}

#[test]
fn debug_output_never_shows_secrets() {
    let config = parse(&minimal("")).unwrap();
    let text = format!("{config:?}");
    assert!(!text.contains("cs-from-env"), "{text}");
    assert!(!text.contains("ats-from-env"), "{text}");
    assert!(text.contains("k1"), "{text}");
}

#[test]
fn a_missing_variable_names_the_variable_the_option_and_the_line() {
    let text = minimal("").replace("${K1_TOKEN_SECRET}", "${NOT_SET_ANYWHERE}");
    let message = parse_err(&text);
    assert!(message.contains("NOT_SET_ANYWHERE"), "{message}");
    assert!(message.contains("keys[0].access_token_secret"), "{message}");
    let line = text
        .lines()
        .position(|l| l.contains("NOT_SET_ANYWHERE"))
        .unwrap()
        + 1;
    assert!(message.contains(&format!("line {line}")), "{message}");
}

#[test]
fn an_unknown_key_is_named_with_its_line() {
    let text = minimal("[stream]\nstall_timeout_secs = 30\nstal_timeout = 5\n");
    let error = parse(&text).unwrap_err();
    let message = error.to_string();
    assert!(message.contains("stal_timeout"), "{message}");
    assert!(
        matches!(error, ConfigError::Parse { line: 3, .. }),
        "{message}"
    );
    assert!(message.contains("line 3"), "{message}");
}

#[test]
fn an_unknown_section_is_refused() {
    let message = parse_err(&minimal("[kafak]\ntopic = \"x\"\n"));
    assert!(message.contains("kafak"), "{message}");
    assert!(message.contains("line 1"), "{message}");
}

#[test]
fn a_value_of_the_wrong_type_shows_the_option_and_line() {
    let message = parse_err(&minimal("[heartbeat]\ninterval_secs = \"ten\"\n"));
    assert!(message.contains("line 2"), "{message}");
    assert!(message.contains("interval_secs"), "{message}");
}

#[test]
fn an_unknown_enum_value_is_refused() {
    let message = parse_err(&minimal("[kafka]\ncompression = \"brotli\"\n"));
    assert!(message.contains("brotli"), "{message}");
    assert!(message.contains("line 2"), "{message}");
}

#[test]
fn checks_values_serde_cannot() {
    let cases = [
        ("[stream]\nendpoint = \"ftp://host/x\"\n", "stream.endpoint"),
        (
            "[stream]\nendpoint = \"https://h/x?track=a\"\n",
            "stream.endpoint",
        ),
        (
            "[heartbeat]\ninterval_secs = 0\n",
            "heartbeat.interval_secs",
        ),
        ("[kafka]\ntopic = \"bad topic\"\n", "kafka.topic"),
        ("[redis]\nurl = \"http://localhost\"\n", "redis.url"),
        ("[log]\nlevel = \"info,=[\"\n", "log.level"),
        ("slots = [\"track\"]\n", "slots"),
        ("slots = [\"trak:0\"]\n", "slots"),
        ("slots = [\"track:0\", \"track:0\"]\n", "slots"),
        ("[emulator]\nhit_ratio = 1.5\n", "emulator.hit_ratio"),
        ("[status]\nlisten = \"localhost\"\n", "status.listen"),
        ("[rules]\nsource = \"file\"\n", "rules.path"),
    ];
    for (extra, option) in cases {
        let message = parse_err(&minimal(extra));
        assert!(
            message.contains(&format!("`{option}`")),
            "{extra:?} → {message}"
        );
        assert!(message.contains("line "), "{extra:?} → {message}");
    }
}

#[test]
fn kafka_sink_needs_brokers() {
    let message = parse_err(KEY);
    assert!(message.contains("kafka.bootstrap_servers"), "{message}");
    let config = parse(&format!(
        "[kafka]\nbootstrap_servers = \"${{BROKERS}}\"\n{KEY}"
    ))
    .unwrap();
    assert_eq!(config.sink, SinkConfig::Kafka);
    assert_eq!(
        config.kafka.bootstrap_servers.as_deref(),
        Some("kafka-1:9092,kafka-2:9092")
    );
}

#[test]
fn file_sink_needs_a_path_and_only_it_takes_one() {
    let base = format!("{KEY}\n[sink]\n");
    assert!(parse_err(&format!("{base}kind = \"file\"\n")).contains("sink.path"));
    assert!(parse_err(&format!("{base}kind = \"stdout\"\npath = \"x\"\n")).contains("sink.path"));
    let config = parse(&format!("{base}kind = \"file\"\npath = \"out.jsonl\"\n")).unwrap();
    assert_eq!(
        config.sink,
        SinkConfig::File {
            path: PathBuf::from("out.jsonl")
        }
    );
}

#[test]
fn key_problems_are_named() {
    assert!(parse_err("[sink]\nkind = \"stdout\"\n").contains("no API keys"));
    let twice = minimal(KEY);
    let message = parse_err(&twice);
    assert!(message.contains("\"k1\" is used twice"), "{message}");
    assert!(message.contains("keys[1].name"), "{message}");
    let missing_field = "[sink]\nkind = \"stdout\"\n[[keys]]\nname = \"a\"\nconsumer_key = \"x\"\n";
    let message = parse_err(missing_field);
    assert!(message.contains("consumer_secret"), "{message}");
    let empty = minimal("").replace("consumer_key = \"ck1\"", "consumer_key = \"\"");
    assert!(parse_err(&empty).contains("`consumer_key` is empty"));
}

#[test]
fn two_keys_with_one_access_token_are_refused_without_showing_it() {
    let second = KEY
        .replace("\"k1\"", "\"k2\"")
        .replace("\"ck1\"", "\"ck2\"");
    let message = parse_err(&minimal(&second));
    assert!(
        message.contains("\"k2\" and \"k1\" have the same access token"),
        "{message}"
    );
    assert!(message.contains("keys[1].access_token"), "{message}");
    assert!(!message.contains("at1"), "{message}");
    let distinct = second.replace("\"at1\"", "\"at2\"");
    assert_eq!(parse(&minimal(&distinct)).unwrap().keys.len(), 2);
}

#[test]
fn slots_select_a_subset() {
    let config = parse(&minimal("slots = [\"track:0\", \"follow:b\"]\n")).unwrap();
    let track0 = SlotId::new(StreamType::Track, "0");
    assert_eq!(
        config.slots,
        SlotSelection::Only(vec![track0.clone(), SlotId::new(StreamType::Follow, "b")])
    );
    assert!(config.slots.includes(&track0));
    assert!(!config
        .slots
        .includes(&SlotId::new(StreamType::Locations, "0")));
}

#[test]
fn control_and_dead_letter_topics_route_by_kind() {
    let config = parse(&minimal("[kafka]\ncontrol_topic = \"ctl\"\n")).unwrap();
    assert_eq!(config.kafka.topic_for(MessageKind::Tweet), "traptor");
    assert_eq!(config.kafka.topic_for(MessageKind::Limit), "ctl");
    assert_eq!(config.kafka.topic_for(MessageKind::Invalid), "ctl");
}

fn write_config(dir: &Path, name: &str, text: &str, mode: u32) -> PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, text).unwrap();
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(mode)).unwrap();
    }
    path
}

#[cfg(unix)]
#[test]
fn literal_secrets_in_a_readable_file_give_a_warning() {
    let dir = tempfile::tempdir().unwrap();
    let literal = minimal("")
        .replace("${K1_CONSUMER_SECRET}", "plain-secret")
        .replace("${K1_TOKEN_SECRET}", "plain-token-secret");
    let shared = write_config(dir.path(), "shared.toml", &literal, 0o644);
    let config = ClusterConfig::load(&shared).unwrap();
    assert_eq!(config.warnings.len(), 1, "{:?}", config.warnings);
    assert!(config.warnings[0].contains("shared.toml"));
    assert!(!config.warnings[0].contains("plain-secret"));

    let private = write_config(dir.path(), "private.toml", &literal, 0o600);
    assert!(ClusterConfig::load(&private).unwrap().warnings.is_empty());
}

#[cfg(unix)]
#[test]
fn secrets_from_the_environment_give_no_warning() {
    let dir = tempfile::tempdir().unwrap();
    let text = minimal("")
        .replace("${K1_CONSUMER_SECRET}", "${HOME}")
        .replace("${K1_TOKEN_SECRET}", "${HOME}");
    let path = write_config(dir.path(), "env.toml", &text, 0o644);
    let config = ClusterConfig::load(&path).unwrap();
    assert!(config.warnings.is_empty(), "{:?}", config.warnings);
}

#[test]
fn relative_paths_are_relative_to_the_config_file() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("keys.json"),
        r#"[{"name":"f1","consumer_key":"c","consumer_secret":"s","access_token":"t","access_token_secret":"u"}]"#,
    )
    .unwrap();
    let text = "keys_file = \"keys.json\"\n[sink]\nkind = \"file\"\npath = \"out/records.jsonl\"\n\
                [rules]\nsource = \"file\"\npath = \"rules.json\"\n";
    let path = write_config(dir.path(), "c.toml", text, 0o600);
    let config = ClusterConfig::load(&path).unwrap();
    assert_eq!(config.key_names(), ["f1"]);
    assert_eq!(
        config.sink,
        SinkConfig::File {
            path: dir.path().join("out/records.jsonl")
        }
    );
    assert_eq!(
        config.rules,
        RulesConfig::File {
            path: dir.path().join("rules.json")
        }
    );
}

#[test]
fn the_redis_ca_file_is_interpolated_and_relative_to_the_config_file() {
    let dir = tempfile::tempdir().unwrap();
    let text = "[redis]\nurl = \"rediss://10.0.0.1:6378/0\"\nca_file = \"certs/redis-ca.pem\"\n\
                [sink]\nkind = \"stdout\"\n[[keys]]\nname = \"k\"\nconsumer_key = \"c\"\n\
                consumer_secret = \"s\"\naccess_token = \"t\"\naccess_token_secret = \"u\"\n";
    let path = write_config(dir.path(), "c.toml", text, 0o600);
    let config = ClusterConfig::load(&path).unwrap();
    assert_eq!(
        config.redis.ca_file,
        Some(dir.path().join("certs/redis-ca.pem"))
    );

    let with_ca_dir = |name: &str| match name {
        "CA_DIR" => Some("/etc/traptor".to_owned()),
        other => env(other),
    };
    let text = minimal("[redis]\nurl = \"rediss://h/0\"\nca_file = \"${CA_DIR}/ca.pem\"");
    let config = ClusterConfig::from_str_with_env(&text, &with_ca_dir).unwrap();
    assert_eq!(
        config.redis.ca_file,
        Some(PathBuf::from("/etc/traptor/ca.pem"))
    );
}

#[test]
fn a_redis_ca_file_without_tls_is_refused() {
    let err = parse_err(&minimal(
        "[redis]\nurl = \"redis://:pw-secret@h:6379/0\"\nca_file = \"ca.pem\"",
    ));
    assert!(
        err.contains("redis.ca_file") && err.contains("line 3"),
        "{err}"
    );
    assert!(err.contains("rediss://"), "{err}");
    assert!(!err.contains("pw-secret"), "{err}");
}

#[test]
fn a_redis_client_certificate_needs_its_key_and_tls_and_is_relative_to_the_config_file() {
    let err = parse_err(&minimal(
        "[redis]\nurl = \"rediss://h:6380/0\"\nclient_cert_file = \"client.pem\"",
    ));
    assert!(
        err.contains("redis.client_cert_file") && err.contains("client_key_file"),
        "{err}"
    );
    let err = parse_err(&minimal(
        "[redis]\nurl = \"redis://:pw-secret@h:6379/0\"\nclient_cert_file = \"c.pem\"\n\
         client_key_file = \"c.key\"",
    ));
    assert!(
        err.contains("rediss://") && !err.contains("pw-secret"),
        "{err}"
    );

    let dir = tempfile::tempdir().unwrap();
    let text = "[redis]\nurl = \"rediss://10.0.0.1:6378/0\"\nclient_cert_file = \"certs/c.pem\"\n\
                client_key_file = \"certs/c.key\"\n[sink]\nkind = \"stdout\"\n[[keys]]\nname = \"k\"\n\
                consumer_key = \"c\"\nconsumer_secret = \"s\"\naccess_token = \"t\"\n\
                access_token_secret = \"u\"\n";
    let path = write_config(dir.path(), "c.toml", text, 0o600);
    let config = ClusterConfig::load(&path).unwrap();
    assert_eq!(
        (config.redis.client_cert_file, config.redis.client_key_file),
        (
            Some(dir.path().join("certs/c.pem")),
            Some(dir.path().join("certs/c.key"))
        )
    );
}

fn example(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../config")
        .join(name)
}

#[test]
fn the_demo_config_runs_without_services() {
    let config = ClusterConfig::load(example("demo.toml")).unwrap();
    assert_eq!(config.sink, SinkConfig::Stdout);
    assert!(matches!(&config.rules, RulesConfig::File { path } if path.exists()));
    assert!(config.emulator.is_some());
    assert_eq!(config.log.format, LogFormat::Human);
    assert!(!config.keys.is_empty());
    assert!(config.warnings.is_empty(), "{:?}", config.warnings);
}

#[test]
fn the_cluster_example_parses_with_its_variables_set() {
    let text = std::fs::read_to_string(example("cluster.toml")).unwrap();
    let env = |name: &str| Some(format!("value-of-{name}"));
    let config = ClusterConfig::from_str_with_env(&text, &env).unwrap();
    assert_eq!(config.sink, SinkConfig::Kafka);
    assert!(config.keys.len() >= 2);
    assert_eq!(config.log.format, LogFormat::Json);
    let credentials = config.credentials(config.key_names()[0]).unwrap();
    assert!(credentials.consumer_secret.starts_with("value-of-"));
}

#[test]
fn the_demo_rules_load_without_errors() {
    let config = ClusterConfig::load(example("demo.toml")).unwrap();
    let RulesConfig::File { path } = &config.rules else {
        panic!("the demo reads its rules from a file")
    };
    let slots = crate::rules_file::load_rules_file(path).unwrap();
    let names: Vec<String> = slots.keys().map(|slot| slot.to_string()).collect();
    assert_eq!(names, ["track:0", "follow:0", "locations:0"]);
    for (slot, rules) in &slots {
        assert!(rules.errors.is_empty(), "{slot}: {:?}", rules.errors);
        assert!(!rules.rules.is_empty(), "{slot}");
    }
    assert!(
        config.keys.len() >= slots.len(),
        "one key per demo connection"
    );
}

#[test]
fn the_spool_is_off_unless_a_directory_is_given() {
    let config = parse(&minimal("")).unwrap();
    assert_eq!(config.kafka.spool, SpoolConfig::default());
    assert_eq!(config.kafka.spool.dir, None);
    assert_eq!(config.kafka.spool.max_bytes, 1 << 30);
}

#[test]
fn the_spool_directory_is_relative_to_the_config_file() {
    let dir = tempfile::tempdir().unwrap();
    let text = format!(
        "[kafka]\nbootstrap_servers = \"k:9092\"\n[kafka.spool]\ndir = \"spool\"\n\
         max_bytes = 10485760\nsegment_bytes = 1048576\nspill_after_ms = 250\n{KEY}"
    );
    // The key's secrets come from variables this test does not set: write them literally.
    let text = text
        .replace("${K1_CONSUMER_SECRET}", "cs")
        .replace("${K1_TOKEN_SECRET}", "ts");
    let path = write_config(dir.path(), "c.toml", &text, 0o600);
    let spool = ClusterConfig::load(&path).unwrap().kafka.spool;
    assert_eq!(spool.dir, Some(dir.path().join("spool")));
    assert_eq!((spool.max_bytes, spool.segment_bytes), (10 << 20, 1 << 20));
    assert_eq!(spool.spill_after(), std::time::Duration::from_millis(250));
}

#[test]
fn spool_limits_that_cannot_hold_a_record_are_refused() {
    let kafka = |spool: &str| {
        format!("[kafka]\nbootstrap_servers = \"${{BROKERS}}\"\n[kafka.spool]\ndir = \"/s\"\n{spool}\n{KEY}")
    };
    let message = parse_err(&kafka("segment_bytes = 100"));
    assert!(message.contains("kafka.spool.segment_bytes"), "{message}");
    let message = parse_err(&kafka("max_bytes = 8192\nsegment_bytes = 4096"));
    assert!(message.contains("kafka.spool.max_bytes"), "{message}");
    assert!(message.contains("max_frame_bytes"), "{message}");
    let message = parse_err(&kafka("max_bytes = 4096\nsegment_bytes = 8192"));
    assert!(message.contains("segment_bytes"), "{message}");
    let message = parse_err(&kafka("dir2 = \"x\""));
    assert!(message.contains("dir2"), "{message}");
}

#[test]
fn original_stats_are_off_by_default_and_need_redis_rules() {
    let config = parse(&minimal("")).unwrap();
    assert!(!config.original_stats.enabled);
    assert_eq!(config.original_stats.window_secs, 900);
    assert_eq!(config.original_stats.interval_secs, 5);

    let config = parse(&minimal(
        "[original_stats]\nenabled = true\nwindow_secs = 60\ninterval_secs = 1\n",
    ))
    .unwrap();
    assert!(config.original_stats.enabled);
    assert_eq!(
        config.original_stats.window(),
        std::time::Duration::from_secs(60)
    );

    let message = parse_err(&minimal("[original_stats]\ninterval_secs = 0\n"));
    assert!(
        message.contains("original_stats.interval_secs") && message.contains("greater than 0"),
        "{message}"
    );
    let message = parse_err(&minimal(
        "[rules]\nsource = \"file\"\npath = \"rules.json\"\n\n[original_stats]\nenabled = true\n",
    ));
    assert!(
        message.contains("original_stats.enabled") && message.contains("source = \"redis\""),
        "{message}"
    );
}

#[test]
fn per_rule_metrics_are_on_by_default_and_can_be_turned_off() {
    let default = parse(&minimal("")).unwrap();
    assert!(default.status.metrics_options().rule_matches);
    let off = parse(&format!(
        "{}\n[status]\nrule_metrics = false\n",
        minimal("")
    ))
    .unwrap();
    assert!(!off.status.metrics_options().rule_matches);
    assert_eq!(off.status.listen, "127.0.0.1:9099");
}
