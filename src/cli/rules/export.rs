//! `traptor rules export`: the stored rule hashes on stdout, each with its slot in the
//! `_slot` field, in the format `traptor rules import` reads back. Invalid rules are exported
//! too: an export is a faithful copy of what is stored. A key that cannot be read (not a hash,
//! or not UTF-8) cannot be copied: it is named on stderr and the exit status is 1.

use std::collections::BTreeSet;
use std::process::ExitCode;

use anyhow::Context;
use traptor_actors::rule_store::{self, StoredHash};
use traptor_core::SlotId;

use super::connection::{block_on, connect, redis_failure, RedisArgs};
use super::input::Format;
use super::{csv, parse_slot, write_stdout, SLOT_FIELD};

/// The original's fields, in the order its stored rules show them; other fields follow in
/// name order.
const KNOWN_FIELDS: [&str; 13] = [
    "rule_id",
    "value",
    "rule_type",
    "orig_type",
    "tag",
    "status",
    "description",
    "appid",
    "date_added",
    "project_id",
    "project_version_id",
    "campaign_id",
    "node_id",
];

#[derive(Debug, clap::Args)]
pub struct Args {
    /// Only this slot `<type>:<id>` (repeatable); default: every slot.
    #[arg(long, value_parser = parse_slot, value_name = "TYPE:ID")]
    pub slot: Vec<SlotId>,

    /// The output format (both carry each rule's slot in a `_slot` field).
    #[arg(long, value_enum, default_value = "jsonl")]
    pub format: Format,

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
    let text = match args.format {
        Format::Jsonl => to_jsonl(&stored.hashes),
        Format::Csv => to_csv(&stored.hashes),
    };
    write_stdout(&text)?;
    eprintln!("exported {} rule(s)", stored.hashes.len());
    if stored.unreadable.is_empty() {
        return Ok(ExitCode::SUCCESS);
    }
    // The export is incomplete: say which keys are missing and fail, so a backup script
    // notices instead of keeping a copy that silently lacks them.
    for key in &stored.unreadable {
        eprintln!(
            "error: key {} is NOT in the export: {}",
            key.key, key.reason
        );
    }
    eprintln!(
        "{} key(s) could not be read; fix or delete them (`redis-cli TYPE <key>`, `HGETALL <key>`) \
         and export again",
        stored.unreadable.len()
    );
    Ok(ExitCode::FAILURE)
}

/// One JSON object per rule: `_slot` first, then the hash's fields as stored.
pub fn to_jsonl(hashes: &[StoredHash]) -> String {
    let mut out = String::new();
    for hash in hashes {
        let mut object = serde_json::Map::new();
        object.insert(SLOT_FIELD.to_owned(), hash.slot.to_string().into());
        for (name, value) in &hash.fields {
            object.insert(name.clone(), value.clone().into());
        }
        out.push_str(&serde_json::Value::Object(object).to_string());
        out.push('\n');
    }
    out
}

/// A header of `_slot` and every field any rule has, then one row per rule.
pub fn to_csv(hashes: &[StoredHash]) -> String {
    let present: BTreeSet<&str> = hashes
        .iter()
        .flat_map(|h| h.fields.iter().map(|(k, _)| k.as_str()))
        .collect();
    let mut header: Vec<String> = vec![SLOT_FIELD.to_owned()];
    header.extend(
        KNOWN_FIELDS
            .iter()
            .filter(|name| present.contains(*name))
            .map(|name| name.to_string()),
    );
    header.extend(
        present
            .iter()
            .filter(|name| !KNOWN_FIELDS.contains(name))
            .map(|name| name.to_string()),
    );
    let rows: Vec<Vec<String>> = hashes
        .iter()
        .map(|hash| {
            header
                .iter()
                .map(|name| {
                    if name == SLOT_FIELD {
                        hash.slot.to_string()
                    } else {
                        hash.field(name).unwrap_or_default().to_owned()
                    }
                })
                .collect()
        })
        .collect();
    csv::write(&header, &rows)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cli::rules::input;

    fn hashes() -> Vec<StoredHash> {
        let hash = |key: &str, pairs: &[(&str, &str)]| StoredHash {
            key: key.into(),
            slot: SlotId::from_rule_key(key).unwrap(),
            fields: pairs
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
        };
        vec![
            hash(
                "traptor-track:0:1",
                &[
                    ("tag", "t"),
                    ("value", "a \"b\", c"),
                    ("rule_id", "1"),
                    ("zeta", "z"),
                ],
            ),
            hash(
                "traptor-follow:2:7",
                &[
                    ("rule_id", "7"),
                    ("value", "17919972"),
                    ("orig_type", "userid"),
                ],
            ),
        ]
    }

    /// What import reads back: for each rule, its fields sorted by name (the slot included).
    fn read_back(text: &str, format: Format) -> Vec<Vec<(String, String)>> {
        let (rules, errors) = input::read(text, format).unwrap();
        assert!(errors.is_empty(), "{errors:?}");
        rules
            .into_iter()
            .map(|r| {
                let mut fields = r.fields;
                fields.sort();
                fields
            })
            .collect()
    }

    #[test]
    fn both_formats_read_back_as_the_stored_hashes_with_their_slot() {
        let expected: Vec<Vec<(String, String)>> = hashes()
            .into_iter()
            .map(|h| {
                let mut fields = h.fields;
                fields.push((SLOT_FIELD.to_owned(), h.slot.to_string()));
                fields.sort();
                fields
            })
            .collect();
        assert_eq!(read_back(&to_jsonl(&hashes()), Format::Jsonl), expected);
        assert_eq!(read_back(&to_csv(&hashes()), Format::Csv), expected);
    }

    #[test]
    fn csv_columns_put_the_original_fields_first() {
        let text = to_csv(&hashes());
        assert_eq!(
            text.lines().next().unwrap(),
            "_slot,rule_id,value,orig_type,tag,zeta"
        );
    }
}
