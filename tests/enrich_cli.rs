//! `traptor enrich` run as a user would: the built binary on the original project's fixtures.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use serde_json::Value;

fn fixture_path(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/traptor-v4")
        .join(name)
}

/// A fixture compacted to one line (the fixtures are pretty-printed).
fn fixture_line(name: &str) -> String {
    let value: Value = serde_json::from_slice(&std::fs::read(fixture_path(name)).unwrap()).unwrap();
    value.to_string()
}

fn temp_file(name: &str, content: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("traptor-enrich-cli-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join(name);
    std::fs::write(&path, content).unwrap();
    path
}

fn traptor(args: &[&str], stdin: Option<&[u8]>) -> Output {
    let mut child = Command::new(env!("CARGO_BIN_EXE_traptor"))
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("the traptor binary runs");
    let mut input = child.stdin.take().unwrap();
    input.write_all(stdin.unwrap_or_default()).unwrap();
    drop(input);
    child.wait_with_output().unwrap()
}

fn rules_file() -> PathBuf {
    let rules = [
        fixture_line("track_rules.json"),
        fixture_line("follow_rules.json"),
        fixture_line("locations_rules.json"),
        r#"{"rule_id": "99", "value": "cnn", "rule_type": "follow", "tag": "bad"}"#.to_string(),
    ];
    temp_file("rules.jsonl", &(rules.join("\n") + "\n"))
}

fn tweets_file() -> PathBuf {
    let lines = [
        fixture_line("track_tweet.json"),
        fixture_line("follow_tweet.json"),
        fixture_line("locations_tweet.json"),
        fixture_line("no_match_tweet.json"),
        fixture_line("limit_message.json"),
        "{\"id_str\": \"1\", this is not json".to_string(),
        String::new(),
        fixture_line("delete_message.json"),
    ];
    temp_file("tweets.jsonl", &lines.join("\n"))
}

fn output_lines(output: &Output) -> Vec<Value> {
    String::from_utf8(output.stdout.clone())
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).expect("every output line is JSON"))
        .collect()
}

fn rule_ids(tweet: &Value) -> Vec<&str> {
    tweet["traptor"]["collection_rules"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["rule_id"].as_str().unwrap())
        .collect()
}

#[test]
fn enriches_the_fixtures_against_every_rule_and_reports_bad_lines_and_rules() {
    let output = traptor(
        &[
            "enrich",
            "--rules",
            rules_file().to_str().unwrap(),
            tweets_file().to_str().unwrap(),
        ],
        None,
    );
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "{stderr}");

    let lines = output_lines(&output);
    assert_eq!(
        lines.len(),
        6,
        "the bad line is skipped, the blank line is a keep-alive: {stderr}"
    );
    assert_eq!(rule_ids(&lines[0]), ["12347"]);
    assert_eq!(
        rule_ids(&lines[1]),
        ["12347", "12345"],
        "the follow tweet also says happy"
    );
    assert_eq!(rule_ids(&lines[2]), ["12346"]);
    assert_eq!(
        lines[2]["traptor_original"]["created_at_iso"],
        "2016-02-23T02:02:54+00:00"
    );
    assert!(rule_ids(&lines[3]).is_empty());
    assert_eq!(lines[3]["traptor"]["rule_tag"], "Not Found");
    assert_eq!(
        lines[0]["traptor"]["created_at_iso"],
        "2016-02-22T01:34:53+00:00"
    );
    assert_eq!(
        lines[4],
        serde_json::from_str::<Value>(&fixture_line("limit_message.json")).unwrap()
    );
    assert_eq!(
        lines[5],
        serde_json::from_str::<Value>(&fixture_line("delete_message.json")).unwrap()
    );

    assert!(stderr.contains("6 messages written"), "{stderr}");
    assert!(stderr.contains("4 tweet, 1 limit, 1 delete"), "{stderr}");
    assert!(stderr.contains("3 matched, 1 unmatched"), "{stderr}");
    assert!(
        stderr.contains("line 6: the message is not valid JSON"),
        "{stderr}"
    );
    assert!(stderr.contains("rules: 3 loaded, 1 rejected"), "{stderr}");
    assert!(
        stderr.contains("rule 99 (line 4): follow value \"cnn\" is not a numeric user id"),
        "{stderr}"
    );
    assert!(
        stderr.contains("rule 12347 (track \"happy\", tag \"test\"): 2 tweets"),
        "{stderr}"
    );
}

#[test]
fn reads_a_length_delimited_capture_from_stdin() {
    let mut capture = Vec::new();
    for name in ["track_tweet.json", "warning_message.json"] {
        let line = fixture_line(name) + "\r\n";
        capture.extend_from_slice(format!("{}\r\n", line.len()).as_bytes());
        capture.extend_from_slice(line.as_bytes());
        capture.extend_from_slice(b"\r\n");
    }
    let output = traptor(
        &[
            "enrich",
            "--rules",
            fixture_path("track_rules.json").to_str().unwrap(),
            "-",
        ],
        Some(&capture),
    );
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let lines = output_lines(&output);
    assert_eq!(lines.len(), 2);
    assert_eq!(rule_ids(&lines[0]), ["12347"]);
    assert!(lines[1].get("warning").is_some());
}

#[test]
fn unusable_arguments_fail_with_a_message_saying_what_to_do() {
    let missing_rules = traptor(&["enrich", "--rules", "/nonexistent/rules.json"], Some(b""));
    assert!(!missing_rules.status.success());
    let stderr = String::from_utf8_lossy(&missing_rules.stderr);
    assert!(
        stderr.contains("cannot read the rules file /nonexistent/rules.json"),
        "{stderr}"
    );

    let rules = fixture_path("track_rules.json");
    let missing_input = traptor(
        &[
            "enrich",
            "--rules",
            rules.to_str().unwrap(),
            "/nonexistent/tweets",
        ],
        None,
    );
    assert!(!missing_input.status.success());
    assert!(String::from_utf8_lossy(&missing_input.stderr)
        .contains("cannot open the input /nonexistent/tweets"));

    let no_rules_flag = traptor(&["enrich"], None);
    assert_eq!(no_rules_flag.status.code(), Some(2), "clap's usage error");
}
