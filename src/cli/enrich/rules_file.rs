//! Reads a file of rule hashes for `traptor enrich`: a JSON array of objects, a single object,
//! or JSON lines (one object per line).

use std::fmt;
use std::path::Path;

use anyhow::Context;
use serde_json::Value;
use traptor_core::rules::{fields_from_json, parse_rule, Rule, RuleError};

/// The rules of a file, in file order, and what was wrong with the others.
#[derive(Debug, Default)]
pub struct RulesFile {
    pub rules: Vec<Rule>,
    pub rejected: Vec<Rejected>,
}

/// A rule (or line) of the file that could not be used.
#[derive(Debug)]
pub enum Rejected {
    /// Where it is (`line 3` or `item 2`) and why the line is not JSON.
    NotJson {
        at: String,
        reason: String,
    },
    Invalid(RuleError),
}

impl fmt::Display for Rejected {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Rejected::NotJson { at, reason } => write!(f, "rule at {at}: not JSON ({reason})"),
            Rejected::Invalid(error) => error.fmt(f),
        }
    }
}

/// Loads `path`. Fails only when the file cannot be read; bad rules are listed in `rejected`.
pub fn load(path: &Path) -> anyhow::Result<RulesFile> {
    let text = std::fs::read_to_string(path).with_context(|| {
        format!(
            "cannot read the rules file {}; give a JSON or JSON-lines file of rule hashes",
            path.display()
        )
    })?;
    Ok(parse(&text))
}

/// Parses the text of a rules file (see the module doc for the accepted shapes).
pub fn parse(text: &str) -> RulesFile {
    let mut file = RulesFile::default();
    let entries: Vec<(String, Result<Value, String>)> = match serde_json::from_str::<Value>(text) {
        Ok(Value::Array(items)) => items
            .into_iter()
            .enumerate()
            .map(|(i, item)| (format!("item {}", i + 1), Ok(item)))
            .collect(),
        Ok(object @ Value::Object(_)) => vec![("item 1".to_string(), Ok(object))],
        _ => text
            .lines()
            .enumerate()
            .filter(|(_, line)| !line.trim().is_empty())
            .map(|(i, line)| {
                (
                    format!("line {}", i + 1),
                    serde_json::from_str(line).map_err(|e| e.to_string()),
                )
            })
            .collect(),
    };
    for (at, entry) in entries {
        let parsed = entry
            .map_err(|reason| Rejected::NotJson {
                at: at.clone(),
                reason,
            })
            .and_then(|value| {
                let fields = fields_from_json(&value).map_err(|problem| {
                    Rejected::Invalid(RuleError {
                        rule_id: None,
                        source: Some(at.clone()),
                        problem,
                    })
                })?;
                parse_rule(fields, None).map_err(|mut error| {
                    error.source = Some(at.clone());
                    Rejected::Invalid(error)
                })
            });
        match parsed {
            Ok(rule) => file.rules.push(rule),
            Err(rejected) => file.rejected.push(rejected),
        }
    }
    file
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_arrays_single_objects_and_json_lines() {
        let array = r#"[{"rule_id":"1","value":"a","rule_type":"track"},{"rule_id":"2","value":"5","rule_type":"follow"}]"#;
        assert_eq!(parse(array).rules.len(), 2);
        let single = "{\n \"rule_id\": 1,\n \"value\": \"a\",\n \"orig_type\": \"keyword\"\n}";
        assert_eq!(parse(single).rules.len(), 1);
        let lines = "{\"rule_id\":\"1\",\"value\":\"a\",\"rule_type\":\"track\"}\n\n{\"rule_id\":\"2\",\"value\":\"b\",\"rule_type\":\"track\"}\n";
        let ids: Vec<_> = parse(lines)
            .rules
            .iter()
            .map(|r| r.rule_id.clone())
            .collect();
        assert_eq!(ids, ["1", "2"]);
    }

    #[test]
    fn bad_rules_are_listed_with_where_they_are() {
        let lines = "{\"rule_id\":\"1\",\"value\":\"a\",\"rule_type\":\"track\"}\nnot json\n{\"rule_id\":\"3\",\"value\":\"cnn\",\"rule_type\":\"follow\"}\n[1]\n";
        let file = parse(lines);
        assert_eq!(file.rules.len(), 1);
        let messages: Vec<String> = file.rejected.iter().map(ToString::to_string).collect();
        assert!(
            messages[0].starts_with("rule at line 2: not JSON"),
            "{}",
            messages[0]
        );
        assert!(
            messages[1].starts_with("rule 3 (line 3): follow value \"cnn\""),
            "{}",
            messages[1]
        );
        assert!(
            messages[2].starts_with("rule at line 4: a rule must be an object"),
            "{}",
            messages[2]
        );
    }
}
