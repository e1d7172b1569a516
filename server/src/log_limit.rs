//! Logs that cannot flood: a repeated error is logged once per interval, with the number
//! of times it happened since it was last logged.
//!
//! How the accept loop uses it (the type is crate-private, so this is not a doctest):
//!
//! ```text
//! static ACCEPT_FAILED: LogLimiter = LogLimiter::new(Duration::from_secs(10));
//! if let Some(repeats) = ACCEPT_FAILED.check() {
//!     tracing::warn!("accept failed: {e}{}", repeats_note(repeats));
//! }
//! ```

use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Passes one event per interval and counts the ones it holds back.
#[derive(Debug)]
pub(crate) struct LogLimiter {
    interval: Duration,
    state: Mutex<Option<(Instant, u64)>>,
}

impl LogLimiter {
    /// A limiter letting one event through per `interval`.
    pub(crate) const fn new(interval: Duration) -> Self {
        LogLimiter {
            interval,
            state: Mutex::new(None),
        }
    }

    /// Whether to log this event now: `Some(n)` with the `n` events held back since the
    /// last one logged, or `None` to stay quiet.
    pub(crate) fn check(&self) -> Option<u64> {
        self.check_at(Instant::now())
    }

    fn check_at(&self, now: Instant) -> Option<u64> {
        let mut state = self.state.lock().unwrap_or_else(|p| p.into_inner());
        match &mut *state {
            Some((last, held)) if now.duration_since(*last) < self.interval => {
                *held += 1;
                None
            }
            slot => {
                let held = slot.map_or(0, |(_, held)| held);
                *slot = Some((now, 0));
                Some(held)
            }
        }
    }
}

/// ` (and N more like it since the last report)`, or nothing for 0.
pub(crate) fn repeats_note(repeats: u64) -> String {
    if repeats == 0 {
        String::new()
    } else {
        format!(" (and {repeats} more like it since the last report)")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_event_per_interval_with_the_count_held_back() {
        let limiter = LogLimiter::new(Duration::from_secs(10));
        let t0 = Instant::now();
        assert_eq!(limiter.check_at(t0), Some(0));
        for i in 1..=5 {
            assert_eq!(limiter.check_at(t0 + Duration::from_secs(i)), None);
        }
        assert_eq!(limiter.check_at(t0 + Duration::from_secs(10)), Some(5));
        assert_eq!(limiter.check_at(t0 + Duration::from_secs(11)), None);
        assert_eq!(limiter.check_at(t0 + Duration::from_secs(30)), Some(1));
        assert_eq!(repeats_note(0), "");
        assert!(repeats_note(3).contains("3 more"));
    }
}
