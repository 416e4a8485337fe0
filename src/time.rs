//! Time as the filter reckons it: epoch milliseconds from the host clock, civil dates for
//! SigV4 and event time stamps, and the RFC 3339 expirations AWS hands out.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// Milliseconds since the Unix epoch (0 before it, saturating far after).
pub fn epoch_ms(time: SystemTime) -> u64 {
    time.duration_since(UNIX_EPOCH).map(ms).unwrap_or(0)
}

/// Whole milliseconds, saturating.
pub(crate) fn ms(duration: Duration) -> u64 {
    u64::try_from(duration.as_millis()).unwrap_or(u64::MAX)
}

/// (year, month, day) of a day number (days since 1970-01-01), proleptic Gregorian.
pub(crate) fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    (
        year,
        u32::try_from(month).unwrap_or(0),
        u32::try_from(day).unwrap_or(0),
    )
}

/// An RFC 3339 time in UTC (`2026-11-23T10:00:00Z`, fraction optional), accepted exactly
/// as `DateTime::from_str(_, Format::DateTime)` does (a test compares them): that function
/// also links the HTTP-date and `time` parsers, some 17 KB of the .wasm.
pub(crate) fn parse_expiration(text: &str) -> Option<SystemTime> {
    let rest = text.as_bytes().strip_suffix(b"Z")?;
    let number = |at: usize, len: usize| -> Option<u32> {
        rest.get(at..at + len)?.iter().try_fold(0u32, |n, &b| {
            b.is_ascii_digit().then(|| n * 10 + u32::from(b - b'0'))
        })
    };
    let (year, month, day) = (number(0, 4)?, number(5, 2)?, number(8, 2)?);
    let (hour, minute, mut second) = (number(11, 2)?, number(14, 2)?, number(17, 2)?);
    let separators = [(4, b'-'), (7, b'-'), (13, b':'), (16, b':')];
    if separators.iter().any(|&(at, b)| rest[at] != b) || !matches!(rest[10], b'T' | b't') {
        return None;
    }
    let mut nanos = 0;
    match &rest[19..] {
        [] => {}
        // Digits past the ninth are dropped.
        [b'.', digits @ ..] if !digits.is_empty() && digits.iter().all(u8::is_ascii_digit) => {
            let mut scale = 100_000_000;
            for &d in digits {
                nanos += u32::from(d - b'0') * scale;
                scale /= 10;
            }
        }
        _ => return None,
    }
    let leap_year = year % 4 == 0 && (year % 100 != 0 || year % 400 == 0);
    let month_days = match month {
        1 | 3 | 5 | 7 | 8 | 10 | 12 => 31,
        4 | 6 | 9 | 11 => 30,
        2 if leap_year => 29,
        2 => 28,
        _ => return None,
    };
    if !(1..=month_days).contains(&day) || hour > 23 || minute > 59 || second > 60 {
        return None;
    }
    // A leap second may only end a month; it counts as the nanosecond before the next.
    if second == 60 {
        if (hour, minute, day) != (23, 59, month_days) {
            return None;
        }
        second = 59;
        nanos = 999_999_999;
    }
    // Days since 1970-01-01 of the proleptic Gregorian date (Hinnant's days_from_civil).
    let (y, m, d) = (
        i64::from(year) - i64::from(month <= 2),
        i64::from(month),
        i64::from(day),
    );
    let era = y.div_euclid(400);
    let year_of_era = y - era * 400;
    let day_of_year = (153 * (m + if m > 2 { -3 } else { 9 }) + 2) / 5 + d - 1;
    let day_of_era = year_of_era * 365 + year_of_era / 4 - year_of_era / 100 + day_of_year;
    let days = era * 146_097 + day_of_era - 719_468;
    let secs = days * 86_400 + i64::from(hour * 3600 + minute * 60 + second);
    // What `SystemTime::try_from(DateTime)` does, without its error type and panics.
    let whole = UNIX_EPOCH.checked_add(Duration::from_secs(secs.max(0).unsigned_abs()))?;
    let whole = whole.checked_sub(Duration::from_secs(secs.min(0).unsigned_abs()))?;
    whole.checked_add(Duration::from_nanos(u64::from(nanos)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn expiration_parses_as_aws_smithy_types_does() {
        use aws_smithy_types::date_time::{DateTime, Format};
        let smithy = |text: &str| {
            DateTime::from_str(text, Format::DateTime)
                .ok()
                .and_then(|t| SystemTime::try_from(t).ok())
        };
        let mut cases: Vec<String> = Vec::new();
        for year in [
            "0000", "0001", "1600", "1900", "1969", "1970", "2000", "2024", "2100", "9999",
        ] {
            for month in ["00", "01", "02", "03", "04", "06", "09", "11", "12", "13"] {
                for day in ["00", "01", "28", "29", "30", "31", "32"] {
                    cases.push(format!("{year}-{month}-{day}T12:34:56Z"));
                }
            }
            for time in [
                "23:59:60",
                "23:59:60.5",
                "23:58:60",
                "22:59:60",
                "24:00:00",
                "00:60:00",
            ] {
                for date in ["02-28", "02-29", "06-30", "12-31", "12-30"] {
                    cases.push(format!("{year}-{date}T{time}Z"));
                }
            }
        }
        let base = "2026-11-23T10:00:00.123456789Z";
        for fraction in [
            "",
            ".",
            ".1",
            ".05",
            ".123456789",
            ".1234567891",
            ".99999999999",
            ".x",
            ".1x",
            "..1",
        ] {
            cases.push(format!("2026-11-23T10:00:00{fraction}Z"));
        }
        for text in [
            "",
            "Z",
            "tomorrow",
            "2026-11-23",
            "2026-11-23Z",
            "2026-11-23T10:00:00",
            "2026-11-23t10:00:00Z",
            "2026-11-23 10:00:00Z",
            "2026-11-23T10:00:00z",
            "2026-11-23T10:00:00+00:00",
            "2026-11-23T10:00:00+00:00Z",
            "2026-11-23T10:00:00ZZ",
            "2026-11-23T10:00Z",
            "+2026-11-23T10:00:00Z",
            "2026-11-23T10:00:00.Z",
            "2026-11-23T1:00:00Z",
            "２026-11-23T10:00:00Z",
            "2026-11-23\u{e9}10:00:00Z",
        ] {
            cases.push(text.to_string());
        }
        // Every position of a valid time replaced by a few characters.
        for at in 0..base.len() {
            for c in ['0', '9', '-', ':', '.', 'T', 't', 'Z', ' ', '+'] {
                let mut text = base.to_string();
                text.replace_range(at..=at, &c.to_string());
                cases.push(text);
            }
            cases.push(format!("{}{}", &base[..at], &base[at + 1..]));
        }
        for text in &cases {
            assert_eq!(parse_expiration(text), smithy(text), "{text}");
        }
    }
}
