//! Generated user objects, the largest part of every tweet.
//!
//! A user's whole profile derives from its id, so the same account looks the same in every
//! tweet (as author, retweeted author or reply target) and its JSON can be rendered once and
//! reused.

use super::json::{push_key, push_str, push_u64, push_u64_str};
use super::rng::FastRng;
use super::vocab::{COLORS, LANGS, LOCATIONS, NAME_PARTS, TIME_ZONES, WORDS};

/// One account: what tweets need to mention it, and its pre-rendered JSON object.
#[derive(Debug, Clone)]
pub struct User {
    pub id: u64,
    pub screen_name: String,
    pub name: String,
    pub json: Vec<u8>,
}

impl User {
    /// The account with this id, always the same for the same id.
    pub fn for_id(id: u64) -> User {
        let mut rng = FastRng::new(id.wrapping_mul(0x9e37_79b9_7f4a_7c15));
        let screen_name = screen_name(&mut rng);
        let name = display_name(&mut rng);
        let json = render(&mut rng, id, &screen_name, &name);
        User {
            id,
            screen_name,
            name,
            json,
        }
    }
}

/// A plausible, valid screen name (`[A-Za-z0-9_]{1,15}`).
fn screen_name(rng: &mut FastRng) -> String {
    let mut s = String::with_capacity(15);
    for i in 0..rng.between(2, 4) {
        let part = rng.pick_str(NAME_PARTS);
        if i == 0 || rng.chance(0.3) {
            let mut chars = part.chars();
            if let Some(first) = chars.next() {
                s.push(first.to_ascii_uppercase());
                s.push_str(chars.as_str());
            }
        } else {
            s.push_str(part);
        }
    }
    if rng.chance(0.3) {
        s.push('_');
    }
    if rng.chance(0.5) {
        s.push_str(&rng.below(1000).to_string());
    }
    s.truncate(15);
    s
}

fn display_name(rng: &mut FastRng) -> String {
    let mut name = String::new();
    for _ in 0..2 {
        let a = rng.pick_str(NAME_PARTS);
        let b = rng.pick_str(NAME_PARTS);
        let mut word = format!("{a}{b}");
        word[..1].make_ascii_uppercase();
        if !name.is_empty() {
            name.push(' ');
        }
        name.push_str(&word);
    }
    if rng.chance(0.2) {
        name.push_str(" ✨");
    }
    name
}

fn render(rng: &mut FastRng, id: u64, screen_name: &str, name: &str) -> Vec<u8> {
    let mut out = Vec::with_capacity(1700);
    out.push(b'{');
    push_key(&mut out, "id");
    push_u64(&mut out, id);
    out.push(b',');
    push_key(&mut out, "id_str");
    push_u64_str(&mut out, id);
    out.push(b',');
    push_key(&mut out, "name");
    push_str(&mut out, name);
    out.push(b',');
    push_key(&mut out, "screen_name");
    push_str(&mut out, screen_name);
    out.push(b',');
    push_key(&mut out, "location");
    push_str(&mut out, rng.pick_str(LOCATIONS));
    out.push(b',');
    let has_url = rng.chance(0.4);
    push_key(&mut out, "url");
    if has_url {
        push_str(&mut out, &format!("https://t.co/{}", short_code(rng)));
    } else {
        out.extend_from_slice(b"null");
    }
    out.push(b',');
    let mut description = String::new();
    for _ in 0..rng.between(2, 8) {
        if !description.is_empty() {
            description.push(' ');
        }
        description.push_str(rng.pick_str(WORDS));
    }
    push_key(&mut out, "description");
    push_str(&mut out, &description);
    out.extend_from_slice(b",\"translator_type\":\"none\",\"protected\":false,\"verified\":");
    out.extend_from_slice(if rng.chance(0.02) { b"true" } else { b"false" });
    for key in [
        "followers_count",
        "friends_count",
        "listed_count",
        "favourites_count",
        "statuses_count",
    ] {
        out.push(b',');
        push_key(&mut out, key);
        let magnitude = rng.between(1, 6) as u32;
        push_u64(&mut out, rng.below(10u64.pow(magnitude)));
    }
    out.push(b',');
    push_key(&mut out, "created_at");
    let created = 1_170_000_000 + rng.below(450_000_000);
    push_str(&mut out, &super::json::created_at(created));
    out.extend_from_slice(b",\"utc_offset\":null,\"time_zone\":");
    push_str(&mut out, rng.pick_str(TIME_ZONES));
    out.extend_from_slice(b",\"geo_enabled\":");
    out.extend_from_slice(if rng.chance(0.3) { b"true" } else { b"false" });
    out.extend_from_slice(b",\"lang\":");
    push_str(&mut out, rng.pick_str(LANGS));
    out.extend_from_slice(b",\"contributors_enabled\":false,\"is_translator\":false");
    for key in [
        "profile_background_color",
        "profile_link_color",
        "profile_sidebar_border_color",
        "profile_sidebar_fill_color",
        "profile_text_color",
    ] {
        out.push(b',');
        push_key(&mut out, key);
        push_str(&mut out, rng.pick_str(COLORS));
    }
    let theme = rng.between(1, 18);
    out.extend_from_slice(
        format!(
            ",\"profile_background_image_url\":\"http://abs.twimg.com/images/themes/theme{theme}/bg.png\",\
             \"profile_background_image_url_https\":\"https://abs.twimg.com/images/themes/theme{theme}/bg.png\",\
             \"profile_background_tile\":false,"
        )
        .as_bytes(),
    );
    let image = rng.next_u64() >> 4;
    let code = short_code(rng);
    out.extend_from_slice(
        format!(
            "\"profile_image_url\":\"http://pbs.twimg.com/profile_images/{image}/{code}_normal.jpg\",\
             \"profile_image_url_https\":\"https://pbs.twimg.com/profile_images/{image}/{code}_normal.jpg\",\
             \"profile_banner_url\":\"https://pbs.twimg.com/profile_banners/{id}/{created}\","
        )
        .as_bytes(),
    );
    out.extend_from_slice(
        b"\"profile_use_background_image\":true,\"has_extended_profile\":false,\
          \"default_profile\":false,\"default_profile_image\":false,\"following\":null,\
          \"follow_request_sent\":null,\"notifications\":null,\"withheld_in_countries\":[]}",
    );
    out
}

/// A t.co-style code of 10 characters.
pub fn short_code(rng: &mut FastRng) -> String {
    const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";
    (0..10)
        .map(|_| ALPHABET[rng.index(ALPHABET.len())] as char)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_user_is_stable_valid_json_with_a_valid_screen_name() {
        let a = User::for_id(12345);
        let b = User::for_id(12345);
        assert_eq!(a.json, b.json);
        let value: serde_json::Value = serde_json::from_slice(&a.json).unwrap();
        assert_eq!(value["id"], 12345);
        assert_eq!(value["id_str"], "12345");
        assert_eq!(value["screen_name"], a.screen_name.as_str());
        for id in 0..500u64 {
            let name = User::for_id(id).screen_name;
            assert!(!name.is_empty() && name.len() <= 15, "{name}");
            assert!(
                name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_'),
                "{name}"
            );
        }
    }
}
