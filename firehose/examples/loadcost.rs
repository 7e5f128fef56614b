//! CPU the emulator spends per tweet in load mode, shaped like the end-to-end throughput
//! benchmark: unlimited rate, `delimited=length` streams with stall warnings, one key and a set
//! of track phrases per stream, default compliance messages, queues of 500.
//!
//!     cargo run --release -p traptor-firehose --example loadcost -- \
//!         [--tweets N] [--streams N] [--phrases N] [--pooled-variants N] [--read-mb-per-sec N]
//!
//! `--read-mb-per-sec` paces the readers (all together) to about that many MB/s, like a
//! supervisor that takes ~50,000 tweets/s (~200 MB/s): the emulator then waits on full queues
//! as it does in the benchmark. Without it the readers take everything at once.
//!
//! It uses mimalloc, as `traptor-perf` does. The readers run on a thread of their own and discard what they read; the emulator's CPU is
//! the time its threads (pump, HTTP) spent on a core, read from `/proc/self/task/*/schedstat`,
//! so the readers' own CPU is not counted. The kernel's loopback work done on the emulator's
//! side of each write is counted, as it is in the benchmark.

mod support;

use std::collections::HashMap;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use tokio::io::AsyncReadExt;
use traptor_core::oauth::Credentials;
use traptor_firehose::{ControlMessageRates, Firehose, FirehoseConfig, Stats};

const READER_THREAD: &str = "loadcost-reader";

/// The allocator of `traptor-perf`, which runs the emulator in the throughput benchmark.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

struct Options {
    tweets: u64,
    streams: usize,
    phrases: usize,
    pooled_variants: usize,
    /// Bytes per second all readers together take (0: as fast as they can).
    read_bytes_per_sec: u64,
}

fn options() -> Options {
    let mut options = Options {
        tweets: 500_000,
        streams: 100,
        phrases: 20,
        pooled_variants: 8,
        read_bytes_per_sec: 0,
    };
    let args: Vec<String> = std::env::args().skip(1).collect();
    for pair in args.chunks(2) {
        let value = pair.get(1).and_then(|v| v.parse::<u64>().ok());
        let Some(value) = value else {
            panic!("usage: loadcost [--tweets N] [--streams N] [--phrases N] [--pooled-variants N] [--read-mb-per-sec N] (got {pair:?})");
        };
        match pair[0].as_str() {
            "--tweets" => options.tweets = value,
            "--streams" => options.streams = value as usize,
            "--phrases" => options.phrases = value as usize,
            "--pooled-variants" => options.pooled_variants = value as usize,
            "--read-mb-per-sec" => options.read_bytes_per_sec = value * 1_000_000,
            other => panic!("unknown option {other}"),
        }
    }
    options
}

fn key(n: usize) -> Credentials {
    support::credentials("loadcost", n)
}

/// Opens one stream like the supervisor does and discards everything it reads, at
/// `bytes_per_sec` at the most (0: no limit).
async fn reader(addr: SocketAddr, credentials: Credentials, track: String, bytes_per_sec: u64) {
    let form = [
        ("track", track.as_str()),
        ("stall_warnings", "true"),
        ("delimited", "length"),
    ];
    let mut stream = support::open_filter_stream(addr, &credentials, &form).await;
    let mut buf = vec![0u8; 64 * 1024];
    let started = Instant::now();
    let mut total = 0u64;
    while let Ok(n) = stream.read(&mut buf).await {
        if n == 0 {
            return;
        }
        total += n as u64;
        if bytes_per_sec > 0 {
            let due = Duration::from_secs_f64(total as f64 / bytes_per_sec as f64);
            if let Some(ahead) = due.checked_sub(started.elapsed()) {
                tokio::time::sleep(ahead).await;
            }
        }
    }
}

/// Nanoseconds on a core so far, by thread name, for every thread but the readers and main.
fn thread_cpu_ns() -> HashMap<String, u64> {
    let mut by_name = HashMap::new();
    let me = std::process::id().to_string();
    for task in std::fs::read_dir("/proc/self/task").expect("/proc is mounted") {
        let path = task.expect("a task entry").path();
        if path.file_name().and_then(|n| n.to_str()) == Some(me.as_str()) {
            continue;
        }
        let name = std::fs::read_to_string(path.join("comm")).unwrap_or_default();
        let name = name.trim().to_owned();
        if name == READER_THREAD {
            continue;
        }
        let ns = std::fs::read_to_string(path.join("schedstat"))
            .ok()
            .and_then(|s| s.split_whitespace().next()?.parse::<u64>().ok())
            .unwrap_or(0);
        *by_name.entry(name).or_default() += ns;
    }
    by_name
}

fn tweets_sent(stats: &Stats) -> u64 {
    stats
        .connections
        .iter()
        .map(|c| c.tweet_ids.len() as u64 + c.tweet_ids_not_recorded)
        .sum()
}

#[tokio::main(flavor = "current_thread")]
async fn main() {
    let options = options();
    let keys: Vec<Credentials> = (0..options.streams).map(key).collect();
    let handle = Firehose::start(FirehoseConfig {
        keys: keys.clone(),
        rate: f64::INFINITY,
        seed: 7,
        connect_limit: 1000,
        max_queue: 500,
        control_message_rates: ControlMessageRates::default(),
        pooled_variants: options.pooled_variants,
        ..FirehoseConfig::default()
    })
    .await
    .expect("start the emulator");
    let addr = handle.addr();
    let phrases = options.phrases;
    let per_reader = options.read_bytes_per_sec / options.streams.max(1) as u64;
    std::thread::Builder::new()
        .name(READER_THREAD.into())
        .spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            runtime.block_on(async move {
                let readers: Vec<_> = keys
                    .into_iter()
                    .enumerate()
                    .map(|(slot, key)| {
                        let track = (0..phrases)
                            .map(|rule| format!("perfs{slot}r{rule}"))
                            .collect::<Vec<_>>()
                            .join(",");
                        tokio::spawn(reader(addr, key, track, per_reader))
                    })
                    .collect();
                for r in readers {
                    let _ = r.await;
                }
            });
        })
        .unwrap();

    while handle.stats().open_connections().count() < options.streams {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // Warm-up: every plant gets its generated originals before the measurement.
    tokio::time::sleep(Duration::from_secs(2)).await;

    let sent_0 = tweets_sent(&handle.stats());
    let cpu_0 = thread_cpu_ns();
    let started = Instant::now();
    let mut sent_1 = sent_0;
    while sent_1 - sent_0 < options.tweets {
        tokio::time::sleep(Duration::from_millis(200)).await;
        sent_1 = tweets_sent(&handle.stats());
    }
    let cpu_1 = thread_cpu_ns();
    let secs = started.elapsed().as_secs_f64();
    let tweets = sent_1 - sent_0;

    println!(
        "{tweets} tweets in {secs:.2} s ({:.0} /s), {} streams, pooled variants {}",
        tweets as f64 / secs,
        options.streams,
        options.pooled_variants
    );
    let mut total = 0u64;
    let mut names: Vec<_> = cpu_1.keys().cloned().collect();
    names.sort();
    for name in names {
        let used = cpu_1[&name].saturating_sub(cpu_0.get(&name).copied().unwrap_or(0));
        total += used;
        println!(
            "  {name:<24} {:>6.2} µs/tweet  {:>5.1} % of a core",
            used as f64 / 1e3 / tweets as f64,
            used as f64 / 1e9 / secs * 100.0
        );
    }
    println!(
        "emulator total: {:.2} µs per tweet, {:.1} % of a core",
        total as f64 / 1e3 / tweets as f64,
        total as f64 / 1e9 / secs * 100.0
    );
    handle.stop().await;
}
