//! Locations matching: which boxes a tweet falls in, the way the streaming API selects.
//!
//! The tweet's own `coordinates` (a GeoJSON `[lon, lat]` point) are tested first: inside a box
//! (edges included) matches. Only when the tweet has no coordinates is its `place.bounding_box`
//! tested, and any overlap with a box matches. The `geo` field is ignored, as by the API.
//!
//! Only the tweet's own fields are read, never those of the status it retweets or quotes: the
//! API does not select native retweets by location, and a retweet's own geo fields are empty.

use crate::rules::BoundingBox;

use super::tweet::TweetView;

/// The boxes of a rule set (a connection carries at most 25, so a list is the fastest index).
#[derive(Debug, Default, Clone)]
pub struct LocationIndex {
    boxes: Vec<(BoundingBox, Vec<usize>)>,
}

impl LocationIndex {
    pub fn add(&mut self, area: BoundingBox, rule: usize) {
        match self.boxes.iter_mut().find(|(b, _)| *b == area) {
            Some((_, rules)) => rules.push(rule),
            None => self.boxes.push((area, vec![rule])),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.boxes.is_empty()
    }

    /// Appends the rules of every box `tweet` falls in to `out` (unsorted).
    pub fn collect(&self, tweet: &TweetView<'_>, out: &mut Vec<usize>) {
        if let Some((lon, lat)) = tweet.coordinates {
            for (area, rules) in &self.boxes {
                if area.contains(lon, lat) {
                    out.extend_from_slice(rules);
                }
            }
        } else if let Some(place) = tweet.place_bounds {
            let place = BoundingBox {
                sw_lon: place.min_lon,
                sw_lat: place.min_lat,
                ne_lon: place.max_lon,
                ne_lat: place.max_lat,
            };
            for (area, rules) in &self.boxes {
                if area.intersects(&place) {
                    out.extend_from_slice(rules);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bay_area_and_nyc() -> LocationIndex {
        let mut index = LocationIndex::default();
        index.add(BoundingBox::parse("-122.75,36.8,-121.75,37.8").unwrap(), 0);
        index.add(BoundingBox::parse("-74,40,-73,41").unwrap(), 1);
        index.add(BoundingBox::parse("-74,40,-73,41").unwrap(), 2);
        index
    }

    fn matched(tweet_json: &str) -> Vec<usize> {
        let tweet: TweetView = serde_json::from_str(tweet_json).unwrap();
        let mut out = Vec::new();
        bay_area_and_nyc().collect(&tweet, &mut out);
        out
    }

    fn place(coords: &str) -> String {
        format!(r#"{{"place":{{"bounding_box":{{"type":"Polygon","coordinates":[{coords}]}}}}}}"#)
    }

    #[test]
    fn coordinates_inside_a_box_match_edges_included() {
        assert_eq!(
            matched(r#"{"coordinates":{"type":"Point","coordinates":[-122.4,37.7]}}"#),
            [0]
        );
        assert_eq!(
            matched(r#"{"coordinates":{"type":"Point","coordinates":[-74,40.5]}}"#),
            [1, 2]
        );
        assert!(
            matched(r#"{"coordinates":{"type":"Point","coordinates":[2.35,48.85]}}"#).is_empty()
        );
    }

    #[test]
    fn coordinates_win_over_the_place() {
        let tweet = r#"{"coordinates":{"type":"Point","coordinates":[2.35,48.85]},
            "place":{"bounding_box":{"type":"Polygon","coordinates":[[[-122.1,37.3],[-122.1,37.4],[-122.0,37.4],[-122.0,37.3]]]}}}"#;
        assert!(matched(tweet).is_empty());
    }

    #[test]
    fn a_place_overlapping_a_box_matches() {
        // Fully inside, partly overlapping, and a state-sized place containing the box.
        assert_eq!(
            matched(&place(
                "[[-122.07,37.33],[-122.07,37.43],[-121.98,37.43],[-121.98,37.33]]"
            )),
            [0]
        );
        assert_eq!(
            matched(&place(
                "[[-121.8,37.7],[-121.8,38.5],[-121.0,38.5],[-121.0,37.7]]"
            )),
            [0]
        );
        assert_eq!(
            matched(&place(
                "[[-124.4,32.5],[-124.4,42.0],[-114.1,42.0],[-114.1,32.5]]"
            )),
            [0]
        );
        assert!(matched(&place("[[2.2,48.8],[2.2,48.9],[2.4,48.9],[2.4,48.8]]")).is_empty());
    }

    #[test]
    fn geo_and_retweeted_locations_are_ignored() {
        assert!(matched(r#"{"geo":{"type":"Point","coordinates":[37.7,-122.4]}}"#).is_empty());
        let retweet =
            r#"{"retweeted_status":{"coordinates":{"type":"Point","coordinates":[-122.4,37.7]}}}"#;
        assert!(matched(retweet).is_empty());
    }
}
