//! Word lists, emoji, sources and places that give generated tweets a realistic texture.

pub const WORDS: &[&str] = &[
    "just", "today", "people", "really", "love", "time", "new", "good", "great", "best", "never",
    "always", "going", "think", "know", "want", "need", "right", "still", "back", "first", "last",
    "year", "week", "night", "morning", "game", "team", "music", "video", "photo", "news", "world",
    "city", "life", "friends", "family", "work", "school", "weekend", "coffee", "pizza", "weather",
    "rain", "sunny", "traffic", "train", "flight", "airport", "concert", "movie", "show", "series",
    "season", "episode", "match", "goal", "score", "win", "lost", "final", "vote", "election",
    "market", "price", "launch", "update", "release", "phone", "laptop", "app", "code", "data",
    "cloud", "stream", "live", "breaking", "story", "thread", "read", "watch", "listen", "check",
    "look", "feel", "happy", "sad", "tired", "excited", "amazing", "awesome", "terrible", "funny",
    "crazy", "beautiful", "perfect", "honestly", "literally", "actually", "finally", "already",
    "tomorrow", "tonight", "yesterday", "every", "some", "many", "more", "less", "about", "after",
    "before", "with", "without", "from", "into", "over", "under", "again", "here", "there", "this",
    "that", "these", "those", "what", "when", "where", "why", "how", "who", "because", "maybe",
    "please", "thanks", "sorry", "congrats", "birthday", "party", "dinner", "lunch", "breakfast",
    "beach", "mountain", "river", "park", "street", "downtown", "festival", "museum", "library",
    "book", "author", "artist", "song", "album", "tour", "tickets", "stadium", "club", "league",
    "player", "coach", "fans", "crowd", "police", "fire", "storm", "earthquake", "power", "outage",
    "vaccine", "health", "doctor", "hospital", "science", "space", "rocket", "moon", "planet",
    "café", "niño", "señor", "très", "bien", "merci", "gracias", "hola", "mañana", "über",
    "straße", "naïve", "façade", "crème", "jalapeño", "piñata", "smörgåsbord", "déjà", "vu",
];

pub const EMOJI: &[&str] = &[
    "😂", "❤️", "😍", "🔥", "🙏", "😭", "👍", "🎉", "✨", "💯", "🤔", "😎", "🙌", "👀", "💪", "🌧️",
    "☕", "⚽", "🏀", "🎶", "📷", "🚀", "🌍", "🇺🇸", "🇫🇷", "👨‍👩‍👧", "🥳", "😴",
];

pub const HASHTAGS: &[&str] = &[
    "MondayMotivation", "TBT", "FollowFriday", "news", "music", "sports", "NowPlaying", "photo",
    "travel", "food", "tech", "gaming", "art", "love", "nature", "fitness", "weather", "breaking",
];

pub const SITES: &[&str] = &[
    "nytimes.com", "bbc.co.uk", "youtube.com", "instagram.com", "github.com", "medium.com",
    "theguardian.com", "espn.com", "reddit.com", "example.com", "bit.ly", "wikipedia.org",
];

pub const SOURCES: &[&str] = &[
    "<a href=\"http://twitter.com/download/iphone\" rel=\"nofollow\">Twitter for iPhone</a>",
    "<a href=\"http://twitter.com/download/android\" rel=\"nofollow\">Twitter for Android</a>",
    "<a href=\"https://mobile.twitter.com\" rel=\"nofollow\">Twitter Web App</a>",
    "<a href=\"https://about.twitter.com/products/tweetdeck\" rel=\"nofollow\">TweetDeck</a>",
    "<a href=\"https://buffer.com\" rel=\"nofollow\">Buffer</a>",
];

pub const LANGS: &[&str] = &["en", "en", "en", "en", "es", "fr", "de", "pt", "ja", "und"];

pub const TIME_ZONES: &[&str] = &[
    "Eastern Time (US & Canada)", "Central Time (US & Canada)", "Pacific Time (US & Canada)",
    "London", "Paris", "Madrid", "Berlin", "Tokyo", "Sydney",
];

pub const LOCATIONS: &[&str] = &[
    "New York, NY", "Los Angeles, CA", "London, England", "Paris, France", "Chicago, IL",
    "São Paulo, Brasil", "Madrid, España", "Berlin, Deutschland", "Toronto, Ontario", "",
    "somewhere over the rainbow 🌈", "Earth",
];

pub const NAME_PARTS: &[&str] = &[
    "al", "ex", "ma", "ri", "jo", "sa", "na", "li", "ka", "to", "mi", "da", "el", "an", "be", "co",
    "de", "fi", "gu", "ha", "is", "ju", "ke", "lo", "mo", "nu", "or", "pe", "qu", "ro", "si", "ty",
];

pub const COLORS: &[&str] = &["1DA1F2", "C0DEED", "000000", "FFFFFF", "F5F8FA", "E81C4F", "333333", "009999"];

/// A real place: name, country, country code and bounding box (west, south, east, north).
pub struct PlaceSeed {
    pub name: &'static str,
    pub full_name: &'static str,
    pub country: &'static str,
    pub country_code: &'static str,
    pub bbox: [f64; 4],
}

pub const PLACES: &[PlaceSeed] = &[
    PlaceSeed { name: "Manhattan", full_name: "Manhattan, NY", country: "United States", country_code: "US", bbox: [-74.026675, 40.683935, -73.910408, 40.877483] },
    PlaceSeed { name: "San Francisco", full_name: "San Francisco, CA", country: "United States", country_code: "US", bbox: [-122.514926, 37.708075, -122.357031, 37.833238] },
    PlaceSeed { name: "London", full_name: "London, England", country: "United Kingdom", country_code: "GB", bbox: [-0.510375, 51.28676, 0.334015, 51.691874] },
    PlaceSeed { name: "Paris", full_name: "Paris, France", country: "France", country_code: "FR", bbox: [2.224122, 48.815573, 2.469703, 48.902145] },
    PlaceSeed { name: "Tokyo", full_name: "Tokyo, Japan", country: "Japan", country_code: "JP", bbox: [139.562443, 35.523425, 139.918677, 35.817813] },
    PlaceSeed { name: "São Paulo", full_name: "São Paulo, Brasil", country: "Brasil", country_code: "BR", bbox: [-46.826039, -24.008814, -46.365052, -23.356792] },
    PlaceSeed { name: "Sydney", full_name: "Sydney, New South Wales", country: "Australia", country_code: "AU", bbox: [150.520929, -34.118347, 151.343021, -33.578141] },
];
