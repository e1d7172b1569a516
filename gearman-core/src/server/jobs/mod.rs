//! The job state: every job, function queue, unique map, timer, store write, retry, dead
//! letter, schedule and kept result, with no connection in sight.
//!
//! Every job changes phase through one function, [`JobState::transition`], which keeps the
//! function counts, timers, queue membership, store events and counters in step. What a
//! change means for connections (a worker now holds a job or no longer does, a client no
//! longer watches one, a function has work to wake workers for) is noted as an [`Effect`]
//! that the server applies to its sessions after each call; store writes are
//! [`ServerEvent`]s the adapter polls.

mod function;
mod job;
pub mod kept;
mod lifecycle;
mod persist;
mod restore;
pub mod retry;
pub mod schedule;
mod timers;

pub(crate) use function::Function;
pub(crate) use job::{Job, JobId, Phase, UniqueKey};
pub(crate) use lifecycle::Target;
pub(crate) use persist::PendingWrite;
pub(crate) use timers::{TimerId, TimerKind};

use super::stats::Stats;
use super::{ConnId, DeadLetter, Outcome, Schedule, ServerConfig, ServerEvent};
use crate::proto::Priority;
use bytes::Bytes;
use std::collections::{BTreeMap, BTreeSet, HashMap, VecDeque};
use std::time::{Duration, Instant};

/// Where an epoch too far ahead for `Instant` is placed instead.
const FAR_FUTURE: Duration = Duration::from_secs(100 * 365 * 24 * 3600);

/// A submission, whatever packet (or schedule, dead letter, stored record) it came from.
pub(crate) struct Submission {
    pub(crate) function: Bytes,
    pub(crate) unique: Bytes,
    pub(crate) data: Bytes,
    pub(crate) priority: Priority,
    pub(crate) background: bool,
    pub(crate) epoch: Option<i64>,
    pub(crate) reducer: Option<Bytes>,
}

/// What a change of the job state means for connections; the server applies these.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Effect {
    /// `worker` now holds `job`.
    Held {
        /// The worker's connection.
        worker: ConnId,
        /// The job.
        job: JobId,
    },
    /// `worker` no longer holds `job`.
    Released {
        /// The worker's connection.
        worker: ConnId,
        /// The job.
        job: JobId,
    },
    /// One submission of `conn` no longer watches `job`.
    Unwatched {
        /// The client's connection.
        conn: ConnId,
        /// The job.
        job: JobId,
    },
    /// `function` has a newly queued job: wake sleeping workers that can do it.
    Runnable {
        /// The function.
        function: Bytes,
    },
}

/// Every job and what hangs off jobs; single-owner, no locks, no I/O, no clock.
#[derive(Debug)]
pub(crate) struct JobState {
    pub(crate) jobs: HashMap<JobId, Job>,
    next_job: u64,
    pub(crate) by_handle: HashMap<Bytes, JobId>,
    pub(crate) by_unique: HashMap<(Bytes, UniqueKey), JobId>,
    handle_counter: u64,
    /// Sorted so admin listings are stable.
    pub(crate) functions: BTreeMap<Bytes, Function>,
    /// `maxqueue` limits, also for functions not seen yet.
    pub(crate) max_queue: HashMap<Bytes, [u32; 3]>,
    pub(crate) timers: timers::Timers,
    /// The next key for a store row or extra record.
    pub(crate) next_durable: u64,
    /// Store writes not answered yet, by durable id. An entry outlives its job: it holds
    /// JOB_CREATED replies that only the store's answer may resolve.
    pub(crate) persisting: HashMap<u64, PendingWrite>,
    /// Background jobs out of retries, by key (durable id).
    pub(crate) dead: BTreeMap<u64, DeadLetter>,
    /// Dead letters re-queued, by the new job's durable id, until the store holds it.
    dead_retrying: HashMap<u64, (u64, DeadLetter)>,
    /// SUBMIT_JOB_SCHED schedules, by key (durable id).
    pub(crate) schedules: BTreeMap<u64, Schedule>,
    /// Schedules waiting for the store before their JOB_CREATED, by key.
    pub(crate) schedules_persisting: HashMap<u64, schedule::PendingSchedule>,
    /// Armed schedule firings in time order.
    schedule_due: BTreeSet<(Instant, u64)>,
    /// Results kept for ended background jobs (`keep_results`).
    pub(crate) kept: kept::Kept,
    /// Monitoring counters.
    pub(crate) stats: Stats,
    /// Store events for the adapter, in order.
    pub(crate) events: VecDeque<ServerEvent>,
    /// Effects on connections not yet applied by the server.
    pub(crate) effects: Vec<Effect>,
}

impl JobState {
    /// No jobs; handles count up from `first_handle`.
    pub(crate) fn new(first_handle: u64) -> JobState {
        JobState {
            jobs: HashMap::new(),
            next_job: 0,
            by_handle: HashMap::new(),
            by_unique: HashMap::new(),
            handle_counter: first_handle,
            functions: BTreeMap::new(),
            max_queue: HashMap::new(),
            timers: timers::Timers::default(),
            next_durable: 1,
            persisting: HashMap::new(),
            dead: BTreeMap::new(),
            dead_retrying: HashMap::new(),
            schedules: BTreeMap::new(),
            schedules_persisting: HashMap::new(),
            schedule_due: BTreeSet::new(),
            kept: kept::Kept::default(),
            stats: Stats::default(),
            events: VecDeque::new(),
            effects: Vec::new(),
        }
    }

    pub(crate) fn job(&self, id: JobId) -> Option<&Job> {
        self.jobs.get(&id)
    }

    /// For fields outside the lifecycle (progress, listeners, background); the phase is
    /// private to [`JobState::transition`].
    pub(crate) fn job_mut(&mut self, id: JobId) -> Option<&mut Job> {
        self.jobs.get_mut(&id)
    }

    pub(crate) fn by_handle(&self, handle: &[u8]) -> Option<JobId> {
        self.by_handle.get(handle).copied()
    }

    pub(crate) fn by_unique(&self, function: &Bytes, key: &UniqueKey) -> Option<JobId> {
        self.by_unique
            .get(&(function.clone(), key.clone()))
            .copied()
    }

    pub(crate) fn function(&self, name: &[u8]) -> Option<&Function> {
        self.functions.get(name)
    }

    /// The function, created if new.
    pub(crate) fn function_mut(&mut self, name: &Bytes) -> &mut Function {
        self.functions
            .entry(name.clone())
            .or_insert_with(|| Function::new(name.clone()))
    }

    /// Jobs currently held by workers.
    pub(crate) fn running_jobs(&self) -> usize {
        self.functions.values().map(|f| f.running).sum()
    }

    /// Jobs waiting in queues (including epoch jobs not yet due and jobs being stored).
    pub(crate) fn queued_jobs(&self) -> usize {
        self.functions
            .values()
            .map(|f| f.queued_total() + f.waiting)
            .sum()
    }

    /// A new job in phase [`Phase::New`]; the caller places it with a transition before
    /// its call returns.
    pub(crate) fn create(
        &mut self,
        config: &ServerConfig,
        sub: Submission,
        key: Option<UniqueKey>,
        durable_id: Option<u64>,
    ) -> JobId {
        self.handle_counter += 1;
        self.next_job += 1;
        let id = JobId(self.next_job);
        let handle = Bytes::from(format!("{}:{}", config.handle_prefix, self.handle_counter));
        if let Some(k) = &key {
            self.by_unique.insert((sub.function.clone(), k.clone()), id);
        }
        self.by_handle.insert(handle.clone(), id);
        self.function_mut(&sub.function);
        self.stats.function(&sub.function).submitted += 1;
        self.jobs.insert(id, Job::new(handle, sub, key, durable_id));
        id
    }

    /// The instant an epoch job becomes due, or `None` if it is due already.
    pub(crate) fn epoch_instant(
        config: &ServerConfig,
        epoch: i64,
        now: Instant,
    ) -> Option<Instant> {
        let (anchor, anchor_unix) = config.wall_anchor;
        let since_anchor = now.saturating_duration_since(anchor);
        let unix_now_ms = i128::from(anchor_unix) * 1000 + since_anchor.as_millis() as i128;
        let ahead_ms = i128::from(epoch) * 1000 - unix_now_ms;
        if ahead_ms <= 0 {
            return None;
        }
        // An epoch beyond what `Instant` can hold waits a century instead (never, for any
        // real deployment) rather than overflowing.
        let ahead = Duration::from_millis(u64::try_from(ahead_ms).unwrap_or(u64::MAX));
        now.checked_add(ahead)
            .or_else(|| now.checked_add(FAR_FUTURE))
    }

    /// Unix seconds at `now`, from the wall-clock anchor.
    pub(crate) fn unix_at(config: &ServerConfig, now: Instant) -> i64 {
        let (anchor, anchor_unix) = config.wall_anchor;
        let since = now.saturating_duration_since(anchor).as_secs();
        anchor_unix.saturating_add(i64::try_from(since).unwrap_or(i64::MAX))
    }

    /// The Unix second at `at`, rounded up: a stored due time is never before the
    /// instant it stands for.
    pub(crate) fn unix_at_ceil(config: &ServerConfig, at: Instant) -> i64 {
        let (anchor, anchor_unix) = config.wall_anchor;
        let since = at.saturating_duration_since(anchor);
        let secs = since.as_secs() + u64::from(since.subsec_nanos() > 0);
        anchor_unix.saturating_add(i64::try_from(secs).unwrap_or(i64::MAX))
    }

    /// A fresh key for a store row or extra record.
    pub(crate) fn next_key(&mut self) -> u64 {
        let key = self.next_durable;
        self.next_durable += 1;
        key
    }

    /// The next deadline of any timer: jobs, schedules, kept results.
    pub(crate) fn next_deadline(&self) -> Option<Instant> {
        [
            self.timers.next_deadline(),
            self.next_schedule_due(),
            self.kept.next_due(),
        ]
        .into_iter()
        .flatten()
        .min()
    }

    /// The next job timer due at `now`.
    pub(crate) fn pop_due_timer(&mut self, now: Instant) -> Option<(TimerId, TimerKind)> {
        self.timers.pop_due(now)
    }

    /// Runs the schedule firings and kept-result expiries due at `now` (job timers are the
    /// server's, since they involve workers and clients).
    pub(crate) fn run_due(&mut self, config: &ServerConfig, now: Instant) {
        self.fire_schedules(config, now);
        self.expire_kept(config, now);
    }

    /// One more CAN_DO of `function` by `conn` (`first`: its first of that function);
    /// returns whether the function has queued work.
    pub(crate) fn register(&mut self, function: &Bytes, conn: ConnId, first: bool) -> bool {
        let f = self.function_mut(function);
        f.registrations += 1;
        if first {
            f.capable.push(conn);
        }
        f.queued_total() > 0
    }

    /// `conn` can no longer do `function`: its `count` registrations go.
    pub(crate) fn unregister(&mut self, function: &[u8], conn: ConnId, count: usize) {
        if let Some(f) = self.functions.get_mut(function) {
            f.registrations = f.registrations.saturating_sub(count);
            f.capable.retain(|&w| w != conn);
        }
    }

    /// The oldest queued job of `function` at `priority`, left in place.
    pub(crate) fn peek_queued(&mut self, function: &[u8], priority: Priority) -> Option<JobId> {
        let jobs = &self.jobs;
        let f = self.functions.get_mut(function)?;
        if f.queued(priority) == 0 {
            return None;
        }
        f.peek(priority, |id| {
            jobs.get(&id).is_some_and(|j| j.phase == Phase::Queued)
        })
    }

    /// Counts a worker's final report on job `id`, and how long it ran.
    pub(crate) fn count_outcome(&mut self, id: JobId, outcome: Outcome, now: Instant) {
        let Some(job) = self.jobs.get(&id) else {
            return;
        };
        let ran = job.since.map(|at| now.saturating_duration_since(at));
        let s = self.stats.function(&job.function);
        match outcome {
            Outcome::Complete => s.completed += 1,
            Outcome::Exception => s.exceptions += 1,
            Outcome::Fail => s.failed += 1,
        }
        if let Some(ran) = ran {
            s.run_time.observe(ran);
        }
    }

    /// `maxqueue`: sets (or, with all zero, clears) the limits of `function`.
    pub(crate) fn set_max_queue(&mut self, function: Bytes, limits: [u32; 3]) {
        if let Some(f) = self.functions.get_mut(&function) {
            f.over_limit_grace = f.total();
        }
        if limits == [0; 3] {
            self.max_queue.remove(&function);
        } else {
            self.max_queue.insert(function, limits);
        }
    }

    /// Whether `maxqueue` refuses one more job of `function` at `priority`.
    pub(crate) fn queue_full(&self, function: &Bytes, priority: Priority) -> bool {
        let Some(limit) = self.max_queue.get(function) else {
            return false;
        };
        let max = limit.get(priority.index()).copied().unwrap_or(0) as usize;
        let total = self.functions.get(function).map_or(0, Function::total);
        max > 0 && total >= max
    }

    /// `drop function`: false while anything still depends on it (workers, any job).
    pub(crate) fn drop_function(&mut self, name: &Bytes) -> bool {
        let busy = self
            .functions
            .get(name)
            .is_some_and(|f| f.registrations > 0 || f.total() > 0);
        if !busy {
            self.functions.remove(name);
        }
        !busy
    }
}

impl Job {
    fn new(handle: Bytes, sub: Submission, key: Option<UniqueKey>, durable_id: Option<u64>) -> Job {
        Job {
            handle,
            function: sub.function,
            unique: sub.unique,
            unique_key: key,
            reducer: sub.reducer,
            data: sub.data,
            priority: sub.priority,
            background: sub.background,
            epoch: sub.epoch,
            phase: Phase::New,
            listeners: Vec::new(),
            retries: 0,
            timer: None,
            cancelled: false,
            numerator: 0,
            denominator: 0,
            durable_id,
            failures: 0,
            since: None,
        }
    }
}
