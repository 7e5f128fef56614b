//! The two timestamps of the `traptor` object: the tweet's `created_at` in ISO-8601 (as the
//! original wrote it, `2016-02-22T01:34:53+00:00`) and the time traptor received the message.

use time::format_description::BorrowedFormatItem;
use time::macros::format_description;
use time::OffsetDateTime;

/// Twitter's `created_at`: `Mon Feb 22 01:34:53 +0000 2016`.
const CREATED_AT: &[BorrowedFormatItem<'static>] = format_description!(
    "[weekday repr:short] [month repr:short] [day] [hour]:[minute]:[second] [offset_hour sign:mandatory][offset_minute] [year]"
);

/// ISO-8601 keeping the tweet's own offset, as Python's `isoformat()` did.
const ISO_WITH_OFFSET: &[BorrowedFormatItem<'static>] =
    format_description!("[year]-[month]-[day]T[hour]:[minute]:[second][offset_hour sign:mandatory]:[offset_minute]");

/// `Mon Feb 22 01:34:53 +0000 2016` → `2016-02-22T01:34:53+00:00`; `None` for anything else.
pub fn created_at_iso(created_at: &str) -> Option<String> {
    let parsed = OffsetDateTime::parse(created_at.trim(), CREATED_AT).ok()?;
    parsed.format(ISO_WITH_OFFSET).ok()
}

/// Milliseconds since the epoch → `2016-02-22T01:34:53.123Z`; `None` when out of range.
pub fn received_at_iso(received_at_ms: i64) -> Option<String> {
    let at = OffsetDateTime::from_unix_timestamp_nanos(i128::from(received_at_ms) * 1_000_000).ok()?;
    Some(format!(
        "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}.{:03}Z",
        at.year(),
        u8::from(at.month()),
        at.day(),
        at.hour(),
        at.minute(),
        at.second(),
        at.millisecond()
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn created_at_becomes_iso_with_its_offset() {
        assert_eq!(created_at_iso("Mon Feb 22 01:34:53 +0000 2016").as_deref(), Some("2016-02-22T01:34:53+00:00"));
        assert_eq!(created_at_iso("Sat Feb 20 03:52:59 +0000 2016").as_deref(), Some("2016-02-20T03:52:59+00:00"));
        assert_eq!(created_at_iso("Tue Feb 23 02:02:54 +0100 2016").as_deref(), Some("2016-02-23T02:02:54+01:00"));
    }

    #[test]
    fn a_bad_created_at_gives_none() {
        for bad in ["", "yesterday", "2016-02-22T01:34:53Z", "Mon Feb 30 01:34:53 +0000 2016", "Mon Feb 22 25:00:00 +0000 2016"] {
            assert_eq!(created_at_iso(bad), None, "{bad}");
        }
    }

    #[test]
    fn received_at_is_utc_with_milliseconds() {
        assert_eq!(received_at_iso(1_456_104_893_007).as_deref(), Some("2016-02-22T01:34:53.007Z"));
        assert_eq!(received_at_iso(0).as_deref(), Some("1970-01-01T00:00:00.000Z"));
        assert_eq!(received_at_iso(i64::MAX), None);
    }
}
