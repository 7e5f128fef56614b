//! Stream faults not covered by `stream_emulator.rs`, checked from the emulator's connection
//! log: HTTP 500, a connection closed in the middle of a frame, an oversized frame, two
//! connections with the same credentials, and the contract's acceptance test for backoff (a
//! run with invalid credentials never earns a 420), with the policy's waits scaled down.

mod stream_support;

use std::time::Duration;

use stream_support::*;
use traptor_actors::messages::{StopStream, StreamState};
use traptor_actors::stream::{BackoffConfig, DropKind};
use traptor_core::MessageKind;
use traptor_firehose::{Fault, FaultKind};

#[actix_rt::test]
async fn http_500_backs_off_on_the_http_schedule() {
    let (emulator, h) = streaming_after_three_refusals(500).await;
    h.stop_with(emulator).await;
}

#[actix_rt::test]
async fn a_connection_closed_mid_frame_reconnects_at_once_and_forwards_no_half_message() {
    let emulator = firehose(|c| c.rate = 100.0).await;
    let h = Harness::start(rust_spec(&emulator));
    h.wait_for_records(10).await;
    sleep(Duration::from_millis(400)).await; // established
    emulator.inject(Fault::all(FaultKind::CloseMidFrame));
    h.wait_for_state("streaming", 2).await;

    let stats = emulator.stats();
    let first = &stats.connections[0];
    assert_eq!(first.count(traptor_firehose::MessageKind::PartialFrame), 1);
    let closed_at = first.closed_at_ms.expect("closed");
    let gap = stats.log[1].at_ms.saturating_sub(closed_at);
    assert!(gap < 300, "reconnected {gap} ms after the close");
    // Every whole tweet of the first connection arrived; the half one did not.
    let delivered = tweet_ids(&h.records());
    assert_eq!(&delivered[..first.tweet_ids.len()], &first.tweet_ids[..]);
    assert!(
        h.records().iter().all(|r| r.kind != MessageKind::Invalid),
        "no half message forwarded"
    );
    let snapshot = h.stream.stats.snapshot();
    assert_eq!(snapshot.frame_errors, 1, "the cut frame is counted");
    assert_eq!(
        snapshot.drops_of(DropKind::ReadError) + snapshot.drops_of(DropKind::Closed),
        1
    );
    h.stop_with(emulator).await;
}

#[actix_rt::test]
async fn an_oversized_frame_is_skipped_and_the_stream_goes_on_without_reconnecting() {
    let emulator = firehose(|c| c.rate = 100.0).await;
    let mut spec = rust_spec(&emulator);
    spec.max_frame_bytes = 64 * 1024;
    let h = Harness::start(spec);
    h.wait_for_records(5).await;
    emulator.inject(Fault::all(FaultKind::OversizedFrame { bytes: 256 * 1024 }));
    wait_until("the oversized frame counted", PATIENCE, || {
        h.stream.stats.snapshot().frame_errors >= 1
    })
    .await;
    h.wait_for_more_records(10).await;

    let stats = emulator.stats();
    assert_eq!(stats.log.len(), 1, "no reconnect for an oversized frame");
    assert_eq!(
        stats.connections[0].count(traptor_firehose::MessageKind::OversizedFrame),
        1
    );
    assert!(
        h.records().iter().all(|r| r.payload.len() <= 64 * 1024),
        "nothing beyond the frame limit is forwarded"
    );
    // Every tweet sent (the oversized one is not a tweet) arrived, in order.
    let delivered = tweet_ids(&h.records());
    let sent = &emulator.stats().connections[0].tweet_ids;
    assert_eq!(&sent[..delivered.len()], &delivered[..]);
    h.stop_with(emulator).await;
}

#[actix_rt::test]
async fn two_connections_with_the_same_key_get_code_7_and_do_not_storm() {
    let emulator = firehose(|_| {}).await;
    let first = Harness::start_streaming(rust_spec(&emulator)).await;
    sleep(Duration::from_millis(400)).await;
    // A second client with the same key, as a second process would be.
    let second = Harness::start(spec(emulator.url(), vec![track_rule("2", "python")]));
    sleep(Duration::from_secs(3)).await;

    let stats = emulator.stats();
    let duplicates = stats
        .connections
        .iter()
        .filter(|c| c.close_reason.as_deref() == Some("duplicate_credentials"))
        .count();
    assert!(
        duplicates >= 1,
        "the emulator kicked a connection with code 7"
    );
    let disconnects = first
        .stream
        .stats
        .snapshot()
        .drops_of(DropKind::DisconnectMessage)
        + second
            .stream
            .stats
            .snapshot()
            .drops_of(DropKind::DisconnectMessage);
    assert!(disconnects >= 1);
    let code_7 = first
        .records()
        .iter()
        .chain(second.records().iter())
        .filter(|r| r.kind == MessageKind::Disconnect)
        .count();
    assert!(code_7 >= 1, "the disconnect message is forwarded");
    // The two take turns; the turns must slow down, not storm: in 3 s, with the HTTP
    // schedule scaled to 250 ms, 500 ms, 1 s, ... a handful of connects at most.
    let attempts = stats.log.len();
    eprintln!(
        "same key twice: {attempts} connects in 3 s; gaps {:?} ms",
        connect_gaps(&stats.log)
    );
    assert!(
        attempts <= 8,
        "{attempts} connects in 3 s: a reconnect storm"
    );
    let gaps = connect_gaps(&stats.log);
    assert!(
        gaps[1..].iter().all(|g| *g >= 240),
        "after the first displacement no two connects come closer than the first HTTP wait: {gaps:?}"
    );
    // After each displacement the displaced stream waits at least the first HTTP backoff.
    let displaced = first
        .states()
        .into_iter()
        .chain(second.states())
        .filter(|s| {
            matches!(s, StreamState::BackingOff { delay, reason }
            if reason.contains("another client") && *delay >= Duration::from_millis(250))
        });
    assert!(
        displaced.count() >= 1,
        "the displaced stream backs off on the HTTP schedule"
    );
    first.stream.addr.send(StopStream).await.unwrap();
    second.stream.addr.send(StopStream).await.unwrap();
    emulator.stop().await;
}

/// The contract's acceptance test for backoff: "test the backoff with invalid credentials; a
/// good implementation will not get any 420 responses". Simulated time: the real policy
/// scaled so that `TRAPTOR_SIMULATED_HOURS` hours (default 2; a soak: 24) pass in about 3 s
/// each, against an emulator whose connect allowance (10 per 60 s) is scaled the same way.
#[actix_rt::test]
async fn invalid_credentials_never_earn_a_420_over_simulated_hours() {
    let hours: f64 = std::env::var("TRAPTOR_SIMULATED_HOURS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(2.0);
    let scale = 3.0 / 3600.0; // one simulated hour = 3 s
    let emulator = firehose(|c| {
        c.connect_window = Duration::from_secs(60).mul_f64(scale);
        c.connect_limit = 10;
    })
    .await;
    let mut spec = rust_spec(&emulator);
    spec.credentials.consumer_secret = "wrong-secret".into();
    spec.backoff = BackoffConfig::default().scaled(scale);
    let retry = spec.backoff.auth_failed_retry;
    let h = Harness::start(spec);
    let run = Duration::from_secs_f64(hours * 3600.0 * scale);
    sleep(run).await;

    let log = emulator.stats().log;
    let expected = (run.as_secs_f64() / retry.as_secs_f64()).floor() as usize + 1;
    eprintln!(
        "{hours} simulated hours ({run:?}): {} attempts, auth retry {retry:?} (10 min scaled); gaps {:?} ms",
        log.len(),
        connect_gaps(&log)
    );
    assert!(
        log.iter().all(|e| e.status == 401),
        "only 401s, never a 420: {:?}",
        log.iter().map(|e| e.status).collect::<Vec<_>>()
    );
    assert!(
        log.len() + 1 >= expected && log.len() <= expected,
        "{} attempts, expected {expected} (one per auth retry)",
        log.len()
    );
    let min = retry.as_millis() as u64;
    assert!(
        connect_gaps(&log)
            .iter()
            .all(|g| *g >= min && *g < min + 150),
        "gaps must follow the 10 min auth retry (scaled: {min} ms)"
    );
    // Measured against the allowance: at most one attempt per scaled window of 60 s, far
    // under the 10 that would earn a 420 (the emulator counts authenticated attempts only, so
    // the schedule itself is the proof).
    let window = (60_000.0 * scale) as u64;
    for (i, entry) in log.iter().enumerate() {
        let in_window = log[i..]
            .iter()
            .take_while(|e| e.at_ms < entry.at_ms + window)
            .count();
        assert!(
            in_window <= 1,
            "{in_window} attempts within one connect window"
        );
    }
    assert!(h
        .states()
        .iter()
        .all(|s| !matches!(s, StreamState::BackingOff { .. } | StreamState::Streaming)));
    h.stop_with(emulator).await;
}
