//! Scenario 1, end-to-end throughput: emulator (load mode) → supervisor → Kafka with N
//! concurrent streams, zero loss by ground truth, compared in the same run with a bare
//! rdkafka producer sending the very records the supervisor wrote.

use std::time::{Duration, Instant};

use anyhow::Context;
use traptor_firehose::{Fault, FaultKind};

use super::{emulator_config, rate, Common};
use crate::emulator::{tweets_sent, Emulator};
use crate::figures::{per_second, reconcile};
use crate::kafka::{self, TopicCounter};
use crate::procfs::ProcSample;
use crate::report::{mib, thousands, Report};
use crate::supervisor::SupervisorProcess;
use crate::{baseline, cluster};

#[derive(Debug, Clone)]
pub struct Options {
    pub streams: usize,
    pub rules_per_slot: u32,
    /// The measured window (after the warm-up).
    pub duration: Duration,
    pub warmup: Duration,
    /// Records captured from the supervisor's topic for the baseline to produce.
    pub pool: usize,
}

pub fn run(common: &Common, options: &Options) -> anyhow::Result<Report> {
    let n = options.streams;
    let topic = cluster::unique("perf-throughput");
    kafka::create_topic(
        &common.services.kafka_brokers,
        &topic,
        common.partitions,
    )?;
    // The endpoint is known once the emulator runs; the keys are needed to start it.
    let mut spec = common.cluster(n, String::new(), &topic);
    let emulator = Emulator::start(emulator_config(&spec, f64::INFINITY))?;
    spec.endpoint = emulator.url();
    common.write_rules(&spec, n, options.rules_per_slot)?;
    let mut supervisor =
        SupervisorProcess::start(&common.supervisor, &common.run_dir, "throughput", &spec.to_toml())?;
    let counter = TopicCounter::new(&common.services.kafka_brokers, &topic)?;

    emulator.wait_for(
        &format!("{n} open streams"),
        Duration::from_secs(120),
        Duration::from_millis(100),
        |s| s.open_connections().count() == n,
    )
    .with_context(|| format!("supervisor log: {}", supervisor.log_path().display()))?;
    std::thread::sleep(options.warmup);

    // The measured window: records acknowledged by the broker, tweets streamed, CPU, RSS.
    let sent_0 = tweets_sent(&emulator.stats());
    let kafka_0 = counter.count()?;
    let proc_0 = supervisor.sample()?;
    let started = Instant::now();
    let mut peak_rss = proc_0.rss_kib;
    while started.elapsed() < options.duration {
        std::thread::sleep(Duration::from_millis(500));
        peak_rss = peak_rss.max(supervisor.sample()?.rss_kib);
    }
    let sent_1 = tweets_sent(&emulator.stats());
    let kafka_1 = counter.count()?;
    let proc_1: ProcSample = supervisor.sample()?;
    let window = started.elapsed();

    // Stop the traffic without closing the streams, so every tweet handed to a socket can
    // reach Kafka; then let the writer drain and stop the supervisor cleanly.
    emulator.inject(Fault::all(FaultKind::Stall { duration: None }));
    let total_records = counter.wait_until_stable(Duration::from_secs(3), Duration::from_secs(120))?;
    let status = supervisor.terminate(Duration::from_secs(30))?;
    let truth = emulator.stats();
    let reconnects: u64 = truth.credentials.iter().map(|c| c.connects.saturating_sub(1)).sum();
    let not_recorded: u64 = truth.connections.iter().map(|c| c.tweet_ids_not_recorded).sum();
    emulator.stop();

    let readout = kafka::read_topic(
        &common.services.kafka_brokers,
        &topic,
        total_records,
        options.pool,
        Duration::from_secs(15),
    )?;
    let sent_ids = truth.connections.iter().flat_map(|c| c.tweet_ids.iter().copied());
    let check = reconcile(sent_ids, &readout.tweet_keys);

    // The baseline: the same records, the same broker, the same settings, a bare loop.
    let baseline_topic = cluster::unique("perf-baseline");
    kafka::create_topic(&common.services.kafka_brokers, &baseline_topic, common.partitions)?;
    let base = baseline::run(
        &common.services.kafka_brokers,
        &baseline_topic,
        &readout.pool,
        options.warmup.min(Duration::from_secs(5)),
        options.duration,
    )?;

    let traptor_rate = per_second(kafka_1 - kafka_0, window);
    let tweet_rate = per_second(sent_1 - sent_0, window);
    let ratio = if base.rate() > 0.0 { traptor_rate / base.rate() } else { 0.0 };
    let cpu = proc_1.cpu_percent_since(&proc_0);
    let avg_record = readout.payload_bytes.checked_div(readout.records).unwrap_or(0);

    let mut report = Report::new(format!("End-to-end throughput, {n} streams"));
    report.setup(format!(
        "{n} API keys, {n} track slots of {} rules each (one stream per slot); emulator in load \
         mode (rate = ∞, waits for slow readers), realistic generated tweets, default compliance \
         messages; topic with {} partitions",
        options.rules_per_slot, common.partitions
    ));
    report.setup(format!(
        "measured window {:.0} s after all streams were open and a {:.0} s warm-up; rates from \
         the topic's high watermarks (records acknowledged by the broker)",
        window.as_secs_f64(),
        options.warmup.as_secs_f64()
    ));
    report.setup(format!(
        "baseline: the first {} records the supervisor wrote (avg {} B payload), produced \
         round and round by a bare BaseProducer with idempotence, acks=all, lz4, to a fresh \
         topic of the same broker, for the same window",
        readout.pool.len(),
        thousands(avg_record)
    ));
    report.check("traptor → Kafka", rate(traptor_rate), "≥ 25,000 /s", traptor_rate >= 25_000.0);
    report.info("tweets streamed by the emulator", rate(tweet_rate));
    report.info("bare producer → Kafka", rate(base.rate()));
    report.check(
        "traptor / bare producer",
        format!("{:.0} %", ratio * 100.0),
        "≥ 70 %",
        ratio >= 0.70,
    );
    report.check(
        "tweets lost (emulator ids absent from the topic)",
        thousands(check.lost),
        "0",
        check.lost == 0 && not_recorded == 0,
    );
    report.check(
        "tweets duplicated / never sent",
        format!("{} / {}", thousands(check.duplicated), thousands(check.unexpected)),
        "0 / 0",
        check.duplicated == 0 && check.unexpected == 0,
    );
    report.info("tweets verified by key", thousands(check.delivered));
    report.check("stream reconnects", reconnects.to_string(), "0", reconnects == 0);
    report.info("supervisor CPU (user+sys, % of one core)", format!("{cpu:.0} %"));
    report.info(
        "supervisor RSS (end of window / max sampled / VmHWM)",
        format!("{} / {} / {}", mib(proc_1.rss_kib), mib(peak_rss), mib(proc_1.peak_rss_kib)),
    );
    report.check("supervisor exit status", status.to_string(), "0 (clean)", status.success());
    if readout.tweets_without_id_key > 0 {
        report.note(format!(
            "{} tweet records had no tweet-id key.",
            readout.tweets_without_id_key
        ));
    }
    report.note(format!(
        "The supervisor's run shares the 2 cores with the emulator (generating and serving \
         every tweet) and the broker; the bare producer's run shares them with the broker only. \
         Baseline deliveries acknowledged: {}, failed: {}.",
        thousands(base.delivered),
        base.failed
    ));
    Ok(report)
}
