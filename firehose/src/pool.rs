//! Generated tweets kept for reuse in load generation: each later tweet for the same plant is
//! a copy of one of them under a new id, creation time and `timestamp_ms`.
//!
//! Generating a realistic tweet costs several microseconds; a benchmark that runs the emulator
//! on the machine under test would otherwise spend a large share of it on the emulator. The
//! copies keep everything that matters to a reader of the stream: the bytes, sizes and mix come
//! from the generator, each copy has an id never used before (so ground truth by id holds),
//! and it is routed by its plant exactly like a fresh tweet.

use std::collections::HashMap;

use crate::generate::{created_at, FastRng, Plant, TweetFacts, TweetGenerator, UserRole};

/// One generated tweet and where its time-dependent fields sit in it.
struct Original {
    json: Vec<u8>,
    facts: TweetFacts,
    /// Offsets of every occurrence of the top-level id's digits (`id`, `id_str`, URLs).
    id_at: Vec<usize>,
    /// Offset of `created_at`'s value (between the quotes).
    created_at_at: usize,
    /// Offset of the top-level `timestamp_ms` digits.
    timestamp_at: usize,
}

/// The pool: up to `variants` generated tweets per distinct plant.
pub struct TweetPool {
    variants: usize,
    by_plant: HashMap<PlantKey, Vec<Original>>,
}

/// What makes two plants the same for reuse.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
struct PlantKey {
    phrases: Vec<String>,
    user: Option<(u64, u8)>,
    location: Option<[u64; 4]>,
    lang: Option<String>,
    filter_level: Option<crate::generate::FilterLevel>,
}

impl PlantKey {
    fn of(plant: &Plant) -> PlantKey {
        PlantKey {
            phrases: plant.phrases.clone(),
            user: plant.user.map(|u| {
                let role = match u.role {
                    UserRole::Author => 0,
                    UserRole::RetweetedAuthor => 1,
                    UserRole::ReplyTarget => 2,
                };
                (u.id, role)
            }),
            location: plant
                .location
                .map(|b| [b.west, b.south, b.east, b.north].map(f64::to_bits)),
            lang: plant.lang.clone(),
            filter_level: plant.filter_level,
        }
    }
}

impl TweetPool {
    pub fn new(variants: usize) -> TweetPool {
        TweetPool {
            variants: variants.max(1),
            by_plant: HashMap::new(),
        }
    }

    /// Appends to `out` a tweet carrying `plant`: freshly generated while the plant has fewer
    /// than `variants` kept, otherwise a copy of one of them under a new id and time.
    pub fn write_tweet(
        &mut self,
        generator: &mut TweetGenerator,
        rng: &mut FastRng,
        plant: &Plant,
        out: &mut Vec<u8>,
    ) -> TweetFacts {
        let kept = self.by_plant.entry(PlantKey::of(plant)).or_default();
        if kept.len() < self.variants {
            let start = out.len();
            let facts = generator.write_tweet(plant, out);
            if let Some(original) = Original::new(out[start..].to_vec(), facts.clone()) {
                kept.push(original);
            }
            return facts;
        }
        let original = &kept[rng.index(kept.len())];
        let (id, created_ms) = generator.next_id();
        match original.copy_as(id, created_ms, out) {
            Some(facts) => facts,
            // A new id of another length cannot be patched in: generate this one.
            None => generator.write_tweet(plant, out),
        }
    }
}

impl Original {
    /// Finds the time-dependent fields of a generated tweet; `None` if one is missing.
    fn new(json: Vec<u8>, facts: TweetFacts) -> Option<Original> {
        let id = facts.id.to_string();
        let id_at = occurrences_as_number(&json, id.as_bytes());
        let created_at_at = b"{\"created_at\":\"".len();
        let expected = created_at(facts.created_ms / 1000);
        if json.get(created_at_at..created_at_at + expected.len()) != Some(expected.as_bytes()) {
            return None;
        }
        let key = b"\"timestamp_ms\":\"";
        let timestamp_at = json.windows(key.len()).rposition(|w| w == key)? + key.len();
        let timestamp = facts.created_ms.to_string();
        if json.get(timestamp_at..timestamp_at + timestamp.len()) != Some(timestamp.as_bytes())
            || id_at.len() < 2
        {
            return None;
        }
        Some(Original {
            json,
            facts,
            id_at,
            created_at_at,
            timestamp_at,
        })
    }

    /// Appends the tweet with `id` and `created_ms` in place of its own; `None` when they do
    /// not have the width of the originals (the copy would need re-rendering).
    fn copy_as(&self, id: u64, created_ms: u64, out: &mut Vec<u8>) -> Option<TweetFacts> {
        let new_id = id.to_string();
        let old_id_len = self.facts.id.to_string().len();
        let timestamp = created_ms.to_string();
        let created = created_at(created_ms / 1000);
        if new_id.len() != old_id_len
            || timestamp.len() != self.facts.created_ms.to_string().len()
            || created.len() != created_at(self.facts.created_ms / 1000).len()
        {
            return None;
        }
        let start = out.len();
        out.extend_from_slice(&self.json);
        let copy = &mut out[start..];
        for &at in &self.id_at {
            copy[at..at + new_id.len()].copy_from_slice(new_id.as_bytes());
        }
        copy[self.created_at_at..self.created_at_at + created.len()]
            .copy_from_slice(created.as_bytes());
        copy[self.timestamp_at..self.timestamp_at + timestamp.len()]
            .copy_from_slice(timestamp.as_bytes());
        let mut facts = self.facts.clone();
        facts.id = id;
        facts.created_ms = created_ms;
        Some(facts)
    }
}

/// Offsets of `digits` in `json` where they form a whole number (no digit on either side).
fn occurrences_as_number(json: &[u8], digits: &[u8]) -> Vec<usize> {
    (0..json.len().saturating_sub(digits.len()) + 1)
        .filter(|&at| json[at..].starts_with(digits))
        .filter(|&at| {
            let before = at.checked_sub(1).map(|i| json[i]);
            let after = json.get(at + digits.len()).copied();
            !before.is_some_and(|b| b.is_ascii_digit())
                && !after.is_some_and(|b| b.is_ascii_digit())
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::generate::{Clock, GeneratorOptions};

    fn generator() -> TweetGenerator {
        TweetGenerator::new(9, GeneratorOptions::default())
    }

    fn plant(phrase: &str) -> Plant {
        Plant {
            phrases: vec![phrase.to_owned()],
            ..Plant::default()
        }
    }

    fn parse(json: &[u8]) -> serde_json::Value {
        serde_json::from_slice(json).expect("a copy is valid JSON")
    }

    #[test]
    fn copies_carry_new_unique_ids_and_times_and_keep_the_rest() {
        let (mut generator, mut rng) = (generator(), FastRng::new(3));
        let mut pool = TweetPool::new(2);
        let mut ids = std::collections::HashSet::new();
        let mut originals: Vec<(String, TweetFacts)> = Vec::new();
        for n in 0..50 {
            let mut out = Vec::new();
            let facts = pool.write_tweet(&mut generator, &mut rng, &plant("rust lang"), &mut out);
            let tweet = parse(&out);
            assert_eq!(tweet["id"].as_u64(), Some(facts.id));
            assert_eq!(
                tweet["id_str"].as_str(),
                Some(facts.id.to_string().as_str())
            );
            assert_eq!(
                tweet["timestamp_ms"].as_str(),
                Some(facts.created_ms.to_string().as_str())
            );
            assert_eq!(
                tweet["created_at"].as_str(),
                Some(created_at(facts.created_ms / 1000).as_str())
            );
            assert!(ids.insert(facts.id), "id {} used twice", facts.id);
            let text = String::from_utf8(out).unwrap();
            if n < 2 {
                originals.push((text, facts));
                continue;
            }
            // Byte for byte one of the originals, but for the id, creation time and timestamp.
            let same = originals.iter().any(|(original, was)| {
                let expected = original
                    .replace(&was.id.to_string(), &facts.id.to_string())
                    .replace(
                        &created_at(was.created_ms / 1000),
                        &created_at(facts.created_ms / 1000),
                    )
                    .replace(
                        &format!("\"timestamp_ms\":\"{}\"", was.created_ms),
                        &format!("\"timestamp_ms\":\"{}\"", facts.created_ms),
                    );
                expected == text
            });
            assert!(same, "a copy differs from every original: {text}");
        }
    }

    #[test]
    fn each_plant_gets_its_own_originals() {
        let (mut generator, mut rng) = (generator(), FastRng::new(3));
        let mut pool = TweetPool::new(1);
        for _ in 0..5 {
            for phrase in ["alpha beta", "gamma"] {
                let mut out = Vec::new();
                pool.write_tweet(&mut generator, &mut rng, &plant(phrase), &mut out);
                let text = parse(&out).to_string();
                assert!(
                    phrase.split(' ').all(|term| text.contains(term)),
                    "{phrase}: {text}"
                );
            }
        }
        assert_eq!(pool.by_plant.len(), 2);
    }

    #[test]
    fn a_fixed_clock_still_gives_valid_copies() {
        let options = GeneratorOptions {
            clock: Clock::Fixed {
                start_ms: 1_456_104_893_000,
                step_ms: 7,
            },
            ..GeneratorOptions::default()
        };
        let mut generator = TweetGenerator::new(1, options);
        let mut rng = FastRng::new(1);
        let mut pool = TweetPool::new(1);
        for _ in 0..3 {
            let mut out = Vec::new();
            let facts = pool.write_tweet(&mut generator, &mut rng, &plant("x"), &mut out);
            assert_eq!(parse(&out)["id"].as_u64(), Some(facts.id));
        }
    }

    #[test]
    fn only_whole_numbers_are_patched() {
        assert_eq!(occurrences_as_number(b"12 123 0123 12", b"12"), [0, 12]);
    }
}
