//! `traptor firehose`: runs the streaming-API emulator standalone until Ctrl-C, so a traptor
//! (or any v1.1 client) can be pointed at it.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context;
use traptor_firehose::{load_keys, Firehose, FirehoseConfig};

#[derive(Debug, clap::Args)]
pub struct Args {
    /// Address to listen on (port 0 picks a free port).
    #[arg(long, value_name = "ADDR", default_value = "127.0.0.1:8080")]
    pub listen: SocketAddr,

    /// The accepted API keys: a JSON array of {consumer_key, consumer_secret, access_token, access_token_secret}.
    #[arg(long, value_name = "FILE")]
    pub keys: PathBuf,

    /// Tweets per second for all connections together ("inf": as fast as the readers take them).
    #[arg(long, value_name = "N", default_value_t = 50.0)]
    pub rate: f64,

    /// Seed of the generated content.
    #[arg(long, value_name = "N", default_value_t = 1)]
    pub seed: u64,

    /// Idle time before a keep-alive newline, in milliseconds.
    #[arg(long, value_name = "N", default_value_t = 30_000)]
    pub keepalive_ms: u64,

    /// Serve the lines of this JSONL archive instead of generated tweets.
    #[arg(long, value_name = "FILE.jsonl")]
    pub replay: Option<PathBuf>,

    /// Share of generated tweets that carry a target of a connected filter (0..=1).
    #[arg(long, value_name = "F", default_value_t = 1.0)]
    pub hit_ratio: f64,

    /// Most tweets per second per connection; beyond it `limit` notices are sent.
    #[arg(long, value_name = "N")]
    pub limit_cap: Option<f64>,
}

pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    anyhow::ensure!(
        (0.0..=1.0).contains(&args.hit_ratio),
        "--hit-ratio must be between 0 and 1, not {}",
        args.hit_ratio
    );
    anyhow::ensure!(args.rate >= 0.0, "--rate must not be negative");
    let keys = load_keys(&args.keys)?;
    anyhow::ensure!(
        !keys.is_empty(),
        "the keys file {} holds no key; add at least one",
        args.keys.display()
    );
    let config = FirehoseConfig {
        listen: args.listen,
        keys,
        rate: args.rate,
        seed: args.seed,
        keepalive: Duration::from_millis(args.keepalive_ms),
        replay: args.replay,
        hit_ratio: args.hit_ratio,
        limit_cap_per_sec: args.limit_cap,
        ..FirehoseConfig::default()
    };
    let key_count = config.keys.len();
    actix_rt::System::new().block_on(async move {
        let handle = Firehose::start(config).await.context("starting the emulator")?;
        let addr = handle.addr();
        eprintln!("traptor firehose: streaming API emulator listening on {addr} with {key_count} key(s)");
        eprintln!("  filter endpoint: {}", handle.url());
        eprintln!("  ground truth:    GET http://{addr}/stats");
        eprintln!("  faults:          POST http://{addr}/control/<drop|stall|resume|disconnect|respond_with|...>");
        eprintln!("  point traptor at it: in cluster.toml set [stream] endpoint = \"{}\"", handle.url());
        eprintln!("  and use the same keys in its [[keys]]. Ctrl-C stops.");
        actix_rt::signal::ctrl_c().await.context("waiting for Ctrl-C")?;
        eprintln!("traptor firehose: stopping");
        handle.stop().await;
        Ok(ExitCode::SUCCESS)
    })
}
