//! Shared pieces of the `fuzz_*` property tests: how many cases to run, a watchdog that turns a
//! hang into a loud failure, and inputs built from the real fixtures and the tweet generator.
//!
//! Case counts scale with `TRAPTOR_FUZZ_CASES` (cases per property; the default keeps the whole
//! test command fast). Soak run, millions of executions in release mode:
//!
//! ```sh
//! TRAPTOR_FUZZ_CASES=200000 cargo test --release -p traptor-core --test fuzz_frame \
//!     --test fuzz_rules --test fuzz_enrich -- --test-threads=2
//! ```
#![allow(dead_code)] // each fuzz_* binary uses its own part of this module

use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use proptest::prelude::*;
use proptest::test_runner::Config;

/// Cases per property: `TRAPTOR_FUZZ_CASES`, else `default`.
pub fn cases(default: u32) -> u32 {
    std::env::var("TRAPTOR_FUZZ_CASES")
        .ok()
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(default)
}

/// The proptest configuration of every fuzz property: no regression files written into the
/// tree (a failure prints its shrunk input), and shrinking bounded so a failure reports fast.
pub fn config(default_cases: u32) -> Config {
    Config {
        cases: cases(default_cases),
        failure_persistence: None,
        max_shrink_iters: 2_000,
        ..Config::default()
    }
}

/// Longest time one case may take: `TRAPTOR_FUZZ_CASE_MS`, else 5 s (debug builds, 1 MB inputs).
pub fn case_bound() -> Duration {
    let ms = std::env::var("TRAPTOR_FUZZ_CASE_MS")
        .ok()
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(5_000);
    Duration::from_millis(ms)
}

/// Aborts the process when one case runs past the bound, naming the target and printing the
/// start of the input: a hang must fail the run, not stall it forever. Cheap enough for
/// millions of cases (two atomic stores per case).
pub struct Watchdog {
    /// Milliseconds since `epoch` when the running case started; 0 when idle.
    started_ms: AtomicU64,
    epoch: Instant,
    current: Mutex<String>,
}

static WATCHDOGS: OnceLock<Mutex<Vec<Arc<Watchdog>>>> = OnceLock::new();

impl Watchdog {
    /// One watchdog per property (tests run in parallel threads).
    pub fn new() -> Arc<Watchdog> {
        let dog = Arc::new(Watchdog {
            started_ms: AtomicU64::new(0),
            epoch: Instant::now(),
            current: Mutex::new(String::new()),
        });
        let all = WATCHDOGS.get_or_init(|| {
            std::thread::spawn(patrol);
            Mutex::new(Vec::new())
        });
        all.lock().unwrap().push(dog.clone());
        dog
    }

    /// Runs one case; `describe` is evaluated only if the case hangs or runs over the bound.
    pub fn run<T>(&self, target: &str, input: &[u8], case: impl FnOnce() -> T) -> T {
        *self.current.lock().unwrap() = format!(
            "{target}: input of {} bytes: {:?}",
            input.len(),
            preview(input)
        );
        let start = Instant::now();
        self.started_ms.store(
            self.epoch.elapsed().as_millis() as u64 + 1,
            Ordering::Release,
        );
        let out = case();
        self.started_ms.store(0, Ordering::Release);
        let took = start.elapsed();
        assert!(
            took <= case_bound(),
            "{target} took {took:?} (bound {:?}) on {}",
            case_bound(),
            self.current.lock().unwrap()
        );
        out
    }
}

fn patrol() {
    let bound = case_bound();
    loop {
        std::thread::sleep(Duration::from_millis(200));
        let Some(all) = WATCHDOGS.get() else { continue };
        for dog in all.lock().unwrap().iter() {
            let started = dog.started_ms.load(Ordering::Acquire);
            if started == 0 {
                continue;
            }
            let now = dog.epoch.elapsed().as_millis() as u64 + 1;
            if Duration::from_millis(now.saturating_sub(started)) > bound * 3 {
                eprintln!(
                    "HANG: a fuzz case ran over {:?}; {}",
                    bound * 3,
                    dog.current.lock().unwrap()
                );
                std::process::abort();
            }
        }
    }
}

/// The first 300 bytes of an input, for failure messages.
pub fn preview(input: &[u8]) -> String {
    String::from_utf8_lossy(&input[..input.len().min(300)]).into_owned()
}

/// The workspace's `tests/fixtures/traptor-v4` directory.
pub fn fixtures_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../tests/fixtures/traptor-v4")
}

/// The fixture tweets (`*_tweet.json`), each as one line of compact JSON.
pub fn fixture_tweets() -> Vec<Vec<u8>> {
    let mut tweets = Vec::new();
    let mut names: Vec<_> = std::fs::read_dir(fixtures_dir())
        .expect("the traptor-v4 fixtures")
        .map(|e| e.unwrap().path())
        .filter(|p| p.to_string_lossy().ends_with("_tweet.json"))
        .collect();
    names.sort();
    for path in names {
        let text = std::fs::read(&path).unwrap();
        let value: serde_json::Value = serde_json::from_slice(&text).unwrap();
        tweets.push(serde_json::to_vec(&value).unwrap());
    }
    assert!(
        tweets.len() >= 4,
        "expected the fixture tweets in {:?}",
        fixtures_dir()
    );
    tweets
}

/// The fixture control messages (`*_message.json`), compact.
pub fn fixture_messages() -> Vec<Vec<u8>> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(fixtures_dir()).unwrap() {
        let path = entry.unwrap().path();
        if path.to_string_lossy().ends_with("_message.json") {
            let value: serde_json::Value =
                serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap();
            out.push(serde_json::to_vec(&value).unwrap());
        }
    }
    out.sort();
    out
}

/// Generated tweets of every shape the emulator makes (retweets, quotes, extended, media, geo).
pub fn generated_tweets(count: usize) -> Vec<Vec<u8>> {
    use traptor_firehose::generate::{Clock, GeneratorOptions, Plant, TweetGenerator};
    let options = GeneratorOptions {
        geo_ratio: 0.3,
        clock: Clock::Fixed {
            start_ms: 1_700_000_000_000,
            step_ms: 1_000,
        },
        ..GeneratorOptions::default()
    };
    let mut generator = TweetGenerator::new(7, options);
    let plant = Plant {
        phrases: vec!["happy".into(), "#fuzz".into()],
        ..Plant::default()
    };
    (0..count)
        .map(|n| {
            if n % 2 == 0 {
                generator.tweet_json(&plant)
            } else {
                generator.tweet_json(&Plant::default())
            }
        })
        .collect()
}

/// One edit of a byte string, as a fuzzer's mutator makes them.
#[derive(Debug, Clone)]
pub enum Mutation {
    /// Replace the byte at this position (modulo length).
    Set(usize, u8),
    /// Delete `len` bytes from this position.
    Delete(usize, usize),
    /// Insert these bytes at this position.
    Insert(usize, Vec<u8>),
    /// Copy `len` bytes from the first position over to the second (duplicates structure).
    Splice(usize, usize, usize),
    /// Cut the input here.
    Truncate(usize),
}

/// Bytes that steer mutations toward the interesting corners of JSON and of the framing.
pub fn interesting_bytes() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        prop::collection::vec(any::<u8>(), 1..8),
        Just(b"\"".to_vec()),
        Just(b"\\".to_vec()),
        Just(b"\\u0000".to_vec()),
        Just(b"\\ud800".to_vec()),
        Just(b"\r\n".to_vec()),
        Just(b"\n".to_vec()),
        Just(b"{".to_vec()),
        Just(b"}".to_vec()),
        Just(b"[".to_vec()),
        Just(b"]".to_vec()),
        Just(b",".to_vec()),
        Just(b":".to_vec()),
        Just(b"null".to_vec()),
        Just(b"1e999".to_vec()),
        Just(b"-0".to_vec()),
        Just(b"18446744073709551616".to_vec()),
        Just(b"\"traptor\":{}".to_vec()),
        Just(b"\"tr\\u0061ptor\":1,".to_vec()),
        Just(b"\"text\":\"dup\",".to_vec()),
        Just(b"\"id_str\":\"1\",".to_vec()),
        Just("\u{0}\u{feff}\u{202e}é😀".as_bytes().to_vec()),
        Just(vec![0xff, 0xfe]),
        Just(vec![0xed, 0xa0, 0x80]),
    ]
}

pub fn mutation() -> impl Strategy<Value = Mutation> {
    prop_oneof![
        3 => (any::<usize>(), any::<u8>()).prop_map(|(at, b)| Mutation::Set(at, b)),
        2 => (any::<usize>(), 1usize..16).prop_map(|(at, len)| Mutation::Delete(at, len)),
        3 => (any::<usize>(), interesting_bytes()).prop_map(|(at, b)| Mutation::Insert(at, b)),
        1 => (any::<usize>(), any::<usize>(), 1usize..64).prop_map(|(a, b, l)| Mutation::Splice(a, b, l)),
        1 => any::<usize>().prop_map(Mutation::Truncate),
    ]
}

/// Applies the mutations in order.
pub fn mutate(input: &[u8], mutations: &[Mutation]) -> Vec<u8> {
    let mut out = input.to_vec();
    for m in mutations {
        let len = out.len();
        match m {
            Mutation::Set(at, b) if len > 0 => out[at % len] = *b,
            Mutation::Delete(at, n) if len > 0 => {
                let from = at % len;
                let to = (from + n).min(len);
                out.drain(from..to);
            }
            Mutation::Insert(at, bytes) => {
                let at = at % (len + 1);
                out.splice(at..at, bytes.iter().copied());
            }
            Mutation::Splice(from, to, n) if len > 0 => {
                let from = from % len;
                let piece: Vec<u8> = out[from..(from + n).min(len)].to_vec();
                let to = to % (len + 1);
                out.splice(to..to, piece);
            }
            Mutation::Truncate(at) => out.truncate(at % (len + 1)),
            _ => {}
        }
    }
    out
}

/// Splits `bytes` at the given (unsorted, possibly repeated) cut points.
pub fn split<'a>(bytes: &'a [u8], cuts: &[usize]) -> Vec<&'a [u8]> {
    let mut points: Vec<usize> = cuts.iter().map(|c| c % (bytes.len() + 1)).collect();
    points.sort_unstable();
    let mut chunks = Vec::new();
    let mut from = 0;
    for p in points {
        chunks.push(&bytes[from..p]);
        from = p;
    }
    chunks.push(&bytes[from..]);
    chunks
}
