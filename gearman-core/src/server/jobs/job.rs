//! One job as the job state holds it, and the phases of its life.
//!
//! A queued job is what a server holds millions of, so it is kept small
//! (`size_of::<Job>()` is checked by a test): its unique id and workload share one
//! allocation of their own (never a slice of a read buffer), its function is an index, its
//! handle is derived from its number, and what few jobs have (a reducer, an epoch, a timer,
//! progress, retry failures) sits behind one optional box.

use super::ids::{FunctionId, JobId};
use super::timers::TimerId;
use crate::proto::Priority;
use crate::server::ConnId;
use bytes::Bytes;
use std::num::NonZeroU64;

/// What a submission coalesces on within its function, when it coalesces at all.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub(crate) enum KeyKind {
    /// The unique id as sent.
    Unique,
    /// Unique `-` with a non-empty workload: coalesce on the workload bytes.
    Data,
}

impl KeyKind {
    /// `None` for an empty unique (never coalesced) and for `-` with empty data.
    pub(crate) fn of(unique: &[u8], data: &[u8]) -> Option<KeyKind> {
        match unique {
            b"" => None,
            b"-" if data.is_empty() => None,
            b"-" => Some(KeyKind::Data),
            _ => Some(KeyKind::Unique),
        }
    }

    /// The bytes a job with this key coalesces on.
    pub(crate) fn bytes<'a>(self, unique: &'a [u8], data: &'a [u8]) -> &'a [u8] {
        match self {
            KeyKind::Unique => unique,
            KeyKind::Data => data,
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
    Scheduled,
    /// In its function's queue.
    Queued,
    /// Held by a worker (also once cancelled: it stays with the worker until it reports).
    Running {
        /// The worker's connection.
        worker: ConnId,
    },
}

/// The foreground submissions attached to a job, one entry each: mostly none (background)
/// or one, so those two take no allocation.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(crate) enum Listeners {
    #[default]
    None,
    One(ConnId),
    /// Boxed so the whole stays two words (a `Vec` is three), as every job carries one.
    #[allow(clippy::box_collection)]
    Many(Box<Vec<ConnId>>),
}

impl Listeners {
    pub(crate) fn as_slice(&self) -> &[ConnId] {
        match self {
            Listeners::None => &[],
            Listeners::One(c) => std::slice::from_ref(c),
            Listeners::Many(v) => v,
        }
    }

    pub(crate) fn iter(&self) -> std::slice::Iter<'_, ConnId> {
        self.as_slice().iter()
    }

    pub(crate) fn len(&self) -> usize {
        self.as_slice().len()
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.as_slice().is_empty()
    }

    pub(crate) fn contains(&self, conn: &ConnId) -> bool {
        self.as_slice().contains(conn)
    }

    pub(crate) fn to_vec(&self) -> Vec<ConnId> {
        self.as_slice().to_vec()
    }

    pub(crate) fn push(&mut self, conn: ConnId) {
        *self = match std::mem::take(self) {
            Listeners::None => Listeners::One(conn),
            Listeners::One(first) => Listeners::Many(Box::new(vec![first, conn])),
            Listeners::Many(mut v) => {
                v.push(conn);
                Listeners::Many(v)
            }
        };
    }

    /// Keeps the entries `keep` accepts.
    pub(crate) fn retain(&mut self, mut keep: impl FnMut(&ConnId) -> bool) {
        match self {
            Listeners::None => {}
            Listeners::One(c) => {
                if !keep(c) {
                    *self = Listeners::None;
                }
            }
            Listeners::Many(v) => {
                v.retain(keep);
                if v.len() < 2 {
                    *self = Listeners::from_vec(std::mem::take(&mut **v));
                }
            }
        }
    }

    /// The connections, taken without allocating (none or one is the usual case, on every
    /// job's end).
    pub(crate) fn into_conns(self) -> impl Iterator<Item = ConnId> {
        let (one, many) = match self {
            Listeners::None => (None, Vec::new()),
            Listeners::One(c) => (Some(c), Vec::new()),
            Listeners::Many(v) => (None, *v),
        };
        one.into_iter().chain(many)
    }

    fn from_vec(v: Vec<ConnId>) -> Listeners {
        match v.as_slice() {
            [] => Listeners::None,
            [c] => Listeners::One(*c),
            _ => Listeners::Many(Box::new(v)),
        }
    }
}

/// What few jobs have, out of the way of the many that do not.
#[derive(Debug, Default)]
pub(crate) struct JobExtra {
    reducer: Option<Bytes>,
    epoch: Option<i64>,
    /// The deadline of the phase's timer (due time while scheduled, run-time limit while
    /// running).
    timer: Option<TimerId>,
    numerator: u32,
    denominator: u32,
    /// WORK_FAIL/WORK_EXCEPTION reports retried under a `--retry` policy so far.
    failures: u32,
}

/// A job: what was submitted, and where it is.
#[derive(Debug)]
pub(crate) struct Job {
    pub(crate) id: JobId,
    /// The unique id, then the workload.
    payload: Bytes,
    unique_len: u32,
    pub(crate) function: FunctionId,
    /// Private to the lifecycle: read it with [`Job::phase`].
    pub(super) phase: Phase,
    /// One entry per foreground submission still attached.
    pub(crate) listeners: Listeners,
    durable_id: Option<NonZeroU64>,
    /// When it entered its phase while queued or running, in nanoseconds after the job
    /// state's start (for the queue-wait and run-time histograms).
    pub(super) since: u64,
    extra: Option<Box<JobExtra>>,
    /// Times a worker lost it (vanished, CANT_DO, timeout), for `job_retries`.
    pub(crate) retries: u32,
    pub(crate) priority: Priority,
    /// Some submission was background, so the job outlives its foreground clients.
    pub(crate) background: bool,
    /// Cancelled by the admin while a worker ran it: its clients were told WORK_FAIL, and
    /// it lives on only until the worker reports or lets go of it, then ends silently.
    pub(crate) cancelled: bool,
    /// What it is found by in the unique index, while it is there.
    pub(super) key: Option<KeyKind>,
}

/// What a new job is made of.
pub(crate) struct NewJob<'a> {
    pub(crate) id: JobId,
    pub(crate) function: FunctionId,
    pub(crate) unique: &'a [u8],
    pub(crate) data: &'a [u8],
    pub(crate) priority: Priority,
    pub(crate) background: bool,
    pub(crate) epoch: Option<i64>,
    pub(crate) reducer: Option<&'a [u8]>,
    pub(crate) key: Option<KeyKind>,
    pub(crate) durable_id: Option<u64>,
    pub(crate) since: u64,
}

impl Job {
    /// A job in phase [`Phase::New`], owning copies of the bytes it was given.
    pub(crate) fn new(n: NewJob<'_>) -> Job {
        let mut payload = Vec::with_capacity(n.unique.len() + n.data.len());
        payload.extend_from_slice(n.unique);
        payload.extend_from_slice(n.data);
        let mut job = Job {
            id: n.id,
            payload: Bytes::from(payload),
            unique_len: u32::try_from(n.unique.len()).unwrap_or(u32::MAX),
            function: n.function,
            phase: Phase::New,
            listeners: Listeners::None,
            durable_id: None,
            since: n.since,
            extra: None,
            retries: 0,
            priority: n.priority,
            background: n.background,
            cancelled: false,
            key: n.key,
        };
        job.set_durable_id(n.durable_id);
        if n.epoch.is_some() || n.reducer.is_some() {
            let extra = job.extra_mut();
            extra.epoch = n.epoch;
            extra.reducer = n.reducer.map(Bytes::copy_from_slice);
        }
        job
    }

    fn extra_mut(&mut self) -> &mut JobExtra {
        self.extra.get_or_insert_with(Box::default)
    }

    fn split(&self) -> usize {
        (self.unique_len as usize).min(self.payload.len())
    }

    /// The unique id as submitted.
    pub(crate) fn unique(&self) -> &[u8] {
        self.payload.get(..self.split()).unwrap_or_default()
    }

    /// The workload.
    pub(crate) fn data(&self) -> &[u8] {
        self.payload.get(self.split()..).unwrap_or_default()
    }

    /// The unique id, sharing the job's allocation.
    pub(crate) fn unique_bytes(&self) -> Bytes {
        self.payload.slice(..self.split())
    }

    /// The workload, sharing the job's allocation.
    pub(crate) fn data_bytes(&self) -> Bytes {
        self.payload.slice(self.split()..)
    }

    /// The bytes it is found by in the unique index, while it is there.
    pub(crate) fn key_bytes(&self) -> Option<(KeyKind, &[u8])> {
        self.key.map(|k| (k, k.bytes(self.unique(), self.data())))
    }

    pub(crate) fn reducer(&self) -> Option<&Bytes> {
        self.extra.as_ref().and_then(|e| e.reducer.as_ref())
    }

    pub(crate) fn epoch(&self) -> Option<i64> {
        self.extra.as_ref().and_then(|e| e.epoch)
    }

    /// Its store key, once a write was started for it.
    pub(crate) fn durable_id(&self) -> Option<u64> {
        self.durable_id.map(NonZeroU64::get)
    }

    /// Durable ids start at 1, so 0 is taken as none.
    pub(crate) fn set_durable_id(&mut self, id: Option<u64>) {
        self.durable_id = id.and_then(NonZeroU64::new);
    }

    /// Its phase's timer.
    pub(crate) fn timer(&self) -> Option<TimerId> {
        self.extra.as_ref().and_then(|e| e.timer)
    }

    pub(super) fn set_timer(&mut self, at: Option<TimerId>) {
        if at.is_some() || self.extra.is_some() {
            self.extra_mut().timer = at;
        }
    }

    /// WORK_STATUS progress while running.
    pub(crate) fn progress(&self) -> (u32, u32) {
        self.extra
            .as_ref()
            .map_or((0, 0), |e| (e.numerator, e.denominator))
    }

    pub(crate) fn set_progress(&mut self, numerator: u32, denominator: u32) {
        if numerator != 0 || denominator != 0 || self.extra.is_some() {
            let extra = self.extra_mut();
            extra.numerator = numerator;
            extra.denominator = denominator;
        }
    }

    /// WORK_FAIL/WORK_EXCEPTION reports retried under a `--retry` policy so far.
    pub(crate) fn failures(&self) -> u32 {
        self.extra.as_ref().map_or(0, |e| e.failures)
    }

    pub(crate) fn set_failures(&mut self, failures: u32) {
        if failures != 0 || self.extra.is_some() {
            self.extra_mut().failures = failures;
        }
    }

    /// Where it is.
    pub(crate) fn phase(&self) -> Phase {
        self.phase
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_job_is_small_and_owns_its_bytes() {
        // What a queued job costs beyond its bytes starts here (issue #11: at most 200 B
        // in all); the unique and workload share one allocation.
        assert!(
            std::mem::size_of::<Job>() <= 112,
            "{}",
            std::mem::size_of::<Job>()
        );
        let read_buffer = Bytes::from_static(b"uniqueworkload");
        let job = Job::new(NewJob {
            id: JobId(1),
            function: FunctionId(0),
            unique: &read_buffer[..6],
            data: &read_buffer[6..],
            priority: Priority::Normal,
            background: true,
            epoch: None,
            reducer: None,
            key: KeyKind::of(b"unique", b"workload"),
            durable_id: None,
            since: 0,
        });
        assert_eq!(
            (job.unique(), job.data()),
            (&b"unique"[..], &b"workload"[..])
        );
        assert_eq!(job.key_bytes(), Some((KeyKind::Unique, &b"unique"[..])));
        assert_ne!(job.data_bytes().as_ptr(), read_buffer[6..].as_ptr());
        assert!(job.extra.is_none(), "nothing optional was set");
    }
}
