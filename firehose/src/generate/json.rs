//! Hand-written JSON output helpers and the v1.1 date format.
//!
//! Tweets are written straight into a byte buffer instead of through a `serde_json::Value`:
//! that is what makes generation fast enough to outrun a collector.

/// Appends `s` as a JSON string literal, quotes included.
pub fn push_str(out: &mut Vec<u8>, s: &str) {
    out.push(b'"');
    let bytes = s.as_bytes();
    let mut start = 0;
    for (i, &b) in bytes.iter().enumerate() {
        let escape: &[u8] = match b {
            b'"' => b"\\\"",
            b'\\' => b"\\\\",
            b'\n' => b"\\n",
            b'\r' => b"\\r",
            b'\t' => b"\\t",
            0..=0x1f => b"",
            _ => continue,
        };
        out.extend_from_slice(&bytes[start..i]);
        if escape.is_empty() {
            out.extend_from_slice(format!("\\u{b:04x}").as_bytes());
        } else {
            out.extend_from_slice(escape);
        }
        start = i + 1;
    }
    out.extend_from_slice(&bytes[start..]);
    out.push(b'"');
}

/// A number's decimal digits, rendered without allocating.
#[derive(Debug, Clone, Copy)]
pub struct Digits {
    buf: [u8; 20],
    start: u8,
}

impl Digits {
    pub fn of(mut n: u64) -> Digits {
        let mut buf = [0u8; 20];
        let mut at = buf.len();
        loop {
            at -= 1;
            buf[at] = b'0' + (n % 10) as u8;
            n /= 10;
            if n == 0 {
                break;
            }
        }
        Digits {
            buf,
            start: at as u8,
        }
    }

    pub fn as_bytes(&self) -> &[u8] {
        &self.buf[usize::from(self.start)..]
    }
}

/// Appends an unsigned integer in decimal.
pub fn push_u64(out: &mut Vec<u8>, n: u64) {
    out.extend_from_slice(Digits::of(n).as_bytes());
}

/// Appends an integer as a JSON string (`"123"`), the `*_str` twin of every id.
pub fn push_u64_str(out: &mut Vec<u8>, n: u64) {
    out.push(b'"');
    push_u64(out, n);
    out.push(b'"');
}

/// Appends a coordinate with the six decimals real payloads carry.
pub fn push_coord(out: &mut Vec<u8>, value: f64) {
    use std::io::Write;
    let _ = write!(out, "{value:.6}");
}

/// Appends `"key":` (the key must not need escaping).
pub fn push_key(out: &mut Vec<u8>, key: &str) {
    out.push(b'"');
    out.extend_from_slice(key.as_bytes());
    out.extend_from_slice(b"\":");
}

/// Formats Unix seconds as v1.1's `created_at`: `Mon Feb 22 01:34:53 +0000 2016`.
pub fn created_at(unix_secs: u64) -> String {
    traptor_core::timestamps::twitter_created_at(unix_secs as i64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn created_at_matches_a_real_tweet() {
        // id 701580888455389187 of the fixtures was created at 1456104893 (Unix seconds).
        assert_eq!(created_at(1_456_104_893), "Mon Feb 22 01:34:53 +0000 2016");
        assert_eq!(created_at(0), "Thu Jan 01 00:00:00 +0000 1970");
        assert_eq!(created_at(951_782_400), "Tue Feb 29 00:00:00 +0000 2000");
    }

    #[test]
    fn strings_are_escaped_into_valid_json() {
        let nasty = "quote \" back \\ nl \n tab \t bell \u{7} emoji 🎉 é";
        let mut out = Vec::new();
        push_str(&mut out, nasty);
        let parsed: String = serde_json::from_slice(&out).unwrap();
        assert_eq!(parsed, nasty);
        let mut n = Vec::new();
        push_u64(&mut n, 0);
        n.push(b' ');
        push_u64(&mut n, u64::MAX);
        assert_eq!(String::from_utf8(n).unwrap(), format!("0 {}", u64::MAX));
    }
}
