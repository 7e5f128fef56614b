//! Which rules a tweet matched, decided the way the streaming API selects tweets.
//!
//! The server sends the union of a connection's rules; traptor must tell which of them each tweet
//! matched. [`Matcher`] indexes rules of any stream type and answers with the indexes of the
//! matched rules. Its cost per tweet does not grow with the number of rules: track phrases are
//! indexed by term ([`track`]), followed ids sit in a hash table ([`follow`]), and boxes are few
//! ([`locations`]). Recall comes first: where the API's documented behaviour leaves room, the
//! matcher attributes generously, so that a tweet the server delivered never comes out unmatched.

mod fast_hash;
pub mod follow;
pub mod json_skim;
pub mod locations;
mod term_table;
mod text_classes;
pub mod track;
pub mod tweet;
pub mod tweet_skim;

use crate::rules::{FilterTerm, Rule};

pub use follow::FollowIndex;
pub use locations::LocationIndex;
pub use track::TrackIndex;
pub use tweet::TweetView;

/// An index of a rule set, built once per rule change and consulted for every tweet.
#[derive(Debug, Default, Clone)]
pub struct Matcher {
    track: TrackIndex,
    follow: FollowIndex,
    locations: LocationIndex,
    rule_count: usize,
}

impl Matcher {
    /// Indexes `rules` by their filter terms; a match reports positions in this slice.
    pub fn new(rules: &[Rule]) -> Matcher {
        let mut matcher = Matcher {
            rule_count: rules.len(),
            ..Matcher::default()
        };
        for (i, rule) in rules.iter().enumerate() {
            match &rule.term {
                FilterTerm::Phrase(phrase) => matcher.track.add(phrase, i),
                FilterTerm::UserId(id) => matcher.follow.add(*id, i),
                FilterTerm::Box(area) => matcher.locations.add(*area, i),
            }
        }
        matcher
    }

    /// The indexes (into the rules given to [`Matcher::new`]) of the rules `tweet` matches,
    /// ascending, without repeats.
    pub fn matches(&self, tweet: &TweetView<'_>) -> Vec<usize> {
        let mut out = Vec::new();
        self.track.collect(tweet, &mut out);
        self.follow.collect(tweet, &mut out);
        self.locations.collect(tweet, &mut out);
        if out.len() > 1 {
            out.sort_unstable();
            out.dedup();
        }
        out
    }

    /// How many rules were indexed.
    pub fn rule_count(&self) -> usize {
        self.rule_count
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rules::{fields_from_json, parse_rule};

    fn rule(json: serde_json::Value) -> Rule {
        parse_rule(fields_from_json(&json).unwrap(), None).unwrap()
    }

    fn fixture_tweet(name: &str) -> String {
        let path = format!(
            "{}/../tests/fixtures/traptor-v4/{name}",
            env!("CARGO_MANIFEST_DIR")
        );
        std::fs::read_to_string(&path).expect(&path)
    }

    fn fixture_rules() -> Vec<Rule> {
        [
            "track_rules.json",
            "follow_rules.json",
            "locations_rules.json",
        ]
        .iter()
        .map(|f| rule(serde_json::from_str(&fixture_tweet(f)).unwrap()))
        .collect()
    }

    #[test]
    fn each_fixture_tweet_matches_the_rules_the_original_expected() {
        let matcher = Matcher::new(&fixture_rules());
        let matches = |name: &str| {
            let json = fixture_tweet(name);
            let tweet: TweetView = serde_json::from_str(&json).unwrap();
            matcher.matches(&tweet)
        };
        // 0 = track `happy`, 1 = follow 17919972, 2 = locations around San Francisco.
        assert_eq!(matches("track_tweet.json"), [0]);
        // The follow fixture says "I'm very happy", so the track rule matches too.
        assert_eq!(matches("follow_tweet.json"), [0, 1]);
        assert_eq!(matches("locations_tweet.json"), [2]);
        assert_eq!(matches("no_match_tweet.json"), Vec::<usize>::new());
    }

    #[test]
    fn hashtag_rules_match_hashtags_only() {
        let rules = [
            rule(serde_json::json!({"rule_id": "1", "value": "summer", "orig_type": "hashtag"})),
            rule(serde_json::json!({"rule_id": "2", "value": "#apple", "orig_type": "hashtag"})),
        ];
        let matcher = Matcher::new(&rules);
        let tweet: TweetView = serde_json::from_str(
            r#"{"text":"summer apple","entities":{"hashtags":[{"text":"Apple"}]}}"#,
        )
        .unwrap();
        assert_eq!(matcher.matches(&tweet), [1]);
    }

    #[test]
    fn matches_are_sorted_and_unique_across_stream_types() {
        let rules = [
            rule(serde_json::json!({"rule_id": "1", "value": "42", "rule_type": "follow"})),
            rule(serde_json::json!({"rule_id": "2", "value": "rust", "rule_type": "track"})),
            rule(serde_json::json!({"rule_id": "3", "value": "rust", "rule_type": "track"})),
            rule(serde_json::json!({"rule_id": "4", "value": "42", "rule_type": "follow"})),
        ];
        let matcher = Matcher::new(&rules);
        let tweet: TweetView = serde_json::from_str(
            r#"{"text":"Rust rust","user":{"id_str":"42"},"in_reply_to_user_id_str":"42"}"#,
        )
        .unwrap();
        assert_eq!(matcher.matches(&tweet), [0, 1, 2, 3]);
        assert_eq!(matcher.rule_count(), 4);
    }
}
