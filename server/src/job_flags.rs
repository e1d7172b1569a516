//! Flags of gearmand-rs's job extensions, checked into what the core takes:
//! `--retry FUNCTION=COUNT[:BACKOFF]` (retries with backoff, then dead letters, for the
//! failed background jobs of one function; the policy lives in
//! [`gearman_core::server::retry`]) and `--schedule-zone` (the zone SUBMIT_JOB_SCHED
//! fields are read in), `--keep-results DURATION` (how long background jobs' results
//! are kept).

use bytes::Bytes;
use gearman_core::server::RetryPolicy;
use std::collections::HashMap;
use std::time::Duration;

/// The policies of every `--retry`, by function; a function named twice takes the last.
pub fn policies(flags: &[String]) -> Result<HashMap<Bytes, RetryPolicy>, String> {
    flags
        .iter()
        .map(|flag| parse(flag).map(|(f, p)| (Bytes::from(f), p)))
        .collect()
}

/// One `FUNCTION=COUNT[:BACKOFF]`. The function is what comes before the last `=`, so a
/// function name may itself hold `=` or `:`.
fn parse(flag: &str) -> Result<(String, RetryPolicy), String> {
    let usage = || {
        format!(
            "--retry {flag:?}: expected FUNCTION=COUNT[:BACKOFF], e.g. resize=5:2s (up to 5 \
             retries, 2 s after the first failure and twice as long after each next)"
        )
    };
    let (function, policy) = flag.rsplit_once('=').ok_or_else(usage)?;
    if function.is_empty() {
        return Err(usage());
    }
    let (count, backoff) = match policy.split_once(':') {
        Some((count, backoff)) => (count, Some(backoff)),
        None => (policy, None),
    };
    let count: u32 = count
        .parse()
        .map_err(|_| format!("{}: COUNT {count:?} is not a number", usage()))?;
    let backoff = match backoff {
        None => RetryPolicy::DEFAULT_BACKOFF,
        Some(b) => duration(b).ok_or_else(|| {
            format!(
                "{}: BACKOFF {b:?} is not a duration (seconds, or a number with ms, s, m or h)",
                usage()
            )
        })?,
    };
    Ok((function.to_string(), RetryPolicy { count, backoff }))
}

/// `250ms`, `2s`, `2` (seconds), `5m`, `1h`.
fn duration(text: &str) -> Option<Duration> {
    let split = text
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(text.len());
    let (number, unit) = text.split_at(split);
    let n: u64 = number.parse().ok()?;
    let ms = match unit {
        "ms" => 1,
        "" | "s" => 1_000,
        "m" => 60_000,
        "h" => 3_600_000,
        _ => return None,
    };
    n.checked_mul(ms).map(Duration::from_millis)
}

/// `--keep-results DURATION`: what `--retry` takes for BACKOFF, or days (`7d`); not zero.
pub fn keep_duration(text: &str) -> Result<Duration, String> {
    let parsed = match text.strip_suffix('d') {
        Some(days) if !days.is_empty() && days.bytes().all(|c| c.is_ascii_digit()) => days
            .parse::<u64>()
            .ok()
            .and_then(|d| d.checked_mul(86_400))
            .map(Duration::from_secs),
        _ => duration(text),
    };
    parsed.filter(|d| !d.is_zero()).ok_or_else(|| {
        format!(
            "--keep-results {text:?}: expected a duration above zero: seconds, or a number \
             with ms, s, m, h or d (e.g. 90s, 30m, 7d)"
        )
    })
}

/// `--schedule-zone`: `UTC`, or a fixed offset `+HH:MM` / `-HH:MM` (or `+HH`), as seconds
/// east of UTC. Zone names with daylight-saving rules are not accepted.
pub fn zone_offset(text: &str) -> Result<i32, String> {
    let bad = || {
        format!(
            "--schedule-zone {text:?}: expected UTC or a fixed offset such as +02:00 or -05:30 \
             (zone names with daylight-saving rules are not supported)"
        )
    };
    if text.eq_ignore_ascii_case("utc") || text.eq_ignore_ascii_case("z") {
        return Ok(0);
    }
    let (sign, rest) = match text.as_bytes().first() {
        Some(b'+') => (1, &text[1..]),
        Some(b'-') => (-1, &text[1..]),
        _ => return Err(bad()),
    };
    let (hours, minutes) = rest.split_once(':').unwrap_or((rest, "0"));
    let digits = |s: &str| !s.is_empty() && s.len() <= 2 && s.bytes().all(|c| c.is_ascii_digit());
    if !digits(hours) || !digits(minutes) {
        return Err(bad());
    }
    let (h, m): (i32, i32) = (
        hours.parse().map_err(|_| bad())?,
        minutes.parse().map_err(|_| bad())?,
    );
    if h > 14 || m > 59 {
        return Err(bad());
    }
    Ok(sign * (h * 3600 + m * 60))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flags_give_policies_and_bad_ones_say_why() {
        let p = policies(&["resize=5:2s".into(), "a=b=1".into(), "mail=0".into()]).unwrap();
        assert_eq!(
            p[&Bytes::from("resize")],
            RetryPolicy {
                count: 5,
                backoff: Duration::from_secs(2)
            }
        );
        assert_eq!(p[&Bytes::from("a=b")].count, 1);
        assert_eq!(
            p[&Bytes::from("mail")].backoff,
            RetryPolicy::DEFAULT_BACKOFF
        );
        assert_eq!(duration("250ms"), Some(Duration::from_millis(250)));
        assert_eq!(duration("3"), Some(Duration::from_secs(3)));
        assert_eq!(duration("5m"), Some(Duration::from_secs(300)));
        assert_eq!(duration("1h"), Some(Duration::from_secs(3600)));
        for bad in ["resize", "=3", "f=x", "f=3:soon", "f=-1", "f=3:2d", "f=3:"] {
            let e = policies(&[bad.into()]).unwrap_err();
            assert!(e.contains("FUNCTION=COUNT[:BACKOFF]"), "{bad}: {e}");
        }
    }

    #[test]
    fn keep_durations_take_days_and_refuse_zero_and_junk() {
        assert_eq!(keep_duration("7d"), Ok(Duration::from_secs(7 * 86_400)));
        assert_eq!(keep_duration("90"), Ok(Duration::from_secs(90)));
        assert_eq!(keep_duration("30m"), Ok(Duration::from_secs(1800)));
        assert_eq!(keep_duration("500ms"), Ok(Duration::from_millis(500)));
        for bad in [
            "0",
            "0d",
            "d",
            "",
            "1w",
            "-1",
            "1.5h",
            "99999999999999999999d",
        ] {
            assert!(
                keep_duration(bad).unwrap_err().contains("--keep-results"),
                "{bad}"
            );
        }
    }

    #[test]
    fn zones_are_utc_or_fixed_offsets() {
        assert_eq!(zone_offset("UTC"), Ok(0));
        assert_eq!(zone_offset("+02:00"), Ok(7200));
        assert_eq!(zone_offset("-05:30"), Ok(-19_800));
        assert_eq!(zone_offset("+9"), Ok(32_400));
        for bad in ["Europe/Paris", "2", "+15", "+01:60", "+", "+1:2:3"] {
            assert!(
                zone_offset(bad).unwrap_err().contains("fixed offset"),
                "{bad}"
            );
        }
    }
}
