//! Bad rules in a real Redis: missing fields, wrong types, keys that are not hashes, megabyte
//! values, non-UTF-8 bytes, and 100,000 rules in one slot. The loader must name each bad rule
//! and still load every good one; the planner must split or report the huge slot as designed.
//!
//! Uses Redis DB 9 only, and slots whose id starts with `badrules-<pid>` so that nothing else in
//! that database is read or touched.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use redis::aio::MultiplexedConnection;
use traptor_actors::rule_store::load_all;
use traptor_core::plan::{plan, LeftOutReason};
use traptor_core::rules::{RuleProblem, SlotId, StreamType};

/// The test Redis, database 9.
fn redis_url_db9() -> String {
    let base = std::env::var("TRAPTOR_TEST_REDIS_URL").expect(
        "TRAPTOR_TEST_REDIS_URL is not set: run scripts/test.sh, or start the services with \
         `bash scripts/services.sh start && eval \"$(bash scripts/services.sh env)\"`",
    );
    let (scheme, rest) = base.split_once("://").unwrap();
    let authority = rest.split('/').next().unwrap();
    format!("{scheme}://{authority}/9")
}

/// The test's own connection. The client's default 500 ms response timeout is too short
/// for this file's bulk commands (`KEYS` over 100,000 keys, pipelines of 5,000 `HSET`s) on
/// a busy machine; the time limits this file checks are in the tests themselves.
async fn connect() -> MultiplexedConnection {
    let config = redis::AsyncConnectionConfig::new()
        .set_connection_timeout(Some(Duration::from_secs(10)))
        .set_response_timeout(Some(Duration::from_secs(60)));
    redis::Client::open(redis_url_db9())
        .unwrap()
        .get_multiplexed_async_connection_with_config(&config)
        .await
        .unwrap()
}

/// This run's slot-id prefix, and a cleanup of every key under it.
struct Prefix(String);

impl Prefix {
    fn new(test: &str) -> Prefix {
        Prefix(format!("badrules-{}-{test}", std::process::id()))
    }

    fn slot(&self, stream_type: StreamType) -> SlotId {
        SlotId::new(stream_type, self.0.clone())
    }

    fn wanted(&self) -> impl Fn(&SlotId) -> bool + '_ {
        move |slot: &SlotId| slot.id == self.0
    }

    async fn clean(&self, con: &mut MultiplexedConnection) {
        for stream_type in StreamType::ALL {
            let pattern = format!("{}*", self.slot(stream_type).rule_key_prefix());
            let keys: Vec<String> = redis::cmd("KEYS")
                .arg(&pattern)
                .query_async(con)
                .await
                .unwrap();
            for chunk in keys.chunks(1000) {
                let _: () = redis::cmd("DEL").arg(chunk).query_async(con).await.unwrap();
            }
        }
    }
}

async fn hset(con: &mut MultiplexedConnection, key: &str, fields: &[(&str, &[u8])]) {
    let mut cmd = redis::cmd("HSET");
    cmd.arg(key);
    for (name, value) in fields {
        cmd.arg(*name).arg(*value);
    }
    let _: () = cmd.query_async(con).await.unwrap();
}

#[tokio::test]
#[ignore = "needs Redis and Kafka: run scripts/test.sh"]
async fn bad_rules_are_named_and_good_ones_still_load() {
    let mut con = connect().await;
    let prefix = Prefix::new("mixed");
    prefix.clean(&mut con).await;
    let track = prefix.slot(StreamType::Track);
    let follow = prefix.slot(StreamType::Follow);
    let key = |slot: &SlotId, id: &str| format!("{}{id}", slot.rule_key_prefix());
    let megabyte = vec![b'a'; 1 << 20];
    let megabyte_words = "happy ".repeat(1 << 18).into_bytes();

    // Good rules, one with a 1 MB description (a value that is not the term may be huge).
    hset(
        &mut con,
        &key(&track, "1"),
        &[("rule_id", b"1"), ("value", b"happy"), ("tag", b"ok")],
    )
    .await;
    hset(
        &mut con,
        &key(&track, "2"),
        &[
            ("rule_id", b"2"),
            ("value", b"birthday"),
            ("description", &megabyte),
        ],
    )
    .await;
    hset(
        &mut con,
        &key(&follow, "3"),
        &[("rule_id", b"3"), ("value", b"17919972")],
    )
    .await;
    // Bad hashes.
    hset(&mut con, &key(&track, "10"), &[("value", b"no id")]).await;
    hset(&mut con, &key(&track, "11"), &[("rule_id", b"11")]).await;
    hset(
        &mut con,
        &key(&track, "12"),
        &[("rule_id", b"12"), ("value", b"x"), ("orig_type", b"bogus")],
    )
    .await;
    hset(
        &mut con,
        &key(&track, "13"),
        &[("rule_id", b"13"), ("value", &megabyte)],
    )
    .await;
    hset(
        &mut con,
        &key(&track, "14"),
        &[("rule_id", b"14"), ("value", &megabyte_words)],
    )
    .await;
    hset(
        &mut con,
        &key(&track, "15"),
        &[
            ("rule_id", b"15"),
            ("value", b"x"),
            ("orig_type", b"userid"),
        ],
    )
    .await;
    hset(
        &mut con,
        &key(&follow, "16"),
        &[("rule_id", b"16"), ("value", b"@screen_name")],
    )
    .await;
    hset(
        &mut con,
        &key(&follow, "17"),
        &[("rule_id", b"17"), ("value", &megabyte)],
    )
    .await;
    hset(
        &mut con,
        &key(&track, "18"),
        &[("rule_id", b"18"), ("value", b"a\0b")],
    )
    .await;
    // Keys of the rule shape that are not hashes of strings.
    let _: () = redis::cmd("SET")
        .arg(key(&track, "20"))
        .arg("a string")
        .query_async(&mut con)
        .await
        .unwrap();
    let _: () = redis::cmd("RPUSH")
        .arg(key(&track, "21"))
        .arg("a")
        .arg("list")
        .query_async(&mut con)
        .await
        .unwrap();
    let _: () = redis::cmd("SADD")
        .arg(key(&track, "22"))
        .arg("a set")
        .query_async(&mut con)
        .await
        .unwrap();
    let _: () = redis::cmd("SET")
        .arg(key(&track, "23"))
        .arg(&megabyte)
        .query_async(&mut con)
        .await
        .unwrap();

    let started = Instant::now();
    let loaded = load_all(&mut con, &prefix.wanted()).await;
    let took = started.elapsed();
    prefix.clean(&mut con).await;
    let loaded = loaded.expect("bad rules must not fail the whole load");
    assert!(took.as_secs() < 10, "loading took {took:?}");

    let tracks = &loaded[&track];
    let ids: Vec<&str> = tracks.rules.iter().map(|r| r.rule_id.as_str()).collect();
    assert_eq!(ids, ["1", "2"], "the good track rules load");
    assert_eq!(loaded[&follow].rules.len(), 1);

    let problem_of =
        |set: &traptor_core::RuleSet, id: Option<&str>, key_suffix: &str| -> RuleProblem {
            let error = set
                .errors
                .iter()
                .find(|e| {
                    e.rule_id.as_deref() == id
                        && e.source.as_deref().is_some_and(|s| s.ends_with(key_suffix))
                })
                .unwrap_or_else(|| {
                    panic!(
                        "no error for rule {id:?} ({key_suffix}) in {:?}",
                        set.errors
                    )
                });
            // The message names where the rule is, so an operator can find it.
            assert!(error.to_string().contains(key_suffix), "{error}");
            error.problem.clone()
        };
    assert_eq!(
        problem_of(tracks, None, ":10"),
        RuleProblem::MissingField("rule_id")
    );
    assert_eq!(
        problem_of(tracks, Some("11"), ":11"),
        RuleProblem::MissingField("value")
    );
    assert!(matches!(
        problem_of(tracks, Some("12"), ":12"),
        RuleProblem::UnknownType(_)
    ));
    assert!(matches!(
        problem_of(tracks, Some("13"), ":13"),
        RuleProblem::PhraseTooLong(_)
    ));
    assert!(matches!(
        problem_of(tracks, Some("14"), ":14"),
        RuleProblem::PhraseTooLong(_)
    ));
    assert!(matches!(
        problem_of(tracks, Some("15"), ":15"),
        RuleProblem::TypeMismatch { .. }
    ));
    assert!(matches!(
        problem_of(&loaded[&follow], Some("16"), ":16"),
        RuleProblem::NotAUserId(_)
    ));
    assert!(matches!(
        problem_of(&loaded[&follow], Some("17"), ":17"),
        RuleProblem::NotAUserId(_)
    ));
    assert_eq!(
        problem_of(tracks, Some("18"), ":18"),
        RuleProblem::PhraseHasControlCharacter
    );
    // Keys of the rule shape that are not hashes (20–23) are errors named by their key (they
    // have no readable rule id).
    for id in ["20", "21", "22", "23"] {
        assert!(!ids.contains(&id));
        let problem = problem_of(tracks, None, &format!(":{id}"));
        assert!(
            matches!(&problem, RuleProblem::Unreadable(why) if why.contains("not a hash")),
            "{id}: {problem:?}"
        );
    }
    assert_eq!(
        tracks.errors.len(),
        11,
        "{:#?}",
        tracks
            .errors
            .iter()
            .map(|e| e.to_string().chars().take(120).collect::<String>())
            .collect::<Vec<_>>()
    );
}

#[tokio::test]
#[ignore = "needs Redis and Kafka: run scripts/test.sh"]
async fn a_slot_of_100_000_rules_loads_and_is_split_or_reported() {
    const RULES: usize = 100_000;
    let mut con = connect().await;
    let prefix = Prefix::new("huge");
    prefix.clean(&mut con).await;
    let slot = prefix.slot(StreamType::Track);

    let started = Instant::now();
    for batch in (0..RULES).collect::<Vec<_>>().chunks(5_000) {
        let mut pipe = redis::pipe();
        for n in batch {
            pipe.cmd("HSET")
                .arg(format!("{}{n}", slot.rule_key_prefix()))
                .arg("rule_id")
                .arg(n.to_string())
                .arg("value")
                .arg(format!("phrase{n} word"))
                .arg("tag")
                .arg("bulk")
                .ignore();
        }
        let _: () = pipe.query_async(&mut con).await.unwrap();
    }
    let written = started.elapsed();

    let started = Instant::now();
    let loaded = load_all(&mut con, &prefix.wanted()).await;
    let load_time = started.elapsed();
    prefix.clean(&mut con).await;
    let loaded = loaded.unwrap();
    let set = &loaded[&slot];
    assert_eq!(set.rules.len(), RULES);
    assert!(set.errors.is_empty());
    // Rule-id order is numeric, whatever order SCAN returned the keys in.
    assert!(set
        .rules
        .windows(2)
        .all(|w| w[0].rule_id.parse::<u64>().unwrap() < w[1].rule_id.parse::<u64>().unwrap()));

    let slots: BTreeMap<SlotId, Vec<traptor_core::Rule>> =
        [(slot.clone(), set.rules.clone())].into();
    let per_connection = StreamType::Track.connection_limit();
    let needed = RULES.div_ceil(per_connection);

    // Enough keys: split over exactly the connections the limit requires.
    let keys: Vec<String> = (0..needed).map(|k| format!("key-{k}")).collect();
    let started = Instant::now();
    let enough = plan(&slots, &keys, None);
    let plan_time = started.elapsed();
    assert_eq!(enough.connections.len(), needed);
    assert!(enough.left_out.is_empty());
    assert!(enough
        .connections
        .iter()
        .all(|c| c.filter.len() <= per_connection));

    // Three keys: three connections' worth planned, the rest reported rule by rule.
    let few = plan(&slots, &["a".into(), "b".into(), "c".into()], None);
    assert_eq!(few.connections.len(), 3);
    let placed: usize = few.connections.iter().map(|c| c.rules.len()).sum();
    assert_eq!(placed, 3 * per_connection);
    assert_eq!(few.left_out.len(), RULES - placed);
    assert!(few
        .left_out
        .iter()
        .all(|l| !matches!(l.reason, LeftOutReason::WrongStreamType { .. })));
    let summary = few.summary();
    assert!(
        summary.len() < 64 * 1024,
        "the summary of a huge slot stays readable: {} bytes",
        summary.len()
    );

    println!(
        "100,000 rules in one slot: written in {written:?}, load_all in {load_time:?}, \
         planned over {needed} keys in {plan_time:?}"
    );
    assert!(load_time.as_secs() < 60, "load_all took {load_time:?}");
}

/// One hash holding a non-UTF-8 byte (e.g. Latin-1 text written by an old tool) is an error of
/// that key only: the other rules load. (It once failed `load_all` as a whole, because the
/// pipeline reply was converted in one go.)
#[tokio::test]
#[ignore = "needs Redis and Kafka: run scripts/test.sh"]
async fn a_non_utf8_rule_does_not_fail_the_whole_load() {
    let mut con = connect().await;
    let prefix = Prefix::new("latin1");
    prefix.clean(&mut con).await;
    let track = prefix.slot(StreamType::Track);
    let key = |id: &str| format!("{}{id}", track.rule_key_prefix());
    hset(
        &mut con,
        &key("1"),
        &[("rule_id", b"1"), ("value", b"happy")],
    )
    .await;
    hset(
        &mut con,
        &key("2"),
        &[("rule_id", b"2"), ("value", b"caf\xe9")],
    )
    .await;
    hset(
        &mut con,
        &key("3"),
        &[
            ("rule_id", b"3"),
            ("value", b"ok"),
            ("description", &[0xff][..]),
        ],
    )
    .await;
    let loaded = load_all(&mut con, &prefix.wanted()).await;
    prefix.clean(&mut con).await;
    let loaded = loaded.expect("one unreadable rule must not fail the whole load");
    let ids: Vec<&str> = loaded[&track]
        .rules
        .iter()
        .map(|r| r.rule_id.as_str())
        .collect();
    assert_eq!(ids, ["1"]);
    let errors: Vec<String> = loaded[&track]
        .errors
        .iter()
        .map(|e| e.to_string())
        .collect();
    assert!(
        errors
            .iter()
            .any(|e| e.contains(&key("2")) && e.contains("field `value` is not valid UTF-8")),
        "{errors:?}"
    );
    assert!(
        errors
            .iter()
            .any(|e| e.contains(&key("3")) && e.contains("field `description` is not valid UTF-8")),
        "{errors:?}"
    );
}
