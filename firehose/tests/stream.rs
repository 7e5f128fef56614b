//! Conformance of the stream itself: keep-alives, framing, routing by planted targets,
//! language and filter level, limit and compliance messages, stall warnings, replay, stats.

mod support;

use std::io::Write;
use std::time::{Duration, Instant};

use serde_json::Value;
use support::*;
use traptor_firehose::generate::GeoBox;
use traptor_firehose::{ControlMessageRates, FirehoseConfig, MessageKind};

const SECOND: Duration = Duration::from_secs(1);

#[tokio::test]
async fn keepalives_arrive_when_there_is_nothing_to_send() {
    let handle = start_with_keepalive(0.0, Duration::from_millis(100)).await;
    let mut stream = open_track(&handle, 0, "alpha").await;
    let started = Instant::now();
    for _ in 0..4 {
        assert!(matches!(
            stream.next_frame(SECOND).await,
            Ok(Frame::KeepAlive)
        ));
    }
    let elapsed = started.elapsed();
    assert!(
        elapsed >= Duration::from_millis(350) && elapsed < Duration::from_millis(1500),
        "{elapsed:?}"
    );
    assert!(handle.stats().connections[0].count(MessageKind::Keepalive) >= 4);
    handle.stop().await;
}

#[tokio::test]
async fn delimited_length_counts_the_message_and_its_crlf() {
    let handle = start_at_rate(300.0).await;
    // The support client asserts each length against the bytes that follow it.
    let mut stream = open(&handle, Connect::track(0, "alpha").length_delimited()).await;
    for _ in 0..30 {
        let tweet = stream
            .next_tweet(5 * SECOND)
            .await
            .expect("a length-delimited tweet");
        assert!(tweet["id"].is_u64());
    }
    handle.stop().await;
}

fn follows(tweet: &Value, id: u64) -> bool {
    [
        tweet.pointer("/user/id"),
        tweet.pointer("/retweeted_status/user/id"),
        tweet.get("in_reply_to_user_id"),
    ]
    .into_iter()
    .flatten()
    .any(|v| v.as_u64() == Some(id))
}

fn located_in(tweet: &Value, area: &GeoBox) -> bool {
    if let Some(point) = tweet
        .pointer("/coordinates/coordinates")
        .and_then(Value::as_array)
    {
        return area.contains(point[0].as_f64().unwrap(), point[1].as_f64().unwrap());
    }
    let ring = tweet
        .pointer("/place/bounding_box/coordinates/0")
        .and_then(Value::as_array)
        .expect("a place");
    let lons: Vec<f64> = ring.iter().map(|p| p[0].as_f64().unwrap()).collect();
    let lats: Vec<f64> = ring.iter().map(|p| p[1].as_f64().unwrap()).collect();
    let place = GeoBox::new(
        lons.iter().cloned().fold(f64::MAX, f64::min),
        lats.iter().cloned().fold(f64::MAX, f64::min),
        lons.iter().cloned().fold(f64::MIN, f64::max),
        lats.iter().cloned().fold(f64::MIN, f64::max),
    );
    area.overlaps(&place)
}

#[tokio::test]
async fn every_connection_gets_tweets_planted_for_its_own_filter() {
    let handle = start_at_rate(600.0).await;
    let nyc = GeoBox::new(-74.0, 40.0, -73.0, 41.0);
    let mut track = open_track(&handle, 0, "alpha,rust lang").await;
    let mut follow = open(
        &handle,
        Connect::post(&key(1), &[("follow", "783214,6253282")]),
    )
    .await;
    let mut geo = open(
        &handle,
        Connect::post(&key(2), &[("locations", "-74,40,-73,41")]),
    )
    .await;
    let mut received = Vec::new();
    for _ in 0..40 {
        let tweet = track.next_tweet(5 * SECOND).await.unwrap();
        let fields = searchable_text(&tweet);
        let has = |term: &str| fields.iter().any(|f| f.contains(term));
        assert!(
            has("alpha") || (has("rust") && has("lang")),
            "no tracked phrase in {tweet}"
        );
        received.push(tweet["id"].as_u64().unwrap());
    }
    for _ in 0..40 {
        let tweet = follow.next_tweet(5 * SECOND).await.unwrap();
        assert!(
            follows(&tweet, 783214) || follows(&tweet, 6253282),
            "{tweet}"
        );
    }
    for _ in 0..40 {
        let tweet = geo.next_tweet(5 * SECOND).await.unwrap();
        assert!(tweet["retweeted_status"].is_null());
        assert!(located_in(&tweet, &nyc), "{tweet}");
    }
    let stats = handle.stats();
    let sent = &stats.connections[0].tweet_ids;
    assert_eq!(
        &sent[..received.len()],
        &received[..],
        "the stats list the ids sent, in order"
    );
    assert!(received.windows(2).all(|w| w[0] < w[1]), "ids increase");
    handle.stop().await;
}

#[tokio::test]
async fn connections_sharing_a_phrase_receive_the_same_tweets() {
    let handle = start_at_rate(300.0).await;
    let mut a = open_track(&handle, 0, "Shared Topic").await;
    let mut b = open_track(&handle, 1, "shared   topic,other").await;
    let mut ids_a = Vec::new();
    for _ in 0..30 {
        ids_a.push(
            a.next_tweet(5 * SECOND).await.unwrap()["id"]
                .as_u64()
                .unwrap(),
        );
    }
    let mut ids_b = Vec::new();
    while ids_b.len() < 200 && ids_b.last().is_none_or(|last| last < ids_a.last().unwrap()) {
        ids_b.push(
            b.next_tweet(5 * SECOND).await.unwrap()["id"]
                .as_u64()
                .unwrap(),
        );
    }
    let later: Vec<u64> = ids_a.iter().copied().filter(|id| *id >= ids_b[0]).collect();
    assert!(
        later.iter().all(|id| ids_b.contains(id)),
        "b missed some of a's tweets"
    );
    handle.stop().await;
}

#[tokio::test]
async fn language_and_filter_level_are_honoured() {
    let handle = start_at_rate(300.0).await;
    let mut stream = open(
        &handle,
        Connect::post(
            &key(0),
            &[
                ("track", "alpha"),
                ("language", "fr,de"),
                ("filter_level", "medium"),
            ],
        ),
    )
    .await;
    for _ in 0..30 {
        let tweet = stream.next_tweet(5 * SECOND).await.unwrap();
        assert!(
            tweet["lang"] == "fr" || tweet["lang"] == "de",
            "{}",
            tweet["lang"]
        );
        assert_eq!(tweet["filter_level"], "medium");
    }
    handle.stop().await;
}

#[tokio::test]
async fn a_rate_cap_withholds_tweets_and_reports_them_in_limit_notices() {
    let handle = start(FirehoseConfig {
        rate: 400.0,
        limit_cap_per_sec: Some(50.0),
        limit_notice_interval: Duration::from_millis(100),
        ..config()
    })
    .await;
    let mut stream = open_track(&handle, 0, "alpha").await;
    let mut counts = Vec::new();
    let started = Instant::now();
    while counts.len() < 4 {
        let message = stream.next_json(5 * SECOND).await.unwrap();
        if let Some(n) = message.pointer("/limit/track") {
            counts.push(n.as_u64().unwrap());
        }
    }
    assert!(
        counts.windows(2).all(|w| w[0] < w[1]),
        "limit counts are cumulative: {counts:?}"
    );
    let stats = handle.stats();
    let conn = &stats.connections[0];
    assert!(conn.undelivered >= *counts.last().unwrap());
    // A one-second burst allowance, then 50 per second.
    let allowed = 50.0 + 50.0 * started.elapsed().as_secs_f64() + 5.0;
    let sent = conn.count(MessageKind::Tweet) as f64;
    assert!(
        sent <= allowed,
        "the cap holds: {sent} tweets sent, {allowed:.0} allowed"
    );
    handle.stop().await;
}

#[tokio::test]
async fn compliance_messages_follow_the_tweets_they_concern() {
    let handle = start(FirehoseConfig {
        rate: 300.0,
        control_message_rates: ControlMessageRates {
            delete: 0.2,
            scrub_geo: 0.1,
            status_withheld: 0.1,
            user_withheld: 0.1,
        },
        ..config()
    })
    .await;
    let mut stream = open_track(&handle, 0, "alpha").await;
    let mut seen_ids = Vec::new();
    let mut kinds = std::collections::BTreeSet::new();
    while kinds.len() < 4 {
        let message = stream.next_json(5 * SECOND).await.unwrap();
        if let Some(id) = message.get("id").and_then(Value::as_u64) {
            seen_ids.push(id);
        } else if let Some(id) = message.pointer("/delete/status/id").and_then(Value::as_u64) {
            assert!(
                seen_ids.contains(&id),
                "a delete names a tweet already sent"
            );
            kinds.insert("delete");
        } else if let Some(id) = message
            .pointer("/status_withheld/id")
            .and_then(Value::as_u64)
        {
            assert!(seen_ids.contains(&id));
            kinds.insert("status_withheld");
        } else if message.get("scrub_geo").is_some() {
            kinds.insert("scrub_geo");
        } else if message.get("user_withheld").is_some() {
            kinds.insert("user_withheld");
        }
    }
    handle.stop().await;
}

/// Tweets far faster than a reader that does not read can take, into a short queue, so that a
/// slow reader overflows it within seconds.
fn overflowing_config() -> FirehoseConfig {
    FirehoseConfig {
        rate: 4000.0,
        max_queue: 400,
        ..config()
    }
}

/// A connect of `key(0)` with a small receive buffer, so that not reading backs the stream up
/// into the emulator's queue quickly.
fn slow_reader(form: &[(&str, &str)]) -> Connect {
    let mut connect = Connect::post(&key(0), form);
    connect.recv_buffer = Some(4096);
    connect
}

#[tokio::test]
async fn a_slow_reader_gets_stall_warnings_then_disconnect_code_4() {
    let handle = start(FirehoseConfig {
        stall_warning_interval: Duration::from_millis(50),
        keepalive: Duration::from_secs(5),
        ..overflowing_config()
    })
    .await;
    let mut stream = open(
        &handle,
        slow_reader(&[("track", "alpha"), ("stall_warnings", "true")]),
    )
    .await;
    // Not reading: the socket buffers fill, then the emulator's queue.
    eventually(&handle, 20 * SECOND, "the queue overflows", |s| {
        s.connections[0].close_reason.as_deref() == Some("queue_full")
    })
    .await;
    let (mut warning, mut disconnect) = (None, None);
    loop {
        match stream.next_json(10 * SECOND).await {
            Ok(message) if message.get("warning").is_some() => warning = Some(message),
            Ok(message) if message.get("disconnect").is_some() => disconnect = Some(message),
            Ok(_) => {}
            Err(_) => break,
        }
    }
    let warning = warning.expect("a FALLING_BEHIND warning");
    assert_eq!(warning["warning"]["code"], "FALLING_BEHIND");
    assert!(warning["warning"]["percent_full"].as_u64().unwrap() >= 60);
    assert_eq!(
        disconnect.expect("a disconnect notice")["disconnect"]["code"],
        4
    );
    let stats = handle.stats();
    assert!(
        stats.connections[0].queue_peak >= 240,
        "peak {}",
        stats.connections[0].queue_peak
    );
    handle.stop().await;
}

#[tokio::test]
async fn without_stall_warnings_a_slow_reader_gets_no_warning() {
    let handle = start(overflowing_config()).await;
    let _stream = open(&handle, slow_reader(&[("track", "alpha")])).await;
    eventually(&handle, 20 * SECOND, "the queue overflows", |s| {
        !s.connections[0].open
    })
    .await;
    assert_eq!(handle.stats().connections[0].count(MessageKind::Warning), 0);
    handle.stop().await;
}

#[tokio::test]
async fn replay_serves_the_archive_lines_that_match_each_connection() {
    let mut archive = tempfile::NamedTempFile::new().unwrap();
    let lines = [
        r#"{"id":1,"id_str":"1","text":"alpha one","user":{"id":10,"id_str":"10"}}"#,
        r#"{"id":2,"id_str":"2","text":"beta two","user":{"id":20,"id_str":"20"}}"#,
        r#"{"delete":{"status":{"id":1,"id_str":"1","user_id":10,"user_id_str":"10"}}}"#,
        r#"{"id":3,"id_str":"3","text":"ALPHA three","user":{"id":30,"id_str":"30"}}"#,
        r#"{"id":4,"id_str":"4","text":"by a followed user","user":{"id":20,"id_str":"20"}}"#,
    ];
    for line in lines {
        writeln!(archive, "{line}").unwrap();
    }
    let handle = start(FirehoseConfig {
        rate: 20.0,
        replay: Some(archive.path().to_owned()),
        ..config()
    })
    .await;
    let mut alpha = open_track(&handle, 0, "alpha").await;
    let mut followed = open(&handle, Connect::post(&key(1), &[("follow", "20")])).await;
    let mut got = Vec::new();
    for _ in 0..3 {
        got.push(alpha.next_json(5 * SECOND).await.unwrap());
    }
    assert_eq!(got[0]["id"], 1);
    assert!(got[1].get("delete").is_some());
    assert_eq!(got[2]["id"], 3);
    let first = followed.next_tweet(5 * SECOND).await.unwrap();
    let second = followed.next_tweet(5 * SECOND).await.unwrap();
    assert_eq!(
        (first["id"].as_u64(), second["id"].as_u64()),
        (Some(2), Some(4))
    );
    assert_eq!(handle.stats().connections[0].tweet_ids, vec![1, 3]);
    handle.stop().await;
}

#[tokio::test]
async fn stopping_tells_every_stream_the_server_shuts_down() {
    let handle = start(config()).await;
    let mut stream = open_track_flowing(&handle, 0, "alpha").await;
    let stop = tokio::spawn(handle.stop());
    let notice = stream
        .next_disconnect(5 * SECOND)
        .await
        .unwrap_or_else(|end| panic!("ended ({end:?}) without a disconnect notice"));
    assert_eq!(notice["disconnect"]["code"], 1);
    stop.await.unwrap();
}
