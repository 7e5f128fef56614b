//! Replay mode: serve the lines of a JSONL archive instead of generated tweets.
//!
//! Each line is offered once (in file order, at the configured rate) to every connection and
//! delivered where a deliberately simple filter accepts it: a track phrase whose terms all occur
//! (case-insensitively) somewhere in the line's raw text; a followed id equal to the author's,
//! the retweeted author's or the replied-to user's id; coordinates inside a box, or a place
//! overlapping one. Lines that are not tweets (delete, limit, ...) go to every connection.
//! This is coarser than the real service (a term inside any field counts): the archive's
//! ground truth is the archive itself.

use std::path::Path;

use bytes::Bytes;
use serde_json::Value;

use crate::generate::{GeoBox, TweetGeo};
use crate::messages::MessageKind;
use crate::params::StreamFilter;

/// One archive line, with what the replay filter looks at.
#[derive(Debug, Clone)]
pub struct ReplayLine {
    pub json: Bytes,
    pub tweet_id: Option<u64>,
    pub kind: MessageKind,
    lowercase: String,
    user_ids: Vec<u64>,
    geo: Option<TweetGeo>,
}

impl ReplayLine {
    /// Whether the line goes to a connection with this filter.
    pub fn selected_by(&self, filter: &StreamFilter) -> bool {
        if self.kind != MessageKind::Tweet {
            return true;
        }
        let track = filter.track.iter().any(|phrase| {
            phrase
                .split_whitespace()
                .all(|term| self.lowercase.contains(&term.to_lowercase()))
        });
        track
            || filter.follow.iter().any(|id| self.user_ids.contains(id))
            || self.geo.is_some_and(|g| g.selected_by(&filter.locations))
    }
}

/// Reads an archive; blank lines are skipped, lines that are not JSON are an error.
pub fn load(path: &Path) -> std::io::Result<Vec<ReplayLine>> {
    let text = std::fs::read_to_string(path).map_err(|e| {
        std::io::Error::new(
            e.kind(),
            format!("cannot read the replay archive {}: {e}", path.display()),
        )
    })?;
    text.lines()
        .enumerate()
        .filter(|(_, line)| !line.trim().is_empty())
        .map(|(n, line)| {
            parse_line(line.trim()).map_err(|e| {
                std::io::Error::new(
                    std::io::ErrorKind::InvalidData,
                    format!(
                        "line {} of {} is not a JSON message: {e}",
                        n + 1,
                        path.display()
                    ),
                )
            })
        })
        .collect()
}

fn parse_line(line: &str) -> Result<ReplayLine, serde_json::Error> {
    let value: Value = serde_json::from_str(line)?;
    let kind = [
        "delete",
        "scrub_geo",
        "limit",
        "status_withheld",
        "user_withheld",
        "disconnect",
        "warning",
    ]
    .iter()
    .zip([
        MessageKind::Delete,
        MessageKind::ScrubGeo,
        MessageKind::Limit,
        MessageKind::StatusWithheld,
        MessageKind::UserWithheld,
        MessageKind::Disconnect,
        MessageKind::Warning,
    ])
    .find(|(key, _)| value.get(**key).is_some())
    .map(|(_, kind)| kind)
    .unwrap_or(MessageKind::Tweet);
    let id = |v: &Value| {
        v.as_u64()
            .or_else(|| v.as_str().and_then(|s| s.parse().ok()))
    };
    let user_ids = [
        value.pointer("/user/id"),
        value.pointer("/retweeted_status/user/id"),
        value.get("in_reply_to_user_id"),
    ]
    .into_iter()
    .flatten()
    .filter_map(id)
    .collect();
    let geo = match value
        .pointer("/coordinates/coordinates")
        .and_then(Value::as_array)
    {
        Some(point) if point.len() == 2 => Some(TweetGeo::Point {
            lon: point[0].as_f64().unwrap_or(f64::NAN),
            lat: point[1].as_f64().unwrap_or(f64::NAN),
        }),
        _ => value
            .pointer("/place/bounding_box/coordinates/0")
            .and_then(Value::as_array)
            .and_then(|ring| {
                let points: Vec<(f64, f64)> = ring
                    .iter()
                    .filter_map(|p| Some((p.get(0)?.as_f64()?, p.get(1)?.as_f64()?)))
                    .collect();
                if points.is_empty() {
                    return None;
                }
                let fold = |f: fn(f64, f64) -> f64, init: f64, pick: fn(&(f64, f64)) -> f64| {
                    points.iter().map(pick).fold(init, f)
                };
                Some(TweetGeo::Place(GeoBox::new(
                    fold(f64::min, f64::INFINITY, |p| p.0),
                    fold(f64::min, f64::INFINITY, |p| p.1),
                    fold(f64::max, f64::NEG_INFINITY, |p| p.0),
                    fold(f64::max, f64::NEG_INFINITY, |p| p.1),
                )))
            }),
    };
    Ok(ReplayLine {
        json: Bytes::copy_from_slice(line.as_bytes()),
        tweet_id: if kind == MessageKind::Tweet {
            value.get("id").and_then(id)
        } else {
            None
        },
        kind,
        lowercase: line.to_lowercase(),
        user_ids,
        geo,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_simple_filter_selects_by_terms_ids_and_boxes() {
        let tweet = parse_line(
            r#"{"id":5,"text":"Rust is GREAT","user":{"id":77},"coordinates":{"type":"Point","coordinates":[-73.5,40.5]}}"#,
        )
        .unwrap();
        assert_eq!(tweet.tweet_id, Some(5));
        let filter = |track: &[&str], follow: &[u64], boxes: &[GeoBox]| StreamFilter {
            track: track.iter().map(|s| s.to_string()).collect(),
            follow: follow.to_vec(),
            locations: boxes.to_vec(),
            ..StreamFilter::default()
        };
        assert!(tweet.selected_by(&filter(&["great rust"], &[], &[])));
        assert!(!tweet.selected_by(&filter(&["rust python"], &[], &[])));
        assert!(tweet.selected_by(&filter(&[], &[77], &[])));
        assert!(tweet.selected_by(&filter(&[], &[], &[GeoBox::new(-74.0, 40.0, -73.0, 41.0)])));
        assert!(!tweet.selected_by(&filter(&[], &[78], &[GeoBox::new(2.0, 48.0, 3.0, 49.0)])));
        let delete = parse_line(r#"{"delete":{"status":{"id":5,"user_id":77}}}"#).unwrap();
        assert_eq!(delete.kind, MessageKind::Delete);
        assert!(delete.selected_by(&filter(&["anything"], &[], &[])));
    }
}
