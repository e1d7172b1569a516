//! One job as the server holds it.

use super::timers::TimerId;
use super::ConnId;
use crate::proto::Priority;
use bytes::Bytes;
use std::time::Instant;

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

/// Where a job is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum JobState {
    /// Waiting for the store to commit it; not runnable, JOB_CREATED held back.
    Persisting,
    /// An epoch job waiting for its time.
    Scheduled(Instant),
    /// In its function's queue.
    Queued,
    /// Held by a worker.
    Running { worker: ConnId },
    /// Momentarily in no place: just created or taken from a worker, about to be queued,
    /// scheduled or finished within the same call.
    Unplaced,
}

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
    pub(crate) state: JobState,
    /// One entry per foreground submission still attached.
    pub(crate) listeners: Vec<ConnId>,
    pub(crate) retries: u32,
    /// The pending timer of the current state (epoch due time, or run-time limit).
    pub(crate) timer: Option<TimerId>,
    /// Cancelled by the admin while a worker ran it: its clients were told WORK_FAIL, and
    /// it lives on only until the worker reports or lets go of it, then ends silently.
    pub(crate) cancelled: bool,
    pub(crate) numerator: u32,
    pub(crate) denominator: u32,
    pub(crate) durable_id: Option<u64>,
    /// WORK_FAIL/WORK_EXCEPTION reports retried under a `--retry` policy so far.
    pub(crate) failures: u32,
    /// When it last entered its queue (for the queue-wait histogram).
    pub(crate) queued_at: Option<Instant>,
    /// When its current worker got it (for the run-time histogram).
    pub(crate) assigned_at: Option<Instant>,
}

impl Job {
    pub(crate) fn is_running(&self) -> bool {
        matches!(self.state, JobState::Running { .. })
    }

    /// Nobody will hear its result (cancelled, or every foreground client left while a
    /// worker runs it): `show jobs` prints IGNORE=1, and it ends instead of being retried.
    pub(crate) fn is_ignored(&self) -> bool {
        self.cancelled || (!self.background && self.listeners.is_empty())
    }
}
