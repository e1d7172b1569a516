//! The server's settings, with the retry policy and the defaults they name. The job
//! state reads them; they depend on nothing of it.

use crate::limits::Limits;
use bytes::Bytes;
use std::collections::HashMap;
use std::time::{Duration, Instant};

/// The default bound on the bytes kept results hold in all (64 MiB).
pub const DEFAULT_KEEP_RESULTS_BYTES: usize = 64 * 1024 * 1024;

/// The default [`ServerConfig::input_pause_bytes`] (4 MiB).
pub const DEFAULT_INPUT_PAUSE_BYTES: usize = 4 * 1024 * 1024;

/// The longest wait between two attempts, whatever the backoff and the failures.
pub const MAX_BACKOFF: Duration = Duration::from_secs(24 * 3600);

/// How a function's failed background jobs are retried.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RetryPolicy {
    /// Retries after the first failure; the failure after the last retry dead-letters.
    pub count: u32,
    /// The wait after the first failure; it doubles with each further failure.
    pub backoff: Duration,
}

impl RetryPolicy {
    /// The default wait after the first failure.
    pub const DEFAULT_BACKOFF: Duration = Duration::from_secs(1);

    /// The wait after the `failures`-th failure (1-based).
    pub fn delay(&self, failures: u32) -> Duration {
        let doublings = failures.saturating_sub(1).min(40);
        self.backoff
            .checked_mul(1u32 << doublings.min(31))
            .and_then(|d| d.checked_mul(1u32 << doublings.saturating_sub(31)))
            .unwrap_or(MAX_BACKOFF)
            .min(MAX_BACKOFF)
    }
}

/// Server settings.
#[derive(Clone, Debug)]
pub struct ServerConfig {
    /// Packet and line size limits.
    pub limits: Limits,
    /// Retries after a worker fails a job by vanishing, CANT_DO or timeout: `None` =
    /// unlimited, `Some(0)` = fail at the first such failure, `Some(n)` = up to n retries.
    pub job_retries: Option<u32>,
    /// NOOPs sent per newly runnable job; 0 wakes every sleeping capable worker.
    pub worker_wakeup: u32,
    /// Job handles are `<prefix>:<n>`.
    pub handle_prefix: String,
    /// Job handles count up from here (`PREFIX:N`, N > this). A server that restarts
    /// (a durable queue, clients holding handles) should start past any handle it gave
    /// before, e.g. at its start time in milliseconds, so an old handle never names a new
    /// job. Default 0.
    pub first_handle: u64,
    /// Whether connections start with the `exceptions` option on (gearmand `--exceptions`).
    pub exceptions_by_default: bool,
    /// The admin `version` reply.
    pub version: String,
    /// The admin `getpid` reply.
    pub pid: u32,
    /// The admin `verbose` reply.
    pub verbose: String,
    /// Pending output per connection beyond which the connection is closed.
    pub max_output_bytes: usize,
    /// Pending output per connection at which the server stops handling that connection's
    /// requests until the output is transmitted ([`Server::input_held`](super::Server::input_held)):
    /// small requests with large replies (admin `status`) from a peer that does not read
    /// then hold this much, not [`max_output_bytes`](Self::max_output_bytes).
    pub input_pause_bytes: usize,
    /// Store background jobs: a background submission gets JOB_CREATED only once
    /// [`Server::persisted`](super::Server::persisted) confirms its job is stored (and a new job runs only then).
    pub persist_background: bool,
    /// A monotonic instant and the Unix time in seconds at that instant, to place epochs.
    pub wall_anchor: (Instant, i64),
    /// Retry policies for failed background jobs, by function (see [`retry`](super::retry)).
    pub retry: HashMap<Bytes, RetryPolicy>,
    /// The store keeps [`ExtraRecord`](super::ExtraRecord)s (retry state, dead letters): the server emits
    /// [`ServerEvent::PutExtra`](super::ServerEvent::PutExtra) and [`ServerEvent::DeleteExtra`](super::ServerEvent::DeleteExtra) only then.
    pub durable_extras: bool,
    /// SUBMIT_JOB_SCHED fields are read in this zone, seconds east of UTC (0 = UTC).
    pub schedule_offset_secs: i32,
    /// Keep the last result of each background job this long (see [`kept`](super::kept)); `None`
    /// (the default) keeps none.
    pub keep_results: Option<Duration>,
    /// The kept results hold at most this many bytes in all ([`KeptResult::size`](super::KeptResult::size)); the
    /// oldest are forgotten first.
    pub keep_results_bytes: usize,
}

impl ServerConfig {
    /// Defaults, with the wall-clock anchor supplied by the caller (the core reads no clock).
    pub fn new(now: Instant, unix_secs: i64) -> Self {
        ServerConfig {
            limits: Limits::default(),
            job_retries: None,
            worker_wakeup: 0,
            handle_prefix: "H:localhost".into(),
            exceptions_by_default: false,
            version: env!("CARGO_PKG_VERSION").into(),
            pid: 0,
            verbose: "ERROR".into(),
            max_output_bytes: 2 * Limits::DEFAULT_MAX_BODY,
            input_pause_bytes: DEFAULT_INPUT_PAUSE_BYTES,
            persist_background: false,
            wall_anchor: (now, unix_secs),
            retry: HashMap::new(),
            durable_extras: false,
            schedule_offset_secs: 0,
            first_handle: 0,
            keep_results: None,
            keep_results_bytes: DEFAULT_KEEP_RESULTS_BYTES,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_up_to_the_cap() {
        let p = RetryPolicy {
            count: 5,
            backoff: Duration::from_secs(2),
        };
        assert_eq!(p.delay(1), Duration::from_secs(2));
        assert_eq!(p.delay(2), Duration::from_secs(4));
        assert_eq!(p.delay(4), Duration::from_secs(16));
        assert_eq!(p.delay(1000), MAX_BACKOFF);
        let zero = RetryPolicy {
            count: 1,
            backoff: Duration::ZERO,
        };
        assert_eq!(zero.delay(3), Duration::ZERO);
    }
}
