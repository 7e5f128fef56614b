//! Scenario 1, end-to-end throughput: emulator (load mode) → supervisor → Kafka with N
//! concurrent streams, zero loss by ground truth, compared in the same run with a bare
//! rdkafka producer sending the very records the supervisor wrote.
//!
//! The machine is shared and noisy, so the two are measured in alternating slices of time:
//! the supervisor runs a slice, then it is frozen (SIGSTOP; the emulator, in load mode, waits
//! for it) while the bare producer runs a slice, and so on. Both see the same background load
//! and the ratio is computed over the sum of the slices.

use std::time::{Duration, Instant};

use anyhow::Context;
use traptor_firehose::{Fault, FaultKind};

use super::{emulator_config, rate, Common};
use crate::baseline::BareProducer;
use crate::cluster;
use crate::emulator::{tweets_sent, Emulator};
use crate::figures::{per_second, reconcile};
use crate::kafka::{self, TopicCounter};
use crate::procfs::{MachineSample, ProcSample};
use crate::report::{mib, thousands, Report};
use crate::supervisor::SupervisorProcess;

#[derive(Debug, Clone)]
pub struct Options {
    pub streams: usize,
    pub rules_per_slot: u32,
    /// The supervisor's measured time (the baseline gets as much again).
    pub duration: Duration,
    pub warmup: Duration,
    /// Length of one slice (the duration is cut into slices of this length).
    pub slice: Duration,
    /// Records captured from the supervisor's topic for the baseline to produce.
    pub pool: usize,
    /// The emulator's `pooled_variants`: generated tweets kept per plant and sent again
    /// under new ids, so the emulator takes less of the machine (0: generate every tweet).
    pub pooled_variants: usize,
    /// Extra librdkafka producer options (`linger.ms`, `batch.size`, ...), given to both
    /// sides alike: the supervisor's `[kafka.producer]` and the bare producer.
    pub producer: Vec<(String, String)>,
    /// `[kafka] produce_from_streams = false`: every record through the supervisor's writer
    /// thread, for comparing with the default (streams produce while Kafka keeps up).
    pub through_writer: bool,
}

/// What the processes did during the slices of one side (supervisor or baseline).
#[derive(Debug, Default, Clone, Copy)]
struct Side {
    records: u64,
    time: Duration,
    /// CPU of the process doing the side's work (the supervisor, or the bare producer).
    cpu: Duration,
    /// CPU of the benchmark process itself during the supervisor's slices: the emulator.
    emulator_cpu: Duration,
    broker_cpu: Duration,
    /// Machine-wide busy and total ticks (all cores).
    machine_busy: u64,
    machine_total: u64,
}

impl Side {
    fn rate(&self) -> f64 {
        per_second(self.records, self.time)
    }

    fn machine_busy_percent(&self) -> f64 {
        100.0 * self.machine_busy as f64 / self.machine_total.max(1) as f64
    }

    fn cpu_percent(&self, cpu: Duration) -> f64 {
        100.0 * cpu.as_secs_f64() / self.time.as_secs_f64().max(1e-9)
    }

    /// CPU microseconds per record.
    fn cost(&self, cpu: Duration) -> f64 {
        cpu.as_secs_f64() * 1e6 / self.records.max(1) as f64
    }
}

/// A reading of everything at a slice boundary.
struct Point {
    at: Instant,
    records: u64,
    worker: ProcSample,
    me: ProcSample,
    broker: Option<ProcSample>,
    machine: MachineSample,
}

impl Point {
    fn take(counter: &TopicCounter, worker: u32, broker: Option<u32>) -> anyhow::Result<Point> {
        Ok(Point {
            at: Instant::now(),
            records: counter.count()?,
            worker: ProcSample::read(worker)?,
            me: ProcSample::read(std::process::id())?,
            broker: broker.and_then(|pid| ProcSample::read(pid).ok()),
            machine: MachineSample::read()?,
        })
    }

    fn add_to(&self, side: &mut Side, end: &Point) {
        side.records += end.records - self.records;
        side.time += end.at - self.at;
        side.cpu += end.worker.cpu.saturating_sub(self.worker.cpu);
        side.emulator_cpu += end.me.cpu.saturating_sub(self.me.cpu);
        side.machine_busy += end.machine.busy.saturating_sub(self.machine.busy);
        side.machine_total += end.machine.total.saturating_sub(self.machine.total);
        if let (Some(a), Some(b)) = (&self.broker, &end.broker) {
            side.broker_cpu += b.cpu.saturating_sub(a.cpu);
        }
    }
}

pub fn run(common: &Common, options: &Options) -> anyhow::Result<Report> {
    let n = options.streams;
    let brokers = &common.services.kafka_brokers;
    let topic = cluster::unique("perf-throughput");
    kafka::create_topic(brokers, &topic, common.partitions)?;
    // The endpoint is known once the emulator runs; the keys are needed to start it.
    let mut spec = common.cluster(n, String::new(), &topic);
    spec.producer = options.producer.clone();
    spec.produce_from_streams = !options.through_writer;
    let mut config = emulator_config(&spec, f64::INFINITY);
    config.pooled_variants = options.pooled_variants;
    let emulator = Emulator::start(config)?;
    spec.endpoint = emulator.url();
    common.write_rules(&spec, n, options.rules_per_slot)?;
    let mut supervisor = SupervisorProcess::start(
        &common.supervisor,
        &common.run_dir,
        "throughput",
        &spec.to_toml(),
    )?;
    let counter = TopicCounter::new(brokers, &topic)?;
    let broker_pid = common.services.kafka_pid().ok().map(|pid| pid as u32);
    let me = std::process::id();

    emulator
        .wait_for(
            &format!("{n} open streams"),
            Duration::from_secs(120),
            Duration::from_millis(100),
            |s| s.open_connections().count() == n,
        )
        .with_context(|| format!("supervisor log: {}", supervisor.log_path().display()))?;
    std::thread::sleep(options.warmup);

    // The baseline's records: the first the supervisor wrote, byte for byte, headers included.
    let pool = kafka::read_topic(
        brokers,
        &topic,
        options.pool as u64,
        options.pool,
        Duration::from_secs(10),
    )?
    .pool;
    let baseline_topic = cluster::unique("perf-baseline");
    kafka::create_topic(brokers, &baseline_topic, common.partitions)?;
    let baseline_counter = TopicCounter::new(brokers, &baseline_topic)?;
    let mut bare = BareProducer::new(brokers, &baseline_topic, &options.producer)?;
    supervisor.pause()?;
    bare.produce_for(&pool, Duration::from_secs(1))?;
    bare.flush(Duration::from_secs(30))?;

    let slices = (options.duration.as_secs_f64() / options.slice.as_secs_f64())
        .ceil()
        .max(1.0) as usize;
    let (mut traptor, mut base) = (Side::default(), Side::default());
    let mut slice_ratios = Vec::new();
    let sup_pid = supervisor.pid();
    let sent_0 = tweets_sent(&emulator.stats());
    let mut peak_rss = 0u64;
    for _ in 0..slices {
        supervisor.resume()?;
        let start = Point::take(&counter, sup_pid, broker_pid)?;
        let slice_end = Instant::now() + options.slice;
        while Instant::now() < slice_end {
            std::thread::sleep(Duration::from_millis(250).min(slice_end - Instant::now()));
            peak_rss = peak_rss.max(supervisor.sample()?.rss_kib);
        }
        let end = Point::take(&counter, sup_pid, broker_pid)?;
        supervisor.pause()?;
        let mut this = Side::default();
        start.add_to(&mut this, &end);
        start.add_to(&mut traptor, &end);

        let start = Point::take(&baseline_counter, me, broker_pid)?;
        bare.produce_for(&pool, options.slice)?;
        let end = Point::take(&baseline_counter, me, broker_pid)?;
        let mut that = Side::default();
        start.add_to(&mut that, &end);
        start.add_to(&mut base, &end);
        slice_ratios.push(this.rate() / that.rate().max(1.0));
    }
    supervisor.resume()?;
    let sent_1 = tweets_sent(&emulator.stats());
    let (base_delivered, base_failed) = bare.flush(Duration::from_secs(60))?;
    let last = supervisor.sample()?;

    // Stop the traffic without closing the streams, so every tweet handed to a socket can
    // reach Kafka; then let the writer drain and stop the supervisor cleanly.
    emulator.inject(Fault::all(FaultKind::Stall { duration: None }));
    let total_records =
        counter.wait_until_stable(Duration::from_secs(3), Duration::from_secs(120))?;
    let status = supervisor.terminate(Duration::from_secs(30))?;
    let truth = emulator.stats();
    let reconnects: u64 = truth
        .credentials
        .iter()
        .map(|c| c.connects.saturating_sub(1))
        .sum();
    let not_recorded: u64 = truth
        .connections
        .iter()
        .map(|c| c.tweet_ids_not_recorded)
        .sum();
    emulator.stop();
    let readout = kafka::read_topic(brokers, &topic, total_records, 0, Duration::from_secs(15))?;
    let sent_ids = truth
        .connections
        .iter()
        .flat_map(|c| c.tweet_ids.iter().copied());
    let check = reconcile(sent_ids, &readout.tweet_keys);

    let ratio = traptor.rate() / base.rate().max(1.0);
    slice_ratios.sort_by(f64::total_cmp);
    let avg_record = readout
        .payload_bytes
        .checked_div(readout.records)
        .unwrap_or(0);

    let mut report = Report::new(format!("End-to-end throughput, {n} streams"));
    report.setup(format!(
        "{n} API keys, {n} track slots of {} rules each (one stream per slot); emulator in load \
         mode (rate = ∞, waits for slow readers) in the benchmark process; realistic generated \
         tweets (avg {} B as written to Kafka, enriched) with the default share of compliance \
         messages; {}; topics of {} partitions",
        options.rules_per_slot,
        thousands(avg_record),
        match options.pooled_variants {
            0 => "every tweet generated".to_owned(),
            k => format!(
                "{k} tweets generated per planted phrase, later ones copies under new ids and \
                 times (--pooled-variants)"
            ),
        },
        common.partitions
    ));
    if options.through_writer {
        report.setup(
            "supervisor with [kafka] produce_from_streams = false: every record through its \
             writer thread (--through-writer)"
                .to_owned(),
        );
    }
    report.setup(format!(
        "after all streams were open and a {:.0} s warm-up: {slices} alternating slices of {:.0} s \
         each — supervisor running, then supervisor frozen (SIGSTOP) while the bare producer \
         runs — {:.0} s measured per side; rates from the topics' high watermarks (records the \
         broker acknowledged)",
        options.warmup.as_secs_f64(),
        options.slice.as_secs_f64(),
        traptor.time.as_secs_f64()
    ));
    report.setup(format!(
        "baseline: the first {} records the supervisor wrote (key, payload, headers), produced \
         round and round by a bare rdkafka BaseProducer with the sink's settings (idempotence, \
         acks=all, lz4{}) to a fresh topic of the same broker",
        pool.len(),
        options
            .producer
            .iter()
            .map(|(name, value)| format!(", {name}={value}"))
            .collect::<String>()
    ));
    report.check(
        "traptor → Kafka",
        rate(traptor.rate()),
        "≥ 25,000 /s",
        traptor.rate() >= 25_000.0,
    );
    report.info(
        "tweets streamed by the emulator (whole run)",
        thousands(sent_1 - sent_0),
    );
    report.info("bare producer → Kafka", rate(base.rate()));
    report.check(
        "traptor / bare producer",
        format!(
            "{:.0} % (slices: {:.0}–{:.0} %)",
            ratio * 100.0,
            slice_ratios.first().copied().unwrap_or_default() * 100.0,
            slice_ratios.last().copied().unwrap_or_default() * 100.0
        ),
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
        format!(
            "{} / {}",
            thousands(check.duplicated),
            thousands(check.unexpected)
        ),
        "0 / 0",
        check.duplicated == 0 && check.unexpected == 0,
    );
    report.info("tweets verified by key", thousands(check.delivered));
    report.check(
        "stream reconnects",
        reconnects.to_string(),
        "0",
        reconnects == 0,
    );
    report.info(
        "supervisor CPU while running (% of one core)",
        format!("{:.0} %", traptor.cpu_percent(traptor.cpu)),
    );
    report.info(
        "CPU per record: supervisor / bare producer",
        format!(
            "{:.1} µs / {:.1} µs",
            traptor.cost(traptor.cpu),
            base.cost(base.cpu)
        ),
    );
    report.info(
        "broker CPU per record: supervisor's / bare producer's",
        format!(
            "{:.1} µs / {:.1} µs",
            traptor.cost(traptor.broker_cpu),
            base.cost(base.broker_cpu)
        ),
    );
    report.info(
        "beside it: emulator / broker CPU (supervisor slices)",
        format!(
            "{:.0} % / {:.0} %",
            traptor.cpu_percent(traptor.emulator_cpu),
            traptor.cpu_percent(traptor.broker_cpu)
        ),
    );
    report.info(
        "beside it: bare producer / broker CPU (baseline slices)",
        format!(
            "{:.0} % / {:.0} %",
            base.cpu_percent(base.cpu),
            base.cpu_percent(base.broker_cpu)
        ),
    );
    report.info(
        "machine busy, all cores (supervisor / baseline slices)",
        format!(
            "{:.0} % / {:.0} %",
            traptor.machine_busy_percent(),
            base.machine_busy_percent()
        ),
    );
    report.info(
        "supervisor RSS (end / max sampled / VmHWM)",
        format!(
            "{} / {} / {}",
            mib(last.rss_kib),
            mib(peak_rss),
            mib(last.peak_rss_kib)
        ),
    );
    report.check(
        "supervisor exit status",
        status.to_string(),
        "0 (clean)",
        status.success(),
    );
    if readout.tweets_without_id_key > 0 {
        report.note(format!(
            "{} tweet records had no tweet-id key.",
            readout.tweets_without_id_key
        ));
    }
    report.note(format!(
        "Baseline deliveries acknowledged: {}, failed: {base_failed}.",
        thousands(base_delivered)
    ));
    Ok(report)
}
