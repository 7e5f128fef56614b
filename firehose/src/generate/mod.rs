//! Realistic v1.1 tweets generated from a seed, with chosen targets planted in them.
//!
//! The emulator plants the terms, accounts and places of the connected filters so every
//! connection gets traffic, and routes each tweet by what it planted (ground truth, never a
//! matcher). The benchmarks use the same generator to produce input for enrichment.
//!
//! ```
//! use traptor_firehose::generate::{GeneratorOptions, Plant, TweetGenerator};
//! let mut generator = TweetGenerator::new(42, GeneratorOptions::default());
//! let tweet = generator.next_tweet(&Plant { phrases: vec!["rust lang".into()], ..Plant::default() });
//! let value: serde_json::Value = serde_json::from_slice(&tweet.json).unwrap();
//! assert_eq!(value["id"].as_u64(), Some(tweet.facts.id));
//! ```

mod geo;
mod json;
mod rng;
mod status;
mod text;
mod user;
mod vocab;

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};

pub use geo::{GeoBox, TweetGeo};
pub use json::{created_at, Digits};
pub use rng::FastRng;
pub use user::User;

use status::{Place, Reply, Status};
use text::{Media, TextBuilder};

/// The `filter_level` of a tweet, and the minimum a connection asks for.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize, Default,
)]
#[serde(rename_all = "lowercase")]
pub enum FilterLevel {
    #[default]
    None,
    Low,
    Medium,
}

impl FilterLevel {
    pub fn as_str(self) -> &'static str {
        match self {
            FilterLevel::None => "none",
            FilterLevel::Low => "low",
            FilterLevel::Medium => "medium",
        }
    }

    pub fn parse(value: &str) -> Option<FilterLevel> {
        match value {
            "none" => Some(FilterLevel::None),
            "low" => Some(FilterLevel::Low),
            "medium" => Some(FilterLevel::Medium),
            _ => None,
        }
    }
}

/// How a followed account takes part in a tweet: each is a way `follow` selects tweets.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UserRole {
    /// The account wrote (or retweeted) the tweet.
    Author,
    /// The tweet is a retweet of the account's tweet.
    RetweetedAuthor,
    /// The tweet replies to the account.
    ReplyTarget,
}

/// A followed account to plant, and in which role.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PlantedUser {
    pub id: u64,
    pub role: UserRole,
}

/// What a tweet must contain. Empty means an ordinary tweet that targets nothing.
#[derive(Debug, Clone, Default)]
pub struct Plant {
    /// Track phrases: every term of each phrase lands in the text, a hashtag, a mention or a URL.
    pub phrases: Vec<String>,
    pub user: Option<PlantedUser>,
    /// A box the tweet's coordinates (or its place) will lie in.
    pub location: Option<GeoBox>,
    /// The tweet's `lang`; random when absent.
    pub lang: Option<String>,
    /// The least `filter_level` the tweet must have.
    pub filter_level: Option<FilterLevel>,
}

/// Where timestamps (and so ids) come from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Clock {
    /// The wall clock: what a live stream needs (`created_at` near now).
    Wall,
    /// A fixed start advanced by a fixed step per tweet: fully reproducible output.
    Fixed { start_ms: u64, step_ms: u64 },
}

/// Proportions of the kinds of tweet produced.
#[derive(Debug, Clone)]
pub struct GeneratorOptions {
    /// Native retweets (the text lives in `retweeted_status`).
    pub retweet_ratio: f64,
    /// Quote tweets (`quoted_status`).
    pub quote_ratio: f64,
    /// Texts longer than 140 characters (`truncated: true` + `extended_tweet.full_text`).
    pub extended_ratio: f64,
    /// Replies to a random account.
    pub reply_ratio: f64,
    /// Tweets with a photo.
    pub media_ratio: f64,
    /// Tweets with a real city's place when no location is planted.
    pub geo_ratio: f64,
    /// How many distinct random authors to draw from.
    pub user_pool: usize,
    pub clock: Clock,
}

impl Default for GeneratorOptions {
    fn default() -> Self {
        GeneratorOptions {
            retweet_ratio: 0.2,
            quote_ratio: 0.13,
            extended_ratio: 0.3,
            reply_ratio: 0.1,
            media_ratio: 0.15,
            geo_ratio: 0.03,
            user_pool: 2_000,
            clock: Clock::Wall,
        }
    }
}

/// What routing needs to know about a generated tweet without parsing it.
#[derive(Debug, Clone)]
pub struct TweetFacts {
    pub id: u64,
    pub author_id: u64,
    pub created_ms: u64,
    pub lang: String,
    pub filter_level: FilterLevel,
    pub geo: Option<TweetGeo>,
    pub is_retweet: bool,
}

/// A tweet's JSON (no trailing newline) and its facts.
#[derive(Debug, Clone)]
pub struct GeneratedTweet {
    pub facts: TweetFacts,
    pub json: Vec<u8>,
}

/// Milliseconds of Twitter's snowflake epoch (2010-11-04T01:42:54.657Z).
const SNOWFLAKE_EPOCH_MS: u64 = 1_288_834_974_657;
/// Cap on accounts rendered for planted follow ids that are kept for reuse.
const USER_CACHE_CAP: usize = 50_000;

enum Kind {
    Original,
    Retweet,
    Quote,
}

/// Produces tweets; the same seed, options (with [`Clock::Fixed`]) and plants give the same bytes.
pub struct TweetGenerator {
    rng: FastRng,
    options: GeneratorOptions,
    pool: Vec<Arc<User>>,
    followed: HashMap<u64, Arc<User>>,
    last_id: u64,
    sequence: u64,
    produced: u64,
}

impl TweetGenerator {
    pub fn new(seed: u64, options: GeneratorOptions) -> TweetGenerator {
        let mut rng = FastRng::new(seed);
        let pool = (0..options.user_pool.max(1))
            .map(|_| {
                let digits = rng.between(6, 19) as u32;
                let id = rng.between(10u64.pow(digits - 1), 10u64.pow(digits) - 1);
                Arc::new(User::for_id(id))
            })
            .collect();
        TweetGenerator {
            rng,
            options,
            pool,
            followed: HashMap::new(),
            last_id: 0,
            sequence: 0,
            produced: 0,
        }
    }

    /// A tweet carrying `plant`, as JSON bytes.
    pub fn tweet_json(&mut self, plant: &Plant) -> Vec<u8> {
        self.next_tweet(plant).json
    }

    /// A tweet carrying `plant`, with its facts.
    pub fn next_tweet(&mut self, plant: &Plant) -> GeneratedTweet {
        let mut json = Vec::with_capacity(4096);
        let facts = self.write_tweet(plant, &mut json);
        GeneratedTweet { facts, json }
    }

    /// Appends a tweet carrying `plant` to `out` (reuse `out` to avoid allocations).
    pub fn write_tweet(&mut self, plant: &Plant, out: &mut Vec<u8>) -> TweetFacts {
        let now_ms = self.now_ms();
        self.produced += 1;
        let id = self.next_top_id(now_ms);
        let lang = plant
            .lang
            .clone()
            .unwrap_or_else(|| self.rng.pick_str(vocab::LANGS).to_owned());
        let filter_level = self.filter_level(plant.filter_level.unwrap_or_default());
        let role = plant.user.map(|u| u.role);
        let kind = match role {
            Some(UserRole::RetweetedAuthor) => Kind::Retweet,
            Some(UserRole::ReplyTarget) => Kind::Original,
            _ if plant.location.is_some() => {
                if self.rng.chance(0.2) {
                    Kind::Quote
                } else {
                    Kind::Original
                }
            }
            _ => {
                let r = self.rng.unit();
                if r < self.options.retweet_ratio {
                    Kind::Retweet
                } else if r < self.options.retweet_ratio + self.options.quote_ratio {
                    Kind::Quote
                } else {
                    Kind::Original
                }
            }
        };
        let author = match plant.user {
            Some(PlantedUser {
                id,
                role: UserRole::Author,
            }) => self.followed_user(id),
            _ => self.pool_user(),
        };
        let terms: Vec<&str> = plant
            .phrases
            .iter()
            .flat_map(|p| p.split_whitespace())
            .collect();
        let reply_target = match plant.user {
            Some(PlantedUser {
                id,
                role: UserRole::ReplyTarget,
            }) => Some(self.followed_user(id)),
            _ if matches!(kind, Kind::Original) && self.rng.chance(self.options.reply_ratio) => {
                Some(self.pool_user())
            }
            _ => None,
        };

        let mut top = match kind {
            Kind::Original => self.compose(id, now_ms, author, &terms, reply_target, &lang),
            Kind::Retweet => {
                let inner_author = match plant.user {
                    Some(PlantedUser {
                        id,
                        role: UserRole::RetweetedAuthor,
                    }) => self.followed_user(id),
                    _ => self.pool_user(),
                };
                let (inner_id, inner_ms) = self.older(now_ms);
                let mut inner = self.compose(inner_id, inner_ms, inner_author, &terms, None, &lang);
                if self.rng.chance(0.15) {
                    let (quoted_id, quoted_ms) = self.older(inner_ms);
                    let quoted_author = self.pool_user();
                    let quoted =
                        self.compose(quoted_id, quoted_ms, quoted_author, &[], None, &lang);
                    inner.quoted = Some(Box::new(without_media(quoted)));
                }
                let mut top = self.compose(id, now_ms, author, &[], None, &lang);
                top.retweeted = Some(Box::new(inner));
                top
            }
            Kind::Quote => {
                let terms_inside = self.rng.chance(0.5);
                let (quoted_id, quoted_ms) = self.older(now_ms);
                let quoted_author = self.pool_user();
                let inner_terms: &[&str] = if terms_inside { &terms } else { &[] };
                let outer_terms: &[&str] = if terms_inside { &[] } else { &terms };
                let quoted = without_media(self.compose(
                    quoted_id,
                    quoted_ms,
                    quoted_author,
                    inner_terms,
                    None,
                    &lang,
                ));
                let mut top = self.compose(id, now_ms, author, outer_terms, reply_target, &lang);
                top.quoted = Some(Box::new(quoted));
                top
            }
        };

        let is_retweet = top.retweeted.is_some();
        let geo = match plant.location {
            Some(area) => Some(self.place_in(&mut top, area)),
            None if !is_retweet && self.rng.chance(self.options.geo_ratio) => {
                let seed = self.rng.pick(vocab::PLACES);
                let area = GeoBox::new(seed.bbox[0], seed.bbox[1], seed.bbox[2], seed.bbox[3]);
                Some(self.place_in(&mut top, area))
            }
            None => None,
        };
        top.render(out, Some(filter_level));
        TweetFacts {
            id,
            author_id: top.user.id,
            created_ms: now_ms,
            lang,
            filter_level,
            geo,
            is_retweet,
        }
    }

    /// A fresh top-level id and its creation time, as the next generated tweet would get:
    /// for a copy of an earlier tweet sent again as a new one.
    pub fn next_id(&mut self) -> (u64, u64) {
        let now_ms = self.now_ms();
        self.produced += 1;
        (self.next_top_id(now_ms), now_ms)
    }

    fn now_ms(&self) -> u64 {
        match self.options.clock {
            Clock::Wall => SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .map(|d| d.as_millis() as u64)
                .unwrap_or(0),
            Clock::Fixed { start_ms, step_ms } => start_ms + self.produced * step_ms,
        }
    }

    /// A snowflake id for `ms`, strictly above every id handed out before.
    fn next_top_id(&mut self, ms: u64) -> u64 {
        self.sequence = self.sequence.wrapping_add(1);
        let id = snowflake(ms, 1, self.sequence);
        self.last_id = id.max(self.last_id + 1);
        self.last_id
    }

    /// An id and time some minutes to days before `ms`, for retweeted and quoted statuses.
    fn older(&mut self, ms: u64) -> (u64, u64) {
        let back = self
            .rng
            .between(60_000, 3 * 86_400_000)
            .min(ms.saturating_sub(SNOWFLAKE_EPOCH_MS));
        let then = ms - back;
        self.sequence = self.sequence.wrapping_add(1);
        (
            snowflake(then, 2 + self.rng.below(1000), self.sequence),
            then,
        )
    }

    fn filter_level(&mut self, least: FilterLevel) -> FilterLevel {
        let r = self.rng.unit();
        let drawn = if r < 0.5 {
            FilterLevel::None
        } else if r < 0.85 {
            FilterLevel::Low
        } else {
            FilterLevel::Medium
        };
        drawn.max(least)
    }

    fn pool_user(&mut self) -> Arc<User> {
        let i = self.rng.index(self.pool.len());
        self.pool[i].clone()
    }

    fn followed_user(&mut self, id: u64) -> Arc<User> {
        if let Some(user) = self.followed.get(&id) {
            return user.clone();
        }
        let user = Arc::new(User::for_id(id));
        if self.followed.len() < USER_CACHE_CAP {
            self.followed.insert(id, user.clone());
        }
        user
    }

    /// One status with a text of filler words around the planted `terms`.
    fn compose(
        &mut self,
        id: u64,
        created_ms: u64,
        user: Arc<User>,
        terms: &[&str],
        reply_to: Option<Arc<User>>,
        lang: &str,
    ) -> Status {
        let mut text = TextBuilder::default();
        let reply = reply_to.map(|target| {
            text.mention(&target.screen_name, &target.name, target.id);
            Reply {
                status_id: self.older(created_ms).0,
                user: target,
            }
        });
        let target_chars = if self.rng.chance(self.options.extended_ratio) {
            self.rng.between(170, 270)
        } else {
            self.rng.between(30, 120)
        };
        let filler = (target_chars / 7).max(3) as usize;
        let mut slots: Vec<(usize, &str)> = terms
            .iter()
            .map(|t| (self.rng.index(filler + 1), *t))
            .collect();
        slots.sort_by_key(|(slot, _)| *slot);
        let mut planted = slots.into_iter().peekable();
        let mut links = 0;
        for i in 0..=filler {
            while let Some((_, term)) = planted.next_if(|(slot, _)| *slot == i) {
                self.plant_term(&mut text, term);
            }
            if i < filler {
                self.filler(&mut text, &mut links);
            }
        }
        let short_link = format!("https://t.co/{}", user::short_code(&mut self.rng));
        if self.rng.chance(self.options.media_ratio) {
            let media_id = self.older(created_ms).0;
            let url = format!("https://t.co/{}", user::short_code(&mut self.rng));
            text.media(Media {
                id: media_id,
                display_url: format!("pic.twitter.com/{}", &url[13..]),
                expanded_url: format!(
                    "https://twitter.com/{}/status/{id}/photo/1",
                    user.screen_name
                ),
                media_key: user::short_code(&mut self.rng),
                url,
                start: 0,
                end: 0,
            });
        }
        Status {
            id,
            created_ms,
            user,
            full_chars: text.chars,
            full_text: text.text,
            entities: text.entities,
            reply,
            coordinates: None,
            place: None,
            quoted: None,
            retweeted: None,
            lang: lang.to_owned(),
            source: self.rng.pick_str(vocab::SOURCES),
            retweet_count: self.rng.below(50),
            favorite_count: self.rng.below(200),
            short_link,
        }
    }

    /// One filler piece: mostly a word, sometimes an emoji, hashtag, mention or link.
    fn filler(&mut self, text: &mut TextBuilder, links: &mut u32) {
        let r = self.rng.unit();
        if r < 0.84 {
            text.word(self.rng.pick_str(vocab::WORDS));
        } else if r < 0.91 {
            text.word(self.rng.pick_str(vocab::EMOJI));
        } else if r < 0.95 {
            text.hashtag(self.rng.pick_str(vocab::HASHTAGS));
        } else if r < 0.98 {
            let user = self.pool_user();
            text.mention(&user.screen_name, &user.name, user.id);
        } else if *links < 2 {
            *links += 1;
            let site = self.rng.pick_str(vocab::SITES);
            let slug = self.rng.pick_str(vocab::WORDS);
            let code = user::short_code(&mut self.rng);
            text.url(
                format!("https://t.co/{code}"),
                format!("https://www.{site}/{slug}/{code}"),
                format!("{site}/{slug}/{code}"),
            );
        } else {
            text.word(self.rng.pick_str(vocab::WORDS));
        }
    }

    /// Puts one track term where the streaming API looks: text, hashtag, mention or link.
    fn plant_term(&mut self, text: &mut TextBuilder, term: &str) {
        let wordy = !term.is_empty() && term.chars().all(|c| c.is_alphanumeric() || c == '_');
        if let Some(tag) = term.strip_prefix('#').filter(|t| is_word(t)) {
            text.hashtag(tag);
            return;
        }
        if let Some(name) = term.strip_prefix('@').filter(|n| is_screen_name(n)) {
            text.mention(name, name, stable_id(name));
            return;
        }
        if !wordy {
            text.word(term);
            return;
        }
        let r = self.rng.unit();
        if r < 0.6 || !term.is_ascii() && r < 0.85 {
            let mut word = if term.is_ascii() {
                self.vary_case(term)
            } else {
                term.to_owned()
            };
            if term.is_ascii() && self.rng.chance(0.15) {
                word.push(*self.rng.pick(&['.', '!', '?', ',']));
            }
            text.word(&word);
        } else if r < 0.75 || !term.is_ascii() {
            text.hashtag(term);
        } else if r < 0.85 && is_screen_name(term) {
            text.mention(term, term, stable_id(term));
        } else {
            let site = self.rng.pick_str(vocab::SITES);
            let code = user::short_code(&mut self.rng);
            text.url(
                format!("https://t.co/{code}"),
                format!("https://{site}/{term}"),
                format!("{site}/{term}"),
            );
        }
    }

    fn vary_case(&mut self, term: &str) -> String {
        let r = self.rng.unit();
        if r < 0.25 {
            term.to_ascii_lowercase()
        } else if r < 0.4 {
            term.to_ascii_uppercase()
        } else if r < 0.55 {
            let mut s = term.to_ascii_lowercase();
            s[..1].make_ascii_uppercase();
            s
        } else {
            term.to_owned()
        }
    }

    /// Sets coordinates (and a place around them), or only a place, inside `area`.
    fn place_in(&mut self, status: &mut Status, area: GeoBox) -> TweetGeo {
        let seed = self.rng.pick(vocab::PLACES);
        let mut place = Place {
            id: self.rng.next_u64(),
            name: seed.name.to_owned(),
            full_name: seed.full_name.to_owned(),
            country: seed.country.to_owned(),
            country_code: seed.country_code.to_owned(),
            bbox: area,
        };
        if self.rng.chance(0.6) {
            let lon = self.rng.range_f64(area.west, area.east);
            let lat = self.rng.range_f64(area.south, area.north);
            // Six decimals are what is written; keep the fact equal to the bytes.
            let (lon, lat) = (
                round6(lon).clamp(area.west, area.east),
                round6(lat).clamp(area.south, area.north),
            );
            place.bbox = GeoBox::new(lon - 0.05, lat - 0.05, lon + 0.05, lat + 0.05);
            status.coordinates = Some((lon, lat));
            status.place = Some(place);
            TweetGeo::Point { lon, lat }
        } else {
            let (a, b) = (
                self.rng.range_f64(area.west, area.east),
                self.rng.range_f64(area.west, area.east),
            );
            let (c, d) = (
                self.rng.range_f64(area.south, area.north),
                self.rng.range_f64(area.south, area.north),
            );
            let inner = GeoBox::new(
                round6(a.min(b)).max(area.west),
                round6(c.min(d)).max(area.south),
                round6(a.max(b)).min(area.east),
                round6(c.max(d)).min(area.north),
            );
            place.bbox = inner;
            status.place = Some(place);
            TweetGeo::Place(inner)
        }
    }
}

/// Quoted statuses carry no photo here, which keeps nested tweets near real sizes.
fn without_media(mut status: Status) -> Status {
    if let Some(media) = status.entities.media.take() {
        let cut = status.full_text[..]
            .rfind(&media.url)
            .unwrap_or(status.full_text.len());
        status.full_text.truncate(cut.saturating_sub(1));
        status.full_chars = status.full_text.chars().count();
    }
    status
}

fn round6(value: f64) -> f64 {
    (value * 1e6).round() / 1e6
}

fn snowflake(ms: u64, worker: u64, sequence: u64) -> u64 {
    (ms.saturating_sub(SNOWFLAKE_EPOCH_MS) << 22) | ((worker & 0x3ff) << 12) | (sequence & 0xfff)
}

fn is_word(s: &str) -> bool {
    !s.is_empty() && s.chars().all(|c| c.is_alphanumeric() || c == '_')
}

fn is_screen_name(s: &str) -> bool {
    (1..=15).contains(&s.len()) && s.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
}

/// The same account id for the same mentioned name, so mentions are consistent.
fn stable_id(name: &str) -> u64 {
    let mut rng = FastRng::new(name.bytes().fold(0xcbf2_9ce4_8422_2325u64, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x100_0000_01b3)
    }));
    rng.between(100_000, 9_999_999_999)
}

#[cfg(test)]
mod tests;
