//! The server's settings.

use super::{kept, RetryPolicy};
use crate::limits::Limits;
use bytes::Bytes;
use std::collections::HashMap;
use std::time::Instant;

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
    /// Keep the last result of each background job this long (see [`kept`]); `None`
    /// (the default) keeps none.
    pub keep_results: Option<std::time::Duration>,
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
            persist_background: false,
            wall_anchor: (now, unix_secs),
            retry: HashMap::new(),
            durable_extras: false,
            schedule_offset_secs: 0,
            first_handle: 0,
            keep_results: None,
            keep_results_bytes: kept::DEFAULT_KEEP_RESULTS_BYTES,
        }
    }
}
