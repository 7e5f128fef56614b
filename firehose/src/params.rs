//! The filter parameters of one connection, validated the way the real endpoint does.
//!
//! Deliberately independent of traptor's own rule parsing: the emulator is the server side and
//! must judge a client's request on its own.

use serde::Serialize;

use crate::generate::{FilterLevel, GeoBox};

/// Limits of the default access level.
pub const MAX_TRACK_PHRASES: usize = 400;
pub const MAX_FOLLOW_IDS: usize = 5_000;
pub const MAX_LOCATION_BOXES: usize = 25;
pub const MAX_PHRASE_BYTES: usize = 60;

/// What a connection asked for.
#[derive(Debug, Clone, Default, Serialize)]
pub struct StreamFilter {
    /// Track phrases as sent (trimmed).
    pub track: Vec<String>,
    pub follow: Vec<u64>,
    pub locations: Vec<GeoBox>,
    /// `delimited=length`.
    pub delimited: bool,
    pub stall_warnings: bool,
    /// `language` codes, lowercased; empty means any.
    pub language: Vec<String>,
    pub filter_level: FilterLevel,
}

/// Why the parameters were refused: 406 (invalid) or 413 (too many).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ParamError {
    NotAcceptable(String),
    TooLong(String),
}

impl ParamError {
    pub fn status(&self) -> u16 {
        match self {
            ParamError::NotAcceptable(_) => 406,
            ParamError::TooLong(_) => 413,
        }
    }

    pub fn message(&self) -> &str {
        match self {
            ParamError::NotAcceptable(m) | ParamError::TooLong(m) => m,
        }
    }
}

/// A phrase as routing compares it: lowercase terms separated by single spaces.
pub fn phrase_key(phrase: &str) -> String {
    phrase
        .split_whitespace()
        .map(str::to_lowercase)
        .collect::<Vec<_>>()
        .join(" ")
}

impl StreamFilter {
    /// Validates the decoded form and query parameters (later duplicates win).
    pub fn from_params(params: &[(String, String)]) -> Result<StreamFilter, ParamError> {
        let get = |name: &str| {
            params
                .iter()
                .rev()
                .find(|(k, _)| k == name)
                .map(|(_, v)| v.as_str())
        };
        let mut filter = StreamFilter::default();
        let not_acceptable = |m: String| Err(ParamError::NotAcceptable(m));

        if let Some(track) = get("track") {
            for (i, phrase) in track.split(',').enumerate() {
                let phrase = phrase.trim();
                if phrase.is_empty() {
                    return not_acceptable(format!(
                        "Parameter track item index {i} too short: the phrase is empty"
                    ));
                }
                if phrase.len() > MAX_PHRASE_BYTES {
                    return not_acceptable(format!(
                        "Parameter track item index {i} too long ({} bytes, at most {MAX_PHRASE_BYTES}): {phrase}",
                        phrase.len()
                    ));
                }
                filter.track.push(phrase.to_owned());
            }
            if filter.track.len() > MAX_TRACK_PHRASES {
                return Err(ParamError::TooLong(format!(
                    "Parameter track has {} phrases, at most {MAX_TRACK_PHRASES} are allowed",
                    filter.track.len()
                )));
            }
        }
        if let Some(follow) = get("follow") {
            for (i, id) in follow.split(',').enumerate() {
                match id.trim().parse::<u64>() {
                    Ok(n) if n > 0 => filter.follow.push(n),
                    _ => {
                        return not_acceptable(format!(
                            "Parameter follow item index {i} is not a user id: {id:?}"
                        ))
                    }
                }
            }
            if filter.follow.len() > MAX_FOLLOW_IDS {
                return Err(ParamError::TooLong(format!(
                    "Parameter follow has {} user ids, at most {MAX_FOLLOW_IDS} are allowed",
                    filter.follow.len()
                )));
            }
        }
        if let Some(locations) = get("locations") {
            filter.locations = parse_boxes(locations)?;
        }
        if filter.track.is_empty() && filter.follow.is_empty() && filter.locations.is_empty() {
            return not_acceptable(
                "No filter parameters found. Expect at least one parameter: follow track locations"
                    .into(),
            );
        }
        match get("delimited") {
            None => {}
            Some("length") => filter.delimited = true,
            Some(other) => {
                return not_acceptable(format!(
                    "Parameter delimited must be 'length', not {other:?}"
                ))
            }
        }
        match get("stall_warnings") {
            None | Some("false") | Some("0") => {}
            Some("true") | Some("1") => filter.stall_warnings = true,
            Some(other) => {
                return not_acceptable(format!(
                    "Parameter stall_warnings must be true or false, not {other:?}"
                ))
            }
        }
        if let Some(language) = get("language") {
            for code in language.split(',').map(str::trim) {
                if !is_language_code(code) {
                    return not_acceptable(format!(
                        "Parameter language has an invalid BCP 47 code: {code:?}"
                    ));
                }
                filter.language.push(code.to_ascii_lowercase());
            }
        }
        if let Some(level) = get("filter_level") {
            filter.filter_level = FilterLevel::parse(level).ok_or_else(|| {
                ParamError::NotAcceptable(format!(
                    "Parameter filter_level must be none, low or medium, not {level:?}"
                ))
            })?;
        }
        Ok(filter)
    }

    /// Whether a tweet of this language and filter level may be delivered here.
    pub fn accepts(&self, lang: &str, level: FilterLevel) -> bool {
        level >= self.filter_level
            && (self.language.is_empty() || self.language.iter().any(|l| l == lang))
    }

    /// Number of filter items (phrases + ids + boxes).
    pub fn item_count(&self) -> usize {
        self.track.len() + self.follow.len() + self.locations.len()
    }
}

fn parse_boxes(value: &str) -> Result<Vec<GeoBox>, ParamError> {
    let bad = |m: String| ParamError::NotAcceptable(m);
    let numbers = value
        .split(',')
        .map(|n| n.trim().parse::<f64>().ok().filter(|v| v.is_finite()))
        .collect::<Option<Vec<f64>>>()
        .ok_or_else(|| {
            bad(format!(
                "Parameter locations must be comma-separated numbers: {value:?}"
            ))
        })?;
    if numbers.is_empty() || numbers.len() % 4 != 0 {
        return Err(bad(format!(
            "Parameter locations must hold groups of 4 numbers (sw_lon,sw_lat,ne_lon,ne_lat); got {}",
            numbers.len()
        )));
    }
    let boxes = numbers.len() / 4;
    if boxes > MAX_LOCATION_BOXES {
        return Err(ParamError::TooLong(format!(
            "Parameter locations has {boxes} boxes, at most {MAX_LOCATION_BOXES} are allowed"
        )));
    }
    numbers
        .chunks(4)
        .enumerate()
        .map(|(i, c)| {
            let b = GeoBox::new(c[0], c[1], c[2], c[3]);
            if ![b.west, b.east]
                .iter()
                .all(|x| (-180.0..=180.0).contains(x))
                || ![b.south, b.north]
                    .iter()
                    .all(|y| (-90.0..=90.0).contains(y))
            {
                return Err(bad(format!(
                    "Parameter locations box {i} is out of range: {c:?}"
                )));
            }
            if b.west >= b.east || b.south >= b.north {
                return Err(bad(format!(
                    "Parameter locations box {i} must give the south-west corner first: {c:?}"
                )));
            }
            Ok(b)
        })
        .collect()
}

/// `en`, `pt-BR`, `zh-Hant`, `und`: a 2–3 letter primary tag and optional subtags.
fn is_language_code(code: &str) -> bool {
    let mut parts = code.split('-');
    let primary = parts.next().unwrap_or("");
    (2..=3).contains(&primary.len())
        && primary.chars().all(|c| c.is_ascii_alphabetic())
        && parts.all(|p| (1..=8).contains(&p.len()) && p.chars().all(|c| c.is_ascii_alphanumeric()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(pairs: &[(&str, &str)]) -> Result<StreamFilter, ParamError> {
        let owned: Vec<(String, String)> = pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        StreamFilter::from_params(&owned)
    }

    #[test]
    fn accepts_a_full_request() {
        let f = parse(&[
            ("track", "rust lang, Touché"),
            ("follow", "12,34"),
            ("locations", "-74,40,-73,41"),
            ("delimited", "length"),
            ("stall_warnings", "true"),
            ("language", "en,pt-BR"),
            ("filter_level", "low"),
        ])
        .unwrap();
        assert_eq!(f.track, vec!["rust lang", "Touché"]);
        assert_eq!(f.follow, vec![12, 34]);
        assert_eq!(f.locations, vec![GeoBox::new(-74.0, 40.0, -73.0, 41.0)]);
        assert!(f.delimited && f.stall_warnings);
        assert!(f.accepts("pt-br", FilterLevel::Medium));
        assert!(!f.accepts("en", FilterLevel::None));
        assert!(!f.accepts("fr", FilterLevel::Low));
    }

    #[test]
    fn refuses_invalid_parameters_with_406() {
        let cases: &[&[(&str, &str)]] = &[
            &[],
            &[("delimited", "length")],
            &[("track", "a,,b")],
            &[("track", &"x".repeat(61))],
            &[("follow", "12,abc")],
            &[("follow", "-5")],
            &[("locations", "-74,40,-73")],
            &[("locations", "-74,40,-75,41")],
            &[("locations", "-74,40,-73,91")],
            &[("locations", "-190,40,-73,41")],
            &[("track", "a"), ("delimited", "newline")],
            &[("track", "a"), ("stall_warnings", "maybe")],
            &[("track", "a"), ("filter_level", "high")],
            &[("track", "a"), ("language", "english!")],
        ];
        for case in cases {
            assert_eq!(
                parse(case).map(|_| ()).unwrap_err().status(),
                406,
                "{case:?}"
            );
        }
        assert!(
            parse(&[("track", &"é".repeat(30))]).is_ok(),
            "60 bytes is the limit, not 60 characters"
        );
    }

    #[test]
    fn refuses_too_many_items_with_413() {
        let phrases = (0..401)
            .map(|i| format!("p{i}"))
            .collect::<Vec<_>>()
            .join(",");
        let ids = (1..=5001)
            .map(|i| i.to_string())
            .collect::<Vec<_>>()
            .join(",");
        let boxes = (0..26)
            .map(|_| "-74,40,-73,41")
            .collect::<Vec<_>>()
            .join(",");
        assert_eq!(parse(&[("track", &phrases)]).unwrap_err().status(), 413);
        assert_eq!(parse(&[("follow", &ids)]).unwrap_err().status(), 413);
        assert_eq!(parse(&[("locations", &boxes)]).unwrap_err().status(), 413);
        let at_limit = (0..400)
            .map(|i| format!("p{i}"))
            .collect::<Vec<_>>()
            .join(",");
        assert!(parse(&[("track", &at_limit)]).is_ok());
    }

    #[test]
    fn phrase_keys_ignore_case_and_spacing() {
        assert_eq!(phrase_key("  Rust   Lang "), "rust lang");
    }
}
