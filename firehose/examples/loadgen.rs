//! Throughput of the emulator: generation alone on one core, then end to end to a fast reader.
//!
//!     cargo run --release -p traptor-firehose --example loadgen [SECONDS] [CONNECTIONS]
//!
//! The end-to-end part runs the emulator at an unlimited rate (it waits on full queues instead of
//! disconnecting) with raw TCP readers that discard what they read, and reports what the emulator
//! handed to the sockets.

mod support;

use std::time::{Duration, Instant};

use tokio::io::AsyncReadExt;
use traptor_core::oauth::Credentials;
use traptor_firehose::generate::{GeneratorOptions, Plant, TweetGenerator};
use traptor_firehose::{ControlMessageRates, Firehose, FirehoseConfig, MessageKind};

fn key(n: usize) -> Credentials {
    support::credentials("loadgen", n)
}

fn generation_only(seconds: f64) {
    let mut generator = TweetGenerator::new(7, GeneratorOptions::default());
    let plant = Plant {
        phrases: vec!["rust lang".into()],
        ..Plant::default()
    };
    let mut buf = Vec::with_capacity(8192);
    let (mut count, mut bytes) = (0u64, 0u64);
    let started = Instant::now();
    while started.elapsed().as_secs_f64() < seconds {
        for _ in 0..1000 {
            buf.clear();
            generator.write_tweet(&plant, &mut buf);
            bytes += buf.len() as u64;
        }
        count += 1000;
    }
    let secs = started.elapsed().as_secs_f64();
    println!(
        "generation only (1 thread): {:.0} tweets/s, {:.0} MB/s, {:.0} B/tweet",
        count as f64 / secs,
        bytes as f64 / secs / 1e6,
        bytes as f64 / count as f64
    );
}

async fn reader(addr: std::net::SocketAddr, credentials: Credentials) -> u64 {
    let form = [("track", "rust lang,alpha")];
    let mut stream = support::open_filter_stream(addr, &credentials, &form).await;
    let mut buf = vec![0u8; 1 << 20];
    let mut total = 0u64;
    loop {
        match stream.read(&mut buf).await {
            Ok(0) | Err(_) => return total,
            Ok(n) => total += n as u64,
        }
    }
}

#[tokio::main(flavor = "current_thread")]
async fn main() {
    let args: Vec<String> = std::env::args().collect();
    let seconds: f64 = args.get(1).and_then(|s| s.parse().ok()).unwrap_or(5.0);
    let connections: usize = args.get(2).and_then(|s| s.parse().ok()).unwrap_or(1);
    generation_only(seconds.min(3.0));

    let handle = Firehose::start(FirehoseConfig {
        keys: (0..connections).map(key).collect(),
        rate: f64::INFINITY,
        control_message_rates: ControlMessageRates::none(),
        keepalive: Duration::from_secs(30),
        max_recorded_ids: 0,
        ..FirehoseConfig::default()
    })
    .await
    .expect("start the emulator");
    let readers: Vec<_> = (0..connections)
        .map(|i| tokio::spawn(reader(handle.addr(), key(i))))
        .collect();
    tokio::time::sleep(Duration::from_millis(500)).await;
    let before = handle.stats();
    let started = Instant::now();
    tokio::time::sleep(Duration::from_secs_f64(seconds)).await;
    let after = handle.stats();
    let secs = started.elapsed().as_secs_f64();
    let sum = |s: &traptor_firehose::Stats| {
        s.connections.iter().fold((0u64, 0u64), |(t, b), c| {
            (t + c.count(MessageKind::Tweet), b + c.bytes)
        })
    };
    let ((t0, b0), (t1, b1)) = (sum(&before), sum(&after));
    println!(
        "end to end ({connections} connection(s), unlimited rate, raw readers): {:.0} tweets/s, {:.0} MB/s over {secs:.1} s",
        (t1 - t0) as f64 / secs,
        (b1 - b0) as f64 / secs / 1e6
    );
    handle.stop().await;
    for r in readers {
        let _ = r.await;
    }
}
