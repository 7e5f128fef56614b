//! Load mode (unlimited rate): messages are framed by the pump in batches and, with a tweet
//! pool, tweets are copies patched in place. What a client reads must still be exact: frames
//! byte-correct in both framings, every tweet a valid tweet under an id never sent before,
//! the ground truth equal to what arrived, and the disconnect notice last.

mod support;

use std::collections::HashSet;
use std::time::Duration;

use serde_json::Value;
use support::*;
use traptor_core::timestamps::twitter_created_at;
use traptor_firehose::{
    ControlMessageRates, Fault, FaultKind, FirehoseConfig, FirehoseHandle, MessageKind,
};

const WAIT: Duration = Duration::from_secs(10);
/// Tweets read per stream: many times the pool's originals, so most are copies.
const TWEETS: usize = 400;

async fn start_load_mode(pooled_variants: usize) -> FirehoseHandle {
    start(FirehoseConfig {
        rate: f64::INFINITY,
        max_queue: 64,
        pooled_variants,
        control_message_rates: ControlMessageRates {
            delete: 0.05,
            ..ControlMessageRates::none()
        },
        ..config()
    })
    .await
}

/// What one stream delivered, message by message, up to its end.
#[derive(Default)]
struct Received {
    tweet_ids: Vec<u64>,
    deletes: u64,
    last: Option<Value>,
}

/// Checks one tweet as a client would: ids, times and the planted phrase agree.
fn check_tweet(tweet: &Value, phrase: &str) -> u64 {
    let id = tweet["id"].as_u64().expect("a numeric id");
    assert_eq!(tweet["id_str"].as_str(), Some(id.to_string().as_str()));
    let timestamp: u64 = tweet["timestamp_ms"]
        .as_str()
        .and_then(|t| t.parse().ok())
        .expect("timestamp_ms in digits");
    assert_eq!(
        tweet["created_at"].as_str(),
        Some(twitter_created_at((timestamp / 1000) as i64).as_str()),
        "created_at and timestamp_ms name the same second"
    );
    let text = searchable_text(tweet).join(" ").to_lowercase();
    assert!(
        phrase.split(' ').all(|term| text.contains(term)),
        "tweet {id} does not carry {phrase:?}: {tweet}"
    );
    id
}

/// Reads `TWEETS` tweets, then (once the caller has ordered the disconnect) everything up to
/// the end of the stream.
async fn read_some(stream: &mut Response, phrase: &str, into: &mut Received) {
    while into.tweet_ids.len() < TWEETS {
        let message = stream.next_json(WAIT).await.expect("messages keep coming");
        record(message, phrase, into);
    }
}

async fn read_to_end(stream: &mut Response, phrase: &str, into: &mut Received) {
    loop {
        match stream.next_json(WAIT).await {
            Ok(message) => record(message, phrase, into),
            Err(end) => {
                assert_eq!(end, End::Clean, "the stream ends with its last chunk");
                return;
            }
        }
    }
}

fn record(message: Value, phrase: &str, into: &mut Received) {
    if message.get("user").is_some() {
        into.tweet_ids.push(check_tweet(&message, phrase));
    } else if message.get("delete").is_some() {
        into.deletes += 1;
    }
    into.last = Some(message);
}

async fn streams_are_exact(pooled_variants: usize) {
    let handle = start_load_mode(pooled_variants).await;
    let phrases = ["alpha beta", "gamma"];
    let mut delimited = open(&handle, Connect::track(0, phrases[0]).length_delimited()).await;
    let mut newline = open(&handle, Connect::track(1, phrases[1])).await;
    let (mut first, mut second) = (Received::default(), Received::default());
    read_some(&mut delimited, phrases[0], &mut first).await;
    read_some(&mut newline, phrases[1], &mut second).await;

    assert_eq!(
        handle.inject(Fault::all(FaultKind::Disconnect { code: 10 })),
        2
    );
    read_to_end(&mut delimited, phrases[0], &mut first).await;
    read_to_end(&mut newline, phrases[1], &mut second).await;

    let stats = handle.stats();
    let mut seen = HashSet::new();
    for (received, conn) in [
        (&first, &stats.connections[0]),
        (&second, &stats.connections[1]),
    ] {
        let last = received.last.as_ref().expect("messages arrived");
        assert_eq!(
            last["disconnect"]["code"], 10,
            "the notice comes last: {last}"
        );
        assert_eq!(
            conn.tweet_ids, received.tweet_ids,
            "the ground truth lists exactly the tweets that arrived, in order"
        );
        assert_eq!(conn.tweet_ids_not_recorded, 0);
        assert_eq!(
            conn.count(MessageKind::Tweet),
            received.tweet_ids.len() as u64
        );
        assert_eq!(conn.count(MessageKind::Delete), received.deletes);
        assert!(
            received.tweet_ids.iter().all(|id| seen.insert(*id)),
            "every tweet has an id never sent before"
        );
    }
    assert!(
        first.deletes > 0,
        "compliance messages travel in the batches too"
    );
    handle.stop().await;
}

#[tokio::test]
async fn pooled_copies_stream_exactly() {
    streams_are_exact(2).await;
}

#[tokio::test]
async fn generated_tweets_stream_exactly_in_load_mode() {
    streams_are_exact(0).await;
}
