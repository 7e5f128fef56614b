//! Conformance of the connect step: OAuth, parameters, one connection per key, connect-rate
//! limiting, and the faults injected into connect attempts.

mod support;

use std::time::{Duration, Instant};

use support::*;
use traptor_firehose::{Fault, FaultKind, FirehoseConfig};

const SECOND: Duration = Duration::from_secs(1);

#[tokio::test]
async fn a_signed_post_streams_tweets_and_is_logged() {
    let handle = start(config()).await;
    let mut stream = open_track(&handle, 0, "alpha").await;
    assert!(stream
        .header("content-type")
        .unwrap()
        .starts_with("application/json"));
    assert_eq!(stream.header("transfer-encoding"), Some("chunked"));
    let tweet = stream.next_tweet(5 * SECOND).await.expect("a tweet");
    assert!(
        searchable_text(&tweet).iter().any(|s| s.contains("alpha")),
        "{tweet}"
    );
    let stats = handle.stats();
    let entry = &stats.log[0];
    assert_eq!(
        (
            entry.credential.as_str(),
            entry.status,
            entry.outcome.as_str()
        ),
        ("key0", 200, "connected")
    );
    assert_eq!(stats.credential("key0").unwrap().connects, 1);
    handle.stop().await;
}

#[tokio::test]
async fn get_with_query_and_post_with_query_and_form_are_both_signed() {
    let handle = start(config()).await;
    let mut get = open(
        &handle,
        Connect::get(&key(0), &[("track", "beta gamma"), ("delimited", "length")]),
    )
    .await;
    get.next_tweet(5 * SECOND).await.expect("a tweet over GET");

    let mut both = Connect::post(&key(1), &[("follow", "777")]);
    both.query = vec![("stall_warnings".into(), "true".into())];
    let mut stream = open(&handle, both.clone()).await;
    stream
        .next_tweet(5 * SECOND)
        .await
        .expect("a tweet over POST with a query");

    // A query parameter that was not signed breaks the signature.
    let mut tampered = both;
    tampered.method = "GET";
    tampered.query = vec![("follow".into(), "777".into())];
    tampered.form.clear();
    tampered.unsigned_extra = Some(("language".into(), "en".into()));
    let mut refused = tampered.send(handle.addr()).await;
    assert_eq!(refused.status, 401);
    assert_eq!(refused.body_json().await["errors"][0]["code"], 32);
    handle.stop().await;
}

#[tokio::test]
async fn authentication_failures_get_401_with_a_reason() {
    let handle = start(config()).await;
    let addr = handle.addr();
    let form = [("track", "alpha")];

    let mut wrong_secret = key(0);
    wrong_secret.consumer_secret = "not-the-secret".into();
    let mut stale = Connect::post(&key(0), &form);
    stale.timestamp = Some(unix_now() - 3600);
    let mut unsigned = Connect::post(&key(0), &form);
    unsigned.credentials = None;
    let mut unknown = key(9);
    unknown.consumer_key = "never-configured".into();

    let cases = [
        (Connect::post(&wrong_secret, &form), 32, "signature"),
        (stale, 135, "Timestamp"),
        (unsigned, 215, "Authorization"),
        (Connect::post(&unknown, &form), 32, "consumer key"),
    ];
    for (connect, code, words) in cases {
        let mut response = connect.send(addr).await;
        assert_eq!(response.status, 401);
        let body = response.body_json().await;
        assert_eq!(body["errors"][0]["code"], code, "{body}");
        assert!(error_message(&body).contains(words), "{body}");
    }

    // The same nonce twice: the first connects, the replay is refused.
    let mut first = Connect::post(&key(1), &form);
    first.nonce = Some("once-only".into());
    let replay = first.clone();
    let _stream = open(&handle, first).await;
    let mut response = replay.send(addr).await;
    assert_eq!(response.status, 401);
    assert!(response.body_text().await.contains("nonce"));

    let stats = handle.stats();
    // Without a header or with an unknown key, an attempt cannot be tied to a configured key.
    assert_eq!(stats.credential("key0").unwrap().rejected_401, 2);
    assert_eq!(stats.credential("key1").unwrap().rejected_401, 1);
    assert_eq!(stats.credential("unknown").unwrap().rejected_401, 2);
    handle.stop().await;
}

#[tokio::test]
async fn invalid_parameters_get_406_and_too_many_get_413() {
    let handle = start(FirehoseConfig {
        connect_limit: 100,
        ..config()
    })
    .await;
    let long = "x".repeat(61);
    let phrases = (0..401)
        .map(|i| format!("w{i}"))
        .collect::<Vec<_>>()
        .join(",");
    let ids = (1..=5001)
        .map(|i| i.to_string())
        .collect::<Vec<_>>()
        .join(",");
    let boxes = vec!["-74,40,-73,41"; 26].join(",");
    let cases: Vec<(Vec<(&str, &str)>, u16)> = vec![
        (vec![], 406),
        (vec![("delimited", "length")], 406),
        (vec![("track", "")], 406),
        (vec![("track", long.as_str())], 406),
        (vec![("follow", "12,x")], 406),
        (vec![("locations", "-74,40,-73")], 406),
        (vec![("locations", "-73,40,-74,41")], 406),
        (vec![("locations", "-74,40,-73,95")], 406),
        (vec![("track", "a"), ("filter_level", "high")], 406),
        (vec![("track", phrases.as_str())], 413),
        (vec![("follow", ids.as_str())], 413),
        (vec![("locations", boxes.as_str())], 413),
    ];
    for (form, status) in &cases {
        let mut response = Connect::post(&key(2), form).send(handle.addr()).await;
        let shown: Vec<(&str, usize)> = form.iter().map(|(k, v)| (*k, v.len())).collect();
        assert_eq!(
            response.status, *status,
            "parameters (name, value length): {shown:?}"
        );
        let body = response.body_json().await;
        assert!(!error_message(&body).is_empty());
    }
    let stats = handle.stats();
    let key2 = stats.credential("key2").unwrap();
    assert_eq!(
        (key2.rejected_406, key2.rejected_413, key2.connects),
        (9, 3, 0)
    );
    handle.stop().await;
}

#[tokio::test]
async fn a_second_connection_with_the_same_key_ends_the_first_with_code_7() {
    let handle = start(config()).await;
    let mut first = open_track_flowing(&handle, 0, "alpha").await;
    let mut second = open_track(&handle, 0, "beta").await;
    let disconnect = first
        .next_disconnect(5 * SECOND)
        .await
        .expect("the disconnect notice");
    assert_eq!(disconnect["disconnect"]["code"], 7);
    assert_ne!(
        first.until_end().await,
        End::Timeout,
        "the old stream is closed"
    );
    second
        .next_tweet(5 * SECOND)
        .await
        .expect("the new stream streams");
    let stats = handle.stats();
    assert_eq!(
        stats.connections[0].close_reason.as_deref(),
        Some("duplicate_credentials")
    );
    assert_eq!(
        stats.connections[0].count(traptor_firehose::MessageKind::Disconnect),
        1
    );
    assert!(stats.connections[1].open);
    handle.stop().await;
}

#[tokio::test]
async fn connecting_too_often_gets_420_and_each_420_extends_the_penalty() {
    let handle = start_connect_limited(3, Duration::from_secs(5), Duration::from_millis(300)).await;
    for _ in 0..3 {
        open_track(&handle, 0, "alpha").await;
    }
    assert_eq!(
        connect_status(&handle, Connect::track(0, "alpha")).await,
        420
    );
    // Retrying at once: refused again, and the penalty doubles to 600 ms.
    tokio::time::sleep(Duration::from_millis(100)).await;
    let mut again = Connect::track(0, "alpha").send(handle.addr()).await;
    assert_eq!(again.status, 420);
    assert!(again.body_text().await.contains("600 ms"));
    // Another key is not affected.
    open_track(&handle, 1, "alpha").await;
    // Still limited 400 ms later (a single penalty would have ended), free after the doubled one.
    tokio::time::sleep(Duration::from_millis(400)).await;
    assert_eq!(
        connect_status(&handle, Connect::track(0, "alpha")).await,
        420
    );
    tokio::time::sleep(Duration::from_millis(1300)).await;
    // The window (5 s) still holds 3 attempts: the limiter counts attempts, so wait it out.
    let stats = handle.stats();
    let statuses: Vec<u16> = stats.attempts_of("key0").map(|e| e.status).collect();
    assert_eq!(statuses, vec![200, 200, 200, 420, 420, 420]);
    assert_eq!(stats.credential("key0").unwrap().rejected_420, 3);
    let times: Vec<u64> = stats.attempts_of("key0").map(|e| e.at_ms).collect();
    assert!(
        times.windows(2).all(|w| w[0] <= w[1]),
        "the log is in time order: {times:?}"
    );
    handle.stop().await;
}

#[tokio::test]
async fn the_penalty_ends_and_connecting_works_again() {
    let handle =
        start_connect_limited(2, Duration::from_millis(400), Duration::from_millis(300)).await;
    open_track(&handle, 0, "alpha").await;
    open_track(&handle, 0, "alpha").await;
    assert_eq!(
        connect_status(&handle, Connect::track(0, "alpha")).await,
        420
    );
    tokio::time::sleep(Duration::from_millis(500)).await;
    open_track(&handle, 0, "alpha").await;
    handle.stop().await;
}

#[tokio::test]
async fn injected_connect_faults_answer_the_next_attempts_of_their_target() {
    let handle = start(FirehoseConfig {
        faults: vec![Fault::for_key(
            key(0).consumer_key,
            FaultKind::RespondWith {
                status: 503,
                count: 2,
            },
        )],
        ..config()
    })
    .await;
    // Another key is not targeted.
    open_track(&handle, 1, "alpha").await;
    for _ in 0..2 {
        let mut response = Connect::track(0, "alpha").send(handle.addr()).await;
        assert_eq!(response.status, 503);
        assert!(response.body_json().await["errors"][0]["message"].is_string());
    }
    open_track(&handle, 0, "alpha").await;

    // Through the control endpoint: 420 once for everyone, then a delayed head.
    control(&handle, "respond_with", r#"{"status":420}"#).await;
    assert_eq!(
        connect_status(&handle, Connect::track(2, "alpha")).await,
        420
    );
    control(&handle, "delay_head", r#"{"delay_ms":400}"#).await;
    let started = Instant::now();
    open_track(&handle, 2, "alpha").await;
    assert!(
        started.elapsed() >= Duration::from_millis(380),
        "head delayed: {:?}",
        started.elapsed()
    );
    let started = Instant::now();
    open_track(&handle, 1, "alpha").await;
    assert!(
        started.elapsed() < Duration::from_millis(300),
        "only the next attempt is delayed"
    );

    for status in [401u16, 500] {
        handle.inject(Fault::all(FaultKind::RespondWith { status, count: 1 }));
        assert_eq!(
            connect_status(&handle, Connect::track(2, "alpha")).await,
            status
        );
    }
    let (status, body) = plain_request(handle.addr(), "POST", "/control/no_such_fault", "").await;
    assert_eq!(status, 404);
    assert!(error_message(&body).contains("drop"));
    let stats = handle.stats();
    assert_eq!(stats.credential("key0").unwrap().rejected_other, 2);
    assert_eq!(stats.credential("key2").unwrap().rejected_420, 1);
    handle.stop().await;
}

#[tokio::test]
async fn stats_never_show_a_consumer_key_in_clear() {
    let handle = start(config()).await;
    let _stream = open_track(&handle, 0, "alpha").await;
    let (status, stats) = plain_request(handle.addr(), "GET", "/stats", "").await;
    assert_eq!(status, 200);
    let text = stats.to_string();
    for secret in [
        key(0).consumer_key,
        key(0).consumer_secret,
        key(0).access_token,
        key(0).access_token_secret,
    ] {
        assert!(!text.contains(&secret), "{secret} leaked into /stats");
    }
    assert_eq!(stats["credentials"][0]["credential"], "key0");
    assert_eq!(stats["log"][0]["outcome"], "connected");
    assert_eq!(
        handle.credential_label(&key(1).consumer_key).as_deref(),
        Some("key1")
    );
    handle.stop().await;
}
