//! Running `traptor-supervisor` as a real process for the end-to-end tests: a config written
//! to a temporary file, stdout and stderr collected on threads, SIGTERM, and a bounded wait.

// Each test binary uses only some of these helpers.
#![allow(dead_code)]

pub mod emulator;
pub mod http;

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// A running supervisor; killed on drop if a test fails before stopping it.
pub struct Supervisor {
    child: Child,
    stdout: Arc<Mutex<Vec<String>>>,
    stderr: Arc<Mutex<Vec<String>>>,
    config_path: PathBuf,
}

impl Supervisor {
    /// Starts the binary with `config` (TOML text) written to a fresh temporary file.
    /// `base_dir` is where relative paths of the config are resolved (the file is written there).
    pub fn start(config: &str, base_dir: &Path) -> Supervisor {
        Self::start_with_env(config, base_dir, &[])
    }

    /// Like [`Supervisor::start`], with extra environment variables for the process.
    pub fn start_with_env(config: &str, base_dir: &Path, env: &[(&str, &str)]) -> Supervisor {
        let config_path = base_dir.join(format!("e2e-{}.toml", unique("cluster")));
        std::fs::write(&config_path, config).expect("writing the test config");
        Self::spawn(&config_path, true, env)
    }

    /// Starts the binary with an existing config file (not deleted afterwards unless `owned`).
    pub fn start_with_file(config_path: &Path, owned: bool) -> Supervisor {
        Self::spawn(config_path, owned, &[])
    }

    fn spawn(config_path: &Path, owned: bool, env: &[(&str, &str)]) -> Supervisor {
        let mut child = Command::new(env!("CARGO_BIN_EXE_traptor-supervisor"))
            .arg("--config")
            .arg(config_path)
            .env("RUST_LOG", "info")
            .envs(env.iter().copied())
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("starting traptor-supervisor");
        let stdout = collect_lines(child.stdout.take().expect("piped stdout"));
        let stderr = collect_lines(child.stderr.take().expect("piped stderr"));
        Supervisor {
            child,
            stdout,
            stderr,
            config_path: if owned {
                config_path.to_owned()
            } else {
                PathBuf::new()
            },
        }
    }

    /// The config file it was started with (rewrite it, then SIGHUP, to reload the keys).
    pub fn config_path(&self) -> &Path {
        &self.config_path
    }

    pub fn stdout(&self) -> Vec<String> {
        self.stdout.lock().unwrap().clone()
    }

    pub fn stderr(&self) -> String {
        self.stderr.lock().unwrap().join("\n")
    }

    /// Waits until `check` accepts the output so far; panics with the logs after `limit`.
    pub fn wait_for(&mut self, limit: Duration, what: &str, check: impl Fn(&Supervisor) -> bool) {
        let deadline = Instant::now() + limit;
        while !check(self) {
            if let Ok(Some(status)) = self.child.try_wait() {
                panic!(
                    "traptor-supervisor exited ({status}) while waiting for {what}; stderr:\n{}",
                    self.stderr()
                );
            }
            assert!(
                Instant::now() < deadline,
                "timed out waiting for {what}; stderr:\n{}",
                self.stderr()
            );
            thread::sleep(Duration::from_millis(100));
        }
    }

    pub fn signal(&self, name: &str) {
        let status = Command::new("kill")
            .arg(format!("-{name}"))
            .arg(self.child.id().to_string())
            .status()
            .expect("running kill");
        assert!(status.success(), "kill -{name} failed");
    }

    /// Sends signal `name` twice at once, as `timeout` does (to the process, then to its
    /// process group).
    pub fn signal_twice_at_once(&self, name: &str) {
        let pid = self.child.id().to_string();
        let status = Command::new("kill")
            .arg(format!("-{name}"))
            .args([&pid, &pid])
            .status()
            .expect("running kill");
        assert!(status.success(), "kill -{name} {pid} {pid} failed");
    }

    /// Whether the process is still running.
    pub fn running(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }

    /// SIGKILL, and waits for the process to be gone.
    pub fn kill(&mut self) -> ExitStatus {
        let _ = self.child.kill();
        let status = self.child.wait().expect("waiting for traptor-supervisor");
        thread::sleep(Duration::from_millis(200));
        status
    }

    /// Sends SIGTERM and waits for the exit, at most `limit`.
    pub fn terminate(&mut self, limit: Duration) -> ExitStatus {
        self.signal("TERM");
        self.wait_for_exit(limit)
    }

    /// Waits for the process to exit, at most `limit`.
    pub fn wait_for_exit(&mut self, limit: Duration) -> ExitStatus {
        let deadline = Instant::now() + limit;
        loop {
            if let Some(status) = self
                .child
                .try_wait()
                .expect("waiting for traptor-supervisor")
            {
                // Let the reader threads drain the pipes.
                thread::sleep(Duration::from_millis(200));
                return status;
            }
            assert!(
                Instant::now() < deadline,
                "traptor-supervisor did not exit within {limit:?}; stderr:\n{}",
                self.stderr()
            );
            thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for Supervisor {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
        if !self.config_path.as_os_str().is_empty() {
            let _ = std::fs::remove_file(&self.config_path);
        }
    }
}

fn collect_lines(pipe: impl std::io::Read + Send + 'static) -> Arc<Mutex<Vec<String>>> {
    let lines = Arc::new(Mutex::new(Vec::new()));
    let sink = Arc::clone(&lines);
    thread::spawn(move || {
        for line in BufReader::new(pipe).lines() {
            match line {
                Ok(line) => sink.lock().unwrap().push(line),
                Err(_) => break,
            }
        }
    });
    lines
}

/// Writes `dir/rules.json`: three slots of one rule each, tagged `tag`: `track:0` "alpha",
/// `track:1` "beta" and `follow:0` user 783214 (the emulator plants all three).
pub fn write_three_slot_rules(dir: &Path, tag: &str) {
    let rule = |id: &str, value: &str, kind: &str, orig: &str| {
        format!(
            r#"{{"rule_id": "{id}", "tag": "{tag}", "value": "{value}", "rule_type": "{kind}", "orig_type": "{orig}", "status": "active"}}"#
        )
    };
    let rules = format!(
        r#"{{"track:0": [{}], "track:1": [{}], "follow:0": [{}]}}"#,
        rule("1", "alpha", "track", "keyword"),
        rule("2", "beta", "track", "keyword"),
        rule("3", "783214", "follow", "userid"),
    );
    std::fs::write(dir.join("rules.json"), rules).unwrap();
}

/// A name no other test of this run uses.
pub fn unique(prefix: &str) -> String {
    use std::sync::atomic::{AtomicU32, Ordering};
    static COUNTER: AtomicU32 = AtomicU32::new(0);
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_nanos();
    format!(
        "{prefix}-{}-{nanos}-{}",
        std::process::id(),
        COUNTER.fetch_add(1, Ordering::Relaxed)
    )
}

/// The repository root (for `config/`).
pub fn repo_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// The parsed JSON documents among `lines` that are tweets (have `id_str` and `traptor`).
pub fn enriched_tweets(lines: &[String]) -> Vec<serde_json::Value> {
    lines
        .iter()
        .filter_map(|line| serde_json::from_str::<serde_json::Value>(line).ok())
        .filter(|doc| doc.get("id_str").is_some() && doc.get("traptor").is_some())
        .collect()
}

/// What traptor says it received on its connections, summed per API key name: the bytes it
/// read and the messages (tweets among them) the writer accepted.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Received {
    pub connections: u64,
    pub bytes: u64,
    pub messages: u64,
    pub tweets: u64,
}

/// Sums the per-connection lines the stream logs when a connection ends (`stream ended` when
/// the server or an error ended it, `connection closed by traptor` otherwise), read from
/// human-format logs.
pub fn received_per_key(stderr: &str) -> std::collections::BTreeMap<String, Received> {
    let mut per_key: std::collections::BTreeMap<String, Received> = Default::default();
    for line in stderr.lines() {
        if !(line.contains("stream ended") || line.contains("connection closed by traptor")) {
            continue;
        }
        let field = |name: &str| {
            line.split_whitespace()
                .find_map(|token| token.strip_prefix(name)?.strip_prefix('='))
        };
        let number = |name: &str| field(name).and_then(|v| v.parse::<u64>().ok());
        let (Some(key), Some(bytes), Some(messages), Some(tweets)) = (
            field("key"),
            number("bytes"),
            number("messages"),
            number("tweets"),
        ) else {
            panic!("a connection-end line without its counts: {line}");
        };
        let entry = per_key.entry(key.to_owned()).or_default();
        entry.connections += 1;
        entry.bytes += bytes;
        entry.messages += messages;
        entry.tweets += tweets;
    }
    per_key
}
