//! OAuth 1.0a (HMAC-SHA1) as the streaming API uses it: the client signs its request, the
//! emulator verifies it. Both sides share this one implementation of the signature base string.

use std::collections::BTreeMap;
use std::fmt;

use base64::Engine;
use hmac::{Hmac, Mac};
use percent_encoding::{percent_decode_str, utf8_percent_encode, AsciiSet, NON_ALPHANUMERIC};
use sha1::Sha1;

/// The four secrets of one API key. `Debug` never prints them.
#[derive(Clone, PartialEq, Eq, Hash, serde::Deserialize, serde::Serialize)]
pub struct Credentials {
    pub consumer_key: String,
    pub consumer_secret: String,
    pub access_token: String,
    pub access_token_secret: String,
}

impl fmt::Debug for Credentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Credentials")
            .field("consumer_key", &redact(&self.consumer_key))
            .field("consumer_secret", &"<redacted>")
            .field("access_token", &redact(&self.access_token))
            .field("access_token_secret", &"<redacted>")
            .finish()
    }
}

/// Shows only enough of a public identifier to tell two keys apart in a log.
pub fn redact(value: &str) -> String {
    let visible: String = value.chars().take(4).collect();
    if value.chars().count() <= 8 {
        "<redacted>".to_owned()
    } else {
        format!("{visible}…<redacted>")
    }
}

/// RFC 3986 unreserved characters stay; everything else is percent-encoded (RFC 5849 §3.6).
const OAUTH_ENCODE: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'.')
    .remove(b'_')
    .remove(b'~');

pub fn encode(value: &str) -> String {
    utf8_percent_encode(value, OAUTH_ENCODE).to_string()
}

/// Encodes form parameters as `application/x-www-form-urlencoded`, with OAuth's encoding so the
/// body the server reads is exactly what was signed.
pub fn encode_form(params: &[(&str, &str)]) -> String {
    params
        .iter()
        .map(|(k, v)| format!("{}={}", encode(k), encode(v)))
        .collect::<Vec<_>>()
        .join("&")
}

/// Decodes a form body or query string into pairs (`+` is a space).
pub fn decode_form(body: &str) -> Vec<(String, String)> {
    body.split('&')
        .filter(|part| !part.is_empty())
        .map(|part| {
            let (k, v) = part.split_once('=').unwrap_or((part, ""));
            let decode = |s: &str| {
                percent_decode_str(&s.replace('+', " "))
                    .decode_utf8_lossy()
                    .into_owned()
            };
            (decode(k), decode(v))
        })
        .collect()
}

/// The signature over method, base URL (no query) and every parameter: form, query and oauth_*.
pub fn signature(
    method: &str,
    base_url: &str,
    params: &[(String, String)],
    consumer_secret: &str,
    token_secret: &str,
) -> String {
    let mut encoded: Vec<(String, String)> =
        params.iter().map(|(k, v)| (encode(k), encode(v))).collect();
    encoded.sort();
    let param_string = encoded
        .iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect::<Vec<_>>()
        .join("&");
    let base = format!(
        "{}&{}&{}",
        method.to_ascii_uppercase(),
        encode(base_url),
        encode(&param_string)
    );
    let key = format!("{}&{}", encode(consumer_secret), encode(token_secret));
    let mut mac =
        Hmac::<Sha1>::new_from_slice(key.as_bytes()).expect("HMAC accepts any key length");
    mac.update(base.as_bytes());
    base64::engine::general_purpose::STANDARD.encode(mac.finalize().into_bytes())
}

/// Builds the `Authorization` header for a request with the given form/query parameters.
pub fn authorization_header(
    credentials: &Credentials,
    method: &str,
    base_url: &str,
    params: &[(&str, &str)],
    nonce: &str,
    timestamp: u64,
) -> String {
    let timestamp = timestamp.to_string();
    let oauth = [
        ("oauth_consumer_key", credentials.consumer_key.as_str()),
        ("oauth_nonce", nonce),
        ("oauth_signature_method", "HMAC-SHA1"),
        ("oauth_timestamp", timestamp.as_str()),
        ("oauth_token", credentials.access_token.as_str()),
        ("oauth_version", "1.0"),
    ];
    let all: Vec<(String, String)> = oauth
        .iter()
        .chain(params.iter())
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    let sig = signature(
        method,
        base_url,
        &all,
        &credentials.consumer_secret,
        &credentials.access_token_secret,
    );
    let mut header = String::from("OAuth ");
    for (k, v) in oauth
        .iter()
        .copied()
        .chain([("oauth_signature", sig.as_str())])
    {
        if !header.ends_with(' ') {
            header.push_str(", ");
        }
        header.push_str(&format!("{k}=\"{}\"", encode(v)));
    }
    header
}

/// Parses `OAuth k="v", ...` into its decoded parameters.
pub fn parse_authorization_header(header: &str) -> Option<BTreeMap<String, String>> {
    let rest = header.trim().strip_prefix("OAuth")?.trim();
    let mut out = BTreeMap::new();
    for part in rest.split(',') {
        let (k, v) = part.trim().split_once('=')?;
        let v = v.trim().trim_matches('"');
        out.insert(
            k.trim().to_owned(),
            percent_decode_str(v).decode_utf8_lossy().into_owned(),
        );
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The worked example of Twitter's "Creating a signature" guide.
    #[test]
    fn matches_the_documented_signature_example() {
        let params: Vec<(String, String)> = [
            (
                "status",
                "Hello Ladies + Gentlemen, a signed OAuth request!",
            ),
            ("include_entities", "true"),
            ("oauth_consumer_key", "xvz1evFS4wEEPTGEFPHBog"),
            ("oauth_nonce", "kYjzVBB8Y0ZFabxSWbWovY3uYSQ2pTgmZeNu2VS4cg"),
            ("oauth_signature_method", "HMAC-SHA1"),
            ("oauth_timestamp", "1318622958"),
            (
                "oauth_token",
                "370773112-GmHxMAgYyLbNEtIKZeRNFsMKPR9EyMZeS9weJAEb",
            ),
            ("oauth_version", "1.0"),
        ]
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
        let sig = signature(
            "post",
            "https://api.twitter.com/1.1/statuses/update.json",
            &params,
            "kAcSOqF21Fu85e7zjz7ZN2U4ZRhfV3WpwPAoE3Z7kBw",
            "LswwdoUaIvS8ltyTt5jkRh4J50vUPVVHtR2YPi5kE",
        );
        assert_eq!(sig, "hCtSmYh+iHYCEqBWrE7C7hYmtUk=");
    }

    #[test]
    fn header_round_trips_and_verifies() {
        let creds = Credentials {
            consumer_key: "ck-123456789".into(),
            consumer_secret: "cs".into(),
            access_token: "at-123456789".into(),
            access_token_secret: "ats".into(),
        };
        let url = "http://127.0.0.1:1/1.1/statuses/filter.json";
        let header = authorization_header(&creds, "POST", url, &[("track", "a b,c")], "n1", 42);
        let parsed = parse_authorization_header(&header).unwrap();
        let sig = parsed["oauth_signature"].clone();
        let mut params: Vec<(String, String)> = parsed
            .into_iter()
            .filter(|(k, _)| k != "oauth_signature")
            .collect();
        params.push(("track".into(), "a b,c".into()));
        assert_eq!(signature("POST", url, &params, "cs", "ats"), sig);
        assert_eq!(
            decode_form(&encode_form(&[("track", "a b,c")])),
            vec![("track".into(), "a b,c".into())]
        );
    }

    #[test]
    fn debug_output_hides_the_secrets() {
        let creds = Credentials {
            consumer_key: "consumerKEY1234".into(),
            consumer_secret: "SECRET-consumer".into(),
            access_token: "tokenABCDEFGHIJ".into(),
            access_token_secret: "SECRET-token".into(),
        };
        let text = format!("{creds:?}");
        assert!(!text.contains("SECRET"), "{text}");
        assert!(!text.contains("consumerKEY1234"), "{text}");
        assert!(!text.contains("tokenABCDEFGHIJ"), "{text}");
    }
}
