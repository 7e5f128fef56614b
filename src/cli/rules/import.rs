//! `traptor rules import FILE`: writes the rules of a JSON-lines or CSV file to Redis. Each
//! rule is validated for the slot it goes to; bad lines are reported with their line number
//! and skipped, and the rest are written. Within the file a rule id counts once per slot (the
//! first line wins). One notice is published per slot touched.

use std::collections::{BTreeMap, HashMap};
use std::io::Read;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use traptor_actors::rule_store;
use traptor_core::rules::parse_rule;
use traptor_core::{Rule, SlotId, StreamType};

use super::connection::{block_on, connect, redis_failure, NotifyArgs, RedisArgs};
use super::input::{self, Format, InputRule, LineError};
use super::shard::{shard, Unplaced};
use super::{
    announce, copies_elsewhere, parse_slot, refused, warn_about_copies, write_stdout, SLOT_FIELD,
};

#[derive(Debug, clap::Args)]
pub struct Args {
    /// Rule hashes as JSON lines, or CSV with a header row of field names; `-` for stdin.
    #[arg(value_name = "FILE")]
    pub file: PathBuf,

    /// Default: csv for a .csv file, else jsonl.
    #[arg(long, value_enum)]
    pub format: Option<Format>,

    /// Put every rule in this slot `<type>:<id>`. Without --slot or --auto-slot, each rule's
    /// `_slot` field (as written by `traptor rules export`) decides.
    #[arg(long, value_parser = parse_slot, value_name = "TYPE:ID", conflicts_with = "auto_slot")]
    pub slot: Option<SlotId>,

    /// Spread the rules over slots of their type (rule_type, else orig_type) in rule-id order:
    /// the n-th rule of a type goes to id n / limit (limits: track 400, follow 5000, locations 25).
    #[arg(long)]
    pub auto_slot: bool,

    /// Validate and print what would be written, without touching Redis.
    #[arg(long)]
    pub dry_run: bool,

    #[command(flatten)]
    pub redis: RedisArgs,

    #[command(flatten)]
    pub notify: NotifyArgs,
}

/// How rules find their slot.
#[derive(Debug, Clone, PartialEq)]
enum Placement {
    Fixed(SlotId),
    Auto,
    FromSlotField,
}

/// The outcome of placing a file's rules.
#[derive(Debug, Default)]
struct Prepared {
    /// Rules to write, in slot then rule-id order.
    placed: Vec<Placed>,
    /// Lines skipped, and why.
    errors: Vec<LineError>,
    /// Rules written but paused (status not `active`), by line.
    paused: Vec<LineError>,
}

/// A rule ready to write, with the line it came from.
#[derive(Debug, Clone)]
struct Placed {
    slot: SlotId,
    rule: Rule,
    line: usize,
}

pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    let name = args.file.display().to_string();
    let text = read_input(&args.file)?;
    let format = Format::for_path(args.format, &args.file);
    let (rules, mut errors) = match input::read(&text, format) {
        Ok(read) => read,
        Err(error) => {
            return Ok(refused(format!(
                "{name} line {}: {}",
                error.line, error.message
            )))
        }
    };
    let placement = match (&args.slot, args.auto_slot) {
        (Some(slot), _) => Placement::Fixed(slot.clone()),
        (None, true) => Placement::Auto,
        (None, false) => Placement::FromSlotField,
    };
    let Prepared {
        placed,
        errors: placement_errors,
        paused,
    } = place(rules, &placement);
    errors.extend(placement_errors);
    errors.sort_by_key(|e| e.line);
    for error in &errors {
        eprintln!("{name} line {}: {}; skipped", error.line, error.message);
    }
    for note in &paused {
        eprintln!("{name} line {}: note: {}", note.line, note.message);
    }
    if placed.is_empty() {
        return Ok(refused(if errors.is_empty() {
            format!("no rules found in {name}")
        } else {
            format!(
                "nothing to import from {name}: every rule ({} line(s)) has an error",
                errors.len()
            )
        }));
    }
    let counts = per_slot_counts(&placed);

    if args.dry_run {
        let mut out = String::new();
        for p in &placed {
            let hash: serde_json::Map<String, serde_json::Value> = p
                .rule
                .fields
                .iter()
                .map(|(k, v)| (k.clone(), v.clone().into()))
                .collect();
            let key = rule_store::rule_key(&p.slot, &p.rule.rule_id);
            out.push_str(&format!(
                "would write {key} {}\n",
                serde_json::Value::Object(hash)
            ));
        }
        write_stdout(&out)?;
        eprintln!(
            "dry run: {} rule(s) valid for {counts}; {} line(s) skipped; nothing written",
            placed.len(),
            errors.len()
        );
        return Ok(ExitCode::SUCCESS);
    }

    let target = args.redis.target()?;
    block_on(async {
        let mut con = connect(&target).await?;
        let rules: Vec<(SlotId, Rule)> = placed
            .iter()
            .map(|p| (p.slot.clone(), p.rule.clone()))
            .collect();
        let report = rule_store::put_rules(&mut con, &rules)
            .await
            .context(redis_failure("writing the rules", &target))?;
        let replaced = report.updated.len() + report.replaced.len();
        let replaced = if replaced > 0 {
            format!(", {replaced} replacing a stored rule")
        } else {
            String::new()
        };
        println!(
            "imported {} rule(s) from {name} into {counts}{replaced}; {} line(s) skipped",
            report.written.len(),
            errors.len()
        );
        let ids: Vec<(SlotId, String)> = placed
            .iter()
            .map(|p| (p.slot.clone(), p.rule.rule_id.clone()))
            .collect();
        let copies = copies_elsewhere(&mut con, &ids)
            .await
            .context(redis_failure("looking for copies in other slots", &target))?;
        warn_about_copies(&copies);
        announce(&mut con, &args.notify, &report.slots).await?;
        Ok(ExitCode::SUCCESS)
    })?
}

fn read_input(path: &PathBuf) -> anyhow::Result<String> {
    if path.as_os_str() == "-" {
        let mut text = String::new();
        std::io::stdin()
            .read_to_string(&mut text)
            .context("cannot read the rules from stdin")?;
        return Ok(text);
    }
    std::fs::read_to_string(path).with_context(|| {
        format!(
            "cannot read {}; give a readable JSON-lines or CSV file of rules, or `-` for stdin",
            path.display()
        )
    })
}

/// Decides each rule's slot, validates it there, drops repeated rule ids, and (for
/// `--auto-slot`) shards. Returns the rules to write in slot then rule-id order.
fn place(rules: Vec<InputRule>, placement: &Placement) -> Prepared {
    let mut errors = Vec::new();
    let mut paused = Vec::new();
    let mut valid: Vec<Placed> = Vec::new();
    // (type, slot id or "" for auto, rule id) -> first line, to skip repeats.
    let mut first_line: HashMap<(StreamType, String, String), usize> = HashMap::new();
    for InputRule { line, mut fields } in rules {
        let slot_field = take_field(&mut fields, SLOT_FIELD);
        let fail = |message: String| LineError { line, message };
        let slot = match placement {
            Placement::Fixed(slot) => slot.clone(),
            Placement::FromSlotField => match slot_field.as_deref().map(parse_slot) {
                Some(Ok(slot)) => slot,
                Some(Err(message)) => {
                    errors.push(fail(format!("{SLOT_FIELD}: {message}")));
                    continue;
                }
                None => {
                    errors.push(fail(format!(
                        "no slot: give --slot TYPE:ID or --auto-slot, or a {SLOT_FIELD} field (e.g. \"track:0\")"
                    )));
                    continue;
                }
            },
            Placement::Auto => match parse_rule(fields.clone(), None) {
                // Validated for real below; the id is decided by sharding.
                Ok(rule) => SlotId::new(rule.stream_type, ""),
                Err(error) => {
                    errors.push(fail(error.to_string()));
                    continue;
                }
            },
        };
        let rule = match rule_store::validate_for_storage(&slot, fields) {
            Ok(storable) => {
                if let Some(status) = storable.inactive {
                    paused.push(LineError {
                        line,
                        message: format!(
                            "rule {} has status {status:?}: stored, but not collected",
                            storable.rule.rule_id
                        ),
                    });
                }
                storable.rule
            }
            Err(error) => {
                errors.push(fail(error.to_string()));
                continue;
            }
        };
        let identity = (slot.stream_type, slot.id.clone(), rule.rule_id.clone());
        if let Some(first) = first_line.get(&identity) {
            errors.push(fail(format!(
                "rule {} was already given on line {first}",
                rule.rule_id
            )));
            continue;
        }
        first_line.insert(identity, line);
        valid.push(Placed { slot, rule, line });
    }

    let mut placed = if *placement == Placement::Auto {
        let unplaced = valid
            .into_iter()
            .map(|p| Unplaced {
                stream_type: p.slot.stream_type,
                rule_id: p.rule.rule_id.clone(),
                item: p,
            })
            .collect();
        shard(unplaced)
            .into_iter()
            .map(|(slot, p)| Placed { slot, ..p })
            .collect()
    } else {
        valid
    };
    placed.sort_by(|a, b| {
        a.slot
            .cmp(&b.slot)
            .then_with(|| traptor_core::rules::compare_rule_ids(&a.rule.rule_id, &b.rule.rule_id))
            .then(a.line.cmp(&b.line))
    });
    Prepared {
        placed,
        errors,
        paused,
    }
}

/// Removes a field and returns its value.
fn take_field(fields: &mut Vec<(String, String)>, name: &str) -> Option<String> {
    let index = fields.iter().position(|(k, _)| k == name)?;
    Some(fields.remove(index).1)
}

/// `track:0 (400), track:1 (2)`.
fn per_slot_counts(placed: &[Placed]) -> String {
    let mut counts: BTreeMap<&SlotId, usize> = BTreeMap::new();
    for p in placed {
        *counts.entry(&p.slot).or_default() += 1;
    }
    counts
        .iter()
        .map(|(slot, n)| format!("{slot} ({n})"))
        .collect::<Vec<_>>()
        .join(", ")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rule(line: usize, pairs: &[(&str, &str)]) -> InputRule {
        InputRule {
            line,
            fields: pairs
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
        }
    }

    fn summary(placed: &[Placed]) -> Vec<String> {
        placed
            .iter()
            .map(|p| format!("{}/{}", p.slot, p.rule.rule_id))
            .collect()
    }

    #[test]
    fn a_fixed_slot_validates_with_its_type_and_reports_bad_lines() {
        let rules = vec![
            rule(1, &[("rule_id", "2"), ("value", "happy")]),
            rule(2, &[("rule_id", "3"), ("value", "a,b")]),
            rule(3, &[("rule_id", "1"), ("value", "x"), ("orig_type", "geo")]),
            rule(4, &[("rule_id", "2"), ("value", "again")]),
            rule(
                5,
                &[("rule_id", "1"), ("value", "sad"), ("_slot", "follow:9")],
            ),
        ];
        let Prepared { placed, errors, .. } = place(
            rules,
            &Placement::Fixed(SlotId::new(StreamType::Track, "0")),
        );
        assert_eq!(summary(&placed), ["track:0/1", "track:0/2"]);
        assert!(
            placed[0].rule.field("_slot").is_none(),
            "the slot field is never written"
        );
        let lines: Vec<usize> = errors.iter().map(|e| e.line).collect();
        assert_eq!(lines, [2, 3, 4]);
        assert!(errors[0].message.contains("comma"), "{errors:?}");
        assert!(errors[1].message.contains("locations rule"), "{errors:?}");
        assert!(
            errors[2].message.contains("already given on line 1"),
            "{errors:?}"
        );
    }

    #[test]
    fn paused_rules_are_written_with_a_note() {
        let rules = vec![rule(
            1,
            &[("rule_id", "1"), ("value", "happy"), ("status", "paused")],
        )];
        let Prepared {
            placed,
            errors,
            paused,
        } = place(
            rules,
            &Placement::Fixed(SlotId::new(StreamType::Track, "0")),
        );
        assert!(errors.is_empty(), "{errors:?}");
        assert_eq!(placed[0].rule.field("status"), Some("paused"));
        assert_eq!(paused[0].line, 1);
        assert!(paused[0].message.contains("not collected"), "{paused:?}");
    }

    #[test]
    fn without_flags_the_slot_field_decides() {
        let rules = vec![
            rule(
                1,
                &[
                    ("_slot", "follow:3"),
                    ("rule_id", "7"),
                    ("value", "17919972"),
                ],
            ),
            rule(2, &[("rule_id", "8"), ("value", "x")]),
            rule(3, &[("_slot", "track"), ("rule_id", "9"), ("value", "x")]),
            rule(4, &[("_slot", "track:1"), ("rule_id", "7"), ("value", "x")]),
        ];
        let Prepared { placed, errors, .. } = place(rules, &Placement::FromSlotField);
        assert_eq!(summary(&placed), ["track:1/7", "follow:3/7"]);
        assert_eq!(errors.iter().map(|e| e.line).collect::<Vec<_>>(), [2, 3]);
        assert!(errors[0].message.contains("no slot"), "{errors:?}");
    }

    #[test]
    fn auto_slot_shards_each_type_in_rule_id_order() {
        let mut rules: Vec<InputRule> = (0..27u32)
            .rev()
            .map(|i| {
                let id = (100 + i).to_string();
                rule(
                    i as usize + 1,
                    &[("rule_id", &id), ("value", "1,2,3,4"), ("orig_type", "geo")],
                )
            })
            .collect();
        rules.push(rule(
            40,
            &[("rule_id", "5"), ("value", "happy"), ("rule_type", "track")],
        ));
        rules.push(rule(41, &[("rule_id", "6"), ("value", "untyped")]));
        let Prepared { placed, errors, .. } = place(rules, &Placement::Auto);
        assert_eq!(errors.len(), 1);
        assert_eq!(errors[0].line, 41);
        assert!(
            errors[0].message.contains("rule_type (or orig_type)"),
            "{errors:?}"
        );
        let slots = summary(&placed);
        assert_eq!(slots[0], "track:0/5");
        assert_eq!(
            slots
                .iter()
                .filter(|s| s.starts_with("locations:0/"))
                .count(),
            25
        );
        assert_eq!(slots[1], "locations:0/100");
        assert_eq!(&slots[26..], ["locations:1/125", "locations:1/126"]);
    }
}
