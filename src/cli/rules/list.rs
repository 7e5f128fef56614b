//! `traptor rules list`: the stored rules, each with the supervisor's verdict, so a rule that
//! is silently not collected is seen.

use std::process::ExitCode;

use anyhow::Context;
use traptor_actors::rule_store::{self, StoredRules, UnreadableKey};
use traptor_core::SlotId;

use super::connection::{block_on, connect, redis_failure, RedisArgs};
use super::{parse_slot, write_stdout};

#[derive(Debug, clap::Args)]
pub struct Args {
    /// Only this slot `<type>:<id>` (repeatable); default: every slot.
    #[arg(long, value_parser = parse_slot, value_name = "TYPE:ID")]
    pub slot: Vec<SlotId>,

    /// One JSON object per rule: {"key", "slot", "valid", "error", "hash"}.
    #[arg(long)]
    pub json: bool,

    #[command(flatten)]
    pub redis: RedisArgs,
}

pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    let target = args.redis.target()?;
    let stored = block_on(async {
        let mut con = connect(&target).await?;
        let wanted = |slot: &SlotId| args.slot.is_empty() || args.slot.contains(slot);
        rule_store::scan_stored(&mut con, &wanted)
            .await
            .context(redis_failure("reading the rules", &target))
    })??;
    let text = if args.json {
        render_json(&stored)
    } else {
        render_table(&stored)
    };
    write_stdout(&text)?;
    if !args.json {
        let invalid = stored
            .hashes
            .iter()
            .filter(|h| h.validate().is_err())
            .count();
        let unreadable = stored.unreadable.len();
        eprintln!(
            "{} rule(s), {} not collected (invalid, paused or unreadable)",
            stored.hashes.len() + unreadable,
            invalid + unreadable
        );
    }
    Ok(ExitCode::SUCCESS)
}

/// What the VALIDATION column and the JSON `error` say of a key that cannot be read.
fn unreadable_verdict(key: &UnreadableKey) -> String {
    format!("key {} cannot be read: {}", key.key, key.reason)
}

/// One JSON line per stored key; an unreadable key has `"valid": false` and `"hash": null`.
fn render_json(stored: &StoredRules) -> String {
    let mut out = String::new();
    for key in &stored.unreadable {
        let line = serde_json::json!({
            "key": key.key,
            "slot": key.slot.to_string(),
            "valid": false,
            "error": unreadable_verdict(key),
            "hash": null,
        });
        out.push_str(&line.to_string());
        out.push('\n');
    }
    for hash in &stored.hashes {
        let error = hash.validate().err().map(|e| e.problem.to_string());
        let fields: serde_json::Map<String, serde_json::Value> = hash
            .fields
            .iter()
            .map(|(k, v)| (k.clone(), serde_json::Value::String(v.clone())))
            .collect();
        let line = serde_json::json!({
            "key": hash.key,
            "slot": hash.slot.to_string(),
            "valid": error.is_none(),
            "error": error,
            "hash": fields,
        });
        out.push_str(&line.to_string());
        out.push('\n');
    }
    out
}

/// Columns: slot, rule id, value, orig_type, tag, status, validation (ok, or the error).
/// Unreadable keys come first, so that they are not lost in a long listing.
fn render_table(stored: &StoredRules) -> String {
    let header = [
        "SLOT",
        "RULE_ID",
        "VALUE",
        "ORIG_TYPE",
        "TAG",
        "STATUS",
        "VALIDATION",
    ]
    .map(String::from);
    let unreadable = stored.unreadable.iter().map(|key| {
        let mut row = [(); 7].map(|_| "-".to_owned());
        row[0] = key.slot.to_string();
        row[6] = unreadable_verdict(key);
        row
    });
    let readable = stored.hashes.iter().map(|hash| {
        let field = |name: &str| {
            hash.field(name)
                .unwrap_or("-")
                .replace(['\n', '\r', '\t'], " ")
        };
        let verdict = match hash.validate() {
            Ok(_) => "ok".to_owned(),
            Err(error) => error.problem.to_string(),
        };
        [
            hash.slot.to_string(),
            hash.rule_id().map_or_else(|| "-".to_owned(), str::to_owned),
            field("value"),
            field("orig_type"),
            field("tag"),
            field("status"),
            verdict,
        ]
    });
    let rows: Vec<[String; 7]> = unreadable.chain(readable).collect();
    let mut widths = header.clone().map(|h| h.chars().count());
    for row in &rows {
        for (width, cell) in widths.iter_mut().zip(row) {
            *width = (*width).max(cell.chars().count());
        }
    }
    let mut out = String::new();
    for row in std::iter::once(&header).chain(&rows) {
        let mut line = String::new();
        for (i, (cell, width)) in row.iter().zip(widths).enumerate() {
            if i + 1 == row.len() {
                line.push_str(cell);
            } else {
                line.push_str(cell);
                line.extend(std::iter::repeat_n(' ', width - cell.chars().count() + 2));
            }
        }
        out.push_str(line.trim_end());
        out.push('\n');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use traptor_actors::rule_store::StoredHash;

    fn hash(key: &str, pairs: &[(&str, &str)]) -> StoredHash {
        StoredHash {
            key: key.into(),
            slot: SlotId::from_rule_key(key).unwrap(),
            fields: pairs
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
        }
    }

    #[test]
    fn the_table_shows_each_rule_with_its_verdict_in_aligned_columns() {
        let hashes = [
            hash(
                "traptor-follow:0:1",
                &[
                    ("rule_id", "1"),
                    ("value", "cnn"),
                    ("orig_type", "username"),
                ],
            ),
            hash(
                "traptor-track:0:12",
                &[
                    ("rule_id", "12"),
                    ("value", "happy"),
                    ("tag", "t"),
                    ("status", "active"),
                ],
            ),
        ];
        let stored = StoredRules {
            hashes: hashes.to_vec(),
            unreadable: vec![UnreadableKey {
                key: "traptor-track:0:13".into(),
                slot: SlotId::from_rule_key("traptor-track:0:13").unwrap(),
                reason: "it is not a hash of strings (wrong type)".into(),
            }],
        };
        let table = render_table(&stored);
        let lines: Vec<&str> = table.lines().collect();
        assert_eq!(lines.len(), 4);
        assert!(lines[0].starts_with("SLOT"));
        assert!(
            lines[1].starts_with("track:0")
                && lines[1].ends_with("key traptor-track:0:13 cannot be read: it is not a hash of strings (wrong type)"),
            "{table}"
        );
        assert!(
            lines[2].contains("cnn") && lines[2].contains("not a numeric user id"),
            "{table}"
        );
        assert!(lines[3].ends_with("ok"), "{table}");
        assert_eq!(lines[0].find("VALUE"), lines[2].find("cnn"), "{table}");
        assert_eq!(lines[0].find("VALUE"), lines[3].find("happy"), "{table}");
    }

    #[test]
    fn json_lines_carry_key_slot_verdict_and_the_hash() {
        let text = render_json(&StoredRules {
            hashes: vec![hash(
                "traptor-track:0:5",
                &[("rule_id", "5"), ("value", "a,b")],
            )],
            unreadable: vec![UnreadableKey {
                key: "traptor-track:0:6".into(),
                slot: SlotId::from_rule_key("traptor-track:0:6").unwrap(),
                reason: "the field `value` is not valid UTF-8".into(),
            }],
        });
        let lines: Vec<serde_json::Value> = text
            .lines()
            .map(|line| serde_json::from_str(line).unwrap())
            .collect();
        assert_eq!(lines.len(), 2, "{text}");
        assert_eq!(lines[0]["key"], "traptor-track:0:6");
        assert_eq!(lines[0]["valid"], false);
        assert!(lines[0]["error"]
            .as_str()
            .unwrap()
            .contains("not valid UTF-8"));
        assert!(lines[0]["hash"].is_null());
        let value = &lines[1];
        assert_eq!(value["key"], "traptor-track:0:5");
        assert_eq!(value["slot"], "track:0");
        assert_eq!(value["valid"], false);
        assert!(value["error"].as_str().unwrap().contains("comma"));
        assert_eq!(value["hash"]["value"], "a,b");
    }
}
