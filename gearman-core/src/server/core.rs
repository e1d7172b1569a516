//! Dispatch of every request to its one handler, output queueing, and the job lifecycle
//! shared by all roles: creating, queueing, scheduling, requeueing and finishing jobs.

use super::client::Submission;
use super::conn::Outbound;
use super::job::{Job, JobState, UniqueKey};
use super::session::Inbound;
use super::timers::{TimerId, TimerKind};
use super::worker::{Report, MIN_RUN_TIMEOUT};
use super::{ConnId, Function, Server, ServerEvent};
use crate::proto::{Priority, Request, Response, SubmitMode};
use bytes::Bytes;
use std::time::{Duration, Instant};

/// Where an epoch too far ahead for `Instant` is placed instead.
const FAR_FUTURE: Duration = Duration::from_secs(100 * 365 * 24 * 3600);
/// gearmand truncates client ids to 127 bytes.
const MAX_CLIENT_ID: usize = 127;

impl Server {
    pub(super) fn dispatch(&mut self, conn: ConnId, inbound: Inbound, now: Instant) {
        if !self.permitted(conn, &inbound) {
            return;
        }
        match inbound {
            Inbound::Request(request) => self.handle_request(conn, request, now),
            Inbound::Admin(command) => self.handle_admin(conn, command, now),
            Inbound::Bad(e) => {
                let (code, text) = e.error_reply();
                self.send(conn, Response::error(code, text));
            }
        }
    }

    pub(super) fn handle_request(&mut self, conn: ConnId, request: Request, now: Instant) {
        match request {
            Request::CanDo { function } => self.can_do(conn, function, None),
            Request::CanDoTimeout {
                function,
                timeout_ms,
            } => {
                let timeout = (timeout_ms > 0)
                    .then(|| Duration::from_millis(timeout_ms.into()).max(MIN_RUN_TIMEOUT));
                self.can_do(conn, function, timeout)
            }
            Request::CantDo { function } => self.cant_do(conn, &function, now),
            Request::ResetAbilities => {
                let names: Vec<Bytes> = self
                    .conns
                    .get(&conn)
                    .map(|c| c.abilities.iter().map(|(f, _)| f.clone()).collect())
                    .unwrap_or_default();
                for name in names {
                    self.cant_do(conn, &name, now);
                }
            }
            Request::PreSleep => self.pre_sleep(conn),
            Request::GrabJob(mode) => self.grab(conn, mode, now),
            Request::Submit(s) => {
                let (priority, background) = (s.mode.priority(), s.mode.is_background());
                let epoch = match s.mode {
                    SubmitMode::Epoch(t) => Some(t),
                    _ => None,
                };
                let sub = Submission {
                    function: s.function,
                    unique: s.unique,
                    data: s.data,
                    priority,
                    background,
                    epoch,
                    reducer: None,
                };
                self.submit(conn, sub, now)
            }
            Request::SubmitReduce(s) => {
                let sub = Submission {
                    function: s.function,
                    unique: s.unique,
                    data: s.data,
                    priority: Priority::Normal,
                    background: s.background,
                    epoch: None,
                    reducer: Some(s.reducer),
                };
                self.submit(conn, sub, now)
            }
            Request::SubmitSched(s) => self.submit_sched(conn, s, now),
            Request::AllYours => self.send(
                conn,
                Response::error("INVALID_COMMAND", "Command not expected"),
            ),
            Request::GetStatus { handle } => self.get_status(conn, handle),
            Request::GetStatusUnique { unique } => self.get_status_unique(conn, unique),
            Request::Echo { data } => self.send(conn, Response::EchoRes { data }),
            Request::Option { name } => self.option(conn, name),
            Request::SetClientId { id } => {
                if let Some(c) = self.conns.get_mut(&conn) {
                    c.client_id = id.slice(..id.len().min(MAX_CLIENT_ID));
                }
            }
            Request::WorkStatus(s) => self.report(
                conn,
                Report::Status,
                s.handle.clone(),
                Some(s),
                Bytes::new(),
                now,
            ),
            Request::WorkData(p) => self.report(conn, Report::Data, p.handle, None, p.data, now),
            Request::WorkWarning(p) => {
                self.report(conn, Report::Warning, p.handle, None, p.data, now)
            }
            Request::WorkComplete(p) => {
                self.report(conn, Report::Complete, p.handle, None, p.data, now)
            }
            Request::WorkException(p) => {
                self.report(conn, Report::Exception, p.handle, None, p.data, now)
            }
            Request::WorkFail { handle } => {
                self.report(conn, Report::Fail, handle, None, Bytes::new(), now)
            }
        }
    }

    /// Queues a packet for `conn`; past the output bound the connection is scheduled to close.
    pub(super) fn send(&mut self, conn: ConnId, response: Response) {
        self.queue_out(conn, Outbound::Packet(response));
    }

    pub(super) fn queue_out(&mut self, conn: ConnId, item: Outbound) {
        let Some(c) = self.conns.get_mut(&conn) else {
            return;
        };
        if c.closing {
            return;
        }
        let pending = c.queue(item);
        if !c.in_writable {
            c.in_writable = true;
            self.writable.push_back(conn);
        }
        if pending > self.config.max_output_bytes {
            c.discard_output();
            self.to_close.push((
                conn,
                "peer is not reading its replies (output limit)".into(),
            ));
        }
    }

    /// Unlinks a running job from its worker (before it is requeued or finished).
    pub(super) fn take_from_worker(&mut self, worker: ConnId, id: u64) {
        if let Some(c) = self.conns.get_mut(&worker) {
            if let Some(pos) = c.running.iter().position(|&j| j == id) {
                c.running.remove(pos);
            }
        }
        self.unplace_running(id);
    }

    /// Running -> Unplaced, with the function's count; progress resets as in gearmand.
    pub(super) fn unplace_running(&mut self, id: u64) {
        let Some(job) = self.jobs.get_mut(&id) else {
            return;
        };
        if job.is_running() {
            if let Some(timer) = job.timer.take() {
                self.timers.cancel(timer);
            }
            job.state = JobState::Unplaced;
            job.numerator = 0;
            job.denominator = 0;
            if let Some(f) = self.functions.get_mut(&job.function) {
                f.running = f.running.saturating_sub(1);
            }
        }
    }

    /// A worker lost a job (vanished, CANT_DO, timeout): run it again or, with the retries
    /// used up, fail it to its clients. A foreground job nobody waits for is dropped.
    pub(super) fn retry_or_fail(&mut self, id: u64, now: Instant) {
        let limit = self.config.job_retries;
        let Some(job) = self.jobs.get_mut(&id) else {
            return;
        };
        job.retries = job.retries.saturating_add(1);
        let exhausted = limit.is_some_and(|n| job.retries > n);
        let abandoned = job.is_ignored();
        if exhausted {
            let (handle, listeners) = (job.handle.clone(), job.listeners.clone());
            self.stats.function(&job.function).failed += 1;
            for l in listeners {
                self.send(
                    l,
                    Response::WorkFail {
                        handle: handle.clone(),
                    },
                );
            }
            self.finish(id, now);
        } else if abandoned {
            self.finish(id, now);
        } else {
            self.stats.function(&job.function).retried += 1;
            self.enqueue(id, now);
        }
    }

    /// A new job in no place yet, or waiting for the store when `persisting`.
    pub(super) fn create_job(
        &mut self,
        sub: Submission,
        key: Option<UniqueKey>,
        durable_id: Option<u64>,
        persisting: bool,
    ) -> u64 {
        self.handle_counter += 1;
        self.next_job += 1;
        let id = self.next_job;
        let handle = Bytes::from(format!(
            "{}:{}",
            self.config.handle_prefix, self.handle_counter
        ));
        if let Some(k) = &key {
            self.by_unique.insert((sub.function.clone(), k.clone()), id);
        }
        self.by_handle.insert(handle.clone(), id);
        let function_name = sub.function.clone();
        let f = self.function_mut(&sub.function);
        if persisting {
            f.waiting += 1;
        }
        self.jobs.insert(
            id,
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
                state: if persisting {
                    JobState::Persisting
                } else {
                    JobState::Unplaced
                },
                listeners: Vec::new(),
                retries: 0,
                timer: None,
                cancelled: false,
                numerator: 0,
                denominator: 0,
                durable_id,
                failures: 0,
                queued_at: None,
                assigned_at: None,
            },
        );
        self.stats.function(&function_name).submitted += 1;
        id
    }

    /// Places an unplaced job: onto its queue, or onto the timer if its epoch lies ahead.
    pub(super) fn make_runnable(&mut self, id: u64, now: Instant) {
        let due = self
            .jobs
            .get(&id)
            .and_then(|j| j.epoch)
            .and_then(|t| self.epoch_instant(t, now));
        let Some(job) = self.jobs.get_mut(&id) else {
            return;
        };
        match due {
            Some(at) => {
                job.state = JobState::Scheduled(at);
                job.timer = Some(self.timers.arm(at, TimerKind::EpochDue { job: id }));
                if let Some(f) = self.functions.get_mut(&job.function) {
                    f.waiting += 1;
                }
            }
            None => self.enqueue(id, now),
        }
    }

    /// Appends a job that is in no place (new, requeued) to its queue and wakes workers.
    pub(super) fn enqueue(&mut self, id: u64, now: Instant) {
        let Some(job) = self.jobs.get_mut(&id) else {
            return;
        };
        job.state = JobState::Queued;
        job.queued_at = Some(now);
        let (function, priority) = (job.function.clone(), job.priority);
        self.function_mut(&function).push(priority, id);
        self.wake_for(&function);
    }

    /// The instant an epoch job becomes due, or `None` if it is due already.
    pub(super) fn epoch_instant(&self, epoch: i64, now: Instant) -> Option<Instant> {
        let (anchor, anchor_unix) = self.config.wall_anchor;
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

    /// Runs one due timer. The job must still hold it (a cancelled timer never fires, but
    /// checking keeps a stale entry harmless).
    pub(super) fn fire(&mut self, timer: TimerId, kind: TimerKind, now: Instant) {
        let id = kind.job();
        let Some(job) = self.jobs.get_mut(&id) else {
            return;
        };
        if job.timer != Some(timer) {
            return;
        }
        job.timer = None;
        match (kind, job.state) {
            (TimerKind::EpochDue { .. }, JobState::Scheduled(_)) => {
                if let Some(f) = self.functions.get_mut(&job.function) {
                    f.waiting = f.waiting.saturating_sub(1);
                }
                self.enqueue(id, now);
            }
            (TimerKind::RunTimeout { .. }, JobState::Running { worker }) => {
                self.take_from_worker(worker, id);
                self.retry_or_fail(id, now);
            }
            _ => {}
        }
    }

    /// Removes a job from every structure; emits Unpersist for a stored job.
    pub(super) fn finish(&mut self, id: u64, _now: Instant) {
        let Some(job) = self.jobs.remove(&id) else {
            return;
        };
        if let Some(timer) = job.timer {
            self.timers.cancel(timer);
        }
        self.by_handle.remove(&job.handle);
        if let Some(key) = job.unique_key.clone() {
            let k = (job.function.clone(), key);
            if self.by_unique.get(&k) == Some(&id) {
                self.by_unique.remove(&k);
            }
        }
        let jobs = &self.jobs;
        if let Some(f) = self.functions.get_mut(&job.function) {
            match job.state {
                JobState::Queued => f.forget_queued(job.priority, |j| {
                    jobs.get(&j).is_some_and(|j| j.state == JobState::Queued)
                }),
                JobState::Running { .. } => f.running = f.running.saturating_sub(1),
                JobState::Scheduled(_) => f.waiting = f.waiting.saturating_sub(1),
                JobState::Persisting => f.waiting = f.waiting.saturating_sub(1),
                JobState::Unplaced => {}
            }
            f.over_limit_grace = f.over_limit_grace.min(f.total());
        }
        if let JobState::Running { worker } = job.state {
            if let Some(c) = self.conns.get_mut(&worker) {
                c.running.retain(|&j| j != id);
            }
        }
        for l in &job.listeners {
            if let Some(c) = self.conns.get_mut(l) {
                c.unwatch(id);
            }
        }
        if let (Some(d), true) = (job.durable_id, job.failures > 0) {
            if self.config.durable_extras {
                self.events.push_back(ServerEvent::DeleteExtra {
                    kind: super::ExtraKind::Attempts,
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

    pub(super) fn mark_writable(&mut self, conn: ConnId) {
        if let Some(c) = self.conns.get_mut(&conn) {
            if !c.in_writable && c.has_output() {
                c.in_writable = true;
                self.writable.push_back(conn);
            }
        }
    }

    // ---- connections ---------------------------------------------------------------------

    /// Removes a connection from every role: held jobs go back to their queues (or fail
    /// when out of retries), its foreground submissions are detached, its abilities
    /// dropped. Its output stays until the adapter calls `handle_eof`.
    pub(super) fn detach(&mut self, conn: ConnId, now: Instant) {
        let Some(c) = self.conns.get_mut(&conn) else {
            return;
        };
        c.closing = true;
        c.sleeping = false;
        let mut held = std::mem::take(&mut c.running);
        // Requeued in arrival order (ids grow with creation), so no job jumps ahead of an
        // older one (found by the model test).
        held.sort_unstable();
        let watched = std::mem::take(&mut c.watching);
        let abilities = std::mem::take(&mut c.abilities);
        let registrations = std::mem::take(&mut c.registrations);
        for ((name, _), count) in abilities.iter().zip(registrations) {
            if let Some(f) = self.functions.get_mut(name) {
                f.registrations = f.registrations.saturating_sub(count);
                f.capable.retain(|&w| w != conn);
            }
        }
        // Listeners first, so a held job only this connection waited for ends instead of
        // being requeued for nobody.
        for id in watched.into_keys() {
            let Some(job) = self.jobs.get_mut(&id) else {
                continue;
            };
            job.listeners.retain(|&l| l != conn);
            let abandoned = job.listeners.is_empty() && !job.background;
            if abandoned && matches!(job.state, JobState::Queued | JobState::Scheduled(_)) {
                self.finish(id, now);
            }
        }
        for id in held {
            if let Some(job) = self.jobs.get_mut(&id) {
                if job.state == (JobState::Running { worker: conn }) {
                    self.unplace_running(id);
                    self.retry_or_fail(id, now);
                }
            }
        }
    }

    pub(super) fn function_mut(&mut self, name: &Bytes) -> &mut Function {
        self.functions
            .entry(name.clone())
            .or_insert_with(|| Function::new(name.clone()))
    }
}
