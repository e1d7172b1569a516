//! The reconnect schedule, as pure data: exponential backoff per server, with the instants
//! computed from the `now` the caller passes in. Clients (per server of their pool) and
//! workers (per lost connection) share it.

use std::time::{Duration, Instant};

/// Exponential backoff parameters.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Backoff {
    /// Delay after the first failure.
    pub initial: Duration,
    /// Upper bound for any delay.
    pub max: Duration,
}

impl Default for Backoff {
    fn default() -> Self {
        Backoff {
            initial: Duration::from_millis(100),
            max: Duration::from_secs(10),
        }
    }
}

impl Backoff {
    /// Delay before the next attempt after `failures` consecutive failures (0 = none).
    pub fn delay(&self, failures: u32) -> Duration {
        if failures == 0 {
            return Duration::ZERO;
        }
        let factor = 1u32.checked_shl(failures - 1).unwrap_or(u32::MAX);
        self.initial.saturating_mul(factor).min(self.max)
    }
}

/// Per-server failure counts and the instant each may next be tried.
#[derive(Clone, Debug)]
pub struct ReconnectSchedule {
    backoff: Backoff,
    servers: Vec<(u32, Option<Instant>)>,
}

impl ReconnectSchedule {
    /// A schedule for `len` servers, all ready now.
    pub fn new(len: usize, backoff: Backoff) -> Self {
        ReconnectSchedule {
            backoff,
            servers: vec![(0, None); len],
        }
    }

    /// Records a failed connect or a lost connection to `server`.
    pub fn on_failure(&mut self, server: usize, now: Instant) {
        if let Some((failures, retry_at)) = self.servers.get_mut(server) {
            *failures = failures.saturating_add(1);
            *retry_at = Some(now + self.backoff.delay(*failures));
        }
    }

    /// Records a successful connect to `server`.
    pub fn on_success(&mut self, server: usize) {
        if let Some(slot) = self.servers.get_mut(server) {
            *slot = (0, None);
        }
    }

    /// Consecutive failures of `server`.
    pub fn failures(&self, server: usize) -> u32 {
        self.servers.get(server).map_or(0, |s| s.0)
    }

    /// When `server` may be tried again (`None` = now).
    pub fn retry_at(&self, server: usize) -> Option<Instant> {
        self.servers.get(server).and_then(|s| s.1)
    }

    /// Whether `server` may be tried at `now`.
    pub fn is_ready(&self, server: usize, now: Instant) -> bool {
        match self.retry_at(server) {
            Some(at) => at <= now,
            None => true,
        }
    }

    /// The earliest instant at which any server becomes ready (`now` if one already is).
    pub fn next_ready(&self, now: Instant) -> Option<Instant> {
        self.servers
            .iter()
            .map(|(_, at)| at.map_or(now, |at| at.max(now)))
            .min()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn delays_double_up_to_the_cap() {
        let b = Backoff {
            initial: Duration::from_millis(100),
            max: Duration::from_millis(500),
        };
        let d: Vec<_> = (0..6).map(|f| b.delay(f).as_millis()).collect();
        assert_eq!(d, [0, 100, 200, 400, 500, 500]);
        assert_eq!(b.delay(u32::MAX), Duration::from_millis(500));
    }

    #[test]
    fn schedule_tracks_each_server() {
        let t0 = Instant::now();
        let mut s = ReconnectSchedule::new(2, Backoff::default());
        s.on_failure(0, t0);
        assert!(!s.is_ready(0, t0));
        assert!(s.is_ready(1, t0));
        assert!(s.is_ready(0, t0 + Duration::from_millis(100)));
        s.on_failure(0, t0);
        assert_eq!(s.retry_at(0), Some(t0 + Duration::from_millis(200)));
        s.on_success(0);
        assert_eq!(s.failures(0), 0);
        assert_eq!(s.next_ready(t0), Some(t0));
    }
}
