//! Backoff between reconnection attempts of a networked store (PostgreSQL, Redis): while the
//! database is away, commits fail at once instead of each waiting for a connect timeout,
//! and the attempts space out from [`FIRST`] to [`LONGEST`].

use std::time::{Duration, Instant};

/// Wait after the first failure.
pub(crate) const FIRST: Duration = Duration::from_millis(100);
/// Longest wait between attempts.
pub(crate) const LONGEST: Duration = Duration::from_secs(2);

/// When the next connection attempt may run.
#[derive(Debug, Default)]
pub(crate) struct Backoff {
    /// `None` while connected or before the first failure.
    next_try: Option<Instant>,
    delay: Duration,
}

impl Backoff {
    /// `Err(time left)` while the previous attempt's backoff runs.
    pub(crate) fn ready(&self) -> Result<(), Duration> {
        match self.next_try {
            Some(at) if at > Instant::now() => Err(at - Instant::now()),
            _ => Ok(()),
        }
    }

    /// An attempt (or the connection) failed: wait longer before the next one.
    pub(crate) fn failed(&mut self) {
        self.delay = (self.delay * 2).clamp(FIRST, LONGEST);
        self.next_try = Some(Instant::now() + self.delay);
    }

    /// Connected again.
    pub(crate) fn succeeded(&mut self) {
        self.next_try = None;
        self.delay = Duration::ZERO;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_grows_to_its_bound_and_resets() {
        let mut b = Backoff::default();
        assert!(b.ready().is_ok());
        b.failed();
        assert_eq!(b.delay, FIRST);
        assert!(b.ready().is_err());
        for _ in 0..10 {
            b.failed();
        }
        assert_eq!(b.delay, LONGEST);
        b.succeeded();
        assert!(b.ready().is_ok());
        b.failed();
        assert_eq!(b.delay, FIRST);
    }
}
