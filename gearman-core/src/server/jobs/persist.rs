//! Store writes the server waits for, and the store's answers.
//!
//! The rule: a background submission gets JOB_CREATED only once the store holds its job.
//! A new background job waits, not runnable, for its first write. A background submission
//! that coalesces onto a job nothing stores yet (a foreground one, queued or running) starts
//! a late write for that job, which keeps running meanwhile (at-least-once is fine). Either
//! way the reply waits as a placeholder in the client's output, and only the store's answer
//! resolves it, even if the job has ended by then (the store applies the insert before the
//! remove that ending emits), so no placeholder is left unresolved.

use super::{JobId, JobState, Phase, Target};
use crate::proto::Response;
use crate::server::{ConnId, JobRecord, ServerConfig, ServerEvent};
use std::time::Instant;

/// A store write not answered yet.
#[derive(Debug)]
pub(crate) struct PendingWrite {
    /// The job written (its number gives the JOB_CREATED handle); it may have ended since.
    pub(crate) job: JobId,
    /// One entry per placeholder queued for this write.
    pub(crate) waiting: Vec<ConnId>,
    /// The job took a row adopted from another server meanwhile; this write's row is
    /// removed once written.
    pub(crate) superseded: bool,
}

/// The store answered a write: the reply for every placeholder held for it.
#[derive(Debug)]
pub(crate) struct WriteAnswer {
    /// JOB_CREATED, or a QUEUE_ERROR.
    pub(crate) reply: Response,
    /// One entry per placeholder.
    pub(crate) waiting: Vec<ConnId>,
}

impl JobState {
    /// Gives a job a durable id and asks the store to write it (for a job nothing stores
    /// yet; a new job reaches here through [`Target::Persisting`]).
    pub(crate) fn start_write(&mut self, id: JobId) -> Option<u64> {
        let durable_id = self.next_durable;
        let job = self.jobs.get_mut(id)?;
        self.next_durable += 1;
        job.set_durable_id(Some(durable_id));
        let record = self.record_of(durable_id, id)?;
        self.events.push_back(ServerEvent::Persist(record));
        let write = PendingWrite {
            job: id,
            waiting: Vec::new(),
            superseded: false,
        };
        self.persisting.insert(durable_id, write);
        Some(durable_id)
    }

    /// What the store keeps of job `id`.
    fn record_of(&self, durable_id: u64, id: JobId) -> Option<JobRecord> {
        let job = self.jobs.get(id)?;
        Some(JobRecord {
            durable_id,
            function: self.functions.name(job.function),
            unique: job.unique_bytes(),
            priority: job.priority,
            data: job.data_bytes(),
            when: job.epoch(),
            reducer: job.reducer().cloned(),
        })
    }

    /// Holds one more reply of `conn` for write `durable_id`; false if no such write is
    /// pending (the caller then replies at once).
    pub(crate) fn await_write(&mut self, durable_id: u64, conn: ConnId) -> bool {
        match self.persisting.get_mut(&durable_id) {
            Some(write) => {
                write.waiting.push(conn);
                true
            }
            None => false,
        }
    }

    /// The store answered write `durable_id` (a job's or a schedule's); `None` if no such
    /// write was pending.
    pub(crate) fn persisted(
        &mut self,
        config: &ServerConfig,
        durable_id: u64,
        result: Result<(), String>,
        now: Instant,
    ) -> Option<WriteAnswer> {
        if let Some(answer) = self.schedule_persisted(durable_id, &result) {
            return Some(answer);
        }
        let write = self.persisting.remove(&durable_id)?;
        self.dead_retry_persisted(config, durable_id, result.is_ok());
        let reply = match &result {
            Ok(()) => Response::JobCreated {
                handle: self.handle(write.job),
            },
            Err(_) => Response::error("QUEUE_ERROR", "QUEUE_ERROR"),
        };
        let answer = WriteAnswer {
            reply,
            waiting: write.waiting,
        };
        // A job that ended or was cancelled meanwhile has had its Unpersist already.
        let id = write.job;
        let Some(job) = self
            .jobs
            .get_mut(id)
            .filter(|j| j.durable_id() == Some(durable_id))
        else {
            return Some(answer);
        };
        if job.phase == Phase::Persisting {
            if result.is_err() {
                // Nobody was told the job exists; its foreground coalescers got the error.
                job.set_durable_id(None);
                self.transition(config, id, Target::Ended, now);
            } else {
                self.transition(config, id, Target::Runnable, now);
            }
        } else if result.is_err() {
            // A late write failed: nothing is stored and every background submission that
            // waited for it was refused, so the job is again the foreground job it was, for
            // the clients still attached (or for nobody).
            job.set_durable_id(None);
            job.background = false;
            if job.listeners.is_empty() && !job.is_running() {
                self.transition(config, id, Target::Ended, now);
            }
        }
        Some(answer)
    }
}
