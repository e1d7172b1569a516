//! When a recurring job runs: the five fields of SUBMIT_JOB_SCHED, built by the
//! application and checked with the same parser the server uses ([`CronSpec`]).

use crate::cron::{CronError, CronSpec};
use bytes::Bytes;
use std::fmt;
use std::str::FromStr;

/// A recurring job's schedule: minute, hour, day of month, month, day of week, each a cron
/// field as [`gearman_core::cron`](crate::cron) accepts it (`*`, a number, `A-B`, `*/S`,
/// lists of those). Evaluated by the server in UTC unless it was started with another zone.
///
/// ```
/// use gearman_core::client::Schedule;
/// // Every 15 minutes from 9 to 17 h on weekdays, built field by field or parsed.
/// let built = Schedule::every_minute().minute("*/15").hour("9-17").day_of_week("1-5");
/// let parsed: Schedule = "*/15 9-17 * * 1-5".parse().unwrap();
/// assert_eq!(built, parsed);
/// assert_eq!(built.to_string(), "*/15 9-17 * * 1-5");
/// // Daily at 03:30.
/// let daily = Schedule::every_minute().minute(30).hour(3);
/// assert!(daily.check().is_ok());
/// // A bad field is refused, naming it.
/// let err = Schedule::every_minute().minute(61).check().unwrap_err();
/// assert_eq!(err.to_string(), "minute \"61\": out of range 0-59");
/// ```
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Schedule {
    fields: [Bytes; 5],
}

const ANY: Bytes = Bytes::from_static(b"*");

impl Schedule {
    /// Every minute (all five fields `*`); narrow it with the field methods.
    pub fn every_minute() -> Self {
        Schedule {
            fields: [ANY, ANY, ANY, ANY, ANY],
        }
    }

    /// Parses the five whitespace-separated fields of a crontab line
    /// (`"*/15 9-17 * * 1-5"`), checking each.
    pub fn parse(line: &str) -> Result<Self, CronError> {
        let parts: Vec<&str> = line.split_whitespace().collect();
        let [minute, hour, day_of_month, month, day_of_week] = parts[..] else {
            return Err(CronError(format!(
                "a schedule has 5 fields (minute hour day-of-month month day-of-week), {line:?} has {}",
                parts.len()
            )));
        };
        let schedule = Schedule::every_minute()
            .minute(minute)
            .hour(hour)
            .day_of_month(day_of_month)
            .month(month)
            .day_of_week(day_of_week);
        schedule.check()?;
        Ok(schedule)
    }

    fn set(mut self, i: usize, value: impl fmt::Display) -> Self {
        if let Some(slot) = self.fields.get_mut(i) {
            *slot = Bytes::from(value.to_string());
        }
        self
    }

    /// Sets the minute field (0-59), e.g. `30` or `"*/5"`.
    pub fn minute(self, field: impl fmt::Display) -> Self {
        self.set(0, field)
    }

    /// Sets the hour field (0-23).
    pub fn hour(self, field: impl fmt::Display) -> Self {
        self.set(1, field)
    }

    /// Sets the day-of-month field (1-31).
    pub fn day_of_month(self, field: impl fmt::Display) -> Self {
        self.set(2, field)
    }

    /// Sets the month field (1-12).
    pub fn month(self, field: impl fmt::Display) -> Self {
        self.set(3, field)
    }

    /// Sets the day-of-week field (0-7, 0 and 7 are Sunday).
    pub fn day_of_week(self, field: impl fmt::Display) -> Self {
        self.set(4, field)
    }

    /// The five fields as they are sent.
    pub fn fields(&self) -> &[Bytes; 5] {
        &self.fields
    }

    /// Checks the fields as the server will; the error names the field at fault.
    pub fn check(&self) -> Result<CronSpec, CronError> {
        CronSpec::parse(self.fields.clone())
    }
}

impl FromStr for Schedule {
    type Err = CronError;

    fn from_str(line: &str) -> Result<Self, CronError> {
        Schedule::parse(line)
    }
}

impl fmt::Display for Schedule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, field) in self.fields.iter().enumerate() {
            let sep = if i == 0 { "" } else { " " };
            write!(f, "{sep}{}", String::from_utf8_lossy(field))?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parse_needs_five_valid_fields() {
        assert_eq!(
            Schedule::parse("* * * *").unwrap_err().to_string(),
            "a schedule has 5 fields (minute hour day-of-month month day-of-week), \"* * * *\" has 4"
        );
        assert_eq!(
            Schedule::parse("0 24 * * *").unwrap_err().to_string(),
            "hour \"24\": out of range 0-23"
        );
        let s = Schedule::parse(" 0  3 1,15 */2 7 ").unwrap();
        assert_eq!(s.to_string(), "0 3 1,15 */2 7");
        assert_eq!(
            s,
            Schedule::every_minute()
                .minute(0)
                .hour(3)
                .day_of_month("1,15")
                .month("*/2")
                .day_of_week(7)
        );
    }
}
