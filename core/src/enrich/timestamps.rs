//! The two timestamps of the `traptor` object: the tweet's `created_at` in ISO-8601 (as the
//! original wrote it, `2016-02-22T01:34:53+00:00`) and the time traptor received the message.

use time::format_description::BorrowedFormatItem;
use time::macros::format_description;
use time::OffsetDateTime;

/// A timestamp of the `traptor` object, held inline: a tweet's two timestamps are written on
/// every tweet, and two heap strings per tweet showed in enrichment's profile. Any `i32` year
/// fits (`-2147483648-12-31T23:59:59.999Z` is 32 bytes).
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct IsoTimestamp {
    len: u8,
    bytes: [u8; 40],
}

impl IsoTimestamp {
    fn new() -> IsoTimestamp {
        IsoTimestamp {
            len: 0,
            bytes: [0; 40],
        }
    }

    fn push_str(&mut self, text: &str) {
        let end = usize::from(self.len) + text.len();
        self.bytes[usize::from(self.len)..end].copy_from_slice(text.as_bytes());
        self.len = end as u8;
    }

    fn push(&mut self, c: char) {
        self.push_str(c.encode_utf8(&mut [0; 4]));
    }

    pub fn as_str(&self) -> &str {
        // SAFETY: only whole `str`s are appended, so the bytes are UTF-8.
        unsafe { std::str::from_utf8_unchecked(&self.bytes[..usize::from(self.len)]) }
    }
}

impl std::ops::Deref for IsoTimestamp {
    type Target = str;

    fn deref(&self) -> &str {
        self.as_str()
    }
}

impl std::fmt::Debug for IsoTimestamp {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        std::fmt::Debug::fmt(self.as_str(), f)
    }
}

/// Twitter's `created_at`: `Mon Feb 22 01:34:53 +0000 2016`.
const CREATED_AT: &[BorrowedFormatItem<'static>] = format_description!(
    "[weekday repr:short] [month repr:short] [day] [hour]:[minute]:[second] [offset_hour sign:mandatory][offset_minute] [year]"
);

/// `Mon Feb 22 01:34:53 +0000 2016` → `2016-02-22T01:34:53+00:00` (ISO-8601 keeping the tweet's
/// own offset, as Python's `isoformat()` did); `None` for anything else.
pub fn created_at_iso(created_at: &str) -> Option<IsoTimestamp> {
    if let Some(iso) = canonical_created_at_iso(created_at.as_bytes()) {
        return Some(iso);
    }
    let at = OffsetDateTime::parse(created_at.trim(), CREATED_AT).ok()?;
    let (year, month, day) = at.to_calendar_date();
    let (hours, minutes, _) = at.offset().as_hms();
    let mut out = IsoTimestamp::new();
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

/// [`created_at_iso`] for the one shape streams send (single spaces, two-digit fields, a
/// four-digit year from 1000, every field in range and the weekday that of the date), read by
/// hand: `time`'s general parser costs more than the rest of a tweet's timestamps. Anything
/// else gives `None`, and the caller asks `time`, whose answer on this shape is the same.
fn canonical_created_at_iso(text: &[u8]) -> Option<IsoTimestamp> {
    const WEEKDAYS: [&[u8; 3]; 7] = [b"Mon", b"Tue", b"Wed", b"Thu", b"Fri", b"Sat", b"Sun"];
    const MONTHS: [&[u8; 3]; 12] = [
        b"Jan", b"Feb", b"Mar", b"Apr", b"May", b"Jun", b"Jul", b"Aug", b"Sep", b"Oct", b"Nov",
        b"Dec",
    ];
    // `Mon Feb 22 01:34:53 +0000 2016`
    let text: &[u8; 30] = text.try_into().ok()?;
    let spaces = [3, 7, 10, 19, 25].iter().all(|&i| text[i] == b' ');
    if !spaces || text[13] != b':' || text[16] != b':' {
        return None;
    }
    let two = |i: usize| -> Option<u8> {
        let (a, b) = (text[i].wrapping_sub(b'0'), text[i + 1].wrapping_sub(b'0'));
        (a < 10 && b < 10).then(|| a * 10 + b)
    };
    let weekday = WEEKDAYS.iter().position(|w| text[..3] == w[..])?;
    let month = MONTHS.iter().position(|m| text[4..7] == m[..])? as u8 + 1;
    let (day, hour, minute, second) = (two(8)?, two(11)?, two(14)?, two(17)?);
    let negative = match text[20] {
        b'+' => false,
        b'-' => true,
        _ => return None,
    };
    let (offset_hours, offset_minutes) = (two(21)?, two(23)?);
    let year = u16::from(two(26)?) * 100 + u16::from(two(28)?);
    let in_range = (1000..=9999).contains(&year)
        && (1..=days_in_month(year, month)).contains(&day)
        && hour < 24
        && minute < 60
        && second < 60
        && offset_hours < 24
        && offset_minutes < 60;
    if !in_range || weekday_from_monday(year, month, day) != weekday {
        return None;
    }
    let mut out = IsoTimestamp::new();
    push_date_time(&mut out, i32::from(year), month, day, hour, minute, second);
    // `-0000` is a zero offset, which `time` writes with `+`.
    let zero = offset_hours == 0 && offset_minutes == 0;
    out.push(if negative && !zero { '-' } else { '+' });
    push_two_digits(&mut out, offset_hours);
    out.push(':');
    push_two_digits(&mut out, offset_minutes);
    Some(out)
}

fn is_leap_year(year: u16) -> bool {
    year.is_multiple_of(4) && (!year.is_multiple_of(100) || year.is_multiple_of(400))
}

fn days_in_month(year: u16, month: u8) -> u8 {
    match month {
        2 if is_leap_year(year) => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    }
}

/// 0 for Monday … 6 for Sunday (Sakamoto's method, Gregorian calendar).
fn weekday_from_monday(year: u16, month: u8, day: u8) -> usize {
    const T: [usize; 12] = [0, 3, 2, 5, 0, 3, 5, 1, 4, 6, 2, 4];
    let y = usize::from(year) - usize::from(month < 3);
    let sunday_first =
        (y + y / 4 - y / 100 + y / 400 + T[usize::from(month) - 1] + usize::from(day)) % 7;
    (sunday_first + 6) % 7
}

/// Milliseconds since the epoch → `2016-02-22T01:34:53.123Z`; `None` when out of range.
pub fn received_at_iso(received_at_ms: i64) -> Option<IsoTimestamp> {
    let (days, millis_of_day) = (
        received_at_ms.div_euclid(MILLIS_PER_DAY),
        received_at_ms.rem_euclid(MILLIS_PER_DAY),
    );
    // Years 1970 to 9999 are computed here; `time` handles the rest (and the out of range).
    let (year, month, day) = match days {
        0..=2_932_896 => civil_from_days(days),
        _ => {
            let at =
                OffsetDateTime::from_unix_timestamp_nanos(i128::from(received_at_ms) * 1_000_000)
                    .ok()?;
            let (year, month, day) = at.to_calendar_date();
            (year, u8::from(month), day)
        }
    };
    let seconds = (millis_of_day / 1000) as u32;
    let millis = (millis_of_day % 1000) as u32;
    let mut out = IsoTimestamp::new();
    push_date_time(
        &mut out,
        year,
        month,
        day,
        (seconds / 3600) as u8,
        (seconds / 60 % 60) as u8,
        (seconds % 60) as u8,
    );
    out.push('.');
    out.push(char::from(b'0' + (millis / 100) as u8));
    push_two_digits(&mut out, (millis % 100) as u8);
    out.push('Z');
    Some(out)
}

const MILLIS_PER_DAY: i64 = 86_400_000;

/// Days since 1970-01-01 (not negative) → (year, month, day) in the Gregorian calendar
/// (Howard Hinnant's `civil_from_days`).
fn civil_from_days(days: i64) -> (i32, u8, u8) {
    let z = days + 719_468;
    let era = z / 146_097;
    let day_of_era = z - era * 146_097;
    let year_of_era =
        (day_of_era - day_of_era / 1460 + day_of_era / 36_524 - day_of_era / 146_096) / 365;
    let day_of_year = day_of_era - (365 * year_of_era + year_of_era / 4 - year_of_era / 100);
    let shifted_month = (5 * day_of_year + 2) / 153;
    let day = (day_of_year - (153 * shifted_month + 2) / 5 + 1) as u8;
    let month = if shifted_month < 10 {
        shifted_month + 3
    } else {
        shifted_month - 9
    } as u8;
    let year = (year_of_era + era * 400 + i64::from(month <= 2)) as i32;
    (year, month, day)
}

/// `YYYY-MM-DDThh:mm:ss`, written by hand into one array: `format!`, `time`'s formatter and
/// even `String::push` per character cost more than the rest of a timestamp's share of
/// enrichment.
fn push_date_time(
    out: &mut IsoTimestamp,
    year: i32,
    month: u8,
    day: u8,
    hour: u8,
    minute: u8,
    second: u8,
) {
    if !(0..=9999).contains(&year) {
        out.push_str(&year.to_string());
    }
    let mut text = *b"0000-00-00T00:00:00";
    let digits = |text: &mut [u8; 19], at: usize, value: u8| {
        text[at] = b'0' + value / 10 % 10;
        text[at + 1] = b'0' + value % 10;
    };
    if (0..=9999).contains(&year) {
        digits(&mut text, 0, (year / 100) as u8);
        digits(&mut text, 2, (year % 100) as u8);
    }
    for (at, value) in [(5, month), (8, day), (11, hour), (14, minute), (17, second)] {
        digits(&mut text, at, value);
    }
    let text = if (0..=9999).contains(&year) {
        &text[..]
    } else {
        &text[4..]
    };
    out.push_str(ascii(text));
}

fn push_two_digits(out: &mut IsoTimestamp, value: u8) {
    let text = [b'0' + value / 10 % 10, b'0' + value % 10];
    out.push_str(ascii(&text));
}

/// Text made here of ASCII digits and separators, without a second pass to check it.
#[inline]
fn ascii(text: &[u8]) -> &str {
    assert!(text.is_ascii());
    // SAFETY: the assertion above holds, and ASCII is UTF-8.
    unsafe { std::str::from_utf8_unchecked(text) }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_longest_timestamp_fits_inline() {
        let mut out = IsoTimestamp::new();
        push_date_time(&mut out, i32::MIN, 12, 31, 23, 59, 59);
        out.push_str(".999Z");
        assert_eq!(&*out, "-2147483648-12-31T23:59:59.999Z");
        let mut out = IsoTimestamp::new();
        push_date_time(&mut out, i32::MAX, 1, 1, 0, 0, 0);
        out.push_str("+23:59");
        assert_eq!(out.as_str(), "2147483647-01-01T00:00:00+23:59");
    }

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

    /// The hand-read shape against `time`'s parser, over every day of four centuries (each with
    /// its right weekday and a wrong one) and mutated fields.
    #[test]
    fn the_canonical_shape_reads_as_time_reads_it() {
        let reference = |text: &str| {
            let at = OffsetDateTime::parse(text.trim(), CREATED_AT).ok()?;
            let iso = format!(
                "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}{}{:02}:{:02}",
                at.year(),
                u8::from(at.month()),
                at.day(),
                at.hour(),
                at.minute(),
                at.second(),
                if at.offset().is_negative() { '-' } else { '+' },
                at.offset().whole_hours().unsigned_abs(),
                at.offset().minutes_past_hour().unsigned_abs(),
            );
            Some(iso)
        };
        let mut date = time::Date::from_calendar_date(1899, time::Month::December, 25).unwrap();
        let end = time::Date::from_calendar_date(2301, time::Month::January, 5).unwrap();
        let mut n = 0u32;
        let weekdays = ["Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun"];
        let months = [
            "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
        ];
        assert!(canonical_created_at_iso(b"Mon Feb 22 01:34:53 +0000 2016").is_some());
        while date < end {
            n = n.wrapping_mul(1_103_515_245).wrapping_add(12_345);
            let weekday = date.weekday().number_days_from_monday() as usize;
            let month = months[u8::from(date.month()) as usize - 1];
            let (h, m, s) = (n % 25, (n >> 5) % 61, (n >> 11) % 61);
            let sign = if n & (1 << 20) == 0 { '+' } else { '-' };
            let (oh, om) = ((n >> 21) % 26, (n >> 26) % 61);
            for wd in [weekday, (weekday + 1 + (n as usize >> 8) % 6) % 7] {
                let text = format!(
                    "{} {month} {:02} {h:02}:{m:02}:{s:02} {sign}{oh:02}{om:02} {}",
                    weekdays[wd],
                    date.day(),
                    date.year()
                );
                assert_eq!(
                    created_at_iso(&text).as_deref(),
                    reference(&text).as_deref(),
                    "{text}"
                );
            }
            date = date.next_day().unwrap();
        }
        for text in [
            "Mon Feb 22 01:34:53 -0000 2016",
            "Mon Feb 22 01:34:53 +0000 2016 ",
            " Mon Feb 22 01:34:53 +0000 2016",
            "Mon Feb 22 01:34:53 +0000  2016",
            "Mon Feb 22 1:34:53 +0000 02016",
            "mon Feb 22 01:34:53 +0000 2016",
            "Mon FEB 22 01:34:53 +0000 2016",
            "Mon Feb 22 01:34:53 0000 02016",
            "Mon Feb 22 01:34:53 +0000 0016",
            "Mon Feb 22 01:34:53 +2400 2016",
            "Mon Feb 22 01:34:53 +2359 2016",
            "Mon Feb 22 01:34:60 +0000 2016",
            "Mon Feb 00 01:34:53 +0000 2016",
            "Mon Feb 2a 01:34:53 +0000 2016",
            "Mon Feb ~~ 01:34:53 +0000 2016",
            "Mon Feb 22 01:34:53 +0000 \u{ff}\u{ff}",
            "Mon Feb 22 01:34:53 +0000 2016\n",
        ] {
            assert_eq!(
                created_at_iso(text).as_deref(),
                reference(text).as_deref(),
                "{text:?}"
            );
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

    #[test]
    fn received_at_agrees_with_time_across_its_range() {
        let reference = |ms: i64| {
            let at = OffsetDateTime::from_unix_timestamp_nanos(i128::from(ms) * 1_000_000).ok()?;
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
        };
        let mut n = 0x9e37_79b9_7f4a_7c15u64;
        let mut cases: Vec<i64> = vec![0, -1, 1, 86_399_999, 86_400_000, 951_782_400_000];
        cases.extend((-3..3).map(|d| 253_402_300_800_000 + d));
        for _ in 0..200_000 {
            n ^= n << 13;
            n ^= n >> 7;
            n ^= n << 17;
            // Mostly days 1900..10000, some anywhere.
            let ms = if n.is_multiple_of(16) {
                n as i64
            } else {
                (n % 296_000_000_000_000) as i64 - 2_208_988_800_000
            };
            cases.push(ms);
        }
        for ms in cases {
            assert_eq!(
                received_at_iso(ms).as_deref(),
                reference(ms).as_deref(),
                "{ms}"
            );
        }
    }
}
