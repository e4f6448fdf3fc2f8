//! Calendar days and ISO weeks from millisecond timestamps (UTC), without a date library: reports only
//! ever need the civil date of a day number, which is a few lines of arithmetic (Hinnant's algorithm).

pub const DAY_MS: i64 = 86_400_000;

/// The day number (days since 1970-01-01, UTC) of a timestamp in milliseconds.
pub fn day_of(ms: i64) -> i64 {
    ms.div_euclid(DAY_MS)
}

/// The Monday that starts the ISO week holding day `day`.
pub fn week_start(day: i64) -> i64 {
    // 1970-01-01 was a Thursday: day 0 is weekday 3 counting from Monday = 0.
    day - (day + 3).rem_euclid(7)
}

/// `YYYY-MM-DD` of a day number.
pub fn date_string(day: i64) -> String {
    let (y, m, d) = civil_from_days(day);
    format!("{y:04}-{m:02}-{d:02}")
}

/// Parses `YYYY-MM-DD` into the timestamp (ms) of that day's start, UTC.
pub fn parse_date(s: &str) -> Option<i64> {
    let mut parts = s.trim().splitn(3, '-');
    let y: i64 = parts.next()?.parse().ok()?;
    let m: u32 = parts.next()?.parse().ok()?;
    let d: u32 = parts.next()?.parse().ok()?;
    if !(1..=12).contains(&m) || d == 0 || d > days_in_month(y, m) {
        return None;
    }
    Some(days_from_civil(y, m, d) * DAY_MS)
}

fn days_in_month(y: i64, m: u32) -> u32 {
    match m {
        2 if (y % 4 == 0 && y % 100 != 0) || y % 400 == 0 => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    }
}

fn days_from_civil(y: i64, m: u32, d: u32) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (m as i64 + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d as i64 - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (yoe + era * 400 + i64::from(m <= 2), m, d)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dates_round_trip_and_weeks_start_on_monday() {
        assert_eq!(date_string(0), "1970-01-01");
        let ms = parse_date("2026-11-30").unwrap();
        assert_eq!(date_string(day_of(ms)), "2026-11-30");
        // 2026-11-30 is a Monday; 2026-12-06 (Sunday) belongs to the same week.
        let monday = day_of(ms);
        assert_eq!(week_start(monday), monday);
        assert_eq!(week_start(monday + 6), monday);
        assert_eq!(week_start(monday + 7), monday + 7);
        assert_eq!(parse_date("2024-02-29").map(|m| date_string(day_of(m))).as_deref(), Some("2024-02-29"));
        assert!(parse_date("2025-02-29").is_none());
        assert!(parse_date("yesterday").is_none());
    }
}
