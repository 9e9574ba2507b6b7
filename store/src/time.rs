//! Time as the store keeps it (Unix milliseconds) and as access logs write it (CLF dates).
//!
//! Why here: the server's access log writes CLF dates, the importer reads them back, and both
//! must agree to the second.

/// Now, in Unix milliseconds (0 if the clock is before 1970).
pub fn now_ms() -> i64 {
    unix_ms(std::time::SystemTime::now())
}

/// A wall-clock time in Unix milliseconds (0 if it is before 1970).
pub fn unix_ms(t: std::time::SystemTime) -> i64 {
    t.duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

/// Parses `10/Oct/2000:13:55:36 -0700` into Unix milliseconds (UTC), honouring the offset.
pub fn parse_clf_date(s: &str) -> Option<i64> {
    let b = s.as_bytes();
    if b.len() != 26 || b[2] != b'/' || b[6] != b'/' || b[11] != b':' || b[20] != b' ' {
        return None;
    }
    let num = |r: std::ops::Range<usize>| -> Option<i64> {
        let t = s.get(r)?;
        if !t.bytes().all(|c| c.is_ascii_digit()) {
            return None;
        }
        t.parse().ok()
    };
    let day = num(0..2)?;
    let month = match s.get(3..6)? {
        "Jan" => 1,
        "Feb" => 2,
        "Mar" => 3,
        "Apr" => 4,
        "May" => 5,
        "Jun" => 6,
        "Jul" => 7,
        "Aug" => 8,
        "Sep" => 9,
        "Oct" => 10,
        "Nov" => 11,
        "Dec" => 12,
        _ => return None,
    };
    let year = num(7..11)?;
    let (h, m, sec) = (num(12..14)?, num(15..17)?, num(18..20)?);
    if b[14] != b':' || b[17] != b':' || day == 0 || day > 31 || h > 23 || m > 59 || sec > 60 {
        return None;
    }
    let sign = match b[21] {
        b'+' => 1,
        b'-' => -1,
        _ => return None,
    };
    let (oh, om) = (num(22..24)?, num(24..26)?);
    if oh > 23 || om > 59 {
        return None;
    }
    let days = days_from_civil(year, month, day);
    let local = days * 86_400 + h * 3600 + m * 60 + sec;
    let utc = local - sign * (oh * 3600 + om * 60);
    Some(utc * 1000)
}

/// Formats Unix milliseconds as `10/Oct/2000:13:55:36 +0100`, shown `offset_min` east of UTC
/// (the inverse of [`parse_clf_date`]; the access log and the synthetic logs use it).
pub fn format_clf_date(ts_ms: i64, offset_min: i64) -> String {
    const MONTHS: [&str; 12] = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ];
    let secs = ts_ms.div_euclid(1000) + offset_min * 60;
    let (days, rem) = (secs.div_euclid(86_400), secs.rem_euclid(86_400));
    // civil_from_days (Howard Hinnant's algorithm)
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    let sign = if offset_min < 0 { '-' } else { '+' };
    let o = offset_min.abs();
    format!(
        "{d:02}/{}/{y:04}:{:02}:{:02}:{:02} {sign}{:02}{:02}",
        MONTHS[(m - 1) as usize],
        rem / 3600,
        rem % 3600 / 60,
        rem % 60,
        o / 60,
        o % 60
    )
}

/// Days since 1970-01-01 of a proleptic Gregorian date (Howard Hinnant's algorithm).
fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = if y >= 0 { y } else { y - 399 } / 400;
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Days since 1970-01-01, counted by walking the calendar (independent of Hinnant's formula).
    fn days_by_walking(y: i64, m: i64, d: i64) -> i64 {
        let leap = |y: i64| (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
        let month_len = |y: i64, m: i64| match m {
            2 if leap(y) => 29,
            2 => 28,
            4 | 6 | 9 | 11 => 30,
            _ => 31,
        };
        let years: i64 = (1970..y).map(|y| if leap(y) { 366 } else { 365 }).sum();
        let months: i64 = (1..m).map(|m| month_len(y, m)).sum();
        years + months + d - 1
    }

    #[test]
    fn a_known_date_with_an_offset_parses_to_its_instant() {
        // 10 Oct 2000 13:55:36 at UTC-7 is 20:55:36 UTC: 971211336 s after the epoch.
        assert_eq!(
            parse_clf_date("10/Oct/2000:13:55:36 -0700"),
            Some(971_211_336_000)
        );
        assert_eq!(parse_clf_date("10/Oct/2000:13:55:36 0700"), None);
        assert_eq!(parse_clf_date("10/Foo/2000:13:55:36 +0000"), None);
    }

    proptest::proptest! {
        #[test]
        fn formatted_dates_parse_back_to_the_same_instant(ts in 0i64..4_102_444_800_000, off in -720i64..=840) {
            let ts = ts - ts % 1000;
            let text = format_clf_date(ts, off);
            proptest::prop_assert_eq!(parse_clf_date(&text), Some(ts), "{}", text);
        }

        #[test]
        fn parsed_dates_count_the_days_a_calendar_walk_counts(
            y in 1970i64..2100, m in 1i64..=12, d in 1i64..=28, h in 0i64..24, mi in 0i64..60, s in 0i64..60
        ) {
            const MONTHS: [&str; 12] = ["Jan","Feb","Mar","Apr","May","Jun","Jul","Aug","Sep","Oct","Nov","Dec"];
            let text = format!("{d:02}/{}/{y:04}:{h:02}:{mi:02}:{s:02} +0000", MONTHS[(m - 1) as usize]);
            let ms = parse_clf_date(&text).unwrap();
            proptest::prop_assert_eq!(ms / 86_400_000, days_by_walking(y, m, d));
            proptest::prop_assert_eq!((ms / 1000) % 86_400, h * 3600 + mi * 60 + s);
            proptest::prop_assert_eq!(format_clf_date(ms, 0), text);
        }
    }
}
