//! One status (tweet) as the generator assembles it, and its v1.1 JSON rendering.

use std::sync::Arc;

use super::geo::GeoBox;
use super::json::{created_at, push_coord, push_key, push_str, push_u64, push_u64_str};
use super::text::{render_extended_entities, Entities, UrlEntity};
use super::user::User;
use super::FilterLevel;

/// The account and tweet a reply answers.
#[derive(Debug, Clone)]
pub struct Reply {
    pub status_id: u64,
    pub user: Arc<User>,
}

/// A `place` object.
#[derive(Debug, Clone)]
pub struct Place {
    pub id: u64,
    pub name: String,
    pub full_name: String,
    pub country: String,
    pub country_code: String,
    pub bbox: GeoBox,
}

/// Everything needed to render one status object; nested statuses are boxed inside.
#[derive(Debug, Clone)]
pub struct Status {
    pub id: u64,
    pub created_ms: u64,
    pub user: Arc<User>,
    pub full_text: String,
    pub full_chars: usize,
    pub entities: Entities,
    pub reply: Option<Reply>,
    pub coordinates: Option<(f64, f64)>,
    pub place: Option<Place>,
    pub quoted: Option<Box<Status>>,
    pub retweeted: Option<Box<Status>>,
    pub lang: String,
    pub source: &'static str,
    pub retweet_count: u64,
    pub favorite_count: u64,
    pub short_link: String,
}

/// Longest `text` of a v1.1 payload in compatibility mode.
const COMPAT_CHARS: usize = 140;
/// Where an extended tweet's `text` is cut, leaving room for `… https://t.co/…`.
const TRUNCATE_AT: usize = 113;

impl Status {
    /// Writes the status object. `top` adds the fields only the outermost object carries.
    pub fn render(&self, out: &mut Vec<u8>, top: Option<FilterLevel>) {
        out.push(b'{');
        push_key(out, "created_at");
        push_str(out, &created_at(self.created_ms / 1000));
        out.extend_from_slice(b",\"id\":");
        push_u64(out, self.id);
        out.extend_from_slice(b",\"id_str\":");
        push_u64_str(out, self.id);

        let (text, text_entities, extended) = self.compat_text();
        out.extend_from_slice(b",\"text\":");
        push_str(out, &text);
        out.extend_from_slice(b",\"source\":");
        push_str(out, self.source);
        out.extend_from_slice(b",\"truncated\":");
        out.extend_from_slice(if extended { b"true" } else { b"false" });
        self.render_reply(out);
        out.extend_from_slice(b",\"user\":");
        out.extend_from_slice(&self.user.json);
        self.render_geo(out);
        out.extend_from_slice(b",\"contributors\":null");
        if let Some(quoted) = self.quoted.as_deref() {
            out.extend_from_slice(b",\"quoted_status_id\":");
            push_u64(out, quoted.id);
            out.extend_from_slice(b",\"quoted_status_id_str\":");
            push_u64_str(out, quoted.id);
            out.extend_from_slice(b",\"quoted_status\":");
            quoted.render(out, None);
            out.extend_from_slice(b",\"quoted_status_permalink\":");
            let expanded = format!(
                "https://twitter.com/{}/status/{}",
                quoted.user.screen_name, quoted.id
            );
            out.extend_from_slice(b"{\"url\":");
            push_str(out, &self.short_link);
            out.extend_from_slice(b",\"expanded\":");
            push_str(out, &expanded);
            out.extend_from_slice(b",\"display\":");
            push_str(out, &display_url(&expanded));
            out.push(b'}');
        }
        if let Some(retweeted) = self.retweeted.as_deref() {
            if let Some(quoted) = retweeted.quoted.as_deref() {
                out.extend_from_slice(b",\"quoted_status_id\":");
                push_u64(out, quoted.id);
                out.extend_from_slice(b",\"quoted_status_id_str\":");
                push_u64_str(out, quoted.id);
            }
            out.extend_from_slice(b",\"retweeted_status\":");
            retweeted.render(out, None);
        }
        let is_quote =
            self.quoted.is_some() || self.retweeted.as_ref().is_some_and(|r| r.quoted.is_some());
        out.extend_from_slice(b",\"is_quote_status\":");
        out.extend_from_slice(if is_quote { b"true" } else { b"false" });
        if extended {
            out.extend_from_slice(b",\"extended_tweet\":{\"full_text\":");
            push_str(out, &self.full_text);
            out.extend_from_slice(b",\"display_text_range\":[0,");
            push_u64(out, self.full_chars as u64);
            out.extend_from_slice(b"],\"entities\":");
            self.entities.render(out);
            if let Some(media) = &self.entities.media {
                out.extend_from_slice(b",\"extended_entities\":");
                render_extended_entities(out, media);
            }
            out.push(b'}');
        }
        out.extend_from_slice(b",\"quote_count\":0,\"reply_count\":0,\"retweet_count\":");
        push_u64(out, self.retweet_count);
        out.extend_from_slice(b",\"favorite_count\":");
        push_u64(out, self.favorite_count);
        out.extend_from_slice(b",\"entities\":");
        text_entities.render(out);
        if let Some(media) = text_entities.media.as_ref() {
            out.extend_from_slice(b",\"extended_entities\":");
            render_extended_entities(out, media);
            out.extend_from_slice(b",\"possibly_sensitive\":false");
        }
        out.extend_from_slice(b",\"favorited\":false,\"retweeted\":false");
        if let Some(level) = top {
            out.extend_from_slice(b",\"filter_level\":");
            push_str(out, level.as_str());
        }
        out.extend_from_slice(b",\"lang\":");
        push_str(out, &self.lang);
        if top.is_some() {
            out.extend_from_slice(b",\"timestamp_ms\":");
            push_u64_str(out, self.created_ms);
        }
        out.push(b'}');
    }

    /// The `text` and `entities` of compatibility mode, and whether the text was truncated.
    fn compat_text(&self) -> (String, Entities, bool) {
        if let Some(retweeted) = self.retweeted.as_deref() {
            return self.retweet_text(retweeted);
        }
        if self.full_chars <= COMPAT_CHARS {
            return (self.full_text.clone(), self.entities.clone(), false);
        }
        let (cut_bytes, cut_chars) = cut_point(&self.full_text, TRUNCATE_AT);
        let link = &self.short_link;
        let text = format!("{}… {link}", &self.full_text[..cut_bytes]);
        let mut entities = self.entities.within(cut_chars, 0);
        entities.media = None;
        let start = cut_chars + 2;
        let expanded_url = format!("https://twitter.com/i/web/status/{}", self.id);
        entities.urls.push(UrlEntity {
            url: link.clone(),
            display_url: display_url(&expanded_url),
            expanded_url,
            start,
            end: start + link.chars().count(),
        });
        (text, entities, true)
    }

    /// `RT @author: text`, cut to 140 characters with `…`, as v1.1 renders retweets.
    fn retweet_text(&self, retweeted: &Status) -> (String, Entities, bool) {
        let prefix = format!("RT @{}: ", retweeted.user.screen_name);
        let prefix_chars = prefix.chars().count();
        let room = COMPAT_CHARS - prefix_chars;
        let (body, body_chars) = if retweeted.full_chars <= room {
            (retweeted.full_text.clone(), retweeted.full_chars)
        } else {
            let (cut_bytes, cut_chars) = cut_point(&retweeted.full_text, room - 1);
            (format!("{}…", &retweeted.full_text[..cut_bytes]), cut_chars)
        };
        let mut entities = retweeted.entities.within(body_chars, prefix_chars);
        entities.media = None;
        entities.mentions.insert(
            0,
            super::text::Mention {
                screen_name: retweeted.user.screen_name.clone(),
                name: retweeted.user.name.clone(),
                id: retweeted.user.id,
                start: 3,
                end: 4 + retweeted.user.screen_name.chars().count(),
            },
        );
        (format!("{prefix}{body}"), entities, false)
    }

    fn render_reply(&self, out: &mut Vec<u8>) {
        match &self.reply {
            Some(reply) => {
                out.extend_from_slice(b",\"in_reply_to_status_id\":");
                push_u64(out, reply.status_id);
                out.extend_from_slice(b",\"in_reply_to_status_id_str\":");
                push_u64_str(out, reply.status_id);
                out.extend_from_slice(b",\"in_reply_to_user_id\":");
                push_u64(out, reply.user.id);
                out.extend_from_slice(b",\"in_reply_to_user_id_str\":");
                push_u64_str(out, reply.user.id);
                out.extend_from_slice(b",\"in_reply_to_screen_name\":");
                push_str(out, &reply.user.screen_name);
            }
            None => out.extend_from_slice(
                b",\"in_reply_to_status_id\":null,\"in_reply_to_status_id_str\":null,\
                  \"in_reply_to_user_id\":null,\"in_reply_to_user_id_str\":null,\"in_reply_to_screen_name\":null",
            ),
        }
    }

    fn render_geo(&self, out: &mut Vec<u8>) {
        match self.coordinates {
            Some((lon, lat)) => {
                out.extend_from_slice(b",\"geo\":{\"type\":\"Point\",\"coordinates\":[");
                push_coord(out, lat);
                out.push(b',');
                push_coord(out, lon);
                out.extend_from_slice(b"]},\"coordinates\":{\"type\":\"Point\",\"coordinates\":[");
                push_coord(out, lon);
                out.push(b',');
                push_coord(out, lat);
                out.extend_from_slice(b"]}");
            }
            None => out.extend_from_slice(b",\"geo\":null,\"coordinates\":null"),
        }
        out.extend_from_slice(b",\"place\":");
        match &self.place {
            Some(place) => {
                let id = format!("{:016x}", place.id);
                out.extend_from_slice(b"{\"id\":");
                push_str(out, &id);
                out.extend_from_slice(b",\"url\":");
                push_str(
                    out,
                    &format!("https://api.twitter.com/1.1/geo/id/{id}.json"),
                );
                out.extend_from_slice(b",\"place_type\":\"city\",\"name\":");
                push_str(out, &place.name);
                out.extend_from_slice(b",\"full_name\":");
                push_str(out, &place.full_name);
                out.extend_from_slice(b",\"country_code\":");
                push_str(out, &place.country_code);
                out.extend_from_slice(b",\"country\":");
                push_str(out, &place.country);
                out.extend_from_slice(
                    b",\"bounding_box\":{\"type\":\"Polygon\",\"coordinates\":[[",
                );
                let b = place.bbox;
                for (i, (lon, lat)) in [
                    (b.west, b.south),
                    (b.west, b.north),
                    (b.east, b.north),
                    (b.east, b.south),
                ]
                .into_iter()
                .enumerate()
                {
                    if i > 0 {
                        out.push(b',');
                    }
                    out.push(b'[');
                    push_coord(out, lon);
                    out.push(b',');
                    push_coord(out, lat);
                    out.push(b']');
                }
                out.extend_from_slice(b"]]},\"attributes\":{}}");
            }
            None => out.extend_from_slice(b"null"),
        }
    }
}

/// The byte and code-point offset at which to cut `text` to at most `max_chars` characters,
/// at a space when there is one.
fn cut_point(text: &str, max_chars: usize) -> (usize, usize) {
    let mut last_space = None;
    let mut end = (text.len(), text.chars().count());
    for (chars, (bytes, c)) in text.char_indices().enumerate() {
        if chars == max_chars {
            end = (bytes, chars);
            break;
        }
        if c == ' ' && chars > 0 {
            last_space = Some((bytes, chars));
        }
    }
    last_space.filter(|_| end.1 == max_chars).unwrap_or(end)
}

/// A URL as Twitter displays it: no scheme, cut with `…` after 26 characters.
fn display_url(expanded: &str) -> String {
    let bare = expanded
        .trim_start_matches("https://")
        .trim_start_matches("http://");
    if bare.chars().count() <= 27 {
        bare.to_owned()
    } else {
        let cut: String = bare.chars().take(26).collect();
        format!("{cut}…")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cut_point_prefers_a_space_and_respects_the_limit() {
        assert_eq!(cut_point("short", 113), (5, 5));
        let text = "aaaa bbbb cccc";
        assert_eq!(cut_point(text, 12), (9, 9));
        let unicode = "ééééé ééééé";
        let (bytes, chars) = cut_point(unicode, 8);
        assert_eq!(chars, 5);
        assert_eq!(&unicode[..bytes], "ééééé");
    }

    #[test]
    fn display_urls_drop_the_scheme_and_ellipsize() {
        assert_eq!(display_url("https://example.com/rust"), "example.com/rust");
        assert_eq!(
            display_url("https://twitter.com/i/web/status/1234567890123"),
            "twitter.com/i/web/status/1…"
        );
    }
}
