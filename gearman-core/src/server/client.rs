//! Client requests: submissions (coalescing, maxqueue, JOB_CREATED), schedules, status
//! queries, options.

use super::jobs::schedule::ScheduleReply;
use super::jobs::{Job, JobId, KeyKind, Phase, Submission, Target};
use super::output::Outbound;
use super::{ConnId, Server};
use crate::proto::{Response, StatusRes, StatusResUnique, SubmitJobSched};
use bytes::Bytes;
use std::time::Instant;

impl Server {
    pub(super) fn submit(&mut self, conn: ConnId, sub: Submission, now: Instant) {
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
        if let Some(id) = self.jobs.find_unique(&sub.function, &sub.unique, &sub.data) {
            self.coalesce(conn, id, sub.background);
            return;
        }
        if self.jobs.queue_full(&sub.function, sub.priority) {
            self.send(conn, Response::error("QUEUE_ERROR", "Job queue is full"));
            return;
        }
        let background = sub.background;
        let persist = self.config.persist_background && background;
        let key = KeyKind::of(&sub.unique, &sub.data);
        let id = self.jobs.create(sub, key, None, now);
        if !background {
            self.attach(conn, id);
        }
        if persist {
            self.move_job(id, Target::Persisting, now);
            if let Some(durable_id) = self.jobs.job(id).and_then(|j| j.durable_id()) {
                self.await_write(conn, durable_id);
            }
        } else {
            self.send_job_created(conn, id);
            self.move_job(id, Target::Runnable, now);
        }
    }

    fn coalesce(&mut self, conn: ConnId, id: JobId, background: bool) {
        // A background submission is acknowledged only once the job is stored, so one
        // onto a job nothing stores (a foreground job) stores it now, where it is.
        let unstored = self.jobs.job(id).is_some_and(|j| j.durable_id().is_none());
        if background && self.config.persist_background && unstored {
            self.jobs.start_write(id);
        }
        let Some(job) = self.jobs.job_mut(id) else {
            return;
        };
        job.background |= background;
        // Held while a write is pending: any submission of a job waiting for its first
        // write, and a background one of a job being stored late.
        let held = job
            .durable_id()
            .filter(|_| background || job.phase() == Phase::Persisting);
        if !background {
            self.attach(conn, id);
        }
        match held.filter(|d| self.jobs.persisting.contains_key(d)) {
            Some(d) => self.await_write(conn, d),
            None => self.send_job_created(conn, id),
        }
    }

    /// One more foreground submission of `conn` waits for `id`'s result.
    fn attach(&mut self, conn: ConnId, id: JobId) {
        if let Some(job) = self.jobs.job_mut(id) {
            job.listeners.push(conn);
        }
        if let Some(c) = self.conns.get_mut(conn) {
            c.client.watch(id);
        }
    }

    pub(super) fn submit_sched(&mut self, conn: ConnId, s: SubmitJobSched, now: Instant) {
        match self.jobs.add_schedule(&self.config, conn, s, now) {
            ScheduleReply::Created(handle) => self.send(conn, Response::JobCreated { handle }),
            ScheduleReply::AwaitStore(key) => self.queue_out(conn, Outbound::AwaitPersist(key)),
            ScheduleReply::Refused(code, text) => {
                let code = Bytes::from_static(code.as_bytes());
                self.send(conn, Response::Error { code, text })
            }
        }
    }

    pub(super) fn get_status(&mut self, conn: ConnId, handle: Bytes) {
        let job = self
            .jobs
            .find_handle(&handle)
            .and_then(|id| self.jobs.job(id));
        let (numerator, denominator) = job.map_or((0, 0), Job::progress);
        let reply = StatusRes {
            known: job.is_some(),
            running: job.is_some_and(Job::is_running),
            numerator,
            denominator,
            handle,
        };
        self.send(conn, Response::StatusRes(reply));
    }

    /// Not scoped by function, as in gearmand: the first function (by name) with a job of
    /// that unique id answers.
    pub(super) fn get_status_unique(&mut self, conn: ConnId, unique: Bytes) {
        let job = self
            .jobs
            .by_unique_any_function(&unique)
            .and_then(|id| self.jobs.job(id));
        let (numerator, denominator) = job.map_or((0, 0), Job::progress);
        let reply = StatusResUnique {
            known: job.is_some(),
            running: job.is_some_and(Job::is_running),
            numerator,
            denominator,
            client_count: job.map_or(0, |j| j.listeners.len() as u32),
            unique,
        };
        self.send(conn, Response::StatusResUnique(reply));
    }

    pub(super) fn option(&mut self, conn: ConnId, name: Bytes) {
        let word = name.split(|&b| b == 0).next().unwrap_or_default();
        if word.eq_ignore_ascii_case(b"exceptions") {
            if let Some(c) = self.conns.get_mut(conn) {
                c.client.exceptions = true;
            }
            self.send(conn, Response::OptionRes { name });
        } else {
            self.send(
                conn,
                Response::error("UNKNOWN_OPTION", "Server does not recognize given option"),
            );
        }
    }
}
