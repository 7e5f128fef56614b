//! The two timestamps of the `traptor` object: the tweet's `created_at` in ISO-8601 (as the
//! original wrote it, `2016-02-22T01:34:53+00:00`) and the time traptor received the message.

use time::format_description::BorrowedFormatItem;
use time::macros::format_description;
use time::OffsetDateTime;

/// Twitter's `created_at`: `Mon Feb 22 01:34:53 +0000 2016`.
const CREATED_AT: &[BorrowedFormatItem<'static>] = format_description!(
    "[weekday repr:short] [month repr:short] [day] [hour]:[minute]:[second] [offset_hour sign:mandatory][offset_minute] [year]"
);

/// `Mon Feb 22 01:34:53 +0000 2016` → `2016-02-22T01:34:53+00:00` (ISO-8601 keeping the tweet's
/// own offset, as Python's `isoformat()` did); `None` for anything else.
pub fn created_at_iso(created_at: &str) -> Option<String> {
    let at = OffsetDateTime::parse(created_at.trim(), CREATED_AT).ok()?;
    let (year, month, day) = at.to_calendar_date();
    let (hours, minutes, _) = at.offset().as_hms();
    let mut out = String::with_capacity(25);
    push_date_time(
        &mut out,
        year,
        u8::from(month),
        day,
        at.hour(),
        at.minute(),
        at.second(),
    );
    out.push(if at.offset().is_negative() { '-' } else { '+' });
    push_two_digits(&mut out, hours.unsigned_abs());
    out.push(':');
    push_two_digits(&mut out, minutes.unsigned_abs());
    Some(out)
}

/// Milliseconds since the epoch → `2016-02-22T01:34:53.123Z`; `None` when out of range.
pub fn received_at_iso(received_at_ms: i64) -> Option<String> {
    let at =
        OffsetDateTime::from_unix_timestamp_nanos(i128::from(received_at_ms) * 1_000_000).ok()?;
    let (year, month, day) = at.to_calendar_date();
    let mut out = String::with_capacity(24);
    push_date_time(
        &mut out,
        year,
        u8::from(month),
        day,
        at.hour(),
        at.minute(),
        at.second(),
    );
    let millis = at.millisecond();
    out.push('.');
    out.push(char::from(b'0' + (millis / 100) as u8));
    push_two_digits(&mut out, (millis % 100) as u8);
    out.push('Z');
    Some(out)
}

/// `YYYY-MM-DDThh:mm:ss`, written by hand: `format!` and `time`'s formatter cost more than the
/// rest of a timestamp's share of enrichment.
fn push_date_time(
    out: &mut String,
    year: i32,
    month: u8,
    day: u8,
    hour: u8,
    minute: u8,
    second: u8,
) {
    if (0..=9999).contains(&year) {
        push_two_digits(out, (year / 100) as u8);
        push_two_digits(out, (year % 100) as u8);
    } else {
        out.push_str(&year.to_string());
    }
    for (separator, value) in [
        ('-', month),
        ('-', day),
        ('T', hour),
        (':', minute),
        (':', second),
    ] {
        out.push(separator);
        push_two_digits(out, value);
    }
}

fn push_two_digits(out: &mut String, value: u8) {
    out.push(char::from(b'0' + value / 10 % 10));
    out.push(char::from(b'0' + value % 10));
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn created_at_becomes_iso_with_its_offset() {
        assert_eq!(
            created_at_iso("Mon Feb 22 01:34:53 +0000 2016").as_deref(),
            Some("2016-02-22T01:34:53+00:00")
        );
        assert_eq!(
            created_at_iso("Sat Feb 20 03:52:59 +0000 2016").as_deref(),
            Some("2016-02-20T03:52:59+00:00")
        );
        assert_eq!(
            created_at_iso("Tue Feb 23 02:02:54 +0100 2016").as_deref(),
            Some("2016-02-23T02:02:54+01:00")
        );
        assert_eq!(
            created_at_iso("Tue Feb 23 02:02:54 -0530 2016").as_deref(),
            Some("2016-02-23T02:02:54-05:30")
        );
    }

    #[test]
    fn a_bad_created_at_gives_none() {
        for bad in [
            "",
            "yesterday",
            "2016-02-22T01:34:53Z",
            "Mon Feb 30 01:34:53 +0000 2016",
            "Mon Feb 22 25:00:00 +0000 2016",
        ] {
            assert_eq!(created_at_iso(bad), None, "{bad}");
        }
    }

    #[test]
    fn received_at_is_utc_with_milliseconds() {
        assert_eq!(
            received_at_iso(1_456_104_893_007).as_deref(),
            Some("2016-02-22T01:34:53.007Z")
        );
        assert_eq!(
            received_at_iso(0).as_deref(),
            Some("1970-01-01T00:00:00.000Z")
        );
        assert_eq!(received_at_iso(i64::MAX), None);
    }
}
