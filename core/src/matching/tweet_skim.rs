//! Fills a [`TweetView`] with the [`Scanner`] instead of serde: the fast path of enrichment.
//!
//! The result must be exactly the view serde would build from the same bytes. Wherever serde's
//! reading has a subtlety not reproduced here (an escaped key, a field of an unexpected type, a
//! derived struct's duplicate field, a coordinate serde would refuse), the skim stops with
//! [`Stop::Unsure`] and the caller takes the serde path. Strings are borrowed from the input;
//! escaped ones are decoded by serde_json itself, so they come out as serde gives them.

use std::borrow::Cow;

use super::json_skim::{Scan, Scanner, Stop, MAX_TYPED_DEPTH};
use super::tweet::{
    Bounds, Entities, ExtendedTweet, Hashtag, Mention, Text, TweetView, UrlEntity, UserView,
};

/// A scanner over a frame, reading view fields from it.
pub struct Skim<'a> {
    pub scanner: Scanner<'a>,
}

impl<'a> Skim<'a> {
    pub fn new(frame: &'a [u8]) -> Skim<'a> {
        Skim {
            scanner: Scanner::new(frame),
        }
    }

    /// `null` or a string, as `Option<Text>` reads it.
    pub fn optional_text(&mut self) -> Scan<Option<Text<'a>>> {
        if self.scanner.null()? {
            return Ok(None);
        }
        self.text().map(Some)
    }

    fn text(&mut self) -> Scan<Text<'a>> {
        let raw = self.scanner.string()?;
        if !raw.escaped {
            return Ok(Text(Cow::Borrowed(self.scanner.str(raw)?)));
        }
        // Rare in streams: serde_json decodes it, with its own rules for odd escapes.
        serde_json::from_slice::<String>(self.scanner.literal_bytes(raw))
            .map(|s| Text(Cow::Owned(s)))
            .map_err(|_| Stop::Unsure)
    }

    /// Reads the value of `key` into `view` when the view has a field of that name; `Ok(false)`
    /// leaves any other value unread. Mirrors [`TweetView::read_field`].
    pub fn tweet_field(
        &mut self,
        view: &mut TweetView<'a>,
        key: &[u8],
        depth: usize,
    ) -> Scan<bool> {
        match key {
            b"id_str" => view.id_str = self.optional_text()?,
            b"created_at" => view.created_at = self.optional_text()?,
            b"text" => view.text = self.optional_text()?,
            b"full_text" => view.full_text = self.optional_text()?,
            b"user" => view.user = self.optional(depth, Self::user)?,
            b"in_reply_to_user_id_str" => view.in_reply_to_user_id_str = self.optional_text()?,
            b"entities" => view.entities = self.optional(depth, Self::entities)?,
            b"extended_entities" => {
                view.extended_entities = self.optional(depth, Self::entities)?
            }
            b"extended_tweet" => {
                view.extended_tweet = self.optional(depth, Self::extended_tweet)?
            }
            b"retweeted_status" => {
                view.retweeted_status = self.optional(depth, Self::embedded_tweet)?
            }
            b"quoted_status" => view.quoted_status = self.optional(depth, Self::embedded_tweet)?,
            b"coordinates" => view.coordinates = self.optional(depth, Self::point)?.flatten(),
            b"place" => view.place_bounds = self.optional(depth, Self::place)?.flatten(),
            _ => return Ok(false),
        }
        Ok(true)
    }

    /// `null`, or a value read by `read` one level deeper.
    fn optional<T>(
        &mut self,
        depth: usize,
        read: fn(&mut Self, usize) -> Scan<T>,
    ) -> Scan<Option<T>> {
        if self.scanner.null()? {
            return Ok(None);
        }
        if depth >= MAX_TYPED_DEPTH {
            return Err(Stop::Unsure);
        }
        read(self, depth + 1).map(Some)
    }

    /// An object whose members go to `member` (which returns `false` for keys it skips).
    fn object(&mut self, mut member: impl FnMut(&mut Self, &[u8]) -> Scan<bool>) -> Scan<()> {
        self.scanner.begin_object()?;
        let mut first = true;
        while let Some(key) = self.scanner.next_key(first)? {
            first = false;
            if !member(self, key)? {
                self.scanner.skip_value()?;
            }
        }
        Ok(())
    }

    /// A status embedded in another (retweeted or quoted).
    fn embedded_tweet(&mut self, depth: usize) -> Scan<Box<TweetView<'a>>> {
        let mut view = TweetView::default();
        self.object(|s, key| s.tweet_field(&mut view, key, depth))?;
        Ok(Box::new(view))
    }

    fn user(&mut self, _depth: usize) -> Scan<UserView<'a>> {
        let mut user = UserView::default();
        self.object(|s, key| {
            match key {
                b"id_str" => user.id_str = s.optional_text()?,
                b"screen_name" => user.screen_name = s.optional_text()?,
                _ => return Ok(false),
            }
            Ok(true)
        })?;
        Ok(user)
    }

    fn extended_tweet(&mut self, depth: usize) -> Scan<ExtendedTweet<'a>> {
        let mut extended = ExtendedTweet::default();
        self.object(|s, key| {
            match key {
                b"full_text" => extended.full_text = s.optional_text()?,
                b"entities" => extended.entities = s.optional(depth, Self::entities)?,
                b"extended_entities" => {
                    extended.extended_entities = s.optional(depth, Self::entities)?
                }
                _ => return Ok(false),
            }
            Ok(true)
        })?;
        Ok(extended)
    }

    fn entities(&mut self, depth: usize) -> Scan<Entities<'a>> {
        let mut entities = Entities::default();
        self.object(|s, key| {
            match key {
                b"hashtags" => entities.hashtags = s.optional(depth, Self::hashtags)?,
                b"user_mentions" => entities.user_mentions = s.optional(depth, Self::mentions)?,
                b"urls" => entities.urls = s.optional(depth, Self::url_entities)?,
                b"media" => entities.media = s.optional(depth, Self::url_entities)?,
                _ => return Ok(false),
            }
            Ok(true)
        })?;
        Ok(entities)
    }

    /// An array of objects, each read by `read` (a `null` element is a type error for serde).
    fn list<T>(&mut self, mut read: impl FnMut(&mut Self) -> Scan<T>) -> Scan<Vec<T>> {
        self.scanner.begin_array()?;
        let mut items = Vec::new();
        let mut first = true;
        while self.scanner.next_element(first)? {
            first = false;
            items.push(read(self)?);
        }
        Ok(items)
    }

    fn hashtags(&mut self, _depth: usize) -> Scan<Vec<Hashtag<'a>>> {
        self.list(|s| {
            let mut tag = Hashtag::default();
            s.object(|s, key| {
                if key != b"text" {
                    return Ok(false);
                }
                tag.text = s.optional_text()?;
                Ok(true)
            })?;
            Ok(tag)
        })
    }

    fn mentions(&mut self, _depth: usize) -> Scan<Vec<Mention<'a>>> {
        self.list(|s| {
            let mut mention = Mention::default();
            s.object(|s, key| {
                if key != b"screen_name" {
                    return Ok(false);
                }
                mention.screen_name = s.optional_text()?;
                Ok(true)
            })?;
            Ok(mention)
        })
    }

    fn url_entities(&mut self, _depth: usize) -> Scan<Vec<UrlEntity<'a>>> {
        self.list(|s| {
            let mut url = UrlEntity::default();
            s.object(|s, key| {
                match key {
                    b"expanded_url" => url.expanded_url = s.optional_text()?,
                    b"display_url" => url.display_url = s.optional_text()?,
                    _ => return Ok(false),
                }
                Ok(true)
            })?;
            Ok(url)
        })
    }

    /// A GeoJSON point object reduced to its `coordinates`, as `PointView` reads it.
    fn point(&mut self, depth: usize) -> Scan<Option<(f64, f64)>> {
        let mut position = None;
        let mut seen = false;
        self.object(|s, key| {
            if key != b"coordinates" {
                return Ok(false);
            }
            if std::mem::replace(&mut seen, true) {
                return Err(Stop::Unsure); // serde's derive rejects a repeated field
            }
            position = s.optional(depth, Self::position)?;
            Ok(true)
        })?;
        Ok(position)
    }

    /// `[lon, lat, ...]`: two numbers, the rest skipped.
    fn position(&mut self, _depth: usize) -> Scan<(f64, f64)> {
        self.scanner.begin_array()?;
        if !self.scanner.next_element(true)? {
            return Err(Stop::Unsure);
        }
        let lon = self.coordinate()?;
        if !self.scanner.next_element(false)? {
            return Err(Stop::Unsure);
        }
        let lat = self.coordinate()?;
        self.scanner.skip_rest_of_array(false)?;
        Ok((lon, lat))
    }

    /// A number as serde reads an `f64` (its own float parsing, its range checks).
    fn coordinate(&mut self) -> Scan<f64> {
        let text = self.scanner.number()?;
        serde_json::from_slice::<f64>(text).map_err(|_| Stop::Unsure)
    }

    /// `place`, reduced to the extent of `bounding_box.coordinates`, as `PlaceView` reads it.
    fn place(&mut self, depth: usize) -> Scan<Option<Bounds>> {
        let mut bounds = None;
        let mut seen = false;
        self.object(|s, key| {
            if key != b"bounding_box" {
                return Ok(false);
            }
            if std::mem::replace(&mut seen, true) {
                return Err(Stop::Unsure);
            }
            bounds = s.optional(depth, Self::bounding_box)?.flatten();
            Ok(true)
        })?;
        Ok(bounds)
    }

    fn bounding_box(&mut self, depth: usize) -> Scan<Option<Bounds>> {
        let mut bounds = None;
        let mut seen = false;
        self.object(|s, key| {
            if key != b"coordinates" {
                return Ok(false);
            }
            if std::mem::replace(&mut seen, true) {
                return Err(Stop::Unsure);
            }
            bounds = s.optional(depth, Self::nested_bounds)?.flatten();
            Ok(true)
        })?;
        Ok(bounds)
    }

    /// GeoJSON coordinates at any depth, as `NestedBounds` reads them.
    fn nested_bounds(&mut self, depth: usize) -> Scan<Option<Bounds>> {
        self.scanner.begin_array()?;
        if !self.scanner.next_element(true)? {
            return Ok(None);
        }
        if self.scanner.peek() != Some(b'[') {
            let lon = self.coordinate()?;
            if !self.scanner.next_element(false)? || self.scanner.peek() == Some(b'[') {
                return Err(Stop::Unsure);
            }
            let lat = self.coordinate()?;
            self.scanner.skip_rest_of_array(false)?;
            return Ok(Some(Bounds::point(lon, lat)));
        }
        if depth >= MAX_TYPED_DEPTH {
            return Err(Stop::Unsure);
        }
        let mut acc = self.nested_bounds(depth + 1)?;
        while self.scanner.next_element(false)? {
            if self.scanner.peek() != Some(b'[') {
                return Err(Stop::Unsure);
            }
            if let Some(b) = self.nested_bounds(depth + 1)? {
                acc = Some(match acc {
                    Some(a) => a.include(b),
                    None => b,
                });
            }
        }
        Ok(acc)
    }
}
