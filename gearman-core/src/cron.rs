//! Cron schedules for SUBMIT_JOB_SCHED: the five fields parsed, and the next matching
//! minute computed from a time passed in (no clock is read).
//!
//! Each field is, as in cron(5): empty or `*` (any value), a number, a range `A-B`, a step
//! `*/S`, `A-B/S` or `A/S` (from A to the field's maximum), or a comma-separated list of
//! those. Ranges: minute 0-59, hour 0-23, day of month 1-31, month 1-12, day of week 0-7
//! (0 and 7 are Sunday). Names (`jan`, `mon`) are not accepted. As in cron, when both the
//! day of month and the day of week are restricted (neither starts with `*`), a day matches
//! if *either* matches; otherwise both must.
//!
//! Times are Unix seconds; a fixed offset (seconds east of UTC) places the fields in a
//! zone other than UTC (no daylight-saving rules).
//!
//! A hand-written evaluator rather than a cron crate: the protocol sends the five fields
//! separately, and the maintained crates (`cron`, `croner`) parse one string and compute on
//! `chrono` date types, which the core does not otherwise need.
//!
//! ```
//! use gearman_core::cron::CronSpec;
//! // Every 15 minutes during 9-17 h on weekdays.
//! let spec = CronSpec::parse(["*/15", "9-17", "*", "*", "1-5"]).unwrap();
//! // 2024-01-06 is a Saturday; the next firing is Monday 2024-01-08 09:00 UTC.
//! let saturday_noon = 1_704_542_400;
//! assert_eq!(spec.next_after(saturday_noon, 0), Some(1_704_704_400));
//! ```

use std::fmt;

/// Days searched ahead for a matching day: nine years covers a Feb 29 across a century
/// year that is not a leap year (2096 -> 2104).
const SEARCH_DAYS: i64 = 9 * 366;

/// One field's allowed values as a bit set, and whether it was restricted.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Field {
    bits: u64,
    /// False when the field is empty or starts with `*` (cron's rule for day fields).
    restricted: bool,
}

impl Field {
    fn has(self, value: u32) -> bool {
        value < 64 && self.bits & (1u64 << value) != 0
    }
}

/// A parsed schedule: minute, hour, day of month, month, day of week.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CronSpec {
    minute: Field,
    hour: Field,
    day_of_month: Field,
    month: Field,
    day_of_week: Field,
    text: [String; 5],
}

/// Why a schedule field was refused: one line naming the field.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CronError(pub String);

impl fmt::Display for CronError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for CronError {}

const NAMES: [&str; 5] = ["minute", "hour", "day of month", "month", "day of week"];
const RANGES: [(u32, u32); 5] = [(0, 59), (0, 23), (1, 31), (1, 12), (0, 7)];

impl CronSpec {
    /// Parses the five fields (minute, hour, day of month, month, day of week).
    pub fn parse<S: AsRef<[u8]>>(fields: [S; 5]) -> Result<CronSpec, CronError> {
        let mut parsed = [Field {
            bits: 0,
            restricted: false,
        }; 5];
        let mut text: [String; 5] = Default::default();
        for (i, raw) in fields.iter().enumerate() {
            let (name, range) = (NAMES.get(i), RANGES.get(i));
            let (Some(name), Some(&(lo, hi)), Some(slot), Some(t)) =
                (name, range, parsed.get_mut(i), text.get_mut(i))
            else {
                continue;
            };
            let s = std::str::from_utf8(raw.as_ref())
                .map_err(|_| CronError(format!("{name}: not text")))?
                .trim();
            *slot = parse_field(s, lo, hi).map_err(|e| CronError(format!("{name} {s:?}: {e}")))?;
            *t = if s.is_empty() { "*".into() } else { s.into() };
        }
        let [minute, hour, day_of_month, month, mut day_of_week] = parsed;
        // 7 is Sunday too.
        if day_of_week.has(7) {
            day_of_week.bits |= 1;
        }
        let spec = CronSpec {
            minute,
            hour,
            day_of_month,
            month,
            day_of_week,
            text,
        };
        Ok(spec)
    }

    /// The fields as given (empty ones as `*`).
    pub fn fields(&self) -> &[String; 5] {
        &self.text
    }

    /// Whether the day `days` (since 1970-01-01, in the schedule's zone) matches.
    fn day_matches(&self, days: i64) -> bool {
        let (_, month, day) = civil_from_days(days);
        if !self.month.has(month) {
            return false;
        }
        let weekday = (days + 4).rem_euclid(7) as u32; // 1970-01-01 was a Thursday
        let (dom, dow) = (self.day_of_month.has(day), self.day_of_week.has(weekday));
        match (self.day_of_month.restricted, self.day_of_week.restricted) {
            (true, true) => dom || dow,
            _ => dom && dow,
        }
    }

    /// The first matching minute strictly after `unix` (Unix seconds), with the fields read
    /// in the zone `offset_secs` east of UTC; `None` if nothing matches within nine years
    /// (e.g. `30 2` for February 30th).
    pub fn next_after(&self, unix: i64, offset_secs: i32) -> Option<i64> {
        let local = unix.checked_add(i64::from(offset_secs))?;
        // The next whole minute after `local`.
        let start = local.div_euclid(60).checked_add(1)?.checked_mul(60)?;
        let first_day = start.div_euclid(86_400);
        let first_minute = (start.rem_euclid(86_400) / 60) as u32;
        for day in first_day..first_day.checked_add(SEARCH_DAYS)? {
            if !self.day_matches(day) {
                continue;
            }
            let from = if day == first_day { first_minute } else { 0 };
            if let Some(m) = self.first_minute_from(from) {
                let at = day * 86_400 + i64::from(m) * 60;
                return at.checked_sub(i64::from(offset_secs));
            }
        }
        None
    }

    /// The first minute of the day (0..1440) at or after `from` that matches hour and minute.
    fn first_minute_from(&self, from: u32) -> Option<u32> {
        (from..1440).find(|m| self.hour.has(m / 60) && self.minute.has(m % 60))
    }
}

impl fmt::Display for CronSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text.join(" "))
    }
}

fn parse_field(s: &str, lo: u32, hi: u32) -> Result<Field, String> {
    if s.is_empty() {
        return Ok(Field {
            bits: range_bits(lo, hi, 1),
            restricted: false,
        });
    }
    let mut bits = 0u64;
    for item in s.split(',') {
        let (range, step) = match item.split_once('/') {
            Some((r, st)) => {
                let step = number(st)?;
                if step == 0 {
                    return Err("a step of 0".into());
                }
                (r, Some(step))
            }
            None => (item, None),
        };
        let (a, b) = if range == "*" {
            (lo, hi)
        } else if let Some((a, b)) = range.split_once('-') {
            (number(a)?, number(b)?)
        } else {
            let a = number(range)?;
            (a, if step.is_some() { hi } else { a })
        };
        if a < lo || b > hi {
            return Err(format!("out of range {lo}-{hi}"));
        }
        if a > b {
            return Err(format!("range {a}-{b} runs backwards"));
        }
        bits |= range_bits(a, b, step.unwrap_or(1));
    }
    Ok(Field {
        bits,
        restricted: !s.starts_with('*'),
    })
}

fn number(s: &str) -> Result<u32, String> {
    if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) || s.len() > 4 {
        return Err(format!("{s:?} is not a number"));
    }
    s.parse().map_err(|_| format!("{s:?} is not a number"))
}

fn range_bits(a: u32, b: u32, step: u32) -> u64 {
    (a..=b.min(63))
        .step_by(step as usize)
        .fold(0, |acc, v| acc | (1u64 << v))
}

/// Year, month (1-12) and day (1-31) of `days` since 1970-01-01 (proleptic Gregorian;
/// Howard Hinnant's algorithm).
pub fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let month = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let year = yoe + era * 400 + i64::from(month <= 2);
    (year, month, day)
}

/// Days since 1970-01-01 of a civil date (the inverse of [`civil_from_days`]).
pub fn days_from_civil(year: i64, month: u32, day: u32) -> i64 {
    let y = if month <= 2 { year - 1 } else { year };
    let era = y.div_euclid(400);
    let yoe = y.rem_euclid(400);
    let m = i64::from(month);
    let mp = if m > 2 { m - 3 } else { m + 9 };
    let doy = (153 * mp + 2) / 5 + i64::from(day) - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(y: i64, mo: u32, d: u32, h: i64, mi: i64) -> i64 {
        days_from_civil(y, mo, d) * 86_400 + h * 3600 + mi * 60
    }

    fn spec(f: [&str; 5]) -> CronSpec {
        CronSpec::parse(f).unwrap()
    }

    #[test]
    fn civil_round_trips() {
        for days in [
            -800_000, -1, 0, 1, 59, 60, 11_016, 19_782, 47_541, 2_932_896,
        ] {
            let (y, m, d) = civil_from_days(days);
            assert_eq!(days_from_civil(y, m, d), days, "{y}-{m}-{d}");
        }
        assert_eq!(civil_from_days(0), (1970, 1, 1));
        assert_eq!(days_from_civil(2000, 3, 1), 11_017);
    }

    #[test]
    fn every_minute_crosses_minute_hour_day_month_and_year() {
        let s = spec(["*", "*", "*", "*", "*"]);
        assert_eq!(
            s.next_after(at(2024, 5, 5, 10, 7) + 30, 0),
            Some(at(2024, 5, 5, 10, 8))
        );
        assert_eq!(
            s.next_after(at(2024, 5, 5, 10, 59), 0),
            Some(at(2024, 5, 5, 11, 0))
        );
        assert_eq!(
            s.next_after(at(2024, 5, 5, 23, 59), 0),
            Some(at(2024, 5, 6, 0, 0))
        );
        assert_eq!(
            s.next_after(at(2024, 4, 30, 23, 59), 0),
            Some(at(2024, 5, 1, 0, 0))
        );
        assert_eq!(
            s.next_after(at(2024, 12, 31, 23, 59), 0),
            Some(at(2025, 1, 1, 0, 0))
        );
    }

    #[test]
    fn fixed_minute_and_hour() {
        let s = spec(["30", "2", "", "", ""]);
        assert_eq!(
            s.next_after(at(2024, 5, 5, 2, 30), 0),
            Some(at(2024, 5, 6, 2, 30))
        );
        assert_eq!(
            s.next_after(at(2024, 5, 5, 2, 29), 0),
            Some(at(2024, 5, 5, 2, 30))
        );
    }

    #[test]
    fn month_ends_and_leap_days() {
        let s = spec(["0", "0", "31", "*", "*"]);
        // April has no 31st: from April 1st the next is May 31st.
        assert_eq!(
            s.next_after(at(2024, 4, 1, 0, 0), 0),
            Some(at(2024, 5, 31, 0, 0))
        );
        let leap = spec(["0", "12", "29", "2", "*"]);
        assert_eq!(
            leap.next_after(at(2024, 3, 1, 0, 0), 0),
            Some(at(2028, 2, 29, 12, 0))
        );
        // 2100 is not a leap year.
        assert_eq!(
            leap.next_after(at(2096, 3, 1, 0, 0), 0),
            Some(at(2104, 2, 29, 12, 0))
        );
        assert_eq!(spec(["0", "0", "30", "2", "*"]).next_after(0, 0), None);
    }

    #[test]
    fn day_of_month_or_day_of_week_when_both_restricted() {
        // The 13th, or any Friday (cron's OR rule). 2024-09-01 is a Sunday.
        let s = spec(["0", "0", "13", "*", "5"]);
        assert_eq!(
            s.next_after(at(2024, 9, 1, 0, 0), 0),
            Some(at(2024, 9, 6, 0, 0))
        );
        assert_eq!(
            s.next_after(at(2024, 9, 12, 0, 0), 0),
            Some(at(2024, 9, 13, 0, 0))
        );
        // Only the day of week restricted: Fridays only.
        let fridays = spec(["0", "0", "*", "*", "5"]);
        assert_eq!(
            fridays.next_after(at(2024, 9, 6, 0, 0), 0),
            Some(at(2024, 9, 13, 0, 0))
        );
        // `*/2` counts as unrestricted for the rule (it starts with `*`): AND.
        let odd_fridays = spec(["0", "0", "*/2", "*", "5"]);
        assert_eq!(
            odd_fridays.next_after(at(2024, 9, 1, 0, 0), 0),
            Some(at(2024, 9, 13, 0, 0))
        );
        // 7 is Sunday as well as 0.
        let sundays = spec(["0", "0", "*", "*", "7"]);
        assert_eq!(
            sundays.next_after(at(2024, 9, 2, 0, 0), 0),
            Some(at(2024, 9, 8, 0, 0))
        );
    }

    #[test]
    fn lists_ranges_and_steps() {
        let s = spec(["5,35", "*/6", "1-3", "1,7", "*"]);
        assert_eq!(
            s.next_after(at(2024, 1, 1, 0, 5), 0),
            Some(at(2024, 1, 1, 0, 35))
        );
        assert_eq!(
            s.next_after(at(2024, 1, 1, 0, 35), 0),
            Some(at(2024, 1, 1, 6, 5))
        );
        assert_eq!(
            s.next_after(at(2024, 1, 3, 18, 35), 0),
            Some(at(2024, 7, 1, 0, 5))
        );
        let from = spec(["50/5", "*", "*", "*", "*"]);
        assert_eq!(
            from.next_after(at(2024, 1, 1, 0, 56), 0),
            Some(at(2024, 1, 1, 1, 50))
        );
    }

    #[test]
    fn offset_places_the_fields_in_another_zone() {
        // 09:00 at UTC+2 is 07:00 UTC.
        let s = spec(["0", "9", "*", "*", "*"]);
        assert_eq!(
            s.next_after(at(2024, 1, 1, 0, 0), 7200),
            Some(at(2024, 1, 1, 7, 0))
        );
    }

    #[test]
    fn bad_fields_are_refused_with_the_field_named() {
        for (fields, word) in [
            (["60", "*", "*", "*", "*"], "minute"),
            (["*", "24", "*", "*", "*"], "hour"),
            (["*", "*", "0", "*", "*"], "day of month"),
            (["*", "*", "*", "13", "*"], "month"),
            (["*", "*", "*", "*", "8"], "day of week"),
            (["*/0", "*", "*", "*", "*"], "minute"),
            (["5-1", "*", "*", "*", "*"], "minute"),
            (["x", "*", "*", "*", "*"], "minute"),
            (["1,,2", "*", "*", "*", "*"], "minute"),
            (["99999999999", "*", "*", "*", "*"], "minute"),
        ] {
            let e = CronSpec::parse(fields).unwrap_err();
            assert!(e.0.starts_with(word), "{e} for {fields:?}");
        }
    }
}
