//! Conformance of the faults injected into live streams, by handle and by control endpoint.

mod support;

use std::time::{Duration, Instant};

use support::*;
use traptor_firehose::{Fault, FaultKind, MessageKind};

const SECOND: Duration = Duration::from_secs(1);

#[tokio::test]
async fn drop_closes_the_socket_without_a_clean_end() {
    let handle = start(config()).await;
    let mut stream = open_track_flowing(&handle, 0, "alpha").await;
    assert_eq!(handle.inject(Fault::all(FaultKind::Drop)), 1);
    assert_eq!(stream.until_end().await, End::Closed);
    let stats = handle.stats();
    assert_eq!(
        stats.connections[0].close_reason.as_deref(),
        Some("fault_drop")
    );
    assert_eq!(stats.connections[0].count(MessageKind::Disconnect), 0);
    handle.stop().await;
}

#[tokio::test]
async fn faults_reach_only_the_targeted_key() {
    let handle = start(config()).await;
    let mut kept = open_track(&handle, 0, "alpha").await;
    let mut dropped = open_track(&handle, 1, "beta").await;
    let body = format!(r#"{{"consumer_key":"{}"}}"#, key(1).consumer_key);
    let reply = control(&handle, "drop", &body).await;
    assert_eq!(reply["connections"].as_u64(), Some(1));
    assert_eq!(dropped.until_end().await, End::Closed);
    for _ in 0..5 {
        kept.next_tweet(5 * SECOND)
            .await
            .expect("the other key still streams");
    }
    handle.stop().await;
}

#[tokio::test]
async fn a_stall_sends_nothing_not_even_keepalives_then_resumes() {
    let handle = start_with_keepalive(100.0, Duration::from_millis(50)).await;
    let mut stream = open_track_flowing(&handle, 0, "alpha").await;
    handle.inject(Fault::all(FaultKind::Stall { duration: None }));
    // Drain what was in flight, then expect silence.
    let quiet_since = loop {
        match stream.next_frame(Duration::from_millis(300)).await {
            Ok(_) => continue,
            Err(End::Timeout) => break Instant::now(),
            Err(end) => panic!("stream ended: {end:?}"),
        }
    };
    assert!(matches!(
        stream.next_frame(Duration::from_millis(400)).await,
        Err(End::Timeout)
    ));
    control(&handle, "resume", "").await;
    stream
        .next_frame(2 * SECOND)
        .await
        .expect("data again after resume");
    assert!(quiet_since.elapsed() >= Duration::from_millis(400));

    // A timed stall ends by itself.
    handle.inject(Fault::all(FaultKind::Stall {
        duration: Some(Duration::from_millis(500)),
    }));
    let started = Instant::now();
    let mut longest_gap = Duration::ZERO;
    let mut last = Instant::now();
    while started.elapsed() < Duration::from_millis(1200) {
        stream
            .next_frame(2 * SECOND)
            .await
            .expect("the stream goes on");
        longest_gap = longest_gap.max(last.elapsed());
        last = Instant::now();
    }
    assert!(
        longest_gap >= Duration::from_millis(400),
        "gap {longest_gap:?}"
    );
    handle.stop().await;
}

#[tokio::test]
async fn malformed_invalid_and_oversized_frames_are_delivered_then_the_stream_goes_on() {
    let handle = start(config()).await;
    let mut stream = open_track_flowing(&handle, 0, "alpha").await;
    handle.inject(Fault::all(FaultKind::MalformedFrame));
    handle.inject(Fault::all(FaultKind::InvalidJson));
    handle.inject(Fault::all(FaultKind::OversizedFrame { bytes: 1_500_000 }));
    let (mut malformed, mut invalid, mut oversized) = (false, false, false);
    while !(malformed && invalid && oversized) {
        let Frame::Message(bytes) = stream.next_frame(5 * SECOND).await.unwrap() else {
            continue;
        };
        match serde_json::from_slice::<serde_json::Value>(&bytes) {
            Ok(value) if bytes.len() > 1_400_000 => {
                assert_eq!(value["user"]["screen_name"], "oversized");
                oversized = true;
            }
            Ok(_) => {}
            Err(_) if std::str::from_utf8(&bytes).is_err() => malformed = true,
            Err(_) => invalid = true,
        }
    }
    stream
        .next_tweet(5 * SECOND)
        .await
        .expect("tweets continue after bad frames");
    let stats = handle.stats();
    for kind in [
        MessageKind::MalformedFrame,
        MessageKind::InvalidJson,
        MessageKind::OversizedFrame,
    ] {
        assert_eq!(stats.connections[0].count(kind), 1, "{kind:?}");
    }
    handle.stop().await;
}

#[tokio::test]
async fn a_malformed_length_line_in_delimited_mode() {
    let handle = start_at_rate(0.0).await;
    let mut stream = open(&handle, Connect::track(0, "alpha").length_delimited()).await;
    // Read raw: this client's framing would reject the bad length line.
    stream.delimited = false;
    handle.inject(Fault::all(FaultKind::MalformedFrame));
    loop {
        match stream.next_frame(5 * SECOND).await.unwrap() {
            Frame::KeepAlive => continue,
            Frame::Message(line) => {
                assert!(
                    std::str::from_utf8(&line)
                        .unwrap()
                        .parse::<usize>()
                        .is_err(),
                    "a length line that is no number"
                );
                break;
            }
        }
    }
    handle.stop().await;
}

#[tokio::test]
async fn close_mid_frame_leaves_half_a_message_then_closes() {
    let handle = start_at_rate(0.0).await;
    let mut stream = open_track(&handle, 0, "alpha").await;
    control(&handle, "close_mid_frame", "{}").await;
    assert_eq!(stream.until_end().await, End::Closed);
    let left = stream.leftover();
    assert!(
        left.len() > 500 && !left.windows(2).any(|w| w == b"\r\n"),
        "{} bytes of a cut frame",
        left.len()
    );
    assert!(serde_json::from_slice::<serde_json::Value>(left).is_err());
    handle.stop().await;
}

#[tokio::test]
async fn an_injected_disconnect_sends_its_code_then_ends() {
    let handle = start(config()).await;
    let mut stream = open_track(&handle, 0, "alpha").await;
    control(&handle, "disconnect", r#"{"code":12}"#).await;
    let notice = stream.next_disconnect(5 * SECOND).await.unwrap();
    assert_eq!(
        notice.pointer("/disconnect/code").and_then(|c| c.as_u64()),
        Some(12)
    );
    assert_ne!(stream.until_end().await, End::Timeout);
    handle.stop().await;
}

#[tokio::test]
async fn a_bad_control_body_is_refused_with_a_reason() {
    let handle = start(config()).await;
    let (status, body) =
        plain_request(handle.addr(), "POST", "/control/stall", r#"{"duration":5}"#).await;
    assert_eq!(status, 400);
    assert!(error_message(&body).contains("duration"));
    let (status, body) = plain_request(handle.addr(), "POST", "/control/respond_with", "{}").await;
    assert_eq!(status, 400);
    assert!(error_message(&body).contains("status"));
    handle.stop().await;
}
