//! Follow matching: which followed accounts a tweet involves, the way the streaming API selects.
//!
//! A followed user id matches a tweet when it is:
//! - the author (`user.id_str`): tweets by the user, and retweets *by* the user (the retweet's
//!   top-level author is the retweeter);
//! - the author of the retweeted status (`retweeted_status.user.id_str`): retweets *of* the user;
//! - the replied-to user (`in_reply_to_user_id_str`): replies to the user;
//! - the author of the quoted status (`quoted_status.user.id_str`): not in the API's list, but
//!   taken for recall, so that a quote the server delivered for this user is never "Not Found".
//!
//! Mentions do not match (the API does not deliver on mentions), nor do deeper embeddings.

use super::fast_hash::FxHashMap;
use super::tweet::{Text, TweetView};

/// The followed ids of a rule set, with the rules asking for each.
#[derive(Debug, Default, Clone)]
pub struct FollowIndex {
    rules_by_user: FxHashMap<u64, Vec<usize>>,
}

impl FollowIndex {
    pub fn add(&mut self, user_id: u64, rule: usize) {
        self.rules_by_user.entry(user_id).or_default().push(rule);
    }

    pub fn is_empty(&self) -> bool {
        self.rules_by_user.is_empty()
    }

    /// Appends the rules of every followed user `tweet` involves to `out` (unsorted, may repeat).
    pub fn collect(&self, tweet: &TweetView<'_>, out: &mut Vec<usize>) {
        if self.rules_by_user.is_empty() {
            return;
        }
        for id in involved_users(tweet) {
            if let Some(rules) = id
                .parse::<u64>()
                .ok()
                .and_then(|id| self.rules_by_user.get(&id))
            {
                out.extend_from_slice(rules);
            }
        }
    }
}

/// The user ids (as sent) whose follow rules `tweet` matches; see the module doc.
pub fn involved_users<'t>(tweet: &'t TweetView<'_>) -> impl Iterator<Item = &'t str> {
    let author = |t: &'t TweetView<'_>| t.user.as_ref().and_then(|u| u.id_str.as_ref());
    let ids: [Option<&'t Text<'_>>; 4] = [
        author(tweet),
        tweet.retweeted_status.as_deref().and_then(author),
        tweet.in_reply_to_user_id_str.as_ref(),
        tweet.quoted_status.as_deref().and_then(author),
    ];
    ids.into_iter().flatten().map(|t| &**t)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn matched(tweet_json: &str) -> Vec<usize> {
        let mut index = FollowIndex::default();
        index.add(17919972, 0);
        index.add(17919972, 5);
        index.add(42, 1);
        let tweet: TweetView = serde_json::from_str(tweet_json).unwrap();
        let mut out = Vec::new();
        index.collect(&tweet, &mut out);
        out.sort_unstable();
        out
    }

    #[test]
    fn tweets_by_the_user_match_every_rule_for_that_user() {
        assert_eq!(matched(r#"{"user":{"id_str":"17919972"}}"#), [0, 5]);
    }

    #[test]
    fn retweets_of_and_by_the_user_match() {
        assert_eq!(
            matched(r#"{"user":{"id_str":"9"},"retweeted_status":{"user":{"id_str":"42"}}}"#),
            [1]
        );
        assert_eq!(
            matched(r#"{"user":{"id_str":"42"},"retweeted_status":{"user":{"id_str":"9"}}}"#),
            [1]
        );
    }

    #[test]
    fn replies_to_the_user_match() {
        assert_eq!(
            matched(r#"{"user":{"id_str":"9"},"in_reply_to_user_id_str":"42"}"#),
            [1]
        );
    }

    #[test]
    fn quotes_of_the_user_match() {
        assert_eq!(
            matched(r#"{"user":{"id_str":"9"},"quoted_status":{"user":{"id_str":"42"}}}"#),
            [1]
        );
    }

    #[test]
    fn mentions_and_unrelated_users_do_not_match() {
        let tweet = r#"{"user":{"id_str":"9"},"in_reply_to_user_id_str":null,
            "entities":{"user_mentions":[{"screen_name":"x","id_str":"42"}]}}"#;
        assert!(matched(tweet).is_empty());
        assert!(matched(r#"{"user":{"id_str":"not a number"}}"#).is_empty());
    }
}
