//! `traptor-supervisor --config FILE`: runs a whole cluster's streams in one process.
//! `traptor-supervisor check --config FILE`: validates the config, loads the rules, asks Kafka
//! for its metadata, prints the plan and exits.

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

/// mimalloc's `allow_thp` option: its place in mimalloc v3's `mi_option_t`
/// (`include/mimalloc.h`), which the Rust bindings do not name.
#[cfg(target_os = "linux")]
const MI_OPTION_ALLOW_THP: libmimalloc_sys::mi_option_t = 43;

/// Transparent huge pages off by default, before the first allocation (see
/// [`keep_heap_on_small_pages`]): the Rust runtime allocates, and so makes mimalloc reserve and
/// advise its first arena, before `main` runs, while constructors run before both.
#[cfg(target_os = "linux")]
#[used]
#[link_section = ".init_array"]
static DEFAULT_TO_SMALL_PAGES: extern "C" fn() = default_to_small_pages;

#[cfg(target_os = "linux")]
extern "C" fn default_to_small_pages() {
    // SAFETY: writes the default value in mimalloc's option table, nothing else.
    unsafe { libmimalloc_sys::mi_option_set_default(MI_OPTION_ALLOW_THP, 0) };
}

/// Keeps the heap on 4 KiB pages unless the operator asks for huge ones; returns whether
/// transparent huge pages are off for this process.
///
/// mimalloc advises its arenas for transparent huge pages, so on a kernel set to `madvise` (or
/// `always`) every 2 MiB of arena that a thread touches becomes resident whole. Idle, that was
/// about +17 MiB of RSS at 10 streams and +22 MiB at 1,000 (BENCHMARKS.md, connection scale),
/// for no throughput gain. `allow_thp = 0` (set as a default before mimalloc reads
/// its environment) stops mimalloc's advice; `PR_SET_THP_DISABLE`, which mimalloc itself sets
/// when started with `MIMALLOC_ALLOW_THP=0`, also covers kernels set to `always` (it is
/// process-wide and inherited by children). A default never overrides an option the
/// environment set, so an operator's `MIMALLOC_ALLOW_THP=1` still brings huge pages back.
#[cfg(target_os = "linux")]
fn keep_heap_on_small_pages() -> bool {
    default_to_small_pages();
    // SAFETY: reads mimalloc's option table; prctl changes a flag of this process and touches
    // no memory of ours.
    unsafe {
        libmimalloc_sys::mi_option_get(MI_OPTION_ALLOW_THP) == 0
            && libc::prctl(libc::PR_SET_THP_DISABLE, 1, 0, 0, 0) == 0
    }
}

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
    /// Validate the config, load the rules (Redis or file), reach Kafka with the sink's
    /// settings (brokers, credentials, topics), print the plan, and exit.
    Check {
        /// Do not contact Kafka: check the config and the rules only.
        #[arg(long)]
        no_kafka: bool,
    },
}

fn main() -> ExitCode {
    // Before the runtime's threads start allocating.
    #[cfg(target_os = "linux")]
    keep_heap_on_small_pages();
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
        Some(Command::Check { no_kafka }) => check(config, !no_kafka),
        None => run(config),
    }
}

fn check(config: ClusterConfig, reach_kafka: bool) -> ExitCode {
    for warning in &config.warnings {
        eprintln!("warning: {warning}");
    }
    let system = actix_rt::System::new();
    match system.block_on(app::check(&config, reach_kafka)) {
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

#[cfg(all(test, target_os = "linux"))]
mod tests {
    use super::*;

    /// Whether the kernel will give this process transparent huge pages.
    fn thp_disabled() -> bool {
        // SAFETY: reads a flag of this process.
        unsafe { libc::prctl(libc::PR_GET_THP_DISABLE, 0, 0, 0, 0) == 1 }
    }

    #[test]
    fn huge_pages_are_off_from_the_start_unless_the_environment_asks_for_them() {
        if std::env::var_os("MIMALLOC_ALLOW_THP").is_some() {
            // The operator's choice wins: nothing of ours to check.
            return;
        }
        // mimalloc turns THP off by itself only if it reads `allow_thp = 0` as it starts: this
        // checks both the option's number and that the default is in place before then.
        assert!(thp_disabled(), "mimalloc started with huge pages allowed");
        // SAFETY: reads mimalloc's option table.
        assert_eq!(
            unsafe { libmimalloc_sys::mi_option_get(MI_OPTION_ALLOW_THP) },
            0
        );
        assert!(keep_heap_on_small_pages());
    }
}
