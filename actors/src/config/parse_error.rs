//! Turns a TOML syntax or type error into a [`ConfigError::Parse`] that points at the line and
//! names the option, without ever echoing a value: the line that failed may hold a password,
//! an API key or a Redis URL with credentials, and a typo in its option name (so that the
//! name no longer says `secret`) must not change that.

use super::locate::line_at;
use super::{ConfigError, Origin};

pub(crate) fn parse_error(origin: &Origin<'_>, error: &toml::de::Error) -> ConfigError {
    let line = error
        .span()
        .map(|span| line_at(origin.text, span.start))
        .unwrap_or(1);
    let mut message = hide_quoted_values(error.message().trim_end());
    if let Some(key) = origin.text.lines().nth(line - 1).and_then(key_part) {
        message.push_str(&format!(" (at `{key}`)"));
    }
    ConfigError::Parse {
        origin: origin.name.clone(),
        line,
        message,
    }
}

/// The option name (or `[table]` header) a line starts with, if it is a well-formed TOML key;
/// never anything after the `=`.
fn key_part(line: &str) -> Option<&str> {
    let line = line.trim();
    if line.starts_with('[') {
        let inner = line.trim_start_matches('[').split(']').next().unwrap_or("");
        let header_end = line.find(']')?;
        let closing = line[header_end..]
            .bytes()
            .take_while(|&b| b == b']')
            .count();
        return is_key(inner).then(|| &line[..header_end + closing]);
    }
    let (key, _value) = line.split_once('=')?;
    let key = key.trim();
    is_key(key).then_some(key)
}

/// Whether `text` is a TOML key: bare (`a-z A-Z 0-9 _ -`) or quoted parts joined by dots.
/// Anything else (e.g. two lines run together) is not quoted back, since it may hold a value.
fn is_key(text: &str) -> bool {
    let mut rest = text.trim();
    loop {
        let part_len = match rest.chars().next() {
            Some(quote @ ('"' | '\'')) => match rest[1..].find(['"', '\'']) {
                Some(end) if rest.as_bytes()[1 + end] == quote as u8 => end + 2,
                _ => return false,
            },
            _ => rest
                .bytes()
                .take_while(|&b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
                .count(),
        };
        if part_len == 0 {
            return false;
        }
        rest = rest[part_len..].trim_start();
        match rest.strip_prefix('.') {
            Some(after_dot) => rest = after_dot.trim_start(),
            None => return rest.is_empty(),
        }
    }
}

/// Replaces every double-quoted segment of a TOML/serde message with `"<redacted>"`. Serde
/// writes values in double quotes (`invalid type: string "…"`) and names in backticks
/// (`unknown field `…``, `unknown variant `…``), so names stay and values go.
fn hide_quoted_values(message: &str) -> String {
    let mut out = String::with_capacity(message.len());
    let mut rest = message;
    while let Some(open) = rest.find('"') {
        out.push_str(&rest[..=open]);
        let after = &rest[open + 1..];
        let Some(close) = closing_quote(after) else {
            // An unterminated quote: hide everything after it.
            out.push_str("<redacted>");
            return out;
        };
        out.push_str("<redacted>\"");
        rest = &after[close + 1..];
    }
    out.push_str(rest);
    out
}

/// The index of the first `"` in `text` not escaped by a backslash.
fn closing_quote(text: &str) -> Option<usize> {
    let mut escaped = false;
    for (index, c) in text.char_indices() {
        match c {
            '\\' if !escaped => escaped = true,
            '"' if !escaped => return Some(index),
            _ => escaped = false,
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    fn error_for(text: &str) -> String {
        let error = toml::from_str::<super::super::RawConfig>(text)
            .err()
            .expect("the text is invalid");
        let origin = Origin {
            name: "<config>".to_owned(),
            base_dir: None,
            text,
        };
        parse_error(&origin, &error).to_string()
    }

    #[test]
    fn a_misspelled_secret_option_is_named_but_its_value_is_not_shown() {
        let message = error_for("[[keys]]\nname = \"k\"\nconsumer-secret = \"hunter2-value\"\n");
        assert!(message.contains("consumer-secret"), "{message}");
        assert!(message.contains("line 3"), "{message}");
        assert!(!message.contains("hunter2-value"), "{message}");
    }

    #[test]
    fn a_syntax_error_in_a_value_names_the_key_only() {
        let message = error_for("[redis]\nurl = redis://u:pw-in-url@host/0\n");
        assert!(message.contains("`url`"), "{message}");
        assert!(message.contains("line 2"), "{message}");
        assert!(!message.contains("pw-in-url"), "{message}");
    }

    #[test]
    fn a_value_of_the_wrong_type_is_not_echoed() {
        let message = error_for("[heartbeat]\ninterval_secs = \"a-secret-value\"\n");
        assert!(message.contains("interval_secs"), "{message}");
        assert!(!message.contains("a-secret-value"), "{message}");
    }

    #[test]
    fn lines_that_are_not_a_key_are_not_quoted() {
        assert_eq!(
            key_part("consumer_secret \"abc\"access_token = \"x\""),
            None
        );
        assert_eq!(key_part("no equals sign \"abc\""), None);
        assert_eq!(
            key_part("\"sasl.password\" = \"x\""),
            Some("\"sasl.password\"")
        );
        assert_eq!(key_part("[kafka.producer] # c"), Some("[kafka.producer]"));
        assert_eq!(key_part("[[keys]]"), Some("[[keys]]"));
        assert_eq!(key_part("[abc \"x\" y]"), None);
    }

    #[test]
    fn double_quoted_segments_are_hidden_and_backticked_names_kept() {
        assert_eq!(
            hide_quoted_values("invalid type: string \"s\\\"x\", expected `u64`"),
            "invalid type: string \"<redacted>\", expected `u64`"
        );
        assert_eq!(hide_quoted_values("open \"abc"), "open \"<redacted>");
    }
}
