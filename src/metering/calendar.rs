//! UTC calendar arithmetic for reports and budget windows: dates to and from days since
//! the epoch, the start of a day, ISO week (Monday) or month, and report bounds.

const MS_PER_DAY: i64 = 86_400_000;

/// Days since 1970-01-01 of a proleptic Gregorian date (H. Hinnant's algorithm).
pub fn days_from_civil(year: i64, month: u32, day: u32) -> i64 {
    let y = if month <= 2 { year - 1 } else { year };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let m = i64::from(month);
    let doy = (153 * (if m > 2 { m - 3 } else { m + 9 }) + 2) / 5 + i64::from(day) - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// The date of a day since 1970-01-01.
pub fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let month = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let year = yoe + era * 400 + i64::from(month <= 2);
    (year, month, day)
}

/// A calendar period budgets are counted in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Window {
    Daily,
    Weekly,
    Monthly,
}

impl Window {
    /// The start and end (exclusive), in unix milliseconds, of the window holding `ms`:
    /// the UTC day, the ISO week from Monday, or the month.
    pub fn bounds(self, ms: i64) -> (i64, i64) {
        let day = ms.div_euclid(MS_PER_DAY);
        let (start, end) = match self {
            Window::Daily => (day, day + 1),
            Window::Weekly => {
                // 1970-01-01 was a Thursday: Monday is three days later.
                let monday = day - (day + 3).rem_euclid(7);
                (monday, monday + 7)
            }
            Window::Monthly => {
                let (year, month, _) = civil_from_days(day);
                let (next_year, next_month) = if month == 12 {
                    (year + 1, 1)
                } else {
                    (year, month + 1)
                };
                (
                    days_from_civil(year, month, 1),
                    days_from_civil(next_year, next_month, 1),
                )
            }
        };
        (start * MS_PER_DAY, end * MS_PER_DAY)
    }

    pub fn name(self) -> &'static str {
        match self {
            Window::Daily => "daily",
            Window::Weekly => "weekly",
            Window::Monthly => "monthly",
        }
    }
}

/// A report bound in unix milliseconds, from `YYYY-MM-DD` (UTC; as an end bound the whole
/// day is included) or an RFC 3339 time (`2026-11-01T09:00:00Z`).
pub fn parse_bound(text: &str, end: bool) -> Result<i64, String> {
    let text = text.trim();
    if let Some(day) = parse_date(text) {
        return Ok((day + i64::from(end)) * MS_PER_DAY);
    }
    let time = humantime::parse_rfc3339_weak(text).map_err(|_| {
        format!("`{text}` is not a date (2026-11-01) or an RFC 3339 time (2026-11-01T09:00:00Z)")
    })?;
    let since = time
        .duration_since(std::time::UNIX_EPOCH)
        .map_err(|_| format!("`{text}` is before 1970"))?;
    i64::try_from(since.as_millis()).map_err(|_| format!("`{text}` is too far away"))
}

/// Days since the epoch of a strict `YYYY-MM-DD`.
fn parse_date(text: &str) -> Option<i64> {
    let mut parts = text.split('-');
    let (y, m, d) = (parts.next()?, parts.next()?, parts.next()?);
    if parts.next().is_some() || y.len() != 4 || m.len() != 2 || d.len() != 2 {
        return None;
    }
    let (year, month, day): (i64, u32, u32) = (y.parse().ok()?, m.parse().ok()?, d.parse().ok()?);
    let days = days_from_civil(year, month, day);
    // Rejects 2026-02-30 and the like: the date must round-trip.
    (civil_from_days(days) == (year, month, day)).then_some(days)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dates_round_trip_across_centuries() {
        assert_eq!(days_from_civil(1970, 1, 1), 0);
        assert_eq!(days_from_civil(2000, 3, 1), 11_017);
        for days in (-800_000..800_000).step_by(997) {
            let (y, m, d) = civil_from_days(days);
            assert_eq!(days_from_civil(y, m, d), days);
        }
    }

    #[test]
    fn windows_are_utc_days_iso_weeks_and_months() {
        let at = parse_bound("2026-11-26T15:30:00Z", false).unwrap(); // a Thursday
        let day = |text| parse_bound(text, false).unwrap();
        assert_eq!(
            Window::Daily.bounds(at),
            (day("2026-11-26"), day("2026-11-27"))
        );
        assert_eq!(
            Window::Weekly.bounds(at),
            (day("2026-11-23"), day("2026-11-30"))
        );
        assert_eq!(
            Window::Monthly.bounds(at),
            (day("2026-11-01"), day("2026-12-01"))
        );
        let december = day("2026-12-31");
        assert_eq!(
            Window::Monthly.bounds(december),
            (day("2026-12-01"), day("2027-01-01"))
        );
        // A Monday starts its own week.
        let monday = day("2026-11-23");
        assert_eq!(Window::Weekly.bounds(monday).0, monday);
    }

    #[test]
    fn report_bounds_take_dates_and_times() {
        assert_eq!(parse_bound("1970-01-02", false).unwrap(), MS_PER_DAY);
        assert_eq!(parse_bound("1970-01-02", true).unwrap(), 2 * MS_PER_DAY);
        assert_eq!(parse_bound("1970-01-01T00:00:01Z", true).unwrap(), 1000);
        assert!(parse_bound("2026-02-30", false).is_err());
        assert!(parse_bound("yesterday", false).is_err());
        assert!(parse_bound("1969-12-31T00:00:00Z", false).is_err());
    }
}
