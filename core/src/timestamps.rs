//! The timestamp formats traptor writes outside enrichment, in one place: the heartbeat value,
//! a rule's `date_added`, and v1.1's `created_at` (which the emulator generates).

use time::OffsetDateTime;

fn utc(unix_secs: i64) -> OffsetDateTime {
    OffsetDateTime::from_unix_timestamp(unix_secs).unwrap_or(OffsetDateTime::UNIX_EPOCH)
}

/// `2026-11-26T04:05:06Z`: UTC, second precision (the heartbeat's value).
pub fn utc_iso_seconds(unix_secs: i64) -> String {
    let at = utc(unix_secs);
    format!(
        "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}Z",
        at.year(),
        u8::from(at.month()),
        at.day(),
        at.hour(),
        at.minute(),
        at.second()
    )
}

/// `2016-05-10 16:58:34`: UTC, the original's `date_added` format.
pub fn utc_date_time(unix_secs: i64) -> String {
    let at = utc(unix_secs);
    format!(
        "{:04}-{:02}-{:02} {:02}:{:02}:{:02}",
        at.year(),
        u8::from(at.month()),
        at.day(),
        at.hour(),
        at.minute(),
        at.second()
    )
}

const WEEKDAYS: [&str; 7] = ["Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun"];
const MONTHS: [&str; 12] = [
    "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
];

/// v1.1's `created_at`: `Mon Feb 22 01:34:53 +0000 2016`.
pub fn twitter_created_at(unix_secs: i64) -> String {
    let at = utc(unix_secs);
    format!(
        "{} {} {:02} {:02}:{:02}:{:02} +0000 {}",
        WEEKDAYS[at.weekday().number_days_from_monday() as usize],
        MONTHS[u8::from(at.month()) as usize - 1],
        at.day(),
        at.hour(),
        at.minute(),
        at.second(),
        at.year()
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_a_known_instant() {
        // The fixture track tweet: Mon Feb 22 01:34:53 +0000 2016.
        assert_eq!(
            twitter_created_at(1_456_104_893),
            "Mon Feb 22 01:34:53 +0000 2016"
        );
        assert_eq!(utc_iso_seconds(1_456_104_893), "2016-02-22T01:34:53Z");
        assert_eq!(utc_date_time(1_462_899_514), "2016-05-10 16:58:34");
        assert_eq!(utc_iso_seconds(0), "1970-01-01T00:00:00Z");
    }
}
