//! The rules in Redis, in the original traptor's shape, read and written in one place so that
//! the operator's tools and the supervisor agree on what is stored.
//!
//! - Each rule is a hash `traptor-<type>:<id>:<rule_id>`, every field a string (as the
//!   original's `add_rules.py` wrote them). Keys written by the original's `rule_extract.py`
//!   end in an enumeration index instead of the rule id; they are read, replaced and removed
//!   by their `rule_id` field all the same.
//! - Reading is `SCAN MATCH traptor-*` (or one slot's prefix) and `HGETALL` of each key, keys
//!   sorted so that results never depend on scan order.
//! - Writing replaces a rule's hash atomically (`DEL` + `HSET` in one `MULTI`), so a watcher
//!   never reads half a rule, and keeps one hash per rule id in a slot.
//! - After a change, [`notify`] publishes `<type>:<id>` on the notify channel (default
//!   `traptor-notify`), which running supervisors (and original traptors) act on.

use std::collections::{BTreeMap, BTreeSet};

use redis::aio::ConnectionLike;
use redis::RedisResult;
use traptor_core::rules::{compare_rule_ids, parse_rule, RuleProblem};
use traptor_core::{Rule, RuleError, RuleSet, SlotId};

/// The channel the original traptor listens on for `<type>:<id>` notices.
pub const DEFAULT_NOTIFY_CHANNEL: &str = "traptor-notify";

/// How many commands one pipeline carries (HGETALL, HSET, DEL).
const BATCH: usize = 500;

/// Keys Redis looks at per SCAN call. A slot's notice has to walk the whole keyspace: with
/// 520,000 rules stored, 500 per call took 1,040 round trips and 0.25 s, 5,000 take 104 and
/// 0.15 s, each call busy in Redis for under 2 ms.
const SCAN_COUNT: usize = 5_000;

/// One rule hash as stored, valid or not: tools show bad rules with their key and fields.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredHash {
    pub key: String,
    /// The slot named by the key.
    pub slot: SlotId,
    /// The hash's fields as Redis returned them.
    pub fields: Vec<(String, String)>,
}

impl StoredHash {
    pub fn field(&self, name: &str) -> Option<&str> {
        self.fields
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }

    /// The `rule_id` field, trimmed; `None` when missing or blank.
    pub fn rule_id(&self) -> Option<&str> {
        self.field("rule_id")
            .map(str::trim)
            .filter(|id| !id.is_empty())
    }

    /// Validates the hash as the supervisor does when it loads the slot.
    pub fn validate(&self) -> Result<Rule, RuleError> {
        parse_rule(self.fields.clone(), Some(self.slot.stream_type)).map_err(|mut error| {
            error.source = Some(self.key.clone());
            error
        })
    }
}

/// Why a rule was not written.
#[derive(Debug, thiserror::Error)]
pub enum PutRuleError {
    #[error("{0}")]
    Invalid(RuleError),
    #[error("Redis error: {0}")]
    Redis(#[from] redis::RedisError),
}

/// What a write did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PutReport {
    /// The keys written, one per rule.
    pub written: Vec<String>,
    /// Those of `written` that already existed (their old hash was replaced).
    pub updated: Vec<String>,
    /// Other keys of the same slots that held the same rule ids (e.g. index-keyed hashes of
    /// `rule_extract.py`) and were deleted so that each rule id is stored once per slot.
    pub replaced: Vec<String>,
    /// The slots touched, for [`notify`].
    pub slots: BTreeSet<SlotId>,
}

/// The key a rule is written under: `traptor-<type>:<id>:<rule_id>`.
pub fn rule_key(slot: &SlotId, rule_id: &str) -> String {
    format!("{}{}", slot.rule_key_prefix(), rule_id.trim())
}

/// Validates fields for a slot as the supervisor will, and also refuses a `rule_type` field
/// that names another stream type than the slot's (the supervisor would follow the slot and
/// ignore it, which hides a misfiled rule).
pub fn validate_for_slot(slot: &SlotId, fields: Vec<(String, String)>) -> Result<Rule, RuleError> {
    let rule = parse_rule(fields, Some(slot.stream_type))?;
    if let Some(declared) = rule
        .field("rule_type")
        .map(str::trim)
        .filter(|t| !t.is_empty())
    {
        match declared.parse::<traptor_core::StreamType>() {
            Ok(t) if t == slot.stream_type => {}
            Ok(t) => {
                return Err(RuleError {
                    rule_id: Some(rule.rule_id.clone()),
                    source: None,
                    problem: RuleProblem::TypeMismatch {
                        slot: slot.stream_type,
                        rule: t,
                        field: "rule_type",
                        value: declared.to_owned(),
                    },
                })
            }
            Err(_) => {
                return Err(RuleError {
                    rule_id: Some(rule.rule_id.clone()),
                    source: None,
                    problem: RuleProblem::UnknownType(declared.to_owned()),
                })
            }
        }
    }
    Ok(rule)
}

/// A rule fit to store, and whether it is paused.
#[derive(Debug, Clone, PartialEq)]
pub struct Storable {
    /// The rule, with every field as given (a paused rule keeps its status).
    pub rule: Rule,
    /// `Some(status)` when the rule is valid but its status is not `active`: stored, but not
    /// collected until its status is `active` again.
    pub inactive: Option<String>,
}

/// Validates fields for storing in `slot`: as [`validate_for_slot`], except that a rule whose
/// only problem is a status other than `active` is accepted (that is how a rule is paused).
pub fn validate_for_storage(
    slot: &SlotId,
    fields: Vec<(String, String)>,
) -> Result<Storable, RuleError> {
    match validate_for_slot(slot, fields.clone()) {
        Ok(rule) => Ok(Storable {
            rule,
            inactive: None,
        }),
        Err(RuleError {
            problem: RuleProblem::Inactive(status),
            ..
        }) => {
            let as_active = fields
                .iter()
                .map(|(k, v)| {
                    if k == "status" {
                        (k.clone(), "active".to_owned())
                    } else {
                        (k.clone(), v.clone())
                    }
                })
                .collect();
            let rule = validate_for_slot(slot, as_active)?.with_fields(fields);
            Ok(Storable {
                rule,
                inactive: Some(status),
            })
        }
        Err(error) => Err(error),
    }
}

/// Every rule hash under `traptor-*` whose slot `wanted` accepts, valid or not, in slot then
/// rule-id order. Keys of other shapes and non-UTF-8 key names are skipped with a log line,
/// and so are keys that cannot be read (see [`load_all`], which reports those as rule
/// errors); a connection error is returned.
pub async fn scan_hashes<C: ConnectionLike>(
    con: &mut C,
    wanted: &dyn Fn(&SlotId) -> bool,
) -> RedisResult<Vec<StoredHash>> {
    Ok(scan_wanted(con, wanted).await?.readable_logging_the_rest())
}

/// Every rule key under `traptor-*` whose slot `wanted` accepts, readable or not, for the
/// operator's tools: a key that cannot be read is listed with the reason instead of being
/// left out, so that a listing or an export never silently misses a stored rule.
pub async fn scan_stored<C: ConnectionLike>(
    con: &mut C,
    wanted: &dyn Fn(&SlotId) -> bool,
) -> RedisResult<StoredRules> {
    scan_wanted(con, wanted).await
}

/// The rule hashes of one slot, valid or not, in rule-id order (unreadable keys are logged).
pub async fn slot_hashes<C: ConnectionLike>(
    con: &mut C,
    slot: &SlotId,
) -> RedisResult<Vec<StoredHash>> {
    Ok(scan_slot(con, slot).await?.readable_logging_the_rest())
}

/// Every wanted slot's rules, parsed as the supervisor runs them. A key that cannot be read
/// (a field that is not UTF-8, a `traptor-*` key that is not a hash) is an error of its slot,
/// named by its key, and the other rules still load.
pub async fn load_all<C: ConnectionLike>(
    con: &mut C,
    wanted: &dyn Fn(&SlotId) -> bool,
) -> RedisResult<BTreeMap<SlotId, RuleSet>> {
    let mut sets = BTreeMap::new();
    for (slot, keys) in scan_wanted_keys(con, wanted).await? {
        let set = load_slot_keys(con, &slot, keys).await?;
        if !set.rules.is_empty() || !set.errors.is_empty() {
            sets.insert(slot, set);
        }
    }
    Ok(sets)
}

/// Every wanted rule key, grouped by slot: only the key names, so that a caller can then read
/// and handle one slot at a time ([`load_slot_keys`]) instead of holding every hash at once.
pub async fn scan_wanted_keys<C: ConnectionLike>(
    con: &mut C,
    wanted: &dyn Fn(&SlotId) -> bool,
) -> RedisResult<BTreeMap<SlotId, Vec<String>>> {
    let mut by_slot: BTreeMap<SlotId, Vec<String>> = BTreeMap::new();
    for (key, slot) in wanted_keys(con, wanted).await? {
        by_slot.entry(slot).or_default().push(key);
    }
    Ok(by_slot)
}

/// The rules of `slot` read from `keys` (as [`scan_wanted_keys`] found them), with unreadable
/// keys as errors of the slot.
pub async fn load_slot_keys<C: ConnectionLike>(
    con: &mut C,
    slot: &SlotId,
    keys: Vec<String>,
) -> RedisResult<RuleSet> {
    let keys = keys.into_iter().map(|key| (key, slot.clone())).collect();
    Ok(read_hashes(con, keys)
        .await?
        .into_rule_sets()
        .remove(slot)
        .unwrap_or_default())
}

/// One slot's rules (an empty set when it has none), with unreadable keys as errors.
pub async fn load_slot<C: ConnectionLike>(con: &mut C, slot: &SlotId) -> RedisResult<RuleSet> {
    Ok(scan_slot(con, slot)
        .await?
        .into_rule_sets()
        .remove(slot)
        .unwrap_or_default())
}

/// What reading a set of rule keys found: the hashes, and the keys that could not be read.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct StoredRules {
    /// The readable hashes, in slot then rule-id order.
    pub hashes: Vec<StoredHash>,
    /// The keys that could not be read, in key order.
    pub unreadable: Vec<UnreadableKey>,
}

/// A `traptor-<type>:<id>:<rule>` key whose content is not a rule hash of UTF-8 text (a
/// string or list under a rule's name, a field written as raw bytes): it is reported by key,
/// since it has no readable rule id.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UnreadableKey {
    pub key: String,
    /// The slot named by the key.
    pub slot: SlotId,
    /// What is wrong with it and what to do, e.g. "the field value of \"value\" is not valid UTF-8; …".
    pub reason: String,
}

impl UnreadableKey {
    /// The error the supervisor reports for this key in its slot.
    pub fn to_rule_error(&self) -> RuleError {
        RuleError {
            rule_id: None,
            source: Some(self.key.clone()),
            problem: RuleProblem::Unreadable(self.reason.clone()),
        }
    }
}

impl StoredRules {
    fn readable_logging_the_rest(self) -> Vec<StoredHash> {
        for key in &self.unreadable {
            tracing::warn!("skipping a rule key: {}", key.to_rule_error());
        }
        self.hashes
    }

    fn into_rule_sets(self) -> BTreeMap<SlotId, RuleSet> {
        let mut sets = group_into_rule_sets(self.hashes);
        for key in self.unreadable {
            let error = key.to_rule_error();
            sets.entry(key.slot).or_default().errors.push(error);
        }
        sets
    }
}

async fn scan_wanted<C: ConnectionLike>(
    con: &mut C,
    wanted: &dyn Fn(&SlotId) -> bool,
) -> RedisResult<StoredRules> {
    let keys = wanted_keys(con, wanted).await?;
    read_hashes(con, keys).await
}

/// Every `traptor-<type>:<id>:<rule>` key whose slot `wanted` accepts, with that slot.
async fn wanted_keys<C: ConnectionLike>(
    con: &mut C,
    wanted: &dyn Fn(&SlotId) -> bool,
) -> RedisResult<Vec<(String, SlotId)>> {
    let keys = scan_keys(con, "traptor-*").await?;
    Ok(keys
        .into_iter()
        .filter_map(|key| match SlotId::from_rule_key(&key) {
            Some(slot) if wanted(&slot) => Some((key, slot)),
            Some(_) => None,
            None => {
                tracing::debug!(
                    key,
                    "ignoring a traptor-* key that is not traptor-<type>:<id>:<rule>"
                );
                None
            }
        })
        .collect())
}

async fn scan_slot<C: ConnectionLike>(con: &mut C, slot: &SlotId) -> RedisResult<StoredRules> {
    let pattern = format!("{}*", glob_escape(&slot.rule_key_prefix()));
    let keys = scan_keys(con, &pattern)
        .await?
        .into_iter()
        // The key decides the slot: `traptor-track:1*` must not take `traptor-track:10:x`.
        .filter(|key| SlotId::from_rule_key(key).as_ref() == Some(slot))
        .map(|key| (key, slot.clone()))
        .collect();
    read_hashes(con, keys).await
}

/// Parses stored hashes into one [`RuleSet`] per slot; errors name the key.
pub fn group_into_rule_sets(hashes: Vec<StoredHash>) -> BTreeMap<SlotId, RuleSet> {
    // Per slot: (key, fields) pairs, the input shape of `RuleSet::from_hashes`.
    type Sourced = (Option<String>, Vec<(String, String)>);
    let mut by_slot: BTreeMap<SlotId, Vec<Sourced>> = BTreeMap::new();
    for hash in hashes {
        by_slot
            .entry(hash.slot)
            .or_default()
            .push((Some(hash.key), hash.fields));
    }
    by_slot
        .into_iter()
        .map(|(slot, hashes)| {
            let set = RuleSet::from_hashes(hashes, Some(slot.stream_type));
            (slot, set)
        })
        .collect()
}

/// Validates one rule for `slot` ([`validate_for_storage`]) and writes it (see [`put_rules`]).
pub async fn put_rule<C: ConnectionLike>(
    con: &mut C,
    slot: &SlotId,
    fields: Vec<(String, String)>,
) -> Result<(Storable, PutReport), PutRuleError> {
    let storable = validate_for_storage(slot, fields).map_err(PutRuleError::Invalid)?;
    let report = put_rules(con, &[(slot.clone(), storable.rule.clone())]).await?;
    Ok((storable, report))
}

/// Writes validated rules, each as `traptor-<type>:<id>:<rule_id>` with exactly its fields
/// (an older hash of the same key is replaced, not merged). Other keys of the same slot that
/// hold one of these rule ids are deleted in the same transaction. Writes go in batches, each
/// one `MULTI`/`EXEC`. Does not notify: call [`notify`] for each of `report.slots`.
pub async fn put_rules<C: ConnectionLike>(
    con: &mut C,
    rules: &[(SlotId, Rule)],
) -> RedisResult<PutReport> {
    let mut report = PutReport::default();
    // Keys by (slot, rule id) already stored, to find copies under other key names.
    let mut existing: BTreeMap<(SlotId, String), Vec<String>> = BTreeMap::new();
    let mut existing_keys: BTreeSet<String> = BTreeSet::new();
    let touched: BTreeSet<&SlotId> = rules.iter().map(|(slot, _)| slot).collect();
    for slot in touched {
        for hash in slot_hashes(con, slot).await? {
            existing_keys.insert(hash.key.clone());
            if let Some(id) = hash.rule_id() {
                existing
                    .entry((slot.clone(), id.to_owned()))
                    .or_default()
                    .push(hash.key);
            }
        }
    }

    for chunk in rules.chunks(BATCH) {
        let mut pipe = redis::pipe();
        pipe.atomic();
        for (slot, rule) in chunk {
            let key = rule_key(slot, &rule.rule_id);
            let stale: Vec<String> = existing
                .get(&(slot.clone(), rule.rule_id.trim().to_owned()))
                .into_iter()
                .flatten()
                .filter(|other| **other != key)
                .cloned()
                .collect();
            pipe.del(&key).ignore();
            if !stale.is_empty() {
                pipe.del(&stale).ignore();
            }
            pipe.hset_multiple(&key, &rule.fields).ignore();
            if existing_keys.contains(&key) {
                report.updated.push(key.clone());
            }
            report.written.push(key);
            report.replaced.extend(stale);
            report.slots.insert(slot.clone());
        }
        pipe.query_async::<()>(con).await?;
    }
    Ok(report)
}

/// Deletes a slot's rule: the key `traptor-<type>:<id>:<rule_id>` and any other key of the
/// slot whose `rule_id` field is `rule_id`. Returns the keys deleted (empty: no such rule).
pub async fn remove_rule<C: ConnectionLike>(
    con: &mut C,
    slot: &SlotId,
    rule_id: &str,
) -> RedisResult<Vec<String>> {
    let rule_id = rule_id.trim();
    let direct = rule_key(slot, rule_id);
    let keys: Vec<String> = slot_hashes(con, slot)
        .await?
        .into_iter()
        .filter(|hash| hash.key == direct || hash.rule_id() == Some(rule_id))
        .map(|hash| hash.key)
        .collect();
    if keys.is_empty() {
        return Ok(keys);
    }
    let deleted: usize = redis::cmd("DEL").arg(&keys).query_async(con).await?;
    if deleted == 0 {
        // Deleted by someone else since the scan.
        return Ok(Vec::new());
    }
    Ok(keys)
}

/// Publishes `<type>:<id>` on `channel`, as running supervisors (and original traptors)
/// expect after a slot's rules change. Returns how many subscribers received it.
pub async fn notify<C: ConnectionLike>(
    con: &mut C,
    channel: &str,
    slot: &SlotId,
) -> RedisResult<u64> {
    redis::cmd("PUBLISH")
        .arg(channel)
        .arg(slot.to_string())
        .query_async(con)
        .await
}

/// All keys matching `pattern`, sorted and deduplicated (SCAN may return a key twice).
async fn scan_keys<C: ConnectionLike>(con: &mut C, pattern: &str) -> RedisResult<Vec<String>> {
    let mut cursor: u64 = 0;
    let mut keys = Vec::new();
    loop {
        let (next, batch): (u64, Vec<Vec<u8>>) = redis::cmd("SCAN")
            .arg(cursor)
            .arg("MATCH")
            .arg(pattern)
            .arg("COUNT")
            .arg(SCAN_COUNT)
            .query_async(con)
            .await?;
        for raw in batch {
            match String::from_utf8(raw) {
                Ok(key) => keys.push(key),
                Err(e) => tracing::warn!(
                    key = %String::from_utf8_lossy(e.as_bytes()),
                    "ignoring a rule key that is not UTF-8"
                ),
            }
        }
        if next == 0 {
            break;
        }
        cursor = next;
    }
    keys.sort();
    keys.dedup();
    Ok(keys)
}

/// HGETALL of each key, pipelined, in slot then rule-id order. Each reply is converted on its
/// own, so one key that is not a hash or holds a non-UTF-8 field is reported for that key
/// alone; a key deleted since the scan is simply gone.
async fn read_hashes<C: ConnectionLike>(
    con: &mut C,
    keys: Vec<(String, SlotId)>,
) -> RedisResult<StoredRules> {
    let mut outcome = StoredRules {
        hashes: Vec::with_capacity(keys.len()),
        unreadable: Vec::new(),
    };
    for chunk in keys.chunks(BATCH) {
        let mut pipe = redis::pipe();
        pipe.ignore_errors();
        for (key, _) in chunk {
            pipe.cmd("HGETALL").arg(key);
        }
        // Raw values: converting the whole reply at once would fail it for one bad key.
        let results: Vec<RedisResult<redis::Value>> = pipe.query_async(con).await?;
        for ((key, slot), result) in chunk.iter().zip(results) {
            let fields = result
                .map_err(|e| format!("it is not a hash of strings ({e})"))
                .and_then(|value| {
                    redis::from_redis_value::<Vec<(Vec<u8>, Vec<u8>)>>(value)
                        .map_err(|e| format!("it is not a hash of strings ({e})"))
                })
                .and_then(utf8_fields);
            match fields {
                Ok(fields) if fields.is_empty() => {}
                Ok(fields) => outcome.hashes.push(StoredHash {
                    key: key.clone(),
                    slot: slot.clone(),
                    fields,
                }),
                Err(reason) => outcome.unreadable.push(UnreadableKey {
                    key: key.clone(),
                    slot: slot.clone(),
                    reason,
                }),
            }
        }
    }
    sort_hashes(&mut outcome.hashes);
    outcome.unreadable.sort_by(|a, b| a.key.cmp(&b.key));
    Ok(outcome)
}

/// A hash's fields as text, or which field is not valid UTF-8.
fn utf8_fields(raw: Vec<(Vec<u8>, Vec<u8>)>) -> Result<Vec<(String, String)>, String> {
    raw.into_iter()
        .map(|(name, value)| {
            let name = String::from_utf8(name).map_err(|e| {
                format!(
                    "the field name {:?} is not valid UTF-8; rewrite the rule as UTF-8 text",
                    String::from_utf8_lossy(e.as_bytes())
                )
            })?;
            let value = String::from_utf8(value).map_err(|_| {
                format!("field `{name}` is not valid UTF-8; rewrite the rule as UTF-8 text")
            })?;
            Ok((name, value))
        })
        .collect()
}

/// Slot order, then rule-id order (hashes without a rule id last), then key.
fn sort_hashes(hashes: &mut [StoredHash]) {
    hashes.sort_by(|a, b| {
        a.slot
            .cmp(&b.slot)
            .then_with(|| match (a.rule_id(), b.rule_id()) {
                (Some(x), Some(y)) => compare_rule_ids(x, y),
                (Some(_), None) => std::cmp::Ordering::Less,
                (None, Some(_)) => std::cmp::Ordering::Greater,
                (None, None) => std::cmp::Ordering::Equal,
            })
            .then_with(|| a.key.cmp(&b.key))
    });
}

/// Escapes Redis glob specials so a slot id like `a*` matches only itself.
fn glob_escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        if matches!(c, '*' | '?' | '[' | ']' | '\\') {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use traptor_core::StreamType;

    fn fields(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    fn hash(key: &str, pairs: &[(&str, &str)]) -> StoredHash {
        StoredHash {
            key: key.into(),
            slot: SlotId::from_rule_key(key).unwrap(),
            fields: fields(pairs),
        }
    }

    #[test]
    fn rule_keys_follow_the_original_scheme() {
        let slot = SlotId::new(StreamType::Follow, "3");
        assert_eq!(rule_key(&slot, " 12345 "), "traptor-follow:3:12345");
    }

    #[test]
    fn a_rule_type_that_contradicts_the_slot_is_refused() {
        let slot = SlotId::new(StreamType::Follow, "0");
        let error = validate_for_slot(
            &slot,
            fields(&[("rule_id", "1"), ("value", "42"), ("rule_type", "track")]),
        )
        .unwrap_err()
        .to_string();
        assert!(
            error.contains("rule_type \"track\"") && error.contains("follow slot"),
            "{error}"
        );
        let error = validate_for_slot(
            &slot,
            fields(&[("rule_id", "1"), ("value", "42"), ("rule_type", "tweets")]),
        )
        .unwrap_err()
        .to_string();
        assert!(error.contains("unknown type"), "{error}");
        assert!(validate_for_slot(
            &slot,
            fields(&[("rule_id", "1"), ("value", "42"), ("rule_type", "follow")])
        )
        .is_ok());
    }

    #[test]
    fn a_paused_rule_may_be_stored_but_an_invalid_paused_rule_may_not() {
        let slot = SlotId::new(StreamType::Track, "0");
        let storable = validate_for_storage(
            &slot,
            fields(&[("rule_id", "1"), ("value", "happy"), ("status", "paused")]),
        )
        .unwrap();
        assert_eq!(storable.inactive.as_deref(), Some("paused"));
        assert_eq!(
            storable.rule.field("status"),
            Some("paused"),
            "the stored hash keeps its status"
        );
        assert!(
            validate_for_slot(&slot, storable.rule.fields.clone()).is_err(),
            "the supervisor does not collect it"
        );
        let error = validate_for_storage(
            &slot,
            fields(&[("rule_id", "1"), ("value", "a,b"), ("status", "paused")]),
        )
        .unwrap_err();
        assert!(error.to_string().contains("comma"), "{error}");
        let active =
            validate_for_storage(&slot, fields(&[("rule_id", "1"), ("value", "happy")])).unwrap();
        assert_eq!(active.inactive, None);
    }

    #[test]
    fn hashes_sort_by_slot_then_numeric_rule_id() {
        let mut hashes = vec![
            hash("traptor-track:1:1", &[("rule_id", "1")]),
            hash("traptor-track:0:x", &[("value", "no id")]),
            hash("traptor-track:0:10", &[("rule_id", "10")]),
            hash("traptor-track:0:9", &[("rule_id", "9")]),
        ];
        sort_hashes(&mut hashes);
        let keys: Vec<_> = hashes.iter().map(|h| h.key.as_str()).collect();
        assert_eq!(
            keys,
            [
                "traptor-track:0:9",
                "traptor-track:0:10",
                "traptor-track:0:x",
                "traptor-track:1:1"
            ]
        );
    }

    #[test]
    fn grouping_keeps_bad_rules_as_errors_named_by_key() {
        let sets = group_into_rule_sets(vec![
            hash(
                "traptor-follow:0:1",
                &[("rule_id", "1"), ("value", "17919972")],
            ),
            hash("traptor-follow:0:2", &[("rule_id", "2"), ("value", "cnn")]),
        ]);
        let set = &sets[&SlotId::new(StreamType::Follow, "0")];
        assert_eq!(set.rules.len(), 1);
        assert!(
            set.errors[0].to_string().contains("traptor-follow:0:2"),
            "{:?}",
            set.errors
        );
    }

    #[test]
    fn stored_hash_validation_names_the_key() {
        let error = hash("traptor-track:0:5", &[("rule_id", "5"), ("value", "a,b")])
            .validate()
            .unwrap_err();
        assert_eq!(error.source.as_deref(), Some("traptor-track:0:5"));
    }

    #[test]
    fn a_non_utf8_field_is_named_and_utf8_fields_convert() {
        let raw = |pairs: &[(&[u8], &[u8])]| {
            pairs
                .iter()
                .map(|(k, v)| (k.to_vec(), v.to_vec()))
                .collect::<Vec<_>>()
        };
        assert_eq!(
            utf8_fields(raw(&[(b"rule_id", b"1"), (b"value", "café".as_bytes())])),
            Ok(fields(&[("rule_id", "1"), ("value", "café")]))
        );
        let why = utf8_fields(raw(&[(b"rule_id", b"2"), (b"value", b"caf\xe9")])).unwrap_err();
        assert!(why.contains("field `value` is not valid UTF-8"), "{why}");
        let why = utf8_fields(raw(&[(b"n\xffme", b"x")])).unwrap_err();
        assert!(why.contains("field name"), "{why}");
    }

    #[test]
    fn unreadable_keys_become_errors_of_their_slot() {
        let slot = SlotId::new(StreamType::Track, "0");
        let outcome = StoredRules {
            hashes: vec![hash(
                "traptor-track:0:1",
                &[("rule_id", "1"), ("value", "happy")],
            )],
            unreadable: vec![UnreadableKey {
                key: "traptor-track:1:2".into(),
                slot: SlotId::new(StreamType::Track, "1"),
                reason: "it is not a hash".into(),
            }],
        };
        let sets = outcome.into_rule_sets();
        assert_eq!(sets[&slot].rules.len(), 1);
        let other = &sets[&SlotId::new(StreamType::Track, "1")];
        assert!(other.rules.is_empty());
        let error = other.errors[0].to_string();
        assert!(
            error.contains("traptor-track:1:2") && error.contains("not a hash"),
            "{error}"
        );
    }

    /// `rediss://` (offered by `config/cluster.toml`) is compiled in, and the TLS handshake
    /// finds a rustls crypto provider instead of panicking for want of one.
    #[actix_rt::test]
    async fn rediss_urls_open_and_attempt_a_tls_handshake() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        // A server that is not TLS: it accepts and hangs up, so the handshake fails.
        std::thread::spawn(move || {
            if let Ok((stream, _)) = listener.accept() {
                drop(stream);
            }
        });
        let client = redis::Client::open(format!("rediss://127.0.0.1:{port}/"))
            .expect("rediss:// URLs are supported");
        let attempt = tokio::time::timeout(
            std::time::Duration::from_secs(10),
            client.get_multiplexed_async_connection(),
        )
        .await
        .expect("the handshake ends");
        let Err(error) = attempt else {
            panic!("a plain TCP server cannot complete TLS");
        };
        assert!(
            !error.to_string().contains("feature is not enabled"),
            "{error}"
        );
    }

    #[test]
    fn glob_specials_are_escaped() {
        assert_eq!(
            glob_escape("traptor-track:a*[b]?\\:"),
            "traptor-track:a\\*\\[b\\]\\?\\\\:"
        );
    }
}
