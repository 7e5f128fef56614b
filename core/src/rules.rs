//! Collection rules in the original traptor's Redis hash shape.
//!
//! A rule arrives as the fields of the hash `traptor-<type>:<id>:<rule_key>` (or a JSON object of
//! the same shape). Parsing keeps every field verbatim for the output, validates the value against
//! the streaming API's limits, and computes the normalized *filter term* the connection sends.
//! One bad rule never stops the others: [`RuleSet::from_hashes`] collects per-rule errors.

use std::cmp::Ordering;
use std::fmt;
use std::str::FromStr;
use std::sync::Arc;

/// Longest track phrase the streaming API accepts, in bytes.
pub const MAX_TRACK_PHRASE_BYTES: usize = 60;

/// The three kinds of streaming connection, and so the three kinds of slot.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum StreamType {
    Track,
    Follow,
    Locations,
}

impl StreamType {
    pub const ALL: [StreamType; 3] = [StreamType::Track, StreamType::Follow, StreamType::Locations];

    /// The name used in Redis keys, the notify channel and the filter form.
    pub fn as_str(self) -> &'static str {
        match self {
            StreamType::Track => "track",
            StreamType::Follow => "follow",
            StreamType::Locations => "locations",
        }
    }

    /// How many filter terms one connection of this type may carry.
    pub fn connection_limit(self) -> usize {
        match self {
            StreamType::Track => 400,
            StreamType::Follow => 5_000,
            StreamType::Locations => 25,
        }
    }
}

impl fmt::Display for StreamType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for StreamType {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.trim().to_ascii_lowercase().as_str() {
            "track" => Ok(StreamType::Track),
            "follow" => Ok(StreamType::Follow),
            "locations" | "location" => Ok(StreamType::Locations),
            other => Err(format!(
                "unknown stream type {other:?}; expected track, follow or locations"
            )),
        }
    }
}

/// A slot is `(type, id)`: the unit the original ran one process for, keyed
/// `traptor-<type>:<id>:*` in Redis and `<type>:<id>` on the notify channel.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct SlotId {
    pub stream_type: StreamType,
    pub id: String,
}

impl SlotId {
    pub fn new(stream_type: StreamType, id: impl Into<String>) -> Self {
        SlotId {
            stream_type,
            id: id.into(),
        }
    }

    /// The Redis key prefix of this slot's rule hashes: `traptor-<type>:<id>:`.
    pub fn rule_key_prefix(&self) -> String {
        format!("traptor-{}:{}:", self.stream_type, self.id)
    }

    /// The heartbeat key of the original: `<type>:<id>:heartbeat`.
    pub fn heartbeat_key(&self) -> String {
        format!("{}:{}:heartbeat", self.stream_type, self.id)
    }

    /// Parses a rule key `traptor-<type>:<id>:<rule_key>` into its slot.
    pub fn from_rule_key(key: &str) -> Option<SlotId> {
        let rest = key.strip_prefix("traptor-")?;
        let mut parts = rest.splitn(3, ':');
        let stream_type = parts.next()?.parse().ok()?;
        let id = parts.next()?;
        parts.next()?;
        if id.is_empty() {
            return None;
        }
        Some(SlotId::new(stream_type, id))
    }

    /// Parses a notify message `<type>:<id>` (extra `:parts` are ignored, as the original did).
    pub fn from_notice(notice: &str) -> Option<SlotId> {
        let mut parts = notice.trim().splitn(3, ':');
        let stream_type = parts.next()?.parse().ok()?;
        let id = parts.next()?;
        if id.is_empty() {
            return None;
        }
        Some(SlotId::new(stream_type, id))
    }
}

impl fmt::Display for SlotId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.stream_type, self.id)
    }
}

/// The rule manager's own classification of a rule (`orig_type`), which decides how it matches.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum OrigType {
    Keyword,
    Hashtag,
    Userid,
    Username,
    Geo,
}

impl OrigType {
    pub fn as_str(self) -> &'static str {
        match self {
            OrigType::Keyword => "keyword",
            OrigType::Hashtag => "hashtag",
            OrigType::Userid => "userid",
            OrigType::Username => "username",
            OrigType::Geo => "geo",
        }
    }

    /// The stream type a rule of this kind is collected by.
    pub fn stream_type(self) -> StreamType {
        match self {
            OrigType::Keyword | OrigType::Hashtag => StreamType::Track,
            OrigType::Userid | OrigType::Username => StreamType::Follow,
            OrigType::Geo => StreamType::Locations,
        }
    }
}

impl FromStr for OrigType {
    type Err = ();
    fn from_str(s: &str) -> Result<Self, ()> {
        match s.trim().to_ascii_lowercase().as_str() {
            "keyword" => Ok(OrigType::Keyword),
            "hashtag" => Ok(OrigType::Hashtag),
            "userid" => Ok(OrigType::Userid),
            "username" => Ok(OrigType::Username),
            "geo" => Ok(OrigType::Geo),
            _ => Err(()),
        }
    }
}

/// A location box, south-west corner first, as the streaming API takes it.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct BoundingBox {
    pub sw_lon: f64,
    pub sw_lat: f64,
    pub ne_lon: f64,
    pub ne_lat: f64,
}

impl BoundingBox {
    /// Parses `sw_lon,sw_lat,ne_lon,ne_lat` and checks ranges and corner order.
    pub fn parse(value: &str) -> Result<BoundingBox, RuleProblem> {
        let numbers: Vec<&str> = value.split(',').map(str::trim).collect();
        if numbers.len() != 4 {
            return Err(RuleProblem::BadBox(format!(
                "expected four numbers sw_lon,sw_lat,ne_lon,ne_lat, found {}",
                numbers.len()
            )));
        }
        let mut parsed = [0f64; 4];
        for (slot, text) in parsed.iter_mut().zip(&numbers) {
            *slot = text
                .parse::<f64>()
                .ok()
                .filter(|n| n.is_finite())
                .ok_or_else(|| RuleProblem::BadBox(format!("{text:?} is not a number")))?;
        }
        let [sw_lon, sw_lat, ne_lon, ne_lat] = parsed;
        for lon in [sw_lon, ne_lon] {
            if !(-180.0..=180.0).contains(&lon) {
                return Err(RuleProblem::BadBox(format!(
                    "longitude {lon} is outside [-180, 180]"
                )));
            }
        }
        for lat in [sw_lat, ne_lat] {
            if !(-90.0..=90.0).contains(&lat) {
                return Err(RuleProblem::BadBox(format!(
                    "latitude {lat} is outside [-90, 90]"
                )));
            }
        }
        if sw_lon >= ne_lon || sw_lat >= ne_lat {
            return Err(RuleProblem::BadBox(
                "the south-west corner must be below and left of the north-east corner".into(),
            ));
        }
        Ok(BoundingBox {
            sw_lon,
            sw_lat,
            ne_lon,
            ne_lat,
        })
    }

    pub fn contains(&self, lon: f64, lat: f64) -> bool {
        lon >= self.sw_lon && lon <= self.ne_lon && lat >= self.sw_lat && lat <= self.ne_lat
    }

    /// Any overlap, edges included: the streaming API's place test.
    pub fn intersects(&self, other: &BoundingBox) -> bool {
        self.sw_lon <= other.ne_lon
            && other.sw_lon <= self.ne_lon
            && self.sw_lat <= other.ne_lat
            && other.sw_lat <= self.ne_lat
    }

    /// The canonical text sent in `locations=`; also the key used to merge equal boxes.
    pub fn to_filter_value(&self) -> String {
        format!(
            "{},{},{},{}",
            self.sw_lon, self.sw_lat, self.ne_lon, self.ne_lat
        )
    }
}

/// The normalized thing a rule asks the server for: one entry of `track=`, `follow=` or
/// `locations=`. Rules with equal terms share one entry and are all attributed on a match.
#[derive(Debug, Clone, PartialEq)]
pub enum FilterTerm {
    /// Lowercased phrase; terms separated by single spaces; hashtag terms carry `#`.
    Phrase(String),
    UserId(u64),
    Box(BoundingBox),
}

impl FilterTerm {
    pub fn stream_type(&self) -> StreamType {
        match self {
            FilterTerm::Phrase(_) => StreamType::Track,
            FilterTerm::UserId(_) => StreamType::Follow,
            FilterTerm::Box(_) => StreamType::Locations,
        }
    }

    /// The text of this term in the filter form.
    pub fn to_filter_value(&self) -> String {
        match self {
            FilterTerm::Phrase(p) => p.clone(),
            FilterTerm::UserId(id) => id.to_string(),
            FilterTerm::Box(b) => b.to_filter_value(),
        }
    }
}

/// One validated rule, shared: cloning it only counts a reference. The watcher, the
/// supervisor, every connection and its enricher each keep the rules they work with; with
/// hundreds of thousands of rules, a copy per holder would cost gigabytes. Reads go straight
/// to the [`RuleData`] fields (`rule.rule_id`); a changed rule is a new `Rule`.
#[derive(Clone, PartialEq)]
pub struct Rule(Arc<RuleData>);

impl Rule {
    pub fn new(data: RuleData) -> Rule {
        Rule(Arc::new(data))
    }

    /// The same rule with its hash fields replaced (e.g. the stored `status` kept verbatim).
    pub fn with_fields(&self, fields: Vec<(String, String)>) -> Rule {
        Rule::new(RuleData {
            fields,
            ..(*self.0).clone()
        })
    }
}

impl std::ops::Deref for Rule {
    type Target = RuleData;

    fn deref(&self) -> &RuleData {
        &self.0
    }
}

impl fmt::Debug for Rule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

/// What a [`Rule`] holds: its identity, its normalized term, and every hash field verbatim.
#[derive(Debug, Clone, PartialEq)]
pub struct RuleData {
    pub rule_id: String,
    /// The value as stored (reported as `rule_value`, as the original did).
    pub value: String,
    /// The type of stream that collects it (the slot's type, else `rule_type`, else `orig_type`).
    pub stream_type: StreamType,
    /// `orig_type` when given; absent means "match as the stream type implies".
    pub orig_type: Option<OrigType>,
    pub term: FilterTerm,
    /// Every field of the hash in the order received, values as strings, for the output.
    pub fields: Vec<(String, String)>,
}

impl RuleData {
    pub fn field(&self, name: &str) -> Option<&str> {
        self.fields
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }

    /// The rule's `tag` field, reported as `rule_tag`.
    pub fn tag(&self) -> Option<&str> {
        self.field("tag")
    }
}

/// What is wrong with one rule. The message says what to change.
#[derive(Debug, Clone, PartialEq)]
pub enum RuleProblem {
    MissingField(&'static str),
    NotAnObject,
    UnknownType(String),
    TypeMismatch {
        slot: StreamType,
        rule: StreamType,
        field: &'static str,
        value: String,
    },
    EmptyPhrase,
    PhraseTooLong(usize),
    PhraseHasComma,
    PhraseHasControlCharacter,
    NotAUserId(String),
    BadBox(String),
    Inactive(String),
    /// The stored rule cannot be read at all (a field that is not UTF-8, a key that is not a
    /// hash); the text says what was wrong.
    Unreadable(String),
}

impl fmt::Display for RuleProblem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RuleProblem::MissingField(name) => write!(f, "the required field `{name}` is missing"),
            RuleProblem::NotAnObject => f.write_str("a rule must be an object of string fields"),
            RuleProblem::UnknownType(t) => write!(
                f,
                "unknown type {t:?}: rule_type must be track, follow or locations and orig_type one of keyword, hashtag, userid, username, geo"
            ),
            RuleProblem::TypeMismatch { slot, rule, field, value } => write!(
                f,
                "{field} {value:?} makes it a {rule} rule, but it is stored in a {slot} slot; move it to a traptor-{rule}:<id> key"
            ),
            RuleProblem::EmptyPhrase => f.write_str("the track phrase is empty"),
            RuleProblem::PhraseTooLong(n) => write!(
                f,
                "the track phrase is {n} bytes; the streaming API accepts at most {MAX_TRACK_PHRASE_BYTES}"
            ),
            RuleProblem::PhraseHasComma => f.write_str(
                "the track phrase contains a comma, which the streaming API reads as OR; store each phrase as its own rule",
            ),
            RuleProblem::PhraseHasControlCharacter => f.write_str(
                "the track phrase contains a control character (a NUL, tab or line break); remove it",
            ),
            RuleProblem::NotAUserId(v) => write!(
                f,
                "follow value {v:?} is not a numeric user id; resolve the screen name to its id first"
            ),
            RuleProblem::BadBox(why) => write!(f, "invalid location box: {why}"),
            RuleProblem::Inactive(status) => {
                write!(f, "status is {status:?}, not \"active\"; the rule is not collected")
            }
            RuleProblem::Unreadable(why) => write!(f, "cannot be read: {why}"),
        }
    }
}

/// A rule that could not be loaded, named by its id (or key) so an operator can find it.
#[derive(Debug, Clone, PartialEq)]
pub struct RuleError {
    pub rule_id: Option<String>,
    /// Where it came from: a Redis key, or `line N` of a file.
    pub source: Option<String>,
    pub problem: RuleProblem,
}

impl fmt::Display for RuleError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match (&self.rule_id, &self.source) {
            (Some(id), Some(src)) => write!(f, "rule {id} ({src}): {}", self.problem),
            (Some(id), None) => write!(f, "rule {id}: {}", self.problem),
            (None, Some(src)) => write!(f, "rule at {src}: {}", self.problem),
            (None, None) => write!(f, "rule: {}", self.problem),
        }
    }
}

impl std::error::Error for RuleError {}

/// At most 64 characters of a stored value, for error messages: a huge bad value must not
/// become a huge log line on every resync.
fn excerpt(value: &str) -> String {
    const MAX: usize = 64;
    match value.char_indices().nth(MAX) {
        None => value.to_owned(),
        Some((cut, _)) => format!("{}… ({} bytes)", &value[..cut], value.len()),
    }
}

/// Turns a JSON field value into the string Redis would hold (`rule_id` may arrive as a number).
pub fn field_to_string(value: &serde_json::Value) -> String {
    match value {
        serde_json::Value::String(s) => s.clone(),
        serde_json::Value::Null => String::new(),
        other => other.to_string(),
    }
}

/// Reads a JSON object of rule fields into `(name, value)` pairs in document order.
pub fn fields_from_json(value: &serde_json::Value) -> Result<Vec<(String, String)>, RuleProblem> {
    let object = value.as_object().ok_or(RuleProblem::NotAnObject)?;
    Ok(object
        .iter()
        .map(|(k, v)| (k.clone(), field_to_string(v)))
        .collect())
}

/// Parses one rule hash. `slot_type` is the type of the slot it was stored under (`None` when
/// rules come from a file, where `rule_type` or `orig_type` decides).
pub fn parse_rule(
    fields: Vec<(String, String)>,
    slot_type: Option<StreamType>,
) -> Result<Rule, RuleError> {
    let get = |name: &str| {
        fields
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    };
    let rule_id = get("rule_id")
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(str::to_owned);
    let fail = |problem| RuleError {
        rule_id: rule_id.clone(),
        source: None,
        problem,
    };
    if rule_id.is_none() {
        return Err(fail(RuleProblem::MissingField("rule_id")));
    }
    let value = get("value")
        .ok_or_else(|| fail(RuleProblem::MissingField("value")))?
        .to_owned();

    let orig_type = match get("orig_type").map(str::trim).filter(|s| !s.is_empty()) {
        None => None,
        Some(t) => Some(
            t.parse::<OrigType>()
                .map_err(|_| fail(RuleProblem::UnknownType(excerpt(t))))?,
        ),
    };
    let declared_type = match get("rule_type").map(str::trim).filter(|s| !s.is_empty()) {
        None => None,
        Some(t) => Some(
            t.parse::<StreamType>()
                .map_err(|_| fail(RuleProblem::UnknownType(excerpt(t))))?,
        ),
    };
    let stream_type = slot_type
        .or(declared_type)
        .or(orig_type.map(OrigType::stream_type))
        .ok_or_else(|| fail(RuleProblem::MissingField("rule_type (or orig_type)")))?;
    if let Some(o) = orig_type {
        if o.stream_type() != stream_type {
            return Err(fail(RuleProblem::TypeMismatch {
                slot: stream_type,
                rule: o.stream_type(),
                field: "orig_type",
                value: o.as_str().to_owned(),
            }));
        }
    }

    if let Some(status) = get("status").map(str::trim) {
        if !status.is_empty() && !status.eq_ignore_ascii_case("active") {
            return Err(fail(RuleProblem::Inactive(excerpt(status))));
        }
    }

    let term = match stream_type {
        StreamType::Track => FilterTerm::Phrase(normalize_phrase(&value, orig_type).map_err(fail)?),
        StreamType::Follow => {
            let trimmed = value.trim();
            let id = trimmed
                .parse::<u64>()
                .ok()
                .filter(|_| trimmed.bytes().all(|b| b.is_ascii_digit()))
                .ok_or_else(|| fail(RuleProblem::NotAUserId(excerpt(&value))))?;
            FilterTerm::UserId(id)
        }
        StreamType::Locations => FilterTerm::Box(BoundingBox::parse(&value).map_err(fail)?),
    };

    Ok(Rule::new(RuleData {
        rule_id: rule_id.unwrap_or_default(),
        value,
        stream_type,
        orig_type,
        term,
        fields,
    }))
}

/// Lowercases a track phrase and collapses its spaces; hashtag rules get `#` on every term
/// (a value already stored as `#x` stays `#x`, so it matches `#x`).
pub fn normalize_phrase(value: &str, orig_type: Option<OrigType>) -> Result<String, RuleProblem> {
    let hashtag = orig_type == Some(OrigType::Hashtag);
    let terms: Vec<String> = value
        .split_whitespace()
        .map(|term| {
            let lower = term.to_lowercase();
            if hashtag && !lower.starts_with('#') {
                format!("#{lower}")
            } else {
                lower
            }
        })
        .collect();
    let phrase = terms.join(" ");
    if phrase.is_empty() || phrase.chars().all(|c| c == '#') {
        return Err(RuleProblem::EmptyPhrase);
    }
    if phrase.contains(',') {
        return Err(RuleProblem::PhraseHasComma);
    }
    if phrase.chars().any(char::is_control) {
        return Err(RuleProblem::PhraseHasControlCharacter);
    }
    if phrase.len() > MAX_TRACK_PHRASE_BYTES {
        return Err(RuleProblem::PhraseTooLong(phrase.len()));
    }
    Ok(phrase)
}

/// Orders rule ids numerically when both are numbers, else as text, so plans never depend on
/// Redis scan order.
pub fn compare_rule_ids(a: &str, b: &str) -> Ordering {
    match (a.parse::<u128>(), b.parse::<u128>()) {
        (Ok(x), Ok(y)) => x.cmp(&y).then_with(|| a.cmp(b)),
        (Ok(_), Err(_)) => Ordering::Less,
        (Err(_), Ok(_)) => Ordering::Greater,
        (Err(_), Err(_)) => a.cmp(b),
    }
}

/// The valid rules of one source, sorted by rule id, and an error for each rule left out.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct RuleSet {
    pub rules: Vec<Rule>,
    pub errors: Vec<RuleError>,
}

impl RuleSet {
    /// Parses many hashes; `source` is paired with each hash (e.g. its Redis key) for errors.
    pub fn from_hashes<I>(hashes: I, slot_type: Option<StreamType>) -> RuleSet
    where
        I: IntoIterator<Item = (Option<String>, Vec<(String, String)>)>,
    {
        let mut set = RuleSet::default();
        for (source, fields) in hashes {
            match parse_rule(fields, slot_type) {
                Ok(rule) => set.rules.push(rule),
                Err(mut error) => {
                    error.source = source;
                    set.errors.push(error);
                }
            }
        }
        set.sort();
        set
    }

    fn sort(&mut self) {
        self.rules.sort_by(|a, b| {
            compare_rule_ids(&a.rule_id, &b.rule_id).then_with(|| a.value.cmp(&b.value))
        });
    }

    pub fn is_empty(&self) -> bool {
        self.rules.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fields(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    fn fixture(name: &str) -> serde_json::Value {
        let path = format!(
            "{}/../tests/fixtures/traptor-v4/{name}",
            env!("CARGO_MANIFEST_DIR")
        );
        serde_json::from_str(&std::fs::read_to_string(&path).expect(&path)).unwrap()
    }

    #[test]
    fn parses_the_original_fixtures_with_numeric_rule_ids() {
        for (file, slot, term) in [
            (
                "track_rules.json",
                StreamType::Track,
                FilterTerm::Phrase("happy".into()),
            ),
            (
                "follow_rules.json",
                StreamType::Follow,
                FilterTerm::UserId(17919972),
            ),
            (
                "locations_rules.json",
                StreamType::Locations,
                FilterTerm::Box(BoundingBox {
                    sw_lon: -122.75,
                    sw_lat: 36.8,
                    ne_lon: -121.75,
                    ne_lat: 37.8,
                }),
            ),
        ] {
            let rule = parse_rule(fields_from_json(&fixture(file)).unwrap(), Some(slot)).unwrap();
            assert_eq!(rule.term, term, "{file}");
            assert!(rule.rule_id.starts_with("1234"), "{file}: {}", rule.rule_id);
            assert_eq!(rule.field("tag"), Some("test"));
            assert_eq!(rule.field("rule_id"), Some(rule.rule_id.as_str()));
        }
    }

    #[test]
    fn json_rules_keep_their_field_order_for_the_output() {
        let fields = fields_from_json(&fixture("track_rules.json")).unwrap();
        let names: Vec<&str> = fields.iter().map(|(k, _)| k.as_str()).collect();
        assert_eq!(
            names,
            [
                "tag",
                "value",
                "status",
                "description",
                "appid",
                "date_added",
                "orig_type",
                "rule_type",
                "rule_id"
            ]
        );
        assert_eq!(fields.last().unwrap().1, "12347");
    }

    #[test]
    fn normalizes_as_the_original_filter_string_test() {
        // test_ensure_traptor_builds_the_correct_filter_string
        let cases = [
            ("happy", "keyword", "happy"),
            ("summer", "hashtag", "#summer"),
            ("#apple", "hashtag", "#apple"),
            ("#sliding door", "hashtag", "#sliding #door"),
            ("summer", "hashtag", "#summer"),
            ("今日中国", "keyword", "今日中国"),
        ];
        for (i, (value, orig, expected)) in cases.iter().enumerate() {
            let id = i.to_string();
            let rule = parse_rule(
                fields(&[("rule_id", &id), ("value", value), ("orig_type", orig)]),
                Some(StreamType::Track),
            )
            .unwrap();
            assert_eq!(rule.term, FilterTerm::Phrase(expected.to_string()));
        }
    }

    #[test]
    fn a_rule_without_orig_type_takes_its_slot_type() {
        let rule = parse_rule(
            fields(&[("rule_id", "1"), ("value", "Python")]),
            Some(StreamType::Track),
        )
        .unwrap();
        assert_eq!(rule.stream_type, StreamType::Track);
        assert_eq!(rule.term, FilterTerm::Phrase("python".into()));
    }

    #[test]
    fn clones_share_one_rule_and_a_changed_rule_is_a_new_one() {
        let rule = parse_rule(
            fields(&[("rule_id", "1"), ("value", "rust"), ("status", "active")]),
            Some(StreamType::Track),
        )
        .unwrap();
        let held_elsewhere = rule.clone();
        assert!(Arc::ptr_eq(&rule.0, &held_elsewhere.0));

        let paused = rule.with_fields(fields(&[("rule_id", "1"), ("status", "paused")]));
        assert!(!Arc::ptr_eq(&rule.0, &paused.0));
        assert_eq!(paused.field("status"), Some("paused"));
        assert_eq!(
            rule.field("status"),
            Some("active"),
            "the original is unchanged"
        );
        assert_eq!(paused.term, rule.term);
        assert_ne!(paused, rule);
    }

    #[test]
    fn each_bad_rule_gets_an_error_that_names_it() {
        let long = "x".repeat(61);
        // The rule's fields, the slot's type, and what the error must say.
        type Case<'a> = (Vec<(String, String)>, StreamType, &'a str);
        let cases: Vec<Case> = vec![
            (
                fields(&[("value", "a")]),
                StreamType::Track,
                "`rule_id` is missing",
            ),
            (
                fields(&[("rule_id", "7")]),
                StreamType::Track,
                "`value` is missing",
            ),
            (
                fields(&[("rule_id", "7"), ("value", "  ")]),
                StreamType::Track,
                "empty",
            ),
            (
                fields(&[("rule_id", "7"), ("value", &long)]),
                StreamType::Track,
                "61 bytes",
            ),
            (
                fields(&[("rule_id", "7"), ("value", "a,b")]),
                StreamType::Track,
                "comma",
            ),
            (
                fields(&[("rule_id", "7"), ("value", "a\0b")]),
                StreamType::Track,
                "control character",
            ),
            (
                fields(&[("rule_id", "7"), ("value", "cnn")]),
                StreamType::Follow,
                "not a numeric user id",
            ),
            (
                fields(&[("rule_id", "7"), ("value", "-12")]),
                StreamType::Follow,
                "not a numeric user id",
            ),
            (
                fields(&[("rule_id", "7"), ("value", "1,2,3")]),
                StreamType::Locations,
                "four numbers",
            ),
            (
                fields(&[("rule_id", "7"), ("value", "1,2,x,4")]),
                StreamType::Locations,
                "not a number",
            ),
            (
                fields(&[("rule_id", "7"), ("value", "-190,2,3,4")]),
                StreamType::Locations,
                "outside [-180, 180]",
            ),
            (
                fields(&[("rule_id", "7"), ("value", "1,95,3,96")]),
                StreamType::Locations,
                "outside [-90, 90]",
            ),
            (
                fields(&[("rule_id", "7"), ("value", "3,4,1,2")]),
                StreamType::Locations,
                "south-west",
            ),
            (
                fields(&[("rule_id", "7"), ("value", "a"), ("orig_type", "emoji")]),
                StreamType::Track,
                "unknown type",
            ),
            (
                fields(&[("rule_id", "7"), ("value", "a"), ("orig_type", "geo")]),
                StreamType::Track,
                "locations rule",
            ),
            (
                fields(&[("rule_id", "7"), ("value", "a"), ("status", "paused")]),
                StreamType::Track,
                "not \"active\"",
            ),
        ];
        for (f, slot, expected) in cases {
            let err = parse_rule(f.clone(), Some(slot)).unwrap_err();
            let text = err.to_string();
            assert!(text.contains(expected), "{f:?}: {text}");
            if f.iter().any(|(k, _)| k == "rule_id") {
                assert!(text.starts_with("rule 7"), "{text}");
            }
        }
    }

    #[test]
    fn errors_quote_only_an_excerpt_of_a_huge_value() {
        let huge = "9x".repeat(500_000);
        let err = parse_rule(
            fields(&[("rule_id", "7"), ("value", &huge)]),
            Some(StreamType::Follow),
        )
        .unwrap_err();
        let text = err.to_string();
        assert!(text.len() < 300, "{} bytes", text.len());
        assert!(text.contains("(1000000 bytes)"), "{text}");
    }

    #[test]
    fn a_track_phrase_of_exactly_60_bytes_is_accepted() {
        let value = "é".repeat(30); // 60 bytes, 30 characters
        assert!(parse_rule(
            fields(&[("rule_id", "1"), ("value", &value)]),
            Some(StreamType::Track)
        )
        .is_ok());
        let value = format!("{}e", "é".repeat(30));
        assert!(parse_rule(
            fields(&[("rule_id", "1"), ("value", &value)]),
            Some(StreamType::Track)
        )
        .is_err());
    }

    #[test]
    fn rule_sets_keep_good_rules_sort_by_id_and_report_bad_ones() {
        let hashes = vec![
            (
                Some("traptor-track:0:b".to_string()),
                fields(&[("rule_id", "10"), ("value", "ten")]),
            ),
            (
                Some("traptor-track:0:c".to_string()),
                fields(&[("rule_id", "9"), ("value", "")]),
            ),
            (
                Some("traptor-track:0:a".to_string()),
                fields(&[("rule_id", "2"), ("value", "two")]),
            ),
        ];
        let set = RuleSet::from_hashes(hashes, Some(StreamType::Track));
        let ids: Vec<_> = set.rules.iter().map(|r| r.rule_id.as_str()).collect();
        assert_eq!(ids, ["2", "10"]);
        assert_eq!(set.errors.len(), 1);
        assert_eq!(
            set.errors[0].to_string(),
            "rule 9 (traptor-track:0:c): the track phrase is empty"
        );
    }

    #[test]
    fn slot_ids_round_trip_through_keys_and_notices() {
        let slot = SlotId::from_rule_key("traptor-follow:3:12345").unwrap();
        assert_eq!(slot, SlotId::new(StreamType::Follow, "3"));
        assert_eq!(slot.heartbeat_key(), "follow:3:heartbeat");
        assert_eq!(slot.rule_key_prefix(), "traptor-follow:3:");
        assert_eq!(SlotId::from_notice("follow:3"), Some(slot.clone()));
        assert_eq!(SlotId::from_notice("follow:3:extra"), Some(slot));
        assert_eq!(SlotId::from_notice("nonsense"), None);
        assert_eq!(SlotId::from_rule_key("traptor-bogus:1:2"), None);
    }
}
