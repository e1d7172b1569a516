//! Worker requests: abilities, sleeping and waking, grabbing jobs, and their results.

use super::jobs::{JobId, JobState, Phase, Target};
use super::{ConnId, Failure, KeptResult, Outcome, Server};
use crate::proto::{
    AssignExtras, GrabMode, JobAssign, Priority, Response, WorkPayload, WorkStatus,
};
use bytes::Bytes;
use std::time::{Duration, Instant};

/// gearmand raises CAN_DO_TIMEOUT values below one second to one second.
pub(super) const MIN_RUN_TIMEOUT: Duration = Duration::from_millis(1000);

/// What a worker reports about a job it holds.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Report {
    Status,
    Data,
    Warning,
    Complete,
    Fail,
    Exception,
}

impl Report {
    /// gearmand's ERROR text when the job is not held by the reporting connection.
    pub(super) fn not_found_text(self) -> &'static str {
        match self {
            Report::Data | Report::Warning => "Job does not exist on server",
            Report::Status | Report::Complete | Report::Fail => {
                "Job given in work result not found"
            }
            Report::Exception => "An exception was received for a job that does not exist",
        }
    }
}

impl Server {
    pub(super) fn can_do(&mut self, conn: ConnId, function: Bytes, timeout: Option<Duration>) {
        if function.len() > self.config.limits.max_argument {
            self.send(
                conn,
                Response::error("ARGUMENT_TOO_LARGE", "Function name too large"),
            );
            return;
        }
        let Some(c) = self.conns.get_mut(conn) else {
            return;
        };
        let w = &mut c.worker;
        let first = match w.ability(&function) {
            Some(i) => {
                if let (Some(a), Some(r)) = (w.abilities.get_mut(i), w.registrations.get_mut(i)) {
                    a.1 = timeout;
                    *r += 1;
                }
                false
            }
            None => {
                w.abilities.push((function.clone(), timeout));
                w.registrations.push(1);
                true
            }
        };
        let has_work = self.jobs.register(&function, conn, first);
        // A sleeping worker that learns a function with work waiting must not stay asleep.
        if has_work {
            self.wake(conn);
        }
    }

    pub(super) fn cant_do(&mut self, conn: ConnId, function: &Bytes, now: Instant) {
        let Some(c) = self.conns.get_mut(conn) else {
            return;
        };
        let w = &mut c.worker;
        let Some(i) = w.ability(function) else { return };
        w.abilities.remove(i);
        let count = if i < w.registrations.len() {
            w.registrations.remove(i)
        } else {
            0
        };
        let mut held = w.running.clone();
        held.sort_unstable(); // requeue in arrival order, as on disconnect
        self.jobs.unregister(function, conn, count);
        for job in held {
            if self.jobs.job(job).is_some_and(|j| j.function == *function) {
                self.lose(job, now);
            }
        }
    }

    pub(super) fn pre_sleep(&mut self, conn: ConnId) {
        let runnable = self.has_runnable(conn);
        let Some(c) = self.conns.get_mut(conn) else {
            return;
        };
        c.worker.sleeping = true;
        c.worker.noop_sent = false;
        if runnable {
            self.wake(conn);
        }
    }

    fn has_runnable(&self, conn: ConnId) -> bool {
        self.conns.get(conn).is_some_and(|c| {
            c.worker
                .abilities
                .iter()
                .any(|(f, _)| self.jobs.function(f).is_some_and(|f| f.queued_total() > 0))
        })
    }

    /// Sends NOOP to a sleeping worker that has not had one since it last grabbed.
    pub(super) fn wake(&mut self, conn: ConnId) {
        let Some(c) = self.conns.get_mut(conn) else {
            return;
        };
        if c.worker.is_unwoken() {
            c.worker.noop_sent = true;
            self.send(conn, Response::Noop);
        }
    }

    /// Wakes sleeping workers for a newly runnable job of `function` (`worker_wakeup` of
    /// them, 0 = all, starting where the last round stopped).
    pub(super) fn wake_for(&mut self, function: &Bytes) {
        let limit = match self.config.worker_wakeup {
            0 => usize::MAX,
            n => n as usize,
        };
        let Some(f) = self.jobs.function(function) else {
            return;
        };
        let n = f.capable.len();
        let start = f.wake_cursor;
        let mut woken = 0;
        let mut next_cursor = start;
        for k in 0..n {
            let idx = (start + k) % n;
            let Some(&worker) = self
                .jobs
                .function(function)
                .and_then(|f| f.capable.get(idx))
            else {
                break;
            };
            let asleep = self
                .conns
                .get(worker)
                .is_some_and(|c| c.worker.is_unwoken());
            if asleep {
                self.wake(worker);
                woken += 1;
                next_cursor = idx + 1;
                if woken >= limit {
                    break;
                }
            }
        }
        if let Some(f) = self.jobs.functions.get_mut(function) {
            f.wake_cursor = if n == 0 { 0 } else { next_cursor % n };
        }
    }

    pub(super) fn grab(&mut self, conn: ConnId, mode: GrabMode, now: Instant) {
        let Some(c) = self.conns.get_mut(conn) else {
            return;
        };
        c.worker.sleeping = false;
        c.worker.noop_sent = false;
        match self.pick_job(conn) {
            Some(job) => self.assign(conn, job, mode, now),
            None => self.send(conn, Response::NoJob),
        }
    }

    /// Priority is global across the worker's functions; within a priority, functions take
    /// turns starting after the one served last.
    fn pick_job(&mut self, conn: ConnId) -> Option<JobId> {
        let c = self.conns.get(conn)?;
        let (n, start) = (c.worker.abilities.len(), c.worker.rr_cursor);
        for priority in Priority::ALL {
            for k in 0..n {
                let idx = (start + k) % n;
                let Some((name, _)) = c.worker.abilities.get(idx) else {
                    continue;
                };
                if let Some(job) = self.jobs.peek_queued(name, priority) {
                    if let Some(c) = self.conns.get_mut(conn) {
                        c.worker.rr_cursor = idx + 1;
                    }
                    return Some(job);
                }
            }
        }
        None
    }

    fn assign(&mut self, conn: ConnId, id: JobId, mode: GrabMode, now: Instant) {
        let Some(job) = self.jobs.job(id) else {
            return;
        };
        let timeout = self
            .conns
            .get(conn)
            .and_then(|c| c.worker.timeout(&job.function));
        self.move_job(
            id,
            Target::Running {
                worker: conn,
                timeout,
            },
            now,
        );
        let Some(job) = self.jobs.job(id) else {
            return;
        };
        let extras = match (mode, &job.reducer) {
            (GrabMode::Plain, _) => AssignExtras::Plain,
            (GrabMode::All, Some(reducer)) => AssignExtras::Reduce {
                unique: job.unique.clone(),
                reducer: reducer.clone(),
            },
            _ => AssignExtras::Unique(job.unique.clone()),
        };
        let packet = Response::JobAssign(JobAssign {
            handle: job.handle.clone(),
            function: job.function.clone(),
            extras,
            data: job.data.clone(),
        });
        self.send(conn, packet);
    }

    pub(super) fn report(
        &mut self,
        conn: ConnId,
        kind: Report,
        handle: Bytes,
        status: Option<WorkStatus>,
        data: Bytes,
        now: Instant,
    ) {
        let held = self.jobs.by_handle(&handle).filter(|&id| {
            self.jobs
                .job(id)
                .is_some_and(|j| j.phase() == Phase::Running { worker: conn })
        });
        let Some(id) = held else {
            self.send(
                conn,
                Response::error("JOB_NOT_FOUND", kind.not_found_text()),
            );
            return;
        };
        let listeners = match self.jobs.job_mut(id) {
            Some(job) => {
                if let Some(s) = &status {
                    job.numerator = s.numerator;
                    job.denominator = s.denominator;
                }
                job.listeners.clone()
            }
            None => return,
        };
        let payload = || WorkPayload {
            handle: handle.clone(),
            data: data.clone(),
        };
        for listener in listeners {
            let packet = match kind {
                Report::Status => match &status {
                    Some(s) => Response::WorkStatus(s.clone()),
                    None => continue,
                },
                Report::Data => Response::WorkData(payload()),
                Report::Warning => Response::WorkWarning(payload()),
                Report::Complete => Response::WorkComplete(payload()),
                Report::Fail => Response::WorkFail {
                    handle: handle.clone(),
                },
                Report::Exception => {
                    if self
                        .conns
                        .get(listener)
                        .is_some_and(|c| c.client.exceptions)
                    {
                        Response::WorkException(payload())
                    } else {
                        Response::WorkFail {
                            handle: handle.clone(),
                        }
                    }
                }
            };
            self.send(listener, packet);
        }
        let outcome = match kind {
            Report::Complete => Outcome::Complete,
            Report::Fail => Outcome::Fail,
            Report::Exception => Outcome::Exception,
            Report::Status | Report::Data | Report::Warning => return,
        };
        self.finish_reported(id, handle, outcome, data, now);
    }

    /// The worker's final report on job `id`: count it, keep its result if it is kept,
    /// then retry it under a `--retry` policy or end it.
    fn finish_reported(
        &mut self,
        id: JobId,
        handle: Bytes,
        outcome: Outcome,
        data: Bytes,
        now: Instant,
    ) {
        self.jobs.count_outcome(id, outcome, now);
        let failure = match outcome {
            Outcome::Complete => None,
            Outcome::Fail => Some(Failure::Fail),
            Outcome::Exception => Some(Failure::Exception),
        };
        let kept = self
            .jobs
            .job(id)
            .filter(|j| j.background && !j.cancelled)
            .map(|j| KeptResult {
                handle,
                function: j.function.clone(),
                unique: j.unique.clone(),
                outcome,
                data: data.clone(),
                finished_unix: JobState::unix_at(&self.config, now),
            });
        let policy = kept
            .as_ref()
            .is_some_and(|k| failure.is_some() && self.config.retry.contains_key(&k.function));
        let config = &self.config;
        match (failure, kept) {
            (Some(f), Some(kept)) if policy => {
                self.jobs.fail_with_policy(config, id, f, data, now);
                // A failure retried later is not the job's end; one that dead-letters is.
                if self.jobs.job(id).is_none() {
                    self.jobs.keep_result(config, kept, now);
                }
            }
            (failure, kept) => {
                // Kept before the job's row goes, so a crash between the two store
                // writes runs the job again rather than losing its result.
                if let Some(kept) = kept {
                    self.jobs.keep_result(config, kept, now);
                }
                let retried =
                    failure.is_some_and(|f| self.jobs.fail_with_policy(config, id, f, data, now));
                if !retried {
                    self.jobs.transition(config, id, Target::Ended, now);
                }
            }
        }
        self.apply_effects();
    }
}
