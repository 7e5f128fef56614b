//! Scenario 2, connection scale: how long until N streams (N keys, N slots) all stream, and
//! what N idle streams (keep-alives only) cost the supervisor in memory and CPU.

use std::time::Duration;

use anyhow::Context;

use super::{emulator_config, Common};
use crate::cluster;
use crate::emulator::Emulator;
use crate::kafka;
use crate::report::{mib, Report};
use crate::supervisor::SupervisorProcess;

#[derive(Debug, Clone)]
pub struct Options {
    /// Stream counts to measure, one supervisor run each (e.g. 10, 100, 1000).
    pub counts: Vec<usize>,
    /// How long the idle CPU is measured.
    pub idle: Duration,
    /// The emulator's keep-alive interval (30 s on the real service).
    pub keepalive: Duration,
    /// Track rules per slot: 1 for the idle-cost targets, up to 400 for the memory of a full
    /// rule load.
    pub rules_per_slot: u32,
}

/// The idle targets, for the largest count.
const MAX_IDLE_RSS_KIB: u64 = 100 * 1024;
const MAX_IDLE_CPU_PERCENT: f64 = 5.0;

/// One count's figures.
struct Measured {
    streams: usize,
    first_open: Duration,
    all_open: Duration,
    rss_kib: u64,
    peak_rss_kib: u64,
    cpu_percent: f64,
    threads: u64,
    reconnects: u64,
}

pub fn run(common: &Common, options: &Options) -> anyhow::Result<Report> {
    let open_files = crate::procfs::raise_open_file_limit()?;
    let mut results = Vec::new();
    for &n in &options.counts {
        results.push(measure(common, options, n)?);
    }

    let mut report = Report::new("Connection scale and idle cost");
    report.setup(format!(
        "per count N: N API keys, N track slots of {} rule(s) (one stream each), a fresh \
         supervisor; emulator at rate 0 (keep-alives every {:.0} s only), in the benchmark \
         process, not the supervisor's; open-file limit raised to {open_files}",
        options.rules_per_slot,
        options.keepalive.as_secs_f64()
    ));
    report.setup(format!(
        "time to all streaming: from spawning the supervisor until the emulator holds N open \
         streams (default pacing: connects_per_key_per_minute = 6, each key connects once); \
         idle CPU: user+sys from /proc/<pid>/stat over {:.0} s, 5 s after the last stream \
         opened; RSS: VmRSS at the end of that window",
        options.idle.as_secs_f64()
    ));
    let largest = options.counts.iter().copied().max().unwrap_or(0);
    for m in &results {
        report.info(
            format!("{} streams: first / all streaming", m.streams),
            format!(
                "{:.2} s / {:.2} s",
                m.first_open.as_secs_f64(),
                m.all_open.as_secs_f64()
            ),
        );
        let rss = format!(
            "{} (VmHWM {}, {} threads)",
            mib(m.rss_kib),
            mib(m.peak_rss_kib),
            m.threads
        );
        let cpu = format!("{:.2} %", m.cpu_percent);
        // The idle targets are for streams of one rule each; a full rule load is reported.
        if m.streams == largest && options.rules_per_slot == 1 {
            report.check(
                format!("{} idle streams: RSS", m.streams),
                rss,
                "≤ 100 MB",
                m.rss_kib <= MAX_IDLE_RSS_KIB,
            );
            report.check(
                format!("{} idle streams: CPU (% of one core)", m.streams),
                cpu,
                "≤ 5 %",
                m.cpu_percent <= MAX_IDLE_CPU_PERCENT,
            );
            report.check(
                format!("{} streams: reconnects", m.streams),
                m.reconnects.to_string(),
                "0",
                m.reconnects == 0,
            );
        } else {
            report.info(format!("{} idle streams: RSS", m.streams), rss);
            report.info(
                format!("{} idle streams: CPU (% of one core)", m.streams),
                cpu,
            );
            report.info(
                format!("{} streams: reconnects", m.streams),
                m.reconnects.to_string(),
            );
        }
    }
    Ok(report)
}

fn measure(common: &Common, options: &Options, n: usize) -> anyhow::Result<Measured> {
    let topic = cluster::unique("perf-connections");
    kafka::create_topic(&common.services.kafka_brokers, &topic, common.partitions)?;
    let mut spec = common.cluster(n, String::new(), &topic);
    let mut config = emulator_config(&spec, 0.0);
    config.keepalive = options.keepalive;
    let emulator = Emulator::start(config)?;
    spec.endpoint = emulator.url();
    common.write_rules(&spec, n, options.rules_per_slot)?;

    // Times come from the emulator's own accept timestamps (ms since it started).
    let spawned_ms = emulator.stats().uptime_ms;
    let mut supervisor = SupervisorProcess::start(
        &common.supervisor,
        &common.run_dir,
        &format!("connections-{n}"),
        &spec.to_toml(),
    )?;
    let stats = emulator
        .wait_for(
            &format!("{n} open streams"),
            Duration::from_secs(300),
            Duration::from_millis(20),
            |s| s.open_connections().count() == n,
        )
        .with_context(|| format!("supervisor log: {}", supervisor.log_path().display()))?;
    let since_spawn = |ms: u64| Duration::from_millis(ms.saturating_sub(spawned_ms));
    let opened: Vec<u64> = stats.open_connections().map(|c| c.opened_at_ms).collect();
    let first_open = since_spawn(opened.iter().copied().min().unwrap_or(spawned_ms));
    let all_open = since_spawn(opened.iter().copied().max().unwrap_or(spawned_ms));

    std::thread::sleep(Duration::from_secs(5));
    let before = supervisor.sample()?;
    std::thread::sleep(options.idle);
    let after = supervisor.sample()?;
    let truth = emulator.stats();
    let reconnects = truth
        .credentials
        .iter()
        .map(|c| c.connects.saturating_sub(1))
        .sum();
    supervisor.terminate(Duration::from_secs(30))?;
    emulator.stop();
    Ok(Measured {
        streams: n,
        first_open,
        all_open,
        rss_kib: after.rss_kib,
        peak_rss_kib: after.peak_rss_kib,
        cpu_percent: after.cpu_percent_since(&before),
        threads: after.threads,
        reconnects,
    })
}
