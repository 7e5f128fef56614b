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

    /// `null` or a string, as `Option<Text>` reads it, into `slot`.
    ///
    /// The typed reads fill their destination in place rather than return it: results that
    /// are larger than a register, returned through `Scan`, were assembled and re-read on the
    /// stack with stores and loads of different widths, which stalled the CPU on every field.
    #[inline]
    pub fn text_into(&mut self, slot: &mut Option<Text<'a>>) -> Scan<()> {
        if self.scanner.null()? {
            *slot = None;
            return Ok(());
        }
        let raw = match self.scanner.short_plain_string() {
            Some(raw) => raw,
            None => self.scanner.string()?,
        };
        if !raw.escaped {
            *slot = Some(Text(Cow::Borrowed(self.scanner.str(raw)?)));
            return Ok(());
        }
        // Rare in streams: serde_json decodes it, with its own rules for odd escapes.
        let text = serde_json::from_slice::<String>(self.scanner.literal_bytes(raw))
            .map_err(|_| Stop::Unsure)?;
        *slot = Some(Text(Cow::Owned(text)));
        Ok(())
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
            b"id_str" => self.text_into(&mut view.id_str)?,
            b"created_at" => self.text_into(&mut view.created_at)?,
            b"text" => self.text_into(&mut view.text)?,
            b"full_text" => self.text_into(&mut view.full_text)?,
            b"user" => self.optional_into(depth, &mut view.user, Self::user)?,
            b"in_reply_to_user_id_str" => self.text_into(&mut view.in_reply_to_user_id_str)?,
            b"entities" => self.optional_into(depth, &mut view.entities, Self::entities)?,
            b"extended_entities" => {
                self.optional_into(depth, &mut view.extended_entities, Self::entities)?
            }
            b"extended_tweet" => {
                self.optional_into(depth, &mut view.extended_tweet, Self::extended_tweet)?
            }
            b"retweeted_status" => {
                self.optional_into(depth, &mut view.retweeted_status, Self::embedded_tweet)?
            }
            b"quoted_status" => {
                self.optional_into(depth, &mut view.quoted_status, Self::embedded_tweet)?
            }
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

    /// `null` (which empties `slot`), or a value read into a fresh `slot` by `read` one level
    /// deeper. A repeated key starts again from a default value: the last one wins, as serde's.
    #[inline]
    fn optional_into<T: Default>(
        &mut self,
        depth: usize,
        slot: &mut Option<T>,
        read: fn(&mut Self, usize, &mut T) -> Scan<()>,
    ) -> Scan<()> {
        if self.scanner.null()? {
            *slot = None;
            return Ok(());
        }
        if depth >= MAX_TYPED_DEPTH {
            return Err(Stop::Unsure);
        }
        read(self, depth + 1, slot.insert(T::default()))
    }

    /// An object whose members go to `member` (which returns `false` for keys it skips).
    #[inline]
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
    fn embedded_tweet(&mut self, depth: usize, view: &mut Box<TweetView<'a>>) -> Scan<()> {
        self.object(|s, key| s.tweet_field(view, key, depth))
    }

    fn user(&mut self, _depth: usize, user: &mut UserView<'a>) -> Scan<()> {
        self.object(|s, key| {
            match key {
                b"id_str" => s.text_into(&mut user.id_str)?,
                b"screen_name" => s.text_into(&mut user.screen_name)?,
                _ => return Ok(false),
            }
            Ok(true)
        })
    }

    fn extended_tweet(&mut self, depth: usize, extended: &mut ExtendedTweet<'a>) -> Scan<()> {
        self.object(|s, key| {
            match key {
                b"full_text" => s.text_into(&mut extended.full_text)?,
                b"entities" => s.optional_into(depth, &mut extended.entities, Self::entities)?,
                b"extended_entities" => {
                    s.optional_into(depth, &mut extended.extended_entities, Self::entities)?
                }
                _ => return Ok(false),
            }
            Ok(true)
        })
    }

    fn entities(&mut self, depth: usize, entities: &mut Entities<'a>) -> Scan<()> {
        self.object(|s, key| {
            match key {
                b"hashtags" => s.optional_into(depth, &mut entities.hashtags, Self::hashtags)?,
                b"user_mentions" => {
                    s.optional_into(depth, &mut entities.user_mentions, Self::mentions)?
                }
                b"urls" => s.optional_into(depth, &mut entities.urls, Self::url_entities)?,
                b"media" => s.optional_into(depth, &mut entities.media, Self::url_entities)?,
                _ => return Ok(false),
            }
            Ok(true)
        })
    }

    /// An array of objects, each read into a fresh element by `read` (a `null` element is a
    /// type error for serde).
    #[inline]
    fn list_into<T: Default>(
        &mut self,
        items: &mut Vec<T>,
        mut read: impl FnMut(&mut Self, &mut T) -> Scan<()>,
    ) -> Scan<()> {
        self.scanner.begin_array()?;
        let mut first = true;
        while self.scanner.next_element(first)? {
            first = false;
            items.push(T::default());
            read(self, items.last_mut().expect("just pushed"))?;
        }
        Ok(())
    }

    fn hashtags(&mut self, _depth: usize, tags: &mut Vec<Hashtag<'a>>) -> Scan<()> {
        self.list_into(tags, |s, tag| {
            s.object(|s, key| {
                if key != b"text" {
                    return Ok(false);
                }
                s.text_into(&mut tag.text)?;
                Ok(true)
            })
        })
    }

    fn mentions(&mut self, _depth: usize, mentions: &mut Vec<Mention<'a>>) -> Scan<()> {
        self.list_into(mentions, |s, mention| {
            s.object(|s, key| {
                if key != b"screen_name" {
                    return Ok(false);
                }
                s.text_into(&mut mention.screen_name)?;
                Ok(true)
            })
        })
    }

    fn url_entities(&mut self, _depth: usize, urls: &mut Vec<UrlEntity<'a>>) -> Scan<()> {
        self.list_into(urls, |s, url| {
            s.object(|s, key| {
                match key {
                    b"expanded_url" => s.text_into(&mut url.expanded_url)?,
                    b"display_url" => s.text_into(&mut url.display_url)?,
                    _ => return Ok(false),
                }
                Ok(true)
            })
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
