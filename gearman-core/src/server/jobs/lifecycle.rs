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

use super::retry::attempts_record;
use super::{Effect, Function, JobId, JobState, Phase, TimerKind};
use crate::server::{ConnId, ExtraKind, ServerConfig, ServerEvent};
use bytes::Bytes;
use std::collections::BTreeMap;
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
        let Some(job) = self.jobs.get(&id) else {
            return;
        };
        let from = job.phase;
        let target = match target {
            Target::Runnable => match job
                .epoch
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
        let Some(job) = self.jobs.get_mut(&id) else {
            return;
        };
        if let Some(timer) = job.timer.take() {
            self.timers.cancel(timer);
        }
        if let Phase::Running { .. } = from {
            // Progress resets as in gearmand.
            job.numerator = 0;
            job.denominator = 0;
        }
        let (name, priority) = (job.function.clone(), job.priority);
        let jobs = &self.jobs;
        let Some(f) = self.functions.get_mut(&name) else {
            return;
        };
        match from {
            Phase::New => {}
            Phase::Persisting | Phase::Scheduled(_) => f.waiting = f.waiting.saturating_sub(1),
            Phase::Queued => f.remove(priority, id, |other| {
                other != id && jobs.get(&other).is_some_and(|j| j.phase == Phase::Queued)
            }),
            Phase::Running { worker } => {
                f.running = f.running.saturating_sub(1);
                self.effects.push(Effect::Released { worker, job: id });
            }
        }
    }

    fn enter_persisting(&mut self, id: JobId) {
        let Some(job) = self.jobs.get_mut(&id) else {
            return;
        };
        job.phase = Phase::Persisting;
        function_entry(&mut self.functions, &job.function).waiting += 1;
        self.start_write(id);
    }

    fn enter_scheduled(&mut self, config: &ServerConfig, id: JobId, from: Phase, at: Instant) {
        let Some(job) = self.jobs.get_mut(&id) else {
            return;
        };
        job.phase = Phase::Scheduled(at);
        job.timer = Some(self.timers.arm(at, TimerKind::Due { job: id }));
        function_entry(&mut self.functions, &job.function).waiting += 1;
        if let Phase::Running { .. } = from {
            // A failed job backing off before its retry (see `retry`).
            self.stats.function(&job.function).backoff_retries += 1;
            if let (Some(d), true) = (job.durable_id, config.durable_extras) {
                let due = JobState::unix_at_ceil(config, at);
                self.events.push_back(ServerEvent::PutExtra {
                    record: attempts_record(d, job.failures, due),
                    acknowledge: false,
                });
            }
        }
    }

    fn enter_queued(&mut self, id: JobId, from: Phase, now: Instant) {
        let Some(job) = self.jobs.get_mut(&id) else {
            return;
        };
        job.phase = Phase::Queued;
        job.since = Some(now);
        function_entry(&mut self.functions, &job.function).push(job.priority, id);
        if let Phase::Running { .. } = from {
            self.stats.function(&job.function).retried += 1;
        }
        self.effects.push(Effect::Runnable {
            function: job.function.clone(),
        });
    }

    fn enter_running(
        &mut self,
        id: JobId,
        worker: ConnId,
        timeout: Option<Duration>,
        now: Instant,
    ) {
        let Some(job) = self.jobs.get_mut(&id) else {
            return;
        };
        job.phase = Phase::Running { worker };
        if let Some(queued) = job.since.replace(now) {
            let waited = now.saturating_duration_since(queued);
            self.stats
                .function(&job.function)
                .queue_wait
                .observe(waited);
        }
        function_entry(&mut self.functions, &job.function).running += 1;
        if let Some(at) = timeout.and_then(|t| now.checked_add(t)) {
            job.timer = Some(self.timers.arm(at, TimerKind::RunTimeout { job: id }));
        }
        self.effects.push(Effect::Held { worker, job: id });
    }

    /// Removes the job from every structure; deletes its store row and retry state.
    fn end(&mut self, config: &ServerConfig, id: JobId) {
        let Some(job) = self.jobs.remove(&id) else {
            return;
        };
        self.by_handle.remove(&job.handle);
        if let Some(key) = job.unique_key {
            let k = (job.function.clone(), key);
            if self.by_unique.get(&k) == Some(&id) {
                self.by_unique.remove(&k);
            }
        }
        if let Some(f) = self.functions.get_mut(&job.function) {
            f.over_limit_grace = f.over_limit_grace.min(f.total());
        }
        for conn in job.listeners {
            self.effects.push(Effect::Unwatched { conn, job: id });
        }
        if let (Some(d), true) = (job.durable_id, job.failures > 0) {
            if config.durable_extras {
                self.events.push_back(ServerEvent::DeleteExtra {
                    kind: ExtraKind::Attempts,
                    key: d,
                });
            }
        }
        if let Some(d) = job.durable_id {
            // A store write still pending keeps its entry: the store applies this remove
            // after the insert, and its answer resolves the JOB_CREATED replies held for it.
            self.events
                .push_back(ServerEvent::Unpersist { durable_id: d });
        }
    }

    /// A running job cancelled: it stays with its worker, silent, forgotten by its
    /// clients, its unique id and the store.
    fn cancel_running(&mut self, id: JobId) {
        let Some(job) = self.jobs.get_mut(&id).filter(|j| j.is_running()) else {
            return;
        };
        job.cancelled = true;
        for conn in std::mem::take(&mut job.listeners) {
            self.effects.push(Effect::Unwatched { conn, job: id });
        }
        if let Some(key) = job.unique_key.take() {
            let k = (job.function.clone(), key);
            if self.by_unique.get(&k) == Some(&id) {
                self.by_unique.remove(&k);
            }
        }
        if let Some(durable_id) = job.durable_id.take() {
            self.events.push_back(ServerEvent::Unpersist { durable_id });
        }
    }
}

/// The function `name`, created if a drop removed it meanwhile.
fn function_entry<'a>(
    functions: &'a mut BTreeMap<Bytes, Function>,
    name: &Bytes,
) -> &'a mut Function {
    functions
        .entry(name.clone())
        .or_insert_with(|| Function::new(name.clone()))
}
