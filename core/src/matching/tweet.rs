//! A borrowed view of the parts of a tweet that matching and enrichment read.
//!
//! The view is filled by one pass over the original bytes: on the hot path by the scanner of
//! [`super::tweet_skim`], otherwise (and as the reference it is tested against) by the serde
//! `Deserialize` impls below. Strings borrow from the input
//! when they carry no escapes ([`Text`]), everything the view does not name is skipped with
//! [`IgnoredAny`], and geometry is reduced to numbers while parsing, so a tweet costs a handful
//! of small allocations (entity lists) and no copy of its text.
//!
//! The view is lenient where the stream is: `null` is accepted wherever a value may be absent,
//! and a repeated key keeps its last value instead of failing the whole tweet.

use std::borrow::Cow;
use std::fmt;
use std::ops::Deref;

use serde::de::{self, DeserializeSeed, Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};
use serde::Deserialize;

/// A JSON string borrowed from the input when it has no escapes, owned otherwise.
///
/// Exists because `Cow<str>` on its own always allocates when deserialized.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Text<'a>(pub Cow<'a, str>);

impl Deref for Text<'_> {
    type Target = str;
    fn deref(&self) -> &str {
        &self.0
    }
}

impl<'de: 'a, 'a> Deserialize<'de> for Text<'a> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct TextVisitor;
        impl<'de> Visitor<'de> for TextVisitor {
            type Value = Text<'de>;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a string")
            }
            fn visit_borrowed_str<E: de::Error>(self, v: &'de str) -> Result<Text<'de>, E> {
                Ok(Text(Cow::Borrowed(v)))
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Text<'de>, E> {
                Ok(Text(Cow::Owned(v.to_owned())))
            }
            fn visit_string<E: de::Error>(self, v: String) -> Result<Text<'de>, E> {
                Ok(Text(Cow::Owned(v)))
            }
        }
        deserializer.deserialize_str(TextVisitor)
    }
}

/// An object key, read as raw bytes: serde_json checks UTF-8 for every string read as `str`, and
/// a tweet has hundreds of keys, nearly all of them skipped. Borrowed unless escaped.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Key<'a>(pub Cow<'a, [u8]>);

impl Key<'_> {
    pub fn as_bytes(&self) -> &[u8] {
        &self.0
    }
}

impl<'de: 'a, 'a> Deserialize<'de> for Key<'a> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct KeyVisitor;
        impl<'de> Visitor<'de> for KeyVisitor {
            type Value = Key<'de>;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("an object key")
            }
            fn visit_borrowed_bytes<E: de::Error>(self, v: &'de [u8]) -> Result<Key<'de>, E> {
                Ok(Key(Cow::Borrowed(v)))
            }
            fn visit_bytes<E: de::Error>(self, v: &[u8]) -> Result<Key<'de>, E> {
                Ok(Key(Cow::Owned(v.to_vec())))
            }
            fn visit_byte_buf<E: de::Error>(self, v: Vec<u8>) -> Result<Key<'de>, E> {
                Ok(Key(Cow::Owned(v)))
            }
            fn visit_borrowed_str<E: de::Error>(self, v: &'de str) -> Result<Key<'de>, E> {
                Ok(Key(Cow::Borrowed(v.as_bytes())))
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Key<'de>, E> {
                Ok(Key(Cow::Owned(v.as_bytes().to_vec())))
            }
        }
        deserializer.deserialize_bytes(KeyVisitor)
    }
}

/// Declares a view struct and its `Deserialize`, reading keys as bytes and skipping unknown
/// ones with [`IgnoredAny`]; `null` or a missing key leaves a field at its default.
macro_rules! view_struct {
    ($(#[$meta:meta])* pub struct $name:ident<'a> { $($(#[$fmeta:meta])* pub $field:ident: $ty:ty,)* }) => {
        $(#[$meta])*
        #[derive(Debug, Default)]
        pub struct $name<'a> {
            $($(#[$fmeta])* pub $field: $ty,)*
        }

        impl<'de: 'a, 'a> Deserialize<'de> for $name<'a> {
            fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
                struct StructVisitor;
                impl<'de> Visitor<'de> for StructVisitor {
                    type Value = $name<'de>;
                    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                        f.write_str(concat!("a ", stringify!($name), " object"))
                    }
                    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<$name<'de>, A::Error> {
                        let mut out = $name::default();
                        while let Some(key) = map.next_key::<Key<'de>>()? {
                            let key = key.as_bytes();
                            $(if key == stringify!($field).as_bytes() {
                                out.$field = map.next_value()?;
                                continue;
                            })*
                            map.next_value::<IgnoredAny>()?;
                        }
                        Ok(out)
                    }
                }
                deserializer.deserialize_map(StructVisitor)
            }
        }
    };
}

/// The fields of a tweet (or of its retweeted / quoted status) that traptor reads.
#[derive(Debug, Default)]
pub struct TweetView<'a> {
    pub id_str: Option<Text<'a>>,
    pub created_at: Option<Text<'a>>,
    pub text: Option<Text<'a>>,
    /// Present on tweets fetched in extended mode; streamed tweets use `extended_tweet`.
    pub full_text: Option<Text<'a>>,
    pub user: Option<UserView<'a>>,
    pub in_reply_to_user_id_str: Option<Text<'a>>,
    pub entities: Option<Entities<'a>>,
    pub extended_entities: Option<Entities<'a>>,
    pub extended_tweet: Option<ExtendedTweet<'a>>,
    pub retweeted_status: Option<Box<TweetView<'a>>>,
    pub quoted_status: Option<Box<TweetView<'a>>>,
    /// The GeoJSON point of `coordinates`, as (longitude, latitude).
    pub coordinates: Option<(f64, f64)>,
    /// The extent of `place.bounding_box`.
    pub place_bounds: Option<Bounds>,
}

impl<'de> TweetView<'de> {
    /// Reads the value of `key` into the view when the view has a field of that name.
    /// Returns `false`, leaving the value unread, for any other key.
    pub fn read_field<A: MapAccess<'de>>(
        &mut self,
        key: &[u8],
        map: &mut A,
    ) -> Result<bool, A::Error> {
        match key {
            b"id_str" => self.id_str = map.next_value()?,
            b"created_at" => self.created_at = map.next_value()?,
            b"text" => self.text = map.next_value()?,
            b"full_text" => self.full_text = map.next_value()?,
            b"user" => self.user = map.next_value()?,
            b"in_reply_to_user_id_str" => self.in_reply_to_user_id_str = map.next_value()?,
            b"entities" => self.entities = map.next_value()?,
            b"extended_entities" => self.extended_entities = map.next_value()?,
            b"extended_tweet" => self.extended_tweet = map.next_value()?,
            b"retweeted_status" => self.retweeted_status = map.next_value()?,
            b"quoted_status" => self.quoted_status = map.next_value()?,
            b"coordinates" => {
                self.coordinates = map
                    .next_value::<Option<PointView>>()?
                    .and_then(|p| p.coordinates)
                    .map(|p| (p.0, p.1))
            }
            b"place" => {
                self.place_bounds = map
                    .next_value::<Option<PlaceView>>()?
                    .and_then(|p| p.bounds())
            }
            _ => return Ok(false),
        }
        Ok(true)
    }

    /// This tweet and the statuses it embeds (retweeted, quoted, and theirs), outermost first.
    pub fn with_embedded(&self) -> impl Iterator<Item = &TweetView<'de>> {
        // Depth first, retweeted before quoted; the stack is only needed (and allocated) for a
        // status that embeds both.
        let mut next = Some(self);
        let mut stack: Vec<&TweetView<'de>> = Vec::new();
        std::iter::from_fn(move || {
            let current = next.take().or_else(|| stack.pop())?;
            let (retweeted, quoted) = (
                current.retweeted_status.as_deref(),
                current.quoted_status.as_deref(),
            );
            if let (Some(_), Some(q)) = (retweeted, quoted) {
                stack.push(q);
            }
            next = retweeted.or(quoted);
            Some(current)
        })
    }

    /// Every entity list of this status: `entities`, `extended_entities` and those of `extended_tweet`.
    pub fn entity_lists(&self) -> impl Iterator<Item = &Entities<'de>> {
        let extended = self.extended_tweet.as_ref();
        self.entities
            .iter()
            .chain(self.extended_entities.iter())
            .chain(extended.and_then(|e| e.entities.as_ref()))
            .chain(extended.and_then(|e| e.extended_entities.as_ref()))
    }
}

impl<'de: 'a, 'a> Deserialize<'de> for TweetView<'a> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct ViewVisitor;
        impl<'de> Visitor<'de> for ViewVisitor {
            type Value = TweetView<'de>;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a tweet object")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<TweetView<'de>, A::Error> {
                let mut view = TweetView::default();
                while let Some(key) = map.next_key::<Key<'de>>()? {
                    if !view.read_field(key.as_bytes(), &mut map)? {
                        map.next_value::<IgnoredAny>()?;
                    }
                }
                Ok(view)
            }
        }
        deserializer.deserialize_map(ViewVisitor)
    }
}

view_struct! {
    /// The author of a status.
    pub struct UserView<'a> {
        pub id_str: Option<Text<'a>>,
        pub screen_name: Option<Text<'a>>,
    }
}

view_struct! {
    /// `extended_tweet`: the full text and entities of a tweet longer than 140 characters.
    pub struct ExtendedTweet<'a> {
        pub full_text: Option<Text<'a>>,
        pub entities: Option<Entities<'a>>,
        pub extended_entities: Option<Entities<'a>>,
    }
}

view_struct! {
    /// The entity lists track matching searches.
    pub struct Entities<'a> {
        pub hashtags: Option<Vec<Hashtag<'a>>>,
        pub user_mentions: Option<Vec<Mention<'a>>>,
        pub urls: Option<Vec<UrlEntity<'a>>>,
        pub media: Option<Vec<UrlEntity<'a>>>,
    }
}

impl<'a> Entities<'a> {
    pub fn hashtags(&self) -> impl Iterator<Item = &str> {
        self.hashtags
            .iter()
            .flatten()
            .filter_map(|h| h.text.as_deref())
    }
    pub fn mentions(&self) -> impl Iterator<Item = &str> {
        self.user_mentions
            .iter()
            .flatten()
            .filter_map(|m| m.screen_name.as_deref())
    }
    /// `expanded_url` and `display_url` of links and media.
    pub fn urls(&self) -> impl Iterator<Item = &str> {
        self.urls
            .iter()
            .flatten()
            .chain(self.media.iter().flatten())
            .flat_map(|u| {
                u.expanded_url
                    .as_deref()
                    .into_iter()
                    .chain(u.display_url.as_deref())
            })
    }
}

view_struct! {
    pub struct Hashtag<'a> {
        pub text: Option<Text<'a>>,
    }
}

view_struct! {
    pub struct Mention<'a> {
        pub screen_name: Option<Text<'a>>,
    }
}

view_struct! {
    pub struct UrlEntity<'a> {
        pub expanded_url: Option<Text<'a>>,
        pub display_url: Option<Text<'a>>,
    }
}

#[derive(Deserialize)]
struct PointView {
    #[serde(default)]
    coordinates: Option<Position>,
}

/// A GeoJSON position `[lon, lat, ...]`; extra elements (altitude) are skipped.
struct Position(f64, f64);

impl<'de> Deserialize<'de> for Position {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct PositionVisitor;
        impl<'de> Visitor<'de> for PositionVisitor {
            type Value = Position;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a [longitude, latitude] pair")
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Position, A::Error> {
                let lon: f64 = seq
                    .next_element()?
                    .ok_or_else(|| de::Error::invalid_length(0, &self))?;
                let lat: f64 = seq
                    .next_element()?
                    .ok_or_else(|| de::Error::invalid_length(1, &self))?;
                while seq.next_element::<IgnoredAny>()?.is_some() {}
                Ok(Position(lon, lat))
            }
        }
        deserializer.deserialize_seq(PositionVisitor)
    }
}

#[derive(Deserialize)]
struct PlaceView {
    #[serde(default)]
    bounding_box: Option<BoundingBoxView>,
}

impl PlaceView {
    fn bounds(self) -> Option<Bounds> {
        self.bounding_box?.coordinates?.0
    }
}

#[derive(Deserialize)]
struct BoundingBoxView {
    #[serde(default)]
    coordinates: Option<NestedBounds>,
}

/// The extent of every position in a GeoJSON `coordinates` array, at any nesting depth.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Bounds {
    pub min_lon: f64,
    pub min_lat: f64,
    pub max_lon: f64,
    pub max_lat: f64,
}

impl Bounds {
    pub(crate) fn point(lon: f64, lat: f64) -> Bounds {
        Bounds {
            min_lon: lon,
            min_lat: lat,
            max_lon: lon,
            max_lat: lat,
        }
    }

    pub(crate) fn include(self, other: Bounds) -> Bounds {
        Bounds {
            min_lon: self.min_lon.min(other.min_lon),
            min_lat: self.min_lat.min(other.min_lat),
            max_lon: self.max_lon.max(other.max_lon),
            max_lat: self.max_lat.max(other.max_lat),
        }
    }
}

/// Polygons nest positions three deep; this walks any depth without building vectors.
struct NestedBounds(Option<Bounds>);

impl<'de> Deserialize<'de> for NestedBounds {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_seq(NestedBoundsVisitor)
    }
}

struct NestedBoundsVisitor;

impl<'de> Visitor<'de> for NestedBoundsVisitor {
    type Value = NestedBounds;
    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("GeoJSON coordinates")
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<NestedBounds, A::Error> {
        let first = match seq.next_element_seed(ElementSeed)? {
            None => return Ok(NestedBounds(None)),
            Some(e) => e,
        };
        match first {
            Element::Number(lon) => {
                let lat = match seq.next_element_seed(ElementSeed)? {
                    Some(Element::Number(lat)) => lat,
                    _ => {
                        return Err(de::Error::custom(
                            "a position needs a longitude and a latitude",
                        ))
                    }
                };
                while seq.next_element::<IgnoredAny>()?.is_some() {}
                Ok(NestedBounds(Some(Bounds::point(lon, lat))))
            }
            Element::Nested(mut acc) => {
                while let Some(e) = seq.next_element_seed(ElementSeed)? {
                    match e {
                        Element::Nested(b) => {
                            acc = match (acc, b) {
                                (Some(a), Some(b)) => Some(a.include(b)),
                                (a, b) => a.or(b),
                            }
                        }
                        Element::Number(_) => {
                            return Err(de::Error::custom(
                                "mixed numbers and arrays in coordinates",
                            ))
                        }
                    }
                }
                Ok(NestedBounds(acc))
            }
        }
    }
}

/// One element of a coordinates array: a number, or a nested array reduced to its bounds.
enum Element {
    Number(f64),
    Nested(Option<Bounds>),
}

/// Reads one [`Element`].
struct ElementSeed;

impl<'de> DeserializeSeed<'de> for ElementSeed {
    type Value = Element;
    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<Element, D::Error> {
        struct ElementVisitor;
        impl<'de> Visitor<'de> for ElementVisitor {
            type Value = Element;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a number or an array of coordinates")
            }
            fn visit_f64<E: de::Error>(self, v: f64) -> Result<Element, E> {
                Ok(Element::Number(v))
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<Element, E> {
                Ok(Element::Number(v as f64))
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<Element, E> {
                Ok(Element::Number(v as f64))
            }
            fn visit_seq<A: SeqAccess<'de>>(self, seq: A) -> Result<Element, A::Error> {
                Ok(Element::Nested(NestedBoundsVisitor.visit_seq(seq)?.0))
            }
        }
        deserializer.deserialize_any(ElementVisitor)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_the_fields_it_names_and_borrows_plain_strings() {
        let json = r#"{"id_str":"7","text":"hi there","extra":{"deep":[1,2,{"x":null}]},
            "user":{"id_str":"42","screen_name":"Bob","name":"ignored"},
            "in_reply_to_user_id_str":null,
            "entities":{"hashtags":[{"text":"Tag","indices":[0,4]}],"user_mentions":[{"screen_name":"al"}],
                        "urls":[{"expanded_url":"http://x.com/a","display_url":"x.com/a"}]}}"#;
        let view: TweetView = serde_json::from_str(json).unwrap();
        assert!(matches!(
            view.text.as_ref().unwrap().0,
            Cow::Borrowed("hi there")
        ));
        assert_eq!(view.user.as_ref().unwrap().id_str.as_deref(), Some("42"));
        assert_eq!(view.in_reply_to_user_id_str, None);
        let entities = view.entities.as_ref().unwrap();
        assert_eq!(entities.hashtags().collect::<Vec<_>>(), ["Tag"]);
        assert_eq!(entities.mentions().collect::<Vec<_>>(), ["al"]);
        assert_eq!(
            entities.urls().collect::<Vec<_>>(),
            ["http://x.com/a", "x.com/a"]
        );
    }

    #[test]
    fn escaped_strings_are_decoded() {
        let view: TweetView = serde_json::from_str(r#"{"text":"caf\u00e9 \"x\""}"#).unwrap();
        assert_eq!(view.text.as_deref(), Some("café \"x\""));
    }

    #[test]
    fn geometry_is_reduced_to_a_point_and_place_bounds() {
        let json = r#"{"coordinates":{"type":"Point","coordinates":[-122.1,37.4]},
            "geo":{"type":"Point","coordinates":[37.4,-122.1]},
            "place":{"bounding_box":{"type":"Polygon","coordinates":[[[-122.06,37.33],[-122.06,37.42],[-121.98,37.42],[-121.98,37.33]]]}}}"#;
        let view: TweetView = serde_json::from_str(json).unwrap();
        assert_eq!(view.coordinates, Some((-122.1, 37.4)));
        assert_eq!(
            view.place_bounds,
            Some(Bounds {
                min_lon: -122.06,
                min_lat: 37.33,
                max_lon: -121.98,
                max_lat: 37.42
            })
        );
        let view: TweetView = serde_json::from_str(r#"{"coordinates":null,"place":null}"#).unwrap();
        assert_eq!((view.coordinates, view.place_bounds), (None, None));
    }

    #[test]
    fn embedded_statuses_are_visited_outermost_first() {
        let json = r#"{"id_str":"1","retweeted_status":{"id_str":"2","quoted_status":{"id_str":"3"}},"quoted_status":{"id_str":"4"}}"#;
        let view: TweetView = serde_json::from_str(json).unwrap();
        let ids: Vec<_> = view
            .with_embedded()
            .map(|t| t.id_str.as_deref().unwrap())
            .collect();
        assert_eq!(ids, ["1", "2", "3", "4"]);
    }
}
