//! `traptor-perf`: runs the benchmark scenarios against the release `traptor-supervisor` and
//! prints each one's results as a Markdown table.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context;
use clap::{Parser, Subcommand};
use traptor_perf::report::Report;
use traptor_perf::scenarios::{connections, rule_change, slow_kafka, throughput, Common};
use traptor_perf::services::Services;

/// The emulator runs in this process and allocates a few buffers per tweet; with the C
/// library's allocator that was about 15% of its time, which the supervisor under test then
/// lacks on a small machine. Only Rust allocations are affected: the bare producer's
/// librdkafka still uses the C library's malloc.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// Benchmarks of a whole traptor cluster in one process. Needs Redis and Kafka from
/// scripts/services.sh (TRAPTOR_TEST_* variables); scripts/bench.sh does everything.
#[derive(Debug, Parser)]
#[command(name = "traptor-perf")]
struct Cli {
    /// The traptor-supervisor binary under test (default: the one beside this binary).
    #[arg(long, global = true, value_name = "PATH")]
    supervisor: Option<PathBuf>,

    /// Where configs and supervisor logs are written.
    #[arg(
        long,
        global = true,
        value_name = "DIR",
        default_value = "/tmp/traptor-perf"
    )]
    run_dir: PathBuf,

    /// Redis database the benchmarks FLUSH and fill: it must be theirs alone.
    #[arg(long, global = true, value_name = "N", default_value_t = 15)]
    redis_db: u32,

    /// Partitions of every topic created.
    #[arg(long, global = true, value_name = "N", default_value_t = 3)]
    partitions: i32,

    /// Also append the Markdown results to this file.
    #[arg(long, global = true, value_name = "FILE")]
    out: Option<PathBuf>,

    #[command(subcommand)]
    scenario: Scenario,
}

#[derive(Debug, Subcommand)]
enum Scenario {
    /// 1. End-to-end throughput vs a bare rdkafka producer, zero loss by ground truth.
    Throughput(ThroughputArgs),
    /// 2. Time until N streams stream; RSS and CPU of idle streams at each N.
    Connections(ConnectionsArgs),
    /// 3. PUBLISH-to-new-filter latency over many rule changes; no collateral reconnects.
    RuleChange(RuleChangeArgs),
    /// 5. Broker paused under load: bounded memory, backpressure, drain, zero loss.
    SlowKafka(SlowKafkaArgs),
    /// Every scenario in turn, with the given durations.
    All {
        /// The throughput window in seconds.
        #[arg(long, default_value_t = 60)]
        duration: u64,
        /// The broker pause of the slow-Kafka scenario, in seconds.
        #[arg(long, default_value_t = 30)]
        pause: u64,
        /// The idle window of the connection scenario, in seconds.
        #[arg(long, default_value_t = 30)]
        idle: u64,
    },
}

#[derive(Debug, clap::Args)]
struct ThroughputArgs {
    #[arg(long, default_value_t = 100)]
    streams: usize,
    #[arg(long, default_value_t = 20)]
    rules_per_slot: u32,
    /// The measured window, in seconds.
    #[arg(long, default_value_t = 60)]
    duration: u64,
    #[arg(long, default_value_t = 5)]
    warmup: u64,
    /// Length of one alternating slice (supervisor, then bare producer), in seconds.
    #[arg(long, default_value_t = 10)]
    slice: u64,
    /// Records captured for the bare-producer baseline.
    #[arg(long, default_value_t = 20_000)]
    pool: usize,
    /// Generated tweets kept per planted phrase; later tweets for it are copies under new ids
    /// (cheaper for the emulator, which shares the machine). 0: generate every tweet.
    #[arg(long, default_value_t = 8)]
    pooled_variants: usize,
    /// A librdkafka producer option as NAME=VALUE (repeatable), set on both sides alike:
    /// the supervisor's `[kafka.producer]` and the bare producer. E.g. `--producer linger.ms=20`.
    #[arg(long, value_parser = producer_option)]
    producer: Vec<(String, String)>,
    /// Run the supervisor with `[kafka] produce_from_streams = false` (every record through
    /// its writer thread), to compare with the default.
    #[arg(long)]
    through_writer: bool,
}

/// Parses `NAME=VALUE` of `--producer`.
fn producer_option(text: &str) -> Result<(String, String), String> {
    match text.split_once('=') {
        Some((name, value)) if !name.trim().is_empty() => {
            Ok((name.trim().to_owned(), value.trim().to_owned()))
        }
        _ => Err(format!(
            "expected a librdkafka option as NAME=VALUE (e.g. linger.ms=20), got {text:?}"
        )),
    }
}

#[derive(Debug, clap::Args)]
struct ConnectionsArgs {
    /// Stream counts, one supervisor run each.
    #[arg(long, value_delimiter = ',', default_value = "10,100,1000")]
    counts: Vec<usize>,
    /// The idle measuring window, in seconds.
    #[arg(long, default_value_t = 30)]
    idle: u64,
    /// The emulator's keep-alive interval, in seconds.
    #[arg(long, default_value_t = 30)]
    keepalive: u64,
    /// Track rules per slot (at most 400, the limit of one connection): the supervisor's
    /// memory for a full rule load, e.g. 1,000 × 400 = 400,000 rules.
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u32).range(1..=400))]
    rules_per_slot: u32,
}

#[derive(Debug, clap::Args)]
struct RuleChangeArgs {
    #[arg(long, default_value_t = 50)]
    slots: usize,
    #[arg(long, default_value_t = 100)]
    changes: usize,
    /// Pause between changes once live, in milliseconds.
    #[arg(long, default_value_t = 200)]
    gap_ms: u64,
    /// Follow rules stored besides the scenario's own (in slots without a key), e.g. 500000:
    /// the reaction when a notice's slot has to be found among that many keys.
    #[arg(long, default_value_t = 0)]
    stored_rules: usize,
}

#[derive(Debug, clap::Args)]
struct SlowKafkaArgs {
    #[arg(long, default_value_t = 20)]
    streams: usize,
    /// How long the broker stays frozen, in seconds.
    #[arg(long, default_value_t = 30)]
    pause: u64,
    #[arg(long, default_value_t = 10)]
    before: u64,
    #[arg(long, default_value_t = 20)]
    after: u64,
    #[arg(long, default_value_t = 100_000)]
    max_in_flight_records: usize,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match run(cli) {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::from(1),
        Err(e) => {
            eprintln!("traptor-perf: {e:#}");
            ExitCode::from(2)
        }
    }
}

/// Runs the scenario(s); true when every target was met.
fn run(cli: Cli) -> anyhow::Result<bool> {
    let common = Common {
        services: Services::from_env()?,
        supervisor: cli
            .supervisor
            .clone()
            .unwrap_or_else(traptor_perf::supervisor::default_binary),
        run_dir: cli.run_dir.clone(),
        redis_db: cli.redis_db,
        partitions: cli.partitions,
    };
    traptor_perf::procfs::raise_open_file_limit()?;
    let secs = Duration::from_secs;
    let mut all_met = true;
    let mut emit = |report: anyhow::Result<Report>, name: &str| -> anyhow::Result<()> {
        let report = report.with_context(|| format!("scenario {name}"))?;
        let text = report.to_markdown();
        println!("{text}");
        if let Some(path) = &cli.out {
            use std::io::Write;
            let mut file = std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(path)
                .with_context(|| format!("opening {}", path.display()))?;
            writeln!(file, "{text}")?;
        }
        all_met &= report.all_met();
        Ok(())
    };
    let throughput = |a: &ThroughputArgs| throughput::Options {
        streams: a.streams,
        rules_per_slot: a.rules_per_slot,
        duration: secs(a.duration),
        warmup: secs(a.warmup),
        slice: secs(a.slice.min(a.duration).max(1)),
        pool: a.pool,
        pooled_variants: a.pooled_variants,
        producer: a.producer.clone(),
        through_writer: a.through_writer,
    };
    let connections = |a: &ConnectionsArgs| connections::Options {
        counts: a.counts.clone(),
        idle: secs(a.idle),
        keepalive: secs(a.keepalive),
        rules_per_slot: a.rules_per_slot,
    };
    let rule_change = |a: &RuleChangeArgs| rule_change::Options {
        slots: a.slots,
        changes: a.changes,
        gap: Duration::from_millis(a.gap_ms),
        timeout: secs(10),
        stored_rules: a.stored_rules,
    };
    let slow_kafka = |a: &SlowKafkaArgs| slow_kafka::Options {
        streams: a.streams,
        pause: secs(a.pause),
        before: secs(a.before),
        after: secs(a.after),
        max_in_flight_records: a.max_in_flight_records,
    };
    match &cli.scenario {
        Scenario::Throughput(a) => emit(throughput::run(&common, &throughput(a)), "throughput")?,
        Scenario::Connections(a) => {
            emit(connections::run(&common, &connections(a)), "connections")?
        }
        Scenario::RuleChange(a) => emit(rule_change::run(&common, &rule_change(a)), "rule-change")?,
        Scenario::SlowKafka(a) => emit(slow_kafka::run(&common, &slow_kafka(a)), "slow-kafka")?,
        Scenario::All {
            duration,
            pause,
            idle,
        } => {
            let t = ThroughputArgs {
                streams: 100,
                rules_per_slot: 20,
                duration: *duration,
                warmup: 5,
                slice: 10,
                pool: 20_000,
                pooled_variants: 8,
                producer: Vec::new(),
                through_writer: false,
            };
            emit(throughput::run(&common, &throughput(&t)), "throughput")?;
            let c = ConnectionsArgs {
                counts: vec![10, 100, 1000],
                idle: *idle,
                keepalive: 30,
                rules_per_slot: 1,
            };
            emit(connections::run(&common, &connections(&c)), "connections")?;
            let r = RuleChangeArgs {
                slots: 50,
                changes: 100,
                gap_ms: 200,
                stored_rules: 0,
            };
            emit(rule_change::run(&common, &rule_change(&r)), "rule-change")?;
            let s = SlowKafkaArgs {
                streams: 20,
                pause: *pause,
                before: 10,
                after: 20,
                max_in_flight_records: 100_000,
            };
            emit(slow_kafka::run(&common, &slow_kafka(&s)), "slow-kafka")?;
        }
    }
    Ok(all_met)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn producer_options_are_name_value_pairs() {
        assert_eq!(
            producer_option(" linger.ms = 20 "),
            Ok(("linger.ms".to_owned(), "20".to_owned()))
        );
        assert_eq!(
            producer_option("sasl.jaas=a=b"),
            Ok(("sasl.jaas".to_owned(), "a=b".to_owned()))
        );
        assert!(producer_option("linger.ms").is_err());
        assert!(producer_option("=20").is_err());
    }

    #[test]
    fn the_throughput_scenario_takes_repeated_producer_options() {
        let cli = Cli::try_parse_from([
            "traptor-perf",
            "throughput",
            "--producer",
            "linger.ms=20",
            "--producer",
            "batch.size=2000000",
        ])
        .unwrap();
        let Scenario::Throughput(args) = cli.scenario else {
            panic!("expected the throughput scenario");
        };
        assert_eq!(
            args.producer,
            vec![
                ("linger.ms".to_owned(), "20".to_owned()),
                ("batch.size".to_owned(), "2000000".to_owned())
            ]
        );
    }
}
