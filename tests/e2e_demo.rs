//! The README's demo: `traptor-supervisor --config config/demo.toml` prints enriched tweets to
//! stdout with no Redis, Kafka or network, and stops cleanly on SIGTERM.

mod e2e_common;

use std::collections::BTreeSet;
use std::time::Duration;

use e2e_common::{enriched_tweets, repo_root, Supervisor};

fn demo_with_tweets() -> Supervisor {
    let mut supervisor = Supervisor::start_with_file(&repo_root().join("config/demo.toml"), false);
    supervisor.wait_for(Duration::from_secs(30), "enriched tweets", |s| {
        !enriched_tweets(&s.stdout()).is_empty()
    });
    supervisor
}

#[test]
fn one_stop_request_delivered_twice_at_once_still_stops_cleanly() {
    let mut supervisor = demo_with_tweets();
    supervisor.signal_twice_at_once("TERM");
    let status = supervisor.wait_for_exit(Duration::from_secs(15));
    let stderr = supervisor.stderr();
    assert!(status.success(), "exit status {status}; stderr:\n{stderr}");
    assert!(
        stderr.contains("stopped cleanly") && !stderr.contains("exiting now"),
        "a clean stop, not a forced exit:\n{stderr}"
    );
}

#[test]
fn the_demo_prints_enriched_tweets_and_stops_cleanly_on_sigterm() {
    let mut supervisor = Supervisor::start_with_file(&repo_root().join("config/demo.toml"), false);
    supervisor.wait_for(
        Duration::from_secs(30),
        "enriched tweets from all three demo slots",
        |s| {
            let tweets = enriched_tweets(&s.stdout());
            let tags: BTreeSet<String> = tweets
                .iter()
                .flat_map(|t| {
                    t["traptor"]["collection_rules"]
                        .as_array()
                        .cloned()
                        .unwrap_or_default()
                })
                .filter_map(|rule| rule["rule_type"].as_str().map(str::to_owned))
                .collect();
            tags.len() == 3
        },
    );

    let status = supervisor.terminate(Duration::from_secs(15));
    assert!(
        status.success(),
        "exit status {status}; stderr:\n{}",
        supervisor.stderr()
    );

    let stdout = supervisor.stdout();
    // Every line on stdout is one JSON document (so `| jq .` works); logs go to stderr.
    for line in &stdout {
        assert!(
            serde_json::from_str::<serde_json::Value>(line).is_ok(),
            "not JSON on stdout: {line}"
        );
    }
    let tweets = enriched_tweets(&stdout);
    let mut matched = 0;
    for tweet in &tweets {
        let traptor = &tweet["traptor"];
        assert_eq!(
            traptor["id_str"], 0,
            "traptor.id_str is the slot id, as the original's: {tweet}"
        );
        let created = traptor["created_at_iso"].as_str().unwrap_or_default();
        assert!(
            created.ends_with("+00:00"),
            "created_at_iso in the original's offset form: {created}"
        );
        if let Some(rules) = traptor["collection_rules"]
            .as_array()
            .filter(|rules| !rules.is_empty())
        {
            matched += 1;
            for rule in rules {
                assert!(
                    rule["rule_id"].is_string() && rule["rule_tag"].is_string(),
                    "rule fields: {rule}"
                );
                assert!(
                    rule["rule_tag"].as_str().unwrap().starts_with("demo-"),
                    "{rule}"
                );
                assert_eq!(rule["rule_value"], rule["value"], "{rule}");
            }
        }
    }
    assert!(
        matched * 10 >= tweets.len() * 7,
        "most demo tweets match a rule: {matched} of {}",
        tweets.len()
    );
}
