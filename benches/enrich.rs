//! The hot path of every stream: enriching one tweet (parse once, match, splice), measured against
//! the cheapest possible pass over the same bytes, a validation-only parse.
//!
//! Corpus: seeded, generated v1.1 tweets of 2–6 KB (a full user object, entities, about a third
//! retweets or quotes embedding the whole original, some extended, some geotagged, unicode and
//! emoji), matched against a full connection's worth of each rule type at once: 400 track
//! phrases, 5,000 follow ids and 25 boxes.
//!
//! `cargo bench --bench enrich`. Besides criterion's figures, a summary with tweets/s, MB/s and the
//! ratio of the two rates, all from this run, is printed at the end.

use std::hint::black_box;
use std::time::{Duration, Instant};

use criterion::{criterion_group, Criterion, Throughput};
use serde_json::{json, Value};
use traptor_core::enrich::Enricher;
use traptor_core::rules::{parse_rule, Rule};

const TWEETS: usize = 2_000;
const TRACK_PHRASES: usize = 400;
const FOLLOW_IDS: usize = 5_000;
const BOXES: usize = 25;
const VOCABULARY: usize = 20_000;
const RULE_WORDS_FROM: usize = 300;
/// Share of tweets carrying one of the track phrases (others match by author or place, or not).
const HAS_TRACKED_PHRASE: f64 = 0.6;
const SEED: u64 = 0x7261_7074_6f72;

/// A small deterministic generator (xorshift64*), so the corpus is the same on every run.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
    fn chance(&mut self, p: f64) -> bool {
        (self.next() >> 11) as f64 / (1u64 << 53) as f64 <= p
    }
    /// Zipf-like: low indexes are far more frequent, as word frequencies are.
    fn skewed(&mut self, n: usize) -> usize {
        let u = (self.next() >> 11) as f64 / (1u64 << 53) as f64;
        ((n as f64).powf(u) as usize).saturating_sub(1).min(n - 1)
    }
}

const SYLLABLES: &[&str] = &[
    "ka", "lo", "mi", "ra", "te", "su", "no", "vi", "da", "ge", "po", "ri", "an", "el", "or", "us",
    "qu", "zen", "bar", "tor", "lin", "mar", "sol", "ven", "dra", "pe", "bu",
];
const ACCENTED: &[&str] = &[
    "café",
    "niño",
    "über",
    "façade",
    "touché",
    "größe",
    "école",
    "señor",
    "привет",
    "ΟΔΟΣ",
];
const EMOJI: &[&str] = &["😀", "🔥", "🎉", "❤️", "👍", "🚀", "😂", "🙏", "✨", "🌍"];
const CJK: &[&str] = &["今日は", "中国", "東京", "서울", "ありがとう"];
const CITIES: &[(f64, f64)] = &[
    (-122.42, 37.77),
    (-74.0, 40.71),
    (-0.13, 51.5),
    (2.35, 48.86),
    (139.69, 35.69),
    (-118.24, 34.05),
    (-87.63, 41.88),
    (13.4, 52.52),
    (151.21, -33.87),
    (-46.63, -23.55),
    (77.21, 28.61),
    (31.24, 30.04),
    (-99.13, 19.43),
    (37.62, 55.75),
    (12.5, 41.9),
    (103.82, 1.35),
    (-79.38, 43.65),
    (18.07, 59.33),
    (28.98, 41.01),
    (116.4, 39.9),
    (-3.7, 40.42),
    (4.9, 52.37),
    (-43.2, -22.9),
    (126.98, 37.57),
    (114.17, 22.32),
];

struct World {
    words: Vec<String>,
    followed: Vec<u64>,
    /// The track rules' values, `#`-prefixed for hashtag rules.
    phrases: Vec<String>,
}

impl World {
    fn new(rng: &mut Rng) -> World {
        let mut seen = std::collections::HashSet::new();
        let mut words = Vec::new();
        while words.len() < VOCABULARY {
            let n = 2 + rng.below(3);
            let word: String = (0..n)
                .map(|_| SYLLABLES[rng.below(SYLLABLES.len())])
                .collect();
            if seen.insert(word.clone()) {
                words.push(word);
            }
        }
        let followed = (0..FOLLOW_IDS)
            .map(|_| 10_000_000 + rng.next() % 2_000_000_000)
            .collect();
        // Rarer words, so that a tweet matches a rule or two when it has one, as on a real stream.
        let word = |rng: &mut Rng| {
            words[RULE_WORDS_FROM + rng.below(VOCABULARY - RULE_WORDS_FROM)].clone()
        };
        let phrases = (0..TRACK_PHRASES)
            .map(|i| match i % 5 {
                0 => format!("{} {}", word(rng), word(rng)),
                1 => format!("#{}", word(rng)),
                _ => word(rng),
            })
            .collect();
        World {
            words,
            followed,
            phrases,
        }
    }

    fn user_id(&self, rng: &mut Rng) -> u64 {
        if rng.chance(0.05) {
            self.followed[rng.below(self.followed.len())]
        } else {
            3_000_000_000 + rng.next() % 1_000_000_000
        }
    }

    fn user(&self, rng: &mut Rng) -> Value {
        let id = self.user_id(rng);
        let name = self.sentence(rng, 2);
        json!({
            "id": id, "id_str": id.to_string(), "name": name, "screen_name": format!("user_{}", id % 100_000),
            "location": self.sentence(rng, 2), "url": format!("https://{}.example.org", self.word(rng)),
            "description": self.sentence(rng, 14), "translator_type": "none", "protected": false,
            "verified": rng.chance(0.02), "followers_count": rng.below(100_000), "friends_count": rng.below(5_000),
            "listed_count": rng.below(300), "favourites_count": rng.below(50_000), "statuses_count": rng.below(90_000),
            "created_at": "Wed Mar 04 18:01:15 +0000 2009", "utc_offset": null, "time_zone": null,
            "geo_enabled": rng.chance(0.3), "lang": null, "contributors_enabled": false, "is_translator": false,
            "profile_background_color": "C0DEED",
            "profile_background_image_url": "http://abs.twimg.com/images/themes/theme1/bg.png",
            "profile_background_image_url_https": "https://abs.twimg.com/images/themes/theme1/bg.png",
            "profile_background_tile": false, "profile_link_color": "1DA1F2", "profile_sidebar_border_color": "C0DEED",
            "profile_sidebar_fill_color": "DDEEF6", "profile_text_color": "333333", "profile_use_background_image": true,
            "profile_image_url": format!("http://pbs.twimg.com/profile_images/{id}/photo_normal.jpg"),
            "profile_image_url_https": format!("https://pbs.twimg.com/profile_images/{id}/photo_normal.jpg"),
            "profile_banner_url": format!("https://pbs.twimg.com/profile_banners/{id}/1490000000"),
            "default_profile": true, "default_profile_image": false, "following": null, "follow_request_sent": null,
            "notifications": null
        })
    }

    fn word(&self, rng: &mut Rng) -> &str {
        &self.words[rng.skewed(self.words.len())]
    }

    fn sentence(&self, rng: &mut Rng, words: usize) -> String {
        let mut out = String::new();
        for i in 0..words {
            if i > 0 {
                out.push(' ');
            }
            match rng.below(40) {
                0 => out.push_str(EMOJI[rng.below(EMOJI.len())]),
                1 => out.push_str(CJK[rng.below(CJK.len())]),
                3 => out.push_str(ACCENTED[rng.below(ACCENTED.len())]),
                2 => {
                    let w = self.word(rng).to_string();
                    out.push_str(&w);
                    out.push_str([".", ",", "!", "?", "'s"][rng.below(5)]);
                }
                _ => out.push_str(self.word(rng)),
            }
        }
        out
    }

    /// Text with its entities; `long` makes an extended tweet's full text.
    fn text_and_entities(&self, rng: &mut Rng, long: bool) -> (String, Value) {
        let words = if long { 40 } else { 12 + rng.below(10) };
        let mut text = self.sentence(rng, words);
        let mut hashtags = Vec::new();
        if rng.chance(HAS_TRACKED_PHRASE) {
            // The server delivered it for one of the track phrases.
            let phrase = &self.phrases[rng.below(self.phrases.len())];
            if let Some(tag) = phrase.strip_prefix('#') {
                hashtags.push(json!({"text": tag, "indices": [0, 1]}));
            }
            text = format!("{text} {phrase}");
        }
        for _ in 0..rng.below(3) {
            let tag = self.word(rng).to_string();
            text.push_str(&format!(" #{tag}"));
            hashtags.push(json!({"text": tag, "indices": [0, 1]}));
        }
        let mut mentions = Vec::new();
        if rng.chance(0.4) {
            let id = self.user_id(rng);
            let name = format!("user_{}", id % 100_000);
            text = format!("@{name} {text}");
            mentions.push(json!({"screen_name": name, "name": self.sentence(rng, 2), "id": id, "id_str": id.to_string(), "indices": [0, 1]}));
        }
        let mut urls = Vec::new();
        if rng.chance(0.35) {
            let path = self.word(rng).to_string();
            let domain = format!("{}.com", self.word(rng));
            text.push_str(" https://t.co/AbCdEf1234");
            urls.push(json!({"url": "https://t.co/AbCdEf1234", "expanded_url": format!("https://www.{domain}/{path}?utm_source=tw"),
                             "display_url": format!("{domain}/{path}…"), "indices": [0, 1]}));
        }
        (
            text,
            json!({"hashtags": hashtags, "urls": urls, "user_mentions": mentions, "symbols": []}),
        )
    }

    fn status(&self, rng: &mut Rng, embedded: bool) -> Value {
        let id = 900_000_000_000_000_000u64 + rng.next() % 99_999_999_999_999_999;
        let extended = rng.chance(0.2);
        let (text, entities) = self.text_and_entities(rng, false);
        let mut tweet = json!({
            "created_at": "Mon Feb 22 01:34:53 +0000 2016", "id": id, "id_str": id.to_string(), "text": text,
            "source": "<a href=\"http://twitter.com/download/iphone\" rel=\"nofollow\">Twitter for iPhone</a>",
            "truncated": extended, "in_reply_to_status_id": null, "in_reply_to_status_id_str": null,
            "in_reply_to_user_id": null, "in_reply_to_user_id_str": null, "in_reply_to_screen_name": null,
            "user": self.user(rng), "geo": null, "coordinates": null, "place": null, "contributors": null,
            "is_quote_status": false, "quote_count": 0, "reply_count": rng.below(10), "retweet_count": rng.below(100),
            "favorite_count": rng.below(500), "entities": entities, "favorited": false, "retweeted": false,
            "filter_level": "low", "lang": "en"
        });
        if extended {
            let (full_text, entities) = self.text_and_entities(rng, true);
            tweet["extended_tweet"] = json!({"full_text": full_text, "display_text_range": [0, 280], "entities": entities});
        }
        if rng.chance(0.1) {
            let replied = self.user_id(rng);
            tweet["in_reply_to_user_id"] = json!(replied);
            tweet["in_reply_to_user_id_str"] = json!(replied.to_string());
        }
        if !embedded && rng.chance(0.04) {
            let (lon, lat) = CITIES[rng.below(CITIES.len())];
            let (lon, lat) = (
                lon + (rng.below(100) as f64 - 50.0) / 200.0,
                lat + (rng.below(100) as f64 - 50.0) / 200.0,
            );
            tweet["coordinates"] = json!({"type": "Point", "coordinates": [lon, lat]});
            tweet["geo"] = json!({"type": "Point", "coordinates": [lat, lon]});
            tweet["place"] = json!({"id": "5a110d312052166f", "url": "https://api.twitter.com/1.1/geo/id/5a110d312052166f.json",
                "place_type": "city", "name": "City", "full_name": "City, Country", "country_code": "XX", "country": "Country",
                "bounding_box": {"type": "Polygon", "coordinates": [[[lon - 0.2, lat - 0.2], [lon - 0.2, lat + 0.2], [lon + 0.2, lat + 0.2], [lon + 0.2, lat - 0.2]]]},
                "attributes": {}});
        }
        if !embedded {
            tweet["timestamp_ms"] = json!("1456104893000");
            match rng.below(9) {
                0 | 1 => {
                    let original = self.status(rng, true);
                    let name = original["user"]["screen_name"]
                        .as_str()
                        .unwrap()
                        .to_string();
                    let text = format!("RT @{name}: {}", original["text"].as_str().unwrap());
                    tweet["text"] = json!(text);
                    tweet["retweeted_status"] = original;
                }
                2 => {
                    tweet["is_quote_status"] = json!(true);
                    tweet["quoted_status"] = self.status(rng, true);
                }
                _ => {}
            }
        }
        tweet
    }

    fn rules(&self) -> Vec<Rule> {
        let mut rules = Vec::new();
        let add = |rules: &mut Vec<Rule>, fields: Vec<(&str, String)>| {
            let id = rules.len().to_string();
            let mut hash: Vec<(String, String)> =
                vec![("rule_id".into(), id), ("tag".into(), "bench".into())];
            hash.extend(fields.into_iter().map(|(k, v)| (k.to_string(), v)));
            if let Ok(rule) = parse_rule(hash, None) {
                rules.push(rule);
            }
        };
        for phrase in &self.phrases {
            let (value, orig) = match phrase.strip_prefix('#') {
                Some(tag) => (tag.to_string(), "hashtag"),
                None => (phrase.clone(), "keyword"),
            };
            add(
                &mut rules,
                vec![
                    ("value", value),
                    ("orig_type", orig.into()),
                    ("rule_type", "track".into()),
                ],
            );
        }
        for id in &self.followed {
            add(
                &mut rules,
                vec![
                    ("value", id.to_string()),
                    ("orig_type", "userid".into()),
                    ("rule_type", "follow".into()),
                ],
            );
        }
        for &(lon, lat) in CITIES.iter().take(BOXES) {
            let value = format!("{},{},{},{}", lon - 0.3, lat - 0.3, lon + 0.3, lat + 0.3);
            add(
                &mut rules,
                vec![
                    ("value", value),
                    ("orig_type", "geo".into()),
                    ("rule_type", "locations".into()),
                ],
            );
        }
        rules
    }
}

struct Corpus {
    tweets: Vec<Vec<u8>>,
    bytes: usize,
    enricher: Enricher,
}

fn corpus() -> Corpus {
    let mut rng = Rng(SEED);
    let world = World::new(&mut rng);
    let tweets: Vec<Vec<u8>> = (0..TWEETS)
        .map(|_| world.status(&mut rng, false).to_string().into_bytes())
        .collect();
    let bytes = tweets.iter().map(Vec::len).sum();
    let enricher = Enricher::new(None, world.rules());
    Corpus {
        tweets,
        bytes,
        enricher,
    }
}

fn validate_all(corpus: &Corpus) -> usize {
    corpus
        .tweets
        .iter()
        .filter(|t| serde_json::from_slice::<serde::de::IgnoredAny>(black_box(t)).is_ok())
        .count()
}

fn enrich_all(corpus: &Corpus) -> usize {
    corpus
        .tweets
        .iter()
        .map(|t| {
            corpus
                .enricher
                .enrich(black_box(t), 1_456_104_900_000)
                .record
                .payload
                .len()
        })
        .sum()
}

fn describe(corpus: &Corpus) {
    let sizes: Vec<usize> = corpus.tweets.iter().map(Vec::len).collect();
    let embedding = corpus
        .tweets
        .iter()
        .filter(|t| {
            let s = std::str::from_utf8(t).unwrap();
            s.contains("\"retweeted_status\"") || s.contains("\"quoted_status\"")
        })
        .count();
    let mut by_type = [0usize; 3];
    let mut matched = 0;
    let mut matches = 0;
    for t in &corpus.tweets {
        let e = corpus.enricher.enrich(t, 0);
        matched += usize::from(!e.matched.is_empty());
        matches += e.matched.len();
        for &i in &e.matched {
            by_type[corpus.enricher.rules()[i].stream_type as usize] += 1;
        }
    }
    println!(
        "corpus: {} tweets, {:.1} MB, {}..{} bytes (mean {}), {:.0}% retweets or quotes; rules: {}",
        corpus.tweets.len(),
        corpus.bytes as f64 / 1e6,
        sizes.iter().min().unwrap(),
        sizes.iter().max().unwrap(),
        corpus.bytes / sizes.len(),
        100.0 * embedding as f64 / sizes.len() as f64,
        corpus.enricher.rules().len(),
    );
    println!(
        "hit ratio: {:.1}% of tweets matched a rule, {:.2} rules per tweet (track {}, follow {}, locations {} rule matches)",
        100.0 * matched as f64 / sizes.len() as f64,
        matches as f64 / sizes.len() as f64,
        by_type[0],
        by_type[1],
        by_type[2]
    );
}

fn bench(c: &mut Criterion) {
    let corpus = corpus();
    describe(&corpus);
    let mut group = c.benchmark_group("enrich");
    group.throughput(Throughput::Bytes(corpus.bytes as u64));
    group.bench_function("validate_only_ignored_any", |b| {
        b.iter(|| validate_all(&corpus))
    });
    group.bench_function("enrich_full", |b| b.iter(|| enrich_all(&corpus)));
    group.finish();
    summary(&corpus);
}

/// Rates of both passes measured back to back, alternating, so the ratio compares like with like.
fn summary(corpus: &Corpus) {
    let mut validate = Duration::ZERO;
    let mut enrich = Duration::ZERO;
    let mut rounds = 0u32;
    let deadline = Instant::now() + Duration::from_secs(6);
    while Instant::now() < deadline {
        let t = Instant::now();
        black_box(validate_all(corpus));
        validate += t.elapsed();
        let t = Instant::now();
        black_box(enrich_all(corpus));
        enrich += t.elapsed();
        rounds += 1;
    }
    let tweets = (corpus.tweets.len() as f64) * rounds as f64;
    let bytes = (corpus.bytes as f64) * rounds as f64;
    let rate = |d: Duration| (tweets / d.as_secs_f64(), bytes / d.as_secs_f64() / 1e6);
    let (v_tps, v_mbps) = rate(validate);
    let (e_tps, e_mbps) = rate(enrich);
    println!("summary ({rounds} alternating rounds, one core):");
    println!("  validate-only parse: {v_tps:>10.0} tweets/s  {v_mbps:>7.1} MB/s");
    println!("  full enrichment:     {e_tps:>10.0} tweets/s  {e_mbps:>7.1} MB/s");
    println!("  enrichment / validation: {:.0}%", 100.0 * e_tps / v_tps);
}

criterion_group!(benches, bench);

fn main() {
    benches();
    Criterion::default().configure_from_args().final_summary();
}
