//! Client requests: submissions (coalescing, maxqueue, JOB_CREATED), status queries, options.

use super::job::{Job, JobState, UniqueKey};
use super::{ConnId, Function, Server};
use crate::proto::{Priority, Response, StatusRes, StatusResUnique};
use bytes::Bytes;
use std::time::Instant;

/// A submission, whatever packet it came in.
pub(super) struct Submission {
    pub(super) function: Bytes,
    pub(super) unique: Bytes,
    pub(super) data: Bytes,
    pub(super) priority: Priority,
    pub(super) background: bool,
    pub(super) epoch: Option<i64>,
    pub(super) reducer: Option<Bytes>,
}

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
        let id = self.create_job(sub, key, None, persist);
        if !self.jobs.get(&id).is_some_and(|j| j.background) {
            self.attach(conn, id);
        }
        if persist {
            if let Some(durable_id) = self.start_persist(id) {
                self.await_persist(conn, durable_id);
            }
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

    pub(super) fn coalesce(&mut self, conn: ConnId, id: u64, background: bool) {
        // A background submission is acknowledged only once the job is stored, so one
        // onto a job nothing stores (a foreground job) stores it now, where it is.
        let unstored = self.jobs.get(&id).is_some_and(|j| j.durable_id.is_none());
        if background && self.config.persist_background && unstored {
            self.start_persist(id);
        }
        let Some(job) = self.jobs.get_mut(&id) else {
            return;
        };
        job.background |= background;
        let handle = job.handle.clone();
        // Held while a write is pending: any submission of a job waiting for its first
        // write, and a background one of a job being stored late.
        let held = job.durable_id.filter(|d| {
            self.persisting.contains_key(d) && (background || job.state == JobState::Persisting)
        });
        if !background {
            self.attach(conn, id);
        }
        match held {
            Some(d) => self.await_persist(conn, d),
            None => self.send(conn, Response::JobCreated { handle }),
        }
    }

    pub(super) fn attach(&mut self, conn: ConnId, id: u64) {
        if let Some(job) = self.jobs.get_mut(&id) {
            job.listeners.push(conn);
        }
        if let Some(c) = self.conns.get_mut(&conn) {
            c.watch(id);
        }
    }

    pub(super) fn get_status(&mut self, conn: ConnId, handle: Bytes) {
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
    pub(super) fn get_status_unique(&mut self, conn: ConnId, unique: Bytes) {
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

    pub(super) fn option(&mut self, conn: ConnId, name: Bytes) {
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
}
