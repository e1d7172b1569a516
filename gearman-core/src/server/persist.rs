//! Persistence hooks: the store's answer for a held background job, and restore on start.

use super::client::Submission;
use super::job::{Job, JobState, UniqueKey};
use super::{JobRecord, Server, ServerEvent};
use crate::proto::Response;
use std::time::Instant;

impl Server {
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

    pub(super) fn remove_watchers(&mut self, id: u64) {
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
