//! Bounding boxes and the geo facts of a generated tweet.

use serde::{Deserialize, Serialize};

/// A lon/lat rectangle, south-west corner first, as the `locations` parameter gives it.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct GeoBox {
    pub west: f64,
    pub south: f64,
    pub east: f64,
    pub north: f64,
}

impl GeoBox {
    pub fn new(west: f64, south: f64, east: f64, north: f64) -> GeoBox {
        GeoBox {
            west,
            south,
            east,
            north,
        }
    }

    pub fn contains(&self, lon: f64, lat: f64) -> bool {
        (self.west..=self.east).contains(&lon) && (self.south..=self.north).contains(&lat)
    }

    /// Any overlap, the rule the streaming API applies to a tweet's place.
    pub fn overlaps(&self, other: &GeoBox) -> bool {
        self.west <= other.east
            && other.west <= self.east
            && self.south <= other.north
            && other.south <= self.north
    }
}

/// Where a tweet says it is: the fact location routing works from.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum TweetGeo {
    /// `coordinates` is set (and a place around it).
    Point { lon: f64, lat: f64 },
    /// Only `place` is set, with this bounding box.
    Place(GeoBox),
}

impl TweetGeo {
    /// Whether the streaming API would select this tweet for a connection with `boxes`.
    pub fn selected_by(&self, boxes: &[GeoBox]) -> bool {
        match self {
            TweetGeo::Point { lon, lat } => boxes.iter().any(|b| b.contains(*lon, *lat)),
            TweetGeo::Place(place) => boxes.iter().any(|b| b.overlaps(place)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn containment_and_overlap() {
        let nyc = GeoBox::new(-74.0, 40.0, -73.0, 41.0);
        assert!(nyc.contains(-73.5, 40.5));
        assert!(!nyc.contains(-72.9, 40.5));
        assert!(nyc.overlaps(&GeoBox::new(-73.1, 40.9, -72.0, 42.0)));
        assert!(!nyc.overlaps(&GeoBox::new(-72.9, 40.0, -72.0, 41.0)));
        assert!(TweetGeo::Point {
            lon: -73.5,
            lat: 40.5
        }
        .selected_by(&[nyc]));
        assert!(!TweetGeo::Point {
            lon: 2.3,
            lat: 48.8
        }
        .selected_by(&[nyc]));
    }
}
