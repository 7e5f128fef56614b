//! OAuth 1.0a verification of a connect request: signature, timestamp and nonce.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;

use traptor_core::oauth::{parse_authorization_header, signature, Credentials};

/// Why a request was not authenticated, with the code and message the real API answers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AuthError {
    MissingHeader,
    Malformed(String),
    UnsupportedMethod(String),
    UnknownConsumerKey,
    InvalidToken,
    TimestampOutOfBounds { skew_secs: i64 },
    NonceReused,
    BadSignature,
}

impl AuthError {
    /// The v1.1 error code and a message that says what was wrong.
    pub fn code_and_message(&self) -> (u32, String) {
        match self {
            AuthError::MissingHeader => (215, "Bad Authentication data: no OAuth Authorization header.".into()),
            AuthError::Malformed(why) => (215, format!("Bad Authentication data: {why}.")),
            AuthError::UnsupportedMethod(m) => {
                (32, format!("Could not authenticate you: oauth_signature_method {m:?} is not HMAC-SHA1."))
            }
            AuthError::UnknownConsumerKey => (32, "Could not authenticate you: unknown consumer key.".into()),
            AuthError::InvalidToken => (89, "Invalid or expired token.".into()),
            AuthError::TimestampOutOfBounds { skew_secs } => {
                (135, format!("Timestamp out of bounds: oauth_timestamp is {skew_secs} s away from the server clock."))
            }
            AuthError::NonceReused => (32, "Could not authenticate you: oauth_nonce was already used.".into()),
            AuthError::BadSignature => (32, "Could not authenticate you: the signature does not match.".into()),
        }
    }

    /// A short word for logs and stats.
    pub fn reason(&self) -> &'static str {
        match self {
            AuthError::MissingHeader => "missing_authorization",
            AuthError::Malformed(_) => "malformed_authorization",
            AuthError::UnsupportedMethod(_) => "unsupported_signature_method",
            AuthError::UnknownConsumerKey => "unknown_consumer_key",
            AuthError::InvalidToken => "invalid_token",
            AuthError::TimestampOutOfBounds { .. } => "timestamp_out_of_bounds",
            AuthError::NonceReused => "nonce_reused",
            AuthError::BadSignature => "bad_signature",
        }
    }
}

/// One connect request as the verifier sees it.
pub struct SignedRequest<'a> {
    pub method: &'a str,
    /// The base URLs the client may have signed (`http://host/path`, `https://host/path`).
    pub base_urls: &'a [String],
    pub authorization: Option<&'a str>,
    /// Query and form parameters, decoded.
    pub params: &'a [(String, String)],
}

/// Checks requests against the configured keys and remembers nonces while they could replay.
pub struct Verifier {
    keys: Vec<Credentials>,
    skew: Duration,
    nonces: Mutex<HashMap<(usize, String), i64>>,
}

impl Verifier {
    pub fn new(keys: Vec<Credentials>, skew: Duration) -> Verifier {
        Verifier {
            keys,
            skew,
            nonces: Mutex::new(HashMap::new()),
        }
    }

    /// The index of the key the request is signed with, or why it is refused.
    pub fn verify(&self, request: &SignedRequest<'_>, now_unix: i64) -> Result<usize, AuthError> {
        let header = request.authorization.ok_or(AuthError::MissingHeader)?;
        let oauth = parse_authorization_header(header).ok_or_else(|| {
            AuthError::Malformed("the header is not of the form OAuth k=\"v\", ...".into())
        })?;
        let field = |name: &str| {
            oauth
                .get(name)
                .map(String::as_str)
                .ok_or_else(|| AuthError::Malformed(format!("{name} is missing")))
        };
        let consumer_key = field("oauth_consumer_key")?;
        let token = field("oauth_token")?;
        let method = field("oauth_signature_method")?;
        let nonce = field("oauth_nonce")?;
        let timestamp = field("oauth_timestamp")?;
        let given = field("oauth_signature")?;
        if method != "HMAC-SHA1" {
            return Err(AuthError::UnsupportedMethod(method.to_owned()));
        }
        let index = self
            .keys
            .iter()
            .position(|k| k.consumer_key == consumer_key)
            .ok_or(AuthError::UnknownConsumerKey)?;
        let key = &self.keys[index];
        if key.access_token != token {
            return Err(AuthError::InvalidToken);
        }
        let timestamp: i64 = timestamp
            .parse()
            .map_err(|_| AuthError::Malformed("oauth_timestamp is not a number".into()))?;
        let skew_secs = timestamp - now_unix;
        if skew_secs.unsigned_abs() > self.skew.as_secs() {
            return Err(AuthError::TimestampOutOfBounds { skew_secs });
        }
        let mut params: Vec<(String, String)> = oauth
            .iter()
            .filter(|(k, _)| k.as_str() != "oauth_signature" && k.as_str() != "realm")
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        params.extend(request.params.iter().cloned());
        let signed = request.base_urls.iter().any(|url| {
            signature(
                request.method,
                url,
                &params,
                &key.consumer_secret,
                &key.access_token_secret,
            ) == given
        });
        if !signed {
            return Err(AuthError::BadSignature);
        }
        let mut nonces = self.nonces.lock().unwrap_or_else(|e| e.into_inner());
        let horizon = self.skew.as_secs() as i64 * 2;
        if nonces.len() > 10_000 {
            nonces.retain(|_, seen| now_unix - *seen <= horizon);
        }
        if nonces.insert((index, nonce.to_owned()), now_unix).is_some() {
            return Err(AuthError::NonceReused);
        }
        Ok(index)
    }
}

#[cfg(test)]
mod tests {
    use traptor_core::oauth::authorization_header;

    use super::*;

    fn key(n: u32) -> Credentials {
        Credentials {
            consumer_key: format!("consumer-{n}"),
            consumer_secret: format!("consumer-secret-{n}"),
            access_token: format!("token-{n}"),
            access_token_secret: format!("token-secret-{n}"),
        }
    }

    const URL: &str = "http://127.0.0.1:9/1.1/statuses/filter.json";

    fn check(
        verifier: &Verifier,
        header: &str,
        params: &[(&str, &str)],
        now: i64,
    ) -> Result<usize, AuthError> {
        let params: Vec<(String, String)> = params
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        let urls = [URL.to_owned()];
        verifier.verify(
            &SignedRequest {
                method: "POST",
                base_urls: &urls,
                authorization: Some(header),
                params: &params,
            },
            now,
        )
    }

    #[test]
    fn verifies_signature_timestamp_and_nonce() {
        let verifier = Verifier::new(vec![key(0), key(1)], Duration::from_secs(300));
        let now = 1_700_000_000;
        let form = [("track", "rust,go lang")];
        let header = authorization_header(&key(1), "POST", URL, &form, "nonce-a", now as u64);
        assert_eq!(check(&verifier, &header, &form, now), Ok(1));
        assert_eq!(
            check(&verifier, &header, &form, now),
            Err(AuthError::NonceReused)
        );
        let header = authorization_header(&key(1), "POST", URL, &form, "nonce-b", now as u64);
        assert_eq!(
            check(&verifier, &header, &[("track", "rust")], now),
            Err(AuthError::BadSignature)
        );
        let header =
            authorization_header(&key(1), "POST", URL, &form, "nonce-c", (now - 301) as u64);
        assert!(matches!(
            check(&verifier, &header, &form, now),
            Err(AuthError::TimestampOutOfBounds { .. })
        ));
        let mut wrong_secret = key(0);
        wrong_secret.consumer_secret = "guess".into();
        let header = authorization_header(&wrong_secret, "POST", URL, &form, "nonce-d", now as u64);
        assert_eq!(
            check(&verifier, &header, &form, now),
            Err(AuthError::BadSignature)
        );
        let header = authorization_header(&key(7), "POST", URL, &form, "nonce-e", now as u64);
        assert_eq!(
            check(&verifier, &header, &form, now),
            Err(AuthError::UnknownConsumerKey)
        );
        assert_eq!(
            check(&verifier, "Bearer abc", &form, now)
                .unwrap_err()
                .reason(),
            "malformed_authorization"
        );
    }
}
