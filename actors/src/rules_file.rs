//! Rules from a JSON file instead of Redis: for the demo and for a cluster without Redis.
//!
//! The file maps each slot `<type>:<id>` to its rules, every rule an object in the original's
//! Redis hash shape (the fields `add_rules.py` wrote):
//!
//! ```json
//! {
//!   "track:0": [
//!     {"rule_id": "1", "tag": "demo", "value": "rust", "orig_type": "keyword", "rule_type": "track", "status": "active"}
//!   ],
//!   "follow:0": [ {"rule_id": "2", "tag": "demo", "value": "17919972", "orig_type": "userid"} ]
//! }
//! ```
//!
//! A plain array of rules is accepted too: each goes to slot `<rule_type>:0` (the type taken
//! from `rule_type`, else `orig_type`). The file is read at start and again on SIGHUP; the
//! supervisor then gets the same messages the Redis watcher sends.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use actix::prelude::*;
use serde_json::Value;
use traptor_core::rules::{fields_from_json, parse_rule, RuleError};
use traptor_core::{RuleSet, SlotId, StreamType};

use crate::watcher::{RuleTargets, RuleTracker, SlotFilter};

/// Why a rules file could not be used at all (single bad rules are reported per rule instead).
#[derive(Debug, thiserror::Error)]
pub enum RulesFileError {
    #[error("cannot read the rules file {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("the rules file {path} is not valid JSON: {source}")]
    Json {
        path: PathBuf,
        source: serde_json::Error,
    },
    #[error(
        "the rules file {path}: {what}; expected an object mapping \"<type>:<id>\" (e.g. \"track:0\") \
         to a list of rule objects, or a list of rule objects"
    )]
    Shape { path: PathBuf, what: String },
}

/// Reads and parses a rules file into slots.
pub fn load_rules_file(path: &Path) -> Result<BTreeMap<SlotId, RuleSet>, RulesFileError> {
    let text = std::fs::read_to_string(path).map_err(|source| RulesFileError::Read {
        path: path.into(),
        source,
    })?;
    parse_rules_file(&text, path)
}

/// Parses the text of a rules file; `path` names it in errors.
pub fn parse_rules_file(
    text: &str,
    path: &Path,
) -> Result<BTreeMap<SlotId, RuleSet>, RulesFileError> {
    let document: Value = serde_json::from_str(text).map_err(|source| RulesFileError::Json {
        path: path.into(),
        source,
    })?;
    let shape = |what: String| RulesFileError::Shape {
        path: path.into(),
        what,
    };
    // Per slot: the rule objects to parse, and the entries that are not even objects.
    let mut grouped: BTreeMap<SlotId, (Vec<Hash>, Vec<RuleError>)> = BTreeMap::new();
    match &document {
        Value::Object(by_slot) => {
            for (name, rules) in by_slot {
                let slot = SlotId::from_notice(name)
                    .filter(|slot| name.trim() == slot.to_string())
                    .ok_or_else(|| {
                        shape(format!("{name:?} is not a slot name like \"track:0\""))
                    })?;
                let Value::Array(rules) = rules else {
                    return Err(shape(format!("the rules of {name:?} are not a list")));
                };
                let (hashes, errors) = grouped.entry(slot).or_default();
                for (i, rule) in rules.iter().enumerate() {
                    match rule_hash(rule, format!("{name}[{i}]")) {
                        Ok(hash) => hashes.push(hash),
                        Err(error) => errors.push(error),
                    }
                }
            }
        }
        Value::Array(rules) => {
            for (i, rule) in rules.iter().enumerate() {
                // The rule's own type decides its slot; without one it cannot be placed, and
                // its error is reported under track:0 so that it is seen.
                let typed = rule_hash(rule, format!("[{i}]")).and_then(|hash| {
                    let stream_type = parse_rule(hash.1.clone(), None)
                        .map_err(|mut e| {
                            e.source = hash.0.clone();
                            e
                        })?
                        .stream_type;
                    Ok((SlotId::new(stream_type, "0"), hash))
                });
                match typed {
                    Ok((slot, hash)) => grouped.entry(slot).or_default().0.push(hash),
                    Err(error) => grouped
                        .entry(SlotId::new(StreamType::Track, "0"))
                        .or_default()
                        .1
                        .push(error),
                }
            }
        }
        _ => {
            return Err(shape(
                "the top level is neither an object nor a list".into(),
            ))
        }
    }
    Ok(grouped
        .into_iter()
        .map(|(slot, (hashes, shape_errors))| {
            let mut set = RuleSet::from_hashes(hashes, Some(slot.stream_type));
            set.errors.extend(shape_errors);
            (slot, set)
        })
        .collect())
}

/// A rule's source (where it is in the file) and its fields.
type Hash = (Option<String>, Vec<(String, String)>);

/// One rule object as `(source, fields)`, or the error naming where it is.
fn rule_hash(rule: &Value, source: String) -> Result<Hash, RuleError> {
    match fields_from_json(rule) {
        Ok(fields) => Ok((Some(source), fields)),
        Err(problem) => Err(RuleError {
            rule_id: rule
                .get("rule_id")
                .map(traptor_core::rules::field_to_string),
            source: Some(source),
            problem,
        }),
    }
}

/// Re-reads the file on SIGHUP.
#[derive(Debug, Clone, Copy, Message)]
#[rtype(result = "()")]
pub struct ReloadRules;

/// The file rule source: sends a [`crate::messages::RulesSnapshot`] at start and after
/// every reload, and a `RulesChanged` for each slot a reload changed.
pub struct RulesFile {
    path: PathBuf,
    wanted: SlotFilter,
    targets: RuleTargets,
    tracker: RuleTracker,
}

impl RulesFile {
    pub fn new(path: PathBuf, wanted: SlotFilter, targets: RuleTargets) -> Self {
        RulesFile {
            path,
            wanted,
            targets,
            tracker: RuleTracker::new(),
        }
    }

    fn reload(&mut self) {
        let loaded = match load_rules_file(&self.path) {
            Ok(loaded) => loaded,
            Err(e) => {
                let (slots, rules) = self.tracker.counts();
                tracing::error!(
                    "{e}; keeping the last loaded rules ({slots} slots, {rules} rules)"
                );
                return;
            }
        };
        let loaded: BTreeMap<SlotId, RuleSet> = loaded
            .into_iter()
            .filter(|(slot, _)| (self.wanted)(slot))
            .collect();
        let (changed, snapshot) = self.tracker.replace_all(loaded);
        let (slots, rules) = self.tracker.counts();
        tracing::info!(path = %self.path.display(), slots, rules, changed = changed.len(), "rules loaded from file");
        self.targets.snapshot.do_send(snapshot);
    }
}

impl Actor for RulesFile {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Self::Context) {
        self.reload();
        #[cfg(unix)]
        {
            let me = ctx.address();
            ctx.spawn(
                async move {
                    use tokio::signal::unix::{signal, SignalKind};
                    let Ok(mut hangups) = signal(SignalKind::hangup()) else {
                        tracing::warn!(
                            "cannot listen for SIGHUP; the rules file is read only at start"
                        );
                        return;
                    };
                    while hangups.recv().await.is_some() {
                        tracing::info!("SIGHUP: reloading the rules file");
                        if me.send(ReloadRules).await.is_err() {
                            return;
                        }
                    }
                }
                .into_actor(self),
            );
        }
    }
}

impl Handler<ReloadRules> for RulesFile {
    type Result = ();
    fn handle(&mut self, _: ReloadRules, _: &mut Self::Context) {
        self.reload();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<BTreeMap<SlotId, RuleSet>, RulesFileError> {
        parse_rules_file(text, Path::new("rules.json"))
    }

    #[test]
    fn slots_map_to_rules_in_the_original_hash_shape() {
        let slots = parse(
            r#"{"track:0": [{"rule_id": 12, "value": "Rust", "tag": "demo", "orig_type": "keyword"},
                            {"rule_id": "3", "value": "actix"}],
                "follow:1": [{"rule_id": "7", "value": "17919972", "orig_type": "userid"}]}"#,
        )
        .unwrap();
        let track = &slots[&SlotId::new(StreamType::Track, "0")];
        let ids: Vec<_> = track.rules.iter().map(|r| r.rule_id.as_str()).collect();
        assert_eq!(
            ids,
            ["3", "12"],
            "sorted by rule id, numeric ids read as strings"
        );
        assert_eq!(track.rules[1].field("tag"), Some("demo"));
        assert_eq!(slots[&SlotId::new(StreamType::Follow, "1")].rules.len(), 1);
    }

    #[test]
    fn a_bad_rule_is_reported_with_where_it_is_and_the_rest_load() {
        let slots = parse(r#"{"track:0": [{"rule_id": "1", "value": "a,b"}, "oops", {"rule_id": "2", "value": "ok"}]}"#)
            .unwrap();
        let set = &slots[&SlotId::new(StreamType::Track, "0")];
        assert_eq!(set.rules.len(), 1);
        let errors: Vec<String> = set.errors.iter().map(ToString::to_string).collect();
        assert_eq!(errors.len(), 2, "{errors:?}");
        assert!(
            errors
                .iter()
                .any(|e| e.contains("rule 1 (track:0[0])") && e.contains("comma")),
            "{errors:?}"
        );
        assert!(
            errors.iter().any(|e| e.contains("track:0[1]")),
            "{errors:?}"
        );
    }

    #[test]
    fn a_plain_list_goes_to_slot_zero_of_each_rule_type() {
        let slots = parse(
            r#"[{"rule_id": "1", "value": "happy", "rule_type": "track"},
                {"rule_id": "2", "value": "-122.75,36.8,-121.75,37.8", "orig_type": "geo"},
                {"rule_id": "3", "value": "untyped"}]"#,
        )
        .unwrap();
        assert_eq!(slots[&SlotId::new(StreamType::Track, "0")].rules.len(), 1);
        assert_eq!(
            slots[&SlotId::new(StreamType::Locations, "0")].rules.len(),
            1
        );
        let untyped = &slots[&SlotId::new(StreamType::Track, "0")].errors;
        assert!(
            untyped[0].to_string().contains("rule 3 ([2])"),
            "{untyped:?}"
        );
    }

    #[test]
    fn a_file_of_the_wrong_shape_says_what_is_expected() {
        for (text, expected) in [
            ("{", "not valid JSON"),
            (r#"{"track": []}"#, "not a slot name"),
            (r#"{"track:0": {}}"#, "are not a list"),
            ("42", "neither an object nor a list"),
        ] {
            let error = parse(text).unwrap_err().to_string();
            assert!(error.contains(expected), "{text}: {error}");
            assert!(error.contains("rules.json"), "{error}");
        }
    }
}
