//! Scenario 5, slow Kafka: the broker frozen (SIGSTOP) for a while under full load. Memory
//! must stay bounded by `max_in_flight_records`, the streams must be slowed (the emulator in
//! load mode waits for them) rather than dropped, and the backlog must drain afterwards with
//! nothing lost by ground truth.

use std::time::{Duration, Instant};

use anyhow::Context;
use traptor_firehose::{Fault, FaultKind};

use super::{emulator_config, rate, Common};
use crate::cluster;
use crate::emulator::{tweets_sent, Emulator};
use crate::figures::{per_second, reconcile};
use crate::kafka::{self, TopicCounter};
use crate::report::{mib, thousands, Report};
use crate::supervisor::SupervisorProcess;

#[derive(Debug, Clone)]
pub struct Options {
    pub streams: usize,
    pub pause: Duration,
    /// Normal running before the pause, and after it before the traffic stops.
    pub before: Duration,
    pub after: Duration,
    pub max_in_flight_records: usize,
}

pub fn run(common: &Common, options: &Options) -> anyhow::Result<Report> {
    let n = options.streams;
    let topic = cluster::unique("perf-slow-kafka");
    kafka::create_topic(&common.services.kafka_brokers, &topic, common.partitions)?;
    let mut spec = common.cluster(n, String::new(), &topic);
    spec.max_in_flight_records = options.max_in_flight_records;
    let emulator = Emulator::start(emulator_config(&spec, f64::INFINITY))?;
    spec.endpoint = emulator.url();
    common.write_rules(&spec, n, 10)?;
    let mut supervisor = SupervisorProcess::start(
        &common.supervisor,
        &common.run_dir,
        "slow-kafka",
        &spec.to_toml(),
    )?;
    let counter = TopicCounter::new(&common.services.kafka_brokers, &topic)?;
    emulator
        .wait_for(
            &format!("{n} open streams"),
            Duration::from_secs(120),
            Duration::from_millis(100),
            |s| s.open_connections().count() == n,
        )
        .with_context(|| format!("supervisor log: {}", supervisor.log_path().display()))?;

    let sent_start = tweets_sent(&emulator.stats());
    let started = Instant::now();
    std::thread::sleep(options.before);
    let normal_rate = per_second(
        tweets_sent(&emulator.stats()) - sent_start,
        started.elapsed(),
    );
    let before_pause = supervisor.sample()?;

    // The pause. The first seconds fill the in-flight bound; the rest shows the slowed rate.
    let paused = common.services.pause_kafka()?;
    let paused_at = Instant::now();
    let settle = (options.pause / 6).min(Duration::from_secs(5));
    let mut max_rss = before_pause.rss_kib;
    let mut settled: Option<(Instant, u64)> = None;
    while paused_at.elapsed() < options.pause {
        std::thread::sleep(Duration::from_millis(250));
        max_rss = max_rss.max(supervisor.sample()?.rss_kib);
        if settled.is_none() && paused_at.elapsed() >= settle {
            settled = Some((Instant::now(), tweets_sent(&emulator.stats())));
        }
    }
    let at_resume = emulator.stats();
    let sent_at_resume = tweets_sent(&at_resume);
    let paused_rate = settled
        .map(|(at, sent)| per_second(sent_at_resume - sent, at.elapsed()))
        .unwrap_or_default();
    let open_during_pause = at_resume.open_connections().count();
    paused.resume();
    let resumed_at = Instant::now();

    // Drain: until the broker holds as many records as tweets were streamed by the resume.
    let mut drained_after = None;
    while resumed_at.elapsed() < options.after.max(Duration::from_secs(60)) {
        max_rss = max_rss.max(supervisor.sample()?.rss_kib);
        if drained_after.is_none() && counter.count()? >= sent_at_resume {
            drained_after = Some(resumed_at.elapsed());
        }
        if drained_after.is_some() && resumed_at.elapsed() >= options.after {
            break;
        }
        std::thread::sleep(Duration::from_millis(250));
    }

    emulator.inject(Fault::all(FaultKind::Stall { duration: None }));
    let total = counter.wait_until_stable(Duration::from_secs(3), Duration::from_secs(120))?;
    let end = supervisor.sample()?;
    let status = supervisor.terminate(Duration::from_secs(30))?;
    let truth = emulator.stats();
    emulator.stop();
    let readout = kafka::read_topic(
        &common.services.kafka_brokers,
        &topic,
        total,
        0,
        Duration::from_secs(15),
    )?;
    let check = reconcile(
        truth
            .connections
            .iter()
            .flat_map(|c| c.tweet_ids.iter().copied()),
        &readout.tweet_keys,
    );
    let not_recorded: u64 = truth
        .connections
        .iter()
        .map(|c| c.tweet_ids_not_recorded)
        .sum();
    let reconnects: u64 = truth
        .credentials
        .iter()
        .map(|c| c.connects.saturating_sub(1))
        .sum();
    let closed_by_emulator = truth
        .connections
        .iter()
        .filter(|c| {
            c.close_reason
                .as_deref()
                .is_some_and(|r| r != "client_closed" && r != "shutdown")
        })
        .count();

    let avg_record = readout
        .payload_bytes
        .checked_div(readout.records)
        .unwrap_or(0);
    let held_kib = options.max_in_flight_records as u64 * avg_record / 1024;
    let bound_kib = before_pause.rss_kib + held_kib;
    let mut report = Report::new("Slow Kafka (broker paused)");
    report.setup(format!(
        "{n} API keys and track slots of 10 rules; emulator in load mode (waits for slow \
         readers); max_in_flight_records = {}; the broker's process group SIGSTOPped for {:.0} s \
         after {:.0} s of normal running, then SIGCONT; traffic stopped {:.0} s after the resume \
         and the topic read back",
        thousands(options.max_in_flight_records as u64),
        options.pause.as_secs_f64(),
        options.before.as_secs_f64(),
        options.after.as_secs_f64()
    ));
    report.setup(format!(
        "memory bound used for the check: RSS before the pause + max_in_flight_records × the \
         average record ({} B) = {} + {}: what the writer may hold unacknowledged",
        thousands(avg_record),
        mib(before_pause.rss_kib),
        mib(held_kib)
    ));
    report.info("tweets streamed before the pause", rate(normal_rate));
    report.info(
        format!(
            "tweets streamed while paused (after the first {:.0} s)",
            settle.as_secs_f64()
        ),
        rate(paused_rate),
    );
    report.check(
        "streams open during the pause / dropped by the emulator",
        format!("{open_during_pause} of {n} / {closed_by_emulator}"),
        format!("{n} / 0"),
        open_during_pause == n && closed_by_emulator == 0,
    );
    report.info("RSS before the pause", mib(before_pause.rss_kib));
    report.check(
        "max RSS during pause and drain",
        format!("{} (VmHWM {})", mib(max_rss), mib(end.peak_rss_kib)),
        format!("≤ {}", mib(bound_kib)),
        max_rss <= bound_kib,
    );
    report.check(
        "backlog drained after resume",
        drained_after
            .map(|d| format!("{:.1} s", d.as_secs_f64()))
            .unwrap_or_else(|| "not within 60 s".into()),
        "drains",
        drained_after.is_some(),
    );
    report.check(
        "tweets lost / duplicated / never sent",
        format!(
            "{} / {} / {}",
            thousands(check.lost),
            thousands(check.duplicated),
            thousands(check.unexpected)
        ),
        "0 / 0 / 0",
        check.exact() && not_recorded == 0,
    );
    report.info("tweets verified by key", thousands(check.delivered));
    report.check(
        "stream reconnects",
        reconnects.to_string(),
        "0",
        reconnects == 0,
    );
    report.check(
        "supervisor exit status",
        status.to_string(),
        "0 (clean)",
        status.success(),
    );
    Ok(report)
}
