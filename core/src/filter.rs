//! The filter one streaming connection sends, built from that connection's rules.
//!
//! Several rules may ask for the same normalized term (two hashtag rules `summer` and `#summer`
//! both become `#summer`). The server gets each term once; the filter keeps, per term, the ids
//! of every rule that asked for it so a match can be attributed to all of them. Terms appear in
//! rule-id order, never in the order Redis happened to return the rules.

use std::cmp::Ordering;
use std::collections::HashMap;

use crate::rules::{compare_rule_ids, FilterTerm, Rule, StreamType};

/// One connection's filter: unique normalized terms in rule-id order, each with the ids of the
/// rules that asked for it.
#[derive(Debug, Clone, PartialEq)]
pub struct Filter {
    pub stream_type: StreamType,
    pub entries: Vec<FilterEntry>,
}

/// One term of the filter and the rules that share it (their ids in rule-id order).
#[derive(Debug, Clone, PartialEq)]
pub struct FilterEntry {
    pub term: FilterTerm,
    pub rule_ids: Vec<String>,
}

impl Filter {
    /// Builds the filter of `rules`. Equal terms (boxes compare by their canonical text) are
    /// merged into one entry that keeps every rule id. Rules of another stream type cannot be
    /// sent on this connection and are skipped; the planner reports them before they get here.
    pub fn from_rules(stream_type: StreamType, rules: &[Rule]) -> Filter {
        let mut ordered: Vec<&Rule> = rules
            .iter()
            .filter(|r| r.term.stream_type() == stream_type)
            .collect();
        ordered.sort_by(|a, b| canonical_rule_order(a, b));

        let mut entries: Vec<FilterEntry> = Vec::new();
        let mut index_of_term: HashMap<String, usize> = HashMap::new();
        for rule in ordered {
            let key = rule.term.to_filter_value();
            match index_of_term.get(&key) {
                Some(&i) => {
                    let ids = &mut entries[i].rule_ids;
                    // The same rule id stored under two Redis keys is still one rule to attribute.
                    if ids.last() != Some(&rule.rule_id) {
                        ids.push(rule.rule_id.clone());
                    }
                }
                None => {
                    index_of_term.insert(key, entries.len());
                    entries.push(FilterEntry {
                        term: rule.term.clone(),
                        rule_ids: vec![rule.rule_id.clone()],
                    });
                }
            }
        }
        Filter {
            stream_type,
            entries,
        }
    }

    /// The number of unique terms: what counts against the connection limit.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// The unique terms in order.
    pub fn terms(&self) -> impl Iterator<Item = &FilterTerm> {
        self.entries.iter().map(|e| &e.term)
    }

    /// The comma-separated value of the `track=` / `follow=` / `locations=` parameter.
    pub fn value(&self) -> String {
        let values: Vec<String> = self.terms().map(FilterTerm::to_filter_value).collect();
        values.join(",")
    }

    /// The form the connection POSTs: the filter itself, stall warnings on, and length-delimited
    /// messages (so a frame's end is known without trusting newlines alone).
    pub fn form_params(&self) -> Vec<(&'static str, String)> {
        vec![
            (self.stream_type.as_str(), self.value()),
            ("stall_warnings", "true".to_owned()),
            ("delimited", "length".to_owned()),
        ]
    }
}

/// The one order every plan and filter uses for rules: by rule id (numerically when numeric),
/// then by value and fields, so that two rules never compare equal unless they are identical and
/// the input order can never show through.
pub(crate) fn canonical_rule_order(a: &Rule, b: &Rule) -> Ordering {
    compare_rule_ids(&a.rule_id, &b.rule_id)
        .then_with(|| a.value.cmp(&b.value))
        .then_with(|| a.fields.cmp(&b.fields))
        .then_with(|| a.term.to_filter_value().cmp(&b.term.to_filter_value()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rules::{fields_from_json, parse_rule};

    fn fixture_rule(name: &str, slot: StreamType) -> Rule {
        let path = format!(
            "{}/../tests/fixtures/traptor-v4/{name}",
            env!("CARGO_MANIFEST_DIR")
        );
        let json: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(&path).expect(&path)).unwrap();
        parse_rule(fields_from_json(&json).unwrap(), Some(slot)).unwrap()
    }

    fn rule(id: &str, value: &str, orig_type: &str) -> Rule {
        let fields = vec![
            ("rule_id".to_owned(), id.to_owned()),
            ("value".to_owned(), value.to_owned()),
            ("orig_type".to_owned(), orig_type.to_owned()),
        ];
        parse_rule(fields, None).unwrap()
    }

    #[test]
    fn fixture_rules_give_the_original_filter_strings() {
        // test_twitter_rules of the original
        for (file, stream_type, expected) in [
            ("track_rules.json", StreamType::Track, "happy"),
            ("follow_rules.json", StreamType::Follow, "17919972"),
            (
                "locations_rules.json",
                StreamType::Locations,
                "-122.75,36.8,-121.75,37.8",
            ),
        ] {
            let filter = Filter::from_rules(stream_type, &[fixture_rule(file, stream_type)]);
            assert_eq!(filter.value(), expected, "{file}");
            assert_eq!(
                filter.form_params()[0],
                (stream_type.as_str(), expected.to_owned())
            );
        }
    }

    #[test]
    fn normalizes_and_merges_as_the_original_filter_string_test() {
        // test_ensure_traptor_builds_the_correct_filter_string of the original
        let rules = vec![
            rule("1", "happy", "keyword"),
            rule("2", "summer", "hashtag"),
            rule("3", "#apple", "hashtag"),
            rule("4", "#sliding door", "hashtag"),
            rule("5", "summer", "hashtag"),
            rule("6", "今日中国", "keyword"),
        ];
        let filter = Filter::from_rules(StreamType::Track, &rules);
        let mut terms: Vec<String> = filter.terms().map(FilterTerm::to_filter_value).collect();
        assert_eq!(
            filter.value(),
            "happy,#summer,#apple,#sliding #door,今日中国"
        );
        terms.sort();
        assert_eq!(
            terms,
            ["#apple", "#sliding #door", "#summer", "happy", "今日中国"]
        );
        let summer = filter
            .entries
            .iter()
            .find(|e| e.term == FilterTerm::Phrase("#summer".into()))
            .unwrap();
        assert_eq!(summer.rule_ids, ["2", "5"]);
    }

    #[test]
    fn terms_follow_rule_id_order_not_input_order() {
        let rules = vec![
            rule("10", "ten", "keyword"),
            rule("9", "nine", "keyword"),
            rule("x", "ten", "keyword"),
        ];
        let filter = Filter::from_rules(StreamType::Track, &rules);
        assert_eq!(filter.value(), "nine,ten");
        assert_eq!(filter.entries[1].rule_ids, ["10", "x"]);
        let mut reversed = rules.clone();
        reversed.reverse();
        assert_eq!(Filter::from_rules(StreamType::Track, &reversed), filter);
    }

    #[test]
    fn equal_boxes_merge_by_canonical_text() {
        let a = rule("1", "-122.75,36.8,-121.75,37.8", "geo");
        let b = rule("2", " -122.750, 36.80 ,-121.75,37.8", "geo");
        let filter = Filter::from_rules(StreamType::Locations, &[b, a]);
        assert_eq!(filter.len(), 1);
        assert_eq!(filter.entries[0].rule_ids, ["1", "2"]);
    }

    #[test]
    fn form_asks_for_stall_warnings_and_length_delimited_messages() {
        let filter = Filter::from_rules(
            StreamType::Follow,
            &[rule("1", "12", "userid"), rule("2", "34", "userid")],
        );
        assert_eq!(
            filter.form_params(),
            vec![
                ("follow", "12,34".to_owned()),
                ("stall_warnings", "true".to_owned()),
                ("delimited", "length".to_owned()),
            ]
        );
    }

    #[test]
    fn rules_of_another_type_are_not_sent() {
        let filter = Filter::from_rules(
            StreamType::Track,
            &[rule("1", "12", "userid"), rule("2", "a", "keyword")],
        );
        assert_eq!(filter.value(), "a");
        assert!(!filter.is_empty());
        assert!(Filter::from_rules(StreamType::Locations, &[rule("2", "a", "keyword")]).is_empty());
    }
}
