//! Worker requests: abilities, sleeping and waking, grabbing jobs, and their results.

use super::job::JobState;
use super::timers::TimerKind;
use super::{ConnId, Server};
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

    pub(super) fn is_final(self) -> bool {
        matches!(self, Report::Complete | Report::Fail | Report::Exception)
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
        let Some(c) = self.conns.get_mut(&conn) else {
            return;
        };
        let first = match c.ability(&function) {
            Some(i) => {
                if let (Some(a), Some(r)) = (c.abilities.get_mut(i), c.registrations.get_mut(i)) {
                    a.1 = timeout;
                    *r += 1;
                }
                false
            }
            None => {
                c.abilities.push((function.clone(), timeout));
                c.registrations.push(1);
                true
            }
        };
        let f = self.function_mut(&function);
        f.registrations += 1;
        if first {
            f.capable.push(conn);
        }
        // A sleeping worker that learns a function with work waiting must not stay asleep.
        if f.queued_total() > 0 {
            self.wake(conn);
        }
    }

    pub(super) fn cant_do(&mut self, conn: ConnId, function: &Bytes, now: Instant) {
        let Some(c) = self.conns.get_mut(&conn) else {
            return;
        };
        let Some(i) = c.ability(function) else { return };
        c.abilities.remove(i);
        let count = if i < c.registrations.len() {
            c.registrations.remove(i)
        } else {
            0
        };
        let mut held: Vec<u64> = c.running.clone();
        held.sort_unstable(); // requeue in arrival order, as on disconnect
        if let Some(f) = self.functions.get_mut(function) {
            f.registrations = f.registrations.saturating_sub(count);
            f.capable.retain(|&w| w != conn);
        }
        for job in held {
            if self.jobs.get(&job).is_some_and(|j| j.function == *function) {
                self.take_from_worker(conn, job);
                self.retry_or_fail(job, now);
            }
        }
    }

    pub(super) fn pre_sleep(&mut self, conn: ConnId) {
        let runnable = self.has_runnable(conn);
        let Some(c) = self.conns.get_mut(&conn) else {
            return;
        };
        c.sleeping = true;
        c.noop_sent = false;
        if runnable {
            self.wake(conn);
        }
    }

    pub(super) fn has_runnable(&self, conn: ConnId) -> bool {
        self.conns.get(&conn).is_some_and(|c| {
            c.abilities
                .iter()
                .any(|(f, _)| self.functions.get(f).is_some_and(|f| f.queued_total() > 0))
        })
    }

    /// Sends NOOP to a sleeping worker that has not had one since it last grabbed.
    pub(super) fn wake(&mut self, conn: ConnId) {
        let Some(c) = self.conns.get_mut(&conn) else {
            return;
        };
        if c.sleeping && !c.noop_sent {
            c.noop_sent = true;
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
        let Some(f) = self.functions.get(function) else {
            return;
        };
        let n = f.capable.len();
        let start = f.wake_cursor;
        let mut woken = 0;
        let mut next_cursor = start;
        for k in 0..n {
            let idx = (start + k) % n;
            let Some(&worker) = self
                .functions
                .get(function)
                .and_then(|f| f.capable.get(idx))
            else {
                break;
            };
            let asleep = self
                .conns
                .get(&worker)
                .is_some_and(|c| c.sleeping && !c.noop_sent);
            if asleep {
                self.wake(worker);
                woken += 1;
                next_cursor = idx + 1;
                if woken >= limit {
                    break;
                }
            }
        }
        if let Some(f) = self.functions.get_mut(function) {
            f.wake_cursor = if n == 0 { 0 } else { next_cursor % n };
        }
    }

    pub(super) fn grab(&mut self, conn: ConnId, mode: GrabMode, now: Instant) {
        let Some(c) = self.conns.get_mut(&conn) else {
            return;
        };
        c.sleeping = false;
        c.noop_sent = false;
        match self.pick_job(conn) {
            Some(job) => self.assign(conn, job, mode, now),
            None => self.send(conn, Response::NoJob),
        }
    }

    /// Priority is global across the worker's functions; within a priority, functions take
    /// turns starting after the one served last.
    pub(super) fn pick_job(&mut self, conn: ConnId) -> Option<u64> {
        let c = self.conns.get(&conn)?;
        let (n, start) = (c.abilities.len(), c.rr_cursor);
        for priority in Priority::ALL {
            for k in 0..n {
                let idx = (start + k) % n;
                let name = match self.conns.get(&conn).and_then(|c| c.abilities.get(idx)) {
                    Some((name, _)) => name.clone(),
                    None => continue,
                };
                let jobs = &self.jobs;
                let Some(f) = self.functions.get_mut(&name) else {
                    continue;
                };
                if f.queued(priority) == 0 {
                    continue;
                }
                let is_live = |id: u64| jobs.get(&id).is_some_and(|j| j.state == JobState::Queued);
                if let Some(job) = f.pop(priority, is_live) {
                    if let Some(c) = self.conns.get_mut(&conn) {
                        c.rr_cursor = idx + 1;
                    }
                    return Some(job);
                }
            }
        }
        None
    }

    pub(super) fn assign(&mut self, conn: ConnId, id: u64, mode: GrabMode, now: Instant) {
        let Some(job) = self.jobs.get_mut(&id) else {
            return;
        };
        job.state = JobState::Running { worker: conn };
        job.assigned_at = Some(now);
        if let Some(at) = job.queued_at.take() {
            let waited = now.saturating_duration_since(at);
            self.stats
                .function(&job.function)
                .queue_wait
                .observe(waited);
        }
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
        let function = job.function.clone();
        if let Some(f) = self.functions.get_mut(&function) {
            f.running += 1;
        }
        let timeout = self.conns.get_mut(&conn).and_then(|c| {
            c.running.push(id);
            c.ability(&function)
                .and_then(|i| c.abilities.get(i))
                .and_then(|a| a.1)
        });
        if let Some(at) = timeout.and_then(|t| now.checked_add(t)) {
            let timer = self.timers.arm(at, TimerKind::RunTimeout { job: id });
            if let Some(job) = self.jobs.get_mut(&id) {
                job.timer = Some(timer);
            }
        }
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
        let held = self.by_handle.get(&handle).copied().filter(|id| {
            self.jobs
                .get(id)
                .is_some_and(|j| j.state == JobState::Running { worker: conn })
        });
        let Some(id) = held else {
            self.send(
                conn,
                Response::error("JOB_NOT_FOUND", kind.not_found_text()),
            );
            return;
        };
        let listeners = match self.jobs.get_mut(&id) {
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
                    if self.conns.get(&listener).is_some_and(|c| c.exceptions) {
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
        if kind.is_final() {
            if let Some(job) = self.jobs.get(&id) {
                let ran = job.assigned_at.map(|at| now.saturating_duration_since(at));
                let s = self.stats.function(&job.function);
                match kind {
                    Report::Complete => s.completed += 1,
                    Report::Exception => s.exceptions += 1,
                    _ => s.failed += 1,
                }
                if let Some(ran) = ran {
                    s.run_time.observe(ran);
                }
            }
            self.take_from_worker(conn, id);
            let failure = match kind {
                Report::Fail => Some(super::Failure::Fail),
                Report::Exception => Some(super::Failure::Exception),
                _ => None,
            };
            let outcome = match kind {
                Report::Complete => super::Outcome::Complete,
                Report::Fail => super::Outcome::Fail,
                _ => super::Outcome::Exception,
            };
            let kept = self
                .jobs
                .get(&id)
                .filter(|j| j.background && !j.cancelled)
                .map(|j| (j.function.clone(), j.unique.clone()));
            let policy = kept
                .as_ref()
                .is_some_and(|(f, _)| failure.is_some() && self.config.retry.contains_key(f));
            match (failure, kept) {
                (Some(f), Some((function, unique))) if policy => {
                    self.fail_with_policy(id, f, data.clone(), now);
                    // A failure retried later is not the job's end; one that dead-letters is.
                    if !self.jobs.contains_key(&id) {
                        self.keep_result(handle, function, unique, outcome, data, now);
                    }
                }
                (failure, kept) => {
                    // Kept before the job's row goes, so a crash between the two store
                    // writes runs the job again rather than losing its result.
                    if let Some((function, unique)) = kept {
                        self.keep_result(handle, function, unique, outcome, data.clone(), now);
                    }
                    let retried = failure.is_some_and(|f| self.fail_with_policy(id, f, data, now));
                    if !retried {
                        self.finish(id, now);
                    }
                }
            }
        }
    }
}
