//! The stream actor against the in-process emulator: delivery, reconnects, backoff, auth
//! failure, stalls, malformed input and rule changes, with every wait shrunk to keep the tests
//! to seconds.

mod stream_support;

use std::sync::Arc;
use std::time::Duration;

use stream_support::*;
use traptor_actors::messages::{StopStream, StreamState, UpdateRules};
use traptor_actors::stream::{DropKind, Pacer, PacingConfig};
use traptor_core::MessageKind;
use traptor_firehose::{Fault, FaultKind};

#[actix_rt::test]
async fn every_message_the_emulator_sent_on_a_connection_reaches_the_writer() {
    let emulator = firehose(|c| c.rate = 300.0).await;
    let h = Harness::start(spec(
        emulator.url(),
        vec![track_rule("1", "rust"), track_rule("2", "python")],
    ));
    wait_until("50 tweets", PATIENCE, || h.records().len() >= 50).await;

    // A disconnect message ends the connection after everything sent before it.
    emulator.inject(Fault::all(FaultKind::Disconnect { code: 12 }));
    wait_until("the disconnect message", PATIENCE, || {
        h.records()
            .iter()
            .any(|r| r.kind == MessageKind::Disconnect)
    })
    .await;

    let stats = emulator.stats();
    let first = stats
        .connections
        .iter()
        .min_by_key(|c| c.id)
        .expect("a connection");
    let records = h.records();
    let before_disconnect: Vec<_> = records
        .iter()
        .take_while(|r| r.kind != MessageKind::Disconnect)
        .collect();
    let tweets = tweet_ids(before_disconnect.iter().copied());
    assert_eq!(
        tweets, first.tweet_ids,
        "the same tweets, in the same order"
    );
    assert_eq!(
        tweets.len() as u64,
        first.count(traptor_firehose::MessageKind::Tweet)
    );
    let controls = before_disconnect
        .iter()
        .filter(|r| r.kind != MessageKind::Tweet)
        .count() as u64;
    let sent_controls: u64 = first
        .messages
        .iter()
        .filter(|(kind, _)| !["tweet", "keepalive", "disconnect"].contains(&kind.as_str()))
        .map(|(_, n)| n)
        .sum();
    assert_eq!(
        controls, sent_controls,
        "control messages too: {:?}",
        first.messages
    );

    let snapshot = h.stream.stats.snapshot();
    assert_eq!(
        snapshot.tweets_unmatched, 0,
        "every delivered tweet is attributed to a rule"
    );
    assert!(snapshot.tweets_matched >= tweets.len() as u64);
    h.stop_with(emulator).await;
}

#[actix_rt::test]
async fn a_disconnect_message_on_an_established_stream_reconnects_at_once() {
    let emulator = firehose(|_| {}).await;
    let h = Harness::start_streaming(rust_spec(&emulator)).await;
    sleep(Duration::from_millis(500)).await; // past `established_after`
                                             // Code 12 (reconnect requested); code 7, a duplicate connection, backs off instead.
    emulator.inject(Fault::all(FaultKind::Disconnect { code: 12 }));
    h.wait_for_state("streaming", 2).await;

    let log = emulator.stats().log;
    assert_eq!(log.len(), 2, "{log:?}");
    let closed_at = emulator.stats().connections[0]
        .closed_at_ms
        .expect("the first connection closed");
    let gap = log[1].at_ms.saturating_sub(closed_at);
    assert!(
        gap < 150,
        "reconnected {gap} ms after the disconnect; expected at once"
    );
    assert_eq!(
        h.state_names(),
        ["connecting", "streaming", "connecting", "streaming"]
    );
    assert_eq!(
        h.stream
            .stats
            .snapshot()
            .drops_of(DropKind::DisconnectMessage),
        1
    );
    h.stop_with(emulator).await;
}

#[actix_rt::test]
async fn http_503_backs_off_exponentially_from_the_http_base() {
    let (emulator, h) = streaming_after_three_refusals(503).await;
    let delays: Vec<Duration> = h
        .states()
        .into_iter()
        .filter_map(|s| match s {
            StreamState::BackingOff { delay, .. } => Some(delay),
            _ => None,
        })
        .collect();
    assert_eq!(delays, [250, 500, 1000].map(Duration::from_millis));
    h.stop_with(emulator).await;
}

#[actix_rt::test]
async fn http_420_backs_off_for_the_long_rate_limit_wait() {
    let emulator = firehose_answering(420, 1).await;
    let mut spec = rust_spec(&emulator);
    spec.backoff.rate_limited_initial = Duration::from_millis(1500);
    let h = Harness::start_streaming(spec).await;

    let log = emulator.stats().log;
    assert_eq!(log.iter().map(|e| e.status).collect::<Vec<_>>(), [420, 200]);
    let gap = log[1].at_ms - log[0].at_ms;
    assert!(
        (1500..1800).contains(&gap),
        "waited {gap} ms after a 420; expected the 1.5 s rate-limit wait"
    );
    assert!(h
        .states()
        .iter()
        .any(|s| matches!(s, StreamState::BackingOff { delay, reason }
        if *delay == Duration::from_millis(1500) && reason.contains("420"))));
    h.stop_with(emulator).await;
}

#[actix_rt::test]
async fn bad_credentials_report_auth_failed_retry_slowly_and_never_earn_a_420() {
    let emulator = firehose(|c| c.connect_limit = 3).await;
    let mut spec = rust_spec(&emulator);
    spec.credentials.consumer_secret = "wrong-secret".into();
    spec.backoff.auth_failed_retry = Duration::from_millis(300);
    let h = Harness::start(spec);
    sleep(Duration::from_millis(1600)).await;

    let log = emulator.stats().log;
    assert!(log.iter().all(|e| e.status == 401), "{log:?}");
    assert!(
        (4..=7).contains(&log.len()),
        "{} attempts in 1.6 s with a 300 ms retry",
        log.len()
    );
    let gaps = connect_gaps(&log);
    assert!(
        gaps.iter().all(|g| *g >= 300),
        "retried faster than the auth retry: {gaps:?}"
    );
    let states = h.states();
    assert!(
        matches!(&states[1], StreamState::AuthFailed { reason } if reason.contains("401")),
        "{states:?}"
    );
    assert!(!states
        .iter()
        .any(|s| s.name() == "streaming" || s.name() == "backing_off"));
    let last_error = h.stream.stats.snapshot().last_error.unwrap_or_default();
    assert!(
        !last_error.contains("wrong-secret") && !last_error.contains("test-access-token-secret"),
        "{last_error}"
    );
    h.stop_with(emulator).await;
}

#[actix_rt::test]
async fn a_stalled_stream_is_reconnected_after_the_stall_timeout() {
    let emulator = firehose(|c| c.rate = 50.0).await;
    let mut spec = rust_spec(&emulator);
    spec.stall_timeout = Duration::from_millis(400);
    let h = Harness::start_streaming(spec).await;
    sleep(Duration::from_millis(400)).await;
    let stalled_at = std::time::Instant::now();
    assert_eq!(
        emulator.inject(Fault::all(FaultKind::Stall { duration: None })),
        1
    );
    h.wait_for_state("streaming", 2).await;

    // Silence counts from the last byte, which came shortly before the stall began.
    let took = stalled_at.elapsed();
    assert!(
        took >= Duration::from_millis(300) && took < Duration::from_millis(1000),
        "reconnected after {took:?}"
    );
    assert_eq!(h.stream.stats.snapshot().drops_of(DropKind::Stall), 1);
    assert_eq!(emulator.stats().log.len(), 2);
    h.stop_with(emulator).await;
}

#[actix_rt::test]
async fn keep_alives_alone_keep_a_quiet_stream_up() {
    let emulator = firehose(|c| {
        c.rate = 0.0;
        c.keepalive = Duration::from_millis(100);
    })
    .await;
    let mut spec = rust_spec(&emulator);
    spec.stall_timeout = Duration::from_millis(400);
    let h = Harness::start_streaming(spec).await;
    sleep(Duration::from_millis(1500)).await;
    assert_eq!(
        emulator.stats().log.len(),
        1,
        "no reconnect while keep-alives arrive"
    );
    assert!(h.stream.stats.snapshot().keep_alives >= 5);
    h.stop_with(emulator).await;
}

#[actix_rt::test]
async fn malformed_frames_and_invalid_json_are_forwarded_and_the_stream_goes_on() {
    let emulator = firehose(|c| c.rate = 100.0).await;
    let h = Harness::start(rust_spec(&emulator));
    h.wait_for_records(5).await;
    emulator.inject(Fault::all(FaultKind::InvalidJson));
    emulator.inject(Fault::all(FaultKind::MalformedFrame));
    wait_until("the invalid message", PATIENCE, || {
        h.records().iter().any(|r| r.kind == MessageKind::Invalid)
    })
    .await;
    h.wait_for_more_records(10).await;

    assert_eq!(emulator.stats().log.len(), 1, "no reconnect for bad input");
    let snapshot = h.stream.stats.snapshot();
    assert!(
        snapshot.frame_errors >= 2,
        "both faults are counted: {snapshot:?}"
    );
    assert!(snapshot.messages_of(MessageKind::Invalid) >= 1);
    h.stop_with(emulator).await;
}

#[actix_rt::test]
async fn a_rule_change_reconnects_with_the_new_filter_and_unchanged_rules_do_not() {
    let emulator = firehose(|_| {}).await;
    let rules = vec![track_rule("1", "rust")];
    let h = Harness::start_streaming(spec(emulator.url(), rules.clone())).await;

    h.stream
        .addr
        .send(UpdateRules {
            rules: rules.clone(),
        })
        .await
        .unwrap();
    sleep(Duration::from_millis(300)).await;
    assert_eq!(
        emulator.stats().log.len(),
        1,
        "the same rules do not reconnect"
    );

    let new_rules = vec![track_rule("1", "rust"), track_rule("2", "ferris crab")];
    h.stream
        .addr
        .send(UpdateRules { rules: new_rules })
        .await
        .unwrap();
    h.wait_for_state("streaming", 2).await;
    let stats = emulator.stats();
    assert_eq!(stats.log.len(), 2);
    let newest = stats.connections.iter().max_by_key(|c| c.id).unwrap();
    assert_eq!(newest.track, ["rust", "ferris crab"]);
    assert!(newest.open);
    assert_eq!(h.stream.stats.snapshot().drops_of(DropKind::RuleChange), 1);
    h.stop_with(emulator).await;
}

#[actix_rt::test]
async fn connects_are_paced_per_key_even_when_backoff_would_allow_more() {
    let emulator = firehose_answering(503, 2).await;
    let mut spec = rust_spec(&emulator);
    spec.backoff.http_initial = Duration::from_millis(20);
    let pacer = Arc::new(Pacer::new(PacingConfig {
        burst: 1,
        interval: Duration::from_millis(500),
    }));
    let h = Harness::start_with_pacer(spec, pacer);
    h.wait_for_state("streaming", 1).await;

    let log = emulator.stats().log;
    assert_eq!(
        log.iter().map(|e| e.status).collect::<Vec<_>>(),
        [503, 503, 200]
    );
    let gaps = connect_gaps(&log);
    assert!(
        gaps.iter().all(|g| *g >= 480),
        "attempts closer than the key's allowance: {gaps:?}"
    );
    h.stop_with(emulator).await;
}

#[actix_rt::test]
async fn a_stream_stopped_while_backing_off_makes_no_further_attempt() {
    let emulator = firehose_answering(503, 100).await;
    let h = Harness::start(rust_spec(&emulator));
    h.wait_for_state("backing_off", 1).await;
    h.stream.addr.send(StopStream).await.unwrap();
    sleep(Duration::from_millis(600)).await;
    assert_eq!(emulator.stats().log.len(), 1);
    assert_eq!(h.state_names(), ["connecting", "backing_off", "stopped"]);
    emulator.stop().await;
}

#[actix_rt::test]
async fn a_response_head_slower_than_the_head_timeout_is_a_network_failure() {
    let delay = FaultKind::DelayHead {
        delay: Duration::from_secs(2),
        count: 1,
    };
    let emulator = firehose(|c| c.faults = vec![Fault::all(delay)]).await;
    let mut spec = rust_spec(&emulator);
    spec.http.head_timeout = Duration::from_millis(200);
    let h = Harness::start_streaming(spec).await;
    let snapshot = h.stream.stats.snapshot();
    assert_eq!(snapshot.network_errors, 1);
    assert!(
        h.states()
            .iter()
            .any(|s| matches!(s, StreamState::BackingOff { reason, .. }
        if reason.contains("head timeout"))),
        "{:?}",
        h.states()
    );
    h.stop_with(emulator).await;
}

#[actix_rt::test]
async fn a_rejected_filter_waits_for_new_rules_and_then_retries_at_once() {
    let rejected = FaultKind::RespondWith {
        status: 406,
        count: 1,
    };
    let emulator = firehose(|c| c.faults = vec![Fault::all(rejected)]).await;
    let h = Harness::start(rust_spec(&emulator));
    h.wait_for_state("rejected", 1).await;
    sleep(Duration::from_millis(300)).await;
    assert_eq!(emulator.stats().log.len(), 1, "no retry storm after a 406");

    let fixed = vec![track_rule("1", "rustacean")];
    h.stream
        .addr
        .send(UpdateRules { rules: fixed })
        .await
        .unwrap();
    wait_until("streaming", Duration::from_secs(2), || {
        h.count_state("streaming") == 1
    })
    .await;
    let stats = emulator.stats();
    assert_eq!(
        stats.log.iter().map(|e| e.status).collect::<Vec<_>>(),
        [406, 200]
    );
    assert_eq!(stats.connections[0].track, ["rustacean"]);
    h.stop_with(emulator).await;
}

#[actix_rt::test]
async fn stop_closes_the_connection_and_reports_stopped() {
    let emulator = firehose(|_| {}).await;
    let h = Harness::start_streaming(rust_spec(&emulator)).await;
    h.stream.addr.send(StopStream).await.unwrap();
    h.wait_for_state("stopped", 1).await;
    wait_until("the emulator sees the close", PATIENCE, || {
        emulator.stats().open_connections().count() == 0
    })
    .await;
    emulator.stop().await;
}
