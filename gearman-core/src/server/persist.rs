//! Persistence hooks: store writes the server waits for, the store's answers, and restore
//! on start.
//!
//! The rule: a background submission gets JOB_CREATED only once the store holds its job.
//! A new background job waits, not runnable, for its first write. A background submission
//! that coalesces onto a job nothing stores yet (a foreground one, queued or running) starts
//! a late write for that job, which keeps running meanwhile (at-least-once is fine). Either
//! way the reply waits as an [`Outbound::AwaitPersist`] placeholder, and only the store's
//! answer resolves it, even if the job has ended by then (the store applies the insert
//! before the remove that ending emits), so no placeholder is left unresolved.

use super::client::Submission;
use super::conn::Outbound;
use super::job::{Job, JobState, UniqueKey};
use super::{ConnId, JobRecord, Server, ServerEvent};
use crate::proto::Response;
use bytes::Bytes;
use std::time::Instant;

/// A store write not answered yet.
#[derive(Debug)]
pub(super) struct PendingWrite {
    /// The job written; it may have ended since.
    pub(super) job: u64,
    /// Its handle, for the JOB_CREATED replies.
    pub(super) handle: Bytes,
    /// One entry per placeholder queued for this write.
    pub(super) waiting: Vec<ConnId>,
}

impl Server {
    /// Gives a job a durable id and asks the store to write it.
    pub(super) fn start_persist(&mut self, id: u64) -> Option<u64> {
        let job = self.jobs.get_mut(&id)?;
        let durable_id = self.next_durable;
        self.next_durable += 1;
        job.durable_id = Some(durable_id);
        self.events
            .push_back(ServerEvent::Persist(record_of(durable_id, job)));
        let write = PendingWrite {
            job: id,
            handle: job.handle.clone(),
            waiting: Vec::new(),
        };
        self.persisting.insert(durable_id, write);
        Some(durable_id)
    }

    /// Holds `conn`'s JOB_CREATED (and all its later replies) until the store answers.
    pub(super) fn await_persist(&mut self, conn: ConnId, durable_id: u64) {
        if let Some(write) = self.persisting.get_mut(&durable_id) {
            write.waiting.push(conn);
            self.queue_out(conn, Outbound::AwaitPersist(durable_id));
        }
    }

    pub(super) fn on_persisted(
        &mut self,
        durable_id: u64,
        result: Result<(), String>,
        now: Instant,
    ) {
        let Some(write) = self.persisting.remove(&durable_id) else {
            return;
        };
        self.dead_retry_persisted(durable_id, result.is_ok());
        let reply = match &result {
            Ok(()) => Response::JobCreated {
                handle: write.handle,
            },
            Err(_) => Response::error("QUEUE_ERROR", "QUEUE_ERROR"),
        };
        for c in write.waiting {
            if let Some(conn) = self.conns.get_mut(&c) {
                conn.resolve(durable_id, reply.clone());
            }
            self.mark_writable(c);
        }
        // A job that ended or was cancelled meanwhile has had its Unpersist already.
        let id = write.job;
        let Some(job) = self
            .jobs
            .get_mut(&id)
            .filter(|j| j.durable_id == Some(durable_id))
        else {
            return;
        };
        if job.state == JobState::Persisting {
            job.state = JobState::Unplaced;
            if let Some(f) = self.functions.get_mut(&job.function) {
                f.waiting = f.waiting.saturating_sub(1);
            }
            match result {
                Ok(()) => self.make_runnable(id, now),
                Err(_) => {
                    // Nobody was told the job exists; detach foreground coalescers silently.
                    job.listeners.clear();
                    job.durable_id = None;
                    self.remove_watchers(id);
                    self.finish(id, now);
                }
            }
        } else if result.is_err() {
            // A late write failed: nothing is stored and every background submission that
            // waited for it was refused, so the job is again the foreground job it was, for
            // the clients still attached (or for nobody).
            job.durable_id = None;
            job.background = false;
            if job.listeners.is_empty() && !job.is_running() {
                self.finish(id, now);
            }
        }
    }

    pub(super) fn remove_watchers(&mut self, id: u64) {
        for c in self.conns.values_mut() {
            c.watching.remove(&id);
        }
    }

    pub(super) fn restore_one(&mut self, r: JobRecord, now: Instant) -> Option<u64> {
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
                return None;
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
        Some(id)
    }
}

pub(super) fn record_of(durable_id: u64, job: &Job) -> JobRecord {
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
