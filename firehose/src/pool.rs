//! Generated tweets kept for reuse in load generation: each later tweet for the same plant is
//! a copy of one of them under a new id, creation time and `timestamp_ms`.
//!
//! Generating a realistic tweet costs several microseconds; a benchmark that runs the emulator
//! on the machine under test would otherwise spend a large share of it on the emulator. The
//! copies keep everything that matters to a reader of the stream: the bytes, sizes and mix come
//! from the generator, each copy has an id never used before (so ground truth by id holds),
//! and it is routed by its plant exactly like a fresh tweet.
//!
//! A copy is written straight into its destination with its new id and times patched in
//! ([`Original::write_copy`]); the new values are rendered once per tweet ([`Stamp`]), not per
//! copy, and the date text once per second ([`Stamper`]).

use std::collections::HashMap;

use crate::generate::{created_at, Digits, FastRng, Plant, TweetFacts, UserRole};

/// Where a plant's tweets sit in the pool.
pub type SlotId = usize;

/// Where one kept tweet sits in the pool.
#[derive(Debug, Clone, Copy)]
pub struct Place(usize);

/// The pool: up to `variants` generated tweets per distinct plant.
///
/// Copying a kept tweet is memory-bound (thousands of kept tweets do not fit in a cache), so
/// what a copy needs is laid out to be reached in few steps: a plant's tweets sit side by side
/// in one table, and each holds its patch points and recipients inline.
pub struct TweetPool {
    variants: usize,
    by_plant: HashMap<PlantKey, SlotId>,
    slots: Vec<Slot>,
    /// `variants` places per slot, in slot order, filled as the slot's tweets are generated.
    originals: Vec<Option<Original>>,
}

/// One distinct plant and how many of its tweets are kept.
struct Slot {
    plant: Plant,
    kept: usize,
}

/// Most places of the top-level id in one tweet that a kept tweet can have (generated tweets
/// have 2 to 5); a tweet with more is not kept.
const MAX_ID_PLACES: usize = 8;

/// One generated tweet and where its time-dependent fields sit in it.
pub struct Original {
    json: Box<[u8]>,
    /// Offsets of every occurrence of the top-level id's digits (`id`, `id_str`, URLs).
    id_at: [u32; MAX_ID_PLACES],
    id_places: u8,
    id_len: u8,
    created_at_len: u8,
    timestamp_len: u8,
    /// Offset of the top-level `timestamp_ms` digits.
    timestamp_at: u32,
    /// Where the pump sends copies of this tweet, remembered per set of connections.
    pub routing: Routing,
    /// The author's id (of `facts`, kept at hand: compliance messages name it).
    pub author_id: u64,
    facts: Box<TweetFacts>,
}

/// Offset of `created_at`'s value (between the quotes): the first field of every tweet.
const CREATED_AT_AT: usize = b"{\"created_at\":\"".len();

/// Recipients of a kept tweet's copies: they depend only on the tweet's plant and facts and on
/// the connections, so the pump works them out once per set of connections (`version`).
#[derive(Debug, Default)]
pub struct Routing {
    pub version: Option<u64>,
    len: usize,
    /// Most tweets go to one or two connections: kept here without a pointer to follow.
    inline: [usize; 2],
    more: Vec<usize>,
}

impl Routing {
    pub fn set(&mut self, version: u64, recipients: &[usize]) {
        self.version = Some(version);
        self.len = recipients.len();
        self.more.clear();
        for (n, &i) in recipients.iter().enumerate() {
            match self.inline.get_mut(n) {
                Some(place) => *place = i,
                None => self.more.push(i),
            }
        }
    }

    pub fn len(&self) -> usize {
        self.len
    }

    /// The `n`th recipient (`n` below [`len`](Routing::len)).
    pub fn get(&self, n: usize) -> usize {
        match self.inline.get(n) {
            Some(&i) => i,
            None => self.more[n - self.inline.len()],
        }
    }
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
            slots: Vec::new(),
            originals: Vec::new(),
        }
    }

    /// The slot of `plant`, created empty the first time the plant is seen.
    pub fn slot_for(&mut self, plant: &Plant) -> SlotId {
        let next = self.slots.len();
        let slot = *self.by_plant.entry(PlantKey::of(plant)).or_insert(next);
        if slot == next {
            self.slots.push(Slot {
                plant: plant.clone(),
                kept: 0,
            });
            self.originals
                .resize_with(self.originals.len() + self.variants, || None);
        }
        slot
    }

    pub fn plant(&self, slot: SlotId) -> &Plant {
        &self.slots[slot].plant
    }

    /// True once the slot holds its `variants` tweets: later tweets for it are copies.
    pub fn is_full(&self, slot: SlotId) -> bool {
        self.slots[slot].kept >= self.variants
    }

    /// Keeps a tweet just generated for the slot's plant (unless the slot is full, or the
    /// tweet's time-dependent fields cannot be found in it).
    pub fn keep(&mut self, slot: SlotId, json: &[u8], facts: &TweetFacts) {
        if self.is_full(slot) {
            return;
        }
        if let Some(original) = Original::new(json, facts) {
            let place = slot * self.variants + self.slots[slot].kept;
            self.originals[place] = Some(original);
            self.slots[slot].kept += 1;
        }
    }

    /// Where one of a full slot's tweets, drawn at random, is kept.
    pub fn pick(&self, slot: SlotId, rng: &mut FastRng) -> Place {
        debug_assert!(self.is_full(slot), "copies are made of full slots only");
        Place(slot * self.variants + rng.index(self.variants))
    }

    pub fn original(&self, place: Place) -> &Original {
        self.originals[place.0]
            .as_ref()
            .expect("places are picked in full slots only")
    }

    pub fn original_mut(&mut self, place: Place) -> &mut Original {
        self.originals[place.0]
            .as_mut()
            .expect("places are picked in full slots only")
    }
}

impl Original {
    /// Finds the time-dependent fields of a generated tweet; `None` if one is missing (or the
    /// id has more places than kept tweets can have).
    fn new(json: &[u8], facts: &TweetFacts) -> Option<Original> {
        let id = facts.id.to_string();
        let places = occurrences_as_number(json, id.as_bytes());
        let expected = created_at(facts.created_ms / 1000);
        let created_at_field = CREATED_AT_AT..CREATED_AT_AT + expected.len();
        if json.get(created_at_field) != Some(expected.as_bytes()) {
            return None;
        }
        let key = b"\"timestamp_ms\":\"";
        let timestamp_at = json.windows(key.len()).rposition(|w| w == key)? + key.len();
        let timestamp = facts.created_ms.to_string();
        if json.get(timestamp_at..timestamp_at + timestamp.len()) != Some(timestamp.as_bytes())
            || places.len() < 2
            || places.len() > MAX_ID_PLACES
            || u32::try_from(json.len()).is_err()
        {
            return None;
        }
        let mut id_at = [0u32; MAX_ID_PLACES];
        for (place, at) in id_at.iter_mut().zip(&places) {
            *place = *at as u32;
        }
        Some(Original {
            json: json.into(),
            id_at,
            id_places: places.len() as u8,
            id_len: id.len() as u8,
            created_at_len: expected.len() as u8,
            timestamp_at: timestamp_at as u32,
            timestamp_len: timestamp.len() as u8,
            routing: Routing::default(),
            author_id: facts.author_id,
            facts: Box::new(facts.clone()),
        })
    }

    pub fn facts(&self) -> &TweetFacts {
        &self.facts
    }

    /// Length of the tweet's JSON, and of every copy of it.
    pub fn json_len(&self) -> usize {
        self.json.len()
    }

    /// True when `stamp`'s id and times have the widths of this tweet's, so a copy can be
    /// patched in place (otherwise the tweet must be generated anew).
    pub fn fits(&self, stamp: &Stamp) -> bool {
        stamp.id.as_bytes().len() == usize::from(self.id_len)
            && stamp.timestamp.as_bytes().len() == usize::from(self.timestamp_len)
            && stamp.created_at().len() == usize::from(self.created_at_len)
    }

    /// Appends the tweet with `stamp`'s id and times in place of its own. The stamp must
    /// [fit](Original::fits).
    pub fn write_copy(&self, stamp: &Stamp, out: &mut Vec<u8>) {
        assert!(
            self.fits(stamp),
            "a stamp of other widths cannot be patched in"
        );
        let start = out.len();
        out.extend_from_slice(&self.json);
        let copy = &mut out[start..];
        let id = stamp.id.as_bytes();
        for &at in &self.id_at[..usize::from(self.id_places)] {
            let at = at as usize;
            copy[at..at + id.len()].copy_from_slice(id);
        }
        let created_at = stamp.created_at();
        copy[CREATED_AT_AT..CREATED_AT_AT + created_at.len()].copy_from_slice(created_at);
        let (at, timestamp) = (self.timestamp_at as usize, stamp.timestamp.as_bytes());
        copy[at..at + timestamp.len()].copy_from_slice(timestamp);
    }
}

/// The new id and times of one copied tweet, rendered once for all its recipients.
#[derive(Debug, Clone)]
pub struct Stamp {
    pub id_value: u64,
    id: Digits,
    timestamp: Digits,
    created_at: [u8; CREATED_AT_MAX],
    created_at_len: usize,
}

/// Room for a `created_at` text (30 bytes until the year 10000).
const CREATED_AT_MAX: usize = 40;

impl Stamp {
    fn created_at(&self) -> &[u8] {
        &self.created_at[..self.created_at_len]
    }
}

/// Renders stamps, keeping the `created_at` text of the current second.
#[derive(Debug, Default)]
pub struct Stamper {
    second: Option<u64>,
    created_at: Vec<u8>,
}

impl Stamper {
    pub fn stamp(&mut self, id: u64, created_ms: u64) -> Stamp {
        let second = created_ms / 1000;
        if self.second != Some(second) {
            self.second = Some(second);
            self.created_at = created_at(second).into_bytes();
        }
        let mut stamp = Stamp {
            id_value: id,
            id: Digits::of(id),
            timestamp: Digits::of(created_ms),
            created_at: [0; CREATED_AT_MAX],
            created_at_len: self.created_at.len().min(CREATED_AT_MAX),
        };
        stamp.created_at[..stamp.created_at_len]
            .copy_from_slice(&self.created_at[..stamp.created_at_len]);
        stamp
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
    use crate::generate::{Clock, GeneratorOptions, TweetGenerator};

    /// What the pump does for one tweet: generate while the plant's slot fills, then copy.
    fn write_tweet(
        pool: &mut TweetPool,
        generator: &mut TweetGenerator,
        rng: &mut FastRng,
        stamper: &mut Stamper,
        plant: &Plant,
        out: &mut Vec<u8>,
    ) -> TweetFacts {
        let slot = pool.slot_for(plant);
        if !pool.is_full(slot) {
            let start = out.len();
            let facts = generator.write_tweet(plant, out);
            pool.keep(slot, &out[start..], &facts);
            return facts;
        }
        let (id, created_ms) = generator.next_id();
        let stamp = stamper.stamp(id, created_ms);
        let original = pool.original(pool.pick(slot, rng));
        assert!(original.fits(&stamp), "ids of this test keep their width");
        original.write_copy(&stamp, out);
        TweetFacts {
            id,
            created_ms,
            ..original.facts().clone()
        }
    }

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
        let mut stamper = Stamper::default();
        let mut pool = TweetPool::new(2);
        let mut ids = std::collections::HashSet::new();
        let mut originals: Vec<(String, TweetFacts)> = Vec::new();
        for n in 0..50 {
            let mut out = Vec::new();
            let facts = write_tweet(
                &mut pool,
                &mut generator,
                &mut rng,
                &mut stamper,
                &plant("rust lang"),
                &mut out,
            );
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
        let mut stamper = Stamper::default();
        let mut pool = TweetPool::new(1);
        for _ in 0..5 {
            for phrase in ["alpha beta", "gamma"] {
                let mut out = Vec::new();
                write_tweet(
                    &mut pool,
                    &mut generator,
                    &mut rng,
                    &mut stamper,
                    &plant(phrase),
                    &mut out,
                );
                let text = parse(&out).to_string();
                assert!(
                    phrase.split(' ').all(|term| text.contains(term)),
                    "{phrase}: {text}"
                );
            }
        }
        assert_eq!(pool.by_plant.len(), 2);
        assert_eq!(pool.slots.len(), 2);
        assert_eq!(pool.originals.len(), 2);
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
        let mut stamper = Stamper::default();
        let mut pool = TweetPool::new(1);
        for _ in 0..3 {
            let mut out = Vec::new();
            let facts = write_tweet(
                &mut pool,
                &mut generator,
                &mut rng,
                &mut stamper,
                &plant("x"),
                &mut out,
            );
            assert_eq!(parse(&out)["id"].as_u64(), Some(facts.id));
        }
    }

    #[test]
    fn a_stamp_of_another_width_does_not_fit() {
        let mut generator = generator();
        let mut out = Vec::new();
        let facts = generator.write_tweet(&plant("x"), &mut out);
        let original = Original::new(&out, &facts).expect("a generated tweet can be kept");
        let mut stamper = Stamper::default();
        let same_width = stamper.stamp(facts.id + 1, facts.created_ms + 1);
        assert!(original.fits(&same_width));
        let mut copy = Vec::new();
        original.write_copy(&same_width, &mut copy);
        assert_eq!(copy.len(), original.json_len());
        assert_eq!(parse(&copy)["id"].as_u64(), Some(facts.id + 1));
        let narrower = stamper.stamp(facts.id / 10, facts.created_ms);
        assert!(!original.fits(&narrower));
    }

    #[test]
    fn digits_and_stamps_render_like_display() {
        for n in [0, 7, 10, 1_456_104_893_000, u64::MAX] {
            assert_eq!(Digits::of(n).as_bytes(), n.to_string().as_bytes());
        }
        let stamp = Stamper::default().stamp(5, 1_456_104_893_123);
        assert_eq!(stamp.created_at(), b"Mon Feb 22 01:34:53 +0000 2016");
    }

    #[test]
    fn routing_keeps_any_number_of_recipients() {
        let mut routing = Routing::default();
        for list in [vec![], vec![4], vec![1, 2], vec![0, 3, 5, 9]] {
            routing.set(7, &list);
            let back: Vec<usize> = (0..routing.len()).map(|n| routing.get(n)).collect();
            assert_eq!(back, list);
            assert_eq!(routing.version, Some(7));
        }
    }

    #[test]
    fn only_whole_numbers_are_patched() {
        assert_eq!(occurrences_as_number(b"12 123 0123 12", b"12"), [0, 12]);
    }
}
