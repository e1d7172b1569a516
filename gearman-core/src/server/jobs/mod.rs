//! The job state: every job, function queue, unique index, timer, store write, retry, dead
//! letter, schedule and kept result, with no connection in sight.
//!
//! Every job changes phase through one function, [`JobState::transition`], which keeps the
//! function counts, timers, queue membership, store events and counters in step. What a
//! change means for connections (a worker now holds a job or no longer does, a client no
//! longer watches one, a function has work to wake workers for) is noted as an [`Effect`]
//! that the server applies to its sessions after each call; store writes are
//! [`ServerEvent`]s the adapter polls.
//!
//! Sized for millions of queued jobs: jobs live in a dense table found by number
//! ([`table`]), a handle is `PREFIX:N` parsed back to the number rather than a map key,
//! functions are interned, and the unique index holds bare job ids.

mod attempts;
mod function;
mod ids;
mod job;
pub mod kept;
mod lifecycle;
mod persist;
mod restore;
pub mod retry;
pub mod schedule;
mod table;
mod timers;
mod uniques;

pub(crate) use function::{Function, Functions};
pub(crate) use ids::{FunctionId, JobId};
pub(crate) use job::{Job, KeyKind, Phase};
pub(crate) use lifecycle::Target;
pub(crate) use persist::PendingWrite;
pub(crate) use timers::{TimerId, TimerKind};

use super::stats::{FunctionStats, Stats};
use super::{ConnId, DeadLetter, Outcome, Schedule, ServerConfig, ServerEvent};
use crate::proto::Priority;
use crate::server::id_map::IdMap;
use bytes::Bytes;
use job::NewJob;
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
        function: FunctionId,
    },
}

/// Every job and what hangs off jobs; single-owner, no locks, no I/O, no clock.
#[derive(Debug)]
pub(crate) struct JobState {
    pub(crate) jobs: table::JobTable,
    /// The jobs that coalesce, found by function and key, or by unique id alone.
    uniques: uniques::UniqueIndex,
    /// Handles are `prefix:N`, N = `first_handle` + the job number.
    prefix: Bytes,
    first_handle: u64,
    /// The instant job timestamps count from.
    start: Instant,
    pub(crate) functions: Functions,
    /// `maxqueue` limits, also for functions not seen yet.
    pub(crate) max_queue: HashMap<Bytes, [u32; 3]>,
    pub(crate) timers: timers::Timers,
    /// The next key for a store row or extra record.
    pub(crate) next_durable: u64,
    /// Store writes not answered yet, by durable id. An entry outlives its job: it holds
    /// JOB_CREATED replies that only the store's answer may resolve.
    pub(crate) persisting: IdMap<u64, PendingWrite>,
    /// Background jobs out of retries, by key (durable id).
    pub(crate) dead: BTreeMap<u64, DeadLetter>,
    /// Dead letters re-queued, by the new job's durable id, until the store holds it.
    dead_retrying: IdMap<u64, (u64, DeadLetter)>,
    /// SUBMIT_JOB_SCHED schedules, by key (durable id).
    pub(crate) schedules: BTreeMap<u64, Schedule>,
    /// Schedules waiting for the store before their JOB_CREATED, by key.
    pub(crate) schedules_persisting: IdMap<u64, schedule::PendingSchedule>,
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
    /// No jobs; handles as `config` says, timestamps from `now`.
    pub(crate) fn new(config: &ServerConfig, now: Instant) -> JobState {
        JobState {
            jobs: table::JobTable::new(),
            uniques: uniques::UniqueIndex::default(),
            prefix: Bytes::copy_from_slice(config.handle_prefix.as_bytes()),
            first_handle: config.first_handle,
            start: now,
            functions: Functions::default(),
            max_queue: HashMap::new(),
            timers: timers::Timers::default(),
            next_durable: 1,
            persisting: IdMap::default(),
            dead: BTreeMap::new(),
            dead_retrying: IdMap::default(),
            schedules: BTreeMap::new(),
            schedules_persisting: IdMap::default(),
            schedule_due: BTreeSet::new(),
            kept: kept::Kept::default(),
            stats: Stats::default(),
            events: VecDeque::new(),
            effects: Vec::new(),
        }
    }

    pub(crate) fn job(&self, id: JobId) -> Option<&Job> {
        self.jobs.get(id)
    }

    /// For fields outside the lifecycle (progress, listeners, background); the phase is
    /// private to [`JobState::transition`].
    pub(crate) fn job_mut(&mut self, id: JobId) -> Option<&mut Job> {
        self.jobs.get_mut(id)
    }

    /// The job's handle, `PREFIX:N`.
    pub(crate) fn handle(&self, id: JobId) -> Bytes {
        let mut h = Vec::new();
        self.write_handle(id, &mut h);
        Bytes::from(h)
    }

    /// Writes the job's handle, `PREFIX:N`, into `out` (cleared first). An empty `out` gets
    /// exactly the room it needs, so that `Bytes` takes it as it is (no second allocation).
    pub(crate) fn write_handle(&self, id: JobId, out: &mut Vec<u8>) {
        let mut number = itoa::Buffer::new();
        let digits = number.format(self.handle_number(id)).as_bytes();
        out.clear();
        out.reserve_exact(self.prefix.len() + 1 + digits.len());
        out.extend_from_slice(&self.prefix);
        out.push(b':');
        out.extend_from_slice(digits);
    }

    fn handle_number(&self, id: JobId) -> u64 {
        self.first_handle.wrapping_add(id.0)
    }

    /// The live job `handle` names: `PREFIX:N` exactly as [`JobState::handle`] writes it
    /// (no sign, no leading zero); anything else names no job.
    pub(crate) fn find_handle(&self, handle: &[u8]) -> Option<JobId> {
        let digits = handle.strip_prefix(&self.prefix[..])?.strip_prefix(b":")?;
        let canonical = match digits {
            [] => false,
            [b'0', _, ..] => false,
            _ => digits.len() <= 20 && digits.iter().all(u8::is_ascii_digit),
        };
        if !canonical {
            return None;
        }
        let n: u64 = std::str::from_utf8(digits).ok()?.parse().ok()?;
        let id = JobId(n.wrapping_sub(self.first_handle));
        self.jobs.contains(id).then_some(id)
    }

    /// The job of `function` that coalesces on `key`.
    pub(crate) fn by_unique(
        &self,
        function: FunctionId,
        kind: KeyKind,
        key: &[u8],
    ) -> Option<JobId> {
        self.uniques.find(&self.jobs, function, kind, key)
    }

    /// The job with unique id `unique` (sent as is, not `-`) in any function; of several,
    /// the one whose function name sorts first (what a scan of the functions by name finds).
    pub(crate) fn by_unique_any_function(&self, unique: &[u8]) -> Option<JobId> {
        self.uniques
            .holders(&self.jobs, unique)
            .filter_map(|id| {
                let job = self.jobs.get(id)?;
                Some((self.functions.get(job.function).map(|f| &f.name), id))
            })
            .min_by(|a, b| a.0.cmp(&b.0))
            .map(|(_, id)| id)
    }

    /// [`JobState::by_unique`] by the function's name and a submission's unique and data.
    pub(crate) fn find_unique(&self, function: &[u8], unique: &[u8], data: &[u8]) -> Option<JobId> {
        let kind = KeyKind::of(unique, data)?;
        let function = self.functions.id(function)?;
        self.by_unique(function, kind, kind.bytes(unique, data))
    }

    /// Adds job `id` (with its key set) to the unique index.
    fn index_unique(&mut self, id: JobId) {
        self.uniques.insert(&self.jobs, id);
    }

    /// Takes job `id` out of the unique index (it keeps its bytes, and stops coalescing).
    fn unindex_unique(&mut self, id: JobId) {
        self.uniques.remove(&self.jobs, id);
        if let Some(job) = self.jobs.get_mut(id) {
            job.key = None;
        }
    }

    /// Jobs in the unique index (for invariant checks).
    pub(crate) fn unique_ids(&self) -> impl Iterator<Item = JobId> + '_ {
        self.uniques.ids()
    }

    /// The jobs holding unique id `unique` in any function (for invariant checks).
    pub(crate) fn unique_holders(&self, unique: &[u8]) -> impl Iterator<Item = JobId> + '_ {
        self.uniques.holders(&self.jobs, unique)
    }

    /// The unique index's chains are consistent (for invariant checks).
    pub(crate) fn check_unique_links(&self) -> Result<(), String> {
        self.uniques.check_links(&self.jobs)
    }

    pub(crate) fn function(&self, id: FunctionId) -> Option<&Function> {
        self.functions.get(id)
    }

    /// The function `name`, created if new.
    pub(crate) fn intern(&mut self, name: &[u8]) -> FunctionId {
        self.functions.intern(name)
    }

    /// Jobs currently held by workers.
    pub(crate) fn running_jobs(&self) -> usize {
        self.functions.iter().map(|(_, f)| f.running).sum()
    }

    /// Jobs waiting in queues (including epoch jobs not yet due and jobs being stored).
    pub(crate) fn queued_jobs(&self) -> usize {
        self.functions
            .iter()
            .map(|(_, f)| f.queued_total() + f.waiting)
            .sum()
    }

    /// Nanoseconds from the start to `now`: how jobs note when they entered a phase.
    pub(crate) fn stamp(&self, now: Instant) -> u64 {
        u64::try_from(now.saturating_duration_since(self.start).as_nanos()).unwrap_or(u64::MAX)
    }

    /// The time from stamp `since` to `now`.
    pub(crate) fn elapsed(&self, since: u64, now: Instant) -> Duration {
        Duration::from_nanos(self.stamp(now).saturating_sub(since))
    }

    /// A new job in phase [`Phase::New`] (indexed by its unique, if it coalesces); the
    /// caller places it with a transition before its call returns.
    pub(crate) fn create(
        &mut self,
        sub: Submission,
        key: Option<KeyKind>,
        durable_id: Option<u64>,
        now: Instant,
    ) -> JobId {
        let function = self.intern(&sub.function);
        let id = self.jobs.next_id();
        self.jobs.insert(Job::new(NewJob {
            id,
            function,
            unique: &sub.unique,
            data: &sub.data,
            priority: sub.priority,
            background: sub.background,
            epoch: sub.epoch,
            reducer: sub.reducer.as_deref(),
            key,
            durable_id,
            since: self.stamp(now),
        }));
        self.index_unique(id);
        self.function_stats(function).submitted += 1;
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
        Some(JobState::after(now, ahead))
    }

    /// `now + wait`; a wait beyond what `Instant` can hold is a century instead (never, for
    /// any real deployment), not an overflow or a deadline already past.
    pub(crate) fn after(now: Instant, wait: Duration) -> Instant {
        now.checked_add(wait)
            .or_else(|| now.checked_add(FAR_FUTURE))
            .unwrap_or(now)
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
    pub(crate) fn pop_due_timer(&mut self, now: Instant) -> Option<(TimerId, JobId, TimerKind)> {
        self.timers.pop_due(now)
    }

    /// Runs the schedule firings and kept-result expiries due at `now` (job timers are the
    /// server's, since they involve workers and clients).
    pub(crate) fn run_due(&mut self, config: &ServerConfig, now: Instant) {
        self.fire_schedules(config, now);
        self.expire_kept(config, now);
    }

    /// One more CAN_DO of `function`; returns whether it has queued work.
    pub(crate) fn register(&mut self, function: FunctionId) -> bool {
        self.functions.get_mut(function).is_some_and(|f| {
            f.registrations += 1;
            f.queued_total() > 0
        })
    }

    /// `count` CAN_DOs of `function` withdrawn.
    pub(crate) fn unregister(&mut self, function: FunctionId, count: usize) {
        if let Some(f) = self.functions.get_mut(function) {
            f.registrations = f.registrations.saturating_sub(count);
        }
    }

    /// The oldest queued job of `function` at `priority`, left in place.
    pub(crate) fn peek_queued(
        &mut self,
        function: FunctionId,
        priority: Priority,
    ) -> Option<JobId> {
        let jobs = &self.jobs;
        let f = self.functions.get_mut(function)?;
        if f.queued(priority) == 0 {
            return None;
        }
        f.peek(priority, |id| {
            jobs.get(id).is_some_and(|j| j.phase == Phase::Queued)
        })
    }

    /// The counters of function `id`.
    pub(crate) fn function_stats(&mut self, id: FunctionId) -> &mut FunctionStats {
        let Some(f) = self.functions.get_mut(id) else {
            return self.stats.function(b"");
        };
        let slot = match f.stats_slot {
            Some(slot) => slot,
            None => *f.stats_slot.insert(self.stats.slot(&f.name)),
        };
        self.stats.at(slot)
    }

    /// Counts a worker's final report on job `id`, and how long it ran.
    pub(crate) fn count_outcome(&mut self, id: JobId, outcome: Outcome, now: Instant) {
        let Some(job) = self.jobs.get(id) else {
            return;
        };
        let ran = self.elapsed(job.since, now);
        let function = job.function;
        let s = self.function_stats(function);
        match outcome {
            Outcome::Complete => s.completed += 1,
            Outcome::Exception => s.exceptions += 1,
            Outcome::Fail => s.failed += 1,
        }
        s.run_time.observe(ran);
    }

    /// `maxqueue`: sets (or, with all zero, clears) the limits of `function`.
    pub(crate) fn set_max_queue(&mut self, function: Bytes, limits: [u32; 3]) {
        if let Some(f) = self
            .functions
            .id(&function)
            .and_then(|id| self.functions.get_mut(id))
        {
            f.over_limit_grace = f.total();
        }
        if limits == [0; 3] {
            self.max_queue.remove(&function);
        } else {
            self.max_queue.insert(function, limits);
        }
    }

    /// Whether `maxqueue` refuses one more job of `function` at `priority`.
    pub(crate) fn queue_full(&self, function: &[u8], priority: Priority) -> bool {
        let Some(limit) = self.max_queue.get(function) else {
            return false;
        };
        let max = limit.get(priority.index()).copied().unwrap_or(0) as usize;
        let total = self
            .functions
            .id(function)
            .and_then(|id| self.functions.get(id))
            .map_or(0, Function::total);
        max > 0 && total >= max
    }

    /// `drop function`: false while anything still depends on it (workers, any job).
    pub(crate) fn drop_function(&mut self, function: FunctionId) -> bool {
        let busy = self
            .functions
            .get(function)
            .is_some_and(|f| f.registrations > 0 || f.total() > 0);
        if !busy {
            self.functions.remove(function);
        }
        !busy
    }
}
