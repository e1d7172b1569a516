//! Between connections and the job state: each request to its one handler, output
//! queueing, job moves with their effects on connections, and closing connections.

use super::conn::Overflow;
use super::framing::Inbound;
use super::jobs::{Effect, JobId, Phase, Submission, Target, TimerId, TimerKind};
use super::output::Outbound;
use super::worker::{Report, MIN_RUN_TIMEOUT};
use super::{ConnId, Server, ServerEvent};
use crate::proto::{PacketType, Part, Priority, Request, Response, SubmitMode};
use bytes::Bytes;
use std::time::{Duration, Instant};

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
            Request::ResetAbilities => self.reset_abilities(conn, now),
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
            Request::SubmitSched(s) => self.submit_sched(conn, *s, now),
            Request::AllYours => self.send(
                conn,
                Response::error("INVALID_COMMAND", "Command not expected"),
            ),
            Request::GetStatus { handle } => self.get_status(conn, handle),
            Request::GetStatusUnique { unique } => self.get_status_unique(conn, unique),
            Request::Echo { data } => self.send(conn, Response::EchoRes { data }),
            Request::Option { name } => self.option(conn, name),
            Request::SetClientId { id } => {
                if let Some(c) = self.conns.get_mut(conn) {
                    c.session.client_id = id.slice(..id.len().min(MAX_CLIENT_ID));
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
        let max = self.config.max_output_bytes;
        let queued = self.conns.queue(conn, item, max);
        self.close_on_overflow(conn, queued);
    }

    /// Past the output bound the connection is scheduled to close.
    pub(super) fn close_on_overflow(&mut self, conn: ConnId, queued: Result<(), Overflow>) {
        if queued.is_err() {
            self.to_close.push((
                conn,
                "peer is not reading its replies (output limit)".into(),
            ));
        }
    }

    /// JOB_CREATED for job `id`, its handle written into a reused buffer rather than a
    /// packet of its own.
    pub(super) fn send_job_created(&mut self, conn: ConnId, id: JobId) {
        let mut handle = std::mem::take(&mut self.handle_scratch);
        self.jobs.write_handle(id, &mut handle);
        let max = self.config.max_output_bytes;
        let parts = [Part::Raw(&handle)];
        let queued = self
            .conns
            .queue_parts(conn, PacketType::JobCreated, &parts, max);
        self.handle_scratch = handle;
        self.close_on_overflow(conn, queued);
    }

    /// Holds `conn`'s reply (and all its later output) until the store answers write
    /// `durable_id`.
    pub(super) fn await_write(&mut self, conn: ConnId, durable_id: u64) {
        if self.jobs.await_write(durable_id, conn) {
            self.queue_out(conn, Outbound::AwaitPersist(durable_id));
        }
    }

    /// Moves a job through the lifecycle and applies what that means for connections.
    pub(super) fn move_job(&mut self, id: JobId, target: Target, now: Instant) {
        self.jobs.transition(&self.config, id, target, now);
        self.apply_effects();
    }

    /// Applies the job state's effects on connections, in the order they happened.
    pub(super) fn apply_effects(&mut self) {
        while !self.jobs.effects.is_empty() {
            let mut effects = std::mem::take(&mut self.jobs.effects);
            for effect in effects.drain(..) {
                match effect {
                    Effect::Held { worker, job } => {
                        if let Some(c) = self.conns.get_mut(worker) {
                            c.worker.running.push(job);
                        }
                    }
                    Effect::Released { worker, job } => {
                        if let Some(c) = self.conns.get_mut(worker) {
                            c.worker.release(job);
                        }
                    }
                    Effect::Unwatched { conn, job } => {
                        if let Some(c) = self.conns.get_mut(conn) {
                            c.client.unwatch(job);
                        }
                    }
                    Effect::Runnable { function } => self.wake_for(function),
                }
            }
            if self.jobs.effects.is_empty() {
                // Keep the allocation for the next call.
                self.jobs.effects = effects;
            }
        }
    }

    /// A worker lost a running job (vanished, CANT_DO, timeout): run it again or, with the
    /// retries used up, fail it to its clients. A job nobody waits for ends.
    pub(super) fn lose(&mut self, id: JobId, now: Instant) {
        let limit = self.config.job_retries;
        let Some(job) = self.jobs.job_mut(id) else {
            return;
        };
        job.retries = job.retries.saturating_add(1);
        let target = if limit.is_some_and(|n| job.retries > n) {
            let (listeners, function) = (job.listeners.to_vec(), job.function);
            let (handle, name) = (self.jobs.handle(id), self.jobs.functions.name(function));
            self.jobs.stats.function(&name).failed += 1;
            for l in listeners {
                let handle = handle.clone();
                self.send(l, Response::WorkFail { handle });
            }
            Target::Ended
        } else if job.is_ignored() {
            Target::Ended
        } else {
            Target::Queued
        };
        self.move_job(id, target, now);
    }

    /// Runs one due job timer. The job must still hold it (a cancelled timer never fires,
    /// but checking keeps a stale entry harmless).
    pub(super) fn fire(&mut self, timer: TimerId, id: JobId, kind: TimerKind, now: Instant) {
        let Some(job) = self.jobs.job(id).filter(|j| j.timer() == Some(timer)) else {
            return;
        };
        match (kind, job.phase()) {
            (TimerKind::Due, Phase::Scheduled) => self.move_job(id, Target::Queued, now),
            (TimerKind::RunTimeout, Phase::Running { .. }) => self.lose(id, now),
            _ => {}
        }
    }

    pub(super) fn run_closes(&mut self, now: Instant) {
        while let Some((conn, reason)) = self.to_close.pop() {
            if self.conns.get(conn).is_some_and(|c| !c.session.closing) {
                self.detach(conn, now);
                self.events.push_back(ServerEvent::Close { conn, reason });
            }
        }
    }

    /// Removes a connection from every role: held jobs go back to their queues (or fail
    /// when out of retries), its foreground submissions are detached, its abilities
    /// dropped. Its output stays until the adapter calls `handle_eof`.
    pub(super) fn detach(&mut self, conn: ConnId, now: Instant) {
        let Some(c) = self.conns.get_mut(conn) else {
            return;
        };
        c.session.closing = true;
        c.worker.sleeping = false;
        let woken = c.worker.noop_sent;
        let held = c.worker.take_running();
        let watched = std::mem::take(&mut c.client.watching);
        let abilities = c.worker.take_abilities();
        let functions: Vec<_> = abilities.iter().map(|a| a.function).collect();
        for a in abilities {
            self.jobs.unregister(a.function, a.registrations);
        }
        // Listeners first, so a held job only this connection waited for ends instead of
        // being requeued for nobody.
        for id in watched.into_keys() {
            let Some(job) = self.jobs.job_mut(id) else {
                continue;
            };
            job.listeners.retain(|&l| l != conn);
            let abandoned = job.listeners.is_empty() && !job.background;
            if abandoned && matches!(job.phase(), Phase::Queued | Phase::Scheduled) {
                self.move_job(id, Target::Ended, now);
            }
        }
        for id in held {
            let running_here = self
                .jobs
                .job(id)
                .is_some_and(|j| j.phase() == Phase::Running { worker: conn });
            if running_here {
                self.lose(id, now);
            }
        }
        if woken {
            self.pass_on_wakeup(functions);
        }
    }
}
