//! Time windows of rules: weekdays and hours of the day in a fixed-offset time zone.

use super::source::TimeSource;

const DAYS: [&str; 7] = ["sun", "mon", "tue", "wed", "thu", "fri", "sat"];

/// The weekday (0 = Sunday) and minute of the day at `time_ms`, `offset_minutes` east
/// of UTC.
pub fn weekday_minute(time_ms: i64, offset_minutes: i32) -> (u32, u32) {
    let minutes = time_ms.div_euclid(60_000) + i64::from(offset_minutes);
    let days = minutes.div_euclid(1440);
    // 1970-01-01 was a Thursday.
    let weekday = (days + 4).rem_euclid(7) as u32;
    (weekday, minutes.rem_euclid(1440) as u32)
}

/// A compiled `time:` condition.
#[derive(Debug, Clone)]
pub struct TimeWindow {
    /// Bit n set: weekday n (0 = Sunday) is in.
    days: u8,
    /// Minutes of the day, start inclusive, end exclusive; start > end wraps midnight.
    hours: Option<(u32, u32)>,
    offset_minutes: i32,
}

impl TimeWindow {
    pub fn compile(source: &TimeSource) -> Result<Self, String> {
        let mut days = 0u8;
        for day in &source.days {
            let lower = day.to_ascii_lowercase();
            let Some(n) = DAYS.iter().position(|d| lower.starts_with(d)) else {
                return Err(format!("`{day}` is not a weekday (mon, tue, … sun)"));
            };
            days |= 1 << n;
        }
        if source.days.is_empty() {
            days = 0x7f;
        }
        let hours = match &source.hours {
            None => None,
            Some(text) => Some(
                hours(text)
                    .ok_or_else(|| format!("`{text}` is not an hour range like 09:00-17:30"))?,
            ),
        };
        let offset_minutes = match source.timezone.as_deref() {
            None | Some("UTC" | "utc" | "Z") => 0,
            Some(tz) => offset(tz).ok_or_else(|| {
                format!(
                    "`{tz}` is not a time zone Airlock knows: use UTC or a fixed offset like +02:00"
                )
            })?,
        };
        Ok(Self {
            days,
            hours,
            offset_minutes,
        })
    }

    pub fn contains(&self, time_ms: i64) -> bool {
        let (weekday, minute) = weekday_minute(time_ms, self.offset_minutes);
        if self.days & (1 << weekday) == 0 {
            return false;
        }
        match self.hours {
            None => true,
            Some((start, end)) if start <= end => (start..end).contains(&minute),
            Some((start, end)) => minute >= start || minute < end,
        }
    }
}

/// `HH:MM-HH:MM` as minutes of the day.
fn hours(text: &str) -> Option<(u32, u32)> {
    let (a, b) = text.split_once('-')?;
    Some((minute_of_day(a.trim())?, minute_of_day(b.trim())?))
}

fn minute_of_day(text: &str) -> Option<u32> {
    let (h, m) = text.split_once(':')?;
    let (h, m): (u32, u32) = (h.parse().ok()?, m.parse().ok()?);
    (h <= 24 && m < 60 && h * 60 + m <= 1440).then_some(h * 60 + m)
}

/// `+HH:MM` / `-HH:MM` as minutes east of UTC.
fn offset(text: &str) -> Option<i32> {
    let (sign, rest) = match text.as_bytes().first()? {
        b'+' => (1, &text[1..]),
        b'-' => (-1, &text[1..]),
        _ => return None,
    };
    let minutes = minute_of_day(rest)? as i32;
    (minutes <= 14 * 60).then_some(sign * minutes)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn window(days: &[&str], hours: Option<&str>, tz: Option<&str>) -> TimeWindow {
        TimeWindow::compile(&TimeSource {
            days: days.iter().map(|d| d.to_string()).collect(),
            hours: hours.map(str::to_string),
            timezone: tz.map(str::to_string),
        })
        .unwrap()
    }

    // 2026-11-26 (a Thursday) 08:30 UTC.
    const THU_0830: i64 = 1_795_681_800_000;

    #[test]
    fn weekdays_hours_and_offsets() {
        assert_eq!(weekday_minute(THU_0830, 0), (4, 8 * 60 + 30));
        assert!(window(&["thu"], Some("08:00-09:00"), None).contains(THU_0830));
        assert!(!window(&["mon", "fri"], None, None).contains(THU_0830));
        // 08:30 UTC is 10:30 at +02:00.
        assert!(window(&[], Some("10:00-11:00"), Some("+02:00")).contains(THU_0830));
        // Wrapping past midnight: 22:00-09:00 holds at 08:30.
        assert!(window(&[], Some("22:00-09:00"), None).contains(THU_0830));
        assert!(!window(&[], Some("09:00-22:00"), None).contains(THU_0830));
    }

    #[test]
    fn bad_windows_are_refused() {
        let bad = |days: &[&str], hours: Option<&str>, tz: Option<&str>| {
            TimeWindow::compile(&TimeSource {
                days: days.iter().map(|d| d.to_string()).collect(),
                hours: hours.map(str::to_string),
                timezone: tz.map(str::to_string),
            })
            .is_err()
        };
        assert!(bad(&["funday"], None, None));
        assert!(bad(&[], Some("9-5"), None));
        assert!(bad(&[], Some("25:00-26:00"), None));
        assert!(bad(&[], None, Some("Europe/Paris")));
        assert!(bad(&[], None, Some("+99:00")));
    }
}
