//! Redis over TLS with a private CA: a redis-server started here with only a TLS port, its
//! certificate (for 127.0.0.1) signed by a CA generated for the test, and a password.
//! With `[redis] ca_file` (or `--redis-ca-file`) `traptor-supervisor check`, the supervisor
//! itself (rules, heartbeat) and the rule commands work through it; without the CA, or with
//! another CA, the operator reads that the certificate is not trusted and which setting to
//! change; the password appears nowhere. A server that requires client certificates
//! (`tls-auth-clients yes`) lets traptor in with `[redis] client_cert_file` and
//! `client_key_file` (or `--redis-client-cert` / `--redis-client-key`) and says what to set
//! without them.

mod e2e_common;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use e2e_common::emulator::{emulator_config, keys_toml, start_emulator, test_keys};
use e2e_common::http::free_port;
use e2e_common::{enriched_tweets, unique, Supervisor};

const PASSWORD: &str = "RedisTls-pw-84c2f1";

/// A CA, a certificate for 127.0.0.1 and a client certificate it signed, written as PEM files
/// in `dir`.
struct Certificates {
    ca: PathBuf,
    cert: PathBuf,
    key: PathBuf,
    client_cert: PathBuf,
    client_key: PathBuf,
}

impl Certificates {
    fn generate(dir: &Path, name: &str) -> Certificates {
        let mut ca_params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
        ca_params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        ca_params
            .distinguished_name
            .push(rcgen::DnType::CommonName, format!("traptor test CA {name}"));
        let ca_key = rcgen::KeyPair::generate().unwrap();
        let ca = ca_params.self_signed(&ca_key).unwrap();

        let server_params = rcgen::CertificateParams::new(vec!["127.0.0.1".to_owned()]).unwrap();
        let server_key = rcgen::KeyPair::generate().unwrap();
        let server = server_params.signed_by(&server_key, &ca, &ca_key).unwrap();

        let mut client_params =
            rcgen::CertificateParams::new(vec!["traptor-test-client".to_owned()]).unwrap();
        client_params.extended_key_usages = vec![rcgen::ExtendedKeyUsagePurpose::ClientAuth];
        let client_key = rcgen::KeyPair::generate().unwrap();
        let client = client_params.signed_by(&client_key, &ca, &ca_key).unwrap();

        let write = |file: &str, pem: String| {
            let path = dir.join(format!("{name}-{file}"));
            std::fs::write(&path, pem).unwrap();
            path
        };
        Certificates {
            ca: write("ca.pem", ca.pem()),
            cert: write("server.pem", server.pem()),
            key: write("server.key", server_key.serialize_pem()),
            client_cert: write("client.pem", client.pem()),
            client_key: write("client.key", client_key.serialize_pem()),
        }
    }
}

/// A redis-server of this test's own that only speaks TLS, stopped (and its files removed)
/// on drop.
struct TlsRedis {
    child: Child,
    port: u16,
    dir: PathBuf,
    certs: Certificates,
}

impl TlsRedis {
    fn start() -> TlsRedis {
        TlsRedis::start_with(false)
    }

    /// A server that refuses clients without a certificate signed by its CA.
    fn start_requiring_client_certificates() -> TlsRedis {
        TlsRedis::start_with(true)
    }

    fn start_with(client_certificates: bool) -> TlsRedis {
        let dir = std::env::temp_dir().join(unique("traptor-redis-tls"));
        std::fs::create_dir_all(&dir).unwrap();
        let certs = Certificates::generate(&dir, "private");
        let port = free_port();
        let child = Command::new("redis-server")
            .args(["--port", "0", "--tls-port", &port.to_string()])
            .args(["--bind", "127.0.0.1", "--requirepass", PASSWORD])
            .arg("--tls-cert-file")
            .arg(&certs.cert)
            .arg("--tls-key-file")
            .arg(&certs.key)
            .arg("--tls-ca-cert-file")
            .arg(&certs.ca)
            .args([
                "--tls-auth-clients",
                if client_certificates { "yes" } else { "no" },
                "--save",
                "",
                "--appendonly",
                "no",
            ])
            .arg("--dir")
            .arg(&dir)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("redis-server (scripts/test.sh installs it)");
        let redis = TlsRedis {
            child,
            port,
            dir,
            certs,
        };
        redis.wait_until_ready();
        redis
    }

    /// Waits for a TLS PING to be answered (the port accepts TCP a little before).
    fn wait_until_ready(&self) {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let ping = self
                .connection()
                .and_then(|mut con| redis::cmd("PING").query::<String>(&mut con));
            match ping {
                Ok(_) => return,
                Err(e) => assert!(
                    Instant::now() < deadline,
                    "the TLS redis-server on {} did not answer: {e}",
                    self.port
                ),
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// `rediss://` with the password.
    fn url(&self) -> String {
        format!("rediss://:{PASSWORD}@127.0.0.1:{}/0", self.port)
    }

    fn address(&self) -> String {
        format!("127.0.0.1:{}/0", self.port)
    }

    /// A connection trusting the private CA and presenting the client certificate, opened with
    /// redis-rs directly (not through the code under test).
    fn connection(&self) -> redis::RedisResult<redis::Connection> {
        let certificates = redis::TlsCertificates {
            client_tls: Some(redis::ClientTlsConfig {
                client_cert: std::fs::read(&self.certs.client_cert).unwrap(),
                client_key: std::fs::read(&self.certs.client_key).unwrap(),
            }),
            root_cert: Some(std::fs::read(&self.certs.ca).unwrap()),
        };
        redis::Client::build_with_tls(self.url(), certificates)?
            .get_connection_with_timeout(Duration::from_secs(5))
    }

    /// HSETs a track rule as the original's `add_rules.py` wrote it.
    fn add_rule(&self, slot_id: &str, rule_id: &str, value: &str) {
        let mut con = self.connection().unwrap();
        let _: () = redis::cmd("HSET")
            .arg(format!("traptor-track:{slot_id}:{rule_id}"))
            .arg(&[
                ("rule_id", rule_id),
                ("value", value),
                ("rule_type", "track"),
                ("orig_type", "keyword"),
                ("status", "active"),
                ("tag", "tls"),
            ])
            .query(&mut con)
            .unwrap();
    }

    fn get(&self, key: &str) -> Option<String> {
        redis::cmd("GET")
            .arg(key)
            .query(&mut self.connection().unwrap())
            .unwrap()
    }
}

impl Drop for TlsRedis {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// A cluster config reading its rules from the test's Redis (URL from `$TEST_REDIS_URL`, so the
/// password is not in the file) trusting `ca_file`, with stdout as the sink.
fn cluster_config(ca_file: Option<&Path>, endpoint: &str, keys: &str) -> String {
    let ca_line = ca_file
        .map(|path| format!("ca_file = \"{}\"\n", path.display()))
        .unwrap_or_default();
    format!(
        r#"
[redis]
url = "${{TEST_REDIS_URL}}"
{ca_line}resync_interval_secs = 2

[sink]
kind = "stdout"

[heartbeat]
interval_secs = 1

[log]
level = "info"
status_interval_secs = 0

[status]
listen = "127.0.0.1:0"

[stream]
endpoint = "{endpoint}"
{keys}"#
    )
}

/// `traptor-supervisor check` with `config` written in the server's directory.
fn check(redis: &TlsRedis, config: &str) -> Output {
    let path = redis.dir.join(format!("{}.toml", unique("check")));
    std::fs::write(&path, config).unwrap();
    let output = Command::new(env!("CARGO_BIN_EXE_traptor-supervisor"))
        .arg("check")
        .arg("--config")
        .arg(&path)
        .env("TEST_REDIS_URL", redis.url())
        .output()
        .expect("running traptor-supervisor check");
    std::fs::remove_file(&path).ok();
    output
}

/// `traptor` with `args`; `$TRAPTOR_REDIS_CA_FILE` is cleared unless given in `env`.
fn traptor(args: &[&str], env: &[(&str, &str)]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_traptor"))
        .args(args)
        .env_remove("TRAPTOR_REDIS_URL")
        .env_remove("TRAPTOR_REDIS_CA_FILE")
        .env_remove("TRAPTOR_REDIS_CLIENT_CERT")
        .env_remove("TRAPTOR_REDIS_CLIENT_KEY")
        .envs(env.iter().copied())
        .stdin(Stdio::null())
        .output()
        .expect("running traptor")
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

#[track_caller]
fn assert_no_password(output: &Output) {
    let (out, err) = (text(&output.stdout), text(&output.stderr));
    assert!(
        !out.contains(PASSWORD) && !err.contains(PASSWORD),
        "the password leaked:\n{out}\n{err}"
    );
}

#[test]
#[ignore = "needs Redis and Kafka: run scripts/test.sh"]
fn check_reads_the_rules_through_tls_with_the_private_ca() {
    let redis = TlsRedis::start();
    redis.add_rule("0", "1", "alpha");
    let keys = keys_toml(&test_keys("redis-tls-check", 1));

    let output = check(
        &redis,
        &cluster_config(Some(&redis.certs.ca), "https://127.0.0.1:1/", &keys),
    );
    let (out, err) = (text(&output.stdout), text(&output.stderr));
    assert!(output.status.success(), "stdout:\n{out}\nstderr:\n{err}");
    assert!(
        out.contains(&format!("rules from Redis {}", redis.address())),
        "{out}"
    );
    assert!(out.contains("track:0: 1 rule(s), 0 not loadable"), "{out}");
    assert_no_password(&output);

    // `traptor plan` with the config's [redis] ca_file, then with --redis and --redis-ca-file.
    let config = redis.dir.join("plan.toml");
    std::fs::write(
        &config,
        cluster_config(Some(&redis.certs.ca), "https://127.0.0.1:1/", &keys),
    )
    .unwrap();
    let config = config.display().to_string();
    let url = redis.url();
    let ca = redis.certs.ca.display().to_string();
    let summary = format!("rules from Redis {}: 1 slot(s), 1 rule(s)", redis.address());
    for (args, env) in [
        (
            vec!["plan", "--config", &config],
            vec![("TEST_REDIS_URL", url.as_str())],
        ),
        (
            vec![
                "plan",
                "--config",
                &config,
                "--redis",
                &url,
                "--redis-ca-file",
                &ca,
            ],
            vec![("TEST_REDIS_URL", "rediss://127.0.0.1:1/0")],
        ),
    ] {
        let output = traptor(&args, &env);
        let out = text(&output.stdout);
        assert!(
            output.status.success(),
            "{args:?}: {}",
            text(&output.stderr)
        );
        assert!(out.contains(&summary), "{args:?}: {out}");
        assert_no_password(&output);
    }
}

#[test]
#[ignore = "needs Redis and Kafka: run scripts/test.sh"]
fn without_the_private_ca_the_certificate_is_not_trusted_and_the_error_says_what_to_set() {
    let redis = TlsRedis::start();
    redis.add_rule("0", "1", "alpha");
    let keys = keys_toml(&test_keys("redis-tls-untrusted", 1));

    // The public roots only.
    let output = check(&redis, &cluster_config(None, "https://127.0.0.1:1/", &keys));
    let err = text(&output.stderr);
    assert_eq!(output.status.code(), Some(1), "{err}");
    assert!(err.contains(&redis.address()), "{err}");
    assert!(err.contains("certificate is not trusted"), "{err}");
    assert!(err.contains("[redis] ca_file"), "{err}");
    assert_no_password(&output);

    // Another CA than the one that signed the server's certificate.
    let other = Certificates::generate(&redis.dir, "other");
    let output = check(
        &redis,
        &cluster_config(Some(&other.ca), "https://127.0.0.1:1/", &keys),
    );
    let err = text(&output.stderr);
    assert_eq!(output.status.code(), Some(1), "{err}");
    assert!(err.contains("certificate is not trusted"), "{err}");
    assert!(err.contains(&other.ca.display().to_string()), "{err}");
    assert_no_password(&output);

    // The running supervisor's rule watcher says the same while it retries.
    let url = redis.url();
    let mut supervisor = Supervisor::start_with_env(
        &cluster_config(None, "https://127.0.0.1:1/", &keys),
        &redis.dir,
        &[("TEST_REDIS_URL", url.as_str())],
    );
    supervisor.wait_for(
        Duration::from_secs(20),
        "the watcher's warning about the certificate",
        |s| {
            let stderr = s.stderr();
            stderr.contains("certificate is not trusted") && stderr.contains("[redis] ca_file")
        },
    );
    supervisor.kill();
    assert!(!supervisor.stderr().contains(PASSWORD));

    // A CA file that is not there is a start-up error naming it.
    let missing = redis.dir.join("missing-ca.pem");
    let output = check(
        &redis,
        &cluster_config(Some(&missing), "https://127.0.0.1:1/", &keys),
    );
    let err = text(&output.stderr);
    assert_eq!(output.status.code(), Some(1), "{err}");
    assert!(
        err.contains(&missing.display().to_string()) && err.contains("[redis] ca_file"),
        "{err}"
    );
}

#[test]
#[ignore = "needs Redis and Kafka: run scripts/test.sh"]
fn the_supervisor_streams_the_rules_it_reads_through_tls_and_beats_there() {
    let redis = TlsRedis::start();
    redis.add_rule("0", "1", "alpha");
    let keys = test_keys("redis-tls-run", 1);
    let emulator = start_emulator(emulator_config(&keys, 20.0));
    let config = cluster_config(Some(&redis.certs.ca), &emulator.url(), &keys_toml(&keys));
    let url = redis.url();
    let mut supervisor =
        Supervisor::start_with_env(&config, &redis.dir, &[("TEST_REDIS_URL", url.as_str())]);

    supervisor.wait_for(
        Duration::from_secs(30),
        "tweets matching the rule read over TLS",
        |s| {
            enriched_tweets(&s.stdout()).iter().any(|tweet| {
                tweet["traptor"]["collection_rules"]
                    .as_array()
                    .is_some_and(|rules| rules.iter().any(|rule| rule["rule_value"] == "alpha"))
            })
        },
    );
    let deadline = Instant::now() + Duration::from_secs(15);
    while redis.get("track:0:heartbeat").is_none() {
        assert!(
            Instant::now() < deadline,
            "no heartbeat written over TLS; stderr:\n{}",
            supervisor.stderr()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    assert!(supervisor.terminate(Duration::from_secs(15)).success());
    let stderr = supervisor.stderr();
    assert!(
        stderr.contains("rule watcher subscribed and synced"),
        "{stderr}"
    );
    assert!(!stderr.contains(PASSWORD), "{stderr}");
    drop(emulator);
}

#[test]
#[ignore = "needs Redis and Kafka: run scripts/test.sh"]
fn the_rule_commands_work_through_tls_with_the_ca_flag_or_variable() {
    let redis = TlsRedis::start();
    let url = redis.url();
    let ca = redis.certs.ca.display().to_string();

    let added = traptor(
        &[
            "rules",
            "add",
            "--slot",
            "track:7",
            "--rule-id",
            "70",
            "--value",
            "tls rule",
            "--orig-type",
            "keyword",
            "--redis",
            &url,
            "--redis-ca-file",
            &ca,
        ],
        &[],
    );
    assert!(added.status.success(), "{}", text(&added.stderr));
    assert!(
        text(&added.stdout).contains("added rule 70"),
        "{}",
        text(&added.stdout)
    );
    assert_no_password(&added);

    // The CA from $TRAPTOR_REDIS_CA_FILE.
    let listed = traptor(
        &[
            "rules", "list", "--slot", "track:7", "--json", "--redis", &url,
        ],
        &[("TRAPTOR_REDIS_CA_FILE", &ca)],
    );
    assert!(listed.status.success(), "{}", text(&listed.stderr));
    let rules: Vec<serde_json::Value> = text(&listed.stdout)
        .lines()
        .map(|line| serde_json::from_str(line).unwrap())
        .collect();
    assert_eq!(rules.len(), 1, "{rules:?}");
    assert_eq!(rules[0]["hash"]["value"], "tls rule");
    assert_no_password(&listed);

    // Without the CA, the command says why and what to pass.
    let refused = traptor(
        &["rules", "list", "--slot", "track:7", "--redis", &url],
        &[],
    );
    let err = text(&refused.stderr);
    assert!(!refused.status.success(), "{err}");
    assert!(err.contains("certificate is not trusted"), "{err}");
    assert!(err.contains("--redis-ca-file"), "{err}");
    assert_no_password(&refused);
}

#[test]
#[ignore = "needs Redis and Kafka: run scripts/test.sh"]
fn a_redis_that_requires_client_certificates_lets_traptor_in_with_its_certificate() {
    let redis = TlsRedis::start_requiring_client_certificates();
    redis.add_rule("0", "1", "alpha");
    let keys = keys_toml(&test_keys("redis-tls-client", 1));
    let with_ca = cluster_config(Some(&redis.certs.ca), "https://127.0.0.1:1/", &keys);

    // Without a client certificate: refused, and the error names the settings.
    let output = check(&redis, &with_ca);
    let err = text(&output.stderr);
    assert_eq!(output.status.code(), Some(1), "{err}");
    assert!(
        err.contains("requires a client certificate") && err.contains("[redis] client_cert_file"),
        "{err}"
    );
    assert_no_password(&output);

    // With it: the rules are read.
    let with_identity = with_ca.replacen(
        "resync_interval_secs = 2",
        &format!(
            "client_cert_file = \"{}\"\nclient_key_file = \"{}\"\nresync_interval_secs = 2",
            redis.certs.client_cert.display(),
            redis.certs.client_key.display()
        ),
        1,
    );
    let output = check(&redis, &with_identity);
    let (out, err) = (text(&output.stdout), text(&output.stderr));
    assert!(output.status.success(), "stdout:\n{out}\nstderr:\n{err}");
    assert!(out.contains("track:0: 1 rule(s), 0 not loadable"), "{out}");
    assert_no_password(&output);

    // A certificate the server's CA did not sign is refused, named.
    let other = Certificates::generate(&redis.dir, "other");
    let output = check(
        &redis,
        &with_identity
            .replace(
                &redis.certs.client_cert.display().to_string(),
                &other.client_cert.display().to_string(),
            )
            .replace(
                &redis.certs.client_key.display().to_string(),
                &other.client_key.display().to_string(),
            ),
    );
    let err = text(&output.stderr);
    assert_eq!(output.status.code(), Some(1), "{err}");
    assert!(
        err.contains(&format!(
            "refused the client certificate {}",
            other.client_cert.display()
        )),
        "{err}"
    );

    // The rule commands: flags, then environment variables.
    let url = redis.url();
    let ca = redis.certs.ca.display().to_string();
    let cert = redis.certs.client_cert.display().to_string();
    let key = redis.certs.client_key.display().to_string();
    for (extra, env) in [
        (
            vec!["--redis-client-cert", &cert, "--redis-client-key", &key],
            vec![],
        ),
        (
            vec![],
            vec![
                ("TRAPTOR_REDIS_CLIENT_CERT", cert.as_str()),
                ("TRAPTOR_REDIS_CLIENT_KEY", key.as_str()),
            ],
        ),
    ] {
        let mut args = vec![
            "rules",
            "list",
            "--slot",
            "track:0",
            "--json",
            "--redis",
            &url,
            "--redis-ca-file",
            &ca,
        ];
        args.extend(extra);
        let listed = traptor(&args, &env);
        assert!(listed.status.success(), "{}", text(&listed.stderr));
        assert!(
            text(&listed.stdout).contains("alpha"),
            "{}",
            text(&listed.stdout)
        );
        assert_no_password(&listed);
    }
}
