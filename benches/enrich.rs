//! The hot path of every stream: enriching one tweet (parse once, match, splice), measured against
//! the cheapest possible pass over the same bytes, a validation-only parse.
//!
//! Corpus: tweets from the emulator's generator (`traptor_firehose::generate`), seeded and on a
//! fixed clock so every run sees the same bytes: 2–6 KB each (a full user object, entities, about
//! a third retweets or quotes embedding the whole original, some extended, some geotagged,
//! unicode and emoji). They are matched against a full connection's worth of each rule type at
//! once: 400 track phrases, 5,000 follow ids and 25 boxes. A share of the tweets carries one
//! rule's phrase, account or place (planted by the generator), as a filtered stream does.
//!
//! Both passes run with the supervisor's allocator (mimalloc), since that is where streams run.
//!
//! `cargo bench --bench enrich`. Besides criterion's figures, a summary with tweets/s, MB/s and the
//! ratio of the two rates, all from this run, is printed at the end.

use std::hint::black_box;
use std::time::{Duration, Instant};

use criterion::{criterion_group, Criterion, Throughput};
use traptor_core::enrich::Enricher;
use traptor_core::rules::{parse_rule, Rule};
use traptor_firehose::generate::{
    Clock, FastRng, GeneratorOptions, GeoBox, Plant, PlantedUser, TweetGenerator, UserRole,
};

/// The allocator of `traptor-supervisor`, whose stream threads run this hot path: measuring
/// enrichment with glibc's would time an allocator production does not use.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

const TWEETS: usize = 2_000;
/// Tweets outside these sizes (a retweet of a quote can pass 9 KB) are drawn again, to keep the
/// corpus at the 2–6 KB of the target.
const SIZES: std::ops::RangeInclusive<usize> = 2_000..=6_144;
const TRACK_PHRASES: usize = 400;
const FOLLOW_IDS: usize = 5_000;
const SEED: u64 = 0x7261_7074_6f72;
/// Shares of tweets carrying one rule's target; the rest carry none (they may still match by
/// chance, as on a real stream).
const PLANT_PHRASE: f64 = 0.55;
const PLANT_USER: f64 = 0.06;
const PLANT_LOCATION: f64 = 0.05;

const SYLLABLES: &[&str] = &[
    "ka", "lo", "mi", "ra", "te", "su", "no", "vi", "da", "ge", "po", "ri", "an", "el", "or", "us",
    "qu", "zen", "bar", "tor", "lin", "mar", "sol", "ven", "dra", "pe", "bu",
];
/// Non-ASCII rule terms, so that the unicode path of matching is measured too.
const UNICODE_TERMS: &[&str] = &[
    "café",
    "niño",
    "über",
    "façade",
    "touché",
    "größe",
    "école",
    "señor",
    "привет",
    "東京",
];
/// Centres of the 25 location boxes (longitude, latitude); each box is 0.6° wide.
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

/// The targets of one connection of each type: what the rules ask for and the generator plants.
struct Targets {
    /// Track phrases as planted (`#`-prefixed for hashtag rules).
    phrases: Vec<String>,
    followed: Vec<u64>,
    boxes: Vec<GeoBox>,
}

impl Targets {
    fn new(rng: &mut FastRng) -> Targets {
        let mut seen = std::collections::HashSet::new();
        let mut word = |rng: &mut FastRng| loop {
            let word: String = (0..rng.between(3, 4))
                .map(|_| *rng.pick(SYLLABLES))
                .collect();
            if seen.insert(word.clone()) {
                return word;
            }
        };
        let phrases = (0..TRACK_PHRASES)
            .map(|i| match i % 20 {
                0..=3 => format!("{} {}", word(rng), word(rng)),
                4..=7 => format!("#{}", word(rng)),
                8 => rng.pick(UNICODE_TERMS).to_string() + " " + &word(rng),
                _ => word(rng),
            })
            .collect();
        let followed = (0..FOLLOW_IDS)
            .map(|_| rng.between(10_000_000, 2_000_000_000))
            .collect();
        let boxes = CITIES
            .iter()
            .map(|&(lon, lat)| GeoBox::new(lon - 0.3, lat - 0.3, lon + 0.3, lat + 0.3))
            .collect();
        Targets {
            phrases,
            followed,
            boxes,
        }
    }

    /// What one tweet carries: one rule's target, or (for the rest) nothing.
    fn plant(&self, rng: &mut FastRng) -> Plant {
        let r = rng.unit();
        let mut plant = Plant::default();
        if r < PLANT_PHRASE {
            plant.phrases.push(rng.pick(&self.phrases).clone());
        } else if r < PLANT_PHRASE + PLANT_USER {
            let role = *rng.pick(&[
                UserRole::Author,
                UserRole::RetweetedAuthor,
                UserRole::ReplyTarget,
            ]);
            plant.user = Some(PlantedUser {
                id: *rng.pick(&self.followed),
                role,
            });
        } else if r < PLANT_PHRASE + PLANT_USER + PLANT_LOCATION {
            plant.location = Some(*rng.pick(&self.boxes));
        }
        plant
    }

    fn rules(&self) -> Vec<Rule> {
        let mut rules = Vec::new();
        let mut add = |value: String, orig_type: &str, rule_type: &str| {
            let fields = [
                ("rule_id", rules.len().to_string()),
                ("tag", "bench".to_string()),
                ("value", value),
                ("orig_type", orig_type.to_string()),
                ("rule_type", rule_type.to_string()),
            ];
            let fields = fields
                .into_iter()
                .map(|(k, v)| (k.to_string(), v))
                .collect();
            rules.push(parse_rule(fields, None).expect("a valid bench rule"));
        };
        for phrase in &self.phrases {
            match phrase.strip_prefix('#') {
                Some(tag) => add(tag.to_string(), "hashtag", "track"),
                None => add(phrase.clone(), "keyword", "track"),
            }
        }
        for id in &self.followed {
            add(id.to_string(), "userid", "follow");
        }
        for area in &self.boxes {
            let value = format!("{},{},{},{}", area.west, area.south, area.east, area.north);
            add(value, "geo", "locations");
        }
        rules
    }
}

struct Corpus {
    tweets: Vec<Vec<u8>>,
    bytes: usize,
    retweets_or_quotes: usize,
    enricher: Enricher,
}

fn corpus() -> Corpus {
    let mut rng = FastRng::new(SEED);
    let targets = Targets::new(&mut rng);
    let options = GeneratorOptions {
        clock: Clock::Fixed {
            start_ms: 1_456_104_893_000,
            step_ms: 7,
        },
        ..GeneratorOptions::default()
    };
    let mut generator = TweetGenerator::new(SEED, options);
    let mut tweets = Vec::with_capacity(TWEETS);
    let mut retweets_or_quotes = 0;
    while tweets.len() < TWEETS {
        let tweet = generator.next_tweet(&targets.plant(&mut rng));
        if !SIZES.contains(&tweet.json.len()) {
            continue;
        }
        let text = std::str::from_utf8(&tweet.json).expect("generated tweets are UTF-8");
        retweets_or_quotes +=
            usize::from(tweet.facts.is_retweet || text.contains("\"quoted_status\""));
        tweets.push(tweet.json);
    }
    let bytes = tweets.iter().map(Vec::len).sum();
    Corpus {
        tweets,
        bytes,
        retweets_or_quotes,
        enricher: Enricher::new(None, targets.rules()),
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
    let count = corpus.tweets.len();
    let share = |n: usize| 100.0 * n as f64 / count as f64;
    let with = |needle: &str| {
        corpus
            .tweets
            .iter()
            .filter(|t| std::str::from_utf8(t).unwrap().contains(needle))
            .count()
    };
    let non_ascii = corpus.tweets.iter().filter(|t| !t.is_ascii()).count();
    let sizes: Vec<usize> = corpus.tweets.iter().map(Vec::len).collect();
    let mut by_type = [0usize; 3];
    let (mut matched, mut matches) = (0, 0);
    for t in &corpus.tweets {
        let e = corpus.enricher.enrich(t, 0);
        assert!(e.error.is_none(), "a generated tweet failed: {:?}", e.error);
        matched += usize::from(!e.matched.is_empty());
        matches += e.matched.len();
        for &i in &e.matched {
            by_type[corpus.enricher.rules()[i].stream_type as usize] += 1;
        }
    }
    println!(
        "corpus: {count} tweets, {:.1} MB, {}..{} bytes (mean {}); {:.0}% retweets or quotes, \
         {:.0}% extended, {:.0}% geotagged, {:.0}% non-ASCII; rules: {}",
        corpus.bytes as f64 / 1e6,
        sizes.iter().min().unwrap(),
        sizes.iter().max().unwrap(),
        corpus.bytes / count,
        share(corpus.retweets_or_quotes),
        share(with("\"extended_tweet\"")),
        share(with("\"coordinates\":{") + with("\"coordinates\":null,\"place\":{")),
        share(non_ascii),
        corpus.enricher.rules().len(),
    );
    println!(
        "hit ratio: {:.1}% of tweets matched a rule, {:.2} rules per tweet \
         (track {}, follow {}, locations {} rule matches)",
        share(matched),
        matches as f64 / count as f64,
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
    println!("  enrichment / validation: {:.1}%", 100.0 * e_tps / v_tps);
}

criterion_group!(benches, bench);

fn main() {
    benches();
    Criterion::default().configure_from_args().final_summary();
}
