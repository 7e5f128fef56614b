//! Credentials never reach the logs: the supervisor binary runs against a streaming-API emulator
//! with recognizable secrets in its config, at `trace` level, in JSON and human log formats,
//! with the right secret (streams open) and a wrong one (the 401 path), and as `check`; every
//! byte it prints (stdout and stderr) is searched for the secrets. Consumer keys and access
//! tokens may appear only redacted (their first four characters).

use std::io::Read;
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const CONSUMER_KEY: &str = "CKEYpublic-4a8b1c2d3e";
const CONSUMER_SECRET: &str = "CSECRET-hunter2-9f8e7d6c";
const ACCESS_TOKEN: &str = "ATOKpublic-1122334455";
const ACCESS_TOKEN_SECRET: &str = "ATSECRET-swordfish-0a1b2c";
const WRONG_TOKEN_SECRET: &str = "ATSECRET-wrong-guess-77";
const REDIS_PASSWORD: &str = "REDISPW-correcthorse-31";
const KAFKA_PASSWORD: &str = "KAFKAPW-batterystaple-42";

/// Everything that must never be printed in full.
const NEVER_SHOWN: [&str; 7] = [
    CONSUMER_KEY,
    CONSUMER_SECRET,
    ACCESS_TOKEN,
    ACCESS_TOKEN_SECRET,
    WRONG_TOKEN_SECRET,
    REDIS_PASSWORD,
    KAFKA_PASSWORD,
];

fn workspace() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// The emulator, as its own process, accepting only the right key. Killed on drop.
struct Emulator {
    child: Child,
    port: u16,
}

impl Emulator {
    fn start(dir: &Path) -> Emulator {
        let keys = dir.join("emulator-keys.json");
        std::fs::write(
            &keys,
            format!(
                r#"[{{"consumer_key":"{CONSUMER_KEY}","consumer_secret":"{CONSUMER_SECRET}","access_token":"{ACCESS_TOKEN}","access_token_secret":"{ACCESS_TOKEN_SECRET}"}}]"#
            ),
        )
        .unwrap();
        let port = free_port();
        let child = Command::new(env!("CARGO_BIN_EXE_traptor"))
            .args([
                "firehose",
                "--listen",
                &format!("127.0.0.1:{port}"),
                "--keys",
            ])
            .arg(&keys)
            .args(["--rate", "50", "--keepalive-ms", "500", "--hit-ratio", "1"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let deadline = Instant::now() + Duration::from_secs(20);
        while TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(
                Instant::now() < deadline,
                "the emulator did not listen on {port}"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        Emulator { child, port }
    }
}

impl Drop for Emulator {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A config with literal secrets everywhere one can be written: the API key, the Redis URL and
/// the Kafka producer's SASL password (the last two unused by a file/stdout run, but loaded).
fn write_config(dir: &Path, emulator_port: u16, token_secret: &str, format: &str) -> PathBuf {
    let rules = workspace().join("config/demo-rules.json");
    let text = format!(
        r#"
[rules]
source = "file"
path = "{rules}"

[sink]
kind = "stdout"

[log]
format = "{format}"
level = "trace"
status_interval_secs = 1

[redis]
url = "redis://traptor:{REDIS_PASSWORD}@127.0.0.1:1/0"

[kafka.producer]
"sasl.username" = "traptor"
"sasl.password" = "{KAFKA_PASSWORD}"

[stream]
endpoint = "http://127.0.0.1:{emulator_port}/1.1/statuses/filter.json"
stall_timeout_secs = 5

[[keys]]
name = "the-only-key"
consumer_key = "{CONSUMER_KEY}"
consumer_secret = "{CONSUMER_SECRET}"
access_token = "{ACCESS_TOKEN}"
access_token_secret = "{token_secret}"
"#,
        rules = rules.display()
    );
    let path = dir.join(format!("cluster-{format}-{}.toml", &token_secret[..12]));
    std::fs::write(&path, text).unwrap();
    path
}

/// Runs the supervisor for `run_for` (then stops it with SIGTERM, or kills it), returning all
/// it printed.
fn run_supervisor(args: &[&str], config: &Path, run_for: Duration) -> (String, String) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_traptor-supervisor"))
        .args(args)
        .arg("--config")
        .arg(config)
        .env("RUST_LOG", "trace")
        .env("RUST_BACKTRACE", "1")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // Drain both pipes on threads so a chatty trace log never blocks the child.
    let mut stdout = child.stdout.take().unwrap();
    let mut stderr = child.stderr.take().unwrap();
    let out = std::thread::spawn(move || {
        let mut s = Vec::new();
        stdout.read_to_end(&mut s).unwrap();
        s
    });
    let err = std::thread::spawn(move || {
        let mut s = Vec::new();
        stderr.read_to_end(&mut s).unwrap();
        s
    });
    let deadline = Instant::now() + run_for;
    while Instant::now() < deadline {
        if child.try_wait().unwrap().is_some() {
            break;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    if child.try_wait().unwrap().is_none() {
        let _ = Command::new("kill")
            .args(["-TERM", &child.id().to_string()])
            .status();
        let grace = Instant::now() + Duration::from_secs(10);
        while child.try_wait().unwrap().is_none() && Instant::now() < grace {
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = child.kill();
        let _ = child.wait();
    }
    let out = String::from_utf8_lossy(&out.join().unwrap()).into_owned();
    let err = String::from_utf8_lossy(&err.join().unwrap()).into_owned();
    (out, err)
}

/// Fails naming the secret and the lines that show it.
fn assert_no_secrets(what: &str, output: &str) {
    for secret in NEVER_SHOWN {
        let lines: Vec<&str> = output
            .lines()
            .filter(|l| l.contains(secret))
            .take(5)
            .collect();
        assert!(
            lines.is_empty(),
            "{what}: {secret:?} is printed in:\n{}",
            lines.join("\n")
        );
        // Percent-encoded (as in an OAuth header or a form) counts too.
        let encoded = traptor_core::oauth::encode(secret);
        assert!(
            !output.contains(&encoded),
            "{what}: {secret:?} is printed percent-encoded"
        );
    }
}

#[test]
fn secrets_never_appear_in_any_output_of_the_supervisor() {
    let dir = tempfile_dir();
    let emulator = Emulator::start(dir.path());
    for format in ["json", "human"] {
        let config = write_config(dir.path(), emulator.port, ACCESS_TOKEN_SECRET, format);
        let (out, err) = run_supervisor(&[], &config, Duration::from_secs(5));
        // The stream really opened and delivered: enriched tweets on stdout.
        assert!(
            out.lines().any(|l| l.contains("\"traptor\"")),
            "{format}: no enriched tweet on stdout; stderr:\n{}",
            tail(&err)
        );
        assert!(
            err.lines().count() > 20,
            "{format}: expected a trace log, got:\n{err}"
        );
        assert_no_secrets(&format!("run ({format} logs), stdout"), &out);
        assert_no_secrets(&format!("run ({format} logs), stderr"), &err);
        // Keys are still told apart in the logs, by name.
        assert!(
            err.contains("the-only-key"),
            "{format}: the key's name should be logged"
        );
    }
}

#[test]
fn a_rejected_key_is_reported_without_its_secrets() {
    let dir = tempfile_dir();
    let emulator = Emulator::start(dir.path());
    for format in ["json", "human"] {
        let config = write_config(dir.path(), emulator.port, WRONG_TOKEN_SECRET, format);
        let (out, err) = run_supervisor(&[], &config, Duration::from_secs(4));
        assert!(
            err.contains("401"),
            "{format}: the 401 from the emulator should be reported; stderr:\n{}",
            tail(&err)
        );
        assert!(
            !out.contains("\"traptor\""),
            "no tweet can arrive with a wrong secret"
        );
        assert_no_secrets(&format!("401 run ({format}), stdout"), &out);
        assert_no_secrets(&format!("401 run ({format}), stderr"), &err);
    }
}

#[test]
fn check_never_prints_secrets() {
    let dir = tempfile_dir();
    let config = write_config(dir.path(), free_port(), ACCESS_TOKEN_SECRET, "json");
    let (out, err) = run_supervisor(&["check"], &config, Duration::from_secs(30));
    assert!(
        out.contains("track:0") || out.contains("the-only-key"),
        "check printed no plan:\n{out}\n{err}"
    );
    assert_no_secrets("check, stdout", &out);
    assert_no_secrets("check, stderr", &err);
}

/// An invalid config (a typo in a section name, so the Redis URL and the SASL password land in
/// the wrong table) fails at load with an error that names the problem, not the secrets.
#[test]
fn an_invalid_config_is_reported_without_its_secrets() {
    let dir = tempfile_dir();
    let good =
        std::fs::read_to_string(write_config(dir.path(), 1, ACCESS_TOKEN_SECRET, "json")).unwrap();
    for (from, to) in [
        ("[redis]", "[rediss]"),
        ("[redis]", ""),
        ("[kafka.producer]", "[kafka.produce]"),
        ("access_token_secret =", "access_token_secrt ="),
        ("consumer_secret =", "consumer-secret ="),
        ("url = \"redis://", "url = redis://"),
    ] {
        let path = dir.path().join("broken.toml");
        std::fs::write(&path, good.replacen(from, to, 1)).unwrap();
        for args in [&[][..], &["check"][..]] {
            let (out, err) = run_supervisor(args, &path, Duration::from_secs(30));
            assert!(
                err.contains("invalid configuration"),
                "{from} -> {to}: {err}"
            );
            assert_no_secrets(
                &format!("config with {from:?} changed to {to:?}"),
                &format!("{out}\n{err}"),
            );
        }
    }
}

/// A librdkafka option holding a password, misspelled: `check` and a run both refuse it by
/// name (librdkafka checks the settings), and neither prints the password.
#[test]
fn a_misspelled_kafka_password_option_is_refused_without_its_value() {
    let dir = tempfile_dir();
    let good =
        std::fs::read_to_string(write_config(dir.path(), 1, ACCESS_TOKEN_SECRET, "json")).unwrap();
    let misspelled = good
        .replacen("kind = \"stdout\"", "kind = \"kafka\"", 1)
        .replacen(
            "[kafka.producer]",
            "[kafka]\nbootstrap_servers = \"127.0.0.1:1\"\n\n[kafka.producer]",
            1,
        )
        .replacen("\"sasl.password\"", "\"sasl.pasword\"", 1);
    let path = dir.path().join("misspelled.toml");
    std::fs::write(&path, misspelled).unwrap();
    for args in [&[][..], &["check"][..]] {
        let (out, err) = run_supervisor(args, &path, Duration::from_secs(30));
        assert!(
            err.contains("No such configuration property: \"sasl.pasword\""),
            "{args:?}: {err}"
        );
        assert_no_secrets(
            &format!("{args:?} with sasl.pasword"),
            &format!("{out}\n{err}"),
        );
    }
}

fn tail(text: &str) -> String {
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(40)..].join("\n")
}

fn tempfile_dir() -> TempDir {
    TempDir::new()
}

/// A private temporary directory, removed on drop (the root package has no tempfile crate).
struct TempDir(PathBuf);

impl TempDir {
    fn new() -> TempDir {
        use std::sync::atomic::{AtomicU32, Ordering};
        static N: AtomicU32 = AtomicU32::new(0);
        let path = std::env::temp_dir().join(format!(
            "traptor-security-{}-{}",
            std::process::id(),
            N.fetch_add(1, Ordering::Relaxed)
        ));
        std::fs::create_dir_all(&path).unwrap();
        TempDir(path)
    }

    fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}
