//! The job lifecycle: the one function through which every job changes phase.
//!
//! ```text
//!   New ──► Persisting ──stored──► Runnable
//!   New ──► Runnable = Scheduled (epoch ahead) or Queued
//!   Scheduled ──due──► Queued ──grabbed──► Running ──lost, retries left──► Queued
//!                                          Running ──failed, backing off──► Scheduled
//!                                          Running ──cancelled──► Running (silent)
//!   any phase ──► Ended (removed)
//! ```
//!
//! Leaving a phase undoes what entering it did (function counts, the phase's timer, queue
//! membership, the worker's hold), so no other code touches those.

use super::attempts::attempts_record;
use super::{Effect, JobId, JobState, Phase, TimerKind};
use crate::server::{ConnId, ExtraKind, ServerConfig, ServerEvent};
use std::time::{Duration, Instant};

/// Where a transition takes a job.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Target {
    /// Waiting for the store's first write (a new background job with persistence on):
    /// the job gets a durable id and a [`ServerEvent::Persist`] goes out.
    Persisting,
    /// Queued, or scheduled for its epoch if that lies ahead.
    Runnable,
    /// Waiting until this instant (a retry backing off).
    Scheduled(Instant),
    /// At the back of its function's queue for its priority.
    Queued,
    /// Held by `worker`, with a run-time limit if `timeout` (CAN_DO_TIMEOUT).
    Running {
        /// The worker's connection.
        worker: ConnId,
        /// How long it may hold the job.
        timeout: Option<Duration>,
    },
    /// Cancelled by the admin while running: it stays with its worker, but its clients,
    /// unique id and store row go, and it is never run again.
    Cancelled,
    /// Gone: removed from every index, its store row and retry state deleted.
    Ended,
}

impl JobState {
    /// Moves job `id` to `target`. Every change of a job's phase goes through here.
    pub(crate) fn transition(
        &mut self,
        config: &ServerConfig,
        id: JobId,
        target: Target,
        now: Instant,
    ) {
        let Some(job) = self.jobs.get(id) else {
            return;
        };
        let from = job.phase;
        let target = match target {
            Target::Runnable => match job
                .epoch()
                .and_then(|t| JobState::epoch_instant(config, t, now))
            {
                Some(at) => Target::Scheduled(at),
                None => Target::Queued,
            },
            Target::Cancelled => return self.cancel_running(id),
            target => target,
        };
        self.leave(id, from);
        match target {
            Target::Persisting => self.enter_persisting(id),
            Target::Scheduled(at) => self.enter_scheduled(config, id, from, at),
            Target::Queued => self.enter_queued(id, from, now),
            Target::Running { worker, timeout } => self.enter_running(id, worker, timeout, now),
            Target::Ended => self.end(config, id),
            Target::Runnable | Target::Cancelled => {}
        }
    }

    /// Undoes what entering `from` did.
    fn leave(&mut self, id: JobId, from: Phase) {
        let Some(job) = self.jobs.get_mut(id) else {
            return;
        };
        if let Some(timer) = job.timer() {
            job.set_timer(None);
            self.timers.cancel(timer);
        }
        if let Phase::Running { .. } = from {
            // Progress resets as in gearmand.
            job.set_progress(0, 0);
        }
        let (function, priority) = (job.function, job.priority);
        match from {
            Phase::New => {}
            Phase::Persisting | Phase::Scheduled => {
                if let Some(f) = self.functions.get_mut(function) {
                    f.waiting = f.waiting.saturating_sub(1);
                }
            }
            Phase::Queued => {
                let jobs = &self.jobs;
                self.functions
                    .remove_queued(function, priority, id, |other| {
                        other != id && jobs.get(other).is_some_and(|j| j.phase == Phase::Queued)
                    });
            }
            Phase::Running { worker } => {
                if let Some(f) = self.functions.get_mut(function) {
                    f.running = f.running.saturating_sub(1);
                }
                self.effects.push(Effect::Released { worker, job: id });
            }
        }
    }

    fn enter_persisting(&mut self, id: JobId) {
        let Some(job) = self.jobs.get_mut(id) else {
            return;
        };
        job.phase = Phase::Persisting;
        let function = job.function;
        if let Some(f) = self.functions.get_mut(function) {
            f.waiting += 1;
        }
        self.start_write(id);
    }

    fn enter_scheduled(&mut self, config: &ServerConfig, id: JobId, from: Phase, at: Instant) {
        let Some(job) = self.jobs.get_mut(id) else {
            return;
        };
        job.phase = Phase::Scheduled;
        job.set_timer(Some(self.timers.arm(at, id, TimerKind::Due)));
        let (function, durable_id, failures) = (job.function, job.durable_id(), job.failures());
        if let Some(f) = self.functions.get_mut(function) {
            f.waiting += 1;
        }
        if let Phase::Running { .. } = from {
            // A failed job backing off before its retry (see `retry`).
            self.function_stats(function).backoff_retries += 1;
            if let (Some(d), true) = (durable_id, config.durable_extras) {
                let due = JobState::unix_at_ceil(config, at);
                self.events.push_back(ServerEvent::PutExtra {
                    record: attempts_record(d, failures, due),
                    acknowledge: false,
                });
            }
        }
    }

    fn enter_queued(&mut self, id: JobId, from: Phase, now: Instant) {
        let since = self.stamp(now);
        let Some(job) = self.jobs.get_mut(id) else {
            return;
        };
        job.phase = Phase::Queued;
        job.since = since;
        let (function, priority) = (job.function, job.priority);
        self.functions.push(function, priority, id);
        if let Phase::Running { .. } = from {
            self.function_stats(function).retried += 1;
        }
        self.effects.push(Effect::Runnable { function });
    }

    fn enter_running(
        &mut self,
        id: JobId,
        worker: ConnId,
        timeout: Option<Duration>,
        now: Instant,
    ) {
        let stamp = self.stamp(now);
        let Some(job) = self.jobs.get_mut(id) else {
            return;
        };
        job.phase = Phase::Running { worker };
        let waited = std::mem::replace(&mut job.since, stamp);
        if let Some(at) = timeout.and_then(|t| now.checked_add(t)) {
            job.set_timer(Some(self.timers.arm(at, id, TimerKind::RunTimeout)));
        }
        let function = job.function;
        if let Some(f) = self.functions.get_mut(function) {
            f.running += 1;
        }
        let wait = Duration::from_nanos(stamp.saturating_sub(waited));
        self.function_stats(function).queue_wait.observe(wait);
        self.effects.push(Effect::Held { worker, job: id });
    }

    /// Removes the job from every structure; deletes its store row and retry state.
    fn end(&mut self, config: &ServerConfig, id: JobId) {
        self.unindex_unique(id);
        let Some(job) = self.jobs.remove(id) else {
            return;
        };
        if let Some(f) = self.functions.get_mut(job.function) {
            f.over_limit_grace = f.over_limit_grace.min(f.total());
        }
        let (durable_id, failures) = (job.durable_id(), job.failures());
        for conn in job.listeners.into_conns() {
            self.effects.push(Effect::Unwatched { conn, job: id });
        }
        if let (Some(d), true) = (durable_id, failures > 0) {
            if config.durable_extras {
                self.events.push_back(ServerEvent::DeleteExtra {
                    kind: ExtraKind::Attempts,
                    key: d,
                });
            }
        }
        if let Some(d) = durable_id {
            // A store write still pending keeps its entry: the store applies this remove
            // after the insert, and its answer resolves the JOB_CREATED replies held for it.
            self.events
                .push_back(ServerEvent::Unpersist { durable_id: d });
        }
    }

    /// A running job cancelled: it stays with its worker, silent, forgotten by its
    /// clients, its unique id and the store.
    fn cancel_running(&mut self, id: JobId) {
        if !self.jobs.get(id).is_some_and(|j| j.is_running()) {
            return;
        }
        self.unindex_unique(id);
        let Some(job) = self.jobs.get_mut(id) else {
            return;
        };
        job.cancelled = true;
        let durable_id = job.durable_id();
        job.set_durable_id(None);
        for conn in std::mem::take(&mut job.listeners).into_conns() {
            self.effects.push(Effect::Unwatched { conn, job: id });
        }
        if let Some(durable_id) = durable_id {
            self.events.push_back(ServerEvent::Unpersist { durable_id });
        }
    }
}
