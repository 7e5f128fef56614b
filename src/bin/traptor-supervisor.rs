//! `traptor-supervisor --config FILE`: runs a whole cluster's streams in one process.
//! `traptor-supervisor check --config FILE`: validates the config, loads the rules, prints the
//! plan and exits.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use traptor_actors::app;
use traptor_actors::config::{ClusterConfig, EmulatorConfig};

/// Every record crosses threads (stream arbiter → writer → librdkafka); glibc's allocator spent
/// about 15% of the process's time on that traffic in the throughput benchmark. The `override`
/// feature (root Cargo.toml) makes mimalloc serve C's `malloc` too: librdkafka copies every
/// payload on the writer thread and frees it on its polling thread, which glibc's arenas
/// handle slowly (about 10% of the process's time after the Rust side moved to mimalloc).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[derive(Parser)]
#[command(
    name = "traptor-supervisor",
    version,
    about = "Collects Twitter-style streams for every slot of a cluster: Redis rules in, enriched tweets out",
    after_help = "Try the demo (no Redis, Kafka or network needed):\n  traptor-supervisor --config config/demo.toml | jq ."
)]
struct Cli {
    /// The cluster configuration (config/cluster.toml documents every option).
    #[arg(long, short, global = true, value_name = "FILE")]
    config: Option<PathBuf>,
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Subcommand)]
enum Command {
    /// Validate the config, load the rules (Redis or file), print the plan, and exit.
    Check,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let Some(path) = cli.config else {
        eprintln!(
            "traptor-supervisor: --config FILE is required (config/cluster.toml documents every option; \
             config/demo.toml runs a demo)"
        );
        return ExitCode::from(2);
    };
    let config = match ClusterConfig::load(&path) {
        Ok(config) => config,
        Err(e) => {
            eprintln!("traptor-supervisor: invalid configuration: {e}");
            return ExitCode::from(2);
        }
    };
    match cli.command {
        Some(Command::Check) => check(config),
        None => run(config),
    }
}

fn check(config: ClusterConfig) -> ExitCode {
    for warning in &config.warnings {
        eprintln!("warning: {warning}");
    }
    let system = actix_rt::System::new();
    match system.block_on(app::check(&config)) {
        Ok(report) => {
            print!("{}", report.render());
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("traptor-supervisor check: {e}");
            ExitCode::from(1)
        }
    }
}

fn run(mut config: ClusterConfig) -> ExitCode {
    traptor_actors::logging::init_logging(config.log.format, &config.log.level);
    let system = actix_rt::System::new();
    let outcome = system.block_on(async move {
        // The emulator must listen before the streams are pointed at it.
        let _emulator = match config.emulator.clone() {
            Some(options) => {
                let emulator = start_emulator(&config, &options).await?;
                config.stream.endpoint = emulator.url();
                tracing::info!(endpoint = %config.stream.endpoint, "built-in streaming API emulator started");
                Some(emulator)
            }
            None => None,
        };
        app::run(config).await.map_err(|e| e.to_string())
    });
    match outcome {
        Ok(reason) => ExitCode::from(reason.exit_code()),
        Err(e) => {
            tracing::error!("{e}");
            eprintln!("traptor-supervisor: {e}");
            ExitCode::from(1)
        }
    }
}

/// Starts the in-process emulator accepting the config's keys.
async fn start_emulator(
    config: &ClusterConfig,
    options: &EmulatorConfig,
) -> Result<traptor_firehose::FirehoseHandle, String> {
    let listen = options.listen.parse().map_err(|e| {
        format!(
            "[emulator] listen {:?} is not an address like 127.0.0.1:0: {e}",
            options.listen
        )
    })?;
    let emulator = traptor_firehose::FirehoseConfig {
        listen,
        keys: config
            .keys
            .iter()
            .map(|key| key.credentials.clone())
            .collect(),
        // The config's rate is per connection; the emulator's is for all connections together.
        rate: options.rate * config.keys.len().max(1) as f64,
        seed: options.seed,
        keepalive: std::time::Duration::from_millis(options.keepalive_ms),
        hit_ratio: options.hit_ratio,
        ..traptor_firehose::FirehoseConfig::default()
    };
    traptor_firehose::Firehose::start(emulator)
        .await
        .map_err(|e| format!("cannot start the emulator: {e}"))
}
