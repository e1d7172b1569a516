//! One job as the job state holds it, and the phases of its life.

use super::timers::TimerId;
use crate::proto::Priority;
use crate::server::ConnId;
use bytes::Bytes;
use std::time::Instant;

/// Names a job while the server holds it: it grows with arrival (so sorting ids sorts by
/// age) and is never reused.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub(crate) struct JobId(pub(crate) u64);

/// What a submission coalesces on within its function.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub(crate) enum UniqueKey {
    /// The unique id as sent.
    Unique(Bytes),
    /// Unique `-` with a non-empty workload: coalesce on the workload bytes.
    Data(Bytes),
}

impl UniqueKey {
    /// `None` for an empty unique (never coalesced) and for `-` with empty data.
    pub(crate) fn of(unique: &Bytes, data: &Bytes) -> Option<UniqueKey> {
        match &unique[..] {
            b"" => None,
            b"-" if data.is_empty() => None,
            b"-" => Some(UniqueKey::Data(data.clone())),
            _ => Some(UniqueKey::Unique(unique.clone())),
        }
    }
}

/// Where a job is. Only [`JobState::transition`](super::JobState::transition) changes it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Phase {
    /// Created in the current call and not placed yet; never outlives the call.
    New,
    /// Waiting for the store to commit it; not runnable, JOB_CREATED held back.
    Persisting,
    /// Waiting for its time: an epoch job, or a failed one backing off before a retry.
    Scheduled(Instant),
    /// In its function's queue.
    Queued,
    /// Held by a worker (also once cancelled: it stays with the worker until it reports).
    Running {
        /// The worker's connection.
        worker: ConnId,
    },
}

/// A job: what was submitted, and where it is.
#[derive(Debug)]
pub(crate) struct Job {
    pub(crate) handle: Bytes,
    pub(crate) function: Bytes,
    pub(crate) unique: Bytes,
    pub(crate) unique_key: Option<UniqueKey>,
    pub(crate) reducer: Option<Bytes>,
    pub(crate) data: Bytes,
    pub(crate) priority: Priority,
    /// Some submission was background, so the job outlives its foreground clients.
    pub(crate) background: bool,
    pub(crate) epoch: Option<i64>,
    /// Private to the lifecycle: read it with [`Job::phase`].
    pub(super) phase: Phase,
    /// One entry per foreground submission still attached.
    pub(crate) listeners: Vec<ConnId>,
    /// Times a worker lost it (vanished, CANT_DO, timeout), for `job_retries`.
    pub(crate) retries: u32,
    /// The pending timer of the current phase (due time while scheduled, run-time limit
    /// while running).
    pub(super) timer: Option<TimerId>,
    /// Cancelled by the admin while a worker ran it: its clients were told WORK_FAIL, and
    /// it lives on only until the worker reports or lets go of it, then ends silently.
    pub(crate) cancelled: bool,
    pub(crate) numerator: u32,
    pub(crate) denominator: u32,
    pub(crate) durable_id: Option<u64>,
    /// WORK_FAIL/WORK_EXCEPTION reports retried under a `--retry` policy so far.
    pub(crate) failures: u32,
    /// When it entered its phase, while queued or running (for the queue-wait and
    /// run-time histograms).
    pub(crate) since: Option<Instant>,
}

impl Job {
    /// Where it is.
    pub(crate) fn phase(&self) -> Phase {
        self.phase
    }

    /// The pending timer of its phase.
    pub(crate) fn timer(&self) -> Option<TimerId> {
        self.timer
    }

    pub(crate) fn is_running(&self) -> bool {
        matches!(self.phase, Phase::Running { .. })
    }

    /// Nobody will hear its result (cancelled, or every foreground client left while a
    /// worker runs it): `show jobs` prints IGNORE=1, and it ends instead of being retried.
    pub(crate) fn is_ignored(&self) -> bool {
        self.cancelled || (!self.background && self.listeners.is_empty())
    }
}
