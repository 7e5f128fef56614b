//! `traptor rules list`: the stored rules, each with the supervisor's verdict, so a rule that
//! is silently not collected is seen.

use std::process::ExitCode;

use anyhow::Context;
use traptor_actors::rule_store::{self, StoredHash};
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
    let url = args.redis.resolved_url();
    let hashes = block_on(async {
        let mut con = connect(&url).await?;
        let wanted = |slot: &SlotId| args.slot.is_empty() || args.slot.contains(slot);
        rule_store::scan_hashes(&mut con, &wanted)
            .await
            .context(redis_failure("reading the rules", &url))
    })??;
    let text = if args.json {
        render_json(&hashes)
    } else {
        render_table(&hashes)
    };
    write_stdout(&text)?;
    if !args.json {
        let bad = hashes.iter().filter(|h| h.validate().is_err()).count();
        eprintln!(
            "{} rule(s), {bad} not collected (invalid or paused)",
            hashes.len()
        );
    }
    Ok(ExitCode::SUCCESS)
}

/// One JSON line per stored hash.
fn render_json(hashes: &[StoredHash]) -> String {
    let mut out = String::new();
    for hash in hashes {
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
fn render_table(hashes: &[StoredHash]) -> String {
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
    let rows: Vec<[String; 7]> = hashes
        .iter()
        .map(|hash| {
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
        })
        .collect();
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
        let table = render_table(&hashes);
        let lines: Vec<&str> = table.lines().collect();
        assert_eq!(lines.len(), 3);
        assert!(lines[0].starts_with("SLOT"));
        assert!(
            lines[1].contains("cnn") && lines[1].contains("not a numeric user id"),
            "{table}"
        );
        assert!(lines[2].ends_with("ok"), "{table}");
        assert_eq!(lines[0].find("VALUE"), lines[1].find("cnn"), "{table}");
        assert_eq!(lines[0].find("VALUE"), lines[2].find("happy"), "{table}");
    }

    #[test]
    fn json_lines_carry_key_slot_verdict_and_the_hash() {
        let text = render_json(&[hash(
            "traptor-track:0:5",
            &[("rule_id", "5"), ("value", "a,b")],
        )]);
        let value: serde_json::Value = serde_json::from_str(text.trim()).unwrap();
        assert_eq!(value["key"], "traptor-track:0:5");
        assert_eq!(value["slot"], "track:0");
        assert_eq!(value["valid"], false);
        assert!(value["error"].as_str().unwrap().contains("comma"));
        assert_eq!(value["hash"]["value"], "a,b");
    }
}
