//! Request handling and the job lifecycle: the only place jobs move.

use super::conn::Outbound;
use super::job::{Job, JobState, UniqueKey};
use super::session::Inbound;
use super::timers::{TimerId, TimerKind};
use super::{ConnId, Function, JobRecord, Server, ServerEvent};
use crate::proto::{
    AssignExtras, GrabMode, JobAssign, Priority, Request, Response, StatusRes, StatusResUnique,
    SubmitMode, WorkPayload, WorkStatus,
};
use bytes::Bytes;
use std::time::{Duration, Instant};

/// gearmand raises CAN_DO_TIMEOUT values below one second to one second.
const MIN_RUN_TIMEOUT: Duration = Duration::from_millis(1000);
/// Where an epoch too far ahead for `Instant` is placed instead.
const FAR_FUTURE: Duration = Duration::from_secs(100 * 365 * 24 * 3600);
/// gearmand truncates client ids to 127 bytes.
const MAX_CLIENT_ID: usize = 127;

/// What a worker reports about a job it holds.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Report {
    Status,
    Data,
    Warning,
    Complete,
    Fail,
    Exception,
}

impl Report {
    /// gearmand's ERROR text when the job is not held by the reporting connection.
    fn not_found_text(self) -> &'static str {
        match self {
            Report::Data | Report::Warning => "Job does not exist on server",
            Report::Status | Report::Complete | Report::Fail => {
                "Job given in work result not found"
            }
            Report::Exception => "An exception was received for a job that does not exist",
        }
    }

    fn is_final(self) -> bool {
        matches!(self, Report::Complete | Report::Fail | Report::Exception)
    }
}

/// A submission, whatever packet it came in.
struct Submission {
    function: Bytes,
    unique: Bytes,
    data: Bytes,
    priority: Priority,
    background: bool,
    epoch: Option<i64>,
    reducer: Option<Bytes>,
}

impl Server {
    pub(super) fn dispatch(&mut self, conn: ConnId, inbound: Inbound, now: Instant) {
        match inbound {
            Inbound::Request(request) => self.handle_request(conn, request, now),
            Inbound::Admin(command) => self.handle_admin(conn, command, now),
            Inbound::Bad(e) => {
                let (code, text) = e.error_reply();
                self.send(conn, Response::error(code, text));
            }
        }
    }

    fn handle_request(&mut self, conn: ConnId, request: Request, now: Instant) {
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
            Request::SubmitSched(_) | Request::AllYours => self.send(
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

    // ---- workers -------------------------------------------------------------------------

    fn can_do(&mut self, conn: ConnId, function: Bytes, timeout: Option<Duration>) {
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

    fn cant_do(&mut self, conn: ConnId, function: &Bytes, now: Instant) {
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

    fn pre_sleep(&mut self, conn: ConnId) {
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

    fn has_runnable(&self, conn: ConnId) -> bool {
        self.conns.get(&conn).is_some_and(|c| {
            c.abilities
                .iter()
                .any(|(f, _)| self.functions.get(f).is_some_and(|f| f.queued_total() > 0))
        })
    }

    /// Sends NOOP to a sleeping worker that has not had one since it last grabbed.
    fn wake(&mut self, conn: ConnId) {
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
    fn wake_for(&mut self, function: &Bytes) {
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

    fn grab(&mut self, conn: ConnId, mode: GrabMode, now: Instant) {
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
    fn pick_job(&mut self, conn: ConnId) -> Option<u64> {
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

    fn assign(&mut self, conn: ConnId, id: u64, mode: GrabMode, now: Instant) {
        let Some(job) = self.jobs.get_mut(&id) else {
            return;
        };
        job.state = JobState::Running { worker: conn };
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

    fn report(
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
            self.take_from_worker(conn, id);
            self.finish(id, now);
        }
    }

    /// Unlinks a running job from its worker (before it is requeued or finished).
    fn take_from_worker(&mut self, worker: ConnId, id: u64) {
        if let Some(c) = self.conns.get_mut(&worker) {
            if let Some(pos) = c.running.iter().position(|&j| j == id) {
                c.running.remove(pos);
            }
        }
        self.unplace_running(id);
    }

    /// Running -> Unplaced, with the function's count; progress resets as in gearmand.
    fn unplace_running(&mut self, id: u64) {
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
    fn retry_or_fail(&mut self, id: u64, now: Instant) {
        let limit = self.config.job_retries;
        let Some(job) = self.jobs.get_mut(&id) else {
            return;
        };
        job.retries = job.retries.saturating_add(1);
        let exhausted = limit.is_some_and(|n| job.retries > n);
        let abandoned = job.is_ignored();
        if exhausted {
            let (handle, listeners) = (job.handle.clone(), job.listeners.clone());
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
            self.enqueue(id);
        }
    }

    // ---- clients -------------------------------------------------------------------------

    fn submit(&mut self, conn: ConnId, sub: Submission, now: Instant) {
        let limits = self.config.limits;
        if sub.unique.len() > limits.max_unique {
            self.send(
                conn,
                Response::error("ARGUMENT_TOO_LARGE", "Unique value too large"),
            );
            return;
        }
        if sub.function.len() > limits.max_argument
            || sub
                .reducer
                .as_ref()
                .is_some_and(|r| r.len() > limits.max_argument)
        {
            self.send(
                conn,
                Response::error("ARGUMENT_TOO_LARGE", "Function name too large"),
            );
            return;
        }
        let key = UniqueKey::of(&sub.unique, &sub.data);
        if let Some(key) = &key {
            if let Some(&id) = self.by_unique.get(&(sub.function.clone(), key.clone())) {
                self.coalesce(conn, id, sub.background);
                return;
            }
        }
        if let Some(limit) = self.max_queue.get(&sub.function) {
            let max = limit.get(sub.priority.index()).copied().unwrap_or(0) as usize;
            let total = self.functions.get(&sub.function).map_or(0, Function::total);
            if max > 0 && total >= max {
                self.send(conn, Response::error("QUEUE_ERROR", "Job queue is full"));
                return;
            }
        }
        let persist = self.config.persist_background && sub.background;
        let id = self.create_job(sub, key, persist.then_some(self.next_durable), persist);
        if !self.jobs.get(&id).is_some_and(|j| j.background) {
            self.attach(conn, id);
        }
        if persist {
            let durable_id = self.next_durable;
            self.next_durable += 1;
            self.persisting.insert(durable_id, id);
            if let Some(job) = self.jobs.get_mut(&id) {
                job.awaiting_created.push(conn);
                self.events
                    .push_back(ServerEvent::Persist(record_of(durable_id, job)));
            }
            self.queue_out(conn, Outbound::AwaitPersist(durable_id));
        } else {
            let handle = self
                .jobs
                .get(&id)
                .map(|j| j.handle.clone())
                .unwrap_or_default();
            self.send(conn, Response::JobCreated { handle });
            self.make_runnable(id, now);
        }
    }

    fn coalesce(&mut self, conn: ConnId, id: u64, background: bool) {
        let Some(job) = self.jobs.get_mut(&id) else {
            return;
        };
        job.background |= background;
        let handle = job.handle.clone();
        let pending = match (job.state, job.durable_id) {
            (JobState::Persisting, Some(d)) => {
                job.awaiting_created.push(conn);
                Some(d)
            }
            _ => None,
        };
        if !background {
            self.attach(conn, id);
        }
        match pending {
            Some(d) => self.queue_out(conn, Outbound::AwaitPersist(d)),
            None => self.send(conn, Response::JobCreated { handle }),
        }
    }

    fn attach(&mut self, conn: ConnId, id: u64) {
        if let Some(job) = self.jobs.get_mut(&id) {
            job.listeners.push(conn);
        }
        if let Some(c) = self.conns.get_mut(&conn) {
            c.watch(id);
        }
    }

    /// A new job in no place yet, or waiting for the store when `persisting`.
    fn create_job(
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
                awaiting_created: Vec::new(),
                retries: 0,
                timer: None,
                cancelled: false,
                numerator: 0,
                denominator: 0,
                durable_id,
            },
        );
        id
    }

    /// Places an unplaced job: onto its queue, or onto the timer if its epoch lies ahead.
    fn make_runnable(&mut self, id: u64, now: Instant) {
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
            None => self.enqueue(id),
        }
    }

    /// Appends a job that is in no place (new, requeued) to its queue and wakes workers.
    fn enqueue(&mut self, id: u64) {
        let Some(job) = self.jobs.get_mut(&id) else {
            return;
        };
        job.state = JobState::Queued;
        let (function, priority) = (job.function.clone(), job.priority);
        self.function_mut(&function).push(priority, id);
        self.wake_for(&function);
    }

    /// The instant an epoch job becomes due, or `None` if it is due already.
    fn epoch_instant(&self, epoch: i64, now: Instant) -> Option<Instant> {
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
                self.enqueue(id);
            }
            (TimerKind::RunTimeout { .. }, JobState::Running { worker }) => {
                self.take_from_worker(worker, id);
                self.retry_or_fail(id, now);
            }
            _ => {}
        }
    }

    /// Removes a job from every structure; emits Unpersist for a stored job and releases
    /// any JOB_CREATED still held for it.
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
        if let Some(d) = job.durable_id {
            if self.persisting.remove(&d).is_some() {
                for c in &job.awaiting_created {
                    if let Some(conn) = self.conns.get_mut(c) {
                        conn.resolve(
                            d,
                            Response::JobCreated {
                                handle: job.handle.clone(),
                            },
                        );
                    }
                    self.mark_writable(*c);
                }
            }
            self.events
                .push_back(ServerEvent::Unpersist { durable_id: d });
        }
    }

    fn mark_writable(&mut self, conn: ConnId) {
        if let Some(c) = self.conns.get_mut(&conn) {
            if !c.in_writable && c.has_output() {
                c.in_writable = true;
                self.writable.push_back(conn);
            }
        }
    }

    pub(super) fn on_persisted(
        &mut self,
        durable_id: u64,
        result: Result<(), String>,
        now: Instant,
    ) {
        let Some(id) = self.persisting.remove(&durable_id) else {
            return;
        };
        let Some(job) = self.jobs.get_mut(&id) else {
            return;
        };
        let waiting = std::mem::take(&mut job.awaiting_created);
        job.state = JobState::Unplaced;
        if let Some(f) = self.functions.get_mut(&job.function) {
            f.waiting = f.waiting.saturating_sub(1);
        }
        let reply = match &result {
            Ok(()) => Response::JobCreated {
                handle: job.handle.clone(),
            },
            Err(_) => Response::error("QUEUE_ERROR", "QUEUE_ERROR"),
        };
        for c in waiting {
            if let Some(conn) = self.conns.get_mut(&c) {
                conn.resolve(durable_id, reply.clone());
            }
            self.mark_writable(c);
        }
        match result {
            Ok(()) => self.make_runnable(id, now),
            Err(_) => {
                // Nobody was told the job exists; detach foreground coalescers silently.
                if let Some(job) = self.jobs.get_mut(&id) {
                    job.listeners.clear();
                    job.durable_id = None;
                }
                self.remove_watchers(id);
                self.finish(id, now);
            }
        }
    }

    fn remove_watchers(&mut self, id: u64) {
        for c in self.conns.values_mut() {
            c.watching.remove(&id);
        }
    }

    pub(super) fn restore_one(&mut self, r: JobRecord, now: Instant) {
        let key = UniqueKey::of(&r.unique, &r.data);
        if let Some(k) = &key {
            if self
                .by_unique
                .contains_key(&(r.function.clone(), k.clone()))
            {
                // The same job stored twice: keep the first, drop the duplicate record.
                self.events.push_back(ServerEvent::Unpersist {
                    durable_id: r.durable_id,
                });
                return;
            }
        }
        let sub = Submission {
            function: r.function,
            unique: r.unique,
            data: r.data,
            priority: r.priority,
            background: true,
            epoch: r.when,
            reducer: r.reducer,
        };
        let id = self.create_job(sub, key, Some(r.durable_id), false);
        self.make_runnable(id, now);
    }

    fn get_status(&mut self, conn: ConnId, handle: Bytes) {
        let job = self.by_handle.get(&handle).and_then(|id| self.jobs.get(id));
        let reply = StatusRes {
            known: job.is_some(),
            running: job.is_some_and(Job::is_running),
            numerator: job.map_or(0, |j| j.numerator),
            denominator: job.map_or(0, |j| j.denominator),
            handle,
        };
        self.send(conn, Response::StatusRes(reply));
    }

    /// Not scoped by function, as in gearmand: the first function (by name) with a job of
    /// that unique id answers.
    fn get_status_unique(&mut self, conn: ConnId, unique: Bytes) {
        let key = UniqueKey::Unique(unique.clone());
        let job = self
            .functions
            .keys()
            .find_map(|f| self.by_unique.get(&(f.clone(), key.clone())))
            .and_then(|id| self.jobs.get(id));
        let reply = StatusResUnique {
            known: job.is_some(),
            running: job.is_some_and(Job::is_running),
            numerator: job.map_or(0, |j| j.numerator),
            denominator: job.map_or(0, |j| j.denominator),
            client_count: job.map_or(0, |j| j.listeners.len() as u32),
            unique,
        };
        self.send(conn, Response::StatusResUnique(reply));
    }

    fn option(&mut self, conn: ConnId, name: Bytes) {
        let word = name.split(|&b| b == 0).next().unwrap_or_default();
        if word.eq_ignore_ascii_case(b"exceptions") {
            if let Some(c) = self.conns.get_mut(&conn) {
                c.exceptions = true;
            }
            self.send(conn, Response::OptionRes { name });
        } else {
            self.send(
                conn,
                Response::error("UNKNOWN_OPTION", "Server does not recognize given option"),
            );
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

fn record_of(durable_id: u64, job: &Job) -> JobRecord {
    JobRecord {
        durable_id,
        function: job.function.clone(),
        unique: job.unique.clone(),
        priority: job.priority,
        data: job.data.clone(),
        when: job.epoch,
        reducer: job.reducer.clone(),
    }
}
