//! `traptor rules` and `traptor plan`, run as the built binary against the real Redis.
//!
//! Every test works in Redis database 13 on slots of its own (unique ids), so tests run in
//! parallel and reruns never see each other's rules; each deletes its slots when done. Notices
//! go to a channel of its own.

mod support;

use std::collections::{BTreeSet, HashMap};
use std::io::Write;
use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use redis::Commands;

const DB: u32 = 13;

/// The test Redis, database [`DB`].
fn redis_url() -> String {
    support::redis_url_with_db(DB)
}

fn redis() -> redis::Connection {
    redis::Client::open(redis_url())
        .unwrap()
        .get_connection()
        .expect("connecting to the test Redis")
}

/// Slot ids no other test or run uses; their keys are deleted when the value is dropped.
struct Slots {
    ids: Vec<String>,
}

impl Slots {
    fn new(count: usize) -> Slots {
        static COUNTER: AtomicU32 = AtomicU32::new(0);
        let micros = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap()
            .as_micros()
            % 1_000_000_000_000;
        let ids = (0..count)
            .map(|_| format!("{micros}{:03}", COUNTER.fetch_add(1, Ordering::Relaxed)))
            .collect();
        Slots { ids }
    }

    fn id(&self, i: usize) -> &str {
        &self.ids[i]
    }
}

impl Drop for Slots {
    fn drop(&mut self) {
        let Ok(mut con) = redis::Client::open(redis_url()).and_then(|c| c.get_connection()) else {
            return;
        };
        for id in &self.ids {
            for stream_type in ["track", "follow", "locations"] {
                let keys: Vec<String> = con
                    .scan_match(format!("traptor-{stream_type}:{id}:*"))
                    .map(|i| i.filter_map(Result::ok).collect())
                    .unwrap_or_default();
                if !keys.is_empty() {
                    let _: redis::RedisResult<()> = con.del(keys);
                }
            }
        }
    }
}

/// Runs `traptor` with `args`, Redis from `$TRAPTOR_REDIS_URL` (as an operator would set it).
fn traptor(args: &[&str]) -> Output {
    traptor_with_stdin(args, None)
}

fn traptor_with_stdin(args: &[&str], stdin: Option<&str>) -> Output {
    let mut child = Command::new(env!("CARGO_BIN_EXE_traptor"))
        .args(args)
        .env("TRAPTOR_REDIS_URL", redis_url())
        .stdin(if stdin.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("running traptor");
    if let Some(text) = stdin {
        child
            .stdin
            .take()
            .unwrap()
            .write_all(text.as_bytes())
            .unwrap();
    }
    child.wait_with_output().unwrap()
}

fn stdout(output: &Output) -> String {
    String::from_utf8_lossy(&output.stdout).into_owned()
}

fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

#[track_caller]
fn assert_exit(output: &Output, code: i32) {
    assert_eq!(
        output.status.code(),
        Some(code),
        "exit status\nstdout:\n{}\nstderr:\n{}",
        stdout(output),
        stderr(output)
    );
}

fn hgetall(con: &mut redis::Connection, key: &str) -> HashMap<String, String> {
    con.hgetall(key).unwrap()
}

fn slot_keys(con: &mut redis::Connection, slot: &str) -> BTreeSet<String> {
    con.scan_match::<_, String>(format!("traptor-{slot}:*"))
        .unwrap()
        .collect::<Result<_, _>>()
        .expect("scanning the test Redis")
}

/// Every hash of a slot, keyed by its `rule_id` field.
fn slot_hashes(
    con: &mut redis::Connection,
    slot: &str,
) -> HashMap<String, HashMap<String, String>> {
    slot_keys(con, slot)
        .into_iter()
        .map(|key| {
            let hash = hgetall(con, &key);
            (hash["rule_id"].clone(), hash)
        })
        .collect()
}

fn unique_channel() -> String {
    format!("traptor-notify-test-{}", Slots::new(1).id(0))
}

/// A directory of this test's own under the system temp dir, removed when dropped.
struct TempDir(std::path::PathBuf);

impl TempDir {
    fn new() -> TempDir {
        let path = std::env::temp_dir().join(format!("traptor-rules-cli-{}", Slots::new(1).id(0)));
        std::fs::create_dir_all(&path).unwrap();
        TempDir(path)
    }

    fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn write_file(dir: &Path, name: &str, text: &str) -> String {
    let path = dir.join(name);
    std::fs::write(&path, text).unwrap();
    path.display().to_string()
}

#[test]
#[ignore = "needs Redis and Kafka: run scripts/test.sh"]
fn add_writes_the_original_hash_shape_lists_it_and_notifies() {
    let slots = Slots::new(1);
    let slot = format!("track:{}", slots.id(0));
    let channel = unique_channel();
    let client = redis::Client::open(redis_url()).unwrap();
    let mut subscriber = client.get_connection().unwrap();
    let mut pubsub = subscriber.as_pubsub();
    pubsub.subscribe(&channel).unwrap();
    pubsub
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();

    // The stored example of the original's tests (TestRuleExtract::test_track).
    let output = traptor(&[
        "rules",
        "add",
        "--slot",
        &slot,
        "--rule-id",
        "12347",
        "--value",
        "happy",
        "--orig-type",
        "keyword",
        "--tag",
        "test",
        "--field",
        "description=Tweets for a hashtag",
        "--field",
        "appid=test-appid",
        "--field",
        "date_added=2016-05-10 16:58:34",
        "--channel",
        &channel,
    ]);
    assert_exit(&output, 0);
    assert!(
        stdout(&output).contains("added rule 12347"),
        "{}",
        stdout(&output)
    );

    let message = pubsub.get_message().expect("the add publishes a notice");
    assert_eq!(message.get_channel_name(), channel);
    assert_eq!(message.get_payload::<String>().unwrap(), slot);
    drop(pubsub);

    let mut con = redis();
    let expected: HashMap<String, String> = [
        ("tag", "test"),
        ("value", "happy"),
        ("status", "active"),
        ("description", "Tweets for a hashtag"),
        ("appid", "test-appid"),
        ("date_added", "2016-05-10 16:58:34"),
        ("rule_type", "track"),
        ("orig_type", "keyword"),
        ("rule_id", "12347"),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v.to_owned()))
    .collect();
    assert_eq!(
        hgetall(&mut con, &format!("traptor-{slot}:12347")),
        expected
    );

    // Without --field date_added the tool stamps the current UTC time, in the same format.
    let output = traptor(&[
        "rules",
        "add",
        "--slot",
        &slot,
        "--rule-id",
        "7",
        "--value",
        "Sad Day",
        "--no-notify",
    ]);
    assert_exit(&output, 0);
    let stamped = hgetall(&mut con, &format!("traptor-{slot}:7"));
    let date = &stamped["date_added"];
    let shape: String = date
        .chars()
        .map(|c| if c.is_ascii_digit() { 'd' } else { c })
        .collect();
    assert_eq!(shape, "dddd-dd-dd dd:dd:dd", "{date}");
    assert_eq!(stamped["status"], "active");
    assert_eq!(stamped["rule_type"], "track");

    let output = traptor(&["rules", "list", "--slot", &slot]);
    assert_exit(&output, 0);
    let table = stdout(&output);
    let rows: Vec<&str> = table.lines().collect();
    assert_eq!(rows.len(), 3, "{table}");
    assert!(
        rows[1].contains("7") && rows[1].contains("Sad Day") && rows[1].ends_with("ok"),
        "{table}"
    );
    assert!(
        rows[2].contains("12347") && rows[2].contains("happy") && rows[2].contains("keyword"),
        "{table}"
    );

    let output = traptor(&["rules", "list", "--slot", &slot, "--json"]);
    let lines: Vec<serde_json::Value> = stdout(&output)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), 2);
    assert_eq!(lines[1]["key"], format!("traptor-{slot}:12347"));
    assert_eq!(lines[1]["valid"], true);
    assert_eq!(lines[1]["hash"]["appid"], "test-appid");
}

#[test]
#[ignore = "needs Redis and Kafka: run scripts/test.sh"]
fn a_bad_rule_is_refused_before_anything_is_written() {
    let slots = Slots::new(1);
    let slot = format!("follow:{}", slots.id(0));
    let output = traptor(&[
        "rules",
        "add",
        "--slot",
        &slot,
        "--rule-id",
        "20",
        "--value",
        "cnn",
        "--orig-type",
        "username",
    ]);
    assert_exit(&output, 2);
    let message = stderr(&output);
    assert!(
        message.contains("refused") && message.contains("\"cnn\" is not a numeric user id"),
        "{message}"
    );
    assert!(
        slot_keys(&mut redis(), &slot).is_empty(),
        "nothing was written"
    );

    // A rule of another type than its slot is refused too, naming where it belongs.
    let output = traptor(&[
        "rules",
        "add",
        "--slot",
        &slot,
        "--rule-id",
        "21",
        "--value",
        "happy",
        "--orig-type",
        "keyword",
    ]);
    assert_exit(&output, 2);
    assert!(
        stderr(&output).contains("traptor-track:<id>"),
        "{}",
        stderr(&output)
    );

    // A bad Redis rule written by another tool is listed with its error.
    let mut con = redis();
    let _: () = con
        .hset_multiple(
            format!("traptor-{slot}:22"),
            &[("rule_id", "22"), ("value", "@cnn")],
        )
        .unwrap();
    let output = traptor(&["rules", "list", "--slot", &slot]);
    assert!(
        stdout(&output).contains("not a numeric user id"),
        "{}",
        stdout(&output)
    );
}

#[test]
#[ignore = "needs Redis and Kafka: run scripts/test.sh"]
fn import_writes_good_lines_and_reports_bad_ones_by_line_number() {
    let slots = Slots::new(2);
    let (jsonl_slot, csv_slot) = (
        format!("track:{}", slots.id(0)),
        format!("track:{}", slots.id(1)),
    );
    let dir = TempDir::new();
    let jsonl = write_file(
        dir.path(),
        "rules.jsonl",
        concat!(
            "{\"rule_id\": 1, \"value\": \"happy\", \"orig_type\": \"keyword\", \"tag\": \"t\"}\n",
            "{not json\n",
            "{\"rule_id\": \"2\", \"value\": \"a,b\"}\n",
            "\n",
            "{\"rule_id\": \"3\", \"value\": \"summer\", \"orig_type\": \"hashtag\"}\n",
        ),
    );
    let output = traptor(&[
        "rules",
        "import",
        &jsonl,
        "--slot",
        &jsonl_slot,
        "--no-notify",
    ]);
    assert_exit(&output, 0);
    let report = stderr(&output);
    assert!(
        report.contains("rules.jsonl line 2: not valid JSON"),
        "{report}"
    );
    assert!(
        report.contains("rules.jsonl line 3: rule 2:") && report.contains("comma"),
        "{report}"
    );
    assert!(
        stdout(&output).contains("imported 2 rule(s)"),
        "{}",
        stdout(&output)
    );
    let stored = slot_hashes(&mut redis(), &jsonl_slot);
    assert_eq!(
        stored.keys().cloned().collect::<BTreeSet<_>>(),
        BTreeSet::from(["1".to_owned(), "3".to_owned()])
    );
    assert_eq!(stored["1"]["tag"], "t");
    assert_eq!(stored["1"]["rule_id"], "1", "numbers are stored as strings");

    let channel = unique_channel();
    let client = redis::Client::open(redis_url()).unwrap();
    let mut subscriber = client.get_connection().unwrap();
    let mut pubsub = subscriber.as_pubsub();
    pubsub.subscribe(&channel).unwrap();
    pubsub
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let csv = write_file(
        dir.path(),
        "rules.csv",
        "rule_id,value,orig_type,description\n10,ten,keyword,\"commas, and \"\"quotes\"\"\"\n11,x,keyword,too,many\n12,-1,userid,\n13,twelve,,\n",
    );
    let output = traptor(&[
        "rules",
        "import",
        &csv,
        "--slot",
        &csv_slot,
        "--channel",
        &channel,
    ]);
    assert_exit(&output, 0);
    let report = stderr(&output);
    assert!(
        report.contains("rules.csv line 3: 5 cells but the header names 4"),
        "{report}"
    );
    assert!(
        report.contains("rules.csv line 4: rule 12:") && report.contains("follow rule"),
        "{report}"
    );
    let stored = slot_hashes(&mut redis(), &csv_slot);
    assert_eq!(stored.len(), 2, "{stored:?}");
    assert_eq!(stored["10"]["description"], "commas, and \"quotes\"");
    assert!(
        !stored["13"].contains_key("orig_type"),
        "empty cells are left out"
    );
    let notice = pubsub.get_message().expect("one notice for the slot");
    assert_eq!(notice.get_payload::<String>().unwrap(), csv_slot);

    // Nothing importable: refused.
    let bad = write_file(
        dir.path(),
        "bad.jsonl",
        "{\"rule_id\": \"1\", \"value\": \"\"}\n",
    );
    let output = traptor(&["rules", "import", &bad, "--slot", &csv_slot]);
    assert_exit(&output, 2);
    assert!(
        stderr(&output).contains("nothing to import"),
        "{}",
        stderr(&output)
    );

    // --auto-slot in rule-id order, shown without writing.
    let auto = write_file(
        dir.path(),
        "auto.jsonl",
        &(1..=27)
            .rev()
            .map(|i| format!("{{\"rule_id\": \"{i}\", \"value\": \"-10,-10,10,10\", \"orig_type\": \"geo\"}}\n"))
            .collect::<String>(),
    );
    let output = traptor(&["rules", "import", &auto, "--auto-slot", "--dry-run"]);
    assert_exit(&output, 0);
    let planned = stdout(&output);
    assert!(
        planned.contains("would write traptor-locations:0:25 "),
        "{planned}"
    );
    assert!(
        planned.contains("would write traptor-locations:1:26 "),
        "{planned}"
    );
    assert!(
        planned.contains("would write traptor-locations:1:27 "),
        "{planned}"
    );
}

#[test]
#[ignore = "needs Redis and Kafka: run scripts/test.sh"]
fn export_then_import_restores_the_same_hashes() {
    for format in ["jsonl", "csv"] {
        let slots = Slots::new(2);
        let (track, follow) = (
            format!("track:{}", slots.id(0)),
            format!("follow:{}", slots.id(1)),
        );
        let mut con = redis();
        // One rule by this tool, one keyed by index as the original's rule_extract.py wrote them.
        let output = traptor(&[
            "rules",
            "add",
            "--slot",
            &track,
            "--rule-id",
            "5",
            "--value",
            "happy",
            "--tag",
            "a, \"b\"",
            "--field",
            "description=two\nlines",
            "--no-notify",
        ]);
        assert_exit(&output, 0);
        let _: () = con
            .hset_multiple(
                format!("traptor-{follow}:0"),
                &[
                    ("rule_id", "9"),
                    ("value", "17919972"),
                    ("orig_type", "userid"),
                    ("node_id", "None"),
                ],
            )
            .unwrap();
        let before = (
            slot_hashes(&mut con, &track),
            slot_hashes(&mut con, &follow),
        );

        let output = traptor(&[
            "rules", "export", "--slot", &track, "--slot", &follow, "--format", format,
        ]);
        assert_exit(&output, 0);
        let exported = stdout(&output);
        let removed = traptor(&[
            "rules",
            "remove",
            "--slot",
            &track,
            "--rule-id",
            "5",
            "--no-notify",
        ]);
        assert_exit(&removed, 0);
        let removed = traptor(&[
            "rules",
            "remove",
            "--slot",
            &follow,
            "--rule-id",
            "9",
            "--no-notify",
        ]);
        assert_exit(&removed, 0);
        assert!(slot_keys(&mut con, &track).is_empty() && slot_keys(&mut con, &follow).is_empty());

        let output = traptor_with_stdin(
            &["rules", "import", "-", "--format", format, "--no-notify"],
            Some(&exported),
        );
        assert_exit(&output, 0);
        let after = (
            slot_hashes(&mut con, &track),
            slot_hashes(&mut con, &follow),
        );
        assert_eq!(after, before, "{format}: {exported}");
        assert_eq!(
            slot_keys(&mut con, &follow),
            BTreeSet::from([format!("traptor-{follow}:9")]),
            "re-imported under its rule id"
        );
    }
}

#[test]
#[ignore = "needs Redis and Kafka: run scripts/test.sh"]
fn remove_deletes_the_rule_and_notifies() {
    let slots = Slots::new(1);
    let slot = format!("locations:{}", slots.id(0));
    let channel = unique_channel();
    let mut con = redis();
    let output = traptor(&[
        "rules",
        "add",
        "--slot",
        &slot,
        "--rule-id",
        "1",
        "--value",
        "-125.551758,24.726875,-66.401367,49.439557",
        "--orig-type",
        "geo",
        "--no-notify",
    ]);
    assert_exit(&output, 0);
    // Index-keyed by the original's rule_extract.py: found by its rule_id field.
    let _: () = con
        .hset_multiple(
            format!("traptor-{slot}:0"),
            &[("rule_id", "2"), ("value", "-122.75,36.8,-121.75,37.8")],
        )
        .unwrap();

    let client = redis::Client::open(redis_url()).unwrap();
    let mut subscriber = client.get_connection().unwrap();
    let mut pubsub = subscriber.as_pubsub();
    pubsub.subscribe(&channel).unwrap();
    pubsub
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    for rule_id in ["1", "2"] {
        let output = traptor(&[
            "rules",
            "remove",
            "--slot",
            &slot,
            "--rule-id",
            rule_id,
            "--channel",
            &channel,
        ]);
        assert_exit(&output, 0);
        assert_eq!(
            pubsub
                .get_message()
                .unwrap()
                .get_payload::<String>()
                .unwrap(),
            slot
        );
    }
    assert!(slot_keys(&mut con, &slot).is_empty());

    let output = traptor(&["rules", "remove", "--slot", &slot, "--rule-id", "1"]);
    assert_exit(&output, 1);
    assert!(
        stderr(&output).contains("has no rule 1"),
        "{}",
        stderr(&output)
    );
}

#[test]
#[ignore = "needs Redis and Kafka: run scripts/test.sh"]
fn plan_shows_the_split_of_an_over_limit_slot_and_the_rules_left_out() {
    let slots = Slots::new(2);
    let (big, small) = (
        format!("track:{}", slots.id(0)),
        format!("track:{}", slots.id(1)),
    );
    let dir = TempDir::new();
    let rules: String = (1..=401)
        .map(|i| {
            format!(
                "{{\"rule_id\": \"{i}\", \"value\": \"word{i}\", \"orig_type\": \"keyword\"}}\n"
            )
        })
        .collect();
    let file = write_file(dir.path(), "big.jsonl", &rules);
    assert_exit(
        &traptor(&["rules", "import", &file, "--slot", &big, "--no-notify"]),
        0,
    );
    assert_exit(
        &traptor(&[
            "rules",
            "add",
            "--slot",
            &small,
            "--rule-id",
            "1",
            "--value",
            "solo",
            "--no-notify",
        ]),
        0,
    );
    let _: () = redis()
        .hset_multiple(
            format!("traptor-{small}:2"),
            &[("rule_id", "2"), ("value", "a,b")],
        )
        .unwrap();

    let key = |n: u32| {
        format!(
            "[[keys]]\nname = \"key-{n}\"\nconsumer_key = \"ck{n}\"\nconsumer_secret = \"cs{n}\"\n\
             access_token = \"at{n}\"\naccess_token_secret = \"as{n}\"\n"
        )
    };
    let config = format!(
        "slots = [\"{big}\", \"{small}\"]\n[redis]\nurl = \"redis://127.0.0.1:1/0\"\n[sink]\nkind = \"stdout\"\n{}{}",
        key(1),
        key(2)
    );
    let config = write_file(dir.path(), "cluster.toml", &config);
    let redis_flag = redis_url();
    let output = traptor(&["plan", "--config", &config, "--redis", &redis_flag]);
    assert_exit(&output, 0);
    let text = stdout(&output);
    let row = |connection: &str| {
        text.lines()
            .find(|line| line.split_whitespace().next() == Some(connection))
            .unwrap_or_else(|| panic!("no row for {connection}:\n{text}"))
            .split_whitespace()
            .map(str::to_owned)
            .collect::<Vec<_>>()
    };
    // The first parts of both slots get the two keys; the over-limit part gets none.
    assert_eq!(row(&big), [big.as_str(), "key-1", "400", "400"]);
    assert_eq!(row(&small), [small.as_str(), "key-2", "1", "1"]);
    assert!(text.contains("rules left out: 1"), "{text}");
    assert!(
        text.contains(&format!("{big}: 1 rule(s) (ids 401)")),
        "{text}"
    );
    assert!(text.contains("extra connection (part 1)"), "{text}");
    assert!(
        text.contains(&format!("rule 2 (traptor-{small}:2)")) && text.contains("comma"),
        "{text}"
    );

    let output = traptor(&[
        "plan",
        "--config",
        &config,
        "--redis",
        &redis_flag,
        "--json",
    ]);
    assert_exit(&output, 0);
    let plan: serde_json::Value = serde_json::from_str(&stdout(&output)).unwrap();
    assert_eq!(plan["connections"].as_array().unwrap().len(), 2);
    assert_eq!(plan["left_out"][0]["rule_id"], "401");
    assert_eq!(plan["rule_errors"][0]["rule_id"], "2");
    assert_eq!(plan["unused_keys"].as_array().unwrap().len(), 0);
}

/// A key that is not a readable rule hash (a string under a rule's name, a field of raw bytes)
/// is listed with the reason, and an export that cannot copy it says so and fails.
#[test]
#[ignore = "needs Redis and Kafka: run scripts/test.sh"]
fn unreadable_keys_are_listed_and_fail_an_export() {
    let slots = Slots::new(1);
    let track = format!("track:{}", slots.id(0));
    let mut con = redis();
    let output = traptor(&[
        "rules",
        "add",
        "--slot",
        &track,
        "--rule-id",
        "1",
        "--value",
        "happy",
        "--no-notify",
    ]);
    assert_exit(&output, 0);
    let not_a_hash = format!("traptor-{track}:2");
    let _: () = con.set(&not_a_hash, "happy").unwrap();
    let raw_bytes = format!("traptor-{track}:3");
    let _: () = con
        .hset_multiple(
            &raw_bytes,
            &[("rule_id", &b"3"[..]), ("value", &b"caf\xe9"[..])],
        )
        .unwrap();

    let output = traptor(&["rules", "list", "--slot", &track]);
    assert_exit(&output, 0);
    let table = stdout(&output);
    assert!(
        table.contains(&format!(
            "key {not_a_hash} cannot be read: it is not a hash"
        )),
        "{table}"
    );
    assert!(
        table.contains(&format!("key {raw_bytes} cannot be read"))
            && table.contains("`value` is not valid UTF-8"),
        "{table}"
    );
    assert!(table.contains("happy"), "{table}");
    assert!(
        stderr(&output).contains("3 rule(s), 2 not collected"),
        "{}",
        stderr(&output)
    );

    let output = traptor(&["rules", "list", "--slot", &track, "--json"]);
    assert_exit(&output, 0);
    let lines: Vec<serde_json::Value> = stdout(&output)
        .lines()
        .map(|line| serde_json::from_str(line).unwrap())
        .collect();
    assert_eq!(lines.len(), 3);
    assert_eq!(
        lines.iter().filter(|line| line["hash"].is_null()).count(),
        2
    );

    let output = traptor(&["rules", "export", "--slot", &track]);
    assert_exit(&output, 1);
    assert_eq!(
        stdout(&output).lines().count(),
        1,
        "the readable rule is exported"
    );
    let errors = stderr(&output);
    assert!(
        errors.contains(&format!("key {not_a_hash} is NOT in the export"))
            && errors.contains(&format!("key {raw_bytes} is NOT in the export")),
        "{errors}"
    );
}

#[test]
fn an_empty_redis_url_is_named_as_empty() {
    // Typically `--redis "$VAR"` with VAR unset; needs no Redis.
    let output = Command::new(env!("CARGO_BIN_EXE_traptor"))
        .args(["rules", "list", "--redis", ""])
        .stdin(Stdio::null())
        .output()
        .expect("running traptor");
    assert_exit(&output, 1);
    let text = stderr(&output);
    assert!(text.contains("the Redis URL is empty"), "{text}");
    assert!(text.contains("TRAPTOR_REDIS_URL"), "{text}");
}
