//! Fuzzing the config loader: arbitrary TOML-ish text, and mutations of the shipped
//! `config/cluster.toml` and `config/demo.toml`. Invariants: no panic, no hang, and a config
//! holding secrets never shows them, whether it loads (its `Debug`) or fails (its error's
//! `Display` and `Debug`), under any edit that leaves the secret values themselves intact.
//! `TRAPTOR_FUZZ_CASES` scales the case count (see `core/tests/fuzz_support`).

#[path = "../../core/tests/fuzz_support/mod.rs"]
mod fuzz_support;

use std::path::PathBuf;

use fuzz_support::{config, mutate, mutation, Mutation, Watchdog};
use proptest::prelude::*;
use traptor_actors::config::ClusterConfig;

fn shipped(name: &str) -> String {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../config")
        .join(name);
    std::fs::read_to_string(path).unwrap()
}

/// Every variable of the shipped configs, so that they load.
fn env(name: &str) -> Option<String> {
    match name {
        "REDIS_PASSWORD" => Some(REDIS_PASSWORD.to_owned()),
        "KAFKA_PASSWORD" => Some(KAFKA_PASSWORD.to_owned()),
        "KAFKA_BROKERS" => Some("127.0.0.1:9092".to_owned()),
        n if n.contains("SECRET") => Some(format!("{CONSUMER_SECRET}-{n}")),
        n if n.starts_with("TRAPTOR_") => Some(format!("value-of-{n}")),
        _ => None,
    }
}

const REDIS_PASSWORD: &str = "RedisPw-7f3a9c";
const KAFKA_PASSWORD: &str = "KafkaPw-51be02";
const CONSUMER_SECRET: &str = "ConsumerSecret-c0ffee";
const TOKEN_SECRET: &str = "TokenSecret-5eed5";
const CONSUMER_KEY: &str = "ConsumerKeyPublic-8d21";
const OAUTH_TOKEN: &str = "AccessTokenPublic-77aa";

/// A config with every kind of secret written literally.
fn literal_secrets_config() -> String {
    format!(
        r#"[redis]
url = "redis://traptor:{REDIS_PASSWORD}@127.0.0.1:6379/9"

[kafka]
bootstrap_servers = "127.0.0.1:9092"

[kafka.producer]
"security.protocol" = "sasl_ssl"
"sasl.username" = "traptor"
"sasl.password" = "{KAFKA_PASSWORD}"

[[keys]]
name = "k1"
consumer_key = "{CONSUMER_KEY}"
consumer_secret = "{CONSUMER_SECRET}"
access_token = "{OAUTH_TOKEN}"
access_token_secret = "{TOKEN_SECRET}"
"#
    )
}

const SECRETS: [&str; 4] = [
    REDIS_PASSWORD,
    KAFKA_PASSWORD,
    CONSUMER_SECRET,
    TOKEN_SECRET,
];
const PUBLIC_IDS: [&str; 2] = [CONSUMER_KEY, OAUTH_TOKEN];

/// Loads `text` and returns everything an operator could see of the outcome.
fn visible_outcome(text: &str) -> String {
    match ClusterConfig::from_str_with_env(text, &env) {
        Ok(config) => format!("{config:?}\n{:?}", config.warnings),
        Err(error) => format!("{error}\n{error:?}"),
    }
}

/// Byte ranges of every secret and public id in `text`.
fn protected_spans(text: &str) -> Vec<(usize, usize)> {
    let mut spans = Vec::new();
    for needle in SECRETS.iter().chain(PUBLIC_IDS.iter()) {
        for (at, _) in text.match_indices(needle) {
            spans.push((at, at + needle.len()));
        }
    }
    spans
}

/// Keeps only mutations that leave the protected values whole (applied in order, re-checked
/// against the text as it changes). Returns the mutated text.
fn mutate_around(text: &str, mutations: &[Mutation]) -> Vec<u8> {
    let mut out = text.as_bytes().to_vec();
    for m in mutations {
        let candidate = mutate(&out, std::slice::from_ref(m));
        let before = String::from_utf8_lossy(&out).into_owned();
        let after = String::from_utf8_lossy(&candidate).into_owned();
        let count = |t: &str| protected_spans(t).len();
        // A mutation is kept when every protected value is still there exactly once as before.
        if count(&after) == count(&before)
            && protected_spans(&before).len() == protected_spans(&after).len()
        {
            out = candidate;
        }
    }
    out
}

fn assert_no_secret(text: &[u8], outcome: &str) -> Result<(), TestCaseError> {
    for secret in SECRETS {
        prop_assert!(
            !outcome.contains(secret),
            "the secret {:?} is shown:\n{}\n--- config:\n{}",
            secret,
            outcome,
            String::from_utf8_lossy(text)
        );
    }
    for id in PUBLIC_IDS {
        prop_assert!(
            !outcome.contains(id),
            "the key id {:?} is shown unredacted:\n{}\n--- config:\n{}",
            id,
            outcome,
            String::from_utf8_lossy(text)
        );
    }
    Ok(())
}

fn load_checked(target: &str, text: &[u8]) -> Result<String, TestCaseError> {
    let dog = Watchdog::new();
    let text = String::from_utf8_lossy(text).into_owned();
    Ok(dog.run(target, text.as_bytes(), || visible_outcome(&text)))
}

/// TOML-ish tokens: the loader's own option names and sections, values of every type, and the
/// syntax TOML reacts to.
fn toml_token() -> impl Strategy<Value = String> {
    prop_oneof![
        prop::sample::select(vec![
            "[redis]",
            "[kafka]",
            "[kafka.producer]",
            "[kafka.spool]",
            "[stream]",
            "[[keys]]",
            "[heartbeat]",
            "[sink]",
            "[log]",
            "[rules]",
            "[emulator]",
            "[status]",
            "[[slots]]",
            "url",
            "topic",
            "endpoint",
            "name",
            "consumer_key",
            "kind",
            "source",
            "path",
            "slots",
            "max_frame_bytes",
            "rate",
            "hit_ratio",
            "listen",
            "level",
            "keys_file",
            "ca_file",
            "\"sasl.password\"",
            "=",
            "\n",
            " ",
            "\"",
            "'",
            "'''",
            "\"\"\"",
            "[",
            "]",
            "{",
            "}",
            ",",
            ".",
            "#",
            "0",
            "-1",
            "1e400",
            "nan",
            "inf",
            "18446744073709551616",
            "true",
            "1979-05-27T07:32:00Z",
            "\"${X}\"",
            "\"${\"",
            "\"$${X}\"",
            "\"\\u0000\"",
            "\"\\ud800\"",
            "\"file\"",
            "\"stdout\"",
            "\"kafka\"",
            "\"redis\"",
            "\"track:0\"",
            "\"127.0.0.1:0\"",
        ])
        .prop_map(str::to_owned),
        "\\PC{0,12}",
    ]
}

proptest! {
    #![proptest_config(config(300))]

    #[test]
    fn arbitrary_toml_ish_text(tokens in prop::collection::vec(toml_token(), 0..60)) {
        let text = tokens.concat();
        load_checked("config (TOML-ish)", text.as_bytes())?;
    }

    #[test]
    fn arbitrary_bytes(bytes in prop::collection::vec(any::<u8>(), 0..400)) {
        load_checked("config (bytes)", &bytes)?;
    }

    #[test]
    fn mutated_shipped_configs(
        which in prop::sample::select(vec!["cluster.toml", "demo.toml"]),
        mutations in prop::collection::vec(mutation(), 1..8),
    ) {
        // No panic, no hang. (Secrets are checked on the config built for it below: here a
        // mutation may rename a secret option, which `misspelled_secret_options_stay_hidden`
        // covers deterministically.)
        let text = mutate(shipped(which).as_bytes(), &mutations);
        load_checked("config (mutated shipped)", &text)?;
    }

    /// Any edit around literal secrets (a typo in an option name, a lost quote, a duplicated
    /// table) must not make the loader quote the secret in its error.
    #[test]
    fn secrets_never_shown_whatever_the_edit(mutations in prop::collection::vec(mutation(), 1..6)) {
        let text = mutate_around(&literal_secrets_config(), &mutations);
        let outcome = load_checked("config (secrets)", &text)?;
        assert_no_secret(&text, &outcome)?;
    }
}

/// The unmutated secret config loads and its Debug hides everything.
#[test]
fn a_config_with_literal_secrets_loads_and_hides_them() {
    let text = literal_secrets_config();
    let config = ClusterConfig::from_str_with_env(&text, &env).unwrap();
    let shown = format!("{config:?}");
    for secret in SECRETS.iter().chain(PUBLIC_IDS.iter()) {
        assert!(!shown.contains(secret), "{secret} in {shown}");
    }
    assert!(shown.contains("<redacted>"), "{shown}");
}

/// Known gap, kept failing until fixed (see RELIABILITY.md): `[kafka.producer]` values are
/// hidden by their option's name (`password`, `secret`, ...), so a misspelled secret option
/// loads and its value is shown in full by `Debug` (librdkafka refuses the name only later).
#[test]
fn misspelled_secret_options_stay_hidden() {
    for name in [
        "sasl.pasword",
        "sasl.passwd",
        "ssl.key.passphrase",
        "sasl_password",
    ] {
        let text = literal_secrets_config().replace("\"sasl.password\"", &format!("\"{name}\""));
        let outcome = visible_outcome(&text);
        assert!(
            !outcome.contains(KAFKA_PASSWORD),
            "{name}: the value is shown: {outcome}"
        );
    }
}
