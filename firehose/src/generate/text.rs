//! Builds a tweet's text together with its entities and their code-point indices.

use super::json::{push_key, push_str, push_u64, push_u64_str};

#[derive(Debug, Clone)]
pub struct Hashtag {
    pub text: String,
    pub start: usize,
    pub end: usize,
}

#[derive(Debug, Clone)]
pub struct Mention {
    pub screen_name: String,
    pub name: String,
    pub id: u64,
    pub start: usize,
    pub end: usize,
}

#[derive(Debug, Clone)]
pub struct UrlEntity {
    pub url: String,
    pub expanded_url: String,
    pub display_url: String,
    pub start: usize,
    pub end: usize,
}

/// A photo attached to a tweet; its t.co link closes the text.
#[derive(Debug, Clone)]
pub struct Media {
    pub id: u64,
    pub url: String,
    pub display_url: String,
    pub expanded_url: String,
    pub media_key: String,
    pub start: usize,
    pub end: usize,
}

/// The `entities` object of one text.
#[derive(Debug, Clone, Default)]
pub struct Entities {
    pub hashtags: Vec<Hashtag>,
    pub mentions: Vec<Mention>,
    pub urls: Vec<UrlEntity>,
    pub media: Option<Media>,
}

impl Entities {
    /// The entities that lie entirely within the first `chars` code points, shifted by `shift`.
    pub fn within(&self, chars: usize, shift: usize) -> Entities {
        Entities {
            hashtags: self
                .hashtags
                .iter()
                .filter(|e| e.end <= chars)
                .map(|e| Hashtag {
                    start: e.start + shift,
                    end: e.end + shift,
                    ..e.clone()
                })
                .collect(),
            mentions: self
                .mentions
                .iter()
                .filter(|e| e.end <= chars)
                .map(|e| Mention {
                    start: e.start + shift,
                    end: e.end + shift,
                    ..e.clone()
                })
                .collect(),
            urls: self
                .urls
                .iter()
                .filter(|e| e.end <= chars)
                .map(|e| UrlEntity {
                    start: e.start + shift,
                    end: e.end + shift,
                    ..e.clone()
                })
                .collect(),
            media: self
                .media
                .as_ref()
                .filter(|m| m.end <= chars)
                .map(|m| Media {
                    start: m.start + shift,
                    end: m.end + shift,
                    ..m.clone()
                }),
        }
    }

    pub fn render(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(b"{\"hashtags\":[");
        for (i, h) in self.hashtags.iter().enumerate() {
            comma(out, i);
            out.extend_from_slice(b"{\"text\":");
            push_str(out, &h.text);
            push_indices(out, h.start, h.end);
            out.push(b'}');
        }
        out.extend_from_slice(b"],\"urls\":[");
        for (i, u) in self.urls.iter().enumerate() {
            comma(out, i);
            out.extend_from_slice(b"{\"url\":");
            push_str(out, &u.url);
            out.extend_from_slice(b",\"expanded_url\":");
            push_str(out, &u.expanded_url);
            out.extend_from_slice(b",\"display_url\":");
            push_str(out, &u.display_url);
            push_indices(out, u.start, u.end);
            out.push(b'}');
        }
        out.extend_from_slice(b"],\"user_mentions\":[");
        for (i, m) in self.mentions.iter().enumerate() {
            comma(out, i);
            out.extend_from_slice(b"{\"screen_name\":");
            push_str(out, &m.screen_name);
            out.extend_from_slice(b",\"name\":");
            push_str(out, &m.name);
            out.extend_from_slice(b",\"id\":");
            push_u64(out, m.id);
            out.extend_from_slice(b",\"id_str\":");
            push_u64_str(out, m.id);
            push_indices(out, m.start, m.end);
            out.push(b'}');
        }
        out.extend_from_slice(b"],\"symbols\":[]");
        if let Some(media) = &self.media {
            out.extend_from_slice(b",\"media\":[");
            render_media(out, media);
            out.push(b']');
        }
        out.push(b'}');
    }
}

/// The `extended_entities` object: the media again, as v1.1 repeats it.
pub fn render_extended_entities(out: &mut Vec<u8>, media: &Media) {
    out.extend_from_slice(b"{\"media\":[");
    render_media(out, media);
    out.extend_from_slice(b"]}");
}

fn render_media(out: &mut Vec<u8>, m: &Media) {
    out.extend_from_slice(b"{\"id\":");
    push_u64(out, m.id);
    out.extend_from_slice(b",\"id_str\":");
    push_u64_str(out, m.id);
    push_indices(out, m.start, m.end);
    out.push(b',');
    push_key(out, "media_url");
    push_str(
        out,
        &format!("http://pbs.twimg.com/media/{}.jpg", m.media_key),
    );
    out.push(b',');
    push_key(out, "media_url_https");
    push_str(
        out,
        &format!("https://pbs.twimg.com/media/{}.jpg", m.media_key),
    );
    out.extend_from_slice(b",\"url\":");
    push_str(out, &m.url);
    out.extend_from_slice(b",\"display_url\":");
    push_str(out, &m.display_url);
    out.extend_from_slice(b",\"expanded_url\":");
    push_str(out, &m.expanded_url);
    out.extend_from_slice(
        b",\"type\":\"photo\",\"sizes\":{\"thumb\":{\"w\":150,\"h\":150,\"resize\":\"crop\"},\
          \"medium\":{\"w\":1200,\"h\":900,\"resize\":\"fit\"},\"small\":{\"w\":680,\"h\":510,\"resize\":\"fit\"},\
          \"large\":{\"w\":2048,\"h\":1536,\"resize\":\"fit\"}}}",
    );
}

fn comma(out: &mut Vec<u8>, i: usize) {
    if i > 0 {
        out.push(b',');
    }
}

fn push_indices(out: &mut Vec<u8>, start: usize, end: usize) {
    out.extend_from_slice(b",\"indices\":[");
    push_u64(out, start as u64);
    out.push(b',');
    push_u64(out, end as u64);
    out.push(b']');
}

/// Appends words, tags, mentions and links to a text while recording their entities.
#[derive(Debug, Default)]
pub struct TextBuilder {
    pub text: String,
    pub chars: usize,
    pub entities: Entities,
}

impl TextBuilder {
    fn separate(&mut self) {
        if !self.text.is_empty() {
            self.text.push(' ');
            self.chars += 1;
        }
    }

    /// Appends raw text; returns its (start, end) code-point range.
    pub fn word(&mut self, word: &str) -> (usize, usize) {
        self.separate();
        let start = self.chars;
        self.text.push_str(word);
        self.chars += word.chars().count();
        (start, self.chars)
    }

    pub fn hashtag(&mut self, tag: &str) {
        let (start, end) = self.word(&format!("#{tag}"));
        self.entities.hashtags.push(Hashtag {
            text: tag.to_owned(),
            start,
            end,
        });
    }

    pub fn mention(&mut self, screen_name: &str, name: &str, id: u64) {
        let (start, end) = self.word(&format!("@{screen_name}"));
        self.entities.mentions.push(Mention {
            screen_name: screen_name.to_owned(),
            name: name.to_owned(),
            id,
            start,
            end,
        });
    }

    pub fn url(&mut self, tco: String, expanded_url: String, display_url: String) {
        let (start, end) = self.word(&tco);
        self.entities.urls.push(UrlEntity {
            url: tco,
            expanded_url,
            display_url,
            start,
            end,
        });
    }

    pub fn media(&mut self, mut media: Media) {
        let (start, end) = self.word(&media.url.clone());
        media.start = start;
        media.end = end;
        self.entities.media = Some(media);
    }
}
