//! Restore on start: stored background jobs and the records beyond the queue (retry
//! state, dead letters, schedules, kept results) become job state again.

use super::attempts::decode_attempts;
use super::{JobId, JobState, KeyKind, Phase, Submission, Target};
use crate::server::{DeadLetter, ExtraKind, ExtraRecord, JobRecord, ServerConfig, ServerEvent};
use std::collections::HashMap;
use std::time::Instant;

/// What became of a stored record beyond the queue at restore.
pub(crate) enum Restored {
    /// In the job state again.
    Kept,
    /// No longer wanted (an expired result, or results no longer kept): deleted.
    Obsolete,
    /// Not decodable by this version: left alone.
    Unreadable,
}

impl JobState {
    /// Re-creates stored jobs, in priority then arrival order, and the extra records. A job
    /// that is also a dead letter (a crash between the two writes) stays dead; records that
    /// do not decode are left in the store and reported, expired ones are deleted.
    pub(crate) fn restore(
        &mut self,
        config: &ServerConfig,
        mut jobs: Vec<JobRecord>,
        extras: Vec<ExtraRecord>,
        now: Instant,
    ) {
        let mut attempts = HashMap::new();
        for e in extras {
            self.next_durable = self.next_durable.max(e.key.saturating_add(1));
            let restored = match e.kind {
                ExtraKind::DeadLetter => DeadLetter::decode(&e.value)
                    .map(|d| self.dead.insert(e.key, d))
                    .map_or(Restored::Unreadable, |_| Restored::Kept),
                ExtraKind::Attempts => decode_attempts(&e.value)
                    .map(|a| attempts.insert(e.key, a))
                    .map_or(Restored::Unreadable, |_| Restored::Kept),
                ExtraKind::Schedule => self.restore_schedule(config, e.key, &e.value, now),
                ExtraKind::KeptResult => self.restore_kept(config, e.key, &e.value, now),
            };
            let (kind, key) = (e.kind, e.key);
            match restored {
                Restored::Kept => {}
                Restored::Obsolete => self
                    .events
                    .push_back(ServerEvent::DeleteExtra { kind, key }),
                // Maybe a newer version's: a downgrade must not destroy it.
                Restored::Unreadable => self
                    .events
                    .push_back(ServerEvent::UnreadableRecord { kind, key }),
            }
        }
        self.trim_kept(config, config.keep_results_bytes);
        jobs.sort_by_key(|r| (r.priority, r.durable_id));
        for mut record in jobs {
            self.next_durable = self.next_durable.max(record.durable_id + 1);
            if self.dead.contains_key(&record.durable_id) {
                self.events.push_back(ServerEvent::Unpersist {
                    durable_id: record.durable_id,
                });
                continue;
            }
            let tried = attempts.remove(&record.durable_id);
            if let Some((_, due)) = tried {
                record.when = Some(due);
            }
            let durable_id = record.durable_id;
            if let Some(id) = self.restore_one(config, record, now) {
                if let (Some(job), Some((failures, _))) = (self.jobs.get_mut(id), tried) {
                    job.set_failures(failures);
                }
            } else if tried.is_some() {
                self.events.push_back(ServerEvent::DeleteExtra {
                    kind: ExtraKind::Attempts,
                    key: durable_id,
                });
            }
        }
        // Retry state of jobs no longer stored.
        for key in attempts.into_keys() {
            self.events.push_back(ServerEvent::DeleteExtra {
                kind: ExtraKind::Attempts,
                key,
            });
        }
    }

    fn restore_one(&mut self, config: &ServerConfig, r: JobRecord, now: Instant) -> Option<JobId> {
        if let Some(id) = self.find_unique(&r.function, &r.unique, &r.data) {
            return self.coalesce_restored(config, id, r.durable_id, now);
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
        let key = KeyKind::of(&sub.unique, &sub.data);
        let id = self.create(sub, key, Some(r.durable_id), now);
        self.transition(config, id, Target::Runnable, now);
        Some(id)
    }

    /// A stored job whose function and unique id a live job already holds: one job, kept in
    /// one row. A row adopted from another server (a takeover) may meet a job that is not
    /// stored, or whose own write is still pending; dropping the adopted row then would lose
    /// an acknowledged job if that write failed or the foreground client left, so the live
    /// job takes the adopted row as its own and becomes background.
    fn coalesce_restored(
        &mut self,
        config: &ServerConfig,
        id: JobId,
        adopted: u64,
        now: Instant,
    ) -> Option<JobId> {
        let job = self.jobs.get_mut(id)?;
        let own = job.durable_id();
        if own.is_some_and(|d| !self.persisting.contains_key(&d)) {
            // Both stored: keep the first, drop the duplicate record.
            self.events.push_back(ServerEvent::Unpersist {
                durable_id: adopted,
            });
            return None;
        }
        job.set_durable_id(Some(adopted));
        job.background = true;
        let waiting = job.phase == Phase::Persisting;
        if let Some(pending) = own {
            // The pending write still answers its waiting submitters; its row, once
            // written, is removed (the store applies this remove after that insert).
            if let Some(write) = self.persisting.get_mut(&pending) {
                write.superseded = true;
            }
            self.events.push_back(ServerEvent::Unpersist {
                durable_id: pending,
            });
        }
        if waiting {
            self.transition(config, id, Target::Runnable, now);
        }
        Some(id)
    }
}
