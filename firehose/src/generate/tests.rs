use serde_json::Value;

use super::*;

fn fixed() -> GeneratorOptions {
    GeneratorOptions {
        clock: Clock::Fixed {
            start_ms: 1_700_000_000_000,
            step_ms: 3,
        },
        ..GeneratorOptions::default()
    }
}

/// Every place a track term may appear, lowercased, over the tweet and its nested statuses.
fn searchable(status: &Value, out: &mut Vec<String>) {
    for key in ["text"] {
        if let Some(s) = status[key].as_str() {
            out.push(s.to_lowercase());
        }
    }
    if let Some(s) = status["extended_tweet"]["full_text"].as_str() {
        out.push(s.to_lowercase());
    }
    for entities in [&status["entities"], &status["extended_tweet"]["entities"]] {
        for h in entities["hashtags"].as_array().into_iter().flatten() {
            out.push(h["text"].as_str().unwrap().to_lowercase());
        }
        for m in entities["user_mentions"].as_array().into_iter().flatten() {
            out.push(m["screen_name"].as_str().unwrap().to_lowercase());
        }
        for u in entities["urls"].as_array().into_iter().flatten() {
            out.push(u["expanded_url"].as_str().unwrap().to_lowercase());
            out.push(u["display_url"].as_str().unwrap().to_lowercase());
        }
    }
    for nested in ["retweeted_status", "quoted_status"] {
        if status[nested].is_object() {
            searchable(&status[nested], out);
        }
    }
}

#[test]
fn tweets_are_valid_realistic_and_sized_like_real_ones() {
    let mut generator = TweetGenerator::new(1, GeneratorOptions::default());
    let (mut retweets, mut quotes, mut truncated, mut total_bytes) = (0, 0, 0, 0);
    let mut last_id = 0;
    let mut sizes = Vec::new();
    let n = 2000;
    for _ in 0..n {
        let tweet = generator.next_tweet(&Plant::default());
        let v: Value = serde_json::from_slice(&tweet.json).expect("generated tweet is valid JSON");
        let id = v["id"].as_u64().unwrap();
        assert!(id > last_id, "ids increase");
        last_id = id;
        assert_eq!(v["id_str"].as_str().unwrap(), id.to_string());
        assert_eq!(tweet.facts.id, id);
        assert_eq!(v["user"]["id"].as_u64().unwrap(), tweet.facts.author_id);
        let ts: u64 = v["timestamp_ms"].as_str().unwrap().parse().unwrap();
        assert_eq!(v["created_at"].as_str().unwrap(), created_at(ts / 1000));
        assert!(
            v["text"].as_str().unwrap().chars().count() <= 140 + 30,
            "{}",
            v["text"]
        );
        retweets += v["retweeted_status"].is_object() as u32;
        quotes += v["quoted_status"].is_object() as u32;
        if v["truncated"] == true {
            truncated += 1;
            let full = v["extended_tweet"]["full_text"].as_str().unwrap();
            assert!(full.chars().count() > 140);
            assert!(v["text"].as_str().unwrap().contains("… https://t.co/"));
        }
        total_bytes += tweet.json.len();
        sizes.push(tweet.json.len());
    }
    sizes.sort_unstable();
    let (p5, p95) = (sizes[n / 20], sizes[n - n / 20]);
    assert!(
        p5 >= 1_800 && p95 <= 6_500,
        "5th percentile {p5} B, 95th {p95} B"
    );
    let average = total_bytes / n;
    assert!((2_000..6_000).contains(&average), "average size {average}");
    let nested = f64::from(retweets + quotes) / n as f64;
    assert!(
        (0.25..0.42).contains(&nested),
        "retweets+quotes share {nested}"
    );
    assert!(truncated > n / 10, "some extended tweets ({truncated})");
}

#[test]
fn planted_phrases_appear_in_searchable_fields() {
    let mut generator = TweetGenerator::new(2, GeneratorOptions::default());
    let phrases = [
        "rust lang",
        "Touché",
        "hello.",
        "#traptor",
        "@somebody",
        "deep learning models",
    ];
    for i in 0..600 {
        let phrase = phrases[i % phrases.len()];
        let tweet = generator.next_tweet(&Plant {
            phrases: vec![phrase.to_owned()],
            ..Plant::default()
        });
        let v: Value = serde_json::from_slice(&tweet.json).unwrap();
        let mut fields = Vec::new();
        searchable(&v, &mut fields);
        for term in phrase.split_whitespace() {
            let needle = term.trim_start_matches(['#', '@']).to_lowercase();
            assert!(
                fields.iter().any(|f| f.contains(&needle)),
                "term {term:?} missing from {fields:?}"
            );
        }
    }
}

#[test]
fn planted_users_take_the_requested_role() {
    let mut generator = TweetGenerator::new(3, GeneratorOptions::default());
    for (role, path) in [
        (UserRole::Author, "/user/id"),
        (UserRole::RetweetedAuthor, "/retweeted_status/user/id"),
        (UserRole::ReplyTarget, "/in_reply_to_user_id"),
    ] {
        for _ in 0..20 {
            let plant = Plant {
                user: Some(PlantedUser { id: 783214, role }),
                ..Plant::default()
            };
            let v: Value = serde_json::from_slice(&generator.tweet_json(&plant)).unwrap();
            assert_eq!(
                v.pointer(path).and_then(Value::as_u64),
                Some(783214),
                "{role:?}"
            );
        }
    }
}

#[test]
fn planted_locations_fall_inside_the_box() {
    let mut generator = TweetGenerator::new(4, GeneratorOptions::default());
    let area = GeoBox::new(-74.0, 40.0, -73.0, 41.0);
    let (mut points, mut places) = (0, 0);
    for _ in 0..200 {
        let tweet = generator.next_tweet(&Plant {
            location: Some(area),
            ..Plant::default()
        });
        let v: Value = serde_json::from_slice(&tweet.json).unwrap();
        assert!(
            v["retweeted_status"].is_null(),
            "native retweets are never selected by location"
        );
        match tweet.facts.geo.expect("a location was planted") {
            TweetGeo::Point { lon, lat } => {
                points += 1;
                assert!(area.contains(lon, lat));
                assert_eq!(v["coordinates"]["coordinates"][0].as_f64(), Some(lon));
                assert_eq!(v["coordinates"]["coordinates"][1].as_f64(), Some(lat));
            }
            TweetGeo::Place(b) => {
                places += 1;
                assert!(v["coordinates"].is_null());
                let ring = &v["place"]["bounding_box"]["coordinates"][0];
                assert_eq!(ring[0][0].as_f64(), Some(b.west));
                assert!(area.contains(b.west, b.south) && area.contains(b.east, b.north));
            }
        }
    }
    assert!(
        points > 50 && places > 30,
        "{points} points, {places} places"
    );
}

#[test]
fn a_fixed_clock_makes_output_reproducible() {
    let plant = Plant {
        phrases: vec!["alpha beta".into()],
        lang: Some("fr".into()),
        ..Plant::default()
    };
    let a: Vec<Vec<u8>> = {
        let mut g = TweetGenerator::new(9, fixed());
        (0..50).map(|_| g.tweet_json(&plant)).collect()
    };
    let b: Vec<Vec<u8>> = {
        let mut g = TweetGenerator::new(9, fixed());
        (0..50).map(|_| g.tweet_json(&plant)).collect()
    };
    assert_eq!(a, b);
    let v: Value = serde_json::from_slice(&a[0]).unwrap();
    assert_eq!(v["lang"], "fr");
    let mut c = TweetGenerator::new(10, fixed());
    assert_ne!(c.tweet_json(&plant), a[0]);
}

#[test]
fn filter_level_is_at_least_the_requested_one() {
    let mut generator = TweetGenerator::new(5, GeneratorOptions::default());
    for _ in 0..100 {
        let plant = Plant {
            filter_level: Some(FilterLevel::Low),
            ..Plant::default()
        };
        let tweet = generator.next_tweet(&plant);
        assert!(tweet.facts.filter_level >= FilterLevel::Low);
        let v: Value = serde_json::from_slice(&tweet.json).unwrap();
        assert_eq!(v["filter_level"], tweet.facts.filter_level.as_str());
    }
}
